"""The question page in headless Chromium (Debian's /usr/bin/chromium, driven by playwright)."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from playwright.sync_api import expect

from api import schemas
from api.app import create_app
from api.routes import french_number
from index.schema import Document
from tests.api_support import CHROMIUM, CHROMIUM_ARGS, SHOWCASE_QUESTION, build_indexed_service, free_port

pytestmark = pytest.mark.slow

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); this test is required in CI", allow_module_level=True)

SCREENSHOT = Path("/tmp/page.png")
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def service(tmp_path_factory, base_settings):
    settings, svc = build_indexed_service(tmp_path_factory.mktemp("page") / "data", base_settings)
    yield settings.model_copy(update={"api_key": None, "read_key": None, "cors_origins": []}), svc
    svc.close()


@contextmanager
def serving(app):
    """``app`` served by uvicorn in a thread of this process; its URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the in-process server did not start")
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def base_url(service):
    settings, svc = service
    with serving(create_app(settings, svc)) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    ctx = browser.new_context(viewport={"width": 1100, "height": 1000}, locale="fr-FR")
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    pg.js_errors = errors
    yield pg
    ctx.close()


def ask(page, base_url: str, question: str) -> None:
    page.goto(base_url + "/")
    page.fill("#question", question)
    page.click("#ask-button")
    # done: answers shown, or the no-answer state
    # (no string predicates: the page's CSP forbids eval, which wait_for_function would need)
    expect(page.locator("#results")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#results")).not_to_have_attribute("aria-busy", "true", timeout=TIMEOUT_MS)


def test_answer_is_highlighted_and_cited(page, base_url, service, monkeypatch):
    _, svc = service
    # the page is under test, not the reader: accept any span so that an answer is always shown
    monkeypatch.setattr(svc.reader.calibration, "threshold", 0.0)
    ask(page, base_url, SHOWCASE_QUESTION)
    assert page.locator("#no-answer").is_hidden()
    answers = page.locator("#answers > li.answer")
    assert answers.count() >= 1
    first = answers.first
    marked = first.locator("mark").inner_text().strip()
    assert marked, "the answer is highlighted"
    norm = lambda t: " ".join(t.split())  # noqa: E731
    assert norm(first.locator(".answer-text").inner_text()) == norm(marked)

    api = httpx.post(base_url + "/ask", json={"question": SHOWCASE_QUESTION}, timeout=120).json()
    top = api["answers"][0]
    assert norm(top["text"]) == norm(marked)
    doc = httpx.get(f"{base_url}/documents/{top['document_id']}").json()
    assert top["text"] in doc["text"] and doc["text"][top["start"] : top["end"]] == top["text"]
    # the highlighted text is shown inside its context sentence
    context = first.locator(".answer-context").inner_text()
    assert norm(marked) in norm(context) and len(context) > len(marked)

    # citation: title (a link when the document has a URL), date, document id
    source = first.locator(".source")
    assert (top["title"] or top["document_id"]) in source.inner_text()
    assert top["document_id"] in source.inner_text()
    if top["url"]:
        link = source.locator("a.title")
        assert link.get_attribute("href") == top["url"]
        assert link.get_attribute("rel") == "noopener noreferrer"
    if top["published"]:
        assert source.locator("time").get_attribute("datetime") == top["published"]

    # the passages behind the answers, collapsed by default
    details = page.locator("#passages-box")
    assert details.is_visible() and details.get_attribute("open") is None
    page.click("#passages-summary")
    assert page.locator("#passages > li").count() == len(api["passages"])
    assert "q=" in page.url  # shareable link
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert not page.js_errors, page.js_errors


def test_unrelated_question_does_not_break_the_page(page, base_url):
    ask(page, base_url, "Quelle est la recette de la ratatouille niçoise ?")
    no_answer = page.locator("#no-answer")
    if no_answer.is_visible():
        assert "Aucune réponse trouvée" in no_answer.inner_text()
        assert page.locator("#answers > li").count() == 0
        assert page.locator("#passages-box").get_attribute("open") is not None  # passages unfolded
        page.screenshot(path="/tmp/page-no-answer.png", full_page=True)
    else:
        assert page.locator("#answers > li.answer").count() >= 1
    assert "Aucune réponse trouvée" in page.locator("#status").inner_text() or page.locator("#answers > li").count() >= 1
    assert not page.js_errors, page.js_errors


def test_forced_no_answer_state(page, base_url, service, monkeypatch):
    _, svc = service
    monkeypatch.setattr(svc.reader.calibration, "threshold", 1.01)
    ask(page, base_url, SHOWCASE_QUESTION)
    assert page.locator("#no-answer").is_visible()
    assert "Aucune réponse trouvée" in page.locator("#no-answer").inner_text()
    assert page.locator("#passages > li").count() >= 1
    page.screenshot(path="/tmp/page-no-answer.png", full_page=True)
    assert not page.js_errors, page.js_errors


def test_untrusted_text_is_escaped(page, base_url):
    """Titles, contexts and URLs from the index are shown as text, never as HTML."""
    evil = "<img src=x onerror=\"window.__pwned=1\"><b>gras</b>"
    context = "Avant " + evil + " après."
    fake = {
        "question": "q", "no_answer": False, "took_ms": 1.0,
        "answers": [{
            "text": "<b>gras</b>", "score": 0.9, "document_id": "doc<script>", "title": evil, "url": "javascript:window.__pwned=2",
            "published": "2017-10-27", "chunk_id": 1, "start": 110, "end": 121, "context": context,
            "context_start": 110 - context.index("<b>gras</b>"), "citations": [],
        }],
        "passages": [{"chunk_id": 1, "document_id": "doc<script>", "title": evil, "url": None, "published": None,
                      "text": "xxxxxxxxxx<b>gras</b> " + evil, "start": 0, "end": 60, "score": 1.0}],
    }
    page.route("**/ask", lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(fake)))
    ask(page, base_url, "Une question")
    assert page.evaluate("window.__pwned === undefined")
    assert page.locator("#results img").count() == 0 and page.locator("#results b").count() == 0
    assert page.locator("#answers mark").inner_text() == "<b>gras</b>"
    assert evil in page.locator("#answers .source").inner_text()
    assert page.locator("#answers a").count() == 0  # a javascript: URL is not made a link
    assert "27 octobre 2017" in page.locator("#answers time").inner_text()


def test_answers_found_in_several_documents_show_every_source(page, base_url):
    """A merged answer lists the other documents it was found in, each with its title, link and date."""
    cite = lambda doc, title, url, published, start: {  # noqa: E731
        "document_id": doc, "title": title, "url": url, "published": published, "chunk_id": 1, "start": start, "end": start + 22}
    fake = {
        "question": "q", "no_answer": False, "took_ms": 1.0,
        "answers": [{
            "text": "7 milliards de dollars", "score": 0.9, "document_id": "a", "title": "Article A", "url": "https://example.org/a",
            "published": "2018-01-02", "chunk_id": 1, "start": 5, "end": 27, "context": "Près 7 milliards de dollars.", "context_start": 0,
            "citations": [cite("a", "Article A", "https://example.org/a", "2018-01-02", 5),
                          cite("a", "Article A", "https://example.org/a", "2018-01-02", 300),  # same document again: once
                          cite("b", "Article B", "https://example.org/b", "2017-10-27", 40),
                          cite("c", None, None, None, 7)],
        }, {
            "text": "Paris", "score": 0.5, "document_id": "a", "title": "Article A", "url": None, "published": None,
            "chunk_id": 1, "start": 0, "end": 5, "context": "Paris", "context_start": 0,
            "citations": [cite("a", "Article A", None, None, 0)],
        }],
        "passages": [],
    }
    page.route("**/ask", lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(fake)))
    ask(page, base_url, "Une question")
    first, second = page.locator("#answers > li.answer").all()
    also = first.locator(".also-cited")
    assert "Également dans (2)" in also.inner_text()
    assert also.locator(".source").count() == 2
    b = also.locator(".source").nth(0)
    assert b.locator("a.title").get_attribute("href") == "https://example.org/b" and "Article B" in b.inner_text()
    assert b.locator("time").get_attribute("datetime") == "2017-10-27"
    assert "document c" in also.locator(".source").nth(1).inner_text()  # no title: its id
    assert second.locator(".also-cited").count() == 0  # found in one document only
    assert not page.js_errors, page.js_errors


def test_answers_after_emoji_are_highlighted(page, base_url):
    """The API's offsets count code points (Python), the page's strings UTF-16 units."""
    context = "🎬🍿 Netflix investit 😀 2 milliards 💶 d'euros en 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🎞️."
    answer = "2 milliards 💶 d'euros"
    start = 1000 + context.index(answer)  # Python indices: code points
    fake = {
        "question": "q", "no_answer": False, "took_ms": 1.0,
        "answers": [{"text": answer, "score": 0.9, "document_id": "a", "title": "A", "url": None, "published": None, "chunk_id": 1,
                     "start": start, "end": start + len(answer), "context": context, "context_start": 1000,
                     "citations": [{"document_id": "a", "title": "A", "url": None, "published": None, "chunk_id": 1, "start": start, "end": start + len(answer)}]}],
        "passages": [],
    }
    page.route("**/ask", lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(fake)))
    ask(page, base_url, "Une question")
    assert page.locator("#answers mark").inner_text() == answer
    assert page.locator("#answers .answer-context").inner_text() == context
    assert not page.js_errors, page.js_errors


def test_long_contexts_are_never_cut_inside_an_emoji(page, base_url):
    """A context over 400 UTF-16 units is cut around the answer; a cut never splits an emoji's two units."""
    context = "🎬" * 300 + " réponse " + "🍿" * 300  # the cuts fall on the second unit of an emoji
    start = context.index("réponse")
    fake = {
        "question": "q", "no_answer": False, "took_ms": 1.0,
        "answers": [{"text": "réponse", "score": 0.9, "document_id": "a", "title": "A", "url": None, "published": None, "chunk_id": 1,
                     "start": start, "end": start + 7, "context": context, "context_start": 0,
                     "citations": [{"document_id": "a", "title": "A", "url": None, "published": None, "chunk_id": 1, "start": start, "end": start + 7}]}],
        "passages": [],
    }
    page.route("**/ask", lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(fake)))
    ask(page, base_url, "Une question")
    assert page.locator("#answers mark").inner_text() == "réponse"
    shown = page.locator("#answers .answer-context")
    lone = shown.evaluate("el => /[\\uD800-\\uDBFF](?![\\uDC00-\\uDFFF])|(?<![\\uD800-\\uDBFF])[\\uDC00-\\uDFFF]/.test(el.textContent)")
    assert lone is False
    assert shown.evaluate("el => el.textContent.length") < len(context.encode("utf-16-le")) // 2  # it was cut
    assert not page.js_errors, page.js_errors


def test_http_errors_are_shown_in_french(page, base_url):
    page.route("**/ask", lambda route: route.fulfill(status=500, content_type="application/json", body=json.dumps({"detail": "internal error", "request_id": "abc123"})))
    page.goto(base_url + "/")
    page.fill("#question", "Une question")
    page.click("#ask-button")
    expect(page.locator("#error")).to_contain_text("abc123", timeout=10_000)
    assert "Erreur interne" in page.locator("#error").inner_text()
    assert page.locator("#results").is_hidden()


def test_key_prompt_on_401(page, base_url):
    page.route("**/ask", lambda route: route.fulfill(status=401, content_type="application/json", body=json.dumps({"detail": "missing API key"})))
    page.goto(base_url + "/")
    assert page.locator("#key-row").is_hidden()
    page.fill("#question", "Une question")
    page.click("#ask-button")
    expect(page.locator("#key-row")).to_be_visible(timeout=10_000)
    assert "clé" in page.locator("#error").inner_text()


def test_a_wrong_key_is_told_apart_and_the_key_field_gets_the_focus(page, base_url):
    page.route("**/ask", lambda route: route.fulfill(status=403, content_type="application/json", body=json.dumps({"detail": "invalid API key"})))
    page.goto(base_url + "/")
    page.fill("#question", "Une question")
    page.click("#ask-button")
    expect(page.locator("#key-row")).to_be_visible(timeout=10_000)
    assert "n’est pas valide" in page.locator("#error").inner_text()
    expect(page.locator("#api-key")).to_be_focused()


def test_a_busy_service_is_not_called_an_internal_error(page, base_url):
    busy = {"detail": "busy: 1 requests in progress, the most this server takes (QA_LIMIT_CONCURRENCY); retry shortly"}
    page.route("**/ask", lambda route: route.fulfill(status=503, content_type="application/json", headers={"Retry-After": "1"}, body=json.dumps(busy)))
    page.goto(base_url + "/")
    page.fill("#question", "Une question")
    page.click("#ask-button")
    expect(page.locator("#error")).to_contain_text("occupé", timeout=10_000)
    assert "Erreur interne" not in page.locator("#error").inner_text()


def test_a_damaged_index_is_for_its_administrator_to_restore_not_to_retry(page, base_url, service, monkeypatch):
    """The server's 503 for a damaged index (its own words, from its handler) was shown as any 503:
    "momentanément indisponible ... Réessayez dans quelques instants", when asking again fails alike
    until the administrator restores the index. The page says so, with no advice to retry."""
    import sqlite3

    _, svc = service

    def damaged(*args, **kwargs):
        exc = sqlite3.DatabaseError("database disk image is malformed")
        exc.sqlite_errorcode = sqlite3.SQLITE_CORRUPT
        raise exc

    monkeypatch.setattr(svc, "ask", damaged)
    page.goto(base_url + "/")
    with page.expect_response("**/ask") as reply:
        _submit(page, "Où Netflix ouvre-t-il un bureau ?")
    assert reply.value.status == 503 and reply.value.json()["detail"].startswith("the server's index is damaged"), reply.value.text()
    expect(page.locator("#error")).to_have_text("L’index du service est endommagé (erreur 503) : signalez-le à son administrateur, qui doit le restaurer.",
                                                timeout=10_000)
    assert "essay" not in page.locator("#error").inner_text()
    assert page.input_value("#question") == "Où Netflix ouvre-t-il un bureau ?"
    assert not [e for e in page.js_errors if "Failed to load resource" not in e], page.js_errors


def test_an_index_re_embedded_elsewhere_and_a_damaged_one_in_the_document_list_are_said(page, base_url, service, monkeypatch):
    """The 503 of an index re-indexed with another model by another process ("the server must be
    restarted") was shown as a moment's unavailability to retry, and a damaged index made the
    document list say only "erreur 503": each now says what it is, from the real handlers' bodies."""
    import sqlite3

    from index.storage import ReindexNeeded

    _, svc = service

    def re_embedded(*args, **kwargs):
        raise ReindexNeeded("the index was built with another embedding model")

    def damaged(*args, **kwargs):
        exc = sqlite3.DatabaseError("database disk image is malformed")
        exc.sqlite_errorcode = sqlite3.SQLITE_CORRUPT
        raise exc

    monkeypatch.setattr(svc, "ask", re_embedded)
    monkeypatch.setattr(svc, "list_documents", damaged)
    page.goto(base_url + "/")
    with page.expect_response("**/ask") as reply:
        _submit(page, "Où Netflix ouvre-t-il un bureau ?")
    assert reply.value.status == 503 and "must be restarted" in reply.value.json()["detail"], reply.value.text()
    expect(page.locator("#error")).to_have_text(
        "Le service doit être redémarré par son administrateur (erreur 503) : son index a été reconstruit avec un autre modèle.", timeout=10_000)
    page.click("#filters-summary")
    page.click("#document-id")
    page.keyboard.type("canada")
    expect(page.locator("#documents-note")).to_have_text(
        "La liste des documents n’a pas pu être chargée (l’index du service est endommagé : signalez-le à son administrateur).", timeout=10_000)
    assert not [e for e in page.js_errors if "Failed to load resource" not in e], page.js_errors


def test_back_to_the_page_without_a_question_clears_the_answers(page, base_url):
    ask(page, base_url, SHOWCASE_QUESTION)
    page.go_back()  # to "/" without ?q=
    expect(page.locator("#results")).to_be_hidden(timeout=10_000)
    assert page.input_value("#question") == "" and page.locator("#status").inner_text() == "" and page.locator("#error").inner_text() == ""


def test_a_double_click_asks_once_and_old_answers_go_at_once(page, base_url):
    ask(page, base_url, SHOWCASE_QUESTION)
    asked: list[str] = []
    page.on("request", lambda req: asked.append(req.url) if req.url.endswith("/ask") else None)
    page.fill("#question", "Où Netflix va-t-il ouvrir un bureau ?")
    page.click("#ask-button")
    assert page.locator("#results").is_hidden()  # the previous answers are not shown under the new question
    page.click("#ask-button")
    expect(page.locator("#results")).to_have_attribute("data-question", "Où Netflix va-t-il ouvrir un bureau ?", timeout=TIMEOUT_MS)
    assert len(asked) == 1, asked


def test_cut_passages_say_so_and_an_empty_index_is_named(page, base_url):
    passage = {"chunk_id": 1, "document_id": "d", "title": "T", "url": None, "published": None, "text": "installée dans la banlieue de", "start": 5, "end": 34, "score": 0.5}
    reply = {"question": "Q", "answers": [], "no_answer": True, "passages": [passage], "took_ms": 1.0}
    page.route("**/ask", lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(reply)))
    page.goto(base_url + "/")
    page.fill("#question", "Une question")
    page.click("#ask-button")
    expect(page.locator(".passage-text")).to_have_text("… installée dans la banlieue de …", timeout=10_000)
    assert "passages les plus proches" in page.locator("#no-answer").inner_text()
    page.unroute("**/ask")
    page.route("**/ask", lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps({**reply, "passages": []})))
    page.fill("#question", "Une autre question")
    page.click("#ask-button")
    expect(page.locator("#no-answer")).to_contain_text("l’index est peut-être vide", timeout=10_000)


def test_the_length_limit_counts_an_emoji_once(page, base_url):
    page.goto(base_url + "/")
    asked: list[str] = []
    page.on("request", lambda req: asked.append(req.url) if req.url.endswith("/ask") else None)
    page.fill("#question", "Qui dirige Zorglub ? " + "🎉" * 490)  # 511 characters for the API, 1,001 UTF-16 units
    page.press("#question", "Enter")
    expect(page.locator("#results")).to_be_visible(timeout=TIMEOUT_MS)
    assert asked and "trop longue" not in page.locator("#error").inner_text()


def test_a_newer_question_replaces_the_one_being_answered(page, base_url):
    """Asking again while an answer is on its way asks the new question; the older answer never
    shows under it."""
    first, second = SHOWCASE_QUESTION, "Où Netflix va-t-il ouvrir un bureau ?"
    page.goto(base_url + "/")
    page.fill("#question", first)
    page.press("#question", "Enter")
    page.fill("#question", second)
    page.press("#question", "Enter")
    expect(page.locator("#results")).to_have_attribute("data-question", second, timeout=TIMEOUT_MS)
    expect(page.locator("#results")).not_to_have_attribute("aria-busy", "true", timeout=TIMEOUT_MS)
    page.wait_for_timeout(3000)  # the first request, aborted, must not land later
    assert page.locator("#results").get_attribute("data-question") == second
    assert page.input_value("#question") == second and "Paris" in page.locator("#answers").inner_text()
    assert not page.js_errors, page.js_errors


def test_an_error_clears_the_previous_answers(page, base_url):
    ask(page, base_url, SHOWCASE_QUESTION)
    page.route("**/ask", lambda route: route.fulfill(status=500, content_type="application/json", body=json.dumps({"detail": "internal error", "request_id": "r1"})))
    page.fill("#question", "Une autre question")
    page.press("#question", "Enter")
    expect(page.locator("#error")).to_contain_text("Erreur interne", timeout=10_000)
    assert page.locator("#results").is_hidden()


def test_too_long_or_word_less_questions_are_explained(page, base_url):
    page.goto(base_url + "/")
    asked: list[str] = []
    page.on("request", lambda req: asked.append(req.url) if req.url.endswith("/ask") else None)
    page.fill("#question", "Netflix " * 150)  # 1,199 characters: refused, not cut to 1,000 and sent
    page.press("#question", "Enter")
    expect(page.locator("#error")).to_contain_text("trop longue : 1", timeout=10_000)
    assert asked == [] and "1\u202f000 caractères au plus" in page.locator("#question-hint").inner_text()
    page.fill("#question", "???")
    page.press("#question", "Enter")
    expect(page.locator("#error")).to_contain_text("au moins une lettre ou un chiffre", timeout=TIMEOUT_MS)


def test_the_page_states_and_checks_the_servers_length_limit(page, base_url):
    """The limit on the page is the one the API applies (OpenAPI's maxLength), in French ("1 000"),
    in the hint, the page's own check and the words for a 422."""
    limit = httpx.get(base_url + "/openapi.json").json()["components"]["schemas"]["AskRequest"]["properties"]["question"]["maxLength"]
    page.goto(base_url + "/")
    shown = page.evaluate(f"({limit}).toLocaleString('fr-FR')")
    assert shown == french_number(limit)  # the server writes numbers as the page's script does
    expect(page.locator("#question-hint")).to_have_text(shown + " caractères au plus.")
    _submit(page, "x" * (limit + 1))
    expect(page.locator("#error")).to_have_text(f"La question est trop longue : {shown} caractères au plus ({french_number(limit + 1)} saisis).")


@pytest.mark.parametrize("limit", [40, 1500])
def test_the_page_follows_another_length_limit(page, base_url, monkeypatch, limit):
    """Served by an API whose limit is another (the constant its validation reads, patched in this
    in-process server), the page says that one and lets through what the API takes."""
    monkeypatch.setattr(schemas, "MAX_QUESTION_CHARS", limit)
    shown = french_number(limit)
    page.goto(base_url + "/")
    expect(page.locator("#question-hint")).to_have_text(shown + " caractères au plus.")
    asked = _asked(page)
    _reply(page, 200, SAMPLE)
    longest = "Où " + "x" * (limit - 5) + " ?"
    assert httpx.post(base_url + "/search", json={"query": longest, "top_k": 1}, timeout=60).status_code == 200  # the API takes it
    _submit(page, longest)
    expect(page.locator("#answers > li")).to_have_count(2, timeout=10_000)
    assert [b["question"] for b in asked] == [longest]
    _submit(page, longest + "x")
    expect(page.locator("#error")).to_have_text(f"La question est trop longue : {shown} caractères au plus ({french_number(limit + 1)} saisis).")
    assert len(asked) == 1
    assert httpx.post(base_url + "/search", json={"query": longest + "x"}).status_code == 422  # as the API refuses it
    _reply(page, 422, {"detail": [{"type": "value_error", "loc": ["body", "question"], "msg": f"Value error, question must be at most {limit} characters"}]})
    _submit(page, "Une question")
    expect(page.locator("#error")).to_have_text(f"Question invalide : elle doit contenir entre 1 et {shown} caractères.", timeout=10_000)


def test_back_returns_to_the_previous_question(page, base_url):
    first, second = SHOWCASE_QUESTION, "Où Netflix va-t-il ouvrir un bureau ?"
    ask(page, base_url, first)
    page.fill("#question", second)
    page.press("#question", "Enter")
    expect(page.locator("#results")).to_have_attribute("data-question", second, timeout=TIMEOUT_MS)
    page.go_back()
    expect(page.locator("#results")).to_have_attribute("data-question", first, timeout=TIMEOUT_MS)
    assert page.input_value("#question") == first


def test_long_words_wrap_on_a_phone(browser, base_url):
    """A long id, title or URL wraps: the page never scrolls sideways on a 375-pixel screen."""
    long_id = "x" * 120
    fake = {
        "question": "q", "no_answer": False, "took_ms": 1.0,
        "answers": [{"text": "Zorglub" * 20, "score": 0.9, "document_id": long_id, "title": "T" * 150, "url": "https://example.org/" + "a" * 200,
                     "published": None, "chunk_id": 1, "start": 0, "end": 140, "context": "Zorglub" * 20, "context_start": 0, "citations": []}],
        "passages": [{"chunk_id": 1, "document_id": long_id, "title": "T" * 150, "url": None, "published": None, "text": "Zorglub" * 40, "start": 0, "end": 280, "score": 1.0}],
    }
    ctx = browser.new_context(viewport={"width": 375, "height": 800}, locale="fr-FR")
    page = ctx.new_page()
    page.route("**/ask", lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(fake)))
    page.goto(base_url + "/")
    page.fill("#question", "Une question")
    page.press("#question", "Enter")
    expect(page.locator("#answers > li")).to_have_count(1, timeout=10_000)
    page.click("#passages-summary")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    ctx.close()


def test_interactive_docs_work_without_internet(page, base_url, service):
    """/docs and /redoc load their scripts from this server (FastAPI's defaults use a CDN that an
    offline machine cannot reach), and the operations render. (ReDoc's "powered by" logo still
    points to its site: an image, nothing breaks without it.)"""
    outside: list[str] = []
    needed = {"document", "script", "stylesheet", "fetch", "xhr"}
    page.on("request", lambda req: outside.append(req.url) if req.resource_type in needed and not req.url.startswith((base_url, "blob:")) else None)
    page.goto(base_url + "/docs")
    expect(page.locator(".opblock-summary-path", has_text="/ask").first).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator(".opblock-summary-path", has_text="/documents/{doc_id}").first).to_be_visible()
    # the upload (multipart/form-data): tried out, its operation offers a file field (it was a text
    # box of random characters) and sends the file chosen
    upload = page.locator(".opblock-post", has=page.locator(".opblock-summary-path", has_text="/documents/files"))
    upload.locator(".opblock-summary").click()
    upload.get_by_role("button", name="Try it out").click()
    chooser = upload.locator('input[type="file"]').first
    expect(chooser).to_be_visible(timeout=TIMEOUT_MS)
    chooser.set_input_files(files=[{"name": "essai-docs.txt", "mimeType": "text/plain", "buffer": "Un texte envoyé depuis /docs.".encode()}])
    upload.get_by_role("button", name="Execute").click()
    try:
        expect(upload.locator(".live-responses-table tr.response .response-col_status").first).to_have_text("200", timeout=TIMEOUT_MS)
        assert service[1].get_document("essai-docs").metadata == {"source_file": "essai-docs.txt"}
    finally:
        service[1].delete_document("essai-docs")
    page.goto(base_url + "/redoc")
    expect(page.get_by_text("/documents/{doc_id}").first).to_be_attached(timeout=TIMEOUT_MS)
    assert outside == [], outside


# --- accessibility: what keyboard and screen-reader users meet ---------------------------------

PAGE_TITLE = "Questions sur l’actualité — qa-search"


def _cite(doc: str, title: str | None, url: str | None, published: str | None, start: int) -> dict:
    return {"document_id": doc, "title": title, "url": url, "published": published, "chunk_id": 1, "start": start, "end": start + 22}


# two answers (one found in two documents, with links and dates) and two passages: every element the page draws
SAMPLE = {
    "question": "q", "no_answer": False, "took_ms": 1.0,
    "answers": [{
        "text": "7 milliards de dollars", "score": 0.9, "document_id": "a", "title": "Article A", "url": "https://example.org/a",
        "published": "2018-01-02", "chunk_id": 1, "start": 5, "end": 27, "context": "Près 7 milliards de dollars.", "context_start": 0,
        "citations": [_cite("a", "Article A", "https://example.org/a", "2018-01-02", 5), _cite("b", "Article B", "https://example.org/b", "2017-10-27", 40)],
    }, {
        "text": "Paris", "score": 0.5, "document_id": "c", "title": None, "url": None, "published": None,
        "chunk_id": 2, "start": 0, "end": 5, "context": "Paris accueille le bureau.", "context_start": 0, "citations": [],
    }],
    "passages": [
        {"chunk_id": 1, "document_id": "a", "title": "Article A", "url": "https://example.org/a", "published": "2018-01-02",
         "text": "Près 7 milliards de dollars.", "start": 0, "end": 28, "score": 1.0},
        {"chunk_id": 2, "document_id": "c", "title": None, "url": None, "published": None,
         "text": "Paris accueille le bureau.", "start": 0, "end": 26, "score": 0.5},
    ],
}


def _reply(page, status: int, body) -> None:
    page.unroute("**/ask")
    page.route("**/ask", lambda route: route.fulfill(status=status, content_type="application/json", body=json.dumps(body)))


def _submit(page, question: str) -> None:
    page.fill("#question", question)
    page.press("#question", "Enter")


def _axe_violations(page) -> list[str]:
    """axe-core's violations on the page as it is now, one line each: impact, rule, help, elements.
    axe-core comes bundled in the axe-playwright-python test dependency (no network, no npm)."""
    from importlib.resources import files

    # the file itself: the package's own modules read it in the locale's encoding
    axe_script = files("axe_playwright_python").joinpath("axe.min.js").read_text(encoding="utf-8")
    page.evaluate(axe_script)
    return page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations.map("
        "v => v.impact + ' ' + v.id + ': ' + v.help + ' [' + v.nodes.map(n => n.target.join(' ')).join(', ') + ']')")


def test_axe_finds_no_violation_in_any_state(page, base_url):
    """axe-core (WCAG 2.x A/AA and best practices): the empty page, answers with their sources and
    passages unfolded, the no-answer state, a refused question, the key prompt."""
    found: dict[str, list[str]] = {}
    page.goto(base_url + "/")
    found["empty"] = _axe_violations(page)
    _reply(page, 200, SAMPLE)
    _submit(page, "Une question")
    expect(page.locator("#answers > li")).to_have_count(2, timeout=10_000)
    page.click("#passages-summary")
    found["answers"] = _axe_violations(page)
    _reply(page, 200, {**SAMPLE, "answers": [], "no_answer": True})
    _submit(page, "Une autre question")
    expect(page.locator("#no-answer")).to_be_visible(timeout=10_000)
    found["no answer"] = _axe_violations(page)
    _submit(page, "   ")
    expect(page.locator("#error")).to_have_text("Saisissez une question.")
    found["refused"] = _axe_violations(page)
    _reply(page, 401, {"detail": "missing API key"})
    _submit(page, "Une question")
    expect(page.locator("#key-row")).to_be_visible(timeout=10_000)
    found["key"] = _axe_violations(page)
    assert not any(found.values()), found


def test_the_question_field_has_a_visible_label(page, base_url):
    """The placeholder is no label: it is cut on a phone and gone as soon as one types."""
    page.goto(base_url + "/")
    label = page.locator("label[for=question]")
    assert label.inner_text() == "Votre question"
    box = label.bounding_box()
    assert box and box["width"] > 50 and box["height"] > 10, box  # not the 1-pixel visually-hidden box
    expect(page.get_by_role("searchbox", name="Votre question")).to_be_visible()


def test_answers_are_headings_under_the_answers_heading(page, base_url):
    """Screen-reader users move from answer to answer with the heading key; levels never skip."""
    page.goto(base_url + "/")
    _reply(page, 200, SAMPLE)
    _submit(page, "Une question")
    expect(page.locator("#answers > li")).to_have_count(2, timeout=10_000)
    answers = page.get_by_role("heading", level=3)
    assert answers.all_inner_texts() == ["7 milliards de dollars", "Paris"]
    levels = page.locator("h1, h2, h3, h4, h5, h6").evaluate_all("els => els.map(e => Number(e.tagName[1]))")
    assert levels[0] == 1 and all(b - a <= 1 for a, b in zip(levels, levels[1:])), levels


def test_source_links_say_they_open_a_new_tab(page, base_url):
    page.goto(base_url + "/")
    _reply(page, 200, SAMPLE)
    _submit(page, "Une question")
    expect(page.locator("#answers > li")).to_have_count(2, timeout=10_000)
    links = page.locator("#results a[target=_blank]")
    assert links.count() == 3  # answer A, "also in" B, passage A
    expect(page.get_by_role("link", name="Article B (nouvel onglet)")).to_have_attribute("href", "https://example.org/b")
    assert all(a.evaluate("el => el.textContent").endswith(" (nouvel onglet)") for a in links.all())
    hint = page.locator("#answers a .visually-hidden").first  # in the link's name, not on screen
    assert hint.bounding_box()["width"] <= 1


def test_a_refused_question_marks_the_field_invalid(page, base_url):
    """The field itself says it is wrong and is described by the message, for the check made here
    and for the API's 422; the next question asked clears it. The alert announces the message, so
    focus stays where it is (moved to the field, the message would be read twice: alert and description)."""
    page.goto(base_url + "/")
    field = page.locator("#question")
    assert field.get_attribute("aria-invalid") is None
    _submit(page, "   ")
    expect(field).to_have_attribute("aria-invalid", "true")
    assert field.get_attribute("aria-describedby").split() == ["error", "question-hint"]
    expect(field).to_have_accessible_description("Saisissez une question. 1\u202f000 caractères au plus.")
    _reply(page, 200, SAMPLE)
    _submit(page, "Une question")
    expect(page.locator("#answers > li")).to_have_count(2, timeout=10_000)
    assert field.get_attribute("aria-invalid") is None and field.get_attribute("aria-describedby") == "question-hint"
    _reply(page, 422, {"detail": [{"type": "value_error", "loc": ["body", "question"], "msg": "Value error, question must contain at least one letter or digit"}]})
    page.fill("#question", "???")
    page.click("#ask-button")
    expect(page.locator("#error")).to_contain_text("au moins une lettre ou un chiffre", timeout=10_000)
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#ask-button")).to_be_focused()  # not moved onto the field the alert describes


def test_the_page_title_names_the_question(page, base_url):
    """Each question is a history entry: its title tells them apart in the history menu, in tabs and
    to screen readers, which read the title first."""
    page.goto(base_url + "/")
    assert page.title() == PAGE_TITLE
    _reply(page, 200, SAMPLE)
    _submit(page, "Où Netflix ouvre-t-il un bureau ?")
    expect(page).to_have_title("Où Netflix ouvre-t-il un bureau ? — " + PAGE_TITLE, timeout=10_000)
    page.go_back()
    expect(page).to_have_title(PAGE_TITLE, timeout=10_000)
    page.go_forward()
    expect(page).to_have_title("Où Netflix ouvre-t-il un bureau ? — " + PAGE_TITLE, timeout=10_000)


def test_the_title_and_subtitle_are_settings_shown_as_text(page, service):
    """QA_PAGE_TITLE and QA_PAGE_SUBTITLE name another collection than news articles; whatever they
    hold is shown as written, never read as markup: no script runs, no attribute is broken out of."""
    settings, svc = service
    title = 'Base « RH » <script>window.pwned = 1</script> "x" \'y\' & {{max_question_chars}}'
    subtitle = '<img src=x onerror="window.pwned = 2"> Les notes internes d\'Acme, "à jour".'
    custom = settings.model_copy(update={"page_title": title, "page_subtitle": subtitle})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    with serving(create_app(custom, svc)) as url:
        raw = httpx.get(url + "/").text
        page.goto(url + "/")
        expect(page.locator("h1")).to_have_text(title)
        expect(page.locator("header .subtitle")).to_have_text(subtitle)
        assert page.title() == title + " — qa-search"
        assert page.locator("header script, header img, head script:not([src])").count() == 0
        assert page.evaluate("window.pwned === undefined") and dialogs == [] and page.js_errors == []
        # the page works as ever under its own name: a question's title keeps it
        _reply(page, 200, SAMPLE)
        _submit(page, "Où Netflix ouvre-t-il un bureau ?")
        expect(page).to_have_title("Où Netflix ouvre-t-il un bureau ? — " + title + " — qa-search", timeout=10_000)
    assert "<script>window" not in raw and "&lt;script&gt;" in raw and "&quot;x&quot; &#x27;y&#x27; &amp;" in raw
    assert "{{max_question_chars}}" in raw  # filled in once: a title is never a template
    # nothing else on the page, nor in what its script writes, speaks of "articles" for another collection
    js = (Path(__file__).resolve().parents[1] / "api" / "static" / "app.js").read_text(encoding="utf-8")
    assert "articles" not in raw.replace(subtitle, "") and "articles" not in js


def test_the_default_title_and_subtitle_are_the_news_ones(page, base_url):
    page.goto(base_url + "/")
    expect(page.locator("h1")).to_have_text("Questions sur l’actualité")
    expect(page.locator("header .subtitle")).to_have_text("Posez une question : la réponse est extraite des articles indexés, avec sa source.")
    assert page.title() == PAGE_TITLE


@pytest.mark.parametrize("status, detail, expected", [
    (408, "Body not received within 30 seconds (QA_BODY_TIMEOUT)", "pas parvenue au service à temps"),
    (429, "Too Many Requests", "Trop de questions en peu de temps"),
    (418, "I'm a teapot", "Le service a refusé la question (erreur 418 : I'm a teapot)."),
])
def test_other_http_errors_are_told_in_french(page, base_url, status, detail, expected):
    page.goto(base_url + "/")
    _reply(page, status, {"detail": detail})
    _submit(page, "Une question")
    expect(page.locator("#error")).to_contain_text(expected, timeout=10_000)
    if status in (408, 429):
        assert detail not in page.locator("#error").inner_text()
    assert page.locator("#status").inner_text() == ""  # the error is in the alert alone


def test_an_unreachable_service_is_told_in_french(page, base_url):
    page.goto(base_url + "/")
    page.route("**/ask", lambda route: route.abort("connectionrefused"))
    _submit(page, "Une question")
    expect(page.locator("#error")).to_have_text("Le service est injoignable. Vérifiez votre connexion et réessayez.", timeout=10_000)
    assert page.locator("#results").is_hidden()


def test_the_button_keeps_a_border_in_forced_colors(browser, base_url):
    """Windows high-contrast mode drops background colours: a border-less button would read as bare text."""
    ctx = browser.new_context(forced_colors="active")
    try:
        page = ctx.new_page()
        page.goto(base_url + "/")
        style, width = page.locator("#ask-button").evaluate("b => [getComputedStyle(b).borderTopStyle, getComputedStyle(b).borderTopWidth]")
        assert style != "none" and float(width.rstrip("px")) >= 1, (style, width)
    finally:
        ctx.close()


def test_keyboard_alone_reaches_everything_with_a_visible_focus(page, base_url):
    """Tab from the top: the question, the button, the filters (collapsed), each source link, the
    passages (opened with Enter), the footer; every stop shows its focus. Answers are announced by
    the polite status."""
    page.goto(base_url + "/")
    _reply(page, 200, SAMPLE)
    focused = "() => { const e = document.activeElement; const s = getComputedStyle(e); return [e.id || e.textContent.trim(), e.matches(':focus-visible') && s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0]; }"
    page.keyboard.press("Tab")
    assert page.evaluate(focused) == ["question", True]
    page.keyboard.type("Une question")
    page.keyboard.press("Enter")
    expect(page.locator("#answers > li")).to_have_count(2, timeout=10_000)
    expect(page.locator("#status")).to_have_text("2 réponses")
    assert page.locator("#status").get_attribute("role") == "status" and page.locator("#status").get_attribute("aria-live") == "polite"
    stops = []
    for _ in range(12):
        page.keyboard.press("Tab")
        stop = page.evaluate(focused)
        stops.append(stop)
        if stop[0] == "passages-summary" and page.locator("#passages-box").get_attribute("open") is None:
            page.keyboard.press("Enter")  # unfold: the passages' links come next
        if stop[0] == "État du service (données techniques)":
            break
    names = [s[0] for s in stops]
    assert names == ["ask-button", "filters-summary", "Article A (nouvel onglet)", "Article B (nouvel onglet)", "passages-summary",
                     "Article A (nouvel onglet)", "Documentation de l’API (en anglais)", "État du service (données techniques)"], names
    assert all(visible for _, visible in stops), stops


# --- errors: each class told apart, announced once, the question kept ----------------------------

HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"


@pytest.mark.parametrize("status, headers, body, expected", [
    # a proxy's own error pages are HTML, not the API's JSON
    (502, {}, HTML_502, "Le service est momentanément indisponible (erreur 502). Réessayez dans quelques instants."),
    (504, {}, HTML_502.replace("502 Bad Gateway", "504 Gateway Time-out"), "Le service a mis trop de temps à répondre (erreur 504). Réessayez dans un moment."),
    (503, {}, json.dumps({"detail": "service not loaded yet"}), "Le service est en cours de démarrage (erreur 503). Réessayez dans un instant."),
    (503, {"Retry-After": "2"}, json.dumps({"detail": "busy: 4 requests in progress, the most this server takes (QA_LIMIT_CONCURRENCY); retry shortly"}),
     "Le service est occupé par d’autres questions (erreur 503). Réessayez dans 2 secondes."),
    (429, {"Retry-After": "30"}, json.dumps({"detail": "Too Many Requests"}), "Trop de questions en peu de temps (erreur 429). Patientez, puis réessayez dans 30 secondes."),
    (429, {}, "Too Many Requests", "Trop de questions en peu de temps (erreur 429). Patientez, puis réessayez dans un instant."),
    (400, {}, json.dumps({"detail": "body is not valid UTF-8"}), "Le service a refusé la question (erreur 400 : body is not valid UTF-8)."),
])
def test_each_error_class_has_its_own_message_and_the_question_stays(page, base_url, status, headers, body, expected):
    """A proxy's 502/504 is no "internal error"; each class says what happened and what to do, in
    the alert; the question stays in its field and in the link, and asking again works."""
    page.goto(base_url + "/")
    page.route("**/ask", lambda route: route.fulfill(status=status, headers=headers, content_type="text/html" if body.startswith("<") else "application/json", body=body))
    _submit(page, "Où Netflix ouvre-t-il un bureau ?")
    expect(page.locator("#error")).to_have_text(expected, timeout=10_000)
    assert "Erreur interne" not in page.locator("#error").inner_text()
    assert page.locator("#status").inner_text() == "" and page.locator("#results").is_hidden()
    assert page.input_value("#question") == "Où Netflix ouvre-t-il un bureau ?" and "q=O%C3%B9+Netflix" in page.url
    _reply(page, 200, SAMPLE)
    page.click("#ask-button")  # asking again: the same question, answered this time
    expect(page.locator("#answers > li")).to_have_count(2, timeout=10_000)
    assert page.locator("#error").inner_text() == "" and page.locator("#status").inner_text() == "2 réponses"
    assert not [e for e in page.js_errors if "Failed to load resource" not in e], page.js_errors


def test_a_lost_connection_is_told_apart_from_an_unreachable_service(page, base_url):
    page.goto(base_url + "/")
    page.context.set_offline(True)
    _submit(page, "Une question")
    expect(page.locator("#error")).to_have_text("Connexion perdue : cet appareil est hors ligne. Rétablissez la connexion, puis réessayez.", timeout=10_000)
    assert page.input_value("#question") == "Une question"
    page.context.set_offline(False)
    page.route("**/ask", lambda route: route.abort("connectionreset"))  # online, but the service does not answer
    page.click("#ask-button")
    expect(page.locator("#error")).to_have_text("Le service est injoignable. Vérifiez votre connexion et réessayez.", timeout=10_000)


def test_a_refused_filter_is_named_with_the_services_own_words(page, base_url):
    """A 422 on a filter names it as the page does, opens the filters, marks the field; the API's
    English message is marked as English for screen readers."""
    page.goto(base_url + "/")
    _reply(page, 422, {"detail": [{"type": "value_error", "loc": ["body", "filters", "source"], "msg": "Value error, source must be a domain name such as numerama.com (or a URL on it)"}]})
    _submit(page, "Une question")
    expect(page.locator("#error")).to_have_text(
        "Filtre « Site » refusé par le service : source must be a domain name such as numerama.com (or a URL on it).", timeout=10_000)
    assert page.locator("#error span[lang=en]").inner_text().startswith("source must be")
    assert page.locator("#filters").get_attribute("open") is not None
    expect(page.locator("#source")).to_have_attribute("aria-invalid", "true")
    assert page.locator("#source").get_attribute("aria-describedby").split() == ["error", "source-hint"]
    _reply(page, 422, {"detail": [{"type": "value_error", "loc": ["body", "top_k"], "msg": "Input should be less than or equal to 50"}]})
    page.click("#ask-button")
    expect(page.locator("#error")).to_have_text("Requête refusée par le service (champ top_k) : Input should be less than or equal to 50.", timeout=10_000)
    assert page.locator("#source").get_attribute("aria-invalid") is None  # cleared with the next question
    assert page.locator("#source").get_attribute("aria-describedby") == "source-hint"


LIVE_REGIONS = "[aria-live]:not([aria-live=off]), [role=alert], [role=status], [role=log], [role=marquee], [role=timer]"


def _live_regions_saying(page, text: str) -> list[str]:
    """The ids of the page's live regions whose text holds ``text``."""
    return page.evaluate("([sel, text]) => Array.from(document.querySelectorAll(sel)).filter(e => e.textContent.includes(text)).map(e => e.id)",
                         [LIVE_REGIONS, text])


def test_errors_and_statuses_are_announced_once(page, base_url):
    """Each message is announced once, by one live region. The question's two, never filled
    together: an error interrupts (role=alert, assertive), progress and counts wait (role=status,
    polite), neither ever hidden (a region that appears is not always announced); the document
    field's note is its combobox's own polite status. Nothing else on the page is live, and no
    region is nested in another (its message would be heard twice)."""
    page.goto(base_url + "/")
    live = page.evaluate(f"() => Array.from(document.querySelectorAll('{LIVE_REGIONS}')).map(e => e.id)")
    assert live == ["documents-note", "error", "status"], live
    assert page.locator("#error").get_attribute("role") == "alert" and page.locator("#error").get_attribute("aria-live") is None
    assert page.locator("#status").get_attribute("role") == "status"
    assert page.locator("#documents-note").get_attribute("role") == "status"
    nested = page.evaluate(f"() => {json.dumps(live)}.some(id => document.getElementById(id).parentElement.closest('{LIVE_REGIONS}'))")
    assert nested is False
    _reply(page, 502, {"detail": "bad gateway"})
    _submit(page, "Une question")
    expect(page.locator("#error")).to_contain_text("erreur 502", timeout=10_000)
    assert page.locator("#status").inner_text() == ""
    _reply(page, 200, SAMPLE)
    _submit(page, "Une question")
    expect(page.locator("#status")).to_have_text("2 réponses", timeout=10_000)
    assert page.locator("#error").inner_text() == ""  # the old error does not stay next to the answers
    for region in ("#error", "#status"):
        assert page.locator(region).evaluate("e => e.checkVisibility() || e.textContent === ''")


# --- citations ------------------------------------------------------------------------------------


def _answer_with_url(url, title="Article"):
    return {"text": "Paris", "score": 0.8, "document_id": "d", "title": title, "url": url, "published": "2017-10-27", "chunk_id": 1,
            "start": 0, "end": 5, "context": "Paris accueille le bureau.", "context_start": 0, "citations": []}


def test_each_answer_quotes_its_source_with_a_source_cue(page, base_url):
    """Under each answer: the quoted sentence with the answer marked, then "Source :" with the
    title (linked), the date and the document."""
    page.goto(base_url + "/")
    _reply(page, 200, SAMPLE)
    _submit(page, "Une question")
    expect(page.locator("#answers > li")).to_have_count(2, timeout=10_000)
    first, second = page.locator("#answers > li.answer").all()
    quote = first.locator("figure blockquote.answer-context")
    assert quote.locator("mark").inner_text() == "7 milliards de dollars"
    assert quote.get_attribute("cite") == "https://example.org/a"
    caption = first.locator("figure > figcaption.source")
    assert " ".join(caption.inner_text().split()).startswith("Source : Article A")
    assert caption.locator("a.title").get_attribute("href") == "https://example.org/a"
    assert caption.locator("time").get_attribute("datetime") == "2018-01-02" and "2 janvier 2018" in caption.inner_text()
    assert "document a" in caption.inner_text()
    # no URL: the title as text, still after "Source :"; no date: none shown; no title: the id, once
    caption2 = second.locator("figcaption.source")
    assert " ".join(caption2.inner_text().split()) == "Source : document c confiance 50 %"
    assert caption2.locator("a").count() == 0 and caption2.locator("time").count() == 0
    assert second.locator("blockquote").get_attribute("cite") is None


BAD_URLS = [
    "javascript:window.__pwned=1", "JavaScript:window.__pwned=1", " javascript:window.__pwned=1", "java\tscript:window.__pwned=1",
    "data:text/html,<script>window.__pwned=1</script>", "vbscript:msgbox(1)", "file:///etc/passwd", "ftp://example.org/a",
    "mailto:a@example.org", "//evil.example/a", "/documents/d", "example.org/a", "", None, 42,
]


def test_only_http_links_are_made_from_source_urls(page, base_url):
    """Whatever the index holds (older indexes may keep a javascript: URL), a title becomes a link
    only to an absolute http(s) URL; relative URLs would point into this server."""
    answers = [_answer_with_url(u, f"Titre {i}") for i, u in enumerate(BAD_URLS)]
    answers += [_answer_with_url("https://example.org/ok", "Bon https"), _answer_with_url("http://example.org/ok", "Bon http")]
    passages = [{"chunk_id": 1, "document_id": "d", "title": "P", "url": u, "published": None, "text": "Paris.", "start": 0, "end": 6, "score": 1.0} for u in BAD_URLS]
    page.goto(base_url + "/")
    _reply(page, 200, {"question": "q", "no_answer": False, "took_ms": 1.0, "answers": answers, "passages": passages})
    _submit(page, "Une question")
    expect(page.locator("#answers > li")).to_have_count(len(answers), timeout=10_000)
    hrefs = page.locator("#results a").evaluate_all("els => els.map(a => a.getAttribute('href'))")
    assert hrefs == ["https://example.org/ok", "http://example.org/ok"], hrefs
    cites = page.locator("#results blockquote[cite]").evaluate_all("els => els.map(q => q.getAttribute('cite'))")
    assert cites == ["https://example.org/ok", "http://example.org/ok"], cites
    assert "Titre 0" in page.locator("#answers").inner_text()  # the title is still shown, as text
    assert page.evaluate("window.__pwned === undefined")
    assert not page.js_errors, page.js_errors


def test_the_footer_says_the_api_documentation_is_in_english(page, base_url):
    page.goto(base_url + "/")
    link = page.get_by_role("link", name="Documentation de l’API (en anglais)")
    assert link.get_attribute("hreflang") == "en"
    link.click()
    expect(page).to_have_url(base_url + "/docs")


# --- filters, against the real server on the bundled articles -------------------------------------


def _documents(base_url: str) -> dict[str, dict]:
    return {d["id"]: d for d in httpx.get(base_url + "/documents", params={"limit": 200}).json()["items"]}


def _asked(page) -> list[dict]:
    bodies: list[dict] = []
    page.on("request", lambda req: bodies.append(req.post_data_json) if req.url.endswith("/ask") else None)
    return bodies


def _wait_answered(page) -> None:
    expect(page.locator("#results")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#results")).not_to_have_attribute("aria-busy", "true", timeout=TIMEOUT_MS)


def _shown_documents(page) -> set[str]:
    ids = page.locator("#results .doc-id").all_text_contents()  # the passages' too, folded or not
    assert ids
    return {t.removeprefix("document ") for t in ids}


def _options(page) -> list[tuple[str, str]]:
    """(document id, label) of each document the list proposes, in its order."""
    return [(i, t) for i, t in page.get_by_role("option").evaluate_all(
        "els => els.map(o => [o.dataset.id, o.querySelector('.option-title').textContent])")]


def _active_option(page) -> str | None:
    """The id of the document under the keyboard, checked against the combobox's ARIA state."""
    field = page.locator("#document-id")
    active = field.get_attribute("aria-activedescendant")
    selected = page.locator("#document-options [aria-selected=true]")
    if active is None:
        assert selected.count() == 0
        return None
    assert selected.count() == 1 and selected.get_attribute("id") == active
    return selected.get_attribute("data-id")


def test_filters_are_collapsed_and_list_the_documents(page, base_url):
    docs = _documents(base_url)
    page.goto(base_url + "/")
    assert page.locator("#filters").get_attribute("open") is None
    assert page.locator("#published-after").is_hidden() and page.locator("#document-id").is_hidden()
    listed: list[str] = []
    page.on("request", lambda req: listed.append(req.url) if "/documents" in req.url else None)
    page.wait_for_timeout(300)
    assert listed == []  # asked for on the first opening only
    page.click("#filters-summary")
    page.click("#filters-summary")
    page.click("#filters-summary")
    page.wait_for_timeout(300)
    assert len(listed) == 1, listed
    # Down in the field: every document (fewer than the list proposes at once), by title
    field = page.get_by_role("combobox", name="Document")
    expect(field).to_have_attribute("aria-expanded", "false")
    field.focus()
    page.keyboard.press("ArrowDown")
    expect(page.get_by_role("option")).to_have_count(len(docs), timeout=10_000)
    expect(field).to_have_attribute("aria-expanded", "true")
    assert len(listed) == 1, listed  # the list asked for on opening, shown at once
    options = _options(page)
    assert {i for i, _ in options} == set(docs)
    titles = [t for _, t in options]
    assert titles == sorted(titles, key=str.casefold)  # by title, as a reader looks for one
    dated = next(d for d in docs.values() if d["published"] == "2015-12-08")
    assert dict(options)[dated["id"]] == dated["title"] + " (8 décembre 2015)"
    assert all(len(t) <= 90 + len(" (8 décembre 2015)") for t in titles)  # long titles are shortened
    expect(page.locator("#documents-note")).to_have_text(f"{len(docs)} documents.")
    assert _active_option(page) == options[0][0]


def test_a_document_filter_is_sent_and_kept_in_the_link(page, base_url):
    docs = _documents(base_url)
    canada = next(i for i, d in docs.items() if "Canada" in (d["title"] or ""))
    title = docs[canada]["title"]
    bodies = _asked(page)
    page.goto(base_url + "/")
    page.click("#filters-summary")
    page.fill("#document-id", title[:25].upper())  # case aside
    expect(page.get_by_role("option")).to_have_count(1, timeout=10_000)
    assert _active_option(page) == canada  # the first match, taken by Enter
    page.press("#document-id", "Enter")
    expect(page.locator("#document-options")).to_be_hidden()
    assert page.input_value("#document-id").startswith(title[:80])
    expect(page.locator("#filters-summary")).to_have_text("Filtres (1 actif)")
    assert page.locator("#results").is_hidden()  # Enter took the option, it did not ask
    _submit(page, "Où Netflix va-t-il ouvrir un bureau ?")
    _wait_answered(page)
    assert bodies[-1] == {"question": "Où Netflix va-t-il ouvrir un bureau ?", "filters": {"document_ids": [canada]}}
    assert _shown_documents(page) == {canada}
    assert "document_id=" + canada in page.url
    assert page.locator("#status").inner_text().endswith("(filtres appliqués)")
    # Back and Forward: the field names the document by its title again
    chosen = page.input_value("#document-id")
    page.click("#filters-reset")
    _submit(page, "Où Netflix va-t-il ouvrir un bureau ?")
    _wait_answered(page)
    page.go_back()
    expect(page.locator("#document-id")).to_have_value(chosen, timeout=10_000)
    _wait_answered(page)
    assert bodies[-1]["filters"] == {"document_ids": [canada]}
    # the link asks the same filtered question in a new tab, which asks for the document's title
    other = page.context.new_page()
    other.goto(page.url)
    _wait_answered(other)
    expect(other.locator("#document-id")).to_have_value(chosen, timeout=10_000)
    assert _shown_documents(other) == {canada}
    assert other.locator("#filters-summary").inner_text() == "Filtres (1 actif)"
    other.close()


def test_the_document_field_is_a_combobox_for_the_keyboard(page, base_url):
    """WAI-ARIA's combobox with a list: typing proposes the matching documents (the first one
    active), Down and Up move, Enter takes, Escape closes; focus never leaves the field. Text that
    was not taken from the list is not sent as a document id."""
    matching = httpx.get(base_url + "/documents", params={"q": "netflix", "limit": 200}).json()
    n = matching["total"]
    assert 3 <= n <= 50, n
    bodies = _asked(page)
    page.goto(base_url + "/")
    page.fill("#question", "Où Netflix va-t-il ouvrir un bureau ?")
    page.click("#filters-summary")
    field = page.get_by_role("combobox", name="Document")
    assert field.get_attribute("aria-autocomplete") == "list" and field.get_attribute("aria-controls") == "document-options"
    expect(page.get_by_role("listbox", name="Documents", include_hidden=True)).to_be_hidden()
    field.focus()
    page.keyboard.type("Netflix")
    expect(page.get_by_role("listbox", name="Documents")).to_be_visible(timeout=10_000)
    expect(page.get_by_role("option")).to_have_count(n)
    expect(page.locator("#documents-note")).to_have_text(f"{n} documents contiennent « Netflix ».")
    ids = [i for i, _ in _options(page)]
    assert set(ids) == {d["id"] for d in matching["items"]}
    assert _active_option(page) == ids[0]
    page.keyboard.press("ArrowDown")
    assert _active_option(page) == ids[1]
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")  # past the first: the last
    assert _active_option(page) == ids[-1]
    page.keyboard.press("Escape")
    expect(field).to_have_attribute("aria-expanded", "false")
    assert _active_option(page) is None and field.input_value() == "Netflix"
    # text typed but no document taken: said, nothing asked
    page.keyboard.press("Enter")
    expect(page.locator("#error")).to_have_text("Document « Netflix » : choisissez-le dans la liste proposée, ou effacez le champ.")
    expect(field).to_have_attribute("aria-invalid", "true")
    assert bodies == []
    page.keyboard.press("ArrowDown")  # the same list again, at once
    expect(field).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("ArrowDown")
    labels = [t for _, t in _options(page)]
    page.keyboard.press("Enter")
    expect(field).to_have_value(labels[1])
    expect(field).to_have_attribute("aria-expanded", "false")
    expect(page.locator("#documents-note")).to_contain_text(f"Recherche limitée à ce document ({ids[1]})")
    assert page.evaluate("document.activeElement.id") == "document-id"
    page.keyboard.press("Enter")  # the list closed: Enter asks
    _wait_answered(page)
    assert bodies[-1]["filters"] == {"document_ids": [ids[1]]}
    # editing the text drops the document; nothing matches: said
    page.keyboard.press("End")
    page.keyboard.type(" zzz")
    expect(page.locator("#documents-note")).to_contain_text("Aucun document ne contient", timeout=10_000)
    expect(field).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("Enter")
    expect(page.locator("#error")).to_contain_text("choisissez-le dans la liste proposée")
    # with the mouse: a click takes the option, the field keeps the focus
    field.fill("")
    page.keyboard.type("Netflix")
    expect(page.get_by_role("option")).to_have_count(n, timeout=10_000)
    page.get_by_role("option").nth(2).click()
    expect(field).to_have_value(labels[2])
    assert page.evaluate("document.activeElement.id") == "document-id"
    page.click("#filters-reset")
    assert field.input_value() == "" and page.locator("#filters-summary").inner_text() == "Filtres"
    field.click()  # as a drop-down: the first documents, none active yet
    expect(page.get_by_role("listbox", name="Documents")).to_be_visible(timeout=10_000)
    assert page.get_by_role("option").count() == len(_documents(base_url)) and _active_option(page) is None
    page.keyboard.press("Tab")  # leaving the field closes the list
    expect(field).to_have_attribute("aria-expanded", "false")
    assert not page.js_errors, page.js_errors


def test_a_document_taken_before_the_list_caught_up_stays_taken(page, base_url):
    """Enter on the list still shown for the text before the last key: the list asked for that key
    came after, reopened the list over the document taken (its note gone), and the next Enter, meant
    to ask, took its first option instead."""
    page.goto(base_url + "/")
    page.click("#filters-summary")
    field = page.get_by_role("combobox", name="Document")
    field.focus()
    page.keyboard.type("Netfli")
    expect(page.get_by_role("listbox", name="Documents")).to_be_visible(timeout=10_000)
    page.wait_for_timeout(500)  # the list for "Netfli" is shown, its first option active
    page.keyboard.type("x")
    page.keyboard.press("Enter")  # within the list's 200 ms pause after the key: taken once the list for "Netflix" is in
    expect(page.locator("#documents-note")).to_contain_text("Recherche limitée à ce document", timeout=10_000)
    chosen = field.input_value()
    assert chosen != "Netflix"  # a document's label, not the text typed
    page.wait_for_timeout(1500)
    expect(field).to_have_attribute("aria-expanded", "false")
    expect(page.locator("#documents-note")).to_contain_text("Recherche limitée à ce document")
    assert field.input_value() == chosen
    assert not page.js_errors, page.js_errors


def test_a_date_range_keeps_dated_articles_of_that_period(page, base_url):
    docs = _documents(base_url)
    in_2017 = {i for i, d in docs.items() if (d["published"] or "").startswith("2017")}
    assert in_2017 and len(in_2017) < len(docs)
    bodies = _asked(page)
    page.goto(base_url + "/")
    page.click("#filters-summary")
    page.fill("#published-after", "2017-01-01")
    page.fill("#published-before", "2017-12-31")
    expect(page.locator("#filters-summary")).to_have_text("Filtres (2 actifs)")
    _submit(page, "Netflix séries françaises")
    _wait_answered(page)
    assert bodies[-1]["filters"] == {"published_after": "2017-01-01", "published_before": "2017-12-31"}
    assert _shown_documents(page) == in_2017
    # a period with no article: said as such, with the filters named
    page.fill("#published-after", "2030-01-01")
    page.fill("#published-before", "2030-12-31")
    _submit(page, "Netflix séries françaises")
    expect(page.locator("#no-answer")).to_contain_text("avec ces filtres", timeout=TIMEOUT_MS)
    # Back: the previous question with its own filters
    page.go_back()
    expect(page.locator("#published-after")).to_have_value("2017-01-01", timeout=10_000)
    _wait_answered(page)
    assert _shown_documents(page) == in_2017


def test_dates_are_checked_before_asking(page, base_url):
    """Dates the wrong way round or half typed: said at once, nothing is sent."""
    bodies = _asked(page)
    page.goto(base_url + "/")
    page.click("#filters-summary")
    page.fill("#published-after", "2018-03-01")
    page.fill("#published-before", "2017-10-27")
    _submit(page, "Une question")
    expect(page.locator("#error")).to_have_text("Date de publication : « À partir du » (1er mars 2018) est après « Jusqu’au » (27 octobre 2017).")
    for field in ("#published-after", "#published-before"):
        expect(page.locator(field)).to_have_attribute("aria-invalid", "true")
    page.fill("#published-before", "")
    page.fill("#published-after", "")
    page.click("#published-after")
    page.keyboard.type("03")  # one part of the date only
    assert page.locator("#published-after").evaluate("e => e.validity.badInput")
    _submit(page, "Une question")
    expect(page.locator("#error")).to_contain_text("« À partir du » incomplète")
    assert bodies == []
    page.click("#filters-reset")
    expect(page.locator("#filters-summary")).to_have_text("Filtres")
    assert page.locator("[aria-invalid]").count() == 0
    _submit(page, "Une question")
    _wait_answered(page)
    assert bodies == [{"question": "Une question"}]  # no filters: no filters key


def test_the_services_422_on_a_filter_is_shown(page, base_url):
    """What the page does not check (a site that is no domain) is the API's to refuse: its message
    is shown, with the field named and marked."""
    page.goto(base_url + "/")
    page.click("#filters-summary")
    page.fill("#source", "pas un domaine")
    _submit(page, "Une question")
    expect(page.locator("#error")).to_contain_text("Filtre « Site » refusé par le service : source must be a domain name", timeout=TIMEOUT_MS)
    expect(page.locator("#source")).to_have_attribute("aria-invalid", "true")
    page.fill("#source", "numerama.com")
    _submit(page, "Combien de séries originales Netflix veut-il produire en 2016 ?")
    _wait_answered(page)
    numerama = {i for i, d in _documents(base_url).items() if "numerama.com" in (d["url"] or "")}
    assert _shown_documents(page) == numerama


def test_a_link_with_partial_dates_fills_the_date_fields(page, base_url):
    """A hand-written link may give "2017" or "2017-10", as the API takes them: the fields show the
    period's first and last days; a date no field can show is said, not dropped."""
    bodies = _asked(page)
    page.goto(base_url + "/?q=Netflix&published_after=2017&published_before=2017-10&document_id=inconnu")
    _wait_answered(page)
    assert page.input_value("#published-after") == "2017-01-01" and page.input_value("#published-before") == "2017-10-31"
    assert page.input_value("#document-id") == "inconnu"
    assert bodies[-1]["filters"] == {"published_after": "2017-01-01", "published_before": "2017-10-31", "document_ids": ["inconnu"]}
    page.goto(base_url + "/?q=Netflix&published_after=hier")
    expect(page.locator("#error")).to_contain_text("« À partir du » illisible (« hier »)")
    assert len(bodies) == 1


def test_the_documents_list_says_when_it_needs_a_key(page, base_url):
    page.route("**/documents?*", lambda route: route.fulfill(status=401, content_type="application/json", body=json.dumps({"detail": "missing API key"})))
    page.goto(base_url + "/")
    page.click("#filters-summary")
    expect(page.locator("#documents-note")).to_have_text("La liste des documents n’a pas pu être chargée (une clé d’accès valide est nécessaire).", timeout=10_000)
    assert page.locator("#key-row").is_visible()
    assert page.locator("#document-id").evaluate("s => s.getAttribute('aria-describedby')") == "documents-note"


def test_keyboard_reaches_every_filter(page, base_url):
    page.goto(base_url + "/")
    page.focus("#ask-button")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "filters-summary"
    page.keyboard.press("Enter")
    expect(page.locator("#document-id")).to_be_visible()
    seen: list[str] = []
    for _ in range(20):
        page.keyboard.press("Tab")
        active = page.evaluate("() => { const e = document.activeElement; return [e.id, e.matches(':focus-visible') || e.matches(':focus-within')]; }")
        assert active[1], active
        if not seen or seen[-1] != active[0]:
            seen.append(active[0])
        if active[0] == "filters-reset":
            break
    assert seen == ["published-after", "published-before", "document-id", "source", "filters-reset"], seen


def test_axe_finds_no_violation_with_filters_and_errors(page, base_url):
    found: dict[str, list[str]] = {}
    page.goto(base_url + "/")
    page.click("#filters-summary")
    found["filters"] = _axe_violations(page)
    page.fill("#document-id", "netflix")
    expect(page.get_by_role("option").first).to_be_visible(timeout=10_000)
    page.keyboard.press("ArrowDown")
    found["documents proposed"] = _axe_violations(page)
    page.keyboard.press("Enter")
    found["document chosen"] = _axe_violations(page)
    page.click("#filters-reset")
    page.fill("#published-after", "2018-03-01")
    page.fill("#published-before", "2017-10-27")
    _submit(page, "Une question")
    expect(page.locator("#error")).not_to_be_empty()
    found["dates refused"] = _axe_violations(page)
    page.click("#filters-reset")
    _reply(page, 502, HTML_502)
    _submit(page, "Une question")
    expect(page.locator("#error")).to_contain_text("erreur 502", timeout=10_000)
    found["502"] = _axe_violations(page)
    assert not any(found.values()), found


def test_down_pressed_before_the_filters_finish_opening_lists_the_documents(page, base_url):
    """<details> says it opened (its toggle event) a task after it did: a Down key in between asked
    for the list, and the first documents asked for on that toggle replaced that request, closed.
    (Seen under load in the full suite; here the key is sent in the same task as the opening.)"""
    page.goto(base_url + "/")
    page.evaluate("""() => {
        document.querySelector('#filters').open = true;
        const field = document.querySelector('#document-id');
        field.focus();
        field.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowDown', bubbles: true }));
    }""")
    expect(page.get_by_role("option")).to_have_count(len(_documents(base_url)), timeout=10_000)
    expect(page.locator("#document-id")).to_have_attribute("aria-expanded", "true")


def test_open_filters_fit_a_phone(browser, base_url):
    ctx = browser.new_context(viewport={"width": 375, "height": 800}, locale="fr-FR")
    try:
        page = ctx.new_page()
        page.goto(base_url + "/")
        page.click("#filters-summary")
        page.focus("#document-id")
        page.keyboard.press("ArrowDown")  # the list open, long titles in it
        expect(page.get_by_role("option").first).to_be_visible(timeout=10_000)
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
    finally:
        ctx.close()


# --- the document field as people use it: typing fast, a slow or silent server, links, a phone ----


def _until(page, done, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "timed out"
        page.wait_for_timeout(50)


def _hold_searches(page) -> list:
    """Requests for the documents holding a text are held until the test answers them (in order)."""
    held: list = []
    page.route("**/documents?*q=*", lambda route: held.append(route))
    return held


def test_enter_right_after_typing_takes_the_document_and_keeps_its_note(page, base_url):
    """A typist who presses Enter before the list has caught up with the last key: the document is
    taken, and the search still queued for the last key does not come back over it (it used to ask
    for the taken document's label, find none, and say « Aucun document ne contient … »)."""
    docs = _documents(base_url)
    bodies = _asked(page)
    page.goto(base_url + "/")
    page.fill("#question", "Où Netflix va-t-il ouvrir un bureau ?")
    page.click("#filters-summary")
    page.click("#document-id")
    page.keyboard.type("net")
    expect(page.locator("#documents-note")).to_contain_text("« net »", timeout=10_000)
    first = _active_option(page)
    page.keyboard.type("f")
    page.keyboard.press("Enter")  # within the 200 ms the page waits before asking for "netf"
    expect(page.locator("#document-id")).to_have_value(re.compile(re.escape((docs[first]["title"] or "")[:40])))
    page.wait_for_timeout(800)  # the queued search would be back by now
    expect(page.locator("#documents-note")).to_have_text(f"Recherche limitée à ce document ({first}) ; effacez le champ pour chercher dans tous.")
    expect(page.locator("#document-id")).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("Enter")  # one Enter more asks
    _wait_answered(page)
    assert bodies[-1]["filters"] == {"document_ids": [first]}
    assert not page.js_errors, page.js_errors


def test_a_slow_list_is_waited_for_and_its_first_match_taken(page, base_url):
    """The server slow to list: what is shown is for an earlier text, so no option of it stays under
    the keyboard; after a second the note says the search goes on; Enter waits for the list of
    what was typed and takes its first match, not the first of the old list."""
    docs = _documents(base_url)
    amazon = next(i for i, d in docs.items() if (d["title"] or "").startswith("Amazon"))
    held = _hold_searches(page)
    page.goto(base_url + "/")
    page.click("#filters-summary")
    field = page.locator("#document-id")
    field.click()
    page.keyboard.type("a")
    _until(page, lambda: len(held) == 1)
    held.pop(0).continue_()  # the list for "a": every document, the first active
    expect(page.locator("#documents-note")).to_have_text(f"{len(docs)} documents contiennent « a ».", timeout=10_000)
    stale_first = _active_option(page)
    assert stale_first != amazon
    page.keyboard.type("mazon")
    _until(page, lambda: len(held) == 1)  # "amazon" asked for, its answer held
    assert _active_option(page) is None  # the old list's first is not what Enter would take
    expect(page.locator("#documents-note")).to_have_text("Recherche des documents…", timeout=5_000)
    page.keyboard.press("Enter")
    assert field.input_value() == "amazon"  # nothing taken yet
    held.pop(0).continue_()
    expect(field).to_have_value(re.compile("^Amazon veut concurrencer"), timeout=10_000)
    expect(page.locator("#documents-note")).to_have_text(f"Recherche limitée à ce document ({amazon}) ; effacez le champ pour chercher dans tous.")
    expect(field).to_have_attribute("aria-expanded", "false")
    page.wait_for_timeout(500)
    assert held == [] and field.get_attribute("aria-expanded") == "false"  # nothing asked for or opened after
    assert not page.js_errors, page.js_errors


def test_a_silent_or_lost_server_is_said_and_enter_takes_nothing(page, base_url):
    """A server that never answers the list: after 15 s the note says so; one that cannot be reached:
    said at once. Enter then takes no document, and the next key asks again."""
    page.clock.install()
    held = _hold_searches(page)
    page.goto(base_url + "/")
    page.click("#filters-summary")
    page.click("#document-id")
    page.keyboard.type("canada")
    page.clock.run_for(300)
    _until(page, lambda: len(held) == 1)
    page.keyboard.press("Enter")
    page.clock.run_for(16_000)
    expect(page.locator("#documents-note")).to_have_text(
        "La liste des documents n’a pas pu être chargée (le service met trop de temps à répondre).", timeout=5_000)
    assert page.input_value("#document-id") == "canada"
    page.unroute("**/documents?*q=*")
    page.route("**/documents?*q=*", lambda route: route.abort("connectionrefused"))
    page.keyboard.type("s")
    page.clock.run_for(300)
    expect(page.locator("#documents-note")).to_have_text(
        "La liste des documents n’a pas pu être chargée (service injoignable).", timeout=5_000)
    page.unroute("**/documents?*q=*")
    page.keyboard.press("Backspace")
    page.clock.run_for(300)
    expect(page.get_by_role("option")).to_have_count(1, timeout=10_000)


def test_down_on_a_chosen_document_lists_the_documents(page, base_url):
    """The field shows the chosen document's label, which is no search (shortened, with its date):
    Down or a click lists the documents as on an empty field, and closing the list says the
    chosen one again. (Down used to search the label, find nothing and say « Aucun document … ».)"""
    docs = _documents(base_url)
    page.goto(base_url + "/")
    page.click("#filters-summary")
    field = page.locator("#document-id")
    field.click()
    page.keyboard.type("2016")
    expect(page.get_by_role("option")).to_have_count(1, timeout=10_000)
    page.keyboard.press("Enter")
    chosen_note = page.locator("#documents-note").inner_text()
    assert chosen_note.startswith("Recherche limitée à ce document")
    page.keyboard.press("ArrowDown")
    expect(page.get_by_role("option")).to_have_count(len(docs), timeout=10_000)
    expect(field).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#documents-note")).to_have_text(f"{len(docs)} documents.")
    page.keyboard.press("Escape")
    expect(page.locator("#documents-note")).to_have_text(chosen_note)
    page.click("#question")
    field.click()
    expect(page.get_by_role("option")).to_have_count(len(docs), timeout=10_000)
    page.get_by_role("option").last.click()
    expect(page.locator("#documents-note")).to_have_text(re.compile(r"^Recherche limitée à ce document"))
    assert page.locator("#documents-note").inner_text() != chosen_note  # another one
    assert not page.js_errors, page.js_errors


def test_a_link_and_history_name_the_document_by_its_title(page, base_url):
    """A link opened afresh shows its document by title, as the list does, and says the search is
    limited to it; Back and Forward say so too; a link to a document the index lacks says that."""
    docs = _documents(base_url)
    dated = next(i for i, d in docs.items() if d["published"] == "2015-12-08")
    label = docs[dated]["title"] + " (8 décembre 2015)"
    note = f"Recherche limitée à ce document ({dated}) ; effacez le champ pour chercher dans tous."
    question = "Combien de séries originales Netflix veut-il produire ?"
    page.goto(base_url + "/?" + urlencode({"q": question, "document_id": dated}))
    _wait_answered(page)
    page.click("#filters-summary")
    expect(page.locator("#document-id")).to_have_value(label, timeout=10_000)
    expect(page.locator("#documents-note")).to_have_text(note)
    # another question on every document, then Back to this one
    page.click("#filters-reset")
    _submit(page, question)
    _wait_answered(page)
    expect(page.locator("#documents-note")).to_have_text("Tapez une partie de son titre ou de son identifiant, puis choisissez-le dans la liste.")
    page.go_back()
    expect(page.locator("#document-id")).to_have_value(label, timeout=10_000)
    expect(page.locator("#documents-note")).to_have_text(note)
    page.go_forward()
    expect(page.locator("#document-id")).to_have_value("", timeout=10_000)
    expect(page.locator("#documents-note")).to_have_text("Tapez une partie de son titre ou de son identifiant, puis choisissez-le dans la liste.")
    page.goto(base_url + "/?" + urlencode({"q": question, "document_id": "inconnu"}))
    _wait_answered(page)
    page.click("#filters-summary")
    expect(page.locator("#documents-note")).to_have_text(
        "Le lien désigne le document « inconnu », absent de l’index : effacez le champ pour chercher dans tous.", timeout=10_000)
    assert page.input_value("#document-id") == "inconnu"
    assert not [e for e in page.js_errors if "Failed to load resource" not in e], page.js_errors


def test_a_document_search_matching_nothing_is_announced_once(page, base_url):
    """« Aucun document ne contient … » was said only in the note under the field, which was no
    live region: a screen reader heard nothing when the text typed matched no document. The note is
    the combobox's polite status now (as the count of the documents found, said there too): the
    message is in one live region, written once (the same text written again is heard again)."""
    page.goto(base_url + "/")
    page.click("#filters-summary")
    page.click("#document-id")
    page.keyboard.type("zorglub")
    message = "Aucun document ne contient « zorglub »."
    expect(page.locator("#documents-note")).to_have_text(message, timeout=10_000)
    assert _live_regions_saying(page, message) == ["documents-note"]
    assert page.locator("#documents-note").get_attribute("role") == "status"  # polite: typing is not interrupted
    assert page.locator("#status").inner_text() == "" and page.locator("#error").inner_text() == ""
    page.evaluate("() => { window.noteWrites = 0; new MutationObserver(r => { window.noteWrites += r.length; })"
                  ".observe(document.getElementById('documents-note'), {childList: true, characterData: true, subtree: true}); }")
    page.keyboard.press("ArrowDown")  # the same empty list again: nothing new to say
    page.keyboard.press("Escape")
    page.wait_for_timeout(500)
    assert page.evaluate("window.noteWrites") == 0
    # the count of the documents found is heard the same way, once
    page.fill("#document-id", "")
    page.keyboard.type("canada")
    expect(page.locator("#documents-note")).to_have_text("1 document contient « canada ».", timeout=10_000)
    assert _live_regions_saying(page, "1 document contient") == ["documents-note"]
    assert not page.js_errors, page.js_errors


def test_punctuation_alone_is_no_document_search(page, base_url):
    """The server reads punctuation as spaces, so « — » alone holds nothing to look for: the page
    lists the first documents as for an empty field (not « N documents contiennent « — » »), and
    Enter takes none of them."""
    docs = _documents(base_url)
    page.goto(base_url + "/")
    page.fill("#question", "Une question")
    page.click("#filters-summary")
    page.click("#document-id")
    page.keyboard.type("« — »")
    expect(page.locator("#documents-note")).to_have_text(f"{len(docs)} documents.", timeout=10_000)
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    expect(page.locator("#error")).to_contain_text("Document « « — » » : choisissez-le dans la liste proposée")
    assert page.input_value("#document-id") == "« — »"
    # and a title typed with other punctuation than its own is found
    page.fill("#document-id", "")
    page.keyboard.type("geant du streaming")
    expect(page.get_by_role("option")).to_have_count(1, timeout=10_000)
    assert _options(page)[0][0] == "004_c0583748e5709aa4"
    assert not page.js_errors, page.js_errors


def test_text_not_taken_from_the_list_is_no_active_filter(page, base_url):
    """« Filtres (1 actif) » counts a document once one is taken, not text typed in the field."""
    page.goto(base_url + "/")
    page.click("#filters-summary")
    page.click("#document-id")
    page.keyboard.type("zorglub")
    expect(page.locator("#documents-note")).to_have_text("Aucun document ne contient « zorglub ».", timeout=10_000)
    expect(page.locator("#filters-summary")).to_have_text("Filtres")
    page.fill("#document-id", "")
    page.keyboard.type("canada")
    expect(page.get_by_role("option")).to_have_count(1, timeout=10_000)
    page.keyboard.press("Enter")
    expect(page.locator("#filters-summary")).to_have_text("Filtres (1 actif)")


def test_a_long_document_id_or_typed_word_wraps_on_a_phone(browser, base_url):
    """On a 375-pixel screen the note naming a chosen document's long id, and the error quoting a
    long word typed in the field, wrap: the page never scrolls sideways."""
    long_id = "x" * 80
    items = [{"id": long_id, "title": "Anticonstitutionnellement" * 6, "url": None, "published": "2018-07-02", "chunks": 1, "chars": 10}]
    ctx = browser.new_context(viewport={"width": 375, "height": 740}, locale="fr-FR")
    try:
        page = ctx.new_page()
        page.route("**/documents?*q=*", lambda route: route.fulfill(status=200, content_type="application/json",
                                                                   body=json.dumps({"items": items, "total": 1, "offset": 0, "limit": 50})))
        page.goto(base_url + "/")
        page.click("#filters-summary")
        page.click("#document-id")
        page.keyboard.type("anti")
        expect(page.get_by_role("option")).to_have_count(1, timeout=10_000)
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        page.keyboard.press("Enter")
        expect(page.locator("#documents-note")).to_contain_text(long_id)
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        page.fill("#document-id", "y" * 80)
        _submit(page, "Une question")
        expect(page.locator("#error")).to_contain_text("y" * 80)
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
    finally:
        ctx.close()


def test_the_reply_to_asking_is_in_sight_on_a_phone_with_the_filters_open(browser, base_url):
    """On a phone the open filters push the messages below the screen: the reply to « Demander »
    (a refusal, the progress then the count) is scrolled into sight, without moving the focus."""
    ctx = browser.new_context(viewport={"width": 375, "height": 740}, locale="fr-FR")
    in_sight = "e => { const r = e.getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight; }"
    try:
        page = ctx.new_page()
        page.goto(base_url + "/")
        page.fill("#question", "Une question")
        page.click("#filters-summary")
        page.fill("#document-id", "pas choisi")
        page.evaluate("window.scrollTo(0, 0)")
        page.click("#ask-button")
        expect(page.locator("#error")).to_contain_text("choisissez-le dans la liste proposée")
        assert page.locator("#error").evaluate(in_sight)
        assert page.evaluate("document.activeElement.id") == "ask-button"
        page.fill("#document-id", "")
        _reply(page, 200, SAMPLE)
        page.evaluate("window.scrollTo(0, 0)")
        page.click("#ask-button")
        expect(page.locator("#status")).to_have_text("2 réponses", timeout=10_000)
        assert page.locator("#status").evaluate(in_sight)
    finally:
        ctx.close()


# --- a larger index: more documents than a drop-down could hold -----------------------------------

NOTES = 1_100  # more than the 1,000 documents the page's drop-down used to hold


@pytest.fixture(scope="module")
def large_index_url(service, tmp_path_factory):
    """A server on an index of 1,100 untitled notes and one titled article, the models of `service`
    shared. The notes share one text, so their passages are embedded once: the index takes about a
    second to build, not the minute 1,100 distinct texts would."""
    from index.store import IndexStore
    from qa.pipeline import QAService

    settings, svc = service
    settings = settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("large") / "data"})
    t0 = time.perf_counter()
    large = QAService(settings, IndexStore.open(settings.data_dir, svc.embedder, **settings.store_options()), svc.reader, svc.embedder)
    notes = [Document(id=f"note-{i:04d}", text="Une brève sans titre.") for i in range(1, NOTES + 1)]
    large.add_documents([*notes, Document(id="zz-ete", title="L’Été des séries françaises", published="2018-07-02",
                                          text="Netflix a acheté trois séries françaises cet été.")])
    logging.getLogger(__name__).info("large index: %d documents in %.1f s", NOTES + 1, time.perf_counter() - t0)
    try:
        with serving(create_app(settings, large)) as url:
            yield url
    finally:
        large.close()


def test_any_document_of_a_large_index_can_be_chosen(page, large_index_url):
    """1,101 documents: the list proposes the first 50 and says how to find the others; typing a part
    of an id or of a title (accents and case aside) finds any of them, here one past the 1,000th."""
    url = large_index_url
    ids = [d["id"] for o in range(0, NOTES + 1, 200) for d in httpx.get(url + "/documents", params={"offset": o, "limit": 200}).json()["items"]]
    assert len(ids) == NOTES + 1 and ids.index("note-1050") >= 1000  # what the drop-down never showed
    bodies = _asked(page)
    page.goto(url + "/")
    page.click("#filters-summary")
    page.focus("#document-id")
    page.keyboard.press("ArrowDown")
    expect(page.get_by_role("option")).to_have_count(50, timeout=10_000)
    expect(page.locator("#documents-note")).to_have_text(
        "1\u202f101 documents : les 50 premiers sont proposés, tapez une partie d’un titre pour trouver les autres.")
    page.keyboard.type("1050")
    expect(page.get_by_role("option")).to_have_count(1, timeout=10_000)
    expect(page.locator("#documents-note")).to_have_text("1 document contient « 1050 ».")
    # an untitled document is labelled by its id: said once (it read « document note-1050 document note-1050 »)
    assert page.get_by_role("option").inner_text() == "document note-1050"
    assert _options(page) == [("note-1050", "document note-1050")]
    page.keyboard.press("Enter")
    expect(page.locator("#document-id")).to_have_value("document note-1050")
    _submit(page, "Que dit la brève ?")
    _wait_answered(page)
    assert bodies[-1]["filters"] == {"document_ids": ["note-1050"]}
    assert _shown_documents(page) == {"note-1050"}
    # its answer and passage source lines name it once too (they read « note-1050 document note-1050 »)
    assert [s.count("note-1050") for s in page.locator("#results .source").all_text_contents()] == [1] * page.locator("#results .source").count()
    # a title, typed without its accents and capitals
    page.fill("#document-id", "")
    page.focus("#document-id")
    page.keyboard.type("ete des SERIES")
    expect(page.get_by_role("option")).to_have_count(1, timeout=10_000)
    assert page.get_by_role("option").inner_text() == "L’Été des séries françaises (2 juillet 2018) document zz-ete"  # a title: its id after it
    page.keyboard.press("Enter")
    expect(page.locator("#document-id")).to_have_value("L’Été des séries françaises (2 juillet 2018)")
    # more matches than the list shows: it says so
    page.fill("#document-id", "note-")
    expect(page.locator("#documents-note")).to_have_text(
        "1\u202f100 documents contiennent « note- » : les 50 premiers sont proposés, précisez.", timeout=10_000)
    assert not page.js_errors, page.js_errors
