"""`nuanxin schedule ...`: what the scheduler would send when, without sending."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

import typer

schedule_app = typer.Typer(help="The scheduler: what it sends when.", no_args_is_help=True)


def festival_preview(session: Any, start: date, days: int, tz: Any, occasion_rules: dict[str, Any] | None = None,
                     today: date | None = None) -> list[dict[str, Any]]:
    """One entry per festival occasion in [start, start + days): its date, when the greeting goes
    (office time), and how many would get it today (reachable, active, in its audience).
    Occasions switched off (empty audience, e.g. lantern) are listed with audience 0.
    `occasion_rules`: the rules in force (the file with the office's changes, see
    outreach/occasion_settings.py); the file's alone when not given."""
    from outreach.audiences import AudienceFilter, audience_size
    from outreach.occasions import load_occasion_rules, occasions_between

    rules = occasion_rules or load_occasion_rules()
    today = today or datetime.now(tz).date()
    sizes: dict[frozenset[str], int] = {}
    out = []
    end = start + timedelta(days=days - 1)
    # A greeting sent the day before (Spring Festival's eve) belongs to the festival's date.
    for name, day in occasions_between(start, end + timedelta(days=7)):
        rule = rules[name]
        send_at = rule.send_at(day, tz).astimezone(tz)
        if not start <= send_at.date() <= end and not start <= day <= end:
            continue
        if rule.audience not in sizes:
            sizes[rule.audience] = (
                audience_size(session, AudienceFilter.model_validate({"kinds": sorted(rule.audience)}), today).reachable
                if rule.audience else 0)
        out.append({"kind": "festival_greeting", "occasion": name, "occasion_date": day.isoformat(),
                    "send_at": send_at.isoformat(), "audience": sizes[rule.audience],
                    "audience_kinds": sorted(rule.audience), "enabled": bool(rule.audience)})
    return sorted(out, key=lambda e: (e["send_at"], e["occasion"]))


def payment_preview(session: Any, start: date, days: int, tz: Any) -> list[dict[str, Any]]:
    """The daily payment run's notices per day: per scheme that notifies, the members it pays
    that day (their own payment day, else the scheme's) who can be reached."""
    from sqlalchemy import func, select

    from models.people import SchemeMembership
    from outreach import reach
    from outreach.schedule_rules import default_rules
    from outreach.sweeps import PAYMENT_KIND, B, _payment_days_for

    rules = default_rules()
    m = SchemeMembership.__table__  # type: ignore[attr-defined]
    out = []
    for i in range(days):
        day = start + timedelta(days=i)
        for scheme, rule in rules.payments.schemes.items():
            if not rule.notify:
                continue
            n = session.execute(select(func.count()).select_from(m.join(B, B.c.id == m.c.beneficiary_id)).where(
                m.c.scheme == scheme, m.c.period == day.year, m.c.amount_fen.is_not(None),
                func.coalesce(m.c.payment_day, rule.payment_day).in_(_payment_days_for(day)),
                *reach.person_clauses(reach.class_of(PAYMENT_KIND)),
                reach.best_contact_id(B, reach.class_of(PAYMENT_KIND)).is_not(None))).scalar_one()
            if n:
                out.append({"kind": PAYMENT_KIND, "occasion": scheme, "occasion_date": day.isoformat(),
                            "send_at": datetime.combine(day, rules.send_time, tz).isoformat(), "audience": int(n)})
    return out


def upcoming(session: Any, start: date, days: int, tz: Any, *, occasion_rules: dict[str, Any] | None = None,
             everything: bool = True, today: date | None = None) -> list[dict[str, Any]]:
    """Everything the scheduler will send in [start, start + days), in sending order: festivals,
    and with `everything` the certification reminders, payment notices and scheduled broadcasts."""
    entries = festival_preview(session, start, days, tz, occasion_rules, today=today)
    if everything:
        entries += (daily_preview(session, start, days, tz) + payment_preview(session, start, days, tz)
                    + scheduled_broadcasts(session, start, days, tz, today=today))
    return sorted(entries, key=lambda e: (e["send_at"], e["kind"], e["occasion"]))


def per_day(entries: list[dict[str, Any]], tz: Any) -> list[tuple[date, int, list[dict[str, Any]]]]:
    """Entries grouped by the office day they are sent on, with how many messages that day."""
    days: dict[date, list[dict[str, Any]]] = {}
    for e in entries:
        days.setdefault(datetime.fromisoformat(e["send_at"]).astimezone(tz).date(), []).append(e)
    return [(day, sum(int(e["audience"]) for e in items if e.get("enabled", True)), items)
            for day, items in sorted(days.items())]


def daily_preview(session: Any, start: date, days: int, tz: Any) -> list[dict[str, Any]]:
    """The daily sweep's certification reminders per day (who reaches 30/7/1 days before)."""
    from sqlalchemy import func, select

    from outreach.reach import B, best_contact_id, class_of, person_clauses
    from outreach.schedule_rules import default_rules
    from outreach.sweeps import preimage

    rules = default_rules()
    out = []
    for i in range(days):
        day = start + timedelta(days=i)
        for offset in rules.certification.reminder_days:
            due = day + timedelta(days=offset)
            first, last = preimage(due, due, 1)
            kind = f"cert_reminder_{offset}"
            n = session.execute(select(func.count()).select_from(B).where(
                *person_clauses(class_of(kind)), B.c.is_retiree.is_(True), B.c.last_certified_on.between(first, last),
                best_contact_id(B, class_of(kind)).is_not(None))).scalar_one()
            if n:
                out.append({"kind": f"cert_reminder_{offset}", "occasion": "certification",
                            "occasion_date": due.isoformat(), "send_at": rules.send_at(day, tz).isoformat(),
                            "audience": int(n)})
    return out


def scheduled_broadcasts(session: Any, start: date, days: int, tz: Any, today: date | None = None
                         ) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from models.outbox import Broadcast
    from outreach.audiences import AudienceFilter, audience_size

    out = []
    today = today or datetime.now(tz).date()
    for b in session.execute(select(Broadcast).where(Broadcast.status.in_(("scheduled", "approved",  # type: ignore[attr-defined]
                                                                          "pending_approval")))).scalars():
        if b.scheduled_for is None:
            continue
        local = b.scheduled_for.astimezone(tz)
        if start <= local.date() < start + timedelta(days=days):
            out.append({"kind": "staff_broadcast", "occasion": f"broadcast-{b.id}", "occasion_date": local.date().isoformat(),
                        "send_at": local.isoformat(), "status": b.status, "title": b.title,
                        "audience": audience_size(session, AudienceFilter.model_validate(b.audience), today).reachable})
    return out


def register(app: typer.Typer) -> None:
    app.add_typer(schedule_app, name="schedule")

    @schedule_app.command("preview")
    def preview(
        from_: str = typer.Option(None, "--from", help="First day (YYYY-MM-DD, office time); default today."),
        days: int = typer.Option(366, "--days", min=1, max=3700, help="How many days to look ahead."),
        as_json: bool = typer.Option(False, "--json", help="Print a JSON list of entries."),
        everything: bool = typer.Option(False, "--all", help="Also the daily certification reminders, payment "
                                                             "notices and scheduled broadcasts, not only festivals."),
    ) -> None:
        """What would be sent when, without sending: one entry per occasion and kind, with its
        date, send time (office time) and audience size."""
        from cli import _engine, _settings
        from models.db import session_scope

        settings = _settings()
        tz = settings.tz
        try:
            start = date.fromisoformat(from_) if from_ else datetime.now(tz).date()
        except ValueError:
            typer.echo(f"--from: {from_!r} is not a date like 2026-03-02", err=True)
            raise typer.Exit(2) from None
        from outreach.occasion_settings import occasion_rules

        with session_scope(_engine()) as session:
            entries = upcoming(session, start, days, tz, occasion_rules=occasion_rules(session, settings),
                               everything=everything)
        if as_json:
            typer.echo(json.dumps(entries, ensure_ascii=False))
            return
        if not entries:
            typer.echo("nothing scheduled in that period")
        for e in entries:
            off = "" if e.get("enabled", True) else "  (off)"
            typer.echo(f"{e['send_at'][:16].replace('T', ' ')}  {e['kind']:<18} {e['occasion']:<16} "
                       f"{e['occasion_date']}  {e['audience']:>8}{off}")
