"""The API's routes: they validate, call the ``QAService`` off the event loop, and shape JSON.
Retrieval and reading live in ``qa.pipeline`` and ``index``; the app is put together in ``api.app``."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from html import escape
from pathlib import Path
from typing import Annotated, Any, Callable, TypeVar

from fastapi import APIRouter, Depends, File, HTTPException, Path as PathParam, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URL

from api import schemas
from api.auth import READ, WRITE
from api.concurrency import ClientGone, InFlight, ModelThreads
from api.metrics import CONTENT_TYPE_LATEST, ApiMetrics
from api.schemas import (
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
    date_warnings,
    document_not_found,
    filter_warnings,
    similar_document,
    source_warnings,
)
from api.uploads import Upload, UploadNotSaved, UploadRefused, part_problems, read_uploads
from index.schema import MAX_ID_CHARS, Document, Filters
from qa.settings import DEFAULT_PAGE_SUBTITLE, DEFAULT_PAGE_TITLE, Settings
from qa.validation import DEFAULT_SEARCH_TOP_K, MAX_DOCUMENT_QUERY_CHARS, filters_of

log = logging.getLogger("api")

STATIC_DIR = Path(__file__).resolve().parent / "static"
T = TypeVar("T")

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

ERR = {
    400: {"model": ErrorResponse, "description": "Body is not UTF-8 text (JSON that does not parse is a 422 naming its line and column)"},
    401: {"model": ErrorResponse, "description": "Missing API key (Authorization: Bearer <key>)"},
    403: {"model": ErrorResponse, "description": "Wrong API key"},
    404: {"model": ErrorResponse, "description": "Unknown document"},
    408: {"model": ErrorResponse, "description": "Body not received within QA_BODY_TIMEOUT seconds"},
    413: {"model": ErrorResponse, "description": "Body over the configured size limit"},
    415: {"model": ErrorResponse, "description": "Body is not JSON (send Content-Type: application/json)"},
    500: {"model": ErrorResponse, "description": "Internal error (logged with the request id)"},
    503: {"model": ErrorResponse, "description": "Service not loaded yet, or busy: more requests in progress than QA_LIMIT_CONCURRENCY (retry after Retry-After seconds); for writes, also: the index folder cannot be written (nothing was written); the server's index is damaged (its operator must restore it)"},
    507: {"model": ErrorResponse, "description": "The server's index storage is full: nothing was written"},
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: ERR[c] for c in codes}


def to_filters(f: FiltersIn | None) -> Filters | None:
    return None if f is None else filters_of(f.document_ids, f.source, f.published_after, f.published_before)


def document_id_for(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class Runtime:
    """What the routes of one app share besides the service: settings, metrics, model threads and
    the requests in flight (``app.state.runtime``)."""

    settings: Settings
    metrics: ApiMetrics
    inflight: InFlight
    model_threads: ModelThreads

    def refresh_gauges(self, svc: Any) -> dict:
        h = svc.health()
        self.metrics.set_index_size(int(h.get("documents", 0)), int(h.get("chunks", 0)))
        return h

    def write(self, fn: Callable[..., T], *args: Any) -> T:
        """A write (serialised by ``model_threads.write`` and the service); a full or unwritable
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
            log.error("a write failed: the index folder %s is %s (%s)", self.settings.data_dir, problem, exc)
            if problem == "full":
                raise HTTPException(507, "the server's index storage is full: nothing was written; send it again once there is room (the operator's log says where)") from None
            raise HTTPException(503, "the server's index folder cannot be written: nothing was written; send it again once it is fixed (the operator's log says where)") from None

    async def written(self, svc: Any, fn: Callable[..., T], *args: Any) -> T:
        """Run a write in its turn; answers cached for identical requests are dropped after it."""
        result = await self.model_threads.write(self.write, fn, *args)
        self.inflight.clear()
        await run_in_threadpool(self.refresh_gauges, svc)
        return result


def get_service(request: Request) -> Any:
    svc = request.app.state.service
    if svc is None:
        raise HTTPException(503, "service not loaded yet")
    return svc


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


# module level: FastAPI resolves annotations from the module globals
Service = Annotated[Any, Depends(get_service)]
Rt = Annotated[Runtime, Depends(get_runtime)]

router = APIRouter()


def french_number(n: int) -> str:
    """``1000`` -> ``"1 000"`` (a narrow no-break space), as the page's script writes numbers (``toLocaleString("fr-FR")``)."""
    return f"{n:,}".replace(",", "\u202f")


@lru_cache(maxsize=4)  # read from disk and filled in once per limit and wording, not on every GET /
def page_html(max_question_chars: int, title: str = DEFAULT_PAGE_TITLE, subtitle: str = DEFAULT_PAGE_SUBTITLE) -> str:
    """The question page, with the longest question the API takes filled in (its hint, and its script's
    check) and its title and subtitle (QA_PAGE_TITLE, QA_PAGE_SUBTITLE) as text: escaped, so that
    no setting can add markup or a script to the page."""
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    values = {
        "max_question_chars": str(max_question_chars),
        "max_question_chars_fr": french_number(max_question_chars),
        "page_title": escape(title, quote=True),
        "page_subtitle": escape(subtitle, quote=True),
    }
    # one pass: a title holding "{{...}}" is shown as written, never filled in itself
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values.get(m.group(1), m.group(0)), html)


# HEAD too: uptime probes use it
@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def page(rt: Rt) -> HTMLResponse:
    # the limit read when the page is asked for, from where the API's validation reads it: the page
    # never states another one
    html = page_html(schemas.MAX_QUESTION_CHARS, rt.settings.page_title, rt.settings.page_subtitle)
    return HTMLResponse(html, headers={"Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})


@router.head("/health", include_in_schema=False)  # uptime probes
@router.get("/health", response_model=HealthResponse, tags=["service"], responses=_errors(500, 503))
async def health(svc: Service, rt: Rt) -> HealthResponse:
    """Liveness: the models and the index are loaded; index size and model identities."""
    h = await run_in_threadpool(rt.refresh_gauges, svc)
    return HealthResponse(
        status="ok", models_loaded=True, index_loaded=True, documents=int(h.get("documents", 0)), chunks=int(h.get("chunks", 0)),
        embedder=str(h.get("embedder", "")), reader=str(h.get("reader", "")),
    )


@router.get(
    "/metrics", tags=["service"], dependencies=READ, response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text format"}, **_errors(401, 403, 500, 503)},
)
async def prometheus_metrics(svc: Service, rt: Rt) -> Response:
    """Prometheus metrics: requests and latency per route template, index size."""
    import sqlite3

    from index.storage import damaged_line, is_damaged

    try:
        await run_in_threadpool(rt.refresh_gauges, svc)
    except sqlite3.DatabaseError as exc:
        if not is_damaged(exc):
            raise
        # the metrics are how the damage shows (the 503s counted): served, the index size as last read
        log.error("/metrics: the index size is not updated: %s", damaged_line(rt.settings.data_dir, str(exc)))
    return Response(rt.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.post("/ask", response_model=AskResponse, tags=["qa"], dependencies=READ, responses=_errors(400, 401, 403, 408, 413, 415, 500, 503))
async def ask(body: AskRequest, svc: Service, rt: Rt, request: Request) -> Any:
    """Retrieve passages and extract answers with their exact source offsets.

    With no credible answer: ``answers`` is empty, ``no_answer`` is true, passages are still returned."""
    top_k = body.top_k or rt.settings.top_k
    max_answers = body.max_answers or rt.settings.max_answers
    filters = to_filters(body.filters)
    key = ("ask", " ".join(body.question.split()), top_k, max_answers, body.mode,
           json.dumps(body.filters.model_dump(mode="json"), sort_keys=True) if body.filters else None)
    try:
        result = await rt.inflight.run(
            key, lambda stop: svc.ask(body.question, top_k=top_k, max_answers=max_answers, filters=filters, mode=body.mode, stop=stop),
            rt.model_threads, request,
        )
    except ClientGone:
        log.info("/ask: the client went away before its answer was ready")
        return Response(status_code=499)  # as /extract: nobody receives it, metrics count it
    (rt.metrics.answered if result.answers else rt.metrics.no_answer).inc()
    warnings = await _filter_warnings(svc, body.filters, POST_FIELDS)
    return AskResponse.from_result(result, warnings).model_copy(update={"question": body.question})


POST_FIELDS = ("filters.document_ids", "filters.source", "filters.published_after", "filters.published_before")
GET_FIELDS = ("document_id", "source", "published_after", "published_before")


async def _filter_warnings(svc: Any, filters: FiltersIn | None, fields: tuple[str, str, str, str]) -> list:
    """Warnings for the filter ids, the source and the dates that match no stored document; ``fields``:
    where each was sent (ids, source, after, before)."""
    if filters is None:
        return []
    ids_field, source_field, after_field, before_field = fields
    # the snapshot in memory: no query
    warnings = source_warnings(filters.source, source_field, svc.sites)
    warnings += date_warnings(filters.published_after, filters.published_before, (after_field, before_field), svc.dates_kept)
    if filters.document_ids:
        warnings = await run_in_threadpool(filter_warnings, filters.document_ids, ids_field, svc.stored_among, svc.list_documents) + warnings
    return warnings


async def _search(svc: Any, rt: Runtime, query: str, top_k: int, mode: str | None, filters: FiltersIn | None, fields: tuple[str, str, str, str]) -> SearchResponse:
    t0 = time.perf_counter()
    results = await rt.model_threads(svc.search, query, top_k, mode, to_filters(filters))
    warnings = await _filter_warnings(svc, filters, fields)
    return SearchResponse(query=query, results=[SearchHit.from_result(r) for r in results], took_ms=(time.perf_counter() - t0) * 1000, warnings=warnings)


@router.post("/search", response_model=SearchResponse, tags=["search"], dependencies=READ, responses=_errors(400, 401, 403, 408, 413, 415, 500, 503))
async def search(body: SearchRequest, svc: Service, rt: Rt) -> SearchResponse:
    """Semantic (dense), lexical (BM25) or hybrid passage search."""
    return await _search(svc, rt, body.query, body.top_k or DEFAULT_SEARCH_TOP_K, body.mode, body.filters, POST_FIELDS)


@router.get("/search", response_model=SearchResponse, tags=["search"], dependencies=READ, responses=_errors(401, 403, 500, 503))
async def search_get(params: Annotated[SearchQuery, Query()], svc: Service, rt: Rt) -> SearchResponse:
    """Same as ``POST /search``, for quick calls: ``/search?q=...&top_k=5``."""
    return await _search(svc, rt, params.q, params.top_k, params.mode, params.filters(), GET_FIELDS)


@router.post("/extract", response_model=ExtractResponse, tags=["qa"], dependencies=READ, responses=_errors(400, 401, 403, 408, 413, 415, 500, 503))
async def extract(body: ExtractRequest, svc: Service, rt: Rt, request: Request) -> ExtractResponse:
    """Reader only: answers in the given context, offsets into that context. The context may hold
    at most ``QA_EXTRACT_MAX_TOKENS`` reader tokens (30,000 by default; about 4 characters of French each)."""
    t0 = time.perf_counter()
    max_answers = body.max_answers or rt.settings.max_answers
    limit = rt.settings.extract_max_tokens
    tokens = await run_in_threadpool(svc.reader.count_tokens, body.context)  # the tokenizer only
    if tokens > limit:
        raise RequestValidationError([{
            "type": "too_long", "loc": ("body", "context"), "input": body.context,
            "msg": f"context is {tokens} reader tokens long, at most {limit} are read per request "
                   "(QA_EXTRACT_MAX_TOKENS): send the part of the text that holds the answer",
        }])
    # as /ask: identical requests in flight share one reading; a client that gives up (a timeout,
    # then a retry) ends its request at once, and a reading nobody waits for any more is dropped
    # if still queued, or stops, instead of leaving up to half a minute of work behind
    key = ("extract", body.question, body.context, max_answers)
    try:
        found = await rt.inflight.run(key, lambda stop: svc.extract(body.question, body.context, max_answers, stop), rt.model_threads, request)
    except ClientGone:
        log.info("/extract: the client went away before its answer was ready")
        return Response(status_code=499)  # nginx's "client closed request": nobody receives it, metrics count it
    answers = [ExtractedAnswerOut.from_answer(a) for a in found]
    return ExtractResponse(question=body.question, answers=answers, no_answer=not answers, took_ms=(time.perf_counter() - t0) * 1000)


@router.post("/documents", response_model=DocumentsAdded, tags=["documents"], dependencies=WRITE, responses=_errors(400, 401, 403, 408, 413, 415, 500, 503, 507))
async def add_documents(body: DocumentsIn, svc: Service, rt: Rt) -> DocumentsAdded:
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
    return await _added(svc, rt, docs)


async def _added(svc: Any, rt: Runtime, docs: list[Document]) -> DocumentsAdded:
    """``docs`` written (POST /documents and POST /documents/files), and what that changed."""
    report = await rt.written(svc, svc.add_documents, docs)
    counts = report.chunk_counts or {}
    return DocumentsAdded(
        documents=[AddedDocument(id=d.id, chunks=int(counts.get(d.id, 0))) for d in docs],
        added=report.documents_added, updated=report.documents_updated, unchanged=report.documents_unchanged,
        chunks_added=report.chunks_added, chunks_removed=report.chunks_removed,
    )


UPLOAD_ERRORS = {
    **_errors(401, 403, 408, 500, 503, 507),
    400: {"model": ErrorResponse, "description": "Body is not well-formed multipart/form-data"},
    413: {"model": ErrorResponse, "description": "Body over QA_MAX_UPLOAD_BYTES"},
    415: {"model": ErrorResponse, "description": "Body is not multipart/form-data (curl -F files=@rapport.pdf)"},
    422: {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},  # FastAPI's own 422 model
          "description": "A file that cannot be read (`loc` names its part: [\"body\", \"files\", i]), a file name that "
                         "cannot be one, one document id given by two files, or a part that is not a file named `files` (another "
                         "part name, a text field): nothing was written"},
}


async def _file_parts_only(request: Request) -> None:
    """A 422 for parts that are not files named ``files`` (``api.uploads.part_problems``), before
    FastAPI reads the ``files`` ones: another part would be left out unsaid. The form is the one
    FastAPI has parsed already (Starlette keeps it)."""
    problems = part_problems(list((await request.form()).multi_items()))
    if problems:
        raise RequestValidationError(problems)


@router.post("/documents/files", response_model=DocumentsAdded, tags=["documents"], dependencies=[*WRITE, Depends(_file_parts_only)],
             responses=UPLOAD_ERRORS)
async def add_document_files(
    files: Annotated[list[UploadFile], File(description="One or more files (.txt, .md, .html, .json, .jsonl, .pdf, .docx), each a part named `files`.")],
    svc: Service, rt: Rt,
) -> DocumentsAdded:
    """Add or update the documents of files, read as `qa index` reads files of their names (ids: the
    file name without its extension, or a JSON record's own `id`). All or nothing: if any file cannot
    be read, nothing is written and the 422 names each part at fault."""
    uploads = [Upload(f.filename, f.file) for f in files]
    try:
        docs = await run_in_threadpool(read_uploads, uploads, schemas.MAX_DOCUMENTS_PER_REQUEST)  # saving and parsing files: off the event loop
    except UploadRefused as exc:
        raise RequestValidationError(exc.errors) from None
    except UploadNotSaved as exc:
        from index.storage import storage_problem

        log.error("POST /documents/files: the files could not be saved to be read in the temporary folder %s: %s", tempfile.gettempdir(), exc.cause)
        status = 507 if storage_problem(exc.cause) == "full" else 503
        raise HTTPException(status, "the server could not store the files to read them: nothing was written; send them again later (the operator's log says why)") from None
    return await _added(svc, rt, docs)


@router.get("/documents", response_model=DocumentPage, tags=["documents"], dependencies=READ, responses=_errors(401, 403, 500, 503))
async def list_documents(
    svc: Service,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Documents to skip.", json_schema_extra={"format": "int64"})] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")] = 20,
    q: Annotated[str | None, Query(max_length=MAX_DOCUMENT_QUERY_CHARS, description="Only documents whose title or id contains this text, case, accents, punctuation and spacing aside (`l ete` finds « L’Été »); blank or punctuation only: every document. `total` counts those.")] = None,
) -> DocumentPage:
    """Documents in the index, by id, paginated (without their text); `q` narrows them by title or id."""
    items, total = await run_in_threadpool(svc.list_documents, offset, limit, q)
    return DocumentPage(items=[DocumentInfoOut(**asdict(i)) for i in items], total=total, offset=offset, limit=limit)


@router.get(
    "/documents/{doc_id:path}", response_model=DocumentOut, tags=["documents"], dependencies=READ,
    responses={**_errors(401, 403, 404, 500, 503), 307: {"description": "`/documents/` (no id): redirected to `/documents`, the list"}},
)
async def get_document(doc_id: Annotated[str, PathParam(max_length=MAX_ID_CHARS)], svc: Service, request: Request) -> Any:
    """One document with its full text (answer and passage offsets point into ``text``). An id with
    surrounding whitespace reads the document stored without it (`id` gives the stored one)."""
    if not doc_id:  # "/documents/" is the list, as "/health/" is "/health" (Starlette's slash redirect)
        scope = dict(request.scope)
        scope["path"] = scope["path"].rstrip("/")
        return RedirectResponse(str(URL(scope=scope)))
    doc = await run_in_threadpool(_read_document, svc, doc_id)
    if doc is None:
        raise HTTPException(404, document_not_found(doc_id, similar=await run_in_threadpool(similar_document, svc.list_documents, doc_id)))
    return DocumentOut.from_document(doc)


def _read_document(svc: Any, doc_id: str) -> Document | None:
    """The document ``doc_id`` names, else the one it names without its surrounding whitespace (ids
    are stored stripped, so " x " reads "x": only a read, and the response gives the stored id)."""
    return svc.get_document(doc_id) or _trimmed_document(svc, doc_id)


def _trimmed_document(svc: Any, doc_id: str) -> Document | None:
    """The document ``doc_id`` stripped of surrounding whitespace names, when that is another id
    (an id that an older version stored with its spaces is reached as given first)."""
    trimmed = doc_id.strip()
    return svc.get_document(trimmed) if trimmed and trimmed != doc_id else None


@router.delete("/documents/{doc_id:path}", response_model=DeleteResponse, tags=["documents"], dependencies=WRITE, responses=_errors(401, 403, 404, 500, 503, 507))
async def delete_document(doc_id: Annotated[str, PathParam(max_length=MAX_ID_CHARS)], svc: Service, rt: Rt) -> DeleteResponse:
    """Remove a document and its passages from the index. An id with surrounding whitespace deletes
    only a document stored under it as sent: the 404 names the stored id without it, if any."""
    deleted = await rt.written(svc, svc.delete_document, doc_id)
    if deleted is None:
        # a delete acts on the id given only: the one without the spaces is named, never removed in its place
        other = await run_in_threadpool(_trimmed_document, svc, doc_id)
        similar = None if other else await run_in_threadpool(similar_document, svc.list_documents, doc_id)
        raise HTTPException(404, document_not_found(doc_id, other.id if other else None, similar))
    return DeleteResponse(id=deleted, deleted=True)  # the id as stored, whichever Unicode form was sent
