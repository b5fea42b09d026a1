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


def broken_model_folder(dest: Path, kind: str, weights: str) -> Path:
    """A copy of the built-in ``kind`` ("reader" or "embedder") at ``dest`` whose files pass the
    checks made before loading but whose weights hold no usable model: ``weights`` "truncated" (the
    first 64 KiB of the real model.safetensors) or "shapes" (a valid file whose one tensor has a shape
    config.json does not give it)."""
    import shutil

    import torch
    from safetensors.torch import save_file

    from index.embeddings import resolve_embedder
    from qa.reader import resolve_reader

    settings = Settings()
    if kind == "reader":
        built = Path(resolve_reader(settings.reader, settings.models_dir, settings.reader_artifact))
        key = "bert.embeddings.word_embeddings.weight"
    else:
        built = Path(resolve_embedder(settings.embedder, settings.models_dir))
        key = "embeddings.word_embeddings.weight"
    shutil.copytree(built, dest, ignore=shutil.ignore_patterns("model.safetensors", "qa_*.json"))
    if weights == "truncated":
        with open(built / "model.safetensors", "rb") as whole:
            (dest / "model.safetensors").write_bytes(whole.read(64 * 1024))
    else:
        save_file({key: torch.zeros(10, 384)}, str(dest / "model.safetensors"))
    return dest


def broken_tokenizer_folder(dest: Path, kind: str, damage: str) -> Path:
    """A copy of the built-in ``kind`` ("reader" or "embedder") at ``dest`` (its weights linked, not
    copied) whose tokenizer cannot be used: ``damage`` "truncated" (the first 64 KiB of tokenizer.json),
    "random" (tokenizer.json random bytes), "config" (tokenizer_config.json cut off mid-object) or
    "vocabulary" (no tokenizer.json, and a tokenizer_config.json naming a sentencepiece.bpe.model that
    is not there: transformers builds a tokenizer that knows no word, without an error)."""
    import json
    import os
    import shutil

    from index.embeddings import resolve_embedder
    from qa.reader import resolve_reader

    settings = Settings()
    if kind == "reader":
        built = Path(resolve_reader(settings.reader, settings.models_dir, settings.reader_artifact))
    else:
        built = Path(resolve_embedder(settings.embedder, settings.models_dir))
    shutil.copytree(built, dest, ignore=shutil.ignore_patterns("model.safetensors", "qa_manifest.json", "qa_source.json"))
    os.symlink(built / "model.safetensors", dest / "model.safetensors")
    tokenizer, config = dest / "tokenizer.json", dest / "tokenizer_config.json"
    if damage == "truncated":
        tokenizer.write_bytes(tokenizer.read_bytes()[: 64 * 1024])
    elif damage == "random":
        tokenizer.write_bytes(os.urandom(64 * 1024))
    elif damage == "config":
        config.write_text('{"backend": "tokenizers",\n', encoding="utf-8")
    else:
        tokenizer.unlink()
        fields = json.loads(config.read_text(encoding="utf-8"))
        fields.pop("backend", None)
        config.write_text(json.dumps({**fields, "tokenizer_class": "XLMRobertaTokenizer", "vocab_file": "sentencepiece.bpe.model"}), encoding="utf-8")
    return dest


def json_lines(stdout: str) -> list:
    """The documents a --json output holds, asserting that each is one line written as the API writes
    its bodies (no space after "," and ":", non-ASCII as is): what jq and line-by-line readers take."""
    assert stdout.endswith("\n"), stdout
    lines = stdout.splitlines()
    for line in lines:
        assert line == json.dumps(json.loads(line), ensure_ascii=False, separators=(",", ":")), line[:300]
    return [json.loads(line) for line in lines]
