"""The documents of an index as SQLite holds them, read without the models: the tables and their
schema version, the reads the store shares with DocumentCatalog (an id under any of its Unicode
forms, a URL that would run code never given out), and DocumentCatalog itself, what `qa docs` reads."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import time
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from collections.abc import Callable, Collection, Iterable
from pathlib import Path

from index.schema import Document, SearchResult, id_lookups
from index.storage import BUSY_TIMEOUT_S, ReindexNeeded, read_transaction
from index.text import _LIGATURES, fold, url_problem

log = logging.getLogger("index.store")  # the store's messages keep one name, whichever module logs them

SCHEMA_VERSION = "1"
DB_NAME = "index.sqlite3"
# Raised by every release that changes what match_key gives for a text: the keys stored for the
# documents search (table document_keys) are then computed again, once, by the first open for writing.
# The Unicode version is part of it: match_key decomposes and classifies characters by the running
# Python's tables, which a Python upgrade may extend (new accented letters, new punctuation)
MATCH_KEY_VERSION = f"1 (Unicode {unicodedata.unidata_version})"
MATCH_KEY_RULE = "match_key_rule"  # meta: the MATCH_KEY_VERSION of the stored keys
MATCH_KEYS_MISSING = "match_keys_missing"  # meta, present when some document was written without its keys


@dataclass
class DocumentInfo:
    id: str
    title: str | None
    url: str | None
    published: str | None
    chunks: int
    chars: int


def check_schema_version(data_dir: Path, version: str) -> None:
    """A ``ReindexNeeded`` saying what to do with an index of another schema version: one line that
    names the folder (callers print it as it is, without naming the folder again)."""
    if version == SCHEMA_VERSION:
        return
    new_folder = "{give_folder} a new folder and index your documents again"  # ReindexNeeded.naming: QA_DATA_DIR or --data-dir
    if version.isdigit() and int(version) > int(SCHEMA_VERSION):
        raise ReindexNeeded(
            f"the index at {data_dir} was written by a newer qa-search (schema version {version}; this one reads version {SCHEMA_VERSION})",
            f"use it with that newer qa-search, or {new_folder}",
        )
    raise ReindexNeeded(
        f"the index at {data_dir} has schema version {version}, which this qa-search cannot read (it reads version {SCHEMA_VERSION})",
        new_folder,
    )


def create_tables(c: sqlite3.Connection) -> None:
    """The tables and indexes of the schema, those missing (inside the caller's write transaction)."""
    c.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    c.execute(
        """CREATE TABLE IF NOT EXISTS documents(
            id TEXT PRIMARY KEY, title TEXT, url TEXT, published TEXT, metadata TEXT NOT NULL,
            text TEXT NOT NULL, content_hash TEXT NOT NULL, chars INTEGER NOT NULL, n_chunks INTEGER NOT NULL)"""
    )
    c.execute(
        """CREATE TABLE IF NOT EXISTS chunks(
            id INTEGER PRIMARY KEY, document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            start_char INTEGER NOT NULL, end_char INTEGER NOT NULL, text TEXT NOT NULL,
            content_hash TEXT NOT NULL, terms TEXT NOT NULL, vector BLOB NOT NULL)"""
    )
    c.execute("CREATE INDEX IF NOT EXISTS chunks_document ON chunks(document_id, start_char)")
    c.execute("CREATE INDEX IF NOT EXISTS chunks_hash ON chunks(content_hash)")
    # the documents search reads these keys rather than calling match_key on every row (a second per
    # 100,000 documents); the table is filled by index.writes (update_match_keys, write_rows)
    c.execute("CREATE TABLE IF NOT EXISTS document_keys(id TEXT PRIMARY KEY, title_key TEXT NOT NULL, id_key TEXT NOT NULL) WITHOUT ROWID")
    # Plain SQL, so that they run in every release that writes the index, older ones too (which know
    # nothing of the keys): a document's keys go with any change to its id or title, and a row
    # written without them says so, until a release that stores them fills them in
    # (match_keys_searchable reads both). This release writes the keys after its rows. No INSERT OR
    # REPLACE in them: the conflict clause of the statement that fires a trigger overrides its own.
    missing = f"INSERT INTO meta(key, value) SELECT '{MATCH_KEYS_MISSING}', '1' WHERE NOT EXISTS (SELECT 1 FROM meta WHERE key = '{MATCH_KEYS_MISSING}')"
    c.execute(f"""CREATE TRIGGER IF NOT EXISTS document_keys_on_insert AFTER INSERT ON documents BEGIN
        DELETE FROM document_keys WHERE id = new.id;
        {missing}; END""")
    c.execute(f"""CREATE TRIGGER IF NOT EXISTS document_keys_on_update AFTER UPDATE OF id, title ON documents BEGIN
        DELETE FROM document_keys WHERE id IN (old.id, new.id);
        {missing}; END""")
    c.execute("""CREATE TRIGGER IF NOT EXISTS document_keys_on_delete AFTER DELETE ON documents BEGIN
        DELETE FROM document_keys WHERE id = old.id; END""")


def stored_id(conn: sqlite3.Connection, doc_id: str) -> str | None:
    """The id ``doc_id`` is stored under (its form as given, else in NFC or NFD: ``id_lookups``), or None."""
    forms = id_lookups(doc_id)
    found = {r[0] for r in conn.execute(f"SELECT id FROM documents WHERE id IN ({','.join('?' * len(forms))})", forms)}
    return next((f for f in forms if f in found), None)


def served_url(doc_id: str, url: str | None, warned: set[str]) -> str | None:
    """A stored document's URL as the store gives it out: None when this version would refuse it
    (``url_problem``: a ``javascript:`` link, which older versions took, would reach every client in
    citations and listings), with a warning naming the document the first time ``warned`` sees it.
    The document itself is kept and served; only its URL is withheld. The first open for writing
    removes such URLs (``index.writes.drop_refused_urls``); this covers the reads that may not write
    (`qa docs list` and `show`) until then, and rows an older version writes later."""
    if url is None:
        return None
    problem = url_problem(url, strict=False)
    if problem is None:
        return url
    if doc_id not in warned:
        warned.add(doc_id)
        log.warning("document %r: its stored URL, which an earlier version took, is not given out: it %s", doc_id, problem)
    return None


def shown_url(url: str) -> str:
    """A stored URL as a log line shows it: quoted, its control characters escaped, a long ``data:``
    URL cut."""
    return repr(url if len(url) <= 100 else url[:100] + "…")


def get_document(conn: sqlite3.Connection, doc_id: str, warned: set[str]) -> Document | None:
    forms = id_lookups(doc_id)
    rows = {r[0]: r for r in conn.execute(f"SELECT id, text, title, url, published, metadata FROM documents WHERE id IN ({','.join('?' * len(forms))})", forms)}
    row = next((rows[f] for f in forms if f in rows), None)
    if row is None:
        return None
    return Document(id=row[0], text=row[1], title=row[2], url=served_url(row[0], row[3], warned), published=row[4], metadata=json.loads(row[5]))


_ASTRAL = re.compile("[\U00010000-\U0010FFFF]")


def is_separator(ch: str) -> bool:
    """Whether ``ch`` counts as a space in a documents search: punctuation (the ' of « l’été », the
    quotes, _ - . of ids), symbols, spaces and control characters (Unicode categories P, S, Z, Cc)."""
    category = unicodedata.category(ch)
    return category[0] in "PSZ" or category == "Cc"


@lru_cache(maxsize=1)
def _dropped() -> re.Pattern[str]:
    """What index.text.fold drops after NFKD, below U+10000: combining marks and format characters
    (a class over every plane would be several times slower to match)."""
    chars = "".join(chr(c) for c in range(0x10000) if unicodedata.combining(chr(c)) or unicodedata.category(chr(c)) == "Cf")
    return re.compile("[" + re.escape(chars) + "]")


@lru_cache(maxsize=1)
def _separators() -> re.Pattern[str]:
    """Runs of ``is_separator`` characters below U+10000 but whitespace, which str.split() takes."""
    chars = "".join(chr(c) for c in range(0x10000) if is_separator(chr(c)) and not chr(c).isspace())
    return re.compile("[" + re.escape(chars) + "]+")


# every ASCII character but letters and digits is punctuation, a symbol, a space or a control
_ASCII_SEPARATORS = {c: " " for c in range(128) if not chr(c).isalnum()}
# fold's replacements that are no separator themselves (’ ‘ ` become ', a space here all the same)
_LETTER_LIGATURES = tuple((chr(k), v) for k, v in _LIGATURES.items() if not is_separator(chr(k)))


def match_key(text: str | None) -> str:
    """``text`` as the documents list is searched: index.text.fold's (lowercase, no accents, "œ" as
    "oe"), then every punctuation mark, symbol or space (``is_separator``) one space, none at the
    ends; "" for None. ``match_key("L’Été « 2018 »") == "l ete 2018"``, ``match_key("004_c05") ==
    "004 c05"``. Titles, ids and the text searched are all read so: « l ete » finds « L’Été », a
    whole id finds itself, and a piece of an id between its _ - . finds it too.

    fold's steps, with str.replace and regular expressions where fold has str.translate and a
    loop over the characters, and ASCII (most ids) on its own: several times faster, and a search
    reads every title and id of the index. (The keyword index keeps fold's punctuation: its
    analyser needs the apostrophe of « l’ ».)"""
    if not text:
        return ""
    if text.isascii():  # no accent, ligature or compatibility form: str.translate's fast path
        return " ".join(text.lower().translate(_ASCII_SEPARATORS).split())
    if _ASTRAL.search(text):  # an emoji, say: rare, and beyond _dropped and _separators
        return " ".join("".join(" " if is_separator(c) else c for c in fold(text)).split())
    for before, after in _LETTER_LIGATURES:
        text = text.replace(before, after)
    return " ".join(_separators().sub(" ", _dropped().sub("", unicodedata.normalize("NFKD", text.lower()))).split())


def match_keys_searchable(conn: sqlite3.Connection) -> bool:
    """Whether ``document_keys`` holds the match keys of every document under this release's rule,
    so that a search may read them: not in an index that no release storing them has opened for
    writing yet, nor after an older release wrote a document (it writes no keys: the triggers say
    so), nor once another release has stored keys of another rule; the next open for writing puts
    that right (``index.writes.update_match_keys``)."""
    state = dict(conn.execute("SELECT key, value FROM meta WHERE key IN (?, ?)", (MATCH_KEY_RULE, MATCH_KEYS_MISSING)).fetchall())
    return state.get(MATCH_KEY_RULE) == MATCH_KEY_VERSION and MATCH_KEYS_MISSING not in state


def list_documents(conn: sqlite3.Connection, offset: int, limit: int, warned: set[str], contains: str | None = None) -> tuple[list[DocumentInfo], int]:
    """A page of documents by id, and how many there are; with ``contains``, only those whose title
    or id holds it, all three read through ``match_key``; a ``contains`` with nothing but
    punctuation and spaces is no filter, as a blank one.

    The keys of titles and ids are those stored when they may be read (``match_keys_searchable``),
    else computed here from every title and id (``match_key`` on each: over 0.1 s per 10,000
    documents on 2 cores, against a few ms for the stored ones): the same documents either way."""
    key = match_key(contains)
    params = {"key": key, "limit": max(0, int(limit)), "offset": max(0, int(offset))}
    columns = "id, title, url, published, n_chunks, chars"
    with read_transaction(conn):  # the keys' state and the search: one state of the index
        if key and match_keys_searchable(conn):
            rows, total = _search_stored_keys(conn, params)
        elif key:
            conn.create_function("qa_match_key", 1, match_key, deterministic=True)
            where = " WHERE instr(qa_match_key(title), :key) > 0 OR instr(qa_match_key(id), :key) > 0"
            # the total over the same scan as the page; a page past the end has no row to carry it
            rows = conn.execute(f"SELECT {columns}, count(*) OVER () FROM documents{where} ORDER BY id LIMIT :limit OFFSET :offset", params).fetchall()
            if rows:
                total = rows[0][-1]
            else:
                total = conn.execute(f"SELECT count(*) FROM documents{where}", params).fetchone()[0] if params["offset"] and params["limit"] else 0
            rows = [r[:-1] for r in rows]
        else:
            total = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
            rows = conn.execute(f"SELECT {columns} FROM documents ORDER BY id LIMIT :limit OFFSET :offset", params).fetchall()
    return [DocumentInfo(doc_id, title, served_url(doc_id, url, warned), *rest) for doc_id, title, url, *rest in rows], total


def meant_document_id(list_documents: Callable[..., tuple[list[DocumentInfo], int]], doc_id: str, file_types: Collection[str] = ()) -> str | None:
    """The stored id that ``doc_id``, not stored, most likely meant, or None: one written the same once
    case, accents and punctuation are set aside (``KB-101`` for ``kb-101``), or, when ``doc_id`` ends with
    one of ``file_types`` (".txt"), the file's name given for the id it was indexed under
    (``note.txt`` for ``note``). ``list_documents``: a catalog's or a store's, whose documents search
    reads the same keys (``match_key``), so this costs one search, not a scan of every id."""
    stem, dot, ext = doc_id.rpartition(".")
    tries = [doc_id] + ([stem] if dot and stem and f".{ext.lower()}" in file_types else [])
    for text in tries:
        key = match_key(text)
        if not key:
            continue
        items, _ = list_documents(0, 50, contains=text)
        same = sorted(i.id for i in items if i.id != doc_id and match_key(i.id) == key)
        if same:
            return same[0]
    return None


def _search_stored_keys(conn: sqlite3.Connection, params: dict) -> tuple[list[tuple], int]:
    """``list_documents``'s page and total for ``params['key']``, read from ``document_keys`` (in id
    order, as the documents): the page first, which stops at its last match; a page not filled
    gives the total, a full one is counted apart (a count reads the keys faster than a window over
    every match: at 100,000 documents, 15 against 70 ms when they all match)."""
    where = " WHERE instr(title_key, :key) > 0 OR instr(id_key, :key) > 0"
    page = f"SELECT id FROM document_keys{where} ORDER BY id LIMIT :limit OFFSET :offset"
    rows = conn.execute(f"SELECT d.id, d.title, d.url, d.published, d.n_chunks, d.chars FROM ({page}) m JOIN documents d ON d.id = m.id ORDER BY d.id", params).fetchall()
    if rows and len(rows) < params["limit"]:
        return rows, params["offset"] + len(rows)
    if rows or (params["offset"] and params["limit"]):  # a full page, or one past the end
        return rows, conn.execute(f"SELECT count(*) FROM document_keys{where}", params).fetchone()[0]
    return rows, 0


def search_results(conn: sqlite3.Connection, ranked: list[tuple[int, float]], warned: set[str]) -> list[SearchResult]:
    """The chunks ranked (chunk id, score) with their documents' fields, in that order; those whose
    rows are gone (deleted by a write that landed after the ranking's snapshot) are left out."""
    if not ranked:
        return []
    ids = [cid for cid, _ in ranked]
    q = (
        "SELECT c.id, c.document_id, d.title, d.url, d.published, c.text, c.start_char, c.end_char "
        f"FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id IN ({','.join('?' * len(ids))})"
    )
    rows = {r[0]: r for r in conn.execute(q, ids)}
    out = []
    for cid, score in ranked:
        r = rows.get(cid)
        if r is None:
            continue
        url = served_url(r[1], r[3], warned)
        out.append(SearchResult(chunk_id=r[0], document_id=r[1], title=r[2], url=url, published=r[4], text=r[5], start=r[6], end=r[7], score=float(score)))
    return out


def database_tables(db: Path) -> set[str] | None:
    """The names of the tables in the SQLite database ``db``, read without writing to it; None when it
    cannot be read that way (damaged, or a WAL database in a folder that cannot be written): the open
    that follows says why."""
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
    except (sqlite3.Error, OSError):
        return None
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def _index_tables(data_dir: Path) -> set[str] | None:
    """The tables of ``data_dir``'s index.sqlite3: none (an empty set) for no file, an empty file
    (``touch``, a copy that failed) or a database with no table; None when it cannot be looked at
    without writing (the open that follows says why)."""
    db = Path(data_dir) / DB_NAME
    try:
        if not db.is_file() or db.stat().st_size == 0:
            return set()
    except OSError:
        return None
    return database_tables(db)


def index_exists(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds an index (commands that only read must not create one). An empty
    file or a database with no table is none: opening one to write makes it an index."""
    return _index_tables(data_dir) != set()


def refuse_foreign(data_dir: Path) -> None:
    """A ReindexNeeded when ``data_dir``'s index.sqlite3 is some other program's database: tables, but
    not this project's. Opening it would add this project's tables to it (and switch it to WAL)."""
    _refuse_foreign(data_dir, _index_tables(data_dir))


def _refuse_foreign(data_dir: Path, tables: set[str] | None) -> None:
    """``refuse_foreign`` with the ``tables`` read (``_index_tables``)."""
    if tables and "meta" not in tables:
        names = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise ReindexNeeded(f"{Path(data_dir) / DB_NAME} is not a qa-search index (it holds other tables: {names}) and is left as it is", "{give_folder} another folder")


def open_read_only(data_dir: Path) -> sqlite3.Connection | None:
    """A read-only connection to the index at ``data_dir``, its schema version checked; None when there
    is no index there (nothing is created)."""
    tables = _index_tables(data_dir)
    if tables == set():
        return None
    _refuse_foreign(data_dir, tables)  # the tables read once, not again
    db = Path(data_dir) / DB_NAME
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row:
            check_schema_version(Path(data_dir), row[0])
    except BaseException:  # a damaged or newer index: do not leave the connection open
        conn.close()
        raise
    return conn


DAMAGE_LINES = 3  # of SQLite's check, in the one line that says the index is damaged (as `qa backup`'s)
READ_AHEAD = 1 << 20  # bytes per read of _read_through


def damage_found(data_dir: Path) -> str | None:
    """What SQLite finds wrong with the pages of the index at ``data_dir`` (``PRAGMA quick_check``:
    every page of every table and index, not whether each index agrees with its table), its first
    lines; None when nothing is, or when there is no index. The schema version is checked first
    (a ``ReindexNeeded``); a file that is no database, or whose schema cannot be read, raises
    SQLite's error, as any open does.

    Cheap enough before the models load: on 2 busy cores, 0.004 s for a PIAF-sized database
    (8.6 MB), 0.73 s for 1 GB in the page cache, 1.5 s out of it, where the check alone, reading
    page by page, took 11 s (README, "Deploying")."""
    t0 = time.perf_counter()
    conn = open_read_only(data_dir)
    if conn is None:
        return None
    try:
        _read_through(Path(data_dir) / DB_NAME)  # an OSError names the file (the callers' line says it)
        found = [row[0] for row in conn.execute(f"PRAGMA quick_check({DAMAGE_LINES})")]
    finally:
        conn.close()
    # once per start of a server (README, "Deploying"): the line tells how long it took
    log.info("checked every page of the index in %s in %.2f s", data_dir, time.perf_counter() - t0)
    return None if found == ["ok"] else "\n".join(found)


def _read_through(path: Path) -> None:
    """Read ``path`` once from start to end, so that the pages a check then reads in another order
    come from the page cache: with the kernel's read-ahead, 1.5 s instead of 11 for 1 GB from disk."""
    buf = bytearray(READ_AHEAD)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """How many documents and chunks the index holds."""
    return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in ("documents", "chunks")}


def stored_among(conn: sqlite3.Connection, ids: Iterable[str]) -> set[str]:
    """Which of these exact ids are stored (one query per 500: SQLite bounds a statement's parameters)."""
    ids, found = list(dict.fromkeys(ids)), set()
    for i in range(0, len(ids), 500):
        part = ids[i:i + 500]
        found.update(r[0] for r in conn.execute(f"SELECT id FROM documents WHERE id IN ({','.join('?' * len(part))})", part))
    return found


def source_files(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(id, the file it was read from) of every document whose metadata names one (``source_file``)."""
    rows = conn.execute(
        # CASE, not AND: SQLite's JSON functions raise on rows that are not JSON (NaN stored by older versions)
        "SELECT id, json_extract(metadata, '$.source_file') FROM documents "
        "WHERE CASE WHEN json_valid(metadata) THEN json_type(metadata, '$.source_file') = 'text' ELSE 0 END")
    return [(r[0], r[1]) for r in rows]


class DocumentCatalog:
    """The documents of an index, read only and without the models (what `qa docs list` and `qa docs show`
    need: opening an IndexStore loads the embedder, seconds of torch start-up, to check the index's vectors).

    A missing index reads as empty and is not created."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self._conn = open_read_only(self.data_dir)
        self._warned_urls: set[str] = set()  # documents whose stored URL was withheld (served_url)

    def list_documents(self, offset: int = 0, limit: int = 50, contains: str | None = None) -> tuple[list[DocumentInfo], int]:
        return list_documents(self._conn, offset, limit, self._warned_urls, contains) if self._conn else ([], 0)

    def get_document(self, doc_id: str) -> Document | None:
        return get_document(self._conn, doc_id, self._warned_urls) if self._conn else None

    def counts(self) -> dict[str, int]:
        """Documents and chunks, as ``IndexStore.counts`` (what `qa index` says when it has nothing to add)."""
        return counts(self._conn) if self._conn else {"documents": 0, "chunks": 0}

    def source_files(self) -> list[tuple[str, str]]:
        return source_files(self._conn) if self._conn else []

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
