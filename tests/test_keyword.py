"""The BM25 index: built by numpy, it must score exactly as bm25s's own build, and survive a save/load."""

from __future__ import annotations

import random

import bm25s
import numpy as np
import pytest

from index.keyword import B, K1, KeywordIndex


def _corpus(seed: int, n_docs: int, n_vocab: int) -> list[list[str]]:
    rng = random.Random(seed)
    vocab = [f"mot{i}" for i in range(n_vocab)]
    # skewed frequencies, repeated terms, and some empty chunks (stop words only)
    return [[rng.choice(vocab[: rng.randint(1, n_vocab)]) for _ in range(rng.choice([0, 1, 3, 40, 200]))] for _ in range(n_docs)]


@pytest.mark.parametrize("seed,n_docs,n_vocab", [(0, 1, 3), (1, 7, 5), (2, 300, 500), (3, 2000, 3000)])
def test_scores_equal_bm25s_own_build(tmp_path, seed, n_docs, n_vocab):
    terms = _corpus(seed, n_docs, n_vocab)
    reference = bm25s.BM25(k1=K1, b=B, method="lucene")
    reference.index([t or [""] for t in terms], show_progress=False)
    ids = np.arange(100, 100 + n_docs, dtype=np.int64)
    built = KeywordIndex.build(ids, terms)
    built.save(tmp_path / "kw")
    loaded = KeywordIndex.load(tmp_path / "kw")
    rng = random.Random(seed)
    queries = [[f"mot{rng.randrange(n_vocab)}" for _ in range(rng.randint(1, 4))] for _ in range(30)] + [["mot0", "mot0"]]
    for q in queries:
        expected = reference.get_scores(q)
        for index in (built, loaded):
            tids = [index.vocab[t] for t in q if t in index.vocab]
            got = index.bm25.get_scores_from_ids(tids) if tids else np.zeros(n_docs)
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    # search: the best scores, in order, each with the chunk id of a document that has that score
    q = queries[0]
    expected = reference.get_scores(q)
    found_ids, found_scores = loaded.search(q, k=10)
    best = np.sort(expected[expected > 0])[::-1][:10]
    np.testing.assert_allclose(found_scores, best, rtol=1e-6)
    np.testing.assert_allclose(expected[found_ids - 100], found_scores, rtol=1e-6)


def test_empty_and_unknown_terms():
    index = KeywordIndex.build(np.array([5, 9]), [[], ["chat", "chat", "noir"]])
    found, scores = index.search(["chat"], k=5)
    assert list(found) == [9] and scores[0] > 0
    assert index.search(["inconnu"], k=5)[0].size == 0
    assert index.search([""], k=5)[0].size == 0  # the empty token stands for empty chunks, it never matches a query
    assert len(KeywordIndex.build(np.array([], dtype=np.int64), [])) == 0
