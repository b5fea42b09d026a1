"""`qa index`, `qa docs` (list, show, delete): the documents of the index, and `qa backup`: a copy of it."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional

import typer

from index.catalog import index_exists, match_key
from index.schema import Document
from index.text import has_lone_surrogate, visible
from qa.cli_common import USAGE, check_data_dir, fail, guard, interrupted, need_index, open_catalog, open_store, opening, read_index, read_settings, reading, setup_logging, storage_fail, terminable
from qa.render import plural
from qa.settings import Settings
from qa.validation import MAX_DOCUMENT_QUERY_CHARS

log = logging.getLogger("qa.cli")


def index(
    paths: Optional[list[str]] = typer.Argument(None, help="Files or folders (.txt .md .html .json .jsonl .pdf .docx); none with --rebuild alone"),
    rebuild: bool = typer.Option(False, help="Re-chunk every stored document with the configured model, chunk size and dense index type (after changing one of them; passages already embedded by the same model keep their vectors); nothing is lost"),
    batch_docs: int = typer.Option(500, "--batch-docs", min=1, help="Documents written per atomic step: an interrupted run keeps the steps done, and running it again resumes"),
    prune: bool = typer.Option(
        False, "--prune",
        help="Then remove the documents read before from these files and folders whose source is gone: a file removed, a record "
             "no longer in its export (as rsync --delete). A file read with an error keeps its documents; documents sent over "
             "HTTP and those of other folders are never removed",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="With --prune: list what it would remove; nothing is indexed or removed"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Index documents into QA_DATA_DIR (only new or changed chunks are embedded)."""
    settings = read_settings()
    setup_logging(settings, verbose)
    from index.ingest import read_files

    t0 = time.time()
    paths = paths or []
    if dry_run and not prune:
        fail("--dry-run goes with --prune", USAGE)
    if prune and not paths:
        fail("--prune needs the files or folders whose documents it keeps in step (qa index FOLDER --prune)", USAGE)
    if not paths and not rebuild:
        fail("give the files or folders to index (or --rebuild alone to re-chunk what the index holds)", USAGE)
    if not paths:
        need_index(settings.data_dir)  # a rebuild of nothing: a mistyped QA_DATA_DIR
    if any(not p.strip() for p in paths):  # qa index "$UNSET": not the current folder
        fail("an empty path was given", USAGE)
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        fail(f"no such file or folder: {missing[0]}")
    loaded = read_files([Path(p) for p in paths])
    docs, errors = loaded.documents, loaded.errors
    for e in errors:
        where = f"{e.path}:{e.line}" if e.line else e.path
        typer.echo(f"skipped {where}: {e.reason}", err=True)
    if dry_run:
        _prune_preview(settings, paths, loaded, errors)
        return
    if not docs and not rebuild and not prune:  # nothing to embed (nor, without --prune, to remove): said without loading the embedder
        check_data_dir(settings)  # as a run with something to index would: the folder is found wrong now, not later
        from index.writes import AddReport

        _say_indexed(docs, errors, AddReport(), _counts_without_models(settings), t0)
        return

    from index.store import AddReport, add_in_batches

    store = open_store(settings, rebuild=rebuild, create=True)
    if store.rebuilt is not None:
        r = store.rebuilt
        typer.echo(f"rebuilt: {plural(r.documents, 'document')} re-chunked, {plural(r.chunks_before, 'chunk')} replaced by {r.chunks} "
                   f"({r.embedded} embedded, the others kept their vectors)")
    for d, old_source in _replaced_from_other_files(store, docs):
        if _is_export(d.metadata["source_file"]):  # a record names itself: its id, not its file's name
            typer.echo(
                f"warning: document {d.id!r} was indexed from {old_source}; a record of {d.metadata['source_file']} has the same "
                "id and another text, and replaces it: change one of the ids to keep both", err=True,
            )
            continue
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
        storage_fail(settings, exc, kept=f"; the first {done} of {len(docs)} documents are indexed and kept", always=True, verb="write")
        raise
    removed = None
    if prune:  # once every addition is written: an interrupted or failed run removes nothing
        try:
            stale = _stale(store.source_files(), paths, loaded)
            removed, chunks = store.delete_from_sources({s.id: s.source_file for s in stale})
            rep.chunks_removed += chunks
        except (OSError, sqlite3.Error) as exc:  # its transaction rolled back: nothing was removed
            store.close()
            storage_fail(settings, exc, kept=f"; the {len(docs)} documents read are indexed, nothing was removed", always=True, verb="write")
            raise
        reasons = {s.id: s.reason() for s in stale}
        for doc_id in removed:
            typer.echo(f"removed {visible(doc_id)}: {visible(reasons[doc_id])}")
    counts = store.counts()
    store.close()
    if not paths:  # --rebuild alone: nothing was read
        typer.echo(f"{_index_now(counts)}, {time.time() - t0:.1f}s")
        return
    _say_indexed(docs, errors, rep, counts, t0, removed)


def _index_now(counts: dict) -> str:
    return f"index now {plural(counts['documents'], 'document')} / {plural(counts['chunks'], 'chunk')}"


def _say_indexed(docs: list[Document], errors: list, rep, counts: dict, t0: float, removed: list[str] | None = None) -> None:
    """`qa index`'s summary line (with what --prune removed, when it ran); exit status 1 when a file or record was skipped."""
    pruned = f", {len(removed)} removed (--prune)" if removed is not None else ""
    typer.echo(
        f"documents: {len(docs)} read ({rep.documents_added} added, {rep.documents_updated} updated, {rep.documents_unchanged} unchanged){pruned}, "
        f"chunks: {rep.chunks_added} added ({rep.chunks_embedded} embedded, the others reused stored vectors), {rep.chunks_removed} removed, {_index_now(counts)}, "
        f"skipped: {len(errors)}{' (files or records, listed above)' if errors else ''}, {time.time() - t0:.1f}s"
    )
    if errors:  # what could be read is indexed; the status tells scripts that something was not
        raise typer.Exit(1)


def _counts_without_models(settings: Settings) -> dict:
    """What the index in QA_DATA_DIR holds, read without the embedder (none there: empty, not created)."""
    from index.catalog import DocumentCatalog

    catalog = read_index(settings, DocumentCatalog)
    try:
        return reading(settings, catalog.counts)
    finally:
        catalog.close()


def _stale(stored, paths: list[str], loaded):
    """What --prune removes (``index.pruning.stale_documents``) after reading ``paths`` into ``loaded``."""
    from index.pruning import stale_documents

    return stale_documents(stored, [Path(p) for p in paths], [d.id for d in loaded.documents], loaded.files, [e.path for e in loaded.errors])


def _prune_preview(settings: Settings, paths: list[str], loaded, errors) -> None:
    """--prune --dry-run: the documents it would remove, read from the catalog (no model loaded)."""
    stale = []
    if index_exists(settings.data_dir):
        catalog = open_catalog(settings)
        try:
            stale = _stale(reading(settings, catalog.source_files), paths, loaded)
        finally:
            catalog.close()
    for s in stale:
        typer.echo(f"would remove {visible(s.id)}: {visible(s.reason())}")
    typer.echo(f"would remove {plural(len(stale), 'document')} (--dry-run: nothing was indexed or removed)")
    if errors:
        raise typer.Exit(1)


def _replaced_from_other_files(store, docs):
    """Documents read from a file whose name (the id) an indexed document from another file already
    has, with another text: indexing them replaces that document, which must not happen silently."""
    for d in docs:
        source = d.metadata.get("source_file")
        if not isinstance(source, str):  # a record's own may be anything
            continue
        old = store.get_document(d.id)
        old_source = (old.metadata or {}).get("source_file") if old is not None else None
        if isinstance(old_source, str) and old_source and _file_key(old_source) != _file_key(source) and old.text != d.text:
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
        # an export holds many records, each named by its own id: its other ids are other records
        for other_id in by_file.get(_file_key(source), []) if isinstance(source, str) and not _is_export(source) else []:
            yield d, other_id


def _is_export(source_file: str) -> bool:
    """Whether a document's source is a JSON or JSONL export (its records name themselves), not a file named after it."""
    from index.ingest import JSON_SUFFIXES, JSONL_SUFFIXES

    return Path(source_file).suffix.lower() in JSON_SUFFIXES | JSONL_SUFFIXES


def _file_key(source_file: str) -> str:
    """One file, however it was named: `qa index` stores absolute paths (older indexes, the paths they
    were given, which resolve from the current folder)."""
    return os.path.realpath(source_file)


def docs_list(
    offset: int = typer.Option(0, min=0, help="Documents to skip"),
    limit: int = typer.Option(50, min=1, max=10_000, help="Documents to list"),
    search: Optional[str] = typer.Option(
        None, "--search", metavar="TEXT",
        help="Only documents whose title or id contains TEXT, case, accents, punctuation and spacing aside (`l ete` finds « L’Été »), as GET /documents?q= does",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the page as GET /documents does (which takes at most 200 a page)"),
) -> None:
    """List the indexed documents (id, chunks, characters, date, title), by id."""
    if search is not None and not search.strip():  # --search "$UNSET": not "every document"
        fail("--search must be a part of a title or an id, not empty (leave it out to list every document)", USAGE)
    if search is not None and has_lone_surrogate(search):  # bytes the shell passed that are not UTF-8
        fail(f"--search {search!r} is not UTF-8 text: no title or id holds it", USAGE)
    if search is not None and len(search) > MAX_DOCUMENT_QUERY_CHARS:  # counted as GET /documents?q= counts it
        fail(f"--search must be at most {MAX_DOCUMENT_QUERY_CHARS} characters, as GET /documents?q= (got {len(search)})", USAGE)
    if search is not None and not match_key(search):  # "--": no more a search than a blank one
        fail("--search must hold a letter or a digit: punctuation counts as a space (leave it out to list every document)", USAGE)
    settings = read_settings()
    setup_logging(settings)
    catalog = open_catalog(settings)
    try:
        items, total = reading(settings, catalog.list_documents, offset, limit, contains=search)
    finally:
        catalog.close()
    if as_json:
        from api.schemas import DocumentInfoOut, DocumentPage, api_json

        page = DocumentPage(items=[DocumentInfoOut(**asdict(i)) for i in items], total=total, offset=offset, limit=limit)
        typer.echo(api_json(page.model_dump(mode="json")))
        return
    for i in items:
        typer.echo(f"{visible(i.id)}\t{plural(i.chunks, 'chunk')}\t{plural(i.chars, 'char')}\t{i.published or 's.d.'}\t{visible(i.title or '')}")
    shown = f"{offset + 1}-{offset + len(items)}" if items else "none"
    matching = f" holding {search.strip()!r}" if search is not None else ""
    typer.echo(f"{plural(total, 'document')}{matching} ({shown} shown)", err=True)


def _check_id_text(doc_id: str) -> None:
    if has_lone_surrogate(doc_id):  # bytes the shell passed that are not UTF-8: no document has such an id
        fail(f"document id {doc_id!r} is not UTF-8 text: no document has such an id (see `qa docs list`)")


def _missing_document(doc_id: str, settings: Settings, as_json: bool, why: str | None = None, trimmed: str | None = None,
                      similar: str | None = None) -> None:
    """Exit 1 for an unknown id; with --json, the API's 404 body on stdout too (scripts read it).
    ``trimmed``: the stored id that ``doc_id`` without its surrounding whitespace names; ``similar``:
    the one it most likely means otherwise (``api.schemas.similar_document``)."""
    if as_json:
        from api.schemas import api_json, document_not_found

        typer.echo(api_json({"detail": document_not_found(doc_id, trimmed, similar)}))
    if trimmed is not None:
        fail(f"no document {doc_id!r} in {settings.data_dir}; did you mean {trimmed!r}? (ids are stored without surrounding whitespace)")
    if similar is not None:
        fail(f"no document {doc_id!r} in {settings.data_dir}; did you mean {similar!r}? (see `qa docs list`)")
    fail(f"no document {doc_id!r} in {settings.data_dir}" + (f": {why}" if why else "") + " (see `qa docs list`)")


def _trimmed_document(get: Callable[[str], Document | None], doc_id: str) -> Document | None:
    """The document ``doc_id`` stripped of surrounding whitespace names, when that is another id (as
    ids are stored, ``index.schema.clean_id``; an id that an older version stored with its spaces is
    reached as given first)."""
    trimmed = doc_id.strip()
    return get(trimmed) if trimmed and trimmed != doc_id else None


def docs_show(
    doc_id: str = typer.Argument(..., help="Document id (see `qa docs list`)"),
    as_json: bool = typer.Option(False, "--json", help="Print exactly the GET /documents/{id} response"),
) -> None:
    """Print one document: its id, title, URL, date and metadata, a blank line, then its full text exactly (answer offsets point into it)."""
    settings = read_settings()
    setup_logging(settings)
    _check_id_text(doc_id)
    catalog = open_catalog(settings)
    # " x " shows "x" (its id line says so): a read is harmless, as GET /documents/{id} does
    similar = None
    try:
        doc = reading(settings, lambda: catalog.get_document(doc_id) or _trimmed_document(catalog.get_document, doc_id))
        if doc is None:
            from api.schemas import similar_document

            similar = similar_document(catalog.list_documents, doc_id)
    finally:
        catalog.close()
    if doc is None:
        _missing_document(doc_id, settings, as_json, similar=similar)
    if as_json:
        from api.schemas import DocumentOut, api_json

        out = DocumentOut.from_document(doc)
        typer.echo(api_json(out.model_dump(mode="json")))
        return
    for label, value in (("id", doc.id), ("title", doc.title), ("url", doc.url), ("published", doc.published)):
        if value:
            typer.echo(f"{label}: {visible(value)}")
    if doc.metadata:
        typer.echo(f"metadata: {json.dumps(doc.metadata, ensure_ascii=False)}")
    typer.echo("")
    # after the header's blank line, the text as stored when redirected (offsets count in it;
    # color=True stops click from stripping what looks like colour codes), then one line break, as on
    # a terminal: without it the shell's prompt came on the text's last line (`| cat`, ssh); on a
    # terminal, its escapes shown, not obeyed
    if sys.stdout.isatty():
        typer.echo(visible(doc.text.replace("\r\n", "\n"), keep="\n\t"))  # a lone CR would overwrite the line shown
    else:
        typer.echo(doc.text, color=True)


def docs_delete(
    doc_id: str = typer.Argument(..., help="Document id (see `qa docs list`)"),
    as_json: bool = typer.Option(False, "--json", help="Print exactly the DELETE /documents/{id} response"),
) -> None:
    """Remove a document and its passages from the index."""
    from index.store import IndexStore, recorded_embedder

    import sqlite3

    settings = read_settings()
    setup_logging(settings)
    _check_id_text(doc_id)
    check_data_dir(settings)  # a delete writes: a read-only folder is one line, as for `qa index`
    # a delete touches no vectors but the ones it removes: open the index with what it records of its
    # embedder instead of loading the model (seconds of torch start-up)
    recorded = read_index(settings, recorded_embedder)
    if recorded is None:
        _missing_document(doc_id, settings, as_json, "there is no index there")
    store = opening(settings, IndexStore.open, settings.data_dir, recorded, **settings.store_options())
    try:
        deleted = store.delete_document(doc_id)
        counts = store.counts()
        # a delete acts on the id given only: " x " names "x" in its error, never deletes it in its place
        other = _trimmed_document(store.get_document, doc_id) if deleted is None else None
        similar = None
        if deleted is None and other is None:
            from api.schemas import similar_document

            similar = similar_document(store.list_documents, doc_id)
    except (OSError, sqlite3.Error) as exc:  # its transaction rolled back: the document is still there
        storage_fail(settings, exc, kept="; nothing was deleted", always=True, verb="write")
        raise
    finally:
        store.close()
    if deleted is None:
        _missing_document(doc_id, settings, as_json, trimmed=other.id if other else None, similar=similar)
    if as_json:
        from api.schemas import DeleteResponse, api_json

        typer.echo(api_json(DeleteResponse(id=deleted, deleted=True).model_dump(mode="json")))
        return
    typer.echo(f"deleted {deleted}; index now {plural(counts['documents'], 'document')} / {plural(counts['chunks'], 'chunk')}")


def backup(
    dest: str = typer.Argument(..., help="A new folder for the copy, outside QA_DATA_DIR (its parent must exist)"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Copy the index in QA_DATA_DIR to DEST while servers and `qa index` go on writing (restore: set QA_DATA_DIR to the copy)."""
    from index.backup import BackupError, InterruptedWhole, backup_index

    if not dest.strip():  # qa backup "$UNSET": not the current folder
        fail("an empty path was given", USAGE)
    settings = read_settings()
    setup_logging(settings, verbose)
    need_index(settings.data_dir)
    try:
        with terminable():  # a supervisor's or `timeout`'s SIGTERM removes the partial copy too
            rep = guard(backup_index, settings.data_dir, Path(dest))
    except BackupError as exc:
        fail(str(exc))
    except InterruptedWhole as exc:  # as it ended: "no backup was written" (backup_interrupted) would be false
        interrupted(backup_kept(exc.dest), exc.interruption)
    files = "with its dense and BM25 index files" if rep.index_files else "without its dense and BM25 index files (its first open rebuilds them from the database)"
    typer.echo(
        f"backed up {plural(rep.documents, 'document')} / {plural(rep.chunks, 'chunk')} (generation {rep.generation}) to {rep.dest}, "
        f"{files}: {rep.size_bytes / 1e6:.1f} MB, {rep.seconds:.1f}s; to restore, set QA_DATA_DIR to it (see README, Backing up)"
    )


def backup_interrupted(dest: str, **_) -> str:
    """What a Ctrl-C during `qa backup` leaves: nothing at DEST (``index.backup`` removes its partial copy)."""
    return f"no backup was written to {dest}; the index was not changed"


def backup_kept(dest: Path) -> str:
    """What a Ctrl-C that comes once the copy is renamed to DEST, as `qa backup` ends, leaves."""
    return f"it came once the backup was whole: {dest} is a complete backup and is kept (remove it if you do not want it); the index was not changed"
