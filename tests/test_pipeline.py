"""Pure parts of the answering pipeline: the context sentence and the merging of answers."""

from __future__ import annotations

import pytest

from qa.pipeline import Answer, Citation, context_window, merge_answers

TEXT = (
    "Netflix a sorti 16 séries en 2015.  Il en veut 31 en 2016, contre 16 en 2015 !\n"
    "Le budget atteint 7 milliards de dollars. Fin"
)


@pytest.mark.parametrize("needle", ["16 séries", "31", "16 en 2015", "7 milliards", "Fin", "Netflix"])
def test_context_is_the_sentence_around_the_answer_and_slices_the_text(needle):
    start = TEXT.index(needle)
    end = start + len(needle)
    s, e = context_window(TEXT, start, end)
    assert s <= start and end <= e
    context = TEXT[s:e]
    assert context == context.strip() and context
    assert context[start - s : end - s] == needle
    # one sentence: no sentence end inside the context before the answer
    assert not any(ch in context[: start - s] for ch in ".!?\n")


@pytest.mark.parametrize("text, needle, want", [
    ("Titre\r\rNetflix va ouvrir un bureau à Marseille.\rFin.", "Marseille", "Netflix va ouvrir un bureau à Marseille."),
    ("Il a demandé « Pourquoi ?\u202f» puis il est parti à Lyon.", "Lyon", "Il a demandé « Pourquoi ?\u202f» puis il est parti à Lyon."),
    ("« Pourquoi ? » Puis il est parti à Lyon. Fin.", "Lyon", "Puis il est parti à Lyon."),
    ("M. Dupont vit à Lyon depuis 3,5 ans. Fin.", "Lyon", "M. Dupont vit à Lyon depuis 3,5 ans."),
])
def test_context_sentences_are_the_indexers_sentences(text, needle, want):
    """Lone carriage returns end a sentence; a closing guillemet after "?" stays with its sentence."""
    start = text.index(needle)
    s, e = context_window(text, start, start + len(needle))
    assert text[s:e] == want


def test_context_is_cut_in_long_sentences():
    text = "mot " * 200 + "réponse" + " mot" * 200
    start = text.index("réponse")
    s, e = context_window(text, start, start + 7, max_chars=50)
    assert start - s <= 50 and e - (start + 7) <= 50
    assert text[s:e][start - s : start - s + 7] == "réponse"


@pytest.mark.parametrize("words", ["filiale numéro 37 ", "mot ", "a bb ccc "])
def test_a_long_sentence_is_cut_between_words(words):
    """A page showed "iliale numéro 37…" and "…installée dans": cut inside a word, with no way to tell."""
    text = words * 80 + "réponse" + " " + words * 80
    start = text.index("réponse")
    for max_chars in (50, 51, 52, 53, 97):
        s, e = context_window(text, start, start + 7, max_chars=max_chars)
        assert s <= start and e >= start + 7 and start - s <= max_chars and e - (start + 7) <= max_chars
        assert (s == 0 or text[s - 1].isspace()) and not text[s].isspace(), repr(text[s - 3 : s + 3])
        assert (e == len(text) or text[e].isspace()) and not text[e - 1].isspace(), repr(text[e - 3 : e + 3])


def _answer(text: str, doc: str, start: int, score: float) -> Answer:
    end = start + len(text)
    cite = Citation(doc, None, None, None, 1, start, end)
    return Answer(text, score, doc, None, None, None, 1, start, end, text, start, score, [cite])


def test_same_text_in_two_documents_is_one_answer_with_both_citations():
    a = _answer("7 milliards de dollars", "doc-a", 10, 0.9)
    b = _answer("7 milliards de dollars", "doc-b", 40, 0.6)
    other = _answer("31", "doc-a", 100, 0.7)
    merged = merge_answers([b, other, a])
    assert [m.text for m in merged] == ["7 milliards de dollars", "31"]
    assert [(c.document_id, c.start) for c in merged[0].citations] == [("doc-a", 10), ("doc-b", 40)]


def test_overlapping_variant_of_one_place_is_dropped_not_cited():
    best = _answer("7 milliards de dollars", "doc-a", 10, 0.9)
    variant = _answer("milliards de dollars", "doc-a", 12, 0.5)  # inside the same place, other words
    elsewhere = _answer("milliards de dollars", "doc-b", 12, 0.4)  # same words as the variant, other place
    merged = merge_answers([variant, best, elsewhere])
    assert [m.text for m in merged] == ["7 milliards de dollars", "milliards de dollars"]
    assert [(c.document_id, c.start) for c in merged[0].citations] == [("doc-a", 10)]
    # every citation slices its document to the answer text: the variant's place is not cited
    assert [(c.document_id, c.start) for c in merged[1].citations] == [("doc-b", 12)]


def test_normalised_duplicates_keep_the_best_text():
    a = _answer("l'Hexagone", "doc-a", 5, 0.8)
    b = _answer("Hexagone", "doc-b", 7, 0.9)
    merged = merge_answers([a, b])
    assert len(merged) == 1 and merged[0].text == "Hexagone"
    # a different text is not another citation of this one (the citation must slice to the answer)
    assert [c.document_id for c in merged[0].citations] == ["doc-b"]
