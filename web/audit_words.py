"""Audit rows as sentences staff read: who did what to whom, with the why, in plain words.

`describe(row, names, lang)` turns an AuditLog row into one sentence ("变更申请环节：NX-2026-000042
从“受理”改为“办结”"); codes inside the details (stages, task kinds, channels, roles) are named
through the catalogue, phones stay masked as stored, and keys the sentence does not know are
left out rather than shown as a dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from models.staff import AuditLog
from web.words import EN, label, ui

# Details worth showing, in order, with the group that names their values (None: shown as written).
# The detail's own name is the catalogue's (group audit_detail).
DETAIL_KEYS: tuple[tuple[str, str | None], ...] = (
    ("reference", None),
    ("kind", "task_kind"),
    ("on", None),
    ("died_on", None),
    ("moved_on", None),
    ("method", "certification_method"),
    ("channel", "channel"),
    ("address", None),
    ("outcome", "task_outcome"),
    ("reported_by", None),
    ("evidence", None),
    ("by", "relationship"),
    ("document", "document"),
    ("language", "language"),
    ("username", None),
    ("imported", None),
    ("updated", None),
    ("rejected", None),
    ("path", None),
    ("ip", None),
    ("reason", None),
    ("note", None),
)
_REASON_GROUPS = {"ticket.close": "close_reason", "ticket.open": "handoff_reason", "task.cancel": "task_cancel_reason"}


@dataclass(frozen=True)
class Sentence:
    actor: str
    action: str
    target: str
    details: str

    @property
    def text(self) -> str:
        parts = [self.action + (("：" + self.target) if self.target else "")]
        if self.details:
            parts.append(self.details)
        return "，".join(parts)


def _target(row: AuditLog, names: Mapping[tuple[str, str], str], lang: str) -> str:
    named = names.get((row.target_type, row.target_id))
    if named:
        return named
    if not row.target_type:
        return ""
    return f"{label('target', row.target_type, lang)} {row.target_id}".strip()


def _value(key: str, value: Any, group: str | None, row: AuditLog, lang: str) -> str:
    if isinstance(value, bool):
        return ui("是", lang) if value else ui("否", lang)
    if isinstance(value, list):
        return "、".join(_value(key, v, group, row, lang) for v in value)
    if key == "reason" and row.action in _REASON_GROUPS:
        return label(_REASON_GROUPS[row.action], str(value), lang)
    if key == "kind" and str(value) in ("death", "move", "contact"):
        return label("report_kind", str(value), lang)
    return label(group, str(value), lang) if group else str(value)


def describe(row: AuditLog, names: Mapping[tuple[str, str], str], lang: str) -> Sentence:
    """One audit row as a sentence; `names` maps (target_type, target_id) to a readable name."""
    d = dict(row.details or {})
    actor = names.get(("staff", row.actor)) or (label("actor", row.actor, lang) if row.actor in (
        "bot", "system", "scheduler", "dispatcher", "demo", "console") else row.actor)
    action = label("audit_action", row.action, lang)
    parts: list[str] = []
    if row.action in ("application.stage",) and "to" in d:
        parts.append(ui("从“{a}”改为“{b}”", lang, a=label("stage", d.get("from"), lang) or "—",
                        b=label("stage", d.get("to"), lang)))
        d.pop("from", None), d.pop("to", None)
    elif row.action == "staff.roles":
        parts.append(ui("从“{a}”改为“{b}”", lang, a="、".join(label("role", r, lang) for r in d.pop("from", [])),
                        b="、".join(label("role", r, lang) for r in d.pop("to", []))))
    elif row.action in ("beneficiary.address", "contact.change"):
        parts.append(ui("从“{a}”改为“{b}”", lang, a=d.pop("from", ""), b=d.pop("to", "")))
    elif "roles" in d:
        parts.append(ui("角色", lang) + "：" + "、".join(label("role", r, lang) for r in d.pop("roles")))
    if "to" in d and row.action in ("task.assign", "ticket.assign"):
        to = d.pop("to")
        parts.append(ui("交给 {name}", lang, name=names.get(("staff_id", str(to)), ui("不指定", lang))))
    if row.target_type == "task":
        d.pop("kind", None)  # the task is named by its kind already
    for key, group in DETAIL_KEYS:
        if key in d and d[key] not in (None, "", [], {}):
            parts.append(f"{label('audit_detail', key, lang)}：{_value(key, d[key], group, row, lang)}")
    sep = ", " if lang == EN else "，"
    return Sentence(actor, action, _target(row, names, lang), sep.join(parts))
