"""`qa eval` and `qa train-reader`: measuring the answers against a gold set, and training the reader."""

from __future__ import annotations

import errno
import json
import os
import re
import uuid
from pathlib import Path
from typing import Optional

import typer

from qa.cli_common import MODE_HELP, USAGE, check_index_folder, check_mode, fail, guard, opening, read_settings, setup_logging
from qa.validation import MAX_TOP_K


def eval_cmd(
    gold: Path = typer.Argument(..., help="Gold set: JSONL {id, question, answers, document_ids} or SQuAD JSON"),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, max=MAX_TOP_K, help="Passages read per question (default: QA_TOP_K, 5)"),
    mode: Optional[str] = typer.Option(None, help=MODE_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the JSON report here"),
    errors: bool = typer.Option(False, "--errors", help="List the questions answered wrongly"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="SQuAD files: index their paragraphs into this folder (new, or filled by an earlier qa eval; kept, so a later run reuses them) instead of a temporary one; JSONL files: the index to read instead of QA_DATA_DIR"),
    limit: int = typer.Option(0, min=0, help="Evaluate only the first N questions (0 = all)"),
    corpus: Optional[list[Path]] = typer.Option(None, "--corpus", help="SQuAD files whose paragraphs are indexed too (distractors)"),
) -> None:
    """Measure retrieval, reader and end-to-end answers against a gold set."""
    settings = read_settings()
    setup_logging(settings)
    from qa.evaluation import EvalSetupError, run_eval

    # checked before the models load and the questions run, not after
    mode = check_mode(mode, settings)
    top_k = top_k or settings.top_k
    if data_dir is not None:
        check_index_folder(data_dir, "--data-dir", fix="; give a writable folder")  # the SQuAD paragraphs are indexed there
    to_stdout = out is not None and _is_stdout(out)
    if out is not None and not to_stdout:
        if out.is_dir():
            fail(f"--out {out}: is a folder; give a file name, such as {out / 'report.json'}")
        try:
            target = _report_target(out)
        except RuntimeError as exc:  # a loop of symbolic links
            fail(f"--out {out}: {exc}")
        if not target.parent.is_dir():
            fail(f"--out {out}: no such folder {target.parent}")
        try:  # can the report be written there? (found out now, not after the whole evaluation)
            _write_text(target, "", probe=True)
        except OSError as exc:
            fail(f"--out {out}: cannot write there ({exc.strerror or exc})")
    from index.storage import ReindexNeeded

    def evaluate() -> dict:
        try:
            return run_eval(settings, gold, top_k=top_k, mode=mode, data_dir=data_dir, limit=limit, corpus=corpus)
        except ReindexNeeded as exc:  # "set QA_DATA_DIR to a new folder" is not what to do with --data-dir
            if data_dir is None:
                raise
            raise EvalSetupError(exc.naming("--data-dir", data_dir)) from None

    try:
        # a failure to open or write the index is said of the folder it is in, --data-dir's when given
        index_settings = settings.model_copy(update={"data_dir": data_dir}) if data_dir is not None else settings
        report = opening(index_settings, evaluate)
    except EvalSetupError as exc:
        fail(str(exc))
    from qa.evaluation import render_report

    if to_stdout:  # the JSON alone on stdout, for a pipe; the table where people read it
        typer.echo(render_report(report, errors=errors), err=True)
        typer.echo(json.dumps(report, ensure_ascii=False, indent=1))
        return
    typer.echo(render_report(report, errors=errors))
    if out:
        try:
            _write_text(_report_target(out), json.dumps(report, ensure_ascii=False, indent=1))
        except OSError as exc:
            fail(f"--out {out}: cannot write the report ({exc.strerror or exc}); the table above has the numbers")
        typer.echo(f"report written to {out}")


def eval_interrupted(out: Optional[Path] = None, **_: object) -> str:
    """What a Ctrl-C during `qa eval` leaves (``qa.cli.interruptible``): no report, and the --out
    file as it was, since the report replaces it in one rename, at the very end."""
    if out is None or _is_stdout(out):
        return "no report written"
    if out.is_file():
        return f"no report written; {out} is left as it was"
    return f"no report written to {out}"


def _is_stdout(out: Path) -> bool:
    """``--out -``, or a name of this process's standard output (/dev/stdout, /dev/fd/1)."""
    if str(out) == "-":
        return True
    try:
        return os.path.samestat(os.stat(out), os.fstat(1))
    except OSError:  # no such file; stdout closed (>&-)
        return False


_STREAM_NAMES = re.compile(r"^/(?:dev/(?:std(?:in|out|err)|fd/\d+)|proc/(?:self|\d+)/fd/\d+)$")


def _in_place(out: Path) -> bool:
    """A device or a pipe, or a name of an open stream (/dev/stderr, /dev/fd/63, /proc/self/fd/3):
    written as it is, never replaced, even when it leads to a regular file (``2>> log``)."""
    return bool(_STREAM_NAMES.match(os.path.abspath(out))) or (out.exists() and not out.is_file())


def _report_target(out: Path) -> Path:
    """Where ``--out`` really writes: through a symbolic link to its file (the link stays a link)."""
    return out.resolve(strict=False) if out.is_symlink() and not _in_place(out) else out


def _write_text(target: Path, text: str, probe: bool = False) -> None:
    """Atomic for a regular file: a unique temporary file beside it, renamed over it (an interrupted
    write leaves the old report whole, and no file of the user's is touched). What ``_in_place``
    names is appended to as it is, never replaced or emptied. ``probe``: only check."""
    if _in_place(target):
        if probe:  # not opened: a pipe's open waits for its reader
            if not os.access(target, os.W_OK):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(target))
            return
        with open(target, "a", encoding="utf-8") as f:
            f.write(text)
        return
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
        if not probe:
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def train_reader(
    epochs: int = typer.Option(8, min=1),
    lr: float = typer.Option(2e-4, min=0.0),
    batch_size: int = typer.Option(64, min=1),
    max_length: int = typer.Option(384, min=64, max=512, help="Tokens per window (question + passage)"),
    stride: int = typer.Option(128, min=0, help="Tokens shared by consecutive windows of a long passage"),
    negative_ratio: float = typer.Option(0.2, min=0.0, max=1.0, help="Extra (question, unrelated paragraph) pairs per question, labelled no answer"),
    hard_negative_ratio: float = typer.Option(0.5, min=0.0, max=1.0, help="Extra (question, other paragraph of the same article) pairs per question, labelled no answer"),
    removed_negative_ratio: float = typer.Option(0.0, min=0.0, max=1.0, help="Extra (question, its own paragraph without the answer's sentence) pairs per question, labelled no answer"),
    train_file: Path = typer.Option(Path("data/piaf/piaf-v1.1-train.json"), help="SQuAD-format training data"),
    dev_file: Path = typer.Option(Path("data/piaf/piaf-v1.1-dev.json"), help="SQuAD-format data the checkpoint and thresholds are chosen on"),
    init_artifact: Optional[Path] = typer.Option(None, help="Continue from this reader artifact (e.g. the shipped one) instead of the bare encoder"),
    length_penalty: float = typer.Option(0.0, help="Logit points taken off a span per token when decoding for the dev evaluation (stored with the reader; bench/span_length.py chooses it for the shipped one)"),
    run_dir: Path = typer.Option(Path("runs/reader"), help="Checkpoints and logs; a rerun resumes from here"),
    out: Path = typer.Option(Path("runs/reader/reader-e5s-piaf.zip"), help="Where the artifact goes (the shipped one is replaced only when this is data/reader/reader-e5s-piaf.zip)"),
    seed: int = typer.Option(13),
    data_seed: int = typer.Option(-1, help="Order of the training batches (-1 = --seed); runs that differ only here can be averaged by bench/reader_soup.py"),
    max_steps: int = typer.Option(0, min=0, help="Stop after N steps (the linear schedule ends there; 0 = all epochs)"),
    dev_limit: int = typer.Option(0, min=0, help="Evaluate on the first N dev questions only"),
    device: str = typer.Option("auto", help="auto (cuda when available), cpu or cuda"),
) -> None:
    """Fine-tune the reader on PIAF train; pick checkpoint and no-answer threshold on PIAF dev."""
    settings = read_settings()
    setup_logging(settings)
    # checked before minutes of set-up, each as one line
    if device not in ("auto", "cpu", "cuda"):
        fail(f"--device must be auto, cpu or cuda, got {device!r}", USAGE)
    if stride >= max_length // 2:
        fail(f"--stride ({stride}) must be less than half of --max-length ({max_length})", USAGE)
    from qa.evaluation import EvalSetupError, load_gold

    for name, f in (("--train-file", train_file), ("--dev-file", dev_file)):
        if not f.is_file():
            fail(f"{name} {f}: no such file (run from the repository root, or give the file)")
        try:
            if load_gold(f).kind != "squad":
                fail(f"{name} {f}: not a SQuAD-format file ({{\"data\": [...]}})")
        except EvalSetupError as exc:
            fail(f"{name}: {exc}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            fail("--device cuda: no CUDA GPU is usable here (torch sees none); use --device cpu")
    from qa.model_card import write_model_card
    from qa.reader_artifact import write_checksum
    from qa.train_reader import TrainConfig, train

    cfg = TrainConfig(
        epochs=epochs, lr=lr, batch_size=batch_size, max_length=max_length, stride=stride, negative_ratio=negative_ratio, hard_negative_ratio=hard_negative_ratio,
        removed_negative_ratio=removed_negative_ratio, init_artifact=str(init_artifact or ""), length_penalty=length_penalty, train_file=train_file, dev_file=dev_file,
        run_dir=run_dir, out_artifact=out, seed=seed, data_seed=data_seed, max_steps=max_steps, dev_limit=dev_limit, threads=settings.torch_threads, device=device,
    )
    guard(train, cfg)
    write_checksum(out)
    write_model_card(out)
    typer.echo(f"reader artifact: {out} (model card: {out.parent / 'MODEL_CARD.md'})")


def train_interrupted(run_dir: Path = Path("runs/reader"), **_: object) -> str:
    """What a Ctrl-C during `qa train-reader` leaves (``qa.cli.interruptible``): the last checkpoint
    in --run-dir, which the same command resumes from (``qa.train_reader.train``), if one was written."""
    from qa.train_reader import TrainConfig, checkpoint_path

    checkpoint = checkpoint_path(run_dir)  # replaced in one rename: whole even if stopped as it was written
    if checkpoint.is_file():
        return f"the last checkpoint, {checkpoint}, is kept: run the same command again to resume from it"
    return f"no checkpoint in {run_dir} yet (one is written every {TrainConfig.checkpoint_every} steps and at each epoch's end): the same command starts over"
