"""BM25 keyword index (bm25s) over analysed chunk terms, rows aligned with sorted chunk ids."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

K1 = 1.2
B = 0.75


def _bm25s():
    import bm25s

    # bm25s sets its own logger to DEBUG at import, which would print "Building index from tokens" on
    # every write whatever level the application chose; let the application's configuration decide
    if logging.getLogger("bm25s").level == logging.DEBUG:
        logging.getLogger("bm25s").setLevel(logging.NOTSET)
    return bm25s


class KeywordIndex:
    """Immutable once built: a write builds a new one (bm25s has no incremental update)."""

    def __init__(self, bm25, ids: np.ndarray):
        self.bm25 = bm25  # None when there are no chunks
        self.ids = np.asarray(ids, dtype=np.int64)
        self.vocab = bm25.vocab_dict if bm25 is not None else {}

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @classmethod
    def build(cls, ids, term_lists: list[list[str]]) -> "KeywordIndex":
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return cls(None, ids)
        bm25s = _bm25s()
        bm25 = bm25s.BM25(k1=K1, b=B, method="lucene")
        # bm25s wants at least one token per document: an empty chunk gets the empty token (scores nothing)
        corpus = [terms if terms else [""] for terms in term_lists]
        bm25.index(corpus, show_progress=False)
        return cls(bm25, ids)

    def search(self, terms: list[str], k: int, row_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Chunk ids and BM25 scores of the best ``k`` rows with a positive score."""
        empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
        if self.bm25 is None or k <= 0:
            return empty
        tids = [self.vocab[t] for t in terms if t and t in self.vocab]
        if not tids:
            return empty
        scores = np.asarray(self.bm25.get_scores_from_ids(tids), dtype=np.float32)
        if row_mask is not None:
            scores = np.where(row_mask, scores, 0.0)
        positive = np.flatnonzero(scores > 0)
        if positive.size == 0:
            return empty
        if positive.size > k:
            part = np.argpartition(-scores[positive], k - 1)[:k]
            positive = positive[part]
        order = positive[np.argsort(-scores[positive], kind="stable")]
        return self.ids[order], scores[order]

    # ---------------------------------------------------------------------------- persistence

    def save(self, final_dir: Path) -> None:
        """Written into a temporary folder, then renamed: the folder is either complete or absent."""
        final_dir = Path(final_dir)
        tmp = final_dir.with_name(final_dir.name + f".tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if self.bm25 is not None:
            self.bm25.save(str(tmp), show_progress=False)
        np.save(tmp / "ids.npy", self.ids)
        (tmp / "keyword.json").write_text(json.dumps({"rows": len(self), "k1": K1, "b": B}))
        for f in tmp.iterdir():
            _fsync_path(f)
        _fsync_path(tmp)
        if final_dir.exists():  # same generation written before a crash: replace it
            shutil.rmtree(final_dir)
        os.rename(tmp, final_dir)
        _fsync_path(final_dir.parent)

    @classmethod
    def load(cls, path: Path) -> "KeywordIndex":
        bm25s = _bm25s()

        path = Path(path)
        ids = np.load(path / "ids.npy")
        meta = json.loads((path / "keyword.json").read_text())
        if meta["rows"] != len(ids):
            raise ValueError(f"{path}: {len(ids)} ids for {meta['rows']} rows")
        if len(ids) == 0:
            return cls(None, ids)
        bm25 = bm25s.BM25.load(str(path), mmap=False, show_progress=False)
        return cls(bm25, ids)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
