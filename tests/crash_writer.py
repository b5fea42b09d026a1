"""Helper for the crash-safety test: writes to index stores and gets killed with SIGKILL mid-way.

    python tests/crash_writer.py SCENARIO=DATA_DIR ...

The model is loaded once; each scenario runs in a forked child process (before any inference in
this parent, so torch's thread pools are not shared across the fork) that opens its store and writes:

- ``hook:<point>``: adds 4 documents with ``index.store.CRASH_AT = <point>``, so the store kills the child
  with SIGKILL exactly there (``embedded``, ``before_commit``, ``committed``, ``dense_written``,
  ``keyword_written``);
- ``timed:<seconds>``: adds, updates and deletes documents in a loop; this process kills it with
  SIGKILL that many seconds after its first write started, wherever it is.

Prints one line per scenario: ``<scenario> <exit status> <writes completed>``.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def child(store_cls, embedder, data: Path, scenario: str, wfd: int) -> None:
    from index.schema import Document
    from tests.test_store import synth_docs

    store = store_cls.open(data, embedder)
    os.write(wfd, b"s")  # started
    if scenario.startswith("hook:"):
        import index.store

        index.store.CRASH_AT = scenario.split(":", 1)[1]
        store.add_documents(synth_docs(4, prefix="second"))
        os._exit(3)  # the hook did not fire
    i = 0
    while True:
        store.add_documents(synth_docs(3, prefix=f"t{i}"))
        if i % 2:
            old = synth_docs(3, prefix=f"t{i - 1}")[0]
            store.add_documents([Document(id=old.id, title=old.title, text=old.text + f" Mise à jour {i}.")])
        if i % 3 == 2:
            store.delete_document(f"t{i - 2}-002")
        os.write(wfd, b"w")
        i += 1


def main(argv: list[str]) -> None:
    from index.embeddings import Embedder
    from index.store import IndexStore
    from qa.settings import Settings

    s = Settings()
    embedder = Embedder(s.embedder, s.models_dir)
    print("loaded", flush=True)
    for arg in argv:
        scenario, data = arg.split("=", 1)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                child(IndexStore, embedder, Path(data), scenario, w)
            finally:
                os._exit(4)
        os.close(w)
        assert os.read(r, 1) == b"s"
        if scenario.startswith("timed:"):
            time.sleep(float(scenario.split(":", 1)[1]))
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        writes = 0
        while chunk := os.read(r, 4096):  # the child is gone: reads to EOF
            writes += chunk.count(b"w")
        os.close(r)
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        print(scenario, "SIGKILL" if sig == signal.SIGKILL else f"status={status}", writes, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
