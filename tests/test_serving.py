"""``api.serving`` with a real uvicorn server (in a thread, serving a tiny app: no models) and raw
sockets: the request-head deadline (QA_HEADER_TIMEOUT) and what ``qa serve`` hands to uvicorn."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from api.schemas import api_json
from api.serving import HeadTimeoutH11Protocol, ServerConfig, server_config
from qa.settings import Settings
from tests.api_support import free_port

HEAD_TIMEOUT_S = 1.0


async def _hello(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})


@pytest.fixture(scope="module")
def address() -> Iterator[tuple[str, int]]:
    port = free_port()
    config = ServerConfig(_hello, host="127.0.0.1", port=port, lifespan="off", log_level="warning",
                          http=HeadTimeoutH11Protocol, header_timeout=HEAD_TIMEOUT_S)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)  # not the main thread: uvicorn takes no signals
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.05)
    yield ("127.0.0.1", port)
    server.should_exit = True
    thread.join(timeout=10)


def _read_until_closed(sock: socket.socket, trickle: bytes | None, limit_s: float = 10.0) -> tuple[bytes, float]:
    """What the server sends until it closes the connection, sending ``trickle`` every 0.3 s
    meanwhile; and the seconds that took."""
    t0 = time.monotonic()
    sock.settimeout(0.3)
    got = b""
    while time.monotonic() - t0 < limit_s:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if trickle is not None:
                try:
                    sock.sendall(trickle)
                except OSError:  # closed meanwhile
                    pass
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
    return got, time.monotonic() - t0


def test_a_head_sent_a_line_at_a_time_gets_408(address):
    """Slowloris: a header line every 0.3 s restarted uvicorn's only timer, and the connection was
    held forever. The whole head must now come within QA_HEADER_TIMEOUT of the connection's opening."""
    with socket.create_connection(address) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n")
        got, took = _read_until_closed(sock, trickle=b"X-Slow: 1\r\n")
    assert got.startswith(b"HTTP/1.1 408 "), got[:200]
    assert b"connection: close" in got.lower() and b"request head not received within 1 s" in got
    assert HEAD_TIMEOUT_S - 0.1 < took < HEAD_TIMEOUT_S + 3
    # written as every other body of the API (api.schemas.api_json): it had a space after ':'
    assert got.endswith(b"\r\n\r\n" + api_json({"detail": "request head not received within 1 s"}).encode()), got[-200:]


def test_a_connection_that_sends_nothing_is_closed(address):
    with socket.create_connection(address) as sock:
        got, took = _read_until_closed(sock, trickle=None)
    assert got == b"" and HEAD_TIMEOUT_S - 0.1 < took < HEAD_TIMEOUT_S + 3


def test_each_request_of_a_kept_alive_connection_has_its_own_deadline(address):
    """The deadline is for heads only: a request whose head came in time is answered, the next one on
    the same connection gets its own deadline from its first byte, and a head split over packets
    within the deadline is fine."""
    with socket.create_connection(address) as sock:
        sock.settimeout(5)
        for _ in range(2):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n")
            time.sleep(HEAD_TIMEOUT_S * 0.6)  # under the deadline, twice over: the second head has its own
            sock.sendall(b"\r\n")
            reply = b""
            while not reply.endswith(b"hello"):
                chunk = sock.recv(65536)
                assert chunk, reply
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET / HTTP/1.1\r\n")  # then a third one that never ends
        got, took = _read_until_closed(sock, trickle=b"X-Slow: 1\r\n")
    assert got.startswith(b"HTTP/1.1 408 ") and took < HEAD_TIMEOUT_S + 3


def test_qa_serve_hands_the_deadline_to_uvicorn():
    settings = Settings(header_timeout=7.5, shutdown_timeout=3, root_path="/qa")
    config = server_config(settings, "127.0.0.1", 8123, workers=2)
    assert config.http is HeadTimeoutH11Protocol and config.header_timeout == 7.5
    assert (config.app, config.factory, config.workers, config.root_path, config.timeout_graceful_shutdown) == ("api.app:create_app_checked", True, 2, "/qa", 3)


@pytest.mark.parametrize("version, line", [
    ("2", "error: the index at {data} was written by a newer qa-search (schema version 2; this one reads version 1): "
          "use it with that newer qa-search, or set QA_DATA_DIR to a new folder and index your documents again"),
    ("0", "error: the index at {data} has schema version 0, which this qa-search cannot read (it reads version 1): "
          "set QA_DATA_DIR to a new folder and index your documents again"),
])
def test_qa_serve_on_an_index_of_another_schema_version_says_so_in_one_line(tmp_path, version, line):
    """Before the models load: the folder named once (it was twice, "cannot read the index at X:
    index at X has ..."), and what to do."""
    import sqlite3

    from typer.testing import CliRunner

    from qa.cli import app

    data = tmp_path / "data"
    data.mkdir()
    with sqlite3.connect(data / "index.sqlite3") as conn:
        conn.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (version,))
    conn.close()
    res = CliRunner().invoke(app, ["serve", "--port", str(free_port())], env={"QA_DATA_DIR": str(data)})
    assert res.exit_code == 1 and res.stderr.strip() == line.format(data=data)
