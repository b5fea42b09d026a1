"""What a write changes in the index, as SQL sees it, and what it reports: which documents of a batch are new, changed or
stored under another form of their id, which stored vectors can be reused (by passage hash), and the
rows that the write's transaction replaces, the documents search's keys among them. ``index.store`` chunks, embeds and locks around these."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from index.catalog import MATCH_KEY_RULE, MATCH_KEY_VERSION, MATCH_KEYS_MISSING, match_key, match_keys_searchable
from index.schema import Chunk, Document, id_lookups
from index.storage import batched, meta, read_transaction
from index.snapshot import bump_generation, stored_generation
from index.text import ANALYZER_VERSION, URL_RULE_VERSION, analyze, url_problem


@dataclass
class AddReport:
    documents_added: int = 0
    documents_updated: int = 0
    documents_unchanged: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    chunk_counts: dict[str, int] = field(default_factory=dict)
    chunks_embedded: int = 0  # chunks whose vector was computed (others reused by content hash)

    def merge(self, other: "AddReport") -> None:
        """Add the counts of a later write (``add_in_batches``)."""
        self.documents_added += other.documents_added
        self.documents_updated += other.documents_updated
        self.documents_unchanged += other.documents_unchanged
        self.chunks_added += other.chunks_added
        self.chunks_removed += other.chunks_removed
        self.chunks_embedded += other.chunks_embedded
        self.chunk_counts.update(other.chunk_counts)


@dataclass(frozen=True)
class RebuildReport:
    documents: int
    chunks_before: int
    chunks: int
    embedded: int  # passages embedded again (the others kept their vectors)


class Plan(NamedTuple):
    """A document to write: its chunks, the passages embedded and indexed for them, their hashes."""

    doc: Document
    doc_hash: str  # of the whole document (doc_hash): unchanged documents are skipped
    chunks: list[Chunk]
    passages: list[str]
    hashes: list[str]  # content_hash of each passage: vectors are reused by it


def doc_hash(doc: Document) -> str:
    payload = json.dumps([doc.text, doc.title, doc.url, doc.published, doc.metadata], ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=16).hexdigest()


def plan_batch(conn: sqlite3.Connection, batch: dict[str, Document], plan_document: Callable[[Document, str], Plan]):
    """What writing ``batch`` (ids in NFC) changes, as ``conn`` sees the index: the stored documents of
    the batch under any form of their ids (id -> [(stored id, content hash, chunk count)]), the plans
    of the new or changed ones and the stored chunks of those being replaced (chunk id -> (stored
    document id, hash)). A document stored under another form of its id is changed even when its
    content is not: it is stored again under the id in NFC."""
    existing: dict[str, list[tuple[str, str, int]]] = {}
    # the forms of distinct ids in NFC are distinct: each stored row belongs to one id of the batch
    form_of = {form: doc_id for doc_id in batch for form in id_lookups(doc_id)}
    for forms in batched(list(form_of)):
        q = f"SELECT id, content_hash, n_chunks FROM documents WHERE id IN ({','.join('?' * len(forms))})"
        for stored, h, n in conn.execute(q, forms):
            existing.setdefault(form_of[stored], []).append((stored, h, n))
    plans = []
    for doc in batch.values():
        h = doc_hash(doc)
        stored = existing.get(doc.id, [])
        if len(stored) == 1 and stored[0][:2] == (doc.id, h):
            continue
        plans.append(plan_document(doc, h))
    old: dict[int, tuple[str, str]] = {}
    stored_ids = [stored for p in plans for stored, _, _ in existing.get(p.doc.id, ())]
    for ids in batched(stored_ids):
        q = f"SELECT id, document_id, content_hash FROM chunks WHERE document_id IN ({','.join('?' * len(ids))})"
        old.update((cid, (doc_id, h)) for cid, doc_id, h in conn.execute(q, ids))
    return existing, plans, old


def stored_documents(conn: sqlite3.Connection) -> tuple[int, list[tuple[Document, str]]]:
    """The generation and every stored document with its content hash, read at once."""
    with read_transaction(conn):
        gen = stored_generation(conn)
        rows = conn.execute("SELECT id, text, title, url, published, metadata, content_hash FROM documents ORDER BY id").fetchall()
    return gen, [(Document(id=r[0], text=r[1], title=r[2], url=r[3], published=r[4], metadata=json.loads(r[5])), r[6]) for r in rows]


def stored_vectors(conn: sqlite3.Connection, hashes: set[str]) -> dict[str, bytes]:
    """The stored vectors of the passages of these content hashes that the index holds."""
    vectors: dict[str, bytes] = {}
    for hs in batched(sorted(hashes)):
        q = f"SELECT content_hash, vector FROM chunks WHERE content_hash IN ({','.join('?' * len(hs))})"
        vectors.update(conn.execute(q, hs).fetchall())
    return vectors


def write_rows(c: sqlite3.Connection, plans: list[Plan], replaced: dict[str, list[str]], old: dict[int, tuple[str, str]],
               vectors: dict[str, bytes], dim: int, rebuild: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inside the write transaction: the rows of the plans. ``replaced``: the stored ids each planned
    document replaces (its own, other forms of it); ``old``: their chunks (a chunk of the same id,
    document and passage keeps its row). A ``rebuild`` replaces every chunk of the index (the plans
    are every document it holds, rows unchanged but their chunk counts). The chunk ids removed, and
    the ids and vectors of the chunks added."""
    keys_missing = meta(c, MATCH_KEYS_MISSING) is not None  # before this write's rows say so
    new_rows = []  # (chunk, passage, hash)
    keep: set[int] = set()
    for plan in plans:
        for ch, p, h in zip(plan.chunks, plan.passages, plan.hashes):
            if old.get(ch.id) == (plan.doc.id, h) and not rebuild:
                keep.add(ch.id)
            else:
                new_rows.append((ch, p, h))
    add_ids = np.asarray([ch.id for ch, _, _ in new_rows], dtype=np.int64)
    add_vecs = (
        np.frombuffer(b"".join(vectors[h] for _, _, h in new_rows), dtype=np.float32).reshape(len(new_rows), dim)
        if new_rows
        else np.zeros((0, dim), np.float32)
    )
    if rebuild:
        removed = np.asarray([r[0] for r in c.execute("SELECT id FROM chunks ORDER BY id")], dtype=np.int64)
        c.execute("DELETE FROM chunks")
        c.executemany("UPDATE documents SET n_chunks=? WHERE id=?", [(len(plan.chunks), plan.doc.id) for plan in plans])
    else:
        removed = np.asarray(sorted(set(old) - keep), dtype=np.int64)
        for plan in plans:
            doc = plan.doc
            c.execute(
                """INSERT INTO documents(id, title, url, published, metadata, text, content_hash, chars, n_chunks)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(id) DO UPDATE SET title=excluded.title, url=excluded.url, published=excluded.published,
                     metadata=excluded.metadata, text=excluded.text, content_hash=excluded.content_hash,
                     chars=excluded.chars, n_chunks=excluded.n_chunks""",
                (doc.id, doc.title, doc.url, doc.published, json.dumps(doc.metadata or {}, ensure_ascii=False, default=str), doc.text, plan.doc_hash, len(doc.text), len(plan.chunks)),
            )
        for ids in batched(removed.tolist()):
            c.execute(f"DELETE FROM chunks WHERE id IN ({','.join('?' * len(ids))})", ids)
        # other forms of the ids written (their chunks are removed above): one document per id
        c.executemany("DELETE FROM documents WHERE id=?", [(stored,) for doc_id, ids in replaced.items() for stored in ids if stored != doc_id])
    c.executemany(
        "INSERT INTO chunks(id, document_id, start_char, end_char, text, content_hash, terms, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        ((ch.id, ch.document_id, ch.start, ch.end, ch.text, h, " ".join(analyze(p)), vectors[h]) for ch, p, h in new_rows),
    )
    # the documents search's keys of the documents written (a rebuild changes no title); the rows of
    # other forms of their ids took theirs with them (the triggers of index.catalog.create_tables)
    store_match_keys(c, [] if rebuild else [(plan.doc.id, plan.doc.title) for plan in plans], keys_missing)
    return removed, add_ids, add_vecs


def put_match_keys(c: sqlite3.Connection, docs: list[tuple[str, str | None]]) -> None:
    """The match keys of these (id, title) stored, replacing those they had."""
    c.executemany("INSERT OR REPLACE INTO document_keys(id, title_key, id_key) VALUES (?, ?, ?)",
                  ((doc_id, match_key(title), match_key(doc_id)) for doc_id, title in docs))


def store_match_keys(c: sqlite3.Connection, written: list[tuple[str, str | None]], keys_missing: bool) -> None:
    """Inside a write transaction, after its documents' rows (whose triggers removed their keys and
    recorded keys as missing): the keys of the (id, title) ``written``, so that the documents search
    goes on reading stored keys; with ``keys_missing`` (some were missing before this write: an older
    release wrote documents since the last open), those too. Nothing when the stored keys are of
    another rule (a newer release's): the next open for writing computes them all again."""
    if meta(c, MATCH_KEY_RULE) != MATCH_KEY_VERSION:
        return
    put_match_keys(c, written)
    if keys_missing:
        update_match_keys(c)
    else:
        c.execute("DELETE FROM meta WHERE key = ?", (MATCH_KEYS_MISSING,))


def update_match_keys(c: sqlite3.Connection) -> int:
    """Inside the write transaction of an open (or a write, ``store_match_keys``): the match keys of
    every document stored, once per index and MATCH_KEY_VERSION (recorded in meta), so that the
    documents search reads them rather than calling match_key on every title and id; then only those
    of the documents an older release wrote since (it writes none). How many documents got keys.

    Computing them all reads every title and id: under 2 s for 100,000 documents on 2 cores."""
    if match_keys_searchable(c):
        return 0
    if meta(c, MATCH_KEY_RULE) == MATCH_KEY_VERSION:  # some missing: those only
        docs = c.execute("SELECT id, title FROM documents d WHERE NOT EXISTS (SELECT 1 FROM document_keys k WHERE k.id = d.id)").fetchall()
    else:  # none yet, or of another rule
        c.execute("DELETE FROM document_keys")
        docs = c.execute("SELECT id, title FROM documents").fetchall()
    put_match_keys(c, docs)
    c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (MATCH_KEY_RULE, MATCH_KEY_VERSION))
    c.execute("DELETE FROM meta WHERE key = ?", (MATCH_KEYS_MISSING,))
    return len(docs)


def match_key_problems(conn: sqlite3.Connection) -> list[str]:
    """When the documents search reads stored keys (``index.catalog.match_keys_searchable``): the
    documents whose keys are missing, stale or left behind (``IndexStore.check_consistency``)."""
    with read_transaction(conn):
        if not match_keys_searchable(conn):
            return []
        expected = {doc_id: (match_key(title), match_key(doc_id)) for doc_id, title in conn.execute("SELECT id, title FROM documents")}
        stored = {doc_id: (title_key, id_key) for doc_id, title_key, id_key in conn.execute("SELECT id, title_key, id_key FROM document_keys")}
    wrong = sorted((set(expected) ^ set(stored)) | {d for d in expected if d in stored and stored[d] != expected[d]})
    return [f"stored match keys disagree with the documents for {len(wrong)} documents (first: {wrong[:3]})"] if wrong else []


def reanalyze(c: sqlite3.Connection, passage: Callable[[str | None, str], str]) -> None:
    """Under the file lock: the BM25 terms of every chunk analysed again (``passage``: what is indexed
    for a chunk of a title), after the analyser changed; a write of its own."""
    rows = c.execute("SELECT c.id, c.text, d.title FROM chunks c JOIN documents d ON d.id = c.document_id").fetchall()
    c.execute("BEGIN IMMEDIATE")
    c.executemany("UPDATE chunks SET terms=? WHERE id=?", [(" ".join(analyze(passage(title, text))), cid) for cid, text, title in rows])
    c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('analyzer', ?)", (ANALYZER_VERSION,))
    bump_generation(c)
    c.execute("COMMIT")


def drop_refused_urls(c: sqlite3.Connection) -> list[tuple[str, str, str]]:
    """Inside the write transaction of an open: the URLs that earlier versions stored and this one
    refuses (``url_problem``: a ``javascript:`` link, a control character), removed once rather than
    withheld on every read; each such document keeps everything else, and its content hash becomes
    that of what it holds now, so that sending it again without the URL finds it unchanged. The
    (id, URL, problem) of each, for the caller to log once the transaction commits.

    Once per index and URL_RULE_VERSION (recorded in meta): the check reads every URL (about a second
    for 100,000 documents), and this version writes no such URL. One that an older version writes
    later is still withheld on reads (``index.catalog.served_url``)."""
    if meta(c, "url_rule") == URL_RULE_VERSION:
        return []
    dropped = []
    for doc_id, url in c.execute("SELECT id, url FROM documents WHERE url IS NOT NULL").fetchall():
        problem = url_problem(url, strict=False)
        if problem is not None:
            dropped.append((doc_id, url, problem))
    for doc_id, _, _ in dropped:
        text, title, published, metadata, old_hash = c.execute(
            "SELECT text, title, published, metadata, content_hash FROM documents WHERE id=?", (doc_id,)).fetchone()
        try:
            new_hash = doc_hash(Document(id=doc_id, text=text, title=title, url=None, published=published, metadata=json.loads(metadata)))
        except ValueError:  # metadata that is not JSON: the document is written again the next time it is sent
            new_hash = old_hash
        c.execute("UPDATE documents SET url=NULL, content_hash=? WHERE id=?", (new_hash, doc_id))
    c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('url_rule', ?)", (URL_RULE_VERSION,))
    return dropped
