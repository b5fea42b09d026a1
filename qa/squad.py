"""SQuAD-format reading data (PIAF): questions with their paragraph and answers, the answer's exact
character span, and the unanswerable pairs the reader is trained and measured on."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from index.text import sentence_spans


@dataclass
class SquadItem:
    qid: str
    question: str
    context: str
    title: str
    answers: list[dict] = field(default_factory=list)  # {"text", "answer_start"}


def load_squad(path: Path) -> list[SquadItem]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    items = []
    for art in data:
        for para in art["paragraphs"]:
            for qa in para["qas"]:
                items.append(SquadItem(str(qa["id"]), qa["question"], para["context"], art.get("title", ""), qa.get("answers", [])))
    return items


def fix_answer(context: str, ans: dict) -> tuple[int, int] | None:
    """Character span of an answer, tolerating stray spaces and off-by-one starts in the data."""
    text = ans["text"].strip()
    start = int(ans["answer_start"])
    if not text:
        return None
    for delta in (0, 1, -1, 2, -2):
        s = start + delta
        if 0 <= s and context[s : s + len(text)] == text:
            return s, s + len(text)
    s = context.find(text)
    return (s, s + len(text)) if s >= 0 else None


def make_negatives(items: list[SquadItem], ratio: float, rng: random.Random) -> list[SquadItem]:
    """Pair questions with a paragraph of another article: the reader must learn to say no."""
    n = int(len(items) * ratio)
    contexts = list({(i.title, i.context) for i in items})
    contexts.sort()
    out = []
    if len({t for t, _ in contexts}) < 2:
        return []
    for item in rng.sample(items, n):
        while True:
            title, ctx = rng.choice(contexts)
            if title != item.title:
                break
        out.append(SquadItem(item.qid + "-neg", item.question, ctx, title, []))
    return out


def make_hard_negatives(items: list[SquadItem], ratio: float, rng: random.Random) -> list[SquadItem]:
    """Pair questions with another paragraph of their own article that does not contain the answer:
    on-topic passages, like the ones retrieval brings, where the answer is not."""
    by_title: dict[str, list[str]] = {}
    for i in items:
        ctxs = by_title.setdefault(i.title, [])
        if i.context not in ctxs:
            ctxs.append(i.context)
    out = []
    for item in rng.sample(items, int(len(items) * ratio)):
        answers = [a["text"].strip() for a in item.answers if a["text"].strip()]
        others = [c for c in by_title[item.title] if c != item.context and not any(a in c for a in answers)]
        if others:
            out.append(SquadItem(item.qid + "-hard", item.question, rng.choice(others), item.title, []))
    return out


def make_removed_negatives(items: list[SquadItem], ratio: float, rng: random.Random) -> list[SquadItem]:
    """The question's own paragraph with the sentences holding its answer taken out, labelled no answer.

    The hardest unanswerable kind (SQuAD 2.0 style, "En quelle année Netflix a-t-il été fondé ?" over
    Netflix news): the passage is on the question's topic and holds other dates, names and numbers,
    but not the fact asked. Pairs whose rest still contains an answer, or keeps a single sentence, are dropped.
    """
    out = []
    for item in rng.sample(items, int(len(items) * ratio)):
        span = fix_answer(item.context, item.answers[0]) if item.answers else None
        if span is None:
            continue
        sents = sentence_spans(item.context)
        kept = [(s, e) for s, e in sents if e <= span[0] or s >= span[1]]
        if len(kept) < 2:
            continue
        ctx = " ".join(item.context[s:e] for s, e in kept)
        if any(a["text"].strip() and a["text"].strip() in ctx for a in item.answers):
            continue
        out.append(SquadItem(item.qid + "-removed", item.question, ctx, item.title, []))
    return out
