"""Bulk enqueue: the SQLite fast path writes exactly what the ORM path writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import select

from models.db import session_scope
from models.outbox import OutboxMessage
from outreach.outbox import enqueue, enqueue_many

NOW = datetime(2026, 3, 2, 2, 0, 0, 123456, tzinfo=UTC)


def _fields(i: int) -> dict[str, object]:
    return {"idempotency_key": f"bulk:{i}", "kind": "broadcast", "channel": "sms", "address": f"+86138000000{i:02d}",
            "body": f"张伯您好 {i}", "segments": 2, "urgent": i % 2 == 0, "extra": {"sms_body": "短", "n": i},
            "deadline_at": NOW + timedelta(days=1), "language": "zh-Hans", "occurrence": "b1"}


def _snapshot(engine: Engine) -> list[tuple[object, ...]]:
    with session_scope(engine) as s:
        return [(m.kind, m.channel, m.address, m.body, m.segments, m.urgent, m.extra, m.deadline_at,
                 m.next_attempt_at, m.created_at, m.status, m.attempts, m.allow_fallback)
                for m in s.exec(select(OutboxMessage).order_by(OutboxMessage.idempotency_key)).all()]


def test_bulk_rows_read_back_the_same_as_rows_enqueued_one_by_one(db_engine: Engine, tmp_path: object) -> None:
    with session_scope(db_engine) as s:
        assert enqueue_many(s, (_fields(i) for i in range(10)), now=NOW) == 10
    bulk = _snapshot(db_engine)
    with session_scope(db_engine) as s:
        s.execute(OutboxMessage.__table__.delete())  # type: ignore[attr-defined]
        for i in range(10):
            f = dict(_fields(i))
            f["key"] = f.pop("idempotency_key")
            enqueue(s, now=NOW, **f)  # type: ignore[arg-type]
    assert _snapshot(db_engine) == bulk
    assert bulk[0][7] == NOW + timedelta(days=1) and bulk[0][9] == NOW


def test_bulk_enqueue_twice_creates_nothing_the_second_time(db_engine: Engine) -> None:
    with session_scope(db_engine) as s:
        assert enqueue_many(s, (_fields(i) for i in range(2500)), now=NOW, batch=1000) == 2500
    with session_scope(db_engine) as s:
        assert enqueue_many(s, (_fields(i) for i in range(2600)), now=NOW, batch=1000) == 100
