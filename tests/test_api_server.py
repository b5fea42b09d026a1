"""A real uvicorn server in a subprocess (``uvicorn api.app:create_app --factory``), called over HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import httpx
import pytest

from tests.api_support import REPO, SHOWCASE_QUESTION, article_documents, broken_model_folder, free_port

pytestmark = pytest.mark.slow

KEY = "server-test-key"
START_TIMEOUT_S = 300  # first start may build the models into the cache
BODY_TIMEOUT_S = 5  # long enough for the concurrency test to act while its requests are held
CONCURRENCY = 3


def stop(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM (uvicorn's graceful shutdown), then SIGKILL if it does not end in ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    port = free_port()
    env = {
        **os.environ,
        "QA_DATA_DIR": str(tmp / "data"),
        "QA_API_KEY": KEY,
        "QA_READ_KEY": "",
        "QA_LOG_LEVEL": "INFO",
        "QA_BODY_TIMEOUT": str(BODY_TIMEOUT_S),
        "QA_LIMIT_CONCURRENCY": str(CONCURRENCY),
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
    }
    log_path = tmp / "server.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not ready after {START_TIMEOUT_S}s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.5)
        yield {"base": base, "proc": proc, "log": log_path}
    finally:
        stop(proc, timeout=30)
        log.close()


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server["base"], timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def indexed(http):
    docs = [{k: v for k, v in asdict(d).items() if v not in (None, {})} for d in article_documents()]
    r = http.post("/documents", json={"documents": docs})
    assert r.status_code == 401  # the key from QA_API_KEY is enforced
    r = http.post("/documents", json={"documents": docs}, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200, r.text
    assert r.json()["added"] == len(docs)
    return {d["id"]: d["text"] for d in docs}


def test_health(http, indexed):
    r = http.get("/health")
    assert r.status_code == 200 and r.headers["x-request-id"]
    body = r.json()
    assert body["status"] == "ok" and body["documents"] == len(indexed) and body["chunks"] >= len(indexed)
    # monitors send HEAD: uvicorn sends the GET headers and no body
    head = http.head("/health")
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == r.headers["content-length"]


def test_ask(http, indexed):
    r = http.post("/ask", json={"question": SHOWCASE_QUESTION})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["passages"] and body["no_answer"] == (body["answers"] == [])
    for a in body["answers"]:
        assert indexed[a["document_id"]][a["start"] : a["end"]] == a["text"]
    for p in body["passages"]:
        assert indexed[p["document_id"]][p["start"] : p["end"]] == p["text"]


def test_search(http, indexed):
    r = http.get("/search", params={"q": "Netflix bureau Paris", "top_k": 3})
    assert r.status_code == 200
    results = r.json()["results"]
    assert 0 < len(results) <= 3
    assert all(indexed[h["document_id"]][h["start"] : h["end"]] == h["text"] for h in results)
    assert http.post("/search", json={"query": "   "}).status_code == 422


def test_pdf_and_word_files_sent_over_http_are_answered_from(http, indexed, tmp_path):
    """POST /documents/files: a PDF and a Word file as a client sends them (curl -F files=@...),
    read as `qa index` reads them; answers and passages slice the text stored."""
    from tests.document_files import write_docx, write_pdf

    pdf = write_pdf(tmp_path / "rapport-cooperative.pdf", [
        ["Rapport annuel de la coopérative", "La coopérative laitière de Landerneau a collecté 412 millions",
         "de litres de lait en 2022, selon son rapport annuel."],
        ["Elle emploie 860 salariés dans le Finistère."],
    ])
    docx = write_docx(tmp_path / "note-vendanges.docx", [("Note sur les vendanges", "Heading 1"),
                                                          ("Les vendanges du domaine de Saumur ont commencé le 4 septembre.", None)])
    files = [("files", ("rapport-cooperative.pdf", pdf.read_bytes(), "application/pdf")),
             ("files", ("note-vendanges.docx", docx.read_bytes(), "application/vnd.openxmlformats-officedocument.wordprocessingml.document"))]
    assert http.post("/documents/files", files=files).status_code == 401
    auth = {"Authorization": f"Bearer {KEY}"}
    r = http.post("/documents/files", files=files, headers=auth)
    assert r.status_code == 200, r.text
    ids = ["rapport-cooperative", "note-vendanges"]
    assert [d["id"] for d in r.json()["documents"]] == ids and r.json()["added"] == 2
    try:
        stored = {i: http.get(f"/documents/{i}").json() for i in ids}
        texts = {i: d["text"] for i, d in stored.items()}
        assert "412 millions de litres de lait" in texts["rapport-cooperative"]  # the PDF's lines joined where the sentence goes on
        assert [stored[i]["metadata"]["source_file"] for i in ids] == ["rapport-cooperative.pdf", "note-vendanges.docx"]
        r = http.post("/ask", json={"question": "Combien de litres de lait la coopérative de Landerneau a-t-elle collectés ?",
                                    "filters": {"document_ids": ids}})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["answers"] and "412 millions" in body["answers"][0]["text"], body["answers"]
        for a in body["answers"]:
            assert texts[a["document_id"]][a["start"]:a["end"]] == a["text"]
            for c in a["citations"]:
                assert texts[c["document_id"]][c["start"]:c["end"]] == a["text"]
        hits = http.get("/search", params={"q": "vendanges Saumur", "document_id": ids, "top_k": 2}).json()["results"]
        assert hits and hits[0]["document_id"] == "note-vendanges"
        assert all(texts[h["document_id"]][h["start"]:h["end"]] == h["text"] for h in hits)
    finally:
        for i in ids:
            http.delete(f"/documents/{i}", headers=auth)


def test_page_and_metrics(http, indexed):
    assert http.get("/").status_code == 200
    text = http.get("/metrics").text
    assert 'route="/ask"' in text and "qa_index_documents" in text


def _raw_post(base: str, path: str, head_extra: str, body: bytes, content_type: str = "application/json") -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n{head_extra}\r\n"
    sock.sendall(head.encode() + body)
    return sock


def _count(metrics: str, route: str, status: int) -> float:
    pattern = rf'qa_http_requests_total{{[^}}]*route="{re.escape(route)}"[^}}]*status="{status}"[^}}]*}} (\S+)'
    return sum(float(v) for v in re.findall(pattern, metrics))


@pytest.mark.parametrize("route", ["/extract", "/documents/files"])
def test_a_body_sent_too_slowly_gets_408(server, route):
    """uvicorn waits for a body forever; a client trickling one must not hold a connection and a task.
    Files are no exception: an upload has QA_BODY_TIMEOUT to arrive whole."""
    if route == "/extract":
        body, content_type = json.dumps({"question": "Qui ?", "context": "Un texte."}).encode(), "application/json"
    else:
        body = b'--B\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n\r\nUn texte.\r\n--B--\r\n'
        content_type = "multipart/form-data; boundary=B"
    head = f"Content-Length: {len(body)}\r\nAuthorization: Bearer {KEY}\r\n"
    sock = _raw_post(server["base"], route, head, body[:10], content_type)
    t0 = time.monotonic()
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = sock.recv(65536)
        if not chunk:
            break
        reply += chunk
    sock.close()
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert BODY_TIMEOUT_S - 0.5 < time.monotonic() - t0 < BODY_TIMEOUT_S + 20
    assert b"connection: close" in reply.lower()


def test_a_client_that_hangs_up_stops_its_extract(server, http, indexed):
    """A long /extract whose client goes away ends (its reading stops within a layer), instead
    of computing for half a minute an answer nobody receives."""
    context = " ".join(indexed.values())
    context = (context * (60_000 // len(context) + 1))[:60_000]  # ~15,000 tokens: ~15 s of reading on 2 cores
    body = json.dumps({"question": "Combien Netflix investit-il ?", "context": context}).encode()
    _hang_up(server, http, "/extract", body, after_s=1.5)  # reading has started
    assert "/extract: the client went away" in server["log"].read_text()


def _hang_up(server, http, route: str, body: bytes, after_s: float) -> None:
    """POST ``body`` to ``route``, hang up after ``after_s`` seconds, then wait until the server
    has counted a 499 (client closed request) for it."""
    before = _count(http.get("/metrics").text, route, 499)
    sock = _raw_post(server["base"], route, f"Content-Length: {len(body)}\r\n", body)
    time.sleep(after_s)
    sock.close()
    deadline = time.monotonic() + 60
    while _count(http.get("/metrics").text, route, 499) == before:
        assert time.monotonic() < deadline, f"the {route} of a client that went away was not ended"
        time.sleep(0.5)


def test_a_client_that_hangs_up_stops_its_ask(server, http, indexed):
    """The same for /ask (reading 50 passages: seconds on 2 cores): the request ends with the client
    (499 in the metrics) and the reading it alone waited for is told to stop."""
    # 50 passages of ~200 tokens (the seed articles are 18 chunks: under a second of reading on a quiet machine)
    text = " ".join(indexed.values())
    doc = {"id": "long-read", "title": "Lecture longue", "text": (text * (40_000 // len(text) + 1))[:40_000]}
    r = http.post("/documents", json={"documents": [doc]}, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200 and r.json()["documents"][0]["chunks"] >= 50, r.text
    try:
        body = json.dumps({"question": "Combien Netflix investit-il dans ses contenus ?", "top_k": 50, "filters": {"document_ids": ["long-read"]}}).encode()
        _hang_up(server, http, "/ask", body, after_s=0.5)
    finally:
        http.delete("/documents/long-read", headers={"Authorization": f"Bearer {KEY}"})
    assert "/ask: the client went away" in server["log"].read_text()


def test_healthcheck_asks_the_configured_server(server):
    """The image's HEALTHCHECK: 0 when the server of QA_HOST/QA_PORT answers (one bound to every
    address is asked on loopback), 1 with the URL it tried when nothing answers."""
    port = server["base"].rsplit(":", 1)[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}

    def check(host: str, port: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "qa.healthcheck"], env={**env, "QA_HOST": host, "QA_PORT": port},
                              cwd=REPO, capture_output=True, text=True, timeout=60)

    for host in ("127.0.0.1", "0.0.0.0"):
        ok = check(host, port)
        assert ok.returncode == 0, ok.stderr
    down = check("127.0.0.1", str(free_port()))
    assert down.returncode == 1 and "http://127.0.0.1:" in down.stderr and "/health" in down.stderr
    assert "Traceback" not in down.stderr


def test_health_url_brackets_ipv6():
    from qa.healthcheck import health_url

    assert health_url("::", 8000) == "http://[::1]:8000/health"
    assert health_url("10.0.0.5", 9000) == "http://10.0.0.5:9000/health"
    assert health_url("[fd00::5]", 80) == "http://[fd00::5]:80/health"


def test_requests_beyond_the_configured_concurrency_get_a_quick_503(server, http, indexed):
    """QA_LIMIT_CONCURRENCY: past that many requests in progress, a JSON 503 with Retry-After at
    once (not a wait behind the reader); the probes are still answered. A request takes its place
    only once its body is there: clients trickling bodies must not lock everyone out."""
    body = json.dumps({"query": "Netflix"}).encode()
    trickling = [_raw_post(server["base"], "/search", f"Content-Length: {len(body)}\r\n", body[:5]) for _ in range(CONCURRENCY)]
    try:
        time.sleep(0.5)
        assert http.get("/search", params={"q": "Netflix"}).status_code == 200
    finally:
        for sock in trickling:
            sock.close()
    # CONCURRENCY long reads in progress (~15,000 tokens each: seconds of work)
    context = " ".join(indexed.values())
    context = (context * (60_000 // len(context) + 1))[:60_000]
    extract = json.dumps({"question": "Combien Netflix investit-il ?", "context": context}).encode()
    held = [_raw_post(server["base"], "/extract", f"Content-Length: {len(extract)}\r\n", extract) for _ in range(CONCURRENCY)]
    try:
        time.sleep(1.5)  # all of them reading
        r = http.get("/search", params={"q": "Netflix"})
        assert r.status_code == 503 and r.headers["retry-after"] == "1" and r.headers["x-request-id"], r.text
        assert "QA_LIMIT_CONCURRENCY" in r.json()["detail"]
        # a body takes its place before it is judged (parsing 2 MB of JSON is a second of CPU): busy, not 422
        r = http.post("/search", content=b'{"query": NaN}', headers={"content-type": "application/json"})
        assert r.status_code == 503, r.text
        assert http.get("/health").status_code == 200 and http.get("/metrics").status_code == 200
    finally:
        for sock in held:
            sock.close()  # their requests end, and their reads stop within a layer
    deadline = time.monotonic() + 60
    while (status := http.get("/search", params={"q": "Netflix"}).status_code) == 503:
        assert time.monotonic() < deadline, "the places of the closed requests were not given back"
        time.sleep(0.5)
    assert status == 200


def test_clean_shutdown(server, http, indexed):
    proc = server["proc"]
    proc.send_signal(signal.SIGTERM)
    # bare uvicorn shuts down gracefully, then re-raises the signal (exit status -SIGTERM); `qa serve`
    # exits 0 (test_shutdown_gives_requests_in_progress_a_deadline)
    assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    log = server["log"].read_text()
    assert "Application shutdown complete" in log
    assert "Traceback" not in log


def test_shutdown_gives_requests_in_progress_a_deadline(tmp_path):
    """`qa serve` on SIGTERM: requests in progress get QA_SHUTDOWN_TIMEOUT seconds, then a JSON 503
    (retry elsewhere) instead of a 500 and a traceback; the process exits soon after, within what
    supervisors wait before a SIGKILL, instead of draining for as long as the queue takes, and with
    status 0: a stop asked for is not a failure."""
    port = free_port()
    env = {**os.environ, "QA_DATA_DIR": str(tmp_path / "data"), "QA_API_KEY": "", "QA_READ_KEY": "", "QA_SHUTDOWN_TIMEOUT": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "qa.cli", "serve", "--port", str(port)], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while "Application startup complete" not in log_path.read_text():
                assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()[-4000:]
                time.sleep(0.5)
            context = " ".join(d.text for d in article_documents())
            context = (context * (60_000 // len(context) + 1))[:60_000]  # ~15 s of reading on 2 cores
            body = json.dumps({"question": "Combien Netflix investit-il ?", "context": context}).encode()
            sock = _raw_post(base, "/extract", f"Content-Length: {len(body)}\r\n", body)
            time.sleep(2)  # reading has started
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            sock.settimeout(30)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            sock.close()
            # a stop asked for: status 0 (uvicorn raised SIGTERM again after its drain: status 143,
            # which supervisors read as a failure)
            assert proc.wait(timeout=30) == 0
            # the drain (1 s), then the reading, told to stop, ends within a layer, and the process exits (4.7 s at most measured on 2 busy cores)
            assert time.monotonic() - t0 < 15
        finally:
            stop(proc, timeout=60)
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in head.lower(), head
    assert json.loads(payload)["detail"] == "the server is shutting down: retry"
    text = log_path.read_text()
    assert "cancelled before its answer (server shutting down)" in text and "Traceback" not in text


def _serve_two_workers(tmp_path, log, **env_extra) -> tuple[subprocess.Popen, str]:
    """`qa serve --workers 2` on a new folder, once both workers are up: (process, base URL)."""
    port = free_port()
    env = {**os.environ, "QA_DATA_DIR": str(tmp_path / "data"), "QA_API_KEY": "", "QA_READ_KEY": "", "TMPDIR": str(tmp_path), **env_extra,
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen([sys.executable, "-m", "qa.cli", "serve", "--port", str(port), "--workers", "2"],
                            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    log_path = Path(log.name)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:  # both workers up: each logs its start-up
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc, timeout=60)
            pytest.fail(log_path.read_text()[-4000:])
        if log_path.read_text().count("Application startup complete") >= 2:
            return proc, f"http://127.0.0.1:{port}"
        time.sleep(0.5)


@pytest.mark.parametrize("workers", [1, 2])
def test_qa_serve_checks_the_index_once(tmp_path, embedder, workers):
    """`qa serve` read the whole index and ran SQLite's check of every page before uvicorn started,
    then the app did it again as it started, and each worker of --workers N too (1.5 s per GB each):
    once now, by `qa serve`. Bare uvicorn, which no preflight precedes, checks it as the app starts
    (test_an_index_damaged_anywhere_stops_the_server_before_the_models_load)."""
    from index.schema import Document
    from index.store import IndexStore

    data = tmp_path / "data"
    store = IndexStore.open(data, embedder)
    store.add_documents([Document(id="note", title="Note", text="Note\n\nLe siège est à Lyon.")])
    store.close()
    with open(tmp_path / "serve.log", "w") as log:
        if workers == 2:
            proc, _ = _serve_two_workers(tmp_path, log, QA_LOG_LEVEL="INFO")
        else:
            env = {**os.environ, "QA_DATA_DIR": str(data), "QA_LOG_LEVEL": "INFO", "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
            env.pop("PROMETHEUS_MULTIPROC_DIR", None)
            proc = subprocess.Popen([sys.executable, "-m", "qa.cli", "serve", "--port", str(free_port())], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + START_TIMEOUT_S
            while "Application startup complete" not in (tmp_path / "serve.log").read_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    stop(proc, timeout=60)
                    pytest.fail((tmp_path / "serve.log").read_text()[-4000:])
                time.sleep(0.5)
        stop(proc, timeout=60)
    text = (tmp_path / "serve.log").read_text()
    assert proc.returncode == 0 and text.count(f"checked every page of the index in {data} in ") == 1, text[-4000:]


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _wait_gone(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        assert time.monotonic() < deadline, f"processes {pids} still running"
        time.sleep(0.2)


def test_metrics_count_every_worker(tmp_path):
    """`qa serve --workers 2`: each scrape of /metrics, whichever worker answers it, counts the
    requests that both workers served (prometheus_client's multiprocess mode). And the settings
    `qa serve` hands to uvicorn (QA_ROOT_PATH) reach it. Stopped with SIGTERM, it exits 0 and its
    output is clean: workers killed by uvicorn's re-raised SIGTERM skipped their exit handlers, and
    Python's resource tracker warned at shutdown of the lock tqdm made in each ("leaked semaphore")."""
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log:
        proc, base = _serve_two_workers(tmp_path, log, QA_ROOT_PATH="/qa")
        # the resource tracker prints its warnings when the server has exited: wait for it too
        trackers = [pid for pid in _children(proc.pid) if b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(trackers) == 1, trackers
        try:
            assert len(list(tmp_path.glob("qa-metrics-*"))) == 1
            for _ in range(20):  # a new connection each time, so that both workers take some
                assert httpx.get(f"{base}/documents", timeout=60).status_code == 200
            line = 'qa_http_requests_total{method="GET",route="/documents",status="200"} 20.0'
            for _ in range(6):
                assert line in httpx.get(f"{base}/metrics", timeout=60).text
            # QA_ROOT_PATH reaches uvicorn: behind a proxy serving the app under /qa, /docs loads /qa/openapi.json
            assert "/qa/openapi.json" in httpx.get(f"{base}/docs", timeout=60).text
        finally:
            stop(proc, timeout=60)
        _wait_gone(trackers, timeout=30)
    assert proc.returncode == 0
    text = log_path.read_text()
    assert text.count("Finished server process") == 2
    assert "Traceback" not in text and "resource_tracker" not in text and "leaked" not in text, text[-2000:]
    assert list(tmp_path.glob("qa-metrics-*")) == []  # the metrics folder goes with the server


def _re_embedded_index(data: Path, embedder) -> None:
    """An index at ``data`` that records another model's vector for the probe passage: what `qa serve`
    cannot tell before the app loads its embedder (the app's start-up fails with ReindexNeeded)."""
    import sqlite3

    from index.schema import Document
    from index.store import IndexStore

    store = IndexStore.open(data, embedder)
    store.add_documents([Document(id="note", title="Note", text="Note\n\nLe siège est à Lyon.")])
    store.close()
    with sqlite3.connect(data / "index.sqlite3") as conn:
        probe = json.loads(conn.execute("SELECT value FROM meta WHERE key = 'embedder_probe'").fetchone()[0])
        conn.execute("UPDATE meta SET value = ? WHERE key = 'embedder_probe'", (json.dumps([-x for x in probe]),))
    conn.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_server_that_cannot_start_exits_non_zero(tmp_path, workers, embedder):
    """A supervisor restarts (or reports) a server that exits non-zero: `qa serve --workers 2` whose
    workers could not start exited 0, as a stop asked for would. Both now exit with uvicorn's
    startup-failure status, 3, for what only the app finds out as it starts (here an index
    re-embedded with another model), its line logged at CRITICAL."""
    _re_embedded_index(tmp_path / "data", embedder)
    env = {**os.environ, "QA_DATA_DIR": str(tmp_path / "data"), "TMPDIR": str(tmp_path),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    done = subprocess.run([sys.executable, "-m", "qa.cli", "serve", "--port", str(free_port()), "--workers", str(workers)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S)
    assert done.returncode == 3, done.stderr[-3000:]
    assert "Application startup failed" in done.stderr
    assert f" CRITICAL api: index at {tmp_path / 'data'} was built with " in done.stderr and "Traceback" not in done.stderr, done.stderr[-3000:]


def _unusable(case: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a server that cannot start, for ``case``."""
    data = tmp_path / "data"
    if case == "newer index":  # written by a newer qa-search (what a team rolling back would meet)
        from tests.store_support import newer_index

        newer_index(data)
    elif case == "damaged index":
        data.mkdir()
        (data / "index.sqlite3").write_text("not a database")
    elif case == "folder is a file":
        data.write_text("x")
    env = {"QA_DATA_DIR": str(data)}
    if case == "bad setting":
        env["QA_TOP_K"] = "many"
    elif case == "no model source":
        env |= {"QA_MODELS_DIR": str(tmp_path / "no-models"), "QA_E5_SOURCE": str(tmp_path / "no-such.bin")}
    return env


@pytest.mark.parametrize("case", ["newer index", "damaged index", "folder is a file", "bad setting", "no model source"])
def test_bare_uvicorn_says_why_it_cannot_start_as_qa_serve_does(tmp_path, case):
    """`uvicorn api.app:create_app --factory` (the README's other way to serve) on what `qa serve`
    says in one line before it starts uvicorn: the same line, no traceback (the lifespan's or the
    factory's exception was logged whole by uvicorn), and uvicorn's start-up failure status. Logged
    at CRITICAL: at ERROR, QA_LOG_LEVEL=CRITICAL left only uvicorn's "Application startup failed"."""
    env = {**os.environ, **_unusable(case, tmp_path), "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    served = subprocess.run([sys.executable, "-m", "qa.cli", "serve", "--port", str(free_port())],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S)
    assert served.returncode == 1 and served.stderr.strip().splitlines()[-1].startswith("error: "), served.stderr
    line = served.stderr.strip().splitlines()[-1].removeprefix("error: ")
    if case == "newer index":
        assert line == (f"the index at {tmp_path / 'data'} was written by a newer qa-search (schema version 99; this one reads version 1): "
                        "use it with that newer qa-search, or set QA_DATA_DIR to a new folder and index your documents again")
    bare = subprocess.run([sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1", "--port", str(free_port())],
                          cwd=tmp_path, env={**env, "QA_LOG_LEVEL": "CRITICAL"}, capture_output=True, text=True, timeout=START_TIMEOUT_S)
    assert bare.returncode == 3, bare.stderr[-3000:]
    assert "Traceback" not in bare.stderr and f" CRITICAL api: {line}\n" in bare.stderr, bare.stderr[-3000:]
    assert bare.stderr.count(line) == 1


@pytest.mark.parametrize("table", ["documents", "chunks", "chunks_hash"])
def test_an_index_damaged_anywhere_stops_the_server_before_the_models_load(tmp_path, embedder, table):
    """Pages of the index overwritten where opening it without the models does not read (its
    documents, its chunks, an index of the chunks): `qa serve` loaded the models, then failed with
    status 3 (a model problem, for a supervisor), or served. SQLite's check of every page now runs
    first (a few ms here): status 1 with the damaged line, no model loaded. Bare uvicorn says the
    same line before loading any model (here its reader could not even be found)."""
    from index.schema import Document
    from index.storage import DAMAGED_FIX
    from index.store import IndexStore
    from tests.store_support import damage_pages

    data = tmp_path / "data"
    store = IndexStore.open(data, embedder)
    store.add_documents([Document(id=f"note-{i}", title=f"Note {i}", text=f"Note {i}\n\nLe siège numéro {i} est à Lyon.") for i in range(20)])
    store.close()
    damage_pages(data, table)
    env = {**os.environ, "QA_DATA_DIR": str(data), "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    served = subprocess.run([sys.executable, "-m", "qa.cli", "serve", "--port", str(free_port())],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S)
    assert served.returncode == 1, served.stderr[-3000:]
    line = served.stderr.strip().splitlines()[-1].removeprefix("error: ")
    assert re.fullmatch(rf"the index at {re.escape(str(data))} is damaged \(.+\): {re.escape(DAMAGED_FIX)}", line), served.stderr[-3000:]
    assert "loading models" not in served.stderr and "Traceback" not in served.stderr
    bare = subprocess.run([sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1", "--port", str(free_port())],
                          cwd=tmp_path, env={**env, "QA_READER": str(tmp_path / "no-such-reader")}, capture_output=True, text=True, timeout=START_TIMEOUT_S)
    assert bare.returncode == 3, bare.stderr[-3000:]
    assert "Traceback" not in bare.stderr and f" CRITICAL api: {line}\n" in bare.stderr, bare.stderr[-3000:]


# runs `qa serve` or uvicorn (sys.argv[1:]) with the read-through of the index check (index.catalog._read_through)
# failing as $READ_FAILS says: "vanished", the database really moved away between SQLite's open and that read;
# an errno name, the open failing so. EIO needs a failing disk, and EACCES a user other than root, which
# the tests run as (SQLite, which opens the file first, would be refused first anyway)
FAILING_READ = """
import builtins, errno, os, sys
import index.catalog

def failing_open(path, *args, **kwargs):
    how = os.environ["READ_FAILS"]
    if how == "vanished":
        os.rename(path, str(path) + ".moved")
        return builtins.open(path, *args, **kwargs)
    code = getattr(errno, how)
    raise OSError(code, os.strerror(code), str(path))

index.catalog.open = failing_open  # the module's name for the builtin: _read_through alone calls it
if sys.argv[1] == "qa":
    sys.argv[1:] = sys.argv[2:]
    from qa.cli import app
    app()
else:
    import uvicorn
    uvicorn.main(sys.argv[2:])
"""


@pytest.mark.parametrize("how, fix", [
    ("EIO", "check its disk"),
    ("EACCES", "make it readable by the user this runs as"),
    ("vanished", "it was removed or moved while it was read: put it back"),
])
def test_an_index_that_cannot_be_read_through_is_one_line(tmp_path, embedder, how, fix):
    """The index check before the models load reads the database through first; an OSError there (a
    failing disk, a file the service's user cannot read, one moved away meanwhile) was a traceback,
    from `qa serve` (status 1) and from bare uvicorn's start-up. It is one line naming the file and
    what to do: `qa serve`'s error, status 1; bare uvicorn's CRITICAL line, status 3."""
    from index.schema import Document
    from index.store import IndexStore

    data = tmp_path / "data"
    store = IndexStore.open(data, embedder)
    store.add_documents([Document(id="note", title="Note", text="Note\n\nLe siège est à Lyon.")])
    store.close()
    db = data / "index.sqlite3"
    env = {**os.environ, "QA_DATA_DIR": str(data), "READ_FAILS": how, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    errno_line = {"EIO": f"[Errno 5] Input/output error: '{db}'", "EACCES": f"[Errno 13] Permission denied: '{db}'",
                  "vanished": f"[Errno 2] No such file or directory: '{db}'"}[how]
    line = f"cannot read the index in {data}: {errno_line}; {fix} and run the command again"
    for command, status in (("qa", 1), ("uvicorn", 3)):
        args = ["serve", "--port", str(free_port())] if command == "qa" else ["api.app:create_app", "--factory", "--host", "127.0.0.1", "--port", str(free_port())]
        done = subprocess.run([sys.executable, "-c", FAILING_READ, command, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S)
        assert done.returncode == status and "Traceback" not in done.stderr, done.stderr[-3000:]
        said = f"error: {line}\n" if command == "qa" else f" CRITICAL api: {line}\n"
        assert said in done.stderr and done.stderr.count(line) == 1, done.stderr[-3000:]
        assert "service ready" not in done.stderr  # said before the models load
        if how == "vanished":  # put back for the next command
            (data / "index.sqlite3.moved").rename(db)


@pytest.mark.parametrize("command", ["qa serve", "uvicorn"])
def test_a_reader_whose_weights_do_not_load_is_one_line(tmp_path, command):
    """A QA_READER folder that passes the checks made on its files (config, tokenizer, weights file)
    but whose weights do not fit its config.json failed the start-up with transformers' traceback, under
    `qa serve` and bare uvicorn: it is the one line naming the folder and QA_READER, logged at CRITICAL
    (whatever QA_LOG_LEVEL), with uvicorn's start-up failure status."""
    folder = broken_model_folder(tmp_path / "model", "reader", "shapes")
    env = {**os.environ, "QA_DATA_DIR": str(tmp_path / "data"), "QA_READER": str(folder),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    args = ["qa.cli", "serve"] if command == "qa serve" else ["uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1"]
    done = subprocess.run([sys.executable, "-m", *args, "--port", str(free_port())],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S)
    assert done.returncode == 3, done.stderr[-3000:]
    line = (f"cannot load reader {str(folder)!r}: its weights cannot be used (tensor shapes differ from its config.json); copy the model again, "
            "or set QA_READER to a question-answering model (its folder, or a model id you can download), or unset it for the built-in reader")
    assert "Traceback" not in done.stderr and f" CRITICAL api: {line}\n" in done.stderr, done.stderr[-3000:]
    assert done.stderr.count(line) == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers are tied to their parent with Linux's prctl")
def test_workers_end_with_a_killed_parent(tmp_path):
    """SIGKILL of `qa serve --workers 2` (the OOM killer, a supervisor's kill -9) cannot let the parent
    stop its workers: they went on serving, holding the port and a GB each, and the restart failed
    with "address already in use". They now get SIGTERM when it dies."""
    with open(tmp_path / "serve.log", "w") as log:
        proc, base = _serve_two_workers(tmp_path, log)
        workers = [pid for pid in _children(proc.pid) if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")]
        try:
            assert len(workers) == 2, workers
            proc.kill()
            proc.wait()
            deadline = time.monotonic() + 60
            while any(Path(f"/proc/{pid}").exists() for pid in workers):
                assert time.monotonic() < deadline, "the workers outlived their parent"
                time.sleep(0.5)
            with pytest.raises(httpx.TransportError):
                httpx.get(f"{base}/health", timeout=5)
        finally:
            for pid in workers:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
