"""Sentence-aware chunking bounded in tokens of the embedder's own tokenizer.

Invariant: for every chunk, ``document.text[chunk.start:chunk.end] == chunk.text``; chunks never
start or end with whitespace.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from dataclasses import dataclass

from index.schema import Chunk, Document
from index.text import sentence_spans

_ID_MASK = (1 << 63) - 1
SPECIAL_TOKENS = 2  # <s> ... </s>


def content_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def chunk_id(document_id: str, start: int, end: int, text: str) -> int:
    """Stable positive int64 shared by SQLite, FAISS and BM25."""
    h = hashlib.blake2b(digest_size=8)
    h.update(document_id.encode("utf-8"))
    h.update(f"\x00{start}\x00{end}\x00".encode())
    h.update(text.encode("utf-8"))
    return int.from_bytes(h.digest(), "big") & _ID_MASK or 1


def token_budget(embedder, chunk_tokens: int, overlap_tokens: int, reserved: int = 0) -> tuple[int, int]:
    """Chunk size and overlap actually used: never above the model maximum minus prompt, specials and
    ``reserved`` tokens (what is embedded with every chunk besides its text: the title line)."""
    hard = int(embedder.max_tokens) - int(getattr(embedder, "passage_prompt_tokens", 0)) - SPECIAL_TOKENS - reserved
    size = max(8, min(int(chunk_tokens), hard))
    overlap = max(0, min(int(overlap_tokens), size // 2))
    return size, overlap


@dataclass
class _Unit:
    start: int
    end: int


class _TokenIndex:
    """Token positions of one text, from a single tokenizer pass with offsets."""

    def __init__(self, text: str, tokenizer):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        self.offsets = [(s, e) for s, e in enc["offset_mapping"] if e > s]
        # a token belongs to the character it ends on (offsets may include a leading space)
        self.anchors = [e - 1 for _, e in self.offsets]
        self.text = text

    def count(self, start: int, end: int) -> int:
        return bisect_left(self.anchors, end) - bisect_left(self.anchors, start)

    def first(self, pos: int) -> int:
        return bisect_left(self.anchors, pos)

    def word_start(self, t: int) -> bool:
        s = self.offsets[t][0]
        return s == 0 or self.text[s].isspace() or self.text[s - 1].isspace()


def _trim(text: str, s: int, e: int) -> tuple[int, int]:
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    return s, e


def _split_long(text: str, toks: _TokenIndex, s: int, e: int, size: int, overlap: int) -> list[_Unit]:
    """Windows of at most ``size`` tokens over one over-long sentence, cut at word starts when possible."""
    first, last = toks.first(s), toks.first(e)  # token range [first, last)
    units: list[_Unit] = []
    t = first
    while t < last:
        stop = min(t + size, last)
        if stop < last:
            for back in range(stop, max(t + size // 2, t + 1) - 1, -1):  # prefer a cut before a word
                if toks.word_start(back):
                    stop = back
                    break
        us = s if t == first else max(s, toks.offsets[t][0])
        ue = e if stop >= last else toks.offsets[stop][0]
        us, ue = _trim(text, us, ue)
        if ue > us:
            units.append(_Unit(us, ue))
        if stop >= last:
            break
        nxt = max(stop - overlap, t + 1)
        b = nxt
        while b > t + 1 and not toks.word_start(b):
            b -= 1
        if toks.word_start(b):
            nxt = b
        t = nxt
    return units


def chunk_spans(text: str, tokenizer, size: int = 200, overlap: int = 40) -> list[tuple[int, int]]:
    """Offsets of the chunks of ``text``: whole sentences packed up to ``size`` tokens, ``overlap``
    tokens of whole sentences repeated between neighbours; over-long sentences cut by tokens."""
    if not text.strip():
        return []
    toks = _TokenIndex(text, tokenizer)
    units: list[_Unit] = []
    for s, e in sentence_spans(text):
        if toks.count(s, e) <= size:
            units.append(_Unit(s, e))
        else:
            # two tokens of slack: a piece cut mid-word re-tokenises with an extra "▁"
            units.extend(_split_long(text, toks, s, e, max(4, size - 2), overlap))
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(units):
        j = i + 1
        while j < len(units) and toks.count(units[i].start, units[j].end) <= size:
            j += 1
        span = (units[i].start, units[j - 1].end)
        if not spans or span != spans[-1]:  # tiny sizes can cut two windows alike; one chunk per span
            spans.append(span)
        if j >= len(units):
            break
        k = j
        while k - 1 > i and toks.count(units[k - 1].start, units[j - 1].end) <= overlap:
            k -= 1
        i = k
    return spans


def chunk_document(doc: Document, tokenizer, size: int = 200, overlap: int = 40) -> list[Chunk]:
    out = []
    for s, e in chunk_spans(doc.text, tokenizer, size, overlap):
        piece = doc.text[s:e]
        out.append(Chunk(id=chunk_id(doc.id, s, e, piece), document_id=doc.id, start=s, end=e, text=piece))
    return out
