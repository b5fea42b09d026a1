"""`qa eval`: both gold formats, the report, and clear errors for malformed gold files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from qa.evaluation import GoldFormatError, load_gold


BAD_GOLD = [
    ('{"id": "a", "question": "Qui ?", "answers": ["x"], "document_ids": ["d"]}\n{"id": "b", "question": ""}\n', r"gold.jsonl:2: field 'question'"),
    ('{"id": "a", "question": "Qui ?", "answers": []}\n{not json\n', r"gold.jsonl:2: invalid JSON"),
    # the usual hand-written mistakes: where, and what to change
    ('{"id": "a", "question": "Qui ?", "answers": []}\n{"id": "b", "question": "Où ?", "answers": ["x"],}\n',
     r"gold.jsonl:2: invalid JSON: Expecting property name enclosed in double quotes \(column 50\): remove the comma before '\}' \(JSON allows no trailing comma\)$"),
    ('{"id": "a", "question": "Qui ?", "answers": ["x", ]}\n', r"gold.jsonl:1: invalid JSON: .* \(column 51\): remove the comma before '\]'"),
    ("{'id': 'a', 'question': 'Qui ?', 'answers': []}\n", r"gold.jsonl:1: invalid JSON: .*: write names and strings in double quotes"),
    # questions no user could ask: the API refuses them (index.text.text_problem)
    ('{"id": "a", "question": "Qui ?", "answers": []}\n{"id": "b", "question": "???", "answers": []}\n',
     r"gold.jsonl:2: field 'question' must contain at least one letter or digit"),
    ('{"id": "a", "question": "\u200b", "answers": []}\n', r"gold.jsonl:1: field 'question' must contain at least one letter or digit"),
    ('{"id": "a", "question": " \\t ", "answers": []}\n', r"gold.jsonl:1: field 'question' must be a non-empty string"),
    ('{"data": [{"title": "T", "paragraphs": [{"context": "Paris.", "qas": [{"id": "1", "question": "... ?", "answers": []}]}]}]}',
     r"gold.jsonl: data\[0\]\.paragraphs\[0\]\.qas\[0\]\.question must contain at least one letter or digit"),
    ('{"data": [{"title": "T", "paragraphs": [{"context": "Paris.", "qas": [{"id": "1", "question": " ", "answers": []}]}]}]}',
     r"gold.jsonl: data\[0\]\.paragraphs\[0\]\.qas\[0\]\.question must be a non-empty string"),
    # what used to change the numbers silently
    ('{"id": "a", "question": "Qui ?", "document_ids": ["d"]}\n', r"gold.jsonl:1: field 'answers' is missing: list every acceptable answer, or \[\] for"),
    ('{"id": "a", "question": "Qui ?", "answer": ["x"]}\n', r"gold.jsonl:1: unknown field 'answer': did you mean 'answers'\?"),
    ('{"id": "a", "question": "Qui ?", "answers": ["x"], "document_id": ["d"]}\n', r"unknown field 'document_id': did you mean 'document_ids'\?"),
    ('{"id": "a", "question": "Qui ?", "answers": ["x"]}\n{"id": "b", "question": "Où ?", "answers": [""]}\n', r"gold.jsonl:2: field 'answers' item 0 \(''\) is empty once normalised"),
    ('{"id": "a", "question": "Qui ?", "answers": ["Paris", "le"]}\n', r"gold.jsonl:1: field 'answers' item 1 \('le'\) is empty once normalised"),
    ('{"id": "", "question": "Qui ?", "answers": []}\n', r"gold.jsonl:1: field 'id' must be a non-empty string"),
    ('{"question": "Qui ?", "answers": []}\n{"id": "line-1", "question": "Où ?", "answers": []}\n', r"gold.jsonl:2: duplicate id 'line-1' \(already on line 1\)"),
    ('{"data": [{"title": "T", "paragraphs": [{"context": "Paris.", "qas": [{"id": "1", "question": "Où ?", "answers": []}, {"id": "1", "question": "Qui ?", "answers": []}]}]}]}',
     r"data\[0\]\.paragraphs\[0\]\.qas\[1\]\.id duplicate id '1' \(already at data\[0\]\.paragraphs\[0\]\.qas\[0\]\)"),
    ('{"data": [{"title": "T", "paragraphs": [{"context": "Paris.", "qas": [{"id": "1", "question": "Où ?", "is_impossible": true, "answers": [{"text": "Paris", "answer_start": 0}]}]}]}]}',
     r"qas\[0\] has \"is_impossible\": true and answers"),
    ('{"id": "a", "question": "Qui ?", "answers": "x"}\n', r"gold.jsonl:1: field 'answers'"),
    ('[{"id": "a", "question": "Qui ?", "answers": []}]', r"gold.jsonl: a JSON array; write one question object per line"),
    ('{"version": "v1.1"}', r"neither a SQuAD file"),
    ('{"version": "v1.1", "data": [\n{"title": "T",, }]}', r"gold.jsonl:2: invalid JSON"),  # a SQuAD file with a syntax error
    # SQuAD files: the field at fault, by its place in the file
    ('{"data": 5}', r"gold.jsonl: data must be a list of articles"),
    ('{"data": ["x"]}', r"gold.jsonl: data\[0\] must be an object"),
    ('{"data": []}', r"gold.jsonl: no questions found"),
    ('{"data": [{"title": "T", "paragraphs": {"a": 1}}]}', r"data\[0\]\.paragraphs must be a list"),
    ('{"data": [{"title": "T", "paragraphs": [{"context": 5, "qas": []}]}]}', r"data\[0\]\.paragraphs\[0\]\.context must be a non-empty string"),
    ('{"data": [{"title": "T", "paragraphs": [{"context": "Paris.", "qas": []}]}]}', r"no questions found"),
    ('{"data": [{"title": "T", "paragraphs": [{"context": "Paris.", "qas": [{"id": "1", "question": null}]}]}]}', r"qas\[0\]\.question must be a non-empty string"),
    ('{"data": [{"title": "T", "paragraphs": [{"context": "Paris.", "qas": [{"id": "1", "question": "Où ?", "answers": ["Paris"]}]}]}]}', r"qas\[0\]\.answers must be a list of"),
    ('{"data": [{"title": "T", "paragraphs": [{"context": "Paris.", "qas": [{"id": "1", "question": "Où ?", "answers": [{"text": 5}]}]}]}]}', r"qas\[0\]\.answers must be a list of"),
    # a misspelt or missing "answers" would make an answerable question count as unanswerable
    ('{"data": [{"title": "T", "paragraphs": [{"context": "Paris.", "qas": [{"id": "1", "question": "Où ?", "answer": [{"text": "Paris", "answer_start": 0}]}]}]}]}',
     r"qas\[0\]\.answer is not a SQuAD field: did you mean 'answers'\?"),
    ('{"data": [{"title": "T", "paragraphs": [{"context": "Paris.", "qas": [{"id": "1", "question": "Où ?"}]}]}]}', r"qas\[0\]\.answers is missing: list the answers, or write"),
    ('{"data": [{"title": "T", "paragraphs": [{"context": "Paris.", "qas": [{"id": "1", "question": "Où ?", "is_impossible": false, "answers": []}]}]}]}',
     r"qas\[0\] has \"is_impossible\": false and no answers"),
    ('{"id": "a", "question": "Qui ?", "answers": ["x"], "doc_ids": ["d"]}\n', r"unknown field 'doc_ids': did you mean 'document_ids'\?"),
    # questions the API refuses as too long (qa.validation.MAX_QUESTION_CHARS) were asked and scored
    ('{"id": "a", "question": "Qui ?", "answers": []}\n{"id": "b", "question": "' + "Qui " * 250 + '?", "answers": []}\n',
     r"gold.jsonl:2: field 'question' must be at most 1000 characters, surrounding whitespace left out \(got 1001\): the API refuses a longer question"),
    ('{"data": [{"title": "T", "paragraphs": [{"context": "Paris.", "qas": [{"id": "1", "question": "' + "Où " * 400 + '?", "answers": []}]}]}]}',
     r"gold.jsonl: data\[0\]\.paragraphs\[0\]\.qas\[0\]\.question must be at most 1000 characters, surrounding whitespace left out \(got 1201\)"),
    # every paragraph's answers empty once normalised: not "every qas is empty"
    ('{"data": [{"title": "T", "paragraphs": [{"context": "Paris, le 3 mai.", "qas": [{"id": "1", "question": "Qui ?", "answers": [{"text": "le", "answer_start": 7}]}]}]}]}',
     r"gold.jsonl: no questions left: the answers of every one are empty once normalised \(punctuation and articles removed; first: data\[0\]\.paragraphs\[0\]\.qas\[0\]\)"),
]


@pytest.mark.parametrize("content,message", BAD_GOLD)
def test_gold_errors_name_file_and_line(tmp_path, content, message):
    f = tmp_path / "gold.jsonl"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(GoldFormatError, match=message):
        load_gold(f)


def test_extra_fields_beside_the_real_ones_are_ignored(tmp_path):
    f = tmp_path / "gold.jsonl"
    f.write_text('{"id": "a", "question_id": 7, "question": "Qui ?", "answers": ["x"], "answers_en": ["y"], "document_ids": [], "ids": 1}\n', encoding="utf-8")
    assert [(i.id, i.answers) for i in load_gold(f).items] == [("a", ["x"])]


def test_a_folder_is_not_a_gold_file(tmp_path):
    (tmp_path / "gold.jsonl").mkdir()
    with pytest.raises(GoldFormatError, match="gold.jsonl: is a folder; give a gold file"):
        load_gold(tmp_path / "gold.jsonl")


def test_squad_answers_that_cannot_be_scored_are_reported(tmp_path, caplog):
    import logging

    qas = [{"id": "ok", "question": "Où ?", "answers": [{"text": "Paris", "answer_start": 0}]},
           {"id": "moved", "question": "Quoi ?", "answers": [{"text": "Paris", "answer_start": 3}]},  # not there
           {"id": "empty", "question": "Qui ?", "answers": [{"text": "le", "answer_start": 7}]}]  # nothing to match once normalised
    f = tmp_path / "squad.json"
    f.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [{"context": "Paris, le 3 mai.", "qas": qas}]}]}), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="qa.evaluation"):
        gold = load_gold(f)
    assert [i.id for i in gold.items] == ["ok", "moved"] and gold.items[1].where == "data[0].paragraphs[0].qas[1]"
    assert "1 question has an answer that is not in their context at its answer_start (first: data[0].paragraphs[0].qas[1])" in caplog.text
    assert "1 question left out: their answers are empty once normalised (first: data[0].paragraphs[0].qas[2])" in caplog.text


def test_gold_files_as_editors_write_them(tmp_path):
    f = tmp_path / "gold.jsonl"
    # a byte-order mark and Windows line endings, as some editors save files
    f.write_bytes('\ufeff{"id": "a", "question": "Qui ?", "answers": ["x"], "document_ids": ["d"]}\r\n\r\n{"id": "b", "question": "Où ?", "answers": []}\r\n'.encode("utf-8"))
    gold = load_gold(f)
    assert [(i.id, i.question, i.answers) for i in gold.items] == [("a", "Qui ?", ["x"]), ("b", "Où ?", [])]
    squad = tmp_path / "squad.json"
    # pretty-printed, with "data" far from the start
    squad.write_bytes(("\ufeff" + json.dumps({"version": "v1.1", "notes": "n" * 300, "data": [{"title": "T", "paragraphs": [{"context": "Paris.", "qas": [{"id": "q", "question": "Où ?", "answers": [{"text": "Paris", "answer_start": 0}]}]}]}]}, indent=2)).encode("utf-8"))
    assert load_gold(squad).kind == "squad"


def test_jsonl_strings_may_hold_any_line_separator_but_newline(tmp_path):
    """json.dumps(ensure_ascii=False) writes U+2028, U+0085 and form feeds as they are: only "\\n" ends a record."""
    f = tmp_path / "gold.jsonl"
    records = [{"id": "a", "question": "Qui\u2028dirige ?", "answers": ["Ted\x85Sarandos"]}, {"id": "b", "question": "Où\x0c ?", "answers": []}]
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    assert [(i.id, i.question, i.answers, i.where) for i in load_gold(f).items] == [
        ("a", "Qui\u2028dirige ?", ["Ted\x85Sarandos"], "gold.jsonl:1"), ("b", "Où\x0c ?", [], "gold.jsonl:2")]


def test_one_jsonl_question_with_an_extra_data_field_is_jsonl(tmp_path):
    f = tmp_path / "gold.jsonl"
    f.write_text('{"id": "a", "question": "Qui ?", "answers": ["x"], "data": {"source": "team"}}\n', encoding="utf-8")
    gold = load_gold(f)
    assert gold.kind == "jsonl" and [i.id for i in gold.items] == ["a"]


def test_answers_are_looked_for_as_the_scorer_reads_them():
    """The "not written as in their gold documents" warning lists only questions that can never
    score an exact match: an ASCII apostrophe for the document's typographic one is the same answer."""
    from qa.evaluation import GoldItem, _answers_not_in_documents

    texts = {"d": "Netflix s’installe à Paris, près de l’Opéra."}
    items = [GoldItem("same", "Où ?", ["l'Opéra"], ["d"]), GoldItem("absent", "Où ?", ["Lyon"], ["d"], where="g.jsonl:2"),
             GoldItem("part-of-a-word", "Où ?", ["Pari"], ["d"]), GoldItem("unanswerable", "Où ?", [], ["d"]),
             GoldItem("unknown-doc", "Où ?", ["Lyon"], ["x"])]
    assert _answers_not_in_documents(items, texts) == ["g.jsonl:2", "part-of-a-word"]


def test_errors_list_every_question_not_answered_exactly():
    """Words reordered score F1 1 but EM 0: such a question is an error for the EM in the same table."""
    from qa.evaluation import render_report

    rows = [{"id": "reordered", "where": "g.jsonl:1", "question": "Où ?", "gold": ["Londres et Amsterdam"], "gold_documents": [], "prediction": "Amsterdam et Londres",
             "document_id": "d", "start": 0, "end": 20, "em": 0.0, "f1": 1.0, "doc_rank": None, "paragraph_rank": None},
            {"id": "exact", "where": "g.jsonl:2", "question": "Qui ?", "gold": ["Ted"], "gold_documents": [], "prediction": "Ted",
             "document_id": "d", "start": 30, "end": 33, "em": 1.0, "f1": 1.0, "doc_rank": None, "paragraph_rank": None}]
    report = {"gold": "g.jsonl", "kind": "jsonl", "questions": 2, "answerable": 2, "unanswerable": 0,
              "settings": {"mode": "hybrid", "top_k": 5, "reader": "r", "no_answer_threshold": 0.5},
              "retrieval_document": {"questions": 0}, "latency_ms": {},
              "end_to_end": {"em_answerable": 50.0, "f1_answerable": 100.0, "answered_answerable": 1.0, "no_answer_precision": None, "no_answer_recall": None},
              "per_question": rows}
    text = render_report(report, errors=True)
    assert "errors (1):" in text and "- reordered (g.jsonl:1)" in text and "- exact" not in text


def test_jsonl_whose_first_line_mentions_data_is_jsonl(tmp_path):
    f = tmp_path / "gold.jsonl"
    f.write_text('{"id": "data", "question": "Où est le bureau ?", "answers": ["Paris"], "document_ids": []}\n{"id": "b", "question": "Qui ?", "answers": []}\n', encoding="utf-8")
    gold = load_gold(f)
    assert gold.kind == "jsonl" and [i.id for i in gold.items] == ["data", "b"]


def test_squad_ids_are_stable_across_files(tmp_path):
    para = {"context": "Netflix va ouvrir un bureau à Paris.", "qas": [{"id": "q1", "question": "Où ?", "answers": [{"text": "Paris", "answer_start": 29}]}]}
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text(json.dumps({"data": [{"title": "Netflix", "paragraphs": [para]}]}), encoding="utf-8")
    a, b = load_gold(tmp_path / "a.json"), load_gold(tmp_path / "b.json")
    assert a.kind == "squad" and a.documents[0].id == b.documents[0].id
    assert a.items[0].paragraph_id == a.documents[0].id and a.items[0].answers == ["Paris"]


def test_qa_eval_on_a_squad_file_end_to_end(tmp_path):
    data = {"data": [
        {"title": "Netflix", "paragraphs": [{"context": "Netflix va ouvrir un bureau à Paris en 2020. Le bureau emploiera 40 personnes.", "qas": [
            {"id": "q1", "question": "Dans quelle ville Netflix ouvre-t-il un bureau ?", "answers": [{"text": "Paris", "answer_start": 29}]},
            {"id": "q2", "question": "Combien de personnes le bureau emploiera-t-il ?", "answers": [{"text": "40 personnes", "answer_start": 66}]}]}]},
        {"title": "Cuisine", "paragraphs": [{"context": "La quiche lorraine se prépare avec des lardons, des œufs et de la crème.", "qas": [
            {"id": "q3", "question": "Avec quoi prépare-t-on la quiche lorraine ?", "answers": [{"text": "des lardons, des œufs et de la crème", "answer_start": 35}]}]}]},
    ]}
    gold = tmp_path / "mini.json"
    gold.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "reports" / "report.json"
    out.parent.mkdir()
    link = tmp_path / "latest.json"  # a team's "latest report" link: written through, and still a link
    link.symlink_to(out)
    env = {**os.environ, "QA_DATA_DIR": str(tmp_path / "unused")}
    proc = subprocess.run([sys.executable, "-m", "qa.cli", "eval", str(gold), "--out", str(link), "--errors", "--top-k", "3"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and os.listdir(out.parent) == ["report.json"]
    assert "recall@1" in proc.stdout and "reader F1 (gold context)" in proc.stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["questions"] == 3 and report["kind"] == "squad"
    assert report["retrieval_paragraph"]["recall@3"] == 1.0  # three paragraphs, top-3: always found
    for key in ("retrieval_document", "reader_on_gold_context", "end_to_end", "latency_ms", "per_question"):
        assert key in report
    assert not (tmp_path / "unused").exists(), "SQuAD files go to a temporary index"


def test_the_report_is_written_through_links_and_devices_and_nothing_else_is_touched(tmp_path):
    """--out replaced what it named by a new file: a link to the team's report, a device (as root,
    /dev/null itself), a pipe, the file /dev/stdout leads to; and a check deleted the user's "<out>.tmp"."""
    import threading

    from pathlib import Path

    from qa.cli_eval import _in_place, _is_stdout, _report_target, _write_text

    report = tmp_path / "report.json"
    report.write_text("old")
    mine = tmp_path / "report.json.tmp"
    mine.write_text("my notes")
    link = tmp_path / "latest.json"
    link.symlink_to(report)
    _write_text(_report_target(link), "", probe=True)
    _write_text(_report_target(link), "new")
    assert link.is_symlink() and report.read_text() == "new" and mine.read_text() == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.json", "report.json", "report.json.tmp"]

    # `qa eval ... --out /dev/stdout >> log.txt`: the name leads through /proc to the user's log, which
    # is appended to, not replaced by a new file holding the report alone
    log = tmp_path / "log.txt"
    log.write_text("earlier lines\n")
    with open(log, "a") as held:
        through_proc = Path(f"/proc/self/fd/{held.fileno()}")
        _write_text(_report_target(through_proc), "", probe=True)
        _write_text(_report_target(through_proc), "report\n")
    assert log.read_text() == "earlier lines\nreport\n"
    assert _is_stdout(Path("-")) and not _is_stdout(log)
    # only streams, devices and pipes are written in place: a new file under /dev/shm is a file
    assert _in_place(Path("/dev/stderr")) and _in_place(Path("/proc/self/fd/2")) and not _in_place(Path("/dev/shm/report.json"))

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    _write_text(_report_target(fifo), "", probe=True)  # checked without waiting for a reader
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    _write_text(_report_target(fifo), "through the pipe")
    reader.join(timeout=10)
    assert got == ["through the pipe"] and fifo.is_fifo()

    dangling = tmp_path / "new-link.json"
    dangling.symlink_to(tmp_path / "created.json")
    _write_text(_report_target(dangling), "created")
    assert dangling.is_symlink() and (tmp_path / "created.json").read_text() == "created"


def test_qa_eval_bad_gold_is_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "question": "ok ?", "answers": []}\n[1, 2]\n', encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "qa.cli", "eval", str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"error: {bad}:2: expected an object with id, question, answers, document_ids"


def test_qa_eval_checks_what_it_can_before_loading_models(tmp_path):
    """A missing index, a bad mode or an --out folder that does not exist: one line, at once (not
    after the models loaded and every question ran), and no index is created."""
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"id": "a", "question": "Qui ?", "answers": []}\n', encoding="utf-8")
    env = {**os.environ, "QA_DATA_DIR": str(tmp_path / "typo")}
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = [
        (["--data-dir", str(a_file)], f"error: --data-dir {a_file} is a file: it must be a folder (the index is several files)"),
        # distractors would go for good into the index that users and servers read
        (["--corpus", str(gold)], f"error: --corpus goes with a SQuAD gold file, whose paragraphs are indexed for the evaluation; {gold} is JSONL, "
                                  "evaluated on the index as it is: index the distractors there first (`qa index`) if you want them"),
        (["--mode", "foo"], "error: --mode must be hybrid, dense or bm25, got 'foo'"),
        (["--out", str(tmp_path / "nowhere" / "r.json")], f"error: --out {tmp_path / 'nowhere' / 'r.json'}: no such folder {tmp_path / 'nowhere'}"),
        (["--out", str(tmp_path)], f"error: --out {tmp_path}: is a folder; give a file name, such as {tmp_path / 'report.json'}"),
        (["--out", "/proc/r.json"], "error: --out /proc/r.json: cannot write there (No such file or directory)"),
        ([], f"error: no index at {tmp_path / 'typo'}: run `qa index data/articles` first (or set QA_DATA_DIR to your index)"),
    ]
    for extra, message in cases:
        proc = subprocess.run([sys.executable, "-m", "qa.cli", "eval", str(gold), *extra], capture_output=True, text=True, env=env, timeout=300)
        usage = extra[:1] == ["--mode"]  # an option's value: exit 2, as click's own usage errors
        assert proc.returncode == (2 if usage else 1) and proc.stderr.strip() == message, proc.stderr
    assert not (tmp_path / "typo").exists()


def test_gold_document_ids_match_whatever_their_unicode_form(tmp_path, base_settings, embedder):
    """A team's gold file may write "café" decomposed (macOS): the index stores ids in NFC, and
    retrieval must still count the document as found, not as an unknown gold id."""
    from index.schema import Document
    from index.store import IndexStore
    from qa.evaluation import run_eval

    nfc, nfd = "caf\u00e9-gare", "cafe\u0301-gare"
    data = tmp_path / "idx"
    settings = base_settings.model_copy(update={"data_dir": data})
    with IndexStore.open(data, embedder) as store:
        store.add_documents([
            Document(id=nfc, title="Le café de la gare", text="Le café de la gare ouvre à Quimper en 2019. Il emploie douze personnes."),
            Document(id="autre", title="Cuisine", text="La quiche lorraine se prépare avec des lardons, des œufs et de la crème."),
        ])
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"id": "q1", "question": "Où le café de la gare ouvre-t-il ?", "answers": ["Quimper"], "document_ids": [nfd]}) + "\n", encoding="utf-8")
    report = run_eval(settings, gold, data_dir=data)
    assert report["unknown_gold_documents"] == []
    assert report["retrieval_document"]["recall@1"] == 1.0


def test_a_question_as_long_as_the_api_takes_is_kept(tmp_path):
    """The API's limit is on the question stripped: 1,000 characters with spaces around are asked."""
    f = tmp_path / "gold.jsonl"
    f.write_text(json.dumps({"id": "a", "question": "  " + "Qui " * 249 + "quoi\n", "answers": []}) + "\n", encoding="utf-8")
    (item,) = load_gold(f).items
    assert len(item.question.strip()) == 1000


def test_a_file_saved_as_latin1_is_named_with_its_line(tmp_path):
    """It said "not UTF-8 (byte 84)" alone: the line, the byte and what to do."""
    from qa.squad import SquadFormatError, read_squad

    lines = ['{"id": "a", "question": "Qui ?", "answers": []}', '{"id": "b", "question": "Où ?", "answers": []}']
    f = tmp_path / "gold.jsonl"
    f.write_bytes("\ufeff".encode("utf-8") + "\r\n".join(lines).encode("latin-1"))
    with pytest.raises(GoldFormatError, match=r"^.*gold\.jsonl:2: not UTF-8 text \(byte 78 is 0xf9\): save the file as UTF-8$"):
        load_gold(f)
    squad = tmp_path / "squad.json"
    squad.write_bytes(json.dumps({"data": [{"title": "Été", "paragraphs": []}]}, indent=1, ensure_ascii=False).encode("latin-1"))
    with pytest.raises(SquadFormatError, match=r"squad\.json:4: not UTF-8 text \(byte 30 is 0xc9\): save the file as UTF-8"):
        read_squad(squad)


def test_a_pipe_is_not_said_to_be_missing(tmp_path):
    fifo = tmp_path / "gold.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(GoldFormatError, match=r"gold\.jsonl: not a regular file; give a gold file \(JSONL or SQuAD JSON\)"):
        load_gold(fifo)
    with pytest.raises(GoldFormatError, match=r"missing\.jsonl: no such file; give a gold file"):
        load_gold(tmp_path / "missing.jsonl")


def test_a_gold_file_that_cannot_be_read_is_one_line(tmp_path, monkeypatch):
    """No permission to read it (root reads anything: the refusal is simulated) was a traceback."""
    from pathlib import Path

    f = tmp_path / "gold.jsonl"
    f.write_text('{"id": "a", "question": "Qui ?", "answers": []}\n', encoding="utf-8")

    def refused(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refused)
    with pytest.raises(GoldFormatError, match=r"gold\.jsonl: cannot be read \(Permission denied\)$"):
        load_gold(f)


def test_repeated_questions_are_said_where_they_are(tmp_path):
    """A question pasted twice was asked and scored twice, silently: the same words (whatever their
    case and spacing) in JSONL, or over the same paragraph in SQuAD (not over another one)."""
    from qa.evaluation import render_report

    f = tmp_path / "gold.jsonl"
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"id": "a", "question": "Où est le bureau ?", "answers": ["Paris"]}, {"id": "b", "question": "Qui ?", "answers": []},
        {"id": "c", "question": "où  est le bureau ?", "answers": ["Paris"]}, {"id": "d", "question": "Où est le bureau ?", "answers": ["Lyon"]}]) + "\n", encoding="utf-8")
    assert load_gold(f).repeated == [("gold.jsonl:3", "gold.jsonl:1"), ("gold.jsonl:4", "gold.jsonl:1")]
    para = {"context": "Netflix va ouvrir un bureau à Paris.", "qas": [
        {"id": "q1", "question": "Où ?", "answers": [{"text": "Paris", "answer_start": 30}]}, {"id": "q2", "question": "Où ?", "answers": [{"text": "Paris", "answer_start": 30}]}]}
    other = {"context": "La quiche se prépare à Nancy.", "qas": [{"id": "q3", "question": "Où ?", "answers": [{"text": "Nancy", "answer_start": 23}]}]}
    squad = tmp_path / "squad.json"
    squad.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [para, other]}]}), encoding="utf-8")
    assert load_gold(squad).repeated == [("data[0].paragraphs[0].qas[1]", "data[0].paragraphs[0].qas[0]")]

    report = {"gold": "g.jsonl", "kind": "jsonl", "questions": 3, "answerable": 0, "unanswerable": 3,
              "settings": {"mode": "hybrid", "top_k": 5, "reader": "r", "no_answer_threshold": 0.5}, "retrieval_document": {"questions": 0}, "latency_ms": {},
              "end_to_end": {"em_answerable": None, "f1_answerable": None, "answered_answerable": None, "no_answer_precision": None, "no_answer_recall": None, "unanswerable_correct": 3},
              "per_question": [], "repeated_questions": [{"where": "g.jsonl:3", "same_as": "g.jsonl:1"}], "left_out": ["data[0].paragraphs[0].qas[2]"]}
    text = render_report(report)
    assert "warning: 1 question repeats an earlier one and is scored again: g.jsonl:3 (as g.jsonl:1)" in text
    assert "warning: 1 question left out, its answers empty once normalised: data[0].paragraphs[0].qas[2]" in text


def test_only_questions_scored_are_said_to_be_repeats(tmp_path):
    """A SQuAD question left out (its answers empty once normalised) is not scored: a later one with
    the same words is not "scored again", and it is not itself a repeat of one scored."""
    para = {"context": "Netflix va ouvrir un bureau à Paris le 3 mai.", "qas": [
        {"id": "q1", "question": "Où ?", "answers": [{"text": "le", "answer_start": 36}]},
        {"id": "q2", "question": "Où ?", "answers": [{"text": "Paris", "answer_start": 30}]},
        {"id": "q3", "question": "Où ?", "answers": [{"text": "le", "answer_start": 36}]},
        {"id": "q4", "question": "Où ?", "answers": [{"text": "Paris", "answer_start": 30}]}]}
    squad = tmp_path / "squad.json"
    squad.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [para]}]}), encoding="utf-8")
    gold = load_gold(squad)
    assert gold.left_out == ["data[0].paragraphs[0].qas[0]", "data[0].paragraphs[0].qas[2]"]
    assert gold.repeated == [("data[0].paragraphs[0].qas[3]", "data[0].paragraphs[0].qas[1]")]


def test_a_repeat_past_the_limit_is_not_reported(tmp_path, base_settings, embedder):
    """--limit 2 asks the first two questions: a third that repeats the first is not "scored again"."""
    from index.schema import Document
    from index.store import IndexStore
    from qa.evaluation import run_eval

    data = tmp_path / "idx"
    with IndexStore.open(data, embedder) as store:
        store.add_documents([Document(id="gare", title="Le café de la gare", text="Le café de la gare ouvre à Quimper en 2019.")])
    gold = tmp_path / "gold.jsonl"
    gold.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"id": "a", "question": "Où le café ouvre-t-il ?", "answers": ["Quimper"]}, {"id": "b", "question": "Quand ?", "answers": ["2019"]},
        {"id": "c", "question": "Où le café ouvre-t-il ?", "answers": ["Quimper"]}]) + "\n", encoding="utf-8")
    settings = base_settings.model_copy(update={"data_dir": data})
    assert run_eval(settings, gold, data_dir=data, limit=2)["repeated_questions"] == []
    assert run_eval(settings, gold, data_dir=data)["repeated_questions"] == [{"where": "gold.jsonl:3", "same_as": "gold.jsonl:1"}]


def test_squad_questions_left_out_are_kept_in_the_gold_set(tmp_path):
    qas = [{"id": "ok", "question": "Où ?", "answers": [{"text": "Paris", "answer_start": 0}]},
           {"id": "empty", "question": "Qui ?", "answers": [{"text": "le", "answer_start": 7}]}]
    f = tmp_path / "squad.json"
    f.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [{"context": "Paris, le 3 mai.", "qas": qas}]}]}), encoding="utf-8")
    gold = load_gold(f)
    assert [i.id for i in gold.items] == ["ok"] and gold.left_out == ["data[0].paragraphs[0].qas[1]"]


def test_squad_paragraphs_never_go_into_an_index_of_other_documents(tmp_path, base_settings, embedder):
    """`--data-dir` naming a team's index (or QA_DATA_DIR itself) added the SQuAD paragraphs, and the
    --corpus distractors, to it for good; an index qa eval made before is reused."""
    from index.schema import Document
    from index.store import DocumentCatalog, IndexStore
    from qa.evaluation import EvalSetupError, paragraph_id, run_eval

    squad = tmp_path / "squad.json"
    squad.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [{"context": "Netflix va ouvrir un bureau à Paris.", "qas": [
        {"id": "q1", "question": "Où ?", "answers": [{"text": "Paris", "answer_start": 30}]}]}]}]}), encoding="utf-8")
    team = tmp_path / "team"
    with IndexStore.open(team, embedder) as store:
        store.add_documents([Document(id="netflix", title="Netflix", text="Netflix va ouvrir un bureau à Paris en 2020.")])
    settings = base_settings.model_copy(update={"data_dir": team})
    with pytest.raises(EvalSetupError, match=r"--data-dir .*team holds an index of other documents \(1 document, such as 'netflix'\): qa eval would add the paragraphs of squad.json to it for good"):
        run_eval(settings, squad, data_dir=team, corpus=[squad])
    catalog = DocumentCatalog(team)
    assert [d.id for d in catalog.list_documents()[0]] == ["netflix"]
    catalog.close()

    earlier = tmp_path / "earlier"
    with IndexStore.open(earlier, embedder) as store:
        store.add_documents([Document(id=paragraph_id("T", "La quiche se prépare à Nancy."), title="T", text="La quiche se prépare à Nancy.")])
    from qa.evaluation import _other_documents

    assert _other_documents(earlier) == (0, []) and _other_documents(tmp_path / "none") == (0, [])


def test_an_unknown_gold_id_is_named_with_its_lines_and_the_id_it_likely_means(tmp_path, embedder):
    """A team that wrote a file's name ("cr-reunion.txt") or another case ("KB-101") as a gold id was
    told only "1 gold document id is not in the index: cr-reunion.txt": not on which line, nor that
    the index holds 'cr-reunion'. Its questions silently counted as retrieval misses."""
    from index.catalog import meant_document_id
    from index.ingest import SUPPORTED_SUFFIXES
    from index.schema import Document
    from index.store import DocumentCatalog, IndexStore
    from qa.evaluation import GoldItem, _unknown_document, render_report

    team = tmp_path / "team"
    with IndexStore.open(team, embedder) as store:
        store.add_documents([Document(id=i, title=t, text=f"{t} : le siège est à Lyon.") for i, t in
                             (("cr-reunion", "Compte rendu"), ("kb-101", "Notes de frais"), ("kb-1010", "Parking"), ("Été-2024", "Congés"))])
        assert meant_document_id(store.list_documents, "cr-reunion.txt", SUPPORTED_SUFFIXES) == "cr-reunion"
    catalog = DocumentCatalog(team)
    meant = {d: meant_document_id(catalog.list_documents, d, SUPPORTED_SUFFIXES) for d in
             ("cr-reunion.txt", "cr-reunion.PDF", "KB-101", "kb_101", "ete-2024.md", "cr-reunion.xlsx", "kb-10", "nope", "...")}
    catalog.close()
    assert meant == {"cr-reunion.txt": "cr-reunion", "cr-reunion.PDF": "cr-reunion", "KB-101": "kb-101", "kb_101": "kb-101",
                     "ete-2024.md": "Été-2024", "cr-reunion.xlsx": None, "kb-10": None, "nope": None, "...": None}

    items = [GoldItem("a", "Qui ?", ["x"], ["cr-reunion.txt"], where="gold.jsonl:3"), GoldItem("b", "Où ?", ["y"], ["nope", "cr-reunion.txt"], where="gold.jsonl:7")]
    catalog = DocumentCatalog(team)
    details = [_unknown_document(catalog.list_documents, d, items) for d in ("cr-reunion.txt", "nope")]
    catalog.close()
    assert details == [{"id": "cr-reunion.txt", "where": ["gold.jsonl:3", "gold.jsonl:7"], "did_you_mean": "cr-reunion"},
                       {"id": "nope", "where": ["gold.jsonl:7"], "did_you_mean": None}]
    report = {"gold": "gold.jsonl", "questions": 2, "answerable": 2, "unanswerable": 0, "settings": {"mode": "hybrid", "top_k": 5, "reader": "r", "no_answer_threshold": 0.1},
              "retrieval_document": {"questions": 2}, "end_to_end": {"em_answerable": None, "f1_answerable": None, "answered_answerable": None,
                                                                   "no_answer_precision": None, "no_answer_recall": None},
              "latency_ms": {}, "per_question": [], "unknown_gold_documents": ["cr-reunion.txt", "nope"], "unknown_gold_document_details": details}
    assert ("warning: 2 gold document ids are not in the index: 'cr-reunion.txt' (gold.jsonl:3, gold.jsonl:7; did you mean 'cr-reunion'?), "
            "'nope' (gold.jsonl:7)") in render_report(report)
    assert render_report(report).startswith("gold: gold.jsonl (2 questions: 2 answerable, 0 unanswerable)\n")
    one = {**report, "questions": 1, "answerable": 1}  # a set of one question said "1 questions"
    assert render_report(one).startswith("gold: gold.jsonl (1 question: 1 answerable, 0 unanswerable)\n")


def test_a_jsonl_gold_set_reads_the_index_data_dir_names(tmp_path):
    """--data-dir with a JSONL gold file is the index read, instead of QA_DATA_DIR (--help and README say so)."""
    from typer.testing import CliRunner

    from qa.cli import app

    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"id": "a", "question": "Qui ?", "answers": []}\n', encoding="utf-8")
    (tmp_path / "empty").mkdir()
    res = CliRunner().invoke(app, ["eval", str(gold), "--data-dir", str(tmp_path / "empty")], env={"QA_DATA_DIR": str(tmp_path / "unused")})
    assert res.exit_code == 1 and res.stderr.startswith(f"error: no index at {tmp_path / 'empty'}:"), res.stderr
    assert not (tmp_path / "unused").exists() and not any((tmp_path / "empty").iterdir())


def test_qa_eval_advice_names_data_dir_when_it_was_given(tmp_path):
    """An index in --data-dir that qa eval cannot read said to "set QA_DATA_DIR", which the user had
    not used: what to do names --data-dir. Without it, QA_DATA_DIR's index is said as before."""
    from typer.testing import CliRunner

    from qa.cli import app

    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"id": "a", "question": "Qui ?", "answers": []}\n', encoding="utf-8")
    squad = tmp_path / "squad.json"
    squad.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [{"context": "Paris.", "qas": [{"id": "1", "question": "Où ?", "answers": []}]}]}]}), encoding="utf-8")
    from tests.store_support import newer_index

    newer = newer_index(tmp_path / "newer")
    problem = f"the index at {newer} was written by a newer qa-search (schema version 99; this one reads version 1): use it with that newer qa-search, or "
    env = {"QA_DATA_DIR": str(tmp_path / "unused")}
    for gold_file in (gold, squad):  # the index read, or the one the paragraphs go into
        res = CliRunner().invoke(app, ["eval", str(gold_file), "--data-dir", str(newer)], env=env)
        assert res.exit_code == 1 and res.stderr.strip() == f"error: {problem}give --data-dir a new folder and index your documents again", res.stderr
    res = CliRunner().invoke(app, ["eval", str(gold)], env={"QA_DATA_DIR": str(newer)})
    assert res.exit_code == 1 and res.stderr.strip() == f"error: {problem}set QA_DATA_DIR to a new folder and index your documents again", res.stderr
    missing = tmp_path / "missing"
    res = CliRunner().invoke(app, ["eval", str(gold), "--data-dir", str(missing)], env=env)
    assert res.exit_code == 1 and res.stderr.strip() == f"error: no index at {missing}: give --data-dir the folder of your index, or leave it out to read QA_DATA_DIR's", res.stderr
    assert not (tmp_path / "unused").exists() and not missing.exists()


def test_qa_eval_says_which_folder_failed(tmp_path, monkeypatch):
    """A --data-dir that cannot be written, or that fails while the paragraphs are indexed, was a
    traceback, or a line naming QA_DATA_DIR, which was not used."""
    import errno

    from typer.testing import CliRunner

    import qa.cli_eval
    import qa.evaluation
    from qa.cli import app

    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"id": "a", "question": "Qui ?", "answers": []}\n', encoding="utf-8")
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir()
    env = {"QA_DATA_DIR": str(tmp_path / "unused")}
    res = CliRunner().invoke(app, ["eval", str(gold), "--data-dir", str(a_file / "idx")], env=env)
    assert res.exit_code == 1 and res.stderr.strip() == f"error: --data-dir {a_file / 'idx'} cannot be created: {a_file} is not a folder; give a writable folder"
    real_access = os.access
    # a read-only mount (root may write anywhere else)
    monkeypatch.setattr(qa.cli_eval.os, "access", lambda p, mode: False if str(p).startswith(str(locked)) and mode & os.W_OK else real_access(p, mode))
    for data_dir, message in [(locked, f"--data-dir {locked} is not writable"), (locked / "idx", f"--data-dir {locked / 'idx'} cannot be created: {locked} is not writable")]:
        res = CliRunner().invoke(app, ["eval", str(gold), "--data-dir", str(data_dir)], env=env)
        assert res.exit_code == 1 and res.stderr.startswith(f"error: {message}"), res.stderr
    monkeypatch.undo()

    def full_disk(settings, gold_path, data_dir=None, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(data_dir / "index.sqlite3"))

    monkeypatch.setattr(qa.evaluation, "run_eval", full_disk)
    res = CliRunner().invoke(app, ["eval", str(gold), "--data-dir", str(tmp_path / "idx")], env=env)
    assert res.exit_code == 1 and not isinstance(res.exception, OSError), res.exception  # a traceback
    assert res.stderr.startswith(f"error: cannot use the index in {tmp_path / 'idx'}: the folder is full"), res.stderr


def test_an_index_of_another_model_names_data_dir_when_it_was_given(tmp_path, embedder):
    """An index in --data-dir built with another embedding model said to "point QA_DATA_DIR
    elsewhere", which the user had not used: it names --data-dir, and QA_DATA_DIR without it."""
    from typer.testing import CliRunner

    from index.store import IndexStore
    from qa.cli import app
    from tests.test_store import OtherEmbedder, synth_docs

    other = tmp_path / "other"
    with IndexStore.open(other, OtherEmbedder(embedder)) as store:
        store.add_documents(synth_docs(2))
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"id": "a", "question": "Qui ?", "answers": []}\n', encoding="utf-8")
    problem = f"index at {other} was built with other-model:8; you configured {embedder.identity}: re-index with "
    res = CliRunner().invoke(app, ["eval", str(gold), "--data-dir", str(other)], env={"QA_DATA_DIR": str(tmp_path / "unused")})
    assert res.exit_code == 1, res.stderr
    assert res.stderr.strip() == f"error: {problem}`QA_DATA_DIR={other} qa index --rebuild ...` or give --data-dir another folder", res.stderr
    res = CliRunner().invoke(app, ["eval", str(gold)], env={"QA_DATA_DIR": str(other)})
    assert res.exit_code == 1 and res.stderr.strip() == f"error: {problem}`qa index --rebuild ...` or set QA_DATA_DIR to another folder", res.stderr


def test_the_rebuild_advice_for_a_data_dir_sets_qa_data_dir_to_it(tmp_path, embedder):
    """`qa index` writes to QA_DATA_DIR only, so "re-index with `qa index --rebuild ...`" under
    `qa eval --data-dir DIR` rebuilt another folder than DIR: the advice sets QA_DATA_DIR to DIR
    (quoted for the shell)."""
    import shlex

    from typer.testing import CliRunner

    from index.store import IndexStore
    from qa.cli import app
    from tests.test_store import OtherEmbedder, synth_docs

    other = tmp_path / "index of l'autre"
    with IndexStore.open(other, OtherEmbedder(embedder)) as store:
        store.add_documents(synth_docs(2))
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"id": "a", "question": "Qui ?", "answers": []}\n', encoding="utf-8")
    res = CliRunner().invoke(app, ["eval", str(gold), "--data-dir", str(other)], env={"QA_DATA_DIR": str(tmp_path / "unused")})
    assert res.exit_code == 1, res.stderr
    advice = res.stderr.split("re-index with `", 1)[1].split("`", 1)[0]
    assert advice == f"QA_DATA_DIR={shlex.quote(str(other))} qa index --rebuild ...", res.stderr
    words = shlex.split(advice)
    assert words[0] == f"QA_DATA_DIR={other}" and words[1:4] == ["qa", "index", "--rebuild"]
