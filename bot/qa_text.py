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

__all__ = ["simplified", "to_simplified", "to_traditional", "without_fillers"]
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
