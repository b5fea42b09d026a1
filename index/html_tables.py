"""HTML tables as trafilatura extracts them, rewritten so that a data row names its columns.

trafilatura writes a table as Markdown ("| 2018 | 8 milliards | " under "| Année | Budget contenu | "
and "|---|---|"); its XML tree (``bare_extraction(...).body``) keeps the cells, a row per
``<caption>``, and each cell a ``colspan`` or ``rowspan`` covers as an empty one, so that the columns
line up; but ``role="head"`` marks the cells of its first ``<th>`` row only, and an empty cell does not
say whether it is empty or covered. So each of its tables is matched with the page's own ``<table>``
(the same cells, row by row: ``source_grids``), which tells its header rows (the ``<thead>`` rows, or
the leading rows of ``<th>``), and the cell each covered one belongs to: as in a Word table
(``index.docx_text``), a cell spanning columns is one ``TableCell`` spanning them, so that a header
cell names each column it spans, and a cell a ``rowspan`` carries down is repeated in each row it
covers. A table matched with none (trafilatura cleaned a cell's text) is read from trafilatura's tree
alone, as before. A table whose columns are named (``index.tables.names_columns``) is replaced by a
paragraph per line of ``index.tables.table_lines``; the others are left to trafilatura."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from index.tables import Row, TableCell, names_columns, table_lines

if TYPE_CHECKING:
    from lxml.etree import _Element

log = logging.getLogger(__name__)

# trafilatura's own cap on a colspan or rowspan (trafilatura.main_extractor._MAX_SPAN), so that grids agree
_MAX_SPAN = 100


def _text(el: _Element) -> str:
    return " ".join("".join(el.itertext()).split())


def _page_text(el: _Element) -> str:
    """A page element's text, less what trafilatura deletes before it reads the page (a cell's
    ``<script>``, ``<button>``…), so that it compares with the cell trafilatura writes."""
    from lxml.etree import _Comment, _ProcessingInstruction
    from trafilatura.settings import MANUALLY_CLEANED

    parts: list[str] = []
    todo: list[_Element | str] = [el]  # a stack, not recursion: a cell's markup may nest deeply
    while todo:
        node = todo.pop()
        if isinstance(node, str):  # the tail of an element done
            parts.append(node)
        elif node.tag not in MANUALLY_CLEANED and not isinstance(node, (_Comment, _ProcessingInstruction)):
            parts.append(node.text or "")
            for child in reversed(node):
                todo.extend((child.tail or "", child))
    return " ".join("".join(parts).split())


def _key(text: str) -> str:
    """A cell's text as compared between the page and trafilatura's tree (which may space it otherwise)."""
    return "".join(text.split()).casefold()


@dataclass(frozen=True, eq=False)
class _SourceCell:
    """A ``<td>``/``<th>`` of the page (or its ``<caption>``): whether it is a header cell."""

    text: str
    head: bool


@dataclass(frozen=True)
class SourceGrid:
    """A page ``<table>`` laid out as trafilatura lays it out: per kept row, each column's cell (the
    one there or the one spanning it; None for trafilatura's padding), and how many leading rows are
    its captions and header rows."""

    rows: list[list[_SourceCell | None]]
    marked: int
    key: tuple[tuple[str, ...], ...]  # each row's texts (``_key``), a covered column's empty, as in trafilatura's tree


def _grid_key(rows: list[list[_SourceCell | None]]) -> tuple[tuple[str, ...], ...]:
    keys = []
    seen: set[int] = set()
    for row in rows:
        texts = []
        for cell in row:
            texts.append(_key(cell.text) if cell is not None and id(cell) not in seen else "")
            if cell is not None:
                seen.add(id(cell))
        keys.append(tuple(texts))
    return tuple(keys)


def _span(cell: _Element, attr: str) -> int:
    value = cell.get(attr, "1")
    return min(int(value), _MAX_SPAN) if value.isdecimal() else 1


def source_grid(table: _Element) -> SourceGrid | None:
    """A page ``<table>`` as a ``SourceGrid``, its cells placed as trafilatura's ``handle_table``
    places them; None for a table this does not lay out (a nested table, a cell outside a row)."""
    if any(True for _ in table.iterdescendants("table")):
        return None
    trs: list[tuple[_Element, bool]] = []  # each row, and whether it is in <thead>
    captions: list[str] = []
    for child in table:
        if child.tag == "tr":
            trs.append((child, False))
        elif child.tag in ("thead", "tbody", "tfoot"):
            for tr in child:
                if tr.tag in ("td", "th"):
                    return None
                if tr.tag == "tr":
                    trs.append((tr, child.tag == "thead"))
        elif child.tag in ("td", "th"):
            return None
        elif child.tag == "caption":
            captions.append(_page_text(child))
    max_cols = min(max((sum(_span(c, "colspan") for c in tr if c.tag in ("td", "th")) for tr, _ in trs), default=0), _MAX_SPAN)
    laid: list[tuple[list[_SourceCell | None], bool]] = []
    for caption in filter(None, captions):
        laid.append(([_SourceCell(caption, True)] + [None] * (max_cols - 1), True))
    carried: dict[int, tuple[int, _SourceCell]] = {}  # column -> (rows still covered, the rowspan cell)

    def carry(row: list[_SourceCell | None]) -> None:
        while len(row) in carried:
            left, cell = carried[len(row)]
            row.append(cell)
            if left == 1:
                del carried[len(row) - 1]
            else:
                carried[len(row) - 1] = (left - 1, cell)

    for tr, in_head in trs:
        row: list[_SourceCell | None] = []
        for el in tr:
            if el.tag not in ("td", "th"):
                continue
            carry(row)
            cell = _SourceCell(_page_text(el), el.tag == "th")
            colspan, rowspan = _span(el, "colspan"), _span(el, "rowspan")
            if rowspan > 1:
                for c in range(len(row), len(row) + colspan):
                    carried[c] = (rowspan - 1, cell)
            row.extend([cell] * max(1, colspan))
        carry(row)
        row.extend([None] * (max_cols - len(row)))
        if any(c is not None and c.text for c in row):  # trafilatura drops a row without text
            laid.append((row, in_head))
    marked = 0
    for row, in_head in laid:
        filled = [c for c in row if c is not None and c.text]
        if not (in_head or (any(c.head for c in filled) and all(c.head for c in filled))):
            break
        marked += 1
    rows = [row for row, _ in laid]
    return SourceGrid(rows, marked, _grid_key(rows))


def source_grids(page: _Element) -> list[SourceGrid]:
    """The ``SourceGrid`` of each table of a page's tree that has one, in the page's order."""
    return [grid for grid in map(source_grid, page.iter("table")) if grid is not None]


def _is_head_row(cells: list[_Element]) -> bool:
    """A row of ``<th>``: head cells, and no text in any other (an empty corner ``<td>`` may be)."""
    return any(c.get("role") == "head" for c in cells) and all(c.get("role") == "head" or not _text(c) for c in cells)


def _rows_from_grid(rows: list[list[_Element]], grid: SourceGrid) -> list[Row]:
    """trafilatura's rows with the page's spans: the columns one page cell covers in a row are one
    ``TableCell`` spanning them, with the text trafilatura gives that cell where it begins."""
    texts: dict[int, str] = {}
    out: list[Row] = []
    for cells, sources in zip(rows, grid.rows):
        row: Row = []
        previous: _SourceCell | None = None
        for cell, source in zip(cells, sources):
            if source is not None and source is previous:
                row[-1] = TableCell(row[-1].text, row[-1].span + 1)
                continue
            if source is not None and id(source) not in texts:
                texts[id(source)] = _text(cell)
            row.append(TableCell(texts[id(source)] if source is not None else ""))
            previous = source
        out.append(row)
    return out


def table_paragraph_lines(table: _Element, grids: list[SourceGrid] | None = None) -> list[str] | None:
    """The lines a trafilatura ``<table>`` is to be written as (``table_lines``: its caption, a title
    row, is its first line); None when its columns are not named (no header, or a nested table) and
    trafilatura's own text stays. ``grids``: the page's tables not yet matched (``source_grids``);
    the one matching this table is taken out of it and gives its header rows and spans."""
    if any(True for _ in table.iterdescendants("table")):
        return None
    rows = [[c for c in row if c.tag == "cell"] for row in table if row.tag == "row"]
    key = tuple(tuple(_key(_text(c)) for c in row) for row in rows)
    candidates = grids if grids is not None else []
    grid = next((g for g in candidates if g.key == key), None)
    if grid is not None:
        candidates.remove(grid)
        cells, marked = _rows_from_grid(rows, grid), grid.marked
    else:
        if grids is not None:
            log.debug("a table matched none of the page's: its header rows and spans read from trafilatura's tree")
        marked = 0
        while marked < len(rows) and _is_head_row(rows[marked]):
            marked += 1
        cells = [[TableCell(_text(c)) for c in row] for row in rows]
    return table_lines(cells, marked) if names_columns(cells, marked) else None


def rewrite_tables(body: _Element, page: _Element | None = None) -> bool:
    """Replace, in trafilatura's ``body``, each table whose columns are named by a ``<p>`` per line
    (``table_paragraph_lines``); whether any was. ``page``: the page's own tree, that trafilatura
    extracted ``body`` from (its tables' header rows and spans)."""
    from lxml.etree import Element

    grids = source_grids(page) if page is not None else None
    changed = False
    for table in list(body.iter("table")):
        parent = table.getparent()
        if parent is None or any(a.tag == "table" for a in table.iterancestors()):  # a nested table is its cell's text
            continue
        lines = table_paragraph_lines(table, grids)
        if lines is None:
            continue
        at = parent.index(table)
        paragraphs = []
        for line in lines:
            p = Element("p")
            p.text = line
            paragraphs.append(p)
        if paragraphs:
            paragraphs[-1].tail = table.tail
        parent[at:at + 1] = paragraphs
        changed = True
    return changed
