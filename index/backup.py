"""A consistent copy of an index while servers and `qa index` go on writing to it (`qa backup`).

The database is copied with SQLite's online backup API in one step: that is one read transaction,
so the copy holds one committed state, and in WAL mode a reader never blocks writers (they commit
meanwhile; their pages are not in the copy). A copy in several steps starts again from the first
page whenever another connection commits, and never ends under a steady stream of writes (measured
on a 217 MB database with a commit every 10 ms: 1,797 restarts in 20 s, never past 13%).

The FAISS and BM25 files of the copied generation are copied beside it when the folder holds them
and they are still there once copied (a write that lands meanwhile removes them), then loaded as an
open would load them: files that fail that check are left out, and the first open of the copy
rebuilds them from its database, which holds the vectors and terms (``index.snapshot``).

Everything is written into a temporary folder beside the destination, synced and renamed, so the
destination is a whole backup or absent. The copied database uses a rollback journal rather than a
write-ahead log: one self-contained file, readable on a read-only medium (`qa docs list`); the first
open for use switches it back to WAL.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sqlite3
import stat
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from index.catalog import DB_NAME, index_exists, open_read_only
from index.snapshot import dense_path, keyword_path, load_snapshot, stored_generation
from index.storage import damaged_line, is_damaged, meta, storage_problem

log = logging.getLogger(__name__)

NOT_WRITTEN = "no backup was written"
PARTIAL = ".partial-"  # a backup in progress: ".<DEST name>.partial-<pid>", beside DEST


class BackupError(RuntimeError):
    """A backup that was not made, in one line saying why and what to change; nothing is left at
    the destination."""


class InterruptedWhole(KeyboardInterrupt):
    """An interruption (``interruption``: Ctrl-C, or SIGTERM where the caller turns it into one) that
    came once the backup was renamed to ``dest``, as it ended (syncing the rename): ``dest`` is a
    whole backup, its files synced before the rename, and is kept."""

    def __init__(self, dest: Path, interruption: KeyboardInterrupt) -> None:
        super().__init__(f"interrupted once the backup at {dest} was whole")
        self.dest, self.interruption = dest, interruption


@dataclass(frozen=True)
class BackupReport:
    dest: Path
    generation: int
    documents: int
    chunks: int
    size_bytes: int
    index_files: bool  # the FAISS and BM25 files were copied (else the first open rebuilds them)
    seconds: float


def dest_problem(data_dir: Path, dest: Path) -> str | None:
    """Why ``dest`` cannot receive a backup of the index in ``data_dir``, in one line, or None."""
    if dest.exists() or dest.is_symlink():
        return f"{dest} already exists: give a new folder (a backup never writes into or over another)"
    target, data = dest.resolve(), Path(data_dir).resolve()
    if target.is_relative_to(data):  # its files would be taken for the index's own (and copied next time)
        return f"{dest} is inside the index folder {data_dir}: give a folder outside it"
    parent = target.parent
    if not parent.exists():
        return f"cannot create {dest}: {parent} does not exist (create it first)"
    if not parent.is_dir():
        return f"cannot create {dest}: {parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create {dest}: {parent} is not writable"
    return None


def failure_line(exc: BaseException, data_dir: Path, dest: Path) -> str:
    """A backup's failure to write its copy (``exc``), in one line that says nothing was written."""
    if is_damaged(exc):  # the copy is the index's pages as they are
        return damaged_line(data_dir, str(exc), NOT_WRITTEN)
    if storage_problem(exc) == "full":  # only the copy is written ("not writable" may be either side: said as it is)
        return f"cannot write the backup to {dest}: its disk is full ({exc}); nothing was written: make room and run the command again"
    return f"cannot back up the index at {data_dir} to {dest}: {exc}; nothing was written"


def backup_index(data_dir: Path, dest: Path) -> BackupReport:
    """Copy the index in ``data_dir`` to the new folder ``dest`` (see the module's docstring).

    Raises BackupError (one line) when ``dest`` cannot be used or the copy cannot be written, and
    ReindexNeeded for an index written by a newer release; an interruption (KeyboardInterrupt)
    removes the partial copy before it goes on, and one that comes once the copy is renamed to
    ``dest`` is an InterruptedWhole (``dest`` is kept)."""
    data_dir, dest = Path(data_dir), Path(dest)
    t0 = time.monotonic()
    if not index_exists(data_dir):
        raise BackupError(f"no index at {data_dir}")
    problem = dest_problem(data_dir, dest)
    if problem is not None:
        raise BackupError(problem)
    remove_stale_partials(dest)
    tmp = dest.with_name(f".{dest.name}{PARTIAL}{os.getpid()}")
    made: os.stat_result | None = None  # the partial copy's folder, which the rename makes DEST
    try:
        shutil.rmtree(tmp, ignore_errors=True)  # a stopped backup's, whose process had this process's id
        tmp.mkdir(mode=0o700)  # readable by no one else until it has the index's own modes
        made = tmp.stat()
        gen, documents, chunks = copy_database(data_dir, tmp / DB_NAME)
        index_files = copy_index_files(data_dir, tmp, gen)
        copy_modes(data_dir, tmp)
        _fsync_tree(tmp)
        if dest.exists() or dest.is_symlink():  # made meanwhile: a rename would replace an empty folder
            raise BackupError(f"{dest} was created while the backup was written: give a new folder")
        os.rename(tmp, dest)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt) and _renamed(made, dest):  # it came as the rename returned
            raise InterruptedWhole(dest, exc) from None
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, (OSError, sqlite3.Error)):
            raise BackupError(failure_line(exc, data_dir, dest)) from exc
        raise
    # DEST is whole from here: neither a failure nor an interruption may say that nothing was written
    try:
        _sync_rename(dest)
        size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    except KeyboardInterrupt as exc:
        raise InterruptedWhole(dest, exc) from None
    return BackupReport(dest, gen, documents, chunks, size, index_files, time.monotonic() - t0)


def _renamed(made: os.stat_result | None, dest: Path) -> bool:
    """Whether ``dest`` is the folder ``made`` (the partial copy, renamed)."""
    try:
        return made is not None and os.path.samestat(made, dest.stat())
    except OSError:
        return False


def _sync_rename(dest: Path) -> None:
    """The rename to ``dest`` on disk (its parent folder synced); a warning when it cannot be."""
    try:
        _fsync(dest.parent)
    except OSError as exc:  # a folder one may write in but not read (a drop box, mode 0333) cannot be synced
        log.warning("cannot sync %s (%s): %s is whole, but a power cut now may lose its name", dest.parent, exc, dest)


def copy_database(data_dir: Path, copy: Path) -> tuple[int, int, int]:
    """The index's database copied to ``copy`` (one committed state, checked): its generation,
    documents and chunks."""
    source = open_read_only(data_dir)  # never a write to the live index; a newer schema is refused
    if source is None:
        raise BackupError(f"no index at {data_dir}")
    with closing(source), closing(sqlite3.connect(copy)) as target:
        # the copy is this connection's alone: no shared-memory file, which opening a WAL database
        # (as the copy is until the next line) otherwise needs, and a nearly full disk may refuse
        target.execute("PRAGMA locking_mode=EXCLUSIVE")
        source.backup(target)  # pages=-1: one step, one read transaction (see the module's docstring)
        target.execute("PRAGMA journal_mode=DELETE")
        bad = [r[0] for r in target.execute("PRAGMA quick_check")]
        if bad != ["ok"]:  # the live database is damaged, not only the copy
            raise BackupError(damaged_line(data_dir, "\n".join(bad[:3]), NOT_WRITTEN))
        gen = stored_generation(target)
        documents = target.execute("SELECT count(*) FROM documents").fetchone()[0]
        chunks = target.execute("SELECT count(*) FROM chunks").fetchone()[0]
    return gen, documents, chunks


def copy_index_files(data_dir: Path, backup: Path, gen: int) -> bool:
    """Copy the dense and BM25 files of generation ``gen`` from ``data_dir`` into ``backup`` (which
    holds the copied database) when both are there and load as the copy's own; else leave none."""
    with closing(sqlite3.connect(backup / DB_NAME)) as conn:
        kind, dim = meta(conn, "dense_index"), meta(conn, "dim")
        if kind is None or dim is None:  # no document written yet: nothing to copy
            return False
        sources = [dense_path(data_dir, kind, gen), keyword_path(data_dir, gen)]
        copies = [backup / p.name for p in sources]
        try:
            shutil.copy2(sources[0], copies[0])
            _copy_folder(sources[1], copies[1])
        except OSError:
            if all(p.exists() for p in sources):  # a failure to write (a full disk): the backup fails
                raise
            # not written yet, or removed by a newer write meanwhile: rebuilt at the first open
            return _left_out(copies, f"the index files of generation {gen} are not in {data_dir} (written meanwhile)")
        if load_snapshot(conn, backup, kind, int(dim), repair=False) is None:
            return _left_out(copies, "the copied index files do not match its database")
        return True


def copy_modes(data_dir: Path, backup: Path) -> None:
    """The permissions of the index folder and its database given to their copies: a private index
    (0700, 0600) must not give a backup that every user can read, as the modes SQLite and mkdir give
    new files (0644, 0755 under the usual umask) would. Its owner keeps full access to the folder."""
    shutil.copymode(data_dir / DB_NAME, backup / DB_NAME)
    os.chmod(backup, stat.S_IMODE(Path(data_dir).stat().st_mode) | stat.S_IRWXU)


def _copy_folder(source: Path, copy: Path) -> None:
    """``source`` copied file by file (a failure keeps its errno, which copytree folds into a string),
    with its files' and its own permissions."""
    copy.mkdir(mode=0o700)
    for p in source.iterdir():
        _copy_folder(p, copy / p.name) if p.is_dir() else shutil.copy2(p, copy / p.name)
    shutil.copymode(source, copy)


def _left_out(copies: list[Path], why: str) -> bool:
    for p in copies:
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    log.info("%s: the backup holds its database only; its dense and BM25 indexes are rebuilt when it is first opened", why)
    return False


def remove_stale_partials(dest: Path) -> None:
    """Remove what earlier backups to ``dest`` that were killed (SIGKILL, a reboot) left beside it:
    the folders of processes that no longer run."""
    pattern = re.compile(rf"^\.{re.escape(dest.name)}{re.escape(PARTIAL)}(\d+)$")
    parent = dest.absolute().parent
    try:
        names = list(parent.iterdir())
    except OSError as exc:  # a folder one may write in but not list (a drop box, mode 0333): none to find
        log.info("cannot look for what stopped backups left in %s (%s)", parent, exc)
        return
    for p in names:
        m = pattern.match(p.name)
        if m and not _running(int(m.group(1))):
            log.info("removing %s, left by a backup that was stopped", p)
            shutil.rmtree(p, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal sent: only whether it exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Every file and folder under ``root``, then ``root``: on disk before the rename publishes it."""
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            _fsync(Path(folder) / name)
        _fsync(Path(folder))

