"""Files sent to POST /documents/files read as `qa index` reads them (api/uploads.py): no model needed.

The HTTP side (status codes, the body guard, auth, writes) is in tests/test_api.py."""

from __future__ import annotations

import errno
import io
import json
import os
import stat
import tempfile
from pathlib import Path

import pytest

import api.uploads as uploads
from api.uploads import MAX_PROBLEMS, Upload, UploadNotSaved, UploadRefused, read_uploads, upload_name
from index.ingest import load_documents
from tests.document_files import write_docx, write_pdf


def up(name: str | None, data: bytes) -> Upload:
    return Upload(name, io.BytesIO(data))


def refused(files: list[Upload], max_documents: int = 1000) -> list[dict]:
    with pytest.raises(UploadRefused) as info:
        read_uploads(files, max_documents)
    return info.value.errors


@pytest.fixture
def own_tmp(tmp_path, monkeypatch) -> Path:
    """The system temporary folder, one the test can look into."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.mark.parametrize(
    "sent, name",
    [
        ("rapport.pdf", "rapport.pdf"),
        ("../../rapport.pdf", "rapport.pdf"),  # never a path of the server
        ("/etc/cron.d/x.txt", "x.txt"),
        ("C:\\Users\\moi\\note.docx", "note.docx"),  # a Windows client's whole path
        ("..\\..\\note.md", "note.md"),
        ("cafe\u0301.txt", "café.txt"),  # NFC, as `qa index` names files
        ("..txt", "..txt"),  # a name, though `qa index` refuses its id ("..")
    ],
)
def test_an_uploaded_file_is_named_after_the_last_component_of_its_name(sent, name):
    assert upload_name(sent) == name


@pytest.mark.parametrize(
    "sent, says",
    [
        (None, "no file name"),
        ("", "no file name"),
        (".", "no last component"),
        ("..", "no last component"),
        ("a/..", "no last component"),
        ("dossier/", "no last component"),
        ("C:\\x\\", "no last component"),
        ("  ", "no last component"),
        ("a\x00b.txt", "control character (U+0000 at position 1)"),
        ("a\nb.txt", "control character (U+000A at position 1)"),
        ("x/\x1b[31mrouge.txt", "control character (U+001B at position 0)"),
        ("é" * 130 + ".txt", "264 bytes long in UTF-8, at most 255"),
    ],
)
def test_a_name_no_file_can_have_here_is_refused_saying_why(sent, says):
    with pytest.raises(ValueError) as info:
        upload_name(sent)
    assert says in str(info.value)


def test_files_are_read_as_qa_index_reads_files_of_their_names(tmp_path, own_tmp):
    pdf = write_pdf(tmp_path / "rapport.pdf", [["Le rapport annuel de la société.", "Il tient en deux pages."], ["La deuxième page."]])
    docx = write_docx(tmp_path / "note.docx", [("Note interne", "Heading 1"), ("La note parle du budget.", None)])
    md = "---\ntitle: Compte rendu\ndate: 2021-05-03\n---\nLa réunion a eu lieu à Lyon.\n".encode()
    jsonl = b'{"id": "r1", "title": "Un", "text": "Premier enregistrement.", "metadata": {"source_file": "export.csv"}}\n{"id": "r2", "text": "Second."}\n'
    sent = [up("rapport.pdf", pdf.read_bytes()), up("C:\\docs\\note.docx", docx.read_bytes()), up("../cr.md", md), up("export.jsonl", jsonl)]
    docs = read_uploads(sent, 1000)
    # what `qa index` gives for the same files, their own paths aside
    local = tmp_path / "local"
    local.mkdir()
    for name, data in (("rapport.pdf", pdf.read_bytes()), ("note.docx", docx.read_bytes()), ("cr.md", md), ("export.jsonl", jsonl)):
        (local / name).write_bytes(data)
    expected, errors = load_documents([local / n for n in ("rapport.pdf", "note.docx", "cr.md", "export.jsonl")])
    assert errors == []
    assert [d.id for d in docs] == [d.id for d in expected] == ["rapport", "note", "cr", "r1", "r2"]
    for got, want in zip(docs, expected):
        assert (got.text, got.title, got.url, got.published) == (want.text, want.title, want.url, want.published)
    # source_file names the file as sent, never the server's temporary path; a record's own is kept
    # and a record without one is named after the export it was sent in, as `qa index` names it after its file
    assert [d.metadata.get("source_file") for d in docs] == ["rapport.pdf", "note.docx", "cr.md", "export.csv", "export.jsonl"]
    assert docs[0].metadata["pages"] == 2 and docs[2].title == "Compte rendu" and docs[2].published == "2021-05-03"
    assert list(own_tmp.iterdir()) == []  # the temporary folder is gone


def test_files_are_saved_in_a_private_folder_that_is_removed(own_tmp, monkeypatch):
    seen = []
    real = uploads.load_documents

    def spy(paths):
        [path] = paths
        seen.append((path, stat.S_IMODE(os.stat(path.parent.parent).st_mode), path.exists()))
        return real(paths)

    monkeypatch.setattr(uploads, "load_documents", spy)
    errors = refused([up("a.txt", b"Un texte."), up("../a.txt", b"Un autre texte.")])
    # two parts with one name: each saved in a folder of its own, both read, their one id refused
    assert [p.name for p, _, _ in seen] == ["a.txt", "a.txt"] and seen[0][0] != seen[1][0]
    assert all(mode & 0o077 == 0 and exists for _, mode, exists in seen)  # only the server's user can read them
    assert all(own_tmp in p.parents for p, _, _ in seen)
    assert [e["loc"] for e in errors] == [("body", "files", 1)]
    assert "a.txt gives the document id 'a', as a.txt (part 0) does" in errors[0]["msg"]
    assert list(own_tmp.iterdir()) == []  # removed after a refusal too
    read_uploads([up("b.txt", b"Un texte.")], 1000)
    assert list(own_tmp.iterdir()) == []


def test_one_unreadable_file_refuses_them_all_naming_each_part(tmp_path, own_tmp):
    pdf = write_pdf(tmp_path / "ok.pdf", [["Un rapport lisible."]])
    damaged = pdf.read_bytes()[: len(pdf.read_bytes()) // 2]
    errors = refused([up("ok.pdf", pdf.read_bytes()), up("abime.pdf", damaged), up("photo.jpg", b"\xff\xd8"), up("bon.txt", b"Un texte."),
                      up("bon.md", b"Un autre texte."), up("lignes.jsonl", b'{"id": "x", "text": "Un."}\n{"id": "y"}\nnope\n')])
    by_part = [(e["loc"][2], e["msg"]) for e in errors]
    assert [i for i, _ in by_part] == [1, 2, 4, 5, 5]
    assert by_part[0][1].startswith("Value error, abime.pdf: ") and "PDF" in by_part[0][1]
    assert by_part[1][1] == "Value error, photo.jpg: unsupported file type '.jpg' (use .txt, .md, .html, .json, .jsonl, .pdf or .docx)"
    assert "bon.md gives the document id 'bon', as bon.txt (part 3) does" in by_part[2][1]
    assert by_part[3][1] == "Value error, lignes.jsonl:2: missing or empty 'text'"
    assert by_part[4][1].startswith("Value error, lignes.jsonl:3: invalid JSON")
    assert all(e["input"] == name for e, name in zip(errors, ["abime.pdf", "photo.jpg", "bon.md", "lignes.jsonl", "lignes.jsonl"]))
    assert not any(str(own_tmp) in json.dumps(e) for e in errors)  # the server's paths are never told
    assert list(own_tmp.iterdir()) == []


def test_an_encrypted_pdf_and_a_damaged_docx_are_named(tmp_path):
    locked = write_pdf(tmp_path / "secret.pdf", [["Confidentiel."]], password="motdepasse")
    errors = refused([up("secret.pdf", locked.read_bytes()), up("note.docx", b"PK\x03\x04 not really a zip")])
    assert [e["loc"][2] for e in errors] == [0, 1]
    assert "secret.pdf: " in errors[0]["msg"] and "password" in errors[0]["msg"]
    assert errors[1]["msg"] == "Value error, note.docx: not a .docx file (not a zip archive): damaged, or another format named .docx?"


def test_bad_names_are_refused_before_anything_is_saved(own_tmp, monkeypatch):
    monkeypatch.setattr(uploads, "_read_one", lambda *a: pytest.fail("a file was saved"))
    errors = refused([up("ok.txt", b"Un texte."), up("..", b"x"), up("a\x00.txt", b"x")])
    assert [e["loc"] for e in errors] == [("body", "files", 1), ("body", "files", 2)]
    assert errors[1]["input"] == "a\x00.txt"


def test_a_file_without_documents_and_too_many_documents_are_refused():
    errors = refused([up("vide.json", b'{"documents": []}')])
    assert errors[0]["msg"] == "Value error, vide.json: no document in the file"
    lines = b"".join(b'{"id": "d%d", "text": "Texte %d."}\n' % (i, i) for i in range(5))
    errors = refused([up("d.jsonl", lines)], max_documents=4)
    assert errors[0]["loc"] == ("body", "files") and "hold 5 documents, at most 4 are written per request" in errors[0]["msg"]
    assert len(read_uploads([up("d.jsonl", lines)], 5)) == 5


def test_at_most_so_many_problems_are_listed():
    lines = b"nope\n" * (MAX_PROBLEMS + 7)
    errors = refused([up("bad.jsonl", lines)])
    assert len(errors) == MAX_PROBLEMS + 1
    assert errors[-1]["loc"] == ("body", "files") and "7 more problems in these files are not listed" in errors[-1]["msg"]


def test_a_temporary_folder_that_cannot_take_the_files_says_so(tmp_path, monkeypatch):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    monkeypatch.setattr(tempfile, "tempdir", str(not_a_folder))
    with pytest.raises(UploadNotSaved) as info:
        read_uploads([up("a.txt", b"Un texte.")], 1000)
    assert info.value.cause.errno == errno.ENOTDIR
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(uploads.shutil, "copyfileobj", full)
    with pytest.raises(UploadNotSaved) as info:
        read_uploads([up("a.txt", b"Un texte.")], 1000)
    assert info.value.cause.errno == errno.ENOSPC
    assert [p.name for p in tmp_path.iterdir()] == ["file"]  # nothing left behind
