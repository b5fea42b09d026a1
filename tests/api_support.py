"""Helpers shared by the API, server and page tests (not a test module)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from qa.settings import Settings

REPO = Path(__file__).resolve().parents[1]
ARTICLES = REPO / "data" / "articles"
GOLD = REPO / "data" / "gold" / "seed_gold.jsonl"

SHOWCASE_QUESTION = "Combien Netflix investit-il dans les contenus en 2018 ?"
FALLBACK_QUESTIONS = [
    SHOWCASE_QUESTION,
    "Combien de séries originales Netflix veut-il produire en 2016 ?",
    "Où Netflix va-t-il ouvrir un bureau ?",
    "Quelle série française Amazon a-t-il achetée à l'international ?",
]


def article_documents():
    from index.ingest import load_documents

    docs, errors = load_documents([ARTICLES])
    assert docs and not errors, errors
    return docs


def build_indexed_service(data_dir: Path, base: Settings):
    """A real QAService (real models) on ``data_dir`` with data/articles indexed."""
    from qa.pipeline import QAService

    settings = base.model_copy(update={"data_dir": data_dir})
    svc = QAService.from_settings(settings)
    svc.add_documents(article_documents())
    return settings, svc


def gold_questions(limit: int | None = None) -> list[str]:
    """Questions of the seed gold set (falls back to a few questions when it is absent)."""
    questions: list[str] = []
    if GOLD.is_file():
        for line in GOLD.read_text(encoding="utf-8").splitlines():
            if line.strip():
                questions.append(json.loads(line)["question"])
    questions = questions or list(FALLBACK_QUESTIONS)
    return questions[:limit] if limit else questions


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
