"""`qa index` from a terminal: batched atomic writes, re-runs that skip what is indexed, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _qa(*args: str, data_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "QA_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "qa.cli", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


def test_index_in_batches_then_again_skips_everything(tmp_path):
    data = tmp_path / "idx"
    first = _qa("index", "data/articles", "--batch-docs", "2", data_dir=data)
    assert first.returncode == 0, first.stderr
    assert "5 read (5 added, 0 updated, 0 unchanged)" in first.stdout
    assert "index now 5 documents" in first.stdout
    assert "indexed 2 of 5 documents" in first.stderr and "indexed 4 of 5 documents" in first.stderr
    again = _qa("index", "data/articles", data_dir=data)
    assert again.returncode == 0, again.stderr
    assert "5 read (0 added, 0 updated, 5 unchanged), chunks: 0 embedded" in again.stdout


def test_index_errors_are_one_clear_line(tmp_path):
    missing = _qa("index", str(tmp_path / "nope"), data_dir=tmp_path / "idx")
    assert missing.returncode == 1 and missing.stderr.strip() == f"error: no such file or folder: {tmp_path / 'nope'}"
    bad = _qa("index", "data/articles", "--batch-docs", "0", data_dir=tmp_path / "idx")
    assert bad.returncode == 2 and "--batch-docs" in bad.stderr and "Traceback" not in bad.stderr
