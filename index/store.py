"""The index store: documents and chunks in SQLite (the source of truth), FAISS and BM25 indexes on disk.

Its parts: ``index.storage`` (connections, the cross-process write lock, what a failed write says),
``index.catalog`` (the tables and the document reads, also without the models), ``index.identity``
(the model and chunk layout an index records), ``index.snapshot`` (what searches read, and the index
files of each generation: crash safety), ``index.writes`` (what a write changes, as SQL sees it).

Writes. A write embeds first (nothing stored yet), commits one SQLite transaction that bumps the
generation, then writes the index files of the new generation; a crash at any moment leaves the old
consistent state or the new one (``index.snapshot``).

Concurrency. Writes are serialised by a lock (and a file lock across processes), taken once the
write's passages are embedded: meanwhile other writers go on, and so do the refreshes that bring
this process's searches the writes of other processes. Once locked, a write plans again against
what was written meanwhile and embeds the difference (a rebuild too: it re-reads every document).
Searches read an immutable snapshot (FAISS index, BM25 index, metadata arrays) that a write
replaces in one assignment; SQLite reads use one connection per thread (WAL mode). The embedder's
tokenizer is not safe to share between threads, so model calls take a short lock (per batch for
long jobs).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from index import dense as dense_mod
from index import snapshot as snapshots
from index.catalog import DB_NAME, DocumentCatalog, DocumentInfo, get_document, index_exists, list_documents, counts, refuse_foreign, search_results, shown_url, source_files, stored_among, stored_id
from index.chunking import chunk_document, content_hash, token_budget
from index.retrieval import Fusion
from index.identity import PROBE_TEXT, RecordedEmbedder, built_with_problem, describe_layout, index_layout, prepare_index, probe_meta, recorded_embedder
from index.schema import MODES, Chunk, Document, Filters, SearchResult, normalize_id
from index.snapshot import Snapshot, bump_generation, stored_generation
from index.storage import ReadConnections, ReindexNeeded, batched, connect, file_lock, meta, rollback, storage_problem
from index.text import ANALYZER_VERSION
from index.writes import AddReport, Plan, RebuildReport, drop_refused_urls, match_key_problems, plan_batch, reanalyze, stored_documents, stored_vectors, update_match_keys, write_rows

# what callers import from here (the store's modules are an implementation detail)
__all__ = [
    "AddReport", "DB_NAME", "DocumentCatalog", "DocumentInfo", "IndexStore", "RebuildReport", "RecordedEmbedder",
    "ReindexNeeded", "TITLE_EMBED_CHARS", "add_in_batches", "index_exists", "passage_text",
    "recorded_embedder", "storage_problem",
]

log = logging.getLogger(__name__)

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


# Crash-safety tests (tests/crash_writer.py) set this in a child process so that the store kills
# itself exactly at that point; deliberately not a setting, so no environment can turn it on.
CRASH_AT: str | None = None


def _crash_point(name: str) -> None:
    if CRASH_AT == name:
        os.kill(os.getpid(), signal.SIGKILL)


def passage_text(title: str | None, text: str) -> str:
    """What is embedded and keyword-indexed for a chunk: the title as a header line, then the chunk."""
    if TITLE_IN_PASSAGE and title:
        t = " ".join(title.split())[:TITLE_EMBED_CHARS]
        return f"{t}\n{text}"
    return text


class IndexStore:
    def __init__(self, data_dir: Path, embedder, *, chunk_tokens: int, overlap_tokens: int, dense_index: str, fusion: Fusion = Fusion(), ef_search: int = dense_mod.HNSW_EF_SEARCH):
        if dense_index not in dense_mod.KINDS:
            raise ValueError(f"dense_index must be one of {dense_mod.KINDS}, not {dense_index!r}")
        if ef_search < 1:
            raise ValueError(f"ef_search must be at least 1, not {ef_search}")
        self.ef_search = int(ef_search)
        self.data_dir = Path(data_dir)
        self.embedder = embedder
        self.dense_kind = dense_index
        self.fusion = fusion
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
        self._read_conns = ReadConnections(self.db_path)
        self._snap: Snapshot | None = None
        self._last_refresh = 0.0
        self._closed = False
        self.rebuilt: RebuildReport | None = None  # what opening with rebuild=True re-chunked
        self._warned_urls: set[str] = set()  # documents whose stored URL was withheld (served_url)
        self._wconn = connect(self.db_path)

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
        fusion: Fusion = Fusion(),
        ef_search: int = dense_mod.HNSW_EF_SEARCH,
        rebuild: bool = False,
    ) -> "IndexStore":
        """Open (creating if needed) the store in ``data_dir``.

        Raises ReindexNeeded when it was built with another embedder, unless ``rebuild`` is set: then
        every stored document is re-chunked and re-embedded with this embedder (one atomic write)."""
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        refuse_foreign(data_dir)  # before connecting: that alone would switch the database to WAL
        store = cls(data_dir, embedder, chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens, dense_index=dense_index, fusion=fusion, ef_search=ef_search)
        try:
            with store._write_lock:
                stale = store._init_schema(rebuild)
                if stale:
                    store._reindex_all(progress=True)  # takes the file lock once it has embedded
                else:
                    # the usual case takes no file lock, so opening is not blocked by a long write elsewhere
                    store._snap = store._load_snapshot(repair=False)
                    if store._snap is None:  # files missing or damaged (e.g. a crash after a commit): rebuild them
                        with file_lock(store.data_dir):
                            store._snap = store._load_snapshot(repair=True)
                            store._cleanup(store._snap.generation)
        except BaseException:
            store.close()
            raise
        return store

    def _rconn(self) -> sqlite3.Connection:
        return self._read_conns.get()

    def _init_schema(self, rebuild: bool) -> bool:
        """Create tables, check the embedder; True when the stored vectors must be recomputed."""
        c = self._wconn
        probe = self._probe_meta()  # a model call: before the database is locked for writing
        c.execute("BEGIN IMMEDIATE")
        try:
            n_chunks, layout = prepare_index(c, self.data_dir, self.embedder, probe, self._configured)
            # no generation bump: searches read URLs from SQLite, not from the index files
            dropped = drop_refused_urls(c)
            keyed = update_match_keys(c)  # no generation bump either: no index file holds them
            c.execute("COMMIT")
        except BaseException:
            rollback(c)
            raise
        if keyed:
            log.info("stored the match keys of %d documents for the documents search (GET /documents?q=, qa docs list --search)", keyed)
        for doc_id, url, problem in dropped:
            log.warning("document %r: removed the URL %s that an earlier version stored (the document is kept): it %s", doc_id, shown_url(url), problem)
        problem = self._built_with_problem(c)
        if problem is not None:
            if n_chunks and not rebuild:
                raise ReindexNeeded(*problem)
            return True
        if layout is not None and layout != self._configured and not rebuild:
            # one chunk size and one dense index type for the whole index: it keeps its own
            self._apply_layout(layout)
            log.warning(
                "index at %s keeps its own layout (%s) rather than the configured one (%s); "
                "`qa index --rebuild` re-chunks it with the configured one",
                self.data_dir, describe_layout(layout), describe_layout(self._configured),
            )
        if meta(c, "analyzer") != ANALYZER_VERSION:
            with file_lock(self.data_dir):
                reanalyze(self._wconn, passage_text)
        return bool(rebuild)

    def _layout(self) -> dict[str, str]:
        """How documents are laid out in this index (meta keys and values): fixed when it is created."""
        return {"chunk_tokens": str(self.chunk_size), "overlap_tokens": str(self.overlap), "dense_index": self.dense_kind}

    def _apply_layout(self, layout: dict[str, str]) -> None:
        """Use ``layout``."""
        self.chunk_size = int(layout["chunk_tokens"])
        self.overlap = int(layout["overlap_tokens"])
        if layout["dense_index"] in dense_mod.KINDS:
            self.dense_kind = layout["dense_index"]

    def _follow_layout(self, conn) -> None:
        """Before a write or after another process's: the index's layout, or the configured one when
        it has no documents (yet, or any more)."""
        self._apply_layout(index_layout(conn, self.data_dir, self._configured) or self._configured)

    def _probe(self) -> np.ndarray | None:
        """The configured model's query vector for PROBE_TEXT (None without the model: a delete)."""
        if self._probe_vector is None and not isinstance(self.embedder, RecordedEmbedder):
            with self._model_lock:
                self._probe_vector = self.embedder.encode_queries([PROBE_TEXT])[0]
        return self._probe_vector

    def _built_with_problem(self, conn) -> tuple[str, str] | None:
        """Why this store's embedder cannot read or write the index (another model) and what to do, or None."""
        return built_with_problem(conn, self.data_dir, self.embedder, self._probe)

    def _probe_meta(self) -> list[tuple[str, str]]:
        return probe_meta(self._probe())

    # ------------------------------------------------------------------------------- index files

    def _load_snapshot(self, repair: bool) -> Snapshot | None:
        """Load the index files of SQLite's generation; with ``repair`` (write lock held) rebuild missing
        or mismatching ones from SQLite, else return None when they are not there yet."""
        conn = self._wconn if repair else self._rconn()
        return snapshots.load_snapshot(conn, self.data_dir, self.dense_kind, int(self.embedder.dim), repair)

    def _cleanup(self, gen: int) -> None:
        snapshots.cleanup(self.data_dir, self.dense_kind, gen)

    def refresh(self) -> bool:
        """Pick up a write made by another process (no-op when current). True when the snapshot changed."""
        snap = self._snap
        gen = stored_generation(self._rconn())
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
                with file_lock(self.data_dir, blocking=False) as locked:
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
            for idx in batched(order, EMBED_BATCH):
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
        with self._write_lock, file_lock(self.data_dir):
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
        """``plan_batch`` with this store's chunking; see there."""
        return plan_batch(conn, batch, lambda doc, h: self._plan_document(doc, h, chunked))

    def _plan_document(self, doc: Document, doc_hash: str, chunked: dict[tuple, list[Chunk]]) -> Plan:
        """``doc`` cut with the current layout, its passages and their hashes. ``chunked`` keeps each
        document's chunks by content hash and chunk size so that a second plan does not chunk it
        again, unless the index was re-chunked with another size in between."""
        # read once: before the locks, a refresh may take up another process's rebuild meanwhile
        size, overlap = self.chunk_size, self.overlap
        chunks = chunked.get((doc.id, doc_hash, size, overlap))
        if chunks is None:
            chunks = chunked[(doc.id, doc_hash, size, overlap)] = self._chunk(doc, size, overlap)
        passages = [passage_text(doc.title, ch.text) for ch in chunks]
        return Plan(doc, doc_hash, chunks, passages, [content_hash(p) for p in passages])

    def _vectors_for(self, conn, plans: list[Plan], known: dict[str, bytes], progress: bool) -> tuple[dict[str, bytes], int]:
        """Vectors of the plans' passages by content hash: from ``known``, from the index through
        ``conn`` (a passage stored before; None: the index holds another model's vectors), the rest
        embedded now; and how many were embedded."""
        hashes = {h for plan in plans for h in plan.hashes}
        vectors = {h: v for h, v in known.items() if h in hashes}
        if conn is not None:
            vectors.update(stored_vectors(conn, hashes - set(vectors)))
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

    def _write_plans(self, c, plans: list[Plan], replaced: dict[str, list[str]], old: dict[int, tuple[str, str]],
                     vectors: dict[str, bytes], *, rebuild: bool = False) -> tuple[int, int]:
        """Under both locks: one transaction that writes the plans (``write_rows``), then the new
        snapshot is published; the chunks added and removed. A ``rebuild`` also records the embedder."""
        c.execute("BEGIN IMMEDIATE")  # one transaction: the new state or the old one
        try:
            removed, add_ids, add_vecs = write_rows(c, plans, replaced, old, vectors, int(self.embedder.dim), rebuild)
            # the layout these chunks were cut with (the index's own, or the configured one when the
            # index was empty): recorded, so that later writes from other settings follow it
            rows = list(self._layout().items())
            if rebuild:  # and the model that embedded them
                rows += [("embedder", self.embedder.identity), ("dim", str(self.embedder.dim)), ("analyzer", ANALYZER_VERSION), *self._probe_meta()]
            c.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", rows)
            bump_generation(c)
            snap = self._next_snapshot(removed, add_ids, add_vecs, rebuild=rebuild)
            _crash_point("before_commit")
            c.execute("COMMIT")
        except BaseException:
            rollback(c)
            raise
        _crash_point("committed")
        self._publish(snap)
        return len(add_ids), len(removed)

    def delete_document(self, doc_id: str) -> str | None:
        """Remove a document, its chunks, vectors and keyword entries: the id it was stored under
        (``doc_id`` or another Unicode form of it), or None when it was not there."""
        with self._write_lock, file_lock(self.data_dir):
            self._check_open()
            self._sync_for_write()
            c = self._wconn
            doc_id = stored_id(c, doc_id)  # "cafe\u0301" deletes "café"
            if doc_id is None:
                return None
            self._delete_rows(c, [doc_id])
            return doc_id

    def delete_from_sources(self, sources: dict[str, str]) -> tuple[list[str], int]:
        """Remove, in one write, the documents of these stored ids whose ``source_file`` is still the
        one given (id -> source_file; one written again meanwhile from another file, by another
        process, is kept): the ids removed and how many chunks went with them (`qa index --prune`)."""
        with self._write_lock, file_lock(self.data_dir):
            self._check_open()
            self._sync_for_write()
            c = self._wconn
            ids = [doc_id for doc_id, source in sources.items() if c.execute(
                # CASE, not AND: SQLite's JSON functions raise on rows that are not JSON (see source_files)
                "SELECT 1 FROM documents WHERE id=? AND CASE WHEN json_valid(metadata) "
                "THEN json_extract(metadata, '$.source_file') IS ? ELSE 0 END", (doc_id, source)).fetchone()]
            return ids, self._delete_rows(c, ids) if ids else 0

    def _delete_rows(self, c, ids: list[str]) -> int:
        """Under both locks: one transaction removing these stored documents, their chunks, vectors
        and keyword entries, then the new snapshot published; the chunks removed."""
        c.execute("BEGIN IMMEDIATE")
        try:
            removed: list[int] = []
            for doc_id in ids:
                removed += [r[0] for r in c.execute("SELECT id FROM chunks WHERE document_id=?", (doc_id,))]
                c.execute("DELETE FROM chunks WHERE document_id=?", (doc_id,))
                c.execute("DELETE FROM documents WHERE id=?", (doc_id,))
            bump_generation(c)
            snap = self._next_snapshot(np.asarray(removed, dtype=np.int64), np.zeros(0, np.int64), np.zeros((0, int(self.embedder.dim)), np.float32))
            c.execute("COMMIT")
        except BaseException:
            rollback(c)
            raise
        self._publish(snap)
        return len(removed)

    def _sync_for_write(self) -> None:
        """Under the file lock: if another process wrote since our snapshot, start from its state
        (unless it re-embedded the index with another model: then nothing more is written here),
        and take the index's layout as it is now."""
        if self._snap is None or stored_generation(self._wconn) != self._snap.generation:
            self._check_built_with(self._wconn)
            self._snap = self._load_snapshot(repair=True)
        self._follow_layout(self._wconn)

    def _check_built_with(self, conn) -> None:
        """After another process wrote: stop if it re-embedded the index with another model."""
        problem = self._built_with_problem(conn)
        if problem is not None:
            raise ReindexNeeded(*problem)

    def _next_snapshot(self, removed: np.ndarray, add_ids: np.ndarray, add_vecs: np.ndarray, *, rebuild: bool = False) -> Snapshot:
        """Inside the write transaction, before its commit (the connection sees its own rows): the
        in-memory indexes of the new state, so that they can be swapped in as soon as it commits."""
        c = self._wconn
        # a rebuild may change the dense index type, and is done before any snapshot is loaded
        dense = None if rebuild else dense_mod.updated(self._snap.dense, self.dense_kind, removed, add_ids, add_vecs)
        if dense is None:  # HNSW cannot remove: rebuild from the stored vectors
            dense = snapshots.build_dense(c, int(self.embedder.dim), self.dense_kind)
        keyword = snapshots.build_keyword(c)
        gen, ids, chunk_doc, docs = snapshots.read_state(c)
        return Snapshot(gen, dense, keyword, ids, chunk_doc, docs)

    def _publish(self, snap: Snapshot) -> None:
        """After the commit: swap the snapshot at once (searches never see SQLite's new rows with the
        old indexes), then write the index files of its generation. A failure there leaves this
        process serving the new state; the next open, or a reader's refresh, rebuilds the files. The
        write itself has committed, so such a failure is logged, not raised: a caller told that its
        write failed would send it again."""
        with self._snap_lock:
            self._snap = snap
        try:
            dense_mod.save(snap.dense, snapshots.dense_path(self.data_dir, self.dense_kind, snap.generation))
            _crash_point("dense_written")
            snap.keyword.save(snapshots.keyword_path(self.data_dir, snap.generation))
            _crash_point("keyword_written")
        except OSError as exc:  # dense.save turns faiss's RuntimeError into one
            log.error(
                "the write is saved in %s, but its index files could not be written (%s): this process "
                "serves it; the files are rebuilt by the next open or another process's refresh once there is room",
                self.db_path, exc,
            )
            return
        self._cleanup(snap.generation)

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
        gen, docs = stored_documents(conn)
        plans = [self._plan_document(doc, h, chunked) for doc, h in docs]
        conn.execute("BEGIN")  # the model check and the vectors it vouches for: one read
        try:
            # the same model (a new chunk size or dense index type): passages already embedded keep their vectors
            same_model = self._built_with_problem(conn) is None
            known = stored_vectors(conn, {h for p in plans for h in p.hashes}) if same_model else {}
        finally:
            conn.execute("COMMIT")
        computed, embedded = self._vectors_for(None, plans, known, progress)
        with file_lock(self.data_dir):
            c = self._wconn
            if stored_generation(c) != gen:  # written meanwhile: what the index holds now
                _, docs = stored_documents(c)
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
        return get_document(self._rconn(), doc_id, self._warned_urls)

    def get_chunks(self, doc_id: str) -> list[Chunk]:
        conn = self._rconn()
        doc_id = stored_id(conn, doc_id) or doc_id
        rows = conn.execute("SELECT id, document_id, start_char, end_char, text FROM chunks WHERE document_id=? ORDER BY start_char, end_char", (doc_id,))
        return [Chunk(id=r[0], document_id=r[1], start=r[2], end=r[3], text=r[4]) for r in rows]

    def list_documents(self, offset: int = 0, limit: int = 50, contains: str | None = None) -> tuple[list[DocumentInfo], int]:
        return list_documents(self._rconn(), offset, limit, self._warned_urls, contains)

    def source_files(self) -> list[tuple[str, str]]:
        """(id, the file it was read from) of every document `qa index` read from a file."""
        return source_files(self._rconn())

    def counts(self) -> dict:
        return counts(self._rconn())

    def stored_among(self, ids: Iterable[str]) -> set[str]:
        """Which of these exact ids are stored (a filter on any other matches nothing)."""
        return stored_among(self._rconn(), ids)

    def dates_kept(self, after, before) -> tuple[bool, object, object, int]:
        """``index.retrieval.dates_kept`` of the documents searched (the snapshot in memory, no query)."""
        from index.retrieval import dates_kept

        return dates_kept(self._snap.docs, after, before) if self._snap else (False, None, None, 0)

    def sites(self) -> list[str]:
        """The sites of the documents searched (``index.retrieval.normalize_domain`` of their URLs): what
        a source filter can match, read from the snapshot searches use (no query)."""
        return list(self._snap.docs.domains) if self._snap else []

    @property
    def generation(self) -> int:
        return self._snap.generation if self._snap else 0

    def check_consistency(self) -> None:
        """Raise RuntimeError listing every disagreement between SQLite, the FAISS index and the BM25 index
        (in memory and on disk)."""
        with self._write_lock:
            problems = snapshots.consistency_problems(self._rconn(), self._snap, self.data_dir, self.dense_kind, int(self.embedder.dim))
            problems += match_key_problems(self._rconn())
        if problems:
            raise RuntimeError("index inconsistent: " + "; ".join(problems))

    def search(self, query: str, top_k: int = 10, mode: str = "hybrid", filters: Filters | None = None) -> list[SearchResult]:
        """Best chunks for ``query``: ``hybrid`` (dense and BM25 fused, see ``Fusion``), ``dense`` or ``bm25``; filters
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
        ranked = snapshots.rank(self._snap, query, top_k, mode, filters, self._encode_query, self.dense_kind, self.ef_search, self.fusion)
        return search_results(self._rconn(), ranked, self._warned_urls) if ranked else []

    def _encode_query(self, query: str) -> np.ndarray:
        with self._model_lock:
            return self.embedder.encode_queries([query])[0]

    # ------------------------------------------------------------------------------------- closing

    def close(self) -> None:
        if self._closed:
            return
        with self._write_lock:
            self._closed = True
            self._read_conns.close()
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
