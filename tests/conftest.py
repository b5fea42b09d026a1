"""Shared fixtures: real models (built once into the user's model cache), temporary data dirs."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.settings import Settings

REPO = Path(__file__).resolve().parents[1]
ARTICLES = REPO / "data" / "articles"


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    # models_dir comes from QA_MODELS_DIR or the default cache, so models are built once per machine
    return Settings()


@pytest.fixture(scope="session")
def embedder(base_settings):
    from index.embeddings import Embedder

    return Embedder(base_settings.embedder, base_settings.models_dir, batch_size=base_settings.embed_batch_size)


@pytest.fixture()
def settings(tmp_path, base_settings) -> Settings:
    return base_settings.model_copy(update={"data_dir": tmp_path / "data"})
