"""BM25 build time: bm25s's own index build against the project's (index.keyword.KeywordIndex.build),
on the same synthetic corpus, and a check that both give the same scores.

    .venv/bin/python bench/bm25_build.py [--chunks 100000] [--terms 120]

Every write to the store rebuilds the BM25 index from the stored chunk terms, so this is most of what
a write costs on a large index (README "Benchmarks").
"""

from __future__ import annotations

import argparse
import time

import bm25s
import numpy as np

from index.keyword import B, K1, KeywordIndex


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--terms", type=int, default=120, help="analysed terms per chunk")
    ap.add_argument("--vocab", type=int, default=60_000)
    args = ap.parse_args()
    vocab = [f"t{i}" for i in range(args.vocab)]
    weights = 1.0 / np.arange(1, args.vocab + 1)  # Zipf-like term frequencies
    rows = np.random.default_rng(0).choice(args.vocab, size=(args.chunks, args.terms), p=weights / weights.sum())
    terms = [[vocab[j] for j in row] for row in rows]

    t0 = time.perf_counter()
    reference = bm25s.BM25(k1=K1, b=B, method="lucene")
    reference.index(terms, show_progress=False)
    t_bm25s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = KeywordIndex.build(np.arange(args.chunks), terms)
    t_ours = time.perf_counter() - t0

    query = ["t5", "t700", "t31000"]
    diff = float(np.abs(reference.get_scores(query) - ours.bm25.get_scores(query)).max())
    print(f"{args.chunks} chunks x {args.terms} terms: bm25s build {t_bm25s:.2f} s, KeywordIndex.build {t_ours:.2f} s; largest score difference {diff}")


if __name__ == "__main__":
    main()
