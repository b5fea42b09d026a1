"""`qa index` and `qa docs` from a terminal: batched atomic writes, re-runs that skip what is indexed,
listing, showing and deleting documents, clear errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _qa(*args: str, data_dir: Path) -> subprocess.CompletedProcess:
    """The real command, in its own process."""
    env = {**os.environ, "QA_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "qa.cli", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


def _qa_here(*args: str, data_dir: Path, env: dict | None = None):
    """The same command in this process (no torch import per call): stdout, stderr, exit code."""
    from typer.testing import CliRunner

    from qa.cli import app

    res = CliRunner().invoke(app, list(args), env={"QA_DATA_DIR": str(data_dir), **(env or {})})
    return subprocess.CompletedProcess(args, res.exit_code, res.stdout, res.stderr)


def test_index_in_batches_then_again_skips_everything(tmp_path):
    data = tmp_path / "idx"
    first = _qa("index", "data/articles", "--batch-docs", "2", data_dir=data)
    assert first.returncode == 0, first.stderr
    assert "5 read (5 added, 0 updated, 0 unchanged)" in first.stdout
    assert "index now 5 documents" in first.stdout
    assert "indexed 2 of 5 documents" in first.stderr and "indexed 4 of 5 documents" in first.stderr
    again = _qa_here("index", "data/articles", data_dir=data)
    assert again.returncode == 0, again.stderr
    assert "5 read (0 added, 0 updated, 5 unchanged), chunks: 0 added (0 embedded" in again.stdout
    copies = tmp_path / "copies"  # the same texts under other ids: their chunks reuse stored vectors
    copies.mkdir()
    shutil.copy(REPO / "data" / "articles" / "001_005d409384642fd6.txt", copies / "copie.txt")
    shutil.copytree(data, tmp_path / "idx-copy")
    copied = _qa_here("index", str(copies), data_dir=tmp_path / "idx-copy")
    added = int(re.search(r"chunks: (\d+) added \(0 embedded, the others reused stored vectors\)", copied.stdout).group(1))
    assert added > 0, copied.stdout

    listed = _qa_here("docs", "list", "--json", data_dir=data)
    assert listed.returncode == 0, listed.stderr
    page = json.loads(listed.stdout)
    assert page["total"] == 5 and len(page["items"]) == 5 and set(page["items"][0]) == {"id", "title", "url", "published", "chunks", "chars"}
    doc_id = "002_affb09736d3cc83f"
    shown = json.loads(_qa_here("docs", "show", doc_id, "--json", data_dir=data).stdout)
    assert shown["id"] == doc_id and shown["title"] and "Amazon" in shown["text"]
    plain = _qa_here("docs", "list", data_dir=data)
    assert plain.stdout.count("\n") == 5 and doc_id in plain.stdout and "5 documents" in plain.stderr
    # listing and showing read the catalog only: no model is loaded, so an unusable embedder setting does not matter
    no_models = {"QA_EMBEDDER": "no-such-embedder", "QA_MODELS_DIR": str(tmp_path / "no-models")}
    assert _qa_here("docs", "list", "--json", data_dir=data, env=no_models).stdout == listed.stdout
    assert json.loads(_qa_here("docs", "show", doc_id, "--json", data_dir=data, env=no_models).stdout) == shown
    assert not (tmp_path / "no-models").exists()

    # deleting needs no model either: the index records its embedder's name and dimension
    deleted = _qa_here("docs", "delete", doc_id, data_dir=data, env=no_models)
    assert deleted.returncode == 0 and "index now 4 documents" in deleted.stdout, deleted.stderr
    assert not (tmp_path / "no-models").exists()
    assert doc_id not in _qa_here("docs", "list", data_dir=data).stdout
    # and leaves dense and keyword indexes that the real model searches consistently
    found = _qa_here("search", "Amazon Prime Video", "--json", "--top-k", "10", data_dir=data)
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    hits = hits["results"] if isinstance(hits, dict) else hits
    assert hits and all(h["document_id"] != doc_id for h in hits)
    for mode in ("bm25", "dense"):
        other = json.loads(_qa_here("search", "Amazon Prime Video", "--json", "--mode", mode, "--top-k", "50", data_dir=data).stdout)
        other = other["results"] if isinstance(other, dict) else other
        assert other and all(h["document_id"] != doc_id for h in other)
    # a text that holds escape sequences: shown as escapes by search, given back as stored when redirected
    esc = tmp_path / "esc.txt"
    esc.write_text("Siège d'Acme\n\nLe siège \x1b[2J\x1b]0;pwned\x07 d'Acme est à Lyon.", encoding="utf-8")
    assert _qa_here("index", str(esc), data_dir=data).returncode == 0
    out = _qa_here("search", "siège Acme Lyon", "--top-k", "1", data_dir=data).stdout
    assert "\x1b" not in out and "\x07" not in out and "\\x1b[2J\\x1b]0;pwned\\x07" in out, out
    shown = _qa_here("docs", "show", "esc", data_dir=data).stdout
    header, text = shown.split("\n\n", 1)
    assert text == esc.read_text(encoding="utf-8") + "\n"  # exactly, then the line break that ends the output
    assert f"metadata: {json.dumps({'source_file': str(esc)})}" in header.splitlines()
    again = _qa_here("docs", "delete", doc_id, data_dir=data)
    assert again.returncode == 1 and again.stderr.strip().startswith(f"error: no document '{doc_id}'") and "Traceback" not in again.stderr
    missing = _qa_here("docs", "show", "nope", data_dir=data)
    assert missing.returncode == 1 and "no document 'nope'" in missing.stderr
    # --json: the API's 404 body on stdout, for scripts
    for args in (("docs", "show", "nope", "--json"), ("docs", "delete", "nope", "--json")):
        res = _qa_here(*args, data_dir=data)
        assert res.returncode == 1 and json.loads(res.stdout) == {"detail": "document 'nope' not found"}, res.stdout


def test_docs_on_a_missing_or_damaged_index(tmp_path):
    missing = tmp_path / "never-indexed"
    no_index = f"error: no index at {missing}: run `qa index data/articles` first (or set QA_DATA_DIR to your index)"
    for args in (("docs", "list"), ("docs", "show", "x")):  # a mistyped QA_DATA_DIR is not an empty index
        res = _qa_here(*args, data_dir=missing)
        assert res.returncode == 1 and res.stdout == "" and res.stderr.strip() == no_index
    assert not missing.exists()  # reading does not create an index
    gone = _qa_here("docs", "delete", "x", data_dir=missing)
    assert gone.returncode == 1 and gone.stderr.strip() == f"error: no document 'x' in {missing}: there is no index there (see `qa docs list`)"
    assert not missing.exists()  # nor does a delete
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "index.sqlite3").write_text("not a database")
    bad = _qa_here("docs", "list", data_dir=damaged)
    assert bad.returncode == 1 and bad.stderr.strip() == damaged_line(damaged, "file is not a database")
    bad_delete = _qa_here("docs", "delete", "x", data_dir=damaged)
    assert bad_delete.returncode == 1 and bad_delete.stderr.strip() == damaged_line(damaged, "file is not a database")
    from tests.store_support import newer_index

    newer = newer_index(tmp_path / "newer")
    newer_line = (f"error: the index at {newer} was written by a newer qa-search (schema version 99; this one reads version 1): "
                  "use it with that newer qa-search, or set QA_DATA_DIR to a new folder and index your documents again")
    later = _qa_here("docs", "list", data_dir=newer)  # the folder named once
    assert later.returncode == 1 and later.stderr.strip() == newer_line
    later_delete = _qa_here("docs", "delete", "x", data_dir=newer)
    assert later_delete.returncode == 1 and later_delete.stderr.strip() == newer_line
    # every command that opens the index says it in one line, not only `docs` (search, ask and
    # index used to end in a traceback): what a team rolling back to this release would meet
    small = tmp_path / "small"
    small.mkdir()
    (small / "a.txt").write_text("Netflix investit 7 milliards de dollars en 2018.\n", encoding="utf-8")
    bumped = tmp_path / "bumped"
    assert _qa_here("index", str(small), data_dir=bumped).returncode == 0
    with sqlite3.connect(bumped / "index.sqlite3") as conn:
        conn.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    conn.close()
    for args in (("search", "Netflix"), ("ask", "Combien Netflix investit-il ?"), ("index", str(small))):
        res = _qa_here(*args, data_dir=bumped)
        assert res.returncode == 1 and res.stderr.strip() == (
            f"error: the index at {bumped} was written by a newer qa-search (schema version 2; this one reads version 1): "
            "use it with that newer qa-search, or set QA_DATA_DIR to a new folder and index your documents again"), (args, res.stderr)


def damaged_line(data_dir: Path, why: str = "database disk image is malformed", outcome: str = "") -> str:
    """The one line of a command that found the index at ``data_dir`` damaged."""
    return f"error: the index at {data_dir} is damaged ({why}): {outcome + '; ' if outcome else ''}restore an earlier backup (README, \"Backing up\"), or index the documents again in a new folder"


def test_a_damaged_index_is_one_line_saying_what_to_do(tmp_path, embedder, monkeypatch):
    """A page of the database overwritten (a disk or a copy gone wrong), whether a command finds it
    as it opens the index or only as it reads it: one line naming the folder and what to do, never
    a traceback (the reads of `qa docs list` and `show` ended in one; a delete said "check its disk
    and run the command again", which fails alike)."""
    from index.schema import Document
    from index.store import IndexStore
    from tests.store_support import damage_pages

    clean = tmp_path / "clean"
    with IndexStore.open(clean, embedder) as store:
        store.add_documents([Document(id=f"d{i}", title=f"Café {i}", text=f"Le café numéro {i} ouvre à Quimper.") for i in range(3)])
    documents, keys, chunk_index = (tmp_path / n for n in ("documents", "keys", "chunk-index"))
    for folder, name in ((documents, "documents"), (keys, "document_keys"), (chunk_index, "chunks_document")):
        shutil.copytree(clean, folder)
        damage_pages(folder, name)
    for args in (("docs", "list"), ("docs", "list", "--search", "café"), ("docs", "list", "--json"), ("docs", "show", "d1"),
                 ("docs", "show", "d1", "--json"), ("docs", "delete", "d1")):
        res = _qa_here(*args, data_dir=documents)
        assert (res.returncode, res.stdout, res.stderr) == (1, "", damaged_line(documents) + "\n"), (args, res.stderr)
    # the search keys only: the list is read, a search of it is not
    assert _qa_here("docs", "list", data_dir=keys).returncode == 0
    res = _qa_here("docs", "list", "--search", "café", data_dir=keys)
    assert (res.returncode, res.stdout, res.stderr) == (1, "", damaged_line(keys) + "\n"), res.stderr
    # an index of the chunks: the index opens, the delete finds it and writes nothing
    res = _qa_here("docs", "delete", "d1", data_dir=chunk_index)
    assert (res.returncode, res.stderr) == (1, damaged_line(chunk_index, outcome="nothing was deleted") + "\n"), res.stderr
    # a page found damaged by a search, once the index is open
    def damaged_read(self, *args, **kwargs):
        exc = sqlite3.DatabaseError("database disk image is malformed")
        exc.sqlite_errorcode = sqlite3.SQLITE_CORRUPT
        raise exc

    monkeypatch.setattr(IndexStore, "search", damaged_read)
    res = _qa_here("search", "café", data_dir=clean)
    assert (res.returncode, res.stdout, res.stderr) == (1, "", damaged_line(clean) + "\n"), res.stderr


def test_index_errors_are_one_clear_line(tmp_path):
    missing = _qa("index", str(tmp_path / "nope"), data_dir=tmp_path / "idx")
    assert missing.returncode == 1 and missing.stderr.strip() == f"error: no such file or folder: {tmp_path / 'nope'}"
    bad = _qa("index", "data/articles", "--batch-docs", "0", data_dir=tmp_path / "idx")
    assert bad.returncode == 2 and "--batch-docs" in bad.stderr and "Traceback" not in bad.stderr


def test_reading_commands_never_create_an_index(tmp_path):
    """A mistyped QA_DATA_DIR: search and ask say there is no index (instead of creating an empty
    one and finding nothing); a damaged one is one line too."""
    typo = tmp_path / "typo"
    for args in (["search", "Netflix"], ["ask", "Qui dirige Netflix ?"]):
        res = _qa_here(*args, data_dir=typo)
        assert res.returncode == 1 and res.stderr.strip() == f"error: no index at {typo}: run `qa index data/articles` first (or set QA_DATA_DIR to your index)"
    assert not typo.exists()
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "index.sqlite3").write_text("not a database")
    res = _qa_here("search", "Netflix", data_dir=damaged)
    assert res.returncode == 1 and res.stderr.strip() == damaged_line(damaged, "file is not a database")


def test_an_empty_index_file_is_no_index_and_another_programs_database_is_left_alone(tmp_path):
    """An empty index.sqlite3 (``touch``, a copy that failed) is no index for the commands that read
    (they said "no such table: meta", or created the tables); `qa index` makes it one. A database of
    another program in that place is refused by every command, and never written to."""
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "index.sqlite3").touch()
    no_index = f"error: no index at {empty}: run `qa index data/articles` first (or set QA_DATA_DIR to your index)"
    for args in (["search", "Netflix"], ["docs", "list"]):
        res = _qa_here(*args, data_dir=empty)
        assert (res.returncode, res.stderr.strip()) == (1, no_index), res.stderr
    assert sorted(p.name for p in empty.iterdir()) == ["index.sqlite3"] and (empty / "index.sqlite3").stat().st_size == 0
    doc = tmp_path / "doc.txt"
    doc.write_text("Le siège\n\nLe siège d'Acme est à Lyon.", encoding="utf-8")
    assert _qa_here("index", str(doc), data_dir=empty).returncode == 0
    assert _qa_here("docs", "list", data_dir=empty).stdout.startswith("doc\t1 chunk\t")

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    db = foreign / "index.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes(body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('à garder')")
    conn.close()
    before = db.read_bytes()
    refused = f"error: {db} is not a qa-search index (it holds other tables: notes) and is left as it is: set QA_DATA_DIR to another folder"
    for args in (["search", "Netflix"], ["docs", "list"], ["index", str(doc)], ["backup", str(tmp_path / "copy")], ["serve"]):
        res = _qa_here(*args, data_dir=foreign)
        assert (res.returncode, res.stderr.strip()) == (1, refused), (args, res.stderr)
    assert db.read_bytes() == before and sorted(p.name for p in foreign.iterdir()) == ["index.sqlite3"]


def test_index_reports_what_it_skips_and_replaces(tmp_path, monkeypatch):
    data = tmp_path / "idx"
    empty = _qa_here("index", "", data_dir=data)  # qa index "$UNSET": not the current folder
    assert empty.returncode == 2 and empty.stderr.strip() == "error: an empty path was given"
    first = tmp_path / "first"
    first.mkdir()
    (first / "note.txt").write_text("Note\n\nLe siège est à Lyon.", encoding="utf-8")
    (first / "recs.jsonl").write_text('{"id": "r1", "text": "Bon."}\n{"id": "r2"}\n', encoding="utf-8")
    res = _qa_here("index", str(first), data_dir=data)
    # what could be read is indexed; the exit status says that something could not
    assert res.returncode == 1 and f"skipped {first / 'recs.jsonl'}:2: missing or empty 'text'" in res.stderr
    assert "2 read (2 added" in res.stdout and "skipped: 1 (files or records, listed above)" in res.stdout
    # another file with the same name (the id) and another text replaces the document: said, not silent
    other = tmp_path / "other"
    other.mkdir()
    (other / "note.txt").write_text("Autre note\n\nLe siège est à Nantes.", encoding="utf-8")
    res = _qa_here("index", str(other), data_dir=data)
    assert res.returncode == 0, res.stderr
    assert f"warning: document 'note' was indexed from {first / 'note.txt'}; {other / 'note.txt'} has the same name" in res.stderr
    assert "1 updated" in res.stdout
    # re-indexing the same file: nothing to say
    again = _qa_here("index", str(other), data_dir=data)
    assert again.returncode == 0 and "warning" not in again.stderr and "1 unchanged" in again.stdout
    # the same file edited, named this time from its folder's parent: an update, not another file's
    (other / "note.txt").write_text("Autre note\n\nLe siège est à Rennes.", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    edited = _qa_here("index", "other/note.txt", data_dir=data)
    assert edited.returncode == 0 and "warning" not in edited.stderr and "1 updated" in edited.stdout
    deleted = _qa_here("docs", "delete", "note", "--json", data_dir=data)
    assert deleted.returncode == 0 and json.loads(deleted.stdout) == {"id": "note", "deleted": True}


def test_index_with_nothing_readable_says_so_without_loading_the_embedder(tmp_path):
    """Every file skipped (or none to read): the lines and the summary come without the embedder, which
    took seconds to load for nothing; an embedder that cannot load stands in for a timer."""
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "latin1.txt").write_bytes("Le siège".encode("latin-1"))
    (bad / "recs.jsonl").write_text('{"id": "r1"}\n', encoding="utf-8")
    no_model = {"QA_EMBEDDER": "./no-such-model"}
    data = tmp_path / "idx"
    res = _qa_here("index", str(bad), data_dir=data, env=no_model)
    assert res.returncode == 1, res.stderr  # as before: something was skipped
    assert "cannot load embedder" not in res.stderr
    assert f"skipped {bad / 'latin1.txt'}:1: not UTF-8 text" in res.stderr and f"skipped {bad / 'recs.jsonl'}:1: missing or empty 'text'" in res.stderr
    assert res.stdout.startswith("documents: 0 read (0 added, 0 updated, 0 unchanged)")
    assert "index now 0 documents / 0 chunks, skipped: 2 (files or records, listed above)" in res.stdout
    assert not data.exists()  # nothing was written: no empty index is created either
    empty = tmp_path / "empty"
    empty.mkdir()
    res = _qa_here("index", str(empty), data_dir=data, env=no_model)
    assert res.returncode == 0 and "index now 0 documents / 0 chunks, skipped: 0," in res.stdout, res.stderr
    # an index there: its counts, read without the model
    doc = tmp_path / "doc.txt"
    doc.write_text("Le siège\n\nLe siège d'Acme est à Lyon.", encoding="utf-8")
    assert _qa_here("index", str(doc), data_dir=data).returncode == 0
    res = _qa_here("index", str(bad), data_dir=data, env=no_model)
    assert res.returncode == 1 and "index now 1 document / 1 chunk, skipped: 2" in res.stdout, res.stderr
    # a file that can be read still needs the model: the run goes on to load it
    res = _qa_here("index", str(doc), data_dir=data, env=no_model)
    assert res.returncode == 1 and "cannot load embedder './no-such-model'" in res.stderr


def test_a_record_replacing_one_of_another_export_is_said_as_a_record(tmp_path):
    """Records now name their export: one whose id another export's record has replaces it with a
    warning, which speaks of the record's id (not of renaming a file)."""
    data = tmp_path / "idx"
    (tmp_path / "crm.jsonl").write_text(json.dumps({"id": "fiche-1", "text": "La cantine ouvre à midi."}) + "\n", encoding="utf-8")
    (tmp_path / "erp.jsonl").write_text(json.dumps({"id": "fiche-1", "text": "La piscine ferme en août."}) + "\n", encoding="utf-8")
    assert _qa_here("index", str(tmp_path / "crm.jsonl"), data_dir=data).returncode == 0
    second = _qa_here("index", str(tmp_path / "erp.jsonl"), data_dir=data)
    assert second.returncode == 0, second.stderr
    assert second.stderr.splitlines() == [
        f"warning: document 'fiche-1' was indexed from {tmp_path / 'crm.jsonl'}; a record of {tmp_path / 'erp.jsonl'} "
        "has the same id and another text, and replaces it: change one of the ids to keep both"
    ]


def test_docs_show_ends_its_output_with_a_line_break(tmp_path):
    """Redirected or piped (`| cat`, ssh), `qa docs show` wrote the text and no line break after it:
    the shell's prompt came on its last line. The text is written as stored, then one line break,
    whether it ends with one or not (so the text is the output after the header's blank line, less
    its last character); --json stays the API's answer, one line."""
    from api.schemas import api_json

    data = tmp_path / "idx"
    texts = {"flat": "Une note\n\nLe siège est à Lyon.", "ended": "Une autre note\n\nLe siège est à Nantes.\n"}
    for name, text in texts.items():
        (tmp_path / f"{name}.txt").write_text(text, encoding="utf-8")
        assert _qa_here("index", str(tmp_path / f"{name}.txt"), data_dir=data).returncode == 0
    for name, text in texts.items():
        shown = _qa_here("docs", "show", name, data_dir=data)
        assert shown.returncode == 0 and shown.stdout.split("\n\n", 1)[1] == text + "\n", shown.stdout
        as_json = _qa_here("docs", "show", name, "--json", data_dir=data).stdout
        assert as_json.count("\n") == 1 and as_json == api_json(json.loads(as_json)) + "\n" and json.loads(as_json)["text"] == text


def test_docs_json_outputs_are_one_line_written_as_the_api_writes_it(tmp_path):
    """`qa docs list/show/delete --json` printed indented JSON while their 404 body was one line: each
    is now one document a line, written as the API writes its bodies."""
    from tests.api_support import json_lines

    data = tmp_path / "idx"
    note = tmp_path / "note.txt"
    note.write_text("Une note\n\nLe siège est à Lyon.", encoding="utf-8")
    assert _qa_here("index", str(note), data_dir=data).returncode == 0
    listed = _qa_here("docs", "list", "--json", data_dir=data)
    assert [i["id"] for i in json_lines(listed.stdout)[0]["items"]] == ["note"]
    assert json_lines(_qa_here("docs", "show", "note", "--json", data_dir=data).stdout)[0]["text"] == "Une note\n\nLe siège est à Lyon."
    for args in (("docs", "show", "nope", "--json"), ("docs", "delete", "nope", "--json")):
        missing = _qa_here(*args, data_dir=data)
        assert missing.returncode == 1 and json_lines(missing.stdout) == [{"detail": "document 'nope' not found"}]
    deleted = _qa_here("docs", "delete", "note", "--json", data_dir=data)
    assert deleted.returncode == 0 and json_lines(deleted.stdout) == [{"id": "note", "deleted": True}]


def test_an_id_is_one_whatever_the_unicode_form_of_its_accents(tmp_path, embedder):
    """As over HTTP: a JSON record's id is stored in NFC (as a file's name is), and `qa docs show`,
    `qa docs delete` and `qa search --doc` reach the document in either form, also one an older
    version stored decomposed (it kept record ids as written)."""
    from index.schema import Document
    from index.store import IndexStore
    from tests.store_support import store_under_id

    data = tmp_path / "idx"
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    recs = tmp_path / "recs.jsonl"
    recs.write_text(json.dumps({"id": nfd, "title": "Café", "text": "Le café ouvre à Quimper."}) + "\n", encoding="utf-8")
    assert _qa_here("index", str(recs), data_dir=data).returncode == 0
    assert [i["id"] for i in json.loads(_qa_here("docs", "list", "--json", data_dir=data).stdout)["items"]] == [nfc]
    for form in (nfc, nfd):
        shown = _qa_here("docs", "show", form, "--json", data_dir=data)
        assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == nfc, shown.stderr
        found = _qa_here("search", "café Quimper", "--doc", form, "--json", data_dir=data)
        hits = json.loads(found.stdout)
        assert [h["document_id"] for h in (hits["results"] if isinstance(hits, dict) else hits)] == [nfc], found.stderr
    deleted = _qa_here("docs", "delete", nfd, data_dir=data)
    assert deleted.returncode == 0 and f"deleted {nfc};" in deleted.stdout and "index now 0 documents" in deleted.stdout, deleted.stderr
    with IndexStore.open(data, embedder) as store:
        store.add_documents([Document(id=nfc, title="Café", text="Le café ouvre à Quimper.")])
    store_under_id(data, nfc, nfd)
    for form in (nfc, nfd):
        assert json.loads(_qa_here("docs", "show", form, "--json", data_dir=data).stdout)["id"] == nfd
    deleted = _qa_here("docs", "delete", nfc, data_dir=data)
    assert deleted.returncode == 0 and "index now 0 documents" in deleted.stdout, deleted.stderr


def test_serve_checks_before_loading_models(tmp_path):
    """What uvicorn would report as a traceback after the models loaded: one line, at once."""
    import socket

    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    res = _qa_here("serve", data_dir=a_file)
    assert res.returncode == 1 and res.stderr.strip() == f"error: QA_DATA_DIR {a_file} is a file: it must be a folder (the index is several files)"
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "index.sqlite3").write_text("not a database")
    res = _qa_here("serve", data_dir=damaged)
    assert res.returncode == 1 and res.stderr.strip() == damaged_line(damaged, "file is not a database")
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        res = _qa_here("serve", "--port", str(port), data_dir=tmp_path / "new")
    assert res.returncode == 1 and f"error: cannot listen on 127.0.0.1:{port}: Address already in use" in res.stderr
    assert "warning: listening on" not in res.stderr  # loopback: no warning
    # keys that would leave writes open while reads need one: refused before anything loads
    res = _qa_here("serve", data_dir=tmp_path / "new", env={"QA_READ_KEY": "r", "QA_API_KEY": ""})
    assert res.returncode == 1 and res.stderr.strip() == ("error: QA_READ_KEY is set but QA_API_KEY is not: anyone could add and delete documents "
                                                          "while reads need a key; set QA_API_KEY (the key for writes) too")
    # every address, no write key: said before serving
    with socket.create_server(("0.0.0.0", 0)) as busy:
        port = busy.getsockname()[1]
        res = _qa_here("serve", "--host", "0.0.0.0", "--port", str(port), data_dir=tmp_path / "new", env={"QA_API_KEY": ""})
    assert f"warning: listening on 0.0.0.0 with no QA_API_KEY: anyone who reaches port {port} can add and delete documents" in res.stderr
    assert "the service starts empty" in res.stderr  # a new index is fine for a server (documents come by POST)
    assert _qa_here("serve", "--port", "0", data_dir=tmp_path / "new").returncode == 2
    # a model name that cannot be loaded here: one line before uvicorn (with --workers, uvicorn itself exits 0)
    res = _qa_here("serve", "--workers", "2", data_dir=tmp_path / "new", env={"QA_EMBEDDER": "./no-such-model"})
    assert res.returncode == 1 and res.stderr.strip().endswith("error: cannot load embedder './no-such-model': there is no folder ./no-such-model; set QA_EMBEDDER to a local folder or a model id you can download")


def test_rebuild_alone_re_chunks_what_the_index_holds(tmp_path):
    data = tmp_path / "idx"
    assert _qa_here("index", "data/articles", data_dir=data).returncode == 0
    res = _qa_here("index", "--rebuild", data_dir=data, env={"QA_CHUNK_TOKENS": "120", "QA_CHUNK_OVERLAP_TOKENS": "20"})
    assert res.returncode == 0, res.stderr
    # what the rebuild did, not "0 read, 0 embedded"
    assert "rebuilt: 5 documents re-chunked, 18 chunks replaced by" in res.stdout, res.stdout
    assert "documents: 0 read" not in res.stdout and "index now 5 documents" in res.stdout
    with sqlite3.connect(data / "index.sqlite3") as conn:
        assert dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('chunk_tokens', 'overlap_tokens')")) == {"chunk_tokens": "120", "overlap_tokens": "20"}
    conn.close()
    nothing = _qa_here("index", data_dir=data)
    assert nothing.returncode == 2 and nothing.stderr.strip() == "error: give the files or folders to index (or --rebuild alone to re-chunk what the index holds)"
    typo = _qa_here("index", "--rebuild", data_dir=tmp_path / "typo")
    assert typo.returncode == 1 and "error: no index at" in typo.stderr and not (tmp_path / "typo").exists()


def test_a_file_indexed_under_two_names_is_said(tmp_path):
    """Files are named after their path in the folder given: the same file reached from two folders
    (or indexed before that rule, under its bare name) would be two documents without a word."""
    data = tmp_path / "idx"
    (tmp_path / "site" / "eco").mkdir(parents=True)
    (tmp_path / "site" / "eco" / "port.txt").write_text("Le port\n\nLe port de Marseille investit 40 millions.", encoding="utf-8")
    first = _qa_here("index", str(tmp_path / "site"), data_dir=data)
    assert first.returncode == 0 and "warning" not in first.stderr and "1 added" in first.stdout
    again = _qa_here("index", str(tmp_path / "site" / "eco"), data_dir=data)
    assert again.returncode == 0, again.stderr
    assert (f"warning: {tmp_path / 'site' / 'eco' / 'port.txt'} is also indexed as document 'eco/port' (an older name, or the same file "
            "reached from another folder given to qa index); it is now 'port': `qa docs delete eco/port` removes the other copy") in again.stderr


def test_what_scripts_pass_by_mistake_is_one_line(tmp_path, monkeypatch):
    """A Latin-1 file name, an empty QA_DATA_DIR (an unset variable), a data folder that cannot be
    created, bytes that are not UTF-8 as an id, and filters the API refuses: one line each, never a
    traceback, and nothing written where it should not be."""
    data = tmp_path / "idx"
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "ok.txt").write_text("Note\n\nLe siège est à Lyon.", encoding="utf-8")
    with open(os.fsencode(folder) + b"/caf\xe9.txt", "w", encoding="utf-8") as f:  # Latin-1 "café.txt"
        f.write("Un texte.")
    res = _qa_here("index", str(folder), data_dir=data)
    assert res.returncode == 1 and "the file's path is not UTF-8 text: rename it" in res.stderr and "1 added" in res.stdout, res.stderr
    assert "Traceback" not in res.stderr

    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    res = _qa_here("index", str(folder / "ok.txt"), data_dir=data, env={"QA_DATA_DIR": "", "XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert res.returncode == 0, res.stderr
    assert list(here.iterdir()) == [] and (tmp_path / "xdg" / "qa-search" / "index.sqlite3").exists()  # the default, not "."

    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    res = _qa_here("index", str(folder / "ok.txt"), data_dir=a_file / "sub")
    assert res.returncode == 1 and res.stderr.strip() == f"error: QA_DATA_DIR {a_file / 'sub'} cannot be created: {a_file} is not a folder"

    res = _qa_here("docs", "show", "caf\udce9", data_dir=data)
    assert res.returncode == 1 and "is not UTF-8 text" in res.stderr and "Traceback" not in res.stderr

    for args, message in ((["--after", "2019", "--before", "2017"], "error: --after 2019 is later than --before 2017"),
                          (["--source", ""], "error: --source must be a domain name such as numerama.com, not empty"),
                          (["--doc", "a", "--doc", ""], "error: --doc must be a document id, not empty")):  # it matched nothing
        res = _qa_here("search", "Netflix", *args, data_dir=data)
        assert res.returncode == 2 and res.stderr.strip() == message, res.stderr


def test_a_disk_that_fills_up_during_qa_index_is_one_line_and_keeps_the_batches_written(tmp_path):
    """A file size limit stands for the full disk (the writes fail where they would): one line
    saying what was kept and what to do, not a traceback, and the index still reads."""
    import resource
    import signal

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(12):
        (docs / f"d{i:02d}.txt").write_text(f"Titre {i}\n\n" + "Les vendanges ont commencé en Bourgogne et les viticulteurs sont contents. " * 25 + str(i), encoding="utf-8")

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))

    data = tmp_path / "idx"
    res = subprocess.run([sys.executable, "-m", "qa.cli", "index", str(docs), "--batch-docs", "1"], capture_output=True, text=True,
                         env={**os.environ, "QA_DATA_DIR": str(data)}, cwd=REPO, timeout=600, preexec_fn=limited)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    m = re.fullmatch(rf"error: cannot write the index in {re.escape(str(data))}: (.+); the first (\d+) of 12 documents are indexed and kept; (.+) and run the command again", last)
    assert m and 0 < int(m.group(2)) < 12, last
    listed = json.loads(_qa_here("docs", "list", "--json", data_dir=data).stdout)
    assert listed["total"] == int(m.group(2))
    again = _qa_here("index", str(docs), data_dir=data)  # room again: the rest is indexed
    assert again.returncode == 0 and f"({12 - int(m.group(2))} added, 0 updated, {m.group(2)} unchanged)" in again.stdout, again.stdout + again.stderr


def test_only_the_index_folders_own_files_are_blamed_on_it(tmp_path, capsys):
    import errno

    import pytest
    import typer

    from qa.cli_common import storage_fail
    from qa.settings import load_settings

    settings = load_settings(data_dir=tmp_path / "idx")
    # the models' cache: not the index folder's problem (the caller's own message, or the traceback, says what it is)
    assert storage_fail(settings, PermissionError(errno.EACCES, "Permission denied", "/home/u/.cache/huggingface/hub/x")) is None
    assert storage_fail(settings, OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "idx-other" / "x"))) is None
    with pytest.raises(typer.Exit):
        storage_fail(settings, OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "idx" / "dense-flat-3.faiss.tmp-1")), verb="write")
    assert f"error: cannot write the index in {tmp_path / 'idx'}: the folder is full" in capsys.readouterr().err


def test_a_data_folder_that_cannot_be_written_is_one_line_before_any_model_loads(tmp_path, monkeypatch):
    """As on a read-only mount (which root cannot get around either; the test stands in for it by
    answering the permission check as such a mount does)."""
    data = tmp_path / "ro"
    data.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if Path(path) == data and mode & os.W_OK else real_access(path, mode, **kw))
    for args in (("serve",), ("search", "Netflix"), ("ask", "Qui ?"), ("index", str(tmp_path))):
        res = _qa_here(*args, data_dir=data, env={"QA_EMBEDDER": "no-such-embedder"})  # no model is reached
        assert res.returncode == 1 and res.stderr.strip().endswith(
            f"error: QA_DATA_DIR {data} is not writable: the index is written there, and SQLite writes its journal there even to read"), (args, res.stderr)


def test_a_delete_that_cannot_write_is_one_line(tmp_path, embedder, monkeypatch):
    """`qa docs delete` writes to the index as `qa index` does: a folder it cannot write (a read-only
    mount, answered as in the test above) or that is full says so in one line, not a traceback (a
    read-only folder was not even checked: root deleted through it)."""
    from index.schema import Document
    from index.store import IndexStore

    data = tmp_path / "idx"
    with IndexStore.open(data, embedder) as store:
        store.add_documents([Document(id="a", title="Café", text="Le café ouvre à Quimper.")])
    real_access = os.access
    with monkeypatch.context() as m:
        m.setattr(os, "access", lambda path, mode, **kw: False if Path(path) == data and mode & os.W_OK else real_access(path, mode, **kw))
        res = _qa_here("docs", "delete", "a", data_dir=data)
    assert res.returncode == 1 and res.stderr.strip() == (
        f"error: QA_DATA_DIR {data} is not writable: the index is written there, and SQLite writes its journal there even to read"), res.stderr

    def disk_full(self, doc_id):
        exc = sqlite3.OperationalError("database or disk is full")
        exc.sqlite_errorcode = sqlite3.SQLITE_FULL
        raise exc

    monkeypatch.setattr(IndexStore, "delete_document", disk_full)
    res = _qa_here("docs", "delete", "a", data_dir=data)
    assert res.returncode == 1 and res.stderr.strip() == (
        f"error: cannot write the index in {data}: the folder is full (database or disk is full); nothing was deleted; "
        "make room on its disk and run the command again"), res.stderr
    monkeypatch.undo()
    assert json.loads(_qa_here("docs", "list", "--json", data_dir=data).stdout)["total"] == 1


def test_help_shows_flags_as_flags():
    """typer's rich help showed every flag (--json, --help) as taking a <bool>: users typed `--json true`."""
    from typer.testing import CliRunner

    from qa.cli import app

    for args in (["docs", "list", "--help"], ["eval", "--help"], ["search", "--help"]):
        out = CliRunner().invoke(app, args).stdout
        assert "<bool>" not in out and "--help" in out, out
        assert "--json" in out or "--errors" in out


def test_qa_index_says_what_it_changes_in_a_title(tmp_path):
    """A title's control characters become spaces (a scraped file is indexed all the same), and `qa
    index` says so, naming the file, the line and the field; POST /documents refuses the ESC instead
    (tests/test_validation.py): its client can fix the request."""
    data = tmp_path / "idx"
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "recs.jsonl").write_text(json.dumps({"id": "r1", "title": "Titre\x1b[2J sale", "text": "Le siège est à Lyon."}) + "\n", encoding="utf-8")
    (tmp_path / "docs" / "note.txt").write_text("\nNote\tdu jour\n\nLe siège est à Nantes.", encoding="utf-8")
    res = _qa("index", str(tmp_path / "docs"), data_dir=data)
    assert res.returncode == 0 and "2 read (2 added" in res.stdout, res.stderr
    assert f"{tmp_path / 'docs' / 'recs.jsonl'}:1: 'title' indexed as 'Titre [2J sale': it held a control character (U+001B at position 5), replaced by spaces" in res.stderr
    assert f"{tmp_path / 'docs' / 'note.txt'}:2: title indexed as 'Note du jour': it held a control character (U+0009 at position 4), replaced by spaces" in res.stderr
    assert json.loads(_qa_here("docs", "show", "r1", "--json", data_dir=data).stdout)["title"] == "Titre [2J sale"


def test_indexing_again_a_file_whose_script_url_an_older_version_stored(tmp_path, embedder):
    """Reproduced first: an older version stored a file's `javascript:` URL; `qa index` on the same file
    then warned "send the document again with its http(s) address" while it was doing just that, and
    left the file's URL out without a word. Now the index opened to write removes the stored URL once
    (one warning naming the document and the URL), and the file's URL, left out, is named with its line."""
    from index.ingest import load_documents
    from index.store import IndexStore
    from tests.store_support import store_url_as_an_older_version, stored_url

    data = tmp_path / "idx"
    art = tmp_path / "art.md"
    art.write_text("---\ntitle: Article\nurl: javascript:alert(1)\n---\nLe siège est à Lyon depuis 1990.\n", encoding="utf-8")
    with IndexStore.open(data, embedder) as store:
        store.add_documents(load_documents([art])[0])
    store_url_as_an_older_version(data, "art", "javascript:alert(1)")
    res = _qa("index", str(art), data_dir=data)
    assert res.returncode == 0, res.stderr
    assert f"{art}:3: front matter 'url' ignored: it uses the javascript: scheme, which runs code in a browser" in res.stderr
    assert "document 'art': removed the URL 'javascript:alert(1)' that an earlier version stored (the document is kept)" in res.stderr
    assert "send the document again" not in res.stderr and "is not given out" not in res.stderr, res.stderr
    assert "1 read (0 added, 0 updated, 1 unchanged)" in res.stdout  # what the file holds, as stored now
    assert stored_url(data, "art") is None
    again = _qa("index", str(art), data_dir=data)
    assert again.returncode == 0 and "removed the URL" not in again.stderr and "1 unchanged" in again.stdout


def test_docs_list_search_finds_a_part_of_a_title_or_an_id(tmp_path):
    """`qa docs list --search TEXT`, as GET /documents?q=: the documents whose title or id holds TEXT,
    case, accents, punctuation and spacing aside, by id; `total` (and the count said) counts them."""
    data = tmp_path / "idx"
    recs = tmp_path / "recs.jsonl"
    recs.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"id": "q-ete", "title": "L’Été  des séries FRANÇAISES", "text": "Un été de séries."},
        {"id": "q-oeuvre", "title": "Une œuvre", "text": "Une œuvre nouvelle."},
        {"id": "Q-ÉTÉ-2", "title": "Sans rapport", "text": "Autre chose."},
        {"id": "004_c0583748", "title": 'Le géant du "streaming"', "text": "Une plateforme."},
    ]) + "\n", encoding="utf-8")
    assert _qa_here("index", str(recs), data_dir=data).returncode == 0

    def found(text: str, *more: str) -> tuple[list[str], int]:
        res = _qa_here("docs", "list", "--search", text, "--json", *more, data_dir=data)
        assert res.returncode == 0, res.stderr
        page = json.loads(res.stdout)
        return [i["id"] for i in page["items"]], page["total"]

    assert found("l'ete des series francaises") == (["q-ete"], 1)
    assert found("ÉTÉ") == (["Q-ÉTÉ-2", "q-ete"], 2)  # a title or an id, by id as without --search
    assert found("oeuvre") == found("ŒUVRE") == (["q-oeuvre"], 1)
    assert found("  des   séries ") == (["q-ete"], 1)
    assert found("ete", "--offset", "1") == (["q-ete"], 2) and found("ete", "--limit", "1") == (["Q-ÉTÉ-2"], 2)
    assert found("no such title") == ([], 0)
    # punctuation is a space, in titles, ids and TEXT alike
    assert found("l ete, des series") == (["q-ete"], 1)
    assert found("geant du streaming") == found("004_c05") == found("004 C05") == found("004-c0583748") == (["004_c0583748"], 1)
    plain = _qa_here("docs", "list", "--search", "ete", data_dir=data)
    assert plain.returncode == 0 and plain.stdout.splitlines()[0].startswith("Q-ÉTÉ-2\t1 chunk\t") and plain.stdout.count("\n") == 2
    assert "2 documents holding 'ete' (1-2 shown)" in plain.stderr
    # blank is a mistake (`--search "$UNSET"`), not "every document"; text that is not UTF-8 holds nothing
    for text, said in (("  ", "--search must be a part of a title or an id, not empty"), ("\udcff", "is not UTF-8 text"),
                       ("« — »", "--search must hold a letter or a digit: punctuation counts as a space")):
        res = _qa_here("docs", "list", "--search", text, data_dir=data)
        assert res.returncode == 2 and said in res.stderr and res.stdout == "", res.stderr


def test_an_id_given_with_surrounding_spaces(tmp_path, embedder):
    """Ids are stored stripped: `qa docs show " note-1 "` found nothing (so did delete). It shows
    "note-1" now, as GET does; a delete acts on the id given only and its error names the one to
    use. An id that an older version stored with its spaces is reached as given first."""
    from index.schema import Document
    from index.store import IndexStore
    from tests.store_support import store_under_id

    data = tmp_path / "idx"
    recs = tmp_path / "recs.jsonl"
    recs.write_text(json.dumps({"id": " note-1 ", "title": "Note", "text": "Le siège est à Nantes."}) + "\n", encoding="utf-8")
    assert _qa_here("index", str(recs), data_dir=data).returncode == 0
    for given in (" note-1 ", "\u00a0note-1\t"):
        shown = _qa_here("docs", "show", given, "--json", data_dir=data)
        assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == "note-1", shown.stderr
    assert _qa_here("docs", "show", " note-1 ", data_dir=data).stdout.startswith("id: note-1\n")
    deleted = _qa_here("docs", "delete", " note-1 ", data_dir=data)
    assert deleted.returncode == 1 and deleted.stdout == ""
    assert deleted.stderr == f"error: no document ' note-1 ' in {data}; did you mean 'note-1'? (ids are stored without surrounding whitespace)\n"
    as_json = _qa_here("docs", "delete", " note-1 ", "--json", data_dir=data)
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout) == {"detail": "document ' note-1 ' not found; did you mean 'note-1'? (ids are stored without surrounding whitespace)"}
    assert _qa_here("docs", "show", "note-1", data_dir=data).returncode == 0  # still there
    unknown = _qa_here("docs", "delete", " nope ", data_dir=data)
    assert unknown.returncode == 1 and unknown.stderr == f"error: no document ' nope ' in {data} (see `qa docs list`)\n"
    # another case, or the file's name: the id meant is named (as GET and DELETE /documents/{id} do), nothing is deleted
    for verb in ("show", "delete"):
        for given in ("NOTE-1", "note-1.txt"):
            res = _qa_here("docs", verb, given, data_dir=data)
            assert res.returncode == 1 and res.stderr == f"error: no document {given!r} in {data}; did you mean 'note-1'? (see `qa docs list`)\n", res.stderr
        as_json = _qa_here("docs", verb, "NOTE-1", "--json", data_dir=data)
        assert json.loads(as_json.stdout) == {"detail": "document 'NOTE-1' not found; did you mean 'note-1'?"}
    assert _qa_here("docs", "show", "note-1", data_dir=data).returncode == 0

    # " old " stored with its spaces by an older version, beside "old": each reached by its own id
    with IndexStore.open(data, embedder) as store:
        store.add_documents([Document(id="old", title="Ancienne", text="Le siège était à Lille.")])
    store_under_id(data, "old", " old ")
    with IndexStore.open(data, embedder) as store:
        store.add_documents([Document(id="old", title="Nouvelle", text="Le siège est à Lille.")])
    assert json.loads(_qa_here("docs", "show", " old ", "--json", data_dir=data).stdout)["title"] == "Ancienne"
    deleted = _qa_here("docs", "delete", " old ", "--json", data_dir=data)
    assert deleted.returncode == 0 and json.loads(deleted.stdout) == {"id": " old ", "deleted": True}, deleted.stderr
    assert json.loads(_qa_here("docs", "show", " old ", "--json", data_dir=data).stdout)["title"] == "Nouvelle"


def test_a_pdf_and_a_docx_are_indexed_searched_and_answered(tmp_path):
    """With the real models: `qa index` reads a PDF (lines joined, two pages) and a .docx; `qa search`
    finds them and `qa ask` answers from the PDF, its offsets slicing the extracted text."""
    from tests.document_files import write_docx, write_pdf

    docs, data = tmp_path / "docs", tmp_path / "idx"
    docs.mkdir()
    write_pdf(docs / "budget.pdf", [
        ["Budget de la ville de Besançon", "Le conseil municipal a voté un budget de", "148 millions d’euros pour l’année 2024.",
         "La rénovation de la piscine Mallarmé coûtera", "12 millions d’euros."],
        ["Le maire, Anne Vignot, a présenté le budget en séance."],
    ], {"/Title": "Budget 2024", "/CreationDate": "D:20240315"})
    write_docx(docs / "note.docx", [("Le tramway de Besançon", "Heading 1"), ("Le tramway transporte 60 000 voyageurs par jour.", None)])
    (docs / "cut.pdf").write_bytes(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog")  # a download cut short
    res = _qa("index", str(docs), data_dir=data)
    assert res.returncode == 1 and "2 read (2 added" in res.stdout and "skipped: 1 (files or records, listed above)" in res.stdout, res.stderr
    # one line for the damaged file, not pypdf's own warnings about it
    [said] = [line for line in res.stderr.splitlines() if "cut.pdf" in line or "pypdf" in line]
    assert said.startswith(f"skipped {docs / 'cut.pdf'}: not a readable PDF (damaged?): Pdf"), res.stderr
    found = json.loads(_qa_here("search", "rénovation de la piscine", "--json", data_dir=data).stdout)
    assert found["results"][0]["document_id"] == "budget" and found["results"][0]["title"] == "Budget 2024"
    assert json.loads(_qa_here("search", "voyageurs du tramway", "--json", data_dir=data).stdout)["results"][0]["document_id"] == "note"
    asked = _qa_here("ask", "Combien coûtera la rénovation de la piscine Mallarmé ?", "--json", data_dir=data)
    assert asked.returncode == 0, asked.stderr
    top = json.loads(asked.stdout)["answers"][0]
    text = json.loads(_qa_here("docs", "show", "budget", "--json", data_dir=data).stdout)["text"]
    assert text.startswith("Budget de la ville de Besançon\nLe conseil municipal a voté un budget de 148 millions d’euros pour l’année 2024.\n")
    assert top["document_id"] == "budget" and "12 millions" in top["text"] and text[top["start"] : top["end"]] == top["text"]
