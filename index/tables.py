"""A table's text, line by line, for Word and HTML documents: pure functions.

A data row written bare ("2018 | 8 milliards | 139 millions") means nothing without its header row,
which chunking may cut away and which the reader and BM25 do not connect with it anyway. So when a
table has a header, each data row names its columns: "Année : 2018 ; Budget contenu : 8 milliards ;
Abonnés : 139 millions", readable in `qa docs show` and in citations, and whole in any passage.
A table without a recognisable header keeps its rows' cells joined by " | "."""

from __future__ import annotations

from dataclasses import dataclass

# a first row longer than this in a cell is prose, not a column's name
_HEADER_CELL_CHARS = 60
# fewer columns than this and an unmarked first row is not taken for a header: a two-column table is as
# often "label | value" pairs ("Nom | Jean Dupont") as a header over data
_UNMARKED_HEADER_MIN_COLUMNS = 3


@dataclass(frozen=True)
class TableCell:
    """A cell's text (spaces collapsed) and the grid columns it covers (Word's ``gridSpan``,
    HTML's ``colspan``)."""

    text: str
    span: int = 1


Row = list[TableCell]


def bare_line(row: Row) -> str:
    """A row as it is written without a header: its non-empty cells joined by " | "."""
    return " | ".join(c.text for c in row if c.text)


def width(rows: list[Row]) -> int:
    """The table's number of grid columns."""
    return max((sum(max(1, c.span) for c in row) for row in rows), default=0)


def looks_like_header(row: Row) -> bool:
    """Whether an unmarked first row reads as column names: every cell filled, short and with a
    letter (a number is data: "2017", "12 000"), no two alike."""
    texts = [c.text for c in row]
    return (
        bool(texts)
        and all(t and len(t) <= _HEADER_CELL_CHARS and any(ch.isalpha() for ch in t) for t in texts)
        and len({t.casefold() for t in texts}) == len(texts)
    )


def header_rows(rows: list[Row], marked: int) -> int:
    """How many of ``rows`` are the table's header: the ``marked`` leading ones (Word's "repeat as
    header row", HTML's ``<th>``) if any, else the first row when the table has at least
    ``_UNMARKED_HEADER_MIN_COLUMNS`` columns, a row below it and ``looks_like_header``; else none."""
    if marked > 0:
        return min(marked, len(rows))
    if len(rows) >= 2 and width(rows) >= _UNMARKED_HEADER_MIN_COLUMNS and looks_like_header(rows[0]):
        return 1
    return 0


def column_labels(header: list[Row], columns: int) -> list[str]:
    """Each grid column's name: its header cells' texts top to bottom (a cell spanning columns names
    each of them), repeats and empty cells left out, joined by a space ("Recettes" over "Impôts":
    "Recettes Impôts")."""
    labels: list[list[str]] = [[] for _ in range(columns)]
    for row in header:
        col = 0
        for cell in row:
            for c in range(col, min(col + max(1, cell.span), columns)):
                if cell.text and cell.text not in labels[c]:
                    labels[c].append(cell.text)
            col += max(1, cell.span)
    return [" ".join(parts) for parts in labels]


def labelled_line(labels: list[str], row: Row) -> str:
    """A data row with its columns' names: "Année : 2018 ; Budget contenu : 8 milliards". An empty
    cell is left out; a cell spanning columns is named after the first; a cell under no name (an
    empty corner, a row wider than the header) is its text alone."""
    parts, col = [], 0
    for cell in row:
        if cell.text:
            label = labels[col] if col < len(labels) else ""
            parts.append(f"{label} : {cell.text}" if label and label != cell.text else cell.text)
        col += max(1, cell.span)
    return " ; ".join(parts)


def title_rows(rows: list[Row]) -> int:
    """How many leading rows hold text in their first cell only, in a table of two columns or more:
    a title over the table ("Tableau 3 : budget", one cell merged across it; an HTML ``<caption>``),
    not a header whose names would label every column."""
    n = 0
    if width(rows) >= 2:
        while n < len(rows) and rows[n] and rows[n][0].text and not any(c.text for c in rows[n][1:]):
            n += 1
    return n


def names_columns(rows: list[Row], marked_header_rows: int = 0) -> bool:
    """Whether ``table_lines`` writes the table's data rows with their columns' names: under its title
    rows, a header (``header_rows``) with a row below it, and two columns or more."""
    titles = title_rows(rows)
    n = header_rows(rows[titles:], max(0, marked_header_rows - titles))
    return 0 < n < len(rows) - titles and width(rows) >= 2


def table_lines(rows: list[Row], marked_header_rows: int = 0) -> list[str]:
    """A table's text, a line per row with text: when it ``names_columns``, its title and header rows
    as bare lines, then each data row ``labelled_line``; else every row a bare line (a table of one
    column, one that is all header, one without a recognisable header). ``marked_header_rows``: how
    many leading rows the document marks as its header."""
    if not names_columns(rows, marked_header_rows):
        return [line for line in map(bare_line, rows) if line]
    titles = title_rows(rows)
    n = titles + header_rows(rows[titles:], max(0, marked_header_rows - titles))
    labels = column_labels(rows[titles:n], width(rows))
    header_texts = [[c.text for c in row] for row in rows[titles:n]]
    # a header row repeated further down (a page's top in a long table) stays as it is
    lines = [bare_line(row) for row in rows[:n]] + [
        bare_line(row) if [c.text for c in row] in header_texts else labelled_line(labels, row) for row in rows[n:]]
    return [line for line in lines if line]
