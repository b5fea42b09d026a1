"""SQuAD-style exact match and F1 with a French normaliser."""

from __future__ import annotations

import collections
import re
import unicodedata

ARTICLES = frozenset({"le", "la", "les", "un", "une", "des", "du", "de"})
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'", "«": '"', "»": '"', "“": '"', "”": '"', "„": '"'})
_ELIDED_ARTICLE = re.compile(r"\b[ld]'", re.UNICODE)
_NUMBER_SEP = re.compile(r"(?<=\d)([,.])(?=\d)")
_KEEP_COMMA, _KEEP_DOT = "\uE000", "\uE001"


def normalize_answer(text: str) -> str:
    """Lowercase, unify quotes, drop punctuation (but keep 3,5 and 2.905), drop French articles.
    Compatibility forms (ligatures, full-width digits) are folded and invisible format characters
    (soft hyphen, zero-width spaces, direction marks) dropped: no reader of the page sees them."""
    s = "".join(ch for ch in unicodedata.normalize("NFKC", text) if unicodedata.category(ch) != "Cf")
    s = s.lower().translate(_APOSTROPHES)  # NFKC made no-break spaces plain ones
    s = _ELIDED_ARTICLE.sub(" ", s)
    s = _NUMBER_SEP.sub(lambda m: _KEEP_COMMA if m.group(1) == "," else _KEEP_DOT, s)
    s = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in s)
    s = s.replace(_KEEP_COMMA, ",").replace(_KEEP_DOT, ".")
    return " ".join(tok for tok in s.split() if tok not in ARTICLES)


def exact_match(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def f1_score(prediction: str, truth: str) -> float:
    pred = normalize_answer(prediction).split()
    gold = normalize_answer(truth).split()
    if not pred or not gold:
        return float(pred == gold)
    common = collections.Counter(pred) & collections.Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def best_over_references(prediction: str, references: list[str]) -> tuple[float, float]:
    """(EM, F1) of a prediction against the best-matching reference answer.

    With no references (an unanswerable question), an empty prediction scores 1, anything else 0.
    """
    if not references:
        ok = float(not prediction.strip())
        return ok, ok
    return (
        max(exact_match(prediction, r) for r in references),
        max(f1_score(prediction, r) for r in references),
    )
