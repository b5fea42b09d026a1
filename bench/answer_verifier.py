"""Would an answer verifier on the reader's hidden states help the service end to end?

``bench/reader_decoding.py`` found that a linear probe on the reader's last-layer vectors tells
answerable (question, paragraph) pairs from on-topic unanswerable ones (the answer's sentence taken
out) better than the reader's margin does. This script asks what such a verifier would change where
users see it, before anyone ships one:

1. The verifier: a standardised L2 logistic regression (C = ``--c``) on the best span's features
   (``span_hidden_features``: [CLS], span ends, passage mean, margin), fitted on PIAF *train* pairs
   (answerable = 1, own paragraph with the answer's sentence removed = 0), scored on the dev pairs.
2. Ranking answers across passages: the first ``--limit`` PIAF dev questions against the PIAF index,
   3 best spans of each of the top-5 passages, ranked by today's rule (margin - w * rank) or with the
   verifier's logit added; w chosen on the first half of the questions, checked on the second.
3. "No answer" on the seed gold set: the top answer /ask gives today, withheld when the verifier's
   probability falls below the cut that keeps 97%, 95% or 90% of the answerable *dev* pairs (chosen on
   PIAF dev; the seed set is only evaluated): unanswerable questions rejected and answerable F1.

Nothing here changes the service; numbers go to ``bench/results/answer_verifier.json``.

    QA_DATA_DIR=/tmp/seedidx qa index data/articles     # and the PIAF index of README "Evaluation"
    python bench/answer_verifier.py --piaf-index /tmp/piafidx --seed-index /tmp/seedidx
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import random
import time
from pathlib import Path

import numpy as np
from reader_decoding import hidden_features, span_hidden_features

from qa.evaluation import load_gold
from qa.metrics import best_over_references
from qa.pipeline import QAService
from qa.reader import expected_artifact_sha256
from qa.settings import Settings
from qa.squad import load_squad, make_removed_negatives

RANK_WEIGHTS = [0.0, 0.25, 0.5, 1.0, 2.0, 4.0]
KEEP = (0.97, 0.95, 0.90)


def pair_features(reader, items) -> tuple[np.ndarray, np.ndarray]:
    """Best-span features of every item and of its answer-removed twin; labels 1 / 0."""
    removed = make_removed_negatives(items, 1.0, random.Random(7))
    x, y = [], []
    for label, group in ((1, items), (0, removed)):
        for it in group:
            f = hidden_features(reader, it.question, it.context)
            if f is not None:
                x.append(f)
                y.append(label)
    return np.array(x), np.array(y)


def rank_f1(rows: list[dict], key) -> float:
    return 100 * float(np.mean([max(r["cands"], key=key)["f1"] if r["cands"] else 0.0 for r in rows]))


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    ap = argparse.ArgumentParser()
    ap.add_argument("--piaf-index", type=Path, required=True)
    ap.add_argument("--seed-index", type=Path, required=True)
    ap.add_argument("--train", type=Path, default=Path("data/piaf/piaf-v1.1-train.json"))
    ap.add_argument("--dev", type=Path, default=Path("data/piaf/piaf-v1.1-dev.json"))
    ap.add_argument("--seed-gold", type=Path, default=Path("data/gold/seed_gold.jsonl"))
    ap.add_argument("--train-limit", type=int, default=0, help="a random sample of N train questions (0 = all)")
    ap.add_argument("--limit", type=int, default=300, help="dev questions for the ranking part")
    ap.add_argument("--c", type=float, default=0.01)
    ap.add_argument("--features", type=Path, default=Path("/tmp/answer_verifier_features.pkl"), help="cache of the train/dev pair features (reused when made with the same inputs)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/answer_verifier.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    t0 = time.time()
    svc = QAService.from_settings(Settings(data_dir=args.piaf_index), create=False)
    reader = svc.reader
    # the cache holds the features of these exact inputs; anything else is recomputed
    params = {"train": str(args.train), "dev": str(args.dev), "train_limit": args.train_limit, "reader": svc.settings.reader,
              "artifact": expected_artifact_sha256(svc.settings.reader_artifact)}
    cached = pickle.loads(args.features.read_bytes()) if args.features.is_file() else None
    if cached is not None and (not isinstance(cached, dict) or cached.get("params") != params):
        print(f"{args.features} was made with other inputs: computing the features again")
        cached = None
    if cached is not None:
        xt, yt, xd, yd = cached["features"]
    else:
        train = load_squad(args.train)
        if args.train_limit:
            train = random.Random(0).sample(train, args.train_limit)
        xt, yt = pair_features(reader, train)
        xd, yd = pair_features(reader, load_squad(args.dev))
        args.features.write_bytes(pickle.dumps({"params": params, "features": (xt, yt, xd, yd)}))
    print(f"features of {len(yt)} train and {len(yd)} dev pairs ({time.time() - t0:.0f}s)")

    # 1. the verifier, fitted on train, scored on dev
    scaler = StandardScaler().fit(xt)
    probe = LogisticRegression(C=args.c, max_iter=5000).fit(scaler.transform(xt), yt)

    def logit(x: np.ndarray) -> np.ndarray:
        return probe.decision_function(scaler.transform(np.atleast_2d(x)))

    zd = logit(xd)
    cuts = {k: float(np.quantile(zd[yd == 1], 1 - k)) for k in KEEP}
    margin_cuts = {k: float(np.quantile(xd[yd == 1, -1], 1 - k)) for k in KEEP}
    dev = {"auc_verifier": float(roc_auc_score(yd, zd)), "auc_margin": float(roc_auc_score(yd, xd[:, -1])),
           **{f"removed_rejected_at_{int(100 * k)}pct_answered": {"verifier": float(np.mean(zd[yd == 0] < cuts[k])), "margin": float(np.mean(xd[yd == 0, -1] < margin_cuts[k]))} for k in KEEP}}
    print(f"dev pairs: ROC AUC verifier {dev['auc_verifier']:.3f}, margin {dev['auc_margin']:.3f}; on-topic rejected at 97/95/90% answered: "
          + " / ".join(f"{100 * dev[f'removed_rejected_at_{int(100 * k)}pct_answered']['verifier']:.1f} vs {100 * dev[f'removed_rejected_at_{int(100 * k)}pct_answered']['margin']:.1f}%" for k in KEEP))

    # 2. ranking answers across the top-5 passages of PIAF dev questions
    rows = []
    for it in load_gold(args.dev).items[: args.limit]:
        cands = []
        for rank, p in enumerate(svc.search(it.question, top_k=5)):
            for s, e, f in span_hidden_features(reader, it.question, p.text, n_best=3):
                cands.append({"rank": rank, "margin": float(f[-1]), "z": float(logit(f)[0]), "f1": best_over_references(p.text[s:e], it.answers)[1]})
        rows.append({"cands": cands})
    svc.close()
    half = len(rows) // 2
    rules = {"margin - w*rank (today)": lambda w: lambda c: c["margin"] - w * c["rank"],
             "verifier logit + margin - w*rank": lambda w: lambda c: c["z"] + c["margin"] - w * c["rank"],
             "verifier logit - w*rank": lambda w: lambda c: c["z"] - w * c["rank"]}
    ranking = []
    for name, rule in rules.items():
        best = max(({"rule": name, "w": w, "choose_f1": rank_f1(rows[:half], rule(w)), "check_f1": rank_f1(rows[half:], rule(w))} for w in RANK_WEIGHTS), key=lambda r: r["choose_f1"])
        ranking.append(best)
        print(f"ranking, {name}: w {best['w']} chosen on the first half (F1 {best['choose_f1']:.1f}), second half F1 {best['check_f1']:.1f}")

    # 3. "no answer" on the seed gold set, cuts from dev
    svc = QAService.from_settings(Settings(data_dir=args.seed_index), create=False)
    seed = []
    for it in load_gold(args.seed_gold).items:
        res = svc.ask(it.question)
        row = {"id": it.id, "answerable": bool(it.answers), "answer": None, "z": None, "f1": 0.0}
        if not res.no_answer:
            a = res.answers[0]
            p = next(p for p in res.passages if (p.document_id, p.chunk_id) == (a.document_id, a.chunk_id))
            spans = span_hidden_features(reader, it.question, p.text, n_best=20)
            f = next((f for s, e, f in spans if (s, e) == (a.start - p.start, a.end - p.start)), spans[0][2] if spans else None)
            row.update(answer=a.text, z=float(logit(f)[0]) if f is not None else None, f1=best_over_references(a.text, it.answers)[1] if it.answers else 0.0)
        seed.append(row)
    svc.close()
    answerable = [r for r in seed if r["answerable"]]
    unanswerable = [r for r in seed if not r["answerable"]]

    def seed_at(cut: float) -> dict:
        kept = lambda r: r["z"] is not None and r["z"] >= cut  # noqa: E731
        return {"answerable_f1": 100 * float(np.mean([r["f1"] if kept(r) else 0.0 for r in answerable])),
                "unanswerable_rejected": sum(not kept(r) for r in unanswerable), "unanswerable": len(unanswerable)}

    seed_today = seed_at(-np.inf)
    seed_cuts = {f"keep_{int(100 * k)}pct_of_dev": seed_at(c) for k, c in cuts.items()}
    print("verifier logit cuts: " + ", ".join(f"{c:.2f} (keeps {100 * k:.0f}% of dev)" for k, c in cuts.items()))
    print(f"seed gold, today: answerable F1 {seed_today['answerable_f1']:.1f}, unanswerable rejected {seed_today['unanswerable_rejected']}/{seed_today['unanswerable']}")
    for k, v in seed_cuts.items():
        print(f"seed gold, verifier cut that {k.replace('_', ' ')}: answerable F1 {v['answerable_f1']:.1f}, unanswerable rejected {v['unanswerable_rejected']}/{v['unanswerable']}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"reader": reader.name, "train_pairs": len(yt), "dev_pairs": len(yd), "c": args.c, "dev": dev,
                                    "verifier_logit_cuts": {f"keep_{int(100 * k)}pct_of_dev": c for k, c in cuts.items()},
                                    "ranking": {"questions": len(rows), "results": ranking},
                                    "seed": {"today": seed_today, **seed_cuts, "questions": seed},
                                    "seconds": time.time() - t0}, indent=1))


if __name__ == "__main__":
    main()
