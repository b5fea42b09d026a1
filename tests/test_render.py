"""Terminal rendering of ``qa ask`` results (pure: no model)."""

from __future__ import annotations

from index.schema import SearchResult
from qa.pipeline import Answer, AskResult
from qa.render import locate_in_context, render_ask

DOC = "Netflix a sorti 16 séries. Il en veut 31 en 2016, contre 16 en 2015.\nFin."


def _result(answers, passages=None):
    passages = passages if passages is not None else [SearchResult(7, "doc-1", "Netflix et les séries", "https://www.numerama.com/a", "2015-12-08", DOC, 0, len(DOC), 0.9)]
    return AskResult("Combien de séries en 2015 ?", answers, not answers, passages, 12.3)


def _answer(start, end, context):
    context_start = DOC.index(context)
    return Answer(DOC[start:end], 0.87, "doc-1", "Netflix et les séries", "https://www.numerama.com/a", "2015-12-08", 7, start, end, context, context_start)


def test_answer_is_highlighted_in_its_sentence_with_its_source():
    start = DOC.index("16 en 2015")
    a = _answer(start, start + 2, "Il en veut 31 en 2016, contre 16 en 2015.")
    out = render_ask(_result([a]), color=False)
    # the second "16" of the context is the answer (the passage decides which occurrence)
    assert "« Il en veut 31 en 2016, contre [16] en 2015. »" in out
    assert "Netflix et les séries" in out and "document doc-1" in out and "2015-12-08" in out and "https://www.numerama.com/a" in out
    assert "\033[" not in out
    colored = render_ask(_result([a]), color=True)
    assert "\033[1;33m16\033[0m en 2015" in colored


def test_answer_is_located_by_the_context_offset_not_by_searching():
    start = DOC.index("16 en 2015")
    b = _answer(start, start + 2, "Il en veut 31 en 2016, contre 16 en 2015.")
    # "16" occurs twice in the context: the offsets pick the second one
    assert locate_in_context(b) == (b.context.rindex("16"), b.context.rindex("16") + 2)
    first = _answer(0, 7, "Netflix a sorti 16 séries.")
    assert locate_in_context(first) == (0, 7)
    broken = Answer("16", 0.5, "doc-1", None, None, None, 7, 0, 2, "Netflix", 0)  # offsets that do not fit
    assert locate_in_context(broken) is None
    assert "[16] — Netflix" in render_ask(_result([broken]), color=False)


def test_no_answer_in_french():
    out = render_ask(_result([]), color=False)
    assert "Aucune réponse trouvée" in out and "Netflix et les séries" in out
    assert "Aucune réponse trouvée" in render_ask(_result([], passages=[]), color=False)


def test_control_characters_of_stored_text_are_shown_not_obeyed():
    doc = "Le siège \x1b[2J est \x1b]0;pwned\x07 à Lyon."
    p = SearchResult(7, "esc", "Titre \x1b[8mcaché", "https://a.example/\x1b[31m", None, doc, 0, len(doc), 0.9)
    start = doc.index("Lyon")
    a = Answer("Lyon", 0.9, "esc", p.title, p.url, None, 7, start, start + 4, doc, 0)
    for out in (render_ask(AskResult("Où ?", [a], False, [p], 1.0), color=False), render_ask(AskResult("Où ?", [], True, [p], 1.0), color=False)):
        assert "\x1b" not in out and "\x07" not in out, out
    out = render_ask(AskResult("Où ?", [a], False, [p], 1.0), color=False)
    assert "\\x1b[2J" in out and "Titre \\x1b[8mcaché" in out and "https://a.example/\\x1b[31m" in out


def test_direction_overrides_of_stored_text_are_shown_not_obeyed():
    """U+202E and the isolates reorder what follows on a terminal ("fdp.exe" reads "exe.pdf"): the
    CLI writes them as escapes; the marks that only nudge (U+200E/F) and ordinary text stay."""
    from index.text import visible

    title = "Rapport \u202efdp.exe"
    doc = "Le siège est à Lyon \u2067שלום\u2069 \u200ffin."
    p = SearchResult(7, "bidi", title, None, None, doc, 0, len(doc), 0.9)
    out = render_ask(AskResult("Où ?", [], True, [p], 1.0), color=False)
    assert "\u202e" not in out and "\u2067" not in out and "Rapport \\u202efdp.exe" in out, out
    assert visible(doc) == "Le siège est à Lyon \\u2067שלום\\u2069 \u200ffin."
