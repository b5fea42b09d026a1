"""Indexes as older versions of the store left them, written directly into SQLite."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from index.chunking import chunk_id


def store_under_id(data_dir: Path, doc_id: str, stored_id: str) -> None:
    """Give the stored document ``doc_id`` the id ``stored_id`` ("cafe" + U+0301), as a version that
    kept ids as sent stored it: its row and its chunks, whose ids derive from the document id. The
    generation is bumped, so an open store takes it up as another process's write (its index files
    are rebuilt from SQLite), and so does the next open."""
    with closing(sqlite3.connect(Path(data_dir) / "index.sqlite3")) as conn, conn:  # foreign keys off: both tables change
        chunks = conn.execute("SELECT id, start_char, end_char, text FROM chunks WHERE document_id = ?", (doc_id,)).fetchall()
        assert chunks and conn.execute("UPDATE documents SET id = ? WHERE id = ?", (stored_id, doc_id)).rowcount == 1
        conn.executemany("UPDATE chunks SET id = ?, document_id = ? WHERE id = ?",
                         [(chunk_id(stored_id, start, end, text), stored_id, cid) for cid, start, end, text in chunks])
        conn.execute("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'generation'")


def store_url_as_an_older_version(data_dir: Path, doc_id: str, url: str, older_index: bool = True) -> None:
    """Give the stored document ``doc_id`` the URL ``url`` (``javascript:...``), with the content hash
    that a version that took such URLs computed for it (the URL is part of it). ``older_index``: the
    index as such a version left it, which recorded no check of its URLs; else a row that such a
    version writes into an index this one has opened. The generation is left alone: a URL is in no
    index file."""
    import json

    from index.schema import Document
    from index.writes import doc_hash

    with closing(sqlite3.connect(Path(data_dir) / "index.sqlite3")) as conn, conn:
        text, title, published, metadata = conn.execute("SELECT text, title, published, metadata FROM documents WHERE id = ?", (doc_id,)).fetchone()
        old = Document(id=doc_id, text=text, title=title, url=url, published=published, metadata=json.loads(metadata))
        conn.execute("UPDATE documents SET url = ?, content_hash = ? WHERE id = ?", (url, doc_hash(old), doc_id))
        if older_index:
            conn.execute("DELETE FROM meta WHERE key = 'url_rule'")


def stored_url(data_dir: Path, doc_id: str) -> str | None:
    """The URL SQLite holds for ``doc_id``, as stored (no rule of the store applied)."""
    with closing(sqlite3.connect(Path(data_dir) / "index.sqlite3")) as conn:
        return conn.execute("SELECT url FROM documents WHERE id = ?", (doc_id,)).fetchone()[0]


def stored_match_keys(data_dir: Path) -> dict[str, tuple[str, str]]:
    """The documents search's keys SQLite holds: id -> (title key, id key)."""
    with closing(sqlite3.connect(Path(data_dir) / "index.sqlite3")) as conn:
        return {r[0]: (r[1], r[2]) for r in conn.execute("SELECT id, title_key, id_key FROM document_keys")}


def drop_match_keys(data_dir: Path) -> None:
    """The index as a release from before the documents search stored its keys left it: no table of
    keys, none of its triggers, nothing of them in meta."""
    with closing(sqlite3.connect(Path(data_dir) / "index.sqlite3")) as conn, conn:
        for name in ("document_keys_on_insert", "document_keys_on_update", "document_keys_on_delete"):
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("DROP TABLE document_keys")
        conn.execute("DELETE FROM meta WHERE key IN ('match_key_rule', 'match_keys_missing')")


def write_as_an_older_version(data_dir: Path, doc_id: str, title: str, text: str | None = None) -> None:
    """What a release that stores no match keys writes into an index this one has opened: the row of
    ``doc_id`` with ``title`` through its upsert (a new document when ``text`` is given, with no chunk;
    else the stored one, re-titled). Only the documents table changes, as the documents search sees it."""
    with closing(sqlite3.connect(Path(data_dir) / "index.sqlite3")) as conn, conn:
        if text is None:
            text = conn.execute("SELECT text FROM documents WHERE id = ?", (doc_id,)).fetchone()[0]
            n_chunks = conn.execute("SELECT n_chunks FROM documents WHERE id = ?", (doc_id,)).fetchone()[0]
        else:
            n_chunks = 0
        conn.execute(
            """INSERT INTO documents(id, title, url, published, metadata, text, content_hash, chars, n_chunks)
               VALUES (?, ?, NULL, NULL, '{}', ?, 'older', ?, ?)
               ON CONFLICT(id) DO UPDATE SET title=excluded.title, url=excluded.url, published=excluded.published,
                 metadata=excluded.metadata, text=excluded.text, content_hash=excluded.content_hash,
                 chars=excluded.chars, n_chunks=excluded.n_chunks""",
            (doc_id, title, text, len(text), n_chunks),
        )


def match_keys_state(data_dir: Path) -> dict[str, str]:
    """What meta says of the stored match keys (their rule, whether some are missing)."""
    with closing(sqlite3.connect(Path(data_dir) / "index.sqlite3")) as conn:
        return dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('match_key_rule', 'match_keys_missing')"))


def newer_index(data_dir: Path, version: str = "99") -> Path:
    """``data_dir`` made to hold an index as a newer qa-search writes it (schema ``version``), with
    nothing else: what a team rolling back a release meets."""
    Path(data_dir).mkdir(parents=True)
    with closing(sqlite3.connect(Path(data_dir) / "index.sqlite3")) as conn, conn:
        conn.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (version,))
    return Path(data_dir)


def damage_pages(data_dir: Path, name: str) -> list[int]:
    """Overwrite with garbage every page of the table or index ``name`` in the index at
    ``data_dir`` (as a disk or a copy gone wrong leaves them); its page numbers."""
    db = Path(data_dir) / "index.sqlite3"
    with closing(sqlite3.connect(db)) as conn:
        pages = [r[0] for r in conn.execute("SELECT pageno FROM dbstat WHERE name = ? ORDER BY pageno", (name,))]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    assert pages, name
    with open(db, "r+b") as f:
        for page in pages:
            f.seek(size * (page - 1))
            f.write(b"\x0d\xff\xff\xff\xff\xff\xff\xff" * (size // 8))
    return pages
