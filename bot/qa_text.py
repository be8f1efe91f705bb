"""Text forms for searching questions: Simplified Chinese with dialect words in standard form.

Script conversion is bot/language.py's (the project's one OpenCC place); this module adds
what only searching needs: Cantonese and colloquial forms, voice-input fillers.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import yaml

from bot.language import to_simplified, to_traditional

# libyaml's parser, several times faster than the pure-Python one (same results); the pure one
# where libyaml is absent.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

__all__ = ["EnglishSpelling", "simplified", "to_simplified", "to_traditional", "without_english_fillers",
           "without_fillers"]
DIALECT_FILE = Path(__file__).resolve().parent.parent / "knowledge" / "dialect.yaml"


@lru_cache(maxsize=1)
def _dialect() -> tuple[re.Pattern[str] | None, dict[str, str]]:
    try:
        data = yaml.load(DIALECT_FILE.read_text(encoding="utf-8"), Loader=_YAML_LOADER) or {}
    except FileNotFoundError:
        return None, {}
    forms = {str(k): str(v or "") for k, v in (data.get("forms") or {}).items()}
    if not forms:
        return None, {}
    return re.compile("|".join(map(re.escape, sorted(forms, key=len, reverse=True)))), forms


@lru_cache(maxsize=8192)
def simplified(text: str) -> str:
    """Lower-case Simplified Chinese with Cantonese and colloquial forms in standard Mandarin."""
    pattern, forms = _dialect()
    if pattern is not None:
        text = pattern.sub(lambda m: forms[m.group(0)], text)
    return to_simplified(text.lower())


# Voice input and chat fillers that carry nothing a search could use.
_FILLERS = re.compile(r"嗯+|呃+|额+|哎+|唉+|啊+|呀+|哦+|噢+|就是说|然后呢|然后|那个那个|对吧|你知道吧|怎么说呢|这么说吧")


def without_fillers(text: str) -> str:
    return _FILLERS.sub(" ", text)


# The same for English voice input and chat ("um so yeah my dad ...").
_EN_FILLERS = re.compile(r"\b(um+|uh+|erm+|er|hmm+|ah+|yeah|you know|i mean|ok so|okay so|so yeah|basically)\b[,.]?")


def without_english_fillers(text: str) -> str:
    return re.sub(r"\s{2,}", " ", _EN_FILLERS.sub(" ", text)).strip()


_EN_WORD = re.compile(r"[A-Za-z]+")
# Words of questions that the articles themselves may never write.
_EN_QUESTION_WORDS = (
    "what which who whom whose when where why how does do did is are was were can could would should will "
    "every everyone anything something someone somebody anybody actually really average monthly yearly each "
    "about after before because since until still also there their they them then than this that these those"
)


class EnglishSpelling:
    """Misspelt English words put back as the knowledge base writes them ("mutal aid" ->
    "mutual aid", "wher" -> "where"), so that a typo neither misses the article nor hides
    what is asked.

    Only a lower-case word of four letters or more that the knowledge never writes is
    changed, and only into the one closest word of its vocabulary of four letters or more
    (difflib's ratio >= 0.85: one letter added or dropped, or one changed in a long word);
    capitalised words (names), ties and anything without such a neighbour stay as typed.
    """

    def __init__(self, knowledge_text: str) -> None:
        self._vocabulary = {w.lower() for w in _EN_WORD.findall(knowledge_text)} | set(_EN_QUESTION_WORDS.split())
        self._by_length: dict[int, list[str]] = {}
        for word in self._vocabulary:
            self._by_length.setdefault(len(word), []).append(word)

    @lru_cache(maxsize=4096)  # noqa: B019 - one instance per knowledge base, kept as long as it
    def _fixed(self, word: str) -> str:
        from difflib import SequenceMatcher

        if len(word) < 4 or word in self._vocabulary or not word.islower():
            return word
        matcher = SequenceMatcher(b=word, autojunk=False)
        scored = []
        for candidate in (w for n in range(max(4, len(word) - 1), len(word) + 2) for w in self._by_length.get(n, ())):
            matcher.set_seq1(candidate)
            if matcher.real_quick_ratio() >= 0.85 and matcher.quick_ratio() >= 0.85 and matcher.ratio() >= 0.85:
                scored.append((matcher.ratio(), candidate))
        scored.sort(reverse=True)
        if not scored or (len(scored) > 1 and scored[1][0] == scored[0][0]):
            return word  # no neighbour, or two equally close: leave it as typed
        return scored[0][1]

    def fix(self, text: str) -> str:
        return _EN_WORD.sub(lambda m: self._fixed(m.group(0)), text)
