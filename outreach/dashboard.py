"""The figures of the console's dashboard, each from one query, "today" in office time.

- due today: reminders and notices queued to go out today, by kind; open tasks due today (or
  overdue), by kind; certifications falling due today;
- open handoffs by age (under an hour, 1-4 h, 4-24 h, 1-3 days, older);
- applications per stage as a funnel in the order of seed 003 (staged, accepted, preliminary
  review, verification, payment notice, paid, completed), returned and rejected beside;
- deliveries of the last 30 days by channel and status;
- opt-outs per week (from the audit log: every opt-out counts, even one later undone);
- satisfaction from the surveys (seed 001's evaluation figures): answers, average score, the
  share satisfied (4 or 5) and the spread of scores.

Messages to staff (the daily summary, handoff alerts) are not deliveries to beneficiaries and
are left out of the delivery figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlmodel import Session, col

from models.applications import Application, HandoffTicket, Stage, SurveyAnswer, Task
from models.outbox import OutboxMessage, OutboxStatus
from models.staff import AuditLog

# Seed 003's stages in order; the two ways out are shown beside the funnel.
FUNNEL = (Stage.STAGED, Stage.ACCEPTED, Stage.PRELIMINARY_REVIEW, Stage.VERIFICATION, Stage.PAYMENT_NOTICE,
          Stage.PAID, Stage.COMPLETED)
BESIDE = (Stage.RETURNED, Stage.REJECTED)
# Open handoffs by how long they have waited: (label code, upper bound).
AGE_BUCKETS: tuple[tuple[str, timedelta | None], ...] = (
    ("under_1h", timedelta(hours=1)), ("1_4h", timedelta(hours=4)), ("4_24h", timedelta(hours=24)),
    ("1_3d", timedelta(days=3)), ("over_3d", None))
DELIVERY_STATUSES = (OutboxStatus.DELIVERED, OutboxStatus.SENT, OutboxStatus.QUEUED, OutboxStatus.SENDING,
                     OutboxStatus.FAILED, OutboxStatus.SUPPRESSED, OutboxStatus.CANCELLED)
STAFF_KINDS = ("staff_summary", "staff_handoff")


@dataclass(frozen=True)
class Dashboard:
    today: date
    due_messages: list[tuple[str, int]]  # (outbox kind, n) queued for today
    due_tasks: list[tuple[str, int]]  # (task kind, n) open and due today or before
    certifications_due: int
    handoffs_by_age: list[tuple[str, int]]
    funnel: list[tuple[str, int]]
    beside: list[tuple[str, int]]
    deliveries: dict[str, dict[str, int]]  # channel -> status -> n, last 30 days
    opt_outs_by_week: list[tuple[date, int]]  # Monday of the week (office time), oldest first
    satisfaction: Satisfaction
    application_type: str | None = None

    @property
    def open_handoffs(self) -> int:
        return sum(n for _, n in self.handoffs_by_age)


@dataclass(frozen=True)
class Satisfaction:
    answers: int
    average: float | None  # 1..5
    satisfied_share: float | None  # answers scoring 4 or 5
    by_score: dict[int, int] = field(default_factory=dict)
    since: date | None = None


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The office day as a UTC half-open interval."""
    start = datetime.combine(day, time(0), tz).astimezone(UTC)
    return start, datetime.combine(day + timedelta(days=1), time(0), tz).astimezone(UTC)


def due_messages(session: Session, day: date, tz: ZoneInfo) -> list[tuple[str, int]]:
    start, end = day_bounds(day, tz)
    o = OutboxMessage
    rows = session.execute(select(col(o.kind), func.count()).where(
        col(o.status) == OutboxStatus.QUEUED.value, col(o.next_attempt_at) < end,
        col(o.kind).not_in(STAFF_KINDS)).group_by(col(o.kind))).all()
    return sorted(((k, int(n)) for k, n in rows), key=lambda kn: (-kn[1], kn[0]))


def due_tasks(session: Session, day: date) -> list[tuple[str, int]]:
    rows = session.execute(select(col(Task.kind), func.count()).where(
        col(Task.status) == "open", col(Task.due_on) <= day).group_by(col(Task.kind))).all()
    return sorted(((k, int(n)) for k, n in rows), key=lambda kn: (-kn[1], kn[0]))


def handoffs_by_age(session: Session, now: datetime) -> list[tuple[str, int]]:
    """Open tickets by how long they have waited, in one query."""
    t = HandoffTicket
    whens = [(col(t.created_at) > now - bound, code) for code, bound in AGE_BUCKETS if bound is not None]
    bucket = case(*whens, else_=AGE_BUCKETS[-1][0])
    counts = dict(session.execute(select(bucket, func.count()).where(col(t.status) == "open")
                                  .group_by(bucket)).all())
    return [(code, int(counts.get(code, 0))) for code, _ in AGE_BUCKETS]


def funnel(session: Session, application_type: str | None = None) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Applications now at each stage: the funnel in seed 003's order, and returned / rejected."""
    a = Application
    stmt = select(col(a.stage), func.count()).group_by(col(a.stage))
    if application_type:
        stmt = stmt.where(col(a.type) == application_type)
    counts = {stage: int(n) for stage, n in session.execute(stmt).all()}
    return ([(s.value, counts.get(s.value, 0)) for s in FUNNEL], [(s.value, counts.get(s.value, 0)) for s in BESIDE])


def deliveries(session: Session, now: datetime, days: int = 30) -> dict[str, dict[str, int]]:
    o = OutboxMessage
    rows = session.execute(select(col(o.channel), col(o.status), func.count()).where(
        col(o.created_at) >= now - timedelta(days=days), col(o.kind).not_in(STAFF_KINDS))
        .group_by(col(o.channel), col(o.status))).all()
    out: dict[str, dict[str, int]] = {}
    for channel, status, n in rows:
        out.setdefault(channel, {})[status] = int(n)
    return out


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def opt_outs_by_week(session: Session, today: date, tz: ZoneInfo, weeks: int = 12) -> list[tuple[date, int]]:
    """Opt-outs recorded in each of the last `weeks` weeks (Monday to Sunday, office time)."""
    first = week_start(today) - timedelta(weeks=weeks - 1)
    start, _ = day_bounds(first, tz)
    stamps = session.execute(select(col(AuditLog.at)).where(
        col(AuditLog.action) == "contact.opt_out", col(AuditLog.at) >= start)).scalars()
    counts: dict[date, int] = {first + timedelta(weeks=i): 0 for i in range(weeks)}
    for at in stamps:
        monday = week_start(at.astimezone(tz).date())
        if monday in counts:
            counts[monday] += 1
    return sorted(counts.items())


def satisfaction(session: Session, today: date, tz: ZoneInfo, days: int = 365) -> Satisfaction:
    """Survey answers of the last `days` days: how many, the average, the share satisfied."""
    since = today - timedelta(days=days)
    start, _ = day_bounds(since, tz)
    by_score = {int(score): int(n) for score, n in session.execute(
        select(col(SurveyAnswer.score), func.count()).where(col(SurveyAnswer.created_at) >= start)
        .group_by(col(SurveyAnswer.score))).all()}
    answers = sum(by_score.values())
    if not answers:
        return Satisfaction(0, None, None, {s: 0 for s in range(1, 6)}, since)
    average = sum(s * n for s, n in by_score.items()) / answers
    satisfied = (by_score.get(4, 0) + by_score.get(5, 0)) / answers
    return Satisfaction(answers, round(average, 2), round(satisfied, 3),
                        {s: by_score.get(s, 0) for s in range(1, 6)}, since)


def dashboard(session: Session, *, now: datetime, tz: ZoneInfo, application_type: str | None = None) -> Dashboard:
    from outreach.sweeps import certification_due_count

    today = now.astimezone(tz).date()
    stages, beside = funnel(session, application_type)
    return Dashboard(today=today, due_messages=due_messages(session, today, tz), due_tasks=due_tasks(session, today),
                     certifications_due=int(certification_due_count(session, today)),
                     handoffs_by_age=handoffs_by_age(session, now), funnel=stages, beside=beside,
                     deliveries=deliveries(session, now), opt_outs_by_week=opt_outs_by_week(session, today, tz),
                     satisfaction=satisfaction(session, today, tz), application_type=application_type)


def as_dict(d: Dashboard) -> dict[str, Any]:
    """Plain figures (for `/stats` on Telegram and JSON)."""
    return {"today": d.today.isoformat(), "due_messages": dict(d.due_messages), "due_tasks": dict(d.due_tasks),
            "certifications_due": d.certifications_due, "handoffs_by_age": dict(d.handoffs_by_age),
            "funnel": dict(d.funnel), "beside": dict(d.beside), "deliveries": d.deliveries,
            "opt_outs_by_week": {k.isoformat(): v for k, v in d.opt_outs_by_week},
            "satisfaction": {"answers": d.satisfaction.answers, "average": d.satisfaction.average,
                             "satisfied_share": d.satisfaction.satisfied_share,
                             "by_score": d.satisfaction.by_score}}


__all__ = ["Dashboard", "Satisfaction", "dashboard", "as_dict", "FUNNEL", "BESIDE", "AGE_BUCKETS", "day_bounds"]
