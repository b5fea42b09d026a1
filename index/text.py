"""Pure French text functions: a sentence splitter that returns exact offsets, and the BM25 analyser.

Nothing here touches models or files, so everything is cheap to test.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any, Iterator, Literal

# --------------------------------------------------------------------------------------------
# sentence splitting
# --------------------------------------------------------------------------------------------

_TERMINALS = ".!?…"
# closers that may follow the final punctuation: « ... l’est. » or (... .) or "... ."
_CLOSERS = "»”\")]’'"
_OPENERS_START = "«“\"([-—–•*'‘"
# words after which a period does not end a sentence (compared case-sensitively: "M." yes, "m." no)
_ABBREV_CASED = {
    "M", "MM", "Mme", "Mmes", "Mlle", "Mlles", "Dr", "Drs", "Pr", "Pr", "Me", "Mgr", "St", "Ste", "Sts",
    "Cie", "Sté", "Jr", "Sr", "Mr", "Mrs", "Ms", "Prof", "Gén", "Gal", "Col", "Cdt", "Lt", "Sgt",
}
_ABBREV_LOWER = {
    "etc", "cf", "ex", "env", "chap", "fig", "tél", "tel", "réf", "coll", "éd", "trad", "janv", "févr",
    "fév", "avr", "juil", "p", "pp", "av", "apr", "hab", "max", "min", "n°", "bd", "boul", "vs",
    "resp", "approx", "dir", "éds", "ibid", "op", "cit", "suiv", "sq", "ss", "inc", "ltd",
}
_WORD_BEFORE = re.compile(r"(n°|[^\W\d_]+)$")
_QUOTE_MAX_SPAN = 1500  # an unclosed « is forgotten after this many characters


def _is_abbreviation(text: str, dot: int) -> bool:
    """True when the period at ``dot`` closes an abbreviation or an initial."""
    m = _WORD_BEFORE.search(text, max(0, dot - 12), dot)
    if not m:
        return False
    word = m.group(1)
    # an initial: "J. R. R. Tolkien", "J.-C.", "U.S.A."
    if len(word) == 1 and word.isupper():
        return True
    if word in _ABBREV_CASED:
        return True
    if word.lower() in _ABBREV_LOWER and (word.islower() or word.lower() == "etc"):
        return True
    return False


def _starts_sentence(ch: str) -> bool:
    return ch.isupper() or ch.isdigit() or ch in _OPENERS_START or unicodedata.category(ch) in ("So", "Sk")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Split French ``text`` into sentences; returns ``(start, end)`` offsets into ``text``.

    Every span is stripped of surrounding whitespace (so it never starts or ends with a space) and
    together the spans cover all non-whitespace characters of ``text``. Line breaks always end a
    sentence (titles, list items, paragraphs). A period does not end a sentence after an
    abbreviation (M., Mme, etc.), an initial (J. R. R. Tolkien), inside a number (2.905, 3,5) or
    inside «guillemets»; a sentence ends only when the next non-space character can start one.
    """
    n = len(text)
    cuts: list[int] = []  # exclusive ends of sentences
    depth = 0
    open_at = -1
    i = 0
    while i < n:
        ch = text[i]
        if ch == "\n" or ch == "\r" or ch == "\u2028" or ch == "\u2029":
            cuts.append(i)
            depth = 0
            i += 1
            continue
        if ch in "«“":
            if depth == 0:
                open_at = i
            depth += 1
            i += 1
            continue
        if ch in "»”":
            depth = max(0, depth - 1)
            i += 1
            continue
        if depth and i - open_at > _QUOTE_MAX_SPAN:
            depth = 0  # unbalanced quote: stop protecting
        if ch not in _TERMINALS:
            i += 1
            continue
        # a run of terminal punctuation: "?!", "...", "…"
        j = i
        while j < n and text[j] in _TERMINALS:
            j += 1
        if ch == "." and j == i + 1 and _is_abbreviation(text, i):
            i = j
            continue
        # closers right after: «... fin. »  (...)  "...".
        k = j
        d = depth
        while k < n:
            if text[k] in _CLOSERS:
                if text[k] in "»”":
                    d = max(0, d - 1)
                k += 1
            elif text[k] in " \u00a0\u202f" and k + 1 < n and text[k + 1] in "»”":
                k += 1
            else:
                break
        if d > 0:  # still inside guillemets
            depth = d
            i = k
            continue
        # must be followed by whitespace, then something that can start a sentence
        m = k
        while m < n and text[m].isspace() and text[m] not in "\r\n":
            m += 1
        if m == k:  # "2.905", "conséquences.Mais", end of text
            depth = d
            i = k
            continue
        if m < n and text[m] not in "\r\n" and not _starts_sentence(text[m]):
            depth = d
            i = k
            continue
        cuts.append(k)
        depth = 0
        i = k
    cuts.append(n)
    spans: list[tuple[int, int]] = []
    start = 0
    for cut in cuts:
        s, e = start, cut
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            spans.append((s, e))
        start = cut
    return spans


def split_sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in sentence_spans(text)]


# --------------------------------------------------------------------------------------------
# BM25 analysis
# --------------------------------------------------------------------------------------------

# stored terms of another version are re-analysed when an index opens (fr-3: grouped thousands joined).
# The Unicode version is part of it: tokens (\w, isalnum) and accent folding (NFKD) follow the running
# Python's tables, which an upgrade may extend, and a question must be analysed as the passages were
ANALYZER_VERSION = f"fr-3 (Unicode {unicodedata.unidata_version})"

_LIGATURES = str.maketrans({"œ": "oe", "Œ": "oe", "æ": "ae", "Æ": "ae", "ß": "ss", "’": "'", "‘": "'", "ʼ": "'", "`": "'"})
_ELISION = re.compile(r"(?<![\w])(?:l|d|qu|j|n|s|c|m|t|jusqu|lorsqu|puisqu|quoiqu|presqu)'(?=\w)")
_TOKEN = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+")

# French stop words (accents folded), plus question words that carry no topic
_STOP = """
a ai aie aient aies ait as au aucun aucune aupres aura aurai auraient aurais aurait auras aurez auriez aurions
aurons auront aussi autre autres aux avaient avais avait avant avec avez aviez avions avoir avons ayant ayez
ayons c ca car ce ceci cela celle celles celui cependant ces cet cette ceux chaque chez ci combien comme comment
d dans de des deja donc dont du elle elles en encore entre es est et etaient etais etait etant etc ete etee
etees etes etiez etions etre eu eue eues eumes eurent eus eusse eussent eusses eussiez eussions eut eutes eux
fait faut fumes furent fus fusse fussent fusses fussiez fussions fut futes ici il ils j je jusqu l la le les
leur leurs lors lorsqu lui m ma mais me meme memes mes moi mon n ne ni nos notre nous on ont ou par parce pas
peu peut plus pour pourquoi puis qu quand que quel quelle quelles quels qui quoi s sa sans se sera serai
seraient serais serait seras serez seriez serions serons seront ses si sien soi soient sois soit sommes son
sont sous soyez soyons suis sur t ta te tes toi ton tous tout toute toutes tres tu un une unes uns vers voici
voila vos votre vous y
"""
STOP_WORDS = frozenset(_STOP.split())

# Thousands as French news writes them: "2 905" (a space, no-break space U+00A0, narrow no-break
# space U+202F, thin or figure space) or "2.905"; the comma is the decimal mark ("3,5").
_GROUP_SPACES = " \u00a0\u2007\u2009\u202f"
_GROUPED_NUMBER = re.compile(
    # not inside a word or right after a number: "A320 000" and "3,5 000" stay, "Covid-19 100 000" joins "100 000"
    r"(?<![\w-])(?<!\d[.,])"
    # a first group of 1 to 3 digits, then groups of exactly 3 digits, all after spaces or all after dots
    rf"\d{{1,3}}(?:(?:[{_GROUP_SPACES}]\d{{3}})+|(?:\.\d{{3}})+)"
    # and no digit right after: "12.05.2018" and "1.234.5" stay as they are
    r"(?!\d|\.\d)"
)


def join_thousands(text: str) -> str:
    """Numbers written with thousands separators as one number: "2 905", "2\\u202f905" and "2.905"
    -> "2905"; "1 234 567" -> "1234567"; "2.905,50" -> "2905,50". So BM25 matches "2905" with
    "2 905" whichever a question or an article writes.

    The rule: a first group of 1 to 3 digits, then one or more groups of exactly 3 digits, each
    after one separator, all spaces (of any kind) or all dots. Left alone: decimals ("3,5"), dates
    ("12.05.2018"), years before a number ("en 2018 1 200 personnes" -> "2018 1200": four digits
    cannot open a group), phone numbers ("01 23 45 67 89"). Its limits: two numbers written side
    by side, the second of exactly 3 digits, read as one ("le 14 200 manifestants", the 14th, ->
    "14200"); separators mixed inside a number ("1 234.567") join only the dotted part.
    """
    return _GROUPED_NUMBER.sub(lambda m: "".join(ch for ch in m.group() if ch.isdigit()), text)


def json_nodes(value: Any, loc: tuple = ()) -> Iterator[tuple[tuple, Any, bool]]:
    """Every node of a parsed JSON value, depth first, as (location, node, is_key): an object's keys
    come as nodes too, located at their object. Locations are tuples of keys and list indices."""
    stack = [(loc, value)]
    while stack:
        here, v = stack.pop()
        yield here, v, False
        if isinstance(v, dict):
            for key, item in reversed(list(v.items())):
                stack.append(((*here, key), item))
            for key in v:
                yield here, key, True
        elif isinstance(v, list):
            stack.extend(((*here, i), item) for i, item in reversed(list(enumerate(v))))


def lone_surrogate_at(value: Any, loc: tuple = ()) -> tuple[tuple, bool] | None:
    """Where a parsed JSON value first holds a string with an unpaired surrogate, as (location,
    is_key): for a key, the location of its object (the key itself cannot be printed). None when
    it holds none."""
    for here, v, is_key in json_nodes(value, loc):
        if isinstance(v, str) and has_lone_surrogate(v):
            return here, is_key
    return None


def has_lone_surrogate(text: str) -> bool:
    """A UTF-16 surrogate on its own: bytes Python could not decode (kept as surrogates) or a JSON
    "\\ud800" escape. No encoder accepts it, so no model or store can take such text."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def is_blank(ch: str) -> bool:
    """Whitespace, or a character with no glyph of its own: controls and format characters (zero-width
    space, byte-order mark, soft hyphen, direction marks), which tokenizers read as spaces."""
    return ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf")


def strip_blank(text: str) -> str:
    """``text`` without the blank characters (``is_blank``) at its ends."""
    start, end = 0, len(text)
    while start < end and is_blank(text[start]):
        start += 1
    while end > start and is_blank(text[end - 1]):
        end -= 1
    return text[start:end]


def has_words(text: str) -> bool:
    """At least one letter or digit: "???" or a zero-width space is no question and no document."""
    return any(ch.isalnum() for ch in text)


# why a text cannot be a question, a query, a context or a document's text
TextProblem = Literal["empty", "no words"]


def text_problem(text: str) -> TextProblem | None:
    """Why ``text`` is no question, query, context or document text, or None: "empty" (whitespace
    only) or "no words" (no letter or digit: "???", a zero-width space). One rule for the `qa`
    command, the HTTP API and `qa index`; each says it in its own words, naming the option, the
    field or the file. (Text that is not UTF-8 is refused before, where it comes in.)"""
    if not text.strip():
        return "empty"
    if not has_words(text):
        return "no words"
    return None


def fold(text: str) -> str:
    """Lowercase and strip accents: "Événement Œuvre" -> "evenement oeuvre". Invisible format
    characters go too, so that a soft hyphen (HTML's &shy;) or a zero-width space does not split a word."""
    text = text.translate(_LIGATURES).lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c) and unicodedata.category(c) != "Cf")


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("french")


def analyze(text: str) -> list[str]:
    """The BM25 analyser: fold case and accents, join grouped thousands ("2 905" -> "2905"), split
    elisions (l', qu', ...), drop stop words, stem (Snowball)."""
    folded = _ELISION.sub(" ", join_thousands(fold(text)))
    words = [w for w in _TOKEN.findall(folded) if w not in STOP_WORDS]
    return _stemmer().stemWords(words)


def control_problem(text: str) -> str | None:
    """Where ``text`` holds a control character (Unicode Cc: line breaks, tabs, ESC...), or None.
    For one-line fields: an ESC in a title or URL would drive the terminal that prints it."""
    for i, ch in enumerate(text):
        if unicodedata.category(ch) == "Cc":
            return f"holds a control character (U+{ord(ch):04X} at position {i})"
    return None


def one_line(text: str) -> str:
    """A one-line field (a title): one without control characters is kept as it is; in one with
    some, they become spaces and whitespace runs are folded. Titles carry no offsets, so nothing
    else depends on their exact characters."""
    if control_problem(text) is None:
        return text
    return " ".join("".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text).split())


# direction overrides and isolates: U+202E shows "txt.exe" for "exe.txt" (marks U+200E/F only nudge)
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _hidden(ch: str, keep: str) -> bool:
    return ch not in keep and (unicodedata.category(ch) == "Cc" or ch in _BIDI_CONTROLS)


def visible(text: str, keep: str = "") -> str:
    """``text`` for a terminal: control characters other than those in ``keep``, and the controls
    that reorder what follows them, written as escapes (``\\x1b``, ``\\u202e``), so that stored
    text shows what it holds instead of acting on the terminal."""
    if not any(_hidden(ch, keep) for ch in text):
        return text
    return "".join((f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}") if _hidden(ch, keep) else ch for ch in text)


# raised whenever url_problem(strict=False) refuses more: an index's stored URLs are checked again
# (index.writes.drop_refused_urls) the next time it is opened to write
URL_RULE_VERSION = "1"
# schemes whose links run code: browsers ignore leading spaces and letter case
_SCRIPT_SCHEME = re.compile(r"\s*(javascript|vbscript|data):", re.IGNORECASE)


def url_problem(url: str, strict: bool = True) -> str | None:
    """What is wrong with a document's URL, or None. Always: Python cannot parse it (filters read
    its domain), it holds a control character, or its scheme runs code in a browser (``javascript:``:
    answers carry the URL to every client, which may make it a link). ``strict`` (what the API
    takes): also anything but an absolute http(s) URL."""
    from urllib.parse import urlsplit

    problem = control_problem(url)
    if problem is not None:
        return problem
    m = _SCRIPT_SCHEME.match(url)
    if m:
        return f"uses the {m.group(1).lower()}: scheme, which runs code in a browser: give the article's http(s) address"

    try:
        host = urlsplit(url).hostname
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if not strict:
        return None
    if not re.match(r"^https?://[^\s/]+", url, re.IGNORECASE) or any(ch.isspace() for ch in url):
        return "must be an absolute http(s) URL"
    return None if host else "has no host name"


def clean_url(url: str | None) -> str | None:
    """A document's URL as given, stripped; blank is none (the API and `qa index` alike)."""
    if url is None or not url.strip():
        return None
    return url.strip()


# a URL on a line of its own, bare, in <>, as a Markdown link or a list item: a document's own URL
URL_LINE = re.compile(r"^\s*(?:[-*•+]\s*)?(?:\[[^\]]*\]\()?<?(https?://[^\s<>()]+)>?\)?\s*$")


def printable(text: str) -> str:
    """Extracted text the index can store and terminals show: control characters other than line
    breaks and tabs become spaces, an unpaired surrogate (a broken font map) U+FFFD."""
    return "".join(
        " " if unicodedata.category(ch) == "Cc" and ch not in "\n\t\r" else "\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch
        for ch in text
    )
