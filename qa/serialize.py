"""The CLI's ``--json`` prints exactly what the HTTP API answers: one model, api/schemas.py."""

from __future__ import annotations

from qa.pipeline import AskResult


def ask_payload(result: AskResult) -> dict:
    from api.schemas import AskResponse

    return AskResponse.from_result(result).model_dump(mode="json")
