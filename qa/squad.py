"""SQuAD-format data (PIAF): the one reader of its files, for training, evaluation and the benchmarks;
the answer's exact character span, and the unanswerable pairs the reader is trained and measured on.

``read_squad`` checks every field and names the place of what is wrong
(``data[0].paragraphs[2].qas[1].question``); ``load_squad`` gives one ``SquadItem`` a question.
"""

from __future__ import annotations

import difflib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from index.file_errors import json_syntax, not_utf8
from index.text import sentence_spans, text_problem
from qa.validation import MAX_QUESTION_CHARS


class SquadAnswer(TypedDict):
    text: str
    answer_start: int | None  # None where the file gives none (the text is then looked for)


@dataclass
class SquadQuestion:
    id: str
    question: str
    answers: list[SquadAnswer]  # empty: a question its paragraph cannot answer
    where: str  # its place in the file: "data[0].paragraphs[1].qas[2]"


@dataclass
class SquadParagraph:
    title: str  # the article's ("article N" for one without a title)
    context: str
    questions: list[SquadQuestion]
    where: str  # "data[0].paragraphs[1]"


@dataclass
class SquadItem:
    qid: str
    question: str
    context: str
    title: str
    answers: list[SquadAnswer] = field(default_factory=list)


class SquadFormatError(ValueError):
    """A malformed SQuAD file; the message names the file and the place in it."""


SQUAD_QA_FIELDS = ("id", "question", "answers", "is_impossible")
# misspellings too far from the field for difflib's cut-off (which must stay high: "answer_type" is a
# fine extra field, not a misspelt "answers")
FIELD_ALIASES = {"doc_id": "document_ids", "doc_ids": "document_ids", "docs": "document_ids"}


def misspelt_field(key: str, record: dict, fields: tuple[str, ...]) -> str | None:
    """The field ``key`` was probably meant to be (one of ``fields`` that ``record`` lacks), or None;
    for SQuAD questions and JSONL gold records alike."""
    if key in fields:
        return None
    absent = [f for f in fields if f not in record]  # "question_id" beside "question" is an extra field
    alias = FIELD_ALIASES.get(key)
    if alias in absent:
        return alias
    near = difflib.get_close_matches(key, absent, n=1, cutoff=0.75)
    return near[0] if near else None


def question_problem(question: object) -> str | None:
    """What keeps a question of a SQuAD file or a JSONL gold set from being one, or None: the rule of
    the `qa` command and the API (``index.text.text_problem``, at most ``MAX_QUESTION_CHARS`` once
    stripped), so that no question is measured or learnt from that no user could ask ("???" or a
    question of 1,200 characters would be refused with a 422)."""
    problem = text_problem(question) if isinstance(question, str) else "empty"
    if problem == "empty":
        return "must be a non-empty string"
    if problem == "no words":
        return "must contain at least one letter or digit (the API refuses a question without)"
    length = len(str(question).strip())
    if length > MAX_QUESTION_CHARS:
        return f"must be at most {MAX_QUESTION_CHARS} characters, surrounding whitespace left out (got {length}): the API refuses a longer question"
    return None


def read_utf8(path: Path) -> str:
    """The text of a gold or SQuAD file, a byte-order mark (some Windows editors) left out; bytes
    that are not UTF-8 (a file saved as Latin-1) are a ``SquadFormatError`` naming the file and the
    line, and so is a file that cannot be read."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:  # no permission, an I/O error
        raise SquadFormatError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    bom = b"\xef\xbb\xbf" if data.startswith(b"\xef\xbb\xbf") else b""
    try:
        return data[len(bom):].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = len(bom) + exc.start
        line = data[:at].count(b"\n") + 1
        raise SquadFormatError(f"{path}:{line}: {not_utf8(data, at)}") from None


def read_squad(path: Path) -> list[SquadParagraph]:
    """A SQuAD JSON file's paragraphs with their questions, every field checked (``SquadFormatError``)."""
    raw = read_utf8(path)
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SquadFormatError(f"{path}:{exc.lineno}: {json_syntax(exc)}") from None
    if not isinstance(data, dict) or "data" not in data:
        raise SquadFormatError(f'{path}: not a SQuAD-format file ({{"data": [...]}})')
    return parse_squad(data, path)


def parse_squad(data: dict, path: Path) -> list[SquadParagraph]:
    """The paragraphs of parsed SQuAD JSON (``{"data": [...]}``), every field checked: an error
    names its place in ``path`` (``data[0].paragraphs[2].qas[1].question``)."""

    def bad(where: str, what: str) -> SquadFormatError:
        return SquadFormatError(f"{path}: {where} {what}")

    paragraphs: list[SquadParagraph] = []
    seen: dict[str, str] = {}
    if not isinstance(data["data"], list):
        raise bad("data", "must be a list of articles")
    for a, art in enumerate(data["data"]):
        aw = f"data[{a}]"
        if not isinstance(art, dict):
            raise bad(aw, 'must be an object {"title", "paragraphs"}')
        title = art.get("title")
        if title is not None and not isinstance(title, str):
            raise bad(f"{aw}.title", "must be a string")
        title = title or f"article {a}"  # articles without a title are still distinct articles
        if not isinstance(art.get("paragraphs"), list):
            raise bad(f"{aw}.paragraphs", "must be a list")
        for p, para in enumerate(art["paragraphs"]):
            pw = f"{aw}.paragraphs[{p}]"
            if not isinstance(para, dict):
                raise bad(pw, 'must be an object {"context", "qas"}')
            context = para.get("context")
            if not isinstance(context, str) or not context.strip():
                raise bad(f"{pw}.context", "must be a non-empty string")
            if not isinstance(para.get("qas", []), list):
                raise bad(f"{pw}.qas", "must be a list")
            questions = []
            for q, qa in enumerate(para.get("qas", [])):
                qw = f"{pw}.qas[{q}]"
                if not isinstance(qa, dict):
                    raise bad(qw, 'must be an object {"id", "question", "answers"}')
                for key in qa:  # a misspelt "answers" must not make the question unanswerable
                    meant = misspelt_field(key, qa, SQUAD_QA_FIELDS)
                    if meant:
                        raise bad(f"{qw}.{key}", f"is not a SQuAD field: did you mean {meant!r}?")
                question = qa.get("question")
                problem = question_problem(question)
                if problem is not None:
                    raise bad(f"{qw}.question", problem)
                if "answers" not in qa:
                    raise bad(f"{qw}.answers", 'is missing: list the answers, or write "answers": [] with "is_impossible": true for a question its paragraph cannot answer')
                answers = qa["answers"]
                if not isinstance(answers, list) or not all(isinstance(x, dict) and isinstance(x.get("text"), str) for x in answers):
                    raise bad(f"{qw}.answers", 'must be a list of {"text", "answer_start"} objects ([] = unanswerable)')
                qid = qa.get("id", f"{a}.{p}.{q}")
                if not isinstance(qid, (str, int)) or isinstance(qid, bool) or not str(qid).strip():
                    raise bad(f"{qw}.id", "must be a non-empty string")
                qid = str(qid)
                if qid in seen:
                    raise bad(f"{qw}.id", f"duplicate id {qid!r} (already at {seen[qid]})")
                seen[qid] = qw
                if qa.get("is_impossible") is True and answers:
                    raise bad(qw, 'has "is_impossible": true and answers: one or the other (SQuAD 2.0 puts those of an impossible question in "plausible_answers")')
                if qa.get("is_impossible") is False and not answers:
                    raise bad(qw, 'has "is_impossible": false and no answers: list them, or make it true for a question its paragraph cannot answer')
                questions.append(SquadQuestion(qid, question, [SquadAnswer(text=x["text"], answer_start=_start(x.get("answer_start"))) for x in answers], qw))
            paragraphs.append(SquadParagraph(title, context, questions, pw))
    return paragraphs


def _start(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def load_squad(path: Path) -> list[SquadItem]:
    """One item a question of a SQuAD file (``read_squad``), with its paragraph and article title."""
    return [SquadItem(q.id, q.question, para.context, para.title, q.answers) for para in read_squad(path) for q in para.questions]


def fix_answer(context: str, ans: SquadAnswer) -> tuple[int, int] | None:
    """Character span of an answer, tolerating stray spaces and off-by-one starts in the data."""
    text = ans["text"].strip()
    start = ans["answer_start"]
    if not text:
        return None
    for delta in (0, 1, -1, 2, -2) if start is not None else ():
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
