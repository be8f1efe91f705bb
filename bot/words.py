"""The catalogue of words people see: every code shown to a person, in each language, per audience.

`label(group, code, lang, audience="beneficiary")` is how the bot, the message templates
(the Jinja2 `label()` global) and the staff console name a code: an application type, a
stage, a status, a task kind, a reason, a role, an audit action, a channel, a document...
The words are data, one file per group in `templates/words/<group>.yaml`:

    mutual_aid_claim:                              # the code
      beneficiary: {zh-Hans: 医疗互助报销, en: medical mutual-aid claim}
      staff: {zh-Hans: 医疗互助报销, en: Medical mutual-aid claim}
    hardship: {zh-Hans: 困难帮扶, en: hardship help}   # the same words for both audiences

zh-Hans and en are required; zh-Hant is converted from zh-Hans by bot/language.py (in the
configured regional variant) unless written. Beneficiaries read plain words ("工作人员正在初审
材料"), staff the office's own terms ("初审"). `GROUP_CODES` names the enum each group's codes
come from: a test checks that every member of every such enum has its words.

A code the catalogue does not know is shown as the code itself (a new status must never
break a page); an unknown group or audience is a programming error and raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import yaml

from bot.language import DEFAULT_LANGUAGE, LANGUAGES, configured_variant, kept_conversions, to_traditional
from models.applications import (
    ApplicationType,
    HandoffReason,
    Stage,
    TaskKind,
    TaskStatus,
    TicketStatus,
)
from models.outbox import BroadcastStatus, OutboxStatus
from models.people import BeneficiaryKind, BeneficiaryStatus, Channel, Language
from models.staff import Role
from outreach.reach import Stop

# libyaml's parser, several times faster than the pure-Python one (same results); the pure one
# where libyaml is absent.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

WORDS_DIR: Final = Path(__file__).resolve().parent.parent / "templates" / "words"
AUDIENCES: Final = ("beneficiary", "staff")
REQUIRED_LANGUAGES: Final = ("zh-Hans", "en")

# The groups whose codes are an enum of the models: each member must have its words.
GROUP_CODES: Final[Mapping[str, type[StrEnum]]] = {
    "application_type": ApplicationType,
    "stage": Stage,
    "stage_next": Stage,
    "outbox_status": OutboxStatus,
    "broadcast_status": BroadcastStatus,
    "task_status": TaskStatus,
    "ticket_status": TicketStatus,
    "task_kind": TaskKind,
    "handoff_reason": HandoffReason,
    "suppression_reason": Stop,
    "role": Role,
    "channel": Channel,
    "language": Language,
    "beneficiary_kind": BeneficiaryKind,
    "beneficiary_status": BeneficiaryStatus,
}


class WordsProblem(ValueError):
    """A words file is wrong; the message names the file, the code and the field."""


class UnknownGroup(KeyError):
    """No words file holds this group."""


@dataclass(frozen=True)
class Word:
    """One code's words: audience -> language -> text, every audience and language filled in."""

    code: str
    texts: Mapping[str, Mapping[str, str]]


def _languages(raw: Any, where: str, variant: str) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise WordsProblem(f"{where}: needs a mapping of language -> text")
    for lang in raw:
        if lang not in LANGUAGES:
            raise WordsProblem(f"{where}.{lang}: unknown language (use {', '.join(LANGUAGES)})")
    texts: dict[str, str] = {}
    for lang in LANGUAGES:
        value = raw.get(lang)
        if value is None and lang == "zh-Hant":
            continue
        if not isinstance(value, str | int | float) or not str(value).strip():
            raise WordsProblem(f"{where}.{lang}: missing text")
        texts[lang] = str(value)
    texts.setdefault("zh-Hant", to_traditional(texts["zh-Hans"], variant))
    return texts


def _word(code: str, raw: Any, where: str, variant: str) -> Word:
    if isinstance(raw, dict) and set(raw) & set(AUDIENCES):
        unknown = set(raw) - set(AUDIENCES)
        if unknown:
            raise WordsProblem(f"{where}: {', '.join(sorted(unknown))}: unknown audience (use beneficiary, staff)")
        missing = [a for a in AUDIENCES if a not in raw]
        if missing:
            raise WordsProblem(f"{where}.{missing[0]}: missing (give both audiences, or one text for both)")
        return Word(code, {a: _languages(raw[a], f"{where}.{a}", variant) for a in AUDIENCES})
    same = _languages(raw, where, variant)
    return Word(code, {a: same for a in AUDIENCES})


def _load_group(path: Path, variant: str) -> dict[str, Word]:
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        raise WordsProblem(f"{path.name}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict) or not raw:
        raise WordsProblem(f"{path.name}: must map each code to its words")
    return {str(code): _word(str(code), value, f"{path.name}: {code}", variant) for code, value in raw.items()}


class Catalogue:
    """Every group of words, loaded and checked once."""

    def __init__(self, groups: Mapping[str, Mapping[str, Word]]) -> None:
        self._groups = groups

    @classmethod
    def load(cls, directory: Path = WORDS_DIR, variant: str | None = None) -> Catalogue:
        """Read `directory/*.yaml` (one group per file); raise WordsProblem naming file and field."""
        variant = variant or configured_variant()
        groups = {path.stem: _load_group(path, variant) for path in sorted(directory.glob("*.yaml"))}
        if not groups:
            raise WordsProblem(f"{directory}: no words files")
        return cls(groups)

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(self._groups)

    def codes(self, group: str) -> tuple[str, ...]:
        return tuple(self._group(group))

    def _group(self, group: str) -> Mapping[str, Word]:
        try:
            return self._groups[group]
        except KeyError:
            raise UnknownGroup(f"no words for group {group!r} (known: {', '.join(self._groups)})") from None

    def texts(self, group: str, code: str, audience: str = "beneficiary") -> Mapping[str, str] | None:
        """{language: text} of one code for one audience, or None when the code is unknown."""
        word = self._group(group).get(code)
        return None if word is None else word.texts[_audience(audience)]

    def label(self, group: str, code: str, lang: str | None, audience: str = "beneficiary") -> str:
        texts = self.texts(group, code, audience)
        if texts is None:
            return code
        return texts[lang if lang in LANGUAGES else DEFAULT_LANGUAGE]

    def labels(self, group: str, lang: str | None, audience: str = "beneficiary") -> dict[str, str]:
        """Every code of a group with its words (for lists, filters and drop-downs)."""
        return {code: self.label(group, code, lang, audience) for code in self._group(group)}


def _audience(audience: str) -> str:
    if audience not in AUDIENCES:
        raise ValueError(f"unknown audience {audience!r} (use {' or '.join(AUDIENCES)})")
    return audience


def catalogue(variant: str | None = None) -> Catalogue:
    """The process's catalogue (zh-Hant in the configured variant, or the one given), loaded once."""
    return _catalogue(variant or configured_variant())


@lru_cache(maxsize=4)
def _catalogue(variant: str) -> Catalogue:
    # Keyed by the variant itself: the configured one asked for by name is the same catalogue.
    with kept_conversions():  # fixed texts: their zh-Hant is read back on the next start (bot/language.py)
        return Catalogue.load(WORDS_DIR, variant)


def label(group: str, code: str, lang: str | None, audience: str = "beneficiary") -> str:
    """The words for `code` of `group` in `lang`, for a beneficiary or a member of staff."""
    return catalogue().label(group, code, lang, audience)


def labels(group: str, lang: str | None, audience: str = "beneficiary") -> dict[str, str]:
    """Every code of `group` with its words in `lang` for `audience`."""
    return catalogue().labels(group, lang, audience)


def staff_label(group: str, code: str | None, lang: str | None = "zh-Hans") -> str:
    """What the console shows for a code: the staff words (the code itself when unknown; '' for none)."""
    return "" if code is None or code == "" else catalogue().label(group, str(code), lang, "staff")
