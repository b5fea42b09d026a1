"""Typed records that cross module boundaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


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
