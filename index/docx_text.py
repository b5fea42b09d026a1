"""The text of a Word .docx body in reading order, read from its XML with lxml: pure functions.

python-docx's ``Paragraph.text`` leaves out tracked insertions and content controls, so the body is
walked here."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

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
    }


def _paragraph_text(p: _Element) -> str:
    """The text of a ``<w:p>`` element (see ``_docx_paths``)."""
    out = []
    for el in _docx_paths()["parts"](p):
        tag = el.tag
        out.append((el.text or "") if tag == _W + "t" else "\t" if tag == _W + "tab" else "-" if tag == _W + "noBreakHyphen" else "\n")
    return "".join(out)


def docx_blocks(body: _Element, style_names: dict[str, str]) -> list[tuple[str, str]]:
    """A Word document's ``body`` element in reading order: (text, style name) for each paragraph
    with text, (its cells' text joined by " | ", "table") for each table row (a cell merged across
    columns is one cell), the paragraphs and tables of content controls too. Headers, footers, notes
    and text boxes are not in the body's flow."""
    paths = _docx_paths()
    blocks: list[tuple[str, str]] = []
    for el in body.iterchildren():
        if el.tag == _W + "p":
            text = _paragraph_text(el).strip()
            if text:
                blocks.append((text, style_names.get(paths["style"](el), "")))
        elif el.tag == _W + "tbl":
            for row in paths["rows"](el):
                texts = [" ".join(" ".join(_paragraph_text(p) for p in paths["cell_paragraphs"](cell)).split()) for cell in paths["cells"](row)]
                if any(texts):
                    blocks.append((" | ".join(t for t in texts if t), "table"))
        elif el.tag == _W + "sdt":  # a content control around paragraphs or tables
            for content in el.iterchildren(_W + "sdtContent"):
                blocks.extend(docx_blocks(content, style_names))
    return blocks
