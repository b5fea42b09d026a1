"""Would the embedder's similarity between the question and the sentence holding an answer help?

An experiment that did not ship (README, "Answer ranking"). For every PIAF dev question, the top-5
passages of an existing PIAF index are read and, for every candidate span, the cosine between the
question ("query: ") and the sentence around the span ("passage: ") is computed. Then, offline:
end-to-end F1 when ranking by ``margin - 2 * rank + w * (similarity - 0.85)`` (first half of dev to
choose, second half to check), and the F1 left when the threshold rejects 90% of on-topic unanswerable
questions (the same questions with the paragraphs that answer them filtered out).

    python bench/sentence_similarity.py --piaf-index /tmp/piafidx      # ~30 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from answer_ranking import on_topic_filters  # bench/ is on sys.path when run as a script
from qa.evaluation import load_gold
from qa.metrics import best_over_references
from qa.pipeline import QAService, context_window
from qa.settings import Settings

WEIGHTS = [0, 10, 20, 50, 100]


def collect(svc: QAService, items, on_topic: bool) -> list[list[dict]]:
    filters = on_topic_filters(svc, items) if on_topic else [None] * len(items)
    rows = []
    for it, f in zip(items, filters):
        passages = svc.search(it.question, top_k=5, filters=f)
        spans = svc.reader.read(it.question, [p.text for p in passages])
        sentences, cands = [], []
        for rank, (p, ps) in enumerate(zip(passages, spans)):
            for s in ps:
                cs, ce = context_window(p.text, s.start, s.end)
                sentences.append(p.text[cs:ce])
                f1 = 0.0 if on_topic else best_over_references(s.text, it.answers)[1]
                cands.append({"margin": s.margin, "rank": rank, "f1": f1})
        if sentences:
            q = svc.store.embedder.encode_queries([it.question])[0]
            unique = sorted(set(sentences))
            sim = dict(zip(unique, (svc.store.embedder.encode_passages(unique) @ q).tolist()))
            for c, sentence in zip(cands, sentences):
                c["sim"] = sim[sentence]
        rows.append(cands)
    return rows


def top(cands: list[dict], w: float) -> tuple[float, float]:
    if not cands:
        return -1e9, 0.0
    score = lambda c: c["margin"] - 2.0 * c["rank"] + w * (c["sim"] - 0.85)  # noqa: E731
    best = max(cands, key=score)
    return score(best), best["f1"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--piaf-index", type=Path, required=True)
    ap.add_argument("--dev", type=Path, default=Path("data/piaf/piaf-v1.1-dev.json"))
    ap.add_argument("--out", type=Path, default=Path("bench/results/sentence_similarity.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    items = load_gold(args.dev).items
    svc = QAService.from_settings(Settings(data_dir=args.piaf_index), create=False)
    pos, on = collect(svc, items, False), collect(svc, items, True)
    svc.close()
    half = len(pos) // 2
    results = []
    for w in WEIGHTS:
        choose = 100 * float(np.mean([top(c, w)[1] for c in pos[:half]]))
        check = 100 * float(np.mean([top(c, w)[1] for c in pos[half:]]))
        thr = float(np.quantile([top(c, w)[0] for c in on], 0.9))
        kept = 100 * float(np.mean([f if s >= thr else 0.0 for s, f in (top(c, w) for c in pos)]))
        results.append({"w": w, "f1_choose": choose, "f1_check": check, "f1_at_90pct_on_topic_rejected": kept})
        print(f"w={w:<4} ranking F1 {choose:.1f} (first half) / {check:.1f} (second half); rejecting 90% of on-topic: F1 {kept:.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"questions": len(items), "results": results}, indent=1))


if __name__ == "__main__":
    main()
