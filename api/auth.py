"""API keys: which requests may read and which may write.

Reads are open unless ``QA_READ_KEY`` is set; writes are open unless ``QA_API_KEY`` is set, and
``QA_API_KEY`` opens reads too. Routes declare ``dependencies=READ`` or ``WRITE``; ``AuthGate``
(api/middleware.py) asks ``route_key_problem`` before any body is read.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from qa.settings import Settings, configured_key

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <key>; needed only when QA_API_KEY (writes) or QA_READ_KEY (reads) is set")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def key_problem(authorization: str | None, accepted: list[str], read_only: list[str] | None = None) -> tuple[int, str] | None:
    """Why an ``Authorization`` header does not open a route that takes one of ``accepted``
    keys: (401, ...) when no bearer key is sent, (403, ...) when it is not one of them; None when
    it opens it. Used by the route dependencies and, before any body is read, by ``AuthGate``."""
    scheme, _, given = (authorization or "").strip().partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        return 401, "missing API key: send the header Authorization: Bearer <key>"
    ok = reads_only = False
    for key in accepted:  # compare with every key, constant time each
        ok |= hmac.compare_digest(given.encode("utf-8"), key.encode("utf-8"))
    for key in read_only or []:
        reads_only |= hmac.compare_digest(given.encode("utf-8"), key.encode("utf-8"))
    if ok:
        return None
    return (403, "this key (QA_READ_KEY) opens reads only: writes need QA_API_KEY") if reads_only else (403, "invalid API key")


def write_keys(settings: Settings) -> list[str] | None:
    """Keys that open writes; None when writes are open."""
    api_key = configured_key(settings.api_key)
    return [api_key] if api_key is not None else None


def read_keys(settings: Settings) -> list[str] | None:
    """Reads are open unless ``read_key`` is set; then ``read_key`` or ``api_key`` opens them."""
    read_key = configured_key(settings.read_key)
    if read_key is None:
        return None
    api_key = configured_key(settings.api_key)
    return [read_key] + ([api_key] if api_key else [])


def _check_key(request: Request, accepted: list[str] | None, read_only: list[str] | None = None) -> None:
    if accepted is None:
        return
    problem = key_problem(request.headers.get("authorization"), accepted, read_only)
    if problem is not None:
        status, detail = problem
        raise HTTPException(status, detail, headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)


def require_write(request: Request, credentials: Credentials) -> None:
    """Writes need ``api_key`` when it is set."""
    settings = request.app.state.settings
    _check_key(request, write_keys(settings), read_keys(settings))


def require_read(request: Request, credentials: Credentials) -> None:
    """Reads are open unless ``read_key`` is set; then ``read_key`` or ``api_key`` opens them."""
    _check_key(request, read_keys(request.app.state.settings))


READ = [Depends(require_read)]
WRITE = [Depends(require_write)]


def route_keys(route: Any, settings: Settings) -> tuple[list[str] | None, list[str] | None]:
    """(keys that open ``route``, keys that open only reads), or (None, None) when it is open."""
    needs = {d.dependency for d in getattr(route, "dependencies", [])}
    if require_write in needs:
        return write_keys(settings), read_keys(settings)
    return (read_keys(settings) if require_read in needs else None), None


def route_key_problem(route: Any, authorization: str | None, settings: Settings) -> tuple[int, str] | None:
    """``key_problem`` for a request to ``route`` (None when the route is open or the key opens it)."""
    keys, read_only = route_keys(route, settings)
    return None if keys is None else key_problem(authorization, keys, read_only)
