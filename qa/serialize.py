"""The CLI's ``--json`` prints exactly what the HTTP API answers: one model, api/schemas.py."""

from __future__ import annotations

from qa.pipeline import AskResult


def ask_payload(result: AskResult) -> dict:
    from api.app import _answer, _hit
    from api.schemas import AskResponse

    answers = [_answer(a) for a in result.answers]
    resp = AskResponse(question=result.question, answers=answers, no_answer=not answers, passages=[_hit(p) for p in result.passages], took_ms=float(result.took_ms))
    return resp.model_dump(mode="json")
