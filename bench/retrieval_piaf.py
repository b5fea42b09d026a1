"""Retrieval quality on PIAF: every paragraph of train+dev is a document, every dev question is asked.

Reports recall@1/5/10 and MRR@10 of the gold paragraph (document level: chunks of the same paragraph
count once) for dense, BM25 and hybrid retrieval, with the mean query latency.

    .venv/bin/python bench/retrieval_piaf.py                      # index (incremental) + evaluate
    .venv/bin/python bench/retrieval_piaf.py --max-questions 100  # quicker look

The index lives in --data-dir (default runs/bench/piaf-index) and is reused between runs: only missing
paragraphs are embedded. A --data-dir holding other documents (a team's index) is refused: the paragraphs
would stay in it. Writes a markdown table to stdout and JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from index.embeddings import Embedder  # noqa: E402
from index.schema import Document  # noqa: E402
from index.store import IndexStore  # noqa: E402
from qa.settings import Settings  # noqa: E402
from qa.squad import read_squad  # noqa: E402

MODES = ("dense", "bm25", "hybrid")


def paragraph_id(split: str, title: str, context: str) -> str:
    return f"piaf-{split}-" + hashlib.blake2b(f"{title}\x00{context}".encode(), digest_size=8).hexdigest()


PARAGRAPH_ID = re.compile(r"piaf-(train|dev)-[0-9a-f]{16}")


def other_documents(data_dir: Path) -> list[str]:
    """Ids of the documents in the index at ``data_dir`` that this benchmark did not put there (a
    team's own index, say, which the PIAF paragraphs must not go into for good); read only."""
    from index.catalog import DocumentCatalog

    catalog = DocumentCatalog(data_dir)
    try:
        others, offset = [], 0
        while page := catalog.list_documents(offset=offset, limit=1000)[0]:
            others += [d.id for d in page if not PARAGRAPH_ID.fullmatch(d.id)]
            offset += len(page)
        return others
    finally:
        catalog.close()


def load_piaf(piaf_dir: Path) -> tuple[list[Document], list[tuple[str, str]]]:
    """Documents (one per paragraph, train+dev) and dev (question, gold document id) pairs."""
    docs: dict[str, Document] = {}
    questions = []
    for split in ("train", "dev"):
        for para in read_squad(piaf_dir / f"piaf-v1.1-{split}.json"):
            pid = paragraph_id(split, para.title, para.context)
            docs[pid] = Document(id=pid, text=para.context, title=para.title, metadata={"split": split})
            if split == "dev":
                questions.extend((q.question, pid) for q in para.questions)
    return list(docs.values()), questions


class CachedQueries:
    """The embedder with query vectors computed up front in batches (the benchmark asks each question 2x)."""

    def __init__(self, inner, questions: list[str]):
        self._inner = inner
        vecs = inner.encode_queries(questions)
        self._cache = {q: v for q, v in zip(questions, vecs)}

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def encode_queries(self, texts):
        if all(t in self._cache for t in texts):
            return np.stack([self._cache[t] for t in texts])
        return self._inner.encode_queries(texts)


def evaluate(store: IndexStore, questions: list[tuple[str, str]], mode: str, depth: int = 10) -> dict:
    ranks, latencies = [], []
    for question, gold in questions:
        t0 = time.perf_counter()
        results = store.search(question, top_k=3 * depth, mode=mode)
        latencies.append(time.perf_counter() - t0)
        seen: list[str] = []
        for r in results:
            if r.document_id not in seen:
                seen.append(r.document_id)
        ranks.append(seen.index(gold) + 1 if gold in seen[:depth] else None)
    n = len(ranks)
    return {
        "R@1": sum(1 for r in ranks if r and r <= 1) / n,
        "R@5": sum(1 for r in ranks if r and r <= 5) / n,
        "R@10": sum(1 for r in ranks if r and r <= 10) / n,
        "MRR@10": sum(1.0 / r for r in ranks if r) / n,
        "mean_ms": 1000 * float(np.mean(latencies)),
        "questions": n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=REPO / "runs" / "bench" / "piaf-index")
    ap.add_argument("--piaf-dir", type=Path, default=REPO / "data" / "piaf")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "retrieval_piaf.json")
    ap.add_argument("--max-questions", type=int, default=0, help="0 = every dev question")
    ap.add_argument("--no-title", action="store_true", help="ablation: do not prepend the title to passages (use another --data-dir)")
    ap.add_argument("--modes", default=",".join(MODES))
    args = ap.parse_args()

    if args.no_title:
        import index.store as store_mod

        store_mod.TITLE_IN_PASSAGE = False
    settings = Settings()
    others = other_documents(args.data_dir)
    if others:
        sys.exit(f"--data-dir {args.data_dir} holds {len(others)} document{'' if len(others) == 1 else 's'} this benchmark did not index (such as {others[0]!r}): "
                 "the PIAF paragraphs would be added to them for good; give a new folder or one an earlier run filled")
    t0 = time.perf_counter()
    embedder = Embedder(settings.embedder, settings.models_dir, batch_size=settings.embed_batch_size)
    print(f"embedder {embedder.identity} loaded in {time.perf_counter() - t0:.1f}s", flush=True)
    docs, questions = load_piaf(args.piaf_dir)
    if args.max_questions:
        questions = questions[: args.max_questions]
    print(f"{len(docs)} paragraphs, {len(questions)} dev questions", flush=True)

    t0 = time.perf_counter()
    store = IndexStore.open(args.data_dir, embedder, **settings.store_options())
    open_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = store.add_documents(docs, progress=True)
    index_s = time.perf_counter() - t0
    print(f"open {open_s:.1f}s; add: {report.documents_added} added, {report.documents_unchanged} unchanged, {report.chunks_embedded} chunks embedded in {index_s:.1f}s", flush=True)
    counts = store.counts()
    store.close()

    cached = CachedQueries(embedder, [q for q, _ in questions])
    store = IndexStore.open(args.data_dir, cached, **settings.store_options())
    results = {}
    for mode in args.modes.split(","):
        results[mode] = evaluate(store, questions, mode)
        print(mode, json.dumps(results[mode]), flush=True)
    store.close()

    print("\n| mode | R@1 | R@5 | R@10 | MRR@10 | ms/query (query vector cached) |")
    print("|---|---|---|---|---|---|")
    for mode, r in results.items():
        print(f"| {mode} | {r['R@1']:.3f} | {r['R@5']:.3f} | {r['R@10']:.3f} | {r['MRR@10']:.3f} | {r['mean_ms']:.1f} |")
    out = {
        "benchmark": "retrieval_piaf",
        "embedder": embedder.identity,
        "title_in_passage": not args.no_title,
        "dense_index": settings.dense_index,
        "chunk_tokens": settings.chunk_tokens,
        "fusion": {"kind": settings.fusion, "dense_weight": settings.dense_weight, "rrf_k": settings.rrf_k},
        "documents": counts["documents"],
        "chunks": counts["chunks"],
        "questions": len(questions),
        "index_seconds": index_s,
        "chunks_embedded": report.chunks_embedded,
        "results": results,
        "machine": {"python": platform.python_version(), "cpu_count": __import__("os").cpu_count()},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
