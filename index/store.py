"""The index store: documents and chunks in SQLite (the source of truth), FAISS and BM25 indexes on disk.

Crash safety. SQLite holds documents, chunks, their vectors (float32 blobs) and analysed terms, and
a ``generation`` counter. Index files carry the generation in their names
(``dense-flat-<gen>.faiss``, ``bm25-<gen>/``) and are written to a temporary name and renamed.
A write embeds first (nothing stored yet), commits one SQLite transaction that bumps the generation,
then writes the index files of the new generation. Opening a store whose files do not match the
SQLite generation (a kill between the commit and the renames) rebuilds them from SQLite, without
re-embedding. So a crash at any moment leaves the old consistent state or the new one.

Concurrency. Writes are serialised by a lock (and a file lock across processes), taken once the
write's passages are embedded: meanwhile other writers go on, and so do the refreshes that bring
this process's searches the writes of other processes. Once locked, a write plans again against
what was written meanwhile and embeds the difference (a rebuild too: it re-reads every document). Searches read an immutable snapshot (FAISS
index, BM25 index, metadata arrays) that a write replaces in one assignment; SQLite reads use one
connection per thread (WAL mode). The embedder's tokenizer is not safe to share between threads, so
model calls take a short lock (per batch for long jobs).
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from index import dense as dense_mod
from index.chunking import chunk_document, content_hash, token_budget
from index.keyword import KeywordIndex
from index.retrieval import MODES, DocTable, candidate_depth, rrf
from index.schema import Chunk, Document, Filters, SearchResult, id_lookups, normalize_id
from index.text import ANALYZER_VERSION, analyze, url_problem

log = logging.getLogger(__name__)


def storage_problem(exc: BaseException) -> str | None:
    """What a write's failure says of the folder it wrote to, "full" or "not writable", or None when
    it is something else (a bug, a damaged file, an I/O error)."""
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return "full"
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return "not writable"
        return None
    if isinstance(exc, sqlite3.Error):
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF  # the primary result code
        if code == sqlite3.SQLITE_FULL:
            return "full"
        if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM):
            return "not writable"
    return None


def _rollback(c: sqlite3.Connection) -> None:
    """Undo the open transaction, if SQLite has not already: after SQLITE_FULL it rolls back by
    itself, and a second ROLLBACK would replace "database or disk is full" by "no transaction"."""
    if c.in_transaction:
        c.execute("ROLLBACK")

SCHEMA_VERSION = "1"
DB_NAME = "index.sqlite3"
TITLE_IN_PASSAGE = True  # the document title is prepended to each chunk for embedding and BM25
TITLE_EMBED_CHARS = 150  # of the title, prepended to each chunk (the stored title is whole)
# tokens kept free in every chunk for its title line, so that the model never cuts a chunk's end off
# (150 characters of French are 30-50 tokens)
TITLE_RESERVED_TOKENS = 64 if TITLE_IN_PASSAGE else 0
PROGRESS_LOG_S = 30.0  # seconds between progress lines when there is no progress bar
# texts per model call in long jobs: the model lock is released between calls, so a search waits at
# most one call (16 passages ~1.3 s on 2 cores, 64 took ~5.5 s; same throughput)
EMBED_BATCH = 16
REFRESH_EVERY_S = 2.0
BUSY_TIMEOUT_S = 60.0  # how long a connection waits for another process's lock
_SQL_VARS = 900


# a fixed passage whose vector the index keeps, to recognise its model (see _built_with_problem);
# the same model gives the same vector up to float noise (threads, CPU or GPU: cosine > 0.9999)
PROBE_TEXT = "qa-search : ce passage sert à reconnaître le modèle qui a calculé les vecteurs de l'index."
PROBE_MIN_COSINE = 0.999


class ReindexNeeded(RuntimeError):
    """The index cannot be used as configured (another embedding model, another schema version)."""


def _describe_layout(layout: dict[str, str]) -> str:
    return f"chunks of {layout['chunk_tokens']} tokens, overlap {layout['overlap_tokens']}, {layout['dense_index']} dense index"


@dataclass
class AddReport:
    documents_added: int = 0
    documents_updated: int = 0
    documents_unchanged: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    chunk_counts: dict[str, int] = field(default_factory=dict)
    chunks_embedded: int = 0  # chunks whose vector was computed (others reused by content hash)

    def merge(self, other: "AddReport") -> None:
        """Add the counts of a later write (``add_in_batches``)."""
        self.documents_added += other.documents_added
        self.documents_updated += other.documents_updated
        self.documents_unchanged += other.documents_unchanged
        self.chunks_added += other.chunks_added
        self.chunks_removed += other.chunks_removed
        self.chunks_embedded += other.chunks_embedded
        self.chunk_counts.update(other.chunk_counts)


@dataclass(frozen=True)
class RebuildReport:
    documents: int
    chunks_before: int
    chunks: int
    embedded: int  # passages embedded again (the others kept their vectors)


@dataclass
class DocumentInfo:
    id: str
    title: str | None
    url: str | None
    published: str | None
    chunks: int
    chars: int


class _Plan(NamedTuple):
    """A document to write: its chunks, the passages embedded and indexed for them, their hashes."""

    doc: Document
    doc_hash: str  # of the whole document (_doc_hash): unchanged documents are skipped
    chunks: list[Chunk]
    passages: list[str]
    hashes: list[str]  # content_hash of each passage: vectors are reused by it


@dataclass
class _Snapshot:
    generation: int
    dense: object  # faiss.IndexIDMap2
    keyword: KeywordIndex
    chunk_ids: np.ndarray  # sorted int64, aligned with keyword rows
    chunk_doc: np.ndarray  # int32 document row of each chunk
    docs: DocTable


def _check_schema_version(data_dir: Path, version: str) -> None:
    if version == SCHEMA_VERSION:
        return
    newer = version.isdigit() and int(version) > int(SCHEMA_VERSION)
    raise ReindexNeeded(
        f"index at {data_dir} has schema version {version}"
        + (" (written by a newer qa-search)" if newer else "")
        + f"; this one reads version {SCHEMA_VERSION}: "
        + ("use that newer version, or " if newer else "")
        + "re-index into a new QA_DATA_DIR"
    )


def _stored_id(conn: sqlite3.Connection, doc_id: str) -> str | None:
    """The id ``doc_id`` is stored under (its form as given, else in NFC or NFD: ``id_lookups``), or None."""
    forms = id_lookups(doc_id)
    found = {r[0] for r in conn.execute(f"SELECT id FROM documents WHERE id IN ({','.join('?' * len(forms))})", forms)}
    return next((f for f in forms if f in found), None)


def served_url(doc_id: str, url: str | None, warned: set[str]) -> str | None:
    """A stored document's URL as the store gives it out: None when this version would refuse it
    (``url_problem``: a ``javascript:`` link, which older versions took, would reach every client in
    citations and listings), with a warning naming the document the first time ``warned`` sees it.
    The document itself is kept and served; only its URL is withheld."""
    if url is None:
        return None
    problem = url_problem(url, strict=False)
    if problem is None:
        return url
    if doc_id not in warned:
        warned.add(doc_id)
        log.warning("document %r: its stored URL %s, so it is left out of what the index serves; "
                    "send the document again with its http(s) address", doc_id, problem)
    return None


def _get_document(conn: sqlite3.Connection, doc_id: str, warned: set[str]) -> Document | None:
    forms = id_lookups(doc_id)
    rows = {r[0]: r for r in conn.execute(f"SELECT id, text, title, url, published, metadata FROM documents WHERE id IN ({','.join('?' * len(forms))})", forms)}
    row = next((rows[f] for f in forms if f in rows), None)
    if row is None:
        return None
    return Document(id=row[0], text=row[1], title=row[2], url=served_url(row[0], row[3], warned), published=row[4], metadata=json.loads(row[5]))


def _list_documents(conn: sqlite3.Connection, offset: int, limit: int, warned: set[str]) -> tuple[list[DocumentInfo], int]:
    total = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
    rows = conn.execute(
        "SELECT id, title, url, published, n_chunks, chars FROM documents ORDER BY id LIMIT ? OFFSET ?", (max(0, int(limit)), max(0, int(offset)))
    ).fetchall()
    return [DocumentInfo(doc_id, title, served_url(doc_id, url, warned), *rest) for doc_id, title, url, *rest in rows], total


@dataclass(frozen=True)
class RecordedEmbedder:
    """The embedder as an index records it (``name:dim``): all a delete needs, so that `qa docs delete`
    loads no model. Anything that needs the model itself (adding, searching) fails with a clear error."""

    identity: str
    dim: int
    max_tokens: int = 1 << 20  # chunk sizes of an existing index come from its meta, not from here
    passage_prompt_tokens: int = 0

    def _no_model(self, *_args, **_kwargs):
        raise RuntimeError(f"the index was opened without its embedding model ({self.identity}): adding or searching needs it")

    encode_passages = encode_queries = count_tokens = _no_model

    @property
    def tokenizer(self):
        self._no_model()


def index_exists(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds an index (commands that only read must not create one)."""
    return (Path(data_dir) / DB_NAME).is_file()


def _open_read_only(data_dir: Path) -> sqlite3.Connection | None:
    """A read-only connection to the index at ``data_dir``, its schema version checked; None when there
    is no index there (nothing is created)."""
    if not index_exists(data_dir):
        return None
    db = Path(data_dir) / DB_NAME
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=60)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row:
            _check_schema_version(Path(data_dir), row[0])
    except BaseException:  # a damaged or newer index: do not leave the connection open
        conn.close()
        raise
    return conn


def recorded_embedder(data_dir: Path) -> RecordedEmbedder | None:
    """What the index at ``data_dir`` records of its embedder; None when there is no index there."""
    try:
        conn = _open_read_only(data_dir)
    except sqlite3.OperationalError:  # a database without our tables: nothing was ever indexed there
        return None
    if conn is None:
        return None
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('embedder', 'dim')").fetchall())
    finally:
        conn.close()
    if "embedder" not in meta:
        return None
    return RecordedEmbedder(meta["embedder"], int(meta["dim"]))


class DocumentCatalog:
    """The documents of an index, read only and without the models (what `qa docs list` and `qa docs show`
    need: opening an IndexStore loads the embedder, seconds of torch start-up, to check the index's vectors).

    A missing index reads as empty and is not created."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self._conn = _open_read_only(self.data_dir)
        self._warned_urls: set[str] = set()  # documents whose stored URL was withheld (served_url)

    def list_documents(self, offset: int = 0, limit: int = 50) -> tuple[list[DocumentInfo], int]:
        return _list_documents(self._conn, offset, limit, self._warned_urls) if self._conn else ([], 0)

    def get_document(self, doc_id: str) -> Document | None:
        return _get_document(self._conn, doc_id, self._warned_urls) if self._conn else None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# Crash-safety tests (tests/crash_writer.py) set this in a child process so that the store kills
# itself exactly at that point; deliberately not a setting, so no environment can turn it on.
CRASH_AT: str | None = None


def _crash_point(name: str) -> None:
    if CRASH_AT == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _doc_hash(doc: Document) -> str:
    payload = json.dumps([doc.text, doc.title, doc.url, doc.published, doc.metadata], ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=16).hexdigest()


def passage_text(title: str | None, text: str) -> str:
    """What is embedded and keyword-indexed for a chunk: the title as a header line, then the chunk."""
    if TITLE_IN_PASSAGE and title:
        t = " ".join(title.split())[:TITLE_EMBED_CHARS]
        return f"{t}\n{text}"
    return text


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch the database to write-ahead logging. SQLite refuses at once ("database is locked"),
    without its busy timeout, while another connection creates the same new database (the workers of
    `qa serve --workers 2` starting on a new folder), to avoid a deadlock: try again until it is done."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _batched(seq, n):
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


class IndexStore:
    def __init__(self, data_dir: Path, embedder, *, chunk_tokens: int, overlap_tokens: int, dense_index: str, rrf_k: int, ef_search: int = dense_mod.HNSW_EF_SEARCH):
        if dense_index not in dense_mod.KINDS:
            raise ValueError(f"dense_index must be one of {dense_mod.KINDS}, not {dense_index!r}")
        if ef_search < 1:
            raise ValueError(f"ef_search must be at least 1, not {ef_search}")
        self.ef_search = int(ef_search)
        self.data_dir = Path(data_dir)
        self.embedder = embedder
        self.dense_kind = dense_index
        self.rrf_k = int(rrf_k)
        self.chunk_size, self.overlap = token_budget(embedder, chunk_tokens, overlap_tokens, TITLE_RESERVED_TOKENS)
        if (self.chunk_size, self.overlap) != (int(chunk_tokens), int(overlap_tokens)):
            log.warning(
                "chunks of %d tokens with an overlap of %d asked; %d and %d used (a chunk fits the model with its "
                "title line; the overlap is at most half a chunk): QA_CHUNK_TOKENS / QA_CHUNK_OVERLAP_TOKENS",
                chunk_tokens, overlap_tokens, self.chunk_size, self.overlap,
            )
        self._configured = self._layout()  # what the settings ask for; an index with documents keeps its own
        self.db_path = self.data_dir / DB_NAME
        self._write_lock = threading.RLock()
        self._probe_vector: np.ndarray | None = None
        self._model_lock = threading.Lock()
        self._snap_lock = threading.Lock()
        self._local = threading.local()
        self._read_conns: list[tuple[threading.Thread, sqlite3.Connection]] = []  # one per reading thread
        self._conns_lock = threading.Lock()
        self._snap: _Snapshot | None = None
        self._last_refresh = 0.0
        self._closed = False
        self.rebuilt: RebuildReport | None = None  # what opening with rebuild=True re-chunked
        self._warned_urls: set[str] = set()  # documents whose stored URL was withheld (served_url)
        self._wconn = self._connect()

    # ------------------------------------------------------------------------------------- opening

    @classmethod
    def open(
        cls,
        data_dir: Path,
        embedder,
        *,
        chunk_tokens: int = 200,
        overlap_tokens: int = 40,
        dense_index: str = "flat",
        rrf_k: int = 60,
        ef_search: int = dense_mod.HNSW_EF_SEARCH,
        rebuild: bool = False,
    ) -> "IndexStore":
        """Open (creating if needed) the store in ``data_dir``.

        Raises ReindexNeeded when it was built with another embedder, unless ``rebuild`` is set: then
        every stored document is re-chunked and re-embedded with this embedder (one atomic write)."""
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        store = cls(data_dir, embedder, chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens, dense_index=dense_index, rrf_k=rrf_k, ef_search=ef_search)
        try:
            with store._write_lock:
                stale = store._init_schema(rebuild)
                if stale:
                    store._reindex_all(progress=True)  # takes the file lock once it has embedded
                else:
                    # the usual case takes no file lock, so opening is not blocked by a long write elsewhere
                    store._snap = store._load_snapshot(repair=False)
                    if store._snap is None:  # files missing or damaged (e.g. a crash after a commit): rebuild them
                        with store._file_lock():
                            store._snap = store._load_snapshot(repair=True)
                            store._cleanup(store._snap.generation)
        except BaseException:
            store.close()
            raise
        return store

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        try:
            _use_wal(conn)
        except BaseException:
            conn.close()
            raise
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _rconn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise RuntimeError("the index store is closed")
            conn = self._connect()
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._conns_lock:
                # a server's thread pool retires idle threads and starts new ones: the connections
                # of threads that are gone are closed here, or each would keep two files open
                alive = []
                for thread, other in self._read_conns:
                    if thread.is_alive():
                        alive.append((thread, other))
                    else:
                        try:
                            other.close()
                        except sqlite3.Error:
                            pass
                self._read_conns = alive + [(threading.current_thread(), conn)]
        return conn

    @contextmanager
    def _file_lock(self, blocking: bool = True) -> Iterator[bool]:
        """Serialises writers across processes (a killed holder releases it). Yields whether it is
        held: always with ``blocking``, else only when no other process holds it."""
        fd = os.open(self.data_dir / "write.lock", os.O_RDWR | os.O_CREAT, 0o644)
        locked = False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except BlockingIOError:
                pass
            yield locked
        finally:
            if locked:
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _meta(self, conn, key: str, default=None):
        row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def _init_schema(self, rebuild: bool) -> bool:
        """Create tables, check the embedder; True when the stored vectors must be recomputed."""
        c = self._wconn
        probe = self._probe_meta()  # a model call: before the database is locked for writing
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            c.execute(
                """CREATE TABLE IF NOT EXISTS documents(
                    id TEXT PRIMARY KEY, title TEXT, url TEXT, published TEXT, metadata TEXT NOT NULL,
                    text TEXT NOT NULL, content_hash TEXT NOT NULL, chars INTEGER NOT NULL, n_chunks INTEGER NOT NULL)"""
            )
            c.execute(
                """CREATE TABLE IF NOT EXISTS chunks(
                    id INTEGER PRIMARY KEY, document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
                    start_char INTEGER NOT NULL, end_char INTEGER NOT NULL, text TEXT NOT NULL,
                    content_hash TEXT NOT NULL, terms TEXT NOT NULL, vector BLOB NOT NULL)"""
            )
            c.execute("CREATE INDEX IF NOT EXISTS chunks_document ON chunks(document_id, start_char)")
            c.execute("CREATE INDEX IF NOT EXISTS chunks_hash ON chunks(content_hash)")
            version = self._meta(c, "schema_version")
            if version is None:
                c.executemany(
                    "INSERT INTO meta(key, value) VALUES (?, ?)",
                    [("schema_version", SCHEMA_VERSION), ("generation", "0"), ("embedder", self.embedder.identity), ("dim", str(self.embedder.dim)), ("analyzer", ANALYZER_VERSION), *probe],
                )
            else:
                _check_schema_version(self.data_dir, version)
                if self._meta(c, "embedder_probe") is None and self._meta(c, "embedder") == self.embedder.identity:
                    # an index from before the probe was recorded, opened with its own model: record it
                    c.executemany("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", probe)
            n_chunks = c.execute("SELECT count(*) FROM chunks").fetchone()[0]
            layout = self._index_layout(c)
            if layout is not None:  # an index from before the layout was recorded: record what it is
                c.executemany("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", list(layout.items()))
            c.execute("COMMIT")
        except BaseException:
            _rollback(c)
            raise
        problem = self._built_with_problem(c)
        if problem is not None:
            if n_chunks and not rebuild:
                raise ReindexNeeded(problem)
            return True
        if layout is not None and layout != self._configured and not rebuild:
            # one chunk size and one dense index type for the whole index: it keeps its own
            self._apply_layout(layout)
            log.warning(
                "index at %s keeps its own layout (%s) rather than the configured one (%s); "
                "`qa index --rebuild` re-chunks it with the configured one",
                self.data_dir, _describe_layout(layout), _describe_layout(self._configured),
            )
        if self._meta(c, "analyzer") != ANALYZER_VERSION:
            with self._file_lock():
                self._reanalyze()
        return bool(rebuild)

    def _layout(self) -> dict[str, str]:
        """How documents are laid out in this index (meta keys and values): fixed when it is created."""
        return {"chunk_tokens": str(self.chunk_size), "overlap_tokens": str(self.overlap), "dense_index": self.dense_kind}

    def _index_layout(self, conn) -> dict[str, str] | None:
        """The layout of the documents already in the index (None when it has none: the configured
        layout applies, and the first write records it). Indexes written before the dense index
        type was recorded have it inferred from their files."""
        if conn.execute("SELECT 1 FROM chunks LIMIT 1").fetchone() is None:
            return None
        layout = {key: self._meta(conn, key) for key in self._configured}
        if layout["dense_index"] not in dense_mod.KINDS:
            on_disk = [kind for kind in dense_mod.KINDS if any(self.data_dir.glob(f"dense-{kind}-*.faiss"))]
            layout["dense_index"] = on_disk[0] if len(on_disk) == 1 else self._configured["dense_index"]
        for key in ("chunk_tokens", "overlap_tokens"):
            if layout[key] is None or not layout[key].isdigit():
                layout[key] = self._configured[key]
        return layout

    def _apply_layout(self, layout: dict[str, str]) -> bool:
        """Use ``layout``; True when the chunking changed."""
        before = (self.chunk_size, self.overlap)
        self.chunk_size = int(layout["chunk_tokens"])
        self.overlap = int(layout["overlap_tokens"])
        if layout["dense_index"] in dense_mod.KINDS:
            self.dense_kind = layout["dense_index"]
        return (self.chunk_size, self.overlap) != before

    def _follow_layout(self, conn) -> bool:
        """Before a write or after another process's: the index's layout, or the configured one when
        it has no documents (yet, or any more). True when the chunking changed."""
        return self._apply_layout(self._index_layout(conn) or self._configured)

    def _probe(self) -> np.ndarray | None:
        """The configured model's query vector for PROBE_TEXT (None without the model: a delete)."""
        if self._probe_vector is None and not isinstance(self.embedder, RecordedEmbedder):
            with self._model_lock:
                self._probe_vector = self.embedder.encode_queries([PROBE_TEXT])[0]
        return self._probe_vector

    def _built_with_problem(self, conn) -> str | None:
        """Why this store's embedder cannot read or write the index (another model), or None.

        The index keeps the vector its model gave PROBE_TEXT: a model is the same when it gives the
        same vector, whatever its name or path (a folder moved, a trailing slash), and another one
        under the same name (weights replaced in place, a hub revision) is caught. Indexes from
        before the probe was recorded, and deletes (no model loaded), compare names."""
        built_with = self._meta(conn, "embedder")
        same_dim = int(self._meta(conn, "dim", "0")) == int(self.embedder.dim)
        recorded = self._meta(conn, "embedder_probe")
        probe = self._probe() if recorded is not None and same_dim else None
        if probe is not None:
            if float(np.dot(np.asarray(json.loads(recorded), dtype=np.float32), probe)) >= PROBE_MIN_COSINE:
                return None
            return (
                f"index at {self.data_dir} was built with {built_with}, and the model you configured "
                f"({self.embedder.identity}) gives other vectors (its weights changed?): "
                "re-index with `qa index --rebuild ...` or point QA_DATA_DIR elsewhere"
            )
        if built_with == self.embedder.identity and same_dim:
            return None
        return (
            f"index at {self.data_dir} was built with {built_with}; you configured {self.embedder.identity}: "
            "re-index with `qa index --rebuild ...` or point QA_DATA_DIR elsewhere"
        )

    def _probe_meta(self) -> list[tuple[str, str]]:
        """The meta row recording the model's probe vector, when the model is loaded."""
        probe = self._probe()
        return [] if probe is None else [("embedder_probe", json.dumps([round(float(x), 6) for x in probe]))]

    def _reanalyze(self) -> None:
        c = self._wconn
        rows = c.execute("SELECT c.id, c.text, d.title FROM chunks c JOIN documents d ON d.id = c.document_id").fetchall()
        c.execute("BEGIN IMMEDIATE")
        c.executemany("UPDATE chunks SET terms=? WHERE id=?", [(" ".join(analyze(passage_text(title, text))), cid) for cid, text, title in rows])
        c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('analyzer', ?)", (ANALYZER_VERSION,))
        self._bump_generation(c)
        c.execute("COMMIT")

    # ------------------------------------------------------------------------------- index files

    def _dense_path(self, gen: int) -> Path:
        return self.data_dir / f"dense-{self.dense_kind}-{gen}.faiss"

    def _keyword_path(self, gen: int) -> Path:
        return self.data_dir / f"bm25-{gen}"

    def _generation(self, conn) -> int:
        return int(self._meta(conn, "generation", "0"))

    def _bump_generation(self, conn) -> int:
        gen = self._generation(conn) + 1
        conn.execute("UPDATE meta SET value=? WHERE key='generation'", (str(gen),))
        return gen

    def _read_state(self, conn) -> tuple[int, np.ndarray, np.ndarray, DocTable]:
        """Generation, sorted chunk ids, their document rows, the document table: one consistent read
        (inside the caller's transaction when one is open)."""
        own = not conn.in_transaction
        if own:
            conn.execute("BEGIN")
        try:
            gen = self._generation(conn)
            docs = DocTable.build(conn.execute("SELECT id, url, published FROM documents ORDER BY id").fetchall())
            rows = conn.execute("SELECT id, document_id FROM chunks ORDER BY id").fetchall()
        finally:
            if own:
                conn.execute("COMMIT")
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        chunk_doc = np.fromiter((docs.index[r[1]] for r in rows), dtype=np.int32, count=len(rows))
        return gen, ids, chunk_doc, docs

    def _build_dense(self, conn) -> object:
        ids, vecs = [], []
        dim = int(self.embedder.dim)
        for cid, blob in conn.execute("SELECT id, vector FROM chunks ORDER BY id"):
            ids.append(cid)
            vecs.append(blob)
        matrix = np.frombuffer(b"".join(vecs), dtype=np.float32).reshape(len(ids), dim) if ids else np.zeros((0, dim), np.float32)
        return dense_mod.build(dim, self.dense_kind, np.asarray(ids, dtype=np.int64), matrix)

    def _build_keyword(self, conn) -> KeywordIndex:
        ids, terms = [], []
        for cid, t in conn.execute("SELECT id, terms FROM chunks ORDER BY id"):
            ids.append(cid)
            terms.append(t.split())
        return KeywordIndex.build(np.asarray(ids, dtype=np.int64), terms)

    def _load_snapshot(self, repair: bool) -> _Snapshot | None:
        """Load the index files of SQLite's generation; with ``repair`` (write lock held) rebuild missing
        or mismatching ones from SQLite, else return None when they are not there yet."""
        conn = self._wconn if repair else self._rconn()
        gen, ids, chunk_doc, docs = self._read_state(conn)
        dense = keyword = None
        dpath, kpath = self._dense_path(gen), self._keyword_path(gen)
        if dpath.is_file():
            try:
                dense = dense_mod.load(dpath)
                if dense.ntotal != len(ids) or dense.d != int(self.embedder.dim):
                    log.warning("%s does not match the database (%d vectors, %d chunks): rebuilding", dpath, dense.ntotal, len(ids))
                    dense = None
            except Exception as exc:  # a damaged file is rebuilt, never trusted
                log.warning("cannot read %s (%s): rebuilding", dpath, exc)
                dense = None
        if kpath.is_dir():
            try:
                keyword = KeywordIndex.load(kpath)
                if len(keyword) != len(ids):
                    keyword = None
            except Exception as exc:
                log.warning("cannot read %s (%s): rebuilding", kpath, exc)
                keyword = None
        if dense is None or keyword is None:
            if not repair:
                return None
            say = log.info if gen else log.debug  # generation 0: a new, empty index, nothing to report
            self._cleanup(gen)  # leftovers first: on a full disk they hold the room the rebuilt files need
            if dense is None:
                say("rebuilding the dense index of generation %d from stored vectors", gen)
                dense = self._build_dense(conn)
                self._save_or_serve(lambda: dense_mod.save(dense, dpath), dpath)
            if keyword is None:
                say("rebuilding the BM25 index of generation %d from stored terms", gen)
                keyword = self._build_keyword(conn)
                self._save_or_serve(lambda: keyword.save(kpath), kpath)
        return _Snapshot(gen, dense, keyword, ids, chunk_doc, docs)

    def _save_or_serve(self, save: Callable[[], None], path: Path) -> None:
        """Write a rebuilt index file; when that fails (a full disk, a folder made read-only), the
        index is served from memory all the same: reads must not fail for want of a cache file."""
        try:
            save()
        except OSError as exc:
            log.warning("cannot write %s (%s): the index is served from memory; make room in %s (or make it "
                        "writable) and the next open writes it", path, exc, self.data_dir)

    def _cleanup(self, gen: int) -> None:
        """Remove index files of other generations and temporary leftovers."""
        keep = {self._dense_path(gen).name, self._keyword_path(gen).name}
        pattern = re.compile(r"^(dense-(flat|hnsw)-\d+\.faiss|bm25-\d+)(\.tmp-\d+)?$")
        for p in self.data_dir.iterdir():
            if p.name in keep or not pattern.match(p.name):
                continue
            try:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
            except OSError as exc:
                log.warning("cannot remove %s: %s", p, exc)

    def refresh(self) -> bool:
        """Pick up a write made by another process (no-op when current). True when the snapshot changed."""
        snap = self._snap
        gen = self._generation(self._rconn())
        if snap is not None and gen == snap.generation:
            return False
        if not self._write_lock.acquire(blocking=False):
            return False  # a write of this process is publishing: it swaps the snapshot itself
        try:
            # another process may have re-embedded the index with another model: its vectors cannot
            # be searched with this one's queries
            self._check_built_with(self._rconn())
            self._follow_layout(self._rconn())
            new = self._load_snapshot(repair=False)
            if new is None:
                # the files of that generation are not there: their writer is still writing them (it
                # holds the file lock), or it died or failed after its commit; then rebuild them
                with self._file_lock(blocking=False) as locked:
                    if not locked:
                        return False
                    new = self._load_snapshot(repair=True)
                    self._cleanup(new.generation)
            with self._snap_lock:
                if self._snap is None or new.generation > self._snap.generation:
                    self._snap = new
            return True
        finally:
            self._write_lock.release()

    # ------------------------------------------------------------------------------------ embedding

    def _encode_passages(self, texts: list[str], progress: bool) -> np.ndarray:
        """Batches sorted by length (less padding); the model lock is taken per batch so searches go on."""
        dim = int(self.embedder.dim)
        out = np.zeros((len(texts), dim), dtype=np.float32)
        if not texts:
            return out
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        bar = None
        if progress and len(texts) > EMBED_BATCH:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(texts), desc="embedding", unit="chunk")
        done, last_log = 0, time.monotonic()
        try:
            for idx in _batched(order, EMBED_BATCH):
                with self._model_lock:
                    vecs = self.embedder.encode_passages([texts[i] for i in idx], progress=False)
                out[idx] = vecs
                done += len(idx)
                if bar is not None:
                    bar.update(len(idx))
                elif time.monotonic() - last_log >= PROGRESS_LOG_S and done < len(texts):
                    # no bar (a log file, a service): a line now and then says a long write is moving
                    log.info("embedding: %d / %d chunks", done, len(texts))
                    last_log = time.monotonic()
        finally:
            if bar is not None:
                bar.close()
        return out

    def _chunk(self, doc: Document, size: int, overlap: int) -> list[Chunk]:
        with self._model_lock:
            title_line = passage_text(doc.title, "")
            if title_line:  # a title longer than the tokens kept for it takes them from the chunk
                size, overlap = token_budget(self.embedder, size, overlap, self.embedder.count_tokens(title_line) + 1)
            return chunk_document(doc, self.embedder.tokenizer, size, overlap)

    # -------------------------------------------------------------------------------------- writing

    def add_documents(self, docs: list[Document], progress: bool = False) -> AddReport:
        """Add new documents, replace changed ones (same id), skip unchanged ones. Only new or changed
        chunks are embedded (vectors are reused by content hash).

        Ids are stored in NFC (``normalize_id``). A document stored under another Unicode form of its
        id (decomposed, by a version that kept ids as sent) is replaced, and so is its twin if both
        forms are stored: the id is one document again, stored in NFC."""
        report = AddReport()
        batch: dict[str, Document] = {}
        for d in docs:
            if not d.id or not isinstance(d.text, str) or not d.text.strip():
                raise ValueError(f"document {d.id!r} has no id or no text")
            doc_id = normalize_id(d.id)
            batch[doc_id] = d if d.id == doc_id else dataclasses.replace(d, id=doc_id)  # the last one wins
        if not batch:
            return report
        self._check_open()
        # first, without the locks: chunk and embed what the batch needs (the long part), so that
        # other processes' writes (a server's DELETE during `qa index`) are not held up by it, and so
        # that this process's searches go on picking up those writes (refresh needs the write lock)
        chunked: dict[tuple, list[Chunk]] = {}
        _, plans, _ = self._plan(self._rconn(), batch, chunked)
        computed, report.chunks_embedded = self._vectors_for(self._rconn(), plans, {}, progress)
        with self._write_lock, self._file_lock():
            self._check_open()
            # then, locked: plan again against what other processes may have written meanwhile (a
            # rebuild with another chunk size: chunks cut with the old one are not reused)
            self._sync_for_write()
            c = self._wconn
            existing, plans, old = self._plan(c, batch, chunked)
            report.documents_unchanged = len(batch) - len(plans)
            report.chunk_counts.update({doc_id: stored[0][2] for doc_id, stored in existing.items()})
            if not plans:
                return report
            # vectors computed above; only documents another process changed meanwhile need more
            vectors, late = self._vectors_for(c, plans, computed, progress)
            report.chunks_embedded += late
            _crash_point("embedded")
            replaced = {p.doc.id: [stored for stored, _, _ in existing[p.doc.id]] for p in plans if p.doc.id in existing}
            report.chunks_added, report.chunks_removed = self._write_plans(c, plans, replaced, old, vectors)
            report.documents_updated = len(replaced)
            report.documents_added = len(plans) - len(replaced)
            report.chunk_counts.update({p.doc.id: len(p.chunks) for p in plans})
        return report

    def _plan(self, conn, batch: dict[str, Document], chunked: dict[tuple, list[Chunk]]):
        """What writing ``batch`` changes, as ``conn`` sees the index: the stored documents of the batch
        under any form of their ids (id -> [(stored id, content hash, chunk count)]), the plans of the
        new or changed ones and the stored chunks of those being replaced (chunk id -> (stored document
        id, hash)). A document stored under another form of its id is changed even when its content
        is not: it is stored again under the id in NFC."""
        existing: dict[str, list[tuple[str, str, int]]] = {}
        # the forms of distinct ids in NFC are distinct: each stored row belongs to one id of the batch
        form_of = {form: doc_id for doc_id in batch for form in id_lookups(doc_id)}
        for forms in _batched(list(form_of), _SQL_VARS):
            q = f"SELECT id, content_hash, n_chunks FROM documents WHERE id IN ({','.join('?' * len(forms))})"
            for stored, h, n in conn.execute(q, forms):
                existing.setdefault(form_of[stored], []).append((stored, h, n))
        plans = []
        for doc in batch.values():
            h = _doc_hash(doc)
            stored = existing.get(doc.id, [])
            if len(stored) == 1 and stored[0][:2] == (doc.id, h):
                continue
            plans.append(self._plan_document(doc, h, chunked))
        old: dict[int, tuple[str, str]] = {}
        stored_ids = [stored for p in plans for stored, _, _ in existing.get(p.doc.id, ())]
        for ids in _batched(stored_ids, _SQL_VARS):
            q = f"SELECT id, document_id, content_hash FROM chunks WHERE document_id IN ({','.join('?' * len(ids))})"
            old.update((cid, (doc_id, h)) for cid, doc_id, h in conn.execute(q, ids))
        return existing, plans, old

    def _plan_document(self, doc: Document, doc_hash: str, chunked: dict[tuple, list[Chunk]]) -> _Plan:
        """``doc`` cut with the current layout, its passages and their hashes. ``chunked`` keeps each
        document's chunks by content hash and chunk size so that a second plan does not chunk it
        again, unless the index was re-chunked with another size in between."""
        # read once: before the locks, a refresh may take up another process's rebuild meanwhile
        size, overlap = self.chunk_size, self.overlap
        chunks = chunked.get((doc.id, doc_hash, size, overlap))
        if chunks is None:
            chunks = chunked[(doc.id, doc_hash, size, overlap)] = self._chunk(doc, size, overlap)
        passages = [passage_text(doc.title, ch.text) for ch in chunks]
        return _Plan(doc, doc_hash, chunks, passages, [content_hash(p) for p in passages])

    def _vectors_for(self, conn, plans: list[_Plan], known: dict[str, bytes], progress: bool) -> tuple[dict[str, bytes], int]:
        """Vectors of the plans' passages by content hash: from ``known``, from the index through
        ``conn`` (a passage stored before; None: the index holds another model's vectors), the rest
        embedded now; and how many were embedded."""
        hashes = {h for plan in plans for h in plan.hashes}
        vectors = {h: v for h, v in known.items() if h in hashes}
        if conn is not None:
            vectors.update(self._stored_vectors(conn, hashes - set(vectors)))
        missing: dict[str, str] = {}
        for plan in plans:
            for p, h in zip(plan.passages, plan.hashes):
                if h not in vectors:
                    missing.setdefault(h, p)
        if missing:
            embedded = self._encode_passages(list(missing.values()), progress)
            for h, v in zip(missing, embedded):
                vectors[h] = np.ascontiguousarray(v, dtype=np.float32).tobytes()
        return vectors, len(missing)

    @staticmethod
    def _stored_vectors(conn, hashes: set[str]) -> dict[str, bytes]:
        """The stored vectors of the passages of these content hashes that the index holds."""
        vectors: dict[str, bytes] = {}
        for hs in _batched(sorted(hashes), _SQL_VARS):
            q = f"SELECT content_hash, vector FROM chunks WHERE content_hash IN ({','.join('?' * len(hs))})"
            vectors.update(conn.execute(q, hs).fetchall())
        return vectors

    def _write_plans(self, c, plans: list[_Plan], replaced: dict[str, list[str]], old: dict[int, tuple[str, str]],
                     vectors: dict[str, bytes], *, rebuild: bool = False) -> tuple[int, int]:
        """Under both locks: one transaction that writes the plans, then the new snapshot is published;
        the chunks added and removed. ``replaced``: the stored ids each planned document replaces (its
        own, other forms of it); ``old``: their chunks (a chunk of the same id, document and passage
        keeps its row). A ``rebuild`` replaces every chunk of the index (the plans are every document
        it holds, rows unchanged but their chunk counts) and records the embedder."""
        new_rows = []  # (chunk, passage, hash)
        keep: set[int] = set()
        for plan in plans:
            for ch, p, h in zip(plan.chunks, plan.passages, plan.hashes):
                if old.get(ch.id) == (plan.doc.id, h) and not rebuild:
                    keep.add(ch.id)
                else:
                    new_rows.append((ch, p, h))
        add_ids = np.asarray([ch.id for ch, _, _ in new_rows], dtype=np.int64)
        add_vecs = (
            np.frombuffer(b"".join(vectors[h] for _, _, h in new_rows), dtype=np.float32).reshape(len(new_rows), int(self.embedder.dim))
            if new_rows
            else np.zeros((0, int(self.embedder.dim)), np.float32)
        )
        # one transaction: the new state or the old one
        c.execute("BEGIN IMMEDIATE")
        try:
            if rebuild:
                removed = np.asarray([r[0] for r in c.execute("SELECT id FROM chunks ORDER BY id")], dtype=np.int64)
                c.execute("DELETE FROM chunks")
                c.executemany("UPDATE documents SET n_chunks=? WHERE id=?", [(len(plan.chunks), plan.doc.id) for plan in plans])
            else:
                removed = np.asarray(sorted(set(old) - keep), dtype=np.int64)
                for plan in plans:
                    doc = plan.doc
                    c.execute(
                        """INSERT INTO documents(id, title, url, published, metadata, text, content_hash, chars, n_chunks)
                           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                           ON CONFLICT(id) DO UPDATE SET title=excluded.title, url=excluded.url, published=excluded.published,
                             metadata=excluded.metadata, text=excluded.text, content_hash=excluded.content_hash,
                             chars=excluded.chars, n_chunks=excluded.n_chunks""",
                        (doc.id, doc.title, doc.url, doc.published, json.dumps(doc.metadata or {}, ensure_ascii=False, default=str), doc.text, plan.doc_hash, len(doc.text), len(plan.chunks)),
                    )
                for ids in _batched(removed.tolist(), _SQL_VARS):
                    c.execute(f"DELETE FROM chunks WHERE id IN ({','.join('?' * len(ids))})", ids)
                # other forms of the ids written (their chunks are removed above): one document per id
                c.executemany("DELETE FROM documents WHERE id=?", [(stored,) for doc_id, ids in replaced.items() for stored in ids if stored != doc_id])
            c.executemany(
                "INSERT INTO chunks(id, document_id, start_char, end_char, text, content_hash, terms, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                ((ch.id, ch.document_id, ch.start, ch.end, ch.text, h, " ".join(analyze(p)), vectors[h]) for ch, p, h in new_rows),
            )
            # the layout these chunks were cut with (the index's own, or the configured one when the
            # index was empty): recorded, so that later writes from other settings follow it
            meta = list(self._layout().items())
            if rebuild:  # and the model that embedded them
                meta += [("embedder", self.embedder.identity), ("dim", str(self.embedder.dim)), ("analyzer", ANALYZER_VERSION), *self._probe_meta()]
            c.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", meta)
            self._bump_generation(c)
            snap = self._next_snapshot(removed, add_ids, add_vecs, rebuild=rebuild)
            _crash_point("before_commit")
            c.execute("COMMIT")
        except BaseException:
            _rollback(c)
            raise
        _crash_point("committed")
        self._publish(snap)
        return len(new_rows), len(removed)

    def delete_document(self, doc_id: str) -> str | None:
        """Remove a document, its chunks, vectors and keyword entries: the id it was stored under
        (``doc_id`` or another Unicode form of it), or None when it was not there."""
        with self._write_lock, self._file_lock():
            self._check_open()
            self._sync_for_write()
            c = self._wconn
            doc_id = _stored_id(c, doc_id)  # "cafe\u0301" deletes "café"
            if doc_id is None:
                return None
            c.execute("BEGIN IMMEDIATE")
            try:
                removed = np.asarray([r[0] for r in c.execute("SELECT id FROM chunks WHERE document_id=?", (doc_id,))], dtype=np.int64)
                c.execute("DELETE FROM chunks WHERE document_id=?", (doc_id,))
                c.execute("DELETE FROM documents WHERE id=?", (doc_id,))
                self._bump_generation(c)
                snap = self._next_snapshot(removed, np.zeros(0, np.int64), np.zeros((0, int(self.embedder.dim)), np.float32))
                c.execute("COMMIT")
            except BaseException:
                _rollback(c)
                raise
            self._publish(snap)
            return doc_id

    def _sync_for_write(self) -> None:
        """Under the file lock: if another process wrote since our snapshot, start from its state
        (unless it re-embedded the index with another model: then nothing more is written here),
        and take the index's layout as it is now."""
        if self._snap is None or self._generation(self._wconn) != self._snap.generation:
            self._check_built_with(self._wconn)
            self._snap = self._load_snapshot(repair=True)
        self._follow_layout(self._wconn)

    def _check_built_with(self, conn) -> None:
        """After another process wrote: stop if it re-embedded the index with another model."""
        problem = self._built_with_problem(conn)
        if problem is not None:
            raise ReindexNeeded(problem)

    def _next_snapshot(self, removed: np.ndarray, add_ids: np.ndarray, add_vecs: np.ndarray, *, rebuild: bool = False) -> _Snapshot:
        """Inside the write transaction, before its commit (the connection sees its own rows): the
        in-memory indexes of the new state, so that they can be swapped in as soon as it commits."""
        c = self._wconn
        # a rebuild may change the dense index type, and is done before any snapshot is loaded
        dense = None if rebuild else dense_mod.updated(self._snap.dense, self.dense_kind, removed, add_ids, add_vecs)
        if dense is None:  # HNSW cannot remove: rebuild from the stored vectors
            dense = self._build_dense(c)
        keyword = self._build_keyword(c)
        gen, ids, chunk_doc, docs = self._read_state(c)
        return _Snapshot(gen, dense, keyword, ids, chunk_doc, docs)

    def _publish(self, snap: _Snapshot) -> None:
        """After the commit: swap the snapshot at once (searches never see SQLite's new rows with the
        old indexes), then write the index files of its generation. A failure there leaves this
        process serving the new state; the next open, or a reader's refresh, rebuilds the files. The
        write itself has committed, so such a failure is logged, not raised: a caller told that its
        write failed would send it again."""
        with self._snap_lock:
            self._snap = snap
        try:
            dense_mod.save(snap.dense, self._dense_path(snap.generation))
            _crash_point("dense_written")
            snap.keyword.save(self._keyword_path(snap.generation))
            _crash_point("keyword_written")
        except OSError as exc:  # dense.save turns faiss's RuntimeError into one
            log.error(
                "the write is saved in %s, but its index files could not be written (%s): this process "
                "serves it; the files are rebuilt by the next open or another process's refresh once there is room",
                self.db_path, exc,
            )
            return
        self._cleanup(snap.generation)

    def _stored_documents(self, conn) -> tuple[int, list[tuple[Document, str]]]:
        """The generation and every stored document with its content hash, read at once."""
        own = not conn.in_transaction
        if own:
            conn.execute("BEGIN")
        try:
            gen = self._generation(conn)
            rows = conn.execute("SELECT id, text, title, url, published, metadata, content_hash FROM documents ORDER BY id").fetchall()
        finally:
            if own:
                conn.execute("COMMIT")
        return gen, [(Document(id=r[0], text=r[1], title=r[2], url=r[3], published=r[4], metadata=json.loads(r[5])), r[6]) for r in rows]

    def _reindex_all(self, progress: bool = True) -> None:
        """Re-chunk every stored document with the configured layout and embedder (one transaction,
        the write path of ``add_documents``); with the same embedder, passages whose text did not
        change keep their vectors. Ids are kept as stored.

        As for other writes, the passages are embedded before the file lock is taken (minutes for a
        large index, during which other processes go on writing and refreshing): once it is held, a
        generation that moved means another process wrote meanwhile, so the documents are read and
        planned again, and only what they hold that was not embedded yet is embedded then."""
        self._apply_layout(self._configured)
        chunked: dict[tuple, list[Chunk]] = {}
        conn = self._rconn()
        gen, docs = self._stored_documents(conn)
        plans = [self._plan_document(doc, h, chunked) for doc, h in docs]
        conn.execute("BEGIN")  # the model check and the vectors it vouches for: one read
        try:
            # the same model (a new chunk size or dense index type): passages already embedded keep their vectors
            same_model = self._built_with_problem(conn) is None
            known = self._stored_vectors(conn, {h for p in plans for h in p.hashes}) if same_model else {}
        finally:
            conn.execute("COMMIT")
        computed, embedded = self._vectors_for(None, plans, known, progress)
        with self._file_lock():
            c = self._wconn
            if self._generation(c) != gen:  # written meanwhile: what the index holds now
                _, docs = self._stored_documents(c)
                plans = [self._plan_document(doc, h, chunked) for doc, h in docs]
            # vectors of the index only if they are still this model's (another rebuild may have landed)
            vectors, late = self._vectors_for(c if self._built_with_problem(c) is None else None, plans, computed, progress)
            embedded += late
            chunks_before = c.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
            self._write_plans(c, plans, {}, {}, vectors, rebuild=True)
        chunks = sum(len(p.chunks) for p in plans)
        log.info("re-chunked %d documents (%d chunks, %d embedded with %s)", len(plans), chunks, embedded, self.embedder.identity)
        self.rebuilt = RebuildReport(len(plans), chunks_before, chunks, embedded)

    # -------------------------------------------------------------------------------------- reading

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the index store is closed")

    def get_document(self, doc_id: str) -> Document | None:
        return _get_document(self._rconn(), doc_id, self._warned_urls)

    def get_chunks(self, doc_id: str) -> list[Chunk]:
        conn = self._rconn()
        doc_id = _stored_id(conn, doc_id) or doc_id
        rows = conn.execute("SELECT id, document_id, start_char, end_char, text FROM chunks WHERE document_id=? ORDER BY start_char, end_char", (doc_id,))
        return [Chunk(id=r[0], document_id=r[1], start=r[2], end=r[3], text=r[4]) for r in rows]

    def list_documents(self, offset: int = 0, limit: int = 50) -> tuple[list[DocumentInfo], int]:
        return _list_documents(self._rconn(), offset, limit, self._warned_urls)

    def source_files(self) -> list[tuple[str, str]]:
        """(id, the file it was read from) of every document `qa index` read from a file."""
        rows = self._rconn().execute(
            # CASE, not AND: SQLite's JSON functions raise on rows that are not JSON (NaN stored by older versions)
            "SELECT id, json_extract(metadata, '$.source_file') FROM documents "
            "WHERE CASE WHEN json_valid(metadata) THEN json_type(metadata, '$.source_file') = 'text' ELSE 0 END")
        return [(r[0], r[1]) for r in rows]

    def counts(self) -> dict:
        conn = self._rconn()
        return {
            "documents": conn.execute("SELECT count(*) FROM documents").fetchone()[0],
            "chunks": conn.execute("SELECT count(*) FROM chunks").fetchone()[0],
        }

    @property
    def generation(self) -> int:
        return self._snap.generation if self._snap else 0

    def check_consistency(self) -> None:
        """Raise RuntimeError listing every disagreement between SQLite, the FAISS index and the BM25 index
        (in memory and on disk)."""
        problems = []
        with self._write_lock:
            snap = self._snap
            conn = self._rconn()
            conn.execute("BEGIN")
            try:
                gen = self._generation(conn)
                sql_ids = np.asarray([r[0] for r in conn.execute("SELECT id FROM chunks ORDER BY id")], dtype=np.int64)
                bad_counts = conn.execute(
                    "SELECT d.id, d.n_chunks, count(c.id) FROM documents d LEFT JOIN chunks c ON c.document_id = d.id GROUP BY d.id HAVING d.n_chunks != count(c.id)"
                ).fetchall()
                # in Python: SQLite's substr stops at a NUL character, which a text may hold
                texts = dict(conn.execute("SELECT id, text FROM documents"))
                bad_offsets = [
                    (cid,) for cid, doc_id, start, end, text in conn.execute("SELECT id, document_id, start_char, end_char, text FROM chunks")
                    if texts.get(doc_id, "")[start:end] != text
                ][:5]
                bad_vectors = conn.execute("SELECT count(*) FROM chunks WHERE length(vector) != ?", (4 * int(self.embedder.dim),)).fetchone()[0]
                orphans = conn.execute("SELECT count(*) FROM chunks c LEFT JOIN documents d ON d.id = c.document_id WHERE d.id IS NULL").fetchone()[0]
            finally:
                conn.execute("COMMIT")
            if snap is None:
                raise RuntimeError("no index loaded")
            if snap.generation != gen:
                problems.append(f"loaded generation {snap.generation} != database generation {gen}")
            dense_ids = np.sort(dense_mod.index_ids(snap.dense))
            if snap.dense.ntotal != len(dense_ids):
                problems.append(f"FAISS ntotal {snap.dense.ntotal} != {len(dense_ids)} ids")
            for name, ids in (("FAISS", dense_ids), ("BM25", np.asarray(snap.keyword.ids)), ("snapshot", snap.chunk_ids)):
                if not np.array_equal(ids, sql_ids):
                    only_sql = np.setdiff1d(sql_ids, ids)
                    only_idx = np.setdiff1d(ids, sql_ids)
                    problems.append(f"{name} ids differ from SQLite: {len(sql_ids)} in SQLite, {len(ids)} in {name}, {len(only_sql)} missing, {len(only_idx)} extra")
            if not self._dense_path(gen).is_file():
                problems.append(f"{self._dense_path(gen).name} missing on disk")
            else:
                on_disk = dense_mod.load(self._dense_path(gen))
                if not np.array_equal(np.sort(dense_mod.index_ids(on_disk)), sql_ids):
                    problems.append(f"{self._dense_path(gen).name} ids differ from SQLite")
            if not self._keyword_path(gen).is_dir():
                problems.append(f"{self._keyword_path(gen).name} missing on disk")
            elif not np.array_equal(np.load(self._keyword_path(gen) / "ids.npy"), sql_ids):
                problems.append(f"{self._keyword_path(gen).name} ids differ from SQLite")
            if bad_counts:
                problems.append(f"documents whose chunk count is wrong: {bad_counts[:5]}")
            if bad_offsets:
                problems.append(f"chunks whose text is not document.text[start:end]: {[r[0] for r in bad_offsets]}")
            if bad_vectors:
                problems.append(f"{bad_vectors} chunks with a vector of the wrong size")
            if orphans:
                problems.append(f"{orphans} chunks without a document")
        if problems:
            raise RuntimeError("index inconsistent: " + "; ".join(problems))

    def search(self, query: str, top_k: int = 10, mode: str = "hybrid", filters: Filters | None = None) -> list[SearchResult]:
        """Best chunks for ``query``: ``hybrid`` (RRF of dense and BM25), ``dense`` or ``bm25``; filters
        are applied before the lists are cut, so ``top_k`` results come back whenever that many match."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self._check_open()
        if time.monotonic() - self._last_refresh > REFRESH_EVERY_S:
            self._last_refresh = time.monotonic()
            try:
                self.refresh()
            except (sqlite3.Error, OSError) as exc:  # the snapshot this process has is still whole: serve it
                log.warning("cannot pick up the latest writes to %s (%s): serving the index as it was", self.data_dir, exc)
        snap = self._snap
        if top_k <= 0 or not query or not query.strip() or snap is None or len(snap.chunk_ids) == 0:
            return []
        depth = candidate_depth(top_k)
        doc_mask = snap.docs.allowed(filters)
        row_mask = allowed = None
        if doc_mask is not None:
            row_mask = doc_mask[snap.chunk_doc] if len(snap.chunk_doc) else np.zeros(0, bool)
            allowed = snap.chunk_ids[row_mask]
            if len(allowed) == 0:
                return []
        lists: list[tuple[np.ndarray, np.ndarray]] = []
        if mode in ("dense", "hybrid"):
            with self._model_lock:
                qv = self.embedder.encode_queries([query])[0]
            lists.append(dense_mod.search(snap.dense, self.dense_kind, qv, depth, allowed, ef_search=self.ef_search))
        if mode in ("bm25", "hybrid"):
            lists.append(snap.keyword.search(analyze(query), depth, row_mask))
        if mode == "hybrid":
            ranked = rrf([ids for ids, _ in lists], self.rrf_k)[:top_k]
        else:
            ids, scores = lists[0]
            ranked = list(zip(ids.tolist(), scores.tolist()))[:top_k]
        return self._results(ranked)

    def _results(self, ranked: list[tuple[int, float]]) -> list[SearchResult]:
        if not ranked:
            return []
        ids = [cid for cid, _ in ranked]
        q = (
            "SELECT c.id, c.document_id, d.title, d.url, d.published, c.text, c.start_char, c.end_char "
            f"FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id IN ({','.join('?' * len(ids))})"
        )
        rows = {r[0]: r for r in self._rconn().execute(q, ids)}
        out = []
        for cid, score in ranked:
            r = rows.get(cid)
            if r is None:  # deleted by a write that landed after our snapshot
                continue
            url = served_url(r[1], r[3], self._warned_urls)
            out.append(SearchResult(chunk_id=r[0], document_id=r[1], title=r[2], url=url, published=r[4], text=r[5], start=r[6], end=r[7], score=float(score)))
        return out

    # ------------------------------------------------------------------------------------- closing

    def close(self) -> None:
        if self._closed:
            return
        with self._write_lock:
            self._closed = True
            with self._conns_lock:
                for _, conn in self._read_conns:
                    try:
                        conn.close()
                    except sqlite3.Error:
                        pass
                self._read_conns.clear()
            try:
                self._wconn.close()
            except sqlite3.Error:
                pass

    def __enter__(self) -> "IndexStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def add_in_batches(store: IndexStore, docs: list[Document], batch_docs: int, progress: bool = False) -> Iterator[tuple[int, AddReport]]:
    """``store.add_documents`` on ``batch_docs`` documents at a time, yielding (documents done, report).

    Each batch is its own atomic write, so a long ingest that is interrupted keeps the batches
    already written; running it again skips them (unchanged documents are not re-embedded)."""
    if batch_docs < 1:
        raise ValueError(f"batch_docs must be at least 1, not {batch_docs}")
    for i in range(0, len(docs), batch_docs):
        batch = docs[i : i + batch_docs]
        yield i + len(batch), store.add_documents(batch, progress=progress)
