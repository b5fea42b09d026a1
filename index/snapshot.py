"""What searches read, and the index files of each generation it is loaded from.

Crash safety. SQLite holds documents, chunks, their vectors (float32 blobs) and analysed terms, and
a ``generation`` counter. Index files carry the generation in their names
(``dense-flat-<gen>.faiss``, ``bm25-<gen>/``) and are written to a temporary name and renamed.
A write (``index.store``) embeds first (nothing stored yet), commits one SQLite transaction that
bumps the generation, then writes the index files of the new generation. Opening a store whose
files do not match the SQLite generation (a kill between the commit and the renames) rebuilds them
from SQLite (``load_snapshot`` with ``repair``), without re-embedding. So a crash at any moment
leaves the old consistent state or the new one.

Searches read an immutable ``Snapshot`` (FAISS index, BM25 index, metadata arrays) that a write
replaces in one assignment, and rank its chunks (``rank``).
"""

from __future__ import annotations

import logging
import re
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index import dense as dense_mod
from index.keyword import KeywordIndex
from index.retrieval import DocTable, Fusion, candidate_depth
from index.schema import Filters
from index.text import analyze
from index.storage import meta, one_line, read_transaction

log = logging.getLogger("index.store")  # the store's messages keep one name, whichever module logs them


@dataclass
class Snapshot:
    generation: int
    dense: object  # faiss.IndexIDMap2
    keyword: KeywordIndex
    chunk_ids: np.ndarray  # sorted int64, aligned with keyword rows
    chunk_doc: np.ndarray  # int32 document row of each chunk
    docs: DocTable


def rank(snap: Snapshot | None, query: str, top_k: int, mode: str, filters: Filters | None,
         encode_query: Callable[[str], np.ndarray], kind: str, ef_search: int, fusion: Fusion) -> list[tuple[int, float]]:
    """The best chunks of ``snap`` for ``query`` as (chunk id, score): ``hybrid`` (dense and BM25 lists
    fused by ``fusion``), ``dense`` or ``bm25``; filters are applied before the lists are cut, so ``top_k`` chunks
    come back whenever that many match."""
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
        lists.append(dense_mod.search(snap.dense, kind, encode_query(query), depth, allowed, ef_search=ef_search))
    if mode in ("bm25", "hybrid"):
        lists.append(snap.keyword.search(analyze(query), depth, row_mask))
    if mode == "hybrid":
        return fusion.fuse(*lists)[:top_k]
    ids, scores = lists[0]
    return list(zip(ids.tolist(), scores.tolist()))[:top_k]


def dense_path(data_dir: Path, kind: str, gen: int) -> Path:
    return Path(data_dir) / f"dense-{kind}-{gen}.faiss"


def keyword_path(data_dir: Path, gen: int) -> Path:
    return Path(data_dir) / f"bm25-{gen}"


def stored_generation(conn: sqlite3.Connection) -> int:
    return int(meta(conn, "generation", "0"))


def bump_generation(conn: sqlite3.Connection) -> int:
    gen = stored_generation(conn) + 1
    conn.execute("UPDATE meta SET value=? WHERE key='generation'", (str(gen),))
    return gen


def read_state(conn: sqlite3.Connection) -> tuple[int, np.ndarray, np.ndarray, DocTable]:
    """Generation, sorted chunk ids, their document rows, the document table: one consistent read
    (inside the caller's transaction when one is open)."""
    with read_transaction(conn):
        gen = stored_generation(conn)
        docs = DocTable.build(conn.execute("SELECT id, url, published FROM documents ORDER BY id").fetchall())
        rows = conn.execute("SELECT id, document_id FROM chunks ORDER BY id").fetchall()
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    chunk_doc = np.fromiter((docs.index[r[1]] for r in rows), dtype=np.int32, count=len(rows))
    return gen, ids, chunk_doc, docs


def build_dense(conn: sqlite3.Connection, dim: int, kind: str) -> object:
    ids, vecs = [], []
    for cid, blob in conn.execute("SELECT id, vector FROM chunks ORDER BY id"):
        ids.append(cid)
        vecs.append(blob)
    matrix = np.frombuffer(b"".join(vecs), dtype=np.float32).reshape(len(ids), dim) if ids else np.zeros((0, dim), np.float32)
    return dense_mod.build(dim, kind, np.asarray(ids, dtype=np.int64), matrix)


def build_keyword(conn: sqlite3.Connection) -> KeywordIndex:
    ids, terms = [], []
    for cid, t in conn.execute("SELECT id, terms FROM chunks ORDER BY id"):
        ids.append(cid)
        terms.append(t.split())
    return KeywordIndex.build(np.asarray(ids, dtype=np.int64), terms)


@dataclass(frozen=True)
class Unusable:
    """Why an index file of SQLite's generation is not loaded, as the rebuild's log line says it:
    ``damaged`` (it cannot be read, or it does not fit the database) is a warning, a file missing
    (none of any generation: a backup restored without them, files deleted) or stale (only another
    generation's: a write stopped between its commit and its files) is the recovery doing its job."""

    why: str
    damaged: bool


def _missing(path: Path, gen: int, pattern: re.Pattern[str]) -> Unusable:
    """``path``, the file of generation ``gen``, is not there: missing, or stale when the folder
    holds the same file of another generation (``pattern``'s group: which ``cleanup`` removes next)."""
    others = sorted(int(m.group(1)) for p in path.parent.iterdir() if (m := pattern.fullmatch(p.name)) and int(m.group(1)) != gen)
    if not others:
        return Unusable(f"{path} is missing", damaged=False)
    if others[-1] < gen:  # the files of an earlier generation: a write committed, then stopped
        return Unusable(f"{path} is missing, and the one of generation {others[-1]} is stale "
                        "(a write stopped after its commit, before writing its index files)", damaged=False)
    return Unusable(f"{path} is missing, and the one of generation {others[-1]} is stale (of another state of the database)", damaged=False)


def _load_dense(path: Path, kind: str, gen: int, chunks: int, dim: int) -> object | Unusable:
    """The dense index file of generation ``gen``, or why it cannot be used."""
    if not path.is_file():
        return _missing(path, gen, re.compile(rf"dense-{re.escape(kind)}-(\d+)\.faiss"))
    try:
        dense = dense_mod.load(path)
    except Exception as exc:  # a damaged file is rebuilt, never trusted
        return Unusable(f"{path} is damaged ({one_line(str(exc))})", damaged=True)
    if dense.ntotal != chunks or dense.d != dim:
        return Unusable(f"{path} is damaged, or not this database's: {dense.ntotal} vectors of dimension {dense.d} "
                              f"for {chunks} chunks of dimension {dim}", damaged=True)
    return dense


def _load_keyword(path: Path, gen: int, chunks: int) -> KeywordIndex | Unusable:
    """The BM25 index folder of generation ``gen``, or why it cannot be used."""
    if not path.is_dir():
        return _missing(path, gen, re.compile(r"bm25-(\d+)"))
    try:
        keyword = KeywordIndex.load(path)
    except Exception as exc:
        return Unusable(f"{path} is damaged ({one_line(str(exc))})", damaged=True)
    if len(keyword) != chunks:
        return Unusable(f"{path} is damaged, or not this database's: {len(keyword)} rows for {chunks} chunks", damaged=True)
    return keyword


def _say_rebuilding(what: str, gen: int, source: str, problem: Unusable) -> None:
    """The rebuild of ``what``, with why: a warning when its file was damaged; at generation 0 (a
    new, empty index) a file missing is nothing to report."""
    level = logging.WARNING if problem.damaged else logging.INFO if gen else logging.DEBUG
    log.log(level, "rebuilding %s of generation %d from %s: %s", what, gen, source, problem.why)


def load_snapshot(conn: sqlite3.Connection, data_dir: Path, kind: str, dim: int, repair: bool) -> Snapshot | None:
    """Load the index files of SQLite's generation; with ``repair`` (write lock held) rebuild missing,
    stale or damaged ones from SQLite, saying which, else return None when they are not there yet
    (said by the caller's repair, if it comes: another process may be writing them)."""
    gen, ids, chunk_doc, docs = read_state(conn)
    dpath, kpath = dense_path(data_dir, kind, gen), keyword_path(data_dir, gen)
    dense = _load_dense(dpath, kind, gen, len(ids), dim)
    keyword = _load_keyword(kpath, gen, len(ids))
    if isinstance(dense, Unusable) or isinstance(keyword, Unusable):
        if not repair:
            return None
        cleanup(data_dir, kind, gen)  # leftovers first: on a full disk they hold the room the rebuilt files need
        if isinstance(dense, Unusable):
            _say_rebuilding("the dense index", gen, "stored vectors", dense)
            built = build_dense(conn, dim, kind)
            _save_or_serve(lambda: dense_mod.save(built, dpath), dpath, data_dir)
            dense = built
        if isinstance(keyword, Unusable):
            _say_rebuilding("the BM25 index", gen, "stored terms", keyword)
            terms = build_keyword(conn)
            _save_or_serve(lambda: terms.save(kpath), kpath, data_dir)
            keyword = terms
    return Snapshot(gen, dense, keyword, ids, chunk_doc, docs)


def _save_or_serve(save: Callable[[], None], path: Path, data_dir: Path) -> None:
    """Write a rebuilt index file; when that fails (a full disk, a folder made read-only), the
    index is served from memory all the same: reads must not fail for want of a cache file."""
    try:
        save()
    except OSError as exc:
        log.warning("cannot write %s (%s): the index is served from memory; make room in %s (or make it "
                    "writable) and the next open writes it", path, exc, data_dir)


def cleanup(data_dir: Path, kind: str, gen: int) -> None:
    """Remove index files of other generations and temporary leftovers."""
    keep = {dense_path(data_dir, kind, gen).name, keyword_path(data_dir, gen).name}
    pattern = re.compile(r"^(dense-(flat|hnsw)-\d+\.faiss|bm25-\d+)(\.tmp-\d+)?$")
    for p in Path(data_dir).iterdir():
        if p.name in keep or not pattern.match(p.name):
            continue
        try:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        except OSError as exc:
            log.warning("cannot remove %s: %s", p, exc)


def consistency_problems(conn: sqlite3.Connection, snap: Snapshot | None, data_dir: Path, kind: str, dim: int) -> list[str]:
    """Every disagreement between SQLite, the snapshot's FAISS and BM25 indexes and their files on
    disk (the caller holds the write lock). Raises RuntimeError when no snapshot is loaded."""
    problems = []
    with read_transaction(conn):
        gen = stored_generation(conn)
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
        bad_vectors = conn.execute("SELECT count(*) FROM chunks WHERE length(vector) != ?", (4 * dim,)).fetchone()[0]
        orphans = conn.execute("SELECT count(*) FROM chunks c LEFT JOIN documents d ON d.id = c.document_id WHERE d.id IS NULL").fetchone()[0]
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
    dpath, kpath = dense_path(data_dir, kind, gen), keyword_path(data_dir, gen)
    if not dpath.is_file():
        problems.append(f"{dpath.name} missing on disk")
    else:
        on_disk = dense_mod.load(dpath)
        if not np.array_equal(np.sort(dense_mod.index_ids(on_disk)), sql_ids):
            problems.append(f"{dpath.name} ids differ from SQLite")
    if not kpath.is_dir():
        problems.append(f"{kpath.name} missing on disk")
    elif not np.array_equal(np.load(kpath / "ids.npy"), sql_ids):
        problems.append(f"{kpath.name} ids differ from SQLite")
    if bad_counts:
        problems.append(f"documents whose chunk count is wrong: {bad_counts[:5]}")
    if bad_offsets:
        problems.append(f"chunks whose text is not document.text[start:end]: {[r[0] for r in bad_offsets]}")
    if bad_vectors:
        problems.append(f"{bad_vectors} chunks with a vector of the wrong size")
    if orphans:
        problems.append(f"{orphans} chunks without a document")
    return problems
