"""Pure ASGI middleware: request ids, metrics, internal-error answers, body size and encoding.

Pure ASGI (not ``BaseHTTPMiddleware``) so that nothing is buffered twice and exceptions raised by
the routes reach us unchanged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
import unicodedata
import uuid
from typing import Any, Callable, Iterator
from urllib.parse import unquote_to_bytes

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import ApiMetrics
from api.schemas import api_json
from index.text import has_lone_surrogate, json_nodes, visible

log = logging.getLogger("api")

REQUEST_ID_HEADER = "x-request-id"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,128}")


def json_body(content: Any) -> bytes:
    """A body written here as FastAPI writes the API's others (``api_json``): one style byte for byte."""
    return api_json(content).encode("utf-8")


def _json_response(status: int, body: dict[str, Any], extra_headers: list[tuple[bytes, bytes]] | None = None) -> tuple[Message, Message]:
    payload = json_body(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    headers += extra_headers or []
    return (
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": payload},
    )


def match_route(scope: Scope, routes: list | None) -> Any:
    """The route that will answer ``scope`` (``scope["route"]`` once routed; before routing, the
    first of ``routes`` that matches it fully, else the first that matches its path with another
    method), or None."""
    route = scope.get("route")
    if route is None and routes:
        from starlette.routing import Match

        partial = None
        for candidate, match in _matches(scope, routes):  # as Starlette's router: the first full match, else the first partial one
            if match is Match.FULL:
                return candidate
            if partial is None:
                partial = candidate
        return partial
    return route


def _matches(scope: Scope, routes: list) -> Iterator[tuple[Any, Any]]:
    """(route, Match.FULL or Match.PARTIAL) for each route whose path matches ``scope``, in order."""
    from starlette.routing import Match

    for route in routes:
        try:
            match, _ = route.matches(scope)
        except Exception:  # pragma: no cover - a route that cannot match this scope
            continue
        if match is not Match.NONE:
            yield route, match


_ENDPOINT = "qa.endpoint_route"


def endpoint_route(scope: Scope, routes: list | None) -> Any:
    """The route whose endpoint will answer ``scope`` (its path and its method), or None when the
    router will answer itself (404, 405, a redirect to the path with or without its slash).
    Found once per request: the key gate and the body guard both ask."""
    if _ENDPOINT in scope:
        return scope[_ENDPOINT]
    route = match_route(scope, routes)
    if route is None or scope.get("method") not in (getattr(route, "methods", None) or ()):
        route = None
    scope[_ENDPOINT] = route
    return route


def route_template(scope: Scope, routes: list | None = None) -> str:
    """The matched route's path template ("/documents/{doc_id}"), never the raw path (whose
    values would make one time series per document). Requests answered before routing (413,
    400) are matched here against ``routes``."""
    if path_problem(scope.get("path", "")) is not None:  # refused before routing: no route answered it
        return "unmatched"
    route = match_route(scope, routes)
    # path_format drops converters: "/documents/{doc_id}", not "/documents/{doc_id:path}"
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


def _not_utf8(data: bytes) -> str | None:
    """Where percent-decoded bytes stop being UTF-8 ("its byte 0 is 0xFF"), or None when they are."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"its byte {exc.start} is 0x{data[exc.start]:02X}"
    return None


def path_problem(path: str, raw_path: bytes | None = None) -> str | None:
    """Why no resource can live at ``path`` (percent-decoded; ``raw_path`` as sent), or None. A
    control character is never part of a route or a document id, and Starlette's patterns end in
    ``$``, which also matches before a final line break: ``/documents/a%0A`` would otherwise reach
    document ``a``. Bytes that are not UTF-8 (``/documents/%FF``) would reach it as U+FFFD."""
    bad = _not_utf8(unquote_to_bytes(raw_path)) if raw_path is not None else None
    if bad is not None:
        return f"no resource has a path that is not UTF-8 once percent-decoded ({bad}): percent-encode the UTF-8 bytes of a document id (é is %C3%A9)"
    for i, ch in enumerate(path):
        if unicodedata.category(ch) == "Cc":
            return f"no resource has a control character in its path (U+{ord(ch):04X} at position {i}): routes and document ids never contain one"
    return None


def method_not_allowed(method: str, path: str, allowed: list[str]) -> str:
    """A 405's detail: the methods the path takes (as its ``Allow`` header), and for the ``PUT`` or
    ``PATCH`` that REST clients send to change a document, how documents are replaced here."""
    detail = f"{method} is not allowed on {path}: it takes {', '.join(allowed)}"
    if path.startswith("/documents") and method in ("PUT", "PATCH"):
        detail += "; to add or replace a document, POST /documents with its id (a document sent again under its id replaces it)"
    return detail


class PathMiddleware:
    """Answers 404 for paths no resource can have (``path_problem``), answers HEAD wherever GET is
    answered (FastAPI's routes take only the methods they name, and monitors and link checkers send
    HEAD), and makes a 405's ``Allow`` list every method the path takes (Starlette lists those of the
    first route whose path matches: ``GET /search`` and ``POST /search`` are two routes)."""

    def __init__(self, app: ASGIApp, routes: list):
        self.app = app
        self.routes = routes

    def _methods(self, scope: Scope) -> set[str]:
        return {m for route, _ in _matches(scope, self.routes) for m in (getattr(route, "methods", None) or ())}

    def _allowed(self, scope: Scope) -> list[str]:
        methods = self._methods(scope)
        return sorted(methods | {"HEAD"} if "GET" in methods else methods)

    def _head_as_get(self, scope: Scope) -> bool:
        """A HEAD that no route takes, on a path some route answers with GET."""
        from starlette.routing import Match

        if scope.get("method") != "HEAD" or any(match is Match.FULL for _, match in _matches(scope, self.routes)):
            return False
        return "GET" in self._methods(scope)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = path_problem(scope.get("path", ""), scope.get("raw_path"))
        if problem is not None:
            for m in _json_response(404, {"detail": problem}):
                await send(m)
            return
        if self._head_as_get(scope):
            # The GET answer with its headers (Content-Length included, as HTTP asks) and no body.
            scope = {k: v for k, v in scope.items() if k != _ENDPOINT}
            scope["method"] = "GET"
            send = _without_body(send)

        detail: list[bytes] = []  # the 405's own body, once its start is sent

        async def send_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                allowed = self._allowed(scope)
                if allowed:
                    drop = (b"allow", b"content-length") if scope["method"] != "HEAD" else (b"allow",)
                    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in drop] + [(b"allow", ", ".join(allowed).encode())]
                    if scope["method"] != "HEAD":
                        detail.append(json_body({"detail": method_not_allowed(scope["method"], scope.get("path", ""), allowed)}))
                        headers.append((b"content-length", str(len(detail[0])).encode()))
                    message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and detail:
                message = {**message, "body": detail.pop(), "more_body": False}
            await send(message)

        await self.app(scope, receive, send_allow)


def _without_body(send: Send) -> Send:
    async def send_head(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return send_head


_PLACE = "qa.place"  # set in the scope of a request that holds a place


class Places:
    """At most ``limit`` requests in progress in this process (one event loop: a plain counter).
    ``exempt`` paths (the probes) never need a place: a busy server is not a dead one."""

    def __init__(self, limit: int, exempt: tuple[str, ...] = ("/health", "/metrics")):
        self.limit = limit
        self.exempt_paths = frozenset(exempt)
        self.active = 0

    def exempt(self, scope: Scope) -> bool:
        path, root = scope.get("path", ""), scope.get("root_path", "")
        if root and path.startswith(root):  # uvicorn --root-path puts the prefix in the path
            path = path[len(root):]
        return scope["type"] != "http" or path in self.exempt_paths

    def take(self, scope: Scope) -> bool:
        """A place for this request (marked in its scope); False when all are taken."""
        if self.active >= self.limit:
            return False
        self.active += 1
        scope[_PLACE] = True
        return True

    def give_back(self) -> None:
        self.active -= 1

    async def refuse(self, send: Send) -> None:
        busy = {"detail": f"busy: {self.limit} requests in progress, the most this server takes (QA_LIMIT_CONCURRENCY); retry shortly"}
        for m in _json_response(503, busy, [(b"retry-after", b"1")]):
            await send(m)


class ConcurrencyLimitMiddleware:
    """Beyond ``places.limit`` requests in progress a request gets a 503 at once, with
    ``Retry-After``, instead of queueing behind the reader. Unlike uvicorn's ``limit_concurrency``,
    idle keep-alive connections do not count. Innermost: a request takes its place once its key is
    checked; one with a body takes it in ``BodyGuardMiddleware``, once the body is all there (a
    client trickling one must not hold a place) and before it is judged (parsing a large body is
    seconds of CPU, which the limit bounds)."""

    def __init__(self, app: ASGIApp, places: Places):
        self.app = app
        self.places = places

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _PLACE in scope or self.places.exempt(scope):
            await self.app(scope, receive, send)
            return
        if not self.places.take(scope):
            await self.places.refuse(send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.places.give_back()


class AuthGateMiddleware:
    """Checks the API key of routes that need one before their body is read, so that a client
    without the key learns only that (401/403), not how its body would have been judged (413,
    415, 422). ``problem(route, authorization)`` gives (status, detail) or None; the routes'
    own dependencies check the same thing again (and describe it in the OpenAPI schema)."""

    def __init__(self, app: ASGIApp, routes: list, problem: Callable[[Any, str | None], tuple[int, str] | None]):
        self.app = app
        self.routes = routes
        self.problem = problem

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") != "OPTIONS":
            route = endpoint_route(scope, self.routes)  # None: the router's 404 / 405 / redirect, no key needed to learn it
            refusal = self.problem(route, Headers(scope=scope).get("authorization")) if route is not None else None
            if refusal is not None:
                status, detail = refusal
                extra = [(b"www-authenticate", b"Bearer")] if status == 401 else None
                for m in _json_response(status, {"detail": detail}, extra):
                    await send(m)
                return
        await self.app(scope, receive, send)


class RequestMiddleware:
    """Outermost layer: gives every request an id (echoed as X-Request-ID), records metrics, and
    turns any unhandled exception into a logged 500 ``{"detail": "internal error", "request_id"}``."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics, routes: list | None = None):
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get(REQUEST_ID_HEADER)
        request_id = incoming if incoming and _SAFE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        rid_header = (b"x-request-id", request_id.encode())
        status = 500
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": headers + [rid_header]}
            await send(message)

        async def answer(code: int, detail: str, *extra: tuple[bytes, bytes]) -> None:
            """The error response, unless the app had started one (then only the log says it)."""
            nonlocal status
            if not started:
                start, body = _json_response(code, {"detail": detail, "request_id": request_id}, [rid_header, *extra])
                status = code
                await send(start)
                await send(body)

        t0 = time.perf_counter()
        try:
            await self.app(scope, receive, send_wrapper)
        except asyncio.CancelledError:
            # uvicorn cancels a request only when it is still running QA_SHUTDOWN_TIMEOUT after a SIGTERM
            # (not when its client goes away): the client gets a 503 to retry elsewhere rather than a
            # 500, and the log a line rather than a traceback
            log.warning("request_id=%s %s %s cancelled before its answer (server shutting down)", request_id, scope.get("method"), visible(scope.get("path", "")))
            await answer(503, "the server is shutting down: retry", (b"retry-after", b"1"), (b"connection", b"close"))
        except Exception:
            log.exception("internal error request_id=%s %s %s", request_id, scope.get("method"), visible(scope.get("path", "")))
            await answer(500, "internal error")
        finally:
            elapsed = time.perf_counter() - t0
            self.metrics.observe_request(scope.get("method", "GET"), route_template(scope, self.routes), status, elapsed)
            # the path with its control characters escaped: a %0A must not forge a log line
            log.debug("request_id=%s %s %s -> %s in %.1f ms", request_id, scope.get("method"), visible(scope.get("path", "")), status, elapsed * 1000)


class _Constant:
    """``NaN`` / ``Infinity`` as written in a body (Python's json accepts them; JSON does not)."""

    def __init__(self, text: str):
        self.text = text


def json_body_problem(body: bytes) -> dict[str, Any] | None:
    """What makes a well-formed JSON body unusable, as one FastAPI-style 422 error naming where it is:
    ``NaN`` / ``Infinity`` (not JSON numbers), a number that overflows a double, or a string with an unpaired UTF-16 surrogate escape
    (``"\\ud800"``: no such character exists, nothing downstream can encode it). None when the body
    is fine or not JSON at all (FastAPI answers syntax errors itself)."""
    try:
        value = json.loads(body, parse_constant=_Constant)
    except (ValueError, RecursionError):  # not JSON, or nested too deep: FastAPI's own answer
        return None
    for loc, v, is_key in json_nodes(value, ("body",)):
        if isinstance(v, _Constant):
            return {"type": "finite_number", "loc": list(loc), "msg": f"{v.text} is not a JSON number: send a finite number", "input": None}
        if isinstance(v, float) and not math.isfinite(v):  # 1e400: JSON, but past a double's range (it would be stored as null)
            return {"type": "finite_number", "loc": list(loc), "msg": "number too large for a 64-bit float (about 1.8e308 at most): send a finite number", "input": None}
        if isinstance(v, str) and has_lone_surrogate(v):  # json.loads joins valid pairs: any surrogate left is unpaired
            msg = ("a key holds an unpaired UTF-16 surrogate escape: send valid Unicode text" if is_key else
                   "the string holds an unpaired UTF-16 surrogate escape (\\ud800-\\udfff): send valid Unicode text")
            return {"type": "string_unicode", "loc": list(loc), "msg": msg, "input": None}
    return None


def query_problems(query_string: bytes) -> list[dict[str, Any]]:
    """A FastAPI-style 422 error for each query parameter whose name or value is not UTF-8 once
    percent-decoded (``?q=%FF``). Starlette decodes them with errors="replace": ``%FF`` would reach
    the route as U+FFFD, and ``q`` be refused for having "no letter or digit"."""
    problems = []
    for part in query_string.split(b"&"):  # as urllib.parse.parse_qsl, which Starlette uses
        if not part:
            continue
        raw_name, _, raw_value = part.partition(b"=")
        name, value = (unquote_to_bytes(x.replace(b"+", b" ")) for x in (raw_name, raw_value))
        for what, data in (("name", name), ("value", value)):
            bad = _not_utf8(data)
            if bad is not None:
                shown = name.decode("utf-8", "replace")
                where = "a query parameter's name" if what == "name" else f"query parameter {shown!r}"
                problems.append({
                    "type": "string_unicode", "loc": ["query", shown], "input": None,
                    "msg": f"{where} is not UTF-8 text once percent-decoded ({bad}): percent-encode the UTF-8 bytes of the text (é is %C3%A9)",
                })
                break
    return problems


def _is_json(content_type: str) -> bool:
    # FastAPI (strict_content_type) reads a body as JSON only when it is labelled so
    return content_type == "application/json" or (content_type.startswith("application/") and content_type.endswith("+json"))


def takes_files(route: Any) -> bool:
    """Whether ``route`` takes its body as form fields and files (``File(...)`` parameters: POST
    /documents/files), read from multipart/form-data; every other body this API takes is JSON."""
    from fastapi import params

    body_field = getattr(route, "body_field", None)
    return isinstance(getattr(body_field, "field_info", None), params.Form)


class BodyGuardMiddleware:
    """Guards request bodies before the app parses them: over ``max_body_bytes`` (413); not all
    there within ``timeout_s`` (408); not JSON
    (415: every body this API takes is JSON); not UTF-8 (400); ``NaN`` or unpaired surrogates
    (422 naming the field, see ``json_body_problem``). Query strings too, of every method: a
    parameter that is not UTF-8 once percent-decoded is a 422 naming it (``query_problems``).
    A route that takes files (``takes_files``: POST /documents/files) takes multipart/form-data
    instead, up to ``max_upload_bytes`` (413 beyond, 415 for any other type); its parts are the
    route's to judge.

    The body is read (at most its limit) before the app sees it and then replayed, so the
    size check also holds for chunked uploads without a Content-Length.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, routes: list | None = None, timeout_s: float | None = None, places: Places | None = None,
                 max_upload_bytes: int | None = None):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_body_bytes if max_upload_bytes is None else max_upload_bytes
        self.routes = routes
        self.timeout_s = timeout_s  # for the whole body: uvicorn waits for a trickling client forever
        self.places = places  # QA_LIMIT_CONCURRENCY: taken once the body is here, before it is judged

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("query_string"):
            # only where an endpoint answers (as for bodies: the router's 404 or 405 says nothing more)
            problems = query_problems(scope["query_string"])
            if problems and (self.routes is None or endpoint_route(scope, self.routes) is not None):
                for m in _json_response(422, {"detail": problems}):
                    await send(m)
                return
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        files = False
        if self.routes is not None:
            route = endpoint_route(scope, self.routes)
            # no endpoint takes this body (404, 405, "/ask/" redirected to "/ask"): the router answers
            # without reading it, and judging it first would tell a client without a key about it.
            # An endpoint that takes no body (DELETE /documents/{id}) ignores one, as HTTP allows.
            if route is None or getattr(route, "body_field", True) is None:
                await self.app(scope, receive, send)
                return
            files = takes_files(route)
        limit = self.max_upload_bytes if files else self.max_body_bytes
        headers = Headers(scope=scope)
        too_large = {"detail": f"request body too large: at most {limit} bytes" + ("; send fewer or smaller files per request" if files else "")}
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            for m in _json_response(413, too_large):
                await send(m)
            return

        chunks: list[bytes] = []
        size = 0
        with anyio.move_on_after(self.timeout_s) as waited:
            while size <= limit:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        # answered outside the deadline's scope: it must not cut a response being sent
        if size > limit:
            for m in _json_response(413, too_large):
                await send(m)
            return
        if waited.cancelled_caught:
            detail = f"request body not received within {self.timeout_s:g} s ({size} bytes came): send it at once"
            for m in _json_response(408, {"detail": detail}, [(b"connection", b"close")]):
                await send(m)
            return
        body = b"".join(chunks)
        if self.places is None or self.places.exempt(scope):
            await self._judged(scope, receive, send, headers, body, files)
            return
        if not self.places.take(scope):
            await self.places.refuse(send)
            return
        try:
            await self._judged(scope, receive, send, headers, body, files)
        finally:
            self.places.give_back()

    async def _judged(self, scope: Scope, receive: Receive, send: Send, headers: Headers, body: bytes, files: bool = False) -> None:
        """The body judged, then replayed to the app."""
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if body and files:
            refusal = _files_refusal(content_type)
            if refusal is not None:
                for m in _json_response(*refusal):
                    await send(m)
                return
        elif body:
            # parsing and walking up to max_body_bytes of JSON takes seconds of CPU: off the event
            # loop, so that other requests (/health) are not stalled meanwhile
            refusal = await run_in_threadpool(self._refusal, body, content_type)
            if refusal is not None:
                for m in _json_response(*refusal):
                    await send(m)
                return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect as usual

        await self.app(scope, replay, send)

    @staticmethod
    def _refusal(body: bytes, content_type: str) -> tuple[int, dict[str, Any]] | None:
        if not _is_json(content_type):
            got = f"got {content_type!r}" if content_type else "none was sent"
            return 415, {"detail": f"request body must be JSON: send the header Content-Type: application/json ({got})"}
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return 400, {"detail": f"request body must be UTF-8 encoded JSON (invalid byte at position {exc.start})"}
        problem = json_body_problem(body)
        if problem is not None:
            return 422, {"detail": [problem]}
        return None


def _files_refusal(content_type: str) -> tuple[int, dict[str, Any]] | None:
    """A body for a route that takes files is multipart/form-data (what ``curl -F`` and HTML forms send)."""
    if content_type == "multipart/form-data":
        return None
    got = f"got {content_type!r}" if content_type else "none was sent"
    return 415, {"detail": f"request body must be multipart/form-data, each file a part named 'files', as curl -F files=@rapport.pdf sends it ({got})"}
