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

Texts come from templates/messages (outreach/templates.py) and are cached by everything they
depend on (language, channel, salutation, values): a million people share a few thousand
salutations (张伯, 王阿姨...), so a sweep renders each distinct text once.
Who gets a message, on which address, is the one contact rule (`outreach.reach`) for the
kind's class: nobody deceased, moved or paused gets a reminder; never a relative's phone when
the person's own address said stop. A kind that must reach the person (`unreachable: task`:
a payment with an amount and a deadline) opens a staff task to phone whoever it cannot reach.
"""

from __future__ import annotations

import logging
import time as monotonic_time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, Integer, String, and_, bindparam, cast, exists, func, literal, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from models.applications import Application, ApplicationType, HandoffTicket, Stage, Task, TaskKind
from models.clock import Clock
from models.db import read_scope, session_scope, step_aside, write_scope
from models.outbox import OutboxMessage
from models.people import BeneficiaryStatus, SchemeMembership
from models.staff import AuditLog
from outreach import reach
from outreach.outbox import enqueue_many, idempotency_key
from outreach.reach import B, C
from outreach.schedule_rules import ScheduleRules, default_rules
from outreach.templates import TemplateSet

log = logging.getLogger(__name__)

ACTOR = "scheduler"


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

def sms_segments(text: str) -> int:
    from outreach.sms_text import sms_length

    return sms_length(text).segments


# --- who can be reached: the contact rule (outreach.reach) --------------------------------
# Core tables, not ORM aliases: statement construction stays cheap (a sweep builds dozens).
OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]
T = Task.__table__  # type: ignore[attr-defined]


def key_expr(kind: str, person_id: Any) -> Any:
    """SQL for `idempotency_key(kind, f"b{id}", occurrence)`, the occurrence given as the
    bound parameter `occ_suffix` (":" + occurrence), to anti-join on the unique key."""
    prefix = idempotency_key(kind, "b", "").rsplit(":", 1)[0]  # "kind:b"
    return literal(prefix, String) + cast(person_id, String) + bindparam("occ_suffix", type_=String)


def already_queued(kind: str, person_id: Any) -> Any:
    o = OUTBOX.alias("done_o")
    return exists().where(o.c.idempotency_key == key_expr(kind, person_id))


@dataclass
class Recipient:
    beneficiary_id: int
    language: str
    contact_id: int
    channel: str
    address: str
    name: str = ""
    sex: str | None = None
    birth_date: date | None = None
    family: bool = False  # the address is a family member's: the message says "please tell ..."
    extra: dict[str, Any] = field(default_factory=dict)


_BASE_COLUMNS = ("bid", "lang", "cid", "name", "sex", "birth_date", "channel", "address", "family_member_id")


def recipients_statement(where: Sequence[Any], kind: str, extra_columns: Sequence[Any] = (),
                         joins: Sequence[tuple[Any, Any]] = ()) -> Any:
    """People matching `where` whom the contact rule lets a message of `kind` reach, with the
    contact to use, not yet sent `(kind, :occ_suffix)`. Built once per sweep part and executed
    per occurrence with bound parameters."""
    message_class = reach.class_of(kind)
    inner = select(B.c.id.label("bid"), B.c.language.label("lang"),
                   reach.best_contact_id(B, message_class).label("cid"),
                   B.c.name, B.c.sex, B.c.birth_date, *extra_columns).select_from(B)
    for target, on in joins:
        inner = inner.join(target, on)
    people = inner.where(*reach.person_clauses(message_class), *where, ~already_queued(kind, B.c.id)).subquery()
    return (select(people, C.c.channel, C.c.address, C.c.family_member_id)
            .join(C, C.c.id == people.c.cid))


def fetch_recipients(session: Session, stmt: Any, occurrence: str, params: dict[str, Any] | None = None
                     ) -> list[Recipient]:
    out = []
    for row in session.execute(stmt, {"occ_suffix": ":" + occurrence, **(params or {})}).mappings():
        extra = {k: v for k, v in row.items() if k not in _BASE_COLUMNS}
        out.append(Recipient(row["bid"], row["lang"] or "zh-Hans", row["cid"], row["channel"], row["address"],
                             row["name"] or "", row["sex"], row["birth_date"], row["family_member_id"] is not None,
                             extra))
    return out


def due_recipients(session: Session, where: Sequence[Any], kind: str, occurrence: str,
                   extra_columns: Sequence[Any] = (), joins: Sequence[tuple[Any, Any]] = (),
                   params: dict[str, Any] | None = None) -> list[Recipient]:
    """One query: who matching `where` is due `(kind, occurrence)` and reachable."""
    return fetch_recipients(session, recipients_statement(where, kind, extra_columns, joins), occurrence, params)


ENQUEUE_BATCH = 1000  # rows a write transaction of a sweep


def enqueue_recipients(session: Session, recipients: Iterable[Recipient], *, kind: str, occurrence: str,
                       context: dict[str, Any], ctx: SweepContext, not_before: datetime | None,
                       deadline_at: datetime | None = None,
                       per_person: Callable[[Recipient], dict[str, Any]] | None = None) -> int:
    """Render and enqueue in bulk. Texts are cached by everything they depend on (language,
    channel, salutation, context): a million people share a few thousand salutations, so a
    sweep renders each distinct text once. Telegram rows carry their SMS copy (`sms_body`,
    `sms_segments`) for the dispatcher's fallback, as `notices.enqueue_notice` does."""
    from outreach.notices import salutation_from, sms_copy

    recipients = list(recipients)
    # What was read is in hand: the write lock is not kept while rendering, and the rows go in
    # batches that step aside for the webhooks (`step_aside`). A re-run skips what is queued.
    session.commit()
    ts = ctx.templates
    today = ctx.today
    cache: dict[tuple[Any, ...], tuple[str, int, str | None, int | None]] = {}
    rows = []
    for r in recipients:
        lang = ts.language(r.language)
        salutation = salutation_from(r.name, r.sex, r.birth_date, lang, on=today)
        values = {"salutation": salutation, **context, **(per_person(r) if per_person else {})}
        relay = salutation if r.family else None
        ck = (lang, r.channel, relay, tuple(sorted(values.items())))
        hit = cache.get(ck)
        if hit is None:
            rendered = ts.render(kind, lang, values, r.channel, relay_to=relay)
            copy = sms_copy(ts, kind, lang, values, relay) if r.channel != "sms" else (None, None)
            hit = cache[ck] = (rendered.text, rendered.sms.segments if rendered.sms else 1, *copy)
        body, segments, sms_body, sms_count = hit
        rows.append({
            "idempotency_key": idempotency_key(kind, f"b{r.beneficiary_id}", occurrence),
            "kind": kind, "occurrence": occurrence, "beneficiary_id": r.beneficiary_id,
            "contact_id": r.contact_id, "channel": r.channel, "address": r.address, "language": lang,
            "body": body, "segments": segments, "next_attempt_at": not_before or ctx.now,
            "deadline_at": deadline_at, "sms_body": sms_body, "sms_segments": sms_count,
        })
    made = 0
    for start in range(0, len(rows), ENQUEUE_BATCH):
        since = monotonic_time.monotonic()
        made += enqueue_many(session, rows[start:start + ENQUEUE_BATCH], now=ctx.now)
        step_aside(session, since)
    return made


def unreachable_task(session: Session, beneficiary_id: int, kind: str, occurrence: str, ctx: SweepContext) -> bool:
    """A message that must reach the person (`reach.must_reach`) and reaches nobody: a staff
    task to phone them, once per message; nothing for someone who died, moved or is paused,
    or who already has the message queued."""
    message_class = reach.class_of(kind)
    key = idempotency_key(kind, f"b{beneficiary_id}", occurrence)
    if not reach.must_reach(kind, message_class) or session.execute(
            select(OUTBOX.c.id).where(OUTBOX.c.idempotency_key == key)).first() is not None:
        return False
    why = reach.why_unreachable(session, beneficiary_id, message_class=message_class)
    if why is None or why.person_gone or why.holds:
        return False
    return reach.open_unreachable_task(session, beneficiary_id=beneficiary_id, kind=kind, message_key=key,
                                       why=why.text, now=ctx.now, actor=ACTOR)


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
        # One statement with parameters (SQLAlchemy batches the rows into multi-row VALUES
        # itself): compiled once and cached, where `.values(chunk)` compiled 500 rows' worth of
        # bind parameters each time, ~0.4 s with the write lock held.
        stmt = ins.on_conflict_do_nothing(index_elements=["key"]).returning(
            table.c.id, table.c.kind, table.c.beneficiary_id, table.c.application_id)
        created = session.execute(stmt, chunk).all()
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
    """What every sweep needs: the time, the office zone, the rules, the templates."""

    now: datetime
    tz: ZoneInfo
    rules: ScheduleRules
    templates: TemplateSet

    @property
    def today(self) -> date:
        return office_day(self.now, self.tz)

    def send_at(self, day: date | None = None) -> datetime:
        """Queued for today, sent from the configured send time (or now, if later)."""
        at = self.rules.send_at(day or self.today, self.tz).astimezone(UTC)
        return max(at, self.now)


def make_context(now: datetime, tz: ZoneInfo, rules: ScheduleRules | None = None,
                 templates: TemplateSet | None = None) -> SweepContext:
    if templates is None:
        from outreach.templates import default_templates

        templates = default_templates()
    return SweepContext(now=now, tz=tz, rules=rules or default_rules(), templates=templates)


def reminder_windows(offsets: Sequence[int]) -> list[tuple[int, int, int]]:
    """[(offset, lo, hi)]: offset d is current while due - today is in [lo, hi]."""
    offs = sorted(offsets, reverse=True)
    out = []
    for i, d in enumerate(offs):
        lo = offs[i + 1] + 1 if i + 1 < len(offs) else 0
        out.append((d, lo, d))
    return out


CERT_KIND = "cert_reminder"  # outbox kinds cert_reminder_30 / _7 / _1 render this template
CERTIFICATION_YEARS = 1  # a retiree certifies once a year: due this long after the last certification


def certification_due(last_certified_on: date) -> date:
    """The day a retiree's next yearly certification falls due (seed 001)."""
    return add_years(last_certified_on, CERTIFICATION_YEARS)


def sweep_certification_reminders(session: Session, ctx: SweepContext) -> int:
    """Remind retirees 30, 7 and 1 days before their yearly certification is due (seed 001).

    Outbox kind `cert_reminder_<days>`, occurrence the due date. One indexed query per due
    date in the windows (at most 31 a day): the key is then a constant pattern, so the
    anti-join is a unique-index probe.
    """
    today = ctx.today
    made = 0
    for days, lo, hi in reminder_windows(ctx.rules.certification.reminder_days):
        kind = f"{CERT_KIND}_{days}"
        stmt = recipients_statement([B.c.is_retiree.is_(True),
                                     B.c.last_certified_on.between(bindparam("first"), bindparam("last"))], kind)
        for ahead in range(lo, hi + 1):
            due = today + timedelta(days=ahead)
            first, last = preimage(due, due, CERTIFICATION_YEARS)
            occurrence = due.isoformat()
            recipients = fetch_recipients(session, stmt, occurrence, {"first": first, "last": last})
            if recipients:
                made += enqueue_recipients(
                    session, recipients, kind=kind, occurrence=occurrence,
                    context={"deadline": due, "days_left": ahead}, ctx=ctx,
                    not_before=ctx.send_at(), deadline_at=end_of_day(due, ctx.tz))
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


# People a home-visit write transaction looks at: SQLite's write lock held ~20-40 ms for each
# (median, 100,000 people, this machine under load).
HOME_VISIT_BATCH = 100


def _home_visits_overdue(ctx: SweepContext) -> list[Any]:
    """Who is owed a home visit today: certification overdue by the rule's days, no task yet."""
    overdue_due = ctx.today - timedelta(days=ctx.rules.certification.home_visit_after_days)
    _, last = preimage(overdue_due, overdue_due, CERTIFICATION_YEARS)
    b = B.c
    due_year = cast(cast(func.extract("year", b.last_certified_on), Integer) + CERTIFICATION_YEARS, String)
    key = literal("home_visit:", String) + cast(b.id, String) + literal(":", String) + due_year
    t = T.alias("hv_t")
    return [b.status == BeneficiaryStatus.ACTIVE.value, b.is_retiree.is_(True), b.last_certified_on <= last,
            ~exists().where(t.c.key == key)]


def sweep_home_visits(engine: Engine, ctx: SweepContext, *, batch: int = HOME_VISIT_BATCH) -> int:
    """Certification overdue by 15 days: a home-visit task, one per person and due year.
    (Retirees never certified, last_certified_on empty, are not in the yearly cycle yet.)

    Who is due is found by reading (a read transaction: no write lock, nobody waits), a page of
    ids at a time; each page is then written in its own short write transaction, which asks the
    same question again for those ids only (a death recorded or a task opened since the read
    counts) and inserts their tasks. A crash between pages leaves the written pages done; the
    re-run finds the rest. Returns how many tasks were opened."""
    overdue = _home_visits_overdue(ctx)
    b = B.c
    made, after = 0, 0
    while True:
        with read_scope(engine) as session:
            ids = list(session.execute(select(b.id).where(b.id > after, *overdue).order_by(b.id)
                                       .limit(batch)).scalars())
        if not ids:
            return made
        after = ids[-1]
        with write_scope(engine) as session:
            # The rule asked of each row found by its id (in the select list, not the WHERE: the
            # planner then looks the page up by primary key instead of walking an index of
            # everyone overdue while it holds the lock).
            rows = session.execute(select(b.id, b.birth_date, b.living_alone, b.disabled, b.last_certified_on,
                                          and_(*overdue)).where(b.id.in_(ids))).all()
            made += insert_tasks(session, [_home_visit_task(row[:5], ctx) for row in rows if row[5]], ctx.now)
        if len(ids) < batch:
            return made


def _home_visit_task(row: Any, ctx: SweepContext) -> dict[str, Any]:
    bid, birth, alone, disabled, certified = row
    due = add_years(certified, 1)
    return {"kind": TaskKind.HOME_VISIT.value, "key": f"home_visit:{bid}:{due.year}", "beneficiary_id": bid,
            "priority": priority_of(birth, alone, disabled, ctx.today), "due_on": ctx.today,
            "note": f"资格认证逾期：应于 {due.isoformat()} 前认证 (certification due {due.isoformat()})"}


OVER_80_KIND = "over80_insurance"


def sweep_over_80(session: Session, ctx: SweepContext) -> tuple[int, int]:
    """Seed 000: at 80 a veteran is covered by the insurance automatically, nothing to pay.
    A notice to the veteran and a task for staff, once each."""
    rule = ctx.rules.over_80
    today = ctx.today
    first, last = preimage(today - timedelta(days=rule.catch_up_days), today, rule.age)
    b = B.c
    in_window = [b.is_veteran.is_(True), b.birth_date.between(first, last)]
    occurrence = str(rule.age)
    recipients = due_recipients(session, in_window, OVER_80_KIND, occurrence)
    sent = enqueue_recipients(session, recipients, kind=OVER_80_KIND, occurrence=occurrence, context={},
                              ctx=ctx, not_before=ctx.send_at(),
                              per_person=lambda r: {"start_date": add_years(r.birth_date, rule.age)})  # type: ignore[arg-type]
    t = T.alias("o80_t")
    key = literal(f"{OVER_80_KIND}:", String) + cast(b.id, String)
    rows = session.execute(select(b.id, b.birth_date).where(
        b.status == BeneficiaryStatus.ACTIVE.value, *in_window, ~exists().where(t.c.key == key))).all()
    tasks = [{"kind": TaskKind.OVER_80_INSURANCE.value, "key": f"{OVER_80_KIND}:{bid}", "beneficiary_id": bid,
              "priority": 10, "due_on": today,
              "note": f"年满{rule.age}周岁（{add_years(birth, rule.age).isoformat()}），高龄退役军人专属保险自动参保，"
                      "请核实并登记 (over-80 veterans' insurance: cover starts automatically)"}
             for bid, birth in rows]
    return sent, insert_tasks(session, tasks, ctx.now)


DEADLINE_KIND = "payment_deadline_reminder"


def sweep_payment_deadlines(session: Session, ctx: SweepContext) -> int:
    """Seed 003: a reminder 3 days before an unpaid payment deadline (and, if the scheduler
    was down, on any later day up to the deadline), once per application and deadline.
    (The payment notice itself goes at the stage change, from notices.notify_stage_change.)"""
    today = ctx.today
    a = Application
    rows = session.execute(select(col(a.beneficiary_id), col(a.reference), col(a.payment_deadline),
                                  col(a.payment_amount_fen), col(a.payment_account))
                           .where(col(a.type) == ApplicationType.VETERAN_INSURANCE.value,
                                  col(a.stage) == Stage.PAYMENT_NOTICE.value, col(a.paid_on).is_(None),
                                  col(a.payment_deadline).between(
                                      today, today + timedelta(days=ctx.rules.payments.deadline_reminder_days)))
                           ).all()
    made = 0
    for bid, reference, deadline, amount_fen, account in rows:
        occurrence = f"{reference}:{deadline.isoformat()}"
        recipients = due_recipients(session, [B.c.id == bid], DEADLINE_KIND, occurrence)
        if not recipients:
            unreachable_task(session, bid, DEADLINE_KIND, occurrence, ctx)
        made += enqueue_recipients(
            session, recipients, kind=DEADLINE_KIND, occurrence=occurrence,
            context={"scheme": "veteran_insurance", "reference": reference, "deadline": deadline,
                     "amount_fen": amount_fen or 0, "account": account or "", "days_left": (deadline - today).days},
            ctx=ctx, not_before=ctx.send_at(), deadline_at=end_of_day(deadline, ctx.tz))
    return made


PAYMENT_KIND = "payment_notice"


def _payment_days_for(day: date) -> list[int]:
    """Days of month that pay on `day`: its own, and on a month's last day the days it lacks."""
    nxt = day + timedelta(days=1)
    return list(range(day.day, 32)) if nxt.month != day.month else [day.day]


def sweep_payments(session: Session, ctx: SweepContext) -> int:
    """Per scheme, on its payment day, a notice to those it pays (catching up a few days).
    Only memberships with an amount: the notice says how much arrives."""
    today = ctx.today
    made = 0
    m = SchemeMembership.__table__  # type: ignore[attr-defined]
    for scheme, rule in ctx.rules.payments.schemes.items():
        if not rule.notify:
            continue
        for back in range(ctx.rules.payments.catch_up_days, -1, -1):
            day = today - timedelta(days=back)
            effective = func.coalesce(m.c.payment_day, rule.payment_day)
            occurrence = f"{scheme}:{day:%Y-%m}"
            recipients = due_recipients(
                session, [m.c.scheme == scheme, m.c.period == day.year, m.c.amount_fen.is_not(None),
                          effective.in_(_payment_days_for(day))],
                PAYMENT_KIND, occurrence, extra_columns=[m.c.amount_fen], joins=[(m, m.c.beneficiary_id == B.c.id)])
            if recipients:
                made += enqueue_recipients(session, recipients, kind=PAYMENT_KIND, occurrence=occurrence,
                                           context={"scheme": scheme, "pay_date": day}, ctx=ctx,
                                           not_before=ctx.send_at(),
                                           per_person=lambda r: {"amount_fen": r.extra["amount_fen"]})
    return made


FESTIVAL_KIND = "festival_greeting"


def festival_audience_filter(audience: Iterable[str]) -> list[Any]:
    flags = {"veteran": B.c.is_veteran, "retiree": B.c.is_retiree, "union_member": B.c.is_union_member}
    conds = [flags[k].is_(True) for k in sorted(audience) if k in flags]
    return [or_(*conds)] if conds else [literal(False)]


def sweep_festival(session: Session, ctx: SweepContext, occasion: str, festival: date,
                   audience: Iterable[str]) -> int:
    """A festival greeting to everyone in its audience (a person of several kinds gets one).
    The greeting expires at the end of the festival day: never a Mid-Autumn card in October."""
    from outreach.occasions import occurrence as festival_occurrence

    occ = festival_occurrence(occasion, festival)
    recipients = due_recipients(session, festival_audience_filter(audience), FESTIVAL_KIND, occ)
    return enqueue_recipients(session, recipients, kind=FESTIVAL_KIND, occurrence=occ,
                              context={"occasion": occasion}, ctx=ctx, not_before=ctx.now,
                              deadline_at=end_of_day(festival, ctx.tz))


def run_festivals(engine: Engine, *, clock: Clock, tz: ZoneInfo, rules: ScheduleRules | None = None,
                  templates: TemplateSet | None = None, occasion_rules: dict[str, Any] | None = None,
                  lookback: timedelta = timedelta(hours=12)) -> dict[str, int]:
    """Greetings whose send time is in (now - lookback, now]: the festival job calls this at
    the send time; after downtime it still sends a greeting up to `lookback` late, never later."""
    from outreach.occasions import greetings_due

    ctx = make_context(clock.now(), tz, rules, templates)
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
        t = T.alias("stuck_t")
        rows = session.execute(select(
            col(a.id), col(a.reference), col(a.beneficiary_id), col(a.stage_changed_at)).where(
            col(a.stage) == stage, col(a.stage_changed_at) < cutoff,
            ~exists().where(t.c.application_id == a.id, t.c.kind == TaskKind.STUCK_APPLICATION.value,
                            t.c.status == "open"))).all()
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
    tickets = session.execute(select(HandoffTicket).where(
        col(HandoffTicket.status) == "open", col(HandoffTicket.escalated_at).is_(None),
        col(HandoffTicket.created_at) <= ctx.now - timedelta(hours=hours))).scalars().all()
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


def run_escalations(engine: Engine, *, clock: Clock, tz: ZoneInfo, rules: ScheduleRules | None = None,
                    templates: TemplateSet | None = None) -> SweepResult:
    ctx = make_context(clock.now(), tz, rules, templates)
    result = SweepResult(ctx.today)
    with session_scope(engine, immediate=True) as session:
        result.add("tasks", "stuck_application", sweep_stuck_applications(session, ctx))
    with session_scope(engine, immediate=True) as session:
        result.escalated = sweep_ticket_escalations(session, ctx)
    return result


# --- the daily sweep ---------------------------------------------------------------------

def daily_sweep(engine: Engine, *, clock: Clock, tz: ZoneInfo, rules: ScheduleRules | None = None,
                templates: TemplateSet | None = None) -> SweepResult:
    """Everything due today (office time) and not yet done. Each part commits on its own, so
    a crash part-way leaves the finished parts done and the rest for the re-run."""
    ctx = make_context(clock.now(), tz, rules, templates)
    result = SweepResult(ctx.today)
    with session_scope(engine, immediate=True) as session:
        result.add("enqueued", CERT_KIND, sweep_certification_reminders(session, ctx))
    result.add("tasks", TaskKind.HOME_VISIT.value, sweep_home_visits(engine, ctx))
    with session_scope(engine, immediate=True) as session:
        sent, made = sweep_over_80(session, ctx)
        result.add("enqueued", OVER_80_KIND, sent)
        result.add("tasks", TaskKind.OVER_80_INSURANCE.value, made)
    with session_scope(engine, immediate=True) as session:
        result.add("enqueued", DEADLINE_KIND, sweep_payment_deadlines(session, ctx))
    log.info("daily sweep %s: %s", ctx.today, result.as_dict())
    return result


def payment_run(engine: Engine, *, clock: Clock, tz: ZoneInfo, rules: ScheduleRules | None = None,
                templates: TemplateSet | None = None) -> SweepResult:
    ctx = make_context(clock.now(), tz, rules, templates)
    result = SweepResult(ctx.today)
    with session_scope(engine, immediate=True) as session:
        result.add("enqueued", PAYMENT_KIND, sweep_payments(session, ctx))
    return result


def certification_due_count(session: Session, day: date) -> int:
    """Retirees whose yearly certification falls due on `day` (for the staff summary)."""
    first, last = preimage(day, day, CERTIFICATION_YEARS)
    return session.execute(select(func.count()).select_from(B).where(
        B.c.status == BeneficiaryStatus.ACTIVE.value, B.c.is_retiree.is_(True),
        B.c.last_certified_on.between(first, last))).scalar_one()
