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
