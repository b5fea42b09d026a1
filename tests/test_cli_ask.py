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
