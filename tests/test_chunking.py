"""Sentence splitting (pure) and chunking with the embedder's tokenizer: offsets are exact, sizes bounded."""

from __future__ import annotations

import pytest

from index.chunking import chunk_document, chunk_id, chunk_spans, token_budget
from index.ingest import load_documents
from index.schema import Document
from index.text import analyze, fold, join_thousands, sentence_spans, split_sentences

from pathlib import Path

ARTICLES = Path(__file__).resolve().parents[1] / "data" / "articles"

# ---------------------------------------------------------------------------------- sentence splitter


def test_no_cut_after_civil_titles_and_etc():
    text = "M. Sarandos a parlé avec Mme Durand et Mlle Roux, etc. et tout le monde a applaudi. Puis Dr Watson est arrivé."
    assert split_sentences(text) == [
        "M. Sarandos a parlé avec Mme Durand et Mlle Roux, etc. et tout le monde a applaudi.",
        "Puis Dr Watson est arrivé.",
    ]


def test_no_cut_inside_numbers():
    text = "Il y a environ 3,5 millions d'abonnés. Le catalogue compte 2.905 titres en septembre. Fin."
    assert split_sentences(text) == ["Il y a environ 3,5 millions d'abonnés.", "Le catalogue compte 2.905 titres en septembre.", "Fin."]


def test_no_cut_after_initials():
    text = "J. R. R. Tolkien a écrit Le Seigneur des anneaux. Il est né en 1892 avant J.-C. Non, en 1892."
    sents = split_sentences(text)
    assert sents[0] == "J. R. R. Tolkien a écrit Le Seigneur des anneaux."
    assert "J. R. R." in sents[0]


def test_no_cut_inside_guillemets():
    text = "« Nous n’allons pas simplement mettre une personne dans un bureau. Nous cherchons à développer nos relations. Ce sera ouvert. » a déclaré M. Sarandos. Netflix compte 21 bureaux."
    assert split_sentences(text) == [
        "« Nous n’allons pas simplement mettre une personne dans un bureau. Nous cherchons à développer nos relations. Ce sera ouvert. » a déclaré M. Sarandos.",
        "Netflix compte 21 bureaux.",
    ]


def test_cut_after_closing_guillemet_and_questions():
    text = "Il a dit « c'est fini. » Le lendemain, tout a repris. Pourquoi la France ? Il faut rappeler les faits ! Voilà…  Ensuite."
    assert split_sentences(text) == ["Il a dit « c'est fini. »", "Le lendemain, tout a repris.", "Pourquoi la France ?", "Il faut rappeler les faits !", "Voilà…", "Ensuite."]


def test_lines_and_paragraphs_end_sentences_and_spans_are_trimmed():
    text = "  ## Titre\r\n\r\nPremier paragraphe sans point\n\n\u00a0Deuxième.\u00a0 "
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == ["## Titre", "Premier paragraphe sans point", "Deuxième."]
    for s, e in spans:
        assert not text[s].isspace() and not text[e - 1].isspace()


def test_spans_cover_every_non_space_character_of_the_seed_articles():
    for path in sorted(ARTICLES.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        covered = [False] * len(text)
        last_end = -1
        for s, e in sentence_spans(text):
            assert s >= last_end, "spans are ordered and disjoint"
            last_end = e
            for i in range(s, e):
                covered[i] = True
        assert all(covered[i] or text[i].isspace() for i in range(len(text))), path.name


def test_lowercase_after_period_does_not_cut():
    assert split_sentences("Il est arrivé vers 10 h. environ et il est reparti.") == ["Il est arrivé vers 10 h. environ et il est reparti."]


# ----------------------------------------------------------------------------------------- analyser


def test_french_analyser():
    assert fold("Événement Œuvre où") == "evenement oeuvre ou"
    terms = analyze("L'équipe d’Amazon qu'il aime : les séries créées en 2018 pour 3,5 millions d'euros")
    assert "equip" in terms and "amazon" in terms and "2018" in terms and "3,5" in terms
    assert not {"l", "d", "qu", "il", "les", "en", "pour"} & set(terms)
    # accents folded and stemmed alike, with or without accents, singular or plural
    assert analyze("séries télévisées") == analyze("serie televisee")
    assert analyze("Qu’est-ce que c’est ?") == []
    # a soft hyphen (HTML's &shy;) or a zero-width character inside a word does not split it
    assert analyze("co\u00adfondateur de l'entre\u200bprise") == analyze("cofondateur de l'entreprise")


@pytest.mark.parametrize(
    "text, joined",
    [
        ("2 905 titres", "2905 titres"),
        ("2\u00a0905 titres", "2905 titres"),  # no-break space
        ("2\u202f905 titres", "2905 titres"),  # narrow no-break space, the typographers' one
        ("2\u2009905 titres", "2905 titres"),  # thin space
        ("2.905 titres", "2905 titres"),
        ("1 234 567 habitants", "1234567 habitants"),
        ("1.234.567 habitants", "1234567 habitants"),
        ("10\u202f000\u202f000 d'euros", "10000000 d'euros"),
        ("(2 905), «\u00a02.905\u00a0» et 12 000e", "(2905), «\u00a02905\u00a0» et 12000e"),
        ("2.905,50 € ou 2 905,5 €", "2905,50 € ou 2905,5 €"),  # the decimal part stays with its number
        # a year (4 digits) cannot open a group: the number after it is joined on its own
        ("en 2018 1 200 personnes", "en 2018 1200 personnes"),
        ("Covid-19 100 000 cas, l'A320 000", "Covid-19 100000 cas, l'A320 000"),
        # left alone: decimals, dates, versions, phone numbers, groups that are not 3 digits
        ("3,5 millions", "3,5 millions"),
        ("3,141 592", "3,141 592"),
        ("le 12.05.2018 à 12.30", "le 12.05.2018 à 12.30"),
        ("version 1.2.345", "version 1.2.345"),
        ("01 23 45 67 89", "01 23 45 67 89"),
        ("1.234.5 et 1234 567 et 2  905 et 2\n905 et 2 90 et 2 9050", "1.234.5 et 1234 567 et 2  905 et 2\n905 et 2 90 et 2 9050"),
        ("en 2018 et 2019", "en 2018 et 2019"),
    ],
)
def test_thousands_separators_are_joined(text, joined):
    assert join_thousands(text) == joined


def test_analyser_reads_a_grouped_number_as_one_term():
    """A question's "2905" and an article's "2 905" (any space) or "2.905" give the same BM25 term."""
    same = [analyze(t) for t in ("2905 titres", "2 905 titres", "2\u00a0905 titres", "2\u202f905 titres", "2.905 titres")]
    assert all(terms == ["2905", "titr"] for terms in same), same
    assert analyze("en 2018, 1\u202f200 personnes pour 3,5 millions") == ["2018", "1200", "person", "3,5", "million"]
    assert analyze("le 12.05.2018") == ["12.05.2018"]


# ------------------------------------------------------------------------------------------- chunks

ADVERSARIAL = [
    "Café crème à Noël 😀🎄 — «\u00a0Ça va\u00a0?\u00a0» demande M. Éric.\r\nLigne Windows\r\n\r\nParagraphe\u00a0avec\u202fespaces insécables. " * 20,
    " ".join(f"mot{i} élève ùñí" for i in range(900)),  # one very long sentence without punctuation
    "x" * 6000,  # one very long token run without spaces
    "🙂🙃😀👍🏽" * 400 + " Fin.",
    "\n\n   \n  Texte entouré de blancs.   \n\n",
    "Un seul mot",
]


def _check_chunks(doc: Document, chunks, embedder, size):
    assert chunks, "a non-empty document has chunks"
    covered = [False] * len(doc.text)
    for ch in chunks:
        assert doc.text[ch.start : ch.end] == ch.text
        assert ch.text and not ch.text[0].isspace() and not ch.text[-1].isspace()
        assert embedder.count_tokens(ch.text) <= size
        assert ch.id == chunk_id(doc.id, ch.start, ch.end, ch.text) and 0 < ch.id < 2**63
        for i in range(ch.start, ch.end):
            covered[i] = True
    assert all(covered[i] or doc.text[i].isspace() for i in range(len(doc.text))), "no text is lost"
    assert len({c.id for c in chunks}) == len(chunks)


def test_offsets_and_token_bound_on_seed_articles(embedder):
    docs, errors = load_documents([ARTICLES])
    assert not errors and len(docs) == 5
    size, overlap = token_budget(embedder, 200, 40)
    assert (size, overlap) == (200, 40)
    for doc in docs:
        chunks = chunk_document(doc, embedder.tokenizer, size, overlap)
        _check_chunks(doc, chunks, embedder, size)
        assert 2 <= len(chunks) <= 8


@pytest.mark.parametrize("n", range(len(ADVERSARIAL)))
def test_offsets_and_token_bound_on_adversarial_text(embedder, n):
    doc = Document(id=f"adv-{n}", text=ADVERSARIAL[n])
    for size, overlap in ((200, 40), (64, 16), (500, 0)):
        _check_chunks(doc, chunk_document(doc, embedder.tokenizer, size, overlap), embedder, size)


def test_overlap_between_neighbours(embedder):
    text = " ".join(f"Phrase numéro {i} avec quelques mots de plus pour la longueur." for i in range(120))
    spans = chunk_spans(text, embedder.tokenizer, 100, 30)
    assert len(spans) > 5
    for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
        assert s1 < s2 < e1 < e2, "neighbours overlap and move forward"
        assert embedder.count_tokens(text[s2:e1]) <= 30


def test_budget_never_exceeds_the_model(embedder):
    size, overlap = token_budget(embedder, 10_000, 9_000)
    assert size == embedder.max_tokens - embedder.passage_prompt_tokens - 2
    assert overlap <= size // 2


def test_chunk_ids_are_stable(embedder):
    doc = Document(id="d", text=ADVERSARIAL[0])
    a = [c.id for c in chunk_document(doc, embedder.tokenizer, 200, 40)]
    b = [c.id for c in chunk_document(Document(id="d", text=ADVERSARIAL[0]), embedder.tokenizer, 200, 40)]
    other = [c.id for c in chunk_document(Document(id="e", text=ADVERSARIAL[0]), embedder.tokenizer, 200, 40)]
    assert a == b and not set(a) & set(other)


def test_tiny_windows_never_repeat_a_span(embedder):
    # a lone "▁" token cut at 8/4 tokens used to give two identical windows (one chunk id twice)
    doc = Document(id="x", text=". tttt/ » ttttttb")
    for size, overlap in ((8, 4), (16, 8)):
        chunks = chunk_document(doc, embedder.tokenizer, size, overlap)
        assert len({(c.start, c.end) for c in chunks}) == len(chunks)
        assert len({c.id for c in chunks}) == len(chunks)


def test_largest_chunks_leave_room_for_the_title(tmp_path, embedder):
    """With QA_CHUNK_TOKENS far above the model's limit, a chunk plus its title line (what is
    embedded) still fits, so the model never cuts the chunk's end off."""
    from index.store import TITLE_EMBED_CHARS, IndexStore, passage_text

    store = IndexStore.open(tmp_path / "big", embedder, chunk_tokens=10_000, overlap_tokens=0)
    title = ("Les investissements de Netflix dans la production audiovisuelle française " * 3)[:TITLE_EMBED_CHARS]
    text = " ".join(f"Phrase numéro {i} sur la stratégie de la plateforme en Europe." for i in range(400))
    doc = Document(id="long", title=title, text=text)
    chunks = chunk_document(doc, embedder.tokenizer, store.chunk_size, store.overlap)
    assert len(chunks) > 1
    limit = embedder.max_tokens - embedder.passage_prompt_tokens - 2
    assert max(embedder.count_tokens(passage_text(title, c.text)) for c in chunks) <= limit
    store.close()
