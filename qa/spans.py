"""Pure span decoding for extractive QA: logits + offset mapping -> character spans.

Kept free of torch and of any model so that it is easy to test on its own.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np

from index.text import is_blank

MAX_ANSWER_TOKENS = 30  # default longest answer, in tokens (QA_MAX_ANSWER_TOKENS; the dev evaluation uses it)


@dataclass(frozen=True)
class SpanCandidate:
    start_token: int
    end_token: int
    start_char: int  # offsets into the context text handed to the reader
    end_char: int
    logit: float  # start_logit + end_logit, less the length penalty
    null_logit: float  # start_logit[cls] + end_logit[cls] of the same window

    @property
    def margin(self) -> float:
        """How much the span beats "no answer" in this window (SQuAD 2.0 style)."""
        return self.logit - self.null_logit


def context_token_mask(sequence_ids: list[int | None], offsets: list[tuple[int, int]], context_id: int = 1) -> np.ndarray:
    """Tokens that may start or end an answer: context tokens with a non-empty character span."""
    return np.array(
        [sid == context_id and off is not None and off[1] > off[0] for sid, off in zip(sequence_ids, offsets)],
        dtype=bool,
    )


# invisible characters that join rather than separate: a soft hyphen ("co\u00adfondateur"), joiners
_JOINERS = frozenset("\u00ad\u200c\u200d\u2060")


def _word_char(ch: str) -> bool:
    return ch.isalnum() or ch in _JOINERS


def _inside_word(text: str, i: int) -> bool:
    """True when position ``i`` falls inside one word or number: between two of its letters or
    digits ("Jean-Ba|ptiste"), at a soft hyphen ("co|\u00adfondateur"), or at a decimal or thousands
    separator ("2|.905", "3,|5"). A combining accent is not a word character here: the tokenizer
    ends "René" written with one before it, and trim_span takes it back."""
    if not 0 < i < len(text):
        return False
    before, after = text[i - 1], text[i]
    if _word_char(before) and _word_char(after):
        return True
    if after in ".," and before.isdigit():
        return i + 1 < len(text) and text[i + 1].isdigit()
    return before in ".," and after.isdigit() and i >= 2 and text[i - 2].isdigit()


def word_edge_masks(text: str, offsets: list[tuple[int, int]], allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``allowed`` narrowed to tokens that may start / end an answer without cutting a word.

    A window of a long passage can begin or end in the middle of a word, and sub-word tokens can
    otherwise start or end a span anywhere: "Jean-Ba" for "Jean-Baptiste Dupuis".
    """
    starts = allowed.copy()
    ends = allowed.copy()
    for i in np.flatnonzero(allowed):
        a, b = offsets[i]
        starts[i] = not _inside_word(text, a)
        ends[i] = not _inside_word(text, b)
    return starts, ends


# a blank line (spaces aside) ends a paragraph, a heading, a table row of a Word file; a line break alone
# does not: hard-wrapped text (Markdown, e-mails) breaks lines inside sentences
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n")


def paragraph_ids(text: str, offsets: list[tuple[int, int]]) -> np.ndarray:
    """For each token, how many paragraph breaks of ``text`` come before it starts: a span whose ends
    differ would cross one. (Tokens outside ``text``, the question's, get numbers that mean nothing.)"""
    breaks = np.asarray([m.start() for m in _PARAGRAPH_BREAK.finditer(text)], dtype=np.int64)
    starts = np.asarray([o[0] for o in offsets], dtype=np.int64)
    return np.searchsorted(breaks, starts, side="right") if len(breaks) else np.zeros(len(offsets), dtype=np.int64)


def window_spans(
    text: str,
    offsets: list[tuple[int, int]],
    sequence_ids: list[int | None],
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    max_answer_tokens: int = MAX_ANSWER_TOKENS,
    n_best: int = 5,
    length_penalty: float = 0.0,
) -> list[SpanCandidate]:
    """Best spans of one (question, ``text``) window: in the passage, on word edges, within one
    paragraph. What the reader serves and what training measures on dev (and fits the no-answer
    threshold on) alike."""
    starts, ends = word_edge_masks(text, offsets, context_token_mask(sequence_ids, offsets))
    return best_spans(start_logits, end_logits, offsets, starts, max_answer_tokens, n_best=n_best, length_penalty=length_penalty,
                      end_allowed=ends, paragraphs=paragraph_ids(text, offsets))


def best_spans(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offsets: list[tuple[int, int]],
    allowed: np.ndarray,
    max_answer_tokens: int = MAX_ANSWER_TOKENS,
    n_best: int = 5,
    top_k_candidates: int = 20,
    cls_index: int = 0,
    length_penalty: float = 0.0,
    end_allowed: np.ndarray | None = None,
    paragraphs: np.ndarray | None = None,
) -> list[SpanCandidate]:
    """Best spans of one window, highest ``start+end`` logit first.

    A span must start and end on allowed (context) tokens, end at or after its start, and be
    at most ``max_answer_tokens`` long; anything crossing the question or special tokens is
    therefore impossible because those tokens are never allowed. ``length_penalty`` logit points
    are taken off per token of the span: the reader otherwise runs on across list items
    ("2.905 titres en septembre contre 558"); its value is chosen on dev (``bench/span_length.py``).
    ``end_allowed``, when given, is the mask for ends (``allowed`` then holds for starts only).
    ``paragraphs``, when given, numbers each token's paragraph (``paragraph_ids``): a span starts and
    ends in one, so an answer never runs from a heading into the text below it, or across table rows.
    """
    start_logits = np.asarray(start_logits, dtype=np.float64)
    end_logits = np.asarray(end_logits, dtype=np.float64)
    null = float(start_logits[cls_index] + end_logits[cls_index])
    idx = np.flatnonzero(allowed)
    end_idx = idx if end_allowed is None else np.flatnonzero(end_allowed)
    if idx.size == 0 or end_idx.size == 0:
        return []
    starts = idx[np.argsort(-start_logits[idx])[:top_k_candidates]]
    ends = end_idx[np.argsort(-end_logits[end_idx])[:top_k_candidates]]
    cands: list[SpanCandidate] = []
    for s in starts:
        for e in ends:
            if e < s or e - s + 1 > max_answer_tokens or (paragraphs is not None and paragraphs[s] != paragraphs[e]):
                continue
            cands.append(
                SpanCandidate(
                    int(s),
                    int(e),
                    int(offsets[s][0]),
                    int(offsets[e][1]),
                    float(start_logits[s] + end_logits[e]) - length_penalty * float(e - s + 1),
                    null,
                )
            )
    cands.sort(key=lambda c: -c.logit)
    return cands[:n_best]


# words that never answer a question on their own (prepositions, articles, conjunctions, pronouns);
# "un", "une", "aucun", "peu" do answer "combien" questions and are not here. On PIAF dev no best
# span is made only of these; lower-ranked ones such as "à" (before "Paris") are.
_FUNCTION_WORDS = frozenset(
    "à au aux de des du d l la le les en dans par pour sur sous avec sans chez vers et ou mais donc car ni "
    "que qu qui dont ce c se s sa son ses leur leurs il elle ils elles y".split()
)
_WORD = re.compile(r"[^\W_]+")


def only_function_words(text: str) -> bool:
    """True for a span such as "à", "de la" or "l'": nothing in it can answer a question."""
    words = _WORD.findall(unicodedata.normalize("NFC", text).lower())  # "a" + U+0300 is "à"
    return bool(words) and all(w in _FUNCTION_WORDS for w in words)


def _mark(ch: str) -> bool:
    return unicodedata.category(ch)[0] == "M"


def trim_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop surrounding spaces, edge punctuation and unbalanced brackets so the span reads cleanly.

    Tokens often glue punctuation to a word ("1624." or "(30 000"), so a decoded span can
    carry it; a final "." stays when it ends an abbreviation ("etc.", "J."). The tokenizer reads
    invisible characters (zero-width space, BOM, controls) as spaces, so they are dropped from the
    edges too; and it gives a decomposed "é" ("e" + U+0301) the offsets of its "e" alone, so the
    span takes the combining marks that follow its last letter ("René", not "Rene").
    """
    while True:
        before = (start, end)
        while start < end and (is_blank(text[start]) or text[start] in ",;:.!?»”"):
            start += 1
        while end > start and (is_blank(text[end - 1]) or text[end - 1] in ",;:!?«“"):
            end -= 1
        while 0 < start < end and _mark(text[start]) and unicodedata.category(text[start - 1])[0] in "LNM":
            start -= 1  # never start on an accent: take its letter
        while start < end < len(text) and _mark(text[end]):
            end += 1
        span = text[start:end]
        if span.endswith(".") and not (span.endswith("etc.") or (len(span) >= 2 and span[-2].isupper() and (len(span) == 2 or not span[-3].isalpha()))):
            end -= 1
        if span.startswith("(") and ")" not in span:
            start += 1
        if span.endswith(")") and "(" not in span:
            end -= 1
        if (start, end) == before:
            return start, end
