"""An office's changes to the festival occasions, kept in the database (`OccasionSetting`).

`outreach/occasions.yaml` (or the office's own file) holds the defaults; a change made in the
console switches an occasion off or on, moves its send time, or names who gets it, and is
applied on top of the file field by field (`occasions.load_occasion_rules(overrides=...)`).
The scheduler reads `occasion_rules` every time it plans or sends a greeting, so a change
takes effect without a restart. Every change is audited.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from models.actions import audit
from models.scheduler import OccasionSetting
from outreach.occasions import KINDS, OCCASIONS, OccasionRule, load_occasion_rules


class OccasionChangeRefused(ValueError):
    """The change cannot be made; the message says why (Chinese / English)."""


def overrides(session: Session) -> dict[str, dict[str, Any]]:
    """The stored changes as `load_occasion_rules` overrides."""
    out: dict[str, dict[str, Any]] = {}
    for row in session.execute(select(OccasionSetting)).scalars():
        spec: dict[str, Any] = {}
        if row.audience is not None:
            spec["audience"] = list(row.audience)
        if not row.enabled:
            spec["audience"] = []
        if row.send_time:
            spec["send_time"] = row.send_time
        out[row.occasion] = spec
    return out


def occasion_rules(session: Session, settings: Any = None) -> dict[str, OccasionRule]:
    """The rules in force: the occasions file (settings.occasions_file, else the default) with
    the office's stored changes on top."""
    return load_occasion_rules(getattr(settings, "occasions_file", None), overrides(session))


def file_rules(settings: Any = None) -> dict[str, OccasionRule]:
    return load_occasion_rules(getattr(settings, "occasions_file", None))


def version(session: Session) -> tuple[int, datetime | None]:
    """Changes so far and the latest: the scheduler re-plans its greetings when this moves."""
    n, latest = session.execute(select(func.count(), func.max(OccasionSetting.updated_at))).one()  # type: ignore[arg-type]
    return int(n), latest


def change_occasion(session: Session, occasion: str, *, actor: str, now: datetime, settings: Any = None,
                    enabled: bool, send_time: str | None = None, audience: list[str] | None = None) -> OccasionRule:
    """Switch an occasion on or off, move its time (office time, outside quiet hours) or name
    who gets it; `send_time` / `audience` None keeps the file's. Returns the rule now in force."""
    if occasion not in OCCASIONS:
        raise OccasionChangeRefused(f"不认识的节日 / unknown occasion {occasion!r}")
    if send_time:
        try:
            at = time.fromisoformat(send_time)
        except ValueError:
            raise OccasionChangeRefused(f"时间要写成 09:00 这样 / {send_time!r} is not a time like 09:00") from None
        if settings is not None:
            start, end = settings.quiet_hours_start, settings.quiet_hours_end
            quiet = (start <= at or at < end) if start > end else (start <= at < end)
            if quiet:
                raise OccasionChangeRefused(f"{at:%H:%M} 在免打扰时段（{start:%H:%M}–{end:%H:%M}）内 / "
                                            f"{at:%H:%M} is within quiet hours")
        send_time = f"{at:%H:%M}"
    if audience is not None:
        unknown = set(audience) - KINDS
        if unknown:
            raise OccasionChangeRefused(f"不认识的对象 / unknown kind(s) {', '.join(sorted(unknown))}")
        audience = sorted(set(audience))
    defaults = file_rules(settings)[occasion]
    if enabled and not (audience if audience is not None else defaults.audience):
        raise OccasionChangeRefused("请选择发给哪些人 / choose who gets the greeting")
    row = session.get(OccasionSetting, occasion) or OccasionSetting(occasion=occasion)
    before = {"enabled": row.enabled, "send_time": row.send_time, "audience": row.audience}
    row.enabled, row.send_time, row.audience = enabled, send_time or None, audience
    row.updated_by, row.updated_at = actor, now
    session.add(row)
    audit(session, actor, "schedule.occasion", "occasion", occasion,
          {"before": before, "after": {"enabled": enabled, "send_time": row.send_time, "audience": audience}}, now)
    session.flush()
    return occasion_rules(session, settings)[occasion]


def reset_occasion(session: Session, occasion: str, *, actor: str, now: datetime) -> None:
    """Back to the file's rule."""
    row = session.get(OccasionSetting, occasion)
    if row is None:
        return
    session.delete(row)
    audit(session, actor, "schedule.occasion_reset", "occasion", occasion, {}, now)
    session.flush()


__all__ = ["OccasionChangeRefused", "overrides", "occasion_rules", "file_rules", "version", "change_occasion",
           "reset_occasion"]
