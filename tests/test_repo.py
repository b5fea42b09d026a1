"""The Dockerfile, .ci/run, the settings and the modules stay in step with the README."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]


def _readme_commands() -> tuple[str, str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    run = re.search(r"<!-- run-command -->\s*```(?:bash|sh)?\n(.+?)\n```", text, re.S)
    test = re.search(r"<!-- test-command -->\s*```(?:bash|sh)?\n(.+?)\n```", text, re.S)
    assert run and test, "README must mark its run and test commands"
    return run.group(1).strip(), test.group(1).strip()


def test_ci_runs_the_readme_test_command():
    _, test_cmd = _readme_commands()
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert test_cmd in ci


def test_dockerfile_lints_clean():
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    proc = subprocess.run([exe, str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_matches_readme():
    run_cmd, _ = _readme_commands()
    docker = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert docker.startswith("# ") and "FROM python:3.11-slim" in docker
    for step in ("qa models", "qa index data/articles", "qa serve"):
        assert step in run_cmd, step
        exec_form = ", ".join(f'"{w}"' for w in step.split())  # CMD ["qa", "serve", ...]
        assert step in docker or exec_form in docker, step
    assert "HEALTHCHECK" in docker and "qa.healthcheck" in docker  # /health of QA_HOST:QA_PORT
    assert re.search(r"^USER \d+", docker, re.M), "runs as a non-root user"
    assert "0.0.0.0" in docker and "8000" in docker



def test_the_image_can_be_built_without_the_sample_articles():
    """A team serving its own documents builds with SAMPLE_ARTICLES=false: the index folder is made
    empty (owned by the image's user, as with the articles) and no article is indexed; by default
    the image indexes them, as the README's run command does. No Docker engine runs here: the RUN
    step's shell is run with `qa` and `pip` as the only commands it cannot run here, and /app
    moved to a temporary folder."""
    docker = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^ARG SAMPLE_ARTICLES=true$", docker, re.M)
    run = next(m.group(1) for m in re.finditer(r"^RUN (.+?)(?<!\\)\n", docker, re.S | re.M) if "qa index data/articles" in m.group(1))
    import os
    import tempfile

    for sample, indexed in (("true", True), ("false", False)):
        with tempfile.TemporaryDirectory() as tmp:
            bin_dir, app = Path(tmp) / "bin", Path(tmp) / "app"
            bin_dir.mkdir()
            for name in ("qa", "pip"):  # record what they are asked, nothing more
                (bin_dir / name).write_text(f'#!/bin/sh\necho "{name} $*" >> {tmp}/calls\n')
                (bin_dir / name).chmod(0o755)
            (app / "models").mkdir(parents=True)
            script = run.replace("\\\n", " ").replace("/app/", f"{app}/").replace("chown -R 10001:0", "true")
            env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SAMPLE_ARTICLES": sample}
            proc = subprocess.run(["sh", "-ec", script], cwd=tmp, env=env, capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
            calls = (Path(tmp) / "calls").read_text().splitlines()
            assert ("qa index data/articles" in calls) is indexed, calls
            assert (app / "var").is_dir(), "the index folder exists for chown and the server to write"

def _readme_section(title: str) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(rf"^## {re.escape(title)}\n(.+?)(?=^## )", text, re.S | re.M)
    assert m, f"README has no section {title!r}"
    return m.group(1)


def test_configuration_table_lists_every_setting():
    from qa.settings import Settings

    settings = {f"QA_{name.upper()}" for name in Settings.model_fields}
    rows = [line for line in _readme_section("Configuration").splitlines() if line.startswith("| `QA_")]
    table = {var for row in rows for var in re.findall(r"`(QA_[A-Z0-9_]+)`", row.split(" | ")[0])}
    assert settings - table == set(), "settings missing from README's Configuration table"
    assert table - settings == set(), "README's Configuration table names variables that qa/settings.py does not read"


def test_how_it_is_built_names_every_module():
    section = _readme_section("How it is built")
    bullets = {m.group(1): m.group(0) for m in re.finditer(r"^- `(\w+)/`:.+?(?=^- |\Z)", section, re.S | re.M)}
    missing = []
    for package in ("index", "qa", "api"):
        assert package in bullets, f"no '- `{package}/`:' item in README's How it is built"
        for module in sorted((REPO / package).glob("*.py")):
            if module.name == "__init__.py":
                continue
            if f"`{package}/{module.name}`" not in section and f"`{module.name}`" not in bullets[package]:
                missing.append(f"{package}/{module.name}")
    assert missing == [], "modules README's How it is built does not describe"
