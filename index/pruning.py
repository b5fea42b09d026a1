"""What `qa index PATHS --prune` removes: the documents read from those files and folders before whose
source is gone, a file removed or a record no longer in its export.

A document counts as read from a file by its ``source_file`` metadata, when that is an absolute path
(``qa index`` writes those): an upload's (``POST /documents/files``) is the bare name it was sent
under, and ``POST /documents`` sets none, so neither is ever a candidate. Only what is certainly gone
is removed: a file that no longer exists, or a file read whole in this run that no longer gives the
document. A file read with an error (any line) keeps all its documents, and so does everything
under a path with an error; a file that exists but was not read (a hidden one, a link not
followed) keeps its documents too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePath

from index.schema import normalize_id


@dataclass(frozen=True)
class Stale:
    """A stored document whose source is gone: its id, its ``source_file`` and whether that file is
    gone (else it was read, without the document)."""

    id: str
    source_file: str
    file_gone: bool

    def reason(self) -> str:
        if self.file_gone:
            return f"{self.source_file} is gone"
        return f"no longer in {self.source_file}"


def _forms(path: str) -> set[str]:
    """The ways one path may be written: as given made absolute (".." resolved as text), and with its
    links resolved (a folder given through a link)."""
    return {os.path.normpath(os.path.abspath(path)), os.path.realpath(path)}


def _under(forms: set[str], roots: set[str]) -> bool:
    return any(f == r or PurePath(f).is_relative_to(r) for f in forms for r in roots)


def stale_documents(stored: Iterable[tuple[str, str]], given: Iterable[Path], read_ids: Iterable[str],
                    read_files: Iterable[Path], failed: Iterable[str]) -> list[Stale]:
    """The (id, source_file) ``stored`` that ``qa index given --prune`` removes, by id: under one of the
    ``given`` files or folders, not among ``read_ids`` (the documents read in this run), not under a
    path of ``failed`` (those with a read error in this run), and whose file is gone or was among
    ``read_files`` (read in this run, without giving the document)."""
    roots = set().union(set(), *(_forms(str(p)) for p in given))
    errored = set().union(set(), *(_forms(p) for p in failed))
    read = set().union(set(), *(_forms(str(p)) for p in read_files))
    ids = {normalize_id(i) for i in read_ids}
    out = []
    for doc_id, source in stored:
        if not isinstance(source, str) or not os.path.isabs(source) or normalize_id(doc_id) in ids:
            continue  # an upload's bare name is no path: it resolves from wherever qa index runs
        forms = _forms(source)
        if not _under(forms, roots) or _under(forms, errored):
            continue
        gone = not os.path.lexists(source)
        if gone or forms & read:
            out.append(Stale(doc_id, source, gone))
    return sorted(out, key=lambda s: s.id)
