"""Terminal rendering of answers for ``qa ask``: answer, highlighted context sentence, source.

ANSI bold (yellow) highlights the answer when writing to a terminal; otherwise the answer is put
in [brackets] so that piped output stays plain text.
"""

from __future__ import annotations

import re
import sys
import textwrap
from typing import Any

BOLD = "\033[1m"
HIGHLIGHT = "\033[1;33m"
DIM = "\033[2m"
RESET = "\033[0m"
_WS = re.compile(r"\s+")


def locate_in_context(answer: Any, passages: list[Any]) -> tuple[int, int] | None:
    """Offsets of the answer inside ``answer.context``.

    The context is a slice of the document around ``start:end`` but its own offset is not kept,
    so among the occurrences of the answer text in the context, prefer the one whose surroundings
    agree with the passage the answer came from; else the first occurrence.
    """
    ctx, text = answer.context or "", answer.text
    if not text:
        return None
    occurrences = []
    i = ctx.find(text)
    while i >= 0:
        occurrences.append(i)
        i = ctx.find(text, i + 1)
    if not occurrences:
        return None
    passage = next((p for p in passages if p.chunk_id == answer.chunk_id and p.document_id == answer.document_id), None)
    if passage is not None and passage.start <= answer.start and answer.end <= passage.end:
        s = answer.start - passage.start
        e = s + len(text)
        ptext = passage.text
        for i in occurrences:
            k = min(i, s)
            r = min(len(ctx) - i - len(text), len(ptext) - e)
            if ctx[i - k : i] == ptext[s - k : s] and ctx[i + len(text) : i + len(text) + r] == ptext[e : e + r]:
                return i, i + len(text)
    return occurrences[0], occurrences[0] + len(text)


def _squash(text: str) -> str:
    return _WS.sub(" ", text)


def _highlight(context: str, span: tuple[int, int] | None, answer_text: str, color: bool) -> str:
    """The context on one line with the answer highlighted (whitespace runs collapsed)."""
    on, off = (HIGHLIGHT, RESET) if color else ("[", "]")
    if span is None:
        answer = _one_line(answer_text)
        return f"{on}{answer}{off} — {_one_line(context)}" if context.strip() else f"{on}{answer}{off}"
    s, e = span
    return f"{_squash(context[:s]).lstrip()}{on}{_squash(context[s:e])}{off}{_squash(context[e:]).rstrip()}"


def _one_line(text: str) -> str:
    return " ".join((text or "").split())


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
                lines.append(f"  {i}. {p.title or p.document_id} ({p.document_id}, {p.published or 's.d.'}) — score {p.score:.3f}")
                lines.append(textwrap.shorten(_one_line(p.text), width=width, placeholder=" …").join(("     ", "")))
        else:
            lines.append("Aucun passage pertinent dans l’index.")
    else:
        for i, a in enumerate(result.answers, 1):
            lines.append(f"{bold}{i}. {_one_line(a.text)}{off}  {dim}(score {a.score:.2f}){off}")
            context = a.context or ""
            span = locate_in_context(a, passages) if context else None
            lines.append("   « " + _highlight(context, span, a.text, color) + " »")
            source = a.title or a.document_id
            details = [f"document {a.document_id}", f"caractères {a.start}–{a.end}"]
            if a.published:
                details.insert(1, f"publié le {a.published}" if len(a.published) == 10 else f"publié en {a.published}")
            lines.append(f"   Source : {source} ({', '.join(details)})")
            if a.url:
                lines.append(f"   {dim}{a.url}{off}")
            lines.append("")
        if lines[-1] == "":
            lines.pop()
    lines.append("")
    n = len(passages)
    lines.append(f"{dim}{n} passage{'s' if n > 1 else ''} lu{'s' if n > 1 else ''} en {result.took_ms:.0f} ms{off}")
    return "\n".join(lines)
