"""Reading files and folders into Documents: .txt, .md, .html/.htm, .json, .jsonl, .pdf, .docx.

A file that cannot be read is reported (IngestError) and the others go on. Plain-text files keep
their text verbatim (only a leading byte-order mark and a Markdown front matter block are dropped):
chunk offsets and citations slice it. A PDF's or a Word file's text is what is extracted from it
(``index.pdf_text``, ``index.docx_text``): offsets slice that text. A file's documents are named after its
path inside the folder given (``file_name``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import unicodedata
import zipfile
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from index.schema import Document, clean_id, id_problem, metadata_problem
from index.docx_text import docx_blocks
from index.file_errors import json_syntax, not_utf8
from index.html_tables import rewrite_tables
from index.pdf_text import pdf_text
from index.text import URL_LINE, clean_url, has_lone_surrogate, has_words, lone_surrogate_at, one_line, printable, strip_blank, text_problem, url_problem

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
JSON_SUFFIXES = {".json"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
PDF_SUFFIXES = {".pdf"}
DOCX_SUFFIXES = {".docx"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | JSON_SUFFIXES | JSONL_SUFFIXES | PDF_SUFFIXES | DOCX_SUFFIXES
SUPPORTED_TYPES = ".txt, .md, .html, .json, .jsonl, .pdf and .docx"  # what the messages list
log = logging.getLogger(__name__)

if TYPE_CHECKING:  # imported when a file of their type is read
    from pypdf import PdfReader

MAX_TITLE_CHARS = 200
_HEADER_LINES = 12  # metadata (URL, date, byline) is looked for in the first non-empty lines


@dataclass
class IngestError:
    path: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.reason}"


class _Skip(Exception):
    def __init__(self, reason: str, line: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.line = line


# --------------------------------------------------------------------------------------------
# dates
# --------------------------------------------------------------------------------------------

_MONTHS = {
    "janvier": 1, "janv": 1, "fevrier": 2, "février": 2, "fevr": 2, "févr": 2, "mars": 3, "avril": 4, "avr": 4,
    "mai": 5, "juin": 6, "juillet": 7, "juil": 7, "aout": 8, "août": 8, "septembre": 9, "sept": 9,
    "octobre": 10, "oct": 10, "novembre": 11, "nov": 11, "decembre": 12, "décembre": 12, "dec": 12, "déc": 12,
}
# a datetime keeps its date; anything else after the date ("2017 et 2018") is not a date
# ASCII digits only: "２０１７" would be stored as it is, not an ISO date for the clients that parse it
_ISO_PARTIAL = re.compile(
    r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?[ ]?(?:Z|UTC|GMT|[+-](\d{2})(?::?(\d{2}))?)?)?)?)?$",
    re.IGNORECASE | re.ASCII,  # "2015-03-12 15:25:00 -0500" (Jekyll), "…T10:00:00 UTC", "…t10:00z"
)
_TIME_LIMITS = (24, 60, 61, 24, 60)  # hour, minute, second (a leap second), offset hours, offset minutes
# A date tag: "date: 2017-10-27" anywhere in a header line, or "date 2017-10" at its start; not "La date
# 2030 a été retenue" in a sentence. "\s*(?:[:=]\s*)?", not "\s*[:=]?\s*": two adjacent \s* make
# "date" + a long run of spaces quadratic.
_DATE_TAG = re.compile(r"(?:^[\W_]*date\s*(?:[:=]\s*)?|(?<![\w-])date\s*[:=]\s*)([0-9]{4}(?:-[0-9]{1,2}(?:-[0-9]{1,2})?)?)(?![\d-])", re.IGNORECASE)
_FR_DATE = re.compile(r"(?<!\d)([0-9]{1,2})(?:er)?\s+(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?\s+([0-9]{4})(?!\d)", re.IGNORECASE)


def normalize_date(value) -> str | None:
    """ISO date, possibly partial ("2017", "2017-10", "2017-10-27"); datetimes keep their date part.
    Raises ValueError for anything else."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, date):
        return value.isoformat()[:10]
    if not isinstance(value, str):
        raise ValueError(f"published must be a string, not {type(value).__name__}")
    m = _ISO_PARTIAL.match(value.strip())
    if not m:
        raise ValueError(f"invalid published date {value!r} (expected YYYY, YYYY-MM or YYYY-MM-DD)")
    y, mo, d = m.group(1), m.group(2), m.group(3)
    if any(part is not None and int(part) >= limit for part, limit in zip(m.groups()[3:], _TIME_LIMITS)):
        raise ValueError(f"invalid time in {value!r}")
    if mo is None:
        return y
    if not 1 <= int(mo) <= 12:
        raise ValueError(f"invalid month in {value!r}")
    if d is None:
        return f"{y}-{int(mo):02d}"
    date(int(y), int(mo), int(d))  # raises ValueError on 2017-02-30
    return f"{y}-{int(mo):02d}-{int(d):02d}"


def _is_byline(line: str) -> bool:
    """Whether a line that holds a French date dates the article ("• [Julien Cadot](#) - 08 décembre
    2015", "Mis à jour le 3 mai 2021 à 14h32.", "Le 3 mai 2021.") rather than being one of its
    sentences ("Les travaux commenceront le 1er septembre 2027.")."""
    if _BYLINE.match(line):
        return True
    # once the date is taken out, nothing but names, "le", "à", a weekday or a time: no verb, no sentence
    return all(w[0].isupper() or w[0].isdigit() or w.lower() in _BYLINE_WORDS for w in re.findall(r"\w+", _FR_DATE.sub(" ", line)))


def _french_date(line: str) -> str | None:
    m = _FR_DATE.search(line)
    if not m:
        return None
    try:
        return date(int(m.group(3)), _MONTHS[m.group(2).lower()], int(m.group(1))).isoformat()
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------
# plain text
# --------------------------------------------------------------------------------------------

_BARE_URL = re.compile(r"^\s*(?:[-*•+]\s*)?<?https?://\S+\s*$")
_MD_TITLE = re.compile(r"^\s*#+\s*")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL | re.MULTILINE)
# "Publié le…", "Mis à jour le…", "Par J. Martin" (a capital after "Par": not "Par ailleurs")
_BYLINE = re.compile(r"^[\W_]*(?:(?i:publié|publiée|mis à jour|mise à jour|modifié|modifiée)\b|[Pp]ar\s+[A-ZÀ-Ý])")
_BYLINE_WORDS = {"le", "à", "a", "h", "et", "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"}


def front_matter(text: str) -> tuple[int, dict]:
    """A Markdown front matter block (YAML between ``---`` lines, as Hugo and Jekyll write it) at the
    start of ``text``: (where the article starts, its keys, lowercased); (0, {}) when there is none,
    e.g. a ``---`` rule above a paragraph (not a YAML mapping)."""
    import yaml

    m = _FRONT_MATTER.match(text)
    if m is None or m.end(1) - m.start(1) > 20_000:
        return 0, {}
    try:  # BaseLoader: every value a string ("title: 1984" stays "1984"); nothing is built from tags
        keys = yaml.load(m.group(1), Loader=yaml.BaseLoader)
    except (yaml.YAMLError, ValueError, RecursionError):  # not YAML, or hostile (thousands of nested "[")
        return 0, {}
    if not isinstance(keys, dict) or not keys:
        return 0, {}
    # BaseLoader leaves YAML's nulls as text: an empty or null value is no value
    return m.end(), {str(k).lower(): v for k, v in keys.items() if not (isinstance(v, str) and v.strip() in ("", "~", "null", "Null", "NULL"))}


def text_metadata(text: str) -> tuple[str | None, str | None, str | None]:
    """(title, url, published) carried by a plain-text or markdown article."""
    return read_header(text)[:3]


def read_header(text: str) -> tuple[str | None, str | None, str | None, list[tuple[int, str, str]]]:
    """``text_metadata``, with what it changed or left out of what the article's lines hold, for
    warnings: (line, "title" or "url", note), lines counted from 1 in ``text`` (as ``str.splitlines``
    cuts them)."""
    title = url = published = None
    notes: list[tuple[int, str, str]] = []
    lines = [(n, ln) for n, ln in enumerate(text.splitlines(), start=1) if ln.strip()]
    for idx, (lineno, line) in enumerate(lines):
        if url is None:
            m = URL_LINE.match(line)
            if m:
                found = m.group(1).rstrip(".,;")
                problem = url_problem(found, strict=False)  # an ESC in it, say: no URL rather than a broken one
                if problem is None:
                    url = found
                else:
                    notes.append((lineno, "url", f"URL ignored: it {problem}"))
                continue
        if idx < _HEADER_LINES and published is None:
            m = _DATE_TAG.search(line)
            if m:
                try:
                    published = normalize_date(m.group(1))
                except ValueError:
                    pass
            elif len(line) < 120 and _is_byline(line):
                published = _french_date(line)
        if title is None and not _BARE_URL.match(line):
            candidate = _DATE_TAG.sub("", line, count=1) if _DATE_TAG.match(line.strip()) else line
            candidate = strip_blank(_MD_TITLE.sub("", strip_blank(candidate)))  # a second BOM is not part of a title
            if candidate:
                title, note = one_line_title(short_title(candidate))
                if note is not None:
                    notes.append((lineno, "title", f"title {note}"))
        if idx >= _HEADER_LINES and title is not None:
            break
    return title, url, published, notes


def short_title(title: str) -> str:
    """``title`` cut to MAX_TITLE_CHARS at a space, with "…": a whole first paragraph is no title."""
    if len(title) <= MAX_TITLE_CHARS:
        return title
    cut = title.rfind(" ", 0, MAX_TITLE_CHARS)
    return title[: cut if cut > 40 else MAX_TITLE_CHARS].rstrip(" ,;:") + "…"


def one_line_title(raw: str) -> tuple[str, str | None]:
    """``raw`` made a one-line title (``index.text.one_line``: its control characters become spaces),
    and what that changed, for a warning (None when it is kept as it is). A file is often scraped
    text, where a stray tab or escape is common: its document is indexed all the same, and the
    change said, rather than refused as POST /documents refuses it (its client can fix the request)."""
    title = one_line(raw)
    at = [i for i, ch in enumerate(raw) if unicodedata.category(ch) == "Cc"]
    if not at:
        return title, None
    first = f"U+{ord(raw[at[0]]):04X} at position {at[0]}"
    held = f"{len(at)} control characters (the first {first})" if len(at) > 1 else f"a control character ({first})"
    return title, f"indexed as {title!r}: it held {held}, replaced by spaces"


def _read_text(path: Path, html: bool = False) -> str:
    data = path.read_bytes()
    if not data.strip():
        raise _Skip("empty file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not html:
            line = data[: exc.start].count(b"\n") + 1
            raise _Skip(not_utf8(data, exc.start), line) from None
        text = _decode_html(data)
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\x00" in text:
        raise _Skip("binary file (NUL bytes)")
    problem = text_problem(text)
    if problem is not None:
        raise _Skip("empty file" if problem == "empty" else "no letter or digit in the file")
    return text


def _load_text(path: Path, name: str) -> list[Document]:
    text = _read_text(path)
    start, keys = front_matter(text) if path.suffix.lower() != ".txt" else (0, {})
    block = text[:start]
    if start:  # metadata, not the article: the document's text starts after it
        text = text[start:]
        if text_problem(text) is not None:
            raise _Skip("nothing after the front matter")
    title, url, published, notes = read_header(text)
    below = len(block.splitlines())  # the article's first line is the file's line below + 1
    if isinstance(keys.get("title"), str) and one_line(strip_blank(keys["title"])):
        title, note = one_line_title(strip_blank(keys["title"]))
        notes = [n for n in notes if n[1] != "title"]  # the article's first line is not the title then
        if note is not None:
            log.warning("%s: front matter 'title' %s", _at(path, _key_line(block, "title")), note)
    for lineno, _, note in notes:
        log.warning("%s: %s", _at(path, below + lineno), note)
    front_key = "url" if keys.get("url") else "link"
    front_url = keys.get(front_key)
    if isinstance(front_url, str):
        problem = url_problem(front_url.strip(), strict=False)
        if problem is None:
            url = front_url.strip()
        else:
            log.warning("%s: front matter '%s' ignored: it %s", _at(path, _key_line(block, front_key)), front_key, problem)
    for key in ("date", "published", "publishdate"):
        try:
            found = normalize_date(keys[key]) if isinstance(keys.get(key), str) else None
        except ValueError:
            found = None
        if found:
            published = found
            break
    return [Document(id=_file_id(name), text=text, title=title, url=url, published=published, metadata={"source_file": str(path.absolute())})]


def _at(path: Path, line: int | None) -> str:
    """Where a warning points: ``path:line``, or the path alone."""
    return f"{path}:{line}" if line is not None else str(path)


def _key_line(block: str, key: str) -> int | None:
    """The line of a front matter ``block`` (counted from its opening ``---``, the file's first line)
    where ``key`` is set, if it is on a line of its own."""
    pattern = re.compile(rf"\s*{re.escape(key)}\s*:", re.IGNORECASE)
    return next((n for n, line in enumerate(block.splitlines(), start=1) if pattern.match(line)), None)


def file_name(path: Path, folder: Path | None = None) -> str:
    """What a file's documents are named after: its path inside the ``folder`` it was found in (the
    file name alone when it was named itself), without the extension, with "/" between folders, in
    NFC (macOS writes names decomposed, users type them composed). A site's "eco/index.html" and
    "sport/index.html" are two documents, "eco/index" and "sport/index"."""
    rel = path.relative_to(folder) if folder is not None else Path(path.name)
    return unicodedata.normalize("NFC", rel.with_suffix("").as_posix())


def _file_id(name: str) -> str:
    """A file's document id, refused when no request could name it (control characters, blank)."""
    doc_id = clean_id(name)
    problem = id_problem(doc_id)
    if problem is not None:
        raise _Skip(f"the file name gives the document id {doc_id!r}, which {problem}: rename the file (or index it as JSON with an 'id')")
    return doc_id


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------


_HTML_COMMENT = re.compile(rb"<!--.*?(?:-->|\Z)", re.DOTALL)
_DECLARED_CHARSET = re.compile(rb"""<\?xml[^>]*?encoding\s*=\s*["']([\w.:-]+)|<meta[^>]*?charset\s*=\s*["']?([\w.:-]+)""", re.IGNORECASE)


_WESTERN = {"", "windows-1252", "cp1252", "x-cp1252", "iso-8859-1", "iso8859-1", "latin-1", "latin1", "l1", "us-ascii", "ascii"}


def _decode_html(data: bytes) -> str:
    """An HTML page that is not UTF-8, decoded with the charset it declares in its first bytes (an
    XML declaration or ``<meta charset>``, as browsers pre-scan them), else as windows-1252, which
    browsers read "ISO-8859-1" and undeclared pages as."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # a byte-order mark comes first, as in browsers (Notepad's "Unicode")
        return data.decode("utf-16")
    head = _HTML_COMMENT.sub(b" ", data[:4096])  # a <meta> commented out is not the page's
    m = _DECLARED_CHARSET.search(head)
    declared = (m.group(1) or m.group(2)).decode("ascii").lower() if m else ""
    # windows-1252 and its aliases read as browsers do (then latin-1 for its 5 unassigned bytes); a page
    # that declares UTF-16 in ASCII is not UTF-16 (browsers ignore such a declaration)
    western = declared in _WESTERN or declared.startswith(("utf-", "utf8", "utf16", "utf32"))
    candidates = ["cp1252", "latin-1"] if western else [declared]
    for encoding in candidates:
        try:
            return data.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            continue
    raise _Skip(f"neither UTF-8 nor the charset it declares ({declared})")


def _load_html(path: Path, name: str) -> list[Document]:
    import trafilatura
    from trafilatura.utils import load_html

    html = _read_text(path, html=True)
    # the date only from the page's markup (meta tags, <time>, URL): the extensive search guesses one
    # from any year in the text ("en 2015" -> 2015-01-01), which date filters would then trust
    doc = trafilatura.bare_extraction(
        html, with_metadata=True, include_comments=False, include_tables=True, favor_recall=True,
        date_extraction_params={"extensive_search": False, "original_date": True},
    )
    text = (getattr(doc, "text", None) or "") if doc is not None else ""
    if not text.strip():
        raise _Skip("no main text found in the HTML")
    body = getattr(doc, "body", None)
    # the page's own tables, parsed again (trafilatura's tree is the one it consumed): their header rows and spans
    page = load_html(html) if body is not None and body.find(".//table") is not None else None
    if body is not None and rewrite_tables(body, page):
        # the text trafilatura gives, from its tree with the tables that have a header rewritten
        from trafilatura.xml import xmltotxt

        text = xmltotxt(body, False)
    published = None
    raw_date = getattr(doc, "date", None)
    if raw_date:
        try:
            published = normalize_date(raw_date)
        except ValueError:
            published = None
    meta = {"source_file": str(path.absolute())}
    for key in ("author", "sitename", "description"):
        val = getattr(doc, key, None)
        if val:
            meta[key] = val
    url = getattr(doc, "url", None) or None
    problem = url_problem(url, strict=False) if url is not None else None
    if problem is not None:
        log.warning("%s: the page's URL ignored: it %s", path, problem)
        url = None
    title, note = one_line_title(getattr(doc, "title", None) or "")
    if note is not None:
        log.warning("%s: the page's title %s", path, note)
    return [Document(id=_file_id(name), text=text, title=title or None, url=url, published=published, metadata=meta)]


# --------------------------------------------------------------------------------------------
# PDF and Word
# --------------------------------------------------------------------------------------------

# what producers write in place of a title: "Microsoft Word - rapport.docx", "untitled", a file name or path
_JUNK_TITLE = re.compile(
    r"(?:microsoft (?:office )?(?:word|powerpoint|excel)\s*-.*|untitled\W*\d*|sans titre\W*\d*|document\s*\d*|titre|title|"
    r"no title|pr[ée]sentation powerpoint|powerpoint presentation|.*\.(?:docx?|odt|rtf|pdf|pptx?|xlsx?|txt|html?|tex|dvi|indd|qxd)|"
    r"\w+:/\S*|\S*[/\\]\S*)",
    re.IGNORECASE,
)
_URL_IN_TITLE = re.compile(r"\S*://\S*")  # a title that is only a URL ("<https://…>"), as browsers print one
_PDF_DATE = re.compile(r"\s*(?:D:)?(\d{4})(\d{2})?(\d{2})?")
# python-docx's own template: a file it wrote without its own date and author says these
_PYTHON_DOCX_CREATED, _PYTHON_DOCX_AUTHOR = datetime(2013, 12, 23, 23, 15), "python-docx"


def is_junk_title(title: str) -> bool:
    """Whether a PDF's /Title or a .docx's title property is a producer's placeholder or a file name
    rather than the document's title: the first line of its text is taken instead."""
    title = strip_blank(title)
    return not has_words(_URL_IN_TITLE.sub(" ", title)) or _JUNK_TITLE.fullmatch(title) is not None


def pdf_date(raw: object) -> str | None:
    """A PDF date ("D:20240315103000+01'00'", "D:2024") as an ISO date ("2024-03-15", "2024"), in
    the time zone it is written in; None when it does not parse."""
    m = _PDF_DATE.match(raw) if isinstance(raw, str) else None
    if m is None or int(m.group(1)) < 1900:
        return None
    try:
        return normalize_date("-".join(part for part in m.groups() if part))
    except ValueError:
        return None


def _why(exc: BaseException) -> str:
    """A library's exception as a short clause of an IngestError line."""
    said = one_line(str(exc)).strip()
    said = said if len(said) <= 160 else said[:159] + "…"
    return f"{type(exc).__name__}: {said}" if said else type(exc).__name__


def _page_list(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:10]))
    return shown + (f" and {len(numbers) - 10} more" if len(numbers) > 10 else "")


def _extracted_document(path: Path, name: str, text: str, own_title: object, own_date: str | None, meta: dict, what: str) -> Document:
    """The Document of a PDF or Word file's extracted ``text``: its own title when it is one (else the
    first line, as for a .txt), the date its first lines give (a byline, as for a .txt), else its own
    (``own_date``: when the file was made), a URL only from a URL line at the top."""
    title, url, published, notes = read_header(text)
    if isinstance(own_title, str) and not is_junk_title(own_title):
        title, note = one_line_title(short_title(strip_blank(own_title)))
        notes = [n for n in notes if n[1] != "title"]
        if note is not None:
            log.warning("%s: the %s title %s", path, what, note)
    for lineno, _, note in notes:
        log.warning("%s: line %d of its text: %s", path, lineno, note)
    return Document(id=_file_id(name), text=text, title=title, url=url, published=published or own_date, metadata=meta)


def _pdf_info(reader: PdfReader, path: Path) -> tuple[object, str | None, object]:
    """A PDF's /Title, /CreationDate (``pdf_date``) and /Author; none when its /Info cannot be read
    (the text is indexed all the same)."""
    try:
        info = reader.metadata
        if info is None:
            return None, None, None
        return info.title, pdf_date(info.creation_date_raw), info.author
    except Exception as exc:  # a damaged /Info dictionary
        log.warning("%s: its title, date and author not read (damaged?): %s", path, _why(exc))
        return None, None, None


def _load_pdf(path: Path, name: str) -> list[Document]:
    from pypdf import PasswordType, PdfReader

    with path.open("rb") as fh:  # a file object: pypdf reads what it needs (given a path, it copies the whole file into memory)
        head = fh.read(1024)
        if not head.strip():
            raise _Skip("empty file")
        if b"%PDF-" not in head:
            raise _Skip("not a PDF file (no %PDF- header): an HTML page or another format named .pdf?")
        fh.seek(0)
        pages: list[str] = []
        blank: list[int] = []
        try:
            reader = PdfReader(fh)
            if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
                # a file locked only against editing opens with the empty password: it is read
                raise _Skip("encrypted: decrypt it first (it opens only with a password)")
            count = len(reader.pages)
            for number, page in enumerate(reader.pages, start=1):
                try:
                    raw = printable(page.extract_text())
                except Exception as exc:  # one damaged page; the others are read
                    log.warning("%s: page %d not read (damaged?): %s", path, number, _why(exc))
                    blank.append(number)
                    continue
                if text_problem(raw) is None:
                    pages.append(raw)
                else:
                    blank.append(number)
            own_title, own_date, author = _pdf_info(reader, path)
        except _Skip:
            raise
        except OSError:
            raise
        except Exception as exc:  # pypdf meets a damaged file with any exception: one line, not a traceback
            raise _Skip(f"not a readable PDF (damaged?): {_why(exc)}") from None
    if count == 0:
        raise _Skip("a PDF with no pages")
    if not pages:
        raise _Skip("no text layer (a scan?): run OCR first")
    if blank:
        log.warning("%s: %d of its %d pages hold no text (images, scans?) and are not indexed: page %s", path, len(blank), count, _page_list(blank))
    meta: dict = {"source_file": str(path.absolute()), "pages": count}
    if isinstance(author, str) and has_words(author):
        meta["author"] = one_line(strip_blank(author))
    return [_extracted_document(path, name, pdf_text(pages), own_title, own_date, meta, "PDF's")]


def _load_docx(path: Path, name: str) -> list[Document]:
    import docx

    with path.open("rb") as fh:
        head = fh.read(8)
    if not head:
        raise _Skip("empty file")
    if head.startswith(b"\xd0\xcf\x11\xe0"):  # an OLE file: Word 97-2003, or a .docx Word encrypted with a password
        raise _Skip("not a .docx file but an old Word .doc or a password-protected document: save it as .docx, without a password")
    if not zipfile.is_zipfile(path):
        raise _Skip("not a .docx file (not a zip archive): damaged, or another format named .docx?")
    try:
        document = docx.Document(str(path))
        # style ids are the writer's language's ("Titre1"), names Word's own ("Heading 1")
        blocks = docx_blocks(document.element.body, {style.style_id: style.name or "" for style in document.styles})
        props = document.core_properties
        own_title, created, author = props.title, props.created, props.author
    except OSError:
        raise
    except Exception as exc:  # a zip that is not a Word document, or a damaged one: one line
        raise _Skip(f"not a readable Word .docx file: {_why(exc)}") from None
    text = printable("\n\n".join(t for t, _ in blocks))
    if text_problem(text) is not None:
        raise _Skip("no text in the document (only images?)")
    if not (isinstance(own_title, str) and not is_junk_title(own_title)):
        # else a heading at the top: "Title" or "Heading 1" (Word stores these names whatever its language)
        own_title = next((t for t, style in blocks[:_HEADER_LINES] if style.lower().startswith(("title", "heading"))), None)
    own_date = None
    if isinstance(created, datetime) and created.replace(tzinfo=None) != _PYTHON_DOCX_CREATED:
        own_date = created.date().isoformat()
    meta: dict = {"source_file": str(path.absolute())}
    if isinstance(author, str) and has_words(author) and author != _PYTHON_DOCX_AUTHOR:
        meta["author"] = one_line(strip_blank(author))
    return [_extracted_document(path, name, text, own_title, own_date, meta, "document's")]


# --------------------------------------------------------------------------------------------
# JSON records
# --------------------------------------------------------------------------------------------


def _dotted(loc: tuple) -> str:
    """("metadata", "tags", 1) -> "metadata.tags[1]"."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


RECORD_FIELDS = ("id", "title", "text", "url", "published", "metadata")


def record_to_document(rec, default_id: str) -> Document:
    if not isinstance(rec, dict):
        raise ValueError(f"a record must be a JSON object, not {type(rec).__name__}")
    text = rec.get("text")
    problem = text_problem(text) if isinstance(text, str) else "empty"
    if problem is not None:
        raise ValueError("missing or empty 'text'" if problem == "empty" else "'text' has no letter or digit")
    doc_id = rec.get("id", default_id)
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if not isinstance(doc_id, str) or not doc_id.strip():
        raise ValueError("'id' must be a non-empty string")
    doc_id = clean_id(doc_id)  # as POST /documents and file names: one id however its accents were typed
    problem = id_problem(doc_id)
    if problem is not None:
        raise ValueError(f"'id' {problem}")
    title, url = rec.get("title"), rec.get("url")
    for name, val in (("title", title), ("url", url)):
        if val is not None and not isinstance(val, str):
            raise ValueError(f"'{name}' must be a string")
    url = clean_url(url)  # as POST /documents: blank is none
    if url is not None:
        problem = url_problem(url, strict=False)  # files keep the URLs they were given, if Python can read them
        if problem is not None:
            raise ValueError(f"'url' {problem}")
    metadata = rec.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ValueError("'metadata' must be an object")
    others = {k: v for k, v in rec.items() if k not in RECORD_FIELDS and k not in metadata}
    if others:  # an export's "author", "tags"...: kept, not lost (_note_other_fields says which)
        problem = metadata_problem(others)
        if problem is not None:
            raise ValueError(f"fields {', '.join(map(repr, others))} (kept in metadata) {problem}")
        metadata = {**metadata, **others}
    problem = metadata_problem(metadata)
    if problem is not None:
        raise ValueError(f"'metadata' {problem}")
    found = lone_surrogate_at({"id": doc_id, "title": title, "url": url, "text": text, "metadata": metadata})
    if found is not None:  # "\ud800" in JSON: no such character, it cannot be stored
        loc, is_key = found
        what = "has a key that holds" if is_key else "holds"
        raise ValueError(f"'{_dotted(loc)}' {what} an unpaired UTF-16 surrogate escape (\\ud800-\\udfff): write valid Unicode text")
    try:
        published = normalize_date(rec.get("published"))
    except ValueError as exc:
        raise ValueError(f"'published': {exc}") from None
    return Document(id=doc_id, text=text, title=one_line(title or "") or None, url=url or None, published=published, metadata=metadata)


def _load_json(path: Path, name: str) -> tuple[list[Document], list[IngestError]]:
    raw = _read_text(path)
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _Skip(json_syntax(exc), exc.lineno) from None
    records = data if isinstance(data, list) else [data]
    if isinstance(data, dict) and isinstance(data.get("documents"), list):
        records = data["documents"]
    docs, errors = [], []
    first: dict[str, int] = {}
    indexed = []
    for n, rec in enumerate(records, start=1):  # counted from 1, as JSONL lines are
        if _take_record(rec, f"{name}-{n - 1}" if len(records) > 1 else name, path, n, False, first, docs, errors):
            indexed.append(rec)
    _warn_positional_ids(path, name, records, indexed, "record")
    _note_other_fields(path, indexed)
    return docs, errors


def _note_other_fields(path: Path, indexed: list) -> None:
    """Say which fields of the records are not document fields and went into their metadata: a
    "date" there is not the publication date that date filters read."""
    others = {k for rec in indexed if isinstance(rec, dict) for k in rec if k not in RECORD_FIELDS}
    if others:
        # one the record's own metadata already has keeps that value: the field is not stored
        shadowed = sorted({k for rec in indexed if isinstance(rec, dict) and isinstance(rec.get("metadata"), dict) for k in rec if k in others and k in rec["metadata"]})
        names = ", ".join(f"{k!r}" for k in sorted(others))
        hint = "; name it 'published' (YYYY, YYYY-MM or YYYY-MM-DD) for date filters to see it" if {"date", "published_at", "pubdate"} & others else ""
        lost = f" (not stored where 'metadata' already has the key: {', '.join(map(repr, shadowed))})" if shadowed else ""
        log.warning("%s: fields %s are not document fields (%s): kept in each document's metadata%s%s", path, names, ", ".join(RECORD_FIELDS), lost, hint)


def _warn_positional_ids(path: Path, name: str, records: list, indexed: list, where: str) -> None:
    """Records without an ``id`` are named after their place in the file: say so, since inserting
    a record (or a line) renames the ones after it, and indexing the file again then keeps the
    old copies of those under their old names."""
    # a lone record is named after its file: stable; "id": null or "" is an error, not a name
    # counted among the records indexed: one refused for another reason gets no name
    anonymous = sum(1 for rec in indexed if isinstance(rec, dict) and "id" not in rec)
    if anonymous and (len(records) > 1 or where == "line"):
        log.warning(
            "%s: %d of the %d records indexed have no 'id'; they are named after their %s (%s-N), so adding or removing "
            "records before them renames them: give every record its own 'id' to update documents in place",
            path, anonymous, len(indexed), "line number" if where == "line" else "position", name,
        )


def _take_record(rec, default_id: str, path: Path, n: int, is_line: bool, first: dict[str, int], docs: list[Document], errors: list[IngestError]) -> bool:
    """Record ``n`` of a file (a JSONL line when ``is_line``, else an item of a JSON array) into
    ``docs`` (True), or what is wrong with it into ``errors`` (False); ``first`` maps ids to where
    they were read."""
    line, prefix = (n, "") if is_line else (None, f"record {n}: ")
    try:
        doc = record_to_document(rec, default_id)
    except ValueError as exc:
        errors.append(IngestError(str(path), line, f"{prefix}{exc}"))
        return False
    if doc.id in first:
        where = f"on line {first[doc.id]}" if is_line else f"record {first[doc.id]}"
        errors.append(IngestError(str(path), line, f"{prefix}duplicate document id {doc.id!r} (already {where}); skipped"))
        return False
    first[doc.id] = n
    if "source_file" not in doc.metadata:  # as a file's documents: which export it came from (qa index --prune reads it)
        # a record's own "source_file" (an export of another system naming its original) is its data: kept
        doc = replace(doc, metadata={**doc.metadata, "source_file": str(path.absolute())})
    docs.append(doc)
    _, note = one_line_title(rec["title"]) if isinstance(rec.get("title"), str) else (None, None)
    if note is not None:  # what record_to_document changed: said, not done silently
        log.warning("%s: %s'title' %s", _at(path, line), prefix, note)
    return True


def _load_jsonl(path: Path, name: str) -> tuple[list[Document], list[IngestError]]:
    data = path.read_bytes()
    if not data.strip():
        raise _Skip("empty file")
    docs, errors, records, indexed = [], [], [], []
    first_line: dict[str, int] = {}
    line_start = 0  # the byte offset of the line in the file, for the message of one that is not UTF-8
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        start, line_start = line_start, line_start + len(raw) + 1
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            errors.append(IngestError(str(path), lineno, not_utf8(data, start + exc.start)))
            continue
        try:
            rec = json.loads(line.lstrip("\ufeff"))
        except json.JSONDecodeError as exc:
            errors.append(IngestError(str(path), lineno, json_syntax(exc)))
            continue
        if _take_record(rec, f"{name}-{lineno}", path, lineno, True, first_line, docs, errors):
            indexed.append(rec)
        records.append(rec)
    _warn_positional_ids(path, name, records, indexed, "line")
    _note_other_fields(path, indexed)
    return docs, errors


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------


def _expand(paths: list[Path]) -> tuple[list[tuple[Path, str]], list[IngestError]]:
    """The files to read, each with what its documents are named after (``file_name``), and errors."""
    files, errors = [], []
    other_types: Counter[str] = Counter()  # files of other types met in folders
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p)
                if any(part.startswith(".") for part in rel.parts):
                    continue
                if f.is_symlink() and (f.is_dir() or not f.exists()):  # rglob does not enter linked folders
                    reason = "a link to a folder: not followed (index its target)" if f.exists() else "a broken link"
                    errors.append(IngestError(str(f), None, reason))
                elif f.is_file() and f.suffix.lower() in SUPPORTED_SUFFIXES:
                    files.append((f, file_name(f, p)))
                elif f.is_file():
                    other_types[f.suffix.lower() or "(none)"] += 1
        elif p.is_file():
            if p.suffix.lower() in SUPPORTED_SUFFIXES:
                files.append((p, file_name(p)))
            else:
                errors.append(IngestError(str(p), None, f"unsupported file type {p.suffix or '(none)'!r} (use {SUPPORTED_TYPES.replace(' and ', ' or ')})"))
        else:
            errors.append(IngestError(str(p), None, "no such file or folder"))
    files = _once_per_file(files)
    if other_types:  # a site mirror's images and style sheets: said, not errors
        kinds = ", ".join(f"{n} {suffix}" for suffix, n in sorted(other_types.items(), key=lambda kv: (-kv[1], kv[0])))
        log.warning("not read: %d files of other types in the folders (%s); qa index reads %s", sum(other_types.values()), kinds, SUPPORTED_TYPES)
    return files, errors


def _once_per_file(files: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    """Each file read once: a link to a file that is read anyway (``latest.html`` -> ``2021-05.html``)
    would give the same text a second id, and every answer two citations. The file itself is kept,
    under its own name, rather than the link."""
    keys = [os.path.realpath(f) for f, _ in files]
    chosen: dict[str, int] = {}
    for i, (f, _) in enumerate(files):
        j = chosen.get(keys[i])
        if j is None or (files[j][0].is_symlink() and not f.is_symlink()):
            chosen[keys[i]] = i
    kept = []
    for i, (f, name) in enumerate(files):
        j = chosen[keys[i]]
        if j == i:
            kept.append((f, name))
        elif f.is_symlink():
            log.warning("not read: %s is a link to %s, which is read (as %r); if an older run indexed the link, "
                        "`qa docs delete %s` removes that copy", f, keys[i], files[j][1], name)
        else:
            log.warning("not read twice: %s (given more than once; read as %r)", f, files[j][1])
    return kept


@dataclass
class Loaded:
    """What ``read_files`` read: the documents, one IngestError per unreadable file or record, and
    the files read (those with an error among them)."""

    documents: list[Document] = field(default_factory=list)
    errors: list[IngestError] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def load_documents(paths: list[Path]) -> tuple[list[Document], list[IngestError]]:
    """Documents from files and folders (recursively), with one IngestError per unreadable file or record."""
    loaded = read_files(paths)
    return loaded.documents, loaded.errors


def read_files(paths: list[Path]) -> Loaded:
    """``load_documents``, with the files it read."""
    files, errors = _expand(paths)
    docs: list[Document] = []
    read: list[Path] = []
    seen: dict[str, str] = {}
    for f, name in files:
        if has_lone_surrogate(str(f)):  # a name in another encoding (Latin-1 "café"): it could be neither stored nor served
            errors.append(IngestError(str(f).encode("utf-8", "surrogateescape").decode("utf-8", "replace"), None, "the file's path is not UTF-8 text: rename it"))
            continue
        suffix = f.suffix.lower()
        read.append(f)
        try:
            if suffix in TEXT_SUFFIXES:
                got, errs = _load_text(f, name), []
            elif suffix in HTML_SUFFIXES:
                got, errs = _load_html(f, name), []
            elif suffix in JSON_SUFFIXES:
                got, errs = _load_json(f, name)
            elif suffix in PDF_SUFFIXES:
                got, errs = _load_pdf(f, name), []
            elif suffix in DOCX_SUFFIXES:
                got, errs = _load_docx(f, name), []
            else:
                got, errs = _load_jsonl(f, name)
        except _Skip as exc:
            errors.append(IngestError(str(f), exc.line, exc.reason))
            continue
        except OSError as exc:
            errors.append(IngestError(str(f), None, f"cannot read: {exc.strerror or exc}"))
            continue
        errors.extend(errs)
        for d in got:
            if d.id in seen:
                errors.append(IngestError(str(f), None, f"duplicate document id {d.id!r} (already read from {seen[d.id]}); skipped"))
                continue
            seen[d.id] = str(f)
            docs.append(d)
    return Loaded(docs, errors, read)
