"""What an index records of how it was built, and the checks against it: the embedding model (its
name, dimension and the vector it gave a fixed probe passage) and the layout of its chunks (size,
overlap, dense index type), which the whole index shares until it is rebuilt."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index import dense as dense_mod
from index.catalog import SCHEMA_VERSION, check_schema_version, create_tables, open_read_only
from index.storage import meta
from index.text import ANALYZER_VERSION

# a fixed passage whose vector the index keeps, to recognise its model (see built_with_problem);
# the same model gives the same vector up to float noise (threads, CPU or GPU: cosine > 0.9999)
PROBE_TEXT = "qa-search : ce passage sert à reconnaître le modèle qui a calculé les vecteurs de l'index."
PROBE_MIN_COSINE = 0.999


@dataclass(frozen=True)
class RecordedEmbedder:
    """The embedder as an index records it (``name:dim``): all a delete needs, so that `qa docs delete`
    loads no model. Anything that needs the model itself (adding, searching) fails with a clear error."""

    identity: str
    dim: int
    max_tokens: int = 1 << 20  # chunk sizes of an existing index come from its meta, not from here
    passage_prompt_tokens: int = 0

    def _no_model(self, *_args, **_kwargs):
        raise RuntimeError(f"the index was opened without its embedding model ({self.identity}): adding or searching needs it")

    encode_passages = encode_queries = count_tokens = _no_model

    @property
    def tokenizer(self):
        self._no_model()


def recorded_embedder(data_dir: Path) -> RecordedEmbedder | None:
    """What the index at ``data_dir`` records of its embedder; None when there is no index there."""
    try:
        conn = open_read_only(data_dir)
    except sqlite3.OperationalError:  # a database without our tables: nothing was ever indexed there
        return None
    if conn is None:
        return None
    try:
        recorded = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('embedder', 'dim')").fetchall())
    finally:
        conn.close()
    if "embedder" not in recorded:
        return None
    return RecordedEmbedder(recorded["embedder"], int(recorded["dim"]))


# "{rebuild}", "{give_folder}": said of the index folder as the command took it (ReindexNeeded.naming)
REINDEX_FIX = "re-index with {rebuild} or {give_folder} another folder"


def built_with_problem(conn: sqlite3.Connection, data_dir: Path, embedder, probe: Callable[[], np.ndarray | None]) -> tuple[str, str] | None:
    """Why ``embedder`` cannot read or write the index (another model) and what to do, as
    ReindexNeeded takes them, or None. ``probe`` gives its vector for PROBE_TEXT (None without the
    model), asked only when the index recorded one.

    The index keeps the vector its model gave PROBE_TEXT: a model is the same when it gives the
    same vector, whatever its name or path (a folder moved, a trailing slash), and another one
    under the same name (weights replaced in place, a hub revision) is caught. Indexes from
    before the probe was recorded, and deletes (no model loaded), compare names."""
    built_with = meta(conn, "embedder")
    same_dim = int(meta(conn, "dim", "0")) == int(embedder.dim)
    recorded = meta(conn, "embedder_probe")
    vector = probe() if recorded is not None and same_dim else None
    if vector is not None:
        if float(np.dot(np.asarray(json.loads(recorded), dtype=np.float32), vector)) >= PROBE_MIN_COSINE:
            return None
        return (
            f"index at {data_dir} was built with {built_with}, and the model you configured "
            f"({embedder.identity}) gives other vectors (its weights changed?)"
        ), REINDEX_FIX
    if built_with == embedder.identity and same_dim:
        return None
    return (
        f"index at {data_dir} was built with {built_with}; you configured {embedder.identity}"
    ), REINDEX_FIX


def probe_meta(vector: np.ndarray | None) -> list[tuple[str, str]]:
    """The meta row recording the model's probe vector, when the model is loaded."""
    return [] if vector is None else [("embedder_probe", json.dumps([round(float(x), 6) for x in vector]))]


def describe_layout(layout: dict[str, str]) -> str:
    return f"chunks of {layout['chunk_tokens']} tokens, overlap {layout['overlap_tokens']}, {layout['dense_index']} dense index"


def index_layout(conn: sqlite3.Connection, data_dir: Path, configured: dict[str, str]) -> dict[str, str] | None:
    """The layout of the documents already in the index (None when it has none: the ``configured``
    layout applies, and the first write records it). Indexes written before the dense index
    type was recorded have it inferred from their files."""
    if conn.execute("SELECT 1 FROM chunks LIMIT 1").fetchone() is None:
        return None
    layout = {key: meta(conn, key) for key in configured}
    if layout["dense_index"] not in dense_mod.KINDS:
        on_disk = [kind for kind in dense_mod.KINDS if any(Path(data_dir).glob(f"dense-{kind}-*.faiss"))]
        layout["dense_index"] = on_disk[0] if len(on_disk) == 1 else configured["dense_index"]
    for key in ("chunk_tokens", "overlap_tokens"):
        if layout[key] is None or not layout[key].isdigit():
            layout[key] = configured[key]
    return layout


def prepare_index(c: sqlite3.Connection, data_dir: Path, embedder, probe_rows: list[tuple[str, str]],
                  configured: dict[str, str]) -> tuple[int, dict[str, str] | None]:
    """Inside the write transaction of an open: the tables created if missing; a new index records its
    schema version, generation 0 and model (``probe_rows``: ``probe_meta``), an existing one has its
    schema version checked and gets what older versions did not record (the probe, when opened with
    its own model; the layout). Its chunk count, and its layout (``index_layout``)."""
    create_tables(c)
    version = meta(c, "schema_version")
    if version is None:
        c.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?)",
            [("schema_version", SCHEMA_VERSION), ("generation", "0"), ("embedder", embedder.identity), ("dim", str(embedder.dim)), ("analyzer", ANALYZER_VERSION), *probe_rows],
        )
    else:
        check_schema_version(data_dir, version)
        if meta(c, "embedder_probe") is None and meta(c, "embedder") == embedder.identity:
            # an index from before the probe was recorded, opened with its own model: record it
            c.executemany("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", probe_rows)
    n_chunks = c.execute("SELECT count(*) FROM chunks").fetchone()[0]
    layout = index_layout(c, data_dir, configured)
    if layout is not None:  # an index from before the layout was recorded: record what it is
        c.executemany("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", list(layout.items()))
    return n_chunks, layout
