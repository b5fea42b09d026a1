"""The shipped reader, end to end on the seed articles: right answers, exact citations, honest no-answer."""

from __future__ import annotations

import pytest

from index.ingest import load_documents
from qa.metrics import best_over_references
from qa.pipeline import QAService
from tests.conftest import ARTICLES

CASES = [
    ("combien Netflix investit-il en 2018 ?", ["7 milliards de dollars", "entre 7 et 8 milliards de dollars"], {"004_c0583748e5709aa4", "002_affb09736d3cc83f"}),
    ("Dans quelle ville Netflix va-t-il ouvrir un bureau en France ?", ["Paris", "à Paris"], {"001_005d409384642fd6"}),
    ("Combien de séries originales Netflix veut-il produire en 2016 ?", ["31", "31 séries", "31 séries originales", "jusqu'à 31 séries"], {"000_98d13288281ea780"}),
    ("Qui est le directeur du contenu de Netflix ?", ["Ted Sarandos", "Sarandos"], {"003_07cab7c1bfb46b55", "000_98d13288281ea780"}),
    ("Combien d'abonnés Netflix compte-t-il dans le monde ?", ["100 millions", "100 millions d'abonnés"], {"004_c0583748e5709aa4"}),
    ("Entre quelles villes Netflix hésite-t-il pour son bureau au Canada ?", ["Toronto ou Vancouver", "Toronto", "Vancouver"], {"003_07cab7c1bfb46b55"}),
]


@pytest.fixture(scope="module")
def service(tmp_path_factory, base_settings):
    settings = base_settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("shipped")})
    svc = QAService.from_settings(settings)
    docs, errors = load_documents([ARTICLES])
    assert not errors
    svc.add_documents(docs)
    yield svc
    svc.close()


def test_every_citation_slices_its_document(service):
    for question, _, _ in CASES:
        res = service.ask(question, top_k=5, max_answers=3)
        for a in res.answers:
            assert service.get_document(a.document_id).text[a.start : a.end] == a.text
            for c in a.citations:
                assert service.get_document(c.document_id).text[c.start : c.end] == a.text


def test_answers_are_ranked_by_penalised_reader_score(service):
    """score = calibration(margin - rank_penalty * passage rank): never above the reader's own
    probability, equal to it for the first passage, sorted, and above the end-to-end threshold."""
    for question, _, _ in CASES:
        res = service.ask(question, top_k=5, max_answers=3)
        scores = [a.score for a in res.answers]
        assert scores == sorted(scores, reverse=True)
        first_chunk = res.passages[0].chunk_id
        for a in res.answers:
            assert a.score >= round(service.ask_threshold, 4) - 1e-4
            assert a.score <= a.reader_score + 1e-4
            if a.chunk_id == first_chunk:
                assert a.score == pytest.approx(a.reader_score, abs=1e-4)


# The reader issue's bar: at least 5 of these 6 right with their citations. With RRF retrieval the reader
# got 4 (an xfail until the twenty-second session); with convex fusion (README "Retrieval") it gets 5:
# "31" and "100 millions" now come from the passage that holds them, and the Canadian cities still get
# "Amsterdam et Rome", the existing offices named beside them.
def test_answers_seed_questions_correctly(service):
    correct = 0
    for question, golds, doc_ids in CASES:
        res = service.ask(question, top_k=5, max_answers=3)
        if res.answers:
            top = res.answers[0]
            em, f1 = best_over_references(top.text, golds)
            if f1 >= 0.5 and top.document_id in doc_ids:
                correct += 1
    assert correct >= 5, f"only {correct}/{len(CASES)} correct"


@pytest.mark.parametrize("question", ["Quelle est la recette de la quiche lorraine ?", "Qui a gagné la Coupe du monde de rugby 2015 ?"])
def test_says_no_answer_to_unrelated_question(service, question):
    res = service.ask(question, top_k=5)
    assert res.no_answer and res.answers == []
    assert res.passages, "passages are still returned"


def test_long_passages_give_whole_words(service):
    """A passage longer than one window: windows begin mid-word and the answer's name is several
    sub-word tokens; the reader used to answer "Jean-Ba" (and "is") here."""
    text = "La ville compte de nombreux commerces et une gare. " * 31 + "mot " * 24 + "Le roman a été écrit par Jean-Baptiste Dupuis en 1999."
    (spans,) = service.reader.read("Qui a écrit le roman ?", [text])
    assert spans[0].text == "Jean-Baptiste Dupuis"
    for s in spans:
        assert not (s.start > 0 and text[s.start - 1].isalnum() and text[s.start].isalnum()), s.text
        assert not (s.end < len(text) and text[s.end - 1].isalnum() and text[s.end].isalnum()), s.text


def test_ask_on_passages_of_a_deeper_search_is_the_same(service):
    """`qa eval` reads the top 5 of its depth-10 retrieval search instead of searching again."""
    for question, _, _ in CASES[:3]:
        direct = service.ask(question, top_k=5)
        reused = service.ask(question, top_k=5, passages=service.search(question, top_k=10)[:5])
        assert [p.chunk_id for p in reused.passages] == [p.chunk_id for p in direct.passages]
        assert [(a.text, a.document_id, a.start, a.score) for a in reused.answers] == [(a.text, a.document_id, a.start, a.score) for a in direct.answers]


def test_quantisation_setting(service, base_settings, monkeypatch):
    """QA_READER_QUANTIZE: off (default), attention (int8 attention projections), all; true/false still
    read as all/off; anything else is refused naming the setting."""
    from pydantic import ValidationError

    from qa.pipeline import load_reader
    from qa.settings import Settings

    assert Settings().reader_quantize == "off"
    for raw, parsed in (("true", "all"), ("false", "off"), ("attention", "attention"), ("all", "all")):
        monkeypatch.setenv("QA_READER_QUANTIZE", raw)
        assert Settings().reader_quantize == parsed
    monkeypatch.setenv("QA_READER_QUANTIZE", "half")
    with pytest.raises(ValidationError, match="reader_quantize"):
        Settings()
    monkeypatch.delenv("QA_READER_QUANTIZE")

    reader = load_reader(base_settings.model_copy(update={"reader_quantize": "attention"}))
    kinds = {name: type(m).__module__ for name, m in reader.model.named_modules() if "Linear" in type(m).__name__}
    quantised = {n for n, k in kinds.items() if "quantized" in k}
    assert quantised and all("attention." in n for n in quantised)
    assert all(n in quantised for n in kinds if "attention." in n)  # every attention projection, nothing else
    # it reads the seed passages as the float32 reader does on the first question
    question = CASES[0][0]
    passages = [p.text for p in service.search(question, top_k=5)]
    ours = [s[0].text if s else None for s in reader.read(question, passages)]
    shipped = [s[0].text if s else None for s in service.reader.read(question, passages)]
    assert ours[0] == shipped[0] and ours[0] in CASES[0][1]
