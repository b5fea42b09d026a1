"""Span decoding on tiny models built here (real tokenizer): offsets, question, length, windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qa.reader import Reader
from qa.spans import best_spans, context_token_mask, trim_span


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


def test_trim_span_cleans_edges():
    for raw, want in [("1624.", "1624"), ("(30 000 hommes", "30 000 hommes"), (" 2006, ", "2006"), ("etc.", "etc."), ("(a)", "(a)")]:
        s, e = trim_span(raw, 0, len(raw))
        assert raw[s:e] == want
