"""How to rank answers across passages and where to put the end-to-end no-answer threshold.

Measured on PIAF dev only (the seed gold set stays an evaluation set). For every dev question the
top-k passages of an existing PIAF index are read once; every candidate span is kept with its
reader margin (span logit minus the window's no-answer logit), its span logit, and its passage's
retrieval score and rank. Ranking rules are then compared offline by end-to-end F1 of the top
answer, on the first half of dev (to choose) and the second half (to check).

Unanswerable end-to-end questions: the PIAF dev questions asked against an index of the five seed
articles (Netflix news), which cannot answer them. The threshold on the top answer's reader
score that turns ``target`` of them into "no answer" is reported with its cost on answerable ones.

On-topic unanswerable questions (the hard kind: "En quelle année Netflix a-t-il été fondé ?" over
Netflix news): the same PIAF dev questions asked against the PIAF index with their gold paragraph,
and every paragraph containing one of their answers, filtered out. For a range of thresholds the
share of them that get "no answer" is reported against the cost on answerable questions.

The threshold stored with the reader is the highest one (0.01 steps) that costs at most
``--max-f1-cost`` points of end-to-end F1 on the answerable questions, and never below the one that
rejects ``target`` of the off-topic questions: as many on-topic "no answer" as that budget buys.

    qa eval data/piaf/piaf-v1.1-dev.json --corpus data/piaf/piaf-v1.1-train.json --data-dir /tmp/piafidx --limit 1
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

from index.schema import Filters
from qa.evaluation import load_gold
from qa.metrics import best_over_references, normalize_answer
from qa.pipeline import QAService, answer_score
from qa.reader import ReaderCalibration, expected_artifact_sha256
from qa.settings import Settings

RULES = {
    "reader prob (calibrated margin)": lambda c, w: c["prob"],
    "margin": lambda c, w: c["margin"],
    "span logit": lambda c, w: c["logit"],
    "margin + w*retrieval": lambda c, w: c["margin"] + w * c["ret"],
    "logit + w*retrieval": lambda c, w: c["logit"] + w * c["ret"],
    "margin - w*rank": lambda c, w: c["margin"] - w * c["rank"],
    "prob - w*rank": lambda c, w: c["prob"] - w * c["rank"],
    "0.85*prob + 0.15*retrieval (before)": lambda c, w: 0.85 * c["prob"] + 0.15 * c["ret"],
    "first passage only": lambda c, w: c["margin"] - 1e6 * c["rank"],
}
# answer voting: candidates with the same normalised text (from several passages, or several
# windows) pool their evidence, log-sum-exp of (margin - w * rank) over the group, times beta
VOTE_WEIGHTS = [(w, beta) for w in (1.0, 2.0, 3.0) for beta in (0.5, 1.0, 2.0)]
WEIGHTS = {"w*retrieval": [0.0, 4.0, 8.0, 16.0, 32.0, 64.0], "w*rank": [0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0]}


def on_topic_filters(svc: QAService, items) -> list[Filters]:
    """Per question, every indexed document but those that answer it (its gold paragraph and any
    paragraph containing one of its answers): the question becomes on-topic and unanswerable."""
    infos, _ = svc.store.list_documents(0, 10**9)
    texts = {d.id: svc.store.get_document(d.id).text for d in infos}
    return [Filters(document_ids=[d for d, t in texts.items() if d not in it.document_ids and not any(a in t for a in it.answers)]) for it in items]


def collect(svc: QAService, items, top_k: int, on_topic: bool = False) -> list[dict]:
    """Every candidate span of the top-k passages. ``on_topic``: search without the paragraphs that
    answer the question (``on_topic_filters``)."""
    filters = on_topic_filters(svc, items) if on_topic else [None] * len(items)
    rows = []
    for it, f in zip(items, filters):
        passages = svc.search(it.question, top_k=top_k, filters=f)
        spans = svc.reader.read(it.question, [p.text for p in passages])
        best = max((p.score for p in passages), default=0.0) or 1.0
        cands = []
        for rank, (p, ps) in enumerate(zip(passages, spans)):
            for s in ps:
                em, f1 = best_over_references(s.text, it.answers) if (it.answers and not on_topic) else (0.0, 0.0)
                cands.append({"margin": s.margin, "logit": s.logit, "prob": s.score, "ret": p.score / best, "rank": rank, "f1": f1, "em": em,
                              "norm": normalize_answer(s.text)})
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


def vote_f1(rows, w: float, beta: float) -> tuple[float, float]:
    """EM and F1 of the top answer when the candidates of one normalised text vote (``VOTE_WEIGHTS``);
    the group's best candidate is the answer given."""
    f1s, ems = [], []
    for r in rows:
        groups: dict[str, list[dict]] = {}
        for c in r["cands"]:
            groups.setdefault(c["norm"], []).append(c)
        if not groups:
            f1s.append(0.0)
            ems.append(0.0)
            continue

        def pooled(g: list[dict]) -> float:
            xs = [c["margin"] - w * c["rank"] for c in g]
            m = max(xs)
            return m + beta * math.log(sum(math.exp(x - m) for x in xs))

        top = max(max(groups.values(), key=pooled), key=lambda c: c["margin"] - w * c["rank"])
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
    ap.add_argument("--target", type=float, default=0.9, help="share of off-topic questions the threshold must reject at least")
    ap.add_argument("--max-f1-cost", type=float, default=0.5, help="end-to-end F1 points the threshold may cost on answerable questions")
    ap.add_argument("--out", type=Path, default=Path("bench/results/answer_ranking.json"))
    ap.add_argument("--write-artifact", action="store_true", help="store the end-to-end threshold in the reader artifact's metadata")
    ap.add_argument("--candidates", type=Path, default=Path("/tmp/answer_ranking_candidates.json"), help="cache of the candidates read (reused when made with the same inputs)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    items = load_gold(args.dev).items[: args.limit]
    settings = Settings(data_dir=args.seed_index)
    # the cache holds what was read with these exact inputs; anything else is recomputed
    params = {"dev": str(args.dev), "limit": args.limit, "top_k": args.top_k, "piaf_index": str(args.piaf_index.resolve()),
              "seed_index": str(args.seed_index.resolve()), "reader": settings.reader, "artifact": expected_artifact_sha256(settings.reader_artifact),
              "fields": 2}  # 2: candidates carry their normalised text
    cached = json.loads(args.candidates.read_text()) if args.candidates.is_file() else None
    if cached is not None and cached.get("params") != params:
        print(f"{args.candidates} was made with other inputs: reading the questions again")
        cached = None
    if cached is not None:
        pos, neg, on_topic, reader_cal = cached["pos"], cached["neg"], cached["on_topic"], cached["calibration"]
    else:
        t0 = time.time()
        svc = QAService.from_settings(Settings(data_dir=args.piaf_index), create=False)
        pos = collect(svc, items, args.top_k)
        on_topic = collect(svc, items, args.top_k, on_topic=True)
        svc.close()
        svc = QAService.from_settings(settings, create=False)
        neg = collect(svc, [type(it)(it.id, it.question, [], []) for it in items], args.top_k)
        reader_cal = {"a": svc.reader.calibration.a, "b": svc.reader.calibration.b, "reader_dev_f1": svc.reader.meta.get("dev_f1")}
        svc.close()
        print(f"read {len(items)} questions twice in {time.time() - t0:.0f}s")
        args.candidates.write_text(json.dumps({"params": params, "pos": pos, "neg": neg, "on_topic": on_topic, "calibration": reader_cal}))

    half = len(pos) // 2
    results = []
    for name, rule in RULES.items():
        for w in next((ws for k, ws in WEIGHTS.items() if k in name), [0.0]):
            a = top_f1(pos[:half], rule, w)
            b = top_f1(pos[half:], rule, w)
            results.append({"rule": name, "w": w, "choose_em": a[0], "choose_f1": a[1], "check_em": b[0], "check_f1": b[1]})
            print(f"{name:40s} w={w:<4} first half EM {a[0]:5.1f} F1 {a[1]:5.1f} | second half EM {b[0]:5.1f} F1 {b[1]:5.1f}")
    for w, beta in VOTE_WEIGHTS:
        a = vote_f1(pos[:half], w, beta)
        b = vote_f1(pos[half:], w, beta)
        name = f"vote: log-sum-exp of (margin - w*rank) over the same answer, beta={beta}"
        results.append({"rule": name, "w": w, "choose_em": a[0], "choose_f1": a[1], "check_em": b[0], "check_f1": b[1]})
        print(f"{name:40s} w={w:<4} first half EM {a[0]:5.1f} F1 {a[1]:5.1f} | second half EM {b[0]:5.1f} F1 {b[1]:5.1f}")
    oracle = 100 * float(np.mean([max((c["f1"] for c in r["cands"]), default=0.0) for r in pos]))
    print(f"oracle (best candidate among those read): F1 {oracle:.1f}")

    # end-to-end no-answer, for the rule the pipeline uses: the top answer's score is
    # calibration(margin - rank_penalty * rank); its threshold rejects `target` of the unanswerable
    penalty = settings.rank_penalty
    cal = reader_cal

    calibration = ReaderCalibration(cal["a"], cal["b"])

    def top_score(r):  # the top answer as QAService.ask ranks and scores it
        if not r["cands"]:
            return 0.0, 0.0
        scored = [(answer_score(calibration, c["margin"], c["rank"], penalty), c["f1"]) for c in r["cands"]]
        return max(scored, key=lambda x: x[0])

    neg_top = np.sort([top_score(r)[0] for r in neg])
    off_thr = float(neg_top[min(len(neg_top) - 1, int(math.ceil(args.target * len(neg_top))) - 1)]) + 1e-6
    pos_top = [top_score(r) for r in pos]
    on_top = np.array([top_score(r)[0] for r in on_topic])

    def kept_f1(t: float) -> float:
        return 100 * float(np.mean([f if s >= t else 0.0 for s, f in pos_top]))

    f1_all = 100 * float(np.mean([f for _, f in pos_top]))
    thr = off_thr
    for t in np.arange(math.ceil(off_thr * 100) / 100, 1.0, 0.01):
        if kept_f1(float(t)) < f1_all - args.max_f1_cost:
            break
        thr = round(float(t), 4)
    answered = float(np.mean([s >= thr for s, _ in pos_top]))
    f1_kept = kept_f1(thr)
    print(f"rank penalty {penalty}: end-to-end F1 {f1_all:.1f}; the threshold rejecting {100 * args.target:.0f}% of off-topic questions is {off_thr:.4f}")
    print(f"threshold {thr:.4f} (at most {args.max_f1_cost} F1 points): rejects {100 * float(np.mean(neg_top < thr)):.1f}% of off-topic and "
          f"{100 * float(np.mean(on_top < thr)):.1f}% of on-topic unanswerable, answers {100 * answered:.1f}% of answerable (F1 {f1_kept:.1f})")
    # on-topic unanswerable questions: what each threshold rejects, and what it costs
    trade_off = []
    for t in [off_thr, thr, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]:
        row = {"threshold": t, "on_topic_rejected": float(np.mean(on_top < t)), "off_topic_rejected": float(np.mean(neg_top < t)),
               "answered": float(np.mean([s >= t for s, _ in pos_top])), "f1": kept_f1(t)}
        trade_off.append(row)
        print(f"threshold {t:.3f}: on-topic unanswerable rejected {100 * row['on_topic_rejected']:5.1f}%, answerable answered {100 * row['answered']:5.1f}% (F1 {row['f1']:.1f})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"questions": len(items), "top_k": args.top_k, "rules": results, "oracle_f1": oracle, "rank_penalty": penalty,
                                    "ask_score_threshold": thr, "answered": answered, "f1_all": f1_all, "f1_after_threshold": f1_kept,
                                    "target_rejection": args.target, "off_topic_threshold": off_thr, "max_f1_cost": args.max_f1_cost,
                                    "off_topic_rejected": float(np.mean(neg_top < thr)), "on_topic_rejected": float(np.mean(on_top < thr)),
                                    "on_topic_trade_off": trade_off}, indent=1))
    if args.write_artifact:
        from qa.train_reader import update_artifact_meta

        update_artifact_meta(Path(settings.reader_artifact), {"ask_score_threshold": thr, "ask_rank_penalty": penalty,
                                                              "ask_threshold_measured": f"bench/answer_ranking.py, first {len(items)} PIAF dev questions, top {args.top_k}, "
                                                                                       f"at most {args.max_f1_cost} F1 points, at least {args.target:.0%} of off-topic rejected"})
        print(f"stored in {settings.reader_artifact} (run `qa models` to rebuild the cached reader)")


if __name__ == "__main__":
    main()
