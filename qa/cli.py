"""The ``qa`` command: models, index, docs (list, show, delete), search, ask, extract, serve, eval, train-reader."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import NoReturn, Optional

import typer

from index.schema import MODES
from index.text import TextProblem, has_lone_surrogate, text_problem, visible
from qa.render import plural
from qa.settings import Settings
from qa.validation import DEFAULT_SEARCH_TOP_K, MAX_ANSWERS, MAX_TOP_K, Bound, date_bound, empty_period, filters_of, source_problem

log = logging.getLogger("qa.cli")
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, help="French semantic search and extractive question answering.")


def _settings() -> Settings:
    from qa.settings import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        _fail(str(exc))


USAGE = 2  # the command line is wrong (an option's value), as click's own usage errors; 1 is any other failure


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _setup_logging(settings: Settings, verbose: bool = False) -> None:
    from qa.logs import setup_logging

    setup_logging(settings.log_level, verbose)


def _guard(fn, *args, **kwargs):
    """Turn known user-facing errors into one clear line instead of a traceback."""
    from index.e5_convert import ModelSourceError
    from index.store import ReindexNeeded

    try:
        return fn(*args, **kwargs)
    except (ModelSourceError, ReindexNeeded) as exc:
        _fail(str(exc))


def _check_data_dir(settings: Settings) -> None:
    if settings.data_dir.exists() and not settings.data_dir.is_dir():
        _fail(f"QA_DATA_DIR {settings.data_dir} is a file: it must be a folder (the index is several files)")
    parent = next((p for p in settings.data_dir.absolute().parents if p.exists()), None)
    if not settings.data_dir.exists() and parent is not None and not (parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)):
        _fail(f"QA_DATA_DIR {settings.data_dir} cannot be created: {parent} is {'not a folder' if not parent.is_dir() else 'not writable'}")
    if settings.data_dir.is_dir() and not os.access(settings.data_dir, os.W_OK | os.X_OK):  # a read-only mount, say
        _fail(f"QA_DATA_DIR {settings.data_dir} is not writable: the index is written there, and SQLite writes its journal there even to read")


def _need_index(data_dir: Path) -> None:
    """Commands that read the index fail on a missing one (a mistyped QA_DATA_DIR) instead of
    creating an empty index and finding nothing."""
    from index.store import index_exists

    if not index_exists(data_dir):
        _fail(f"no index at {data_dir}: run `qa index data/articles` first (or set QA_DATA_DIR to your index)")


def _opening(settings: Settings, fn, *args, **kwargs):
    """``fn`` opening the index, a damaged one as one line."""
    import sqlite3

    try:
        return _guard(fn, *args, **kwargs)
    except (sqlite3.DatabaseError, OSError) as exc:
        _index_failed(settings, exc)


def _index_failed(settings: Settings, exc: BaseException) -> NoReturn:
    """Opening the index failed: a full or unwritable folder, or a damaged or newer index, as one
    line; an OSError about anything else (the models' folder) goes on as it is."""
    _storage_fail(settings, exc)
    if isinstance(exc, OSError):
        raise exc
    _fail(f"cannot read the index at {settings.data_dir}: {exc}")


def _storage_fail(settings: Settings, exc: BaseException, kept: str = "", always: bool = False, verb: str = "use") -> None:
    """A full or unwritable index folder (any failure to write to it, with ``always``), as one line
    saying what to do; returns for anything else, such as an error about the models' folder."""
    import sqlite3

    from index.store import storage_problem

    if isinstance(exc, OSError):  # only the index folder's own files are blamed on it
        name = exc.filename if isinstance(exc.filename, str) else None
        folder = os.path.abspath(settings.data_dir)
        if name is None or os.path.commonpath([folder, os.path.abspath(name)]) != folder:
            return
    elif not isinstance(exc, sqlite3.Error):
        return
    problem = storage_problem(exc)
    if problem is not None:
        what = "make room on its disk" if problem == "full" else "make it writable"
        _fail(f"cannot {verb} the index in {settings.data_dir}: the folder is {problem} ({exc}){kept}; {what} and run the command again")
    if always:
        _fail(f"cannot {verb} the index in {settings.data_dir}: {exc}{kept}; check its disk and run the command again")


def _open_store(settings: Settings, rebuild: bool = False, create: bool = False):
    """The embedder and the index, as configured (what `index` and `search` need, no reader);
    ``create``: a missing index is created (only `qa index` writes one)."""
    from index.embeddings import Embedder
    from index.store import IndexStore

    _check_data_dir(settings)
    if not create:
        _need_index(settings.data_dir)
    emb = _guard(Embedder, settings.embedder, settings.models_dir, batch_size=settings.embed_batch_size, source=settings.e5_source)
    return _opening(settings, IndexStore.open, settings.data_dir, emb, rebuild=rebuild, **settings.store_options())


def _read_index(settings: Settings, fn):
    """``fn(data_dir)`` on the configured index without any model, a damaged or newer index as one line."""
    import sqlite3

    try:
        return fn(settings.data_dir)
    except (RuntimeError, sqlite3.DatabaseError, OSError) as exc:
        _index_failed(settings, exc)


def _catalog(settings: Settings):
    """The index's documents, read only and without loading any model (`qa docs list` / `show`)."""
    from index.store import DocumentCatalog

    _need_index(settings.data_dir)  # a mistyped QA_DATA_DIR is not an empty index
    return _read_index(settings, DocumentCatalog)


def _service(settings: Settings):
    from qa.pipeline import QAService

    _check_data_dir(settings)
    _need_index(settings.data_dir)
    return _opening(settings, QAService.from_settings, settings)


_MODES = f"{', '.join(MODES[:-1])} or {MODES[-1]}"  # "hybrid, dense or bm25"


def _mode(mode: str | None, settings: Settings) -> str:
    """--mode, else QA_RETRIEVAL_MODE (as the API does)."""
    if mode is None:
        return settings.retrieval_mode
    if mode not in MODES:
        _fail(f"--mode must be {_MODES}, got {mode!r}", USAGE)
    return mode


_MODE_HELP = f"{_MODES} (default: QA_RETRIEVAL_MODE, hybrid)"
# index.text.text_problem, said of a question or a query given on the command line
_TEXT_PROBLEMS: dict[TextProblem, str] = {"empty": "is empty", "no words": "has no letter or digit"}


def _check_text(value: str, what: str) -> str:
    """A question or query as given on the command line: stripped, UTF-8, with a word in it."""
    if has_lone_surrogate(value):  # undecodable bytes, kept as surrogates by Python
        _fail(f"the {what} is not valid UTF-8 text")
    problem = text_problem(value)
    if problem is not None:
        _fail(f"the {what} {_TEXT_PROBLEMS[problem]}")
    return value.strip()


def _filters(document_ids: list[str] | None, source: str | None, after: str | None, before: str | None):
    """--doc, --source, --after and --before, checked by the rules of the API's filters (qa.validation)."""

    def parse(name: str, value: str | None, bound: Bound):
        if value is None:
            return None
        try:
            return date_bound(value, bound)  # "2017": from its first day / up to its last
        except ValueError:  # a blank one too: --after "$UNSET" is no date, not "any date"
            _fail(f"{name} must be a date like 2018-01-31, 2018-01 or 2018, got {value!r}", USAGE)

    problem = source_problem(source) if source is not None else None
    if problem == "empty":  # qa search ... --source "$UNSET": not "any source"
        _fail("--source must be a domain name such as numerama.com, not empty", USAGE)
    if problem is not None:
        _fail(f"--source must be a domain name such as numerama.com (or a URL on it), got {source!r}", USAGE)
    first, last = parse("--after", after, "after"), parse("--before", before, "before")
    if empty_period(first, last):  # as the API: a range that can hold nothing is a mistake
        _fail(f"--after {after} is later than --before {before}", USAGE)
    return filters_of(document_ids, source.strip() if source is not None else None, first, last)


@app.command()
def models(
    prune: bool = typer.Option(False, "--prune", help="Then remove what QA_MODELS_DIR holds that the current settings do not use: model folders this project built (an older version's reader or embedder, or a built-in model QA_EMBEDDER / QA_READER no longer names) and leftovers of stopped builds; nothing else. A server of an older version, or one configured otherwise, may still use such a folder: run it after restarting servers on this version and these settings"),
    dry_run: bool = typer.Option(False, "--dry-run", help="With --prune: list what it would remove, remove nothing"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Build (once) and check the default models; print their paths and dimension. With --prune,
    reclaim the space of model folders the current settings do not use."""
    if dry_run and not prune:
        _fail("--dry-run goes with --prune", USAGE)
    settings = _settings()
    _setup_logging(settings, verbose)
    from index.embeddings import BUILTIN_EMBEDDER, ensure_builtin_embedder

    in_use: set[str] = set()  # the model cache folders the current settings use
    if settings.embedder == BUILTIN_EMBEDDER:
        t0 = time.time()
        path, built = _guard(ensure_builtin_embedder, settings.models_dir, settings.e5_source, verify=True)
        in_use.add(path.name)
        typer.echo(f"embedder {settings.embedder}: {path} ({'built in %.0fs' % (time.time() - t0) if built else 'reused'})")
    from index.embeddings import Embedder

    emb = _guard(Embedder, settings.embedder, settings.models_dir, source=settings.e5_source)
    typer.echo(f"embedder dimension: {emb.dim}, max tokens: {emb.max_tokens}")
    from qa.reader import BUILTIN_READER, ensure_builtin_reader

    if settings.reader == BUILTIN_READER:
        t0 = time.time()
        path, built = _guard(ensure_builtin_reader, settings.models_dir, Path(settings.reader_artifact), settings.e5_source, verify=True)
        in_use.add(path.name)
        typer.echo(f"reader {settings.reader}: {path} ({'built in %.0fs' % (time.time() - t0) if built else 'reused'})")
    else:
        from qa.pipeline import load_reader

        reader = _guard(load_reader, settings)  # fetched into the Hugging Face cache now, not at the first question
        typer.echo(f"reader {settings.reader}: loaded ({reader.max_length} tokens a window)")
    if prune:  # only once the models in use are known to be built and sound
        _prune_models(settings.models_dir, (BUILTIN_EMBEDDER, BUILTIN_READER), in_use, dry_run)


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _prune_models(models_dir: Path, kinds: tuple[str, ...], in_use: set[str], dry_run: bool) -> None:
    """Remove (or list) the model cache folders ``prunable_folders`` finds, with the space freed."""
    from index.e5_convert import folder_bytes, prunable_folders, set_aside

    found = prunable_folders(models_dir, kinds, in_use)
    if not found:
        typer.echo(f"nothing to remove in {models_dir}: it holds no model folder the current settings do not use")
        return
    freed, failed = 0, 0
    for item in found:
        why = "left by a model build that was stopped" if item.stopped_build else "not used by the current settings"
        if dry_run:
            typer.echo(f"would remove {item.path} ({_megabytes(item.size)}): {why}")
            freed += item.size
            continue
        gone = item.path
        try:
            gone = set_aside(item.path)
            shutil.rmtree(gone)
        except FileNotFoundError:  # removed meanwhile by another process: not freed by this one
            continue
        except OSError as exc:
            failed += 1
            where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(gone) else ""
            typer.echo(f"error: cannot remove {gone}: {exc.strerror or exc}{where}", err=True)
        left = folder_bytes(gone) if gone.exists() else 0
        freed += item.size - left
        if not gone.exists():
            typer.echo(f"removed {item.path} ({_megabytes(item.size)}): {why}")
    if dry_run:
        typer.echo(f"would free {_megabytes(freed)} in {models_dir} (--dry-run: nothing was removed)")
        return
    typer.echo(f"freed {_megabytes(freed)} in {models_dir}")
    if failed:
        raise typer.Exit(1)


@app.command()
def index(
    paths: Optional[list[str]] = typer.Argument(None, help="Files or folders (.txt .md .html .json .jsonl); none with --rebuild alone"),
    rebuild: bool = typer.Option(False, help="Re-chunk every stored document with the configured model, chunk size and dense index type (after changing one of them; passages already embedded by the same model keep their vectors); nothing is lost"),
    batch_docs: int = typer.Option(500, "--batch-docs", min=1, help="Documents written per atomic step: an interrupted run keeps the steps done, and running it again resumes"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Index documents into QA_DATA_DIR (only new or changed chunks are embedded)."""
    settings = _settings()
    _setup_logging(settings, verbose)
    from index.ingest import load_documents

    t0 = time.time()
    paths = paths or []
    if not paths and not rebuild:
        _fail("give the files or folders to index (or --rebuild alone to re-chunk what the index holds)", USAGE)
    if not paths:
        _need_index(settings.data_dir)  # a rebuild of nothing: a mistyped QA_DATA_DIR
    if any(not p.strip() for p in paths):  # qa index "$UNSET": not the current folder
        _fail("an empty path was given", USAGE)
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        _fail(f"no such file or folder: {missing[0]}")
    docs, errors = load_documents([Path(p) for p in paths])
    for e in errors:
        where = f"{e.path}:{e.line}" if e.line else e.path
        typer.echo(f"skipped {where}: {e.reason}", err=True)

    from index.store import AddReport, add_in_batches

    store = _open_store(settings, rebuild=rebuild, create=True)
    if store.rebuilt is not None:
        r = store.rebuilt
        typer.echo(f"rebuilt: {plural(r.documents, 'document')} re-chunked, {plural(r.chunks_before, 'chunk')} replaced by {r.chunks} "
                   f"({r.embedded} embedded, the others kept their vectors)")
    for d, old_source in _replaced_from_other_files(store, docs):
        typer.echo(
            f"warning: document {d.id!r} was indexed from {old_source}; {d.metadata['source_file']} has the same "
            "name (the id) and another text, and replaces it: rename one of the files to keep both", err=True,
        )
    for d, other_id in _indexed_under_another_id(store, docs):
        typer.echo(
            f"warning: {d.metadata['source_file']} is also indexed as document {other_id!r} (an older name, or the same file "
            f"reached from another folder given to qa index); it is now {d.id!r}: `qa docs delete {other_id}` removes the other copy", err=True,
        )
    import sqlite3

    rep, done = AddReport(), 0
    try:
        for done, batch_rep in add_in_batches(store, docs, batch_docs, progress=sys.stderr.isatty()):
            rep.merge(batch_rep)
            if done < len(docs):
                log.info("indexed %d of %d documents", done, len(docs))
    except KeyboardInterrupt:
        store.close()
        typer.echo(f"interrupted: the first {done} of {len(docs)} documents are indexed and kept; run the same command again to index the rest (indexed ones are skipped)", err=True)
        raise typer.Exit(130)
    except (OSError, sqlite3.Error) as exc:
        store.close()
        _storage_fail(settings, exc, kept=f"; the first {done} of {len(docs)} documents are indexed and kept", always=True, verb="write")
        raise
    counts = store.counts()
    store.close()
    now = f"index now {plural(counts['documents'], 'document')} / {plural(counts['chunks'], 'chunk')}"
    if not paths:  # --rebuild alone: nothing was read
        typer.echo(f"{now}, {time.time() - t0:.1f}s")
        return
    typer.echo(
        f"documents: {len(docs)} read ({rep.documents_added} added, {rep.documents_updated} updated, {rep.documents_unchanged} unchanged), "
        f"chunks: {rep.chunks_added} added ({rep.chunks_embedded} embedded, the others reused stored vectors), {rep.chunks_removed} removed, {now}, "
        f"skipped: {len(errors)}{' (files or records, listed above)' if errors else ''}, {time.time() - t0:.1f}s"
    )
    if errors:  # what could be read is indexed; the status tells scripts that something was not
        raise typer.Exit(1)


def _replaced_from_other_files(store, docs):
    """Documents read from a file whose name (the id) an indexed document from another file already
    has, with another text: indexing them replaces that document, which must not happen silently."""
    for d in docs:
        source = d.metadata.get("source_file")
        if source is None:
            continue
        old = store.get_document(d.id)
        old_source = (old.metadata or {}).get("source_file") if old is not None else None
        if old_source and _file_key(old_source) != _file_key(source) and old.text != d.text:
            yield d, old_source


def _indexed_under_another_id(store, docs):
    """(document, other id) for each file read now that the index already holds under another id:
    before files were named after their path in the folder given, "site/eco/a.txt" was "a"; and
    `qa index site` then `qa index site/eco` name one file "eco/a" and "a"."""
    ids = {d.id for d in docs}
    by_file: dict[str, list[str]] = {}
    for doc_id, source in store.source_files():
        if doc_id not in ids:
            by_file.setdefault(_file_key(source), []).append(doc_id)
    for d in docs:
        source = d.metadata.get("source_file")
        for other_id in by_file.get(_file_key(source), []) if source else []:
            yield d, other_id


def _file_key(source_file: str) -> str:
    """One file, however it was named: `qa index` stores absolute paths (older indexes, the paths they
    were given, which resolve from the current folder)."""
    return os.path.realpath(source_file)


@app.command()
def search(
    query: str,
    top_k: int = typer.Option(DEFAULT_SEARCH_TOP_K, "--top-k", min=1, max=MAX_TOP_K, help=f"Passages to show ({DEFAULT_SEARCH_TOP_K}, as GET /search)"),
    mode: Optional[str] = typer.Option(None, help=_MODE_HELP),
    doc: Optional[list[str]] = typer.Option(None, "--doc", help="Only these document ids"),
    source: Optional[str] = typer.Option(None, help="URL domain, e.g. numerama.com"),
    after: Optional[str] = typer.Option(None, help="Published on or after (YYYY-MM-DD; YYYY-MM or YYYY: from the start of that period)"),
    before: Optional[str] = typer.Option(None, help="Published on or before (YYYY-MM-DD; YYYY-MM or YYYY: up to the end of that period)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Search passages."""
    settings = _settings()
    _setup_logging(settings)
    mode = _mode(mode, settings)
    query = _check_text(query, "query")
    filters = _filters(doc, source, after, before)  # before the model loads

    store = _open_store(settings)
    t0 = time.perf_counter()
    results = store.search(query, top_k=top_k, mode=mode, filters=filters)
    took = (time.perf_counter() - t0) * 1000
    if as_json:  # exactly what GET /search answers
        from api.schemas import SearchHit, SearchResponse

        resp = SearchResponse(query=query, results=[SearchHit.from_result(r) for r in results], took_ms=took)
        typer.echo(json.dumps(resp.model_dump(mode="json"), ensure_ascii=False, indent=1))
        return
    if not results:
        typer.echo("Aucun passage trouvé.")
    for i, r in enumerate(results, 1):
        typer.echo(f"{i}. [{r.score:.4f}] {visible(r.title or r.document_id)} ({visible(r.document_id)}, {r.published or 's.d.'}) [{r.start}:{r.end}]")
        typer.echo("   " + visible(" ".join(r.text.split())[:300]))


docs_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="The documents in the index: list, show, delete (add them with `qa index`).")
app.add_typer(docs_app, name="docs")


@docs_app.command("list")
def docs_list(
    offset: int = typer.Option(0, min=0, help="Documents to skip"),
    limit: int = typer.Option(50, min=1, max=10_000, help="Documents to list"),
    as_json: bool = typer.Option(False, "--json", help="Print the page as GET /documents does (which takes at most 200 a page)"),
) -> None:
    """List the indexed documents (id, chunks, characters, date, title)."""
    settings = _settings()
    _setup_logging(settings)
    catalog = _catalog(settings)
    items, total = catalog.list_documents(offset, limit)
    catalog.close()
    if as_json:
        from api.schemas import DocumentInfoOut, DocumentPage

        page = DocumentPage(items=[DocumentInfoOut(**asdict(i)) for i in items], total=total, offset=offset, limit=limit)
        typer.echo(json.dumps(page.model_dump(mode="json"), ensure_ascii=False, indent=1))
        return
    for i in items:
        typer.echo(f"{visible(i.id)}\t{plural(i.chunks, 'chunk')}\t{plural(i.chars, 'char')}\t{i.published or 's.d.'}\t{visible(i.title or '')}")
    shown = f"{offset + 1}-{offset + len(items)}" if items else "none"
    typer.echo(f"{plural(total, 'document')} ({shown} shown)", err=True)


def _check_id_text(doc_id: str) -> None:
    if has_lone_surrogate(doc_id):  # bytes the shell passed that are not UTF-8: no document has such an id
        _fail(f"document id {doc_id!r} is not UTF-8 text: no document has such an id (see `qa docs list`)")


def _missing_document(doc_id: str, settings: Settings, as_json: bool, why: str | None = None) -> None:
    """Exit 1 for an unknown id; with --json, the API's 404 body on stdout too (scripts read it)."""
    if as_json:
        from api.schemas import document_not_found

        typer.echo(json.dumps({"detail": document_not_found(doc_id)}, ensure_ascii=False))
    _fail(f"no document {doc_id!r} in {settings.data_dir}" + (f": {why}" if why else "") + " (see `qa docs list`)")


@docs_app.command("show")
def docs_show(
    doc_id: str = typer.Argument(..., help="Document id (see `qa docs list`)"),
    as_json: bool = typer.Option(False, "--json", help="Print exactly the GET /documents/{id} response"),
) -> None:
    """Print one document: its id, title, URL, date and metadata, a blank line, then its full text exactly (answer offsets point into it)."""
    settings = _settings()
    _setup_logging(settings)
    _check_id_text(doc_id)
    catalog = _catalog(settings)
    doc = catalog.get_document(doc_id)
    catalog.close()
    if doc is None:
        _missing_document(doc_id, settings, as_json)
    if as_json:
        from api.schemas import DocumentOut

        out = DocumentOut.from_document(doc)
        typer.echo(json.dumps(out.model_dump(mode="json"), ensure_ascii=False, indent=1))
        return
    for label, value in (("id", doc.id), ("title", doc.title), ("url", doc.url), ("published", doc.published)):
        if value:
            typer.echo(f"{label}: {visible(value)}")
    if doc.metadata:
        typer.echo(f"metadata: {json.dumps(doc.metadata, ensure_ascii=False)}")
    typer.echo("")
    # after the header's blank line, the text as stored when redirected (offsets count in it: no line
    # break added, and color=True stops click from stripping what looks like colour codes); on a
    # terminal, its escapes shown, not obeyed
    if sys.stdout.isatty():
        typer.echo(visible(doc.text.replace("\r\n", "\n"), keep="\n\t"))  # a lone CR would overwrite the line shown
    else:
        typer.echo(doc.text, color=True, nl=False)


@docs_app.command("delete")
def docs_delete(
    doc_id: str = typer.Argument(..., help="Document id (see `qa docs list`)"),
    as_json: bool = typer.Option(False, "--json", help="Print exactly the DELETE /documents/{id} response"),
) -> None:
    """Remove a document and its passages from the index."""
    from index.store import IndexStore, recorded_embedder

    settings = _settings()
    _setup_logging(settings)
    _check_id_text(doc_id)
    # a delete touches no vectors but the ones it removes: open the index with what it records of its
    # embedder instead of loading the model (seconds of torch start-up)
    recorded = _read_index(settings, recorded_embedder)
    if recorded is None:
        _missing_document(doc_id, settings, as_json, "there is no index there")
    store = IndexStore.open(settings.data_dir, recorded, **settings.store_options())
    deleted = store.delete_document(doc_id)
    counts = store.counts()
    store.close()
    if deleted is None:
        _missing_document(doc_id, settings, as_json)
    if as_json:
        from api.schemas import DeleteResponse

        typer.echo(json.dumps(DeleteResponse(id=deleted, deleted=True).model_dump(mode="json"), ensure_ascii=False, indent=1))
        return
    typer.echo(f"deleted {deleted}; index now {plural(counts['documents'], 'document')} / {plural(counts['chunks'], 'chunk')}")


def _stdin_questions(skipped: list[int]):
    """Questions from stdin, one a line (blank lines skipped); a prompt when a person is typing them.
    A line that is not UTF-8 or has no word is reported, its number added to ``skipped``, and the
    rest are still answered."""
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
        yield line


@app.command()
def ask(
    question: str = typer.Argument(..., help="The question, or '-' to read one question a line from stdin (models loaded once)"),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, max=MAX_TOP_K, help="Passages to read (default: QA_TOP_K, 5)"),
    max_answers: Optional[int] = typer.Option(None, "--max-answers", min=1, max=MAX_ANSWERS, help="Answers to show at most (default: QA_MAX_ANSWERS, 3)"),
    mode: Optional[str] = typer.Option(None, help=_MODE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print exactly the /ask response (with '-': one response a line)"),
) -> None:
    """Answer a question from the indexed documents, with sources."""
    settings = _settings()
    _setup_logging(settings)
    many = question == "-"
    if not many:
        question = _check_text(question, "question")
    mode = _mode(mode, settings)
    top_k = top_k or settings.top_k
    max_answers = max_answers or settings.max_answers
    from qa.render import render_ask
    from qa.serialize import ask_payload

    svc = _service(settings)
    skipped: list[int] = []
    answered = 0
    for q in _stdin_questions(skipped) if many else [question]:
        result = svc.ask(q, top_k=top_k, max_answers=max_answers, mode=mode)
        answered += 1
        if as_json:  # JSON Lines when reading many questions, so that each response is one line
            typer.echo(json.dumps(ask_payload(result), ensure_ascii=False, indent=None if many else 1))
        else:
            typer.echo(render_ask(result) + ("\n" if many else ""))
    if many and not answered and not skipped and not sys.stdin.isatty():
        # an empty pipe is most often an upstream failure: a script should not read it as success
        typer.echo("error: stdin held no question (one a line)", err=True)
        raise typer.Exit(1)
    if skipped:
        raise typer.Exit(1)


@app.command()
def extract(
    question: str,
    context_file: Path = typer.Argument(..., help="Text file holding the context ('-' for stdin)"),
    max_answers: Optional[int] = typer.Option(None, "--max-answers", min=1, max=MAX_ANSWERS, help="Answers to show at most (default: QA_MAX_ANSWERS, 3)"),
    as_json: bool = typer.Option(False, "--json", help="Print exactly the /extract response (offsets into the file's text)"),
) -> None:
    """Run the reader alone on a given context."""
    settings = _settings()
    _setup_logging(settings)
    question = _check_text(question, "question")
    raw = sys.stdin.buffer.read() if str(context_file) == "-" else _read_bytes(context_file)
    where = "stdin" if str(context_file) == "-" else str(context_file)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        _fail(f"{where}: not UTF-8 text (byte {exc.start})")
    problem = text_problem(text)  # the rule of POST /extract's context
    if problem is not None:
        _fail(f"{where}: the context {_TEXT_PROBLEMS[problem]}")
    from qa.pipeline import configure_torch, load_reader, QAService

    configure_torch(settings)
    reader = _guard(load_reader, settings)
    svc = QAService(settings, None, reader, None)
    t0 = time.perf_counter()
    answers = svc.extract(question, text, max_answers=max_answers or settings.max_answers)
    took = (time.perf_counter() - t0) * 1000
    if as_json:
        from api.schemas import ExtractedAnswerOut, ExtractResponse

        resp = ExtractResponse(question=question, answers=[ExtractedAnswerOut.from_answer(a) for a in answers], no_answer=not answers, took_ms=took)
        typer.echo(json.dumps(resp.model_dump(mode="json"), ensure_ascii=False, indent=1))
        return
    from qa.render import render_extract

    typer.echo(render_extract(question, answers, took))


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        _fail(f"no such file: {path}")
    except IsADirectoryError:
        _fail(f"{path} is a folder: give a text file")
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror}")


@app.command()
def serve(
    host: Optional[str] = typer.Option(None, help="Default: QA_HOST (127.0.0.1)"),
    port: Optional[int] = typer.Option(None, min=1, max=65535, help="Default: QA_PORT (8000)"),
    workers: int = typer.Option(1, min=1, help="Each worker loads its own models (~1 GB)"),
) -> None:
    """Serve the HTTP API and the question page with uvicorn."""
    settings = _settings()
    _setup_logging(settings)
    host = host or settings.host
    port = port if port is not None else settings.port
    _serve_preflight(settings, host, port)
    from api.serving import run_server

    run = lambda: run_server(settings, host, port, workers)  # noqa: E731  the exit status: 0 after SIGTERM or Ctrl-C
    if workers == 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        raise typer.Exit(run())
    # several worker processes: metrics go through a shared folder so /metrics counts all of them
    # (api.metrics); a fresh one each time, since values left by an earlier server would add up
    with tempfile.TemporaryDirectory(prefix="qa-metrics-") as folder:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        try:
            status = run()
        finally:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]
    raise typer.Exit(status)


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def _serve_preflight(settings: Settings, host: str, port: int) -> None:
    """What would otherwise fail inside uvicorn, after seconds of model loading, as a traceback:
    checked first, each as one line."""
    import socket

    from index.store import DocumentCatalog, index_exists

    from qa.settings import configured_key

    problem = settings.keys_problem()
    if problem is not None:
        _fail(problem)
    if configured_key(settings.api_key) is None and not _is_loopback(host):
        typer.echo(f"warning: listening on {host} with no QA_API_KEY: anyone who reaches port {port} can add and delete documents", err=True)
    _check_data_dir(settings)
    if index_exists(settings.data_dir):
        _read_index(settings, DocumentCatalog).close()  # damaged or newer: one line
    else:
        typer.echo(f"note: no index at {settings.data_dir} yet: the service starts empty (add documents with `qa index` or POST /documents)", err=True)
    try:  # the port, before the models load
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {os.strerror(exc.errno) if exc.errno else exc} (QA_PORT / --port)")
    from index.embeddings import BUILTIN_EMBEDDER, ensure_builtin_embedder
    from qa.reader import BUILTIN_READER, ensure_builtin_reader

    # the built-in models: a damaged artifact or cache, or a missing source, before uvicorn starts
    if settings.embedder == BUILTIN_EMBEDDER:
        _guard(ensure_builtin_embedder, settings.models_dir, settings.e5_source)
    if settings.reader == BUILTIN_READER:
        _guard(ensure_builtin_reader, settings.models_dir, Path(settings.reader_artifact), settings.e5_source)
    # other model names: one that cannot be loaded here (not a folder, not cached, hub unreachable)
    from index.hub import model_source_problem

    for variable, kind, name in (("QA_EMBEDDER", "embedder", settings.embedder), ("QA_READER", "reader", settings.reader)):
        if name not in (BUILTIN_EMBEDDER, BUILTIN_READER):
            problem = model_source_problem(name)
            if problem is not None:
                _fail(f"cannot load {kind} {name!r}: {problem}; set {variable} to a local folder or a model id you can download")


@app.command("eval")
def eval_cmd(
    gold: Path = typer.Argument(..., help="Gold set: JSONL {id, question, answers, document_ids} or SQuAD JSON"),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, max=MAX_TOP_K, help="Passages read per question (default: QA_TOP_K, 5)"),
    mode: Optional[str] = typer.Option(None, help=_MODE_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the JSON report here"),
    errors: bool = typer.Option(False, "--errors", help="List the questions answered wrongly"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="SQuAD files: index their paragraphs into this folder (kept, so a later run reuses them) instead of a temporary one"),
    limit: int = typer.Option(0, min=0, help="Evaluate only the first N questions (0 = all)"),
    corpus: Optional[list[Path]] = typer.Option(None, "--corpus", help="SQuAD files whose paragraphs are indexed too (distractors)"),
) -> None:
    """Measure retrieval, reader and end-to-end answers against a gold set."""
    settings = _settings()
    _setup_logging(settings)
    from qa.evaluation import EvalSetupError, run_eval

    # checked before the models load and the questions run, not after
    mode = _mode(mode, settings)
    top_k = top_k or settings.top_k
    if data_dir is not None and data_dir.exists() and not data_dir.is_dir():
        _fail(f"--data-dir {data_dir} is a file: it must be a folder (the index is several files)")
    to_stdout = out is not None and _is_stdout(out)
    if out is not None and not to_stdout:
        if out.is_dir():
            _fail(f"--out {out}: is a folder; give a file name, such as {out / 'report.json'}")
        try:
            target = _report_target(out)
        except RuntimeError as exc:  # a loop of symbolic links
            _fail(f"--out {out}: {exc}")
        if not target.parent.is_dir():
            _fail(f"--out {out}: no such folder {target.parent}")
        try:  # can the report be written there? (found out now, not after the whole evaluation)
            _write_text(target, "", probe=True)
        except OSError as exc:
            _fail(f"--out {out}: cannot write there ({exc.strerror or exc})")
    try:
        report = _opening(settings, run_eval, settings, gold, top_k=top_k, mode=mode, data_dir=data_dir, limit=limit, corpus=corpus)
    except EvalSetupError as exc:
        _fail(str(exc))
    from qa.evaluation import render_report

    if to_stdout:  # the JSON alone on stdout, for a pipe; the table where people read it
        typer.echo(render_report(report, errors=errors), err=True)
        typer.echo(json.dumps(report, ensure_ascii=False, indent=1))
        return
    typer.echo(render_report(report, errors=errors))
    if out:
        try:
            _write_text(_report_target(out), json.dumps(report, ensure_ascii=False, indent=1))
        except OSError as exc:
            _fail(f"--out {out}: cannot write the report ({exc.strerror or exc}); the table above has the numbers")
        typer.echo(f"report written to {out}")


def _is_stdout(out: Path) -> bool:
    """``--out -``, or a name of this process's standard output (/dev/stdout, /dev/fd/1)."""
    if str(out) == "-":
        return True
    try:
        return os.path.samestat(os.stat(out), os.fstat(1))
    except OSError:  # no such file; stdout closed (>&-)
        return False


_STREAM_NAMES = re.compile(r"^/(?:dev/(?:std(?:in|out|err)|fd/\d+)|proc/(?:self|\d+)/fd/\d+)$")


def _in_place(out: Path) -> bool:
    """A device or a pipe, or a name of an open stream (/dev/stderr, /dev/fd/63, /proc/self/fd/3):
    written as it is, never replaced, even when it leads to a regular file (``2>> log``)."""
    return bool(_STREAM_NAMES.match(os.path.abspath(out))) or (out.exists() and not out.is_file())


def _report_target(out: Path) -> Path:
    """Where ``--out`` really writes: through a symbolic link to its file (the link stays a link)."""
    return out.resolve(strict=False) if out.is_symlink() and not _in_place(out) else out


def _write_text(target: Path, text: str, probe: bool = False) -> None:
    """Atomic for a regular file: a unique temporary file beside it, renamed over it (an interrupted
    write leaves the old report whole, and no file of the user's is touched). What ``_in_place``
    names is appended to as it is, never replaced or emptied. ``probe``: only check."""
    if _in_place(target):
        if probe:  # not opened: a pipe's open waits for its reader
            if not os.access(target, os.W_OK):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(target))
            return
        with open(target, "a", encoding="utf-8") as f:
            f.write(text)
        return
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
        if not probe:
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@app.command("train-reader")
def train_reader(
    epochs: int = typer.Option(8, min=1),
    lr: float = typer.Option(2e-4, min=0.0),
    batch_size: int = typer.Option(64, min=1),
    max_length: int = typer.Option(384, min=64, max=512, help="Tokens per window (question + passage)"),
    stride: int = typer.Option(128, min=0, help="Tokens shared by consecutive windows of a long passage"),
    negative_ratio: float = typer.Option(0.2, min=0.0, max=1.0, help="Extra (question, unrelated paragraph) pairs per question, labelled no answer"),
    hard_negative_ratio: float = typer.Option(0.5, min=0.0, max=1.0, help="Extra (question, other paragraph of the same article) pairs per question, labelled no answer"),
    removed_negative_ratio: float = typer.Option(0.0, min=0.0, max=1.0, help="Extra (question, its own paragraph without the answer's sentence) pairs per question, labelled no answer"),
    train_file: Path = typer.Option(Path("data/piaf/piaf-v1.1-train.json"), help="SQuAD-format training data"),
    dev_file: Path = typer.Option(Path("data/piaf/piaf-v1.1-dev.json"), help="SQuAD-format data the checkpoint and thresholds are chosen on"),
    init_artifact: Optional[Path] = typer.Option(None, help="Continue from this reader artifact (e.g. the shipped one) instead of the bare encoder"),
    length_penalty: float = typer.Option(0.0, help="Logit points taken off a span per token when decoding for the dev evaluation (stored with the reader; bench/span_length.py chooses it for the shipped one)"),
    run_dir: Path = typer.Option(Path("runs/reader"), help="Checkpoints and logs; a rerun resumes from here"),
    out: Path = typer.Option(Path("runs/reader/reader-e5s-piaf.zip"), help="Where the artifact goes (the shipped one is replaced only when this is data/reader/reader-e5s-piaf.zip)"),
    seed: int = typer.Option(13),
    data_seed: int = typer.Option(-1, help="Order of the training batches (-1 = --seed); runs that differ only here can be averaged by bench/reader_soup.py"),
    max_steps: int = typer.Option(0, min=0, help="Stop after N steps (the linear schedule ends there; 0 = all epochs)"),
    dev_limit: int = typer.Option(0, min=0, help="Evaluate on the first N dev questions only"),
    device: str = typer.Option("auto", help="auto (cuda when available), cpu or cuda"),
) -> None:
    """Fine-tune the reader on PIAF train; pick checkpoint and no-answer threshold on PIAF dev."""
    settings = _settings()
    _setup_logging(settings)
    # checked before minutes of set-up, each as one line
    if device not in ("auto", "cpu", "cuda"):
        _fail(f"--device must be auto, cpu or cuda, got {device!r}", USAGE)
    if stride >= max_length // 2:
        _fail(f"--stride ({stride}) must be less than half of --max-length ({max_length})", USAGE)
    from qa.evaluation import EvalSetupError, load_gold

    for name, f in (("--train-file", train_file), ("--dev-file", dev_file)):
        if not f.is_file():
            _fail(f"{name} {f}: no such file (run from the repository root, or give the file)")
        try:
            if load_gold(f).kind != "squad":
                _fail(f"{name} {f}: not a SQuAD-format file ({{\"data\": [...]}})")
        except EvalSetupError as exc:
            _fail(f"{name}: {exc}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            _fail("--device cuda: no CUDA GPU is usable here (torch sees none); use --device cpu")
    from qa.model_card import write_model_card
    from qa.reader_artifact import write_checksum
    from qa.train_reader import TrainConfig, train

    cfg = TrainConfig(
        epochs=epochs, lr=lr, batch_size=batch_size, max_length=max_length, stride=stride, negative_ratio=negative_ratio, hard_negative_ratio=hard_negative_ratio,
        removed_negative_ratio=removed_negative_ratio, init_artifact=str(init_artifact or ""), length_penalty=length_penalty, train_file=train_file, dev_file=dev_file,
        run_dir=run_dir, out_artifact=out, seed=seed, data_seed=data_seed, max_steps=max_steps, dev_limit=dev_limit, threads=settings.torch_threads, device=device,
    )
    _guard(train, cfg)
    write_checksum(out)
    write_model_card(out)
    typer.echo(f"reader artifact: {out} (model card: {out.parent / 'MODEL_CARD.md'})")


if __name__ == "__main__":
    app()
