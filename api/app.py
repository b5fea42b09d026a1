"""HTTP API and question page.

Run with ``uvicorn api.app:create_app --factory`` (models load once, at start-up, in the lifespan;
importing this module loads nothing). The routes only validate, call the ``QAService`` off the
event loop, and shape JSON: retrieval and reading live in ``qa.pipeline`` and ``index``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import importlib.metadata
import json
import logging
import threading
import time
import weakref
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Awaitable, Callable, TypeVar

import anyio
import anyio.to_thread

from fastapi import Depends, FastAPI, HTTPException, Path as PathParam, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URL

from api.metrics import CONTENT_TYPE_LATEST, ApiMetrics
from api.middleware import AuthGateMiddleware, BodyGuardMiddleware, ConcurrencyLimitMiddleware, PathMiddleware, Places, RequestMiddleware
from api.schemas import (
    DEFAULT_SEARCH_TOP_K,
    MAX_OFFSET,
    MAX_PAGE,
    AddedDocument,
    AskRequest,
    AskResponse,
    DeleteResponse,
    DocumentInfoOut,
    DocumentOut,
    DocumentPage,
    DocumentsAdded,
    DocumentsIn,
    ErrorResponse,
    ExtractedAnswerOut,
    ExtractRequest,
    ExtractResponse,
    FiltersIn,
    HealthResponse,
    SearchHit,
    SearchQuery,
    SearchRequest,
    SearchResponse,
    document_not_found,
)
from index.schema import MAX_ID_CHARS, Document, Filters
from qa.logs import setup_logging
from qa.settings import Settings, SettingsError, configured_key, load_settings

if TYPE_CHECKING:  # imported lazily: qa.pipeline pulls in torch
    from qa.pipeline import QAService

log = logging.getLogger("api")

STATIC_DIR = Path(__file__).resolve().parent / "static"
try:  # one version, pyproject's
    VERSION = importlib.metadata.version("qa-search")
except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
    VERSION = "0+unknown"
T = TypeVar("T")

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

ERR = {
    400: {"model": ErrorResponse, "description": "Body is not UTF-8 JSON"},
    401: {"model": ErrorResponse, "description": "Missing API key (Authorization: Bearer <key>)"},
    403: {"model": ErrorResponse, "description": "Wrong API key"},
    404: {"model": ErrorResponse, "description": "Unknown document"},
    408: {"model": ErrorResponse, "description": "Body not received within QA_BODY_TIMEOUT seconds"},
    413: {"model": ErrorResponse, "description": "Body over the configured size limit"},
    415: {"model": ErrorResponse, "description": "Body is not JSON (send Content-Type: application/json)"},
    500: {"model": ErrorResponse, "description": "Internal error (logged with the request id)"},
    503: {"model": ErrorResponse, "description": "Service not loaded yet, or busy: more requests in progress than QA_LIMIT_CONCURRENCY (retry after Retry-After seconds); for writes, also: the index folder cannot be written (nothing was written)"},
    507: {"model": ErrorResponse, "description": "The server's index storage is full: nothing was written"},
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: ERR[c] for c in codes}


# --- helpers -------------------------------------------------------------------------------


def to_filters(f: FiltersIn | None) -> Filters | None:
    if f is None:
        return None
    if not any((f.document_ids, f.source, f.published_after, f.published_before)):
        return None
    return Filters(document_ids=f.document_ids, source=f.source, published_after=f.published_after, published_before=f.published_before)


def document_id_for(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


async def _set_when_disconnected(request: Request, event: threading.Event, poll_s: float = 0.25) -> None:
    while not await request.is_disconnected():
        await asyncio.sleep(poll_s)
    event.set()


class ModelThreads:
    """Runs model work (searches, reading, writes) in at most ``n`` threads at a time.

    Each thread that runs torch keeps its own team of OpenMP threads and their buffers, so 64
    requests at once in the default pool of 40 threads grew a server by more than a GB for no more
    answers per second (``bench/ask_load.py``); beyond ``n`` requests wait in the event loop, where
    waiting costs nothing, and /health never waits behind them. Writes queue for their turn in the
    event loop too (``write``), so that writes waiting for one another never hold the threads that
    searches need: the store lets searches in between a long write's batches.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        # per event loop (a TestClient runs one of its own): anyio's limiters belong to one
        self._limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[anyio.CapacityLimiter, anyio.Lock]] = weakref.WeakKeyDictionary()

    def _for_loop(self) -> tuple[anyio.CapacityLimiter, anyio.Lock]:
        loop = asyncio.get_running_loop()
        if loop not in self._limiters:
            self._limiters[loop] = (anyio.CapacityLimiter(self.n), anyio.Lock())
        return self._limiters[loop]

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args), limiter=self._for_loop()[0])

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        async with self._for_loop()[1]:
            return await self(fn, *args)


class InFlight:
    """Identical concurrent requests share one computation (keyed per event loop)."""

    def __init__(self) -> None:
        self._futures: dict[tuple, asyncio.Future] = {}

    async def run(self, key: tuple, fn: Callable[[], T], runner: Callable[..., Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        key = (id(loop), *key)
        fut = self._futures.get(key)
        if fut is None:
            fut = asyncio.ensure_future(runner(fn))
            self._futures[key] = fut

            def _done(f: asyncio.Future, key: tuple = key) -> None:
                if self._futures.get(key) is f:
                    del self._futures[key]
                if not f.cancelled():
                    f.exception()  # mark as retrieved; waiters re-raise it

            fut.add_done_callback(_done)
        # shield: a client that goes away does not cancel the work others wait for
        return await asyncio.shield(fut)

    def clear(self) -> None:
        self._futures.clear()


# --- dependencies (module level: FastAPI resolves annotations from the module globals) --------

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <key>; needed only when QA_API_KEY (writes) or QA_READ_KEY (reads) is set")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


MAX_ECHOED_CHARS = 500


def echoed_input(value: Any) -> Any:
    """A 422's ``input`` as sent back: as given, unless its JSON is over MAX_ECHOED_CHARS characters."""
    size = len(json.dumps(value, ensure_ascii=False))
    return value if size <= MAX_ECHOED_CHARS else f"({size} characters of JSON, not repeated here)"


def key_problem(authorization: str | None, accepted: list[str], read_only: list[str] | None = None) -> tuple[int, str] | None:
    """Why an ``Authorization`` header does not open a route that takes one of ``accepted``
    keys: (401, ...) when no bearer key is sent, (403, ...) when it is not one of them; None when
    it opens it. Used by the route dependencies and, before any body is read, by ``AuthGate``."""
    scheme, _, given = (authorization or "").strip().partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        return 401, "missing API key: send the header Authorization: Bearer <key>"
    ok = reads_only = False
    for key in accepted:  # compare with every key, constant time each
        ok |= hmac.compare_digest(given.encode("utf-8"), key.encode("utf-8"))
    for key in read_only or []:
        reads_only |= hmac.compare_digest(given.encode("utf-8"), key.encode("utf-8"))
    if ok:
        return None
    return (403, "this key (QA_READ_KEY) opens reads only: writes need QA_API_KEY") if reads_only else (403, "invalid API key")


def write_keys(settings: Settings) -> list[str] | None:
    """Keys that open writes; None when writes are open."""
    api_key = configured_key(settings.api_key)
    return [api_key] if api_key is not None else None


def read_keys(settings: Settings) -> list[str] | None:
    """Reads are open unless ``read_key`` is set; then ``read_key`` or ``api_key`` opens them."""
    read_key = configured_key(settings.read_key)
    if read_key is None:
        return None
    api_key = configured_key(settings.api_key)
    return [read_key] + ([api_key] if api_key else [])


def _check_key(request: Request, accepted: list[str] | None, read_only: list[str] | None = None) -> None:
    if accepted is None:
        return
    problem = key_problem(request.headers.get("authorization"), accepted, read_only)
    if problem is not None:
        status, detail = problem
        raise HTTPException(status, detail, headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)


def require_write(request: Request, credentials: Credentials) -> None:
    """Writes need ``api_key`` when it is set."""
    settings = request.app.state.settings
    _check_key(request, write_keys(settings), read_keys(settings))


def require_read(request: Request, credentials: Credentials) -> None:
    """Reads are open unless ``read_key`` is set; then ``read_key`` or ``api_key`` opens them."""
    _check_key(request, read_keys(request.app.state.settings))


def get_service(request: Request) -> Any:
    svc = request.app.state.service
    if svc is None:
        raise HTTPException(503, "service not loaded yet")
    return svc


Service = Annotated[Any, Depends(get_service)]
READ = [Depends(require_read)]
WRITE = [Depends(require_write)]


# --- the app ---------------------------------------------------------------------------------


def create_app(settings: Settings | None = None, service: "QAService | None" = None) -> FastAPI:
    """App factory. With ``service=None`` the models are loaded once, in the lifespan."""
    settings = settings or load_settings()  # a bad QA_* variable: a SettingsError naming it
    if not logging.getLogger().handlers:  # a worker process of `qa serve --workers N`, or another ASGI server
        setup_logging(settings.log_level)  # as `qa` does (faiss's loader would report each library it tries)
    log.setLevel(settings.log_level.upper())
    problem = settings.keys_problem()
    if problem is not None:
        raise SettingsError(problem)
    for name, key, what in (("QA_API_KEY", settings.api_key, "writes"), ("QA_READ_KEY", settings.read_key, "reads")):
        if key is not None and configured_key(key) is None:  # set, but to spaces: almost surely a mistake
            log.warning("%s is set but blank: %s need no key", name, what)
    log.info("writes %s; reads %s", "need QA_API_KEY" if configured_key(settings.api_key) else "are open (QA_API_KEY is not set)",
             "need QA_READ_KEY or QA_API_KEY" if configured_key(settings.read_key) else "are open")
    metrics = ApiMetrics()
    inflight = InFlight()
    in_model_thread = ModelThreads(settings.model_threads)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        owned = False
        if app.state.service is None:
            from qa.pipeline import QAService

            log.info("loading models and opening the index in %s", settings.data_dir)
            t0 = time.perf_counter()
            app.state.service = await run_in_threadpool(QAService.from_settings, settings)
            owned = True
            log.info("service ready in %.1f s", time.perf_counter() - t0)
        await run_in_threadpool(_refresh_gauges, app.state.service)
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
    app.state.metrics = metrics

    from index.store import ReindexNeeded

    @app.exception_handler(ReindexNeeded)
    async def reindex_needed(request: Request, exc: ReindexNeeded) -> Response:
        # another process re-embedded the index with another model: this server cannot use it. The
        # operator reads which folder and models in the log; a client is not told the server's paths
        request_id = request.scope.get("state", {}).get("request_id")
        log.error("request_id=%s %s; then restart the server", request_id, exc)
        detail = "the index was rebuilt with another embedding model by another process: the server must be restarted (details in its log)"
        return Response(json.dumps({"detail": detail, "request_id": request_id}, ensure_ascii=False), status_code=503, media_type="application/json")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's 422, but a large offending value is not sent back whole (a 2 MB body would
        # come back as a 2 MB answer)
        errors = [{**e, "input": echoed_input(e["input"])} if "input" in e else e for e in jsonable_encoder(exc.errors())]
        return Response(json.dumps({"detail": errors}, ensure_ascii=False), status_code=422, media_type="application/json")

    def route_keys(route: Any) -> tuple[list[str] | None, list[str] | None]:
        """(keys that open ``route``, keys that open only reads), or (None, None) when it is open."""
        needs = {d.dependency for d in getattr(route, "dependencies", [])}
        if require_write in needs:
            return write_keys(settings), read_keys(settings)
        return (read_keys(settings) if require_read in needs else None), None

    def auth_problem(route: Any, authorization: str | None) -> tuple[int, str] | None:
        keys, read_only = route_keys(route)
        return None if keys is None else key_problem(authorization, keys, read_only)

    # The schema says which operations need the key with this configuration: a route whose key is
    # not set takes requests with or without it (an empty requirement makes it optional).
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = default_openapi()
        for route in app.routes:
            for method in getattr(route, "methods", ()):
                op = schema["paths"].get(getattr(route, "path_format", None), {}).get(method.lower())
                if op is not None and "security" in op and route_keys(route)[0] is None:  # declared, but not set
                    op["security"] = [{}, {"HTTPBearer": []}]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

    # middleware: the last added is the outermost. The concurrency limit is innermost: a request
    # takes a place only once its key is checked, and its body is all there (the body guard takes
    # it then: a client trickling a body would otherwise hold one for QA_BODY_TIMEOUT)
    places = Places(settings.limit_concurrency) if settings.limit_concurrency is not None else None
    if places is not None:
        app.add_middleware(ConcurrencyLimitMiddleware, places=places)
    app.add_middleware(BodyGuardMiddleware, max_body_bytes=settings.max_body_bytes, routes=app.router.routes, timeout_s=settings.body_timeout, places=places)
    app.add_middleware(AuthGateMiddleware, routes=app.router.routes, problem=auth_problem)
    app.add_middleware(PathMiddleware, routes=app.router.routes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "HEAD", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"], expose_headers=["X-Request-ID"],
        )
    app.add_middleware(RequestMiddleware, metrics=metrics, routes=app.router.routes)

    def _refresh_gauges(svc: Any) -> dict:
        h = svc.health()
        metrics.set_index_size(int(h.get("documents", 0)), int(h.get("chunks", 0)))
        return h

    def _write(fn: Callable[..., T], *args: Any) -> T:
        """A write (serialised by ``in_model_thread.write`` and the service); a full or unwritable
        index folder is the operator's to fix, said as such (nothing was written: the store rolls
        back), not as an internal error."""
        import sqlite3

        from index.store import storage_problem

        try:
            return fn(*args)
        except (OSError, sqlite3.Error) as exc:
            problem = storage_problem(exc)
            if problem is None:
                raise
            log.error("a write failed: the index folder %s is %s (%s)", settings.data_dir, problem, exc)
            if problem == "full":
                raise HTTPException(507, "the server's index storage is full: nothing was written; send it again once there is room (the operator's log says where)") from None
            raise HTTPException(503, "the server's index folder cannot be written: nothing was written; send it again once it is fixed (the operator's log says where)") from None

    # --- routes ------------------------------------------------------------------------------

    # HEAD too: uptime probes use it
    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.head("/health", include_in_schema=False)  # uptime probes
    @app.get("/health", response_model=HealthResponse, tags=["service"], responses=_errors(503))
    async def health(svc: Service) -> HealthResponse:
        """Liveness: the models and the index are loaded; index size and model identities."""
        h = await run_in_threadpool(_refresh_gauges, svc)
        return HealthResponse(
            status="ok", models_loaded=True, index_loaded=True, documents=int(h.get("documents", 0)), chunks=int(h.get("chunks", 0)),
            embedder=str(h.get("embedder", "")), reader=str(h.get("reader", "")),
        )

    @app.get(
        "/metrics", tags=["service"], dependencies=READ, response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text format"}, **_errors(401, 403)},
    )
    async def prometheus_metrics(svc: Service) -> Response:
        """Prometheus metrics: requests and latency per route template, index size."""
        await run_in_threadpool(_refresh_gauges, svc)
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.post("/ask", response_model=AskResponse, tags=["qa"], dependencies=READ, responses=_errors(400, 401, 403, 408, 413, 415, 500, 503))
    async def ask(body: AskRequest, svc: Service) -> AskResponse:
        """Retrieve passages and extract answers with their exact source offsets.

        With no credible answer: ``answers`` is empty, ``no_answer`` is true, passages are still returned."""
        top_k = body.top_k or settings.top_k
        max_answers = body.max_answers or settings.max_answers
        filters = to_filters(body.filters)
        key = ("ask", " ".join(body.question.split()), top_k, max_answers, body.mode,
               json.dumps(body.filters.model_dump(mode="json"), sort_keys=True) if body.filters else None)
        result = await inflight.run(key, lambda: svc.ask(body.question, top_k=top_k, max_answers=max_answers, filters=filters, mode=body.mode), in_model_thread)
        (metrics.answered if result.answers else metrics.no_answer).inc()
        return AskResponse.from_result(result).model_copy(update={"question": body.question})

    async def _search(svc: Any, query: str, top_k: int, mode: str | None, filters: FiltersIn | None) -> SearchResponse:
        t0 = time.perf_counter()
        results = await in_model_thread(svc.search, query, top_k, mode, to_filters(filters))
        return SearchResponse(query=query, results=[SearchHit.from_result(r) for r in results], took_ms=(time.perf_counter() - t0) * 1000)

    @app.post("/search", response_model=SearchResponse, tags=["search"], dependencies=READ, responses=_errors(400, 401, 403, 408, 413, 415, 500, 503))
    async def search(body: SearchRequest, svc: Service) -> SearchResponse:
        """Semantic (dense), lexical (BM25) or hybrid passage search."""
        return await _search(svc, body.query, body.top_k or DEFAULT_SEARCH_TOP_K, body.mode, body.filters)

    @app.get("/search", response_model=SearchResponse, tags=["search"], dependencies=READ, responses=_errors(401, 403, 500, 503))
    async def search_get(params: Annotated[SearchQuery, Query()], svc: Service) -> SearchResponse:
        """Same as ``POST /search``, for quick calls: ``/search?q=...&top_k=5``."""
        filters = params.filters()
        return await _search(svc, params.q, params.top_k, params.mode, filters)

    @app.post("/extract", response_model=ExtractResponse, tags=["qa"], dependencies=READ, responses=_errors(400, 401, 403, 408, 413, 415, 500, 503))
    async def extract(body: ExtractRequest, svc: Service, request: Request) -> ExtractResponse:
        """Reader only: answers in the given context, offsets into that context. The context may hold
        at most ``QA_EXTRACT_MAX_TOKENS`` reader tokens (30,000 by default; about 4 characters of French each)."""
        from qa.reader import ReadStopped

        t0 = time.perf_counter()
        max_answers = body.max_answers or settings.max_answers
        tokens = await run_in_threadpool(svc.reader.count_tokens, body.context)  # the tokenizer only
        if tokens > settings.extract_max_tokens:
            raise RequestValidationError([{
                "type": "too_long", "loc": ("body", "context"), "input": body.context,
                "msg": f"context is {tokens} reader tokens long, at most {settings.extract_max_tokens} are read per request "
                       "(QA_EXTRACT_MAX_TOKENS): send the part of the text that holds the answer",
            }])
        # a client that gives up (a timeout, then a retry) must not leave up to half a minute of reading behind
        gone = threading.Event()
        watcher = asyncio.ensure_future(_set_when_disconnected(request, gone))
        try:
            found = await in_model_thread(svc.extract, body.question, body.context, max_answers, gone.is_set)
        except ReadStopped as exc:
            log.info("/extract: the client went away, reading %s", exc)
            return Response(status_code=499)  # nginx's "client closed request": nobody receives it, metrics count it
        finally:
            watcher.cancel()
        answers = [ExtractedAnswerOut.from_answer(a) for a in found]
        return ExtractResponse(question=body.question, answers=answers, no_answer=not answers, took_ms=(time.perf_counter() - t0) * 1000)

    @app.post("/documents", response_model=DocumentsAdded, tags=["documents"], dependencies=WRITE, responses=_errors(400, 401, 403, 408, 413, 415, 500, 503, 507))
    async def add_documents(body: DocumentsIn, svc: Service) -> DocumentsAdded:
        """Add or update documents (same id: replaced; same text: unchanged). Ids default to sha1(text)[:16]."""
        docs: list[Document] = []
        seen: set[str] = set()
        for i, d in enumerate(body.documents):  # ids unique in the request, explicit or made from the text
            doc_id = d.id or document_id_for(d.text)
            if doc_id in seen:
                raise RequestValidationError([{
                    "type": "value_error", "loc": ("body", "documents", i, "id"), "input": doc_id,
                    "msg": f"Value error, documents: id {doc_id!r} appears more than once" + ("" if d.id else " (the same text twice?)"),
                }])
            seen.add(doc_id)
            docs.append(Document(id=doc_id, text=d.text, title=d.title, url=d.url, published=d.published, metadata=d.metadata))
        report = await in_model_thread.write(_write, svc.add_documents, docs)
        inflight.clear()
        await run_in_threadpool(_refresh_gauges, svc)
        counts = report.chunk_counts or {}
        return DocumentsAdded(
            documents=[AddedDocument(id=d.id, chunks=int(counts.get(d.id, 0))) for d in docs],
            added=report.documents_added, updated=report.documents_updated, unchanged=report.documents_unchanged,
            chunks_added=report.chunks_added, chunks_removed=report.chunks_removed,
        )

    @app.get("/documents", response_model=DocumentPage, tags=["documents"], dependencies=READ, responses=_errors(401, 403, 503))
    async def list_documents(
        svc: Service,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Documents to skip.", json_schema_extra={"format": "int64"})] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")] = 20,
    ) -> DocumentPage:
        """Documents in the index, paginated (without their text)."""
        items, total = await run_in_threadpool(svc.list_documents, offset, limit)
        return DocumentPage(items=[DocumentInfoOut(**asdict(i)) for i in items], total=total, offset=offset, limit=limit)

    @app.get(
        "/documents/{doc_id:path}", response_model=DocumentOut, tags=["documents"], dependencies=READ,
        responses={**_errors(401, 403, 404, 503), 307: {"description": "`/documents/` (no id): redirected to `/documents`, the list"}},
    )
    async def get_document(doc_id: Annotated[str, PathParam(max_length=MAX_ID_CHARS)], svc: Service, request: Request) -> Any:
        """One document with its full text (answer and passage offsets point into ``text``)."""
        if not doc_id:  # "/documents/" is the list, as "/health/" is "/health" (Starlette's slash redirect)
            scope = dict(request.scope)
            scope["path"] = scope["path"].rstrip("/")
            return RedirectResponse(str(URL(scope=scope)))
        doc = await run_in_threadpool(svc.get_document, doc_id)
        if doc is None:
            raise HTTPException(404, document_not_found(doc_id))
        return DocumentOut.from_document(doc)

    @app.delete("/documents/{doc_id:path}", response_model=DeleteResponse, tags=["documents"], dependencies=WRITE, responses=_errors(401, 403, 404, 500, 503, 507))
    async def delete_document(doc_id: Annotated[str, PathParam(max_length=MAX_ID_CHARS)], svc: Service) -> DeleteResponse:
        """Remove a document and its passages from the index."""
        deleted = await in_model_thread.write(_write, svc.delete_document, doc_id)
        if not deleted:
            raise HTTPException(404, document_not_found(doc_id))
        inflight.clear()
        await run_in_threadpool(_refresh_gauges, svc)
        return DeleteResponse(id=doc_id, deleted=True)

    return app
