"""`qa ask` from a terminal, with the real models on the bundled articles: one question, or many read from
stdin with the models loaded once."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
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
    assert mode.exit_code == 2 and "--mode must be hybrid, dense or bm25" in mode.stderr
    # the API's limit, counted as it counts (surrounding whitespace left out)
    long = _run(["ask", "  " + "Netflix ? " * 101], seed_index)
    assert long.exit_code == 1 and long.stderr.strip() == "error: the question is longer than 1000 characters (got 1009)"
    long = _run(["search", "Netflix " * 126], seed_index)
    assert long.exit_code == 1 and long.stderr.strip() == "error: the query is longer than 1000 characters (got 1007)"


def test_search_date_filters_take_partial_dates(seed_index):
    def years(*opts: str) -> set[str]:
        res = _run(["search", "Netflix", "--json", "--top-k", "50", *opts], seed_index)
        assert res.exit_code == 0, res.stderr
        return {(h["published"] or "")[:4] for h in json.loads(res.stdout)["results"]}

    assert years("--after", "2017", "--before", "2017") == {"2017"}
    assert years("--after", "2017-01-01", "--before", "2017-12-31") == {"2017"}
    bad = _run(["search", "Netflix", "--after", "hier"], seed_index)
    assert bad.exit_code == 2 and "--after must be a date like 2018-01-31, 2018-01 or 2018" in bad.stderr
    nowhere = _run(["search", "Netflix", "--source", "https://"], seed_index)  # no domain: it would match nothing
    assert nowhere.exit_code == 2 and "--source must be a domain name such as numerama.com" in nowhere.stderr
    # as the API refuses them: a domain with a space matched nothing, and a blank date was no filter at all
    spaced = _run(["search", "Netflix", "--source", "numerama .com"], seed_index)
    assert spaced.exit_code == 2 and spaced.stderr.strip() == "error: --source must be a domain name such as numerama.com (or a URL on it), got 'numerama .com'"
    unset = _run(["search", "Netflix", "--after", ""], seed_index)  # qa search ... --after "$UNSET"
    assert unset.exit_code == 2 and unset.stderr.strip() == "error: --after must be a date like 2018-01-31, 2018-01 or 2018, got ''"


def _run_bytes(args: list[str], data_dir: Path, stdin: bytes):
    return CliRunner().invoke(app, args, input=stdin, env={"QA_DATA_DIR": str(data_dir)})


def test_bad_lines_on_stdin_are_reported_and_the_rest_answered(seed_index):
    res = _run_bytes(["ask", "-", "--json"], seed_index, "Qui dirige le contenu de Netflix ?\n".encode() + b"O\xf9 est le si\xe8ge ?\n???\n" + "Où Netflix ouvre-t-il un bureau ?\n".encode()
                     + ("Netflix ? " * 101).encode())
    assert res.exit_code == 1  # something was skipped
    assert [json.loads(line)["question"] for line in res.stdout.splitlines()] == ["Qui dirige le contenu de Netflix ?", "Où Netflix ouvre-t-il un bureau ?"]
    assert "error: stdin line 2: not UTF-8 text (byte 1), skipped" in res.stderr
    assert "error: stdin line 3: no letter or digit, skipped" in res.stderr
    assert "error: stdin line 5: longer than 1000 characters (got 1009), skipped" in res.stderr  # the API's limit

    empty = _run_bytes(["ask", "-"], seed_index, b"\n  \n")
    assert empty.exit_code == 1 and empty.stdout == ""
    assert empty.stderr.strip() == "error: stdin held no question (one a line)"


def test_extract_checks_its_input(seed_index, tmp_path):
    ctx = tmp_path / "ctx.txt"
    ctx.write_text("Netflix va ouvrir un bureau à Paris.", encoding="utf-8")
    ok = _run(["extract", "Où Netflix ouvre-t-il un bureau ?", str(ctx), "--json"], seed_index)
    assert ok.exit_code == 0, ok.stderr
    out = json.loads(ok.stdout)  # exactly the /extract response
    assert set(out) == {"question", "answers", "no_answer", "took_ms"} and not out["no_answer"]
    answers = out["answers"]
    assert answers[0]["text"] == "Paris" and all(a["text"] != "à" for a in answers)
    assert set(answers[0]) == {"text", "score", "start", "end", "context", "context_start"}
    plain = _run(["extract", "Où Netflix ouvre-t-il un bureau ?", str(ctx), "--max-answers", "1"], seed_index)
    assert plain.exit_code == 0, plain.stderr
    assert plain.stdout.startswith("Question : Où Netflix ouvre-t-il un bureau ?")
    assert "1. Paris" in plain.stdout and "caractères 30–35" in plain.stdout and "[Paris]" in plain.stdout and "2." not in plain.stdout
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
    wordless = _run_bytes(["extract", "Où ?", "-"], seed_index, b"... ?!\n")  # as POST /extract: no text to read
    assert wordless.exit_code == 1 and wordless.stderr.strip() == "error: stdin: the context has no letter or digit"


def test_every_json_output_is_one_line_written_as_the_api_writes_it(seed_index, tmp_path):
    """`qa ask --json` of one question, `qa search --json` and `qa extract --json` printed indented
    JSON, `qa ask - --json` one response a line: each is now one document a line, written as the API
    writes its bodies (what jq and scripts reading line by line take)."""
    from tests.api_support import json_lines

    ctx = tmp_path / "ctx.txt"
    ctx.write_text("Netflix va ouvrir un bureau à Paris.", encoding="utf-8")
    for args, keys in (
        (["ask", "Où Netflix ouvre-t-il un bureau ?", "--json"], {"question", "answers", "passages"}),
        (["search", "Netflix bureau Paris", "--json", "--mode", "bm25"], {"query", "results"}),
        (["extract", "Où Netflix ouvre-t-il un bureau ?", str(ctx), "--json"], {"question", "answers"}),
    ):
        res = _run(args, seed_index)
        assert res.exit_code == 0, res.stderr
        [out] = json_lines(res.stdout)
        assert keys <= set(out), out
    many = _run(["ask", "-", "--json"], seed_index, stdin="Où Netflix ouvre-t-il un bureau ?\nQui dirige le contenu de Netflix ?\n")
    assert many.exit_code == 0, many.stderr
    assert [a["question"] for a in json_lines(many.stdout)] == ["Où Netflix ouvre-t-il un bureau ?", "Qui dirige le contenu de Netflix ?"]


def test_defaults_come_from_the_settings_as_in_the_api(seed_index):
    """QA_TOP_K, QA_MAX_ANSWERS and QA_RETRIEVAL_MODE are the defaults of `qa ask`, `qa search` and `qa eval` too."""
    env = {"QA_DATA_DIR": str(seed_index), "QA_TOP_K": "2", "QA_MAX_ANSWERS": "1", "QA_RETRIEVAL_MODE": "bm25"}
    asked = CliRunner().invoke(app, ["ask", "combien Netflix investit-il en 2018 ?", "--json"], env=env)
    assert asked.exit_code == 0, asked.stderr
    out = json.loads(asked.stdout)
    assert len(out["answers"]) == 1 and len(out["passages"]) == 2
    bm25 = json.loads(CliRunner().invoke(app, ["search", "Netflix bureau Paris", "--json", "--mode", "bm25"], env={"QA_DATA_DIR": str(seed_index)}).stdout)
    found = json.loads(CliRunner().invoke(app, ["search", "Netflix bureau Paris", "--json"], env=env).stdout)
    assert found["results"] == bm25["results"]
    assert len(found["results"]) == 10  # like GET /search; QA_TOP_K is /ask's
    hybrid = json.loads(CliRunner().invoke(app, ["search", "Netflix bureau Paris", "--json", "--mode", "hybrid"], env=env).stdout)
    assert [h["score"] for h in hybrid["results"]] != [h["score"] for h in bm25["results"]]
    gold = seed_index.parent / "one.jsonl"
    gold.write_text(json.dumps({"id": "a", "question": "combien Netflix investit-il en 2018 ?", "answers": ["7 milliards de dollars"]}), encoding="utf-8")
    evaluated = CliRunner().invoke(app, ["eval", str(gold), "--out", str(seed_index.parent / "one.json")], env=env)
    assert evaluated.exit_code == 0, evaluated.stderr
    settings = json.loads((seed_index.parent / "one.json").read_text())["settings"]
    assert (settings["top_k"], settings["mode"]) == (2, "bm25")


def test_arguments_that_are_not_utf8_are_one_line(seed_index):
    # a Latin-1 terminal: Python keeps the undecodable byte as a lone surrogate ("caf\udce9")
    for args, message in ((["search", "caf\udce9 Netflix"], "error: the query is not valid UTF-8 text"), (["ask", "caf\udce9 ?"], "error: the question is not valid UTF-8 text")):
        res = _run(args, seed_index)
        assert res.exit_code == 1 and res.stderr.strip() == message, res.stderr


def test_eval_measures_retrieval_only_where_gold_documents_are_named(seed_index, tmp_path):
    """A team's own gold set: questions without document_ids are left out of retrieval (not counted
    as misses), unknown gold ids are named, a set with nothing answerable has no answerable scores
    (not zeros), and every question says where it is in the file."""
    rows = [
        {"id": "a", "question": "combien Netflix investit-il en 2018 ?", "answers": ["7 milliards de dollars", "entre 7 et 8 milliards de dollars"],
         "document_ids": ["004_c0583748e5709aa4", "002_affb09736d3cc83f"]},
        {"id": "b", "question": "combien Netflix investit-il en 2018 ?", "answers": ["7 milliards de dollars"]},  # no document_ids
        {"id": "c", "question": "combien Netflix investit-il en 2018 ?", "answers": ["7 milliards de dollars"], "document_ids": ["nope_doc"]},
        {"id": "d", "question": "Quelle est la recette de la quiche lorraine ?", "answers": []},
        {"id": "e", "question": "combien Netflix investit-il en 2018 ?", "answers": ["sept milliards"], "document_ids": ["004_c0583748e5709aa4"]},
    ]
    gold = tmp_path / "team.jsonl"
    gold.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    res = _run(["eval", str(gold), "--out", str(tmp_path / "r.json"), "--errors"], seed_index)
    assert res.exit_code == 0, res.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    retrieval = report["retrieval_document"]
    assert retrieval["questions"] == 3  # a, c and e; b names no document
    ranks = {r["id"]: r["doc_rank"] for r in report["per_question"]}
    assert ranks["c"] is None and ranks["a"] is not None
    assert retrieval["recall@10"] == 2 / 3 and retrieval["mrr"] == (1 / ranks["a"] + 1 / ranks["e"]) / 3
    assert report["unknown_gold_documents"] == ["nope_doc"]
    assert "retrieval: 1 answerable question without document_ids is left out of it" in res.stdout
    assert "warning: 1 gold document id is not in the index: 'nope_doc' (team.jsonl:3)" in res.stdout
    assert report["unknown_gold_document_details"] == [{"id": "nope_doc", "where": ["team.jsonl:3"], "did_you_mean": None}]
    assert [r["where"] for r in report["per_question"]] == [f"team.jsonl:{n}" for n in (1, 2, 3, 4, 5)]
    assert report["answers_not_in_documents"] == ["team.jsonl:5"]  # "sept milliards" is written "7 milliards"
    assert "warning: 1 question has no answer written as in their gold documents: team.jsonl:5" in res.stdout
    assert all(r["search_ms"] > 0 and r["ask_ms"] >= r["search_ms"] for r in report["per_question"])

    only_unanswerable = tmp_path / "none.jsonl"
    only_unanswerable.write_text(json.dumps(rows[3], ensure_ascii=False), encoding="utf-8")
    res = _run(["eval", str(only_unanswerable), "--out", str(tmp_path / "n.json")], seed_index)
    assert res.exit_code == 0, res.stderr
    e2e = json.loads((tmp_path / "n.json").read_text())["end_to_end"]
    assert e2e["em_answerable"] is None and e2e["f1_answerable"] is None and e2e["answered_answerable"] is None
    table = {line[:34].strip(): line[34:].strip() for line in res.stdout.splitlines() if len(line) > 34}
    assert table["end-to-end F1 (answerable)"] == "-" and table["document recall@1"] == "-"


def test_a_document_filter_takes_an_id_with_surrounding_spaces(seed_index, base_settings):
    """Ids are stored stripped: `--doc " 002_x "` and `"document_ids": [" 002_x "]` matched nothing,
    silently (a copied id, a script's padding); they match the document, on the command line and over
    HTTP alike."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    doc_id = "002_affb09736d3cc83f"
    cli = _run(["search", "Amazon Netflix", "--doc", f" {doc_id}\t", "--json"], seed_index)
    assert cli.exit_code == 0 and "warning" not in cli.stderr, cli.stderr
    hits = json.loads(cli.stdout)["results"]
    assert hits and {h["document_id"] for h in hits} == {doc_id}
    settings = base_settings.model_copy(update={"data_dir": seed_index, "api_key": None, "read_key": None, "cors_origins": []})
    with TestClient(create_app(settings)) as client:
        for r in (client.post("/search", json={"query": "Amazon Netflix", "filters": {"document_ids": [f" {doc_id} "]}}),
                  client.get("/search", params={"q": "Amazon Netflix", "document_id": f" {doc_id} "}),
                  client.post("/ask", json={"question": "Que veut concurrencer Amazon ?", "filters": {"document_ids": [f" {doc_id} "]}})):
            assert r.status_code == 200, r.text
            hits = r.json().get("results", r.json().get("passages"))
            assert hits and {h["document_id"] for h in hits} == {doc_id}, r.text


def test_a_document_filter_naming_no_document_is_said(seed_index):
    """`--doc x.txt` (the file's name, not the id it was indexed under) or a mistyped id found nothing,
    silently: a warning names each such id, and the one it likely means; the others still filter."""
    doc_id = "002_affb09736d3cc83f"
    res = _run(["search", "Amazon Netflix", "--doc", f"{doc_id}.txt", "--doc", "nope", "--doc", f" {doc_id} ", "--json"], seed_index)
    assert res.exit_code == 0, res.stderr
    assert res.stderr.splitlines() == [
        f"warning: --doc '{doc_id}.txt': no such document in {seed_index}; did you mean '{doc_id}'? (see `qa docs list`)",
        f"warning: --doc 'nope': no such document in {seed_index} (see `qa docs list`)",
    ]
    hits = json.loads(res.stdout)["results"]  # stdout stays the API's JSON
    assert hits and {h["document_id"] for h in hits} == {doc_id}
    # an id in other capitals, alone: nothing is found, and why is said
    res = _run(["search", "Amazon Netflix", "--doc", doc_id.upper()], seed_index)
    assert res.exit_code == 0 and res.stdout.strip() == "Aucun passage trouvé."
    assert res.stderr.strip() == f"warning: --doc '{doc_id.upper()}': no such document in {seed_index}; did you mean '{doc_id}'? (see `qa docs list`)"


def test_the_api_warns_of_a_document_filter_naming_no_document(seed_index, base_settings):
    """A service calling /search or /ask with a mistyped id got an empty result and no word of why
    (the CLI warned on stderr): the response says which ids name no document, where they were sent,
    and the id likely meant; the right ids still filter, and a request without such ids has none."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    doc_id = "002_affb09736d3cc83f"
    settings = base_settings.model_copy(update={"data_dir": seed_index, "api_key": None, "read_key": None, "cors_origins": []})
    wrong = [f"{doc_id}.txt", "nope", f" {doc_id} ", doc_id.upper()]
    with TestClient(create_app(settings)) as client:
        posted = client.post("/search", json={"query": "Amazon Netflix", "filters": {"document_ids": wrong}})
        got = client.get("/search", params={"q": "Amazon Netflix", "document_id": wrong})
        asked = client.post("/ask", json={"question": "Que veut concurrencer Amazon ?", "filters": {"document_ids": wrong}})
        for r, field in ((posted, "filters.document_ids"), (got, "document_id"), (asked, "filters.document_ids")):
            assert r.status_code == 200, r.text
            assert r.json()["warnings"] == [
                {"field": field, "value": f"{doc_id}.txt", "message": f"no document has the id '{doc_id}.txt': this filter matches nothing", "did_you_mean": doc_id},
                {"field": field, "value": "nope", "message": "no document has the id 'nope': this filter matches nothing", "did_you_mean": None},
                {"field": field, "value": doc_id.upper(), "message": f"no document has the id '{doc_id.upper()}': this filter matches nothing", "did_you_mean": doc_id},
            ], r.text
            hits = r.json().get("results", r.json().get("passages"))
            assert hits and {h["document_id"] for h in hits} == {doc_id}
        for r in (client.post("/search", json={"query": "Amazon Netflix", "filters": {"document_ids": [doc_id]}}),
                  client.get("/search", params={"q": "Amazon Netflix"}),
                  client.post("/ask", json={"question": "Que veut concurrencer Amazon ?", "filters": {"source": "numerama.com"}})):
            assert r.status_code == 200 and r.json()["warnings"] == [], r.text
        schema = client.get("/openapi.json").json()["components"]["schemas"]
        assert "warnings" in schema["SearchResponse"]["properties"] and "warnings" in schema["AskResponse"]["properties"]
    # the CLI's --json is the API's response, its warnings included (field: the option)
    cli = _run(["search", "Amazon Netflix", "--doc", "nope", "--doc", doc_id, "--json"], seed_index)
    assert cli.exit_code == 0 and json.loads(cli.stdout)["warnings"] == [
        {"field": "--doc", "value": "nope", "message": "no document has the id 'nope': this filter matches nothing", "did_you_mean": None}]
    cli = _run(["ask", "Que veut concurrencer Amazon ?", "--doc", doc_id.upper(), "--json"], seed_index)
    assert cli.exit_code == 0 and [w["did_you_mean"] for w in json.loads(cli.stdout)["warnings"]] == [doc_id]


def test_a_source_filter_on_a_site_no_document_is_on_is_said(seed_index, base_settings):
    """A service filtering on a site none of the documents is on ("numerama" for numerama.com, another
    team's site) got an empty result and no word of why, where a mistyped document id is warned of:
    the API and the CLI say so the same way, with the stored site likely meant; a site the documents
    are on, given as a domain or a URL, gets no warning."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    def warning(field, value, site, meant):
        return {"field": field, "value": value, "message": f"no document is on the site {site!r} or its subdomains: this filter matches nothing", "did_you_mean": meant}

    settings = base_settings.model_copy(update={"data_dir": seed_index, "api_key": None, "read_key": None, "cors_origins": []})
    with TestClient(create_app(settings)) as client:
        posted = client.post("/search", json={"query": "Netflix séries", "filters": {"source": "numerama"}})
        assert posted.status_code == 200 and posted.json()["results"] == [], posted.text
        assert posted.json()["warnings"] == [warning("filters.source", "numerama", "numerama", "numerama.com")]
        got = client.get("/search", params={"q": "Netflix séries", "source": "https://www.numerama.co/"})
        assert got.json()["warnings"] == [warning("source", "https://www.numerama.co/", "numerama.co", "numerama.com")], got.text
        asked = client.post("/ask", json={"question": "Que veut concurrencer Amazon ?", "filters": {"source": "lemonde.fr", "document_ids": ["nope"]}})
        assert [(w["field"], w["did_you_mean"]) for w in asked.json()["warnings"]] == [("filters.document_ids", None), ("filters.source", None)], asked.text
        for source in ("numerama.com", "https://www.numerama.com/pop-culture/x.html", "NUMERAMA.COM"):
            r = client.get("/search", params={"q": "Netflix séries", "source": source})
            assert r.json()["results"] and r.json()["warnings"] == [], r.text
    cli = _run(["search", "Netflix séries", "--source", "numerama", "--json"], seed_index)
    assert cli.exit_code == 0 and json.loads(cli.stdout)["warnings"] == [warning("--source", "numerama", "numerama", "numerama.com")]
    assert cli.stderr.strip() == f"warning: --source 'numerama': no document in {seed_index} is on that site; did you mean 'numerama.com'?"
    cli = _run(["ask", "Que veut concurrencer Amazon ?", "--source", "lemonde.fr", "--json"], seed_index)
    assert cli.exit_code == 0 and [w["field"] for w in json.loads(cli.stdout)["warnings"]] == ["--source"], cli.stdout


def test_a_date_range_no_document_is_dated_in_is_said(seed_index, base_settings):
    """A date range past the documents' dates (a client's default "last 30 days" on an archive) gave
    an empty answer and no word of why: the warning names the bound at fault and the dates the
    documents have; a range that keeps some gets none."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    settings = base_settings.model_copy(update={"data_dir": seed_index, "api_key": None, "read_key": None, "cors_origins": []})
    with TestClient(create_app(settings)) as client:
        posted = client.post("/search", json={"query": "Netflix séries", "filters": {"published_after": "2100"}})
        assert posted.status_code == 200 and posted.json()["results"] == [], posted.text
        [w] = posted.json()["warnings"]
        assert (w["field"], w["value"], w["did_you_mean"]) == ("filters.published_after", "2100-01-01", None)
        assert re.fullmatch(r"no document is dated from 2100-01-01 to any date: this filter matches nothing \(dated documents run from "
                            r"20\d\d-\d\d-\d\d to 20\d\d-\d\d-\d\d(; \d+ undated documents? (are|is) never kept by a date filter)?\)", w["message"]), w
        got = client.get("/search", params={"q": "Netflix séries", "published_before": "1990-06"})
        assert [(w["field"], w["value"]) for w in got.json()["warnings"]] == [("published_before", "1990-06-30")], got.text
        asked = client.post("/ask", json={"question": "Que veut concurrencer Amazon ?", "filters": {"published_after": "1990", "published_before": "1991"}})
        assert [w["field"] for w in asked.json()["warnings"]] == ["filters.published_before"], asked.text
        kept = client.post("/search", json={"query": "Netflix séries", "filters": {"published_after": "2000", "published_before": "2100"}})
        assert kept.json()["results"] and kept.json()["warnings"] == [], kept.text
    cli = _run(["search", "Netflix séries", "--after", "2100", "--json"], seed_index)
    assert cli.exit_code == 0 and [w["field"] for w in json.loads(cli.stdout)["warnings"]] == ["--after"], cli.stdout
    assert cli.stderr.startswith("warning: --after 2100-01-01: no document is dated from 2100-01-01 to any date"), cli.stderr


def test_ask_takes_the_filters_of_search_and_of_the_api(seed_index):
    """/ask takes filters; `qa ask` had none (`--doc` was a usage error): the same options as
    `qa search`, checked by the same rules before the models load."""
    amazon, stranger = "002_affb09736d3cc83f", "004_c0583748e5709aa4"  # both hold Netflix's 2018 budget
    for doc_id in (amazon, stranger):
        res = _run(["ask", "combien Netflix investit-il en 2018 ?", "--doc", doc_id, "--json"], seed_index)
        assert res.exit_code == 0, res.stderr
        answers = json.loads(res.stdout)["answers"]
        assert answers and {c["document_id"] for a in answers for c in a["citations"]} == {doc_id}
        assert {p["document_id"] for p in json.loads(res.stdout)["passages"]} == {doc_id}
    res = _run(["ask", "combien Netflix investit-il en 2018 ?", "--after", "2017-10", "--before", "2017-10", "--json"], seed_index)
    assert res.exit_code == 0 and {p["document_id"] for p in json.loads(res.stdout)["passages"]} == {stranger}
    res = _run(["ask", "combien Netflix investit-il en 2018 ?", "--after", "2018", "--before", "2017"], seed_index)
    assert res.exit_code == 2 and res.stderr.strip() == "error: --after 2018 is later than --before 2017"
    res = _run(["ask", "combien Netflix investit-il en 2018 ?", "--doc", f"{amazon}.txt"], seed_index)
    assert res.exit_code == 0
    assert f"warning: --doc '{amazon}.txt': no such document in {seed_index}; did you mean '{amazon}'?" in res.stderr


def test_docs_search_takes_the_text_get_documents_takes(seed_index):
    """`qa docs list --search` had no limit where GET /documents?q= refuses a longer text: one limit
    (qa.validation.MAX_DOCUMENT_QUERY_CHARS), read here from the API's own description of itself."""
    from fastapi.openapi.utils import get_openapi

    from api.routes import router

    spec = get_openapi(title="qa-search", version="test", routes=router.routes)
    q = next(p for p in spec["paths"]["/documents"]["get"]["parameters"] if p["name"] == "q")
    limit = next(s["maxLength"] for s in q["schema"]["anyOf"] if "maxLength" in s)
    assert limit == 1000
    longest = _run(["docs", "list", "--search", "é" * limit], seed_index)
    assert longest.exit_code == 0 and longest.stdout == "", longest.stderr
    assert longest.stderr.strip() == f"0 documents holding {'é' * limit!r} (none shown)"
    longer = _run(["docs", "list", "--search", "é" * (limit + 1)], seed_index)
    assert longer.exit_code == 2 and longer.stdout == ""
    assert longer.stderr.strip() == "error: --search must be at most 1000 characters, as GET /documents?q= (got 1001)"


def _ask_one_line_error(seed_index, cwd, variable: str, folder) -> subprocess.CompletedProcess:
    """`qa ask` run for real with the model setting ``variable`` on ``folder``: it must fail with one
    line (exit 1, no traceback)."""
    env = {**os.environ, "QA_DATA_DIR": str(seed_index), variable: str(folder),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    done = subprocess.run([sys.executable, "-m", "qa.cli", "ask", "Qui dirige le contenu de Netflix ?"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr
    return done


@pytest.mark.parametrize(("kind", "weights"), [("reader", "truncated"), ("reader", "shapes"), ("embedder", "truncated")])
def test_a_model_folder_with_unusable_weights_is_one_line(seed_index, tmp_path, kind, weights):
    """A QA_READER or QA_EMBEDDER folder with a config, a tokenizer and a weights file, but a weights
    file that is truncated or does not fit its config.json, ended `qa ask` in a traceback (safetensors'
    or transformers' error): it is one line naming the folder and the setting to change."""
    from tests.api_support import broken_model_folder

    folder = broken_model_folder(tmp_path / "model", kind, weights)
    variable = "QA_READER" if kind == "reader" else "QA_EMBEDDER"
    done = _ask_one_line_error(seed_index, tmp_path, variable, folder)
    detail = "tensor shapes differ from its config.json" if weights == "shapes" else "Error while deserializing header"
    assert done.stderr.startswith(f"error: cannot load {kind} {str(folder)!r}: its weights cannot be used ({detail}"), done.stderr
    assert f"set {variable} to " in done.stderr


@pytest.mark.parametrize(("kind", "damage"), [("reader", "truncated"), ("embedder", "random"), ("reader", "config"), ("reader", "vocabulary"), ("embedder", "vocabulary")])
def test_a_model_folder_with_an_unusable_tokenizer_is_one_line_naming_it(seed_index, tmp_path, kind, damage):
    """A QA_READER or QA_EMBEDDER folder whose tokenizer.json or tokenizer_config.json is not JSON was
    one line quoting the JSON parser ("Unterminated string ...") or, for the embedder, saying no
    processor could be made, without naming the file; one whose vocabulary file is missing loaded a
    tokenizer that reads every word as unknown: the reader found no answer, the embedder's vectors
    were taken for another model's. Each is one line naming the tokenizer file and the setting."""
    from tests.api_support import broken_tokenizer_folder

    folder = broken_tokenizer_folder(tmp_path / "model", kind, damage)
    variable = "QA_READER" if kind == "reader" else "QA_EMBEDDER"
    done = _ask_one_line_error(seed_index, tmp_path, variable, folder)
    detail = {
        "truncated": f"{folder / 'tokenizer.json'} is not valid JSON (Unterminated string",
        "random": f"{folder / 'tokenizer.json'} is not UTF-8 text",
        "config": f"{folder / 'tokenizer_config.json'} is not valid JSON (",
        "vocabulary": f"it reads every word as unknown: {folder} has no tokenizer.json or sentencepiece.bpe.model",
    }[damage]
    assert done.stderr.startswith(f"error: cannot load {kind} {str(folder)!r}: its tokenizer cannot be used ({detail}"), done.stderr
    assert f"set {variable} to " in done.stderr
