"""HTTP API contract: every endpoint, every error case, auth, metrics, citation invariant.

One real QAService (real embedder and reader) on a temporary data dir with data/articles indexed
is shared by the whole module; apps are cheap and built per need around it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.routes import document_id_for
from qa.reader import ReadStopped
from index.schema import Document, Filters
from qa.settings import SettingsError
from tests.api_support import REPO, SHOWCASE_QUESTION, article_documents, build_indexed_service, gold_questions

pytestmark = pytest.mark.slow

ANSWER_KEYS = {"text", "score", "document_id", "title", "url", "published", "chunk_id", "start", "end", "context", "context_start", "citations"}
HIT_KEYS = {"chunk_id", "document_id", "title", "url", "published", "text", "start", "end", "score"}


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, base_settings):
    settings, svc = build_indexed_service(tmp_path_factory.mktemp("api") / "data", base_settings)
    settings = settings.model_copy(update={"api_key": None, "read_key": None, "cors_origins": []})
    yield settings, svc
    svc.close()


@pytest.fixture(scope="module")
def service(indexed):
    return indexed[1]


@pytest.fixture(scope="module")
def api_settings(indexed):
    return indexed[0]


@pytest.fixture(scope="module")
def client(api_settings, service):
    with TestClient(create_app(api_settings, service), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def documents(client) -> dict[str, str]:
    """id -> text of every indexed document, read through the API."""
    page = client.get("/documents", params={"limit": 200}).json()
    return {item["id"]: client.get(f"/documents/{item['id']}").json()["text"] for item in page["items"]}


def make_client(settings, service, **update) -> TestClient:
    return TestClient(create_app(settings.model_copy(update=update), service), raise_server_exceptions=False)


def assert_names_field(resp: httpx.Response, field: str, status: int = 422) -> None:
    """FastAPI's 422 format, with the field named in ``loc`` or in the message."""
    assert resp.status_code == status, resp.text
    detail = resp.json()["detail"]
    assert isinstance(detail, list) and detail, detail
    named = [d for d in detail if field in [str(x) for x in d["loc"]] or field in d["msg"]]
    assert named, f"no error names {field!r}: {detail}"


def assert_hit_slices_document(hit: dict, documents: dict[str, str]) -> None:
    assert set(hit) == HIT_KEYS
    assert documents[hit["document_id"]][hit["start"] : hit["end"]] == hit["text"]


# --- service endpoints -----------------------------------------------------------------------


def test_health_reports_models_and_index(client, documents):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["models_loaded"] and body["index_loaded"]
    assert body["documents"] == len(documents) == len(article_documents())
    assert body["chunks"] >= body["documents"]
    assert body["embedder"] and body["reader"]
    # the built models live in folders of the server: /health (open to all) names them without their path
    assert os.sep not in body["embedder"] + body["reader"], body
    from qa.pipeline import _shown_model

    assert _shown_model("/root/.cache/qa-search/models/e5-small-piaf-ba69ad40a92c") == "e5-small-piaf-ba69ad40a92c"
    assert _shown_model("intfloat/multilingual-e5-small:384") == "intfloat/multilingual-e5-small:384"  # a hub id as it is
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])


def test_request_id_is_echoed_or_generated(client):
    assert client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    # an unsafe id is replaced, never reflected
    rid = client.get("/health", headers={"X-Request-ID": "bad id\x01"}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid)
    assert client.get("/nope").headers["x-request-id"]
    assert client.post("/ask", json={}).headers["x-request-id"]


def test_openapi_schema_is_complete(client):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    expected = {
        "/ask": {"post"}, "/search": {"get", "post"}, "/extract": {"post"}, "/documents": {"get", "post"},
        "/documents/{doc_id}": {"get", "delete"}, "/documents/files": {"post"}, "/health": {"get"}, "/metrics": {"get"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), (path, paths.get(path))
    schemas = spec["components"]["schemas"]
    for name in ("AskRequest", "AskResponse", "AnswerOut", "SearchRequest", "SearchResponse", "SearchHit", "ExtractRequest",
                 "ExtractResponse", "DocumentsIn", "DocumentsAdded", "DocumentPage", "DocumentOut", "DeleteResponse",
                 "HealthResponse", "ErrorResponse", "FiltersIn"):
        assert name in schemas, name

    def response_ref(path, method, code="200"):
        return paths[path][method]["responses"][code]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]

    assert response_ref("/ask", "post") == "AskResponse"
    assert response_ref("/search", "post") == response_ref("/search", "get") == "SearchResponse"
    assert response_ref("/extract", "post") == "ExtractResponse"
    assert response_ref("/documents", "post") == response_ref("/documents/files", "post") == "DocumentsAdded"
    upload = paths["/documents/files"]["post"]
    assert upload["tags"] == ["documents"] and {"400", "401", "403", "408", "413", "415", "422", "503", "507"} <= set(upload["responses"])
    assert response_ref("/documents/files", "post", "413") == response_ref("/documents/files", "post", "415") == "ErrorResponse"
    assert response_ref("/documents/files", "post", "422") == "HTTPValidationError"
    form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert schemas[form]["required"] == ["files"] and schemas[form]["properties"]["files"]["type"] == "array"
    # format binary: /docs (Swagger UI) offers a file field for it, a text box of random characters without
    assert schemas[form]["properties"]["files"]["items"] == {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream"}
    assert response_ref("/documents", "get") == "DocumentPage"
    assert response_ref("/documents/{doc_id}", "get") == "DocumentOut"
    assert response_ref("/documents/{doc_id}", "get", "404") == "ErrorResponse"
    assert response_ref("/health", "get") == "HealthResponse"
    assert set(schemas["AnswerOut"]["properties"]) == ANSWER_KEYS
    assert set(schemas["SearchHit"]["properties"]) == HIT_KEYS
    ask = schemas["AskRequest"]["properties"]
    assert ask["question"]["maxLength"] == 1000 and ask["top_k"]["anyOf"][0]["maximum"] == 50
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]


def test_openapi_schema_documents_the_errors_every_route_can_answer(client):
    """Any route can answer a 500 (an unhandled error, with its request id) and a 503 (the service not
    loaded yet, shutting down, a damaged index): a client generated from the schema must know their
    body. GET /documents, GET /documents/{id}, /health and /metrics left some out."""
    paths = client.get("/openapi.json").json()["paths"]
    for path, ops in paths.items():
        for method, op in ops.items():
            for code in ("500", "503"):
                assert code in op["responses"], (method, path, code)
                ref = op["responses"][code]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorResponse"), (method, path, code)


def test_openapi_schema_serves_generated_clients(client):
    """What client generators read: operation ids that make method names, 64-bit chunk ids, dates
    as the strings the server takes, and the limits it enforces."""
    spec = client.get("/openapi.json").json()
    ids = sorted(op["operationId"] for ops in spec["paths"].values() for op in ops.values())
    assert ids == ["add_document_files", "add_documents", "ask", "delete_document", "extract", "get_document", "health", "list_documents",
                   "prometheus_metrics", "search", "search_get"]
    schemas = spec["components"]["schemas"]
    for name in ("SearchHit", "AnswerOut", "CitationOut"):
        chunk_id = schemas[name]["properties"]["chunk_id"]
        assert (chunk_id["type"], chunk_id["format"]) == ("integer", "int64"), name
    after = schemas["FiltersIn"]["properties"]["published_after"]["anyOf"][0]
    assert after["type"] == "string" and "format" not in after
    assert all(re.match(after["pattern"], v) for v in ("2017", "2017-10", "2017-10-27", "2017-10-27T10:00:00Z"))
    params = {p["name"]: p["schema"] for p in spec["paths"]["/search"]["get"]["parameters"]}
    assert params["published_before"]["anyOf"][0]["type"] == "string"
    offset = {p["name"]: p["schema"] for p in spec["paths"]["/documents"]["get"]["parameters"]}["offset"]
    assert offset["format"] == "int64"
    assert schemas["ExtractRequest"]["properties"]["context"]["minLength"] == 1
    assert schemas["DocumentIn"]["properties"]["id"]["maxLength"] == 256


def test_openapi_response_fields_always_sent_are_required(client):
    """A client generator makes a field that is not required optional (nullable, or absent): every
    field of a response is always sent, so each is required; only an error's request_id may be absent
    (a 404 has none). `warnings`, `citations` and `did_you_mean` were not."""
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    outputs = ("AskResponse", "AnswerOut", "CitationOut", "SearchResponse", "SearchHit", "FilterWarning", "ExtractResponse",
               "ExtractedAnswerOut", "DocumentsAdded", "AddedDocument", "DocumentPage", "DocumentInfoOut", "DocumentOut",
               "DeleteResponse", "HealthResponse")
    for name in outputs:
        assert set(schemas[name]["properties"]) == set(schemas[name].get("required", [])), name
    assert schemas["ErrorResponse"]["required"] == ["detail"]
    r = client.post("/search", json={"query": "Netflix", "top_k": 1})
    assert r.status_code == 200 and r.json()["warnings"] == []


def test_openapi_security_follows_the_configured_keys(api_settings, service):
    """Operations whose key is not set take requests without one: their security is optional."""
    optional, required = [{}, {"HTTPBearer": []}], [{"HTTPBearer": []}]
    for update, reads, writes in (({}, optional, optional), ({"api_key": "w"}, optional, required),
                                  ({"api_key": "w", "read_key": "r"}, required, required)):
        with make_client(api_settings, service, **update) as c:
            paths = c.get("/openapi.json", headers={"Authorization": "Bearer r"} if "read_key" in update else {}).json()["paths"]
        assert paths["/ask"]["post"]["security"] == paths["/search"]["get"]["security"] == reads, update
        assert paths["/documents/{doc_id}"]["get"]["security"] == reads, update
        assert paths["/documents"]["post"]["security"] == paths["/documents/{doc_id}"]["delete"]["security"] == writes, update
        assert paths["/documents/files"]["post"]["security"] == writes, update
        assert "security" not in paths["/health"]["get"]


# --- /ask ------------------------------------------------------------------------------------


def test_ask_shape_and_offsets(client, documents):
    r = client.post("/ask", json={"question": f"  {SHOWCASE_QUESTION} ", "top_k": 4, "max_answers": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"question", "answers", "no_answer", "passages", "took_ms", "warnings"}
    assert body["question"] == SHOWCASE_QUESTION
    assert body["took_ms"] >= 0
    assert 0 < len(body["passages"]) <= 4
    assert len(body["answers"]) <= 2
    assert body["no_answer"] == (body["answers"] == [])
    for hit in body["passages"]:
        assert_hit_slices_document(hit, documents)
    for a in body["answers"]:
        assert set(a) == ANSWER_KEYS
        assert documents[a["document_id"]][a["start"] : a["end"]] == a["text"]
        cs = a["context_start"]
        assert documents[a["document_id"]][cs : cs + len(a["context"])] == a["context"]
        assert a["context"][a["start"] - cs : a["end"] - cs] == a["text"]
        assert 0 <= a["score"] <= 1
        assert a["citations"] and a["citations"][0]["document_id"] == a["document_id"]
    scores = [a["score"] for a in body["answers"]]
    assert scores == sorted(scores, reverse=True)


def test_ask_citation_invariant_on_gold_questions(client, documents):
    """Whatever the answers, each one is exactly the cited document's text[start:end]."""
    questions = gold_questions()
    answered = 0
    for q in questions:
        r = client.post("/ask", json={"question": q, "top_k": 3})
        assert r.status_code == 200, (q, r.text)
        body = r.json()
        assert body["no_answer"] == (body["answers"] == [])
        for a in body["answers"]:
            doc = client.get(f"/documents/{a['document_id']}")
            assert doc.status_code == 200
            assert doc.json()["text"][a["start"] : a["end"]] == a["text"], (q, a)
            for c in a["citations"]:
                assert documents[c["document_id"]][c["start"] : c["end"]].strip(), (q, c)
            answered += 1
    logging.getLogger(__name__).info("%d answers checked for %d questions", answered, len(questions))


def test_ask_without_credible_answer_returns_passages(client, service, monkeypatch):
    # a threshold no score reaches: the no-answer shape, whatever the reader's quality
    monkeypatch.setattr(service.reader.calibration, "threshold", 1.01)
    r = client.post("/ask", json={"question": "Quelle est la recette de la ratatouille ?"})
    assert r.status_code == 200
    body = r.json()
    assert body["answers"] == [] and body["no_answer"] is True
    assert body["passages"], "passages are returned even without an answer"


def test_ask_filters(client, documents):
    doc_id = sorted(documents)[1]
    body = client.post("/ask", json={"question": SHOWCASE_QUESTION, "filters": {"document_ids": [doc_id]}}).json()
    assert body["passages"] and {p["document_id"] for p in body["passages"]} == {doc_id}
    assert all(a["document_id"] == doc_id for a in body["answers"])
    # nothing published before 1900: nothing read, no answer
    body = client.post("/ask", json={"question": SHOWCASE_QUESTION, "filters": {"published_before": "1900-01-01"}}).json()
    assert body["passages"] == [] and body["answers"] == [] and body["no_answer"] is True


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"question": ""}, "question"),
        ({"question": "   \n\t "}, "question"),
        ({"question": "q" * 1001}, "question"),
        ({"question": 42}, "question"),
        ({}, "question"),
        ({"question": "Qui ?", "top_k": 0}, "top_k"),
        ({"question": "Qui ?", "top_k": 51}, "top_k"),
        ({"question": "Qui ?", "top_k": "beaucoup"}, "top_k"),
        ({"question": "Qui ?", "max_answers": 0}, "max_answers"),
        ({"question": "Qui ?", "mode": "semantic"}, "mode"),
        ({"question": "Qui ?", "filters": {"published_after": "2017-13-01"}}, "published_after"),
        ({"question": "Qui ?", "filters": {"published_before": "hier"}}, "published_before"),
        ({"question": "Qui ?", "filters": {"published_after": "2018-01-01", "published_before": "2017-01-01"}}, "published_after"),
        ({"question": "Qui ?", "filters": {"document_ids": "abc"}}, "document_ids"),
        ({"question": "Qui ?", "filters": {"document_ids": [""]}}, "document_ids"),  # it matched nothing
        ({"question": "Qui ?", "filters": {"document_ids": ["a", "  "]}}, "document_ids"),
        ({"question": "Qui ?", "filters": {"source": "numerama com"}}, "source"),
        ({"question": "Qui ?", "filters": {"source": " "}}, "source"),
        ({"question": "Qui ?", "filters": {"source": "https://"}}, "source"),  # no domain in it: it would match nothing
        ({"question": "Qui ?", "filters": {"source": "/numerama.com"}}, "source"),
        ({"question": "Qui ?", "filters": {"sources": ["x"]}}, "sources"),
        ({"question": "Qui ?", "topk": 3}, "topk"),
        ({"question": "???"}, "question"),
        ({"question": "Qui ?", "top_k": True}, "top_k"),
        ({"question": "Qui ?", "top_k": "3"}, "top_k"),
        ({"question": "Qui ?", "max_answers": 2.5}, "max_answers"),
        ({"question": "Qui ?", "max_answers": 1e300}, "max_answers"),
        ({"question": "Qui ?", "filters": {"published_after": 20170101}}, "published_after"),
        ({"question": "Qui ?", "filters": {"published_before": "2017-00"}}, "published_before"),
    ],
)
def test_ask_bad_input_is_422_naming_the_field(client, payload, field):
    assert_names_field(client.post("/ask", json=payload), field)


def test_an_unknown_field_says_which_field_was_meant(client):
    """A team trying the API sent the CLI's names (`--after` as "after"), an export's "date" for
    "published", or "text" for /extract's "context", and got "Extra inputs are not permitted" alone:
    the 422 now says which field was meant, where one is (a name people use, or a close spelling)."""
    cases = [
        ("POST", "/search", {"query": "budget", "filters": {"after": "2017", "site": "numerama.com"}},
         {("body", "filters", "after"): "published_after", ("body", "filters", "site"): "source"}),
        ("POST", "/ask", {"question": "Qui ?", "topk": 3, "filters": {"sources": ["x"], "document_id": ["a"]}},
         {("body", "topk"): "top_k", ("body", "filters", "sources"): "source", ("body", "filters", "document_id"): "document_ids"}),
        ("GET", "/search?q=budget&after=2017&document_ids=a&zzz=1",
         None, {("query", "after"): "published_after", ("query", "document_ids"): "document_id", ("query", "zzz"): None}),
        ("POST", "/extract", {"question": "Où ?", "context": "Paris.", "text": "Paris."}, {("body", "text"): "context"}),
        ("POST", "/documents", {"documents": [{"id": "n", "title": "T", "text": "Du texte.", "date": "2025-03-01", "author": "X"}]},
         {("body", "documents", 0, "date"): "published", ("body", "documents", 0, "author"): None}),
    ]
    for method, url, body, meant in cases:
        r = client.request(method, url, json=body)
        assert r.status_code == 422, r.text
        got = {tuple(e["loc"]): e["msg"] for e in r.json()["detail"] if e["type"] == "extra_forbidden"}
        assert got == {loc: "Extra inputs are not permitted" + (f": did you mean {field!r}?" if field else "") for loc, field in meant.items()}, (url, got)


def test_question_of_1000_characters_is_accepted(client):
    q = ("Netflix investit-il en France ? " * 40)[:1000]
    assert client.post("/ask", json={"question": q, "top_k": 1, "max_answers": 1}).status_code == 200


def test_malformed_bodies(client, api_settings, service):
    r = client.post("/ask", content=b'{"question": "caf\xe9 ?"}', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "UTF-8" in r.json()["detail"]
    r = client.post("/ask", content=b'{"question": ', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    # a hand-written body's usual slips are named with what to change, as `qa index` names them in a file
    r = client.post("/extract", content='{"question": "Où ?",\n "context": "Le siège est à Lyon.",\n}'.encode(), headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid", r.text
    assert r.json()["detail"][0]["msg"] == ("invalid JSON: Expecting property name enclosed in double quotes (line 3, column 1): "
                                           "remove the comma before '}' (JSON allows no trailing comma)")
    r = client.post("/search", content=b"{'query': 'Netflix'}", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["msg"].endswith('write names and strings in double quotes ("), not single quotes'), r.text
    # curl -d without -H sends a form; a body without a Content-Type is not read as JSON either
    r = client.post("/ask", content=b"question=Qui", headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415 and "Content-Type: application/json" in r.json()["detail"]
    r = client.post("/ask", content=b'{"question": "Qui ?"}')
    assert r.status_code == 415 and "none was sent" in r.json()["detail"]
    r = client.post("/ask", json=["Qui ?"])
    assert r.status_code == 422


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("/ask", b'{"question": "\\ud800 Netflix ?"}', "question"),
        ("/search", b'{"query": "Paris \\udc00", "mode": "bm25"}', "query"),
        ("/extract", b'{"question": "O\\ud800 ?", "context": "Paris."}', "question"),
        ("/extract", b'{"question": "Qui ?", "context": "\\udfff Paris."}', "context"),
        ("/documents", b'{"documents": [{"id": "s1", "title": "T", "text": "Paris \\udc00 est une ville."}]}', "text"),
        ("/ask", b'{"question": "Netflix ?", "top_k": NaN}', "top_k"),
        ("/search", b'{"query": "Netflix", "top_k": Infinity}', "top_k"),
        ("/documents", b'{"documents": [{"id": "n1", "title": "t", "text": "x", "metadata": {"v": -Infinity}}]}', "v"),
        # JSON numbers past a double's range: the 422 would echo Infinity (not JSON), metadata would store null
        ("/ask", b'{"question": 1e400}', "question"),
        ("/search", b'{"query": "Netflix", "top_k": -1e400}', "top_k"),
        ("/documents", b'{"documents": [{"id": "n2", "title": "t", "text": "x", "metadata": {"x": 1e400}}]}', "x"),
    ],
)
def test_json_that_cannot_be_text_or_numbers_is_422_naming_the_field(client, path, body, field):
    """Python's json reads NaN / Infinity and lone UTF-16 surrogate escapes; neither can be used
    (nor even echoed back in an error), so they are refused first, naming where they are."""
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert_names_field(r, field)
    json.loads(r.text, parse_constant=lambda c: pytest.fail(f"the error body holds {c}, which is not JSON"))
    assert client.get("/documents/s1").status_code == client.get("/documents/n1").status_code == client.get("/documents/n2").status_code == 404


def test_bodies_are_judged_off_the_event_loop(client, monkeypatch):
    """Parsing and walking a 2 MB body takes seconds: done on the event loop, it stalled every
    other request (/health took as long as the body check)."""
    import api.middleware as mw

    seen = []
    real = mw.json_body_problem

    def spy(body):
        try:
            asyncio.get_running_loop()
            seen.append("event loop")
        except RuntimeError:
            seen.append("worker thread")
        return real(body)

    monkeypatch.setattr(mw, "json_body_problem", spy)
    assert client.post("/search", json={"query": "Netflix", "top_k": 1}).status_code == 200
    assert seen == ["worker thread"]


def test_a_large_refused_value_is_not_echoed_whole(client):
    """A 422 names the field and says what is wrong; a large value is not sent back (2 MB in, 2 MB out)."""
    r = client.post("/ask", json={"question": "Qui ?", "filters": {"document_ids": "x" * 100_000}})
    assert_names_field(r, "document_ids")
    assert len(r.content) < 2_000
    assert r.json()["detail"][0]["input"] == "(100002 characters of JSON, not repeated here)"
    small = client.post("/ask", json={"question": "Qui ?", "top_k": "3"}).json()["detail"][0]
    assert small["input"] == "3" and small["loc"] == ["body", "top_k"]  # small values still come back


def test_body_over_the_limit_is_413(api_settings, service):
    with make_client(api_settings, service, max_body_bytes=1_000) as small:
        big = {"question": "Qui ?", "filters": {"document_ids": ["x" * 50] * 40}}
        r = small.post("/ask", json=big)
        assert r.status_code == 413 and "1000 bytes" in r.json()["detail"]
        assert r.headers["x-request-id"]

        # chunked upload, no Content-Length: still refused
        def gen():
            for _ in range(20):
                yield b" " * 100
            yield b'{"question": "Qui ?"}'

        r = small.post("/ask", content=gen(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        # under the limit: fine
        assert small.post("/search", json={"query": "Netflix", "top_k": 1}).status_code == 200
        metrics = small.get("/metrics").text
        assert 'route="/ask",status="413"' in metrics


# --- /search ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25", None])
def test_search_post(client, documents, mode):
    payload = {"query": "investissements de Netflix", "top_k": 3} | ({"mode": mode} if mode else {})
    r = client.post("/search", json=payload)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"query", "results", "took_ms", "warnings"} and body["query"] == "investissements de Netflix"
    assert body["took_ms"] == round(body["took_ms"], 1)  # as `qa search --json` prints it
    assert 0 < len(body["results"]) <= 3
    for hit in body["results"]:
        assert_hit_slices_document(hit, documents)
    scores = [h["score"] for h in body["results"]]
    assert scores == sorted(scores, reverse=True)


def test_search_get_matches_post(client):
    got = client.get("/search", params={"q": "Amazon Prime Video", "top_k": 2, "mode": "bm25"})
    posted = client.post("/search", json={"query": "Amazon Prime Video", "top_k": 2, "mode": "bm25"})
    assert got.status_code == posted.status_code == 200
    strip = lambda b: [(h["chunk_id"], h["document_id"]) for h in b["results"]]  # noqa: E731
    assert strip(got.json()) == strip(posted.json())


def test_search_filters(client, documents):
    ids = sorted(documents)[:2]
    r = client.get("/search", params={"q": "Netflix", "top_k": 10, "document_id": ids})
    assert r.status_code == 200 and r.json()["results"]
    assert {h["document_id"] for h in r.json()["results"]} <= set(ids)
    r = client.post("/search", json={"query": "Netflix", "filters": {"published_before": "1900-01-01"}})
    assert r.status_code == 200 and r.json()["results"] == []
    r = client.post("/search", json={"query": "Netflix", "top_k": 10, "filters": {"source": "numerama.com"}})
    assert r.status_code == 200 and r.json()["results"]
    assert all("numerama.com" in (h["url"] or "") for h in r.json()["results"])
    r = client.get("/search", params={"q": "Netflix", "published_after": "2017-01-01", "published_before": "2017-12-31"})
    assert r.status_code == 200 and r.json()["results"]
    assert all(h["published"] and h["published"].startswith("2017") for h in r.json()["results"])


def test_partial_dates_in_filters_stand_for_their_period(client):
    """Documents may carry "2017" or "2017-10"; filters take the same forms: after "2017" is from
    2017-01-01, before "2017" is up to 2017-12-31 (not a Unix timestamp, as pydantic would read it)."""
    def published(**filters):
        r = client.post("/search", json={"query": "Netflix", "top_k": 50, "filters": filters})
        assert r.status_code == 200, r.text
        return sorted({(h["published"] or "undated")[:4] for h in r.json()["results"]})

    assert published(published_after="2017", published_before="2017") == ["2017"]
    assert published(published_after="2017-01-01", published_before="2017-12-31") == ["2017"]
    every = published()
    assert published(published_before="2016") == [y for y in every if y <= "2016"]  # undated ones never match a date filter
    r = client.get("/search", params={"q": "Netflix", "top_k": 50, "published_after": "2017-10", "published_before": "2017-10"})
    assert r.status_code == 200 and all(h["published"].startswith("2017-10") for h in r.json()["results"])


def test_search_top_k_null_means_the_default(client):
    r = client.post("/search", json={"query": "Netflix", "top_k": None})
    assert r.status_code == 200 and len(r.json()["results"]) == 10


@pytest.mark.parametrize(
    "params, field",
    [
        ({}, "q"),
        ({"q": "  "}, "q"),
        ({"q": "x" * 1001}, "q"),
        ({"q": "Netflix", "top_k": 0}, "top_k"),
        ({"q": "Netflix", "top_k": 51}, "top_k"),
        ({"q": "Netflix", "mode": "fuzzy"}, "mode"),
        ({"q": "Netflix", "published_after": "2017-02-30"}, "published_after"),
        ({"q": "Netflix", "published_before": "demain"}, "published_before"),
        ({"q": "Netflix", "document_ids": "x"}, "document_ids"),  # POST's spelling: refused, not ignored
        ({"q": "Netflix", "document_id": ""}, "document_id"),  # it matched nothing
        ({"q": "Netflix", "after": "2017-01-01"}, "after"),
        ({"q": "Netflix", "source": "a" * 300}, "source"),
        ({"q": "Netflix", "document_id": [f"d{i}" for i in range(1001)]}, "document_id"),
    ],
)
def test_search_get_bad_input(client, params, field):
    assert_names_field(client.get("/search", params=params), field)


def test_a_query_parameter_that_is_not_utf8_is_named_as_such(client, api_settings, service):
    """`?q=%FF` reached the route as U+FFFD (Starlette decodes with errors="replace") and was refused
    for having "no letter or digit"; `%E9` is how Latin-1 clients write "é"."""
    for url, field in (("/search?q=%FF", "q"), ("/search?q=caf%E9", "q"), ("/search?q=Netflix&document_id=%E9t%E9", "document_id"),
                       ("/documents?offset=%FF", "offset"), ("/search?q=Netflix&%FF=1", "\ufffd")):
        for r in (client.get(url), client.head(url)):
            assert r.status_code == 422, (url, r.status_code)
        r = client.get(url)
        assert_names_field(r, field)
        (error,) = r.json()["detail"]
        assert "is not UTF-8 text once percent-decoded" in error["msg"] and "%C3%A9" in error["msg"], error
    assert client.get("/search?q=caf%C3%A9").status_code == 200
    assert client.get("/nope?q=%FF").status_code == 404  # no route: the router's answer, as for bodies
    with make_client(api_settings, service, api_key="w", read_key="r") as c:  # a client without the key learns only that
        assert c.get("/search?q=%FF").status_code == 401


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"query": ""}, "query"),
        ({"query": "Netflix", "top_k": 100}, "top_k"),
        ({"query": "Netflix", "mode": "HYBRID"}, "mode"),
        ({"query": "Netflix", "filters": {"published_after": "27/10/2017"}}, "published_after"),
        ({"q": "Netflix"}, "query"),
        ({"query": "Netflix", "top_k": True}, "top_k"),
        ({"query": "Netflix", "filters": {"published_after": 0}}, "published_after"),
    ],
)
def test_search_post_bad_input(client, payload, field):
    assert_names_field(client.post("/search", json=payload), field)


def test_whole_numbers_written_as_floats_are_counts(client):
    """JSON Schema's "integer" includes 3.0 (some serialisers write whole floats so), as GET's top_k=3.0 does."""
    r = client.post("/search", json={"query": "Netflix", "top_k": 3.0})
    assert r.status_code == 200 and len(r.json()["results"]) == 3, r.text
    assert client.get("/search", params={"q": "Netflix", "top_k": "3.0"}).status_code == 200
    assert client.post("/extract", json={"question": "Où ?", "context": "Netflix va ouvrir un bureau à Paris.", "max_answers": 1.0}).status_code == 200


# --- /extract --------------------------------------------------------------------------------


def test_extract_offsets_point_into_the_context(client):
    context = (
        "Dans un contexte de course aux contenus, Netflix devrait investir entre 7 et 8 milliards de dollars "
        "et Amazon Prime 4,5 milliards au total cette année, selon les chiffres du cabinet IHS Markit."
    )
    r = client.post("/extract", json={"question": "Combien Amazon Prime investit-il ?", "context": context, "max_answers": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"question", "answers", "no_answer", "took_ms"}
    assert body["no_answer"] == (body["answers"] == [])
    assert len(body["answers"]) <= 2
    for a in body["answers"]:
        assert set(a) == {"text", "score", "start", "end", "context", "context_start"}
        assert context[a["start"] : a["end"]] == a["text"]
        cs = a["context_start"]
        assert context[cs : cs + len(a["context"])] == a["context"] and a["context"][a["start"] - cs : a["end"] - cs] == a["text"]


def test_extract_offsets_count_a_leading_byte_order_mark(client):
    """A context read from a file may start with U+FEFF: offsets slice the context as sent (the BOM
    counted), and no answer, nor the start of one, is the BOM."""
    for context in ("\ufeffNetflix va ouvrir un bureau à Paris.", "\ufeff\ufeffNetflix va ouvrir un bureau à Paris."):
        r = client.post("/extract", json={"question": "Qui va ouvrir un bureau à Paris ?", "context": context})
        assert r.status_code == 200, r.text
        answers = r.json()["answers"]
        assert answers and (answers[0]["text"], answers[0]["start"]) == ("Netflix", context.index("N")), answers
        for a in answers:
            assert context[a["start"] : a["end"]] == a["text"] and "\ufeff" not in a["text"]
            cs = a["context_start"]
            assert context[cs : cs + len(a["context"])] == a["context"] and a["context"][a["start"] - cs : a["end"] - cs] == a["text"]


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"question": "Qui ?", "context": "  "}, "context"),
        ({"question": "Qui ?"}, "context"),
        ({"question": "", "context": "Un texte."}, "question"),
        ({"question": "Qui ?", "context": "x" * 100_001}, "context"),
        ({"question": "Qui ?", "context": "Un texte.", "max_answers": 21}, "max_answers"),
        ({"question": "Qui ?", "context": "... !"}, "context"),
    ],
)
def test_extract_bad_input(client, payload, field):
    assert_names_field(client.post("/extract", json=payload), field)


def test_extract_reads_at_most_the_configured_tokens(api_settings, service):
    """Reading costs ~1.1 ms of CPU per token: one request may not hold the reader for minutes
    (100,000 characters of one-character tokens took 213 CPU-s)."""
    context = "Netflix investit 7 milliards de dollars en 2018. " * 10
    tokens = service.reader.count_tokens(context)
    with make_client(api_settings, service, extract_max_tokens=tokens) as c:
        assert c.post("/extract", json={"question": "Combien ?", "context": context}).status_code == 200
        r = c.post("/extract", json={"question": "Combien ?", "context": context + " Fin."})
        assert_names_field(r, "context")
        msg = r.json()["detail"][0]["msg"]
        assert f"at most {tokens}" in msg and "QA_EXTRACT_MAX_TOKENS" in msg, msg
    # the default lets through as much French prose as the 100,000 characters the API takes, not the worst case
    prose = (" ".join(d.text for d in article_documents()) * 10)[:100_000]
    assert service.reader.count_tokens(prose) < api_settings.extract_max_tokens < service.reader.count_tokens("a." * 50_000)
    with make_client(api_settings, service) as c:
        assert_names_field(c.post("/extract", json={"question": "Qui ?", "context": "a." * 50_000}), "context")


# --- /documents ------------------------------------------------------------------------------


def test_list_documents_is_paginated(client, documents):
    full = client.get("/documents", params={"limit": 200}).json()
    assert full["total"] == len(documents) and full["offset"] == 0 and full["limit"] == 200
    assert set(full["items"][0]) == {"id", "title", "url", "published", "chunks", "chars"}
    page1 = client.get("/documents", params={"offset": 0, "limit": 2}).json()
    page2 = client.get("/documents", params={"offset": 2, "limit": 2}).json()
    assert len(page1["items"]) == 2 and page2["offset"] == 2
    assert not {i["id"] for i in page1["items"]} & {i["id"] for i in page2["items"]}
    assert client.get("/documents", params={"offset": 1000}).json()["items"] == []
    for item in full["items"]:
        assert item["chars"] == len(documents[item["id"]]) and item["chunks"] >= 1


@pytest.mark.parametrize("params, field", [({"limit": 0}, "limit"), ({"limit": 201}, "limit"), ({"offset": -1}, "offset"), ({"offset": 2**63}, "offset")])
def test_list_documents_bad_paging(client, params, field):
    assert_names_field(client.get("/documents", params=params), field)


@pytest.mark.parametrize("text", [
    "L’Été  2018", "ŒUVRE Æ ß ẞ ‘x’ ʼy` z", "cafe\u0301 soft\u00adhyphen zero\u200bwidth", "ＦＵＬＬ width ﬁ", "ΣΟΦΙΑ Ελληνικά",
    "emoji 🎉 Été 𝐀𝐁", "İstanbul", "\u00a0nbsp\u202fnarrow\tTab", "", "\U0001d400\u0301",
    'le géant du "streaming"', "« L’Été », — dit-il… (bis) ½ n°5 3,5 % C++ & C#", "004_c05-x.y/z:1", "ASCII: a-b_c.d `e` ~!@#$%^&*()+={}[]|\\;'<>?,",
    "«\u00a0premier\u00a0»", "मानक हिन्दी", "x\x1by\x7fz", "¡¿ «» ‹› ‚„ ‐‑‒–—―",
])
def test_the_documents_list_folds_text_as_the_keyword_index_does_punctuation_aside(text):
    """GET /documents?q= reads titles, ids and the text searched as index.text.fold does, with its
    own, faster code, and one difference: every punctuation mark, symbol, space or control
    character (Unicode categories P, S, Z and Cc), which fold keeps (the keyword index needs the
    apostrophe of « l’ »), is a space there, runs of them one space, none at the ends."""
    import unicodedata

    from index.catalog import match_key
    from index.text import fold

    def as_space(ch: str) -> bool:
        return unicodedata.category(ch)[0] in "PSZ" or unicodedata.category(ch) == "Cc"

    assert match_key(text) == " ".join("".join(" " if as_space(c) else c for c in fold(text)).split())


def test_punctuation_is_a_space_in_a_documents_search():
    """`géant du "streaming"` was not found by « geant du streaming », nor « L’Été » by « l ete »:
    quotes and apostrophes counted as letters. Ids are read so too, so a whole id or its pieces
    between _ - . find it, whichever of them is typed."""
    from index.catalog import match_key

    assert match_key('Le géant du "streaming", ce dernier') == "le geant du streaming ce dernier"
    assert match_key("« L’Été » — 2018…") == "l ete 2018"
    assert match_key("004_c0583748e5709aa4") == "004 c0583748e5709aa4"
    for typed in ("004_c05", "004-C05", "004 c05", "c0583748e5709aa4", "004_c0583748e5709aa4"):
        assert match_key(typed) in match_key("004_c0583748e5709aa4"), typed
    assert match_key("« — »") == match_key("  ") == "" and match_key(None) == ""


def test_list_documents_by_a_part_of_their_title_or_id(client, service):
    """`q` keeps the documents whose title or id holds it, case, accents, punctuation and spacing
    aside; `total` counts them and pages go on as without it."""
    docs = [{"id": "q-ete", "title": "L’Été  des séries FRANÇAISES", "text": "Un été de séries."},
            {"id": "q-oeuvre", "title": "Une œuvre", "text": "Une œuvre nouvelle."},
            {"id": "Q-ÉTÉ-2", "title": "Sans rapport", "text": "Autre chose."}]
    assert client.post("/documents", json={"documents": docs}).status_code == 200
    try:
        def found(q: str, **params) -> tuple[list[str], int]:
            page = client.get("/documents", params={"q": q, "limit": 200, **params}).json()
            return [i["id"] for i in page["items"]], page["total"]

        assert found("l'ete des series francaises") == (["q-ete"], 1)
        assert found("ÉTÉ") == (["Q-ÉTÉ-2", "q-ete"], 2)  # a title or an id, by id as without q
        assert found("oeuvre") == (["q-oeuvre"], 1) and found("ŒUVRE") == (["q-oeuvre"], 1)
        assert found("  des   séries ") == (["q-ete"], 1)
        assert found("ete", offset=1) == (["q-ete"], 2)
        assert found("ete", offset=5) == ([], 2)  # past the end: the total still said
        assert found("no such title") == ([], 0)
        # punctuation is a space, in titles, ids and `q` alike
        assert found("l ete des series") == found("L'ÉTÉ, des séries") == (["q-ete"], 1)
        assert found("geant du streaming") == found('géant du « streaming »') == (["004_c0583748e5709aa4"], 1)
        for piece in ("004_c05", "004 C05", "c0583748e5709aa4", "004-c0583748e5709aa4", "004_c0583748e5709aa4"):
            assert found(piece) == (["004_c0583748e5709aa4"], 1), piece
        assert found("ete 2") == (["Q-ÉTÉ-2"], 1)
        everything = client.get("/documents", params={"limit": 200}).json()
        assert found("   ") == ([i["id"] for i in everything["items"]], everything["total"])  # blank: every document
        assert found(" « — » ") == found("   ")  # punctuation alone is blank
        assert_names_field(client.get("/documents", params={"q": "x" * 1001}), "q")
    finally:
        for d in docs:
            service.delete_document(d["id"])


def test_documents_with_a_slash_in_their_id_can_be_read_and_deleted(client, service):
    """`qa index` takes JSON ids as given ("rubrique/123"): the API reaches them (URL-encoded)."""
    service.add_documents([Document(id="rubrique/123", title="Note", text="Le siège de la rédaction est à Lyon.")])
    try:
        r = client.get("/documents/rubrique%2F123")
        assert r.status_code == 200 and r.json()["id"] == "rubrique/123"
    finally:
        r = client.delete("/documents/rubrique%2F123")
    assert r.status_code == 200 and r.json()["id"] == "rubrique/123"
    assert client.get("/documents/rubrique%2F123").status_code == 404
    # and POST takes the ids `qa index` takes
    r = client.post("/documents", json={"documents": [{"id": " rubrique/124 bis ", "title": "Note", "text": "Le siège est à Brest."}]})
    assert r.status_code == 200 and r.json()["documents"][0]["id"] == "rubrique/124 bis", r.text
    assert client.get("/documents/rubrique%2F124%20bis").json()["text"] == "Le siège est à Brest."
    assert client.delete("/documents/rubrique%2F124%20bis").status_code == 200


def test_a_document_id_is_one_whatever_the_unicode_form_of_its_accents(client, service):
    """"café" sent with U+00E9 or with "e" + U+0301 looks the same: it is one document, stored in NFC
    (as `qa index` names files). POST updates it, GET, DELETE and filters reach it in either form."""
    nfc, nfd = "caf\u00e9-cr\u00e8me", "cafe\u0301-cre\u0300me"
    doc = {"title": "Café crème", "text": "Le café crème est servi à Quimper depuis 1987."}
    r = client.post("/documents", json={"documents": [{**doc, "id": nfc}]})
    assert r.status_code == 200 and r.json()["documents"][0]["id"] == nfc, r.text
    try:
        again = client.post("/documents", json={"documents": [{**doc, "id": nfd, "text": doc["text"] + " Il coûte deux euros."}]}).json()
        assert (again["added"], again["updated"], again["documents"][0]["id"]) == (0, 1, nfc), again
        for form in (nfc, nfd):
            got = client.get("/documents/" + quote(form, safe=""))
            assert got.status_code == 200 and got.json()["id"] == nfc and got.json()["text"].endswith("deux euros."), got.text
            post = client.post("/search", json={"query": "café crème Quimper", "filters": {"document_ids": [form]}}).json()["results"]
            get = client.get("/search", params={"q": "café crème Quimper", "document_id": form}).json()["results"]
            assert post and get and {h["document_id"] for h in post + get} == {nfc}
        ids = [i["id"] for i in client.get("/documents", params={"limit": 200}).json()["items"]]
        assert nfc in ids and nfd not in ids
        # the two forms in one request: one id given twice
        assert_names_field(client.post("/documents", json={"documents": [{**doc, "id": nfc}, {**doc, "id": nfd, "text": "Autre."}]}), "id")
    finally:
        r = client.delete("/documents/" + quote(nfd, safe=""))
    assert r.status_code == 200 and r.json()["id"] == nfc, "the id it was stored under"
    assert client.get("/documents/" + quote(nfc, safe="")).status_code == 404
    # an id stored decomposed by an older version (which kept ids as sent): reached in either form too
    from tests.store_support import store_under_id

    service.add_documents([Document(id=nfc, **doc)])
    store_under_id(service.store.data_dir, nfc, nfd)
    assert service.store.refresh()
    try:
        for form in (nfc, nfd):
            assert client.get("/documents/" + quote(form, safe="")).json()["id"] == nfd
            assert {h["document_id"] for h in client.get("/search", params={"q": "café crème", "document_id": form}).json()["results"]} == {nfd}
    finally:
        r = client.delete("/documents/" + quote(nfc, safe=""))
    assert r.status_code == 200 and r.json()["id"] == nfd and service.get_document(nfd) is None


def test_an_answer_never_cites_a_document_changed_while_it_was_read(service):
    """/ask reads passages found by a search; a write may replace or delete their document before
    the answers are cited: those passages are dropped (their offsets would cite text that is gone)."""
    question = "Où est le siège de la rédaction ?"
    text = "Le siège de la rédaction est à Lyon depuis 1987."
    service.add_documents([Document(id="changing", title="Note", text=text)])
    try:
        passages = service.search(question, top_k=3, filters=Filters(document_ids=["changing"]))
        before = service.ask(question, passages=passages)
        assert [a.text for a in before.answers][:1] == ["Lyon"]
        service.add_documents([Document(id="changing", title="Note", text="Mise à jour. " + text)])
        assert service.ask(question, passages=passages).answers == []
        service.delete_document("changing")
        assert service.ask(question, passages=passages).answers == []
    finally:
        service.delete_document("changing")


def test_metadata_as_deep_as_allowed_is_read_back(client):
    from index.schema import MAX_METADATA_DEPTH

    deep = json.loads('{"a":' * MAX_METADATA_DEPTH + "1" + "}" * MAX_METADATA_DEPTH)
    r = client.post("/documents", json={"documents": [{"id": "deep", "title": "T", "text": "Un texte.", "metadata": deep}]})
    assert r.status_code == 200, r.text
    try:
        assert client.get("/documents/deep").json()["metadata"] == deep
    finally:
        client.delete("/documents/deep")


def test_unknown_document_is_404(client):
    for r in (client.get("/documents/does-not-exist"), client.delete("/documents/does-not-exist")):
        assert r.status_code == 404 and "does-not-exist" in r.json()["detail"]


def test_an_unknown_id_names_the_id_it_likely_means(client):
    """`GET`/`DELETE /documents/KB-101` or `.../rapport.pdf` (the file's name) said only "not found";
    the 404 now names the stored id written the same but for case and punctuation, or indexed from that file."""
    r = client.post("/documents", json={"documents": [{"id": "kb-101", "title": "Notes de frais", "text": "Avant le 5 du mois."},
                                                      {"id": "rapport", "title": "Rapport", "text": "Le budget est de 480 000 euros."}]})
    assert r.status_code == 200, r.text
    try:
        for given, meant in (("KB-101", "kb-101"), ("kb_101", "kb-101"), ("rapport.pdf", "rapport"), ("Rapport.DOCX", "rapport")):
            for r in (client.get(f"/documents/{given}"), client.delete(f"/documents/{given}")):
                assert r.status_code == 404 and r.json()["detail"] == f"document {given!r} not found; did you mean {meant!r}?", r.text
        for given in ("kb-10", "rapport.xlsx", "nope"):
            assert client.get(f"/documents/{given}").json()["detail"] == f"document {given!r} not found"
        assert client.get("/documents/kb-101").status_code == 200 and client.get("/documents/rapport").status_code == 200  # nothing deleted
    finally:
        for doc_id in ("kb-101", "rapport"):
            client.delete(f"/documents/{doc_id}")


def test_an_id_given_with_surrounding_spaces(client, service):
    """Ids are stored stripped: GET /documents/%20x%20 and DELETE missed "x". GET reads "x" now (the
    response gives the stored id); DELETE acts on the id given only, its 404 names the one to use.
    An id that an older version stored with its spaces is reached as given first."""
    from tests.store_support import store_under_id

    r = client.post("/documents", json={"documents": [{"id": " trim-1 ", "title": "Note", "text": "Le siège est à Nantes."}]})
    assert r.status_code == 200 and r.json()["documents"][0]["id"] == "trim-1", r.text
    try:
        for path in ("/documents/%20trim-1%20", "/documents/%C2%A0trim-1"):
            got = client.get(path)
            assert got.status_code == 200 and got.json()["id"] == "trim-1", got.text
        r = client.delete("/documents/%20trim-1%20")
        assert r.status_code == 404
        assert r.json()["detail"] == "document ' trim-1 ' not found; did you mean 'trim-1'? (ids are stored without surrounding whitespace)"
        assert client.get("/documents/trim-1").status_code == 200  # not deleted in its place
        assert client.delete("/documents/%20nope%20").json()["detail"] == "document ' nope ' not found"
        assert client.get("/documents/%20nope%20").json()["detail"] == "document ' nope ' not found"
        # " trim-2 " stored with its spaces by an older version, beside "trim-2": each reached by its own id
        service.add_documents([Document(id="trim-2", title="Ancienne", text="Le siège était à Lille.")])
        store_under_id(service.store.data_dir, "trim-2", " trim-2 ")
        assert service.store.refresh()
        service.add_documents([Document(id="trim-2", title="Nouvelle", text="Le siège est à Lille.")])
        assert client.get("/documents/%20trim-2%20").json()["title"] == "Ancienne"
        r = client.delete("/documents/%20trim-2%20")
        assert r.status_code == 200 and r.json()["id"] == " trim-2 "
        assert client.get("/documents/%20trim-2%20").json()["title"] == "Nouvelle"
    finally:
        for doc_id in ("trim-1", "trim-2", " trim-2 "):
            service.delete_document(doc_id)


def test_a_path_that_is_not_utf8_says_so(client, service):
    """/documents/%FF reached the route as U+FFFD ("no document with id '\ufffd'"); a document
    whose id really is U+FFFD is still reached by its UTF-8 bytes."""
    service.add_documents([Document(id="\ufffd", title="Note", text="Le siège est à Lyon.")])
    try:
        for r in (client.get("/documents/%FF"), client.delete("/documents/%FF"), client.get("/documents/caf%E9")):
            detail = r.json()["detail"]
            assert r.status_code == 404 and "not UTF-8" in detail and ("0xFF" in detail or "0xE9" in detail), r.text
        assert client.get("/documents/%EF%BF%BD").json()["id"] == "\ufffd"
    finally:
        service.delete_document("\ufffd")


def test_a_path_with_a_control_character_reaches_nothing(client, service, api_settings):
    """Starlette's route patterns end in `$`, which matches before a final line break: DELETE
    /documents/a%0A deleted document "a". No id holds a control character, so no such path exists."""
    service.add_documents([Document(id="alias-1", title="Note", text="Le siège est à Lyon.")])
    try:
        for r in (client.get("/documents/alias-1%0A"), client.delete("/documents/alias-1%0A"), client.get("/health%0A"),
                  client.delete("/documents/alias-1%0D%0A"), client.post("/ask%0A", json={"question": "Où est le siège ?"})):
            assert r.status_code == 404, (r.request.url, r.text)
            assert "U+000" in r.json()["detail"]
        assert client.get("/documents/alias-1").status_code == 200
    finally:
        service.delete_document("alias-1")
    # counted as unmatched, not as 404s of /health or of a document
    with make_client(api_settings, service) as c:
        assert c.get("/health%0A").status_code == 404
        text = c.get("/metrics").text
    assert 'route="unmatched",status="404"' in text and 'route="/health",status="404"' not in text


def test_405_lists_every_method_the_path_takes(client):
    for path, allowed in (("/search", "GET, HEAD, POST"), ("/documents", "GET, HEAD, POST"), ("/documents/x", "DELETE, GET, HEAD"), ("/ask", "POST")):
        r = client.request("PUT", path)
        assert r.status_code == 405 and r.headers["allow"] == allowed, (path, r.headers.get("allow"))
        # the body says it too (it was a bare "Method Not Allowed"), and how a document is replaced here
        replace = "; to add or replace a document, POST /documents with its id (a document sent again under its id replaces it)"
        assert r.json() == {"detail": f"PUT is not allowed on {path}: it takes {allowed}{replace if path.startswith('/documents') else ''}"}, r.text
        assert int(r.headers["content-length"]) == len(r.content)
    r = client.patch("/documents/x", json={"title": "t"})
    assert r.status_code == 405 and "POST /documents with its id" in r.json()["detail"]
    r = client.delete("/ask")
    assert r.json() == {"detail": "DELETE is not allowed on /ask: it takes POST"}


def test_head_is_answered_wherever_get_is(api_settings, service):
    with make_client(api_settings, service) as c:
        for path in ("/health", "/documents", "/documents?limit=1", "/search?q=Netflix", "/metrics", "/openapi.json", "/"):
            get, head = c.get(path), c.head(path)
            assert head.status_code == get.status_code == 200, (path, head.status_code, head.text)
            assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"], path
        assert c.head("/documents/no-such-doc").status_code == 404
        r = c.head("/ask")
        assert r.status_code == 405 and r.headers["allow"] == "POST"
    # the read key guards HEAD as it guards GET
    with make_client(api_settings.model_copy(update={"api_key": "w", "read_key": "r"}), service) as c:
        assert c.head("/documents").status_code == 401
        assert c.head("/documents", headers={"Authorization": "Bearer r"}).status_code == 200
        assert c.head("/health").status_code == 200


def test_document_lifecycle(client):
    text = "La rédaction de Test Hebdo a été fondée à Quimper en 1987 par Yvonne Le Goff.\n\nElle compte douze journalistes."
    doc = {"title": "Test Hebdo", "text": text, "url": "https://example.org/test-hebdo", "published": "2019-03"}
    r = client.post("/documents", json={"documents": [doc]})
    assert r.status_code == 200, r.text
    body = r.json()
    doc_id = hashlib.sha1(text.encode()).hexdigest()[:16]
    assert body["documents"] == [{"id": doc_id, "chunks": body["documents"][0]["chunks"]}] and body["documents"][0]["chunks"] >= 1
    assert (body["added"], body["updated"], body["unchanged"]) == (1, 0, 0) and body["chunks_added"] >= 1
    try:
        again = client.post("/documents", json={"documents": [doc]}).json()
        assert (again["added"], again["updated"], again["unchanged"]) == (0, 0, 1)
        got = client.get(f"/documents/{doc_id}").json()
        assert got == {"id": doc_id, "title": "Test Hebdo", "text": text, "url": doc["url"], "published": "2019-03", "metadata": {}}
        hits = client.post("/search", json={"query": "Test Hebdo Quimper", "filters": {"document_ids": [doc_id]}}).json()["results"]
        assert hits and hits[0]["document_id"] == doc_id
        # same id, new text: updated
        upd = client.post("/documents", json={"documents": [{**doc, "id": doc_id, "text": text + " Elle paraît le jeudi."}]}).json()
        assert (upd["added"], upd["updated"]) == (0, 1)
        assert client.get("/health").json()["documents"] == client.get("/documents").json()["total"]
    finally:
        r = client.delete(f"/documents/{doc_id}")
    assert r.status_code == 200 and r.json() == {"id": doc_id, "deleted": True}
    assert client.get(f"/documents/{doc_id}").status_code == 404
    assert client.delete(f"/documents/{doc_id}").status_code == 404
    assert client.post("/search", json={"query": "Quimper", "filters": {"document_ids": [doc_id]}}).json()["results"] == []


@pytest.mark.parametrize(
    "documents_payload, field",
    [
        ([], "documents"),
        ([{"title": "T"}], "text"),
        ([{"title": "T", "text": "  "}], "text"),
        ([{"title": "T", "text": "Un texte.", "published": "2017-13"}], "published"),
        ([{"title": "T", "text": "Un texte.", "published": "le 3 mars"}], "published"),
        ([{"title": "T", "text": "Un texte.", "published": "2017 et 2018"}], "published"),
        ([{"id": "..", "title": "T", "text": "Un texte."}], "id"),  # URLs drop dot segments: never reachable
        ([{"id": "a/./b", "title": "T", "text": "Un texte."}], "id"),
        ([{"title": "T", "text": "Un texte.", "url": "javascript:alert(1)"}], "url"),
        ([{"title": "T", "text": "Un texte.", "id": "a\tb"}], "id"),  # the rule of `qa index` (index.schema.id_problem)
        ([{"title": "T", "text": "Un texte.", "id": "x" * 257}], "id"),
        ([{"title": "T", "text": "Un texte.", "id": "  "}], "id"),
        ([{"title": "T", "text": "Un.", "id": "x"}, {"title": "T", "text": "Deux.", "id": "x"}], "documents"),
        ([{"title": "T", "text": "Même texte."}, {"title": "U", "text": "Même texte."}], "id"),
        ([{"title": "T", "text": "Un texte.", "author": "moi"}], "author"),
        ([{"title": "T", "text": "Un texte.", "url": "http://[lien-casse"}], "url"),  # Python cannot parse it: was a 500
        ([{"title": "T", "text": "Un texte.", "url": "https://[lien]/article"}], "url"),
        # escape sequences would drive the terminal of whoever lists the documents
        ([{"title": "Titre \u001b]0;pwned\u0007", "text": "Un texte."}], "title"),
        ([{"title": "Titre \u0007 qui sonne", "text": "Un texte."}], "title"),
        ([{"title": "T", "text": "Un texte.", "url": "https://a.example/\u001b[31mRED"}], "url"),
        # nested too deep to be read back (GET /documents/{id} was a 500)
        ([{"title": "T", "text": "Un texte.", "metadata": json.loads('{"a":' * 40 + "1" + "}" * 40)}], "metadata"),
    ],
)
def test_add_documents_bad_input(client, documents_payload, field):
    assert_names_field(client.post("/documents", json={"documents": documents_payload}), field)


def test_a_body_sent_to_an_operation_that_takes_none_is_ignored(client):
    # DELETE /documents/{id} declares no body: one sent anyway is not judged (415, 400, 413 were undeclared answers)
    for content, ctype in ((b"abc", "text/plain"), (b"\xff", "application/json"), (b'{"a": NaN}', "application/json"), (b"x" * 3_000_000, "text/plain")):
        r = client.request("DELETE", "/documents/no-such-doc", content=content, headers={"content-type": ctype})
        assert r.status_code == 404 and "not found" in r.json()["detail"], (ctype, r.status_code, r.text[:200])


def test_a_title_is_one_line(client):
    # scraped titles carry line breaks and tabs: folded into spaces, as `qa index` does
    r = client.post("/documents", json={"documents": [{"id": "titre-1", "title": "Titre\nsur deux\tlignes\n", "text": "Un texte."},
                                                      {"id": "titre-2", "title": " Titre  à  espaces ", "text": "Un autre texte."}]})
    assert r.status_code == 200, r.text
    try:
        assert client.get("/documents/titre-1").json()["title"] == "Titre sur deux lignes"
        assert client.get("/documents/titre-2").json()["title"] == " Titre  à  espaces "  # no control character: as sent
    finally:
        for doc_id in ("titre-1", "titre-2"):
            client.delete(f"/documents/{doc_id}")


def test_a_document_without_a_title_is_taken_as_qa_index_takes_a_record_without_one(client):
    # `qa index` and POST /documents/files index a JSON record without a title; POST /documents refused it (422 "Field required")
    r = client.post("/documents", json={"documents": [{"id": "sans-titre", "text": "Le badge perdu se remplace à l'accueil."}]})
    assert r.status_code == 200, r.text
    try:
        got = client.get("/documents/sans-titre").json()
        assert got["title"] is None and got["text"] == "Le badge perdu se remplace à l'accueil."
        listed = client.get("/documents", params={"q": "sans-titre"}).json()["items"]
        assert [(d["id"], d["title"]) for d in listed] == [("sans-titre", None)]
        hits = client.post("/search", json={"query": "badge perdu accueil", "filters": {"document_ids": ["sans-titre"]}}).json()["results"]
        assert hits and hits[0]["title"] is None
    finally:
        client.delete("/documents/sans-titre")


def test_a_repeated_id_is_named_where_it_repeats(client):
    for docs, hint in (([{"id": "x", "title": "T", "text": "Un."}, {"id": "x", "title": "T", "text": "Deux."}], False),
                       ([{"title": "T", "text": "Même."}, {"title": "U", "text": "Même."}], True)):
        r = client.post("/documents", json={"documents": docs})
        assert r.status_code == 422, r.text
        [err] = r.json()["detail"]
        assert err["loc"] == ["body", "documents", 1, "id"] and ("the same text twice?" in err["msg"]) == hint, err
        assert err["input"] == (docs[1].get("id") or document_id_for("Même."))


def test_published_dates_follow_the_rule_of_qa_index(client):
    """A CMS's ISO datetime keeps its date, as `qa index` reads it (it was a 422 here)."""
    doc = {"id": "dated-doc", "title": "Daté", "text": "Un texte daté pour le test.", "published": "2023-06-17T10:00:00Z"}
    r = client.post("/documents", json={"documents": [doc]})
    assert r.status_code == 200, r.text
    try:
        assert client.get("/documents/dated-doc").json()["published"] == "2023-06-17"
    finally:
        client.delete("/documents/dated-doc")


# --- POST /documents/files ---------------------------------------------------------------------


def multipart(*parts: tuple[bytes, bytes], field: bytes = b"files") -> dict:
    """A multipart/form-data body of (file name, content) parts written byte for byte (httpx
    percent-encodes a name's control characters): keyword arguments of ``client.post``."""
    body = b"".join(b'--BOUNDARY\r\nContent-Disposition: form-data; name="' + field + b'"; filename="' + name + b'"\r\n'
                    b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n" for name, data in parts)
    return {"content": body + b"--BOUNDARY--\r\n", "headers": {"content-type": "multipart/form-data; boundary=BOUNDARY"}}


def test_files_are_indexed_as_qa_index_reads_them(client, documents):
    note = "Note de service\n\nLa cantine de l'agence de Brest ferme le vendredi à partir de mars.\n"
    page = "<html><head><title>Agence de Rennes</title></head><body><article><h1>Agence de Rennes</h1><p>L'agence de Rennes déménage rue de Nantes en juin, annonce la direction régionale.</p></article></body></html>"
    records = '{"id": "upload-rec-1", "title": "Premier", "text": "Le premier enregistrement parle de la gare de Morlaix."}\n'
    files = [("files", ("../../../etc/upload-note.txt", note.encode())), ("files", ("C:\\Exports\\upload-page.html", page.encode())),
             ("files", ("export.jsonl", records.encode()))]
    r = client.post("/documents/files", files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    ids = ["upload-note", "upload-page", "upload-rec-1"]  # file names without their suffix, a record's own id
    assert [d["id"] for d in body["documents"]] == ids and all(d["chunks"] >= 1 for d in body["documents"])
    assert (body["added"], body["updated"], body["unchanged"]) == (3, 0, 0)
    try:
        got = client.get("/documents/upload-note").json()
        assert got["text"] == note and got["title"] == "Note de service"  # kept byte for byte, as `qa index` keeps a .txt
        assert got["metadata"] == {"source_file": "upload-note.txt"}  # the name sent, not where the server saved it
        assert client.get("/documents/upload-page").json()["metadata"]["source_file"] == "upload-page.html"
        assert client.get("/documents/upload-rec-1").json()["metadata"] == {"source_file": "export.jsonl"}  # the export it came in
        hits = client.post("/search", json={"query": "cantine agence Brest", "filters": {"document_ids": ids}}).json()["results"]
        assert hits and hits[0]["document_id"] == "upload-note" and note[hits[0]["start"]:hits[0]["end"]] == hits[0]["text"]
        again = client.post("/documents/files", files=files).json()
        assert (again["added"], again["updated"], again["unchanged"]) == (0, 0, 3)
        assert client.get("/health").json()["documents"] == len(documents) + 3
    finally:
        for doc_id in ids:
            client.delete(f"/documents/{doc_id}")
    assert 'route="/documents/files",status="200"' in client.get("/metrics").text


def test_one_file_that_cannot_be_read_writes_nothing(client, documents, tmp_path):
    from tests.document_files import write_pdf

    pdf = write_pdf(tmp_path / "bon.pdf", [["Un rapport lisible sur la gare de Quimperlé."]]).read_bytes()
    files = [("files", ("upload-ok.txt", "Un texte lisible sur le port de Douarnenez.".encode())), ("files", ("upload-bon.pdf", pdf)),
             ("files", ("upload-abime.pdf", pdf[: len(pdf) // 2])), ("files", ("photo.jpg", b"\xff\xd8\xff"))]
    r = client.post("/documents/files", files=files)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert [d["loc"] for d in detail] == [["body", "files", 2], ["body", "files", 3]]
    assert detail[0]["msg"].startswith("Value error, upload-abime.pdf: ") and detail[0]["input"] == "upload-abime.pdf"
    assert detail[1]["msg"] == "Value error, photo.jpg: unsupported file type '.jpg' (use .txt, .md, .html, .json, .jsonl, .pdf or .docx)"
    assert "/tmp" not in r.text and "qa-upload" not in r.text  # the server's temporary paths are not told
    assert client.get("/documents/upload-ok").status_code == client.get("/documents/upload-bon").status_code == 404
    assert client.get("/health").json()["documents"] == len(documents)
    # a JSONL export with a bad line: refused whole, the line named
    r = client.post("/documents/files", files=[("files", ("export.jsonl", b'{"id": "upload-j1", "text": "Un."}\n{"id": "upload-j2"}\n'))])
    assert r.status_code == 422 and r.json()["detail"][0]["msg"] == "Value error, export.jsonl:2: missing or empty 'text'", r.text
    assert client.get("/documents/upload-j1").status_code == 404
    # one id from two files: both named
    r = client.post("/documents/files", files=[("files", ("upload-x.txt", b"Un texte.")), ("files", ("upload-x.md", b"Un autre texte."))])
    [err] = r.json()["detail"]
    assert r.status_code == 422 and err["loc"] == ["body", "files", 1], r.text
    assert "upload-x.md gives the document id 'upload-x', as upload-x.txt (part 0) does" in err["msg"]


@pytest.mark.parametrize(
    "name, says",
    [
        (b"..", "no last component"), (b".", "no last component"), (b"", "no file name"), (b"dossier/", "no last component"),
        (b"a\x00b.txt", "U+0000"), (b"a\x1b[31mb.txt", "U+001B"), (b"a\x07b.txt", "U+0007"),
    ],
)
def test_an_upload_whose_name_cannot_be_a_file_here_is_422_naming_its_part(client, name, says):
    r = client.post("/documents/files", **multipart((b"ok.txt", b"Un texte."), (name, b"Un autre texte.")))
    assert r.status_code == 422, r.text
    [err] = r.json()["detail"]
    assert err["loc"] == ["body", "files", 1] and says in err["msg"], err
    assert client.get("/documents/ok").status_code == 404


def test_an_upload_named_with_a_path_is_saved_under_its_last_component(client, tmp_path, monkeypatch):
    for name in (b"../../../../tmp/upload-evil.txt", b"..\\..\\upload-evil.txt", b"/etc/upload-evil.txt"):
        r = client.post("/documents/files", **multipart((name, b"Un texte venu d'ailleurs.")))
        assert r.status_code == 200 and r.json()["documents"][0]["id"] == "upload-evil", r.text
        assert client.get("/documents/upload-evil").json()["metadata"]["source_file"] == "upload-evil.txt"
        assert client.delete("/documents/upload-evil").status_code == 200
    assert not os.path.exists("/tmp/upload-evil.txt") and not os.path.exists("/etc/upload-evil.txt")


def test_an_upload_needs_files_sent_as_multipart(client):
    r = client.post("/documents/files", **multipart((b"a.txt", b"Un texte."), field=b"fichier"))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "files"] and r.json()["detail"][0]["type"] == "missing"
    r = client.post("/documents/files", json={"documents": [{"title": "T", "text": "Un texte."}]})
    assert r.status_code == 415 and r.json()["detail"] == (
        "request body must be multipart/form-data, each file a part named 'files', as curl -F files=@rapport.pdf sends it (got 'application/json')")
    assert client.post("/documents/files", content=b"x", headers={"content-type": "text/plain"}).status_code == 415
    assert "none was sent" in client.post("/documents/files", content=b"x").json()["detail"]
    r = client.post("/documents/files", content=b"--x\r\n", headers={"content-type": "multipart/form-data"})
    assert r.status_code == 400 and r.json()["detail"] == "Missing boundary in multipart."
    # every other route stays JSON only
    for path in ("/documents", "/ask", "/search", "/extract"):
        r = client.post(path, files=[("files", ("a.txt", b"Un texte."))])
        assert r.status_code == 415 and "Content-Type: application/json" in r.json()["detail"], path


def test_a_part_that_is_not_a_file_sent_as_files_is_422_naming_it(client):
    # -F file=@... beside -F files=@...: that file would be left out, the answer a 200 without it
    r = client.post("/documents/files", files=[("files", ("upload-a.txt", b"Un texte.")), ("file", ("upload-b.txt", b"Un autre texte."))])
    assert r.status_code == 422, r.text
    [err] = r.json()["detail"]
    assert err["loc"] == ["body", "file"] and err["type"] == "extra_forbidden" and err["input"] == "upload-b.txt"
    assert err["msg"] == ("Extra inputs are not permitted: a part named 'file' (the file 'upload-b.txt') is not read; "
                          "send each file as a part named 'files' (curl -F files=@rapport.pdf)")
    assert client.get("/documents/upload-a").status_code == 404
    # curl -F files=rapport.pdf, without its @, sends the name as a text field: not "Expected UploadFile, received: <class 'str'>"
    r = client.post("/documents/files", data={"files": "rapport.pdf"}, files=[("files", ("upload-a.txt", b"Un texte."))])
    assert r.status_code == 422, r.text
    [err] = r.json()["detail"]
    assert err["loc"] == ["body", "files", 0] and err["input"] == "rapport.pdf"
    assert err["msg"] == "Value error, part 0 is a text field, not a file: send the file itself, an @ before its path (curl -F files=@rapport.pdf)"
    # only parts of another name: the one missing is said first
    r = client.post("/documents/files", **multipart((b"a.txt", b"Un texte."), field=b"file"))
    assert [(e["type"], e["loc"]) for e in r.json()["detail"]] == [("missing", ["body", "files"]), ("extra_forbidden", ["body", "file"])]
    assert client.get("/documents/upload-a").status_code == 404


def test_an_upload_over_its_limit_is_413(api_settings, service):
    with make_client(api_settings, service, max_upload_bytes=2_000, max_body_bytes=1_000) as small:
        big = [("files", ("upload-gros.txt", b"Un texte. " * 300))]
        r = small.post("/documents/files", files=big)
        assert r.status_code == 413, r.text
        assert r.json()["detail"] == "request body too large: at most 2000 bytes; send fewer or smaller files per request"

        def chunked():  # no Content-Length: still refused
            yield multipart((b"upload-gros.txt", b"Un texte. " * 300))["content"]

        r = small.post("/documents/files", content=chunked(), headers=multipart()["headers"])
        assert r.status_code == 413
        # over QA_MAX_BODY_BYTES, under QA_MAX_UPLOAD_BYTES: each route its own limit
        fits = [("files", ("upload-moyen.txt", b"Un texte. " * 120))]
        r = small.post("/documents/files", files=fits)
        assert r.status_code == 200, r.text
        assert small.delete("/documents/upload-moyen").status_code == 200
        r = small.post("/documents", json={"documents": [{"id": "upload-moyen", "title": "T", "text": "Un texte. " * 120}]})
        assert r.status_code == 413 and r.json()["detail"] == "request body too large: at most 1000 bytes"
        assert 'route="/documents/files",status="413"' in small.get("/metrics").text


def test_an_upload_needs_the_write_key_before_its_body_is_judged(api_settings, service):
    with make_client(api_settings, service, api_key="writer-key", read_key="reader-key", max_upload_bytes=1_000) as c:
        bodies = [
            {"files": [("files", ("upload-k.txt", b"Un texte."))]},  # fine with the key
            {"files": [("files", ("upload-k.txt", b"x" * 2_000))]},  # 413 with it
            {"json": {"documents": []}},  # 415
            multipart((b"..", b"x")),  # 422
        ]
        def post(kw: dict, key: str | None = None) -> httpx.Response:
            headers = {**kw.get("headers", {}), **({"Authorization": f"Bearer {key}"} if key else {})}
            return c.post("/documents/files", **{**kw, "headers": headers})

        for kw in bodies:
            r = post(kw)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", r.text
            assert post(kw, "nope").status_code == 403
            r = post(kw, "reader-key")
            assert r.status_code == 403 and r.json()["detail"] == "this key (QA_READ_KEY) opens reads only: writes need QA_API_KEY"
        assert [post(kw, "writer-key").status_code for kw in bodies] == [200, 413, 415, 422]
        assert c.delete("/documents/upload-k", headers={"Authorization": "Bearer writer-key"}).status_code == 200


def test_an_upload_waits_for_no_place_and_holds_one(api_settings, service, monkeypatch):
    """QA_LIMIT_CONCURRENCY counts uploads as other requests: one in progress holds a place."""
    real = service.add_documents

    def slow(docs):
        time.sleep(1.0)
        return real(docs)

    monkeypatch.setattr(service, "add_documents", slow)
    app = create_app(api_settings.model_copy(update={"limit_concurrency": 1}), service)

    async def scenario():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            first = asyncio.ensure_future(c.post("/documents/files", files=[("files", ("upload-lent.txt", b"Un texte lent."))]))
            await asyncio.sleep(0.4)
            second = await c.post("/documents/files", files=[("files", ("upload-vite.txt", b"Un texte vite."))])
            return await first, second

    first, second = asyncio.run(scenario())
    assert first.status_code == 200, first.text
    assert second.status_code == 503 and "QA_LIMIT_CONCURRENCY" in second.json()["detail"], second.text
    monkeypatch.setattr(service, "add_documents", real)
    with TestClient(app) as c:
        assert c.delete("/documents/upload-lent").status_code == 200
        assert c.get("/documents/upload-vite").status_code == 404



def test_a_temporary_folder_that_cannot_take_the_files_is_the_operators_to_fix(client, tmp_path, monkeypatch, caplog):
    import errno
    import tempfile

    import api.uploads

    not_a_folder = tmp_path / "not-a-folder"
    not_a_folder.write_text("x")
    monkeypatch.setattr(tempfile, "tempdir", str(not_a_folder))
    files = [("files", ("upload-tmp.txt", b"Un texte."))]
    with caplog.at_level(logging.ERROR, logger="api"):
        r = client.post("/documents/files", files=files)
    assert r.status_code == 503, r.text
    assert r.json()["detail"] == "the server could not store the files to read them: nothing was written; send them again later (the operator's log says why)"
    assert str(not_a_folder) in caplog.text and "Traceback" not in caplog.text  # the operator's log names the folder
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(api.uploads.shutil, "copyfileobj", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
    r = client.post("/documents/files", files=files)
    assert r.status_code == 507 and "nothing was written" in r.json()["detail"], r.text
    assert client.get("/documents/upload-tmp").status_code == 404


# --- auth ------------------------------------------------------------------------------------


def test_writes_need_the_api_key(api_settings, service):
    with make_client(api_settings, service, api_key="s3cret-key") as c:
        doc = {"documents": [{"id": "auth-test-doc", "title": "Auth", "text": "Un document pour tester l'authentification."}]}
        r = c.post("/documents", json=doc)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.post("/documents", json=doc, headers={"Authorization": "Basic czNjcmV0LWtleQ=="}).status_code == 401
        assert c.post("/documents", json=doc, headers={"Authorization": "Bearer wrong"}).status_code == 403
        assert c.delete("/documents/auth-test-doc").status_code == 401
        assert c.delete("/documents/auth-test-doc", headers={"Authorization": "Bearer s3cret-ke"}).status_code == 403
        ok = {"Authorization": "Bearer s3cret-key"}
        assert c.post("/documents", json=doc, headers=ok).status_code == 200
        assert c.delete("/documents/auth-test-doc", headers=ok).status_code == 200
        # reads stay open without a read key
        assert c.get("/documents").status_code == 200
        assert c.post("/search", json={"query": "Netflix", "top_k": 1}).status_code == 200
        assert c.get("/metrics").status_code == 200


def test_a_read_key_without_a_write_key_is_refused(api_settings, service):
    # writes would stay open to anyone while reads need a key
    with pytest.raises(SettingsError, match="QA_READ_KEY is set but QA_API_KEY is not"):
        create_app(api_settings.model_copy(update={"read_key": "r", "api_key": None}), service)
    with pytest.raises(SettingsError):
        create_app(api_settings.model_copy(update={"read_key": "r", "api_key": "  "}), service)


def test_reads_need_a_key_when_read_key_is_set(api_settings, service):
    with make_client(api_settings, service, api_key="writer-key", read_key="reader-key") as c:
        for call in (
            lambda h: c.get("/documents", headers=h),
            lambda h: c.get("/search", params={"q": "Netflix", "top_k": 1}, headers=h),
            lambda h: c.post("/search", json={"query": "Netflix", "top_k": 1}, headers=h),
            lambda h: c.get("/metrics", headers=h),
        ):
            assert call({}).status_code == 401
            assert call({"Authorization": "Bearer nope"}).status_code == 403
            assert call({"Authorization": "Bearer reader-key"}).status_code == 200
            assert call({"Authorization": "Bearer writer-key"}).status_code == 200
        assert c.post("/ask", json={"question": "Qui ?"}).status_code == 401
        # the read key does not open writes
        doc = {"documents": [{"title": "T", "text": "Un texte."}]}
        r = c.post("/documents", json=doc, headers={"Authorization": "Bearer reader-key"})
        assert r.status_code == 403 and r.json()["detail"] == "this key (QA_READ_KEY) opens reads only: writes need QA_API_KEY"
        assert c.post("/documents", json=doc, headers={"Authorization": "Bearer nope"}).json()["detail"] == "invalid API key"
        # health and the page stay open, for HEAD too (uptime probes)
        assert c.get("/health").status_code == 200
        assert c.head("/health").status_code == 200 and c.head("/").status_code == 200
        assert c.get("/").status_code == 200


def test_a_missing_key_is_told_before_anything_about_the_body(api_settings, service):
    """A client without the key learns that it needs one, not how its body would have been judged."""
    with make_client(api_settings, service, api_key="writer-key", read_key="reader-key") as c:
        bad_bodies = [
            {"content": b"{not json", "headers": {"content-type": "application/json"}},  # 422 with the key
            {"content": b'{"documents": NaN}', "headers": {"content-type": "application/json"}},  # 422
            {"content": b"title=x", "headers": {"content-type": "application/x-www-form-urlencoded"}},  # 415
            {"content": b'{"documents": "' + b"x" * (api_settings.max_body_bytes + 10) + b'"}',
             "headers": {"content-type": "application/json"}},  # 413
        ]
        for kw in bad_bodies:
            r = c.post("/documents", **kw)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", r.text
            assert "Authorization: Bearer" in r.json()["detail"]
            assert c.post("/documents", **{**kw, "headers": {**kw["headers"], "Authorization": "Bearer nope"}}).status_code == 403
            assert c.post("/documents", **{**kw, "headers": {**kw["headers"], "Authorization": "Bearer reader-key"}}).status_code == 403
            assert c.post("/ask", **kw).status_code == 401
        assert c.get("/search", params={"q": "Netflix", "top_k": "beaucoup"}).status_code == 401
        # with the key, the body is judged as before
        ok = {"Authorization": "Bearer writer-key", "content-type": "application/json"}
        assert c.post("/documents", content=b"{not json", headers=ok).status_code == 422
        assert c.post("/ask", content=b"{not json", headers={**ok, "Authorization": "Bearer reader-key"}).status_code == 422
        assert c.get("/search", params={"q": "Netflix", "top_k": "beaucoup"}, headers={"Authorization": "Bearer reader-key"}).status_code == 422
        # paths no endpoint takes: the router's answer, with or without a key, and the body unread
        for path in ("/ask/", "/search/", "/documents/", "/nowhere"):
            for kw in bad_bodies:
                assert c.post(path, follow_redirects=False, **kw).status_code in (307, 404, 405), path
        # unknown paths and open routes are not gated
        assert c.get("/nowhere").status_code == 404
        assert c.get("/health").status_code == 200


# --- errors, metrics, CORS, page -------------------------------------------------------------


def test_an_index_re_embedded_elsewhere_is_a_503_saying_what_to_do(client, service, monkeypatch, caplog):
    """Another process rebuilt the index with another model (the store raises ReindexNeeded, see
    tests/test_store.py): the server says so instead of a bare 500."""
    from index.store import ReindexNeeded

    def rebuilt(*args, **kwargs):
        raise ReindexNeeded("index at /data was built with other-model:8; you configured e5:384: re-index with `qa index --rebuild ...` or point QA_DATA_DIR elsewhere")

    monkeypatch.setattr(service, "search", rebuilt)
    with caplog.at_level(logging.ERROR, logger="api"):
        r = client.post("/search", json={"query": "Netflix"})
    assert r.status_code == 503
    body = r.json()
    assert "restart" in body["detail"] and "another embedding model" in body["detail"]
    # the operator reads the folder and the models in the log, under the request id; a client is not told them
    assert "/data" not in body["detail"] and "other-model" not in body["detail"]
    assert body["request_id"] == r.headers["x-request-id"]
    assert any("built with other-model:8" in m and body["request_id"] in m for m in caplog.messages)


def test_internal_error_is_500_with_request_id_and_no_trace(client, service, monkeypatch, caplog):
    def boom(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(service, "search", boom)
    with caplog.at_level(logging.ERROR, logger="api"):
        r = client.post("/search", json={"query": "Netflix"}, headers={"X-Request-ID": "req-500-test"})
    assert r.status_code == 500
    assert r.json() == {"detail": "internal error", "request_id": "req-500-test"}
    assert r.headers["x-request-id"] == "req-500-test"
    assert "secret" not in r.text and "Traceback" not in r.text
    assert any("req-500-test" in rec.getMessage() for rec in caplog.records)


def test_every_error_body_is_written_as_fastapi_writes_its_own(api_settings, service, monkeypatch):
    """The bodies written by the middleware and our handlers (401/403 of a key, 404 of a path, 413,
    415, 422, 500, 503) had a space after each ',' and ':', those of FastAPI (404 of a document,
    405, every 200) none: a client comparing or logging raw bodies saw two styles. One now."""
    from index.store import ReindexNeeded

    def compact(r) -> bytes:
        return json.dumps(r.json(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    json_type = {"content-type": "application/json"}
    with make_client(api_settings, service, api_key="writer-key", limit_concurrency=None) as c:
        answers = [
            c.post("/documents", json={"documents": []}),
            c.post("/documents", json={"documents": []}, headers={"Authorization": "Bearer nope"}),
            c.get("/nowhere"),
            c.get("/a%00b"),
            c.get("/documents/no-such-document"),
            c.put("/ask", json={}),
            c.post("/ask", content=b'{"question": "' + b"x" * (api_settings.max_body_bytes + 10) + b'"}', headers=json_type),
            c.post("/ask", content=b"question=x", headers={"content-type": "application/x-www-form-urlencoded"}),
            c.post("/ask", json={}),
            c.post("/ask", content=b'{"question": NaN}', headers=json_type),
            c.get("/search", params={"q": "Netflix", "top_k": "beaucoup"}),
            c.get("/search", params={"q": "Netflix"}),
        ]
        monkeypatch.setattr(service, "search", lambda *a, **k: (_ for _ in ()).throw(ReindexNeeded("index at /data was built with another model")))
        answers.append(c.get("/search", params={"q": "Netflix"}))
        monkeypatch.setattr(service, "search", lambda *a, **k: 1 / 0)
        answers.append(c.get("/search", params={"q": "Netflix"}))
    assert [r.status_code for r in answers] == [401, 403, 404, 404, 404, 405, 413, 415, 422, 422, 422, 200, 503, 500]
    for r in answers:
        assert r.content == compact(r), (r.status_code, r.content[:300])
    assert answers[0].content == b'{"detail":"missing API key: send the header Authorization: Bearer <key>"}'


def test_metrics_use_route_templates_and_index_gauges(client, documents):
    client.get("/documents/does-not-exist")
    client.post("/ask", json={"question": "Qui ?", "top_k": 1})
    text = client.get("/metrics").text
    assert 'qa_http_requests_total{method="GET",route="/documents/{doc_id}",status="404"}' in text
    assert "does-not-exist" not in text
    assert re.search(r'^qa_http_request_duration_seconds_bucket\{[^}]*method="POST",route="/ask"[^}]*\} [1-9]', text, re.M)
    assert re.search(r'^qa_http_request_duration_seconds_count\{method="POST",route="/ask"\} [1-9]', text, re.M)
    m = re.search(r"^qa_index_documents (\S+)$", text, re.M)
    assert m and float(m.group(1)) == len(documents)
    assert re.search(r"^qa_index_chunks \d", text, re.M)


def test_metrics_give_the_server_process_memory_and_cpu(client):
    """A monitor alerts on the server's memory (each process holds its models, ~1 GB) and CPU: the
    standard process_* series are there, the resident memory that of this process."""
    import resource

    text = client.get("/metrics").text
    m = re.search(r"^process_resident_memory_bytes (\S+)$", text, re.M)
    assert m, text[:500]
    # ru_maxrss (KiB on Linux) is the peak: the current RSS is at most that, and at least 100 MB with the models loaded
    assert 100e6 < float(m.group(1)) <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    for name in ("process_cpu_seconds_total", "process_start_time_seconds", "process_open_fds"):
        assert re.search(rf"^{name} [0-9.e+]+$", text, re.M), name


def test_made_up_methods_are_one_metric_series_and_paths_are_logged_escaped(api_settings, service, caplog):
    with make_client(api_settings, service) as c:
        for i in range(5):  # any token is a valid HTTP method: each must not be a new series
            assert c.request(f"M{i}XYZ", "/ask").status_code == 405
        text = c.get("/metrics").text
        assert 'qa_http_requests_total{method="other",route="/ask",status="405"} 5.0' in text and "M0XYZ" not in text
        with caplog.at_level(logging.DEBUG, logger="api"):
            c.get("/health%0a2026-11-24 09:00:00,000 INFO api: forged")
    lines = [r.getMessage() for r in caplog.records if "forged" in r.getMessage()]
    assert lines and all("\n" not in line and "/health\\x0a2026" in line for line in lines), lines


def test_metrics_registry_is_per_app(api_settings, service):
    with make_client(api_settings, service) as a, make_client(api_settings, service) as b:
        a.get("/health")
        assert 'route="/health"' in a.get("/metrics").text
        assert 'route="/health"' not in b.get("/metrics").text


def test_cors_is_off_by_default_and_configurable(client, api_settings, service):
    pre = {"Origin": "https://news.example.org", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    r = client.get("/health", headers={"Origin": "https://news.example.org"})
    assert "access-control-allow-origin" not in r.headers
    with make_client(api_settings, service, cors_origins=["https://news.example.org"]) as c:
        r = c.options("/ask", headers=pre)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://news.example.org"
        r = c.get("/health", headers={"Origin": "https://news.example.org"})
        assert r.headers["access-control-allow-origin"] == "https://news.example.org"
        # a page of that origin reads the request id, and a busy server's Retry-After (not a safelisted header)
        exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
        assert {"x-request-id", "retry-after"} <= exposed, exposed
        r = c.get("/health", headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in r.headers
        # HEAD is answered wherever GET is: a browser's HEAD with a key is preflighted and allowed
        r = c.options("/documents/x", headers={**pre, "Access-Control-Request-Method": "HEAD", "Access-Control-Request-Headers": "authorization"})
        assert r.status_code == 200 and "HEAD" in r.headers["access-control-allow-methods"], r.text


def test_page_is_served(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert 'id="question"' in r.text and "Aucune réponse trouvée" in r.text and 'lang="fr"' in r.text
    js = client.get("/static/app.js")
    assert js.status_code == 200
    assert not re.search(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write", js.text), "text must not be parsed as HTML"
    assert client.get("/static/style.css").status_code == 200
    # behind a proxy that serves the app under a prefix (/qa/), the page must load its files and post
    # its questions there: every URL it uses is relative to it
    assert re.findall(r'(?:href|src)="([^"]*)"', r.text) and not re.findall(r'(?:href|src)="/', r.text)
    assert 'fetch("ask"' in js.text and not re.search(r"fetch\(\s*[\"'`]/", js.text)


def test_the_page_template_is_never_served_raw(client):
    """/static/index.html is the page's template: its {{...}} are filled in at / only, so it sends
    there rather than state « {{max_question_chars_fr}} caractères au plus » and skip the length check."""
    for method in ("GET", "HEAD"):
        r = client.request(method, "/static/index.html", follow_redirects=False)
        assert r.status_code == 307 and r.headers["location"] == "../", (method, r.status_code)
    r = client.get("/static/index.html")
    assert r.status_code == 200 and str(r.url).endswith("/") and 'id="question"' in r.text and not re.search(r"\{\{\w+\}\}", r.text)


def test_probes_pass_the_concurrency_limit_under_a_proxy_prefix():
    """uvicorn --root-path /qa puts the prefix in the path: /qa/health is still the probe."""
    from api.middleware import ConcurrencyLimitMiddleware, Places

    reached, sent = [], []

    async def app(scope, receive, send):
        reached.append(scope["path"])

    async def send(message):
        sent.append(message)

    places = Places(limit=1)
    limited = ConcurrencyLimitMiddleware(app, places)
    places.active = 1  # one request in progress: the limit is reached
    for path in ("/qa/health", "/qa/metrics", "/qa/search"):
        asyncio.run(limited({"type": "http", "path": path, "root_path": "/qa", "method": "GET", "headers": []}, None, send))
    assert reached == ["/qa/health", "/qa/metrics"]
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [503]


# --- concurrency and start-up ---------------------------------------------------------------


def test_identical_concurrent_questions_share_one_computation(api_settings, service, monkeypatch):
    calls = []
    real_ask = service.ask

    def slow_ask(*args, **kwargs):
        calls.append(threading.get_ident())
        time.sleep(0.5)
        return real_ask(*args, **kwargs)

    monkeypatch.setattr(service, "ask", slow_ask)
    app = create_app(api_settings, service)

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            same = [c.post("/ask", json={"question": q, "top_k": 2}) for q in (SHOWCASE_QUESTION, SHOWCASE_QUESTION + "  ", SHOWCASE_QUESTION)]
            other = c.post("/ask", json={"question": "Où Netflix va-t-il ouvrir un bureau ?", "top_k": 2})
            search = c.post("/search", json={"query": "Netflix", "top_k": 2})
            return await asyncio.gather(*same, other, search)

    *same, other, search = asyncio.run(scenario())
    assert all(r.status_code == 200 for r in [*same, other, search])
    assert len(calls) == 2, "the three identical questions ran once, the other one once"
    assert same[0].json()["answers"] == same[1].json()["answers"] == same[2].json()["answers"]


class _Client:
    """What ``InFlight`` asks of a request: whether its client is still there."""

    def __init__(self) -> None:
        self.gone = False

    async def is_disconnected(self) -> bool:
        return self.gone


def _work(name: str, started: list[str], stopped: list[str]):
    def fn(stop):  # two seconds of work that asks ``stop`` as it goes, as the reader does
        started.append(name)
        for _ in range(200):
            if stop():
                stopped.append(name)
                raise ReadStopped(name)
            time.sleep(0.01)
        return name
    return fn


def test_work_whose_clients_all_went_away_is_dropped_or_stopped():
    """/ask's and /extract's shared computations: a client that goes away gets ClientGone at once;
    the work goes on while another client waits for it, never starts if it was still queued for a
    model thread, and stops at its next check if it was under way."""
    from api.concurrency import ClientGone, InFlight, ModelThreads

    started: list[str] = []
    stopped: list[str] = []

    async def scenario():
        inflight, threads = InFlight(), ModelThreads(1)

        def ask(name: str, client: _Client) -> asyncio.Future:
            return asyncio.ensure_future(inflight.run((name,), _work(name, started, stopped), threads, client))

        async def hang_up(client: _Client, request: asyncio.Future, after_s: float) -> None:
            await asyncio.sleep(after_s)
            client.gone = True
            with pytest.raises(ClientGone):
                await request

        release = threading.Event()
        busy = asyncio.ensure_future(inflight.run(("busy",), lambda stop: release.wait(10), threads))
        client = _Client()
        await hang_up(client, ask("queued", client), 0.3)
        release.set()
        await busy

        first, second = _Client(), _Client()
        a, b = ask("shared", first), ask("shared", second)
        await hang_up(first, a, 0.5)
        assert await b == "shared", "the other client still gets the answer"

        last = _Client()
        await hang_up(last, ask("running", last), 0.5)
        for _ in range(100):
            if stopped:
                break
            await asyncio.sleep(0.05)

    asyncio.run(scenario())
    assert started == ["shared", "running"], "work whose client left while it was queued never ran"
    assert stopped == ["running"], "work under way was told to stop once its last client had gone"


def test_identical_concurrent_extracts_share_one_computation(api_settings, service, monkeypatch):
    """/extract goes through the same ``InFlight`` as /ask: identical requests read the context once."""
    calls = []
    real_extract = service.extract

    def slow_extract(*args, **kwargs):
        calls.append(args[1][:8])
        time.sleep(0.5)
        return real_extract(*args, **kwargs)

    monkeypatch.setattr(service, "extract", slow_extract)
    app = create_app(api_settings, service)
    context = "Netflix investit 7 milliards de dollars dans ses contenus en 2018."

    async def scenario():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            same = [c.post("/extract", json={"question": "Combien Netflix investit-il ?", "context": context}) for _ in range(3)]
            other = c.post("/extract", json={"question": "Combien Netflix investit-il ?", "context": "Autre : " + context})
            return await asyncio.gather(*same, other)

    *same, other = asyncio.run(scenario())
    assert all(r.status_code == 200 for r in [*same, other])
    assert sorted(calls) == sorted([context[:8], "Autre : "]), "the three identical requests were read once, the other one once"
    assert same[0].json()["answers"] == same[1].json()["answers"] == same[2].json()["answers"] and same[0].json()["answers"]


async def _asgi_post(app, path: str, body: dict, gone: asyncio.Event | None = None) -> tuple[int, dict[str, str]]:
    """POST ``body`` to ``app`` as a server would; the client hangs up once ``gone`` is set. The
    response's status (0 if none) and headers."""
    data = json.dumps(body).encode()
    sent, status, headers = False, 0, {}

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": data, "more_body": False}
        await (gone or asyncio.Event()).wait()
        return {"type": "http.disconnect"}

    async def send(message):
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http", "path": path,
             "raw_path": path.encode(), "root_path": "", "query_string": b"", "server": ("test", 80), "client": ("127.0.0.1", 1234),
             "headers": [(b"host", b"test"), (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]}
    await app(scope, receive, send)
    return status, headers


def test_an_extract_whose_client_left_ends_at_once_and_is_never_read(api_settings, service, monkeypatch):
    """QA_MODEL_THREADS=1, QA_LIMIT_CONCURRENCY=2: an /extract queued behind another whose client
    hangs up ends at once (a 499), gives its place back and is never read, as /ask; it waited for
    the model thread, holding its place, then read. /extract requests count towards the limit (a
    503 with Retry-After beyond it)."""
    calls: list[str] = []
    release = threading.Event()

    def fake_extract(question, context, max_answers=3, stop=None):
        calls.append(context)
        if context == "busy":
            release.wait(10)
        return []

    monkeypatch.setattr(service, "extract", fake_extract)
    app = create_app(api_settings.model_copy(update={"model_threads": 1, "limit_concurrency": 2}), service)

    def ask(context: str, gone: asyncio.Event | None = None) -> asyncio.Future:
        return asyncio.ensure_future(_asgi_post(app, "/extract", {"question": "Qui ?", "context": context}, gone))

    async def scenario():
        try:
            busy = ask("busy")
            await asyncio.sleep(0.3)  # it holds the one model thread
            gone = asyncio.Event()
            queued = ask("queued", gone)
            await asyncio.sleep(0.3)
            gone.set()
            status, _ = await asyncio.wait_for(queued, 5)
            assert status == 499 and not busy.done()
            third = ask("third")  # the queued one's place was given back
            await asyncio.sleep(0.3)
            status, headers = await _asgi_post(app, "/extract", {"question": "Qui ?", "context": "refused"})
            assert status == 503 and headers["retry-after"] == "1", "two /extract in progress: the limit is reached"
        finally:
            release.set()
        assert (await busy)[0] == 200 and (await third)[0] == 200

    asyncio.run(scenario())
    assert calls == ["busy", "third"], "the request whose client left while it was queued was never read"


def test_ask_stops_reading_when_told(service):
    from qa.reader import ReadStopped

    with pytest.raises(ReadStopped):
        service.ask(SHOWCASE_QUESTION, top_k=3, stop=lambda: True)


def test_concurrent_writes_and_reads(api_settings, service):
    app = create_app(api_settings, service)

    async def scenario():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            docs = [{"id": f"concurrent-{i}", "title": f"Doc {i}", "text": f"Le document numéro {i} parle de concurrence."} for i in range(3)]
            writes = [c.post("/documents", json={"documents": [d]}) for d in docs]
            reads = [c.post("/search", json={"query": "concurrence", "top_k": 3}) for _ in range(3)]
            results = await asyncio.gather(*writes, *reads)
            deletes = await asyncio.gather(*[c.delete(f"/documents/{d['id']}") for d in docs])
            return results, deletes

    results, deletes = asyncio.run(scenario())
    assert all(r.status_code == 200 for r in results), [r.text for r in results]
    assert all(r.status_code == 200 for r in deletes)


def test_importing_the_app_loads_no_model():
    code = "import sys, api.app; app = api.app.create_app(); print('torch' in sys.modules, app.state.service is None)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]


def test_an_app_in_a_fresh_process_logs_like_qa(tmp_path):
    """A worker of `qa serve --workers N` builds its app in a fresh process: our loggers at
    QA_LOG_LEVEL, third-party ones (faiss's loader: "Could not load library with AVX2 support")
    only warnings."""
    code = ("import logging, api.app; api.app.create_app(); logging.getLogger('faiss.loader').info('third-party noise'); "
            "logging.getLogger('index.store').info('our message'); logging.getLogger('trafilatura').warning('page noise'); "
            "from transformers.utils import logging as hf; print(hf.is_progress_bar_enabled())")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "QA_LOG_LEVEL": "INFO", "QA_DATA_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert "index.store: our message" in out.stderr and "noise" not in out.stderr
    assert out.stdout.split() == ["False"]  # no "Loading weights" bar from each worker


def test_start_up_says_a_read_only_index_folder_in_one_line_before_any_model_loads(tmp_path, base_settings, monkeypatch):
    """Under bare uvicorn, what `qa serve` checks before it starts uvicorn: a folder the index cannot
    be written in (a read-only mount, which root cannot get around either: the permission check is
    answered as such a mount answers it) is the line `qa serve` says, not a traceback after the models load."""
    from pathlib import Path

    from api.app import StartupProblem

    data = tmp_path / "ro"
    data.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if Path(path) == data and mode & os.W_OK else real_access(path, mode, **kw))
    settings = base_settings.model_copy(update={"data_dir": data, "embedder": "no-such-embedder"})  # no model is reached
    with pytest.raises(StartupProblem) as info, TestClient(create_app(settings)):
        pass
    assert str(info.value) == f"QA_DATA_DIR {data} is not writable: the index is written there, and SQLite writes its journal there even to read"


def test_a_bad_setting_ends_the_factory_in_one_line(monkeypatch, caplog):
    """uvicorn calls create_app() with no settings: a QA_* variable that cannot be used is logged as
    one line and ends the process with uvicorn's start-up failure status (it was a traceback); a
    caller's own Settings still get the SettingsError (test_a_read_key_without_a_write_key_is_refused)."""
    monkeypatch.setenv("QA_READ_KEY", "r")
    monkeypatch.delenv("QA_API_KEY", raising=False)
    with caplog.at_level(logging.ERROR, logger="api"), pytest.raises(SystemExit) as info:
        create_app()
    assert info.value.code == 3
    assert [r.getMessage() for r in caplog.records] == ["QA_READ_KEY is set but QA_API_KEY is not: anyone could add and delete documents while reads need a key; "
                                                        "set QA_API_KEY (the key for writes) too"]


def test_service_missing_answers_503_before_start_up(api_settings):
    c = TestClient(create_app(api_settings))  # no lifespan run: nothing loaded
    r = c.get("/health")
    assert r.status_code == 503 and r.json()["detail"] == "service not loaded yet"


def test_documents_with_a_trailing_slash(client):
    # the list, as "/health/" is "/health"; never a lookup of the empty id
    r = client.get("/documents/?limit=1", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"].endswith("/documents?limit=1")
    r = client.get("/documents/?limit=1")
    assert r.status_code == 200 and r.json()["limit"] == 1
    r = client.delete("/documents/")
    assert r.status_code == 404 and "no document id given" in r.json()["detail"]


def test_a_full_index_folder_is_a_507_and_nothing_is_written(client, service, caplog):
    """The operator's problem, said as such (not "internal error"), without the server's paths."""
    conn = service.store._wconn
    conn.execute("VACUUM")  # no free pages left by earlier tests' deletes: the database must grow to take the document
    before = conn.execute("PRAGMA max_page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")  # the database cannot grow
    try:
        with caplog.at_level(logging.ERROR, logger="api"):
            r = client.post("/documents", json={"documents": [{"id": "full-1", "title": "T", "text": "Un long texte sur les vendanges. " * 3000}]})
        assert r.status_code == 507, r.text
        assert "full: nothing was written" in r.json()["detail"] and "/" not in r.json()["detail"].split("(")[0]
        assert "database or disk is full" in caplog.text  # the operator's log has the cause
        r = client.post("/documents/files", files=[("files", ("full-2.txt", ("Un long texte sur les vendanges. " * 3000).encode()))])
        assert r.status_code == 507 and "full: nothing was written" in r.json()["detail"], r.text
    finally:
        conn.execute(f"PRAGMA max_page_count = {before}")
    assert client.get("/documents/full-1").status_code == client.get("/documents/full-2").status_code == 404
    r = client.post("/documents", json={"documents": [{"id": "full-1", "title": "T", "text": "Un texte court."}]})
    assert r.status_code == 200 and client.delete("/documents/full-1").status_code == 200


def test_a_damaged_index_is_a_503_and_one_line_of_log(client, api_settings, service, monkeypatch, caplog):
    """A page of the index found damaged while the server runs (a read or a write meets it): each
    request that needs it is a JSON 503 (the operator's to fix, as a folder that cannot be written),
    the log has one line naming the folder and what to do, and no traceback (it was a 500 "internal
    error" and a traceback per request); /metrics is still served, /health says it is not well."""
    import sqlite3

    def damaged(*args, **kwargs):
        exc = sqlite3.DatabaseError("database disk image is malformed")
        exc.sqlite_errorcode = sqlite3.SQLITE_CORRUPT
        raise exc

    for name in ("search", "ask", "list_documents", "get_document", "add_documents", "delete_document", "health"):
        monkeypatch.setattr(service, name, damaged)
    calls = [("get", "/health", None), ("get", "/documents", None), ("get", "/documents/x", None), ("get", "/search?q=Netflix", None),
             ("post", "/ask", {"question": "Qui dirige Netflix ?"}), ("post", "/documents", {"documents": [{"id": "note-1", "title": "Note", "text": "Le siège est à Lyon."}]}),
             ("delete", "/documents/x", None)]
    line = (f"the index at {api_settings.data_dir} is damaged (database disk image is malformed): "
            'restore an earlier backup (README, "Backing up"), or index the documents again in a new folder')
    for method, path, body in calls:
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="api"):
            r = client.request(method.upper(), path, json=body)
        written = "nothing was written; " if method != "get" and path != "/ask" else ""
        assert r.status_code == 503 and r.json() == {
            "detail": f"the server's index is damaged: {written}the operator must restore it (the server's log says what to do)",
            "request_id": r.headers["x-request-id"]}, (path, r.text)
        errors = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
        assert [rec.getMessage() for rec in errors] == [f"request_id={r.headers['x-request-id']} {method.upper()} {path.split('?')[0]}: {line}"], path
        assert not any(rec.exc_info for rec in caplog.records) and "Traceback" not in caplog.text, path
    r = client.post("/documents/files", files=[("files", ("note-1.txt", "Le siège est à Lyon.".encode()))])
    assert r.status_code == 503 and r.json()["detail"].startswith("the server's index is damaged: nothing was written; "), r.text
    with caplog.at_level(logging.ERROR, logger="api"):
        r = client.get("/metrics")
    assert r.status_code == 200 and 'status="503"' in r.text
    assert not any(rec.exc_info for rec in caplog.records)
    # any other error of the database is still an internal error, its traceback logged
    monkeypatch.setattr(service, "search", lambda *a, **k: (_ for _ in ()).throw(sqlite3.DatabaseError("something else")))
    r = client.get("/search?q=Netflix")
    assert r.status_code == 500 and r.json()["detail"] == "internal error"


def test_model_work_runs_in_a_bounded_number_of_threads():
    """QA_MODEL_THREADS: at most that many searches / reads / writes run at once (each thread that
    runs torch keeps its own OpenMP team and buffers); the others wait in the event loop. Writes
    wait for one another there too, so queued writes never take the threads searches need."""
    import asyncio
    import threading
    import time

    from api.concurrency import ModelThreads
    from qa.settings import Settings

    active = most = writing = most_writing = 0
    threads: set[int] = set()
    lock = threading.Lock()
    order: list[str] = []

    def work(kind: str, seconds: float) -> str:
        nonlocal active, most, writing, most_writing
        with lock:
            active += 1
            most = max(most, active)
            writing += kind == "write"
            most_writing = max(most_writing, writing)
            threads.add(threading.get_ident())
        time.sleep(seconds)
        with lock:
            active -= 1
            writing -= kind == "write"
            order.append(kind)
        return kind

    async def main() -> None:
        run = ModelThreads(2)
        assert await asyncio.gather(*(run(work, "read", 0.02) for _ in range(12))) == ["read"] * 12
        order.clear()
        writes = [asyncio.ensure_future(run.write(work, "write", 0.2)) for _ in range(3)]
        await asyncio.sleep(0.05)  # the first write runs, two wait for it
        assert await run(work, "read", 0.01) == "read"
        assert order == ["read"]  # served while the writes were queued, not after them
        await asyncio.gather(*writes)

    asyncio.run(main())
    assert most == 2 and len(threads) <= 2 and most_writing == 1
    assert Settings.model_fields["model_threads"].default == 4
