"""``qa eval``: retrieval, reader and end-to-end metrics against a gold set.

Gold sets come as JSONL (``{"id", "question", "answers", "document_ids"}``, one per line; an
empty ``answers`` list marks a question the documents cannot answer) or SQuAD JSON. SQuAD
paragraphs are indexed as documents (id ``<article>-<paragraph>``, article title as title) in a
temporary data directory unless ``--data-dir`` names a folder (new, or filled by an earlier run:
never an index of other documents, which the paragraphs would stay in).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from index.file_errors import json_syntax
from index.retrieval import candidate_depth
from index.schema import Document
from qa.metrics import best_over_references, normalize_answer
from qa.render import plural
from qa.settings import Settings
from qa.squad import SquadFormatError, misspelt_field, parse_squad, question_problem, read_utf8

log = logging.getLogger(__name__)


def _questions_have(n: int) -> str:
    return f"{plural(n, 'question')} {'has' if n == 1 else 'have'}"

RECALL_AT = (1, 3, 5, 10)


class EvalSetupError(ValueError):
    """An evaluation that cannot start (gold file, index); the message says what to fix."""


class GoldFormatError(EvalSetupError):
    """The gold file is malformed; the message names the file and the line or field."""


@dataclass
class GoldItem:
    id: str
    question: str
    answers: list[str]
    document_ids: list[str]
    paragraph_id: str | None = None  # SQuAD: the gold paragraph's document id
    context: str | None = None  # SQuAD: the gold paragraph's text
    article: str | None = None  # SQuAD: the article title
    where: str = ""  # where it is in its file ("gold.jsonl:3", "data[0].paragraphs[1].qas[2]")


@dataclass
class GoldSet:
    items: list[GoldItem]
    documents: list[Document] = field(default_factory=list)  # SQuAD only: what to index
    kind: str = "jsonl"
    # where the questions are that repeat an earlier one (the same words, on the same paragraph for
    # SQuAD), with where that one is: each is asked and scored again, which weighs it twice
    repeated: list[tuple[str, str]] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # SQuAD: questions whose answers are empty once normalised


JSONL_FIELDS = ("id", "question", "answers", "document_ids")


def load_gold(path: Path) -> GoldSet:
    if path.is_dir():
        raise GoldFormatError(f"{path}: is a folder; give a gold file (JSONL or SQuAD JSON)")
    if not path.is_file():
        raise GoldFormatError(f"{path}: {'not a regular file' if path.exists() else 'no such file'}; give a gold file (JSONL or SQuAD JSON)")
    try:
        raw = read_utf8(path)
    except SquadFormatError as exc:
        raise GoldFormatError(str(exc)) from None
    stripped = raw.strip()
    if stripped.startswith(("{", "[")):
        try:
            whole = json.loads(raw)
        except json.JSONDecodeError as exc:
            # a SQuAD file with a syntax error, unless its first line is a whole object (JSONL)
            if stripped.startswith("{") and '"data"' in stripped[:200] and not _is_object(_lines(stripped)[0]):
                raise GoldFormatError(f"{path}:{exc.lineno}: {json_syntax(exc)}") from exc
            whole = None  # JSONL: read line by line below, which names the bad line
        if isinstance(whole, dict) and "data" in whole and "question" not in whole:  # else one JSONL question with an extra field
            return _load_squad(whole, path)
        if isinstance(whole, list):
            raise GoldFormatError(f"{path}: a JSON array; write one question object per line (JSONL) or a SQuAD file ({{\"data\": [...]}})")
        if isinstance(whole, dict) and "question" not in whole:
            raise GoldFormatError(f"{path}: neither a SQuAD file (no \"data\" list) nor JSONL questions (no \"question\" field)")
    return _load_jsonl(raw, path)


def _lines(raw: str) -> list[str]:
    # only "\n" ends a JSONL record: str.splitlines would also split at U+2028, U+0085 and form
    # feeds, which json.dumps(ensure_ascii=False) leaves as they are inside strings
    return raw.split("\n")


def _is_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:
        return False


def question_key(question: str) -> str:
    """What makes two gold questions the same question: their words, whatever their case and spacing."""
    return " ".join(question.split()).casefold()


def _load_jsonl(raw: str, path: Path) -> GoldSet:
    items = []
    seen: dict[str, int] = {}
    asked: dict[str, str] = {}  # question_key -> where it first is
    repeated: list[tuple[str, str]] = []
    for n, line in enumerate(_lines(raw), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GoldFormatError(f"{path}:{n}: {json_syntax(exc)}") from exc
        if not isinstance(rec, dict):
            raise GoldFormatError(f"{path}:{n}: expected an object with id, question, answers, document_ids")
        for key in rec:  # a misspelt field would silently change what is measured
            meant = misspelt_field(key, rec, JSONL_FIELDS)
            if meant:
                raise GoldFormatError(f"{path}:{n}: unknown field {key!r}: did you mean {meant!r}?")
        q = rec.get("question")
        problem = question_problem(q)
        if problem is not None:
            raise GoldFormatError(f"{path}:{n}: field 'question' {problem}")
        if "answers" not in rec:
            raise GoldFormatError(f"{path}:{n}: field 'answers' is missing: list every acceptable answer, or [] for a question the documents cannot answer")
        answers = rec["answers"]
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise GoldFormatError(f"{path}:{n}: field 'answers' must be a list of strings ([] = unanswerable)")
        for i, a in enumerate(answers):
            if not normalize_answer(a):  # "" or "le": it would match the empty "no answer" prediction
                raise GoldFormatError(f"{path}:{n}: field 'answers' item {i} ({a!r}) is empty once normalised (punctuation and articles removed): give the answer's words")
        doc_ids = rec.get("document_ids", [])
        if not isinstance(doc_ids, list) or not all(isinstance(d, str) for d in doc_ids):
            raise GoldFormatError(f"{path}:{n}: field 'document_ids' must be a list of strings")
        qid = rec.get("id", f"line-{n}")
        if isinstance(qid, int) and not isinstance(qid, bool):
            qid = str(qid)
        if not isinstance(qid, str) or not qid.strip():
            raise GoldFormatError(f"{path}:{n}: field 'id' must be a non-empty string (or left out: the question is then named line-{n})")
        if qid in seen:
            raise GoldFormatError(f"{path}:{n}: duplicate id {qid!r} (already on line {seen[qid]})")
        seen[qid] = n
        where = f"{path.name}:{n}"
        first = asked.setdefault(question_key(q), where)
        if first != where:
            repeated.append((where, first))
        items.append(GoldItem(qid, q, answers, doc_ids, where=where))
    if not items:
        raise GoldFormatError(f"{path}: no questions found")
    return GoldSet(items, kind="jsonl", repeated=repeated)


def paragraph_id(title: str, context: str) -> str:
    """A SQuAD paragraph's document id: content-derived, so the same paragraph gets the same id from any file (train, dev)."""
    return "p-" + hashlib.sha1(f"{title}\n{context}".encode("utf-8")).hexdigest()[:16]


def _load_squad(data: dict, path: Path) -> GoldSet:
    """SQuAD JSON (``qa.squad.parse_squad``, an error naming its place): each paragraph a document,
    each question a gold item whose answers can be scored."""
    try:
        paragraphs = parse_squad(data, path)
    except SquadFormatError as exc:
        raise GoldFormatError(str(exc)) from None
    items, docs = [], []
    not_verbatim: list[str] = []
    unusable: list[str] = []
    asked: dict[tuple[str, str], str] = {}  # (paragraph, question_key) -> where it first is
    repeated: list[tuple[str, str]] = []
    for para in paragraphs:
        context, title = para.context, para.title
        pid = paragraph_id(title, context)
        docs.append(Document(pid, context, title=title, metadata={"article": title}))
        for qa in para.questions:
            texts = [x["text"].strip() for x in qa.answers if x["text"].strip()]
            for x in qa.answers:
                t, start = x["text"], x["answer_start"]
                if t.strip() and (t not in context or (start is not None and context[start : start + len(t)] != t)):
                    not_verbatim.append(qa.where)
                    break
            if qa.answers and not any(normalize_answer(t) for t in texts):  # "" or "le": nothing to match
                unusable.append(qa.where)
                continue
            texts = [t for t in texts if normalize_answer(t)]
            # the same words over another paragraph are another question ("Quand ?"); not over the
            # same one. Among the questions scored: one left out above repeats nothing, and is repeated by none
            first = asked.setdefault((pid, question_key(qa.question)), qa.where)
            if first != qa.where:
                repeated.append((qa.where, first))
            items.append(GoldItem(qa.id, qa.question, texts, [pid], pid, context, title, where=qa.where))
    if not_verbatim:
        log.warning("%s: %s an answer that is not in their context at its answer_start (first: %s)", path, _questions_have(len(not_verbatim)), ", ".join(not_verbatim[:3]))
    if unusable:
        log.warning("%s: %s left out: their answers are empty once normalised (first: %s)", path, plural(len(unusable), "question"), ", ".join(unusable[:3]))
    if not items and unusable:
        raise GoldFormatError(f"{path}: no questions left: the answers of every one are empty once normalised (punctuation and articles removed; first: {unusable[0]}): give the answers' words")
    if not items:
        raise GoldFormatError(f"{path}: no questions found (every paragraph's \"qas\" is empty)")
    return GoldSet(items, docs, kind="squad", repeated=repeated, left_out=unusable)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def run_eval(settings: Settings, gold_path: Path, top_k: int = 5, mode: str = "hybrid", data_dir: Path | None = None, limit: int = 0, corpus: list[Path] | None = None) -> dict:
    """Evaluate; ``corpus`` SQuAD files add their paragraphs to the index as distractors."""
    from index.store import index_exists
    from qa.pipeline import QAService

    gold = load_gold(gold_path)
    if corpus and gold.kind != "squad":
        # they would go for good into the index QA_DATA_DIR names, which users and servers read
        raise EvalSetupError(f"--corpus goes with a SQuAD gold file, whose paragraphs are indexed for the evaluation; {gold_path} is JSONL, "
                             "evaluated on the index as it is: index the distractors there first (`qa index`) if you want them")
    extra_docs: list[Document] = []
    for c in corpus or []:
        try:
            extra = load_gold(c)
        except GoldFormatError as exc:
            raise GoldFormatError(f"--corpus takes SQuAD JSON files: {exc}") from None
        if extra.kind != "squad":
            raise GoldFormatError(f"{c}: --corpus takes SQuAD JSON files")
        extra_docs += extra.documents
    items = gold.items[:limit] if limit else gold.items
    if gold.kind == "squad" and data_dir is not None:
        count, examples = _other_documents(data_dir)
        if count:  # the paragraphs would stay there for good, among a team's own documents
            raise EvalSetupError(f"--data-dir {data_dir} holds an index of other documents ({plural(count, 'document')}, such as {', '.join(repr(d) for d in examples)}): "
                                 f"qa eval would add the paragraphs of {gold_path.name} to it for good; give a new or empty folder, or leave --data-dir out (a temporary index)")
    tmp = None
    if gold.kind == "squad" and data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="qa-eval-")
        data_dir = Path(tmp.name)
    svc_settings = settings.model_copy(update={"data_dir": data_dir}) if data_dir else settings
    # a JSONL gold set read against --data-dir: what to do names that option, not QA_DATA_DIR
    other_index = "give --data-dir the folder of your index, or leave it out to read QA_DATA_DIR's" if gold.kind == "jsonl" and data_dir is not None else None
    if gold.kind == "jsonl" and not index_exists(svc_settings.data_dir):  # reading must not create one
        raise EvalSetupError(f"no index at {svc_settings.data_dir}: {other_index or 'run `qa index data/articles` first (or set QA_DATA_DIR to your index)'}")
    svc = QAService.from_settings(svc_settings)
    try:
        to_index = (gold.documents if gold.kind == "squad" else []) + extra_docs
        if to_index:
            t0 = time.time()
            rep = svc.add_documents(to_index, progress=False)
            log.info("indexed %d paragraphs (%d chunks embedded) in %.0fs", len(to_index), rep.chunks_added, time.time() - t0)
        if svc.store.counts()["documents"] == 0:
            raise GoldFormatError(f"the index at {svc_settings.data_dir} is empty: {other_index or 'run `qa index data/articles` (or set QA_DATA_DIR) first'}")
        gold_texts = {}  # each gold document read once: whether it exists, and its text
        stored_ids = {}  # a gold id written in another Unicode form than the index's ("cafe\u0301"): the index's
        for d in {d for it in items for d in it.document_ids}:
            doc = svc.store.get_document(d)
            if doc is not None:
                gold_texts[doc.id] = doc.text
                stored_ids[d] = doc.id
        for it in items:  # results name documents as stored
            it.document_ids = [stored_ids.get(d, d) for d in it.document_ids]
        unknown = sorted({d for it in items for d in it.document_ids} - set(gold_texts))
        unknown_details = [_unknown_document(svc.store.list_documents, d, items) for d in unknown]
        if unknown:  # a wrong gold id reads as a retrieval miss: say which ones, where, and what was meant
            log.warning("%s %s not in the index at %s: %s (answerable questions citing only them count as retrieval misses)",
                        plural(len(unknown), "gold document id"), "is" if len(unknown) == 1 else "are", svc_settings.data_dir, _unknown_listed(unknown_details))
        not_verbatim = _answers_not_in_documents(items, gold_texts)
        if not_verbatim:  # such a question can never be answered exactly: probably a typo or a paraphrase
            log.warning("%s no answer written as in their gold documents (first: %s)", _questions_have(len(not_verbatim)), ", ".join(not_verbatim[:3]))
        report = _evaluate(svc, gold, items, top_k, mode, str(gold_path))
        report["settings"]["limit"] = limit or None  # a partial run must not read as the whole set
        report["questions_in_file"] = len(gold.items)
        report["unknown_gold_documents"] = unknown
        report["unknown_gold_document_details"] = unknown_details
        report["answers_not_in_documents"] = not_verbatim
        asked = {it.where for it in items}  # --limit: a repeat past it is not scored at all
        report["repeated_questions"] = [{"where": where, "same_as": first} for where, first in gold.repeated if where in asked]
        report["left_out"] = gold.left_out
        return report
    finally:
        svc.close()
        if tmp:
            tmp.cleanup()


def _unknown_document(list_documents, doc_id: str, items: list[GoldItem]) -> dict:
    """A gold id the index lacks: where the questions citing it are, and the stored id it most likely
    means (the file's name given for the id it was indexed under, ``notes.txt`` for ``notes``; another case)."""
    from index.catalog import meant_document_id
    from index.ingest import SUPPORTED_SUFFIXES

    return {"id": doc_id, "where": [it.where for it in items if doc_id in it.document_ids],
            "did_you_mean": meant_document_id(list_documents, doc_id, SUPPORTED_SUFFIXES)}


def _unknown_listed(details: list[dict]) -> str:
    """``'notes.txt' (gold.jsonl:3; did you mean 'notes'?), ...``: the first five unknown gold ids."""
    def one(d: dict) -> str:
        where = ", ".join(d["where"][:3]) + (", ..." if len(d["where"]) > 3 else "")
        meant = f"; did you mean {d['did_you_mean']!r}?" if d.get("did_you_mean") else ""
        return f"{d['id']!r} ({where}{meant})"

    return ", ".join(one(d) for d in details[:5]) + (", ..." if len(details) > 5 else "")


_PARAGRAPH_ID = re.compile(r"p-[0-9a-f]{16}")


def _other_documents(data_dir: Path, shown: int = 3) -> tuple[int, list[str]]:
    """How many documents of the index at ``data_dir`` (none if there is none) are not SQuAD
    paragraphs that `qa eval` put there (``paragraph_id``), and the first ``shown`` of their ids;
    read only, without the models."""
    from index.catalog import DocumentCatalog

    catalog = DocumentCatalog(data_dir)
    try:
        count, examples, offset = 0, [], 0
        while True:
            page, _ = catalog.list_documents(offset=offset, limit=1000)
            if not page:
                return count, examples
            others = [d.id for d in page if not _PARAGRAPH_ID.fullmatch(d.id)]
            count += len(others)
            examples += others[: shown - len(examples)]
            offset += len(page)
    finally:
        catalog.close()


def _answers_not_in_documents(items: list[GoldItem], texts: dict[str, str]) -> list[str]:
    """Where the answerable questions are none of whose answers is in any of their indexed gold
    documents (``texts``: id -> text) as the scorer sees it: normalised ("l'Espagne" and
    "l’Espagne" are the same answer), so that each one listed can never score an exact match."""
    normalised: dict[str, str] = {}
    out = []
    for it in items:
        docs = [d for d in it.document_ids if d in texts]
        if not it.answers or not docs:
            continue
        for d in docs:
            if d not in normalised:
                normalised[d] = f" {normalize_answer(texts[d])} "
        if not any(f" {normalize_answer(a)} " in normalised[d] for a in it.answers for d in docs):
            out.append(it.where or it.id)
    return out


def _evaluate(svc, gold: GoldSet, items: list[GoldItem], top_k: int, mode: str, name: str) -> dict:
    depth = max(max(RECALL_AT), top_k)
    reuse_search = candidate_depth(depth) == candidate_depth(top_k)
    per_q = []
    search_ms, ask_ms = [], []
    for it in items:
        t0 = time.perf_counter()
        results = svc.search(it.question, top_k=depth, mode=mode)
        search_ms.append((time.perf_counter() - t0) * 1000)
        doc_rank = next((i + 1 for i, r in enumerate(results) if r.document_id in it.document_ids), None)
        if gold.kind == "squad":  # document level = the gold article, paragraph level = the gold paragraph
            titles = [r.title for r in results]
            doc_rank = next((i + 1 for i, t in enumerate(titles) if t == it.article), None)
            para_rank = next((i + 1 for i, r in enumerate(results) if r.document_id == it.paragraph_id), None)
        else:
            para_rank = None
        t0 = time.perf_counter()
        if reuse_search:  # same candidate lists, so the first top_k are exactly what ask would retrieve
            res = svc.ask(it.question, top_k=top_k, mode=mode, passages=results[:top_k])
            ask_ms.append(search_ms[-1] + (time.perf_counter() - t0) * 1000)
        else:
            res = svc.ask(it.question, top_k=top_k, mode=mode)
            ask_ms.append((time.perf_counter() - t0) * 1000)
        top = res.answers[0] if res.answers else None
        pred = top.text if top else ""
        em, f1 = best_over_references(pred, it.answers)
        rec = {
            "id": it.id,
            "where": it.where,
            "question": it.question,
            "gold": it.answers,
            "gold_documents": it.document_ids,
            "prediction": pred,
            "score": top.score if top else None,
            "document_id": top.document_id if top else None,
            "start": top.start if top else None,
            "end": top.end if top else None,
            "no_answer": res.no_answer,
            "em": em,
            "f1": f1,
            "doc_rank": doc_rank,
            "paragraph_rank": para_rank,
            "search_ms": search_ms[-1],
            "ask_ms": ask_ms[-1],
        }
        if it.context is not None and it.answers:
            ext = svc.reader.read(it.question, [it.context], n_best=1)[0]
            best = ext[0].text if ext else ""
            rec["reader_prediction"] = best
            rec["reader_em"], rec["reader_f1"] = best_over_references(best, it.answers)
        per_q.append(rec)

    answerable = [r for r in per_q if r["gold"]]
    unanswerable = [r for r in per_q if not r["gold"]]

    # retrieval is measured on the answerable questions that name their gold documents
    with_docs = [r for r in answerable if r["gold_documents"]]

    def recall(rows, key):
        out: dict = {f"recall@{k}": _mean_or_none([1.0 if r[key] and r[key] <= k else 0.0 for r in rows]) for k in RECALL_AT}
        out["mrr"] = _mean_or_none([1.0 / r[key] if r[key] else 0.0 for r in rows])
        out["questions"] = len(rows)
        return out

    report: dict = {
        "gold": name,
        "kind": gold.kind,
        "questions": len(per_q),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "settings": {"top_k": top_k, "mode": mode, "reader": svc.reader.name, "embedder": svc.embedder.identity, "no_answer_threshold": svc.reader.threshold, "ask_no_answer_threshold": svc.ask_threshold, "rank_penalty": svc.settings.rank_penalty},
        "retrieval_document": recall(with_docs, "doc_rank"),
    }
    if gold.kind == "squad":
        report["retrieval_paragraph"] = recall(with_docs, "paragraph_rank")
        rows = [r for r in answerable if "reader_f1" in r]
        report["reader_on_gold_context"] = {"em": _pct_or_none([r["reader_em"] for r in rows]), "f1": _pct_or_none([r["reader_f1"] for r in rows]), "questions": len(rows)}
    predicted_none = [r for r in per_q if r["no_answer"]]
    report["end_to_end"] = {
        "em_answerable": _pct_or_none([r["em"] for r in answerable]),
        "f1_answerable": _pct_or_none([r["f1"] for r in answerable]),
        "em_all": 100 * _mean([r["em"] for r in per_q]),
        "f1_all": 100 * _mean([r["f1"] for r in per_q]),
        "answered_answerable": _mean_or_none([0.0 if r["no_answer"] else 1.0 for r in answerable]),
        "no_answer_precision": _mean([0.0 if r["gold"] else 1.0 for r in predicted_none]) if predicted_none else None,
        "no_answer_recall": _mean([1.0 if r["no_answer"] else 0.0 for r in unanswerable]) if unanswerable else None,
        "unanswerable_correct": sum(1 for r in unanswerable if r["no_answer"]),
    }
    report["latency_ms"] = {
        "search_p50": _percentile(search_ms, 0.5),
        "search_p95": _percentile(search_ms, 0.95),
        "ask_p50": _percentile(ask_ms, 0.5),
        "ask_p95": _percentile(ask_ms, 0.95),
    }
    report["per_question"] = per_q
    return report


def _mean(values) -> float:
    values = list(values)
    return float(statistics.fmean(values)) if values else 0.0


def _mean_or_none(values) -> float | None:
    """None when there is nothing to average (no answerable question, say): not a score of 0."""
    values = list(values)
    return float(statistics.fmean(values)) if values else None


def _pct_or_none(values) -> float | None:
    m = _mean_or_none(values)
    return None if m is None else 100 * m


def render_report(report: dict, errors: bool = False) -> str:
    squad = report.get("kind") == "squad"
    lines = [f"gold: {report['gold']} ({plural(report['questions'], 'question')}: {report['answerable']} answerable, {report['unanswerable']} unanswerable)"]
    if report.get("questions_in_file", report["questions"]) > report["questions"]:
        lines.append(f"only the first {report['questions']} of its {report['questions_in_file']} questions (--limit)")
    s = report["settings"]
    lines.append(f"mode {s['mode']}, top-k {s['top_k']}, reader {s['reader']}, thresholds: passage {s['no_answer_threshold']:.3f}, answer {s.get('ask_no_answer_threshold', s['no_answer_threshold']):.3f}, rank penalty {s.get('rank_penalty', 0)}")
    retrieval = report["retrieval_document"]
    left_out = report["answerable"] - retrieval.get("questions", report["answerable"])
    if left_out:
        lines.append(f"retrieval: {plural(left_out, 'answerable question')} without document_ids {'is' if left_out == 1 else 'are'} left out of it")
    if report.get("answers_not_in_documents"):
        where = report["answers_not_in_documents"]
        lines.append(f"warning: {_questions_have(len(where))} no answer written as in their gold documents: {', '.join(where[:5])}{', ...' if len(where) > 5 else ''}")
    if report.get("repeated_questions"):
        rows = report["repeated_questions"]
        shown = ", ".join(f"{r['where']} (as {r['same_as']})" for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
        lines.append(f"warning: {plural(len(rows), 'question')} {'repeats' if len(rows) == 1 else 'repeat'} an earlier one and {'is' if len(rows) == 1 else 'are'} scored again: {shown}")
    if report.get("left_out"):
        where = report["left_out"]
        lines.append(f"warning: {plural(len(where), 'question')} left out, {'its' if len(where) == 1 else 'their'} answers empty once normalised: {', '.join(where[:5])}{', ...' if len(where) > 5 else ''}")
    if report.get("unknown_gold_documents"):
        unknown = report["unknown_gold_documents"]
        lines.append(f"warning: {plural(len(unknown), 'gold document id')} {'is' if len(unknown) == 1 else 'are'} not in the index: {_unknown_listed(report['unknown_gold_document_details'])}")
    lines.append("")
    lines.append(f"{'metric':<34}{'value':>10}")
    lines.append("-" * 44)

    def row(name, value, fmt="{:.3f}"):
        lines.append(f"{name:<34}{('-' if value is None else fmt.format(value)):>10}")

    levels = {"retrieval_document": "article" if squad else "document", "retrieval_paragraph": "paragraph"}
    for level, label in levels.items():
        if level in report:
            for k, v in report[level].items():
                if k != "questions":
                    row(f"{label} {k}", v)
    if "reader_on_gold_context" in report:
        r = report["reader_on_gold_context"]
        row("reader EM (gold context)", r["em"], "{:.1f}")
        row("reader F1 (gold context)", r["f1"], "{:.1f}")
    e = report["end_to_end"]
    row("end-to-end EM (answerable)", e["em_answerable"], "{:.1f}")
    row("end-to-end F1 (answerable)", e["f1_answerable"], "{:.1f}")
    row("answered (answerable)", e["answered_answerable"], "{:.1%}")
    row("no-answer precision", e["no_answer_precision"])
    row("no-answer recall", e["no_answer_recall"])
    if report["unanswerable"]:
        lines.append(f"{'unanswerable said no-answer':<34}{e['unanswerable_correct']:>6} / {report['unanswerable']}")
    lat = report["latency_ms"]
    for k, v in lat.items():
        row(f"latency {k} (ms)", v, "{:.1f}" if v < 10 else "{:.0f}")
    if errors:
        wrong = [r for r in report["per_question"] if r["em"] < 1.0]  # not answered exactly: F1 1 with words reordered counts too
        lines.append("")
        lines.append(f"errors ({len(wrong)}):" if wrong else "errors: none")
        for r in wrong:
            answered = f"{r['prediction']} from {r['document_id']}[{r['start']}:{r['end']}]" if r["document_id"] else "no answer"
            gold = r["gold"] or "no answer"
            in_docs = f" in {r['gold_documents']}" if r["gold_documents"] and r["gold"] else ""
            if squad:
                ranks = f"paragraph rank {_rank(r['paragraph_rank'])}, article rank {_rank(r['doc_rank'])}"
            else:
                ranks = f"document rank {_rank(r['doc_rank'])}" if r["gold_documents"] else ""
            where = f" ({r['where']})" if r.get("where") else ""
            lines.append(f"- {r['id']}{where}: {r['question']}")
            lines.append(f"    gold: {gold}{in_docs}; answered: {answered} (F1 {r['f1']:.2f}{', ' + ranks if ranks and r['gold'] else ''})")
    return "\n".join(lines)


def _rank(rank: int | None) -> str:
    return "not found" if rank is None else f"{rank}"
