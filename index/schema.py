"""Typed records that cross module boundaries."""

from __future__ import annotations

import math
import unicodedata

from dataclasses import dataclass, field
from datetime import date
from typing import Literal, get_args

from index.text import json_nodes


@dataclass
class Document:
    id: str
    text: str
    title: str | None = None
    url: str | None = None
    published: str | None = None  # ISO date, possibly partial: "2017-10" or "2017-10-27"
    metadata: dict = field(default_factory=dict)


@dataclass
class Chunk:
    id: int  # stable int64, shared by SQLite, FAISS and BM25
    document_id: str
    start: int  # document.text[start:end] == text, always
    end: int
    text: str


# how passages are ranked: what the store, the `qa` command and the API take
Mode = Literal["hybrid", "dense", "bm25"]
MODES: tuple[str, ...] = get_args(Mode)


@dataclass
class Filters:
    document_ids: list[str] | None = None
    source: str | None = None  # URL domain, e.g. "numerama.com"
    published_after: date | None = None
    published_before: date | None = None


@dataclass
class SearchResult:
    chunk_id: int
    document_id: str
    title: str | None
    url: str | None
    published: str | None
    text: str
    start: int
    end: int
    score: float


MAX_ID_CHARS = 256  # the longest id GET / DELETE /documents/{doc_id} take
MAX_METADATA_DEPTH = 32  # pydantic cannot serialise much deeper values (the document could not be read back)


def metadata_problem(metadata: dict) -> str | None:
    """What keeps ``metadata`` from being stored, or None: objects and lists nested deeper than
    MAX_METADATA_DEPTH levels, or a number JSON cannot hold (NaN, 1e400: it could not be read back);
    the same rule for the API and for `qa index`."""
    for loc, v, _ in json_nodes(metadata):
        if len(loc) > MAX_METADATA_DEPTH:
            return f"nests objects or lists more than {MAX_METADATA_DEPTH} levels deep"
        if isinstance(v, float) and not math.isfinite(v):
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
            return f"holds {v} at {where or 'its top'}, not a JSON number: write a finite number"
    return None


def normalize_id(doc_id: str) -> str:
    """A document id in the form it is stored in: Unicode NFC, so that "café" typed with U+00E9 and
    "cafe" + U+0301 (macOS and some keyboards write accents decomposed) name one document, as file
    names already do (``index.ingest.file_name``). Applied where ids come in: POST bodies, filters,
    JSON records."""
    return unicodedata.normalize("NFC", doc_id)


def clean_id(doc_id: str) -> str:
    """A document id as given (a POST body, a JSON record), in the form it is stored: stripped, NFC;
    ``id_problem`` then says whether it can be one."""
    return normalize_id(doc_id.strip())


def id_lookups(doc_id: str) -> list[str]:
    """The stored ids a lookup of ``doc_id`` tries, best first: as given, in NFC, in NFD. As given
    first: an id stored decomposed by an older version, which kept ids as sent, stays reachable by the
    form `qa docs list` and GET /documents show, even beside its NFC twin (NFC first would leave it
    impossible to read or delete then); NFD last, so that typing such an id composed reaches it too."""
    forms = [doc_id, normalize_id(doc_id), unicodedata.normalize("NFD", doc_id)]
    return list(dict.fromkeys(forms))


def id_problem(doc_id: str) -> str | None:
    """What keeps ``doc_id`` (already stripped) from being a document id, or None: the same rule for
    the API and for files indexed with `qa index`, so every document can be read and deleted over HTTP."""
    if not doc_id:
        return "must not be empty"
    if len(doc_id) > MAX_ID_CHARS:
        return f"must be at most {MAX_ID_CHARS} characters (got {len(doc_id)})"
    if any(unicodedata.category(ch) == "Cc" for ch in doc_id):
        return "must not contain control characters (tabs, line breaks)"
    if any(part in (".", "..") for part in doc_id.split("/")):  # HTTP clients resolve them: /documents/a/../b is /documents/b
        return 'must not have "." or ".." between slashes (URLs drop them, so no request could name it)'
    return None
