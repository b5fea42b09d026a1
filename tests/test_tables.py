"""Tables in Word and HTML documents: a data row under a header names its columns (pure functions),
and real .docx and HTML files read so, their text sliced exactly by its chunks' offsets."""

from __future__ import annotations

import pytest

from index.chunking import chunk_document
from index.ingest import load_documents
from index.tables import TableCell, column_labels, header_rows, labelled_line, looks_like_header, names_columns, table_lines, title_rows
from tests.document_files import write_docx


def row(*texts: str) -> list[TableCell]:
    return [TableCell(t) for t in texts]


YEARS = [row("Année", "Budget contenu", "Abonnés"), row("2017", "6 milliards", "110 millions"), row("2018", "8 milliards", "139 millions")]

# ------------------------------------------------------------------------------------------ header detection


@pytest.mark.parametrize("cells, expected", [
    (("Année", "Budget contenu", "Abonnés"), True),
    (("Chiffre d’affaires 2023", "Effectif", "Pays"), True),  # a digit beside letters is still a name
    (("2017", "6 milliards", "110 millions"), False),  # a number is data
    (("Année", "", "Abonnés"), False),  # an empty corner or cell: not a row of names
    (("Ville", "Ville", "Abonnés"), False),  # two columns of one name
    (("Année", "x" * 61, "Abonnés"), False),  # a sentence is data
    ((), False),
])
def test_an_unmarked_first_row_is_a_header_when_it_reads_as_names(cells, expected):
    assert looks_like_header(row(*cells)) is expected


def test_header_rows_marked_or_a_first_row_of_names_over_three_columns_or_more():
    assert header_rows(YEARS, marked=0) == 1
    assert header_rows(YEARS, marked=2) == 2  # marked rows are the header, whatever they hold
    assert header_rows(YEARS[:1], marked=0) == 0  # no row under it
    assert header_rows([row("2016", "5 milliards", "89 millions")] + YEARS[1:], marked=0) == 0
    # two columns: as often label | value pairs as a header, so only a marked header counts
    pairs = [row("Nom", "Jean Dupont"), row("Adresse", "3 rue des Lilas")]
    assert header_rows(pairs, marked=0) == 0
    assert header_rows(pairs, marked=1) == 1


# ------------------------------------------------------------------------------------------ rows written


def test_a_data_row_names_its_columns_and_leaves_empty_cells_out():
    labels = ["Année", "Budget contenu", "Abonnés"]
    assert labelled_line(labels, row("2018", "8 milliards", "139 millions")) == "Année : 2018 ; Budget contenu : 8 milliards ; Abonnés : 139 millions"
    assert labelled_line(labels, row("2019", "", "167 millions")) == "Année : 2019 ; Abonnés : 167 millions"
    assert labelled_line(labels, row("", "", "")) == ""
    # a cell under no name (an empty corner, a row wider than the header) is its text alone
    assert labelled_line(["", "2017", "2018"], row("Budget", "6", "8")) == "Budget ; 2017 : 6 ; 2018 : 8"
    assert labelled_line(["Année", "Budget"], row("2018", "8", "note")) == "Année : 2018 ; Budget : 8 ; note"
    # a cell merged across columns is named after the first
    assert labelled_line(labels, [TableCell("Total", 2), TableCell("249 millions")]) == "Année : Total ; Abonnés : 249 millions"


def test_column_labels_join_header_rows_and_spread_spanned_cells():
    header = [[TableCell(""), TableCell("Recettes", 2), TableCell("Dépenses")], row("Région", "Impôts", "Taxes", "Dépenses")]
    assert column_labels(header, 4) == ["Région", "Recettes Impôts", "Recettes Taxes", "Dépenses"]
    assert column_labels([row("A")], 3) == ["A", "", ""]  # a header narrower than the table


def test_table_lines_with_a_header():
    assert table_lines(YEARS) == [
        "Année | Budget contenu | Abonnés",
        "Année : 2017 ; Budget contenu : 6 milliards ; Abonnés : 110 millions",
        "Année : 2018 ; Budget contenu : 8 milliards ; Abonnés : 139 millions",
    ]
    # a header row repeated further down (a long table's page top) stays a header line
    assert table_lines(YEARS + [YEARS[0]])[-1] == "Année | Budget contenu | Abonnés"
    # numbers stay as written
    assert table_lines([row("Pays", "Prix", "Part"), row("Japon", "1 490 yens", "12,5 %")])[1] == "Pays : Japon ; Prix : 1 490 yens ; Part : 12,5 %"


def test_a_title_row_over_the_table_is_a_line_not_the_columns_names():
    title = [TableCell("Tableau 3 : budget de Cinévia", 3)]  # a cell merged across the table
    assert title_rows([title] + YEARS) == 1 and title_rows(YEARS) == 0
    assert title_rows([row("Tableau 3", "", "")] + YEARS) == 1  # so an HTML caption, padded by trafilatura
    assert title_rows([row("Villes"), row("Lyon")]) == 0  # one column: no title
    assert table_lines([title] + YEARS)[:3] == [
        "Tableau 3 : budget de Cinévia", "Année | Budget contenu | Abonnés", "Année : 2017 ; Budget contenu : 6 milliards ; Abonnés : 110 millions"]
    # marked with the header (Word's repeated rows), it is still a title
    assert table_lines([title] + YEARS, marked_header_rows=2)[2] == "Année : 2017 ; Budget contenu : 6 milliards ; Abonnés : 110 millions"
    assert names_columns([title] + YEARS) and not names_columns([title, YEARS[0]])


def test_tables_without_a_usable_header_keep_their_cells_joined_by_bars():
    assert table_lines([row("Ville", "Population"), row("Besançon", "120 000")]) == ["Ville | Population", "Besançon | 120 000"]
    assert table_lines([row("2017", "6", "110"), row("2018", "", "139")]) == ["2017 | 6 | 110", "2018 | 139"]
    assert table_lines(YEARS[:1], marked_header_rows=1) == ["Année | Budget contenu | Abonnés"]  # a header alone
    assert table_lines([row("Villes"), row("Lyon"), row("Besançon")], marked_header_rows=1) == ["Villes", "Lyon", "Besançon"]  # one column
    assert table_lines([row("", ""), row("a", "")]) == ["a"]  # empty rows give no line
    assert table_lines([]) == []


def test_a_very_wide_table_names_every_cell():
    header = row(*(f"Mois {m}" for m in range(1, 25)))
    data = row(*(str(100 + m) for m in range(1, 25)))
    line = table_lines([header, data])[1]
    assert line.count(" ; ") == 23 and line.startswith("Mois 1 : 101 ; Mois 2 : 102") and line.endswith("Mois 24 : 124")


# ------------------------------------------------------------------------------------------ real files

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def _merge_cells_vertically(path):
    """The first column's cells of the table's rows 1 and 2 merged (Word's vertical merge: the text
    is the first cell's, the second continues it)."""
    import docx
    from docx.oxml import OxmlElement

    document = docx.Document(str(path))
    grid = document.tables[0]
    first = grid.cell(1, 0)._tc.get_or_add_tcPr()
    merge = OxmlElement("w:vMerge")
    merge.set(f"{{{W}}}val", "restart")
    first.append(merge)
    below = grid.cell(2, 0)
    below.text = ""
    below._tc.get_or_add_tcPr().append(OxmlElement("w:vMerge"))
    document.save(str(path))


def _merge_first_row(path):
    """The table's first row one cell merged across it (Word's gridSpan), as a title over the table."""
    import docx

    document = docx.Document(str(path))
    grid = document.tables[0]
    grid.cell(0, 0).merge(grid.cell(0, len(grid.columns) - 1))
    document.save(str(path))


def test_a_docx_table_under_a_header_names_its_columns_and_chunks_slice_its_text(tmp_path, embedder):
    prose = ("Le tableau suivant donne le budget consacré aux contenus et le nombre d’abonnés en fin d’année.", None)
    write_docx(tmp_path / "marked.docx", [prose], table=[["Année", "Budget"], ["2017", "6 milliards"], ["2018", "8 milliards"]], table_header_rows=1)
    write_docx(tmp_path / "unmarked.docx", [prose], table=[["Région", "Année", "Abonnés"], ["Nord", "2017", "1 million"], ["", "2018", "1,2 million"]])
    _merge_cells_vertically(tmp_path / "unmarked.docx")
    write_docx(tmp_path / "pairs.docx", [prose], table=[["Nom", "Jean Dupont"], ["Adresse", "3 rue des Lilas"]])
    write_docx(tmp_path / "titled.docx", [prose], table=[["Tableau 3 : abonnés", "", ""], ["Pays", "Lancement", "Abonnés"], ["Japon", "2015", "6 millions"]],
               table_header_rows=2)
    _merge_first_row(tmp_path / "titled.docx")
    docs, errors = load_documents([tmp_path])
    assert errors == []
    texts = {d.id: d.text for d in docs}
    assert texts["marked"] == prose[0] + "\n\nAnnée | Budget\n\nAnnée : 2017 ; Budget : 6 milliards\n\nAnnée : 2018 ; Budget : 8 milliards"
    assert texts["unmarked"] == (prose[0] + "\n\nRégion | Année | Abonnés\n\nRégion : Nord ; Année : 2017 ; Abonnés : 1 million\n\n"
                                 "Région : Nord ; Année : 2018 ; Abonnés : 1,2 million")
    assert texts["pairs"] == prose[0] + "\n\nNom | Jean Dupont\n\nAdresse | 3 rue des Lilas"
    assert texts["titled"] == prose[0] + "\n\nTableau 3 : abonnés\n\nPays | Lancement | Abonnés\n\nPays : Japon ; Lancement : 2015 ; Abonnés : 6 millions"
    for doc in docs:
        chunks = chunk_document(doc, embedder.tokenizer, size=24, overlap=4)
        assert len(chunks) > 1 and all(doc.text[c.start:c.end] == c.text for c in chunks)
        # a row fits a chunk of 24 tokens: it is in one whole, header names and all
        for line in doc.text.split("\n\n")[1:]:
            assert any(line in c.text for c in chunks)


HTML = """<html><head><title>Cinévia</title></head><body><article><h1>Rapport annuel de Cinévia</h1>
<p>Cinévia est un service de vidéo à la demande par abonnement fondé à Lyon, qui finance elle-même une part croissante de ses films.</p>
<table><caption>Budget et abonnés</caption><thead><tr><th>Année</th><th>Budget contenu</th><th>Abonnés</th></tr></thead>
<tbody><tr><td>2017</td><td>6 milliards</td><td>110 millions</td></tr><tr><td>2018</td><td>8 milliards</td><td></td></tr>
<tr><td colspan="2">Total</td><td>249 millions</td></tr></tbody></table>
<p>Le tableau suivant retrace les lancements du service à l’étranger depuis sa création en France, marché par marché.</p>
<table><tr><td>Pays</td><td>Lancement</td></tr><tr><td>France</td><td>2014</td></tr></table>
<p>La direction entend poursuivre sa croissance en Asie et en Amérique latine dans les prochaines années.</p>
</article></body></html>"""


def test_an_html_table_with_th_names_its_columns_the_others_stay_as_trafilatura_writes_them(tmp_path, embedder):
    (tmp_path / "rapport.html").write_text(HTML, encoding="utf-8")
    # a page without a table with a header: trafilatura's text, as before
    (tmp_path / "sans.html").write_text(HTML.replace("<th>", "<td>").replace("</th>", "</td>").replace("<caption>Budget et abonnés</caption>", "")
                                        .replace("<thead>", "").replace("</thead>", "")  # a <thead> row is a header row, of <td> too
                                        .replace("<td>Abonnés</td>", "<td>Abonnés</td><td>2019</td>"), encoding="utf-8")
    docs, errors = load_documents([tmp_path])
    assert errors == []
    texts = {d.id: d.text for d in docs}
    assert texts["rapport"] == (
        "Rapport annuel de Cinévia\n"
        "Cinévia est un service de vidéo à la demande par abonnement fondé à Lyon, qui finance elle-même une part croissante de ses films.\n"
        "Budget et abonnés\n"
        "Année | Budget contenu | Abonnés\n"
        "Année : 2017 ; Budget contenu : 6 milliards ; Abonnés : 110 millions\n"
        "Année : 2018 ; Budget contenu : 8 milliards\n"
        "Année : Total ; Abonnés : 249 millions\n"  # colspan: trafilatura pads the row, the cell is named after its first column
        "Le tableau suivant retrace les lancements du service à l’étranger depuis sa création en France, marché par marché.\n"
        "| Pays | Lancement | \n| France | 2014 | \n"
        "La direction entend poursuivre sa croissance en Asie et en Amérique latine dans les prochaines années."
    )
    assert "| Année | Budget contenu | Abonnés | 2019 | \n| 2017 | 6 milliards | 110 millions |  | " in texts["sans"]
    doc = next(d for d in docs if d.id == "rapport")
    chunks = chunk_document(doc, embedder.tokenizer, size=24, overlap=4)
    assert len(chunks) > 1 and all(doc.text[c.start:c.end] == c.text for c in chunks)


# a page as a browser saves it ("Enregistrer sous…"): navigation, breadcrumb, cookie banner and footer
# around the article; its tables have two header rows, cells spanning columns and rows
SAVED_PAGE = """<!DOCTYPE html>
<html lang="fr"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Aides au logement 2024 : plafonds et montants | Service public du logement</title>
<link rel="stylesheet" href="./Aides au logement_files/main.css"><script src="./Aides au logement_files/analytics.js"></script>
</head><body>
<div id="cookie-banner"><p>Ce site utilise des cookies pour mesurer son audience.</p><button>Accepter</button><button>Refuser</button></div>
<header><a href="https://logement.example.fr/">Service public du logement</a>
<nav><ul><li><a href="/aides">Aides</a></li><li><a href="/demarches">Démarches</a></li><li><a href="/contact">Contact</a></li></ul></nav></header>
<main><nav aria-label="fil d'Ariane"><ol><li><a href="/">Accueil</a></li><li><a href="/aides">Aides</a></li><li>Plafonds 2024</li></ol></nav>
<article><h1>Aides au logement 2024 : plafonds et montants</h1>
<p>Les plafonds de ressources de l’aide au logement dépendent de la zone où se trouve le logement et de la composition du foyer.
Ils sont révisés chaque année au 1er janvier par arrêté ministériel, après avis du conseil national de l’habitat.</p>
<table class="table-striped">
<caption>Plafonds de ressources annuels</caption>
<thead>
<tr><th rowspan="2">Foyer</th><th colspan="2">Plafonds</th><th rowspan="2">Aide maximale</th></tr>
<tr><th>Paris</th><th>Province</th></tr>
</thead>
<tbody>
<tr><td>Personne seule</td><td>25 000 €</td><td>19 000 €</td><td>300 €</td></tr>
<tr><td>Couple</td><td>37 000 €</td><td>28 000 €</td><td>450 €</td></tr>
</tbody></table>
<p>Le montant de l’aide versée chaque mois est calculé sur les ressources des douze derniers mois et sur le loyer payé, dans la limite
d’un loyer plafond qui dépend lui aussi de la zone.</p>
<table>
<tr><th></th><th colspan="2">Loyer plafond</th><th colspan="2">Forfait charges</th></tr>
<tr><th>Zone</th><th>Seul</th><th>En couple</th><th>Seul</th><th>En couple</th></tr>
<tr><th rowspan="2">Zone 1</th><td>320 €</td><td>390 €</td><td>55 €</td><td>70 €</td></tr>
<tr><td>330 €</td><td>400 €</td><td>57 €</td><td>72 €</td></tr>
<tr><th>Zone 2</th><td>280 €</td><td>340 €</td><td>50 €</td><td>64 €</td></tr>
</table>
<p>Les demandes se font en ligne sur le site de la caisse d’allocations familiales, qui verse l’aide directement au bailleur
lorsque celui-ci en fait la demande.</p>
</article></main>
<footer><ul><li><a href="/mentions-legales">Mentions légales</a></li><li><a href="/accessibilite">Accessibilité : partiellement conforme</a></li>
<li><a href="/plan">Plan du site</a></li></ul><p>© 2024 Service public du logement</p></footer>
</body></html>"""


def test_an_html_table_with_two_header_rows_names_each_column_after_both_through_qa_index(tmp_path):
    """The saved page indexed by `qa index`: a header of two rows (a <thead>, or leading rows of <th>)
    names each column after both rows, a cell spanning columns names each of them, a cell spanning
    rows is in each row it covers (as Word's merged cells are); the chunks slice the stored text."""
    import json
    import sqlite3
    from contextlib import closing

    from typer.testing import CliRunner

    from qa.cli import app

    site = tmp_path / "site"
    site.mkdir()
    (site / "plafonds.html").write_text(SAVED_PAGE, encoding="utf-8")
    data = tmp_path / "data"
    env = {"QA_DATA_DIR": str(data), "QA_CHUNK_TOKENS": "40", "QA_CHUNK_OVERLAP_TOKENS": "8"}
    indexed = CliRunner().invoke(app, ["index", str(site)], env=env)
    assert indexed.exit_code == 0, indexed.output
    shown = CliRunner().invoke(app, ["docs", "show", "plafonds", "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    text = json.loads(shown.stdout)["text"]
    lines = text.split("\n")
    start = lines.index("Plafonds de ressources annuels")
    assert lines[start:start + 5] == [
        "Plafonds de ressources annuels",
        "Foyer | Plafonds | Aide maximale",
        "Foyer | Paris | Province | Aide maximale",  # "Foyer" spans both header rows
        "Foyer : Personne seule ; Plafonds Paris : 25 000 € ; Plafonds Province : 19 000 € ; Aide maximale : 300 €",
        "Foyer : Couple ; Plafonds Paris : 37 000 € ; Plafonds Province : 28 000 € ; Aide maximale : 450 €",
    ]
    start = lines.index("Loyer plafond | Forfait charges")
    assert lines[start:start + 5] == [
        "Loyer plafond | Forfait charges",
        "Zone | Seul | En couple | Seul | En couple",
        "Zone : Zone 1 ; Loyer plafond Seul : 320 € ; Loyer plafond En couple : 390 € ; Forfait charges Seul : 55 € ; Forfait charges En couple : 70 €",
        "Zone : Zone 1 ; Loyer plafond Seul : 330 € ; Loyer plafond En couple : 400 € ; Forfait charges Seul : 57 € ; Forfait charges En couple : 72 €",
        "Zone : Zone 2 ; Loyer plafond Seul : 280 € ; Loyer plafond En couple : 340 € ; Forfait charges Seul : 50 € ; Forfait charges En couple : 64 €",
    ]
    assert "Mentions légales" not in text and "cookies" not in text  # the boilerplate is left out, as before
    with closing(sqlite3.connect(data / "index.sqlite3")) as conn:
        chunks = conn.execute("SELECT start_char, end_char, text FROM chunks WHERE document_id = 'plafonds' ORDER BY start_char").fetchall()
    assert len(chunks) > 2 and all(text[s:e] == t for s, e, t in chunks)


def test_a_table_trafilatura_writes_otherwise_than_the_page_keeps_its_first_th_row_as_header(tmp_path):
    """A table whose cells trafilatura's tree does not match the page's (here a cell it empties) is
    read from that tree alone, as before: its first row of <th> names the columns, the cell under a
    colspan's second column (empty there) is named by none."""
    page = SAVED_PAGE.replace("<td>25 000 €</td>", '<td><span style="display:none">Montant :</span>25 000 €</td>')
    (tmp_path / "plafonds.html").write_text(page, encoding="utf-8")
    docs, errors = load_documents([tmp_path])
    assert errors == []
    lines = docs[0].text.split("\n")
    assert "Foyer : Personne seule ; Plafonds : 25 000 € ; 19 000 € ; Aide maximale : 300 €" in lines
    # the page's other table matches its own: both its header rows name its columns
    assert "Zone : Zone 2 ; Loyer plafond Seul : 280 € ; Loyer plafond En couple : 340 € ; Forfait charges Seul : 50 € ; Forfait charges En couple : 64 €" in lines


def test_a_thead_row_of_td_cells_is_a_header_row(tmp_path):
    """A <thead> marks its rows as the header, whatever their cells: a two-column table (which needs
    the mark) names its columns."""
    page = HTML.replace("<table><tr><td>Pays</td><td>Lancement</td></tr>", "<table><thead><tr><td>Pays</td><td>Lancement</td></tr></thead>")
    (tmp_path / "rapport.html").write_text(page, encoding="utf-8")
    docs, errors = load_documents([tmp_path])
    assert errors == []
    assert "\nPays | Lancement\nPays : France ; Lancement : 2014\n" in docs[0].text
