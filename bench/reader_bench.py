"""Reader CPU latency (1, 5, 10 passages of ~200 tokens) and dev F1, float32 vs int8 dynamic quantisation
(of every linear layer, or of some of them).

    .venv/bin/python bench/reader_bench.py [--repeats 5] [--dev-limit 0] [--threads 0]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import time
from pathlib import Path

import torch

from qa.metrics import best_over_references
from qa.pipeline import load_reader
from qa.reader import QUANTIZE_LAYERS
from qa.settings import Settings
from qa.squad import load_squad

ROOT = Path(__file__).resolve().parents[1]

# a QA_READER_QUANTIZE value, or a pattern of linear layer names to quantise (to see which layers cost accuracy)
VARIANTS = {
    "float32 (QA_READER_QUANTIZE=off, the default)": "off",
    "int8 attention projections (QA_READER_QUANTIZE=attention)": "attention",
    "int8 all but the FFN output layers": r"attention\.|intermediate\.dense",
    "int8 every linear layer (QA_READER_QUANTIZE=all)": "all",
}


def passages_of_tokens(reader, n: int, tokens: int = 200) -> list[str]:
    items = load_squad(ROOT / "data/piaf/piaf-v1.1-dev.json")
    out = []
    for it in items:
        ids = reader.tokenizer(it.context, add_special_tokens=False)["input_ids"]
        if len(ids) >= tokens:
            out.append(reader.tokenizer.decode(ids[:tokens]))
        if len(out) == n:
            return out
    raise SystemExit("not enough long paragraphs")


def latency(reader, n: int, repeats: int) -> dict:
    ps = passages_of_tokens(reader, n)
    q = "Quel est le sujet principal de ce texte ?"
    reader.read(q, ps)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        reader.read(q, ps)
        times.append((time.perf_counter() - t0) * 1000)
    return {"passages": n, "p50_ms": statistics.median(times), "min_ms": min(times)}


def dev_f1(reader, limit: int) -> dict:
    items = [i for i in load_squad(ROOT / "data/piaf/piaf-v1.1-dev.json") if i.answers]
    items = items[:limit] if limit else items
    ems, f1s = [], []
    t0 = time.perf_counter()
    for it in items:
        spans = reader.read(it.question, [it.context], n_best=1)[0]
        pred = spans[0].text if spans else ""
        em, f1 = best_over_references(pred, [a["text"] for a in it.answers])
        ems.append(em)
        f1s.append(f1)
    return {"questions": len(items), "em": 100 * statistics.fmean(ems), "f1": 100 * statistics.fmean(f1s), "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dev-limit", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/reader.json", help="where the JSON results go (a smoke run: somewhere else)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    base = Settings()
    results = {"cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(), "variants": {}}
    for name, quant in VARIANTS.items():
        setting = quant if quant in QUANTIZE_LAYERS else "off"
        reader = load_reader(base.model_copy(update={"reader_quantize": setting}))
        if setting != quant:
            layers = {n for n, m in reader.model.named_modules() if isinstance(m, torch.nn.Linear) and re.search(quant, n)}
            reader.model = torch.ao.quantization.quantize_dynamic(reader.model, layers, dtype=torch.qint8)
        res = {"latency": [latency(reader, n, args.repeats) for n in (1, 5, 10)], "dev": dev_f1(reader, args.dev_limit)}
        results["variants"][name] = res
        print(name, json.dumps(res))
    args.out.write_text(json.dumps(results, indent=1))
    print("| variant | 1 passage | 5 passages | 10 passages | dev EM | dev F1 |")
    print("|---|---|---|---|---|---|")
    for name, r in results["variants"].items():
        lat = " | ".join(f"{x['p50_ms']:.0f} ms" for x in r["latency"])
        print(f"| {name} | {lat} | {r['dev']['em']:.1f} | {r['dev']['f1']:.1f} |")


if __name__ == "__main__":
    main()
