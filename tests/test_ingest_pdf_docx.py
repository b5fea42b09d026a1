"""Reading PDF and Word (.docx) files: the extracted text (offsets slice it), title, date, accents,
one error line for a file that cannot be read. The files are written here (tests/document_files.py)."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest

from index.chunking import chunk_document
from index.ingest import is_junk_title, load_documents, pdf_date
from index.pdf_text import join_lines, pdf_text, text_width, without_running_lines
from index.text import split_sentences
from tests.document_files import write_docx, write_pdf

# printed as a word processor breaks lines: mid-sentence, a word hyphenated across two lines
BUDGET_PAGES = [
    [
        "Le budget de l’État pour 2024",
        "La commune a voté ses investisse-",
        "ments : l’école, la crèche et le",
        "théâtre où l’œuvre de Françoise est",
        "exposée. Les investissements sont financés",
        "par l’emprunt, à hauteur de 3 millions.",
    ],
    ["Deuxième page : la façade sera rénovée en été."],
]
BUDGET_TEXT = (
    "Le budget de l’État pour 2024\n"
    "La commune a voté ses investissements : l’école, la crèche et le théâtre où l’œuvre de Françoise est "
    "exposée. Les investissements sont financés par l’emprunt, à hauteur de 3 millions.\n\n"
    "Deuxième page : la façade sera rénovée en été."
)
BUDGET_INFO = {"/Title": "Budget primitif 2024", "/CreationDate": "D:20240315103000+01'00'", "/Author": "Mairie de Besançon"}


def test_a_pdf_gives_its_text_title_date_and_accents(tmp_path):
    write_pdf(tmp_path / "budget.pdf", BUDGET_PAGES, BUDGET_INFO)
    docs, errors = load_documents([tmp_path / "budget.pdf"])
    assert errors == []
    [doc] = docs
    assert doc.id == "budget" and doc.text == BUDGET_TEXT  # pages a blank line apart, lines joined where a sentence goes on
    assert doc.title == "Budget primitif 2024" and doc.published == "2024-03-15" and doc.url is None
    assert doc.metadata == {"source_file": str((tmp_path / "budget.pdf").absolute()), "pages": 2, "author": "Mairie de Besançon"}
    assert split_sentences(doc.text)[1] == (
        "La commune a voté ses investissements : l’école, la crèche et le théâtre où l’œuvre de Françoise est exposée.")


def test_a_pdf_without_a_title_of_its_own_is_named_by_its_first_line(tmp_path):
    write_pdf(tmp_path / "a.pdf", BUDGET_PAGES, {"/Title": "Microsoft Word - budget_2024.docx", "/CreationDate": "D:2024"})
    write_pdf(tmp_path / "b.pdf", [[BUDGET_PAGES[0][0], "https://www.besancon.fr/budget", "Publié le 3 mai 2021", *BUDGET_PAGES[0][1:]]])
    docs, errors = load_documents([tmp_path])
    assert errors == []
    a, b = docs
    assert (a.title, a.published) == ("Le budget de l’État pour 2024", "2024")
    # the first lines are read as a .txt file's: a URL line, a byline's date
    assert (b.title, b.url, b.published) == ("Le budget de l’État pour 2024", "https://www.besancon.fr/budget", "2021-05-03")


def test_chunks_slice_the_extracted_text(tmp_path, embedder):
    write_pdf(tmp_path / "long.pdf", [BUDGET_PAGES[0] * 4, BUDGET_PAGES[1] * 6, BUDGET_PAGES[0]])
    write_docx(tmp_path / "long-word.docx", [(" ".join(BUDGET_PAGES[0]), None)] * 6, table=[["Ville", "Population"], ["Besançon", "120 000"]])
    docs, errors = load_documents([tmp_path])
    assert errors == [] and len(docs) == 2
    for doc in docs:
        chunks = chunk_document(doc, embedder.tokenizer, 48, 12)
        assert len(chunks) > 3
        assert all(doc.text[c.start : c.end] == c.text for c in chunks)
        assert "l’œuvre de Françoise" in doc.text and "\ufffd" not in doc.text


@pytest.mark.parametrize("raw, expected", [
    ("Titre\nune suite\n", "Titre une suite"),  # a lower-case line goes on the sentence above
    ("Fin.\nune liste", "Fin.\nune liste"),  # not after a full stop
    ("Lyon,\nParis et Nantes", "Lyon, Paris et Nantes"),  # after a comma
    ("Le budget\nhttps://besancon.fr/budget\nsuite", "Le budget\nhttps://besancon.fr/budget\nsuite"),  # a URL line stays one
    ("Un titre\nLe texte.", "Un titre\nLe texte."),  # a heading stays its own line
    ("un budget de\n148 millions", "un budget de 148 millions"),  # no sentence ends with "de", "la", "et"...
    ("le président de la\nRépublique", "le président de la République"),
    ("l’école et\nLyon", "l’école et Lyon"),
    ("depuis sa création en\n2015", "depuis sa création en 2015"),  # "en", a preposition: never a sentence's end
    ("Rapport\nLa ville", "Rapport\nLa ville"),
    ("qu’il\nLe texte", "qu’il\nLe texte"),  # "il", not "qu"
    ("jusqu’à\nBesançon", "jusqu’à Besançon"),
    ("le porte-\nmonnaie", "le porte-monnaie"),  # a hyphen the document does not show as a split word stays
    ("de l’investisse-\nment", "de l’investisse-ment"),
    ("Saint-\nÉtienne", "Saint-Étienne"),
    ("pop-culture/133992-\nnetflix-va", "pop-culture/133992-netflix-va"),  # a URL cut after a hyphen
    ("en 2015 -\nla suite", "en 2015 - la suite"),  # a dash, not a hyphen
    ("une ré\xad\nforme", "une réforme"),  # a soft hyphen always splits a word
    ("  a  \n\n\n\nB\n\n", "a\n\nB"),  # lines stripped, one blank line between paragraphs
])
def test_pdf_lines_are_joined_where_a_sentence_goes_on(raw, expected):
    assert join_lines(raw) == expected


def test_a_hyphen_goes_only_where_the_document_writes_the_word_whole():
    raw = "les investisse-\nments et le porte-\nmonnaie"
    assert join_lines(raw, words={"investissements", "portemonnaie"}, compounds={"porte-monnaie"}) == "les investissements et le porte-monnaie"


FULL = "Le nombre d’inscrits actifs atteint désormais"  # 46 characters: fills a text 50 wide (4/5 of it)


@pytest.mark.parametrize("raw, expected", [
    (f"{FULL}\n23 874 personnes.", f"{FULL} 23 874 personnes."),  # a line that fills the width goes on
    ("La directrice de l’établissement, Mme Claire\nFontaine, souligne.", "La directrice de l’établissement, Mme Claire Fontaine, souligne."),
    ("2. Budget et investissements\nLe budget", "2. Budget et investissements\nLe budget"),  # a heading is shorter
    (f"{FULL}\n1. Premier point", f"{FULL}\n1. Premier point"),  # a list item
    (f"{FULL}\n• Premier point", f"{FULL}\n• Premier point"),
    ("Introduction . . . . . . . . . . . . . . . . . . 1\n2 Structures", "Introduction . . . . . . . . . . . . . . . . . . 1\n2 Structures"),  # a contents line
    ("Les prêts de documents ont également augmenté :\nLes livres", "Les prêts de documents ont également augmenté :\nLes livres"),
    ("https://example.org/un-tres-long-chemin/vers/la-page\nSuite", "https://example.org/un-tres-long-chemin/vers/la-page\nSuite"),  # a URL line
    ("[RFC] Key words, https://www.ietf.org/rfc/rfc2119.html\nRFC-3023", "[RFC] Key words, https://www.ietf.org/rfc/rfc2119.html\nRFC-3023"),  # a reference
])
def test_a_line_that_fills_the_width_goes_on_into_a_capital_or_a_digit(raw, expected):
    assert join_lines(raw, width=50) == expected
    assert join_lines(f"{FULL}\nSuite") == f"{FULL}\nSuite"  # without a width, as before


def test_the_text_width_is_what_most_lines_reach_and_a_page_break_goes_on_into_lower_case_only():
    body = [f"Une ligne de texte justifiée qui remplit la page {c}." for c in "abcdefghijklmnopqrstuv"]  # 51 characters
    assert text_width(["\n".join(["Titre", *body])]) == 51
    assert text_width(["\n".join(body[:19])]) == 0  # too few lines to tell a width: a title may be the longest
    # across a page break, only into a lower-case line: at a page's top, another may be a chapter's running header
    pages = ["\n".join(["Rapport", *body[:11], "La directrice de l’établissement, Mme Claire"]), "\n".join(["Fontaine, souligne.", *body[11:]])]
    assert "Mme Claire\n\nFontaine, souligne." in pdf_text(pages)
    pages = ["\n".join([*body[:11], "un budget de"]), "\n".join(["Chapitre 2 : Budget 12", "148 millions.", *body[11:]])]
    assert "un budget de\n\nChapitre 2 : Budget 12\n148 millions." in pdf_text(pages)


def test_typographic_ligatures_are_their_letters_and_french_ones_stay():
    """pypdf gives the ligature a font drew ("ﬁnancés"): answers quoted it as such. "œ" is a French
    letter, not a ligature of type, and stays."""
    text = pdf_text(["Les eﬀets visuels sont ﬁnancés par l’État.\nLe cœur du ﬂux : oﬃce, aﬄux, ﬅyle, ﬆop."])
    assert text == "Les effets visuels sont financés par l’État.\nLe cœur du flux : office, afflux, style, stop."


def test_running_headers_and_footers_are_left_out_and_a_sentence_goes_on_across_pages(tmp_path):
    # as a browser prints a page (header and footer last) and a word processor (one at each edge)
    browser = [
        ["Le festival a réuni près de 6 000", "11/25/26, 7:04 AM Rapport annuel", "file:///C:/rapport.html 1/3"],
        ["participants, un record.", "La ville a consacré 780 000 euros aux investissements,", "11/25/26, 7:04 AM Rapport annuel",
         "file:///C:/rapport.html 2/3"],
        ["essentiellement pour la salle de lecture.", "11/25/26, 7:04 AM Rapport annuel", "file:///C:/rapport.html 3/3"],
    ]
    write_pdf(tmp_path / "imprime.pdf", browser)
    word = [["Mairie de Besançon – Budget 2024", "Le budget est voté.", "Il finance la", "Page 1 sur 2"],
            ["Mairie de Besançon – Budget 2024", "rénovation de l’école.", "Page 2 sur 2"]]
    write_pdf(tmp_path / "budget.pdf", word)
    docs, errors = load_documents([tmp_path])
    assert errors == []
    assert {doc.id: doc.text for doc in docs} == {
        "imprime": "Le festival a réuni près de 6 000 participants, un record.\n"
                   "La ville a consacré 780 000 euros aux investissements, essentiellement pour la salle de lecture.",
        # the first page's top lines are kept: the title, often the header's words, may be there alone
        "budget": "Mairie de Besançon – Budget 2024\nLe budget est voté.\nIl finance la rénovation de l’école.",
    }


def test_only_lines_at_the_edges_of_most_pages_are_running_ones():
    pages = ["Titre\nUn texte.\n\nUn autre paragraphe.\n1", "Titre\nLa suite.\n2", "Autre\nTitre\nFin.\n3"]
    # "Titre" and the page numbers are at an edge of every page (the first page's top stays); the blank line is a paragraph break
    assert without_running_lines(pages) == ["Titre\nUn texte.\n\nUn autre paragraphe.", "La suite.", "Autre\nTitre\nFin."]
    assert without_running_lines(["Titre\nUn texte.\n1"]) == ["Titre\nUn texte.\n1"]  # one page: nothing repeats
    # on one page of three only, or within a page (not from its edge in), a line is the document's
    assert without_running_lines(["Note\nA.", "B.\nC.", "D.\nE."]) == ["Note\nA.", "B.\nC.", "D.\nE."]
    assert pdf_text(["Un titre\nLa fin.", "Suite\nencore"]) == "Un titre\nLa fin.\n\nSuite encore"  # a page break after a full stop stays


@pytest.mark.parametrize("title", ["Microsoft Word - budget_2024.docx", "untitled", "Untitled-1", "Sans titre", "Document1",
                                   "rapport final.pdf", "C:\\Users\\marie\\budget.doc", "- <https://www.besancon.fr/budget>", " \u200b "])
def test_placeholder_titles_are_not_titles(title):
    assert is_junk_title(title)


@pytest.mark.parametrize("title", ["Budget primitif 2024", "Le document unique", "Titre de séjour : les démarches"])
def test_real_titles_are_titles(title):
    assert not is_junk_title(title)


@pytest.mark.parametrize("raw, expected", [
    ("D:20240315103000+01'00'", "2024-03-15"), ("D:2024", "2024"), ("D:202403", "2024-03"), ("20240315", "2024-03-15"),
    ("D:20241345", None), ("D:00000101", None), ("hier", None), (None, None),
])
def test_pdf_dates(raw, expected):
    assert pdf_date(raw) == expected


def test_a_docx_gives_its_paragraphs_and_tables_not_its_header(tmp_path):
    write_docx(tmp_path / "budget.docx", [("Le budget de l’État", "Heading 1"), ("La crèche où l’œuvre est exposée, à Besançon.", None), ("", None)],
               table=[["Ville", "Population"], ["Besançon", "120 000"]], header="EN-TÊTE CONFIDENTIEL")
    write_docx(tmp_path / "titled.docx", [("Introduction", "Heading 1"), ("Un texte.", None)], title="Rapport annuel",
               created=datetime(2022, 1, 31, 23, 30, tzinfo=timezone.utc))
    write_docx(tmp_path / "plain.docx", [("Note du 3 mars", None), ("Un texte.", None)], title="Document1", created=None)
    docs, errors = load_documents([tmp_path])
    assert errors == []
    budget, plain, titled = docs
    assert budget.text == "Le budget de l’État\n\nLa crèche où l’œuvre est exposée, à Besançon.\n\nVille | Population\n\nBesançon | 120 000"
    assert (budget.title, budget.published, budget.url) == ("Le budget de l’État", "2023-05-04", None)
    assert (titled.title, titled.published) == ("Rapport annuel", "2022-01-31")
    # python-docx's template date (2013-12-23) and author are not the file's
    assert (plain.title, plain.published, plain.metadata.get("author")) == ("Note du 3 mars", None, None)


W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
# a paragraph with a tracked insertion and deletion, a hyperlink and a text box; a content control
# around a paragraph; a table with a cell merged across two columns
EDITED_BODY = [
    f'<w:p {W}><w:r><w:t xml:space="preserve">Le conseil a voté </w:t></w:r><w:ins w:id="1" w:author="A"><w:r><w:t>à l’unanimité</w:t></w:r></w:ins>'
    '<w:del w:id="2" w:author="A"><w:r><w:delText>à la majorité</w:delText></w:r></w:del><w:hyperlink><w:r><w:t xml:space="preserve"> ce budget</w:t></w:r></w:hyperlink>'
    '<w:r><w:t>.</w:t></w:r><w:r><w:pict><v:shape xmlns:v="urn:schemas-microsoft-com:vml"><v:textbox><w:txbxContent><w:p><w:r><w:t>ENCADRÉ</w:t></w:r></w:p>'
    '</w:txbxContent></v:textbox></v:shape></w:pict></w:r></w:p>',
    f'<w:sdt {W}><w:sdtContent><w:p><w:r><w:t>Dans un champ de formulaire.</w:t></w:r></w:p></w:sdtContent></w:sdt>',
    f'<w:tbl {W}><w:tr><w:tc><w:tcPr><w:gridSpan w:val="2"/></w:tcPr><w:p><w:r><w:t>Recettes</w:t></w:r></w:p></w:tc></w:tr>'
    '<w:tr><w:tc><w:p><w:r><w:t>Impôts</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>12</w:t></w:r></w:p><w:p><w:r><w:t>millions</w:t></w:r></w:p></w:tc></w:tr></w:tbl>',
]


def test_a_docx_gives_its_edited_text_content_controls_and_merged_cells(tmp_path):
    import docx
    from docx.oxml import parse_xml

    path = write_docx(tmp_path / "edited.docx", [("Séance du conseil", "Title")])
    document = docx.Document(str(path))
    body = document.element.body
    for xml in EDITED_BODY:
        body.insert(len(body) - 1, parse_xml(xml))  # before the section properties, which end the body
    document.save(str(path))
    [doc], errors = load_documents([path])
    assert errors == [] and doc.title == "Séance du conseil"
    assert doc.text == ("Séance du conseil\n\nLe conseil a voté à l’unanimité ce budget.\n\nDans un champ de formulaire.\n\n"
                        "Recettes\n\nImpôts | 12 millions")


def test_files_that_cannot_be_read_are_one_line_each_and_the_others_go_on(tmp_path, caplog):
    write_pdf(tmp_path / "locked.pdf", BUDGET_PAGES, password="secret")
    write_pdf(tmp_path / "protected.pdf", BUDGET_PAGES, password="")  # locked against editing only: opens without a password
    write_pdf(tmp_path / "protected-aes.pdf", BUDGET_PAGES, password="", algorithm="AES-256")
    write_pdf(tmp_path / "locked-aes.pdf", BUDGET_PAGES, password="secret", algorithm="AES-128")
    write_pdf(tmp_path / "scan.pdf", [[], []], {"/Title": "Scan"})
    write_pdf(tmp_path / "partial.pdf", [BUDGET_PAGES[0], []])
    whole = write_pdf(tmp_path / "cut.pdf", BUDGET_PAGES).read_bytes()
    (tmp_path / "cut.pdf").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "page.pdf").write_bytes(b"<html><body>404 Not Found</body></html>")
    (tmp_path / "empty.pdf").write_bytes(b"")
    (tmp_path / "text.docx").write_text("Un texte, pas un fichier Word.", encoding="utf-8")
    (tmp_path / "old.docx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504)  # Word 97-2003
    import zipfile

    with zipfile.ZipFile(tmp_path / "other.docx", "w") as z:
        z.writestr("content.xml", "<office:document/>")
    (tmp_path / "ok.txt").write_text("Un titre\n\nUn texte.", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="index.ingest"):
        docs, errors = load_documents([tmp_path])
    assert sorted(d.id for d in docs) == ["ok", "partial", "protected", "protected-aes"]
    assert {d.id: d.text for d in docs}["protected-aes"] == BUDGET_TEXT
    got = {e.path.split("/")[-1]: e.reason for e in errors}
    assert all(e.line is None for e in errors) and len(errors) == len(got) == 9
    assert got["locked.pdf"] == got["locked-aes.pdf"] == "encrypted: decrypt it first (it opens only with a password)"
    assert got["scan.pdf"] == "no text layer (a scan?): run OCR first"
    assert got["cut.pdf"].startswith("not a readable PDF (damaged?): ")
    assert got["page.pdf"] == "not a PDF file (no %PDF- header): an HTML page or another format named .pdf?"
    assert got["empty.pdf"] == "empty file"
    assert got["text.docx"] == "not a .docx file (not a zip archive): damaged, or another format named .docx?"
    assert got["old.docx"] == "not a .docx file but an old Word .doc or a password-protected document: save it as .docx, without a password"
    assert got["other.docx"].startswith("not a readable Word .docx file: ")
    assert all("\n" not in str(e) for e in errors)
    assert f"{tmp_path / 'partial.pdf'}: 1 of its 2 pages hold no text (images, scans?) and are not indexed: page 2" in caplog.text


def test_the_folder_walk_reads_pdf_and_docx(tmp_path, caplog):
    (tmp_path / "sub").mkdir()
    write_pdf(tmp_path / "sub" / "budget.PDF", BUDGET_PAGES)
    write_docx(tmp_path / "note.docx", [("Une note.", None)])
    (tmp_path / "slides.pptx").write_bytes(b"PK\x03\x04")
    with caplog.at_level(logging.WARNING, logger="index.ingest"):
        docs, errors = load_documents([tmp_path])
    assert errors == [] and [d.id for d in docs] == ["note", "sub/budget"]
    assert "not read: 1 files of other types in the folders (1 .pptx)" in caplog.text
