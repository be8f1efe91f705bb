"""The outbox: enqueue with an idempotency key, inside the caller's transaction.

One row per (message kind, recipient, occurrence). Enqueuing the same thing twice is a
no-op that says so (`Enqueued.created is False`). Every status change goes through
`transition`, which records an `OutboxEvent` with time and reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Insert, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from models.bulk import Driver
from models.outbox import OutboxEvent, OutboxMessage, OutboxStatus


@dataclass(frozen=True)
class Enqueued:
    created: bool
    message_id: int
    key: str


def idempotency_key(kind: str, recipient: str | int, occurrence: str) -> str:
    """`kind:recipient:occurrence`, e.g. `cert_reminder_30:b42:2026-05-01`."""
    return f"{kind}:{recipient}:{occurrence}"


def _insert_ignoring_duplicates(session: Session, rows: Sequence[dict[str, Any]]) -> Any:
    dialect = session.get_bind().dialect.name
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    # With no rows: the bare statement, to be executed with a list of parameter sets.
    stmt: Insert
    if dialect == "postgresql":
        pg_stmt = pg_insert(table)
        stmt = (pg_stmt.values(list(rows)) if rows else pg_stmt).on_conflict_do_nothing(
            index_elements=["idempotency_key"])
    elif dialect == "sqlite":
        sqlite_stmt = sqlite_insert(table)
        stmt = (sqlite_stmt.values(list(rows)) if rows else sqlite_stmt).on_conflict_do_nothing(
            index_elements=["idempotency_key"])
    else:
        stmt = insert(table).values(list(rows)) if rows else insert(table)
    # RETURNING yields exactly the rows inserted (not the skipped duplicates): psycopg's
    # rowcount for these inserts comes back as -1, so it cannot say what was created.
    return stmt.returning(table.c.id)


def _row(now: datetime, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "status": OutboxStatus.QUEUED.value,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "extra": {},
        "segments": 1,
        "urgent": False,
        "allow_fallback": True,
        "language": "zh-Hans",
        "occurrence": "",
    }
    row.update(fields)
    if row.get("next_attempt_at") is None:
        row["next_attempt_at"] = now
    return row


def enqueue(
    session: Session,
    *,
    key: str,
    kind: str,
    channel: str,
    address: str,
    body: str,
    now: datetime,
    beneficiary_id: int | None = None,
    contact_id: int | None = None,
    occurrence: str = "",
    language: str = "zh-Hans",
    segments: int = 1,
    urgent: bool = False,
    allow_fallback: bool = True,
    broadcast_id: int | None = None,
    not_before: datetime | None = None,
    deadline_at: datetime | None = None,
    extra: dict[str, Any] | None = None,
) -> Enqueued:
    """Queue one message in the caller's transaction; a second call with the same key changes nothing."""
    row = _row(
        now,
        idempotency_key=key, kind=kind, channel=channel, address=address, body=body,
        beneficiary_id=beneficiary_id, contact_id=contact_id, occurrence=occurrence, language=language,
        segments=segments, urgent=urgent, allow_fallback=allow_fallback, broadcast_id=broadcast_id,
        next_attempt_at=not_before or now, deadline_at=deadline_at, extra=extra or {},
    )
    result = session.execute(_insert_ignoring_duplicates(session, [row]))
    created = len(result.fetchall()) > 0
    message_id = session.execute(
        select(_TABLE.c.id).where(_TABLE.c.idempotency_key == key)
    ).scalar_one()
    if created:
        session.add(OutboxEvent(outbox_id=message_id, from_status=None, to_status=OutboxStatus.QUEUED.value,
                                reason=f"enqueued {kind}", at=now))
    return Enqueued(created=created, message_id=message_id, key=key)


def enqueue_many(session: Session, rows: Iterable[dict[str, Any]], *, now: datetime, batch: int = 1000) -> int:
    """Bulk enqueue (broadcasts, sweeps). Rows are dicts of OutboxMessage fields including
    `idempotency_key`. Duplicates are skipped. Returns how many rows were created.

    Batches stay under SQLite's limit of 32,766 bound parameters per statement.
    The per-row 'queued' event is implied by `created_at` for bulk rows: writing a second row
    per message would double the cost of a 100,000-recipient broadcast for no new fact.
    """
    if session.get_bind().dialect.name == "sqlite":
        return _enqueue_many_sqlite(session, rows, now=now, batch=batch)
    # One statement compiled once and executed with many parameter sets ("insertmanyvalues"):
    # a multi-VALUES statement built per batch recompiles 20,000 bind parameters each time,
    # which cost ~15x the insert itself on a 100,000-recipient broadcast (benchmarks/enqueue.py).
    stmt = _insert_ignoring_duplicates(session, [])

    def flush(chunk: list[dict[str, Any]]) -> int:
        keys = set().union(*chunk)
        params = [row if len(row) == len(keys) else {k: row.get(k) for k in keys} for row in chunk]
        return len(session.execute(stmt, params).fetchall())

    return sum(flush(chunk) for chunk in _batches(rows, now, batch))


def _batches(rows: Iterable[dict[str, Any]], now: datetime, size: int) -> Iterator[list[dict[str, Any]]]:
    """Complete outbox rows (defaults filled in), `size` at a time."""
    chunk: list[dict[str, Any]] = []
    for fields in rows:
        chunk.append(_row(now, **fields))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _enqueue_many_sqlite(session: Session, rows: Iterable[dict[str, Any]], *, now: datetime, batch: int) -> int:
    """The same insert through the driver's executemany, inside the session's transaction.

    On SQLite, SQLAlchemy's per-row parameter processing costs more than the insert itself
    (about 80 µs against 30 µs a row); a 100,000-recipient broadcast spends most of its time
    there. `models.bulk` binds values exactly as the column types would; a test reads rows
    written both ways and compares them.
    """
    driver = Driver(session)
    return sum(driver.insert_many(_TABLE, chunk, suffix="ON CONFLICT (idempotency_key) DO NOTHING")
               for chunk in _batches(rows, now, batch))


def transition(session: Session, message: OutboxMessage, to_status: str, reason: str, at: datetime) -> None:
    """Change a row's status and record the change."""
    assert message.id is not None  # a stored row
    session.add(OutboxEvent(outbox_id=message.id, from_status=message.status, to_status=to_status,
                            reason=reason[:500], at=at))
    message.status = to_status
    session.add(message)


# --- claiming and finishing rows (the dispatcher's side) ------------------------------------

_TABLE = OutboxMessage.__table__  # type: ignore[attr-defined]
_EVENTS = OutboxEvent.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Claimed:
    """A plain snapshot of a claimed row: safe to pass between threads and tasks."""

    id: int
    idempotency_key: str
    kind: str
    channel: str
    address: str
    body: str
    segments: int
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
    reclaimed_from: str | None  # the previous owner when its lease had expired


def _due(now: datetime, channel: str | None) -> Any:
    t = _TABLE.c
    cond = ((t.status == OutboxStatus.QUEUED.value) & (t.next_attempt_at <= now)) | (
        (t.status == OutboxStatus.SENDING.value) & (t.lease_expires_at < now))
    if channel is not None:
        cond = cond & (t.channel == channel)
    return cond


_CLAIMED_COLUMNS = ("id", "idempotency_key", "kind", "channel", "address", "body", "segments", "urgent",
                    "allow_fallback", "extra", "beneficiary_id", "contact_id", "attempts", "created_at",
                    "deadline_at", "language", "broadcast_id", "occurrence")


def claim(session: Session, *, owner: str, now: datetime, lease_s: float, limit: int,
          channel: str | None = None) -> list[Claimed]:
    """Take up to `limit` due rows for `owner`: queued rows whose time has come, and rows still
    'sending' whose lease expired (their dispatcher died). Marks them sending with a lease,
    counts the attempt and records each change.

    PostgreSQL: row locks with SKIP LOCKED, so concurrent dispatchers take disjoint rows.
    SQLite: call inside `session_scope(engine, immediate=True)`: the write lock is held from BEGIN.
    Statements go through the driver (`models.bulk`): this runs for every batch the dispatcher sends.
    """
    from datetime import timedelta

    if limit <= 0:
        return []
    db = Driver(session)
    stamp = db.binder(_TABLE.c.next_attempt_at)
    assert stamp is not None
    at = stamp(now)
    where = ("((status = 'queued' AND next_attempt_at <= ?) OR (status = 'sending' AND lease_expires_at < ?))"
             + (" AND channel = ?" if channel is not None else ""))
    params: list[Any] = [at, at] + ([channel] if channel is not None else []) + [limit]
    picked = db.execute(f"SELECT id, status, lease_owner FROM outbox_message WHERE {where} "
                        f"ORDER BY next_attempt_at, id LIMIT ?{' FOR UPDATE SKIP LOCKED' if db.pg else ''}", params)
    if not picked:
        return []
    before = {row[0]: (row[1], row[2]) for row in picked}
    ids = list(before)
    id_match = "id = ANY(?)" if db.pg else f"id IN ({db.marks(ids)})"
    rows = db.execute(
        f"UPDATE outbox_message SET status = 'sending', lease_owner = ?, lease_expires_at = ?, "
        f"attempts = attempts + 1 WHERE {id_match} RETURNING {', '.join(_CLAIMED_COLUMNS)}",
        [owner, stamp(now + timedelta(seconds=lease_s)), *([ids] if db.pg else ids)])
    readers = [db.reader(_TABLE.c[name]) for name in _CLAIMED_COLUMNS]
    events = []
    claimed = []
    for raw in rows:
        (id_, key, kind, channel_, address, body, segments, urgent, allow_fallback, extra, beneficiary_id,
         contact_id, attempts, created_at, deadline_at, language, broadcast_id, occurrence) = (
            value if read is None else read(value) for value, read in zip(raw, readers, strict=True))
        old_status, old_owner = before[id_]
        reclaimed = old_owner if old_status == OutboxStatus.SENDING.value else None
        reason = (f"lease of {reclaimed} expired; claimed by {owner}" if reclaimed else f"claimed by {owner}")
        events.append({"outbox_id": id_, "from_status": old_status, "to_status": OutboxStatus.SENDING.value,
                       "reason": reason[:500], "at": now})
        claimed.append(Claimed(id_, key, kind, channel_, address, body, segments or 1, bool(urgent),
                               bool(allow_fallback), dict(extra or {}), beneficiary_id, contact_id, attempts,
                               created_at, deadline_at, language, broadcast_id, occurrence, reclaimed))
    db.insert_many(_EVENTS, events)
    claimed.sort(key=lambda c: c.id)
    return claimed


@dataclass
class Change:
    """One row's new status and fields, for `apply_changes`."""

    id: int
    from_status: str
    to_status: str
    reason: str
    values: dict[str, Any]


def apply_changes(session: Session, changes: Sequence[Change], at: datetime) -> None:
    """Write many transitions at once (an UPDATE per group of same fields, one INSERT of events),
    through the driver (`models.bulk`). The same record as `transition`, at bulk speed."""
    if not changes:
        return
    db = Driver(session)
    groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for ch in changes:
        values = {"status": ch.to_status, **ch.values}
        names = tuple(sorted(values))
        groups.setdefault(names, []).append((*(values[n] for n in names), ch.id))
    for names, rows in groups.items():
        db.update_many(_TABLE, names, rows)
    db.insert_many(_EVENTS, [{"outbox_id": ch.id, "from_status": ch.from_status, "to_status": ch.to_status,
                              "reason": ch.reason[:500], "at": at} for ch in changes])


def defer_due(session: Session, where: Any, until: datetime, reason: str, now: datetime,
              limit: int = 5000) -> int:
    """Push queued, due rows matching `where` to `until` (status stays queued); record each."""
    t = _TABLE.c
    ids = [r.id for r in session.execute(
        select(t.id).where(t.status == OutboxStatus.QUEUED.value, t.next_attempt_at <= now, where).limit(limit))]
    if not ids:
        return 0
    session.execute(update(_TABLE).where(t.id.in_(ids)).values(next_attempt_at=until))
    session.execute(insert(_EVENTS), [
        {"outbox_id": i, "from_status": OutboxStatus.QUEUED.value, "to_status": OutboxStatus.QUEUED.value,
         "reason": reason[:500], "at": now} for i in ids])
    return len(ids)


def renew_leases(session: Session, *, owner: str, now: datetime, lease_s: float) -> int:
    """Extend the lease of every row this owner is still sending (a long rate-limited batch)."""
    from datetime import timedelta

    t = _TABLE.c
    # sqlmodel's Session.execute is typed as returning a Result; an UPDATE's is a CursorResult.
    result = cast(CursorResult[Any], session.execute(
        update(_TABLE).where(t.lease_owner == owner, t.status == OutboxStatus.SENDING.value)
        .values(lease_expires_at=now + timedelta(seconds=lease_s))))
    return int(result.rowcount or 0)


def derived_key(key: str, suffix: str) -> str:
    """A key derived from another (fallback copies): stays within the column's 200 characters."""
    import hashlib

    full = f"{key}:{suffix}"
    if len(full) <= 200:
        return full
    return f"{key[:150]}~{hashlib.sha256(key.encode()).hexdigest()[:16]}:{suffix}"[:200]
