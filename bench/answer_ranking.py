"""How to rank answers across passages and where to put the end-to-end no-answer threshold.

Measured on PIAF dev only (the seed gold set stays an evaluation set). For every dev question the
top-k passages of an existing PIAF index are read once; every candidate span is kept with its
reader margin (span logit minus the window's no-answer logit), its span logit, and its passage's
retrieval score and rank. Ranking rules are then compared offline by end-to-end F1 of the top
answer, on the first half of dev (to choose) and the second half (to check).

Unanswerable end-to-end questions: the PIAF dev questions asked against an index of the five seed
articles (Netflix news), which cannot answer them. The threshold on the top answer's reader
score that turns ``target`` of them into "no answer" is reported with its cost on answerable ones.

    QA_DATA_DIR=/tmp/piafidx qa eval data/piaf/piaf-v1.1-dev.json --corpus data/piaf/piaf-v1.1-train.json --limit 1
    QA_DATA_DIR=/tmp/seedidx qa index data/articles
    python bench/answer_ranking.py --piaf-index /tmp/piafidx --seed-index /tmp/seedidx
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

import numpy as np

from qa.evaluation import load_gold
from qa.metrics import best_over_references
from qa.pipeline import QAService
from qa.settings import Settings

RULES = {
    "reader prob (calibrated margin)": lambda c, w: c["prob"],
    "margin": lambda c, w: c["margin"],
    "span logit": lambda c, w: c["logit"],
    "margin + w*retrieval": lambda c, w: c["margin"] + w * c["ret"],
    "logit + w*retrieval": lambda c, w: c["logit"] + w * c["ret"],
    "0.85*prob + 0.15*retrieval (before)": lambda c, w: 0.85 * c["prob"] + 0.15 * c["ret"],
}
WEIGHTS = [0.0, 1.0, 2.0, 4.0, 8.0]


def collect(svc: QAService, items, top_k: int) -> list[dict]:
    rows = []
    for it in items:
        passages = svc.search(it.question, top_k=top_k)
        spans = svc.reader.read(it.question, [p.text for p in passages])
        best = max((p.score for p in passages), default=0.0) or 1.0
        cands = []
        for rank, (p, ps) in enumerate(zip(passages, spans)):
            for s in ps:
                em, f1 = best_over_references(s.text, it.answers) if it.answers else (0.0, 0.0)
                cands.append({"margin": s.margin, "logit": s.logit, "prob": s.score, "ret": p.score / best, "rank": rank, "f1": f1, "em": em})
        rows.append({"id": it.id, "cands": cands})
    return rows


def top_f1(rows, rule, w) -> tuple[float, float]:
    f1s, ems = [], []
    for r in rows:
        if not r["cands"]:
            f1s.append(0.0)
            ems.append(0.0)
            continue
        top = max(r["cands"], key=lambda c: rule(c, w))
        f1s.append(top["f1"])
        ems.append(top["em"])
    return 100 * float(np.mean(ems)), 100 * float(np.mean(f1s))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--piaf-index", type=Path, required=True)
    ap.add_argument("--seed-index", type=Path, required=True)
    ap.add_argument("--dev", type=Path, default=Path("data/piaf/piaf-v1.1-dev.json"))
    ap.add_argument("--limit", type=int, default=400)
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--target", type=float, default=0.9)
    ap.add_argument("--out", type=Path, default=Path("bench/results/answer_ranking.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    items = load_gold(args.dev).items[: args.limit]
    t0 = time.time()
    svc = QAService.from_settings(Settings(data_dir=args.piaf_index))
    pos = collect(svc, items, args.top_k)
    svc.close()
    svc = QAService.from_settings(Settings(data_dir=args.seed_index))
    neg = collect(svc, [type(it)(it.id, it.question, [], []) for it in items], args.top_k)
    svc.close()
    print(f"read {len(items)} questions twice in {time.time() - t0:.0f}s")

    half = len(pos) // 2
    results = []
    for name, rule in RULES.items():
        for w in WEIGHTS if "w*" in name else [0.0]:
            a = top_f1(pos[:half], rule, w)
            b = top_f1(pos[half:], rule, w)
            results.append({"rule": name, "w": w, "choose_em": a[0], "choose_f1": a[1], "check_em": b[0], "check_f1": b[1]})
            print(f"{name:40s} w={w:<4} first half EM {a[0]:5.1f} F1 {a[1]:5.1f} | second half EM {b[0]:5.1f} F1 {b[1]:5.1f}")
    oracle = 100 * float(np.mean([max((c["f1"] for c in r["cands"]), default=0.0) for r in pos]))
    print(f"oracle (best candidate among those read): F1 {oracle:.1f}")

    # end-to-end no-answer: the top candidate's calibrated score, by the reader's own ranking
    def top_prob(r):
        return max((c["prob"] for c in r["cands"]), default=0.0)

    neg_top = np.sort([top_prob(r) for r in neg])
    thr = float(neg_top[min(len(neg_top) - 1, int(math.ceil(args.target * len(neg_top))) - 1)]) + 1e-6
    answered = float(np.mean([top_prob(r) >= thr for r in pos]))
    print(f"end-to-end no-answer: score threshold {thr:.4f} rejects {100 * float(np.mean(neg_top < thr)):.1f}% of unanswerable, answers {100 * answered:.1f}% of answerable")
    per_pair = svc.reader.threshold
    print(f"the reader's own threshold {per_pair:.4f} rejects {100 * float(np.mean(neg_top < per_pair)):.1f}% of unanswerable end to end")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"questions": len(items), "top_k": args.top_k, "rules": results, "oracle_f1": oracle, "e2e_threshold": thr, "e2e_threshold_answered": answered, "reader_threshold": per_pair, "reader_threshold_rejects": float(np.mean(neg_top < per_pair))}, indent=1))


if __name__ == "__main__":
    main()
