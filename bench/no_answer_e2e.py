"""End-to-end "no answer" for on-topic questions: does reading several passages help tell them apart?

For every PIAF dev question whose gold paragraph is among its top-k retrieved passages, /ask's
candidates are computed twice from the same retrieved passages: as retrieved (answerable), and with
the gold paragraph replaced by itself without the sentence(s) holding the answer (on topic but
unanswerable, the pairs the dev evaluation reports as ``removed_rejected``). The service answers when
the best candidate's score passes the end-to-end threshold. Besides that score, cross-passage
features (the best score of a different answer, the gap to it, the share of the candidates' score
that agrees with the best answer, how many passages give a candidate, the best answer's passage rank,
its raw margin) are compared by ROC AUC, alone and in 2-fold cross-validated logistic regressions,
with the share of on-topic pairs rejected when as many answerable questions are answered as now.

Needs the PIAF train+dev index (README "Evaluation"); numbers go to ``bench/results/no_answer_e2e.json``.

    python bench/no_answer_e2e.py --piaf-index /tmp/piafidx [--limit N]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from pathlib import Path

import numpy as np

from qa.evaluation import paragraph_id
from qa.metrics import normalize_answer
from qa.pipeline import QAService
from qa.settings import Settings

FEATURES = ["score", "second_score", "gap", "agreement", "passages", "rank", "margin"]


def candidates(svc: QAService, question: str, texts: list[str]) -> list[tuple[float, str, int, float]]:
    """(score, text, passage rank, margin) of every span /ask would consider, best first (before its threshold)."""
    return [(c.score, c.span.text, c.rank, c.span.margin) for c in svc.candidate_spans(question, texts)]


def features(cands: list[tuple[float, str, int, float]], top_k: int) -> list[float]:
    if not cands:
        return [0.0, 0.0, 0.0, 0.0, 0.0, float(top_k), -20.0]
    best, key = cands[0][0], normalize_answer(cands[0][1])
    second = max((c[0] for c in cands if normalize_answer(c[1]) != key), default=0.0)
    total = sum(c[0] for c in cands)
    agreement = sum(c[0] for c in cands if normalize_answer(c[1]) == key) / total if total else 0.0
    return [best, second, best - second, agreement, float(len({c[2] for c in cands})), float(cands[0][2]), cands[0][3]]


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    from qa.squad import load_squad, make_removed_negatives

    ap = argparse.ArgumentParser()
    ap.add_argument("--piaf-index", type=Path, required=True)
    ap.add_argument("--dev", type=Path, default=Path("data/piaf/piaf-v1.1-dev.json"))
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench/results/no_answer_e2e.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    svc = QAService.from_settings(Settings(data_dir=args.piaf_index), create=False)
    dev = load_squad(args.dev)[: args.limit or None]
    removed = {r.qid.removesuffix("-removed"): r for r in make_removed_negatives(dev, 1.0, random.Random(7))}

    t0 = time.time()
    pos, neg = [], []
    for it in dev:
        if it.qid not in removed:
            continue
        gold = paragraph_id(it.title, it.context)
        passages = svc.search(it.question, top_k=args.top_k)
        if gold not in [p.document_id for p in passages]:
            continue
        texts, seen = [], False
        for p in passages:  # the gold paragraph (any of its chunks) becomes the paragraph without its answer
            if p.document_id != gold:
                texts.append(p.text)
            elif not seen:
                texts.append(removed[it.qid].context)
                seen = True
        pos.append(features(candidates(svc, it.question, [p.text for p in passages]), args.top_k))
        neg.append(features(candidates(svc, it.question, texts), args.top_k))
    n = len(pos)
    print(f"{n} questions with their gold paragraph in the top {args.top_k}, read twice in {time.time() - t0:.0f}s")

    x, y = np.array(pos + neg), np.array([1] * n + [0] * n)
    thr = svc.ask_threshold
    now = {"threshold": thr, "answerable_answered": float(np.mean(x[:n, 0] >= thr)), "removed_rejected": float(np.mean(x[n:, 0] < thr))}
    print(f"now (score >= {thr}): {100 * now['answerable_answered']:.1f}% answerable answered, {100 * now['removed_rejected']:.1f}% on-topic rejected")
    alone = {f: float(roc_auc_score(y, x[:, i])) for i, f in enumerate(FEATURES)}
    for f, a in alone.items():
        print(f"ROC AUC of {f} alone: {a:.3f}")

    # 2-fold by question: both versions of a question fall in the same half
    q = np.random.default_rng(0).permutation(n)
    halves = [np.concatenate([h, h + n]) for h in (q[: n // 2], q[n // 2 :])]
    combos = {}
    for cols in ([0], [0, 1], [0, 2], [0, 3], list(range(len(FEATURES)))):
        folds = []
        for fit, test in (halves, halves[::-1]):
            sc = StandardScaler().fit(x[fit][:, cols])
            m = LogisticRegression(max_iter=1000).fit(sc.transform(x[fit][:, cols]), y[fit])
            p_fit, p_test = (m.predict_proba(sc.transform(x[i][:, cols]))[:, 1] for i in (fit, test))
            # the cut that answers as many answerable questions (on the fitting half) as the service does now
            target = float(np.mean(x[fit][y[fit] == 1, 0] >= thr))
            cut = float(np.quantile(p_fit[y[fit] == 1], 1 - target))
            folds.append({"auc": float(roc_auc_score(y[test], p_test)), "answerable_answered": float(np.mean(p_test[y[test] == 1] >= cut)),
                          "removed_rejected": float(np.mean(p_test[y[test] == 0] < cut))})
        name = " + ".join(FEATURES[c] for c in cols)
        combos[name] = folds
        print(f"{name}: " + " | ".join(f"AUC {f['auc']:.3f}, answered {100 * f['answerable_answered']:.1f}%, on-topic rejected {100 * f['removed_rejected']:.1f}%" for f in folds))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"questions": n, "top_k": args.top_k, "now": now, "auc_alone": alone, "two_fold": combos}, indent=1))


if __name__ == "__main__":
    main()
