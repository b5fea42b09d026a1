"""A PDF's text as pypdf extracts it, made readable for chunking and the reader: pure functions.

pypdf gives one line per printed line, and the sentence splitter ends a sentence at every line break,
so the lines of one sentence are joined; pages are a blank line apart."""

from __future__ import annotations

import re
from collections.abc import Collection

from index.text import URL_LINE

_LINE_END = ".!?…"
# words no sentence, and hardly a heading, ends with: after them a line goes on ("un budget de" / "148 millions")
_GOES_ON = frozenset(
    "le la les un une des du de au aux à et ou ni mais que qui dont pour par sur sous dans avec sans chez "
    "depuis pendant selon parmi ce cet cette ces sa ses leurs mon ma mes ton ta tes notre nos votre vos "
    "the of and in for with".split()  # not "son", "car", "vers", "entre", "contre", "to": nouns or verbs too
)
_LAST_WORD = re.compile(r"(?<!\w)[^\W\d_]+\Z")
_LETTERS_AT_END = re.compile(r"[^\W\d_]*\Z")
_LETTERS_AT_START = re.compile(r"[^\W\d_]*")
_WORD = re.compile(r"[^\W\d_]+")
_COMPOUND = re.compile(r"[^\W\d_]+-[^\W\d_]+")


def _joined(prev: str, line: str, words: Collection[str], compounds: Collection[str]) -> str | None:
    """``prev`` and the ``line`` printed below it as one line, when the sentence goes on; else None."""
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
    return None


def join_lines(raw: str, words: Collection[str] = (), compounds: Collection[str] = ()) -> str:
    """A PDF page's text as pypdf extracts it, one line per printed line, made readable: lines
    stripped, runs of blank lines made one, and a line that the sentence goes on from joined to
    the next one (the sentence splitter ends a sentence at every line break). A sentence goes on
    when the next line starts with a lower-case letter after a line that ends without a full stop,
    after a comma or a word no sentence ends with ("de", "la", "et": ``_GOES_ON``), neither line a
    URL, and after a hyphen that ends a line; that hyphen is kept ("porte-monnaie",
    "Saint-Étienne") unless the lower-case ``words`` of the document hold the word whole and its
    ``compounds`` not with the hyphen ("investisse-ments" -> "investissements"). A soft hyphen
    (U+00AD) at a line end always goes."""
    out: list[str] = []
    for line in raw.splitlines():
        line = line.strip()
        if not line:
            if out and out[-1]:
                out.append("")  # one blank line: a paragraph break
            continue
        joined = _joined(out[-1], line, words, compounds) if out and out[-1] else None
        if joined is None:
            out.append(line)
        else:
            out[-1] = joined
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def pdf_text(pages: list[str]) -> str:
    """The document text of a PDF's pages (as pypdf extracts them): each page's lines joined where
    a sentence goes on (``join_lines``), pages separated by a blank line."""
    whole = "\n".join(pages)
    words = {w.lower() for w in _WORD.findall(whole)}
    compounds = {c.lower() for c in _COMPOUND.findall(whole)}  # never across a line break: [^\W] stops there
    return "\n\n".join(text for text in (join_lines(page, words, compounds) for page in pages) if text)
