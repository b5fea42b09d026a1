"""The FastAPI app: settings, model loading, middleware, errors, OpenAPI.

Run with ``qa serve`` (``api.serving``: exit status 0 on SIGTERM, a deadline for request heads) or
``uvicorn api.app:create_app --factory`` (models load once, at start-up, in the lifespan; importing
this module loads nothing). The routes are in ``api.routes``; retrieval and reading live in
``qa.pipeline`` and ``index``.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import json
import logging
import multiprocessing
import os
import signal
import sys
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, NoReturn

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool

from api.auth import route_key_problem, route_keys
from api.concurrency import InFlight, ModelThreads
from api.metrics import ApiMetrics
from api.middleware import AuthGateMiddleware, BodyGuardMiddleware, ConcurrencyLimitMiddleware, PathMiddleware, Places, RequestMiddleware, json_body
from api.routes import STATIC_DIR, Runtime, router
from api.schemas import AskRequest, DocumentsIn, ExtractRequest, SearchQuery, SearchRequest, meant_field
from qa.logs import setup_logging
from qa.settings import Settings, SettingsError, configured_key, load_settings

if TYPE_CHECKING:  # imported lazily: qa.pipeline pulls in torch
    from qa.pipeline import QAService

log = logging.getLogger("api")

try:  # one version, pyproject's
    VERSION = importlib.metadata.version("qa-search")
except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
    VERSION = "0+unknown"

MAX_ECHOED_CHARS = 500
WRITE_ROUTES = ("add_documents", "add_document_files", "delete_document")  # their 503 for a damaged index says nothing was written
# the request model of each route that takes one, by endpoint name: where a 422 looks up the field meant
REQUEST_MODELS = {"ask": AskRequest, "search": SearchRequest, "search_get": SearchQuery, "extract": ExtractRequest, "add_documents": DocumentsIn}
PR_SET_PDEATHSIG = 1  # linux/prctl.h
STARTUP_FAILURE = 3  # uvicorn's exit status for an app that cannot start (uvicorn.config.STARTUP_FAILURE)


class StartupProblem(RuntimeError):
    """The service cannot start, for a reason its message says in one line, naming what to fix (the
    index folder, the models), as `qa serve` says it before starting uvicorn."""


def startup_exit(message: str) -> NoReturn:
    """The factory, called by uvicorn, cannot make the app: ``message`` logged as one line, and the
    exit status uvicorn gives its own factory errors (an exception here was a traceback)."""
    if not logging.getLogger().handlers:
        setup_logging("INFO")
    log.critical("%s", message)  # CRITICAL: the one line an operator must see, whatever QA_LOG_LEVEL
    raise SystemExit(STARTUP_FAILURE)


def load_service(settings: Settings, check_index: bool = True) -> "QAService":
    """The service of ``settings`` (its models, its index), a known failure as a StartupProblem: the
    index folder and the index are checked before the models load, as `qa serve` does (the index
    itself only with ``check_index``: `qa serve` has just done it)."""
    import sqlite3

    from index.e5_convert import ModelSourceError
    from index.store import ReindexNeeded
    from qa.cli_common import folder_problem, index_problem, served_index_problem
    from qa.pipeline import QAService

    problem = folder_problem(settings.data_dir, "QA_DATA_DIR")
    if problem is not None:
        raise StartupProblem(problem)
    # newer, damaged anywhere (not only where opening reads), unreadable: said before the models load
    problem = served_index_problem(settings) if check_index else None  # None without an index: the service starts empty
    if problem is not None:
        raise StartupProblem(problem)
    try:
        return QAService.from_settings(settings)
    except (ModelSourceError, ReindexNeeded) as exc:  # their lines name what to fix
        raise StartupProblem(str(exc)) from None
    except (sqlite3.DatabaseError, OSError) as exc:
        problem = index_problem(settings, exc)  # None: not the index folder's (the models' folder): the traceback says what
        if problem is None:
            raise
        raise StartupProblem(problem) from None


def create_app_checked() -> FastAPI:
    """The factory `qa serve` gives uvicorn (``api.serving.APP``): its preflight has just checked
    every page of the index (``qa.cli_common.served_index_problem``, up to 1.5 s per GB), so neither
    the app nor each worker of ``--workers N`` reads it all again. Run by another command
    (``uvicorn api.app:create_app --factory``, gunicorn), ``create_app`` checks it as it starts."""
    return create_app(index_checked=True)


class StartupProblemReport:
    """The outermost layer of the app, for the lifespan only. Starlette reports a failed start-up to
    the server with the exception's traceback as its message, which uvicorn logs; a StartupProblem is
    logged as its one line by the lifespan, so the server is told of the failure (uvicorn exits,
    status 3) with no message."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def report(message: Any) -> None:
            # sent from inside starlette's `except` around the lifespan: the exception is the one handled
            if message["type"] == "lifespan.startup.failed" and isinstance(sys.exc_info()[1], StartupProblem):
                message = {**message, "message": ""}
            await send(message)

        await self.app(scope, receive, report)


def end_with_parent() -> None:
    """In a worker of ``qa serve --workers N``: receive SIGTERM (a graceful drain) when the parent
    dies. Killed with SIGKILL, the parent cannot stop its workers: they went on serving, holding the
    port (a restart failed with "address already in use") and a GB of models each. Linux only;
    uvicorn starts every worker from its main thread, whose end is what the kernel watches."""
    parent = multiprocessing.parent_process()
    if parent is None or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
            raise OSError(ctypes.get_errno(), "prctl")
    except (OSError, AttributeError) as exc:  # no prctl (another libc): as before, nothing to do
        log.warning("a worker cannot be tied to its parent process (%s): kill the workers too if you kill the parent with SIGKILL", exc)
        return
    if os.getppid() != parent.pid:  # the parent died before the call
        os.kill(os.getpid(), signal.SIGTERM)


def echoed_input(value: Any) -> Any:
    """A 422's ``input`` as sent back: as given, unless its JSON is over MAX_ECHOED_CHARS characters."""
    size = len(json.dumps(value, ensure_ascii=False))
    return value if size <= MAX_ECHOED_CHARS else f"({size} characters of JSON, not repeated here)"


def binary_files(node: Any) -> None:
    """Files in a schema (``UploadFile``: a string of ``contentMediaType`` application/octet-stream,
    as OpenAPI 3.1 writes them) also marked ``format: binary``, as OpenAPI 3.0 wrote them: the
    Swagger UI of /docs offers a file field only for those (it showed a text box of random characters)."""
    if isinstance(node, dict):
        if node.get("type") == "string" and node.get("contentMediaType") == "application/octet-stream":
            node.setdefault("format", "binary")
        for value in node.values():
            binary_files(value)
    elif isinstance(node, list):
        for value in node:
            binary_files(value)


def json_body_problem(body: bytes) -> str | None:
    """What is wrong with a request body that is not JSON (the middleware has checked it is UTF-8),
    in the words `qa index` uses for a JSON file: line, column and, for a trailing comma or single
    quotes, what to change. None if it parses (FastAPI's own message is kept)."""
    from index.file_errors import json_syntax

    try:
        json.loads(body.decode("utf-8-sig"))
    except json.JSONDecodeError as exc:
        return json_syntax(exc, line=True)
    except ValueError:
        return None
    return None


def create_app(settings: Settings | None = None, service: "QAService | None" = None, index_checked: bool = False) -> FastAPI:
    """App factory. With ``service=None`` the models are loaded once, in the lifespan, after a check
    of every page of the index unless ``index_checked``. A setting that cannot be used is a
    SettingsError; with ``settings=None`` (uvicorn calls it so) it is one line logged and the exit
    status 3, as the service's own start-up failures (``load_service``) are."""
    from_env = settings is None
    try:
        settings = settings or load_settings()  # a bad QA_* variable: a SettingsError naming it
        problem = settings.keys_problem()
        if problem is not None:
            raise SettingsError(problem)
    except SettingsError as exc:
        if not from_env:  # the caller's own settings: its error to handle
            raise
        startup_exit(str(exc))
    end_with_parent()
    if not logging.getLogger().handlers:  # a worker process of `qa serve --workers N`, or another ASGI server
        setup_logging(settings.log_level)  # as `qa` does (faiss's loader would report each library it tries)
    log.setLevel(settings.log_level.upper())
    for name, key, what in (("QA_API_KEY", settings.api_key, "writes"), ("QA_READ_KEY", settings.read_key, "reads")):
        if key is not None and configured_key(key) is None:  # set, but to spaces: almost surely a mistake
            log.warning("%s is set but blank: %s need no key", name, what)
    log.info("writes %s; reads %s", "need QA_API_KEY" if configured_key(settings.api_key) else "are open (QA_API_KEY is not set)",
             "need QA_READ_KEY or QA_API_KEY" if configured_key(settings.read_key) else "are open")
    runtime = Runtime(settings=settings, metrics=ApiMetrics(), inflight=InFlight(), model_threads=ModelThreads(settings.model_threads))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        owned = False
        if app.state.service is None:
            log.info("loading models and opening the index in %s", settings.data_dir)
            t0 = time.perf_counter()
            try:
                app.state.service = await run_in_threadpool(load_service, settings, not index_checked)
            except StartupProblem as exc:  # one line, and StartupProblemReport keeps its traceback out of the server's log
                log.critical("%s", exc)  # as startup_exit's: seen whatever QA_LOG_LEVEL (uvicorn's own line says only that it failed)
                raise
            owned = True
            log.info("service ready in %.1f s", time.perf_counter() - t0)
        await run_in_threadpool(runtime.refresh_gauges, app.state.service)
        try:
            yield
        finally:
            svc = app.state.service
            if owned and hasattr(svc, "close"):
                await run_in_threadpool(svc.close)

    # the interactive docs (/docs, /redoc) from files shipped in a package: FastAPI's default pages
    # load Swagger UI from a CDN, blank on machines without internet access
    app = FastAPIOffline(
        title="qa-search",
        version=VERSION,
        summary="Recherche sémantique et questions-réponses extractives sur des articles de presse en français.",
        lifespan=lifespan,
        # operation ids are the endpoints' names ("ask", "search_get"), which generated clients turn
        # into method names, instead of FastAPI's "search_get_search_get"
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.settings = settings
    app.state.service = service
    app.state.runtime = runtime

    import sqlite3

    from index.storage import damaged_line, is_damaged
    from index.store import ReindexNeeded
    from index.text import visible

    @app.exception_handler(ReindexNeeded)
    async def reindex_needed(request: Request, exc: ReindexNeeded) -> Response:
        # another process re-embedded the index with another model: this server cannot use it. The
        # operator reads which folder and models in the log; a client is not told the server's paths
        request_id = request.scope.get("state", {}).get("request_id")
        log.error("request_id=%s %s; then restart the server", request_id, exc)
        detail = "the index was rebuilt with another embedding model by another process: the server must be restarted (details in its log)"
        return Response(json_body({"detail": detail, "request_id": request_id}), status_code=503, media_type="application/json")

    @app.exception_handler(sqlite3.DatabaseError)
    async def index_damaged(request: Request, exc: sqlite3.DatabaseError) -> Response:
        # a page of the index found damaged by a read or a write: the operator's to fix (restore a
        # backup), in one line of the log, not a traceback; the client gets a 503, as for a folder
        # that cannot be written, and what does not read the damaged pages goes on being served
        if not is_damaged(exc):
            raise exc  # anything else is an internal error (RequestMiddleware logs its traceback)
        request_id = request.scope.get("state", {}).get("request_id")
        log.error("request_id=%s %s %s: %s", request_id, request.method, visible(request.url.path), damaged_line(settings.data_dir, str(exc)))
        writes = getattr(request.scope.get("endpoint"), "__name__", None) in WRITE_ROUTES
        written = "nothing was written; " if writes else ""
        detail = f"the server's index is damaged: {written}the operator must restore it (the server's log says what to do)"
        return Response(json_body({"detail": detail, "request_id": request_id}), status_code=503, media_type="application/json")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's 422, but a large offending value is not sent back whole (a 2 MB body would
        # come back as a 2 MB answer)
        errors = [{**e, "input": echoed_input(e["input"])} if "input" in e else e for e in jsonable_encoder(exc.errors())]
        for e in errors:  # a body that is not JSON: where, and the usual fix (a trailing comma), as `qa index` says of a file
            if e.get("type") == "json_invalid":
                e["msg"] = json_body_problem(await request.body()) or e["msg"]
        root = REQUEST_MODELS.get(getattr(request.scope.get("endpoint"), "__name__", None))
        for e in errors:  # an unknown field: which one was meant ("after" for "published_after"), as `qa eval` says
            meant = meant_field(root, e["loc"]) if root is not None and e.get("type") == "extra_forbidden" and e.get("loc") else None
            if meant is not None:
                e["msg"] = f"{e['msg']}: did you mean {meant!r}?"
        return Response(json_body({"detail": errors}), status_code=422, media_type="application/json")

    # the page's template: its {{...}} are filled in at / (api.routes.page), and its relative URLs
    # lead nowhere from /static/: never served as it is
    @app.api_route("/static/index.html", methods=["GET", "HEAD"], include_in_schema=False)
    async def page_template() -> Response:
        return RedirectResponse("../")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    own_routes = list(app.router.routes)  # the schema, the docs pages, /static
    app.include_router(router)
    # FastAPI keeps an included router as one lazy entry of app.routes; the middleware that must know
    # a request's route before routing (its key is checked before its body is read) and the schema
    # below look at the routes themselves. No prefix: they match as the app routes them
    routes = [*own_routes, *router.routes]

    # The schema says which operations need the key with this configuration: a route whose key is
    # not set takes requests with or without it (an empty requirement makes it optional).
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = default_openapi()
        for component in schema.get("components", {}).get("schemas", {}).values():
            binary_files(component)
        for route in routes:
            for method in getattr(route, "methods", ()):
                op = schema["paths"].get(getattr(route, "path_format", None), {}).get(method.lower())
                if op is not None and "security" in op and route_keys(route, settings)[0] is None:  # declared, but not set
                    op["security"] = [{}, {"HTTPBearer": []}]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

    # middleware: the last added is the outermost. The concurrency limit is innermost: a request
    # takes a place only once its key is checked, and its body is all there (the body guard takes
    # it then: a client trickling a body would otherwise hold one for QA_BODY_TIMEOUT)
    places = Places(settings.limit_concurrency) if settings.limit_concurrency is not None else None
    if places is not None:
        app.add_middleware(ConcurrencyLimitMiddleware, places=places)
    app.add_middleware(
        BodyGuardMiddleware, max_body_bytes=settings.max_body_bytes, max_upload_bytes=settings.max_upload_bytes, routes=routes,
        timeout_s=settings.body_timeout, places=places,
    )
    app.add_middleware(AuthGateMiddleware, routes=routes, problem=lambda route, authorization: route_key_problem(route, authorization, settings))
    app.add_middleware(PathMiddleware, routes=routes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "HEAD", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            # a browser shows a cross-origin script only the safelisted headers and these: the wait a 503 asks for too
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(RequestMiddleware, metrics=runtime.metrics, routes=routes)
    app.add_middleware(StartupProblemReport)

    return app
