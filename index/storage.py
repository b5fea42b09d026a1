"""The store's plumbing: SQLite connections and transactions, the lock that serialises writers across
processes, and what a failed write says of the folder it wrote to."""

from __future__ import annotations

import errno
import fcntl
import os
import shlex
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_S = 60.0  # how long a connection waits for another process's lock
SQL_VARS = 900  # values per "IN (...)" query: SQLite limits the parameters of one statement


class ReindexNeeded(RuntimeError):
    """The index cannot be used as configured (another embedding model, another schema version).

    The message is ``problem``, then ``fix`` (what to do) when there is one. Where the fix is to use
    another folder, ``fix`` says so with "{give_folder}", and where it is to rebuild the index, with
    "{rebuild}": the message says them with QA_DATA_DIR, and ``naming`` with the option a command
    took the folder from instead (`qa eval --data-dir`)."""

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem, self.fix = problem, fix
        super().__init__(self.naming("QA_DATA_DIR"))

    def naming(self, folder: str, path: Path | None = None) -> str:
        """The message, the index folder given by ``folder``: a setting (QA_DATA_DIR) or an option
        (--data-dir, whose folder is ``path``: `qa index` writes to QA_DATA_DIR only, so the rebuild
        command sets it to that folder)."""
        if not self.fix:
            return self.problem
        give_folder = f"give {folder}" if folder.startswith("-") else f"set {folder} to"
        rebuild = "`qa index --rebuild ...`"
        if folder.startswith("-") and path is not None:
            rebuild = f"`QA_DATA_DIR={shlex.quote(str(path))} qa index --rebuild ...`"
        return f"{self.problem}: {self.fix.format(give_folder=give_folder, rebuild=rebuild)}"


def storage_problem(exc: BaseException) -> str | None:
    """What a write's failure says of the folder it wrote to, "full" or "not writable", or None when
    it is something else (a bug, a damaged file, an I/O error)."""
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return "full"
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return "not writable"
        return None
    if isinstance(exc, sqlite3.Error):
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF  # the primary result code
        if code == sqlite3.SQLITE_FULL:
            return "full"
        if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM):
            return "not writable"
    return None


# what to do with a damaged index, the same words wherever it is found (the CLI's lines, `qa backup`,
# the server's log): the damaged database cannot be repaired in place, and `qa index` cannot rewrite it
DAMAGED_FIX = 'restore an earlier backup (README, "Backing up"), or index the documents again in a new folder'


def is_damaged(exc: BaseException) -> bool:
    """Whether ``exc`` says the index's database is damaged: a page that is not what SQLite wrote
    ("database disk image is malformed"), or a file that is no database at all."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF  # the primary result code
    return isinstance(exc, sqlite3.DatabaseError) and code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def damaged_line(data_dir: Path, why: str, outcome: str = "") -> str:
    """One line saying the index at ``data_dir`` is damaged (``why``: SQLite's words), what came of
    the command (``outcome``: "no backup was written"), and what to do."""
    return f"the index at {data_dir} is damaged ({one_line(why)}): {outcome + '; ' if outcome else ''}{DAMAGED_FIX}"


def one_line(text: str) -> str:
    """``text``'s lines joined by "; " (``PRAGMA quick_check`` reports "*** in database main ***"
    then a line per problem), without that header."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("*** in database")]
    return "; ".join(lines)


def rollback(c: sqlite3.Connection) -> None:
    """Undo the open transaction, if SQLite has not already: after SQLITE_FULL it rolls back by
    itself, and a second ROLLBACK would replace "database or disk is full" by "no transaction"."""
    if c.in_transaction:
        c.execute("ROLLBACK")


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch the database to write-ahead logging. SQLite refuses at once ("database is locked"),
    without its busy timeout, while another connection creates the same new database (the workers of
    `qa serve --workers 2` starting on a new folder), to avoid a deadlock: try again until it is done."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def connect(db_path: Path) -> sqlite3.Connection:
    """A connection to the store's database: WAL, synchronous commits, foreign keys on, transactions
    opened explicitly (BEGIN), usable from the thread that holds it whichever it is."""
    conn = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    try:
        _use_wal(conn)
    except BaseException:
        conn.close()
        raise
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


@contextmanager
def read_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Reads that must see one state of the index: in a transaction of their own, or in the
    caller's when one is open."""
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        yield conn
    finally:
        if own:
            conn.execute("COMMIT")


@contextmanager
def file_lock(data_dir: Path, blocking: bool = True) -> Iterator[bool]:
    """Serialises writers across processes (a killed holder releases it). Yields whether it is
    held: always with ``blocking``, else only when no other process holds it."""
    fd = os.open(Path(data_dir) / "write.lock", os.O_RDWR | os.O_CREAT, 0o644)
    locked = False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except BlockingIOError:
            pass
        yield locked
    finally:
        if locked:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def meta(conn: sqlite3.Connection, key: str, default=None):
    """A value of the ``meta`` table (schema version, generation, model, layout), or ``default``."""
    row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return row[0] if row else default


def batched(seq: Sequence, n: int = SQL_VARS) -> Iterator[Sequence]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


class ReadConnections:
    """One read-only connection per thread (a connection is not shared between threads that may run
    at once), closed with the owner or once its thread is gone."""

    def __init__(self, db_path: Path):
        self.db_path = db_path
        self._local = threading.local()
        self._conns: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._lock = threading.Lock()
        self._closed = False

    def get(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise RuntimeError("the index store is closed")
            conn = connect(self.db_path)
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._lock:
                # a server's thread pool retires idle threads and starts new ones: the connections
                # of threads that are gone are closed here, or each would keep two files open
                alive = []
                for thread, other in self._conns:
                    if thread.is_alive():
                        alive.append((thread, other))
                    else:
                        _close(other)
                self._conns = alive + [(threading.current_thread(), conn)]
        return conn

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for _, conn in self._conns:
                _close(conn)
            self._conns.clear()


def _close(conn: sqlite3.Connection) -> None:
    try:
        conn.close()
    except sqlite3.Error:
        pass
