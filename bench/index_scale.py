"""Index scale: indexing throughput, query latency, load time, memory, HNSW recall; embedding speed.

    .venv/bin/python bench/index_scale.py                          # 1k, 10k, 100k chunks
    .venv/bin/python bench/index_scale.py --sizes 1000,10000       # smaller
    .venv/bin/python bench/index_scale.py --skip-embedding-speed

What is measured how (printed with the results too):

* Corpus: PIAF paragraphs (train+dev) repeated with a distinct suffix "(réf. N)" until the wanted
  number of chunks; titles are the article titles. Real chunking, French analysis, SQLite, FAISS and
  BM25, through ``IndexStore.add_documents`` (one call), then a reopen.
* Vectors: the model is NOT run for 10k/100k chunks. A synthetic embedder (same tokenizer, same
  dimension) returns, for each text, a real e5 paragraph vector taken from the PIAF benchmark index
  (runs/bench/piaf-index, when present; random unit vectors otherwise) plus seeded Gaussian noise,
  normalised: clustered like real data. So "index chunks/s" is the store pipeline without the model;
  the model's own throughput is measured separately ("embedding speed", real model, small scale).
* Queries: 200 PIAF dev questions; their vectors are computed once with the real model, so search
  latency excludes query encoding (measured separately: "query encoding ms").
* Each (size, index kind) runs in its own process: peak RSS (/proc VmHWM; getrusage's ru_maxrss would
  include the parent's peak) is that process's peak. HNSW stores are made from the flat store's folder by a
  rebuild with dense_index="hnsw" (passages keep their vectors); "hnsw build s" times the HNSW graph alone,
  built from the stored vectors. HNSW recall@10 compares dense
  top-10 ids with the exact (flat) top-10 for the same queries.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.retrieval_piaf import load_piaf  # noqa: E402

PIAF_INDEX = REPO / "runs" / "bench" / "piaf-index" / "index.sqlite3"
N_QUERIES = 200


def peak_rss_mb() -> float:
    """Peak resident memory of this process image. VmHWM, not getrusage's ru_maxrss: after fork+exec
    Linux carries the parent's (model-holding) peak into ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q))


class SyntheticEmbedder:
    """Real tokenizer and dimension; vectors = a real paragraph vector + seeded noise (no model run)."""

    def __init__(self, tokenizer, base: np.ndarray, queries: dict[str, np.ndarray], noise: float = 0.6):
        self.name = "bench-synthetic"
        self.tokenizer = tokenizer
        self.base = base
        self.dim = base.shape[1]
        self.max_tokens = 512
        self.passage_prompt_tokens = 3
        self.queries = queries
        self.noise = noise

    @property
    def identity(self) -> str:
        return f"{self.name}:{self.dim}"

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_passages(self, texts, progress=False):
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            h = int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "big")
            rng = np.random.default_rng(h)
            v = self.base[h % len(self.base)] + self.noise * rng.standard_normal(self.dim).astype(np.float32) / np.sqrt(self.dim)
            out[i] = v / np.linalg.norm(v)
        return out

    def encode_queries(self, texts):
        # the benchmark's questions have their real vectors; any other text (the probe passage the
        # store encodes on every open to recognise its model) a synthetic one, the same on each open
        return np.stack([self.queries[t] if t in self.queries else self.encode_passages([t])[0] for t in texts])


def base_vectors(dim: int = 384) -> tuple[np.ndarray, str]:
    if PIAF_INDEX.is_file():
        import sqlite3

        conn = sqlite3.connect(PIAF_INDEX)
        blobs = [r[0] for r in conn.execute("SELECT vector FROM chunks ORDER BY id")]
        conn.close()
        if blobs:
            return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), -1).copy(), f"{len(blobs)} real e5 vectors from {PIAF_INDEX.relative_to(REPO)}"
    rng = np.random.default_rng(0)
    v = rng.standard_normal((1500, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True), "1500 random unit vectors (run bench/retrieval_piaf.py first for real ones)"


def make_docs(n_chunks: int, tokenizer):
    from index.chunking import chunk_spans
    from index.schema import Document

    paras, _ = load_piaf(REPO / "data" / "piaf")
    per_para = sum(len(chunk_spans(d.text, tokenizer, 200, 40)) for d in paras[:300]) / 300
    n_docs = max(1, round(n_chunks / per_para))
    docs = []
    for i in range(n_docs):
        p = paras[i % len(paras)]
        docs.append(Document(id=f"d{i:07d}", text=f"{p.text} (réf. {i})", title=p.title, url=f"https://site{i % 7}.example.fr/{i}", published=f"20{10 + i % 10}-{1 + i % 12:02d}"))
    return docs


def reopen_as_hnsw(data: Path, emb) -> float:
    """Make the flat store in ``data`` an HNSW one; return the seconds its HNSW graph takes to build
    from the stored vectors. An index keeps the dense type it was made with until a rebuild (what
    `qa index --rebuild` does; passages keep their vectors): opened with dense_index="hnsw" alone it
    stays flat. The graph is then timed as any open builds an index file that is missing."""
    from index.store import IndexStore

    IndexStore.open(data, emb, dense_index="hnsw", rebuild=True).close()
    for graph in data.glob("dense-hnsw-*.faiss"):
        graph.unlink()
    t0 = time.perf_counter()
    IndexStore.open(data, emb, dense_index="hnsw").close()
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------------ child


def child(args) -> None:
    from transformers import AutoTokenizer

    from index.embeddings import builtin_embedder_dir
    from index.store import IndexStore
    from qa.settings import Settings

    settings = Settings()
    tokenizer = AutoTokenizer.from_pretrained(builtin_embedder_dir(settings.models_dir))
    qdata = np.load(args.queries, allow_pickle=False)
    questions = json.loads(Path(args.queries).with_suffix(".json").read_text(encoding="utf-8"))
    base, base_desc = base_vectors(qdata.shape[1])
    emb = SyntheticEmbedder(tokenizer, base, {q: v for q, v in zip(questions, qdata)})
    data = Path(args.data_dir)
    res: dict = {"size": args.size, "kind": args.kind, "vectors": base_desc}
    if args.kind == "flat":
        shutil.rmtree(data, ignore_errors=True)
        docs = make_docs(args.size, tokenizer)
        store = IndexStore.open(data, emb, dense_index="flat")
        t0 = time.perf_counter()
        rep = store.add_documents(docs)
        res["index_s"] = time.perf_counter() - t0
        res["documents"] = len(docs)
        res["chunks"] = rep.chunks_added
        res["index_chunks_per_s"] = rep.chunks_added / res["index_s"]
        # one small incremental write into the big store (BM25 is rebuilt on every write)
        extra = make_docs(100, tokenizer)
        for d in extra:
            d.id = "extra-" + d.id
            d.text += " (ajout)"
        t0 = time.perf_counter()
        store.add_documents(extra)
        res["incremental_add_100_docs_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        store.delete_document("extra-d0000000")
        res["delete_1_doc_s"] = time.perf_counter() - t0
        store.close()
    else:
        res["hnsw_build_s"] = reopen_as_hnsw(data, emb)
    t0 = time.perf_counter()
    store = IndexStore.open(data, emb, dense_index=args.kind)
    res["open_s"] = time.perf_counter() - t0
    res["chunks"] = store.counts()["chunks"]
    store.check_consistency()
    for mode in ("dense", "bm25", "hybrid"):
        lat = []
        for q in questions:
            t0 = time.perf_counter()
            store.search(q, top_k=10, mode=mode)
            lat.append(time.perf_counter() - t0)
        res[f"{mode}_p50_ms"], res[f"{mode}_p95_ms"] = pct(lat, 50), pct(lat, 95)
    res["dense_top10"] = [[r.chunk_id for r in store.search(q, top_k=10, mode="dense")] for q in questions]
    store.close()
    sizes = {p.name: p.stat().st_size for p in data.iterdir() if p.is_file()}
    sizes.update({p.name: sum(f.stat().st_size for f in p.iterdir()) for p in data.iterdir() if p.is_dir()})
    res["disk_mb"] = {k: round(v / 1e6, 1) for k, v in sorted(sizes.items())}
    res["peak_rss_mb"] = peak_rss_mb()
    res["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    Path(args.result).write_text(json.dumps(res))


# ------------------------------------------------------------------------------ embedding speed


def embedding_speed(embedder, texts: list[str]) -> list[dict]:
    """Passages/s of the real model under a few settings, on the same texts."""
    import random

    import torch

    rows = []
    model = embedder.model

    def run(label, fn, **info):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        rows.append({"setting": label, "passages_per_s": len(texts) / dt, "seconds": dt, **info})
        print(f"  {label}: {len(texts) / dt:.1f} passages/s", flush=True)

    shuffled = texts[:]
    random.Random(0).shuffle(shuffled)
    default_threads = torch.get_num_threads()
    embedder.encode_passages(texts[:8])  # warm-up
    for bs in (8, 32, 64):
        run(f"batch {bs}, length-sorted (one encode call)", lambda bs=bs: model.encode(texts, prompt_name="passage", batch_size=bs, normalize_embeddings=True), batch=bs)
    run(
        "batch 32, unsorted (one call per batch)",
        lambda: [model.encode(shuffled[i : i + 32], prompt_name="passage", batch_size=32, normalize_embeddings=True) for i in range(0, len(shuffled), 32)],
        batch=32,
    )
    for threads in sorted({1, 2, default_threads}):
        torch.set_num_threads(threads)
        run(f"batch 32, length-sorted, torch threads {threads}", lambda: model.encode(texts, prompt_name="passage", batch_size=32, normalize_embeddings=True), threads=threads)
    torch.set_num_threads(default_threads)
    with torch.inference_mode():
        run("batch 32, length-sorted, inference_mode", lambda: model.encode(texts, prompt_name="passage", batch_size=32, normalize_embeddings=True))
    return rows


# ---------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--kinds", default="flat,hnsw")
    ap.add_argument("--work-dir", type=Path, default=REPO / "runs" / "bench" / "scale")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "index_scale.json")
    ap.add_argument("--embed-passages", type=int, default=256, help="passages for the embedding-speed runs")
    ap.add_argument("--skip-embedding-speed", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--kind", help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", help=argparse.SUPPRESS)
    ap.add_argument("--queries", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    from index.embeddings import Embedder
    from qa.settings import Settings

    settings = Settings()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    embedder = Embedder(settings.embedder, settings.models_dir, batch_size=settings.embed_batch_size)
    paras, dev = load_piaf(REPO / "data" / "piaf")
    questions = list(dict.fromkeys(q for q, _ in dev))[:N_QUERIES]
    t0 = time.perf_counter()
    for q in questions[:50]:
        embedder.encode_queries([q])
    query_ms = 1000 * (time.perf_counter() - t0) / 50
    qvec = embedder.encode_queries(questions)
    qpath = args.work_dir / "queries.npy"
    np.save(qpath, qvec)
    qpath.with_suffix(".json").write_text(json.dumps(questions, ensure_ascii=False), encoding="utf-8")
    out: dict = {
        "benchmark": "index_scale",
        "how": __doc__.split("What is measured how (printed with the results too):")[1].strip(),
        "query_encoding_ms": query_ms,
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "loadavg_start": os.getloadavg()},
        "runs": [],
    }
    print(f"query encoding (real model, one question per call): {query_ms:.1f} ms", flush=True)
    if not args.skip_embedding_speed:
        texts = [p.text for p in paras[: args.embed_passages]]
        print(f"embedding speed on {len(texts)} PIAF paragraphs (real model):", flush=True)
        out["embedding_speed"] = embedding_speed(embedder, texts)
    del embedder

    for size in [int(s) for s in args.sizes.split(",")]:
        data = args.work_dir / f"store-{size}"
        flat_top = None
        for kind in args.kinds.split(","):
            result = args.work_dir / f"result-{size}-{kind}.json"
            cmd = [sys.executable, __file__, "--child", "--size", str(size), "--kind", kind, "--data-dir", str(data), "--queries", str(qpath), "--result", str(result)]
            print(f"size {size} {kind} ...", flush=True)
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stderr[-3000:])
                raise SystemExit(f"child failed for {size} {kind}")
            res = json.loads(result.read_text())
            res["wall_s"] = time.perf_counter() - t0
            top = res.pop("dense_top10")
            if kind == "flat":
                flat_top = top
            elif flat_top is not None:
                res["recall@10_vs_exact"] = float(np.mean([len(set(a) & set(b)) / max(1, len(a)) for a, b in zip(top, flat_top)]))
            out["runs"].append(res)
            print("  " + json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in res.items() if k != "vectors"}), flush=True)
    out["machine"]["loadavg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    print("\n| chunks | index | index chunks/s (no model) | +100 docs s | open s | dense p50/p95 ms | bm25 p50/p95 ms | hybrid p50/p95 ms | HNSW R@10 | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in out["runs"]:
        ips = f"{r['index_chunks_per_s']:.0f}" if "index_chunks_per_s" in r else f"(HNSW built in {r['hnsw_build_s']:.1f}s)"
        inc = f"{r['incremental_add_100_docs_s']:.1f}" if "incremental_add_100_docs_s" in r else "-"
        rec = f"{r['recall@10_vs_exact']:.3f}" if "recall@10_vs_exact" in r else "exact"
        print(
            f"| {r['chunks']} | {r['kind']} | {ips} | {inc} | {r['open_s']:.2f} | {r['dense_p50_ms']:.1f}/{r['dense_p95_ms']:.1f} | "
            f"{r['bm25_p50_ms']:.1f}/{r['bm25_p95_ms']:.1f} | {r['hybrid_p50_ms']:.1f}/{r['hybrid_p95_ms']:.1f} | {rec} | {r['peak_rss_mb']:.0f} |"
        )
    if "embedding_speed" in out:
        print("\n| embedding setting | passages/s |\n|---|---|")
        for r in out["embedding_speed"]:
            print(f"| {r['setting']} | {r['passages_per_s']:.1f} |")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
