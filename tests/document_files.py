"""Small real PDF and Word files written by the tests themselves (pypdf, python-docx)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path


def _pdf_string(line: str) -> bytes:
    """A PDF string literal of ``line`` in WinAnsiEncoding (cp1252: é, è, à, ç, œ, ’ are single bytes)."""
    return b"(" + line.encode("cp1252").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def write_pdf(path: Path, pages: list[list[str]], metadata: dict[str, str] | None = None, password: str | None = None,
              algorithm: str = "RC4-128") -> Path:
    """A PDF of ``pages``, each a list of lines printed in Helvetica (a standard Type1 font, nothing
    embedded); an empty list is a page without text, as a scan's. ``metadata``: its /Info
    ("/Title", "/CreationDate"); ``password``: encrypted with this user password ("AES-256": needs cryptography)."""
    from pypdf import PdfWriter
    from pypdf.generic import ContentStream, DictionaryObject, NameObject

    writer = PdfWriter()
    font = DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica"), NameObject("/Encoding"): NameObject("/WinAnsiEncoding"),
    })
    for lines in pages:
        page = writer.add_blank_page(595, 842)
        if not lines:
            continue
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
        # 14 pt leading; T* moves to the next line
        ops = b"BT /F1 11 Tf 14 TL 72 770 Td " + b" ".join(_pdf_string(line) + b" Tj T*" for line in lines) + b" ET"
        content = ContentStream(None, writer)
        content.set_data(ops)
        page.replace_contents(content)
    if metadata:
        writer.add_metadata(metadata)
    if password is not None:
        writer.encrypt(password, algorithm=algorithm)
    with open(path, "wb") as f:
        writer.write(f)
    return path


def write_docx(path: Path, paragraphs: list[tuple[str, str | None]], table: list[list[str]] | None = None,
               title: str = "", created: datetime | None = datetime(2023, 5, 4, 9, 30, tzinfo=timezone.utc), header: str = "",
               table_header_rows: int = 0) -> Path:
    """A .docx of ``paragraphs`` ((text, style), style None for body text, "Heading 1"...), then
    ``table``'s rows if given (its first ``table_header_rows`` marked as Word's repeated header rows),
    with core properties ``title`` and ``created`` and a page ``header``."""
    import docx
    from docx.oxml import OxmlElement

    document = docx.Document()
    for text, style in paragraphs:
        document.add_paragraph(text, style=style)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                grid.cell(r, c).text = cell
        for row in grid.rows[:table_header_rows]:
            row._tr.get_or_add_trPr().append(OxmlElement("w:tblHeader"))
    document.core_properties.title = title
    if created is not None:
        document.core_properties.created = created
    if header:
        document.sections[0].header.paragraphs[0].text = header
    document.save(str(path))
    return path
