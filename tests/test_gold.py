"""Sanity checks of the hand-written seed gold set (data/gold/seed_gold.jsonl)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTICLES_DIR = REPO / "data" / "articles"
GOLD = REPO / "data" / "gold" / "seed_gold.jsonl"


@pytest.fixture(scope="module")
def articles() -> dict[str, str]:
    docs = {p.stem: p.read_text(encoding="utf-8") for p in sorted(ARTICLES_DIR.glob("*.txt"))}
    assert docs, f"no articles in {ARTICLES_DIR}"
    return docs


@pytest.fixture(scope="module")
def gold() -> list[dict]:
    rows = []
    with GOLD.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:  # pragma: no cover - reported by the assertion
                pytest.fail(f"{GOLD.name}:{lineno}: invalid JSON: {exc}")
            rows.append(row)
    return rows


def test_schema(gold):
    for row in gold:
        assert set(row) == {"id", "question", "answers", "document_ids"}, row
        assert re.fullmatch(r"seed-\d{3,}", row["id"]), row["id"]
        assert isinstance(row["question"], str) and row["question"].strip(), row
        assert isinstance(row["answers"], list) and all(isinstance(a, str) and a for a in row["answers"]), row
        assert isinstance(row["document_ids"], list) and all(isinstance(d, str) for d in row["document_ids"]), row
        assert all(a == a.strip() for a in row["answers"]), f"{row['id']}: answer with surrounding whitespace"
        assert len(set(row["answers"])) == len(row["answers"]), f"{row['id']}: duplicate answers"
        assert len(set(row["document_ids"])) == len(row["document_ids"]), f"{row['id']}: duplicate document ids"


def test_ids_and_questions_unique(gold):
    ids = [row["id"] for row in gold]
    assert len(ids) == len(set(ids)), "duplicate ids"
    questions = [row["question"].strip().lower() for row in gold]
    assert len(questions) == len(set(questions)), "duplicate questions"


def test_size(gold):
    assert len(gold) >= 50


def test_unanswerable(gold):
    unanswerable = [row for row in gold if not row["answers"]]
    assert len(unanswerable) >= 5
    for row in gold:
        # an unanswerable question has no supporting document, and vice versa
        assert bool(row["answers"]) == bool(row["document_ids"]), row["id"]


def test_cross_article_questions(gold):
    assert sum(len(row["document_ids"]) >= 2 for row in gold) >= 4


def test_document_ids_exist(gold, articles):
    for row in gold:
        for doc_id in row["document_ids"]:
            assert doc_id in articles, f"{row['id']}: unknown document {doc_id}"


def test_every_article_covered(gold, articles):
    covered = {doc_id for row in gold for doc_id in row["document_ids"]}
    assert set(articles) <= covered, f"articles without questions: {sorted(set(articles) - covered)}"


def test_answers_are_verbatim_spans(gold, articles):
    for row in gold:
        docs = [articles[d] for d in row["document_ids"] if d in articles]
        for answer in row["answers"]:
            assert any(answer in text for text in docs), f"{row['id']}: {answer!r} not found verbatim in {row['document_ids']}"


def test_every_listed_document_supports_an_answer(gold, articles):
    for row in gold:
        for doc_id in row["document_ids"]:
            assert any(a in articles[doc_id] for a in row["answers"]), f"{row['id']}: no answer span in {doc_id}"
