"""The outbox: every proactive message is a row here before it is sent, and this module is
the one owner of a row's status.

- `enqueue` / `enqueue_many`: one row per (message kind, recipient, occurrence), inside the
  caller's transaction; the same key twice is a no-op that says so (`Enqueued.created`).
  Every row gets its deadline here (24 h after queuing unless the caller gives one).
- `TRANSITIONS` holds the allowed moves as data. `move` (rows by id, each guarded by the
  states it may come from, under a row lock) and `move_where` (a set of rows from one state)
  are the only writers of `status`; each change is recorded as an `OutboxEvent` with time and
  reason. The dispatcher, delivery receipts, models.actions, the CLI, the console and
  broadcast cancellation all go through them.
- The dispatcher's side: `claim` (SKIP LOCKED on PostgreSQL; on SQLite inside
  `session_scope(immediate=True)`), `renew_leases`, `defer_due`.
- What follows a send, written once for the dispatcher and the receipts: `sent`,
  `retry_or_fail` (backoff until the deadline), `fail_permanently` (mark the contact, fall back
  to the other channel, or ask staff to phone), `stop_or_hold` (rows the contact rule stops now).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Insert, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from models.outbox import DATABASE_DEFAULTS, OutboxEvent, OutboxMessage, OutboxStatus
from models.people import Contact
from models.phone import mask_phone
from outreach import reach
from outreach.providers.base import AddressInvalid, ContactStopped, SendError

log = logging.getLogger("nuanxin.outbox")

T = OutboxMessage.__table__  # type: ignore[attr-defined]
EVENTS = OutboxEvent.__table__  # type: ignore[attr-defined]
S = OutboxStatus

# Where a row may go from each state (None: not yet a row).
TRANSITIONS: dict[OutboxStatus | None, frozenset[OutboxStatus]] = {
    None: frozenset({S.QUEUED}),
    S.QUEUED: frozenset({S.SENDING, S.QUEUED, S.CANCELLED, S.SUPPRESSED}),  # claimed, deferred, cancelled
    # sent, retried or deferred, failed, stopped by the re-check; claimed again when its lease expired
    S.SENDING: frozenset({S.SENDING, S.SENT, S.DELIVERED, S.QUEUED, S.FAILED, S.SUPPRESSED}),
    S.SENT: frozenset({S.DELIVERED, S.QUEUED, S.FAILED}),  # receipts: delivered, undelivered (retry or not)
    S.FAILED: frozenset({S.QUEUED}),  # requeued by staff
    S.DELIVERED: frozenset(),
    S.CANCELLED: frozenset(),
    S.SUPPRESSED: frozenset(),
}
ALLOWED_FROM: dict[OutboxStatus, frozenset[str]] = {
    to: frozenset(str(f) for f, tos in TRANSITIONS.items() if f is not None and to in tos) for to in OutboxStatus}

DEFAULT_DEADLINE = timedelta(hours=24)  # a message not sent within this after queuing fails
HOLD_FOR = timedelta(hours=1)  # a held row (outreach paused) is looked at again after this
RELEASE = {"lease_owner": None, "lease_expires_at": None}


class TransitionRefused(ValueError):
    """A move that TRANSITIONS does not allow from any state."""


@dataclass(frozen=True)
class Enqueued:
    created: bool
    message_id: int
    key: str


def idempotency_key(kind: str, recipient: str | int, occurrence: str) -> str:
    """`kind:recipient:occurrence`, e.g. `cert_reminder_30:b42:2026-05-01`."""
    return f"{kind}:{recipient}:{occurrence}"


def derived_key(key: str, suffix: str) -> str:
    """A key derived from another (fallback copies): stays within the column's 200 characters."""
    full = f"{key}:{suffix}"
    if len(full) <= 200:
        return full
    return f"{key[:150]}~{hashlib.sha256(key.encode()).hexdigest()[:16]}:{suffix}"[:200]


# --- enqueue -------------------------------------------------------------------------------

def _insert_ignoring_duplicates(session: Session) -> Insert:
    """INSERT … ON CONFLICT (idempotency_key) DO NOTHING, in the session's dialect."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return pg_insert(T).on_conflict_do_nothing(index_elements=["idempotency_key"])
    if dialect == "sqlite":
        return sqlite_insert(T).on_conflict_do_nothing(index_elements=["idempotency_key"])
    return insert(T)


def _row(now: datetime, classes: dict[str, reach.MessageClass], fields: Mapping[str, Any],
         deadline: datetime | None = None) -> dict[str, Any]:
    """An outbox row to insert: the class the kind declares, its priority, the times, the
    deadline; values the database holds as defaults (DATABASE_DEFAULTS) or NULL are left out."""
    row = {k: v for k, v in fields.items() if v is not None}
    for name, default in DATABASE_DEFAULTS.items():
        if name in row and row[name] == default:
            del row[name]
    row.setdefault("created_at", now)
    row.setdefault("next_attempt_at", now)
    row.setdefault("deadline_at", deadline or now + DEFAULT_DEADLINE)
    message_class = fields.get("message_class")
    if not message_class:
        kind = row["kind"]
        if kind not in classes:
            classes[kind] = reach.class_of(kind)
        message_class = classes[kind].value
    priority = _PRIORITY.get(message_class, _PRIORITY[reach.DEFAULT_CLASS])
    for name, value in (("message_class", message_class), ("priority", priority)):
        if value != DATABASE_DEFAULTS[name]:
            row[name] = value
        else:
            row.pop(name, None)
    return row


_PRIORITY = {str(k): rule.priority for k, rule in reach.RULES.items()}


def enqueue(session: Session, *, key: str, kind: str, channel: str, address: str, body: str, now: datetime,
            beneficiary_id: int | None = None, contact_id: int | None = None, occurrence: str = "",
            language: str = "zh-Hans", segments: int = 1, sms_body: str | None = None,
            sms_segments: int | None = None, urgent: bool = False, allow_fallback: bool = True,
            broadcast_id: int | None = None, not_before: datetime | None = None,
            deadline_at: datetime | None = None, message_class: str | None = None,
            extra: dict[str, Any] | None = None) -> Enqueued:
    """Queue one message in the caller's transaction; a second call with the same key changes nothing.
    `message_class` defaults to what kinds.yaml declares for `kind` (proactive when undeclared)."""
    row = _row(now, {}, {
        "idempotency_key": key, "kind": kind, "channel": channel, "address": address, "body": body,
        "beneficiary_id": beneficiary_id, "contact_id": contact_id, "occurrence": occurrence, "language": language,
        "segments": segments, "sms_body": sms_body, "sms_segments": sms_segments, "urgent": urgent,
        "allow_fallback": allow_fallback, "broadcast_id": broadcast_id, "next_attempt_at": not_before,
        "deadline_at": deadline_at, "message_class": message_class, "extra": extra or {}})
    created = session.execute(_insert_ignoring_duplicates(session).returning(T.c.id), row).first()
    if created is not None:
        session.execute(insert(EVENTS), {"outbox_id": created.id, "from_status": None, "to_status": S.QUEUED.value,
                                         "reason": f"enqueued {kind}", "at": now})
        return Enqueued(created=True, message_id=created.id, key=key)
    message_id = session.execute(select(T.c.id).where(T.c.idempotency_key == key)).scalar_one()
    return Enqueued(created=False, message_id=message_id, key=key)


def enqueue_many(session: Session, rows: Iterable[Mapping[str, Any]], *, now: datetime, batch: int = 1000) -> int:
    """Bulk enqueue (broadcasts, sweeps). Rows are mappings of OutboxMessage fields including
    `idempotency_key`. Duplicates are skipped. Returns how many rows were created.

    One statement, compiled once and executed with many parameter sets (SQLite's executemany;
    PostgreSQL's insertmanyvalues with RETURNING, which says exactly which rows were new).
    The per-row 'queued' event is implied by `created_at` for bulk rows: writing a second row
    per message would double the cost of a 100,000-recipient broadcast for no new fact.
    """
    stmt = _insert_ignoring_duplicates(session)
    pg = session.get_bind().dialect.name == "postgresql"

    def flush(chunk: list[dict[str, Any]]) -> int:
        # One executemany per set of columns given (rows leave out what the database defaults).
        by_columns: dict[frozenset[str], list[dict[str, Any]]] = {}
        for row in chunk:
            by_columns.setdefault(frozenset(row), []).append(row)
        created = 0
        for group in by_columns.values():
            if pg:  # RETURNING says exactly which rows were new
                created += len(session.execute(stmt.returning(T.c.id), group).all())
            else:  # SQLite's executemany counts the rows inserted, not those skipped
                result: Any = session.execute(stmt, group)
                created += int(result.rowcount or 0)
        return created

    return sum(flush(chunk) for chunk in _batches(rows, now, batch))


def _batches(rows: Iterable[Mapping[str, Any]], now: datetime, size: int) -> Iterator[list[dict[str, Any]]]:
    """Complete outbox rows, `size` at a time, each with the same keys (one compiled statement)."""
    classes: dict[str, reach.MessageClass] = {}
    deadline = now + DEFAULT_DEADLINE  # one object: the column's bind processor converts it once
    chunk: list[dict[str, Any]] = []
    for fields in rows:
        chunk.append(_row(now, classes, fields, deadline))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- the one writer of `status` ------------------------------------------------------------

@dataclass(frozen=True)
class Move:
    """One row's change of state, why, and the fields that change with it. `only_from` narrows
    the states it may come from (TRANSITIONS decides the rest)."""

    id: int
    to: OutboxStatus
    reason: str
    values: Mapping[str, Any] = field(default_factory=dict)
    only_from: frozenset[str] | None = None
    # Only while this dispatcher holds the row's lease: a dispatcher whose lease expired under
    # it (a stalled process) must not put back in the queue a row another one has claimed since.
    lease_owner: str | None = None

    def allowed_from(self) -> frozenset[str]:
        allowed = ALLOWED_FROM[self.to]
        return allowed if self.only_from is None else allowed & self.only_from


def move(session: Session, moves: Sequence[Move], at: datetime) -> list[Move]:
    """Apply the moves whose row is in a state it may come from; the others change nothing.
    Rows are read under a row lock (PostgreSQL; SQLite holds the write lock), written with one
    UPDATE per set of fields, and each change recorded. Returns the moves applied."""
    if not moves:
        return []
    if len({m.id for m in moves}) != len(moves):
        raise ValueError("one move per row")
    for m in moves:
        if not ALLOWED_FROM[m.to]:
            raise TransitionRefused(f"nothing moves to {m.to}")
    current: dict[int, str] = {}
    holder: dict[int, str | None] = {}
    ids = [m.id for m in moves]
    for start in range(0, len(ids), 500):
        for row_id, status, lease_owner in session.execute(
                select(T.c.id, T.c.status, T.c.lease_owner).where(T.c.id.in_(ids[start:start + 500]))
                .with_for_update()):
            current[row_id], holder[row_id] = status, lease_owner
    applied = [m for m in moves if current.get(m.id) in m.allowed_from()
               and (m.lease_owner is None or holder.get(m.id) == m.lease_owner)]
    groups: dict[tuple[str, ...], list[Move]] = {}
    for m in applied:
        groups.setdefault(tuple(sorted(m.values)), []).append(m)
    for names, group in groups.items():
        stmt = update(T).where(T.c.id == bindparam("row_id")).values(
            status=bindparam("to_status"), **{n: bindparam(f"v_{n}", type_=T.c[n].type) for n in names})
        session.execute(stmt, [{"row_id": m.id, "to_status": m.to.value, **{f"v_{n}": m.values[n] for n in names}}
                               for m in group])
    if applied:
        session.execute(insert(EVENTS), [{"outbox_id": m.id, "from_status": current[m.id], "to_status": m.to.value,
                                          "reason": m.reason[:500], "at": at} for m in applied])
    return applied


def move_where(session: Session, where: Any, *, from_status: OutboxStatus, to: OutboxStatus, reason: str,
               at: datetime, values: Mapping[str, Any] | None = None, limit: int | None = None) -> list[int]:
    """Move every row matching `where` that is in `from_status` (up to `limit`); record each.
    Returns their ids. For set-based changes: cancel a broadcast, requeue failures, quiet hours."""
    if str(from_status) not in ALLOWED_FROM[to]:
        raise TransitionRefused(f"{from_status} → {to} is not an allowed move")
    pick = select(T.c.id).where(T.c.status == from_status.value, where).order_by(T.c.id)
    if limit is not None:
        pick = pick.limit(limit)
    ids = list(session.execute(pick.with_for_update(skip_locked=True)).scalars())
    moved: list[int] = []
    for start in range(0, len(ids), 500):
        moved += session.execute(update(T).where(T.c.id.in_(ids[start:start + 500]), T.c.status == from_status.value)
                                 .values(status=to.value, **(values or {})).returning(T.c.id)).scalars().all()
    if moved:
        session.execute(insert(EVENTS), [{"outbox_id": i, "from_status": from_status.value, "to_status": to.value,
                                          "reason": reason[:500], "at": at} for i in moved])
    return moved


# --- rows as the dispatcher and the receipts see them ---------------------------------------

@dataclass(frozen=True)
class OutboxRow:
    """A plain snapshot of a row: safe to pass between threads and tasks."""

    id: int
    idempotency_key: str
    kind: str
    channel: str
    address: str
    body: str
    segments: int
    sms_body: str | None
    sms_segments: int | None
    urgent: bool
    allow_fallback: bool
    extra: dict[str, Any]
    beneficiary_id: int | None
    contact_id: int | None
    attempts: int
    created_at: datetime
    deadline_at: datetime | None
    language: str
    broadcast_id: int | None
    occurrence: str
    message_class: str
    reclaimed_from: str | None = None  # the previous owner when its lease had expired

    @property
    def expires_at(self) -> datetime:
        """After this the message fails instead of being retried (set at enqueue)."""
        return self.deadline_at or (self.created_at + DEFAULT_DEADLINE)

    def sms_copy(self) -> tuple[str, int]:
        """The wording and segments this message has by SMS."""
        if self.channel == "sms":
            return self.body, self.segments
        if self.sms_body is not None:
            return self.sms_body, self.sms_segments or _segments(self.sms_body)
        return self.body, _segments(self.body)  # queued without an SMS copy


Claimed = OutboxRow  # a claimed row

_COLUMNS = ("id", "idempotency_key", "kind", "channel", "address", "body", "segments", "sms_body", "sms_segments",
            "urgent", "allow_fallback", "extra", "beneficiary_id", "contact_id", "attempts", "created_at",
            "deadline_at", "language", "broadcast_id", "occurrence", "message_class")


def _snapshot(row: Any, reclaimed_from: str | None = None) -> OutboxRow:
    m = row._mapping
    return OutboxRow(**{name: m[name] for name in _COLUMNS}, reclaimed_from=reclaimed_from)


def _segments(text: str) -> int:
    from outreach.sms_text import sms_length

    return sms_length(text).segments


def load(session: Session, where: Any) -> OutboxRow | None:
    """One row as a snapshot, with its status (`load(session, T.c.provider_message_id == sid)`)."""
    found = session.execute(select(*(T.c[n] for n in _COLUMNS)).where(where).limit(1)).first()
    return _snapshot(found) if found is not None else None


def status_of(session: Session, outbox_id: int) -> str | None:
    return session.execute(select(T.c.status).where(T.c.id == outbox_id)).scalar()


# --- the dispatcher's side -----------------------------------------------------------------

def _due(now: datetime, channel: str | None) -> Any:
    t = T.c
    cond = ((t.status == S.QUEUED.value) & (t.next_attempt_at <= now)) | (
        (t.status == S.SENDING.value) & (t.lease_expires_at < now))
    return cond & (t.channel == channel) if channel is not None else cond


def claim(session: Session, *, owner: str, now: datetime, lease_s: float, limit: int,
          channel: str | None = None) -> list[OutboxRow]:
    """Take up to `limit` due rows for `owner`, most urgent class first: queued rows whose time
    has come, and rows still 'sending' whose lease expired (their dispatcher died). Marks them
    sending with a lease, counts the attempt and records each change.

    PostgreSQL: row locks with SKIP LOCKED, so concurrent dispatchers take disjoint rows.
    SQLite: call inside `session_scope(engine, immediate=True)`: the write lock is held from BEGIN.
    """
    if limit <= 0:
        return []
    picked = session.execute(
        select(T.c.id, T.c.status, T.c.lease_owner).where(_due(now, channel))
        .order_by(T.c.priority, T.c.next_attempt_at, T.c.id).limit(limit).with_for_update(skip_locked=True)).all()
    if not picked:
        return []
    before = {r.id: (r.status, r.lease_owner) for r in picked}
    rows = session.execute(
        update(T).where(T.c.id.in_(list(before)))
        .values(status=S.SENDING.value, lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_s),
                attempts=T.c.attempts + 1)
        .returning(*(T.c[n] for n in _COLUMNS))).all()
    claimed, events = [], []
    for raw in rows:
        old_status, old_owner = before[raw.id]
        reclaimed = old_owner if old_status == S.SENDING.value else None
        claimed.append(_snapshot(raw, reclaimed))
        events.append({"outbox_id": raw.id, "from_status": old_status, "to_status": S.SENDING.value, "at": now,
                       "reason": f"lease of {reclaimed} expired; claimed by {owner}" if reclaimed
                       else f"claimed by {owner}"})
    session.execute(insert(EVENTS), events)
    # In the order picked (RETURNING keeps none): the dispatcher sends them in this order, so a
    # code claimed with a batch of reminders goes first, not after them.
    order = {r.id: i for i, r in enumerate(picked)}
    claimed.sort(key=lambda c: order[c.id])
    return claimed


def renew_leases(session: Session, *, owner: str, now: datetime, lease_s: float) -> int:
    """Extend the lease of every row this owner is still sending (a long rate-limited batch)."""
    done = session.execute(update(T).where(T.c.lease_owner == owner, T.c.status == S.SENDING.value)
                           .values(lease_expires_at=now + timedelta(seconds=lease_s)).returning(T.c.id)).all()
    return len(done)


def defer_due(session: Session, where: Any, until: datetime, reason: str, now: datetime, limit: int = 5000) -> int:
    """Push queued, due rows matching `where` to `until` (status stays queued); record each."""
    return len(move_where(session, (T.c.next_attempt_at <= now) & where, from_status=S.QUEUED, to=S.QUEUED,
                          reason=reason, at=now, values={"next_attempt_at": until}, limit=limit))


# --- what follows a send -------------------------------------------------------------------

def sent(row: OutboxRow, *, provider: str, provider_message_id: str, at: datetime) -> Move:
    return Move(row.id, S.SENT, f"sent via {provider}",
                {**RELEASE, "provider_message_id": provider_message_id[:64], "sent_at": at, "error_code": None,
                 "error": None}, only_from=frozenset({S.SENDING.value}))


def retry_or_fail(row: OutboxRow, *, delay_s: float, now: datetime, error_code: str, error: str, why: str,
                  from_status: OutboxStatus = S.SENDING, values: Mapping[str, Any] | None = None) -> Move:
    """A send that may succeed later: back to the queue after `delay_s`, or failed when that
    would be past the row's deadline."""
    fields = {**RELEASE, "error_code": error_code[:32], "error": error[:500], **(values or {})}
    only = frozenset({from_status.value})
    if now + timedelta(seconds=delay_s) > row.expires_at:
        return Move(row.id, S.FAILED, f"deadline passed after {row.attempts} attempts: {why}", fields, only)
    return Move(row.id, S.QUEUED, f"retry in {delay_s:.1f}s: {why}".strip(),
                {**fields, "next_attempt_at": now + timedelta(seconds=delay_s)}, only)


def deferred(row: OutboxRow, *, delay_s: float, now: datetime, why: str) -> Move:
    """Not sent and not tried (rate limit): back to the queue, the attempt not counted."""
    return Move(row.id, S.QUEUED, why, {**RELEASE, "next_attempt_at": now + timedelta(seconds=delay_s),
                                        "attempts": max(0, row.attempts - 1)}, frozenset({S.SENDING.value}))


@dataclass
class StopResult:
    suppressed: int = 0
    held: int = 0
    tasks: int = 0


def stop_or_hold(session: Session, rows: Sequence[OutboxRow], stops: Mapping[int, reach.Stop], now: datetime, *,
                 from_status: OutboxStatus) -> StopResult:
    """Rows the contact rule stops now (`reach.verdicts`): suppressed with the reason, or held
    (back in the queue for `HOLD_FOR`, until the deadline) while the person's outreach is paused.
    A message that must reach the person opens a staff task to phone them instead of silence."""
    result = StopResult()
    moves = []
    for r in rows:
        stop = stops.get(r.id)
        if stop is None:
            continue
        if stop.holds and now + HOLD_FOR <= r.expires_at:
            moves.append(Move(r.id, S.QUEUED, f"held: {stop.text}",
                              {**RELEASE, "next_attempt_at": now + HOLD_FOR,
                               "attempts": max(0, r.attempts - 1) if from_status == S.SENDING else r.attempts},
                              frozenset({from_status.value})))
        else:
            moves.append(Move(r.id, S.SUPPRESSED, f"suppressed: {stop.text}",
                              {**RELEASE, "error": f"suppressed: {stop.text}"}, frozenset({from_status.value})))
    by_id = {r.id: r for r in rows}
    for m in move(session, moves, now):
        if m.to == S.QUEUED:
            result.held += 1
            continue
        result.suppressed += 1
        r, stop = by_id[m.id], stops[m.id]
        if not stop.person_gone and not stop.holds and reach.must_reach(r.kind, r.message_class):
            result.tasks += reach.open_unreachable_task(
                session, beneficiary_id=r.beneficiary_id, kind=r.kind, message_key=r.idempotency_key,
                why=stop.text, now=now, actor="dispatcher")
    return result


def suppress_stopped(session: Session, where: Any, now: datetime) -> int:
    """Queued rows matching `where` that the contact rule stops now are suppressed (or held);
    called when a contact opts out or a death is recorded. Returns how many were suppressed."""
    rows = [_snapshot(r) for r in session.execute(
        select(*(T.c[n] for n in _COLUMNS)).where(T.c.status == S.QUEUED.value, where))]
    stops = reach.verdicts(session, [r.id for r in rows])
    return stop_or_hold(session, rows, stops, now, from_status=S.QUEUED).suppressed


@dataclass
class Failed:
    failed: bool = False
    fallback_id: int | None = None
    task: bool = False


def fail_permanently(session: Session, row: OutboxRow, err: SendError, now: datetime, *, reason: str,
                     from_statuses: Collection[str] = (S.SENDING.value,), error_code: str | None = None,
                     fallback_channels: Collection[str] | None = None, actor: str = "dispatcher") -> Failed:
    """A send refused for good: the row fails; a stopped or invalid address is marked on its
    contact (models.actions, audited); the message falls back to the same person on the other
    channel when the row allows it (`fallback_channels`: the channels that can send; None: any);
    a message that must reach the person and cannot opens a staff task to phone them."""
    from models.actions import mark_blocked, mark_invalid, opt_out

    kind = type(err).__name__
    applied = move(session, [Move(row.id, S.FAILED, reason,
                                  {**RELEASE, "error_code": (error_code or str(err.code or kind))[:32],
                                   "error": f"{kind}: {err.detail}"[:500]},
                                  frozenset(from_statuses))], now)
    if not applied:
        return Failed()
    out = Failed(failed=True)
    if not isinstance(err, ContactStopped | AddressInvalid):
        return out  # the message itself was refused: nothing is known about the person
    contact = session.execute(select(Contact).where(col(Contact.channel) == row.channel,
                                                    col(Contact.address) == row.address)).scalar_one_or_none()
    detail = f"{err.code} {err.detail}".strip()[:200] or kind
    if contact is not None:
        if isinstance(err, ContactStopped) and err.reason == "opted_out":
            opt_out(session, contact, reason=f"provider: {detail}", actor=actor, now=now)
        elif isinstance(err, ContactStopped):
            mark_blocked(session, contact, reason=detail, actor=actor, now=now)
        else:
            mark_invalid(session, contact, reason=detail, actor=actor, now=now)
    other = reach.OTHER_CHANNEL.get(row.channel)
    if row.allow_fallback and other is not None and (fallback_channels is None or other in fallback_channels):
        out.fallback_id = queue_fallback(session, row, now)
    if out.fallback_id is None and reach.must_reach(row.kind, row.message_class):
        out.task = reach.open_unreachable_task(session, beneficiary_id=row.beneficiary_id, kind=row.kind,
                                               message_key=row.idempotency_key, why=detail, now=now, actor=actor)
    return out


def queue_fallback(session: Session, row: OutboxRow, now: datetime) -> int | None:
    """Queue the message again for the same person on the other channel, to the address the
    contact rule picks (`reach.fallback_contact`), in that channel's wording (the row's SMS
    copy; an SMS goes to Telegram as written). Returns the new row's id, or None."""
    target = reach.fallback_contact(session, beneficiary_id=row.beneficiary_id, channel=row.channel,
                                    address=row.address, message_class=row.message_class)
    if target is None:
        return None
    if target.channel == "sms":
        body, segments = row.sms_copy()
        extra = {k: v for k, v in row.extra.items() if k != "buttons"}
    else:
        body, segments, extra = row.body, 1, dict(row.extra)
    done = enqueue(session, key=derived_key(row.idempotency_key, f"fallback:{target.channel}"), kind=row.kind,
                   channel=target.channel, address=target.address, body=body, segments=segments, now=now,
                   beneficiary_id=target.beneficiary_id, contact_id=target.id, occurrence=row.occurrence,
                   language=row.language, urgent=row.urgent, allow_fallback=False, broadcast_id=row.broadcast_id,
                   deadline_at=row.deadline_at, message_class=row.message_class, extra=extra)
    if not done.created:
        return None
    shown = mask_phone(target.address) if target.channel == "sms" else target.address
    log.info("outbox %s: fallback to %s %s as outbox %s", row.id, target.channel, shown, done.message_id)
    return done.message_id


__all__ = ["ALLOWED_FROM", "Claimed", "DEFAULT_DEADLINE", "Enqueued", "Failed", "Move", "OutboxRow", "TRANSITIONS",
           "TransitionRefused", "claim", "defer_due", "deferred", "derived_key", "enqueue", "enqueue_many",
           "fail_permanently", "idempotency_key", "load", "move", "move_where", "queue_fallback", "renew_leases",
           "retry_or_fail", "sent", "status_of", "stop_or_hold", "suppress_stopped"]
