"""How the dense and BM25 lists are fused, measured on PIAF dev: reciprocal rank fusion (RRF) with
other constants and list weights, and a convex combination of per-query normalised scores.

Every fusion is chosen on the first half of the dev questions and reported on both halves, so the
second half says whether a choice carries over. The dense and BM25 lists (50 chunks each, as the
service's depth for top_k <= 10) are read once from the index ``bench/retrieval_piaf.py`` builds and
cached, then fused offline.

    .venv/bin/python bench/retrieval_piaf.py --data-dir /tmp/piafbench       # builds the index (~5 min)
    .venv/bin/python bench/retrieval_fusion.py --data-dir /tmp/piafbench

Writes a markdown table to stdout and JSON to bench/results/retrieval_fusion.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from retrieval_piaf import CachedQueries, load_piaf, other_documents  # noqa: E402

DEPTH = 50  # candidate_depth(top_k) for every top_k up to 10


def read_lists(data_dir: Path, questions: list[tuple[str, str]]) -> list[dict]:
    """For each question: its gold paragraph and the dense and BM25 lists as (document id, score)."""
    from index.embeddings import Embedder
    from index.store import IndexStore
    from qa.settings import Settings

    settings = Settings()
    embedder = Embedder(settings.embedder, settings.models_dir, batch_size=settings.embed_batch_size)
    cached = CachedQueries(embedder, [q for q, _ in questions])
    store = IndexStore.open(data_dir, cached, **settings.store_options())
    try:
        out = []
        for question, gold in questions:
            lists = {}
            for mode in ("dense", "bm25"):
                lists[mode] = [(r.chunk_id, r.document_id, r.score) for r in store.search(question, top_k=DEPTH, mode=mode)]
            out.append({"question": question, "gold": gold, **lists})
        return out
    finally:
        store.close()


def fuse_rrf(dense: list, bm25: list, k: float, w_dense: float) -> list[str]:
    """Weighted RRF: w / (k + rank) from the dense list, (1 - w) / (k + rank) from BM25; ties by chunk id."""
    scores: dict[int, float] = {}
    doc: dict[int, str] = {}
    for lst, w in ((dense, w_dense), (bm25, 1.0 - w_dense)):
        for rank, (cid, did, _) in enumerate(lst, start=1):
            scores[cid] = scores.get(cid, 0.0) + w / (k + rank)
            doc[cid] = did
    return [doc[c] for c, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))]


def _minmax(lst: list) -> dict[int, float]:
    s = np.asarray([x[2] for x in lst], dtype=float)
    if len(s) == 0:
        return {}
    lo, hi = s.min(), s.max()
    norm = (s - lo) / (hi - lo) if hi > lo else np.ones_like(s)
    return {cid: float(v) for (cid, _, _), v in zip(lst, norm)}


def fuse_convex(dense: list, bm25: list, alpha: float) -> list[str]:
    """alpha * min-max(dense) + (1 - alpha) * min-max(BM25), over each query's 50 candidates of each list
    (a chunk missing from a list scores 0 there)."""
    d, b = _minmax(dense), _minmax(bm25)
    doc = {cid: did for lst in (dense, bm25) for cid, did, _ in lst}
    scores = {c: alpha * d.get(c, 0.0) + (1 - alpha) * b.get(c, 0.0) for c in doc}
    return [doc[c] for c, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))]


def metrics(rankings: list[list[str]], golds: list[str]) -> dict:
    """Paragraph recall@1/5/10 and MRR@10 (a paragraph's chunks count once, at its best rank)."""
    ranks = []
    for ranked, gold in zip(rankings, golds):
        seen: list[str] = []
        for d in ranked:
            if d not in seen:
                seen.append(d)
            if len(seen) == 10:
                break
        ranks.append(seen.index(gold) + 1 if gold in seen else None)
    n = len(ranks)
    return {f"R@{c}": sum(1 for r in ranks if r and r <= c) / n for c in (1, 5, 10)} | {"MRR@10": sum(1.0 / r for r in ranks if r) / n, "questions": n}


def candidates() -> list[tuple[str, dict]]:
    out = [(f"rrf k={k} w_dense={w}", {"kind": "rrf", "k": k, "w_dense": w})
           for k in (1, 5, 10, 20, 40, 60, 100) for w in (0.3, 0.4, 0.5, 0.6, 0.7)]
    out += [(f"convex alpha={a}", {"kind": "convex", "alpha": a}) for a in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)]
    return out


def rankings_for(rows: list[dict], spec: dict) -> list[list[str]]:
    if spec["kind"] == "rrf":
        return [fuse_rrf(r["dense"], r["bm25"], spec["k"], spec["w_dense"]) for r in rows]
    return [fuse_convex(r["dense"], r["bm25"], spec["alpha"]) for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=REPO / "runs" / "bench" / "piaf-index")
    ap.add_argument("--piaf-dir", type=Path, default=REPO / "data" / "piaf")
    ap.add_argument("--cache", type=Path, default=REPO / "runs" / "bench" / "fusion_lists.json")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "retrieval_fusion.json")
    args = ap.parse_args()

    _, questions = load_piaf(args.piaf_dir)
    if args.cache.exists() and json.loads(args.cache.read_text())["questions"] == [q for q, _ in questions]:
        rows = json.loads(args.cache.read_text())["rows"]
    else:
        others = other_documents(args.data_dir)
        if others:
            sys.exit(f"--data-dir {args.data_dir} holds documents bench/retrieval_piaf.py did not put there (such as {others[0]!r})")
        t0 = time.perf_counter()
        rows = read_lists(args.data_dir, questions)
        print(f"lists read in {time.perf_counter() - t0:.0f}s", flush=True)
        args.cache.parent.mkdir(parents=True, exist_ok=True)
        args.cache.write_text(json.dumps({"questions": [q for q, _ in questions], "rows": rows}, ensure_ascii=False))
    half = len(rows) // 2
    parts = {"first": rows[:half], "second": rows[half:]}

    results = []
    for name, spec in candidates():
        r = {"name": name, **spec}
        for part, sub in parts.items():
            r[part] = metrics(rankings_for(sub, spec), [x["gold"] for x in sub])
        results.append(r)
    shipped = next(r for r in results if r["kind"] == "rrf" and r["k"] == 60 and r["w_dense"] == 0.5)
    best = max(results, key=lambda r: (r["first"]["MRR@10"], r["first"]["R@1"]))
    top = sorted(results, key=lambda r: -r["first"]["MRR@10"])[:8]

    print(f"\n{len(rows)} dev questions: first half {half}, second half {len(rows) - half}; chosen on the first half by MRR@10\n")
    print("| fusion | first R@1 | first MRR@10 | second R@1 | second R@5 | second MRR@10 |")
    print("|---|---|---|---|---|---|")
    for r in [shipped] + [r for r in top if r is not shipped]:
        mark = " (shipped)" if r is shipped else " (best on first half)" if r is best else ""
        print(f"| {r['name']}{mark} | {r['first']['R@1']:.3f} | {r['first']['MRR@10']:.3f} | {r['second']['R@1']:.3f} | {r['second']['R@5']:.3f} | {r['second']['MRR@10']:.3f} |")
    out = {"benchmark": "retrieval_fusion", "questions": len(rows), "half": half, "depth": DEPTH,
           "shipped": shipped["name"], "best_on_first_half": best["name"], "results": results,
           "machine": {"python": platform.python_version()}, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
