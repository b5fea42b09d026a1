"""Documents search (`GET /documents?q=`, `qa docs list --search`): time per search by index size.

    .venv/bin/python bench/document_search.py                      # 10k and 100k documents
    .venv/bin/python bench/document_search.py --sizes 10000 --repeats 3

What is measured how (printed with the results too):

* Index: documents' rows written straight into SQLite (``index.catalog.create_tables``, WAL as the
  store opens it), no chunks and no model: the search reads the ``documents`` table only, and embedding
  100,000 documents would take hours. Document i: the text of a PIAF paragraph (train+dev, 1,351 of
  them, 688 characters on average, taken in turn), the title of its article followed by " : " and its
  first words (about 90 characters, accents included), and an id as `qa index` gives files,
  ``000123_9f86d081884c7d65``.
* Searches: ``index.catalog.list_documents`` on a read-only connection (``DocumentCatalog``, what
  `qa docs list` reads; the API calls the same function on the store's connection), first page of 50
  as the page asks, for a few texts from one letter (every document matches) to none; each text
  --repeats times, the median kept.
* "scan": the index as a release without stored match keys left it (or one not yet opened for
  writing): ``match_key`` is called on every title and id. "keys": after the upgrade an open for
  writing does (``index.writes.update_match_keys``, timed: "upgrade s"), which stores them. A release
  without the upgrade measures "scan" only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.retrieval_piaf import load_piaf  # noqa: E402
from index.catalog import DB_NAME, SCHEMA_VERSION, DocumentCatalog, create_tables  # noqa: E402
from index.storage import connect  # noqa: E402

TITLE_CHARS = 90
PAGE = 50


def title_of(article: str, text: str) -> str:
    """An article title and the first words of the paragraph, cut at a word near TITLE_CHARS."""
    words, title = text.split(), article + " :"
    for w in words:
        if len(title) + 1 + len(w) > TITLE_CHARS:
            break
        title += " " + w
    return title


def build(data_dir: Path, n: int, paragraphs) -> list[str]:
    """An index of ``n`` documents' rows; their ids."""
    data_dir.mkdir(parents=True, exist_ok=True)
    conn = connect(data_dir / DB_NAME)
    ids = []
    try:
        conn.execute("BEGIN IMMEDIATE")
        create_tables(conn)
        conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", [("schema_version", SCHEMA_VERSION), ("generation", "0")])
        rows = []
        for i in range(n):
            p = paragraphs[i % len(paragraphs)]
            doc_id = f"{i:06d}_{hashlib.blake2b(str(i).encode(), digest_size=8).hexdigest()}"
            ids.append(doc_id)
            rows.append((doc_id, title_of(p.title, p.text), None, None, "{}", p.text, doc_id, len(p.text), 1))
        conn.executemany("INSERT INTO documents(id, title, url, published, metadata, text, content_hash, chars, n_chunks) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return ids


def queries(ids: list[str]) -> dict[str, str]:
    mid = ids[len(ids) // 2]
    return {
        "one letter (all match)": "e",
        "a word": "egypte",
        "two words": "l ete",
        "a title's start": "jakob bohme",
        "an id's start": mid[:9],
        "a whole id": mid,
        "nothing matches": "zzqx",
    }


def time_searches(data_dir: Path, texts: dict[str, str], repeats: int) -> dict[str, dict]:
    catalog = DocumentCatalog(data_dir)
    out = {}
    try:
        for label, q in texts.items():
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                items, total = catalog.list_documents(0, PAGE, q)
                times.append(time.perf_counter() - t0)
            out[label] = {"q": q, "ms": round(statistics.median(times) * 1000, 2), "total": total, "first": items[0].id if items else None}
    finally:
        catalog.close()
    return out


def upgrade(data_dir: Path) -> float | None:
    """Seconds the open-for-write upgrade takes to store the match keys; None on a release without it."""
    try:
        from index.writes import update_match_keys
    except ImportError:
        return None
    conn = connect(data_dir / DB_NAME)
    try:
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        update_match_keys(conn)
        conn.execute("COMMIT")
        return time.perf_counter() - t0
    finally:
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "document_search.json")
    ap.add_argument("--tmp", type=Path, default=None, help="where the indexes are built (removed after)")
    args = ap.parse_args()

    paragraphs, _ = load_piaf(REPO / "data" / "piaf")
    results = {
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(), "python": platform.python_version(),
                    "load_avg_at_start": os.getloadavg()},
        "repeats": args.repeats, "page": PAGE, "sizes": {},
    }
    root = Path(tempfile.mkdtemp(prefix="docsearch-bench-", dir=args.tmp))
    try:
        for n in (int(s) for s in args.sizes.split(",")):
            data = root / f"n{n}"
            t0 = time.perf_counter()
            ids = build(data, n, paragraphs)
            built = time.perf_counter() - t0
            texts = queries(ids)
            scan = time_searches(data, texts, args.repeats)
            up = upgrade(data)
            keys = time_searches(data, texts, args.repeats) if up is not None else None
            if keys is not None:  # the same pages either way
                assert all((keys[k]["total"], keys[k]["first"]) == (scan[k]["total"], scan[k]["first"]) for k in texts), (scan, keys)
            size_mb = sum(f.stat().st_size for f in data.iterdir()) / 1e6
            results["sizes"][str(n)] = {"build_s": round(built, 2), "db_mb": round(size_mb, 1), "upgrade_s": None if up is None else round(up, 2),
                                        "scan": scan, "keys": keys}
            print(f"\n{n:,} documents (rows written in {built:.1f} s, {size_mb:.0f} MB"
                  + ("" if up is None else f"; upgrade storing the match keys: {up:.2f} s") + ")")
            print(f"  {'search':<24} {'q':<24} {'total':>7} {'scan ms':>9} {'keys ms':>9}")
            for label in texts:
                k = "-" if keys is None else f"{keys[label]['ms']:.2f}"
                print(f"  {label:<24} {scan[label]['q']:<24} {scan[label]['total']:>7} {scan[label]['ms']:>9.2f} {k:>9}")
            shutil.rmtree(data)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results["machine"]["load_avg_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\n{args.out}")


if __name__ == "__main__":
    main()
