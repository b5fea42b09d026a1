"""Does the reader answer better when it reads more of a passage's document? Measured on PIAF dev.

The pipeline reads the top-5 retrieved chunks (about 200 embedder tokens each, 40 overlapping) one by
one. A chunk can cut the sentence that frames an answer, and two overlapping chunks of one document
are read twice, as two passages. For every PIAF dev question, with the whole PIAF corpus indexed
(train + dev paragraphs; 388 of the 1,351 paragraphs are two chunks or more), the same five passages
are read four ways and the top answer ranked and thresholded as ``QAService.ask`` does it
(``margin - rank_penalty * rank``, the end-to-end threshold stored with the reader):

- ``chunk``: as shipped, each chunk alone;
- ``merge``: retrieved chunks of one document that overlap read once, as their union (at the best rank);
- ``nb1``: each chunk widened to its neighbours (the chunk before and after it), then merged;
- ``doc``: each chunk widened to its whole document (a PIAF paragraph), then merged.

End-to-end F1 of the top answer on all questions and on the two halves (the first 300 questions chose
the rank penalty and the threshold, see README "Answer ranking"), the share answered and the
characters read per question (reading time grows with them). Nothing here changes the service; the
numbers go to ``bench/results/passage_context.json``.

    qa eval data/piaf/piaf-v1.1-dev.json --corpus data/piaf/piaf-v1.1-train.json --data-dir /tmp/piafidx --limit 1
    python bench/passage_context.py --piaf-index /tmp/piafidx
"""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import time
from pathlib import Path

import numpy as np

from qa.evaluation import load_gold
from qa.metrics import best_over_references
from qa.pipeline import QAService, answer_score
from qa.settings import Settings

MODES = ("chunk", "merge", "nb1", "doc")


def reading_units(mode: str, passages, chunks: dict[str, list[tuple[int, int]]], doc_len) -> list[list]:
    """[document id, start, end] of what is read for ``passages`` (retrieval order), overlapping
    spans of one document merged into the first (best ranked) of them."""
    units: list[list] = []
    for p in passages:
        if mode == "chunk":
            units.append([p.document_id, p.start, p.end])
            continue
        s, e = p.start, p.end
        if mode == "nb1":
            cs = chunks[p.document_id]
            i = next(k for k, (cs_start, _) in enumerate(cs) if cs_start == p.start)
            s, e = cs[max(0, i - 1)][0], cs[min(len(cs) - 1, i + 1)][1]
        elif mode == "doc":
            s, e = 0, doc_len(p.document_id)
        for u in units:
            if u[0] == p.document_id and u[1] <= e and s <= u[2]:
                u[1], u[2] = min(u[1], s), max(u[2], e)
                break
        else:
            units.append([p.document_id, s, e])
    return units


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--piaf-index", type=Path, required=True)
    ap.add_argument("--dev", type=Path, default=Path("data/piaf/piaf-v1.1-dev.json"))
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("bench/results/passage_context.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    items = load_gold(args.dev).items[: args.limit]
    svc = QAService.from_settings(Settings(data_dir=args.piaf_index), create=False)
    # the chunk layout of every document, read straight from the index's database (read only)
    db = sqlite3.connect(f"file:{args.piaf_index / 'index.sqlite3'}?mode=ro", uri=True)
    chunks: dict[str, list[tuple[int, int]]] = {}
    for doc, s, e in db.execute("SELECT document_id, start_char, end_char FROM chunks ORDER BY document_id, start_char"):
        chunks.setdefault(doc, []).append((s, e))
    db.close()
    texts: dict[str, str] = {}

    def text(doc_id: str) -> str:
        if doc_id not in texts:
            texts[doc_id] = svc.store.get_document(doc_id).text
        return texts[doc_id]

    threshold, cal, penalty = svc.ask_threshold, svc.reader.calibration, svc.settings.rank_penalty
    per = {m: {"f1": [], "answered": [], "chars": []} for m in MODES}
    t0 = time.time()
    for n, it in enumerate(items, 1):
        passages = svc.search(it.question, top_k=args.top_k)
        for mode in MODES:
            units = reading_units(mode, passages, chunks, lambda d: len(text(d)))
            read = [text(d)[s:e] for d, s, e in units]
            best = None
            for rank, spans in enumerate(svc.reader.read(it.question, read)):
                for sp in spans:
                    if sp.score >= svc.reader.threshold:
                        score = answer_score(cal, sp.margin, rank, penalty)
                        if best is None or score > best[0]:
                            best = (score, sp.text)
            answered = best is not None and best[0] >= threshold
            per[mode]["f1"].append(100 * best_over_references(best[1], it.answers)[1] if answered else 0.0)
            per[mode]["answered"].append(answered)
            per[mode]["chars"].append(sum(map(len, read)))
        if n % 50 == 0:
            print(f"{n} questions, {time.time() - t0:.0f} s", flush=True)
    svc.close()

    half = len(items) // 2
    rows = []
    for mode in MODES:
        r = per[mode]
        rows.append({"mode": mode, "f1": float(np.mean(r["f1"])), "first_half_f1": float(np.mean(r["f1"][:half])),
                     "second_half_f1": float(np.mean(r["f1"][half:])), "answered": float(np.mean(r["answered"])),
                     "chars_per_question": float(np.mean(r["chars"]))})
        print(f"{mode:6s} F1 {rows[-1]['f1']:.1f} (halves {rows[-1]['first_half_f1']:.1f} / {rows[-1]['second_half_f1']:.1f}), "
              f"answered {100 * rows[-1]['answered']:.1f}%, {rows[-1]['chars_per_question']:.0f} characters read per question")
    args.out.write_text(json.dumps({"questions": len(items), "top_k": args.top_k, "threshold": threshold,
                                    "rank_penalty": penalty, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
