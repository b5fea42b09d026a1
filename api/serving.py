"""``qa serve``: the app under uvicorn, with the exit status a supervisor expects and a deadline for
request heads.

- Exit status. After draining on SIGTERM, uvicorn hands the signal back to the handler that was in
  place before it ("cooperative" signal handling, uvicorn 0.29+) and raises it again: with the default
  handler the process killed itself, exit status 143, which Docker, systemd and Kubernetes read as a
  failure. Workers of ``--workers N`` died the same way, skipping their exit handlers: the
  multiprocessing lock tqdm creates in each of them was never unlinked, and Python's resource tracker
  warned of "leaked semaphore objects" at shutdown. Here SIGTERM is handled as Ctrl-C is (Python's
  ``default_int_handler``, a KeyboardInterrupt, which uvicorn takes as "stop" both in its own process
  and in its workers), so a stop asked for ends with status 0 and a normal interpreter exit. A worker
  that fails to start still ends ``--workers N`` with uvicorn's status 3 (uvicorn itself exits 0 then).
- Request heads. uvicorn times out neither a connection that sends nothing nor one that sends its
  head a line every few seconds (``timeout_keep_alive`` is only for idle kept-alive connections,
  and every byte received restarts it): such clients hold connections forever (slowloris).
  ``HeadTimeoutH11Protocol`` closes them after ``QA_HEADER_TIMEOUT`` seconds.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import h11
import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.supervisors import Multiprocess

from api.middleware import json_body
from qa.settings import Settings

if TYPE_CHECKING:
    import asyncio

log = logging.getLogger("api")

APP = "api.app:create_app_checked"  # qa serve has checked the index: the app does not again (each worker would)


def stop_on_sigterm_as_on_ctrl_c() -> None:
    """In the process about to serve, before uvicorn takes the signals: SIGTERM raises
    KeyboardInterrupt, as Ctrl-C does. uvicorn raises the signal again after its drain; a
    KeyboardInterrupt then is what its own run() and its workers' entry point take as a clean stop."""
    if threading.current_thread() is threading.main_thread():  # signals are only handled there
        signal.signal(signal.SIGTERM, signal.default_int_handler)


class ServerConfig(uvicorn.Config):
    """uvicorn's Config, plus the request-head deadline its protocol reads, and the SIGTERM handler
    set in each process that serves (the one process, or each worker: it is pickled to them)."""

    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout

    def get_loop_factory(self) -> Callable[[], "asyncio.AbstractEventLoop"] | None:
        # uvicorn's Server.run asks for its event loop just before it takes the signals, in the
        # process that serves: the one place to set a handler in a worker before uvicorn saves it
        stop_on_sigterm_as_on_ctrl_c()
        return super().get_loop_factory()


class HeadTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with a deadline for each request head: from the connection's opening
    for its first request, from the first byte of the next one on a kept-alive connection (the wait
    before that byte is uvicorn's keep-alive timeout). Past it, a client that had sent part of a head
    gets a 408 and the connection is closed; one that sent nothing is closed. Bodies have their own
    deadline, in the app (QA_BODY_TIMEOUT), and a request being answered none."""

    def __init__(self, config: uvicorn.Config, server_state: Any, app_state: dict[str, Any], _loop: "asyncio.AbstractEventLoop | None" = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # uvicorn's own Config (`uvicorn --http api.serving:HeadTimeoutH11Protocol`) has no deadline: the default
        self.header_timeout: float = getattr(config, "header_timeout", None) or Settings.model_fields["header_timeout"].default
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: "asyncio.Transport") -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def data_received(self, data: bytes) -> None:
        if self._head_deadline is None and self.conn.their_state is h11.IDLE:
            self._arm_head_deadline()  # the first byte of another request on a kept-alive connection
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # its head has come (or it was refused)
            self._disarm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        self._head_deadline = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        received, _ = self.conn.trailing_data  # the part of a head h11 holds, waiting for the rest
        if received and self.conn.our_state is h11.IDLE:
            client = "%s:%d" % self.client if self.client else "a client"
            log.info("closed the connection of %s: its request head did not come within %g s (QA_HEADER_TIMEOUT)", client, self.header_timeout)
            body = json_body({"detail": f"request head not received within {self.header_timeout:g} s"})
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
            self.transport.write(self.conn.send(h11.Response(status_code=408, headers=headers, reason=b"Request Timeout")) or b"")
            self.transport.write(self.conn.send(h11.Data(data=body)) or b"")
            self.transport.write(self.conn.send(h11.EndOfMessage()) or b"")
        self.transport.close()


class _Supervisor(Multiprocess):
    """uvicorn's supervisor of workers, which also says whether it stopped because it was asked to
    (it returns the same way when a worker fails to start, and uvicorn.run then exits 0)."""

    stop_asked = False

    def handle_int(self) -> None:
        self.stop_asked = True
        super().handle_int()

    def handle_term(self) -> None:
        self.stop_asked = True
        super().handle_term()

    def handle_break(self) -> None:  # Windows' Ctrl-Break
        self.stop_asked = True
        super().handle_break()


def server_config(settings: Settings, host: str, port: int, workers: int) -> ServerConfig:
    return ServerConfig(
        APP, factory=True, host=host, port=port, workers=workers, root_path=settings.root_path,
        log_level=settings.log_level.lower(), timeout_graceful_shutdown=settings.shutdown_timeout,
        http=HeadTimeoutH11Protocol, header_timeout=settings.header_timeout,
    )


def run_server(settings: Settings, host: str, port: int, workers: int) -> int:
    """Serve until SIGTERM or Ctrl-C; returns the exit status: 0 when it was asked to stop,
    STARTUP_FAILURE (3) when the app (or a worker) could not start."""
    config = server_config(settings, host, port, workers)
    if workers > 1:
        supervisor = _Supervisor(config, sockets=[config.bind_socket()])
        supervisor.run()
        if not supervisor.stop_asked:
            log.critical("a worker could not start (see above): the server stopped")
            return STARTUP_FAILURE
        return 0
    server = uvicorn.Server(config)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        server.run()
    except KeyboardInterrupt:  # SIGTERM or Ctrl-C, handed back by uvicorn after its drain (or come before it listened)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0 if server.started else STARTUP_FAILURE
