"""How long an answer should be: the reader's span length penalty, chosen on PIAF dev.

Decoding picks the span with the highest start+end logit. On its own that favours spans that run on
across list items ("2.905 titres en septembre contre 558" for "558"). ``best_spans`` can take
``length_penalty`` logit points off per token of the span; this measures the reader alone on the gold
paragraph of every answerable PIAF dev question for a range of penalties and longest spans, and picks
the penalty on the first half of dev (the second half checks it).

Every dev question is read once, without a penalty, keeping its 20 best spans; each penalty then
re-ranks those spans (a penalty only moves spans within that pool, so this is what decoding with it
would choose, up to spans outside the top 20). ``--write-artifact`` stores the chosen penalty in the
reader's metadata and re-runs the dev evaluation with it (``calibrate_artifact``: dev EM/F1, the
no-answer threshold and the score calibration, all measured with the penalty). The end-to-end
threshold depends on the calibration, so ``bench/answer_ranking.py --write-artifact`` comes after.

    python bench/span_length.py [--write-artifact]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from qa.evaluation import load_gold
from qa.metrics import best_over_references
from qa.pipeline import configure_torch, load_reader
from qa.settings import Settings

PENALTIES = [0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3]
MAX_TOKENS = [12, 20, 30]


def read_dev(settings: Settings, dev: Path) -> list[dict]:
    reader = load_reader(settings.model_copy(update={"reader_length_penalty": 0.0}))  # raw logits; each penalty is applied afterwards
    rows = []
    for it in load_gold(dev).items:
        if not it.answers:
            continue
        (spans,) = reader.read(it.question, [it.context], n_best=20)
        rows.append({"id": it.id, "spans": [{"logit": s.logit, "margin": s.margin, "tokens": s.tokens, "em_f1": best_over_references(s.text, it.answers)} for s in spans]})
    return rows


def score(rows: list[dict], penalty: float, max_tokens: int) -> tuple[float, float]:
    """Reader-alone EM and F1 when the best span is the one with the highest logit - penalty * tokens."""
    ems, f1s = [], []
    for r in rows:
        spans = [s for s in r["spans"] if s["tokens"] <= max_tokens]
        if not spans:
            ems.append(0.0)
            f1s.append(0.0)
            continue
        # the reader ranks a passage's spans by margin (its windows have different no-answer logits)
        best = max(spans, key=lambda s: s["margin"] - penalty * s["tokens"])
        ems.append(best["em_f1"][0])
        f1s.append(best["em_f1"][1])
    return 100 * float(np.mean(ems)), 100 * float(np.mean(f1s))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dev", type=Path, default=Path("data/piaf/piaf-v1.1-dev.json"))
    ap.add_argument("--out", type=Path, default=Path("bench/results/span_length.json"))
    ap.add_argument("--write-artifact", action="store_true", help="store the chosen penalty in the reader artifact and re-measure dev with it")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = Settings()
    configure_torch(settings)
    t0 = time.time()
    rows = read_dev(settings, args.dev)
    print(f"read {len(rows)} answerable dev questions in {time.time() - t0:.0f}s")
    half = len(rows) // 2
    results = []
    for max_tokens in MAX_TOKENS:
        for penalty in PENALTIES:
            a, b, c = score(rows[:half], penalty, max_tokens), score(rows[half:], penalty, max_tokens), score(rows, penalty, max_tokens)
            results.append({"penalty": penalty, "max_tokens": max_tokens, "choose_em": a[0], "choose_f1": a[1], "check_em": b[0], "check_f1": b[1], "all_em": c[0], "all_f1": c[1]})
            print(f"max {max_tokens:2d} tokens, penalty {penalty:<5}: first half EM {a[0]:5.1f} F1 {a[1]:5.1f} | second half EM {b[0]:5.1f} F1 {b[1]:5.1f} | all EM {c[0]:5.1f} F1 {c[1]:5.1f}")
    # the longest span stays the service's setting; only the penalty is chosen, on the first half
    mine = [r for r in results if r["max_tokens"] == settings.max_answer_tokens]
    chosen = max(mine, key=lambda r: (round(r["choose_f1"], 6), -r["penalty"]))
    base = next(r for r in mine if r["penalty"] == 0.0)
    print(f"chosen penalty {chosen['penalty']} (first half F1 {base['choose_f1']:.1f} -> {chosen['choose_f1']:.1f}; "
          f"second half {base['check_f1']:.1f} -> {chosen['check_f1']:.1f}; all {base['all_f1']:.1f} -> {chosen['all_f1']:.1f})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"questions": len(rows), "max_answer_tokens": settings.max_answer_tokens, "chosen_penalty": chosen["penalty"], "results": results}, indent=1))
    if args.write_artifact:
        from qa.train_reader import calibrate_artifact, update_artifact_meta

        artifact = Path(settings.reader_artifact)
        update_artifact_meta(artifact, {"length_penalty": chosen["penalty"], "length_penalty_measured": "bench/span_length.py, first half of the answerable PIAF dev questions"})
        meta = calibrate_artifact(artifact)
        print(f"stored in {artifact}: dev EM {meta['dev_em']:.1f} F1 {meta['dev_f1']:.1f}, no-answer {100 * meta['neg_rejected']:.1f}% rejected "
              f"(answerable F1 {meta['answerable_f1_after_threshold']:.1f}); now run bench/answer_ranking.py --write-artifact, then `qa models`")


if __name__ == "__main__":
    main()
