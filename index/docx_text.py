"""The text of a Word .docx body in reading order, read from its XML with lxml: pure functions.

python-docx's ``Paragraph.text`` leaves out tracked insertions and content controls, so the body is
walked here."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from index.tables import Row, TableCell, table_lines

if TYPE_CHECKING:
    from lxml.etree import _Element

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


@lru_cache(maxsize=1)
def _docx_paths() -> dict:
    """XPath queries on a .docx body (lxml compiles them once)."""
    from lxml import etree

    ns = {"w": _W[1:-1], "mc": "http://schemas.openxmlformats.org/markup-compatibility/2006"}
    return {
        # a paragraph's text: its runs' text, tabs and breaks, tracked insertions and content controls
        # included (python-docx's Paragraph.text leaves them out), deleted or moved-away text and text
        # boxes (paragraphs of their own, anchored anywhere) not
        "parts": etree.XPath(
            "./descendant::w:r[not(ancestor::w:txbxContent or ancestor::w:del or ancestor::w:moveFrom or ancestor::mc:Fallback)]"
            "/*[self::w:t or self::w:tab or self::w:br or self::w:cr or self::w:noBreakHyphen]", namespaces=ns),
        "style": etree.XPath("string(./w:pPr/w:pStyle/@w:val)", namespaces=ns),
        "rows": etree.XPath("./w:tr | ./w:sdt/w:sdtContent/w:tr", namespaces=ns),
        "cells": etree.XPath("./w:tc | ./w:sdt/w:sdtContent/w:tc", namespaces=ns),
        "cell_paragraphs": etree.XPath(".//w:p[not(ancestor::w:txbxContent)]", namespaces=ns),
        # Word's "Repeat as header row at the top of each page" (w:val="0"/"false" turns it off)
        "is_header": etree.XPath("boolean(./w:trPr/w:tblHeader[not(@w:val='0' or @w:val='false' or @w:val='off')])", namespaces=ns),
        "grid_before": etree.XPath("string(./w:trPr/w:gridBefore/@w:val)", namespaces=ns),
        "span": etree.XPath("string(./w:tcPr/w:gridSpan/@w:val)", namespaces=ns),
        # a cell continuing a vertical merge: no w:val, or "continue" ("restart" opens one)
        "continues": etree.XPath("boolean(./w:tcPr/w:vMerge[not(@w:val='restart')])", namespaces=ns),
    }


def _int(value: str, default: int) -> int:
    """A span or skip count; a damaged file's (not a number, 0, absurd) counts as ``default``."""
    return int(value) if value.isdecimal() and 0 < int(value) <= 1000 else default


def _paragraph_text(p: _Element) -> str:
    """The text of a ``<w:p>`` element (see ``_docx_paths``)."""
    out = []
    for el in _docx_paths()["parts"](p):
        tag = el.tag
        out.append((el.text or "") if tag == _W + "t" else "\t" if tag == _W + "tab" else "-" if tag == _W + "noBreakHyphen" else "\n")
    return "".join(out)


def _table_rows(tbl: _Element) -> tuple[list[Row], int]:
    """A ``<w:tbl>``'s rows (a cell merged across columns is one cell spanning them; one continuing a
    vertical merge has the text of the merge's first cell, which Word shows across the rows) and how
    many leading rows are marked as header rows."""
    paths = _docx_paths()
    rows: list[Row] = []
    above: dict[int, str] = {}  # each grid column's text in the row above
    marked, leading = 0, True
    for tr in paths["rows"](tbl):
        leading = leading and paths["is_header"](tr)
        marked += leading
        col = _int(paths["grid_before"](tr), 0)
        row = [TableCell("", col)] if col else []
        for tc in paths["cells"](tr):
            span = _int(paths["span"](tc), 1)
            if paths["continues"](tc):
                text = above.get(col, "")
            else:
                text = " ".join(" ".join(_paragraph_text(p) for p in paths["cell_paragraphs"](tc)).split())
            row.append(TableCell(text, span))
            above[col] = text
            col += span
        rows.append(row)
    return rows, marked


def docx_blocks(body: _Element, style_names: dict[str, str]) -> list[tuple[str, str]]:
    """A Word document's ``body`` element in reading order: (text, style name) for each paragraph
    with text, (line, "table") for each table row with text (``index.tables.table_lines``: a data row
    under a header row names its columns), the paragraphs and tables of content controls too.
    Headers, footers, notes and text boxes are not in the body's flow."""
    paths = _docx_paths()
    blocks: list[tuple[str, str]] = []
    for el in body.iterchildren():
        if el.tag == _W + "p":
            text = _paragraph_text(el).strip()
            if text:
                blocks.append((text, style_names.get(paths["style"](el), "")))
        elif el.tag == _W + "tbl":
            rows, marked = _table_rows(el)
            blocks.extend((line, "table") for line in table_lines(rows, marked))
        elif el.tag == _W + "sdt":  # a content control around paragraphs or tables
            for content in el.iterchildren(_W + "sdtContent"):
                blocks.extend(docx_blocks(content, style_names))
    return blocks
