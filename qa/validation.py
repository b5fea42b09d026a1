"""What a question's or a search's options may be: the rules the `qa` command and the HTTP API share.

Pure functions that say what is wrong, if anything; each side says it in its own words (the `qa`
command names the option and exits 2, the API answers 422 naming the field). The text of a question
or a query follows ``index.text.text_problem``, a mode ``index.schema.Mode``; the rules for
documents are in ``index.schema`` and ``index.text``, which `qa index` applies too.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Literal

from index.retrieval import normalize_domain, period_bounds
from index.schema import Filters, clean_id, normalize_id

MAX_QUESTION_CHARS = 1_000  # characters of a question or a query (surrounding whitespace left out), at most
MAX_DOCUMENT_QUERY_CHARS = 1_000  # characters of the text GET /documents?q= and `qa docs list --search` look for in titles and ids, at most
MAX_TOP_K = 50  # passages a question reads or a search returns, at most
MAX_ANSWERS = 20  # answers a question or an extraction returns, at most
DEFAULT_SEARCH_TOP_K = 10  # passages a search returns by default (QA_TOP_K is what a question reads)

SourceProblem = Literal["empty", "not a domain"]
Bound = Literal["after", "before"]


def source_problem(source: str) -> SourceProblem | None:
    """Why ``source`` cannot filter by site, or None: "empty" (blank: `--source "$UNSET"` is not
    "any source") or "not a domain" (a space in it, or no host name: "https://" would match nothing).
    A URL stands for its domain; surrounding whitespace is ignored."""
    value = source.strip()
    if not value:
        return "empty"
    if any(ch.isspace() for ch in value) or normalize_domain(value) is None:
        return "not a domain"
    return None


def filter_id_problem(doc_id: str) -> Literal["empty"] | None:
    """Why ``doc_id`` cannot name a document to search in, or None: "empty" (blank: `--doc "$UNSET"`
    is not "any document", and no document has such an id, ``index.schema.id_problem``: it would
    silently match nothing)."""
    return "empty" if not clean_id(doc_id) else None


def date_bound(value: str, bound: Bound) -> date:
    """The first day a date filter lets through ("after") or its last ("before"). A partial ISO date
    stands for its whole period, as documents' dates do: after "2017" is from 2017-01-01, before
    "2017-10" up to 2017-10-31. Raises ValueError for anything else, a blank value included."""
    first, last = period_bounds(value)
    return first if bound == "after" else last


def empty_period(after: date | None, before: date | None) -> bool:
    """A date range that can hold nothing (``after`` later than ``before``): a mistake, not a search
    with no results."""
    return after is not None and before is not None and after > before


def filter_ids(document_ids: list[str]) -> list[str]:
    """The stored ids a document filter given ``document_ids`` (checked already) matches: each one as
    ids are stored (``index.schema.clean_id``: stripped, NFC), so that " 004_x " finds "004_x" as
    POST /documents and `qa index` would have stored it; and as given (in NFC), for an id that an
    earlier version stored with its surrounding spaces (it kept a file name's), as GET
    /documents/{id} finds it."""
    return list(dict.fromkeys(form for doc_id in document_ids for form in (clean_id(doc_id), normalize_id(doc_id))))


def unknown_document_ids(document_ids: list[str], stored_among: Callable[[list[str]], set[str]]) -> list[str]:
    """The ids of ``document_ids`` (checked already) that a filter on them matches no document by
    (none of their ``filter_ids`` forms is stored), each once, in the order given: " x " and "x",
    one id to the filter, are one (the first as sent)."""
    ids = list(dict.fromkeys(document_ids))
    found = stored_among(filter_ids(ids))
    unknown = [doc_id for doc_id in ids if not found.intersection(filter_ids([doc_id]))]
    seen: set[str] = set()
    return [doc_id for doc_id in unknown if not (clean_id(doc_id) in seen or seen.add(clean_id(doc_id)))]


def filters_of(document_ids: list[str] | None, source: str | None, after: date | None, before: date | None) -> Filters | None:
    """The filters a request sets, checked already (``source`` stripped; ``document_ids`` widened by
    ``filter_ids``), or None when it sets none: every document."""
    if not (document_ids or source or after or before):
        return None
    return Filters(document_ids=filter_ids(document_ids) if document_ids else None, source=source, published_after=after, published_before=before)
