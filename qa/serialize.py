"""The CLI's ``--json`` prints exactly what the HTTP API answers: one model, api/schemas.py."""

from __future__ import annotations

from qa.pipeline import AskResult


def ask_payload(result: AskResult, warnings: list = ()) -> dict:
    from api.schemas import AskResponse

    return AskResponse.from_result(result, warnings).model_dump(mode="json")
