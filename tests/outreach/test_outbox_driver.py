"""The outbox's hot paths go through the driver (models.bulk); what they write and read must be
exactly what the ORM writes and reads, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from models.bulk import Driver
from models.conversations import MessageLog
from models.db import session_scope
from models.outbox import OutboxEvent, OutboxMessage, OutboxStatus
from outreach.outbox import Change, apply_changes, claim, enqueue

NOW = datetime(2026, 3, 2, 2, 0, 0, 123456, tzinfo=UTC)
EAST8 = timezone(timedelta(hours=8))


def _enqueue_two(engine: Engine) -> list[int]:
    ids = []
    with session_scope(engine) as s:
        for i, extra in enumerate(({"buttons": [[{"text": "好", "data": "ok"}]], "n": 1}, {})):
            done = enqueue(s, key=f"drv:{i}", kind="payment_notice", channel="telegram", address=str(500 + i),
                           body=f"张伯您好 {i}", now=NOW, beneficiary_id=None, segments=1 + i, urgent=i == 0,
                           allow_fallback=i == 1, deadline_at=NOW + timedelta(hours=5) if i == 0 else None,
                           extra=extra, occurrence="2026-03")
            ids.append(done.message_id)
    return ids


def test_a_claimed_row_carries_the_values_the_orm_reads_for_it(db_engine: Engine) -> None:
    ids = _enqueue_two(db_engine)
    with session_scope(db_engine, immediate=True) as s:
        claimed = claim(s, owner="d1", now=NOW + timedelta(seconds=1), lease_s=60, limit=10, channel="telegram")
    assert [c.id for c in claimed] == ids
    with session_scope(db_engine) as s:
        rows = {m.id: m for m in s.exec(select(OutboxMessage)).all()}
        events = s.exec(select(OutboxEvent).where(OutboxEvent.to_status == "sending")).all()
    for c in claimed:
        m = rows[c.id]
        assert (c.idempotency_key, c.kind, c.channel, c.address, c.body, c.segments, c.urgent, c.allow_fallback,
                c.extra, c.beneficiary_id, c.attempts, c.created_at, c.deadline_at, c.language, c.occurrence) == (
            m.idempotency_key, m.kind, m.channel, m.address, m.body, m.segments, m.urgent, m.allow_fallback,
            m.extra, m.beneficiary_id, m.attempts, m.created_at, m.deadline_at, m.language, m.occurrence)
        assert c.created_at.tzinfo is not None and m.status == "sending" and m.lease_owner == "d1"
        assert m.lease_expires_at == NOW + timedelta(seconds=61) and m.attempts == 1
    assert claimed[0].extra == {"buttons": [[{"text": "好", "data": "ok"}]], "n": 1}
    assert claimed[0].urgent is True and claimed[1].allow_fallback is True
    assert sorted(e.outbox_id for e in events) == ids
    assert {(e.from_status, e.reason) for e in events} == {("queued", "claimed by d1")}


def test_a_row_whose_lease_expired_is_claimed_again_naming_the_owner_it_was_taken_from(db_engine: Engine) -> None:
    _enqueue_two(db_engine)
    with session_scope(db_engine, immediate=True) as s:
        assert len(claim(s, owner="d1", now=NOW, lease_s=30, limit=10)) == 2
    with session_scope(db_engine, immediate=True) as s:
        assert claim(s, owner="d2", now=NOW + timedelta(seconds=10), lease_s=30, limit=10) == []
    with session_scope(db_engine, immediate=True) as s:
        again = claim(s, owner="d2", now=NOW + timedelta(seconds=31), lease_s=30, limit=1)
    assert len(again) == 1 and again[0].reclaimed_from == "d1" and again[0].attempts == 2


def test_changes_written_through_the_driver_read_back_as_written_with_their_events(db_engine: Engine) -> None:
    ids = _enqueue_two(db_engine)
    sent_at = datetime(2026, 3, 2, 10, 0, 1, tzinfo=EAST8)  # another zone: stored as the same instant
    later = NOW + timedelta(minutes=5)
    with session_scope(db_engine) as s:
        apply_changes(s, [
            Change(ids[0], "sending", "sent", "sent via telegram",
                   {"lease_owner": None, "lease_expires_at": None, "provider_message_id": "500:7", "sent_at": sent_at,
                    "error": None}),
            Change(ids[1], "sending", "queued", "retry in 30.0s: TemporaryFailure 500",
                   {"next_attempt_at": later, "error_code": "500", "error": "TemporaryFailure: 服务器忙"}),
        ], NOW)
    with session_scope(db_engine) as s:
        first, second = (s.get(OutboxMessage, i) for i in ids)
        events = s.exec(select(OutboxEvent).order_by(col(OutboxEvent.id))).all()
    assert first is not None and second is not None
    assert (first.status, first.provider_message_id, first.sent_at, first.lease_owner) == (
        "sent", "500:7", sent_at.astimezone(UTC), None)
    assert first.sent_at is not None and first.sent_at.microsecond == 0  # a whole second keeps its form
    assert (second.status, second.next_attempt_at, second.error_code, second.error) == (
        "queued", later, "500", "TemporaryFailure: 服务器忙")
    assert [(e.outbox_id, e.from_status, e.to_status, e.at) for e in events[-2:]] == [
        (ids[0], "sending", "sent", NOW), (ids[1], "sending", "queued", NOW)]


def test_rows_inserted_through_the_driver_read_back_like_rows_the_orm_inserted(db_engine: Engine) -> None:
    row: dict[str, Any] = {"channel": "telegram", "address": "42", "direction": "out", "text": "您好", "attachments": [{"k": 1}],
           "beneficiary_id": None, "outbox_id": None, "provider_message_id": "42:9", "created_at": NOW}
    with session_scope(db_engine) as s:
        assert Driver(s).insert_many(MessageLog.__table__, [row]) == 1  # type: ignore[attr-defined]
        s.add(MessageLog(**{**row, "provider_message_id": "42:10"}))
    with session_scope(db_engine) as s:
        logs = s.exec(select(MessageLog).order_by(col(MessageLog.id))).all()
    fields = [(m.channel, m.address, m.direction, m.text, m.attachments, m.created_at) for m in logs]
    assert fields[0] == fields[1] == ("telegram", "42", "out", "您好", [{"k": 1}], NOW)


def test_a_naive_time_is_refused_before_anything_is_written(db_engine: Engine) -> None:
    ids = _enqueue_two(db_engine)
    with pytest.raises(ValueError, match="naive"), session_scope(db_engine) as s:
        apply_changes(s, [Change(ids[0], "queued", "queued", "x", {"next_attempt_at": datetime(2026, 3, 2)})], NOW)
    with session_scope(db_engine) as s:
        assert s.get(OutboxMessage, ids[0]).next_attempt_at == NOW  # type: ignore[union-attr]
        assert OutboxStatus.QUEUED.value == s.get(OutboxMessage, ids[0]).status  # type: ignore[union-attr]
