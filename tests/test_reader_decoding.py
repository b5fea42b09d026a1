"""Span decoding on tiny models built here (real tokenizer): offsets, question, length, windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qa.reader import Reader, ReadStopped
from qa.spans import best_spans, context_token_mask, only_function_words, paragraph_ids, trim_span, window_spans, word_edge_masks


@pytest.fixture(scope="module")
def tokenizer(embedder):
    return embedder.tokenizer


class MarkerQA(torch.nn.Module):
    """Start logit high on the marker token, end logit high on the token after it: a known answer."""

    def __init__(self, marker_id: int):
        super().__init__()
        self.marker_id = marker_id

    def forward(self, input_ids, attention_mask=None):
        hit = (input_ids == self.marker_id).float()
        start = hit * 10.0 - 1.0
        end = torch.roll(hit, 1, dims=1) * 10.0 - 1.0
        start[:, 0] = end[:, 0] = 0.0  # "no answer" logit
        return type("Out", (), {"start_logits": start, "end_logits": end})()


def tiny_random_qa(vocab_size: int):
    from transformers import BertConfig, BertForQuestionAnswering

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)
    return BertForQuestionAnswering(cfg)


def long_passage() -> str:
    parts = [f"Le paragraphe {i} parle de séries, de cinéma et d’abonnés à Paris ; il compte 3,5 idées." for i in range(40)]
    return " ".join(parts)


def cuts_a_word(text: str, i: int) -> bool:
    return 0 < i < len(text) and text[i - 1].isalnum() and text[i].isalnum()


def test_random_model_offsets_always_valid(tokenizer):
    model = tiny_random_qa(len(tokenizer))
    reader = Reader.from_model(model, tokenizer, max_length=64, stride=16, max_answer_tokens=5)
    question = "Quelle question très particulière poser ici ?"
    passages = [long_passage(), "Court texte : «\u00a0Stranger Things\u00a0» 🎬 débarque.\r\nFin.", "Netflix investit 7 milliards de dollars."]
    spans = reader.read(question, passages, n_best=5)
    assert len(spans) == len(passages)
    for text, found in zip(passages, spans):
        assert found, "every passage yields candidates"
        for s in found:
            assert 0 <= s.start < s.end <= len(text)
            assert text[s.start : s.end] == s.text
            assert 0.0 <= s.score <= 1.0
            assert not cuts_a_word(text, s.start) and not cuts_a_word(text, s.end), s.text
            # max length respected (a little slack: a span re-tokenised alone can merge pieces differently)
            assert len(tokenizer(s.text, add_special_tokens=False)["input_ids"]) <= 5 + 1


def test_best_spans_never_cross_the_question_and_respect_max_length(tokenizer):
    enc = tokenizer("Qui dirige Netflix ?", "Ted Sarandos dirige le contenu de Netflix depuis Los Gatos.", return_offsets_mapping=True)
    seq = enc.sequence_ids()
    offsets = enc["offset_mapping"]
    allowed = context_token_mask(seq, offsets)
    n = len(enc["input_ids"])
    rng = np.random.default_rng(1)
    start, end = rng.normal(size=n), rng.normal(size=n)
    q_tokens = [i for i, s in enumerate(seq) if s == 0]
    start[q_tokens] += 100.0  # the model "wants" the question: never allowed
    end[q_tokens] += 100.0
    cands = best_spans(start, end, offsets, allowed, max_answer_tokens=3, n_best=50)
    assert cands
    for c in cands:
        assert seq[c.start_token] == 1 and seq[c.end_token] == 1
        assert c.start_token <= c.end_token and c.end_token - c.start_token + 1 <= 3


def test_length_penalty_prefers_the_shorter_of_two_close_spans():
    # token 1 starts both spans; token 2 ends a 2-token span, token 5 a 5-token span slightly better
    offsets = [(0, 0)] + [(i * 4, i * 4 + 3) for i in range(6)] + [(0, 0)]
    allowed = np.array([False] + [True] * 6 + [False])
    start = np.full(8, -10.0)
    end = np.full(8, -10.0)
    start[1] = 5.0
    end[2], end[5] = 4.0, 4.1
    plain = best_spans(start, end, offsets, allowed, max_answer_tokens=10, n_best=2)
    assert (plain[0].start_token, plain[0].end_token) == (1, 5)
    penalised = best_spans(start, end, offsets, allowed, max_answer_tokens=10, n_best=2, length_penalty=0.05)
    assert (penalised[0].start_token, penalised[0].end_token) == (1, 2)
    # the penalty is part of the span's logit, so margins and calibrated scores include it
    assert penalised[0].logit == pytest.approx(9.0 - 0.05 * 2)
    assert penalised[0].margin == pytest.approx(penalised[0].logit - (start[0] + end[0]))


def test_windows_are_stitched_and_offsets_map_to_the_passage(tokenizer):
    marker = "Zanzibar"
    marker_id = tokenizer(marker, add_special_tokens=False)["input_ids"][0]
    filler = long_passage()
    text = filler + " La réponse est Zanzibar Express, bien après la première fenêtre."
    reader = Reader.from_model(MarkerQA(marker_id), tokenizer, max_length=64, stride=16)
    (spans,) = reader.read("Où est la réponse ?", [text], n_best=3)
    best = spans[0]
    assert best.text == text[best.start : best.end]
    assert best.start == text.index(marker)
    assert best.start > 1000  # found in a late window, offsets relative to the whole passage
    # the same span seen by two overlapping windows comes out once
    assert len({(s.start, s.end) for s in spans}) == len(spans)


def test_a_read_told_to_stop_stops_between_batches(tokenizer):
    """``stop`` is asked before each batch of windows: a caller that went away costs one batch more."""
    text = long_passage()
    batches = []

    class CountingQA(MarkerQA):
        def forward(self, input_ids, attention_mask=None):
            batches.append(len(input_ids))
            return super().forward(input_ids, attention_mask)

    reader = Reader.from_model(CountingQA(-1), tokenizer, max_length=64, stride=16, batch_size=4)
    reader.read("Où ?", [text])
    assert sum(batches) > 8  # several batches to stop between
    assert reader.count_tokens(text) > 3 * 64
    batches.clear()
    with pytest.raises(ReadStopped, match=r"stopped after 8 of \d+ windows"):
        reader.read("Où ?", [text], stop=lambda: len(batches) == 2)
    assert batches == [4, 4]


def test_a_read_told_to_stop_stops_inside_a_batch_between_layers(tokenizer):
    """A transformer's blocks ask ``stop`` too: a batch of 16 windows is seconds of CPU, a caller
    that went away (or a server shutting down) now waits for one layer of it, not the whole batch."""
    model = tiny_random_qa(len(tokenizer))
    ran: list[int] = []
    for i, layer in enumerate(model.bert.encoder.layer):
        layer.register_forward_hook(lambda module, args, out, i=i: ran.append(i))
    reader = Reader.from_model(model, tokenizer, max_length=64, stride=16, batch_size=4)
    reader.read("Où ?", [long_passage()])
    assert len(ran) > 2 * 2  # several batches of two layers
    ran.clear()
    with pytest.raises(ReadStopped, match=r"stopped after 0 of \d+ windows"):
        reader.read("Où ?", [long_passage()], stop=lambda: len(ran) == 1)
    assert ran == [0], "the second layer of the first batch never ran"
    ran.clear()
    assert reader.read("Où ?", ["Netflix investit 7 milliards."]) and ran == [0, 1], "a read with no stop afterwards is whole"


def test_a_model_wrapped_again_keeps_one_stop_hook_and_can_be_copied(tokenizer):
    """Reader.from_model on a model already wrapped (a notebook, a test) added hooks again: each read
    asked every earlier reader's stop too, and the hooks kept those readers alive. And the hooks held
    the reader, whose lock and thread-local cannot be copied: the model could no longer be copied or
    pickled (quantize_dynamic copies it: bench/reader_bench.py failed so)."""
    import copy
    import gc
    import weakref

    model = tiny_random_qa(len(tokenizer))
    first = Reader.from_model(model, tokenizer, max_length=64, stride=16, batch_size=4)
    gone = weakref.ref(first)
    del first
    reader = Reader.from_model(model, tokenizer, max_length=64, stride=16, batch_size=4)
    gc.collect()
    assert gone() is None, "the hooks kept the first reader alive"
    assert [len(layer._forward_pre_hooks) for layer in model.bert.encoder.layer] == [1, 1]
    calls: list[int] = []
    with pytest.raises(ReadStopped, match=r"stopped after 0 of \d+ windows"):
        reader.read("Où ?", [long_passage()], stop=lambda: bool(calls.append(1)) or len(calls) == 2)
    assert len(calls) == 2  # before the batch, then before the first layer: once each
    from qa.reader import quantize_linear_layers

    twin = quantize_linear_layers(model, "attention")  # a copy (bench/reader_bench.py quantises a reader's model so)
    assert twin is not model and copy.deepcopy(twin) is not None
    assert Reader.from_model(twin, tokenizer, max_length=64, stride=16).read("Où ?", ["Netflix investit 7 milliards."])
    assert [len(layer._forward_pre_hooks) for layer in twin.bert.encoder.layer] == [1, 1]


def test_trim_span_cleans_edges():
    for raw, want in [("1624.", "1624"), ("(30 000 hommes", "30 000 hommes"), (" 2006, ", "2006"), ("etc.", "etc."), ("(a)", "(a)")]:
        s, e = trim_span(raw, 0, len(raw))
        assert raw[s:e] == want


def test_trim_span_drops_invisible_edges_and_keeps_accents():
    for raw, want in [("\u200bAmsterdam", "Amsterdam"), ("\ufeffNantes ", "Nantes"), ("\x01Lille\u00ad", "Lille"), ("\u202f3,5 %\u2060", "3,5 %")]:
        s, e = trim_span(raw, 0, len(raw))
        assert raw[s:e] == want, (raw, raw[s:e])
    text = "fondée par Rene\u0301, qui"
    s, e = trim_span(text, text.index("Rene"), text.index("Rene") + 4)  # the tokenizer's offsets of "René"
    assert text[s:e] == "Rene\u0301"
    s, e = trim_span(text, text.index("\u0301"), len(text))  # a span starting on the accent takes its letter
    assert text[s:e] == "e\u0301, qui"
    assert trim_span(" \u0301x", 0, 3) == (1, 3)  # a lone accent after a space: left as it is, no endless loop


def test_decomposed_accents_stay_in_the_answer(tokenizer):
    """A decomposed "é" ("e" + U+0301) is one token whose offsets cover the "e" only."""
    marker = tokenizer("Xavier", add_special_tokens=False)["input_ids"][-1]
    reader = Reader.from_model(MarkerQA(marker), tokenizer, max_length=64, stride=16)
    text = "Le studio appartient à Xavier Andre\u0301 depuis 1990."
    (spans,) = reader.read("À qui appartient le studio ?", [text], n_best=1)
    assert spans[0].text == "Xavier Andre\u0301" == text[spans[0].start : spans[0].end]
    assert only_function_words("a\u0300")  # a decomposed "à" is still a function word


def test_spans_of_function_words_alone_are_never_answers(tokenizer):
    for text in ("à", "de la", "l'", "d’", "Le", "à la"):
        assert only_function_words(text), text
    for text in ("Paris", "à Paris", "un", "aucune", "peu", "été", "2018", "", "..."):
        assert not only_function_words(text), text
    # the model's favourite span is "à": it is skipped, "Paris" comes first
    a_id = tokenizer("à", add_special_tokens=False)["input_ids"][-1]
    reader = Reader.from_model(MarkerQA(a_id), tokenizer, max_length=64, stride=16)
    text = "Netflix va ouvrir un bureau à Paris."
    (spans,) = reader.read("Où Netflix ouvre-t-il un bureau ?", [text], n_best=5)
    assert spans and all(not only_function_words(s.text) for s in spans)
    assert spans[0].text == "à Paris"


class LengthCheckingQA(MarkerQA):
    """Fails like BERT does on a window longer than the reader's max_length."""

    def __init__(self, marker_id: int, max_length: int):
        super().__init__(marker_id)
        self.max_length = max_length

    def forward(self, input_ids, attention_mask=None):
        if input_ids.shape[1] > self.max_length:
            raise RuntimeError(f"window of {input_ids.shape[1]} tokens")
        return super().forward(input_ids, attention_mask)


def test_concurrent_reads_keep_their_windows(tokenizer):
    """The API reads from several threads with one tokenizer, whose truncation setting lives on the
    shared backend: a question encoded (untruncated) in one thread must not leave another thread's
    passage unsplit."""
    import threading

    reader = Reader.from_model(LengthCheckingQA(-1, 64), tokenizer, max_length=64, stride=16)
    errors: list[BaseException] = []

    def work(fn):
        try:
            for _ in range(60):
                fn()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(lambda: reader.read("Où est la réponse ?", [long_passage()]),)),
        threading.Thread(target=work, args=(lambda: [reader._question("Une question " * 20) for _ in range(20)],)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


class SegmentRecordingQA(MarkerQA):
    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        self.token_type_ids = token_type_ids
        return super().forward(input_ids, attention_mask)


class SegmentTokenizer:
    """A BERT-style tokenizer (segment ids: 0 for the question, 1 for the passage) around the real one."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def __call__(self, *args, **kwargs):
        enc = self._inner(*args, **kwargs)
        if len(args) == 2:
            enc["token_type_ids"] = [[1 if s == 1 else 0 for s in enc.sequence_ids(i)] for i in range(len(enc["input_ids"]))]
        return enc


def test_segment_ids_reach_models_that_use_them(tokenizer):
    model = SegmentRecordingQA(-1)
    reader = Reader.from_model(model, SegmentTokenizer(tokenizer), max_length=64, stride=16)
    reader.read("Qui dirige Netflix ?", ["Ted Sarandos dirige le contenu."])
    types = model.token_type_ids
    assert types is not None and types[0, 0] == 0 and types[0].max() == 1


def test_spans_never_start_or_end_inside_a_word(tokenizer):
    """Sub-word tokens, and windows of a long passage that begin mid-word, used to give fragments
    such as "Jean-Ba" for "Jean-Baptiste Dupuis"; the masks keep starts and ends on word edges."""
    text = "anticonstitutionnellement Jean-Baptiste Dupuis"
    enc = tokenizer("Qui ?", text, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    allowed = context_token_mask(enc.sequence_ids(), offsets)
    starts, ends = word_edge_masks(text, offsets, allowed)
    assert starts.sum() < allowed.sum() and ends.sum() < allowed.sum()  # the long word is several tokens
    for i in np.flatnonzero(starts):
        assert not cuts_a_word(text, offsets[i][0])
    for i in np.flatnonzero(ends):
        assert not cuts_a_word(text, offsets[i][1])
    # the best start and end logits sit inside words: the best span allowed still reads whole words
    start_logits = np.zeros(len(offsets))
    end_logits = np.zeros(len(offsets))
    inner = [i for i in np.flatnonzero(allowed) if cuts_a_word(text, offsets[i][1])]
    end_logits[inner] = 9.0
    start_logits[[i for i in np.flatnonzero(allowed) if cuts_a_word(text, offsets[i][0])]] = 9.0
    (best,) = best_spans(start_logits, end_logits, offsets, starts, n_best=1, end_allowed=ends)
    assert not cuts_a_word(text, best.start_char) and not cuts_a_word(text, best.end_char)
    # a soft hyphen joins, and so does a separator between digits: "Le co" and "2." are fragments too
    for text, cut in (("Le co\u00adfondateur", "Le co".__len__()), ("Il y a 2.905 titres et 3,5 millions", "Il y a 2".__len__())):
        enc = tokenizer("Qui ?", text, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        starts, ends = word_edge_masks(text, offsets, context_token_mask(enc.sequence_ids(), offsets))
        assert all(offsets[i][1] not in (cut, cut + 1) for i in np.flatnonzero(ends)), text
        assert all(offsets[i][0] not in (cut, cut + 1) for i in np.flatnonzero(starts)), text



def test_spans_never_cross_a_paragraph_break(tokenizer):
    """A heading, a paragraph and a table row of a Word file are blocks apart, a blank line between:
    the reader ran from one into the next ("Plafonds de remboursement Poste | Paris | Province Hôtel").
    A line break alone (hard-wrapped text) is inside a paragraph and may be crossed."""
    def spans(text: str, first: str, last: str):
        enc = tokenizer("Quel plafond ?", text, return_offsets_mapping=True)
        offsets, seq = enc["offset_mapping"], enc.sequence_ids()
        start_logits, end_logits = np.zeros(len(offsets)), np.zeros(len(offsets))
        a, b = text.index(first), text.index(last) + len(last)
        start_logits[[i for i, (s, e) in enumerate(offsets) if seq[i] == 1 and s == a]] = 9.0
        end_logits[[i for i, (s, e) in enumerate(offsets) if seq[i] == 1 and e == b]] = 9.0
        # as the reader serves them: trimmed of the spaces a token may carry
        return [text[slice(*trim_span(text, c.start_char, c.end_char))] for c in window_spans(text, offsets, seq, start_logits, end_logits, n_best=20)]

    text = "Plafonds de remboursement\n\nHôtel à Paris : 150 euros\n \nRepas : 20 euros"
    got = spans(text, "Plafonds", "150 euros")
    assert got and all("\n" not in g for g in got)  # the best logits cross a break: never served
    assert "Hôtel à Paris : 150 euros" in spans(text, "Hôtel", "150 euros")
    wrapped = "Le budget de Netflix atteint\n8 milliards de dollars en 2018."
    assert spans(wrapped, "Le budget", "8 milliards")[0] == "Le budget de Netflix atteint\n8 milliards"
    # a blank line made of spaces or tabs is a break too; each token numbered by the breaks before it
    assert paragraph_ids("a\n\t\nb c\n\nd", [(0, 1), (4, 5), (6, 7), (9, 10)]).tolist() == [0, 1, 1, 2]
    assert paragraph_ids("a b", [(0, 1), (2, 3)]).tolist() == [0, 0]
