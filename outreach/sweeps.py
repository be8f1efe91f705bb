"""WHO is due and WHAT they get: the sweeps the scheduler triggers.

Each sweep asks the database, in set-based SQL, who is due *as of today (office time) and
not yet sent*, then enqueues with idempotency keys `(kind, person, occurrence)`. So:
- a re-run, a restart mid-sweep or a second process enqueues nothing twice (the anti-join
  on the outbox's unique key skips the already-sent before any row is built, and the
  insert's ON CONFLICT DO NOTHING covers a race);
- a day the scheduler was down is covered by the next run (the windows below reach back).

Catch-up rules (how late is too late):
- certification reminders (seed 001): due = last certified + 1 year; a reminder offset d
  (30, 7, 1 days) is "current" from d days before until the next smaller offset takes over,
  and the last until the due date itself. A missed reminder is sent once while it is still
  current; one that a later reminder superseded is skipped (two reminders on one morning
  are noise to an 85-year-old), and none is sent after the due date: then the home visit
  (overdue by 15 days) takes over.
- over-80 notice (seed 000): up to `over_80.catch_up_days` after the 80th birthday.
- payment notices: up to `payments.catch_up_days` after the payment day.
- payment-deadline reminder (seed 003): from 3 days before the deadline until the deadline.
- festival greetings are not in the daily sweep: each has its own job at its send time,
  and a greeting carries a deadline at the end of its day, so it never arrives stale.

Bodies are rendered once per (language, channel, occurrence) group, not per person: these
notices carry no name, which keeps a 1,000,000-person sweep to a few hundred renders.
Nobody deceased or moved (status), and nobody who has opted out on any channel, gets
anything; a contact that is blocked or invalid is not used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, Integer, String, cast, exists, func, literal, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import aliased
from sqlmodel import Session

from models.applications import Application, ApplicationType, HandoffTicket, Stage, Task, TaskKind
from models.clock import Clock
from models.db import session_scope
from models.outbox import OutboxMessage
from models.people import Beneficiary, BeneficiaryStatus, Contact, SchemeMembership
from models.staff import AuditLog
from outreach.outbox import enqueue_many, idempotency_key
from outreach.schedule_rules import ScheduleRules, default_rules

log = logging.getLogger(__name__)

# (kind, lang, context, channel) -> text. The default is outreach.templates.render.
Renderer = Callable[[str, str, dict[str, Any], str], str]

ACTOR = "scheduler"
SENDABLE_CHANNELS = ("telegram", "sms")


# --- dates -------------------------------------------------------------------------------

def add_years(day: date, years: int) -> date:
    """`day` plus whole years; 29 February becomes 28 February in a common year."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def preimage(lo: date, hi: date, years: int) -> tuple[date, date]:
    """The range of dates L with add_years(L, years) in [lo, hi] (add_years is monotone, so it
    is one contiguous range; computed here so that the SQL is a plain indexed BETWEEN)."""
    first = add_years(lo, -years)
    while add_years(first - timedelta(days=1), years) >= lo:
        first -= timedelta(days=1)
    while add_years(first, years) < lo:
        first += timedelta(days=1)
    last = add_years(hi, -years)
    while add_years(last + timedelta(days=1), years) <= hi:
        last += timedelta(days=1)
    while add_years(last, years) > hi:
        last -= timedelta(days=1)
    return first, last


def office_day(now: datetime, tz: ZoneInfo) -> date:
    return now.astimezone(tz).date()


def end_of_day(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(0), tz).astimezone(UTC)


# --- rendering ---------------------------------------------------------------------------

def default_renderer(kind: str, lang: str, context: dict[str, Any], channel: str) -> str:
    from outreach.templates import render

    out: Any = render(kind, lang, context, channel)
    if isinstance(out, str):
        return out
    for attr in ("body", "text"):
        value = getattr(out, attr, None)
        if isinstance(value, str):
            return value
    return str(out)


def sms_segments(text: str) -> int:
    from outreach.sms_text import sms_length

    return sms_length(text).segments


# --- who can be reached ------------------------------------------------------------------

def best_contact_id(person: Any) -> Any:
    """Correlated subquery: the contact a proactive message to `person` goes to.

    The person's own address before a family member's, Telegram (free, rich) before SMS,
    verified before unverified; never one that is blocked, invalid or opted out.
    """
    c = aliased(Contact)
    return (
        select(c.id)
        .where(c.beneficiary_id == person.id, c.channel.in_(SENDABLE_CHANNELS),  # type: ignore[attr-defined]
               c.opted_out_at.is_(None), c.blocked_at.is_(None), c.invalid_at.is_(None))  # type: ignore[union-attr]
        .order_by(c.family_member_id.is_not(None), c.channel != "telegram",  # type: ignore[union-attr]
                  c.verified.desc(), c.id)  # type: ignore[attr-defined]
        .limit(1)
        .correlate(person)
        .scalar_subquery()
    )


def opted_out_anywhere(person: Any) -> Any:
    """A person who said stop on any channel gets nothing proactive on any channel: an
    elderly person replying 退订 means "stop messaging me", not "use my other number"."""
    c = aliased(Contact)
    return exists().where(c.beneficiary_id == person.id, c.opted_out_at.is_not(None))  # type: ignore[union-attr]


def key_expr(kind: str, person_id: Any, occurrence: str) -> Any:
    """SQL for `idempotency_key(kind, f"b{id}", occurrence)`, to anti-join on the unique key."""
    prefix, suffix = idempotency_key(kind, "b", occurrence).split("b:", 1)
    return literal(prefix + "b", String) + cast(person_id, String) + literal(":" + suffix, String)


def already_queued(kind: str, person_id: Any, occurrence: str) -> Any:
    o = aliased(OutboxMessage)
    return exists().where(o.idempotency_key == key_expr(kind, person_id, occurrence))


@dataclass
class Recipient:
    beneficiary_id: int
    language: str
    contact_id: int
    channel: str
    address: str
    extra: dict[str, Any] = field(default_factory=dict)


def due_recipients(session: Session, where: Sequence[Any], kind: str, occurrence: str,
                   extra_columns: Sequence[Any] = (), joins: Sequence[tuple[Any, Any]] = ()) -> list[Recipient]:
    """Active people matching `where`, with the contact to use, who have not yet been sent
    `(kind, occurrence)`. One query; the anti-join uses the outbox's unique key index."""
    b = Beneficiary
    contact_id = best_contact_id(b)
    inner = select(b.id.label("bid"), b.language.label("lang"), contact_id.label("cid"),  # type: ignore[union-attr]
                   *extra_columns)
    for target, on in joins:
        inner = inner.join(target, on)
    inner = inner.where(b.status == BeneficiaryStatus.ACTIVE.value, *where, ~opted_out_anywhere(b),
                        ~already_queued(kind, b.id, occurrence)).subquery()
    extra_names = [c.name for c in extra_columns]
    stmt = (select(inner, Contact.channel, Contact.address)
            .join(Contact, Contact.id == inner.c.cid))  # type: ignore[arg-type]
    out = []
    for row in session.execute(stmt).mappings():
        out.append(Recipient(row["bid"], row["lang"] or "zh-Hans", row["cid"], row["channel"], row["address"],
                             {n: row[n] for n in extra_names}))
    return out


def enqueue_grouped(session: Session, recipients: Iterable[Recipient], *, kind: str, occurrence: str,
                    context: dict[str, Any], now: datetime, not_before: datetime | None,
                    deadline_at: datetime | None = None, renderer: Renderer,
                    broadcast_id: int | None = None) -> int:
    """Render once per (language, channel) and enqueue every recipient in bulk."""
    bodies: dict[tuple[str, str], tuple[str, int]] = {}
    rows = []
    for r in recipients:
        group = (r.language, r.channel)
        if group not in bodies:
            text = renderer(kind, r.language, context, r.channel)
            bodies[group] = (text, sms_segments(text) if r.channel == "sms" else 1)
        body, segments = bodies[group]
        rows.append({
            "idempotency_key": idempotency_key(kind, f"b{r.beneficiary_id}", occurrence),
            "kind": kind, "occurrence": occurrence, "beneficiary_id": r.beneficiary_id,
            "contact_id": r.contact_id, "channel": r.channel, "address": r.address, "language": r.language,
            "body": body, "segments": segments, "next_attempt_at": not_before or now,
            "deadline_at": deadline_at, "broadcast_id": broadcast_id,
        })
    if not rows:
        return 0
    return enqueue_many(session, rows, now=now)


# --- tasks in bulk -----------------------------------------------------------------------

def insert_tasks(session: Session, rows: list[dict[str, Any]], now: datetime) -> int:
    """Open tasks in bulk, skipping keys that exist; audit each one created (actor scheduler).

    The same effect as `models.actions.create_task` per row, in two statements per batch.
    """
    if not rows:
        return 0
    table = Task.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    made = 0
    for start in range(0, len(rows), 500):
        chunk = [{"status": "open", "note": "", "priority": 0, "created_at": now, "application_id": None,
                  "ticket_id": None, "beneficiary_id": None, "due_on": None, **r} for r in rows[start:start + 500]]
        ins = pg_insert(table) if dialect == "postgresql" else sqlite_insert(table)
        stmt = ins.values(chunk).on_conflict_do_nothing(index_elements=["key"]).returning(
            table.c.id, table.c.kind, table.c.beneficiary_id, table.c.application_id)
        created = session.execute(stmt).all()
        if created:
            session.execute(AuditLog.__table__.insert(), [  # type: ignore[attr-defined]
                {"at": now, "actor": ACTOR, "action": "task.create", "target_type": "task", "target_id": str(t.id),
                 "details": {"kind": t.kind, "beneficiary_id": t.beneficiary_id,
                             "application_id": t.application_id}}
                for t in created])
        made += len(created)
    return made


# --- the sweeps --------------------------------------------------------------------------

@dataclass
class SweepResult:
    day: date
    enqueued: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)
    escalated: int = 0

    @property
    def total_enqueued(self) -> int:
        return sum(self.enqueued.values())

    def add(self, bucket: str, name: str, n: int) -> None:
        target = self.enqueued if bucket == "enqueued" else self.tasks
        target[name] = target.get(name, 0) + n

    def as_dict(self) -> dict[str, Any]:
        return {"day": self.day.isoformat(), "enqueued": dict(self.enqueued), "tasks": dict(self.tasks),
                "escalated": self.escalated, "total_enqueued": self.total_enqueued}


@dataclass
class SweepContext:
    """What every sweep needs: the time, the office zone, the rules, a renderer."""

    now: datetime
    tz: ZoneInfo
    rules: ScheduleRules
    renderer: Renderer

    @property
    def today(self) -> date:
        return office_day(self.now, self.tz)

    def send_at(self, day: date | None = None) -> datetime:
        """Queued for today, sent from the configured send time (or now, if later)."""
        at = self.rules.send_at(day or self.today, self.tz).astimezone(UTC)
        return max(at, self.now)


def make_context(now: datetime, tz: ZoneInfo, rules: ScheduleRules | None = None,
                 renderer: Renderer | None = None) -> SweepContext:
    return SweepContext(now=now, tz=tz, rules=rules or default_rules(), renderer=renderer or default_renderer)


def reminder_windows(offsets: Sequence[int]) -> list[tuple[int, int, int]]:
    """[(offset, lo, hi)]: offset d is current while due - today is in [lo, hi]."""
    offs = sorted(offsets, reverse=True)
    out = []
    for i, d in enumerate(offs):
        lo = offs[i + 1] + 1 if i + 1 < len(offs) else 0
        out.append((d, lo, d))
    return out


CERT_KIND = "cert_reminder"


def sweep_certification_reminders(session: Session, ctx: SweepContext) -> int:
    """Remind retirees 30, 7 and 1 days before their yearly certification is due (seed 001).

    One indexed query per due date in the windows (at most 31 a day): the key's occurrence
    `<due date>:<days>` is then a constant, so the anti-join is a unique-index probe.
    """
    today = ctx.today
    made = 0
    for days, lo, hi in reminder_windows(ctx.rules.certification.reminder_days):
        for ahead in range(lo, hi + 1):
            due = today + timedelta(days=ahead)
            first, last = preimage(due, due, 1)
            occurrence = f"{due.isoformat()}:{days}"
            recipients = due_recipients(session, [
                Beneficiary.is_retiree.is_(True),  # type: ignore[attr-defined]
                Beneficiary.last_certified_on.between(first, last),  # type: ignore[union-attr]
            ], CERT_KIND, occurrence)
            if recipients:
                made += enqueue_grouped(
                    session, recipients, kind=CERT_KIND, occurrence=occurrence,
                    context={"due_date": due, "days": days, "days_left": ahead},
                    now=ctx.now, not_before=ctx.send_at(), deadline_at=end_of_day(due, ctx.tz),
                    renderer=ctx.renderer)
    return made


def priority_of(birth_date: date | None, living_alone: bool, disabled: bool, today: date) -> int:
    """Seed 001: the very old, those living alone and the disabled are visited first."""
    p = 0
    if birth_date is not None and add_years(birth_date, 80) <= today:
        p += 10
    if living_alone:
        p += 5
    if disabled:
        p += 5
    return p


def sweep_home_visits(session: Session, ctx: SweepContext) -> int:
    """Certification overdue by 15 days: a home-visit task, one per person and due year."""
    today = ctx.today
    overdue_due = today - timedelta(days=ctx.rules.certification.home_visit_after_days)
    _, last = preimage(overdue_due, overdue_due, 1)
    b = Beneficiary
    due_year = cast(cast(func.extract("year", b.last_certified_on), Integer) + 1, String)
    key = literal("home_visit:", String) + cast(b.id, String) + literal(":", String) + due_year
    t = aliased(Task)
    rows = session.execute(
        select(b.id, b.birth_date, b.living_alone, b.disabled, b.last_certified_on)
        .where(b.status == BeneficiaryStatus.ACTIVE.value, b.is_retiree.is_(True),  # type: ignore[attr-defined]
               b.last_certified_on <= last, ~exists().where(t.key == key))  # type: ignore[operator]
    ).all()
    tasks = []
    for bid, birth, alone, disabled, certified in rows:
        due = add_years(certified, 1)
        tasks.append({"kind": TaskKind.HOME_VISIT.value, "key": f"home_visit:{bid}:{due.year}",
                      "beneficiary_id": bid, "priority": priority_of(birth, alone, disabled, today),
                      "due_on": today,
                      "note": f"资格认证逾期：应于 {due.isoformat()} 前认证 (certification due {due.isoformat()})"})
    return insert_tasks(session, tasks, ctx.now)


OVER_80_KIND = "over_80_insurance"


def sweep_over_80(session: Session, ctx: SweepContext) -> tuple[int, int]:
    """Seed 000: at 80 a veteran is covered by the insurance automatically, nothing to pay.
    A notice to the veteran and a task for staff, once each."""
    rule = ctx.rules.over_80
    today = ctx.today
    first, last = preimage(today - timedelta(days=rule.catch_up_days), today, rule.age)
    b = Beneficiary
    in_window = [b.is_veteran.is_(True), b.birth_date.between(first, last)]  # type: ignore[attr-defined,union-attr]
    occurrence = str(rule.age)
    recipients = due_recipients(session, in_window, OVER_80_KIND, occurrence)
    sent = enqueue_grouped(session, recipients, kind=OVER_80_KIND, occurrence=occurrence,
                           context={"age": rule.age}, now=ctx.now, not_before=ctx.send_at(),
                           renderer=ctx.renderer)
    t = aliased(Task)
    key = literal(f"{OVER_80_KIND}:", String) + cast(b.id, String)
    rows = session.execute(select(b.id, b.birth_date).where(
        b.status == BeneficiaryStatus.ACTIVE.value, *in_window, ~exists().where(t.key == key))).all()
    tasks = [{"kind": TaskKind.OVER_80_INSURANCE.value, "key": f"{OVER_80_KIND}:{bid}", "beneficiary_id": bid,
              "priority": 10, "due_on": today,
              "note": f"年满{rule.age}周岁（{add_years(birth, rule.age).isoformat()}），高龄退役军人专属保险自动参保，"
                      "请核实并登记 (over-80 veterans' insurance: cover starts automatically)"}
             for bid, birth in rows]
    return sent, insert_tasks(session, tasks, ctx.now)


DEADLINE_KIND = "payment_deadline_reminder"


def sweep_payment_deadlines(session: Session, ctx: SweepContext) -> int:
    """Seed 003: a reminder 3 days before an unpaid payment deadline (and, if the scheduler
    was down, on any later day up to the deadline), once per application and deadline."""
    today = ctx.today
    a = Application
    rows = session.execute(select(a.id, a.beneficiary_id, a.reference, a.payment_deadline, a.payment_amount_fen,
                                  a.payment_account)
                           .where(a.type == ApplicationType.VETERAN_INSURANCE.value,
                                  a.stage == Stage.PAYMENT_NOTICE.value, a.paid_on.is_(None),  # type: ignore[union-attr]
                                  a.payment_deadline.between(  # type: ignore[union-attr]
                                      today, today + timedelta(days=ctx.rules.payments.deadline_reminder_days)))
                           ).all()
    made = 0
    for _app_id, bid, reference, deadline, amount_fen, account in rows:
        occurrence = f"{reference}:{deadline.isoformat()}"
        recipients = due_recipients(session, [Beneficiary.id == bid],
                                    DEADLINE_KIND, occurrence)
        made += enqueue_grouped(
            session, recipients, kind=DEADLINE_KIND, occurrence=occurrence,
            context={"reference": reference, "deadline": deadline, "amount_fen": amount_fen,
                     "amount_yuan": f"{(amount_fen or 0) / 100:.2f}", "account": account,
                     "days_left": (deadline - today).days},
            now=ctx.now, not_before=ctx.send_at(), deadline_at=end_of_day(deadline, ctx.tz),
            renderer=ctx.renderer)
    return made


PAYMENT_KIND = "payment_notice"


def _payment_days_for(day: date) -> list[int]:
    """Days of month that pay on `day`: its own, and on a month's last day the days it lacks."""
    nxt = day + timedelta(days=1)
    return list(range(day.day, 32)) if nxt.month != day.month else [day.day]


def sweep_payments(session: Session, ctx: SweepContext) -> int:
    """Per scheme, on its payment day, a notice to those it pays (catching up a few days)."""
    today = ctx.today
    made = 0
    m = SchemeMembership
    for scheme, rule in ctx.rules.payments.schemes.items():
        if not rule.notify:
            continue
        for back in range(ctx.rules.payments.catch_up_days, -1, -1):
            day = today - timedelta(days=back)
            effective = func.coalesce(m.payment_day, rule.payment_day)
            occurrence = f"{scheme}:{day:%Y-%m}"
            recipients = due_recipients(
                session, [m.scheme == scheme, m.period == day.year, effective.in_(_payment_days_for(day))],
                PAYMENT_KIND, occurrence, joins=[(m, m.beneficiary_id == Beneficiary.id)])
            if recipients:
                made += enqueue_grouped(session, recipients, kind=PAYMENT_KIND, occurrence=occurrence,
                                        context={"scheme": scheme, "paid_on": day, "month": f"{day:%Y-%m}"},
                                        now=ctx.now, not_before=ctx.send_at(), renderer=ctx.renderer)
    return made


FESTIVAL_KIND = "festival_greeting"


def festival_audience_filter(audience: Iterable[str]) -> list[Any]:
    flags = {"veteran": Beneficiary.is_veteran, "retiree": Beneficiary.is_retiree,
             "union_member": Beneficiary.is_union_member}
    conds = [flags[k].is_(True) for k in sorted(audience) if k in flags]  # type: ignore[attr-defined]
    return [or_(*conds)] if conds else [literal(False)]


def sweep_festival(session: Session, ctx: SweepContext, occasion: str, festival: date,
                   audience: Iterable[str]) -> int:
    """A festival greeting to everyone in its audience (a person of several kinds gets one).
    The greeting expires at the end of the festival day: never a Mid-Autumn card in October."""
    from outreach.occasions import occurrence as festival_occurrence

    occ = festival_occurrence(occasion, festival)
    recipients = due_recipients(session, festival_audience_filter(audience), FESTIVAL_KIND, occ)
    return enqueue_grouped(session, recipients, kind=FESTIVAL_KIND, occurrence=occ,
                           context={"occasion": occasion, "festival_date": festival}, now=ctx.now,
                           not_before=ctx.now, deadline_at=end_of_day(festival, ctx.tz), renderer=ctx.renderer)


def run_festivals(engine: Engine, *, clock: Clock, tz: ZoneInfo, rules: ScheduleRules | None = None,
                  renderer: Renderer | None = None, occasion_rules: dict[str, Any] | None = None,
                  lookback: timedelta = timedelta(hours=12)) -> dict[str, int]:
    """Greetings whose send time is in (now - lookback, now]: the festival job calls this at
    the send time; after downtime it still sends a greeting up to `lookback` late, never later."""
    from outreach.occasions import greetings_due

    ctx = make_context(clock.now(), tz, rules, renderer)
    out: dict[str, int] = {}
    for g in greetings_due(ctx.now - lookback, ctx.now + timedelta(seconds=1), tz, occasion_rules):
        with session_scope(engine, immediate=True) as session:
            out[g.occasion] = sweep_festival(session, ctx, g.occasion, g.festival, g.audience)
    return out


# --- escalations -------------------------------------------------------------------------

TERMINAL_STAGES = (Stage.COMPLETED.value, Stage.REJECTED.value, Stage.WITHDRAWN.value)


def sweep_stuck_applications(session: Session, ctx: SweepContext) -> int:
    """An application longer in a stage than that stage's limit: a task, once per stay."""
    tasks = []
    a = Application
    for stage, limit in ctx.rules.escalation.stage_limit_days.items():
        if stage in TERMINAL_STAGES:
            continue
        cutoff = ctx.now - timedelta(days=limit)
        t = aliased(Task)
        rows = session.execute(select(a.id, a.reference, a.beneficiary_id, a.stage_changed_at).where(
            a.stage == stage, a.stage_changed_at < cutoff,  # type: ignore[operator]
            ~exists().where(t.application_id == a.id, t.kind == TaskKind.STUCK_APPLICATION.value,
                            t.status == "open"))).all()
        for app_id, reference, bid, since in rows:
            days = (ctx.now - since).days
            tasks.append({"kind": TaskKind.STUCK_APPLICATION.value,
                          "key": f"stuck_application:{app_id}:{stage}:{since:%Y%m%dT%H%M%S}",
                          "beneficiary_id": bid, "application_id": app_id, "priority": 5, "due_on": ctx.today,
                          "note": f"{reference} 在「{stage}」已 {days} 天，超过 {limit} 天时限 "
                                  f"({reference} in {stage} for {days} days, limit {limit})"})
    return insert_tasks(session, tasks, ctx.now)


def sweep_ticket_escalations(session: Session, ctx: SweepContext) -> int:
    """A handoff ticket unanswered for 4 office working hours (not wall hours) is escalated:
    escalated_at set, a callback task opened, an audit row written."""
    from models.actions import audit

    hours = ctx.rules.escalation.ticket_working_hours
    office = ctx.rules.escalation.office_hours
    # Wall time is never less than working time: only tickets older than `hours` can qualify.
    tickets = session.query(HandoffTicket).filter(
        HandoffTicket.status == "open", HandoffTicket.escalated_at.is_(None),  # type: ignore[union-attr]
        HandoffTicket.created_at <= ctx.now - timedelta(hours=hours)).all()  # type: ignore[operator]
    tasks = []
    escalated = 0
    for ticket in tickets:
        worked = office.working_seconds(ticket.created_at, ctx.now, ctx.tz)
        if worked < hours * 3600:
            continue
        ticket.escalated_at = ctx.now
        session.add(ticket)
        audit(session, ACTOR, "ticket.escalate", "handoff_ticket", ticket.id,
              {"working_hours": round(worked / 3600, 2), "reason": ticket.reason}, ctx.now)
        tasks.append({"kind": TaskKind.CALLBACK.value, "key": f"ticket_escalation:{ticket.id}",
                      "beneficiary_id": ticket.beneficiary_id, "ticket_id": ticket.id, "priority": 8,
                      "due_on": ctx.today,
                      "note": f"咨询已 {worked / 3600:.1f} 个工作小时未回复 (unanswered {worked / 3600:.1f} working hours)"})
        escalated += 1
    session.flush()
    insert_tasks(session, tasks, ctx.now)
    return escalated


def run_escalations(engine: Engine, *, clock: Clock, tz: ZoneInfo, rules: ScheduleRules | None = None
                    ) -> SweepResult:
    ctx = make_context(clock.now(), tz, rules, default_renderer)
    result = SweepResult(ctx.today)
    with session_scope(engine, immediate=True) as session:
        result.add("tasks", "stuck_application", sweep_stuck_applications(session, ctx))
    with session_scope(engine, immediate=True) as session:
        result.escalated = sweep_ticket_escalations(session, ctx)
    return result


# --- the daily sweep ---------------------------------------------------------------------

def daily_sweep(engine: Engine, *, clock: Clock, tz: ZoneInfo, rules: ScheduleRules | None = None,
                renderer: Renderer | None = None) -> SweepResult:
    """Everything due today (office time) and not yet done. Each part commits on its own, so
    a crash part-way leaves the finished parts done and the rest for the re-run."""
    ctx = make_context(clock.now(), tz, rules, renderer)
    result = SweepResult(ctx.today)
    with session_scope(engine, immediate=True) as session:
        result.add("enqueued", CERT_KIND, sweep_certification_reminders(session, ctx))
    with session_scope(engine, immediate=True) as session:
        result.add("tasks", TaskKind.HOME_VISIT.value, sweep_home_visits(session, ctx))
    with session_scope(engine, immediate=True) as session:
        sent, made = sweep_over_80(session, ctx)
        result.add("enqueued", OVER_80_KIND, sent)
        result.add("tasks", TaskKind.OVER_80_INSURANCE.value, made)
    with session_scope(engine, immediate=True) as session:
        result.add("enqueued", DEADLINE_KIND, sweep_payment_deadlines(session, ctx))
    log.info("daily sweep %s: %s", ctx.today, result.as_dict())
    return result


def payment_run(engine: Engine, *, clock: Clock, tz: ZoneInfo, rules: ScheduleRules | None = None,
                renderer: Renderer | None = None) -> SweepResult:
    ctx = make_context(clock.now(), tz, rules, renderer)
    result = SweepResult(ctx.today)
    with session_scope(engine, immediate=True) as session:
        result.add("enqueued", PAYMENT_KIND, sweep_payments(session, ctx))
    return result


def certification_due_count(session: Session, day: date) -> int:
    """Retirees whose yearly certification falls due on `day` (for the staff summary)."""
    first, last = preimage(day, day, 1)
    return session.execute(select(func.count()).select_from(Beneficiary).where(
        Beneficiary.status == BeneficiaryStatus.ACTIVE.value, Beneficiary.is_retiree.is_(True),  # type: ignore[attr-defined]
        Beneficiary.last_certified_on.between(first, last))).scalar_one()  # type: ignore[union-attr]


__all__ = [
    "SweepResult", "SweepContext", "make_context", "daily_sweep", "payment_run", "run_festivals",
    "run_escalations", "sweep_certification_reminders", "sweep_home_visits", "sweep_over_80",
    "sweep_payment_deadlines", "sweep_payments", "sweep_festival", "sweep_stuck_applications",
    "sweep_ticket_escalations", "due_recipients", "enqueue_grouped", "insert_tasks", "add_years", "preimage",
    "reminder_windows", "certification_due_count",
]
