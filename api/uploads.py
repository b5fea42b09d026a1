"""Files sent to ``POST /documents/files``, read as ``qa index`` reads files of their names.

Each file is saved under its own name (its last path component only) in a private temporary folder,
read with ``index.ingest.load_documents``, and the folder removed. All or nothing: any file that
cannot be read, or an id given twice, is an ``UploadRefused`` listing every problem, FastAPI-style
(``loc`` ``["body", "files", i]``), and no document is returned.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

from index.ingest import IngestError, load_documents
from index.schema import Document

log = logging.getLogger("api")

MAX_NAME_BYTES = 255  # the longest file name Linux file systems store (bytes of UTF-8)
MAX_PROBLEMS = 20  # problems listed in one answer: a JSONL export with a bad line each would be megabytes


@dataclass(frozen=True)
class Upload:
    """One ``files`` part: the file name as the client sent it (None: none) and its content."""

    sent_name: str | None
    data: BinaryIO


class UploadRefused(Exception):
    """The files cannot be indexed; ``errors`` are FastAPI-style 422 errors naming each part."""

    def __init__(self, errors: list[dict[str, Any]]):
        super().__init__(f"{len(errors)} problems")
        self.errors = errors


class UploadNotSaved(Exception):
    """The server could not save the files to read them (its temporary folder): ``cause`` says why."""

    def __init__(self, cause: OSError):
        super().__init__(str(cause))
        self.cause = cause


def upload_name(sent: str | None) -> str:
    """The name a part's file is saved and read under: the last component of what the client sent
    (a browser or a script may send "C:\\Users\\x\\rapport.pdf" or "../../rapport.pdf"), in NFC.
    Raises ValueError saying what is wrong with a name no file can have here."""
    base = (sent or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFC", base)
    if base.strip() in ("", ".", ".."):
        shown = "no file name" if not sent else f"the file name {sent!r} has no last component that names a file"
        raise ValueError(f"{shown}: send each file with its name (curl -F files=@rapport.pdf)")
    for i, ch in enumerate(base):
        if unicodedata.category(ch) == "Cc":  # NUL cannot be saved, a line break would forge log lines
            raise ValueError(f"the file name {base!r} holds a control character (U+{ord(ch):04X} at position {i}): rename the file")
    size = len(base.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        raise ValueError(f"the file name is {size} bytes long in UTF-8, at most {MAX_NAME_BYTES} are taken: rename the file")
    return base


FILES_PART = "files"
_HOW = "curl -F files=@rapport.pdf"


def part_problems(parts: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """FastAPI-style 422 errors for the parts of a multipart body (name, then a ``str`` for a text
    field, else the file) that are not files sent as ``files``: a text field named so (``curl -F
    files=rapport.pdf`` without its ``@`` sends the name, not the file) and a part of another name
    (``-F file=@note.docx``), which would otherwise not be read, unsaid, or answered only "Field
    required". ``loc``'s ``i`` counts the ``files`` parts from 0, as FastAPI's does."""
    problems: list[dict[str, Any]] = []
    i = 0
    for name, value in parts:
        text = isinstance(value, str)
        if name == FILES_PART:
            if text:
                problems.append(_problem(i, value, f"part {i} is a text field, not a file: send the file itself, "
                                                   f"an @ before its path ({_HOW})"))
            i += 1
            continue
        what = "a text field" if text else f"the file {getattr(value, 'filename', None)!r}"
        problems.append({"type": "extra_forbidden", "loc": ("body", name),
                         "msg": f"Extra inputs are not permitted: a part named {name!r} ({what}) is not read; "
                                f"send each file as a part named {FILES_PART!r} ({_HOW})",
                         "input": value if text else getattr(value, "filename", None)})
    if problems and i == 0:
        problems.insert(0, {"type": "missing", "loc": ("body", FILES_PART), "msg": "Field required", "input": None})
    return _capped(problems)


def _problem(i: int, name: str, msg: str) -> dict[str, Any]:
    return {"type": "value_error", "loc": ("body", "files", i), "msg": f"Value error, {msg}", "input": name}


def _shown(error: IngestError, saved: Path, name: str) -> str:
    """``error`` as ``qa index`` says it, the saved file's path replaced by the name the client sent."""
    return str(IngestError(name, error.line, error.reason.replace(str(saved), name)))


def _read_one(i: int, upload: Upload, name: str, folder: Path) -> tuple[list[Document], list[dict[str, Any]]]:
    """Part ``i`` saved as ``folder/i/name`` and read: its documents, or the problems found."""
    part_folder = folder / str(i)  # a folder per part: two parts may have one name
    saved = part_folder / name
    try:
        part_folder.mkdir()
        upload.data.seek(0)
        with open(saved, "xb") as out:
            shutil.copyfileobj(upload.data, out, 1 << 20)
    except OSError as exc:
        raise UploadNotSaved(exc) from exc
    docs, errors = load_documents([saved])
    if errors:
        return [], [_problem(i, name, _shown(e, saved, name)) for e in errors]
    if not docs:  # a JSON file holding an empty list
        return [], [_problem(i, name, f"{name}: no document in the file")]
    # load_documents names the file it read: the server's temporary path, which the client must not
    # see; the document was sent as this file
    where = str(saved.absolute())
    return [replace(d, metadata={**d.metadata, "source_file": name}) if d.metadata.get("source_file") == where else d for d in docs], []


def read_uploads(uploads: list[Upload], max_documents: int) -> list[Document]:
    """The documents of ``uploads``, read as ``qa index`` reads files of their names, or
    ``UploadRefused`` listing what is wrong with each part (nothing is returned then), or saying
    that they hold more than ``max_documents`` (the most one request writes).
    ``UploadNotSaved`` when the server's temporary folder cannot take them. Blocking: run it in a thread."""
    names: list[str] = []
    problems: list[dict[str, Any]] = []
    for i, upload in enumerate(uploads):  # every name checked before anything is saved
        try:
            names.append(upload_name(upload.sent_name))
        except ValueError as exc:
            problems.append(_problem(i, upload.sent_name or "", str(exc)))
    if problems:
        raise UploadRefused(_capped(problems))
    docs: list[Document] = []
    first: dict[str, tuple[int, str]] = {}  # document id -> (part, file name) that gave it
    try:
        tmp = tempfile.mkdtemp(prefix="qa-upload-")  # mode 0700: this process's only
    except OSError as exc:
        raise UploadNotSaved(exc) from exc
    try:
        for i, (upload, name) in enumerate(zip(uploads, names)):
            got, found = _read_one(i, upload, name, Path(tmp))
            problems += found
            for d in got:
                if d.id in first:
                    j, other = first[d.id]
                    problems.append(_problem(i, name, f"{name} gives the document id {d.id!r}, as {other} (part {j}) does: "
                                                      "send one of them, or rename one"))
                    continue
                first[d.id] = (i, name)
                docs.append(d)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if problems:
        raise UploadRefused(_capped(problems))
    if len(docs) > max_documents:  # POST /documents' limit: one write, embedded at once
        raise UploadRefused([{
            "type": "too_long", "loc": ("body", "files"), "input": None,
            "msg": f"the files hold {len(docs)} documents, at most {max_documents} are written per request: send them in several requests",
        }])
    log.info("POST /documents/files: %d files read, %d documents", len(uploads), len(docs))
    return docs


def _capped(problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At most MAX_PROBLEMS problems, then one saying how many more there are."""
    if len(problems) <= MAX_PROBLEMS:
        return problems
    more = len(problems) - MAX_PROBLEMS
    return problems[:MAX_PROBLEMS] + [{
        "type": "value_error", "loc": ("body", "files"), "input": None,
        "msg": f"Value error, {more} more problems in these files are not listed: fix those above and send the files again",
    }]
