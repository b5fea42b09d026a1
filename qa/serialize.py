"""JSON shapes shared by the HTTP API and the CLI's ``--json`` (one source for the contract)."""

from __future__ import annotations

from dataclasses import asdict

from qa.pipeline import AskResult


def ask_payload(result: AskResult) -> dict:
    return {
        "question": result.question,
        "answers": [
            {k: v for k, v in asdict(a).items() if k != "reader_score"}
            for a in result.answers
        ],
        "no_answer": result.no_answer,
        "passages": [asdict(p) for p in result.passages],
        "took_ms": round(result.took_ms, 1),
    }
