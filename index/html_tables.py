"""HTML tables as trafilatura extracts them, rewritten so that a data row names its columns.

trafilatura writes a table as Markdown ("| 2018 | 8 milliards | " under "| Année | Budget contenu | "
and "|---|---|"); its XML tree (``bare_extraction(...).body``) keeps the cells, ``role="head"`` on a
``<th>`` row's cells, a row per ``<caption>``, and spanned cells as empty ones. A table with a header
(``index.tables.header_rows``) is replaced there by a paragraph per line of ``index.tables.table_lines``;
the others are left to trafilatura."""

from __future__ import annotations

from typing import TYPE_CHECKING

from index.tables import Row, TableCell, header_rows, table_lines, width

if TYPE_CHECKING:
    from lxml.etree import _Element


def _text(el: _Element) -> str:
    return " ".join("".join(el.itertext()).split())


def _is_caption(cells: list[_Element]) -> bool:
    """trafilatura's row for a ``<caption>``: a head cell, then empty padding cells not marked head."""
    return bool(cells) and cells[0].get("role") == "head" and all(c.get("role") != "head" and not _text(c) for c in cells[1:])


def _is_head_row(cells: list[_Element]) -> bool:
    """A row of ``<th>``: head cells, and no text in any other (an empty corner ``<td>`` may be)."""
    return any(c.get("role") == "head" for c in cells) and all(c.get("role") == "head" or not _text(c) for c in cells)


def table_paragraph_lines(table: _Element) -> list[str] | None:
    """The lines a trafilatura ``<table>`` is to be written as: its captions, then ``table_lines``;
    None when the table has no header (or nests a table) and trafilatura's own text stays."""
    if any(True for _ in table.iterdescendants("table")):
        return None
    rows = [[c for c in row if c.tag == "cell"] for row in table if row.tag == "row"]
    captions = []
    while rows and len(rows[0]) > 1 and _is_caption(rows[0]):
        captions.append(_text(rows.pop(0)[0]))
    marked = 0
    while marked < len(rows) and _is_head_row(rows[marked]):
        marked += 1
    cells: list[Row] = [[TableCell(_text(c)) for c in row] for row in rows]
    n = header_rows(cells, marked)
    if n == 0 or n == len(cells) or width(cells) < 2:
        return None
    return [c for c in captions if c] + table_lines(cells, marked)


def rewrite_tables(body: _Element) -> bool:
    """Replace, in trafilatura's ``body``, each table with a header by a ``<p>`` per line
    (``table_paragraph_lines``); whether any was."""
    from lxml.etree import Element

    changed = False
    for table in list(body.iter("table")):
        parent = table.getparent()
        if parent is None or any(a.tag == "table" for a in table.iterancestors()):  # a nested table is its cell's text
            continue
        lines = table_paragraph_lines(table)
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
