"""BM25 keyword index (bm25s) over analysed chunk terms, rows aligned with sorted chunk ids."""

from __future__ import annotations

import itertools
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


def lucene_score_matrix(corpus_token_ids: list[list[int]], n_vocab: int, k1: float = K1, b: float = B) -> dict:
    """The BM25 ("lucene") score of every (document, term) pair as the CSC arrays bm25s stores.

    The same numbers as ``bm25s.BM25.build_index_from_ids`` with ``method="lucene"`` (a test compares
    them), computed with numpy in one pass instead of a Python loop over documents: that loop took ~7 s
    of the ~10 s a write costs at 100k chunks, since every write rebuilds the index."""
    n_docs = len(corpus_token_ids)
    lengths = np.fromiter((len(d) for d in corpus_token_ids), dtype=np.int64, count=n_docs)
    flat = np.fromiter(itertools.chain.from_iterable(corpus_token_ids), dtype=np.int64, count=int(lengths.sum()))
    docs = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
    # one sort gives both the term frequencies and the CSC order (by term, documents ascending inside)
    pairs, tf = np.unique(flat * n_docs + docs, return_counts=True)
    term, doc = pairs // n_docs, pairs % n_docs
    df = np.bincount(term, minlength=n_vocab)
    idf = np.zeros(n_vocab, dtype=np.float32)
    seen = df > 0
    idf[seen] = np.log(1 + (n_docs - df[seen] + 0.5) / (df[seen] + 0.5))
    tf = tf.astype(np.float32)
    tfc = tf / (k1 * ((1 - b) + b * lengths[doc] / lengths.mean()) + tf)
    scores = (idf[term] * tfc).astype(np.float32)
    indptr = np.zeros(n_vocab + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    return {"data": scores, "indices": doc.astype(np.int32), "indptr": indptr, "num_docs": n_docs}


def _vectorised_bm25(bm25s):
    class VectorisedBM25(bm25s.BM25):
        """bm25s's BM25 with its index built by ``lucene_score_matrix`` (bm25s documents overriding
        ``build_index_from_ids`` for this); searching, saving and loading are the library's."""

        def build_index_from_ids(self, unique_token_ids, corpus_token_ids, show_progress=True, leave_progress=False):
            if self.method != "lucene":
                return super().build_index_from_ids(unique_token_ids, corpus_token_ids, show_progress, leave_progress)
            self.nonoccurrence_array = None  # as bm25s sets it for methods other than BM25L / BM25+
            return lucene_score_matrix(corpus_token_ids, len(unique_token_ids), self.k1, self.b)

    return VectorisedBM25


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
        bm25 = _vectorised_bm25(_bm25s())(k1=K1, b=B, method="lucene")
        # bm25s wants at least one token per document: an empty chunk gets the empty token, which scores nothing
        vocab = {t: i for i, t in enumerate(sorted(set().union(*term_lists, [""])))}
        corpus = [list(map(vocab.__getitem__, terms)) if terms else [vocab[""]] for terms in term_lists]
        bm25.index((corpus, vocab), show_progress=False)
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
        try:
            tmp.mkdir(parents=True)
            if self.bm25 is not None:
                self.bm25.save(str(tmp), show_progress=False)
            np.save(tmp / "ids.npy", self.ids)
            (tmp / "keyword.json").write_text(json.dumps({"rows": len(self), "k1": K1, "b": B}))
            for f in tmp.iterdir():
                _fsync_path(f)
            _fsync_path(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # a partial folder would hold the space that is missing
            raise
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
