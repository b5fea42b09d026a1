"""One rule for what users give, whichever way they give it: the `qa` command and the HTTP API take
and refuse the same questions, filters and documents (qa.validation, index.text, index.schema)."""

from __future__ import annotations

from datetime import date

import pytest
import typer
from pydantic import ValidationError

from api.schemas import DocumentIn, FiltersIn, SearchQuery, SearchRequest
from index.ingest import record_to_document
from index.text import text_problem
from qa.cli_ask import check_filters, check_text
from qa.validation import date_bound, empty_period, filter_id_problem, filters_of, source_problem, unknown_document_ids


def _cli_takes(fn, *args) -> bool:
    try:
        fn(*args)
    except typer.Exit as exc:
        assert exc.exit_code in (1, 2)
        return False
    return True


def _api_takes(model, **fields) -> bool:
    try:
        model(**fields)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("text, problem", [
    ("Qui ?", None), ("  Qui ?  ", None), ("2018", None), ("", "empty"), (" \n\t", "empty"),
    ("???", "no words"), ("\u200b", "no words"), ("... !", "no words"),
])
def test_questions_and_queries(text, problem):
    assert text_problem(text) == problem
    assert _cli_takes(check_text, text, "query") == (problem is None)
    assert _api_takes(SearchRequest, query=text) == (problem is None)


@pytest.mark.parametrize("text, ok", [("q" * 1000, True), ("  " + "q" * 1000 + "\n", True), ("q" * 1001, False), ("é" * 1001, False)])
def test_questions_and_queries_have_one_length_limit(text, ok):
    assert _cli_takes(check_text, text, "query") == ok
    assert _api_takes(SearchRequest, query=text) == ok


@pytest.mark.parametrize("source, problem", [
    ("numerama.com", None), (" https://www.Numerama.com/x ", None), ("numerama.com\t", None),
    ("", "empty"), ("  ", "empty"),
    ("https://", "not a domain"), ("/numerama.com", "not a domain"), ("numerama .com", "not a domain"), ("numerama com", "not a domain"),
])
def test_source_filters(source, problem):
    assert source_problem(source) == problem
    assert _cli_takes(check_filters, None, source, None, None) == (problem is None)
    assert _api_takes(FiltersIn, source=source) == (problem is None)


@pytest.mark.parametrize("ids, problem", [
    (["abc"], None), (["rubrique/124 bis", "cafe\u0301"], None), ([" abc "], None),
    ([""], "empty"), (["  "], "empty"), (["abc", "\t"], "empty"),
])
def test_document_filters(ids, problem):
    """A blank id (`--doc "$UNSET"`, `"document_ids": [""]`) matched nothing without a word: refused."""
    assert next((p for p in map(filter_id_problem, ids) if p), None) == problem
    assert _cli_takes(check_filters, ids, None, None, None) == (problem is None)
    assert _api_takes(FiltersIn, document_ids=ids) == (problem is None)
    assert _api_takes(SearchQuery, q="Netflix", document_id=ids) == (problem is None)


@pytest.mark.parametrize("given, matched", [
    (" 004_x ", ["004_x", " 004_x "]), ("004_x\t", ["004_x", "004_x\t"]), ("004_x", ["004_x"]),
    (" cafe\u0301", ["caf\u00e9", " caf\u00e9"]),
])
def test_document_filters_match_ids_as_they_are_stored(given, matched):
    """Ids are stored stripped (index.schema.clean_id): " 004_x " matched nothing, over HTTP and on the
    command line alike; it matches "004_x" now, and still the id as given (an earlier version kept
    a file name's surrounding spaces)."""
    from index.schema import clean_id

    assert clean_id(given) == matched[0]
    assert check_filters([given], None, None, None).document_ids == matched
    api = FiltersIn(document_ids=[given])
    assert filters_of(api.document_ids, api.source, api.published_after, api.published_before).document_ids == matched
    query = SearchQuery(q="Netflix", document_id=[given]).filters()
    assert filters_of(query.document_ids, None, None, None).document_ids == matched


def test_a_title_with_control_characters_is_made_one_line_by_qa_index_and_refused_over_http_if_not_whitespace(caplog, tmp_path):
    """On purpose, the doors differ (README): a file is often scraped text, where a stray control
    character is common, and refusing it would skip the document; `qa index` indexes it with spaces
    in their place, and says so. An API client can fix its request: POST /documents refuses a title
    with a control character that is not whitespace (ESC, BEL), naming `title`. Line breaks and tabs
    become spaces through both."""
    import json

    from index.ingest import load_documents

    for title in ("Titre \x1b[2J", "Son\x07nerie"):
        with pytest.raises(ValidationError, match="title holds a control character"):
            DocumentIn(title=title, text="Un texte.")
    for title, one_line in (("Titre\nsur deux\tlignes\n", "Titre sur deux lignes"), ("Titre\x1b[2J", "Titre [2J")):
        record = {"id": "a", "title": title, "text": "Un texte."}
        assert record_to_document(record, "default").title == one_line
        if "\x1b" not in title:
            assert DocumentIn(**record).title == one_line
        (tmp_path / "recs.jsonl").write_text(json.dumps(record), encoding="utf-8")
        caplog.clear()
        with caplog.at_level("WARNING", logger="index"):
            [doc], _ = load_documents([tmp_path / "recs.jsonl"])
        assert doc.title == one_line
        assert [r.getMessage().split(": it held")[0] for r in caplog.records] == [f"{tmp_path / 'recs.jsonl'}:1: 'title' indexed as {one_line!r}"]


@pytest.mark.parametrize("after, before, ok", [
    ("2017", "2017", True), ("2017-10", None, True), (None, "2017-02", True), ("2017-10-27T10:00:00Z", None, True),
    ("2018", "2017", False), ("hier", None, False), (None, "2017-13", False), ("2017-02-30", None, False), ("", None, False), (None, " ", False),
])
def test_date_filters(after, before, ok):
    assert _cli_takes(check_filters, None, None, after, before) == ok
    assert _api_takes(FiltersIn, published_after=after, published_before=before) == ok


def test_a_partial_date_stands_for_its_period_and_an_empty_one_is_a_mistake():
    assert date_bound("2017", "after") == date(2017, 1, 1) and date_bound("2017", "before") == date(2017, 12, 31)
    assert date_bound("2016-02", "before") == date(2016, 2, 29)
    assert empty_period(date(2018, 1, 1), date(2017, 1, 1)) and not empty_period(date(2017, 1, 1), date(2017, 1, 1))
    assert not empty_period(None, date(2017, 1, 1))
    assert filters_of(None, None, None, None) is None and filters_of([], None, None, None) is None
    assert FiltersIn(published_after="2017", published_before="2017-10").published_before == date(2017, 10, 31)


@pytest.mark.parametrize("record", [
    {"text": "  "}, {"text": "???"}, {"id": "  ", "text": "Un texte."}, {"id": "a\tb", "text": "Un texte."}, {"id": "a/../b", "text": "Un texte."},
    {"id": "x" * 257, "text": "Un texte."}, {"text": "Un texte.", "url": "javascript:alert(1)"}, {"text": "Un texte.", "url": "http://[lien"},
    {"text": "Un texte.", "published": "2017-13"}, {"text": "Un texte.", "metadata": {"v": float("nan")}},
])
def test_documents_refused_over_http_are_refused_by_qa_index(record):
    with pytest.raises(ValueError):
        record_to_document(record, "default")
    assert not _api_takes(DocumentIn, title="T", **record)


@pytest.mark.parametrize("record", [
    {"id": " cafe\u0301 ", "text": "Un texte."}, {"id": "rubrique/124 bis", "text": "Un texte."},
    {"text": "Un texte.", "url": " https://a.fr/x "}, {"text": "Un texte.", "url": "  "}, {"text": "Un texte.", "url": None},
    {"text": "Un texte.", "published": "2023-06-17T10:00:00Z"}, {"text": "Un texte.", "published": " "},
])
def test_documents_are_stored_alike_from_a_file_or_over_http(record):
    """The id stripped and NFC, a URL stripped (blank: none), a datetime's date: the same document."""
    from_file = record_to_document(record, "default")
    over_http = DocumentIn(title="T", **record)
    assert (from_file.id, from_file.url, from_file.published) == (over_http.id or "default", over_http.url, over_http.published)


def test_an_unknown_filter_id_sent_with_and_without_spaces_is_one_warning():
    # " x " is "x" to the filter: one id matching nothing, warned of once (the first as sent)
    stored = {"note-1"}
    assert unknown_document_ids(["x", " x ", "note-1", "y", "x "], lambda ids: stored & set(ids)) == ["x", "y"]
    assert unknown_document_ids([" x ", "x"], lambda ids: stored & set(ids)) == [" x "]
    # an id an earlier version stored with its spaces: " z " finds it, "z" alone does not
    assert unknown_document_ids([" z ", "z"], lambda ids: {" z "} & set(ids)) == ["z"]
