"""Which language a message is written in, and Traditional <-> Simplified Chinese.

The one place that builds OpenCC converters. Three languages are spoken: zh-Hans (the
default), zh-Hant and en.

- `to_traditional(text)` writes zh-Hant with a regional variant, a setting
  (`NUANXIN_TRADITIONAL_VARIANT`): `s2hk` (Hong Kong / Macau characters, the default: the
  offices serve Guangdong, where Traditional readers are mostly from Hong Kong, Macau and
  abroad) or `s2twp` (Taiwan characters and phrases). Never plain `s2t`, which writes
  forms nobody uses (爲, 回複).
- `to_simplified(text)` converts characters only (names and typed text keep their words).
- `normalise_command(text)` reduces a reply for matching command words and answers: NFKC,
  no control characters, lower case, outer punctuation off, and Traditional characters and
  Taiwan/Hong Kong phrases turned into Simplified (選單 -> 菜单, 確認 -> 确认, 係 -> 系), so
  every word list is written once, in Simplified.
- `detect_language(text, hint)`: the script of the text decides; the hint (what we already
  know: the person's language, or the Telegram client's setting) decides what the text
  cannot: digits, a code, "ok", a command word, a short Latin reply from a Chinese reader.

Converters are built on first use (s2hk or s2twp alone hold about 43 MB once built; t2s, s2tw and
tw2sp share most of it). The fixed texts a process converts while loading (message templates, the
catalogue of words: `kept_conversions()`) can be kept in the data folder
(`keep_conversions_in`), under a key of the OpenCC version and this module's code: a process that
only renders fixed texts (the scheduler) then reads them back on its next start and never builds a
converter. The texts are OpenCC's own output, read back byte for byte; any other text is converted
as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import unicodedata
from collections.abc import Iterator, Mapping
from functools import cache, lru_cache
from importlib import metadata
from pathlib import Path
from typing import Final

import opencc

log = logging.getLogger(__name__)

LANGUAGES: Final = ("zh-Hans", "zh-Hant", "en")
DEFAULT_LANGUAGE: Final = "zh-Hans"
VARIANTS: Final = ("s2hk", "s2twp")
DEFAULT_VARIANT: Final = "s2hk"

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_OUTER_PUNCTUATION = " .。!！~～,，、;；"
# A Latin reply of fewer words than this, from someone we know reads Chinese, is not a
# switch to English ("ok", "ok thanks", "12345X", "TD").
_ENGLISH_MIN_WORDS_FOR_CHINESE_READER = 3
# Words that say nothing about the reader's language: acknowledgements and the command words
# every reader may use (STOP and TD are the carriers' opt-out words; a Telegram client sends
# /start as 菜单, whatever its language). Matched as typed: 菜單 in Traditional does say zh-Hant.
_NEUTRAL_WORDS: Final = frozenset({
    "ok", "okay", "k", "td", "stop", "stopall", "unsubscribe", "unstop", "start", "menu", "main", "home",
    "help", "human", "agent", "staff", "operator", "person", "yes", "no", "y", "n", "back", "skip",
    "cancel", "end", "quit", "revoke", "optout",
    "菜单", "主菜单", "首页", "帮助", "说明", "怎么用", "语言", "切换语言", "退订", "取消订阅", "订阅", "恢复订阅",
    "人工", "转人工", "返回", "上一步", "继续"})


class UnknownVariant(ValueError):
    """A Traditional Chinese variant other than s2hk or s2twp was asked for."""


_BUILT: set[str] = set()


@cache
def _converter(config: str) -> opencc.OpenCC:
    _BUILT.add(config)
    return opencc.OpenCC(config)


def converters_built() -> tuple[str, ...]:
    """The OpenCC configurations this process has built so far (each holds its dictionaries)."""
    return tuple(sorted(_BUILT))


# --- fixed texts' conversions kept on disk ---------------------------------------------------
KEPT_FOLDER_NAME = "language-cache"  # under the data folder


class _Kept:
    """Conversions to Traditional read back from the data folder, and those to add to it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.folder: Path | None = None
        self.texts: dict[str, dict[str, str]] = {}  # variant -> zh-Hans text -> its conversion
        self.added = False
        self.scopes = threading.local()  # open kept_conversions() scopes of each thread: only its own are kept

    def key(self) -> str:
        digest = hashlib.sha256(metadata.version("opencc").encode())
        digest.update(Path(__file__).read_bytes())
        return digest.hexdigest()

    def path(self) -> Path | None:
        return self.folder / f"traditional-{self.key()[:16]}.json" if self.folder is not None else None

    def load(self, folder: Path | None) -> None:
        with self.lock:
            self.folder, self.texts, self.added = folder, {}, False
            path = self.path()
            if path is None or not path.exists():
                return
            try:
                kept = json.loads(path.read_text(encoding="utf-8"))
                if kept.get("key") != self.key():
                    raise ValueError("written under another key")
                self.texts = {variant: dict(texts) for variant, texts in kept["texts"].items()
                              if all(isinstance(k, str) and isinstance(v, str) for k, v in texts.items())}
            except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
                log.warning("kept Traditional conversions at %s not read back (%s): converting again", path, exc)
                self.texts = {}
                with contextlib.suppress(OSError):
                    path.unlink()

    def save(self) -> None:
        with self.lock:
            path = self.path()
            if path is None or not self.added:
                return
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            body = json.dumps({"key": self.key(), "texts": self.texts}, ensure_ascii=False, sort_keys=True)
            fd, tmp = tempfile.mkstemp(prefix=".traditional-", dir=path.parent)  # 0600, as mkstemp makes it
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(body)
            os.replace(tmp, path)
            for old in path.parent.glob("traditional-*.json"):  # written by another version
                if old != path:
                    with contextlib.suppress(OSError):
                        old.unlink()
            self.added = False

    def get(self, text: str, variant: str) -> str | None:
        return self.texts.get(variant, {}).get(text)

    def recording(self) -> int:
        return int(getattr(self.scopes, "depth", 0))

    def note(self, text: str, variant: str, converted: str) -> None:
        if self.folder is not None and self.recording():
            with self.lock:
                texts = self.texts.setdefault(variant, {})
                if texts.get(text) != converted:
                    texts[text] = converted
                    self.added = True


_KEPT = _Kept()


def keep_conversions_in(folder: Path | None) -> None:
    """Keep the conversions of fixed texts (`kept_conversions`) in `folder` (the service's data
    folder): what was kept there before is read back now. None: nothing kept (the default)."""
    _KEPT.load(folder)
    _to_traditional.cache_clear()


@contextlib.contextmanager
def kept_conversions() -> Iterator[None]:
    """Texts this thread converts to Traditional inside are fixed texts of the product (templates,
    words, never what a person wrote): kept in the folder of `keep_conversions_in`, written when the
    outermost scope ends. (Other threads' conversions meanwhile are not kept.)"""
    depth = _KEPT.recording()
    _KEPT.scopes.depth = depth + 1
    try:
        yield
    finally:
        _KEPT.scopes.depth = depth
        if depth == 0:
            try:
                _KEPT.save()
            except OSError as exc:  # a read-only data folder: converted again at the next start
                log.warning("kept Traditional conversions not written: %s", exc)


def _check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise UnknownVariant(f"unknown Traditional Chinese variant {variant!r} (use {' or '.join(VARIANTS)})")
    return variant


@lru_cache(maxsize=1)
def configured_variant() -> str:
    """The variant from the settings (read once per process)."""
    from settings import get_settings

    return _check_variant(get_settings().traditional_variant)


# Words OpenCC's longest-match segmentation splits wrongly in the product's own sentences: in
# "请回复数字" it takes 复数 (plural, 複數) and gives 回複數字. Such a word is converted on its own.
_CONVERTED_ALONE = re.compile("(回复)")


@lru_cache(maxsize=16384)
def _to_traditional(text: str, variant: str) -> str:
    kept = _KEPT.get(text, variant)
    if kept is not None:
        return kept
    convert = _converter(variant).convert
    return "".join(str(convert(part)) for part in _CONVERTED_ALONE.split(text) if part)


def to_traditional(text: str, variant: str | None = None) -> str:
    """Simplified -> Traditional in the configured regional variant (or the one given).
    ASCII (template variables, codes) is left untouched."""
    if not text or not _CJK.search(text):
        return text
    variant = _check_variant(variant) if variant else configured_variant()
    converted = _to_traditional(text, variant)
    _KEPT.note(text, variant, converted)  # inside kept_conversions() only
    return converted


@lru_cache(maxsize=16384)
def to_simplified(text: str) -> str:
    """Traditional -> Simplified, character by character (words are kept as written)."""
    if not text or not _CJK.search(text):
        return text
    return str(_converter("t2s").convert(text))


@lru_cache(maxsize=16384)
def _phrases_to_simplified(text: str) -> str:
    # tw2sp: Traditional characters and Taiwan phrases (選單, 軟體) to mainland ones; it covers
    # the Hong Kong character forms too (裏, 着).
    return str(_converter("tw2sp").convert(text))


# Cantonese words whose Mandarin twins the options of a form are written in (睇病 -> 看病, 冇人照顾 -> 没人照顾).
_CANTONESE_WORDS = (("屋企", "家里"), ("使钱", "花钱"), ("睇", "看"), ("冇", "没"), ("唔", "不"), ("嘅", "的"), ("咗", "了"), ("佢", "他"))


def cantonese_as_mandarin(text: str) -> str:
    """A reduced reply (normalise_command) with its common Cantonese words in Mandarin, for matching
    against words written in Mandarin; the reply itself is kept as the person wrote it."""
    for cantonese, mandarin in _CANTONESE_WORDS:
        text = text.replace(cantonese, mandarin)
    return text


def clean(raw: str) -> str:
    """NFKC, no control or invisible characters, single spaces."""
    text = unicodedata.normalize("NFKC", raw or "")
    text = _CTRL.sub("", _ANSI.sub("", text))
    return " ".join(text.split())


def normalise_command(text: str) -> str:
    """A reply reduced for matching against command words and answers (see the module doc)."""
    reduced = clean(text).lower().strip(_OUTER_PUNCTUATION)
    if _CJK.search(reduced):
        reduced = _phrases_to_simplified(reduced)
    return reduced


def language_of_hint(hint: str | None) -> str | None:
    """A language from a hint: ours (zh-Hant) or a client's locale (en-US, zh-TW, zh-hans)."""
    h = (hint or "").strip().lower().replace("_", "-")
    if not h:
        return None
    if h.startswith("en"):
        return "en"
    if h.startswith(("zh-hant", "zh-tw", "zh-hk", "zh-mo")):
        return "zh-Hant"
    if h.startswith("zh"):
        return "zh-Hans"
    return None


def _script_counts(chinese: str) -> tuple[int, int]:
    """(characters written only in Traditional, characters written only in Simplified)."""
    simplified = _converter("t2s").convert(chinese)
    # Taiwan's standard characters, without phrase changes: s2t would count 核 in 核查 (覈查) as Simplified.
    traditional = _converter("s2tw").convert(chinese)
    traditional_only = sum(a != b for a, b in zip(chinese, simplified, strict=False))
    simplified_only = sum(a != b for a, b in zip(chinese, traditional, strict=False))
    return traditional_only, simplified_only


@lru_cache(maxsize=8192)
def detect_language(text: str, hint: str | None = None) -> str:
    """zh-Hant, zh-Hans or en: from the text where it can tell, else from the hint, else zh-Hans."""
    known = language_of_hint(hint)
    if clean(text).lower().strip(_OUTER_PUNCTUATION).lstrip("/") in _NEUTRAL_WORDS:
        return known or DEFAULT_LANGUAGE
    chinese = "".join(_CJK.findall(text or ""))
    if chinese:
        traditional_only, simplified_only = _script_counts(chinese)
        if traditional_only > simplified_only:
            return "zh-Hant"
        if simplified_only > traditional_only:
            return "zh-Hans"
        # Written the same in both scripts (您好, 冇): a Traditional reader stays Traditional.
        return "zh-Hant" if known == "zh-Hant" else "zh-Hans"
    words = _LATIN_WORD.findall(text or "")
    if words and (known in (None, "en") or len(words) >= _ENGLISH_MIN_WORDS_FOR_CHINESE_READER):
        return "en"
    return known or DEFAULT_LANGUAGE


# Characters written only in Traditional that a message needs to be clearly Traditional: a word or two
# (確認, 生活費唔夠, a caption 呢張係收據) come from Simplified readers too, from Cantonese input methods and
# copied text; a sentence of Traditional is the writer's own script.
_TRADITIONAL_ONLY_TO_BE_CLEAR = 4


def clearly_traditional(text: str) -> bool:
    """Written in Traditional beyond doubt: read as zh-Hant, with enough characters that exist only in
    Traditional (a conversation in Simplified turns Traditional on such a message)."""
    chinese = "".join(_CJK.findall(text or ""))
    if not chinese:
        return False
    traditional_only, simplified_only = _script_counts(chinese)
    return traditional_only > simplified_only and traditional_only >= _TRADITIONAL_ONLY_TO_BE_CLEAR


# Chinese characters a message needs to be clearly Chinese: a word (低保, 社保) comes from English readers too.
_CHINESE_TO_BE_CLEAR = 4


def clearly_chinese(text: str) -> bool:
    """Written in Chinese beyond doubt: a sentence of Chinese characters with fewer English words beside it
    than Chinese characters in it (an English conversation turns Chinese on such a message)."""
    chinese = len(_CJK.findall(text or ""))
    return chinese >= _CHINESE_TO_BE_CLEAR and len(_LATIN_WORD.findall(text or "")) < chinese


# English words a message with no Chinese needs to be clearly English: Chinese readers type "ok", "ok thank
# you", an ID's last characters and English names.
_ENGLISH_WORDS_TO_BE_CLEAR = 5


def clearly_english(text: str) -> bool:
    """Written in English beyond doubt: a sentence of five or more English words and no Chinese character
    (a Chinese conversation turns English on such a message)."""
    return not _CJK.search(text or "") and len(_LATIN_WORD.findall(text or "")) >= _ENGLISH_WORDS_TO_BE_CLEAR


def localise(texts: Mapping[str, str], lang: str) -> str:
    """Pick a language from {"zh-Hans": ..., "en": ..., optional "zh-Hant": ...}: zh-Hant is
    converted from zh-Hans when not given; a missing English text falls back to zh-Hans."""
    if lang == "en":
        return texts.get("en") or texts["zh-Hans"]
    if lang == "zh-Hant":
        return texts.get("zh-Hant") or to_traditional(texts["zh-Hans"])
    return texts["zh-Hans"]
