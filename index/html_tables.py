"""HTML tables as trafilatura extracts them, rewritten so that a data row names its columns.

trafilatura writes a table as Markdown ("| 2018 | 8 milliards | " under "| Année | Budget contenu | "
and "|---|---|"); its XML tree (``bare_extraction(...).body``) keeps the cells, ``role="head"`` on a
``<th>`` row's cells (of the first such row only), a row per ``<caption>``, and spanned cells as
empty ones. A table whose columns are named (``index.tables.names_columns``) is replaced there by a
paragraph per line of ``index.tables.table_lines``; the others are left to trafilatura."""

from __future__ import annotations

from typing import TYPE_CHECKING

from index.tables import Row, TableCell, names_columns, table_lines

if TYPE_CHECKING:
    from lxml.etree import _Element


def _text(el: _Element) -> str:
    return " ".join("".join(el.itertext()).split())


def _is_head_row(cells: list[_Element]) -> bool:
    """A row of ``<th>``: head cells, and no text in any other (an empty corner ``<td>`` may be)."""
    return any(c.get("role") == "head" for c in cells) and all(c.get("role") == "head" or not _text(c) for c in cells)


def table_paragraph_lines(table: _Element) -> list[str] | None:
    """The lines a trafilatura ``<table>`` is to be written as (``table_lines``: its caption, a title
    row, is its first line); None when its columns are not named (no header, or a nested table) and
    trafilatura's own text stays."""
    if any(True for _ in table.iterdescendants("table")):
        return None
    rows = [[c for c in row if c.tag == "cell"] for row in table if row.tag == "row"]
    marked = 0
    while marked < len(rows) and _is_head_row(rows[marked]):
        marked += 1
    cells: list[Row] = [[TableCell(_text(c)) for c in row] for row in rows]
    return table_lines(cells, marked) if names_columns(cells, marked) else None


def rewrite_tables(body: _Element) -> bool:
    """Replace, in trafilatura's ``body``, each table whose columns are named by a ``<p>`` per line
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
