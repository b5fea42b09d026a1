"""`qa search`, `qa ask` and `qa extract`: questions and searches from the command line, their text
and filters checked by the rules of the API (``qa.validation``, ``index.text.text_problem``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, Optional

import typer

from index.text import TextProblem, has_lone_surrogate, text_problem, visible
from qa.cli_common import MODE_HELP, USAGE, check_mode, fail, guard, open_service, open_store, read_settings, reading, setup_logging
from qa.validation import DEFAULT_SEARCH_TOP_K, MAX_ANSWERS, MAX_QUESTION_CHARS, MAX_TOP_K, Bound, date_bound, empty_period, filter_id_problem, filters_of, source_problem


# index.text.text_problem, said of a question or a query given on the command line
TEXT_PROBLEMS: dict[TextProblem, str] = {"empty": "is empty", "no words": "has no letter or digit"}


def too_long(text: str) -> str:
    """How a question or query (stripped) over the API's MAX_QUESTION_CHARS is said, after "the question is"."""
    return f"longer than {MAX_QUESTION_CHARS} characters (got {len(text)})"


def check_text(value: str, what: str) -> str:
    """A question or query as given on the command line: stripped, UTF-8, with a word in it, at
    most MAX_QUESTION_CHARS characters (the API's limit)."""
    if has_lone_surrogate(value):  # undecodable bytes, kept as surrogates by Python
        fail(f"the {what} is not valid UTF-8 text")
    problem = text_problem(value)
    if problem is not None:
        fail(f"the {what} {TEXT_PROBLEMS[problem]}")
    value = value.strip()
    if len(value) > MAX_QUESTION_CHARS:
        fail(f"the {what} is {too_long(value)}")
    return value


def check_filters(document_ids: list[str] | None, source: str | None, after: str | None, before: str | None):
    """--doc, --source, --after and --before, checked by the rules of the API's filters (qa.validation)."""

    def parse(name: str, value: str | None, bound: Bound):
        if value is None:
            return None
        try:
            return date_bound(value, bound)  # "2017": from its first day / up to its last
        except ValueError:  # a blank one too: --after "$UNSET" is no date, not "any date"
            fail(f"{name} must be a date like 2018-01-31, 2018-01 or 2018, got {value!r}", USAGE)

    if any(filter_id_problem(doc_id) for doc_id in document_ids or ()):  # --doc "$UNSET": not "any document"
        fail("--doc must be a document id, not empty", USAGE)
    problem = source_problem(source) if source is not None else None
    if problem == "empty":  # qa search ... --source "$UNSET": not "any source"
        fail("--source must be a domain name such as numerama.com, not empty", USAGE)
    if problem is not None:
        fail(f"--source must be a domain name such as numerama.com (or a URL on it), got {source!r}", USAGE)
    first, last = parse("--after", after, "after"), parse("--before", before, "before")
    if empty_period(first, last):  # as the API: a range that can hold nothing is a mistake
        fail(f"--after {after} is later than --before {before}", USAGE)
    return filters_of(document_ids, source.strip() if source is not None else None, first, last)


def doc_warnings(document_ids: list[str], stored_among: Callable[[list[str]], set[str]], list_documents: Callable, data_dir: Path) -> list:
    """The API's warnings (``api.schemas.filter_warnings``) for each --doc that names no stored
    document, each also printed on stderr with the id it likely means: a filter on it alone finds
    nothing, which said nothing of the mistyped id. The search still runs (other ids may be right)."""
    from api.schemas import filter_warnings

    warnings = filter_warnings(document_ids, "--doc", stored_among, list_documents)
    for w in warnings:
        hint = f"; did you mean {w.did_you_mean!r}?" if w.did_you_mean is not None else ""
        typer.echo(f"warning: --doc {w.value!r}: no such document in {data_dir}{hint} (see `qa docs list`)", err=True)
    return warnings


def site_warnings(source: str | None, sites: Callable[[], list[str]], data_dir: Path) -> list:
    """The API's warning (``api.schemas.source_warnings``) for a --source that no stored document is
    on, also printed on stderr with the site it likely means."""
    from api.schemas import source_warnings

    warnings = source_warnings(source, "--source", sites)
    for w in warnings:
        hint = f"; did you mean {w.did_you_mean!r}?" if w.did_you_mean is not None else ""
        typer.echo(f"warning: --source {w.value!r}: no document in {data_dir} is on that site{hint}", err=True)
    return warnings


def period_warnings(filters, dates_kept: Callable, data_dir: Path) -> list:
    """The API's warning (``api.schemas.date_warnings``) for --after/--before that keep no document,
    also printed on stderr."""
    from api.schemas import date_warnings

    after, before = (filters.published_after, filters.published_before) if filters is not None else (None, None)
    warnings = date_warnings(after, before, ("--after", "--before"), dates_kept)
    for w in warnings:
        typer.echo(f"warning: {w.field} {w.value}: {w.message} in {data_dir}", err=True)
    return warnings


def search(
    query: str,
    top_k: int = typer.Option(DEFAULT_SEARCH_TOP_K, "--top-k", min=1, max=MAX_TOP_K, help=f"Passages to show ({DEFAULT_SEARCH_TOP_K}, as GET /search)"),
    mode: Optional[str] = typer.Option(None, help=MODE_HELP),
    doc: Optional[list[str]] = typer.Option(None, "--doc", help="Only these document ids"),
    source: Optional[str] = typer.Option(None, help="URL domain, e.g. numerama.com"),
    after: Optional[str] = typer.Option(None, help="Published on or after (YYYY-MM-DD; YYYY-MM or YYYY: from the start of that period)"),
    before: Optional[str] = typer.Option(None, help="Published on or before (YYYY-MM-DD; YYYY-MM or YYYY: up to the end of that period)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Search passages."""
    settings = read_settings()
    setup_logging(settings)
    mode = check_mode(mode, settings)
    query = check_text(query, "query")
    filters = check_filters(doc, source, after, before)  # before the model loads

    store = open_store(settings)
    warnings = reading(settings, doc_warnings, doc or [], store.stored_among, store.list_documents, settings.data_dir)
    t0 = time.perf_counter()
    results = reading(settings, store.search, query, top_k=top_k, mode=mode, filters=filters)
    warnings += site_warnings(source, store.sites, settings.data_dir)  # the sites and dates of the snapshot searched
    warnings += period_warnings(filters, store.dates_kept, settings.data_dir)
    took = (time.perf_counter() - t0) * 1000
    if as_json:  # exactly what GET /search answers
        from api.schemas import SearchHit, SearchResponse, api_json

        resp = SearchResponse(query=query, results=[SearchHit.from_result(r) for r in results], took_ms=took, warnings=warnings)
        typer.echo(api_json(resp.model_dump(mode="json")))
        return
    if not results:
        typer.echo("Aucun passage trouvé.")
    for i, r in enumerate(results, 1):
        typer.echo(f"{i}. [{r.score:.4f}] {visible(r.title or r.document_id)} ({visible(r.document_id)}, {r.published or 's.d.'}) [{r.start}:{r.end}]")
        typer.echo("   " + visible(" ".join(r.text.split())[:300]))


def _stdin_questions(skipped: list[int]):
    """Questions from stdin, one a line (blank lines skipped); a prompt when a person is typing them.
    A line that is not UTF-8, has no word or is too long is reported, its number added to
    ``skipped``, and the rest are still answered."""
    prompt = sys.stdin.isatty()
    n = 0
    while True:
        if prompt:
            typer.echo("question> ", err=True, nl=False)
        raw = sys.stdin.buffer.readline()
        if not raw:
            return
        n += 1
        try:
            line = raw.decode("utf-8-sig" if n == 1 else "utf-8").strip()
        except UnicodeDecodeError as exc:
            typer.echo(f"error: stdin line {n}: not UTF-8 text (byte {exc.start}), skipped", err=True)
            skipped.append(n)
            continue
        problem = text_problem(line)
        if problem == "empty":
            continue
        if problem is not None:
            typer.echo(f"error: stdin line {n}: no letter or digit, skipped", err=True)
            skipped.append(n)
            continue
        if len(line) > MAX_QUESTION_CHARS:
            typer.echo(f"error: stdin line {n}: {too_long(line)}, skipped", err=True)
            skipped.append(n)
            continue
        yield line


def ask(
    question: str = typer.Argument(..., help="The question, or '-' to read one question a line from stdin (models loaded once)"),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, max=MAX_TOP_K, help="Passages to read (default: QA_TOP_K, 5)"),
    max_answers: Optional[int] = typer.Option(None, "--max-answers", min=1, max=MAX_ANSWERS, help="Answers to show at most (default: QA_MAX_ANSWERS, 3)"),
    mode: Optional[str] = typer.Option(None, help=MODE_HELP),
    doc: Optional[list[str]] = typer.Option(None, "--doc", help="Only these document ids"),
    source: Optional[str] = typer.Option(None, help="URL domain, e.g. numerama.com"),
    after: Optional[str] = typer.Option(None, help="Published on or after (YYYY-MM-DD; YYYY-MM or YYYY: from the start of that period)"),
    before: Optional[str] = typer.Option(None, help="Published on or before (YYYY-MM-DD; YYYY-MM or YYYY: up to the end of that period)"),
    as_json: bool = typer.Option(False, "--json", help="Print exactly the /ask response (with '-': one response a line)"),
) -> None:
    """Answer a question from the indexed documents, with sources (the filters of qa search, as /ask's)."""
    settings = read_settings()
    setup_logging(settings)
    many = question == "-"
    if not many:
        question = check_text(question, "question")
    mode = check_mode(mode, settings)
    filters = check_filters(doc, source, after, before)  # before the models load
    top_k = top_k or settings.top_k
    max_answers = max_answers or settings.max_answers
    from qa.render import render_ask
    from api.schemas import api_json
    from qa.serialize import ask_payload

    svc = open_service(settings)
    warnings = reading(settings, doc_warnings, doc or [], svc.stored_among, svc.list_documents, settings.data_dir)
    warnings += site_warnings(source, svc.sites, settings.data_dir)
    warnings += period_warnings(filters, svc.dates_kept, settings.data_dir)
    skipped: list[int] = []
    answered = 0
    for q in _stdin_questions(skipped) if many else [question]:
        result = reading(settings, svc.ask, q, top_k=top_k, max_answers=max_answers, mode=mode, filters=filters)
        answered += 1
        if as_json:  # one line, as every --json: JSON Lines when reading many questions
            typer.echo(api_json(ask_payload(result, warnings)))
        else:
            typer.echo(render_ask(result) + ("\n" if many else ""))
    if many and not answered and not skipped and not sys.stdin.isatty():
        # an empty pipe is most often an upstream failure: a script should not read it as success
        typer.echo("error: stdin held no question (one a line)", err=True)
        raise typer.Exit(1)
    if skipped:
        raise typer.Exit(1)


def extract(
    question: str,
    context_file: Path = typer.Argument(..., help="Text file holding the context ('-' for stdin)"),
    max_answers: Optional[int] = typer.Option(None, "--max-answers", min=1, max=MAX_ANSWERS, help="Answers to show at most (default: QA_MAX_ANSWERS, 3)"),
    as_json: bool = typer.Option(False, "--json", help="Print exactly the /extract response (offsets into the file's text)"),
) -> None:
    """Run the reader alone on a given context."""
    settings = read_settings()
    setup_logging(settings)
    question = check_text(question, "question")
    raw = sys.stdin.buffer.read() if str(context_file) == "-" else _read_bytes(context_file)
    where = "stdin" if str(context_file) == "-" else str(context_file)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        fail(f"{where}: not UTF-8 text (byte {exc.start})")
    problem = text_problem(text)  # the rule of POST /extract's context
    if problem is not None:
        fail(f"{where}: the context {TEXT_PROBLEMS[problem]}")
    from qa.pipeline import configure_torch, load_reader, QAService

    configure_torch(settings)
    reader = guard(load_reader, settings)
    svc = QAService(settings, None, reader, None)
    t0 = time.perf_counter()
    answers = svc.extract(question, text, max_answers=max_answers or settings.max_answers)
    took = (time.perf_counter() - t0) * 1000
    if as_json:
        from api.schemas import ExtractedAnswerOut, ExtractResponse, api_json

        resp = ExtractResponse(question=question, answers=[ExtractedAnswerOut.from_answer(a) for a in answers], no_answer=not answers, took_ms=took)
        typer.echo(api_json(resp.model_dump(mode="json")))
        return
    from qa.render import render_extract

    typer.echo(render_extract(question, answers, took))


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        fail(f"no such file: {path}")
    except IsADirectoryError:
        fail(f"{path} is a folder: give a text file")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
