"""`qa index PATHS --prune`: the documents of files removed and of records gone from their export are
removed; nothing else is (a file read with an error, documents sent over HTTP, other folders)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fastapi.testclient import TestClient

from index.pruning import Stale, stale_documents
from tests.test_cli_index import _qa_here


def _ids(data: Path) -> set[str]:
    listed = _qa_here("docs", "list", "--json", "--limit", "1000", data_dir=data)
    assert listed.returncode == 0, listed.stderr
    return {item["id"] for item in json.loads(listed.stdout)["items"]}


def _jsonl(path: Path, records: list[dict], extra: str = "") -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records) + extra, encoding="utf-8")


def test_prune_removes_what_left_the_folder_and_nothing_else(tmp_path, base_settings, monkeypatch):
    data = tmp_path / "idx"
    docs, other = tmp_path / "docs", tmp_path / "other"
    (docs / "sub").mkdir(parents=True)
    other.mkdir()
    (docs / "port.txt").write_text("Le port de Brest accueille trois navires de croisière.\n", encoding="utf-8")
    (docs / "gare.txt").write_text("La gare de Morlaix ferme ses guichets le dimanche.\n", encoding="utf-8")
    (docs / "sub" / "marche.md").write_text("# Marché\n\nLe marché de Quimper a lieu le samedi.\n", encoding="utf-8")
    _jsonl(docs / "crm.jsonl", [{"id": "r1", "text": "La cantine ouvre à midi."}, {"id": "r2", "text": "La piscine ferme en août."}])
    _jsonl(docs / "faq.jsonl", [{"id": "q1", "text": "Le bus passe toutes les heures."}, {"id": "q2", "text": "Le tram est gratuit le samedi."}])
    (other / "mairie.txt").write_text("La mairie de Lorient rouvre lundi.\n", encoding="utf-8")
    first = _qa_here("index", str(docs), str(other), data_dir=data)
    assert first.returncode == 0, first.stderr

    # documents that came over HTTP: one POSTed (no source_file), one uploaded (source_file: the bare
    # name sent, "note.txt", which from inside docs/ reads like a file of the folder that is gone)
    from api.app import create_app
    from qa.pipeline import QAService

    settings = base_settings.model_copy(update={"data_dir": data, "api_key": None, "read_key": None})
    service = QAService.from_settings(settings)
    try:
        with TestClient(create_app(settings, service)) as client:
            posted = client.post("/documents", json={"documents": [{"id": "web-1", "title": "Musée", "text": "Le musée rouvre en mai."}]})
            assert posted.status_code == 200, posted.text
            sent = client.post("/documents/files", files=[("files", ("note.txt", "La note de service parle du budget.\n".encode()))])
            assert sent.status_code == 200, sent.text
            assert client.get("/documents/note").json()["metadata"] == {"source_file": "note.txt"}
    finally:
        service.close()
    before = _ids(data)
    assert before == {"port", "gare", "sub/marche", "r1", "r2", "q1", "q2", "mairie", "web-1", "note"}

    (docs / "port.txt").unlink()  # a file removed
    (docs / "sub" / "marche.md").unlink()
    _jsonl(docs / "crm.jsonl", [{"id": "r1", "text": "La cantine ouvre à midi."}])  # a record gone from its export
    # a record gone from an export that now has a broken line: that line might have been it
    _jsonl(docs / "faq.jsonl", [{"id": "q1", "text": "Le bus passe toutes les heures."}], extra='{"id": "q2", "text": \n')
    (docs / "gare.txt").write_bytes("La gare de Morlaix ferme à l'été.\n".encode("latin-1"))  # a file that cannot be read now
    (other / "mairie.txt").unlink()  # another folder, not given

    monkeypatch.chdir(docs)  # where a bare uploaded name would resolve, if it were taken for a path
    # without --prune, as before: nothing is removed (and an export that lost a record is not taken
    # for a file indexed under another name)
    plain = _qa_here("index", ".", data_dir=data)
    assert plain.returncode == 1 and "(--prune)" not in plain.stdout, plain.stdout
    assert not [line for line in plain.stdout.splitlines() if line.startswith("removed")], plain.stdout
    assert "is also indexed as document" not in plain.stderr, plain.stderr
    assert _ids(data) == before

    preview = _qa_here("index", ".", "--prune", "--dry-run", data_dir=data)
    assert preview.returncode == 1, preview.stderr  # the unreadable file and line are listed, as indexing lists them
    assert preview.stdout.splitlines() == [
        f"would remove port: {docs / 'port.txt'} is gone",
        f"would remove r2: no longer in {docs / 'crm.jsonl'}",
        f"would remove sub/marche: {docs / 'sub' / 'marche.md'} is gone",
        "would remove 3 documents (--dry-run: nothing was indexed or removed)",
    ]
    assert _ids(data) == before

    pruned = _qa_here("index", ".", "--prune", data_dir=data)
    assert pruned.returncode == 1, pruned.stderr  # a file and a line were skipped: said by the status, as without --prune
    assert "skipped gare.txt:1: not UTF-8 text" in pruned.stderr and "skipped faq.jsonl:2: invalid JSON" in pruned.stderr
    lines = pruned.stdout.splitlines()
    assert lines[:3] == [f"removed port: {docs / 'port.txt'} is gone", f"removed r2: no longer in {docs / 'crm.jsonl'}",
                         f"removed sub/marche: {docs / 'sub' / 'marche.md'} is gone"], pruned.stdout
    assert "3 removed (--prune)" in lines[3] and "index now 7 documents" in lines[3], lines[3]
    # kept: the file read with an error (gare), the export with a broken line (q2), the other folder's
    # document (mairie, its file gone too), and what came over HTTP
    assert _ids(data) == before - {"port", "r2", "sub/marche"}
    found = _qa_here("search", "port de Brest navires croisière", "--json", "--top-k", "20", data_dir=data)
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    hits = hits["results"] if isinstance(hits, dict) else hits
    assert hits and not {h["document_id"] for h in hits} & {"port", "r2", "sub/marche"}

    again = _qa_here("index", ".", "--prune", data_dir=data)  # nothing more to remove
    assert "removed port" not in again.stdout and "0 removed (--prune)" in again.stdout, again.stdout


def test_prune_needs_paths_and_dry_run_needs_prune(tmp_path):
    data = tmp_path / "idx"
    alone = _qa_here("index", "--rebuild", "--prune", data_dir=data)
    assert alone.returncode == 2 and "--prune needs the files or folders" in alone.stderr, alone.stderr
    dry = _qa_here("index", str(tmp_path), "--dry-run", data_dir=data)
    assert dry.returncode == 2 and "--dry-run goes with --prune" in dry.stderr, dry.stderr
    assert not data.exists()


def test_stale_documents_rule(tmp_path):
    """The rule alone: paths written another way, a folder reached through a link, an error over a folder."""
    docs = tmp_path / "docs"
    (docs / "kept").mkdir(parents=True)
    (docs / "here.txt").write_text("x", encoding="utf-8")
    (docs / "kept" / "there.txt").write_text("x", encoding="utf-8")
    link = tmp_path / "link"
    link.symlink_to(docs)
    gone = str(docs / "gone.txt")
    stored = [
        ("gone", gone),
        ("dotted", str(tmp_path / "other" / ".." / "docs" / "gone2.txt")),  # an absolute path that an older run spelled with ".."
        ("linked", str(link / "gone3.txt")),  # read through the link before
        ("bare", "gone.txt"),  # an upload's name: no path
        ("here", str(docs / "here.txt")),  # its file exists and was not read this run (hidden, say): kept
        ("exported", str(docs / "here.txt")),  # the file was read, without this document: gone from it
        ("failed", str(docs / "kept" / "gone4.txt")),  # under a folder with an error this run
        ("read", gone),  # read this run (under its id)
        ("elsewhere", str(tmp_path / "docs2" / "gone.txt")),  # "docs2" is not under "docs"
    ]
    got = stale_documents(stored, [docs], ["read"], [], [str(docs / "kept")])
    assert got == [Stale("dotted", stored[1][1], True), Stale("gone", gone, True), Stale("linked", str(link / "gone3.txt"), True)]
    # the folder given through its link; "here.txt" read this run (named relative to the current folder)
    # gives neither "here" nor "exported" now; no error this time
    got = stale_documents(stored, [link], ["read"], [Path(os.path.relpath(docs / "here.txt"))], [])
    assert [(s.id, s.file_gone) for s in got] == [("dotted", True), ("exported", False), ("failed", True), ("gone", True), ("here", False), ("linked", True)]
    assert got[1].reason() == f"no longer in {docs / 'here.txt'}" and got[3].reason() == f"{gone} is gone"



def test_prune_of_a_folder_emptied_removes_its_documents(tmp_path):
    """Nothing left to read is no reason to skip --prune: `qa index` without documents returns before
    loading the models, but with --prune it still removes what the emptied folder held."""
    data, docs = tmp_path / "idx", tmp_path / "docs"
    docs.mkdir()
    (docs / "port.txt").write_text("Le port de Brest accueille trois navires.\n", encoding="utf-8")
    assert _qa_here("index", str(docs), data_dir=data).returncode == 0
    (docs / "port.txt").unlink()
    plain = _qa_here("index", str(docs), data_dir=data)
    assert plain.returncode == 0 and "index now 1 document" in plain.stdout, plain.stdout
    pruned = _qa_here("index", str(docs), "--prune", data_dir=data)
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.splitlines()[0] == f"removed port: {docs / 'port.txt'} is gone"
    assert "1 removed (--prune)" in pruned.stdout and "index now 0 documents" in pruned.stdout
    assert _ids(data) == set()
