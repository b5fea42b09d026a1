"""Fail fast on a model name that cannot be loaded here.

Any sentence-transformers or transformers id may be configured (``QA_EMBEDDER``, ``QA_READER``),
but on a machine that cannot reach the Hugging Face hub an id that is not cached makes those
libraries retry for a minute and a half before failing. One TCP connection with a short time-out
tells the same thing at once. A local folder that holds no model (or, for the reader, a model
without a question-answering head) is said from its files, before the libraries fail on it with a
traceback or, worse, load a random span head and answer nonsense.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Literal
from urllib.parse import urlsplit

ModelKind = Literal["embedder", "reader"]
# the setting that names each model, and what it must name
MODEL_SETTINGS: dict[ModelKind, tuple[str, str]] = {
    "embedder": ("QA_EMBEDDER", "a sentence-transformers or transformers model"),
    "reader": ("QA_READER", "a question-answering model"),
}
# what transformers loads weights from (safetensors or PyTorch, whole or sharded)
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
# what AutoTokenizer builds a tokenizer from: its own files or a vocabulary
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model")

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy")


def _endpoint() -> str:
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _cached(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # an id the hub library refuses: the model library will say why
        return False


def model_source_problem(name: str, timeout: float = 5.0) -> str | None:
    """Why ``name`` cannot be loaded (not a folder here, not in the Hugging Face cache, and the
    hub unreachable), or None when it may be: a folder, a cached id, or a hub that answers. With a
    proxy configured the hub is not probed (the libraries go through the proxy)."""
    if Path(name).expanduser().exists():
        return None
    if name.startswith(("/", "./", "../", "~")):
        return f"there is no folder {name}"
    if _cached(name):
        return None
    if _offline():
        return "it is not a folder here nor in the Hugging Face cache, and HF_HUB_OFFLINE is set"
    if any(os.environ.get(v) for v in PROXY_VARIABLES):
        return None
    url = urlsplit(_endpoint())
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"it is not a folder here nor in the Hugging Face cache, and {host}:{port} cannot be reached ({exc.strerror or exc})"


def _transformer_folder(folder: Path) -> Path | None:
    """Where a model folder keeps its transformers files: the folder itself, or for a
    sentence-transformers folder its Transformer module's path (``modules.json``); None when that
    module is not a transformers model (static embeddings, say): the library alone can tell."""
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return folder
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        paths = [m.get("path", "") for m in modules if str(m.get("type", "")).endswith("Transformer")]
    except (OSError, ValueError, AttributeError, TypeError):
        return folder  # unreadable: config.json and weights are looked for at its top
    return folder / paths[0] if paths else None


def model_folder_problem(folder: Path, kind: ModelKind) -> str | None:
    """What keeps the local path ``folder`` from being loaded as the ``kind`` model, from its files,
    or None: a file, no config.json, no weights, no tokenizer, or (a reader) a model whose
    config.json names no question-answering architecture (transformers would give it a random span
    head). A config.json without ``architectures`` is left to the library."""
    if not folder.is_dir():
        return "it is a file, not a model folder"
    where = _transformer_folder(folder)
    if where is None:
        return None
    it = "it" if where == folder else f"its folder {where.relative_to(folder)}"  # the messages follow the path given
    config_file = where / "config.json"
    if not config_file.is_file():
        return f"{it} holds no config.json: it is not a model folder"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{config_file} cannot be read ({exc})"
    if not isinstance(config, dict):
        return f"{config_file} is not a JSON object"
    if not any((where / name).is_file() for name in WEIGHT_FILES):
        return f"{it} holds no weights (model.safetensors or pytorch_model.bin)"
    if not any((where / name).is_file() for name in TOKENIZER_FILES):
        return f"{it} holds no tokenizer (tokenizer.json or tokenizer_config.json)"
    architectures = config.get("architectures")
    if kind == "reader" and isinstance(architectures, list) and architectures:
        if not any(str(a).endswith("ForQuestionAnswering") for a in architectures):
            return f"{it} holds a {architectures[0]}, not a question-answering model (its span head would be untrained)"
    return None


def model_problem(name: str, kind: ModelKind, path: str | None = None) -> str | None:
    """The one line saying why the ``kind`` model configured as ``name`` cannot be loaded and what to
    set instead, or None when it may be; ``path``: where a built-in name was built."""
    variable, wanted = MODEL_SETTINGS[kind]
    where = path or name
    problem = model_source_problem(where)
    if problem is not None:
        return f"cannot load {kind} {name!r}: {problem}; set {variable} to a local folder or a model id you can download"
    local = Path(where).expanduser()
    problem = model_folder_problem(local, kind) if local.exists() else None
    if problem is not None:
        return f"cannot load {kind} {name!r}: {problem}; set {variable} to {wanted} (its folder, or a model id you can download), or unset it for the built-in {kind}"
    return None


def load_failure(name: str, kind: ModelKind, exc: BaseException) -> str:
    """The one line for a ``kind`` model that passed ``model_problem`` but that its library could not
    load (an OSError, or a ValueError for a config.json it cannot read)."""
    variable, _ = MODEL_SETTINGS[kind]
    return f"cannot load {kind} {name!r} ({' '.join(str(exc).split())}); set {variable} to a local folder or a model id you can download"


def _weights_detail(exc: BaseException) -> str | None:
    """What ``exc``, raised while a model loads, says of its weights file, or None when it is not
    about the weights (a bug, to be seen with its traceback): a safetensors file that is truncated
    or not one, a pytorch_model.bin that torch cannot unpickle or unzip, tensors whose shapes differ
    from config.json (transformers' load report). RuntimeErrors are told apart by their text."""
    from safetensors import SafetensorError

    if isinstance(exc, SafetensorError):
        return " ".join(str(exc).split())
    if isinstance(exc, pickle.UnpicklingError):
        return "its pytorch_model.bin is not a checkpoint torch can load"
    if isinstance(exc, RuntimeError):
        text = str(exc)
        if "ignore_mismatched_sizes" in text or "size mismatch" in text:
            return "tensor shapes differ from its config.json"
        if "PytorchStreamReader" in text:
            return "its pytorch_model.bin is damaged or incomplete"
    return None


def weights_failure(name: str, kind: ModelKind, exc: BaseException) -> str | None:
    """The one line for a ``kind`` model whose folder passed ``model_problem`` but whose weights
    cannot be loaded (damaged, or not the model its config.json describes), or None when ``exc``
    is not that."""
    detail = _weights_detail(exc)
    if detail is None:
        return None
    variable, wanted = MODEL_SETTINGS[kind]
    return (
        f"cannot load {kind} {name!r}: its weights cannot be used ({detail}); copy the model again, "
        f"or set {variable} to {wanted} (its folder, or a model id you can download), or unset it for the built-in {kind}"
    )


# the tokenizer files that are JSON, which transformers reads without naming them when they are not
TOKENIZER_JSON_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")
# plain French words, which any tokenizer with a vocabulary splits into something other than its unknown token
TOKENIZER_PROBE = "Qui dirige le contenu de Netflix ?"


def damaged_tokenizer_file(folder: Path) -> str | None:
    """The first tokenizer JSON file in ``folder`` (or its sentence-transformers Transformer module)
    that is not JSON (truncated, random bytes, not UTF-8), said with its path and why, or None.
    Read only after a load failed: the libraries' own error does not name the file."""
    where = _transformer_folder(folder) or folder
    for name in TOKENIZER_JSON_FILES:
        file = where / name
        if not file.is_file():
            continue
        try:
            json.loads(file.read_bytes().decode("utf-8"))
        except UnicodeDecodeError:
            return f"{file} is not UTF-8 text"
        except ValueError as exc:
            return f"{file} is not valid JSON ({' '.join(str(exc).split())})"
    return None


def tokenizer_without_vocabulary(tokenizer) -> bool:
    """Whether ``tokenizer`` turns plain words into its unknown token only: what transformers builds,
    without an error, from a tokenizer_config.json whose vocabulary file (tokenizer.json, a
    sentencepiece model) is missing; such a model reads every text as unknown tokens."""
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return False
    ids = tokenizer(TOKENIZER_PROBE, add_special_tokens=False)["input_ids"]
    return bool(ids) and all(i == unk for i in ids)


def tokenizer_failure(name: str, kind: ModelKind, detail: str) -> str:
    """The one line for a ``kind`` model whose tokenizer files cannot be used (``detail`` says which and why)."""
    variable, wanted = MODEL_SETTINGS[kind]
    return (
        f"cannot load {kind} {name!r}: its tokenizer cannot be used ({detail}); copy the model again, "
        f"or set {variable} to {wanted} (its folder, or a model id you can download), or unset it for the built-in {kind}"
    )


def no_vocabulary_detail(folder: Path) -> str:
    """What a tokenizer without a vocabulary (``tokenizer_without_vocabulary``) lacks in ``folder``."""
    where = _transformer_folder(folder) or folder
    try:
        config = json.loads((where / "tokenizer_config.json").read_text(encoding="utf-8"))
        named = [str(config[key]) for key in ("vocab_file", "tokenizer_file") if isinstance(config.get(key), str)]
    except (OSError, ValueError, TypeError):
        named = []
    missing = [f for f in named if not (where / f).is_file()]
    lacks = " or ".join(dict.fromkeys(["tokenizer.json", *missing]))
    return f"it reads every word as unknown: {where} has no {lacks} to take its vocabulary from"


def loading_failure(name: str, kind: ModelKind, path: str | Path, exc: BaseException) -> str:
    """``load_failure``'s line, or when the local folder ``path`` holds a tokenizer JSON file that
    is not JSON (which the libraries' OSError or ValueError does not name), ``tokenizer_failure``'s."""
    folder = Path(path).expanduser()
    damaged = damaged_tokenizer_file(folder) if folder.is_dir() else None
    return tokenizer_failure(name, kind, damaged) if damaged else load_failure(name, kind, exc)


@contextmanager
def loading(name: str, kind: ModelKind, path: str | Path) -> Iterator[None]:
    """Around the load of a ``kind`` model from ``path``: what a folder that cannot be used raises
    (``loading_failure``'s OSError or ValueError, ``weights_failure``'s damaged weights) as its one
    line, a ModelSourceError; anything else (a bug) keeps its traceback."""
    from safetensors import SafetensorError

    from index.e5_convert import ModelSourceError

    try:
        yield
    except (OSError, ValueError) as exc:  # ValueError: a config.json transformers cannot read (an unknown model_type)
        raise ModelSourceError(loading_failure(name, kind, path, exc)) from exc
    except (SafetensorError, pickle.UnpicklingError, RuntimeError) as exc:  # what a damaged weights file raises: said if it is that
        line = weights_failure(name, kind, exc)
        if line is None:
            raise
        raise ModelSourceError(line) from exc


def check_tokenizer(tokenizer, name: str, kind: ModelKind, path: str | Path) -> None:
    """A ModelSourceError when the ``kind`` model's tokenizer, loaded without an error from ``path``,
    reads every word as unknown (``tokenizer_without_vocabulary``)."""
    from index.e5_convert import ModelSourceError

    if tokenizer_without_vocabulary(tokenizer):
        raise ModelSourceError(tokenizer_failure(name, kind, no_vocabulary_detail(Path(path))))
