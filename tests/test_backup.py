"""`qa backup`: a copy of the index that is one committed state, taken while another process writes,
searched and answered from as the index itself; a destination that cannot be used is one line, and
a backup that fails or is stopped leaves no destination."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from index.backup import PARTIAL, backup_index
from tests.store_support import newer_index
from tests.test_cli_interrupt import Running, stopping_at

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = ["Combien Netflix investit-il dans les contenus en 2018 ?", "Quelle série française Amazon a-t-il achetée ?"]


def _qa_here(*args: str, data_dir: Path, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real command in this process: stdout, stderr, exit code."""
    from typer.testing import CliRunner

    from qa.cli import app

    res = CliRunner().invoke(app, list(args), input=stdin, env={"QA_DATA_DIR": str(data_dir), **(env or {})})
    return subprocess.CompletedProcess(args, res.exit_code, res.stdout, res.stderr)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> Path:
    """data/articles indexed by `qa index` (not to be written by the tests: they back it up)."""
    data = tmp_path_factory.mktemp("backup") / "idx"
    res = _qa_here("index", str(REPO / "data" / "articles"), data_dir=data)
    assert res.returncode == 0, res.stderr
    return data


def _state(data_dir: Path) -> tuple[int, list[str], int]:
    """Generation, document ids and chunk count that the database in ``data_dir`` holds."""
    with closing(sqlite3.connect(f"{(data_dir / 'index.sqlite3').as_uri()}?mode=ro", uri=True)) as conn:
        gen = int(conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
        ids = [r[0] for r in conn.execute("SELECT id FROM documents ORDER BY id")]
        return gen, ids, conn.execute("SELECT count(*) FROM chunks").fetchone()[0]


def _problems(data_dir: Path) -> list[str]:
    """Every disagreement between the database, the dense and BM25 indexes and their files, once the
    folder is opened as a store opens it (files missing or not matching are rebuilt from SQLite)."""
    from index.snapshot import consistency_problems, load_snapshot
    from index.storage import connect, file_lock, meta

    conn = connect(data_dir / "index.sqlite3")
    try:
        kind, dim = meta(conn, "dense_index"), int(meta(conn, "dim"))
        with file_lock(data_dir):
            snap = load_snapshot(conn, data_dir, kind, dim, repair=True)
            return consistency_problems(conn, snap, data_dir, kind, dim)
    finally:
        conn.close()


def _without_timings(lines: str) -> list[dict]:
    out = []
    for line in lines.splitlines():
        resp = json.loads(line)
        resp.pop("took_ms")
        out.append(resp)
    return out


def test_a_backup_searches_and_answers_as_the_index(indexed, tmp_path, embedder):
    from index.store import IndexStore

    dest = tmp_path / "copy"
    res = _qa_here("backup", str(dest), data_dir=indexed)
    assert res.returncode == 0, res.stderr
    gen, ids, chunks = _state(indexed)
    assert res.stdout.startswith(f"backed up 5 documents / {chunks} chunks (generation {gen}) to {dest}, with its dense and BM25 index files: "), res.stdout
    # the database, and the index files of its generation (no rebuild at the first open): nothing else
    assert sorted(p.name for p in dest.iterdir()) == [f"bm25-{gen}", f"dense-flat-{gen}.faiss", "index.sqlite3"]
    assert _state(dest) == (gen, ids, chunks)
    with closing(sqlite3.connect(dest / "index.sqlite3")) as conn:  # self-contained: no write-ahead log to go with it
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert [p.name for p in tmp_path.iterdir()] == ["copy"]  # no temporary folder left beside it

    listed = _qa_here("docs", "list", "--json", data_dir=dest)
    assert listed.returncode == 0 and listed.stdout == _qa_here("docs", "list", "--json", data_dir=indexed).stdout
    with IndexStore.open(indexed, embedder) as source, IndexStore.open(dest, embedder) as copy:
        copy.check_consistency()
        assert copy.generation == gen
        for query in ("Netflix investit dans les séries", "Amazon Prime Video", "budget 2018"):
            for mode in ("hybrid", "dense", "bm25"):
                assert copy.search(query, top_k=10, mode=mode) == source.search(query, top_k=10, mode=mode)
    asked = [_qa_here("ask", "-", "--json", data_dir=d, stdin="\n".join(QUESTIONS)) for d in (indexed, dest)]
    assert all(a.returncode == 0 for a in asked), [a.stderr for a in asked]
    answers = [_without_timings(a.stdout) for a in asked]
    assert answers[0] == answers[1] and len(answers[0]) == 2 and answers[0][0]["answers"]
    with closing(sqlite3.connect(dest / "index.sqlite3")) as conn:  # in use, it is an index like any other
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_backup_keeps_the_permissions_of_the_index(indexed, tmp_path):
    """A private index (folder 0700, files 0600) was backed up as a folder 0755 and a database 0644
    (the modes mkdir and SQLite give new files): every user of the machine could read its documents,
    where `cp -r` keeps them private. The copy has the index's modes."""
    import shutil
    import stat

    data = tmp_path / "idx"
    shutil.copytree(indexed, data)
    for p in [data, *data.rglob("*")]:
        p.chmod(0o700 if p.is_dir() else 0o600)
    (data / "index.sqlite3").chmod(0o640)  # not the umask's, nor the folder's: copied as it is
    rep = backup_index(data, tmp_path / "copy")
    assert rep.index_files

    def modes(root: Path) -> dict[str, str]:
        return {str(p.relative_to(root)): oct(stat.S_IMODE(p.stat().st_mode)) for p in [root, *root.rglob("*")]}

    assert modes(rep.dest) == {k: v for k, v in modes(data).items() if k != "write.lock" and "-wal" not in k and "-shm" not in k}
    assert oct(stat.S_IMODE(rep.dest.stat().st_mode)) == "0o700" and oct(stat.S_IMODE((rep.dest / "index.sqlite3").stat().st_mode)) == "0o640"


# A writer in its own process that stops at the store's crash points named in argv[2] (index.store
# calls _crash_point at each: before its commit, once committed, once each index file is written),
# says where, and goes on at a line on its stdin.
PAUSED_WRITER = """
import sys
import index.store
from index.embeddings import Embedder
from index.schema import Document
from qa.settings import Settings

points = sys.argv[2].split(",")

def pause(name):
    if name in points:
        print("at", name, flush=True)
        sys.stdin.readline()

index.store._crash_point = pause
settings = Settings()
with index.store.IndexStore.open(sys.argv[1], Embedder(settings.embedder, settings.models_dir)) as store:
    print("opened", flush=True)
    store.add_documents([Document(id="nouveau", title="Le cidre breton", text="Le cidre breton est fait de pommes de Cornouaille. " * 8)])
print("written", flush=True)
"""


def test_a_backup_taken_during_a_write_holds_the_state_before_it_or_after_it(indexed, tmp_path):
    """At each point of another process's write, a backup holds the old state (before its commit) or
    the new one, whole; index files are in it only when they are those of its generation."""
    import shutil

    data = tmp_path / "idx"
    shutil.copytree(indexed, data)
    gen, ids, chunks = _state(data)
    points = ["before_commit", "committed", "dense_written", "keyword_written"]
    writer = Running([sys.executable, "-c", PAUSED_WRITER, str(data), ",".join(points)], stdin="")
    try:
        writer.wait_for("stdout", "opened")
        for point in points:
            writer.wait_for("stdout", f"at {point}")
            dest = tmp_path / f"backup-{point}"
            rep = backup_index(data, dest)
            new = point != "before_commit"
            expected = _state(data) if new else (gen, ids, chunks)
            assert _state(dest) == expected and (expected[0] == gen + 1) == new, point
            assert ("nouveau" in expected[1]) == new and (rep.generation, rep.documents, rep.chunks) == (expected[0], len(expected[1]), expected[2])
            # the files of the new generation: not written yet, half written, written
            assert rep.index_files == (point in ("before_commit", "keyword_written")), point
            assert sorted(p.name for p in dest.iterdir()) == (
                [f"bm25-{rep.generation}", f"dense-flat-{rep.generation}.faiss", "index.sqlite3"] if rep.index_files else ["index.sqlite3"])
            assert _problems(dest) == [], point
            writer.proc.stdin.write("\n")
            writer.proc.stdin.flush()
        writer.wait_for("stdout", "written")
    finally:
        writer.proc.kill()
        writer.proc.wait(timeout=60)
    assert _state(data)[0] == gen + 1


# Writes one document at a time and prints each committed state, until it has written argv[2].
STEADY_WRITER = """
import sys
import index.store
from index.embeddings import Embedder
from index.schema import Document
from qa.settings import Settings

settings = Settings()
with index.store.IndexStore.open(sys.argv[1], Embedder(settings.embedder, settings.models_dir)) as store:
    print("opened", flush=True)
    for i in range(int(sys.argv[2])):
        store.add_documents([Document(id=f"vin-{i:02d}", title=f"Vendanges {i}", text=f"Les vendanges de l'an {i} ont commencé. " * 20)])
        print("state", store.generation, store.counts()["documents"], flush=True)
"""


def test_backups_taken_while_another_process_writes_are_each_one_state(indexed, tmp_path):
    import shutil

    data = tmp_path / "idx"
    shutil.copytree(indexed, data)
    gen, ids, _ = _state(data)
    writer = Running([sys.executable, "-c", STEADY_WRITER, str(data), "5"])
    backups = []
    try:
        writer.wait_for("stdout", "opened")
        while writer.proc.poll() is None and len(backups) < 150:
            backups.append(backup_index(data, tmp_path / f"b{len(backups):03d}"))
        writer.wait_for("stdout", f"state {gen + 5} {len(ids) + 5}")
    finally:
        writer.proc.kill()
        writer.proc.wait(timeout=60)
    states = {(gen, len(ids))} | {(int(g), int(n)) for g, n in (line.split()[1:] for line in writer.out["stdout"] if line.startswith("state"))}
    assert len({r.generation for r in backups}) > 1, "no backup was taken while it wrote"
    for rep in backups:
        assert (rep.generation, rep.documents) in states
        assert _state(rep.dest)[1] == sorted(ids + [f"vin-{i:02d}" for i in range(rep.generation - gen)])
    for rep in backups[:: max(1, len(backups) // 8)]:  # opening costs; every generation is not needed
        assert _problems(rep.dest) == [], rep


def test_a_destination_that_cannot_be_used_is_one_line(indexed, tmp_path, monkeypatch):
    (tmp_path / "taken").mkdir()
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(indexed)
    cases = {
        "taken": "error: taken already exists: give a new folder (a backup never writes into or over another)",
        "file": "error: file already exists: give a new folder (a backup never writes into or over another)",
        str(indexed / "copy"): f"error: {indexed / 'copy'} is inside the index folder {indexed}: give a folder outside it",
        str(tmp_path / "link" / "copy"): f"error: {tmp_path / 'link' / 'copy'} is inside the index folder {indexed}: give a folder outside it",
        "missing/copy": f"error: cannot create missing/copy: {tmp_path / 'missing'} does not exist (create it first)",
        "file/copy": f"error: cannot create file/copy: {tmp_path / 'file'} is not a folder",
    }
    monkeypatch.chdir(tmp_path)
    for dest, line in cases.items():
        res = _qa_here("backup", dest, data_dir=indexed)
        assert res.returncode == 1 and res.stderr.strip() == line, (dest, res.stderr)
    assert _qa_here("backup", "", data_dir=indexed).returncode == 2
    newer = newer_index(tmp_path / "newer")
    res = _qa_here("backup", "copy", data_dir=newer)
    assert res.returncode == 1 and res.stderr.startswith(f"error: the index at {newer} was written by a newer qa-search (schema version 99"), res.stderr
    res = _qa_here("backup", "copy", data_dir=tmp_path / "none")
    assert res.returncode == 1 and res.stderr.strip().startswith(f"error: no index at {tmp_path / 'none'}: "), res.stderr
    # a folder it cannot write in (a read-only mount, which root cannot get around either; the test
    # answers the permission check as such a mount does)
    closed = tmp_path / "closed"
    closed.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if Path(path) == closed and mode & os.W_OK else real_access(path, mode, **kw))
    res = _qa_here("backup", str(closed / "copy"), data_dir=indexed)
    assert res.returncode == 1 and res.stderr.strip() == f"error: cannot create {closed / 'copy'}: {closed} is not writable", res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["closed", "file", "link", "newer", "taken"] and not any(closed.iterdir())
    assert not (indexed / "copy").exists()


def test_a_backup_into_a_folder_it_cannot_list_is_made(indexed, tmp_path, monkeypatch):
    """A drop box (mode 0333: one may create in it, not list or read it): looking for what stopped
    backups left there was a traceback (PermissionError) before anything was copied, and syncing the
    folder once the backup was renamed into it said "nothing was written" next to a whole backup. The
    test answers as such a folder does for a user other than root, whom permissions do not stop."""
    box = tmp_path / "box"
    box.mkdir()
    real_iterdir, real_open = Path.iterdir, os.open

    def iterdir(self):
        if self == box:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    def os_open(path, flags, *args, **kwargs):
        if Path(path) == box and not flags & (os.O_WRONLY | os.O_RDWR):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    monkeypatch.setattr(os, "open", os_open)
    res = _qa_here("backup", str(box / "copy"), data_dir=indexed)
    monkeypatch.undo()
    assert res.returncode == 0 and res.stdout.startswith("backed up 5 documents / "), (res.stdout, res.stderr)
    assert [p.name for p in box.iterdir()] == ["copy"] and _state(box / "copy") == _state(indexed)


@pytest.mark.parametrize("damaged, why", [
    ("documents", "database disk image is malformed"),
    # only the copy's check finds it, and said it over lines ("*** in database main ***", then a line per problem)
    ("chunks_document", "Page {page}: btreeInitPage() returns error code 11"),
])
def test_a_damaged_index_is_one_line_and_no_backup(indexed, tmp_path, damaged, why):
    import shutil

    from tests.store_support import damage_pages

    data = tmp_path / "idx"
    shutil.copytree(indexed, data)
    pages = damage_pages(data, damaged)
    res = _qa_here("backup", str(tmp_path / "copy"), data_dir=data)
    assert res.returncode == 1 and res.stderr == (
        f"error: the index at {data} is damaged ({why.format(page=pages[0])}): no backup was written; "
        'restore an earlier backup (README, "Backing up"), or index the documents again in a new folder\n'), res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_a_backup_that_cannot_be_written_is_one_line_and_leaves_nothing(indexed, tmp_path):
    """A file size limit (SQLite reads a write past it as an I/O error, not a full disk)."""
    import resource
    import signal

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    dest = tmp_path / "copy"
    res = subprocess.run([sys.executable, "-m", "qa.cli", "backup", str(dest)], capture_output=True, text=True,
                         env={**os.environ, "QA_DATA_DIR": str(indexed)}, cwd=REPO, timeout=600, preexec_fn=limited)
    assert res.returncode == 1 and res.stderr == f"error: cannot back up the index at {indexed} to {dest}: disk I/O error; nothing was written\n", res.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("full_at", ["database", "index files"])
def test_a_backup_to_a_full_disk_is_one_line_and_leaves_nothing(indexed, tmp_path, full_at):
    """A real full disk: a small tmpfs, mounted in a mount namespace of its own (root only), where the
    database or the index files no longer fit. SQLite needed room for a shared-memory file to open
    its copy, and said "disk I/O error" when it had none."""
    db_kb = (indexed / "index.sqlite3").stat().st_size // 1024
    size_kb = db_kb // 2 if full_at == "database" else db_kb + 8  # the dense file alone is 28 kB
    small = tmp_path / "small"
    small.mkdir()
    dest = small / "copy"
    qa = f"{sys.executable} -m qa.cli backup {dest}; echo status $?; ls -A {small}"
    res = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size={size_kb}k tmpfs {small} && {qa}"], capture_output=True,
                         text=True, env={**os.environ, "QA_DATA_DIR": str(indexed)}, cwd=REPO, timeout=600)
    if "status" not in res.stdout:
        pytest.skip(f"no tmpfs can be mounted here: {res.stderr.strip()}")
    assert res.stdout == "status 1\n", res.stdout  # nothing left on the small disk
    assert res.stderr.startswith(f"error: cannot write the backup to {dest}: its disk is full (") and res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.endswith("); nothing was written: make room and run the command again\n"), res.stderr


# stops `qa backup` once its database is copied into its temporary folder, after a line the test waits for
STOPPED = stopping_at("index.backup", "copy_index_files", "copied")


def test_a_backup_stopped_midway_leaves_no_destination(indexed, tmp_path):
    import signal

    dest = tmp_path / "copy"
    env = {"QA_DATA_DIR": str(indexed)}
    running = Running([sys.executable, "-c", STOPPED, "backup", str(dest)], env=env)
    running.wait_for("stdout", "copied")
    assert [p.name for p in tmp_path.iterdir()] == [f".copy{PARTIAL}{running.proc.pid}"]  # the copy so far, beside DEST
    status, _, stderr = running.interrupt()
    assert status == 130 and stderr == f"interrupted: no backup was written to {dest}; the index was not changed\n", (status, stderr)
    assert list(tmp_path.iterdir()) == []

    # stopped by SIGTERM (a supervisor's stop, `timeout`): cleaned up as on Ctrl-C, with SIGTERM's status.
    # Python's default ended it on the spot, leaving its partial copy (as big as the index) behind
    terminated = Running([sys.executable, "-c", STOPPED, "backup", str(dest)], env=env)
    terminated.wait_for("stdout", "copied")
    terminated.proc.send_signal(signal.SIGTERM)
    terminated.wait_for("stderr", f"interrupted: no backup was written to {dest}; the index was not changed")
    assert terminated.proc.wait(timeout=60) == 143
    assert list(tmp_path.iterdir()) == []

    # killed (SIGKILL, a reboot): its temporary folder stays, never DEST; the next backup to DEST removes it
    killed = Running([sys.executable, "-c", STOPPED, "backup", str(dest)], env=env)
    killed.wait_for("stdout", "copied")
    killed.proc.send_signal(signal.SIGKILL)
    killed.proc.wait(timeout=60)
    assert [p.name for p in tmp_path.iterdir()] == [f".copy{PARTIAL}{killed.proc.pid}"]
    res = _qa_here("backup", str(dest), data_dir=indexed)
    assert res.returncode == 0, res.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["copy"]


# runs `qa backup` stopping, after a line the test waits for, as it ends: once its copy is renamed to DEST
# ($STOP_AT=rename: as the rename returns; sync: in the sync of DEST's parent folder that follows)
STOPPED_WHOLE = """
import os, sys, time
from pathlib import Path
import index.backup

def stop(line):
    print(line, flush=True)
    time.sleep(600)

real_rename, real_fsync = os.rename, index.backup._fsync
dest = Path(sys.argv[2]).absolute()

def rename(source, target, *args, **kwargs):
    real_rename(source, target, *args, **kwargs)
    if os.environ["STOP_AT"] == "rename" and Path(target).absolute() == dest:
        stop("renamed")

def fsync(path):
    if os.environ["STOP_AT"] == "sync" and Path(path).absolute() == dest.parent and dest.is_dir():
        stop("syncing")
    real_fsync(path)

os.rename, index.backup._fsync = rename, fsync
sys.argv[0] = "qa"
from qa.cli import app
app()
"""


@pytest.mark.parametrize("stop_at, line", [("sync", "syncing"), ("rename", "renamed")])
def test_a_backup_stopped_as_it_ends_says_it_is_whole_and_keeps_it(indexed, tmp_path, stop_at, line):
    """Ctrl-C in the sync that follows the rename of the copy to DEST (or as the rename returns) said
    "no backup was written to DEST" beside DEST, a whole backup. It says DEST is a complete backup,
    kept; SIGTERM there too, with its own status."""
    import signal

    dest = tmp_path / "copy"
    env = {"QA_DATA_DIR": str(indexed), "STOP_AT": stop_at}
    kept = (f"interrupted: it came once the backup was whole: {dest} is a complete backup and is kept "
            "(remove it if you do not want it); the index was not changed\n")
    running = Running([sys.executable, "-c", STOPPED_WHOLE, "backup", str(dest)], env=env)
    running.wait_for("stdout", line)
    status, _, stderr = running.interrupt()
    assert status == 130 and stderr == kept, (status, stderr)
    assert [p.name for p in tmp_path.iterdir()] == ["copy"] and _state(dest) == _state(indexed) and not _problems(dest)

    again = tmp_path / "again"
    again.mkdir()
    terminated = Running([sys.executable, "-c", STOPPED_WHOLE, "backup", str(again / "copy")], env=env)
    terminated.wait_for("stdout", line)
    terminated.proc.send_signal(signal.SIGTERM)
    terminated.wait_for("stderr", "interrupted: it came once the backup was whole: ")
    assert terminated.proc.wait(timeout=60) == 143
    assert [p.name for p in again.iterdir()] == ["copy"] and _state(again / "copy") == _state(indexed)
