"""Request and response models of the HTTP API (the public contract, also the OpenAPI schema).

Validation errors raised here become FastAPI's usual 422 answers, whose ``loc`` names the field
(``["body", "question"]``); custom checks raise ``ValueError`` with a message that names it too.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from datetime import date
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict, ValidationInfo, WithJsonSchema, field_validator, model_validator

from index.ingest import normalize_date
from index.schema import MAX_ID_CHARS, Mode, clean_id, id_problem, metadata_problem, normalize_id
from index.text import TextProblem, clean_url, control_problem, one_line, text_problem, url_problem
from qa.validation import DEFAULT_SEARCH_TOP_K, MAX_ANSWERS, MAX_QUESTION_CHARS, MAX_TOP_K, date_bound, empty_period, filter_id_problem, source_problem, unknown_document_ids


def api_json(content: Any) -> str:
    """JSON as the API writes every body (FastAPI's JSONResponse): one line, no space after "," and
    ":", non-ASCII characters as they are. The CLI's --json prints the same, one document a line."""
    return json.dumps(content, ensure_ascii=False, separators=(",", ":"))


MAX_CONTEXT_CHARS = 100_000
MAX_DOCUMENTS_PER_REQUEST = 1_000
MAX_PAGE = 200
MAX_OFFSET = 2**63 - 1  # SQLite's largest integer


def _integral(value: Any) -> Any:
    # JSON has one number type and JSON Schema's "integer" includes 3.0 (what some serialisers
    # write for a whole float); 3.5, true and "3" stay errors
    return int(value) if isinstance(value, float) and value.is_integer() else value


# JSON bodies take numbers as numbers: true or "3" for a count is a client bug, not a 3 (whole
# floats such as 3.0 are taken by _Strict's validator, for every integer field)
Count = Annotated[int, Strict()]

# the limits are checked by the validators (after stripping, with messages naming the field)
_TEXT_LIMITS = {"minLength": 1, "maxLength": MAX_QUESTION_CHARS}


_TEXT_PROBLEMS: dict[TextProblem, str] = {"empty": "must not be empty or only whitespace", "no words": "must contain at least one letter or digit"}


def _checked_text(value: str, field: str) -> str:
    """``value`` as sent, or the field's error where ``index.text.text_problem`` finds one."""
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(f"{field} {_TEXT_PROBLEMS[problem]}")
    return value


def _short_text(value: str, info: ValidationInfo) -> str:
    value = _checked_text(value, info.field_name).strip()
    if len(value) > MAX_QUESTION_CHARS:
        raise ValueError(f"{info.field_name} must be at most {MAX_QUESTION_CHARS} characters (got {len(value)})")
    return value


def _domain(value: str | None) -> str | None:
    if value is None:
        return value
    if source_problem(value) is not None:  # the rule of `qa search --source` (qa.validation)
        raise ValueError("source must be a domain name such as numerama.com (or a URL on it)")
    return value.strip()


# a question or a query: stripped, 1 to MAX_QUESTION_CHARS characters, the message names the field
ShortText = Annotated[str, AfterValidator(_short_text)]
def _filter_id(value: str, info: ValidationInfo) -> str:
    if filter_id_problem(value) is not None:  # the rule of `qa search --doc` (qa.validation): it would match nothing
        raise ValueError(f"{info.field_name} must not hold an empty or whitespace-only id")
    return normalize_id(value)


# a document id in a filter, not blank, NFC as stored ("cafe" + U+0301 is "café": index.schema.normalize_id);
# qa.validation.filter_ids strips it too, as ids are stored
FilterId = Annotated[str, AfterValidator(_filter_id)]
Domain = Annotated[str | None, AfterValidator(_domain)]


def _filter_date(value: Any, info: ValidationInfo) -> Any:
    """A partial ISO date stands for its whole period, as documents' dates do: after "2017" is from
    2017-01-01, before "2017-10" is up to 2017-10-31. Numbers are refused (pydantic would read them
    as Unix timestamps)."""
    if value is None or isinstance(value, date):
        return value
    field = info.field_name
    if not isinstance(value, str):
        raise ValueError(f"{field} must be an ISO date string: YYYY, YYYY-MM or YYYY-MM-DD")
    try:
        return date_bound(value, "after" if field == "published_after" else "before")
    except ValueError:
        raise ValueError(f"{field} must be a valid ISO date: YYYY, YYYY-MM or YYYY-MM-DD (got {value!r})") from None


# Declared as what clients send: a string, possibly a partial date (a client typed with a date
# class could not send "2017"), not as the date it is read into
FilterDate = Annotated[date | None, BeforeValidator(_filter_date), WithJsonSchema({
    "anyOf": [{"type": "string", "pattern": r"^[0-9]{4}(-[0-9]{1,2}(-[0-9]{1,2}([T ].*)?)?)?$", "examples": ["2017", "2017-10", "2017-10-27"]}, {"type": "null"}],
})]
# milliseconds to 0.1: finer is noise, and the API and `qa ... --json` print the same
TookMs = Annotated[float, AfterValidator(lambda v: round(float(v), 1))]
# chunk ids are 64-bit (above 2^53): int64, or generated clients read them as 32-bit integers
ChunkId = Annotated[int, WithJsonSchema({"type": "integer", "format": "int64"})]


class _DateRange(BaseModel):
    published_after: FilterDate = Field(None, description='ISO date, inclusive; a partial one ("2017", "2017-10") means from the start of that period.')
    published_before: FilterDate = Field(None, description='ISO date, inclusive; a partial one ("2017", "2017-10") means up to the end of that period.')

    @model_validator(mode="after")
    def _range(self):
        if empty_period(self.published_after, self.published_before):
            raise ValueError("published_after must not be later than published_before")
        return self


def _refused_if(field: str, problem: str | None, value: Any) -> Any:
    """``value``, or the field's error when a shared rule (index.schema, index.text) has a ``problem`` with it."""
    if problem is not None:
        raise ValueError(f"{field} {problem}")
    return value


def _kinds(annotation: Any) -> set[Any]:
    """The plain types a field takes: {int, NoneType} for ``Count | None``."""
    if typing.get_origin(annotation) is Annotated:
        return _kinds(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return set().union(*(_kinds(a) for a in typing.get_args(annotation)))
    return {annotation}


def document_not_found(doc_id: str, trimmed: str | None = None, similar: str | None = None) -> str:
    """The 404 detail for an unknown document id (the API's, and `qa docs --json`'s); ``trimmed``: the
    stored id that ``doc_id`` without its surrounding whitespace names, the one to use; ``similar``:
    the stored id it most likely means otherwise (``index.catalog.meant_document_id``: another case,
    or a file's name given for its id)."""
    if not doc_id:
        return "no document id given: the path ends with '/documents/' (GET /documents lists the documents)"
    if trimmed is not None:
        return f"document {doc_id!r} not found; did you mean {trimmed!r}? (ids are stored without surrounding whitespace)"
    if similar is not None:
        return f"document {doc_id!r} not found; did you mean {similar!r}?"
    return f"document {doc_id!r} not found"


def similar_document(list_documents: typing.Callable[..., Any], doc_id: str) -> str | None:
    """The stored id an unknown ``doc_id`` most likely means, for its 404 (the API's and `qa docs`'):
    written the same but for case, accents and punctuation, or the name of the file it was indexed from."""
    import sqlite3

    from index.catalog import meant_document_id
    from index.ingest import SUPPORTED_SUFFIXES

    try:
        return meant_document_id(list_documents, doc_id, SUPPORTED_SUFFIXES)
    except sqlite3.DatabaseError:  # the documents search's keys damaged: a hint never turns a 404 into a failure
        return None


class _Strict(BaseModel):
    # unknown fields are refused (a typo such as "topk" must not be silently ignored)
    model_config = ConfigDict(extra="forbid")
    # names people send for one of the fields, too far from it for a close match ("date" for
    # "published", the CLI's "after" for "published_after"): the 422 says which was meant (meant_field)
    FIELD_HINTS: ClassVar[dict[str, str]] = {}

    @field_validator("*", mode="before")
    @classmethod
    def _whole_float(cls, value: Any, info: ValidationInfo) -> Any:
        # every integer field (Count or plain int); a validator on the Count type itself would
        # hide its bounds from the JSON schema
        return _integral(value) if int in _kinds(cls.model_fields[info.field_name].annotation) else value


# --- requests -------------------------------------------------------------------------------


class FiltersIn(_DateRange, _Strict):
    """Restricts retrieval; every given condition must hold."""

    FIELD_HINTS = {"after": "published_after", "since": "published_after", "from": "published_after", "date_from": "published_after",
                   "before": "published_before", "until": "published_before", "to": "published_before", "date_to": "published_before",
                   "document_id": "document_ids", "doc": "document_ids", "docs": "document_ids", "ids": "document_ids", "site": "source", "domain": "source"}

    document_ids: list[FilterId] | None = Field(None, min_length=1, max_length=1_000, description="Only these documents (surrounding whitespace ignored, as ids are stored; accents in either Unicode form).")
    source: Domain = Field(None, min_length=1, max_length=253, description='Domain of the source URL, e.g. "numerama.com" (subdomains match; a URL is reduced to its domain).')


class AskRequest(_Strict):
    FIELD_HINTS = {"query": "question", "q": "question", "k": "top_k"}
    question: ShortText = Field(..., json_schema_extra=_TEXT_LIMITS, description=f"The question, 1 to {MAX_QUESTION_CHARS} characters (surrounding whitespace ignored).", examples=["Combien Netflix investit-il dans les contenus en 2018 ?"])
    top_k: Count | None = Field(None, ge=1, le=MAX_TOP_K, description="Passages to read (server default: 5).")
    max_answers: Count | None = Field(None, ge=1, le=MAX_ANSWERS, description="Answers to return at most (server default: 3).")
    mode: Mode | None = Field(None, description="Retrieval mode (server default: hybrid).")
    filters: FiltersIn | None = None


class SearchRequest(_Strict):
    FIELD_HINTS = {"question": "query", "q": "query", "text": "query", "k": "top_k"}
    query: ShortText = Field(..., json_schema_extra=_TEXT_LIMITS, description=f"Search text, 1 to {MAX_QUESTION_CHARS} characters (surrounding whitespace ignored).", examples=["investissements de Netflix en France"])
    top_k: Count | None = Field(None, ge=1, le=MAX_TOP_K, description=f"Passages to return (default: {DEFAULT_SEARCH_TOP_K}).")
    mode: Mode | None = Field(None, description="Retrieval mode (server default: hybrid).")
    filters: FiltersIn | None = None


class ExtractRequest(_Strict):
    FIELD_HINTS = {"text": "context", "passage": "context", "document": "context"}
    question: ShortText = Field(..., json_schema_extra=_TEXT_LIMITS, description=f"The question, 1 to {MAX_QUESTION_CHARS} characters (surrounding whitespace ignored).")
    context: str = Field(..., max_length=MAX_CONTEXT_CHARS, json_schema_extra={"minLength": 1}, description="The text to read; answer offsets point into it, unchanged.")
    max_answers: Count | None = Field(None, ge=1, le=MAX_ANSWERS, description="Answers to return at most (server default: 3).")

    @field_validator("context")
    @classmethod
    def _context(cls, v: str) -> str:
        return _checked_text(v, "context")  # not stripped: offsets refer to the text as sent


class SearchQuery(_DateRange, _Strict):
    """Query parameters of ``GET /search`` (the flat form of a ``SearchRequest``); unknown ones are
    refused, like unknown fields of a body (a misspelt filter must not silently widen the search)."""

    FIELD_HINTS = {"query": "q", "question": "q", "k": "top_k", "after": "published_after", "since": "published_after", "from": "published_after",
                   "before": "published_before", "until": "published_before", "to": "published_before",
                   "document_ids": "document_id", "doc": "document_id", "site": "source", "domain": "source"}

    q: ShortText = Field(..., json_schema_extra=_TEXT_LIMITS, description="Search text.")
    top_k: int = Field(DEFAULT_SEARCH_TOP_K, ge=1, le=MAX_TOP_K)
    mode: Mode | None = None
    # the same limits as FiltersIn, so that filters() never fails after validation
    document_id: list[FilterId] | None = Field(None, max_length=1_000, description="Only these documents (repeat the parameter; surrounding whitespace ignored, as ids are stored).")
    source: Domain = Field(None, min_length=1, max_length=253, description='URL domain, e.g. "numerama.com".')

    def filters(self) -> FiltersIn:
        return FiltersIn(document_ids=self.document_id, source=self.source, published_after=self.published_after, published_before=self.published_before)


class DocumentIn(_Strict):
    FIELD_HINTS = {"date": "published", "published_at": "published", "publication_date": "published", "created": "published",
                   "body": "text", "content": "text", "link": "url", "name": "title", "meta": "metadata"}
    id: str | None = Field(None, json_schema_extra={"maxLength": MAX_ID_CHARS}, description="Stable id (at most 256 characters, no control characters; the same rule as `qa index`), stored in Unicode NFC (accents sent decomposed are composed: one id however they were typed); when absent, the first 16 hex digits of the SHA-1 of the text.")
    # optional, as in a JSON or JSONL record `qa index` reads: an untitled document is shown by its id
    title: str | None = Field(None, max_length=1_000, description="One line (line breaks and tabs become spaces); when absent, the document is untitled, as a JSON record without one.")
    text: str = Field(..., min_length=1)
    url: str | None = Field(None, max_length=2_000)
    published: str | None = Field(None, description='ISO date, possibly partial: "2017", "2017-10" or "2017-10-27"; an ISO datetime keeps its date.', examples=["2017-10-27"])
    metadata: dict = Field(default_factory=dict, description="Any JSON object, nested at most 32 levels; returned as sent.")

    @field_validator("id")
    @classmethod
    def _id(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = clean_id(v)  # one id however its accents were typed, as `qa index` reads it
        return _refused_if("id", id_problem(v), v)

    @field_validator("title")
    @classmethod
    def _title(cls, v: str | None) -> str | None:
        # one line, as `qa index` makes it: line breaks and tabs (scraped titles have them) become
        # spaces; other control characters (ESC, BEL) are no part of a title
        if v is None or control_problem(v) is None:
            return v
        problem = control_problem("".join(" " if ch.isspace() else ch for ch in v))
        _refused_if("title", f"{problem}: a title is text, without escape sequences" if problem else None, v)
        return one_line(v)

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, v: dict) -> dict:
        return _refused_if("metadata", metadata_problem(v), v)

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        return _checked_text(v, "text")  # kept as sent: answer offsets refer to it

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        v = clean_url(v)
        return None if v is None else _refused_if("url", url_problem(v), v)

    @field_validator("published")
    @classmethod
    def _published(cls, v: str | None) -> str | None:
        try:  # the rule `qa index` applies: blank is none, a datetime ("2023-06-17T10:00:00Z") keeps its date
            return normalize_date(v)
        except ValueError as exc:
            raise ValueError(f"published: {exc}") from None


class DocumentsIn(_Strict):
    FIELD_HINTS = {"docs": "documents", "items": "documents", "records": "documents"}
    documents: list[DocumentIn] = Field(..., min_length=1, max_length=MAX_DOCUMENTS_PER_REQUEST)


def meant_field(root: type[BaseModel], loc: typing.Sequence[str | int]) -> str | None:
    """The field of ``root`` (a request model) that the unknown field at ``loc`` (a 422's ``loc``:
    ``("body", "filters", "after")``, ``("body", "documents", 0, "date")``, ``("query", "after")``)
    was most likely meant to be, or None: a name people send for it (``FIELD_HINTS``), or a close
    spelling ("topk")."""
    model: type[BaseModel] | None = root
    for part in loc[1:-1]:
        if isinstance(part, int):  # an item of a list: its model is the list's
            continue
        field = model.model_fields.get(part) if model else None
        model = _model_in(field.annotation) if field else None
    name = loc[-1] if loc else None
    if model is None or not isinstance(name, str):
        return None
    known = [n for n in model.model_fields if n != name]
    hint = getattr(model, "FIELD_HINTS", {}).get(name.lower())
    if hint in known:
        return hint
    near = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.75)
    return near[0] if near else None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The request model an annotation holds (``FiltersIn | None``, ``list[DocumentIn]``), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


MAX_SUGGESTIONS = 10  # a "did you mean" reads the documents search once per unknown id


def filter_warnings(document_ids: list[str] | None, field: str, stored_among: typing.Callable[[list[str]], set[str]],
                    list_documents: typing.Callable[..., Any]) -> list["FilterWarning"]:
    """A warning for each filter id that names no stored document, with the id it likely means
    (``similar_document``) for the first ``MAX_SUGGESTIONS``: a filter on it matches nothing, and an
    empty answer alone would not say why. ``field``: where the ids were sent."""
    if not document_ids:
        return []
    unknown = unknown_document_ids(document_ids, stored_among)
    return [FilterWarning(field=field, value=doc_id, message=f"no document has the id {doc_id!r}: this filter matches nothing",
                          did_you_mean=similar_document(list_documents, doc_id.strip()) if n < MAX_SUGGESTIONS else None)
            for n, doc_id in enumerate(unknown)]


def source_warnings(source: str | None, field: str, sites: typing.Callable[[], list[str]]) -> list["FilterWarning"]:
    """A warning when a source filter is on a site that no stored document is on (nor on one of its
    subdomains), with the stored site it likely means: like an unknown id, it matches nothing, and an
    empty answer alone would not say why (``intranet`` for ``intranet.exemple.fr``). ``field``: where
    it was sent."""
    from index.retrieval import meant_site, normalize_domain, on_site

    if not source:
        return []
    want = normalize_domain(source)
    stored = sites()
    if any(on_site(site, want) for site in stored):
        return []
    return [FilterWarning(field=field, value=source, message=f"no document is on the site {want or source!r} or its subdomains: this filter matches nothing",
                          did_you_mean=meant_site(want, stored))]


def date_warnings(after: date | None, before: date | None, fields: tuple[str, str],
                  dates_kept: typing.Callable[[date | None, date | None], tuple[bool, date | None, date | None, int]]) -> list["FilterWarning"]:
    """A warning when a date range keeps no document, naming the bound at fault (``fields``: where
    each was sent) and the dates the documents have: an empty answer alone would not say that the
    documents end in 2024, or that undated ones are never kept by a date filter."""
    if after is None and before is None:
        return []
    kept, first, last, undated = dates_kept(after, before)
    if kept:
        return []
    if after is not None and (last is None or after > last or before is None):
        field, value = fields[0], after
    else:
        field, value = fields[1], before
    span = f"dated documents run from {first.isoformat()} to {last.isoformat()}" if first and last else "no document has a date"
    if undated:
        span += f"; {undated} undated document{'s are' if undated > 1 else ' is'} never kept by a date filter"
    period = f"from {after.isoformat() if after else 'any date'} to {before.isoformat() if before else 'any date'}"
    return [FilterWarning(field=field, value=value.isoformat(), message=f"no document is dated {period}: this filter matches nothing ({span})")]


# --- responses ------------------------------------------------------------------------------


class FilterWarning(BaseModel):
    """Something in the request that was taken but most likely not meant: the response is still the
    one asked for (other ids may be right)."""

    # always sent: required in the schema, not optional to a generated client (a default would make it so)
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    field: str = Field(..., description='Where it was sent: "filters.document_ids", "filters.source", "filters.published_after" or "filters.published_before" (POST), "document_id", "source", "published_after" or "published_before" (GET /search).')
    value: str = Field(..., description="The value as sent (a date: the day it was read as, 2030-01-01 for 2030).")
    message: str
    did_you_mean: str | None = Field(None, description="The stored id it most likely means (another case or accents, or a file's name given for its id), or for a source the stored site (`intranet.exemple.fr` for `intranet`), if any.")


class SearchHit(BaseModel):
    chunk_id: ChunkId
    document_id: str
    title: str | None
    url: str | None
    published: str | None
    text: str = Field(..., description="The passage; equals the document text [start:end].")
    start: int = Field(..., description="Character offset of the passage in the document text.")
    end: int
    score: float = Field(..., description="How well the passage matches, higher is better: 0..1 in hybrid mode with the default "
                                          "fusion (QA_FUSION=convex), the cosine similarity in dense mode, the BM25 score in bm25 mode. "
                                          "It orders one response's passages; it is not a probability.")

    @classmethod
    def from_result(cls, r: Any) -> "SearchHit":
        """From an ``index.schema.SearchResult``."""
        return cls(chunk_id=r.chunk_id, document_id=r.document_id, title=r.title, url=r.url, published=r.published, text=r.text, start=r.start, end=r.end, score=float(r.score))


class CitationOut(BaseModel):
    """One passage that gave the answer (answers found in several passages are merged)."""

    document_id: str
    title: str | None
    url: str | None
    published: str | None
    chunk_id: ChunkId
    start: int = Field(..., description="Character offset of the answer in that document's text.")
    end: int


class AnswerOut(BaseModel):
    # always sent: required in the schema, not optional to a generated client (a default would make it so)
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    text: str = Field(..., description="The answer; equals the document text [start:end].")
    score: float = Field(..., description="Confidence 0..1.")
    document_id: str
    title: str | None
    url: str | None
    published: str | None
    chunk_id: ChunkId
    start: int = Field(..., description="Character offset of the answer in the document text.")
    end: int
    context: str = Field(..., description="The sentence around the answer: the document text [context_start : context_start + len(context)].")
    context_start: int = Field(..., description="Character offset of the context in the document text; the answer is context[start - context_start : end - context_start].")
    citations: list[CitationOut] = Field(default_factory=list, description="Every passage that gave this answer, the main one first.")

    @classmethod
    def from_answer(cls, a: Any) -> "AnswerOut":
        """From a ``qa.pipeline.Answer``."""
        return cls(
            text=a.text, score=float(a.score), document_id=a.document_id, title=a.title, url=a.url, published=a.published,
            chunk_id=a.chunk_id, start=a.start, end=a.end, context=a.context, context_start=a.context_start,
            citations=[
                CitationOut(document_id=c.document_id, title=c.title, url=c.url, published=c.published, chunk_id=c.chunk_id, start=c.start, end=c.end)
                for c in a.citations
            ],
        )


class AskResponse(BaseModel):
    # always sent: required in the schema, not optional to a generated client (a default would make it so)
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    question: str
    answers: list[AnswerOut] = Field(..., description="Best first; empty when no credible answer was found.")
    no_answer: bool
    passages: list[SearchHit] = Field(..., description="The passages that were read.")
    took_ms: TookMs
    warnings: list[FilterWarning] = Field(default_factory=list, description="Filters that match no document: ids, a source, a date range (empty when there are none).")

    @classmethod
    def from_result(cls, result: Any, warnings: list[FilterWarning] = ()) -> "AskResponse":
        """From a ``qa.pipeline.AskResult``: what both ``POST /ask`` and ``qa ask --json`` print."""
        answers = [AnswerOut.from_answer(a) for a in result.answers]
        return cls(question=result.question, answers=answers, no_answer=not answers, passages=[SearchHit.from_result(p) for p in result.passages],
                   took_ms=result.took_ms, warnings=list(warnings))


class SearchResponse(BaseModel):
    # always sent: required in the schema, not optional to a generated client (a default would make it so)
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    query: str
    results: list[SearchHit]
    took_ms: TookMs
    warnings: list[FilterWarning] = Field(default_factory=list, description="Filters that match no document: ids, a source, a date range (empty when there are none).")


class ExtractedAnswerOut(BaseModel):
    text: str = Field(..., description="The answer; equals context[start:end].")
    score: float
    start: int = Field(..., description="Character offset of the answer in the given context.")
    end: int
    context: str = Field(..., description="The sentence around the answer: the given context [context_start : context_start + len(context)].")
    context_start: int = Field(..., description="Character offset of that sentence in the given context.")

    @classmethod
    def from_answer(cls, a: Any) -> "ExtractedAnswerOut":
        """From a ``qa.pipeline.ExtractedAnswer``."""
        return cls(text=a.text, score=float(a.score), start=a.start, end=a.end, context=a.context, context_start=a.context_start)


class ExtractResponse(BaseModel):
    question: str
    answers: list[ExtractedAnswerOut]
    no_answer: bool
    took_ms: TookMs


class AddedDocument(BaseModel):
    id: str
    chunks: int = Field(..., description="Chunks the document has in the index now.")


class DocumentsAdded(BaseModel):
    documents: list[AddedDocument]
    added: int
    updated: int
    unchanged: int
    chunks_added: int
    chunks_removed: int


class DocumentInfoOut(BaseModel):
    id: str
    title: str | None
    url: str | None
    published: str | None
    chunks: int
    chars: int


class DocumentPage(BaseModel):
    items: list[DocumentInfoOut]
    total: int
    offset: int = Field(..., json_schema_extra={"format": "int64"})
    limit: int


class DocumentOut(BaseModel):
    id: str
    title: str | None
    text: str
    url: str | None
    published: str | None
    metadata: dict

    @classmethod
    def from_document(cls, doc: Any) -> "DocumentOut":
        """From an ``index.schema.Document``."""
        return cls(id=doc.id, title=doc.title, text=doc.text, url=doc.url, published=doc.published, metadata=doc.metadata or {})


class DeleteResponse(BaseModel):
    id: str
    deleted: bool


class HealthResponse(BaseModel):
    status: Literal["ok"]
    models_loaded: bool
    index_loaded: bool
    documents: int
    chunks: int
    embedder: str
    reader: str


class ErrorResponse(BaseModel):
    detail: str
    request_id: str | None = None
