"""Inference-only ways to get more out of the shipped reader, measured on PIAF dev.

1. Expected-F1 ("minimum Bayes risk") decoding: instead of the span with the best logit, take, among
   a passage's N best spans, the one with the highest expected F1 against the others, weighted by
   softmax(logit / T). It favours the span the model's alternatives agree on, which should help F1
   when the reader hesitates between "en 1982" and "1982". N and T are chosen on the first half of
   the answerable dev questions and checked on the second (the protocol of ``bench/span_length.py``).
2. Checking an answer against its sentence: for questions paired with their own paragraph with the
   answer's sentence taken out (on topic, but unanswerable: what the seed set's unanswerable questions
   look like), does anything besides the reader's margin tell them from answerable ones? Features of
   the best span's sentence: the embedder's query/passage cosine to the question, and the share of the
   question's stemmed terms (the BM25 analyser) found in it. Logistic regressions, 2-fold
   cross-validated on dev by question, compared by ROC AUC (answerable = 1) and by the share of
   on-topic pairs rejected when 97%, 95% or 90% of the answerable ones are kept.
3. A verifier on the reader's own hidden states: the same split and regressions on the last layer's
   vectors at the [CLS] token, at the best span's first and last tokens and averaged over the
   passage, with the margin (1,537 features, L2-regularised). The reader was not trained on such
   pairs; a linear probe says whether its representations separate them better than its null score.

Nothing here changes the service; the numbers go to ``bench/results/reader_decoding.json``.

    python bench/reader_decoding.py [--limit N]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from pathlib import Path

import numpy as np

from qa.metrics import best_over_references, f1_score
from qa.pipeline import configure_torch, context_window, load_reader
from qa.settings import Settings

N_BEST = [1, 5, 10, 20]
TEMPERATURES = [0.5, 1.0, 2.0]


def mbr_pick(spans: list[dict], n: int, temperature: float) -> str:
    """The span (of the ``n`` best) with the highest expected F1 against the others under softmax(logit / T)."""
    spans = spans[:n]
    if len(spans) == 1:
        return spans[0]["text"]
    z = np.array([s["logit"] for s in spans]) / temperature
    w = np.exp(z - z.max())
    w /= w.sum()
    gain = [sum(wj * f1_score(a["text"], b["text"]) for wj, b in zip(w, spans)) for a in spans]
    return spans[int(np.argmax(gain))]["text"]


def score_mbr(rows: list[dict], n: int, temperature: float) -> tuple[float, float]:
    ems, f1s = [], []
    for r in rows:
        em, f1 = best_over_references(mbr_pick(r["spans"], n, temperature), r["answers"]) if r["spans"] else (0.0, 0.0)
        ems.append(em)
        f1s.append(f1)
    return 100 * float(np.mean(ems)), 100 * float(np.mean(f1s))


def term_coverage(question: str, text: str) -> float:
    """Share of the question's stemmed terms (BM25 analyser) that occur in ``text``."""
    from index.text import analyze

    q = set(analyze(question))
    return len(q & set(analyze(text))) / len(q) if q else 0.0


def auc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def span_hidden_features(reader, question: str, context: str, n_best: int = 1) -> list[tuple[int, int, np.ndarray]]:
    """For the ``n_best`` spans of the first window: (start char, end char, features), where the features
    are the last layer's vectors at [CLS], at the span's first and last tokens and averaged over the
    passage, then the span's margin (4 x 384 + 1)."""
    import torch

    from qa.spans import best_spans, context_token_mask, trim_span

    enc = reader.tokenizer(reader._question(question), context, truncation="only_second", max_length=reader.max_length, return_offsets_mapping=True, return_tensors="pt")
    offsets = [tuple(o) for o in enc.pop("offset_mapping")[0].tolist()]
    with torch.inference_mode():
        out = reader.model(**enc, output_hidden_states=True)
    allowed = context_token_mask(enc.sequence_ids(0), offsets)
    h = out.hidden_states[-1][0].float().numpy()
    mean = h[allowed].mean(0)
    spans = []
    for b in best_spans(out.start_logits[0].float().numpy(), out.end_logits[0].float().numpy(), offsets, allowed, reader.max_answer_tokens, n_best=n_best, length_penalty=reader.length_penalty):
        s, e = trim_span(context, b.start_char, b.end_char)
        if e > s:
            spans.append((s, e, np.concatenate([h[0], h[b.start_token], h[b.end_token], mean, [b.margin]])))
    return spans


def hidden_features(reader, question: str, context: str) -> np.ndarray | None:
    """The best span's features (``span_hidden_features``), or None when the window has no span."""
    spans = span_hidden_features(reader, question, context)
    return spans[0][2] if spans else None


def cv_auc(x: np.ndarray, y: np.ndarray, groups: list[str], c: float = 1.0, seed: int = 0) -> list[dict]:
    """A standardised logistic regression fitted on one half of the questions and scored on the other,
    both ways (a question's two pairs always fall in the same half): ROC AUC, and the share of on-topic
    pairs rejected on the held half when 97%, 95% or 90% of its answerable ones are kept."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    names = np.array(sorted(set(groups)))
    first = set(np.random.default_rng(seed).permutation(names)[: len(names) // 2])
    in_first = np.array([g in first for g in groups])
    out = []
    for fit, test in ((in_first, ~in_first), (~in_first, in_first)):
        sc = StandardScaler().fit(x[fit])
        m = LogisticRegression(C=c, max_iter=3000).fit(sc.transform(x[fit]), y[fit])
        p = m.predict_proba(sc.transform(x[test]))[:, 1]
        yt = y[test]
        kept = {f"rejected_at_{int(100 * t)}pct_answered": float(np.mean(p[yt == 0] < np.quantile(p[yt == 1], 1 - t))) for t in (0.97, 0.95, 0.90)}
        out.append({"auc": auc(yt, p), **kept})
    return out


def main() -> None:
    from index.embeddings import Embedder
    from qa.squad import load_squad, make_removed_negatives

    ap = argparse.ArgumentParser()
    ap.add_argument("--dev", type=Path, default=Path("data/piaf/piaf-v1.1-dev.json"))
    ap.add_argument("--out", type=Path, default=Path("bench/results/reader_decoding.json"))
    ap.add_argument("--limit", type=int, default=0, help="first N dev questions only (smoke runs)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = Settings()
    configure_torch(settings)
    reader = load_reader(settings)
    embedder = Embedder(settings.embedder, settings.models_dir, batch_size=settings.embed_batch_size, source=settings.e5_source)
    dev = load_squad(args.dev)[: args.limit or None]
    removed = make_removed_negatives(dev, 1.0, random.Random(7))  # the pairs the dev evaluation reports as removed_rejected

    t0 = time.time()
    rows = []
    for kind, items in (("answerable", dev), ("removed", removed)):
        for it in items:
            (spans,) = reader.read(it.question, [it.context], n_best=max(N_BEST))
            best = spans[0] if spans else None
            sent = it.context[slice(*context_window(it.context, best.start, best.end))] if best else ""
            rows.append({"kind": kind, "qid": it.qid.removesuffix("-removed"), "question": it.question, "answers": [a["text"] for a in it.answers],
                         "spans": [{"text": s.text, "logit": s.logit} for s in spans],
                         "margin": best.margin if best else -1e3, "sentence": sent,
                         "hidden": hidden_features(reader, it.question, it.context)})
    print(f"read {len(rows)} (question, paragraph) pairs in {time.time() - t0:.0f}s")

    # 1. expected-F1 decoding on the answerable pairs
    pos = [r for r in rows if r["kind"] == "answerable"]
    half = len(pos) // 2
    decoding = []
    for n in N_BEST:
        for t in TEMPERATURES if n > 1 else [1.0]:
            a, b, c = score_mbr(pos[:half], n, t), score_mbr(pos[half:], n, t), score_mbr(pos, n, t)
            decoding.append({"n_best": n, "temperature": t, "choose_em": a[0], "choose_f1": a[1], "check_em": b[0], "check_f1": b[1], "all_em": c[0], "all_f1": c[1]})
            print(f"expected-F1 over {n:2d} spans, T {t}: first half EM {a[0]:5.1f} F1 {a[1]:5.1f} | second half EM {b[0]:5.1f} F1 {b[1]:5.1f} | all EM {c[0]:5.1f} F1 {c[1]:5.1f}")
    top1 = next(d for d in decoding if d["n_best"] == 1)
    chosen = max(decoding, key=lambda d: d["choose_f1"])
    print(f"chosen: {chosen['n_best']} spans, T {chosen['temperature']} (second half F1 {top1['check_f1']:.1f} -> {chosen['check_f1']:.1f})")

    # 2. telling answerable pairs from on-topic unanswerable ones
    q_vec = embedder.encode_queries([r["question"] for r in rows])
    s_vec = embedder.encode_passages([r["sentence"] for r in rows])
    feats = {
        "margin": np.array([r["margin"] for r in rows]),
        "sentence_cosine": np.einsum("ij,ij->i", q_vec, s_vec),
        "sentence_term_coverage": np.array([term_coverage(r["question"], r["sentence"]) for r in rows]),
    }
    y = np.array([1 if r["kind"] == "answerable" else 0 for r in rows])
    single = {k: auc(y, v) for k, v in feats.items()}
    combos = {}
    for names in (["margin"], ["margin", "sentence_cosine"], ["margin", "sentence_term_coverage"], list(feats)):
        combos[" + ".join(names)] = cv_auc(np.column_stack([feats[k] for k in names]), y, [r["qid"] for r in rows])
    for k, v in single.items():
        print(f"ROC AUC of {k} alone: {v:.3f}")
    # 3. a linear probe on the reader's hidden states
    hr = [r for r in rows if r["hidden"] is not None]
    hx, hy, hq = np.array([r["hidden"] for r in hr]), np.array([1 if r["kind"] == "answerable" else 0 for r in hr]), [r["qid"] for r in hr]
    probe = {"margin": cv_auc(hx[:, -1:], hy, hq)}
    for c in (0.01, 0.1, 1.0):
        probe[f"hidden_states_C{c}"] = cv_auc(hx, hy, hq, c)
    for k, v in {**combos, **{f"probe, {k}": v for k, v in probe.items()}}.items():
        print(f"2-fold, {k}: " + " | ".join(f"AUC {h['auc']:.3f}, on-topic rejected at 97/95/90% answered "
                                            f"{100 * h['rejected_at_97pct_answered']:.1f} / {100 * h['rejected_at_95pct_answered']:.1f} / {100 * h['rejected_at_90pct_answered']:.1f}%" for h in v))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "reader": reader.name, "answerable_pairs": len(pos), "removed_pairs": len(rows) - len(pos),
        "expected_f1_decoding": {"results": decoding, "chosen": chosen, "top1": top1},
        "no_answer_features": {"auc_alone": single, "auc_2fold": combos},
        "hidden_state_probe": probe,
    }, indent=1))


if __name__ == "__main__":
    main()
