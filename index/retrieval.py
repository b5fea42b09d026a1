"""Pieces of retrieval that need no index: filters over document metadata and the fusion of the dense
and BM25 lists (a convex combination of normalised scores, or reciprocal rank fusion)."""

from __future__ import annotations

import calendar
import difflib
import re
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlsplit

import numpy as np

from index.ingest import normalize_date
from index.schema import Filters, normalize_id

NO_DATE = -1


def candidate_depth(top_k: int) -> int:
    """How deep each ranked list goes before fusion."""
    return max(50, 5 * top_k)


# A scheme ("javascript:", "mailto:", "ftp://") starts the value, unless what follows the colon is a
# port ("numerama.com:8080", "localhost:8000/x" name a host); a script scheme is one even then.
_SCHEME = re.compile(r"(javascript|vbscript|data):|([a-z][a-z0-9+.-]*):(?!\d+(?:[/?#]|$))")


def normalize_domain(value: str | None) -> str | None:
    """The site a URL or a domain names, what the source filter matches: "https://www.Numerama.com/x",
    "www.numerama.com" and "numerama.com" are "numerama.com". None when there is none: a URL of
    any scheme but http(s) (``javascript:alert(1)`` is no site "javascript", ``ftp://`` and
    ``mailto:`` links are not web pages), or no host name."""
    if not value:
        return None
    value = value.strip().lower()
    scheme = _SCHEME.match(value)
    if scheme and scheme.group(2) not in ("http", "https"):
        return None
    try:
        host = urlsplit(value).hostname if scheme else value.split("/")[0]
    except ValueError:  # "http://[lien" and the like: no domain to filter on
        return None
    if not host:
        return None
    host = host.split(":")[0].rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    return host or None


def on_site(site: str, want: str | None) -> bool:
    """Whether a document of ``site`` passes a source filter on the site ``want`` (``normalize_domain``
    of the filter): the site itself or one of its subdomains."""
    return bool(want) and (site == want or site.endswith("." + want))


def meant_site(want: str | None, sites: list[str]) -> str | None:
    """The stored site a source filter on ``want``, which matches none, most likely means: one that
    holds it as whole labels ("intranet" for "intranet.exemple.fr", "exemple" for "exemple.fr"; the
    shortest), else one or a parent domain of one spelt nearly the same ("exmple.fr")."""
    if not want:
        return None
    names = sorted({".".join(s.split(".")[i:]) for s in sites for i in range(len(s.split(".")) - 1)} | set(sites))
    holding = [n for n in names if f".{want}." in f".{n}."]
    if holding:
        return min(holding, key=lambda n: (len(n), n))
    close = difflib.get_close_matches(want, names, n=1, cutoff=0.8)
    return close[0] if close else None


def period_bounds(value: str) -> tuple[date, date]:
    """First and last day of the period a possibly partial ISO date names ("2017", "2017-10",
    "2017-10-27"; a time part is ignored). Raises ValueError for anything else."""
    iso = normalize_date(value)
    if iso is None:
        raise ValueError("empty date")
    parts = [int(p) for p in iso.split("-")]
    if len(parts) == 1:
        return date(parts[0], 1, 1), date(parts[0], 12, 31)
    if len(parts) == 2:
        y, m = parts
        return date(y, m, 1), date(y, m, calendar.monthrange(y, m)[1])
    d = date(*parts)
    return d, d


def date_bounds(published: str | None) -> tuple[int, int]:
    """First and last day (proleptic ordinals) covered by a possibly partial ISO date; (-1, -1) when unknown."""
    if not published:
        return NO_DATE, NO_DATE
    try:
        first, last = period_bounds(published)
    except (ValueError, TypeError):
        return NO_DATE, NO_DATE
    return first.toordinal(), last.toordinal()


@dataclass
class DocTable:
    """Per-document metadata as arrays, for vectorised filtering."""

    ids: list[str]
    index: dict[str, int]
    domain: np.ndarray  # int32 index into domains, -1 = no URL
    domains: list[str]
    lo: np.ndarray  # int32 ordinals, -1 = no date
    hi: np.ndarray
    # NFC form -> the documents whose stored id is not NFC (stored before ids were normalised; a
    # twin may be stored in NFC too): a filter on "café" keeps every form of it. Empty as a rule.
    not_nfc: dict[str, list[int]]

    @classmethod
    def build(cls, rows: list[tuple[str, str | None, str | None]]) -> "DocTable":
        ids, doms, lo, hi = [], [], [], []
        dom_index: dict[str, int] = {}
        not_nfc: dict[str, list[int]] = {}
        for doc_id, url, published in rows:
            nfc = normalize_id(doc_id)
            if nfc != doc_id:
                not_nfc.setdefault(nfc, []).append(len(ids))
            ids.append(doc_id)
            d = normalize_domain(url)
            doms.append(dom_index.setdefault(d, len(dom_index)) if d else -1)
            a, b = date_bounds(published)
            lo.append(a)
            hi.append(b)
        return cls(ids, {d: i for i, d in enumerate(ids)}, np.asarray(doms, dtype=np.int32), list(dom_index), np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64), not_nfc)

    def allowed(self, filters: Filters | None) -> np.ndarray | None:
        """Boolean mask over documents, or None when nothing is filtered."""
        if filters is None:
            return None
        mask = None

        def both(m):
            return m if mask is None else mask & m

        if filters.document_ids is not None:
            m = np.zeros(len(self.ids), dtype=bool)
            wanted = {normalize_id(d) for d in filters.document_ids}
            idx = [self.index[d] for d in wanted if d in self.index] + [i for d in wanted for i in self.not_nfc.get(d, ())]
            m[idx] = True
            mask = both(m)
        if filters.source:
            want = normalize_domain(filters.source)
            ok = [i for i, d in enumerate(self.domains) if on_site(d, want)]
            mask = both(np.isin(self.domain, np.asarray(ok, dtype=np.int32)))
        if filters.published_after is not None or filters.published_before is not None:
            m = self.lo != NO_DATE
            # a partial date is an interval: kept when it overlaps the requested range
            if filters.published_after is not None:
                m &= self.hi >= _ordinal(filters.published_after)
            if filters.published_before is not None:
                m &= self.lo <= _ordinal(filters.published_before)
            mask = both(m)
        return mask


def dates_kept(docs: DocTable, after: date | None, before: date | None) -> tuple[bool, date | None, date | None, int]:
    """What a date filter from ``after`` to ``before`` makes of ``docs``: whether it keeps any, the
    first and last days documents are dated with (None when none is), and how many are undated (a
    date filter never keeps them)."""
    dated = docs.lo != NO_DATE
    undated = int((~dated).sum())
    if not dated.any():
        return False, None, None, undated
    kept = docs.allowed(Filters(published_after=after, published_before=before))
    first, last = date.fromordinal(int(docs.lo[dated].min())), date.fromordinal(int(docs.hi[dated].max()))
    return bool(kept is None or kept.any()), first, last, undated


def _ordinal(d) -> int:
    if isinstance(d, str):
        d = date.fromisoformat(d[:10])
    if hasattr(d, "date") and callable(d.date):  # datetime
        d = d.date()
    return d.toordinal()


def rrf(ranked_lists: list[np.ndarray], k: int = 60) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: score(id) = sum over lists of 1 / (k + rank), rank from 1."""
    scores: dict[int, float] = {}
    for ids in ranked_lists:
        for rank, cid in enumerate(ids.tolist(), start=1):
            scores[cid] = scores.get(cid, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


FUSIONS = ("convex", "rrf")
# Scores are normalised against each list's best NORM_DEPTH candidates whatever the search's depth, so a
# chunk's fused score, and the order of the first results, do not depend on top_k.
NORM_DEPTH = 50


def normalized_scores(scores: np.ndarray, ref_depth: int = NORM_DEPTH) -> np.ndarray:
    """Scores of a list sorted best first, mapped to 0..1 by the min and max of its first ``ref_depth``
    (min-max normalisation); deeper ones, below that min, are 0. A list whose reference scores are all
    equal maps them to 1."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return scores
    ref = scores[:ref_depth]
    lo, hi = float(ref.min()), float(ref.max())
    if hi <= lo:
        return np.where(scores >= hi, 1.0, 0.0)
    return np.clip((scores - lo) / (hi - lo), 0.0, 1.0)


def convex_fusion(lists: list[tuple[np.ndarray, np.ndarray]], weights: list[float], ref_depth: int = NORM_DEPTH) -> list[tuple[int, float]]:
    """score(id) = sum over lists of weight * normalised score (0 where the list lacks the id), best
    first, ties by id. ``lists`` are (ids, scores) sorted best first, higher scores better."""
    fused: dict[int, float] = {}
    for (ids, scores), w in zip(lists, weights, strict=True):
        for cid, v in zip(np.asarray(ids).tolist(), normalized_scores(scores, ref_depth).tolist()):
            fused[cid] = fused.get(cid, 0.0) + w * v
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass(frozen=True)
class Fusion:
    """How a hybrid search makes one ranking of its dense and BM25 lists.

    ``convex`` (the default): ``dense_weight`` * normalised cosine + (1 - ``dense_weight``) *
    normalised BM25, scores 0..1; on PIAF dev it puts the gold paragraph first more often than RRF
    (``bench/retrieval_fusion.py``, README "Retrieval"). ``rrf``: reciprocal rank fusion with
    constant ``rrf_k``, blind to how far apart the scores are."""

    kind: str = "convex"
    dense_weight: float = 0.4
    rrf_k: int = 60

    def __post_init__(self):
        if self.kind not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, not {self.kind!r}")
        if not 0.0 <= self.dense_weight <= 1.0:
            raise ValueError(f"dense_weight must be between 0 and 1, not {self.dense_weight}")
        if self.rrf_k < 1:
            raise ValueError(f"rrf_k must be at least 1, not {self.rrf_k}")

    def fuse(self, dense: tuple[np.ndarray, np.ndarray], bm25: tuple[np.ndarray, np.ndarray]) -> list[tuple[int, float]]:
        """(chunk id, fused score), best first, of the (ids, scores) lists of both searches."""
        if self.kind == "rrf":
            return rrf([dense[0], bm25[0]], self.rrf_k)
        return convex_fusion([dense, bm25], [self.dense_weight, 1.0 - self.dense_weight])
