"""Reading files and folders: metadata of the seed articles, HTML, JSON/JSONL, bad files reported."""

from __future__ import annotations

import json

import pytest

from index.ingest import IngestError, load_documents, normalize_date, text_metadata
from index.retrieval import normalize_domain

from pathlib import Path

ARTICLES = Path(__file__).resolve().parents[1] / "data" / "articles"

HTML = """<!DOCTYPE html><html lang="fr"><head><title>Amazon contre Netflix | Le Journal</title>
<link rel="canonical" href="https://www.lejournal.fr/medias/amazon-netflix.html">
<meta property="article:published_time" content="2018-02-03T10:00:00+01:00">
<script>var tracking = "ne pas indexer";</script></head>
<body><nav><ul><li>Accueil</li><li>Politique</li><li>Sport</li></ul></nav>
<article><h1>Amazon veut concurrencer Netflix</h1>
<p>Amazon présentera la semaine prochaine sa première création originale française, une nouvelle étape dans le développement du service de vidéos par abonnement du groupe américain.</p>
<p>Selon le Centre national du cinéma, le catalogue de Netflix est le plus étoffé en France avec 2.905 titres en septembre contre 558 pour Amazon Prime.</p>
</article><footer>Mentions légales - Cookies - Abonnez-vous à la newsletter</footer></body></html>"""


def test_seed_articles_metadata_and_verbatim_text():
    docs, errors = load_documents([ARTICLES])
    assert errors == []
    by_id = {d.id: d for d in docs}
    assert sorted(by_id) == sorted(p.stem for p in ARTICLES.glob("*.txt"))
    for d in docs:
        with open(ARTICLES / f"{d.id}.txt", encoding="utf-8", newline="") as f:
            assert d.text == f.read(), "text is kept verbatim"
        assert d.title and not d.title.startswith("#") and not d.title.startswith("http")
    a = by_id["000_98d13288281ea780"]
    assert a.title == "Netflix veut produire 31 séries originales en 2016"
    assert a.url == "https://www.numerama.com/pop-culture/133992-netflix-va-produire-deux-fois-plus-de-series-originales-en-2016.html"
    assert a.published == "2015-12-08"  # from the byline "• [Julien Cadot](#) - 08 décembre 2015"
    assert by_id["001_005d409384642fd6"].title == "Une nouvelle preuve que Netflix mise vraiment sur la France"
    assert by_id["002_affb09736d3cc83f"].title == "Amazon veut concurrencer Netflix sur les séries françaises"
    b = by_id["004_c0583748e5709aa4"]
    assert b.published == "2017-10"
    assert b.title.startswith("Alors que la saison 2 de Stranger Things") and "date" not in b.title
    for doc_id in ("001_005d409384642fd6", "002_affb09736d3cc83f", "003_07cab7c1bfb46b55"):
        assert by_id[doc_id].url is None and by_id[doc_id].published is None


def test_text_metadata_variants():
    assert text_metadata("# Titre markdown\n\n<https://ex.com/a>\n\ndate: 2017-10-27\nCorps.") == ("Titre markdown", "https://ex.com/a", "2017-10-27")
    assert text_metadata("https://ex.com/x\nLe titre\ncorps") == ("Le titre", "https://ex.com/x", None)
    title, url, published = text_metadata("Un titre\nLe texte cite https://ex.com dans une phrase.")
    assert (title, url, published) == ("Un titre", None, None)
    for tag in ("date: 2017-10-27", "Date = 2017-10-27", "date 2017-10-27", "DATE:2017-10-27", "date\t:\t2017-10-27"):
        assert text_metadata(f"Titre\n{tag}\nCorps.")[2] == "2017-10-27", tag


def test_metadata_nested_too_deep_is_a_located_error(tmp_path):
    deep = '{"a":' * 40 + "1" + "}" * 40
    (tmp_path / "recs.jsonl").write_text('{"id": "ok", "text": "Un."}\n{"id": "deep", "text": "Deux.", "metadata": ' + deep + "}\n", encoding="utf-8")
    docs, errors = load_documents([tmp_path / "recs.jsonl"])
    assert [d.id for d in docs] == ["ok"]
    assert [(e.line, e.reason) for e in errors] == [(2, "'metadata' nests objects or lists more than 32 levels deep")]


def test_a_long_run_of_spaces_after_date_is_read_in_linear_time():
    """A hang guard, not a timing bar: "date" + 100k spaces took minutes with the old pattern
    (quadratic backtracking), milliseconds now."""
    import time

    t0 = time.process_time()
    assert text_metadata("date" + " " * 100_000 + "x\nNetflix ouvre un bureau.")[2] is None
    assert time.process_time() - t0 < 5


def test_crlf_bom_and_markdown(tmp_path):
    (tmp_path / "a.md").write_bytes("\ufeff## Titre Windows\r\n\r\nPremière ligne.\r\n".encode("utf-8"))
    docs, errors = load_documents([tmp_path / "a.md"])
    assert errors == [] and docs[0].title == "Titre Windows"
    assert docs[0].text == "## Titre Windows\r\n\r\nPremière ligne.\r\n"
    # only the leading BOM is dropped from the text; a second one (files joined by a tool) stays in
    # the text, but not in the title
    (tmp_path / "b.md").write_bytes("\ufeff\ufeff# \u200eTitre\u200b\n\nLigne.\n".encode("utf-8"))
    docs, errors = load_documents([tmp_path / "b.md"])
    assert errors == [] and docs[0].title == "Titre" and docs[0].text == "\ufeff# \u200eTitre\u200b\n\nLigne.\n"


def test_html_main_text_via_trafilatura(tmp_path):
    (tmp_path / "page.html").write_text(HTML, encoding="utf-8")
    docs, errors = load_documents([tmp_path])
    assert errors == [] and len(docs) == 1
    d = docs[0]
    assert d.id == "page"
    assert "2.905 titres" in d.text and "première création originale française" in d.text
    assert "Mentions légales" not in d.text and "tracking" not in d.text and "Accueil" not in d.text
    assert d.url == "https://www.lejournal.fr/medias/amazon-netflix.html"
    assert d.published == "2018-02-03"
    assert d.title and "Amazon" in d.title


def test_json_and_jsonl_records(tmp_path):
    recs = [
        {"id": "r1", "title": "Un", "text": "Premier texte.", "url": "https://a.fr/1", "published": "2017-10", "metadata": {"lang": "fr"}},
        {"id": "r2", "text": "Deuxième texte.", "published": "2018-01-02T08:00:00Z"},
    ]
    (tmp_path / "many.json").write_text(json.dumps(recs), encoding="utf-8")
    (tmp_path / "one.json").write_text(json.dumps({"id": "solo", "text": "Seul."}), encoding="utf-8")
    lines = [json.dumps({"id": "l1", "text": "Ligne un."}), "", json.dumps({"id": "l2", "text": "Ligne deux.", "title": "Deux"})]
    (tmp_path / "recs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    docs, errors = load_documents([tmp_path])
    assert errors == []
    by_id = {d.id: d for d in docs}
    assert sorted(by_id) == ["l1", "l2", "r1", "r2", "solo"]
    assert by_id["r1"].published == "2017-10" and by_id["r1"].url == "https://a.fr/1"
    assert by_id["r1"].metadata == {"lang": "fr", "source_file": str((tmp_path / "many.json").absolute())}
    assert by_id["r2"].published == "2018-01-02"
    assert by_id["l2"].title == "Deux"


def test_records_name_the_export_they_were_read_from(tmp_path, monkeypatch):
    """A record's documents had no source_file (a file's have its absolute path): nobody could tell
    which export it came from, and `qa index --prune` could not tell that a record left its export."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exports").mkdir()
    lines = [{"id": "a", "text": "Un texte."}, {"id": "b", "text": "Deux textes.", "metadata": {"source_file": "crm/fiche-12.pdf"}}]
    (tmp_path / "exports" / "crm.jsonl").write_text("\n".join(map(json.dumps, lines)) + "\n", encoding="utf-8")
    (tmp_path / "exports" / "one.json").write_text(json.dumps({"id": "solo", "text": "Seul."}), encoding="utf-8")
    docs, errors = load_documents([Path("exports")])  # a relative folder: the paths stored are absolute all the same
    assert errors == []
    by_id = {d.id: d.metadata.get("source_file") for d in docs}
    # the record's own source_file (an export of another system naming its original) is its data: kept
    assert by_id == {"a": str(tmp_path / "exports" / "crm.jsonl"), "b": "crm/fiche-12.pdf", "solo": str(tmp_path / "exports" / "one.json")}


def test_other_fields_of_records_are_kept_in_metadata_and_named(tmp_path, caplog):
    """A newsroom export's "author" or "date" was dropped without a word."""
    import logging

    rec = {"id": "a", "title": "Rugby", "text": "Toulouse champion.", "date": "2023-06-17", "author": "J. Martin", "metadata": {"author": "kept"}}
    (tmp_path / "export.jsonl").write_text(json.dumps(rec) + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="index.ingest"):
        (doc,), errors = load_documents([tmp_path / "export.jsonl"])
    assert errors == [] and doc.metadata == {"author": "kept", "date": "2023-06-17", "source_file": str((tmp_path / "export.jsonl").absolute())}
    assert doc.published is None
    assert "fields 'author', 'date' are not document fields" in caplog.text and "name it 'published'" in caplog.text
    assert "not stored where 'metadata' already has the key: 'author'" in caplog.text


def test_numbers_json_cannot_hold_are_refused_in_records(tmp_path):
    """NaN and 1e400 were stored as NaN / Infinity: not JSON, so reading the document back failed."""
    (tmp_path / "r.jsonl").write_text('{"id": "a", "text": "Un texte.", "score": NaN}\n{"id": "b", "text": "Un texte.", "metadata": {"x": 1e400}}\n{"id": "c", "text": "Un texte."}\n', encoding="utf-8")
    docs, errors = load_documents([tmp_path / "r.jsonl"])
    assert [d.id for d in docs] == ["c"]
    assert [(e.line, e.reason) for e in errors] == [(1, "fields 'score' (kept in metadata) holds nan at score, not a JSON number: write a finite number"),
                                                  (2, "'metadata' holds inf at x, not a JSON number: write a finite number")]


def test_html_in_the_charset_it_declares(tmp_path):
    page = '<html><head><meta charset="windows-1252"><title>Grève</title></head><body><article><p>La grève des cheminots a entraîné l’annulation de 60 % des TGV jeudi, selon la direction de la SNCF, et les usagers ont dû patienter.</p></article></body></html>'
    (tmp_path / "cp1252.html").write_bytes(page.encode("cp1252"))
    (tmp_path / "undeclared.htm").write_bytes(page.replace('<meta charset="windows-1252">', "").encode("cp1252"))
    xhtml = '<?xml version="1.0" encoding="ISO-8859-1"?>\n' + page.replace('<meta charset="windows-1252">', "").replace("’", "'")
    (tmp_path / "declared-by-xml.html").write_bytes(xhtml.encode("latin-1"))
    (tmp_path / "comment-only.html").write_bytes(b"<!-- caf\xe9 -->")  # nothing to read: said, not a crash
    # a <meta> commented out is not the page's; a page in cp1252 "declaring" UTF-16 is not UTF-16
    (tmp_path / "commented.html").write_bytes(page.replace('<meta charset="windows-1252">', '<!-- <meta charset="koi8-r"> --><meta charset="windows-1252">').encode("cp1252"))
    (tmp_path / "utf16.html").write_bytes(page.replace("windows-1252", "utf-16").encode("cp1252"))
    (tmp_path / "notepad-unicode.html").write_bytes(page.replace('<meta charset="windows-1252">', "").encode("utf-16"))  # with its BOM
    # 0x81 is unassigned in windows-1252: read as browsers do, not refused
    (tmp_path / "odd-byte.html").write_bytes(page.encode("cp1252").replace(b"60 %", b"60 %\x81"))
    docs, errors = load_documents([tmp_path])
    assert [(e.path.rsplit("/", 1)[-1], e.reason) for e in errors] == [("comment-only.html", "no main text found in the HTML")]
    assert len(docs) == 7
    for d in docs:
        assert "La grève des cheminots a entraîné l" in d.text


def test_dates_in_the_article_body_are_not_its_publication_date():
    assert text_metadata("La rocade de Rennes sera élargie\n\nLes travaux commenceront le 1er septembre 2027.\n\nSuite.")[2] is None
    assert text_metadata("Le nouveau lycée\n\nLa date 2030 a été retenue pour l'ouverture.\n")[2] is None
    assert text_metadata("Titre\n\nPar J. Martin, publié le 3 mai 2021\n\nTexte.")[2] == "2021-05-03"
    assert text_metadata("Titre\n\n*Date : 2021-05*\n\nTexte.")[2] == "2021-05"
    assert text_metadata("Titre\n\nMis à jour le 3 mai 2021 à 14h32.\n\nTexte.")[2] == "2021-05-03"
    assert text_metadata("Titre\n\nPar J. Martin. Publié le 3 mai 2021.\n\nTexte.")[2] == "2021-05-03"
    assert text_metadata("Titre\n\nLe 3 mai 2021.\n\nTexte.")[2] == "2021-05-03"
    for sentence in ("Partout en France, la réforme entrera en vigueur le 1er septembre 2027.", "Paris accueillera les Jeux le 26 juillet 2024.",
                     "Le 1er septembre 2027, les travaux du tram commenceront.", "Par ailleurs, le 3 mai 2021, le ministre a démissionné.",
                     "Elle naîtra le 3 mai 2021.", "Rendez-vous le 3 mai 2021.", "# Attentats du 13 novembre 2015 : le procès s'ouvre à Paris"):
        assert text_metadata(f"Titre\n\n{sentence}\n\nTexte.")[2] is None, sentence


def test_markdown_front_matter_is_metadata_not_text(tmp_path):
    body = "La mairie de Marseille a annoncé que le Vieux-Port sera piéton.\n"
    (tmp_path / "hugo.md").write_text('---\ntitle: "Le Vieux-Port piéton"\ndate: 2023-09-04T10:00:00+02:00\nurl: https://gazette.example.fr/vieux-port\ntags:\n  - ville\n---\n' + body, encoding="utf-8")
    (tmp_path / "crlf.md").write_bytes(("---\r\ntitle: Vieux-Port\r\nurl: https://gazette.example.fr/vp\r\ndate: 2023-09-04\r\n---\r\n" + body).encode("utf-8"))
    rule = "---\n\nUn paragraphe important.\n\n---\n\nSuite.\n"  # a horizontal rule, not front matter
    (tmp_path / "rule.md").write_text(rule, encoding="utf-8")
    docs, errors = load_documents([tmp_path])
    assert errors == []
    by_id = {d.id: d for d in docs}
    for name, title, url in (("hugo", "Le Vieux-Port piéton", "https://gazette.example.fr/vieux-port"), ("crlf", "Vieux-Port", "https://gazette.example.fr/vp")):
        doc = by_id[name]
        assert doc.text == body and (doc.title, doc.url, doc.published) == (title, url, "2023-09-04")
    assert by_id["rule"].text == rule


def test_front_matter_values_stay_text_and_hostile_blocks_are_not_read(tmp_path):
    """YAML would read "title: 1984" as a number and "title: No" as false; and a 5,000-digit number
    or thousands of nested "[" raised errors that ended the whole `qa index` run."""
    (tmp_path / "plain.md").write_text("---\ntitle: 1984\ndate: 2023\n---\nLe roman d'Orwell.\n", encoding="utf-8")
    (tmp_path / "digits.md").write_text("---\nid: " + "1" * 5000 + "\n---\nUn texte.\n", encoding="utf-8")
    (tmp_path / "nested.md").write_text("---\nx: " + "[" * 6000 + "\n---\nUn texte.\n", encoding="utf-8")
    # YAML nulls are no value, and an empty date does not hide the next one
    (tmp_path / "nulls.md").write_text("---\ntitle: ~\ndate:\npublishdate: 2021-05-03\n---\n# Grève\n\nLa grève continue.\n", encoding="utf-8")
    docs, errors = load_documents([tmp_path])
    assert errors == []
    by_id = {d.id: d for d in docs}
    assert (by_id["plain"].title, by_id["plain"].published, by_id["plain"].text) == ("1984", "2023", "Le roman d'Orwell.\n")
    assert by_id["digits"].text == "Un texte.\n"  # read as text, not converted to a number
    assert by_id["nested"].text.startswith("---")  # not readable as front matter: kept as text
    assert (by_id["nulls"].title, by_id["nulls"].published) == ("Grève", "2021-05-03")


def test_files_are_named_after_their_path_in_the_folder(tmp_path):
    """A mirrored site has an index.html in every folder: each is its own document."""
    import unicodedata

    for section in ("eco", "sport"):
        (tmp_path / "site" / section).mkdir(parents=True)
        (tmp_path / "site" / section / "index.txt").write_text(f"Rubrique {section}\n\nLe texte de la rubrique {section}.", encoding="utf-8")
    (tmp_path / "site" / "une.txt").write_text("La une\n\nLe texte de la une.", encoding="utf-8")
    (tmp_path / "site" / unicodedata.normalize("NFD", "été.txt")).write_text("Été\n\nIl fait chaud.", encoding="utf-8")
    docs, errors = load_documents([tmp_path / "site"])
    assert errors == [] and sorted(d.id for d in docs) == ["eco/index", "sport/index", "une", "été"]  # NFC, as users type it
    (doc,), _ = load_documents([tmp_path / "site" / "eco" / "index.txt"])  # a file named itself: its name
    assert doc.id == "index"


def test_file_names_no_request_could_name_are_refused(tmp_path):
    (tmp_path / "tab\there.txt").write_text("Un texte.", encoding="utf-8")
    (tmp_path / "  .txt").write_text("Un texte.", encoding="utf-8")
    (tmp_path / "ok.txt").write_text("Un texte.", encoding="utf-8")
    docs, errors = load_documents([tmp_path])
    assert [d.id for d in docs] == ["ok"]
    reasons = sorted(e.reason for e in errors)
    assert reasons[0].startswith("the file name gives the document id '', which must not be empty: rename the file")
    assert reasons[1].startswith("the file name gives the document id 'tab\\there', which must not contain control characters")


def test_files_of_other_types_in_folders_are_counted(tmp_path, caplog):
    import logging

    for name in ("a.odt", "b.odt", "c.xml", "ok.txt"):
        (tmp_path / name).write_text("Un texte.", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="index.ingest"):
        docs, errors = load_documents([tmp_path])
    assert [d.id for d in docs] == ["ok"] and errors == []
    assert "not read: 3 files of other types in the folders (2 .odt, 1 .xml); qa index reads .txt, .md, .html, .json, .jsonl, .pdf and .docx" in caplog.text


def test_bad_files_are_reported_and_the_rest_is_read(tmp_path):
    (tmp_path / "good.txt").write_text("Un titre\n\nUn texte correct.", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("Titre\nUn texte accentué en latin-1 : été".encode("latin-1"))
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.md").write_text("   \n\n  ", encoding="utf-8")
    lines = [
        json.dumps({"id": "ok1", "text": "Bon."}),
        json.dumps({"id": "ok2", "text": "Bon aussi."}),
        '{"id": "broken", "text": "virgule manquante" "x": 1}',
        json.dumps({"id": "notext", "title": "sans texte"}),
        json.dumps({"id": "baddate", "text": "x", "published": "hier"}),
        json.dumps({"id": "ok3", "text": "Encore bon."}),
    ]
    (tmp_path / "recs.jsonl").write_text("\n".join(lines), encoding="utf-8")
    (tmp_path / "broken.json").write_text('{"id": "x", "text": ', encoding="utf-8")
    (tmp_path / "dots.txt").write_text("...\n\u200b", encoding="utf-8")  # nothing a search could find
    (tmp_path / "notes.odt").write_bytes(b"PK\x03\x04")  # unsupported types in a folder are ignored
    docs, errors = load_documents([tmp_path, tmp_path / "notes.odt", tmp_path / "missing.txt"])
    assert sorted(d.id for d in docs) == ["good", "ok1", "ok2", "ok3"]
    got = {(e.path.split("/")[-1], e.line): e.reason for e in errors}
    assert all(isinstance(e, IngestError) for e in errors)
    assert "UTF-8" in got[("latin1.txt", 2)]
    assert got[("empty.txt", None)] == "empty file"
    assert got[("blank.md", None)] == "empty file"
    assert "invalid JSON" in got[("recs.jsonl", 3)]
    assert "text" in got[("recs.jsonl", 4)]
    assert got[("recs.jsonl", 5)].startswith("'published': ")  # the field is named
    assert "invalid JSON" in got[("broken.json", 1)]
    assert got[("notes.odt", None)] == "unsupported file type '.odt' (use .txt, .md, .html, .json, .jsonl, .pdf or .docx)"
    assert "no such file" in got[("missing.txt", None)]
    assert got[("dots.txt", None)] == "no letter or digit in the file"
    assert len(errors) == 10


def test_files_saved_as_windows_1252_and_hand_written_json_say_what_to_fix(tmp_path):
    """A .txt saved by Windows' Notepad in cp1252 said "not valid UTF-8 (byte 35: invalid continuation
    byte)", and a JSONL line with a trailing comma "Expecting property name enclosed in double quotes":
    the symptom, not the fix. They now say what to change, as `qa eval` does for its gold files."""
    (tmp_path / "cafe.txt").write_bytes("Compte rendu\n\nLe café a changé.\n".encode("cp1252"))
    lines = [json.dumps({"id": "ok", "text": "Bon."}), '{"id": "virgule", "text": "Du texte.",}',
             "{'id': 'quotes', 'text': 'Du texte.'}", '{"id": "latin", "text": "Été."}', '{"id": "liste", "text": "x", "tags": ["a", ]}']
    (tmp_path / "export.jsonl").write_bytes("\n".join(lines).encode("cp1252"))
    (tmp_path / "one.json").write_text('{"id": "x",\n "text": "Un texte.",\n}', encoding="utf-8")
    docs, errors = load_documents([tmp_path])
    assert [d.id for d in docs] == ["ok"]
    got = {(e.path.split("/")[-1], e.line): e.reason for e in errors}
    assert got[("cafe.txt", 3)] == "not UTF-8 text (byte 20 is 0xe9): save the file as UTF-8"
    assert got[("export.jsonl", 2)] == ("invalid JSON: Expecting property name enclosed in double quotes (column 39): "
                                        "remove the comma before '}' (JSON allows no trailing comma)")
    assert got[("export.jsonl", 3)] == ("invalid JSON: Expecting property name enclosed in double quotes (column 2): "
                                        "write names and strings in double quotes (\"), not single quotes")
    latin_at = len("\n".join(lines[:3])) + 1 + lines[3].index("É")  # the byte's offset in the file, as for a .txt
    assert got[("export.jsonl", 4)] == f"not UTF-8 text (byte {latin_at} is 0xc9): save the file as UTF-8"
    assert got[("export.jsonl", 5)].endswith("remove the comma before ']' (JSON allows no trailing comma)")
    assert got[("one.json", 3)].endswith("remove the comma before '}' (JSON allows no trailing comma)")
    assert len(errors) == 6


def test_duplicate_ids_are_reported(tmp_path):
    (tmp_path / "a.txt").write_text("Titre\ntexte", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text(json.dumps({"id": "a", "text": "autre"}) + "\n", encoding="utf-8")
    docs, errors = load_documents([tmp_path])
    assert [d.id for d in docs] == ["a"] and "duplicate" in errors[0].reason


def test_record_ids_are_nfc_as_file_names_are(tmp_path):
    """"café" typed with U+00E9 or with "e" + U+0301 is one id (POST /documents composes it too): two
    records that differ only so are one document given twice."""
    (tmp_path / "recs.jsonl").write_text(
        json.dumps({"id": "cafe\u0301", "text": "Un."}) + "\n" + json.dumps({"id": " caf\u00e9 ", "text": "Deux."}) + "\n", encoding="utf-8")
    docs, errors = load_documents([tmp_path])
    assert [d.id for d in docs] == ["caf\u00e9"]
    assert [str(e).split("/")[-1] for e in errors] == ["recs.jsonl:2: duplicate document id 'caf\u00e9' (already on line 1); skipped"]


def test_duplicates_and_json_records_are_located(tmp_path):
    lines = [json.dumps({"id": "j1", "text": "Un."}), json.dumps({"id": "j2", "text": "Deux."}), json.dumps({"id": "j1", "text": "Encore."})]
    (tmp_path / "recs.jsonl").write_text("\n".join(lines), encoding="utf-8")
    (tmp_path / "arr.json").write_text(json.dumps([{"id": "a1", "text": "Un."}, {"id": "a2"}, {"id": "a1", "text": "Trois."}]), encoding="utf-8")
    docs, errors = load_documents([tmp_path])
    assert sorted(d.id for d in docs) == ["a1", "j1", "j2"]
    got = sorted(str(e).split("/")[-1] for e in errors)
    assert got == [
        "arr.json: record 2: missing or empty 'text'",  # records are counted from 1, like lines
        "arr.json: record 3: duplicate document id 'a1' (already record 1); skipped",
        "recs.jsonl:3: duplicate document id 'j1' (already on line 1); skipped",
    ]


def test_records_the_index_could_not_store_or_serve_are_refused_where_they_are(tmp_path):
    """A URL Python cannot parse, an unpaired surrogate escape, an id the API could not fetch:
    each a located error for its record, never a crash of the whole batch later."""
    lines = [
        json.dumps({"id": "ok", "text": "Un bon article.", "url": "https://www.numerama.com/a"}),
        json.dumps({"id": "v6", "text": "Deux.", "url": "https://[lien]/article"}),
        json.dumps({"id": "open", "text": "Trois.", "url": "http://[lien-casse"}),
        json.dumps({"id": "ftp", "text": "Quatre.", "url": "ftp://example.org/x"}),  # kept: files keep their URLs
        '{"id": "sur", "text": "Cinq.", "metadata": {"tags": ["ok", "\\ud800"]}}',
        json.dumps({"id": "x" * 257, "text": "Six."}),
    ]
    (tmp_path / "recs.jsonl").write_text("\n".join(lines), encoding="utf-8")
    docs, errors = load_documents([tmp_path])
    assert [d.id for d in docs] == ["ok", "ftp"]
    got = [str(e).split("/")[-1] for e in errors]
    assert got[0].startswith("recs.jsonl:2: 'url' is not a valid URL")
    assert got[1].startswith("recs.jsonl:3: 'url' is not a valid URL")
    assert got[2].startswith("recs.jsonl:5: 'metadata.tags[1]' holds an unpaired UTF-16 surrogate escape")
    assert got[3] == "recs.jsonl:6: 'id' must be at most 256 characters (got 257)"
    assert normalize_domain("https://[lien]/article") is None and normalize_domain("http://[lien") is None


def test_records_without_ids_are_named_by_position_with_a_warning(tmp_path, caplog):
    import logging

    (tmp_path / "recs.jsonl").write_text("\n".join(json.dumps(r) for r in [{"text": "Un."}, {"id": "b", "text": "Deux."}, {"text": "Trois."}]), encoding="utf-8")
    (tmp_path / "named.jsonl").write_text(json.dumps({"id": "n", "text": "Nommé."}), encoding="utf-8")
    (tmp_path / "bad.jsonl").write_text(json.dumps({"id": None, "text": "Refusé."}), encoding="utf-8")  # an error, not a name
    (tmp_path / "single.json").write_text(json.dumps({"text": "Un seul article."}), encoding="utf-8")  # named after its file
    with caplog.at_level(logging.WARNING, logger="index.ingest"):
        docs, _ = load_documents([tmp_path])
    assert sorted(d.id for d in docs) == ["b", "n", "recs-1", "recs-3", "single"]
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "recs.jsonl: 2 of the 3 records indexed have no 'id'" in warned[0] and "give every record its own 'id'" in warned[0]
    # a record refused for another reason (no text) is named nothing: not counted
    (tmp_path / "skipped.jsonl").write_text("\n".join(json.dumps(r) for r in [{"id": "x", "text": "Un."}, {"title": "Sans texte"}]), encoding="utf-8")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="index.ingest"):
        docs, errors = load_documents([tmp_path / "skipped.jsonl"])
    assert [d.id for d in docs] == ["x"] and len(errors) == 1 and caplog.records == []
    (tmp_path / "mixed.jsonl").write_text("\n".join(json.dumps(r) for r in [{"text": "Un."}, {"id": "y", "text": "Deux."}, {"text": "Trois."}, {"title": "Sans texte"}]), encoding="utf-8")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="index.ingest"):
        load_documents([tmp_path / "mixed.jsonl"])
    assert "mixed.jsonl: 2 of the 3 records indexed have no 'id'" in caplog.records[0].getMessage()


def test_html_without_a_dated_markup_has_no_date(tmp_path):
    # a year in the text is no publication date (trafilatura's extensive search would say 2015-01-01)
    page = HTML.split("<head>")[0] + "<head><title>Sans date</title></head><body><article><h1>Sans date</h1><p>" + "Netflix a lancé 16 séries en 2015 et en prévoit davantage. " * 5 + "</p></article></body></html>"
    (tmp_path / "nodate.html").write_text(page, encoding="utf-8")
    docs, errors = load_documents([tmp_path / "nodate.html"])
    assert errors == [] and docs[0].published is None


def test_links_to_folders_are_reported_not_silently_skipped(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.txt").write_text("Titre\ntexte", encoding="utf-8")
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "b.txt").write_text("Titre\nautre texte", encoding="utf-8")
    (tmp_path / "top" / "linked").symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "top" / "broken.txt").symlink_to(tmp_path / "nowhere.txt")
    docs, errors = load_documents([tmp_path / "top"])
    assert [d.id for d in docs] == ["b"]
    assert sorted((e.path.split("/")[-1], e.reason) for e in errors) == [("broken.txt", "a broken link"), ("linked", "a link to a folder: not followed (index its target)")]


def test_a_file_is_read_once_whatever_links_or_arguments_name_it(tmp_path, caplog):
    site = tmp_path / "site"
    site.mkdir()
    (site / "2021-05.txt").write_text("Mai\nLe texte de mai.", encoding="utf-8")
    (site / "a-latest.txt").symlink_to(site / "2021-05.txt")  # sorts first: the file still wins
    (site / "juin.txt").write_text("Juin\nLe texte de juin.", encoding="utf-8")
    with caplog.at_level("WARNING", logger="index"):
        docs, errors = load_documents([site, site / "juin.txt"])
    assert errors == [] and sorted(d.id for d in docs) == ["2021-05", "juin"]
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert f"{site / 'a-latest.txt'} is a link to {site / '2021-05.txt'}, which is read (as '2021-05')" in warned
    assert "`qa docs delete a-latest` removes that copy" in warned
    assert f"not read twice: {site / 'juin.txt'}" in warned
    # a link to a file outside the folders given is read, under the link's name
    (tmp_path / "elsewhere.txt").write_text("Ailleurs\nUn autre texte.", encoding="utf-8")
    (site / "autre.txt").symlink_to(tmp_path / "elsewhere.txt")
    docs, errors = load_documents([site])
    assert errors == [] and sorted(d.id for d in docs) == ["2021-05", "autre", "juin"]


def test_titles_are_one_line_and_urls_hold_no_control_characters(tmp_path):
    recs = [{"id": "a", "title": "Titre\nsur deux\tlignes \x1b[2J", "text": "Le texte de a."},
            {"id": "b", "title": "B", "text": "Le texte de b.", "url": "https://b.example/\x1b[31m"}]
    (tmp_path / "recs.jsonl").write_text("\n".join(json.dumps(r) for r in recs), encoding="utf-8")
    (tmp_path / "art.txt").write_text("Un titre \x1b]0;pwned\x07 ici\nhttps://c.example/\x1b[31m\n\nLe texte.", encoding="utf-8")
    docs, errors = load_documents([tmp_path])
    by_id = {d.id: d for d in docs}
    assert by_id["a"].title == "Titre sur deux lignes [2J"
    assert [(e.line, e.reason) for e in errors] == [(2, "'url' holds a control character (U+001B at position 18)")]
    assert by_id["art"].title == "Un titre ]0;pwned ici" and by_id["art"].url is None
    assert "\x1b" in by_id["art"].text  # the text itself is kept as it is: offsets count in it


def test_a_blank_url_is_no_url(tmp_path):
    """As POST /documents reads it: "  " was stored as the document's URL."""
    recs = [{"id": "a", "text": "Le texte de a.", "url": "  "}, {"id": "b", "text": "Le texte de b.", "url": " https://b.example/x "}]
    (tmp_path / "recs.jsonl").write_text("\n".join(json.dumps(r) for r in recs), encoding="utf-8")
    docs, errors = load_documents([tmp_path])
    assert errors == [] and [(d.id, d.url) for d in docs] == [("a", None), ("b", "https://b.example/x")]


def test_normalize_date_takes_dates_and_datetimes_only():
    for not_iso in ("２０１７-10-27", "٢٠١٧", "2017-10-27T99:99:99+99:99", "2017-10-27T24:00", "2017-10-27T10:00+25:00"):
        with pytest.raises(ValueError):  # stored as given, they would not be ISO dates for clients that parse them
            normalize_date(not_iso)
    assert normalize_date("2016-12-31T23:59:60Z") == "2016-12-31"  # a leap second
    assert normalize_date("2023-06-17T10:00:00Z") == "2023-06-17"
    assert normalize_date("  ") is None  # blank is no date, in a JSON record as over HTTP
    assert normalize_date("2023-06-17 10:00:00.123+02:00") == "2023-06-17"
    for jekyll_and_others in ("2015-03-12 15:25:00 -0500", "2023-06-17T10:00:00 UTC", "2023-06-17t10:00z"):
        assert normalize_date(jekyll_and_others)[:7] in ("2015-03", "2023-06")
    for bad in ("2017 et 2018", "2017-10-27 n'importe quoi", "2017Tx", "2017-10T10:00"):
        with pytest.raises(ValueError):
            normalize_date(bad)


def test_normalize_date():
    assert normalize_date("2017") == "2017"
    assert normalize_date("2017-1") == "2017-01"
    assert normalize_date("2017-10-27T12:00:00") == "2017-10-27"
    assert normalize_date(None) is None
    for bad in ("2017-13", "2017-02-30", "octobre", "27/10/2017"):
        try:
            normalize_date(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_urls_whose_links_would_run_code_are_refused(tmp_path):
    """Answers carry a document's URL to every client, and a page or an app makes it a link: a
    ``javascript:`` one would run in the reader's browser. The API refuses it; files must too."""
    recs = [{"id": "a", "title": "A", "text": "Le texte de a.", "url": "JavaScript:alert(1)"},
            {"id": "b", "title": "B", "text": "Le texte de b.", "url": "/2018/10/article-relatif.html"}]
    (tmp_path / "recs.jsonl").write_text("\n".join(json.dumps(r) for r in recs), encoding="utf-8")
    (tmp_path / "art.md").write_text("---\ntitle: Article\nurl: ' javascript:alert(document.cookie)'\n---\nLe texte de l'article.\n", encoding="utf-8")
    (tmp_path / "img.md").write_text("---\ntitle: Image\nurl: data:text/html,<script>alert(1)</script>\n---\nLe texte.\n", encoding="utf-8")
    docs, errors = load_documents([tmp_path])
    by_id = {d.id: d for d in docs}
    assert [(e.line, e.reason) for e in errors] == [(1, "'url' uses the javascript: scheme, which runs code in a browser: give the article's http(s) address")]
    assert by_id["b"].url == "/2018/10/article-relatif.html", "other URLs are kept as given"
    assert by_id["art"].url is None and by_id["img"].url is None and by_id["art"].text.startswith("Le texte")


def test_what_qa_index_changes_in_a_title_or_leaves_out_of_a_url_is_said(tmp_path, caplog, monkeypatch):
    """A title's control characters become spaces and a URL that would be refused is ignored, so that
    a scraped file is indexed all the same: each change is a warning naming the file and its line
    (or record) and the field, not done silently."""
    recs = [{"id": "a", "title": "Titre\nsur deux\tlignes \x1b[2J", "text": "Le texte de a."}, {"id": "b", "title": "Sans souci", "text": "B."}]
    (tmp_path / "recs.jsonl").write_text("\n".join(json.dumps(r) for r in recs), encoding="utf-8")
    (tmp_path / "recs.json").write_text(json.dumps([{"id": "c", "text": "C."}, {"id": "d", "title": "Son\x07nerie", "text": "D."}]), encoding="utf-8")
    (tmp_path / "art.txt").write_text("\n\nUn titre \x1b]0;pwned\x07 ici\nhttps://c.example/\x1b[31m\n\nLe texte.", encoding="utf-8")
    (tmp_path / "fm.md").write_text("---\nauthor: X\ntitle: \"Un\\ttitre\"\nurl: javascript:alert(1)\n---\n# Autre\x01titre\n\nLe texte.\n", encoding="utf-8")
    (tmp_path / "clean.md").write_text("# Un titre\tpropre ?\n\nNon : une tabulation.\n", encoding="utf-8")
    (tmp_path / "propre.txt").write_text("Un titre propre\n\nLe texte.", encoding="utf-8")
    with caplog.at_level("WARNING", logger="index"):
        docs, errors = load_documents([tmp_path])
    by_id = {d.id: d for d in docs}
    assert errors == [] and by_id["art"].title == "Un titre ]0;pwned ici" and by_id["art"].url is None
    assert by_id["fm"].title == "Un titre" and by_id["fm"].url is None and by_id["d"].title == "Son nerie"
    said = sorted(r.getMessage() for r in caplog.records)
    assert said == sorted([
        f"{tmp_path / 'art.txt'}:3: title indexed as 'Un titre ]0;pwned ici': it held 2 control characters (the first U+001B at position 9), replaced by spaces",
        f"{tmp_path / 'art.txt'}:4: URL ignored: it holds a control character (U+001B at position 18)",
        f"{tmp_path / 'clean.md'}:1: title indexed as 'Un titre propre ?': it held a control character (U+0009 at position 8), replaced by spaces",
        f"{tmp_path / 'fm.md'}:3: front matter 'title' indexed as 'Un titre': it held a control character (U+0009 at position 2), replaced by spaces",
        f"{tmp_path / 'fm.md'}:4: front matter 'url' ignored: it uses the javascript: scheme, which runs code in a browser: give the article's http(s) address",
        f"{tmp_path / 'recs.json'}: record 2: 'title' indexed as 'Son nerie': it held a control character (U+0007 at position 3), replaced by spaces",
        f"{tmp_path / 'recs.jsonl'}:1: 'title' indexed as 'Titre sur deux lignes [2J': it held 3 control characters (the first U+000A at position 5), replaced by spaces",
    ])
    # an HTML page's title and URL as trafilatura gives them
    import trafilatura
    from types import SimpleNamespace

    page = SimpleNamespace(text="Le texte de la page.", title="Titre\x1b de page", url="javascript:alert(1)", date=None)
    monkeypatch.setattr(trafilatura, "bare_extraction", lambda *a, **k: page)
    (tmp_path / "html").mkdir()
    (tmp_path / "html" / "p.html").write_text("<html><body><p>Le texte de la page.</p></body></html>", encoding="utf-8")
    caplog.clear()
    with caplog.at_level("WARNING", logger="index"):
        [doc], errors = load_documents([tmp_path / "html"])
    assert errors == [] and (doc.title, doc.url) == ("Titre de page", None)
    assert sorted(r.getMessage() for r in caplog.records) == [
        f"{tmp_path / 'html' / 'p.html'}: the page's URL ignored: it uses the javascript: scheme, which runs code in a browser: give the article's http(s) address",
        f"{tmp_path / 'html' / 'p.html'}: the page's title indexed as 'Titre de page': it held a control character (U+001B at position 5), replaced by spaces",
    ]
