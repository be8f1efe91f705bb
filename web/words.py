"""The words the console shows: labels for codes, and the English of the console's own text.

`label(group, code, lang)` is the console's one way to show a code (application type, stage,
status, task kind, reason, role, audit action, channel...): the project's catalogue of words
(`bot.words`, data in templates/words/), staff audience. An unknown code is never shown raw on
a Chinese page: it reads 其他 ("other").

`ui(text, lang)` translates the console's own sentences: templates and routes are written in
Chinese, and `templates/web/en.yaml` holds their English (a test checks that every sentence
used has one).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from bot.words import catalogue, staff_label

# libyaml's parser, several times faster than the pure-Python one (same results); the pure one
# where libyaml is absent.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

ZH, EN = "zh-Hans", "en"
LANGUAGES = (ZH, EN)
ENGLISH_FILE = Path(__file__).resolve().parent.parent / "templates" / "web" / "en.yaml"

# The catalogue's groups the console shows (a test checks each code has staff words).
CONSOLE_GROUPS = ("application_type", "stage", "task_kind", "task_status", "task_outcome", "ticket_status",
                  "handoff_reason", "close_reason", "outbox_status", "message_kind", "broadcast_status", "channel",
                  "role", "beneficiary_kind", "beneficiary_status", "relationship", "document",
                  "certification_method", "report_kind", "evidence", "audit_action", "audit_detail", "actor", "target",
                  "language", "task_cancel_reason")


def label(group: str, code: str | None, lang: str = ZH) -> str:
    """What staff read for `code` in `group`, in `lang`: the catalogue's staff words. A code the
    catalogue does not know reads 其他 ("other") on a Chinese page, never the code itself."""
    if code is None or code == "":
        return ""
    found = staff_label(group, str(code), EN if lang == EN else ZH)
    if found == str(code):
        return found.replace("_", " ") if lang == EN else "其他"
    return found


def choices(group: str, lang: str) -> list[tuple[str, str]]:
    """(code, label) for every code of a group, for drop-downs and filters."""
    return list(catalogue().labels(group, EN if lang == EN else ZH, "staff").items())


def codes(group: str) -> tuple[str, ...]:
    return catalogue().codes(group)


@lru_cache(maxsize=1)
def english() -> dict[str, str]:
    data = yaml.load(ENGLISH_FILE.read_text(encoding="utf-8"), Loader=_YAML_LOADER) or {}
    return {str(k): str(v) for k, v in data.items()}


def N_(text: str) -> str:
    """Marks a console sentence kept in data (menus, titles) for ui() later; returns it unchanged."""
    return text


def ui(text: str, lang: str = ZH, **values: Any) -> str:
    """The console's own sentence `text` (written in Chinese) in `lang`, with {values} filled."""
    out = english().get(text, text) if lang == EN else text
    return out.format(**values) if values else out
