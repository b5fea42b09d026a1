"""The answering pipeline: retrieve passages, read them in one batch, merge and rank answers.

Ranking (documented in the README, measured by ``bench/answer_ranking.py`` on PIAF dev): an answer
from the passage at retrieval rank ``r`` (0 = best) is ranked by ``margin - rank_penalty * r``, where
``margin`` is the reader's span logit over its no-answer logit; its ``score`` is that quantity through
the reader's dev calibration, so 0..1. The reader alone tells poorly which of several passages holds
the answer, the retriever's order much better, hence the penalty. A span is a candidate when its own
calibrated probability (``reader_score``) passes the reader's per-passage no-answer threshold; an
answer is returned only when its ``score`` passes the end-to-end threshold stored with the reader (the
highest that costs at most half an F1 point on PIAF dev, and at least the one giving 90% of
off-topic questions "no answer").
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from index.schema import Document, Filters, SearchResult
from index.text import sentence_spans
from qa.metrics import normalize_answer
from qa.reader import Reader, ReaderCalibration, ReaderSpan
from qa.settings import Settings

log = logging.getLogger(__name__)

CONTEXT_CHARS = 220  # at most this much text on either side of an answer in its "context"


@dataclass
class Citation:
    document_id: str
    title: str | None
    url: str | None
    published: str | None
    chunk_id: int
    start: int
    end: int


@dataclass
class Answer:
    text: str
    score: float
    document_id: str
    title: str | None
    url: str | None
    published: str | None
    chunk_id: int
    start: int  # character offsets into the document's text
    end: int
    context: str  # the sentence around the answer: document text[context_start : context_start + len(context)]
    context_start: int
    reader_score: float = 0.0
    citations: list[Citation] = field(default_factory=list)  # every passage that gave this answer


@dataclass(frozen=True)
class CandidateSpan:
    rank: int  # retrieval rank of the passage it comes from (0 = best)
    span: ReaderSpan
    score: float  # answer_score: the reader's margin less the rank penalty, calibrated


@dataclass
class ExtractedAnswer:
    text: str
    score: float
    start: int  # character offsets into the given context
    end: int
    context: str  # the sentence around the answer: given context[context_start : context_start + len(context)]
    context_start: int


@dataclass
class AskResult:
    question: str
    answers: list[Answer]
    no_answer: bool
    passages: list[SearchResult]
    took_ms: float


def context_window(text: str, start: int, end: int, max_chars: int = CONTEXT_CHARS) -> tuple[int, int]:
    """Offsets of the sentence(s) around ``text[start:end]``, cut to ``max_chars`` on each side and
    without surrounding whitespace, never cut inside a word; it always contains the span. Sentences are found by the
    indexer's splitter (``index.text.sentence_spans``: line breaks, closing guillemets after "?",
    abbreviations and numbers) run on the text within ``max_chars`` of the span, so a quotation
    opened before that window is not seen as one."""
    lo, hi = max(0, start - max_chars), min(len(text), end + max_chars)
    around = [(lo + s, lo + e) for s, e in sentence_spans(text[lo:hi]) if lo + s < end and start < lo + e]
    s = min([start] + [a for a, _ in around])
    e = max([end] + [b for _, b in around])
    # a sentence longer than the window is cut at a word boundary, not inside a word
    if s == lo and lo > 0 and not text[lo - 1].isspace():
        gap = next((i for i in range(s, start) if text[i].isspace()), None)
        s = start if gap is None else next((i for i in range(gap, start) if not text[i].isspace()), start)
    if e == hi and hi < len(text) and not text[hi].isspace():
        gap = next((i for i in range(e - 1, end - 1, -1) if text[i].isspace()), None)
        e = end if gap is None else next((i + 1 for i in range(gap, end - 1, -1) if not text[i].isspace()), end)
    return s, e


def _overlaps(a: Answer, document_id: str, start: int, end: int) -> bool:
    return any(c.document_id == document_id and c.start < end and start < c.end for c in a.citations)


def answer_score(calibration: ReaderCalibration, margin: float, rank: int, rank_penalty: float) -> float:
    """An /ask answer's score: the reader's margin less ``rank_penalty`` per retrieval rank, calibrated."""
    return calibration.score(margin - rank_penalty * rank)


def merge_answers(candidates: list[Answer]) -> list[Answer]:
    """Merge answers with the same normalised text or overlapping offsets in one document.

    The best-scored candidate of a group gives the text and main citation; the other places where
    the same text was found are kept as further citations.
    """
    merged: list[Answer] = []
    for cand in sorted(candidates, key=lambda a: -a.score):
        key = normalize_answer(cand.text)
        for m in merged:
            if normalize_answer(m.text) == key or _overlaps(m, cand.document_id, cand.start, cand.end):
                # another place with exactly this text is another citation; a variant of the same
                # place (overlapping, different words) is just a weaker reading and is dropped, so
                # every citation slices its document to the answer text
                if cand.text == m.text and not any(c.document_id == cand.document_id and (c.start, c.end) == (cand.start, cand.end) for c in m.citations):
                    m.citations.extend(cand.citations)
                break
        else:
            merged.append(cand)
    return merged


class QAService:
    """Loads the models once and answers; safe to call from several threads."""

    def __init__(self, settings: Settings, store, reader: Reader, embedder):
        self.settings = settings
        self.store = store
        self.reader = reader
        self.embedder = embedder
        self._write_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, create: bool = True) -> "QAService":
        """Models loaded once and the index opened; ``create=False``: a missing index is an error
        (FileNotFoundError) instead of a new, empty one (a mistyped path reads nothing)."""
        from index.embeddings import Embedder
        from index.store import IndexStore, index_exists

        if not create and not index_exists(settings.data_dir):
            raise FileNotFoundError(f"no index at {settings.data_dir}: build it first (see README \"Evaluation\")")
        configure_torch(settings)
        embedder = Embedder(settings.embedder, settings.models_dir, batch_size=settings.embed_batch_size, source=settings.e5_source)
        reader = load_reader(settings)
        store = IndexStore.open(settings.data_dir, embedder, **settings.store_options())
        return cls(settings, store, reader, embedder)

    # retrieval -----------------------------------------------------------------------------
    def search(self, query: str, top_k: int = 10, mode: str | None = None, filters: Filters | None = None) -> list[SearchResult]:
        return self.store.search(query, top_k=top_k, mode=mode or self.settings.retrieval_mode, filters=filters)

    # answering -----------------------------------------------------------------------------
    def ask(self, question: str, top_k: int = 5, max_answers: int = 3, filters: Filters | None = None, mode: str | None = None, passages: list[SearchResult] | None = None, stop: Callable[[], bool] | None = None) -> AskResult:
        """Answer from the top-k passages of a search (or from ``passages`` when the caller already has them);
        ``stop`` as in ``Reader.read``."""
        t0 = time.perf_counter()
        if passages is None:
            passages = self.search(question, top_k=top_k, mode=mode, filters=filters)
        docs: dict[str, str | None] = {}
        candidates: list[Answer] = []
        ask_threshold = self.ask_threshold
        for c in self.candidate_spans(question, [p.text for p in passages], stop):
            if c.score < ask_threshold:
                break  # best first
            p = passages[c.rank]
            if p.document_id not in docs:
                doc = self.store.get_document(p.document_id)
                docs[p.document_id] = doc.text if doc else None
            doc_text = docs[p.document_id]
            if doc_text is None or doc_text[p.start : p.end] != p.text:
                # replaced or deleted by a write since the search: its offsets would cite text that is gone
                log.info("skipping a passage of %r: the document changed while it was read", p.document_id)
                continue
            candidates.append(self._answer(p, c.span, doc_text, c.score))
        answers = merge_answers(candidates)[:max_answers]
        return AskResult(question, answers, not answers, passages, (time.perf_counter() - t0) * 1000)

    def candidate_spans(self, question: str, texts: list[str], stop: Callable[[], bool] | None = None) -> list[CandidateSpan]:
        """Every span /ask weighs for these passages (in retrieval order), best ``score`` first: those
        passing the reader's per-passage threshold, before the end-to-end one."""
        out = []
        for rank, spans in enumerate(self.reader.read(question, texts, stop=stop)):
            for s in spans:
                if s.score >= self.reader.threshold:
                    out.append(CandidateSpan(rank, s, answer_score(self.reader.calibration, s.margin, rank, self.settings.rank_penalty)))
        return sorted(out, key=lambda c: -c.score)

    @property
    def ask_threshold(self) -> float:
        """End-to-end no-answer threshold: the setting, else the one measured for this reader."""
        if self.settings.ask_no_answer_threshold is not None:
            return self.settings.ask_no_answer_threshold
        return float(self.reader.meta.get("ask_score_threshold", self.reader.threshold))

    def _answer(self, p: SearchResult, s: ReaderSpan, doc_text: str, score: float) -> Answer:
        start, end = p.start + s.start, p.start + s.end
        if doc_text[start:end] != s.text:  # the chunk must slice the document; never cite wrong offsets
            raise RuntimeError(f"offset mismatch in chunk {p.chunk_id} of {p.document_id}")
        cite = Citation(p.document_id, p.title, p.url, p.published, p.chunk_id, start, end)
        cs, ce = context_window(doc_text, start, end)
        return Answer(s.text, round(score, 4), p.document_id, p.title, p.url, p.published, p.chunk_id, start, end, doc_text[cs:ce], cs, round(s.score, 4), [cite])

    def extract(self, question: str, context: str, max_answers: int = 3, stop: Callable[[], bool] | None = None) -> list[ExtractedAnswer]:
        """The reader alone on ``context``; ``stop`` as in ``Reader.read``."""
        # twice as many spans as asked: overlapping ones are dropped below
        (spans,) = self.reader.read(question, [context], n_best=2 * max(3, max_answers), stop=stop)
        out: list[ExtractedAnswer] = []
        for s in spans:
            if s.score < self.reader.threshold:
                continue
            if any(o.start < s.end and s.start < o.end for o in out):
                continue
            cs, ce = context_window(context, s.start, s.end)
            out.append(ExtractedAnswer(s.text, round(s.score, 4), s.start, s.end, context[cs:ce], cs))
        return out[:max_answers]

    # documents -----------------------------------------------------------------------------
    def add_documents(self, docs: list[Document], progress: bool = False):
        with self._write_lock:
            return self.store.add_documents(docs, progress=progress)

    def delete_document(self, doc_id: str) -> str | None:
        with self._write_lock:
            return self.store.delete_document(doc_id)

    def get_document(self, doc_id: str) -> Document | None:
        return self.store.get_document(doc_id)

    def list_documents(self, offset: int = 0, limit: int = 50, contains: str | None = None):
        return self.store.list_documents(offset=offset, limit=limit, contains=contains)

    def stored_among(self, ids: list[str]) -> set[str]:
        return self.store.stored_among(ids)

    def sites(self) -> list[str]:
        return self.store.sites()

    def dates_kept(self, after, before):
        return self.store.dates_kept(after, before)

    def health(self) -> dict:
        # a model in a local folder is named by the folder alone: /health is open, the server's paths are not its business
        return {**self.store.counts(), "embedder": _shown_model(self.embedder.identity), "reader": _shown_model(self.reader.name)}

    def close(self) -> None:
        self.store.close()


def _shown_model(name: str) -> str:
    """A model's name as /health shows it: a hub id as it is, a local path by its last part."""
    return Path(name).name or name if Path(name).is_absolute() else name


def configure_torch(settings: Settings) -> None:
    import torch

    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)


def load_reader(settings: Settings) -> Reader:
    return Reader(
        settings.reader,
        settings.models_dir,
        Path(settings.reader_artifact),
        max_answer_tokens=settings.max_answer_tokens,
        batch_size=settings.reader_batch_size,
        threshold=settings.no_answer_threshold,
        quantize=settings.reader_quantize,
        source=settings.e5_source,
        length_penalty=settings.reader_length_penalty,
    )
