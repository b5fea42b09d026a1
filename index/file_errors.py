"""What `qa index`, `POST /documents/files` and `qa eval` say of a file they cannot decode or parse.

One wording for all of them, naming what to fix: Python's own messages ("invalid continuation
byte", "Expecting property name enclosed in double quotes") name the symptom, not the usual cause.
"""

from __future__ import annotations

import json


def not_utf8(data: bytes, at: int) -> str:
    """The message for ``data`` that is not UTF-8 from byte ``at`` on (a file saved as Windows-1252
    or Latin-1, as French text often is: 'é' is the one byte 0xe9)."""
    return f"not UTF-8 text (byte {at} is 0x{data[at]:02x}): save the file as UTF-8"


def json_syntax(exc: json.JSONDecodeError, line: bool = False) -> str:
    """The message for a JSON syntax error, with its column (and ``line``, for a request body: a file's
    message names its line already) and, for the two mistakes people make most when writing JSON by
    hand, what to change: a comma before a closing brace or bracket, and single quotes (Python's
    ``repr`` of a dict)."""
    message = f"invalid JSON: {exc.msg} ({f'line {exc.lineno}, ' if line else ''}column {exc.colno})"
    text, pos = exc.doc, exc.pos
    after = text[pos:].lstrip()[:1]
    if text[:pos].rstrip().endswith(",") and after in ("}", "]"):
        return f"{message}: remove the comma before '{after}' (JSON allows no trailing comma)"
    if text[pos:pos + 1] == "'":
        return f"{message}: write names and strings in double quotes (\"), not single quotes"
    return message
