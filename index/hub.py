"""Fail fast on a model name that cannot be loaded here.

Any sentence-transformers or transformers id may be configured (``QA_EMBEDDER``, ``QA_READER``),
but on a machine that cannot reach the Hugging Face hub an id that is not cached makes those
libraries retry for a minute and a half before failing. One TCP connection with a short time-out
tells the same thing at once.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

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
