"""The index store on real files: incremental writes, persistence, model change, crash safety, threads."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from index.catalog import MATCH_KEY_VERSION
from index.schema import Document, Filters
from index.store import AddReport, IndexStore, ReindexNeeded, add_in_batches
from tests.store_support import (drop_match_keys, match_keys_state, store_under_id, store_url_as_an_older_version, stored_match_keys, stored_url,
                                 write_as_an_older_version)

REPO = Path(__file__).resolve().parents[1]

TOPICS = [
    ("Le Tour de France", "Le Tour de France cycliste traverse les Alpes et les Pyrénées chaque été. Les coureurs gravissent le col du Tourmalet."),
    ("La bourse de Paris", "Le CAC 40 a reculé de 2 % cette semaine. Les investisseurs craignent une hausse des taux de la Banque centrale européenne."),
    ("Les vendanges", "Les vendanges ont commencé en Bourgogne. Les viticulteurs prévoient une récolte abondante de pinot noir et de chardonnay."),
    ("Le télescope spatial", "Le télescope James Webb a photographié une galaxie lointaine. Les astronomes étudient la lumière infrarouge des premières étoiles."),
    ("La réforme des retraites", "Le gouvernement présente la réforme des retraites. Les syndicats appellent à la grève contre le report de l'âge légal."),
    ("Le marché immobilier", "Les prix de l'immobilier baissent à Lyon et à Bordeaux. Les taux des crédits immobiliers dépassent 4 % pour les emprunteurs."),
]


def synth_docs(n: int, prefix: str = "doc") -> list[Document]:
    docs = []
    for i in range(n):
        title, body = TOPICS[i % len(TOPICS)]
        docs.append(Document(id=f"{prefix}-{i:03d}", title=f"{title} ({i})", text=f"{title} ({i})\n\n{body} Numéro d'article {i}.", url=f"https://www.site{i % 3}.fr/{i}", published=f"20{10 + i % 10}-0{1 + i % 9}"))
    return docs


class CountingEmbedder:
    """The real embedder, counting the passages it is asked to encode."""

    def __init__(self, inner):
        self._inner = inner
        self.passages = 0

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def encode_passages(self, texts, progress=False):
        self.passages += len(texts)
        return self._inner.encode_passages(texts, progress)


class InterruptedEmbedder(CountingEmbedder):
    """The real embedder, interrupted (as by Ctrl-C) on its ``stop_at``-th call."""

    def __init__(self, inner, stop_at: int):
        super().__init__(inner)
        self.calls, self.stop_at = 0, stop_at

    def encode_passages(self, texts, progress=False):
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        return super().encode_passages(texts, progress)


class OtherEmbedder:
    """A different model (identity and dimension): only for the model-change test."""

    def __init__(self, real):
        self.name = "other-model"
        self.dim = 8
        self.max_tokens = 512
        self.passage_prompt_tokens = 0
        self.tokenizer = real.tokenizer
        self.count_tokens = real.count_tokens

    @property
    def identity(self):
        return f"{self.name}:{self.dim}"

    def _vec(self, texts):
        rng = np.random.default_rng(len(texts))
        v = rng.normal(size=(len(texts), self.dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def encode_passages(self, texts, progress=False):
        return self._vec(texts)

    def encode_queries(self, texts):
        return self._vec(texts)


@pytest.fixture()
def counting(embedder):
    return CountingEmbedder(embedder)


def test_incremental_add_update_delete(tmp_path, counting):
    data = tmp_path / "store"
    store = IndexStore.open(data, counting)  # creates the folder
    assert data.is_dir() and store.counts() == {"documents": 0, "chunks": 0}
    assert store.search("retraites") == []
    docs = synth_docs(6)
    r = store.add_documents(docs)
    assert isinstance(r, AddReport)
    assert (r.documents_added, r.documents_updated, r.documents_unchanged) == (6, 0, 0)
    assert r.chunks_added == 6 and r.chunks_removed == 0 and counting.passages == 6
    assert r.chunk_counts == {d.id: 1 for d in docs}
    store.check_consistency()

    # re-adding unchanged documents embeds nothing and writes nothing
    gen = store.generation
    r = store.add_documents(docs)
    assert (r.documents_added, r.documents_updated, r.documents_unchanged, r.chunks_added) == (0, 0, 6, 0)
    assert counting.passages == 6 and store.generation == gen

    # an update replaces the document's chunks: only the new chunk is embedded
    changed = Document(id="doc-001", title=docs[1].title, text=docs[1].text + "\n\nLe président de l'Autorité des marchés financiers commente la séance.", url=docs[1].url, published=docs[1].published)
    r = store.add_documents([changed, docs[2]])
    assert (r.documents_added, r.documents_updated, r.documents_unchanged) == (0, 1, 1)
    assert r.chunks_removed == 1 and r.chunks_added == 1 and counting.passages == 7
    assert store.get_document("doc-001").text == changed.text
    hits = store.search("Autorité des marchés financiers", top_k=1, mode="bm25")
    assert hits[0].document_id == "doc-001" and "Autorité" in hits[0].text
    store.check_consistency()

    # same chunk text under another id: the vector is reused (content hash), not recomputed
    r = store.add_documents([Document(id="copy", title=docs[3].title, text=docs[3].text)])
    assert r.documents_added == 1 and r.chunks_embedded == 0 and counting.passages == 7

    # delete removes vectors and keyword entries
    assert store.delete_document("doc-003") == "doc-003"
    assert store.delete_document("doc-003") is None
    assert store.get_document("doc-003") is None
    assert store.counts() == {"documents": 6, "chunks": 6}
    assert all(h.document_id != "doc-003" for h in store.search("télescope galaxie", top_k=10, mode="dense"))
    assert [h.document_id for h in store.search("télescope James Webb galaxie", top_k=10, mode="bm25")] == ["copy"]
    store.check_consistency()

    page, total = store.list_documents(offset=1, limit=2)
    assert total == 6 and [p.id for p in page] == ["doc-000", "doc-001"]
    assert page[1].chunks == 1 and page[1].chars == len(changed.text) and page[1].published == "2011-02"
    store.close()

    # reopening loads the files (no embedding) and sees the same state
    counting.passages = 0
    t0 = time.perf_counter()
    again = IndexStore.open(data, counting)
    assert time.perf_counter() - t0 < 5
    assert counting.passages == 0 and again.counts() == {"documents": 6, "chunks": 6}
    again.check_consistency()
    assert again.search("vendanges en Bourgogne", top_k=1)[0].document_id == "doc-002"
    again.close()


def test_hnsw_store_and_filters(tmp_path, embedder):
    store = IndexStore.open(tmp_path / "h", embedder, dense_index="hnsw")
    store.add_documents(synth_docs(12))
    store.check_consistency()
    assert store.delete_document("doc-004")  # HNSW cannot remove: rebuilt from stored vectors
    store.check_consistency()
    hits = store.search("grève contre la réforme des retraites", top_k=3, mode="dense")
    assert hits[0].document_id == "doc-010"
    f = Filters(source="site1.fr")
    hits = store.search("réforme des retraites", top_k=5, filters=f)
    assert hits and all(h.url.startswith("https://www.site1.fr/") for h in hits)
    store.close()


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_delete_without_the_model(tmp_path, embedder, kind):
    """What `qa docs delete` does: open the index with only what it records of its embedder."""
    from index.store import recorded_embedder

    assert recorded_embedder(tmp_path / "none") is None
    with IndexStore.open(tmp_path / "d", embedder, dense_index=kind) as store:
        store.add_documents(synth_docs(8))
    recorded = recorded_embedder(tmp_path / "d")
    assert recorded is not None and (recorded.identity, recorded.dim) == (embedder.identity, embedder.dim)
    with IndexStore.open(tmp_path / "d", recorded, dense_index=kind) as light:
        assert light.delete_document("doc-004") and not light.delete_document("doc-004")
        light.check_consistency()
        with pytest.raises(RuntimeError, match="without its embedding model"):
            light.search("retraites", mode="dense")
        with pytest.raises(RuntimeError, match="without its embedding model"):
            light.add_documents(synth_docs(1, prefix="new"))
        assert light.counts()["documents"] == 7
    with IndexStore.open(tmp_path / "d", embedder, dense_index=kind) as store:  # the real model reads what it left
        store.check_consistency()
        hits = store.search("grève contre la réforme des retraites", top_k=8, mode="dense")
        assert all(h.document_id != "doc-004" for h in hits) and {h.document_id for h in hits} <= {f"doc-{i:03d}" for i in range(8)}


def test_an_id_is_found_whatever_the_unicode_form_it_is_asked_in(tmp_path, embedder):
    """Ids are stored NFC (index.schema.normalize_id: POST /documents, JSON records, file names), and
    looked up as given, then in NFC: "cafe" + U+0301 reaches "café". An id stored decomposed before ids
    were normalised is reached in either form, and by its own form (the one `qa docs list` shows)
    beside an NFC twin; filters keep every form of the ids they name."""
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    with IndexStore.open(tmp_path / "d", embedder) as store:
        store.add_documents([Document(id=nfc, title="Café", text="Le café ouvre à Lyon."), *synth_docs(3)])
        for asked in (nfc, nfd):
            assert store.get_document(asked).id == nfc and [c.document_id for c in store.get_chunks(asked)] == [nfc]
            hits = store.search("café Lyon", top_k=5, filters=Filters(document_ids=[asked]))
            assert [h.document_id for h in hits] == [nfc]
        assert store.delete_document(nfd) and store.get_document(nfc) is None and not store.delete_document(nfc)
        # written by an older version, which stored ids as sent: the decomposed one alone, then beside its twin
        store.add_documents([Document(id=nfc, title="Café", text="Le café ouvre à Lyon.")])
        store_under_id(store.data_dir, nfc, nfd)
        assert store.refresh()
        for asked in (nfc, nfd):
            assert store.get_document(asked).id == nfd
            assert [h.document_id for h in store.search("café Lyon", top_k=5, filters=Filters(document_ids=[asked]))] == [nfd]
        store.add_documents([Document(id="twin", title="Café", text="Le café ferme à Nantes.")])
        store_under_id(store.data_dir, "twin", nfc)
        assert store.refresh()
        assert store.get_document(nfd).text.endswith("Lyon.") and store.get_document(nfc).text.endswith("Nantes.")
        for asked in (nfc, nfd):
            assert {h.document_id for h in store.search("café", top_k=5, filters=Filters(document_ids=[asked]))} == {nfc, nfd}
        assert store.delete_document(nfd) and store.get_document(nfd).id == nfc  # its twin is what is left
        store.check_consistency()


def test_resending_a_document_stored_decomposed_replaces_it(tmp_path, embedder):
    """An older version stored ids as sent ("cafe" + U+0301). Sending that document again (the API and
    `qa index` give its id in NFC) replaces it, stored in NFC from then on: it used to be added beside
    it, a twin that listings, filters and answers showed twice. Twins left that way are one document
    again once it is sent."""
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    data = tmp_path / "d"
    with IndexStore.open(data, embedder) as store:
        store.add_documents([Document(id=nfc, title="Café", text="Le café ouvre à Lyon."), *synth_docs(2)])
    store_under_id(data, nfc, nfd)
    counting = CountingEmbedder(embedder)
    with IndexStore.open(data, counting) as store:
        assert {d.id for d in store.list_documents()[0]} == {nfd, "doc-000", "doc-001"}
        same = store.add_documents([Document(id=nfc, title="Café", text="Le café ouvre à Lyon.")])
        assert (same.documents_added, same.documents_updated) == (0, 1) and counting.passages == 0  # its vectors are reused
        assert {d.id for d in store.list_documents()[0]} == {nfc, "doc-000", "doc-001"}
        store_under_id(data, nfc, nfd)
        changed = store.add_documents([Document(id=nfd, title="Café", text="Le café ferme à Nantes.")])
        assert (changed.documents_added, changed.documents_updated, changed.chunk_counts) == (0, 1, {nfc: 1})
        assert store.counts() == {"documents": 3, "chunks": 3}
        assert store.get_document(nfd).id == nfc and store.get_document(nfc).text.endswith("Nantes.")
        assert [h.document_id for h in store.search("café", top_k=5, filters=Filters(document_ids=[nfd]))] == [nfc]
        store.check_consistency()
        # both forms stored (what resending did before): one document again
        store_under_id(data, nfc, nfd)
        store.add_documents([Document(id="twin", title="Café", text="Le café ferme à Brest.")])
        store_under_id(data, "twin", nfc)
        assert store.refresh() and store.counts()["documents"] == 4
        merged = store.add_documents([Document(id=nfc, title="Café", text="Le café ouvre à Brest.")])
        assert (merged.documents_added, merged.documents_updated) == (0, 1)
        assert {d.id for d in store.list_documents()[0]} == {nfc, "doc-000", "doc-001"} and store.counts()["chunks"] == 3
        assert [h.document_id for h in store.search("café Brest", top_k=5)][:1] == [nfc]
        store.check_consistency()
    with IndexStore.open(data, embedder) as store:
        store.check_consistency()


@pytest.mark.parametrize("url", ["javascript:alert(document.cookie)", " VBScript:MsgBox(1)", "data:text/html,<script>alert(1)</script>"])
def test_script_urls_stored_by_an_older_version_are_removed_once_and_never_served(tmp_path, embedder, caplog, monkeypatch, url):
    """Older versions took URLs whose scheme runs code in a browser, and their indexes kept giving them
    out in citations and listings. Opening the index to write removes them once (one transaction, one
    warning naming the document and the URL; the document is kept); reads that may not write (the
    catalog of `qa docs`, open beside it) withhold them, and so does the store for one an older
    version writes meanwhile."""
    import logging

    from index.store import DocumentCatalog
    from index.writes import doc_hash

    data = tmp_path / "u"
    with IndexStore.open(data, embedder) as store:
        store.add_documents(synth_docs(3))
    store_url_as_an_older_version(data, "doc-001", url)
    catalog = DocumentCatalog(data)  # `qa docs list` and `qa docs show`: read only, open throughout
    try:
        with caplog.at_level(logging.WARNING, logger="index.store"):
            for _ in range(2):
                assert catalog.get_document("doc-001").url is None
                assert {d.id: d.url for d in catalog.list_documents()[0]}["doc-001"] is None
        withheld = [r.getMessage() for r in caplog.records]
        assert len(withheld) == 1 and "'doc-001': its stored URL, which an earlier version took, is not given out: it " in withheld[0], withheld
        assert stored_url(data, "doc-001") == url, "a read-only open must not write"
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="index.store"), IndexStore.open(data, embedder) as store:
            assert stored_url(data, "doc-001") is None
            for _ in range(2):
                assert store.get_document("doc-001").url is None and store.get_document("doc-001").text.startswith("La bourse")
                urls = {d.id: d.url for d in store.list_documents()[0]}
                assert urls == {"doc-000": "https://www.site0.fr/0", "doc-001": None, "doc-002": "https://www.site2.fr/2"}
                hits = store.search("la bourse de Paris", top_k=3, filters=Filters(document_ids=["doc-001"]))
                assert [(h.document_id, h.url) for h in hits] == [("doc-001", None)]
            assert store.counts()["documents"] == 3
            # its content hash is that of what it holds now: sent again without the URL, it is unchanged
            again = next(d for d in synth_docs(3) if d.id == "doc-001")
            again.url = None
            assert store.add_documents([again]).documents_unchanged == 1
            stored = store.get_document("doc-001")
            assert doc_hash(stored) == doc_hash(again)
            store.check_consistency()
        removed = [r.getMessage() for r in caplog.records]
        assert len(removed) == 1 and removed[0].startswith(f"document 'doc-001': removed the URL {url!r} that an earlier version stored (the document is kept): it ")
        assert "scheme, which runs code in a browser" in removed[0], removed
        # the catalog opened before the removal reads on, and now reads no URL
        assert catalog.get_document("doc-001").url is None and catalog.get_document("doc-000").url == "https://www.site0.fr/0"
    finally:
        catalog.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="index.store"), IndexStore.open(data, embedder) as store:
        assert caplog.records == [], "removed once: nothing more to say"
        # an older version writing such a URL meanwhile: withheld, said once
        store_url_as_an_older_version(data, "doc-002", url, older_index=False)
        for _ in range(2):
            assert store.get_document("doc-002").url is None
        assert [r.getMessage().startswith("document 'doc-002': its stored URL, which an earlier version took, is not given out") for r in caplog.records] == [True]
    # the URLs are checked once per rule (a second for 100,000 documents): this one waits for the next rule
    with IndexStore.open(data, embedder) as store:
        assert stored_url(data, "doc-002") == url and store.get_document("doc-002").url is None
    monkeypatch.setattr("index.writes.URL_RULE_VERSION", "2")  # a release that refuses more URLs
    with IndexStore.open(data, embedder) as store:
        assert stored_url(data, "doc-002") is None


def test_a_url_removed_on_open_leaves_the_document_whole_if_its_metadata_is_not_json(tmp_path, embedder):
    """The content hash is recomputed from the row; a row whose metadata cannot be read keeps its hash
    (it is then written again the next time it is sent) rather than failing every open."""
    import sqlite3
    from contextlib import closing

    data = tmp_path / "m"
    with IndexStore.open(data, embedder) as store:
        store.add_documents(synth_docs(2))
    with closing(sqlite3.connect(data / "index.sqlite3")) as conn, conn:
        conn.execute("UPDATE documents SET url = 'javascript:x', metadata = '{not json' WHERE id = 'doc-001'")
        conn.execute("DELETE FROM meta WHERE key = 'url_rule'")  # as an older version left the index
        before = conn.execute("SELECT content_hash FROM documents WHERE id = 'doc-001'").fetchone()[0]
    with IndexStore.open(data, embedder) as store:
        assert store.counts()["documents"] == 2
    with closing(sqlite3.connect(data / "index.sqlite3")) as conn:
        assert conn.execute("SELECT url, content_hash FROM documents WHERE id = 'doc-001'").fetchone() == (None, before)


def _found(lister, text: str, offset: int = 0, limit: int = 50) -> tuple[list[str], int]:
    items, total = lister(offset, limit, text)
    return [d.id for d in items], total


def test_the_documents_search_keys_are_stored_with_each_write(tmp_path, embedder, monkeypatch):
    """The keys of titles and ids that the documents search reads (GET /documents?q=, `qa docs list
    --search`) are written with the documents, follow a new title, go with a deletion; a search then
    calls match_key on the text searched only, not on every title and id (a second per 100,000
    documents, on every key typed in the page's document field)."""
    import index.catalog

    data = tmp_path / "k"
    with IndexStore.open(data, embedder) as store:
        store.add_documents([Document(id="q-ete", title="L’Été  des séries", text="Un été de séries."),
                             Document(id="Note_12", title=None, text="Une note.")])
        assert stored_match_keys(data) == {"q-ete": ("l ete des series", "q ete"), "Note_12": ("", "note 12")}
        # indexed again with a new title: its keys follow
        store.add_documents([Document(id="q-ete", title="Une Œuvre", text="Un été de séries.")])
        assert stored_match_keys(data) == {"q-ete": ("une oeuvre", "q ete"), "Note_12": ("", "note 12")}
        assert _found(store.list_documents, "oeuvre") == (["q-ete"], 1) and _found(store.list_documents, "series") == ([], 0)
        real, keyed = index.catalog.match_key, []
        monkeypatch.setattr("index.catalog.match_key", lambda text: keyed.append(text) or real(text))
        assert _found(store.list_documents, "NOTE-12") == (["Note_12"], 1) and _found(store.list_documents, "e") == (["Note_12", "q-ete"], 2)
        assert keyed == ["NOTE-12", "e"], "one key per search, none per document"
        monkeypatch.undo()
        store.check_consistency()  # which compares the stored keys with the documents
        assert store.delete_document("q-ete") == "q-ete"
        assert stored_match_keys(data) == {"Note_12": ("", "note 12")}
        assert _found(store.list_documents, "oeuvre") == ([], 0)
        store.check_consistency()
        import sqlite3
        from contextlib import closing

        with closing(sqlite3.connect(data / "index.sqlite3")) as conn, conn:
            conn.execute("UPDATE document_keys SET title_key = 'stale'")
        with pytest.raises(RuntimeError, match=r"stored match keys disagree with the documents for 1 documents \(first: \['Note_12'\]\)"):
            store.check_consistency()


# documents of tests/test_api.py's ?q= test, and what each text finds (ids by id, total)
SEARCHED = [Document(id="q-ete", title="L’Été  des séries FRANÇAISES", text="Un été de séries."),
            Document(id="q-oeuvre", title="Une œuvre", text="Une œuvre nouvelle."),
            Document(id="Q-ÉTÉ-2", title="Sans rapport", text="Autre chose."),
            Document(id="004_c0583748", title='Le géant du "streaming"', text="Une plateforme.")]
FOUND = {("l'ete des series francaises", 0, 50): (["q-ete"], 1), ("ÉTÉ", 0, 50): (["Q-ÉTÉ-2", "q-ete"], 2),
         ("ŒUVRE", 0, 50): (["q-oeuvre"], 1), ("ete", 1, 50): (["q-ete"], 2), ("ete", 0, 1): (["Q-ÉTÉ-2"], 2),
         ("ete", 5, 50): ([], 2), ("e", 1, 2): (["Q-ÉTÉ-2", "q-ete"], 4), ("no such title", 0, 50): ([], 0),
         ("geant du streaming", 0, 50): (["004_c0583748"], 1), ("004 C05", 0, 50): (["004_c0583748"], 1),
         ("« — »", 0, 2): (["004_c0583748", "Q-ÉTÉ-2"], 4)}


def _all_found(lister) -> dict:
    return {(text, offset, limit): _found(lister, text, offset, limit) for text, offset, limit in FOUND}


def test_an_index_without_stored_keys_is_searched_read_only_then_given_them_on_open_for_writing(tmp_path, embedder, caplog):
    """An index from a release that stored no keys for the documents search: `qa docs list --search`
    (read only: it must not write) reads every title and id as that release did, with the same
    pages; the first open for writing stores the keys, once, and the search reads them then."""
    import logging
    import sqlite3
    from contextlib import closing

    from index.catalog import match_key
    from index.store import DocumentCatalog

    data = tmp_path / "old"
    with IndexStore.open(data, embedder) as store:
        store.add_documents(SEARCHED)
        assert _all_found(store.list_documents) == FOUND
    drop_match_keys(data)
    catalog = DocumentCatalog(data)
    try:
        assert _all_found(catalog.list_documents) == FOUND

        def tables() -> set[str]:
            with closing(sqlite3.connect(data / "index.sqlite3")) as conn:
                return {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}

        assert "document_keys" not in tables() and match_keys_state(data) == {}, "read only: nothing written"
        with caplog.at_level(logging.INFO, logger="index.store"), IndexStore.open(data, embedder) as store:
            assert stored_match_keys(data) == {d.id: (match_key(d.title), match_key(d.id)) for d in SEARCHED}
            assert match_keys_state(data) == {"match_key_rule": MATCH_KEY_VERSION}
            assert _all_found(store.list_documents) == FOUND
            store.check_consistency()
        assert [r.getMessage() for r in caplog.records if "match keys" in r.getMessage()] == [
            "stored the match keys of 4 documents for the documents search (GET /documents?q=, qa docs list --search)"]
        # the catalog opened before reads the stored keys now, with the same pages
        assert _all_found(catalog.list_documents) == FOUND
    finally:
        catalog.close()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="index.store"), IndexStore.open(data, embedder):
        assert not [r for r in caplog.records if "match keys" in r.getMessage()], "stored once"


def test_documents_an_older_release_writes_are_found_and_keyed_by_the_next_write(tmp_path, embedder):
    """A release that stores no keys may still write into the index (it keeps schema version 1): the
    keys of a document it re-titles go, one it deletes takes them along, one it adds has none, and
    the search reads every title again until this release's next write (or open for writing) fills
    in the missing keys."""
    from index.catalog import match_key
    from index.store import DocumentCatalog

    data = tmp_path / "mixed"
    with IndexStore.open(data, embedder) as store:
        store.add_documents(SEARCHED)
        write_as_an_older_version(data, "q-oeuvre", "Les séries de l’été")
        write_as_an_older_version(data, "older-1", "Des séries anciennes", text="Écrit par une version antérieure.")
        catalog = DocumentCatalog(data)
        try:
            for lister in (store.list_documents, catalog.list_documents):
                assert _found(lister, "series") == (["older-1", "q-ete", "q-oeuvre"], 3)
                assert _found(lister, "oeuvre") == (["q-oeuvre"], 1)  # its id still holds it; its title no more
                assert _found(lister, "une oeuvre") == ([], 0)
            assert match_keys_state(data) == {"match_key_rule": MATCH_KEY_VERSION, "match_keys_missing": "1"}
            store.add_documents([Document(id="new-1", title="Nouveauté", text="Écrit par cette version.")])
            docs = {"q-ete": SEARCHED[0].title, "q-oeuvre": "Les séries de l’été", "Q-ÉTÉ-2": "Sans rapport",
                    "004_c0583748": SEARCHED[3].title, "older-1": "Des séries anciennes", "new-1": "Nouveauté"}
            assert stored_match_keys(data) == {i: (match_key(t), match_key(i)) for i, t in docs.items()}
            assert match_keys_state(data) == {"match_key_rule": MATCH_KEY_VERSION}
            for lister in (store.list_documents, catalog.list_documents):
                assert _found(lister, "series") == (["older-1", "q-ete", "q-oeuvre"], 3) and _found(lister, "une oeuvre") == ([], 0)
            store.check_consistency()
            # an older release's deletion takes the keys along: nothing missing then
            import sqlite3
            from contextlib import closing

            with closing(sqlite3.connect(data / "index.sqlite3")) as conn, conn:
                conn.execute("DELETE FROM documents WHERE id = 'older-1'")
            assert "older-1" not in stored_match_keys(data) and match_keys_state(data) == {"match_key_rule": MATCH_KEY_VERSION}
            assert _found(catalog.list_documents, "series") == (["q-ete", "q-oeuvre"], 2)
        finally:
            catalog.close()


def test_stored_keys_of_another_rule_are_not_read_and_are_computed_again(tmp_path, embedder, monkeypatch):
    """A release that reads titles otherwise (MATCH_KEY_VERSION raised) does not search keys stored
    under the earlier rule (nor under a later one): it reads every title until its first open for
    writing computes them all again."""
    import sqlite3
    from contextlib import closing

    from index.store import DocumentCatalog

    data = tmp_path / "rule"
    with IndexStore.open(data, embedder) as store:
        store.add_documents(SEARCHED)
    with closing(sqlite3.connect(data / "index.sqlite3")) as conn, conn:
        conn.execute("UPDATE document_keys SET title_key = 'as the earlier rule read it'")
    for module in ("index.catalog", "index.writes"):
        monkeypatch.setattr(f"{module}.MATCH_KEY_VERSION", "2")
    catalog = DocumentCatalog(data)
    try:
        assert _all_found(catalog.list_documents) == FOUND and _found(catalog.list_documents, "earlier rule") == ([], 0)
        with IndexStore.open(data, embedder) as store:
            assert match_keys_state(data) == {"match_key_rule": "2"}
            assert "as the earlier rule read it" not in {k for k, _ in stored_match_keys(data).values()}
            assert _all_found(store.list_documents) == FOUND
            store.check_consistency()
    finally:
        catalog.close()


def test_stored_keys_follow_the_unicode_tables_they_were_made_with(tmp_path, embedder, monkeypatch):
    """match_key reads characters through the running Python's Unicode tables; keys stored under
    another Unicode version (an upgraded interpreter) are not read, and are computed again."""
    import sqlite3
    import unicodedata
    from contextlib import closing

    from index.catalog import match_keys_searchable

    data = tmp_path / "unicode"
    with IndexStore.open(data, embedder) as store:
        store.add_documents(SEARCHED)
    assert unicodedata.unidata_version in MATCH_KEY_VERSION and match_keys_state(data) == {"match_key_rule": MATCH_KEY_VERSION}
    with closing(sqlite3.connect(data / "index.sqlite3")) as conn, conn:  # as a Python with older tables stored them
        conn.execute("UPDATE meta SET value = '1 (Unicode 3.2.0)' WHERE key = 'match_key_rule'")
    with closing(sqlite3.connect(data / "index.sqlite3")) as conn:
        assert not match_keys_searchable(conn)
    with IndexStore.open(data, embedder) as store:
        assert match_keys_state(data) == {"match_key_rule": MATCH_KEY_VERSION} and _all_found(store.list_documents) == FOUND


def test_hnsw_search_depth_comes_from_the_settings(tmp_path, embedder):
    from pydantic import ValidationError

    from qa.settings import Settings

    opts = Settings(hnsw_ef_search=64, dense_index="hnsw").store_options()
    assert opts["ef_search"] == 64 and opts["dense_index"] == "hnsw"
    with pytest.raises(ValidationError, match="hnsw_ef_search"):
        Settings(hnsw_ef_search=0)
    with pytest.raises(ValueError, match="ef_search"):
        IndexStore.open(tmp_path / "bad", embedder, dense_index="hnsw", ef_search=0)
    store = IndexStore.open(tmp_path / "h", embedder, **opts)
    assert store.ef_search == 64
    store.add_documents(synth_docs(12))
    assert store.search("grève contre la réforme des retraites", top_k=3, mode="dense")[0].document_id == "doc-010"
    store.close()


def test_interrupted_batched_ingest_keeps_the_batches_written_and_resumes(tmp_path, embedder):
    docs = synth_docs(7)
    data = tmp_path / "b"
    interrupted = InterruptedEmbedder(embedder, stop_at=3)  # the third batch of three is cut short
    store = IndexStore.open(data, interrupted)
    done = []
    with pytest.raises(KeyboardInterrupt):
        for n, rep in add_in_batches(store, docs, 3):
            done.append((n, rep.documents_added))
    assert done == [(3, 3), (6, 3)]
    store.close()
    # what was written survives, consistent; the interrupted batch left nothing behind
    store = IndexStore.open(data, CountingEmbedder(embedder))
    store.check_consistency()
    assert store.counts()["documents"] == 6
    total = AddReport()
    for _, rep in add_in_batches(store, docs, 3):
        total.merge(rep)
    assert (total.documents_unchanged, total.documents_added) == (6, 1)
    assert store.embedder.passages == 1  # only the missing document was embedded
    assert store.counts()["documents"] == 7
    with pytest.raises(ValueError, match="batch_docs"):
        list(add_in_batches(store, docs, 0))
    store.close()


def test_model_change_refused_then_rebuilt(tmp_path, embedder):
    data = tmp_path / "m"
    store = IndexStore.open(data, embedder)
    store.add_documents(synth_docs(3))
    store.close()
    other = OtherEmbedder(embedder)
    with pytest.raises(ReindexNeeded) as info:
        IndexStore.open(data, other)
    msg = str(info.value)
    assert str(data) in msg and embedder.identity in msg and other.identity in msg and "qa index --rebuild" in msg and "QA_DATA_DIR" in msg
    # the refused open changed nothing
    store = IndexStore.open(data, embedder)
    store.check_consistency()
    store.close()
    # an explicit rebuild re-embeds the stored documents with the new model
    rebuilt = IndexStore.open(data, other, rebuild=True)
    assert rebuilt.counts() == {"documents": 3, "chunks": 3}
    rebuilt.check_consistency()
    assert len(rebuilt.search("vendanges", top_k=2)) == 2
    rebuilt.close()
    with pytest.raises(ReindexNeeded):
        IndexStore.open(data, embedder)


def test_concurrent_searches_during_writes(tmp_path, embedder):
    store = IndexStore.open(tmp_path / "c", embedder)
    store.add_documents(synth_docs(6))
    errors: list[BaseException] = []
    stop = threading.Event()
    done = [0]

    def reader(mode):
        try:
            while not stop.is_set():
                hits = store.search("taux des crédits immobiliers", top_k=3, mode=mode)
                assert hits and all(h.text for h in hits)
                done[0] += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(m,)) for m in ("hybrid", "dense", "bm25", "hybrid")]
    for t in threads:
        t.start()
    try:
        for i in range(3):
            store.add_documents(synth_docs(4, prefix=f"w{i}"))
            store.delete_document(f"w{i}-001")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors[0]
    assert done[0] > 0
    store.check_consistency()
    assert store.counts() == {"documents": 15, "chunks": 15}
    store.close()


def test_threads_that_end_leave_no_open_database_files(tmp_path, embedder):
    """A server's thread pool retires idle threads and starts new ones; each reading thread has its
    own SQLite connection, which used to stay open (two files each) until the store closed."""
    store = IndexStore.open(tmp_path / "s", embedder)
    store.add_documents(synth_docs(3))

    def open_files() -> int:
        return sum(1 for fd in Path("/proc/self/fd").iterdir() if "index.sqlite3" in str(fd.resolve()))

    before = open_files()
    for _ in range(30):  # one thread after another, as a pool renewing its workers
        t = threading.Thread(target=lambda: store.search("Tour de France", top_k=1, mode="bm25"))
        t.start()
        t.join()
    assert open_files() - before <= 3  # the last thread's connection (database, WAL and shared-memory files), at most
    store.close()


def test_second_handle_sees_writes(tmp_path, embedder):
    """Two handles on one folder (as the API server and `qa index` in two processes): writes are
    serialised by the file lock and a reader picks up the other's writes."""
    a = IndexStore.open(tmp_path / "s", embedder)
    b = IndexStore.open(tmp_path / "s", embedder)
    a.add_documents(synth_docs(2))
    assert b.refresh() is True and b.counts()["documents"] == 2
    assert b.search("Tour de France cycliste", top_k=1, mode="bm25")[0].document_id == "doc-000"
    b.add_documents(synth_docs(3, prefix="b"))  # b starts from a's state, not its own stale one
    a.refresh()
    a.check_consistency()
    b.check_consistency()
    assert a.counts() == b.counts() == {"documents": 5, "chunks": 5}
    a.close()
    b.close()


def test_an_update_is_searchable_as_soon_as_it_commits(tmp_path, embedder, monkeypatch):
    """The new indexes are built before the commit and swapped in with it: while the index files
    are being written, a search already finds the updated text (never the old chunk ids, whose rows
    are gone from SQLite)."""
    import index.store as store_mod

    store = IndexStore.open(tmp_path / "u", embedder)
    store.add_documents(synth_docs(3))
    seen: list[list[str]] = []
    real_save = store_mod.dense_mod.save

    def save_and_search(index, path):  # runs after the commit, before the files exist
        seen.append([[h.document_id for h in store.search("Autorité des marchés financiers séance", top_k=1, mode=mode)] for mode in ("bm25", "dense")])
        return real_save(index, path)

    monkeypatch.setattr(store_mod.dense_mod, "save", save_and_search)
    d = synth_docs(3)[1]
    store.add_documents([Document(id=d.id, title=d.title, text=d.text + " Le président de l'Autorité des marchés financiers commente la séance.", url=d.url, published=d.published)])
    assert seen == [[["doc-001"], ["doc-001"]]]
    store.close()


def test_index_files_that_fail_to_be_written_are_rebuilt(tmp_path, embedder, monkeypatch, caplog):
    """A write whose index files cannot be written (disk full) has committed: it is reported as
    done (a caller told otherwise would send it again) with the problem logged; this process
    serves it, another handle rebuilds the files on refresh (nobody holds the write lock), and so
    does a fresh open."""
    import logging

    import index.store as store_mod

    a = IndexStore.open(tmp_path / "f", embedder)
    b = IndexStore.open(tmp_path / "f", embedder)
    a.add_documents(synth_docs(2))
    assert b.refresh() is True

    def disk_full(index, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_mod.dense_mod, "save", disk_full)
    with caplog.at_level(logging.ERROR, logger="index.store"):
        assert a.add_documents(synth_docs(3, prefix="new")).documents_added == 3
    assert "the write is saved" in caplog.text and "No space left on device" in caplog.text
    monkeypatch.undo()
    assert a.counts()["documents"] == 5
    assert a.search("vendanges en Bourgogne", top_k=1, mode="bm25")[0].document_id == "new-002"
    assert b.refresh() is True and b.search("vendanges en Bourgogne", top_k=1, mode="dense")[0].document_id == "new-002"
    b.check_consistency()
    a.close()
    b.close()
    c = IndexStore.open(tmp_path / "f", embedder)
    c.check_consistency()
    assert c.counts() == {"documents": 5, "chunks": 5}
    c.close()


def _rebuilt_files(data: Path, embedder, caplog) -> list[tuple[str, str]]:
    """Open the index at ``data`` (it must then be consistent): the rebuild lines logged, (level, message)."""
    import logging

    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="index.store"):
        store = IndexStore.open(data, embedder)
    store.check_consistency()
    store.close()
    return [(r.levelname, r.getMessage()) for r in caplog.records if "rebuil" in r.getMessage()]


def test_rebuilt_index_files_are_said_to_be_missing_stale_or_damaged(tmp_path, embedder, caplog):
    """An index file rebuilt from SQLite was said as "rebuilding the dense index of generation 2
    from stored vectors", whatever befell it (a damaged file was also warned of twice, and a BM25
    folder that does not fit the database not at all). Each rebuild now says which file and why:
    missing (a backup restored without them), stale (only an earlier generation's: a write stopped
    after its commit), damaged (unreadable, or not this database's): a warning for the last alone."""
    base = tmp_path / "base"
    store = IndexStore.open(base, embedder)
    store.add_documents(synth_docs(2))
    shutil.copy2(base / "dense-flat-1.faiss", tmp_path / "dense-flat-1.faiss")
    shutil.copytree(base / "bm25-1", tmp_path / "bm25-1")
    store.add_documents(synth_docs(3, prefix="new"))
    store.close()
    dense, bm25 = "the dense index of generation 2 from stored vectors", "the BM25 index of generation 2 from stored terms"

    def case(name: str) -> Path:
        data = tmp_path / name
        shutil.copytree(base, data)
        return data

    data = case("missing")
    (data / "dense-flat-2.faiss").unlink()
    shutil.rmtree(data / "bm25-2")
    assert _rebuilt_files(data, embedder, caplog) == [
        ("INFO", f"rebuilding {dense}: {data / 'dense-flat-2.faiss'} is missing"),
        ("INFO", f"rebuilding {bm25}: {data / 'bm25-2'} is missing"),
    ]
    data = case("stale")  # as a write killed between its commit and its files leaves the folder
    (data / "dense-flat-2.faiss").unlink()
    shutil.rmtree(data / "bm25-2")
    shutil.copy2(tmp_path / "dense-flat-1.faiss", data)
    shutil.copytree(tmp_path / "bm25-1", data / "bm25-1")
    stopped = "is stale (a write stopped after its commit, before writing its index files)"
    assert _rebuilt_files(data, embedder, caplog) == [
        ("INFO", f"rebuilding {dense}: {data / 'dense-flat-2.faiss'} is missing, and the one of generation 1 {stopped}"),
        ("INFO", f"rebuilding {bm25}: {data / 'bm25-2'} is missing, and the one of generation 1 {stopped}"),
    ]
    assert not (data / "dense-flat-1.faiss").exists() and not (data / "bm25-1").exists()
    data = case("unreadable")
    with open(data / "dense-flat-2.faiss", "r+b") as f:
        f.truncate(1000)
    (data / "bm25-2" / "ids.npy").write_bytes(b"garbage")
    lines = _rebuilt_files(data, embedder, caplog)
    assert [level for level, _ in lines] == ["WARNING", "WARNING"], lines
    assert lines[0][1].startswith(f"rebuilding {dense}: {data / 'dense-flat-2.faiss'} is damaged (") and "read error" in lines[0][1], lines
    assert lines[1][1].startswith(f"rebuilding {bm25}: {data / 'bm25-2'} is damaged ("), lines
    assert all("\n" not in message for _, message in lines)
    data = case("other")  # files of another state of the index under this generation's names
    shutil.copy2(tmp_path / "dense-flat-1.faiss", data / "dense-flat-2.faiss")
    shutil.rmtree(data / "bm25-2")
    shutil.copytree(tmp_path / "bm25-1", data / "bm25-2")
    assert _rebuilt_files(data, embedder, caplog) == [
        ("WARNING", f"rebuilding {dense}: {data / 'dense-flat-2.faiss'} is damaged, or not this database's: 2 vectors of dimension 384 for 5 chunks of dimension 384"),
        ("WARNING", f"rebuilding {bm25}: {data / 'bm25-2'} is damaged, or not this database's: 2 rows for 5 chunks"),
    ]
    assert _rebuilt_files(base, embedder, caplog) == []  # sound files are loaded, as before


def test_a_full_disk_as_faiss_reports_it_never_fails_reads_or_a_committed_write(tmp_path, embedder, monkeypatch, caplog):
    """faiss says "disk full" with a RuntimeError, not an OSError: a committed write is still
    answered as done, other handles and fresh opens serve the index from memory while the files
    cannot be written (they used to fail every search, and every open), and no partial file is
    left to hold the room that is missing."""
    import logging

    import index.dense as dense_mod

    folder = tmp_path / "f"
    a = IndexStore.open(folder, embedder)
    b = IndexStore.open(folder, embedder)
    a.add_documents(synth_docs(2))
    real_write = dense_mod.faiss.write_index

    def full(index, path):
        Path(path).write_bytes(b"partial")  # as a write cut short by the full disk
        raise RuntimeError(f"Error in faiss::FileIOWriter::FileIOWriter(const char*) at impl/io.cpp:98: Error: 'f' failed: could not open {path} for writing: No space left on device")

    monkeypatch.setattr(dense_mod.faiss, "write_index", full)
    with caplog.at_level(logging.WARNING, logger="index.store"):
        assert a.add_documents(synth_docs(3, prefix="new")).documents_added == 3
        assert "the write is saved" in caplog.text and "No space left on device" in caplog.text
        b._last_refresh = 0.0  # due for a refresh: the files of the new generation are missing
        assert b.search("vendanges en Bourgogne", top_k=1, mode="dense")[0].document_id == "new-002"
        c = IndexStore.open(folder, embedder)  # used to raise
        assert c.search("vendanges en Bourgogne", top_k=1, mode="bm25")[0].document_id == "new-002"
        assert "the index is served from memory" in caplog.text
    assert not [p.name for p in folder.iterdir() if ".tmp-" in p.name]
    for store in (a, b, c):
        store.close()
    monkeypatch.setattr(dense_mod.faiss, "write_index", real_write)
    d = IndexStore.open(folder, embedder)  # room again: the files are written
    d.check_consistency()
    assert d.counts()["documents"] == 5 and any(p.name.endswith(".faiss") for p in folder.iterdir())
    d.close()


def test_a_full_database_is_reported_as_such_and_changes_nothing(tmp_path, embedder):
    """SQLite rolls back by itself on SQLITE_FULL: the error that reaches the caller is "database
    or disk is full" (a second ROLLBACK used to replace it with "no transaction is active")."""
    import sqlite3

    from index.store import storage_problem

    store = IndexStore.open(tmp_path / "f", embedder)
    store.add_documents(synth_docs(2))
    pages = store._wconn.execute("PRAGMA page_count").fetchone()[0]
    store._wconn.execute(f"PRAGMA max_page_count = {pages}")  # the database cannot grow: as a full disk
    big = [Document(id=f"big-{i}", title="Gros", text=("Un long texte sur les vendanges en Bourgogne. " * 400) + str(i)) for i in range(5)]
    with pytest.raises(sqlite3.OperationalError, match="database or disk is full") as caught:
        store.add_documents(big)
    assert storage_problem(caught.value) == "full"
    assert store.counts()["documents"] == 2
    store.check_consistency()
    store.close()


# ------------------------------------------------------------------------------------ crash safety

POINTS = {  # crash point inside a write -> is that write visible afterwards?
    "embedded": False,
    "before_commit": False,
    "committed": True,
    "dense_written": True,
    "keyword_written": True,
}
DELAYS = (0.5, 1.5, 3.0)  # timed kills, seconds after the looping writer started


def test_sigkill_at_any_moment_leaves_a_consistent_store(tmp_path, embedder):
    """Real processes killed with SIGKILL: at each crash point of a write, and at arbitrary moments
    of a loop of adds/updates/deletes. Every store then opens, is consistent and searchable."""
    scenarios = {f"hook:{p}": tmp_path / f"hook-{p}" for p in POINTS} | {f"timed:{d}": tmp_path / f"timed-{d}" for d in DELAYS}
    base = tmp_path / "base"
    store = IndexStore.open(base, embedder)
    store.add_documents(synth_docs(5, prefix="base"))
    store.close()
    for data in scenarios.values():
        shutil.copytree(base, data)
    env = dict(os.environ, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "crash_writer.py"), *(f"{k}={v}" for k, v in scenarios.items())],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcome = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines() if line.split()[0] in scenarios}
    assert sorted(outcome) == sorted(scenarios), proc.stdout
    for name, data in scenarios.items():
        status, writes = outcome[name]
        assert status == "SIGKILL", (name, status, proc.stderr[-3000:])
        store = IndexStore.open(data, embedder)
        store.check_consistency()
        counts = store.counts()
        if name.startswith("hook:"):
            expect = 9 if POINTS[name[5:]] else 5
            assert counts == {"documents": expect, "chunks": expect}, name
        else:
            assert counts["documents"] >= 5 + 3 * int(writes) - int(writes) // 3 - 1 and counts["documents"] == counts["chunks"], (name, counts, writes)
        assert store.search("vendanges en Bourgogne", top_k=1)[0].document_id.endswith("002")
        store.add_documents(synth_docs(1, prefix="after"))  # and it takes writes again
        store.check_consistency()
        store.close()


def test_long_writes_log_their_progress_without_a_bar(tmp_path, embedder, monkeypatch, caplog):
    """Without a terminal (a log file, CI) a long embedding says now and then how far it is."""
    import logging

    import index.store as store_module

    monkeypatch.setattr(store_module, "PROGRESS_LOG_S", 0.0)
    docs = synth_docs(40)
    with IndexStore.open(tmp_path / "p", embedder, chunk_tokens=16, overlap_tokens=0) as store, caplog.at_level(logging.INFO, logger="index.store"):
        n = store.add_documents(docs, progress=False).chunks_embedded
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("embedding: ")]
    assert n > 2 * store_module.EMBED_BATCH and lines
    assert lines[0] == f"embedding: {store_module.EMBED_BATCH} / {n} chunks"
    assert all(not line.startswith(f"embedding: {n} /") for line in lines)  # the end is reported by the caller


def test_a_model_change_by_another_process_stops_this_one(tmp_path, embedder):
    """Another handle re-embeds the index with another model: this one neither writes its own
    vectors into it nor searches the new ones with its queries."""
    data = tmp_path / "swap"
    with IndexStore.open(data, embedder) as mine:
        mine.add_documents(synth_docs(3))
        with IndexStore.open(data, OtherEmbedder(embedder), rebuild=True):
            pass
        with pytest.raises(ReindexNeeded, match="was built with other-model:8"):
            mine.add_documents(synth_docs(4, prefix="late"))
        with pytest.raises(ReindexNeeded):
            mine.delete_document("doc-000")
        with pytest.raises(ReindexNeeded):
            mine.refresh()
    with IndexStore.open(data, OtherEmbedder(embedder)) as other:  # nothing was written by the old model
        assert other.counts() == {"documents": 3, "chunks": 3}
        other.check_consistency()


def test_the_index_keeps_its_chunk_size_and_dense_type_until_rebuilt(tmp_path, embedder, caplog):
    import logging

    data = tmp_path / "layout"
    long_text = "Le conseil municipal a voté le budget. " * 60
    doc = lambda i: Document(id=f"long-{i}", title="Budget", text=long_text)  # noqa: E731
    with IndexStore.open(data, embedder, chunk_tokens=200, overlap_tokens=40) as store:
        store.add_documents([doc(0)])
        first = [c.end - c.start for c in store.get_chunks("long-0")]
    with caplog.at_level(logging.WARNING, logger="index.store"):
        store = IndexStore.open(data, embedder, chunk_tokens=40, overlap_tokens=10, dense_index="hnsw")
    with store:
        assert "keeps its own layout (chunks of 200 tokens, overlap 40, flat dense index)" in caplog.text
        assert "qa index --rebuild" in caplog.text
        store.add_documents([doc(1)])  # chunked as the rest of the index
        assert [c.end - c.start for c in store.get_chunks("long-1")] == first
        assert sorted(p.name for p in data.glob("dense-*")) == [f"dense-flat-{store._snap.generation}.faiss"]
        store.check_consistency()
    with IndexStore.open(data, embedder, chunk_tokens=40, overlap_tokens=10, dense_index="hnsw", rebuild=True) as rebuilt:
        assert len(rebuilt.get_chunks("long-0")) > len(first)  # re-chunked with the configured size
        assert [p.name for p in data.glob("dense-*")] == [f"dense-hnsw-{rebuilt._snap.generation}.faiss"]
        rebuilt.check_consistency()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="index.store"), IndexStore.open(data, embedder, chunk_tokens=40, overlap_tokens=10, dense_index="hnsw"):
        assert "layout" not in caplog.text  # that is now the index's own


def test_a_long_title_never_pushes_a_chunk_past_the_model_limit(tmp_path, embedder):
    title = "2017-10-27 · 3,5 M€ · n° 4521/XJ-88 · Ω≈∑ " * 4  # many tokens per character
    text = "Le conseil municipal a voté le budget annuel de la ville après un long débat. " * 80
    with IndexStore.open(tmp_path / "t", embedder, chunk_tokens=1_000) as store:
        store.add_documents([Document(id="t", title=title, text=text)])
        limit = embedder.max_tokens - embedder.passage_prompt_tokens - 2
        from index.store import passage_text

        sizes = [embedder.count_tokens(passage_text(title, c.text)) for c in store.get_chunks("t")]
        assert max(sizes) <= limit, (max(sizes), limit)


def test_consistency_check_reads_texts_with_nul_characters(tmp_path, embedder):
    text = "Avant\x00après : le conseil municipal a voté le budget de la ville."
    with IndexStore.open(tmp_path / "nul", embedder) as store:
        store.add_documents([Document(id="nul", title="NUL", text=text)])
        assert store.get_document("nul").text == text
        store.check_consistency()  # SQLite's substr stops at the NUL: was reported as an offset error


class BlockingEmbedder(CountingEmbedder):
    """The real embedder, holding its first passage batch until ``release`` is set."""

    def __init__(self, inner):
        super().__init__(inner)
        self.embedding, self.release = threading.Event(), threading.Event()

    def encode_passages(self, texts, progress=False):
        self.embedding.set()
        assert self.release.wait(120)
        return super().encode_passages(texts, progress)


def test_a_long_embedding_does_not_hold_up_other_writers(tmp_path, embedder):
    """`qa index` embedding a batch must not block the server's DELETE or POST (another handle,
    as another process would be: the file lock is per handle) until it is done."""
    data = tmp_path / "locks"
    with IndexStore.open(data, embedder) as server:
        server.add_documents(synth_docs(3))
        slow = BlockingEmbedder(embedder)
        with IndexStore.open(data, slow) as indexer:
            writer = threading.Thread(target=indexer.add_documents, args=(synth_docs(6, prefix="new"),))
            writer.start()
            assert slow.embedding.wait(60)
            done = threading.Event()

            def other_writes():
                server.delete_document("doc-001")
                server.add_documents([Document(id="late", title="Tard", text="Un document écrit pendant l'indexation.")])
                done.set()

            threading.Thread(target=other_writes, daemon=True).start()
            finished = done.wait(60)
            slow.release.set()  # in any case, so the test ends
            writer.join(120)
            assert finished, "the other handle's writes waited for the embedding"
            # new-000..002 repeat doc-000..002 (vectors reused, even doc-001's, deleted meanwhile): the
            # other three are embedded once, before the lock, and not again after it
            assert slow.passages == 3
            indexer.check_consistency()
        server.refresh()
        ids = {d.id for d in server.list_documents(limit=100)[0]}
        assert ids == {"doc-000", "doc-002", "late"} | {f"new-{i:03d}" for i in range(6)}
        server.check_consistency()


def _token_sizes(store, embedder, doc_id):
    return [embedder.count_tokens(c.text) for c in store.get_chunks(doc_id)]


LONG_TEXT = "Le conseil municipal a voté le budget annuel de la ville après un long débat. " * 40


def test_handles_opened_on_an_empty_index_follow_the_first_write(tmp_path, embedder):
    data = tmp_path / "empty"
    first = IndexStore.open(data, embedder, chunk_tokens=200, overlap_tokens=40)
    second = IndexStore.open(data, embedder, chunk_tokens=40, overlap_tokens=10)
    try:
        first.add_documents([Document(id="a", title="A", text=LONG_TEXT)])
        second.add_documents([Document(id="b", title="A", text=LONG_TEXT)])  # written as the index is laid out
        assert _token_sizes(second, embedder, "b") == _token_sizes(first, embedder, "a")
        assert max(_token_sizes(second, embedder, "b")) > 100
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("search_meanwhile", [False, True])
def test_chunks_cut_before_the_lock_follow_a_rebuild_made_meanwhile(tmp_path, embedder, search_meanwhile):
    """Another process re-chunks the index (40 tokens) while a write embeds passages cut with 200: they
    are cut again at commit, also when a search of the writing process has already taken up the new
    size (the refresh no longer waits for the write)."""
    data = tmp_path / "race"
    with IndexStore.open(data, embedder, chunk_tokens=200, overlap_tokens=40) as store:
        store.add_documents(synth_docs(2))
    slow = BlockingEmbedder(embedder)
    with IndexStore.open(data, slow, chunk_tokens=200, overlap_tokens=40) as writer:
        t = threading.Thread(target=writer.add_documents, args=([Document(id="long", title="Budget", text=LONG_TEXT)],))
        t.start()
        try:
            assert slow.embedding.wait(60)
            with IndexStore.open(data, embedder, chunk_tokens=40, overlap_tokens=10, rebuild=True):
                pass
            if search_meanwhile:
                writer._last_refresh = 0.0
                writer.search("budget annuel", top_k=1, mode="bm25")  # takes up the 40-token layout, if it can
        finally:
            slow.release.set()
            t.join(120)
        assert max(_token_sizes(writer, embedder, "long")) <= 40
        writer.check_consistency()


def test_a_rebuild_does_not_hold_up_other_writers_while_it_embeds(tmp_path, embedder):
    """`qa index --rebuild` re-embeds the whole index (minutes): like any write, it embeds before it
    takes the file lock, so another process's writes go on meanwhile (they used to wait for the whole
    rebuild), and they are in the rebuilt index: a document added is cut with the new size, a
    document deleted stays deleted."""
    data = tmp_path / "rebuild-locks"
    with IndexStore.open(data, embedder, chunk_tokens=200, overlap_tokens=40) as server:
        server.add_documents([Document(id="long", title="Budget", text=LONG_TEXT), *synth_docs(3)])
        slow = BlockingEmbedder(embedder)
        reports = []

        def rebuild():
            with IndexStore.open(data, slow, chunk_tokens=40, overlap_tokens=10, rebuild=True) as rebuilt:
                reports.append(rebuilt.rebuilt)

        t = threading.Thread(target=rebuild)
        t.start()
        done = threading.Event()

        def other_writes():
            server.delete_document("doc-001")
            server.add_documents([Document(id="late", title="Tard", text="Écrit pendant la reconstruction. " + LONG_TEXT)])
            done.set()

        try:
            assert slow.embedding.wait(60)
            threading.Thread(target=other_writes, daemon=True).start()
            finished = done.wait(60)
        finally:
            slow.release.set()  # in any case, so the test ends
            t.join(180)
        assert done.wait(60) and reports and finished, "the other handle's writes waited for the rebuild's embedding"
        assert reports[0].documents == 4
        server.refresh()
        assert {d.id for d in server.list_documents()[0]} == {"long", "late", "doc-000", "doc-002"}
        assert max(_token_sizes(server, embedder, "late")) <= 40 and max(_token_sizes(server, embedder, "long")) <= 40
        assert [h.document_id for h in server.search("écrit pendant la reconstruction", top_k=1, mode="bm25")] == ["late"]
        server.check_consistency()


def test_a_process_embedding_a_write_still_picks_up_other_processes_writes(tmp_path, embedder):
    """A server worker embedding a long POST /documents goes on answering searches: they must find what
    other processes (`qa index`, the other worker) write meanwhile at the next refresh, not only once
    its own write is done (a 300-document POST kept one worker 16 s behind)."""
    data = tmp_path / "stale"
    with IndexStore.open(data, embedder) as other:
        other.add_documents(synth_docs(2))
        slow = BlockingEmbedder(embedder)
        with IndexStore.open(data, slow) as server:
            writer = threading.Thread(target=server.add_documents, args=([Document(id="long", title="Budget", text=LONG_TEXT)],))
            writer.start()
            try:
                assert slow.embedding.wait(60)
                other.add_documents([Document(id="late", title="Tard", text="Les vendanges tardives du Jura sont annoncées.")])
                other.delete_document("doc-000")
                server._last_refresh = 0.0  # a refresh is due
                hits = server.search("vendanges tardives du Jura", top_k=1, mode="bm25")
                assert [h.document_id for h in hits] == ["late"]
                assert server.generation == other.generation
            finally:
                slow.release.set()
                writer.join(120)
            server.check_consistency()
            assert {d.id for d in server.list_documents()[0]} == {"doc-001", "late", "long"}


def test_a_new_index_opens_while_another_process_is_creating_it(tmp_path, embedder):
    """`qa serve --workers 2` on a new folder: both workers create the database at once. SQLite answers
    "database is locked" at once, without waiting its busy timeout, to a switch to WAL while another
    connection holds the write lock of the new file; a worker that got it stopped the whole server."""
    import sqlite3

    data = tmp_path / "new"
    data.mkdir()
    creator = sqlite3.connect(data / "index.sqlite3", isolation_level=None, check_same_thread=False)
    creator.execute("BEGIN IMMEDIATE")
    creator.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    done = threading.Timer(0.5, creator.execute, args=("COMMIT",))
    done.start()
    try:
        store = IndexStore.open(data, embedder)
    finally:
        done.join()
        creator.close()
    with store:
        store.add_documents(synth_docs(2))
        assert store.counts() == {"documents": 2, "chunks": 2}
        store.check_consistency()


def test_an_index_from_before_the_dense_type_was_recorded_keeps_its_type(tmp_path, embedder, caplog):
    import logging
    import sqlite3

    data = tmp_path / "old"
    with IndexStore.open(data, embedder, dense_index="hnsw") as store:
        store.add_documents(synth_docs(3))
    with sqlite3.connect(data / "index.sqlite3") as conn:
        conn.execute("DELETE FROM meta WHERE key='dense_index'")  # as written before it was recorded
    with caplog.at_level(logging.WARNING, logger="index.store"), IndexStore.open(data, embedder, dense_index="flat") as store:
        assert store.dense_kind == "hnsw" and "hnsw dense index" in caplog.text
        assert [p.name.split("-")[1] for p in data.glob("dense-*")] == ["hnsw"]


def test_a_rebuild_with_the_same_model_keeps_the_vectors_it_can(tmp_path, embedder):
    data = tmp_path / "rebuild"
    with IndexStore.open(data, embedder) as store:
        store.add_documents(synth_docs(4))
    counting = CountingEmbedder(embedder)
    with IndexStore.open(data, counting, dense_index="hnsw", rebuild=True) as store:
        assert counting.passages == 0  # only the dense index type changed: nothing to embed
        assert store.dense_kind == "hnsw" and len(store.search("vendanges", top_k=2)) == 2
        store.check_consistency()


def test_chunk_settings_that_cannot_be_used_as_given_are_reported(tmp_path, embedder, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="index.store"), IndexStore.open(tmp_path / "o", embedder, chunk_tokens=100, overlap_tokens=100) as store:
        assert (store.chunk_size, store.overlap) == (100, 50)
    assert "chunks of 100 tokens with an overlap of 100 asked; 100 and 50 used" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="index.store"), IndexStore.open(tmp_path / "d", embedder):
        assert "asked" not in caplog.text  # the defaults fit


def test_source_files_skip_metadata_that_is_not_json(tmp_path, embedder):
    """Older versions stored NaN from a JSONL record's metadata; SQLite's JSON functions raise on such
    a row, which made every later `qa index` (its same-file check) end in a traceback."""
    store = IndexStore.open(tmp_path / "s", embedder)
    docs = synth_docs(2)
    docs[0].metadata = {"source_file": "/data/a.txt"}
    docs[1].metadata = {"score": float("nan"), "source_file": "/data/b.txt"}  # json.dumps writes NaN
    store.add_documents(docs)
    assert store.source_files() == [("doc-000", "/data/a.txt")]
    store.close()


@pytest.mark.parametrize("old, text, old_terms, query, term", [
    # fr-1 split "co\u00adfondateur" at its soft hyphen
    ("fr-1", "Arthur Mensch est le co\u00adfondateur de Mistral AI, une entreprise parisienne.", "arthur mensch co fondateur mistral", "cofondateur", "cofond"),
    # fr-2 read "2\u202f905" as the terms "2" and "905"
    ("fr-2", "Le catalogue de Netflix compte 2\u202f905 titres en septembre.", "catalogu netflix compt 2 905 titr septembr", "2905", "2905"),
    # fr-3 did not record the Unicode tables the terms were made with (here, those of a Python that
    # did not know "ꞵ", U+A7B5, added in Unicode 8.0, as a letter): they are made again with this one's
    ("fr-3", "Le code \ua7b5eta de Netflix est sorti en septembre.", "cod eta netflix sort septembr", "\ua7b5eta", "\ua7b5et"),
])
def test_terms_of_an_older_analyser_are_redone_when_the_index_opens(tmp_path, embedder, old, text, old_terms, query, term):
    """An index written before the analyser changed gets its BM25 terms analysed again on open, so a
    question finds what the new analyser reads: nothing to re-index by hand."""
    import sqlite3

    from index.text import ANALYZER_VERSION, analyze

    store = IndexStore.open(tmp_path, embedder)
    store.add_documents([Document(id="old", title="Un article", text=text), *synth_docs(3)])
    store.close()
    with sqlite3.connect(tmp_path / "index.sqlite3") as conn:  # as the older analyser wrote them
        conn.execute("UPDATE chunks SET terms = ? WHERE document_id = 'old'", (old_terms,))
        conn.execute("UPDATE meta SET value = ? WHERE key = 'analyzer'", (old,))
    conn.close()
    store = IndexStore.open(tmp_path, embedder)
    try:
        assert [r.document_id for r in store.search(query, top_k=1, mode="bm25")] == ["old"]
        with sqlite3.connect(tmp_path / "index.sqlite3") as conn:
            assert conn.execute("SELECT value FROM meta WHERE key = 'analyzer'").fetchone() == (ANALYZER_VERSION,)
            assert term in conn.execute("SELECT terms FROM chunks WHERE document_id = 'old'").fetchone()[0].split()
        conn.close()
        assert term in analyze(query)
    finally:
        store.close()


class RenamedEmbedder(CountingEmbedder):
    """The same model under another name: a moved folder, a path with a trailing slash."""

    name = "/models/moved/e5-small/"

    @property
    def identity(self):
        return f"{self.name}:{self._inner.dim}"


class ReplacedEmbedder(CountingEmbedder):
    """Another model of the same size under the same name (weights replaced in place)."""

    def _scramble(self, vecs):
        return np.ascontiguousarray(np.roll(vecs, 7, axis=1))

    def encode_passages(self, texts, progress=False):
        return self._scramble(super().encode_passages(texts, progress))

    def encode_queries(self, texts):
        return self._scramble(self._inner.encode_queries(texts))


def test_the_model_is_recognised_by_its_vectors_not_its_name(tmp_path, embedder):
    """The index keeps the vector its model gives a probe passage: the same model under another
    path opens it (no re-embedding of everything), another model under the same name is refused
    (its vectors would be searched against the old ones without a word)."""
    store = IndexStore.open(tmp_path, embedder)
    store.add_documents(synth_docs(4))
    store.close()
    moved = IndexStore.open(tmp_path, RenamedEmbedder(embedder))
    assert [r.document_id for r in moved.search("vendanges en Bourgogne", top_k=1, mode="dense")] == ["doc-002"]
    moved.close()
    with pytest.raises(ReindexNeeded, match="gives other vectors"):
        IndexStore.open(tmp_path, ReplacedEmbedder(embedder))
    # an index from before the probe was recorded is recognised by name, and gets its probe then
    import sqlite3

    with sqlite3.connect(tmp_path / "index.sqlite3") as conn:
        conn.execute("DELETE FROM meta WHERE key = 'embedder_probe'")
    conn.close()
    IndexStore.open(tmp_path, embedder).close()
    with sqlite3.connect(tmp_path / "index.sqlite3") as conn:
        assert conn.execute("SELECT count(*) FROM meta WHERE key = 'embedder_probe'").fetchone() == (1,)
    conn.close()
    with pytest.raises(ReindexNeeded, match="gives other vectors"):
        IndexStore.open(tmp_path, ReplacedEmbedder(embedder))


def test_the_index_scale_benchmark_measures_a_flat_and_an_hnsw_index(tmp_path, embedder):
    """bench/index_scale.py (README "Benchmarks"): its synthetic embedder knows the vectors of its
    questions only, and the store asks every embedder for its probe passage on open (a KeyError: the
    benchmark failed before indexing anything); and its HNSW rows reopened the flat index with
    dense_index="hnsw", which an index ignores until a rebuild (they measured the flat index again)."""
    from bench.index_scale import SyntheticEmbedder, reopen_as_hnsw

    base = np.random.default_rng(0).standard_normal((8, embedder.dim)).astype(np.float32)
    question = "Qui cultive le pinot noir ?"
    synthetic = SyntheticEmbedder(embedder.tokenizer, base, {question: base[0] / np.linalg.norm(base[0])})
    with IndexStore.open(tmp_path, synthetic, dense_index="flat") as store:
        store.add_documents(synth_docs(3))
    assert reopen_as_hnsw(tmp_path, synthetic) > 0
    with IndexStore.open(tmp_path, synthetic, dense_index="hnsw") as store:
        assert store.dense_kind == "hnsw" and store.counts() == {"documents": 3, "chunks": 3}
        assert len(store.search(question, top_k=2, mode="dense")) == 2
    assert [p.name.split("-")[1] for p in tmp_path.glob("dense-*.faiss")] == ["hnsw"]


def test_the_piaf_retrieval_benchmark_never_adds_its_paragraphs_to_an_index_of_other_documents(tmp_path, embedder):
    """bench/retrieval_piaf.py --data-dir DIR added every PIAF paragraph to DIR for good, a team's
    index included; it now refuses such a folder before loading anything, and reuses its own."""
    from bench.retrieval_piaf import other_documents, paragraph_id

    team = tmp_path / "team"
    with IndexStore.open(team, embedder) as store:
        store.add_documents([Document(id="netflix", title="Netflix", text="Netflix va ouvrir un bureau à Paris en 2020.")])
    run = subprocess.run([sys.executable, "bench/retrieval_piaf.py", "--data-dir", str(team)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert f"--data-dir {team} holds 1 document this benchmark did not index (such as 'netflix')" in run.stderr
    with IndexStore.open(team, embedder) as store:
        assert [d.id for d in store.list_documents()[0]] == ["netflix"]

    own = tmp_path / "own"
    with IndexStore.open(own, embedder) as store:
        store.add_documents([Document(id=paragraph_id("dev", "T", "La quiche se prépare à Nancy."), title="T", text="La quiche se prépare à Nancy.")])
    assert other_documents(own) == [] and other_documents(tmp_path / "none") == []


def test_a_document_filter_reaches_an_id_stored_with_surrounding_spaces(tmp_path, embedder):
    """Ids are stored stripped, and a filter is read so (qa.validation.filter_ids); an id that an earlier
    version stored with a file name's surrounding spaces is still reached by its own form."""
    from qa.validation import filters_of

    data = tmp_path / "s"
    with IndexStore.open(data, embedder) as store:
        store.add_documents(synth_docs(3))
        store_under_id(data, "doc-002", " doc-002 ")
        assert store.refresh()

        def found(doc_id: str) -> set[str]:
            return {h.document_id for h in store.search("les vendanges en Bourgogne", top_k=5, filters=filters_of([doc_id], None, None, None))}

        assert found(" doc-001\t") == found("doc-001") == {"doc-001"}
        assert found(" doc-002 ") == {" doc-002 "} and found("doc-002") == set()
