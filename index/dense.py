"""FAISS inner-product index with stable int64 ids: exact (IndexFlatIP) or HNSW, wrapped in IndexIDMap2."""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 200  # recall@10 vs exact at 100k clustered vectors: ef 96 0.88, 200 0.93, 500 0.96 (bench/index_scale.py)
KINDS = ("flat", "hnsw")

# Searches are one query at a time, often from several request threads: FAISS's OpenMP threads only
# add overhead there (measured on 2 cores: 10k vectors 13 ms with 2 threads, 0.7 ms with 1). Builds
# of HNSW graphs, which do parallelise, raise the count for their duration.
faiss.omp_set_num_threads(1)


@contextmanager
def _all_cores():
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(1)


def new_index(dim: int, kind: str = "flat") -> faiss.Index:
    if kind == "flat":
        base = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        base = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        base.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        base.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        raise ValueError(f"unknown dense index {kind!r} (use one of {KINDS})")
    return faiss.IndexIDMap2(base)


def build(dim: int, kind: str, ids: np.ndarray, vectors: np.ndarray) -> faiss.Index:
    index = new_index(dim, kind)
    if len(ids):
        with _all_cores():
            index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64))
    return index


def index_ids(index: faiss.Index) -> np.ndarray:
    return faiss.vector_to_array(index.id_map).astype(np.int64, copy=False)


def supports_remove(kind: str) -> bool:
    return kind == "flat"


def updated(index: faiss.Index, kind: str, remove: np.ndarray, add_ids: np.ndarray, add_vecs: np.ndarray) -> faiss.Index | None:
    """A new index with the change applied (the given one is left untouched for concurrent readers).
    Returns None when the change needs a rebuild from stored vectors (removal from HNSW)."""
    if len(remove) and not supports_remove(kind):
        return None
    new = faiss.clone_index(index)
    if len(remove):
        new.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(remove, dtype=np.int64)))
    if len(add_ids):
        with _all_cores():
            new.add_with_ids(np.ascontiguousarray(add_vecs, dtype=np.float32), np.ascontiguousarray(add_ids, dtype=np.int64))
    return new


def search(index: faiss.Index, kind: str, query: np.ndarray, k: int, allowed: np.ndarray | None = None, ef_search: int = HNSW_EF_SEARCH) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` (ids, scores) for one query vector, optionally restricted to the ``allowed`` ids.

    ``ef_search`` is HNSW's search depth (recall against speed); the flat index ignores it."""
    n = index.ntotal if allowed is None else min(index.ntotal, len(allowed))
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
    ef = max(int(ef_search), 2 * k)
    if allowed is None:
        params = faiss.SearchParametersHNSW(efSearch=ef) if kind == "hnsw" else None
        scores, ids = index.search(q, k, params=params)
    elif kind == "hnsw" and len(allowed) <= 50_000:
        # filtered graph search can miss when few nodes qualify: score the allowed vectors exactly
        vecs = index.reconstruct_batch(np.ascontiguousarray(allowed, dtype=np.int64))
        sims = vecs @ q[0]
        top = np.argsort(-sims, kind="stable")[:k]
        return np.asarray(allowed, dtype=np.int64)[top], sims[top].astype(np.float32)
    else:
        sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        params = faiss.SearchParametersHNSW(sel=sel, efSearch=ef) if kind == "hnsw" else faiss.SearchParameters(sel=sel)
        scores, ids = index.search(q, k, params=params)
    keep = ids[0] >= 0
    return ids[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)


def _as_os_error(exc: RuntimeError, path: Path) -> OSError:
    """faiss's RuntimeError for a file it could not write, with the errno its message names."""
    message = str(exc).strip().splitlines()[-1]
    code = next((n for n in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM) if os.strerror(n) in message), errno.EIO)
    return OSError(code, message, str(path))


def save(index: faiss.Index, path: Path) -> None:
    """Temp file, fsync, rename: the file is either the complete new index or absent."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    try:
        try:
            faiss.write_index(index, str(tmp))
        except RuntimeError as exc:  # faiss reports a full disk or a closed folder so: an OSError, as for any file
            raise _as_os_error(exc, tmp) from exc
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a partial file would hold the space that is missing
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def load(path: Path) -> faiss.Index:
    index = faiss.read_index(str(path))
    if not isinstance(index, faiss.IndexIDMap2):
        raise ValueError(f"{path} is not an IndexIDMap2")
    return index
