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
