"""What the `qa` commands share: settings, one-line errors and their exit status, opening the index
and the models, --mode. Pure functions make the lines (``folder_problem``, ``index_problem``): the
API's start-up (``api.app``, under bare uvicorn) says its failures with them too."""

from __future__ import annotations

import errno
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer

from index.schema import MODES
from qa.settings import Settings


def read_settings() -> Settings:
    from qa.settings import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        fail(str(exc))


USAGE = 2  # the command line is wrong (an option's value), as click's own usage errors; 1 is any other failure
INTERRUPTED = 130  # stopped by Ctrl-C (SIGINT): 128 + its number, as a shell reports a command the signal ended
TERMINATED = 143  # stopped by SIGTERM (a supervisor's stop, `timeout`): 128 + its number


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as an interruption inside ``terminable``: the command cleans up as on Ctrl-C."""


@contextmanager
def terminable() -> Iterator[None]:
    """SIGTERM is an interruption (``Terminated``) inside: for a command whose partial work must not
    outlive it (`qa backup`'s partial copy), as Python's default SIGTERM ends it without cleaning up."""

    def stop(signum, frame) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupted(said: str, exc: KeyboardInterrupt) -> NoReturn:
    """End the command stopped by ``exc``: one line on stderr, "interrupted: <said>", and exit status
    130 (Ctrl-C), or 143 for a SIGTERM that ``terminable`` turned into an interruption."""
    # on a terminal the "^C" it echoed, or `qa ask -`'s prompt, is still on the line
    typer.echo(("\n" if sys.stderr.isatty() else "") + f"interrupted: {said}", err=True)
    raise typer.Exit(TERMINATED if isinstance(exc, Terminated) else INTERRUPTED) from None


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def setup_logging(settings: Settings, verbose: bool = False) -> None:
    from qa.logs import setup_logging as setup

    setup(settings.log_level, verbose)


def guard(fn, *args, **kwargs):
    """Turn known user-facing errors into one clear line instead of a traceback."""
    from index.e5_convert import ModelSourceError
    from index.store import ReindexNeeded

    try:
        return fn(*args, **kwargs)
    except (ModelSourceError, ReindexNeeded) as exc:
        fail(str(exc))


def check_data_dir(settings: Settings) -> None:
    check_index_folder(settings.data_dir, "QA_DATA_DIR")


def check_index_folder(folder: Path, name: str, fix: str = "") -> None:
    """``folder`` (the setting or option ``name``) must be a folder that the index can be written in, or
    created in: found out at once, in one line naming it, not after the models load; ``fix`` ends
    the line when the folder cannot be used."""
    problem = folder_problem(folder, name, fix)
    if problem is not None:
        fail(problem)


def folder_problem(folder: Path, name: str, fix: str = "") -> str | None:
    """Why ``folder`` (the setting or option ``name``) cannot hold the index, in one line naming it
    and ending with ``fix``, or None."""
    if folder.exists() and not folder.is_dir():
        return f"{name} {folder} is a file: it must be a folder (the index is several files)"
    parent = next((p for p in folder.absolute().parents if p.exists()), None)
    if not folder.exists() and parent is not None and not (parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)):
        return f"{name} {folder} cannot be created: {parent} is {'not a folder' if not parent.is_dir() else 'not writable'}{fix}"
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):  # a read-only mount, say
        return f"{name} {folder} is not writable: the index is written there, and SQLite writes its journal there even to read{fix}"
    return None


def need_index(data_dir: Path) -> None:
    """Commands that read the index fail on a missing one (a mistyped QA_DATA_DIR) instead of
    creating an empty index and finding nothing."""
    from index.store import index_exists

    if not index_exists(data_dir):
        fail(f"no index at {data_dir}: run `qa index data/articles` first (or set QA_DATA_DIR to your index)")


def opening(settings: Settings, fn, *args, **kwargs):
    """``fn`` opening the index, a damaged one as one line."""
    import sqlite3

    try:
        return guard(fn, *args, **kwargs)
    except (sqlite3.DatabaseError, OSError) as exc:
        index_failed(settings, exc)


def index_failed(settings: Settings, exc: BaseException, verb: str = "use") -> NoReturn:
    """Opening or reading the index failed: a full or unwritable folder, a file of the index that
    cannot be read, or a damaged or newer index, as one line; an OSError about anything else (the
    models' folder) goes on as it is."""
    problem = index_problem(settings, exc, verb)
    if problem is None:
        raise exc
    fail(problem)


def index_problem(settings: Settings, exc: BaseException, verb: str = "use") -> str | None:
    """``index_failed``'s line for ``exc``, or None for an OSError about anything but the index
    folder; ``verb``: "read" for an OSError of a read (``storage_problem_line``)."""
    from index.storage import ReindexNeeded

    # any OSError naming a file of the index folder is one line (an I/O error was a traceback)
    problem = storage_problem_line(settings, exc, always=isinstance(exc, OSError), verb=verb)
    if problem is not None:
        return problem
    if isinstance(exc, OSError):
        return None
    if isinstance(exc, ReindexNeeded):  # its line names the folder already
        return str(exc)
    return f"cannot read the index at {settings.data_dir}: {exc}"


def storage_fail(settings: Settings, exc: BaseException, kept: str = "", always: bool = False, verb: str = "use") -> None:
    """A full or unwritable index folder (any failure to write to it, with ``always``), as one line
    saying what to do; returns for anything else, such as an error about the models' folder."""
    problem = storage_problem_line(settings, exc, kept, always, verb)
    if problem is not None:
        fail(problem)


# what to do when a file of the index cannot be read, by errno (else: check its disk)
READ_FIXES = {
    errno.EACCES: "make it readable by the user this runs as",
    errno.EPERM: "make it readable by the user this runs as",
    errno.ENOENT: "it was removed or moved while it was read: put it back",
}


def storage_problem_line(settings: Settings, exc: BaseException, kept: str = "", always: bool = False, verb: str = "use") -> str | None:
    """``storage_fail``'s line for ``exc``, or None. With ``verb`` "read", an OSError is a failure to
    read the file it names (its permissions, its disk, gone meanwhile), not the folder's space or
    write access: its line says so whatever ``always``."""
    import sqlite3

    from index.storage import damaged_line, is_damaged, storage_problem

    if isinstance(exc, OSError):  # only the index folder's own files are blamed on it
        name = exc.filename if isinstance(exc.filename, str) else None
        folder = os.path.abspath(settings.data_dir)
        if name is None or os.path.commonpath([folder, os.path.abspath(name)]) != folder:
            return None
        if verb == "read":  # the error names the file; "the folder is not writable" would send the user the wrong way
            return f"cannot read the index in {settings.data_dir}: {exc}{kept}; {READ_FIXES.get(exc.errno, 'check its disk')} and run the command again"
    elif not isinstance(exc, sqlite3.Error):
        return None
    if is_damaged(exc):  # not the folder's fault, and running the command again would fail alike
        return damaged_line(settings.data_dir, str(exc), kept.removeprefix("; "))
    problem = storage_problem(exc)
    if problem is not None:
        what = "make room on its disk" if problem == "full" else "make it writable"
        return f"cannot {verb} the index in {settings.data_dir}: the folder is {problem} ({exc}){kept}; {what} and run the command again"
    if always:
        return f"cannot {verb} the index in {settings.data_dir}: {exc}{kept}; check its disk and run the command again"
    return None


def open_store(settings: Settings, rebuild: bool = False, create: bool = False):
    """The embedder and the index, as configured (what `index` and `search` need, no reader);
    ``create``: a missing index is created (only `qa index` writes one)."""
    from index.embeddings import Embedder
    from index.store import IndexStore

    check_data_dir(settings)
    if not create:
        need_index(settings.data_dir)
    emb = guard(Embedder, settings.embedder, settings.models_dir, batch_size=settings.embed_batch_size, source=settings.e5_source)
    return opening(settings, IndexStore.open, settings.data_dir, emb, rebuild=rebuild, **settings.store_options())


def read_index(settings: Settings, fn):
    """``fn(data_dir)`` on the configured index without any model, a damaged or newer index, or a
    file of it that cannot be read, as one line."""
    import sqlite3

    try:
        return fn(settings.data_dir)
    except OSError as exc:  # a read of the index's own files (SQLite's own failures are sqlite3 errors)
        index_failed(settings, exc, verb="read")
    except (RuntimeError, sqlite3.DatabaseError) as exc:
        index_failed(settings, exc)


def served_index_problem(settings: Settings) -> str | None:
    """What stops the index in QA_DATA_DIR from being served, checked before the models load (by
    `qa serve`, and by the app as it starts under another command), as one line: a newer schema,
    a damaged page anywhere (``index.catalog.damage_found``), a file that cannot be read; None
    when it can be, or when there is no index yet."""
    import sqlite3

    from index.catalog import damage_found
    from index.storage import damaged_line

    try:
        damage = damage_found(settings.data_dir)
    except (RuntimeError, sqlite3.DatabaseError, OSError) as exc:  # ReindexNeeded, a file that is no database, a failed read
        # an OSError is a read of the database (a failing disk, a file it may not read, one gone meanwhile)
        problem = index_problem(settings, exc, verb="read" if isinstance(exc, OSError) else "use")
        if problem is None:  # an OSError about another folder than the index's: its traceback says what
            raise
        return problem
    return None if damage is None else damaged_line(settings.data_dir, damage)


def reading(settings: Settings, fn, *args, **kwargs):
    """``fn`` reading the index already open (``open_catalog``'s, ``open_store``'s): a page found
    damaged only now is one line too, as it is when opening."""
    import sqlite3

    try:
        return fn(*args, **kwargs)
    except sqlite3.DatabaseError as exc:
        index_failed(settings, exc)


def open_catalog(settings: Settings):
    """The index's documents, read only and without loading any model (`qa docs list` / `show`)."""
    from index.store import DocumentCatalog

    need_index(settings.data_dir)  # a mistyped QA_DATA_DIR is not an empty index
    return read_index(settings, DocumentCatalog)


def open_service(settings: Settings):
    from qa.pipeline import QAService

    check_data_dir(settings)
    need_index(settings.data_dir)
    return opening(settings, QAService.from_settings, settings)


_MODES = f"{', '.join(MODES[:-1])} or {MODES[-1]}"  # "hybrid, dense or bm25"


def check_mode(mode: str | None, settings: Settings) -> str:
    """--mode, else QA_RETRIEVAL_MODE (as the API does)."""
    if mode is None:
        return settings.retrieval_mode
    if mode not in MODES:
        fail(f"--mode must be {_MODES}, got {mode!r}", USAGE)
    return mode


MODE_HELP = f"{_MODES} (default: QA_RETRIEVAL_MODE, hybrid)"
