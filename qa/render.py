"""Terminal rendering of answers for ``qa ask`` and ``qa extract``: answer, highlighted context sentence, source.

ANSI bold (yellow) highlights the answer when writing to a terminal; otherwise the answer is put
in [brackets] so that piped output stays plain text.
"""

from __future__ import annotations

import re
import sys
import textwrap
from typing import Any

from index.text import visible

BOLD = "\033[1m"
HIGHLIGHT = "\033[1;33m"
DIM = "\033[2m"
RESET = "\033[0m"
_WS = re.compile(r"\s+")


def plural(count: int, word: str) -> str:
    """ "1 chunk", "2 chunks" """
    return f"{count} {word}{'' if count == 1 else 's'}"


def locate_in_context(answer: Any) -> tuple[int, int] | None:
    """Offsets of the answer inside ``answer.context`` (which starts at ``answer.context_start``)."""
    s, e = answer.start - answer.context_start, answer.end - answer.context_start
    if 0 <= s <= e <= len(answer.context or "") and answer.context[s:e] == answer.text:
        return s, e
    return None


def _squash(text: str) -> str:
    return visible(_WS.sub(" ", text))


def _highlight(context: str, span: tuple[int, int] | None, answer_text: str, color: bool) -> str:
    """The context on one line with the answer highlighted (whitespace runs collapsed)."""
    on, off = (HIGHLIGHT, RESET) if color else ("[", "]")
    if span is None:
        answer = _one_line(answer_text)
        return f"{on}{answer}{off} — {_one_line(context)}" if context.strip() else f"{on}{answer}{off}"
    s, e = span
    return f"{_squash(context[:s]).lstrip()}{on}{_squash(context[s:e])}{off}{_squash(context[e:]).rstrip()}"


def _one_line(text: str) -> str:
    """One line for the terminal: whitespace runs folded, other control characters (an ESC kept in
    a document's text or title) shown as escapes instead of acting on the terminal."""
    return visible(" ".join((text or "").split()))


def _answer_lines(i: int, a: Any, details: str, color: bool) -> list[str]:
    """The answer with its details, then its context sentence with the answer highlighted."""
    bold, dim, off = (BOLD, DIM, RESET) if color else ("", "", "")
    context = a.context or ""
    span = locate_in_context(a) if context else None
    return [f"{bold}{i}. {_one_line(a.text)}{off}  {dim}({details}){off}", "   « " + _highlight(context, span, a.text, color) + " »"]


def render_ask(result: Any, color: bool | None = None, width: int = 100) -> str:
    """Human-readable text for an ``AskResult`` (French labels)."""
    if color is None:
        color = sys.stdout.isatty()
    bold, dim, off = (BOLD, DIM, RESET) if color else ("", "", "")
    lines = [f"{bold}Question :{off} {_one_line(result.question)}", ""]
    passages = list(result.passages or [])

    if not result.answers:
        lines.append(f"{bold}Aucune réponse trouvée.{off}")
        if passages:
            lines.append("")
            lines.append("Passages les plus proches :")
            for i, p in enumerate(passages, 1):
                lines.append(f"  {i}. {_one_line(p.title or p.document_id)} ({_one_line(p.document_id)}, {p.published or 's.d.'}) — score {p.score:.3f}")
                lines.append(textwrap.shorten(_one_line(p.text), width=width, placeholder=" …").join(("     ", "")))
        else:
            lines.append("Aucun passage pertinent dans l’index.")
    else:
        for i, a in enumerate(result.answers, 1):
            lines += _answer_lines(i, a, f"score {a.score:.2f}", color)
            source = _one_line(a.title or a.document_id)
            details = [f"document {_one_line(a.document_id)}", f"caractères {a.start}–{a.end}"]
            if a.published:
                details.insert(1, f"publié le {a.published}" if len(a.published) == 10 else f"publié en {a.published}")
            lines.append(f"   Source : {source} ({', '.join(details)})")
            if a.url:
                lines.append(f"   {dim}{_one_line(a.url)}{off}")
            lines.append("")
        if lines[-1] == "":
            lines.pop()
    lines.append("")
    n = len(passages)
    lines.append(f"{dim}{n} passage{'s' if n > 1 else ''} lu{'s' if n > 1 else ''} en {result.took_ms:.0f} ms{off}")
    return "\n".join(lines)


def render_extract(question: str, answers: list[Any], took_ms: float, color: bool | None = None) -> str:
    """Human-readable text for ``qa extract``: each answer in its sentence, with its offsets in the text read."""
    if color is None:
        color = sys.stdout.isatty()
    bold, dim, off = (BOLD, DIM, RESET) if color else ("", "", "")
    lines = [f"{bold}Question :{off} {_one_line(question)}", ""]
    if not answers:
        lines.append(f"{bold}Aucune réponse trouvée dans ce texte.{off}")
    for i, a in enumerate(answers, 1):
        lines += _answer_lines(i, a, f"score {a.score:.2f}, caractères {a.start}–{a.end}", color)
    lines += ["", f"{dim}lu en {took_ms:.0f} ms{off}"]
    return "\n".join(lines)
