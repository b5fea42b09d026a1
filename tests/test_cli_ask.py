"""`qa ask` from a terminal, with the real models on the bundled articles: one question, or many read from
stdin with the models loaded once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from index.store import DocumentCatalog
from qa.cli import app

REPO = Path(__file__).resolve().parents[1]


def _run(args: list[str], data_dir: Path, stdin: str | None = None):
    return CliRunner().invoke(app, args, input=stdin, env={"QA_DATA_DIR": str(data_dir)})


@pytest.fixture(scope="module")
def seed_index(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("ask") / "idx"
    res = _run(["index", str(REPO / "data" / "articles")], data)
    assert res.exit_code == 0, res.stderr
    return data


def test_questions_from_stdin_one_json_response_a_line(seed_index):
    res = _run(["ask", "-", "--json"], seed_index, stdin="combien Netflix investit-il en 2018 ?\n\n   \nQuelle est la recette de la quiche lorraine ?")
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 2  # blank lines are skipped, the last question needs no newline
    first, second = (json.loads(line) for line in lines)
    assert first["question"] == "combien Netflix investit-il en 2018 ?" and not first["no_answer"]
    top = first["answers"][0]
    assert top["text"] in ("7 milliards de dollars", "entre 7 et 8 milliards de dollars")
    catalog = DocumentCatalog(seed_index)
    for a in first["answers"]:
        assert catalog.get_document(a["document_id"]).text[a["start"] : a["end"]] == a["text"]
    catalog.close()
    assert second["question"] == "Quelle est la recette de la quiche lorraine ?" and second["no_answer"] and second["answers"] == []


def test_one_question_and_errors(seed_index):
    plain = _run(["ask", "Qui dirige le contenu de Netflix ?"], seed_index)
    assert plain.exit_code == 0, plain.stderr
    assert plain.stdout.startswith("Question : Qui dirige le contenu de Netflix ?") and "[Ted Sarandos]" in plain.stdout
    empty = _run(["ask", "  "], seed_index)
    assert empty.exit_code == 1 and empty.stderr.strip() == "error: the question is empty"
    mode = _run(["ask", "-", "--mode", "fuzzy"], seed_index, stdin="x\n")
    assert mode.exit_code == 1 and "--mode must be hybrid, dense or bm25" in mode.stderr


def test_search_date_filters_take_partial_dates(seed_index):
    def years(*opts: str) -> set[str]:
        res = _run(["search", "Netflix", "--json", "--top-k", "50", *opts], seed_index)
        assert res.exit_code == 0, res.stderr
        return {(h["published"] or "")[:4] for h in json.loads(res.stdout)["results"]}

    assert years("--after", "2017", "--before", "2017") == {"2017"}
    assert years("--after", "2017-01-01", "--before", "2017-12-31") == {"2017"}
    bad = _run(["search", "Netflix", "--after", "hier"], seed_index)
    assert bad.exit_code == 1 and "--after must be a date like 2018-01-31, 2018-01 or 2018" in bad.stderr
    nowhere = _run(["search", "Netflix", "--source", "https://"], seed_index)  # no domain: it would match nothing
    assert nowhere.exit_code == 1 and "--source must be a domain name such as numerama.com" in nowhere.stderr


def _run_bytes(args: list[str], data_dir: Path, stdin: bytes):
    return CliRunner().invoke(app, args, input=stdin, env={"QA_DATA_DIR": str(data_dir)})


def test_bad_lines_on_stdin_are_reported_and_the_rest_answered(seed_index):
    res = _run_bytes(["ask", "-", "--json"], seed_index, "Qui dirige le contenu de Netflix ?\n".encode() + b"O\xf9 est le si\xe8ge ?\n???\n" + "Où Netflix ouvre-t-il un bureau ?\n".encode())
    assert res.exit_code == 1  # something was skipped
    assert [json.loads(line)["question"] for line in res.stdout.splitlines()] == ["Qui dirige le contenu de Netflix ?", "Où Netflix ouvre-t-il un bureau ?"]
    assert "error: stdin line 2: not UTF-8 text (byte 1), skipped" in res.stderr
    assert "error: stdin line 3: no letter or digit, skipped" in res.stderr


def test_extract_checks_its_input(seed_index, tmp_path):
    ctx = tmp_path / "ctx.txt"
    ctx.write_text("Netflix va ouvrir un bureau à Paris.", encoding="utf-8")
    ok = _run(["extract", "Où Netflix ouvre-t-il un bureau ?", str(ctx)], seed_index)
    assert ok.exit_code == 0, ok.stderr
    answers = json.loads(ok.stdout)["answers"]
    assert answers[0]["text"] == "Paris" and all(a["text"] != "à" for a in answers)
    cases = [
        (["extract", "???", str(ctx)], "error: the question has no letter or digit"),
        (["extract", "  ", str(ctx)], "error: the question is empty"),
        (["extract", "Où ?", str(tmp_path)], f"error: {tmp_path} is a folder: give a text file"),
        (["extract", "Où ?", str(tmp_path / "none.txt")], f"error: no such file: {tmp_path / 'none.txt'}"),
    ]
    for args, message in cases:
        res = _run(args, seed_index)
        assert res.exit_code == 1 and res.stderr.strip() == message, res.stderr
    latin = _run_bytes(["extract", "Où ?", "-"], seed_index, b"Caf\xe9 \xe0 Paris")
    assert latin.exit_code == 1 and latin.stderr.strip() == "error: stdin: not UTF-8 text (byte 3)"
    blank = _run_bytes(["extract", "Où ?", "-"], seed_index, b"  \n")
    assert blank.exit_code == 1 and blank.stderr.strip() == "error: stdin: the context is empty"


def test_arguments_that_are_not_utf8_are_one_line(seed_index):
    # a Latin-1 terminal: Python keeps the undecodable byte as a lone surrogate ("caf\udce9")
    for args, message in ((["search", "caf\udce9 Netflix"], "error: the query is not valid UTF-8 text"), (["ask", "caf\udce9 ?"], "error: the question is not valid UTF-8 text")):
        res = _run(args, seed_index)
        assert res.exit_code == 1 and res.stderr.strip() == message, res.stderr
