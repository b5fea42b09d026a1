"""SQuAD files are read one way (qa.squad.read_squad) for training, evaluation and the benchmarks."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from qa.evaluation import GoldFormatError, load_gold
from qa.squad import fix_answer, load_squad, make_negatives, read_squad


def _write(path: Path, data: dict, bom: bool = False) -> Path:
    path.write_bytes(("\ufeff" if bom else "").encode("utf-8") + json.dumps(data, ensure_ascii=False).encode("utf-8"))
    return path


def _article(title: str | None, context: str, question: str, answer: str, qid: str) -> dict:
    art = {"paragraphs": [{"context": context, "qas": [{"id": qid, "question": question, "answers": [{"text": answer, "answer_start": context.index(answer)}]}]}]}
    return art if title is None else {"title": title, **art}


def test_training_and_evaluation_read_the_same_questions(tmp_path):
    f = _write(tmp_path / "s.json", {"data": [
        _article("Netflix", "Netflix va ouvrir un bureau à Paris.", "Où ?", "Paris", "q1"),
        _article("Cuisine", "La quiche se prépare avec des lardons.", "Avec quoi ?", "des lardons", "q2"),
    ]}, bom=True)  # a byte-order mark (Windows editors) is not data, for training either
    items = load_squad(f)
    gold = load_gold(f)
    assert [(i.qid, i.question, i.context, i.title) for i in items] == [(g.id, g.question, g.context, g.article) for g in gold.items]
    assert [fix_answer(i.context, i.answers[0]) for i in items] == [(30, 35), (26, 37)]
    paragraphs = read_squad(f)
    assert [(p.where, [q.where for q in p.questions]) for p in paragraphs] == [
        ("data[0].paragraphs[0]", ["data[0].paragraphs[0].qas[0]"]), ("data[1].paragraphs[0]", ["data[1].paragraphs[0].qas[0]"])]


def test_a_malformed_file_is_named_where_it_is_wrong_for_training_too(tmp_path):
    """Training and the benchmarks read SQuAD files without a check: a KeyError, far into a run."""
    bad = _write(tmp_path / "bad.json", {"data": [{"title": "T", "paragraphs": [{"context": "Paris.", "qas": [{"id": "1", "questoin": "Où ?", "answers": []}]}]}]})
    with pytest.raises(ValueError, match=r"bad\.json: data\[0\]\.paragraphs\[0\]\.qas\[0\]\.questoin is not a SQuAD field: did you mean 'question'\?"):
        load_squad(bad)
    with pytest.raises(GoldFormatError, match=r"qas\[0\]\.questoin is not a SQuAD field"):
        load_gold(bad)
    jsonl = tmp_path / "gold.jsonl"
    jsonl.write_text('{"id": "a", "question": "Où ?", "answers": ["Paris"]}\n{"id": "b", "question": "Qui ?", "answers": []}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"gold\.jsonl:2: invalid JSON"):
        load_squad(jsonl)


def test_articles_without_a_title_are_distinct_articles(tmp_path):
    """Training paired questions with another article's paragraph by title: with none, every article
    was the same one ("") and no such negative was made."""
    f = _write(tmp_path / "s.json", {"data": [
        _article(None, "Netflix va ouvrir un bureau à Paris.", "Où ?", "Paris", "q1"),
        _article(None, "La quiche se prépare avec des lardons.", "Avec quoi ?", "des lardons", "q2"),
    ]})
    items = load_squad(f)
    assert [i.title for i in items] == ["article 0", "article 1"] == [g.article for g in load_gold(f).items]
    negatives = make_negatives(items, 1.0, random.Random(0))
    assert len(negatives) == 2 and all(n.context != i.context for n, i in zip(sorted(negatives, key=lambda n: n.qid), items))


def test_an_answer_without_its_start_is_found_in_its_context(tmp_path):
    f = _write(tmp_path / "s.json", {"data": [{"title": "T", "paragraphs": [{"context": "Netflix va ouvrir un bureau à Paris.", "qas": [
        {"id": "q", "question": "Où ?", "answers": [{"text": "Paris"}]}]}]}]})
    (item,) = load_squad(f)
    assert item.answers == [{"text": "Paris", "answer_start": None}] and fix_answer(item.context, item.answers[0]) == (30, 35)


def test_training_refuses_a_question_the_api_refuses_as_too_long(tmp_path):
    """One rule (qa.validation.MAX_QUESTION_CHARS, stripped) for gold files, training files and the API."""
    context = "Netflix va ouvrir un bureau à Paris."
    fine = _article("T", context, "  " + "Où " * 333 + "?  ", "Paris", "q1")  # 1,000 once stripped
    f = _write(tmp_path / "s.json", {"data": [fine]})
    assert len(load_squad(f)[0].question.strip()) == 1000
    long = _article("T", context, "Où " * 334 + "?", "Paris", "q1")
    f = _write(tmp_path / "s.json", {"data": [long]})
    with pytest.raises(ValueError, match=r"s\.json: data\[0\]\.paragraphs\[0\]\.qas\[0\]\.question must be at most 1000 characters, surrounding whitespace left out \(got 1003\)"):
        load_squad(f)
