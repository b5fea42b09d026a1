"""A PDF's text as pypdf extracts it, made readable for chunking and the reader: pure functions.

pypdf gives one line per printed line, and the sentence splitter ends a sentence at every line break,
so the lines of one sentence are joined; pages are a blank line apart. Lines printed at the top or
bottom of most pages (a running header or footer, a page number) are not the document's text: they
are left out, else they would cut the sentence that goes on across a page break."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection

from index.text import URL_LINE

_LINE_END = ".!?…"
# words no sentence, and hardly a heading, ends with: after them a line goes on ("un budget de" / "148 millions")
_GOES_ON = frozenset(
    "le la les un une des du de au aux à en et ou ni mais que qui dont pour par sur sous dans avec sans chez "
    "depuis pendant selon parmi ce cet cette ces sa ses leurs mon ma mes ton ta tes notre nos votre vos "
    "the of and in for with".split()  # not "son", "car", "vers", "entre", "contre", "to": nouns or verbs too
)
_LAST_WORD = re.compile(r"(?<!\w)[^\W\d_]+\Z")
_LETTERS_AT_END = re.compile(r"[^\W\d_]*\Z")
_LETTERS_AT_START = re.compile(r"[^\W\d_]*")
_WORD = re.compile(r"[^\W\d_]+")
_COMPOUND = re.compile(r"[^\W\d_]+-[^\W\d_]+")
_DIGITS = re.compile(r"\d+")
# a running header or footer is among the first or last lines pypdf gives of a page: a browser's
# print puts its date-and-title header and its URL-and-page footer last, a word processor at each edge
_EDGE_LINES = 3
# a line at least this share of the text's width (``text_width``) fills it: its sentence goes on below
# unless it ends one, whatever the next line starts with ("atteint désormais" / "23 874 personnes")
_FULL = 0.8
_MIN_LINES_FOR_WIDTH = 20  # fewer lines tell no width: a title may be the longest
_LIST_ITEM = re.compile(r"(\d+[.)]|[•▪◦·*–—-])\s")
# typographic ligatures (U+FB00-FB06: "ﬁ", "ﬀ", "ﬂ"...) that a PDF's fonts map text to: letters in
# the text that answers quote ("ﬁnancés" -> "financés"); "œ" and "æ" are French letters and stay
_TYPE_LIGATURES = str.maketrans({chr(c): unicodedata.normalize("NFKC", chr(c)) for c in range(0xFB00, 0xFB07)})


def _joined(prev: str, line: str, words: Collection[str], compounds: Collection[str], full: bool = False) -> str | None:
    """``prev`` and the ``line`` printed below it as one line, when the sentence goes on; else None.
    ``full``: the line printed last in ``prev`` fills the text's width."""
    first = line[0]
    if prev.endswith("\xad") and first.isalpha():  # a soft hyphen only ever splits a word
        return prev[:-1] + line
    if len(prev) > 1 and prev[-1] == "-" and not prev[-2].isspace() and first.isalnum():  # not " -", a dash
        left, right = _LETTERS_AT_END.search(prev, 0, len(prev) - 1).group(), _LETTERS_AT_START.match(line).group()
        whole = (left + right).lower()
        if left and right and first.islower() and whole in words and f"{left}-{right}".lower() not in compounds:
            return prev[:-1] + line  # "investisse-" + "ments": the document writes "investissements" elsewhere
        return prev + line  # "porte-" + "monnaie", "133992-" + "netflix" (a URL), or a word split that cannot be told
    if URL_LINE.match(prev) or URL_LINE.match(line):  # a URL on a line of its own is the document's (read_header)
        return None
    last = _LAST_WORD.search(prev)
    if (first.islower() and prev[-1] not in _LINE_END) or prev[-1] == "," or (last is not None and last.group().lower() in _GOES_ON):
        return f"{prev} {line}"
    if full and prev[-1].isalpha() and "/" not in prev.rsplit(None, 1)[-1] and (first.isupper() or first.isdigit()) and not _LIST_ITEM.match(line):
        return f"{prev} {line}"  # "Mme Claire" / "Fontaine": a heading is shorter, a list item marked, a reference ends with its URL
    return None


def text_width(pages: list[str]) -> int:
    """The width of a document's text in characters: the length 90% of its lines reach at most
    (headings and paragraph ends are shorter); 0 (unknown) under ``_MIN_LINES_FOR_WIDTH`` lines."""
    lengths = sorted(len(line.strip()) for page in pages for line in page.splitlines() if line.strip())
    if len(lengths) < _MIN_LINES_FOR_WIDTH:
        return 0
    return lengths[int(0.9 * (len(lengths) - 1))]


def _fills(line: str, width: int) -> bool:
    return width > 0 and len(line) >= _FULL * width


def join_lines(raw: str, words: Collection[str] = (), compounds: Collection[str] = (), width: int = 0) -> str:
    """A PDF page's text as pypdf extracts it, one line per printed line, made readable: lines
    stripped, runs of blank lines made one, and a line that the sentence goes on from joined to
    the next one (the sentence splitter ends a sentence at every line break). A sentence goes on
    when the next line starts with a lower-case letter after a line that ends without a full stop,
    after a comma or a word no sentence ends with ("de", "la", "et": ``_GOES_ON``), neither line a
    URL, and after a hyphen that ends a line; that hyphen is kept ("porte-monnaie",
    "Saint-Étienne") unless the lower-case ``words`` of the document hold the word whole and its
    ``compounds`` not with the hyphen ("investisse-ments" -> "investissements"). A soft hyphen
    (U+00AD) at a line end always goes. Given the text's ``width`` (``text_width``), a line that
    fills it and ends with a letter (not a URL's) goes on into a next line starting with a capital
    or a digit too, unless that line is a list item ("1. ", "• ")."""
    out: list[str] = []
    last = ""  # the line printed last: whether it fills the width
    for line in raw.splitlines():
        line = line.strip()
        if not line:
            if out and out[-1]:
                out.append("")  # one blank line: a paragraph break
            continue
        joined = _joined(out[-1], line, words, compounds, _fills(last, width)) if out and out[-1] else None
        last = line
        if joined is None:
            out.append(line)
        else:
            out[-1] = joined
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def _running_key(line: str) -> str:
    """What a running header or footer keeps from page to page: its text, numbers aside ("Page 2 sur 9")."""
    return _DIGITS.sub("0", " ".join(line.split()))


def without_running_lines(pages: list[str]) -> list[str]:
    """``pages`` without the lines printed at their top or bottom on most of them (a running header or
    footer, a page number): among a page's first or last ``_EDGE_LINES`` lines on at least two pages and
    on two thirds of them, numbers aside. Only such lines at a page's edges go, read from the edge in
    (the same words within a page are the document's), and not from the first page's top."""
    if len(pages) < 2:
        return pages
    texts = [[line.strip() for line in page.splitlines() if line.strip()] for page in pages]
    counts: dict[str, int] = {}
    for page in texts:
        for key in {_running_key(line) for line in page[:_EDGE_LINES] + page[-_EDGE_LINES:]}:
            counts[key] = counts.get(key, 0) + 1
    running = {key for key, n in counts.items() if n >= 2 and 3 * n >= 2 * len(pages)}
    if not running:
        return pages
    out = []
    for number, page in enumerate(pages):
        lines = page.splitlines()
        filled = [i for i, line in enumerate(lines) if line.strip()]  # blank lines are paragraph breaks: kept
        top, bottom = 0, len(filled)
        # the first page's top lines start the document, cutting no sentence: its title there may be the header's words
        while number > 0 and top < min(_EDGE_LINES, bottom) and _running_key(lines[filled[top]]) in running:
            top += 1
        while bottom > max(top, len(filled) - _EDGE_LINES) and _running_key(lines[filled[bottom - 1]]) in running:
            bottom -= 1
        dropped = set(filled[:top] + filled[bottom:])
        out.append("\n".join(line for i, line in enumerate(lines) if i not in dropped))
    return out


def pdf_text(pages: list[str]) -> str:
    """The document text of a PDF's pages (as pypdf extracts them): running headers and footers left
    out (``without_running_lines``), each page's lines joined where a sentence goes on
    (``join_lines``), pages separated by a blank line unless a sentence goes on from one to the next
    (joined as lines are, when the next page starts with a lower-case letter). Typographic ligatures
    ("ﬁ") are their letters."""
    pages = without_running_lines([page.translate(_TYPE_LIGATURES) for page in pages])
    width = text_width(pages)
    whole = "\n".join(pages)
    words = {w.lower() for w in _WORD.findall(whole)}
    compounds = {c.lower() for c in _COMPOUND.findall(whole)}  # never across a line break: [^\W] stops there
    out = ""
    for page in pages:
        text = join_lines(page, words, compounds, width)
        if not text:
            continue
        last, first = out[out.rfind("\n") + 1 :], text.split("\n", 1)[0]
        # only into a lower-case line: one starting otherwise at a page's top may be a running header
        # on too few pages to be told one (a chapter's), which would land in the sentence
        joined = _joined(last, first, words, compounds) if last and first[0].islower() else None
        if joined is None:
            out = f"{out}\n\n{text}" if out else text
        else:  # the sentence goes on across the page break, as it would across a line break
            out = out[: len(out) - len(last)] + joined + text[len(first) :]
    return out
