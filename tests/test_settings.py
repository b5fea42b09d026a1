"""The settings object: QA_* variables that cannot be used are named, with what they must be."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from qa.cli import app
from qa.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    "env, message",
    [
        ({"QA_TOP_K": "abc"}, "QA_TOP_K='abc': Input should be a valid integer"),
        ({"QA_TOP_K": "0"}, "QA_TOP_K='0': Input should be greater than or equal to 1"),
        ({"QA_RETRIEVAL_MODE": "fuzzy"}, "QA_RETRIEVAL_MODE='fuzzy': Input should be 'hybrid', 'dense' or 'bm25'"),
        ({"QA_FUSION": "sum"}, "QA_FUSION='sum': Input should be 'convex' or 'rrf'"),
        ({"QA_DENSE_WEIGHT": "1.5"}, "QA_DENSE_WEIGHT='1.5': Input should be less than or equal to 1"),
        ({"QA_PORT": "70000"}, "QA_PORT='70000': Input should be less than or equal to 65535"),
        ({"QA_MAX_UPLOAD_BYTES": "50MB"}, "QA_MAX_UPLOAD_BYTES='50MB': Input should be a valid integer"),
        ({"QA_MAX_UPLOAD_BYTES": "0"}, "QA_MAX_UPLOAD_BYTES='0': Input should be greater than or equal to 1"),
        ({"QA_LOG_LEVEL": "loud"}, "QA_LOG_LEVEL='LOUD': Input should be 'CRITICAL'"),
        ({"QA_PAGE_TITLE": "  "}, "QA_PAGE_TITLE='  ': Value error, must hold some text (leave it unset for the default)"),
        ({"QA_PAGE_SUBTITLE": "x" * 501}, "QA_PAGE_SUBTITLE='" + "x" * 501 + "': String should have at most 500 characters"),
        ({"QA_CORS_ORIGINS": "http://a.example"}, 'QA_CORS_ORIGINS is not valid JSON (lists are written in JSON: ["https://a.example"])'),
    ],
)
def test_bad_variables_are_named(monkeypatch, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError, match="bad setting: ") as info:
        load_settings()
    assert message in str(info.value)
    # the CLI says it in one line, before doing anything
    res = CliRunner().invoke(app, ["docs", "list"], env=env)
    assert res.exit_code == 1 and res.stderr.strip() == f"error: {info.value}" and "Traceback" not in res.stderr


def test_good_variables_are_read(monkeypatch):
    monkeypatch.setenv("QA_LOG_LEVEL", "debug")
    monkeypatch.setenv("QA_TOP_K", "7")
    monkeypatch.setenv("QA_READER_QUANTIZE", "yes")
    s = load_settings()
    assert (s.log_level, s.top_k, s.reader_quantize) == ("DEBUG", 7, "all")


def test_the_page_title_is_read_as_one_line(monkeypatch):
    monkeypatch.setenv("QA_PAGE_TITLE", "  Base\n documentaire  d'Acme ")
    s = load_settings()
    assert s.page_title == "Base documentaire d'Acme" and s.page_subtitle.startswith("Posez une question")
