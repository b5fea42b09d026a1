"""Ctrl-C (SIGINT) on a running `qa` command: one line saying it was interrupted and what it leaves,
exit status 130. Each test sends the signal to a real process once a line it prints says it got
where the test wants it (no fixed sleep: the machine may be loaded)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import typer

from qa.cli import app

REPO = Path(__file__).resolve().parents[1]
QA = [sys.executable, "-m", "qa.cli"]


def _sigint_as_default() -> None:
    # a command started in the background by a non-interactive shell inherits SIGINT ignored, and
    # Python then never raises KeyboardInterrupt: the test would say nothing of the command
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Running:
    """A command in a subprocess, its output read as it comes."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, cwd: Path = REPO, stdin: str | None = None) -> None:
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={**os.environ, **(env or {})}, cwd=cwd, preexec_fn=_sigint_as_default,
        )
        if stdin is not None:  # left open: the command waits for more
            self.proc.stdin.write(stdin)
            self.proc.stdin.flush()
        self.out: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
        self._readers = [threading.Thread(target=self._read, args=(name,), daemon=True) for name in self.out]
        for t in self._readers:
            t.start()

    def _read(self, name: str) -> None:
        for line in getattr(self.proc, name):
            self.out[name].append(line)
            self._lines.put((name, line))
        self._lines.put((name, None))

    def wait_for(self, name: str, text: str, timeout: float = 300) -> None:
        """Until a line of ``name`` (stdout or stderr) holds ``text``."""
        ended = set()
        while True:
            try:
                which, line = self._lines.get(timeout=timeout)
            except queue.Empty:
                self.proc.kill()
                pytest.fail(f"no {text!r} on {name} in {timeout}s: {self.out}")
            if line is None:
                ended.add(which)
                if which == name or len(ended) == 2:
                    self.proc.wait(timeout=60)
                    pytest.fail(f"{name} ended without {text!r} (exit status {self.proc.returncode}): {self.out}")
            elif which == name and text in line:
                return

    def interrupt(self, timeout: float = 120) -> tuple[int, str, str]:
        """Ctrl-C; the exit status, stdout and stderr."""
        self.proc.send_signal(signal.SIGINT)
        try:
            status = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"still running {timeout}s after SIGINT: {self.out}")
        for t in self._readers:
            t.join(timeout=30)
        if self.proc.stdin:
            self.proc.stdin.close()
        return status, "".join(self.out["stdout"]), "".join(self.out["stderr"])


def _said(stderr: str) -> str:
    """The last line of stderr, which must be the only one that is not a log line."""
    assert "Traceback" not in stderr, stderr
    return stderr.strip().splitlines()[-1]


def stopping_at(module: str, function: str, line: str) -> str:
    """A script running the `qa` command of its arguments that, where it calls ``module.function``,
    prints ``line`` (for the test to wait for) and stops there, to be interrupted."""
    return f"""
import sys, time
import {module}

def stopped(*args, **kwargs):
    print({line!r}, flush=True)
    time.sleep(600)

{module}.{function} = stopped
sys.argv[0] = "qa"
from qa.cli import app
app()
"""


# stops any command where it first reads its settings
BLOCKED = stopping_at("qa.settings", "load_settings", "blocked")

# one command line for each command of `qa` (the test checks none is missing)
COMMAND_LINES = {
    "models": ["models"],
    "index": ["index", "docs"],
    "search": ["search", "Netflix"],
    "docs list": ["docs", "list", "--search", "ete"],
    "docs show": ["docs", "show", "x"],
    "docs delete": ["docs", "delete", "x"],
    "backup": ["backup", "copy"],
    "ask": ["ask", "Qui ?"],
    "extract": ["extract", "Qui ?", "context.txt"],
    "serve": ["serve"],
    "eval": ["eval", "gold.jsonl", "--out", "report.json"],
    "train-reader": ["train-reader"],
}


def _command_paths(group, prefix: str = "") -> set[str]:
    paths = set()
    for name, command in group.commands.items():  # a group (docs) has commands of its own
        paths |= _command_paths(command, f"{prefix}{name} ") if hasattr(command, "commands") else {prefix + name}
    return paths


def test_every_command_is_listed_here():
    assert _command_paths(typer.main.get_command(app)) == set(COMMAND_LINES)


@pytest.mark.parametrize("command", sorted(COMMAND_LINES))
def test_every_command_says_it_was_interrupted(command, tmp_path):
    """Typer alone exited 130 with nothing said, whatever the command."""
    running = Running([sys.executable, "-c", BLOCKED, *COMMAND_LINES[command]], cwd=tmp_path)
    running.wait_for("stdout", "blocked")
    status, stdout, stderr = running.interrupt()
    assert status == 130 and stdout == "blocked\n", (status, stdout, stderr)
    assert stderr.count("\n") == 1 and stderr.startswith("interrupted: "), stderr
    if command == "eval":
        assert stderr == "interrupted: no report written to report.json\n"
    if command == "backup":
        assert stderr == "interrupted: no backup was written to copy; the index was not changed\n"
    if command == "train-reader":  # runs/reader, from the current folder, holds no checkpoint
        assert stderr.startswith("interrupted: no checkpoint in runs/reader yet ("), stderr


def _squad(path: Path, questions: int) -> Path:
    """A SQuAD file of ``questions`` distinct questions, one paragraph each."""
    paragraphs = []
    for i in range(questions):
        context = f"Le bureau numéro {i} de Netflix ouvrira à Lyon en {1990 + i}. Il emploiera {10 + i} personnes."
        paragraphs.append({"context": context, "qas": [{"id": f"q{i}", "question": f"Où ouvrira le bureau numéro {i} de Netflix ?",
                                                       "answers": [{"text": "Lyon", "answer_start": context.index("Lyon")}]}]})
    path.write_text(json.dumps({"data": [{"title": "Netflix", "paragraphs": paragraphs}]}, ensure_ascii=False), encoding="utf-8")
    return path


def test_qa_eval_interrupted_writes_no_report_and_leaves_out_as_it_was(tmp_path):
    """As measured on the seed index (Ctrl-C after 40 s: status 130, nothing said); here a SQuAD file,
    interrupted once its paragraphs are indexed, among its questions."""
    gold = _squad(tmp_path / "gold.json", 40)
    out = tmp_path / "report.json"
    out.write_text("an earlier report", encoding="utf-8")
    scratch = tmp_path / "tmp"  # where the temporary index of the paragraphs goes
    scratch.mkdir()
    running = Running([*QA, "eval", str(gold), "--out", str(out)], env={"QA_LOG_LEVEL": "INFO", "TMPDIR": str(scratch), "QA_DATA_DIR": str(tmp_path / "unused")})
    running.wait_for("stderr", "indexed 40 paragraphs")
    status, stdout, stderr = running.interrupt()
    assert status == 130 and stdout == "", (status, stdout, stderr)
    assert _said(stderr) == f"interrupted: no report written; {out} is left as it was"
    assert out.read_text(encoding="utf-8") == "an earlier report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gold.json", "report.json", "tmp"]
    assert not list(scratch.glob("qa-eval-*")), "the temporary index is removed"


def test_qa_ask_from_stdin_interrupted_between_questions(tmp_path, embedder):
    from index.schema import Document
    from index.store import IndexStore

    data = tmp_path / "idx"
    store = IndexStore.open(data, embedder)
    store.add_documents([Document(id="note", title="Note", text="Le siège de la société est à Nantes depuis 2010.")])
    store.close()
    running = Running([*QA, "ask", "-", "--json"], env={"QA_DATA_DIR": str(data)}, stdin="Où est le siège de la société ?\n")
    running.wait_for("stdout", '"question":"Où est le siège de la société ?"')  # then it waits for the next line
    status, stdout, stderr = running.interrupt()
    assert status == 130 and json.loads(stdout)["question"] == "Où est le siège de la société ?", (status, stdout, stderr)
    assert _said(stderr) == "interrupted: nothing was changed"


def test_qa_train_reader_interrupted_says_whether_it_can_resume(tmp_path):
    train_file = _squad(tmp_path / "train.json", 30)
    run_dir = tmp_path / "run"
    args = ["train-reader", "--train-file", str(train_file), "--dev-file", str(train_file), "--run-dir", str(run_dir), "--out", str(run_dir / "r.zip"),
            "--max-length", "64", "--stride", "16", "--batch-size", "4", "--dev-limit", "4", "--device", "cpu"]
    try:
        running = Running([*QA, *args], env={"QA_LOG_LEVEL": "INFO"})
        running.wait_for("stderr", "training on cpu")
        status, stdout, stderr = running.interrupt()
        assert status == 130 and stdout == "", (status, stdout, stderr)
        checkpoint = run_dir / "last.pt"
        if checkpoint.is_file():  # a machine fast enough to reach the first one (the first epoch's end) before the signal
            assert _said(stderr) == f"interrupted: the last checkpoint, {checkpoint}, is kept: run the same command again to resume from it"
        else:
            assert _said(stderr) == f"interrupted: no checkpoint in {run_dir} yet (one is written every 50 steps and at each epoch's end): the same command starts over"
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)  # a checkpoint is 250 MB


def test_an_interrupted_training_names_the_checkpoint_it_resumes_from(tmp_path):
    from qa.cli_eval import train_interrupted

    assert train_interrupted(run_dir=tmp_path).startswith(f"no checkpoint in {tmp_path} yet")
    (tmp_path / "last.pt").write_bytes(b"")
    assert train_interrupted(run_dir=tmp_path) == f"the last checkpoint, {tmp_path / 'last.pt'}, is kept: run the same command again to resume from it"
