"""The outbox owns its rows' states: allowed moves as data, guarded, each recorded, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from models.db import session_scope, write_scope
from models.outbox import OutboxEvent, OutboxMessage, OutboxStatus
from outreach.outbox import (
    ALLOWED_FROM,
    TRANSITIONS,
    Move,
    TransitionRefused,
    claim,
    enqueue,
    enqueue_many,
    move,
    move_where,
)

NOW = datetime(2026, 3, 2, 2, 0, 0, 123456, tzinfo=UTC)
EAST8 = timezone(timedelta(hours=8))
T = OutboxMessage.__table__  # type: ignore[attr-defined]


def _enqueue_two(engine: Engine) -> list[int]:
    ids = []
    with session_scope(engine) as s:
        for i, extra in enumerate(({"buttons": [[{"text": "好", "data": "ok"}]], "n": 1}, {})):
            done = enqueue(s, key=f"st:{i}", kind="payment_notice", channel="telegram", address=str(500 + i),
                           body=f"张伯您好 {i}", now=NOW, segments=1 + i, urgent=i == 0, allow_fallback=i == 1,
                           sms_body=f"【站】张伯您好 {i}" if i == 0 else None, sms_segments=1 if i == 0 else None,
                           deadline_at=NOW + timedelta(hours=5) if i == 0 else None, extra=extra, occurrence="2026-03")
            ids.append(done.message_id)
    return ids


def _events(engine: Engine, outbox_id: int) -> list[tuple[str | None, str]]:
    with session_scope(engine) as s:
        return [(e.from_status, e.to_status) for e in s.exec(
            select(OutboxEvent).where(OutboxEvent.outbox_id == outbox_id).order_by(col(OutboxEvent.id))).all()]


def test_a_claimed_row_carries_what_was_stored_and_its_deadline(db_engine: Engine) -> None:
    """Claiming marks rows sending under a lease, counts the attempt, records the change, and
    hands back exactly the stored values (times aware UTC); a row queued without a deadline
    got one 24 h after it was queued."""
    ids = _enqueue_two(db_engine)
    with session_scope(db_engine, immediate=True) as s:
        claimed = claim(s, owner="d1", now=NOW + timedelta(seconds=1), lease_s=60, limit=10, channel="telegram")
    assert [c.id for c in claimed] == ids
    with session_scope(db_engine) as s:
        rows = {m.id: m for m in s.exec(select(OutboxMessage)).all()}
    for c in claimed:
        m = rows[c.id]
        assert (c.idempotency_key, c.kind, c.channel, c.address, c.body, c.segments, c.sms_body, c.urgent,
                c.allow_fallback, c.extra, c.attempts, c.created_at, c.deadline_at, c.language, c.occurrence,
                c.message_class) == (
            m.idempotency_key, m.kind, m.channel, m.address, m.body, m.segments, m.sms_body, m.urgent,
            m.allow_fallback, m.extra, m.attempts, m.created_at, m.deadline_at, m.language, m.occurrence,
            m.message_class)
        assert c.created_at.tzinfo is not None and m.status == "sending" and m.lease_owner == "d1"
        assert m.lease_expires_at == NOW + timedelta(seconds=61) and m.attempts == 1
        assert _events(db_engine, c.id) == [(None, "queued"), ("queued", "sending")]
    assert claimed[0].extra == {"buttons": [[{"text": "好", "data": "ok"}]], "n": 1}
    assert claimed[0].sms_copy() == ("【站】张伯您好 0", 1)
    assert claimed[1].deadline_at == NOW + timedelta(hours=24) and claimed[1].message_class == "proactive"


def test_a_row_whose_lease_expired_is_claimed_again_naming_the_owner_it_was_taken_from(db_engine: Engine) -> None:
    """A live lease keeps a row; an expired one gives it to the next dispatcher, attempt counted."""
    _enqueue_two(db_engine)
    with session_scope(db_engine, immediate=True) as s:
        assert len(claim(s, owner="d1", now=NOW, lease_s=30, limit=10)) == 2
    with session_scope(db_engine, immediate=True) as s:
        assert claim(s, owner="d2", now=NOW + timedelta(seconds=10), lease_s=30, limit=10) == []
    with session_scope(db_engine, immediate=True) as s:
        again = claim(s, owner="d2", now=NOW + timedelta(seconds=31), lease_s=30, limit=1)
    assert len(again) == 1 and again[0].reclaimed_from == "d1" and again[0].attempts == 2


def test_a_move_applies_only_from_a_state_it_may_come_from_and_is_recorded(db_engine: Engine) -> None:
    """Delivered never goes back to sent; a repeated 'failed' changes nothing; a queued row
    cannot be 'delivered'. Applied moves write their fields and one event each; refused ones
    write nothing."""
    ids = _enqueue_two(db_engine)
    sent_at = datetime(2026, 3, 2, 10, 0, 1, tzinfo=EAST8)  # another zone: stored as the same instant
    with session_scope(db_engine, immediate=True) as s:
        claim(s, owner="d1", now=NOW, lease_s=30, limit=1)
        done = move(s, [Move(ids[0], OutboxStatus.SENT, "sent via telegram",
                             {"provider_message_id": "500:7", "sent_at": sent_at, "lease_owner": None}),
                        Move(ids[1], OutboxStatus.DELIVERED, "receipt: delivered")], NOW)
    assert [m.id for m in done] == [ids[0]]
    with session_scope(db_engine) as s:
        first, second = (s.get(OutboxMessage, i) for i in ids)
        assert first is not None and second is not None
        assert (first.status, first.provider_message_id, first.sent_at, first.lease_owner) == (
            "sent", "500:7", sent_at.astimezone(UTC), None)
        assert second.status == "queued"
    with write_scope(db_engine) as s:
        assert move(s, [Move(ids[0], OutboxStatus.DELIVERED, "receipt: delivered")], NOW)
        assert move(s, [Move(ids[0], OutboxStatus.SENT, "receipt: sent")], NOW) == []
        assert move(s, [Move(ids[0], OutboxStatus.FAILED, "receipt: failed")], NOW) == []
    assert _events(db_engine, ids[0]) == [(None, "queued"), ("queued", "sending"), ("sending", "sent"),
                                          ("sent", "delivered")]
    assert _events(db_engine, ids[1]) == [(None, "queued")]


def test_set_based_moves_take_only_rows_in_the_state_named(db_engine: Engine) -> None:
    """Cancelling a kind takes its queued rows, not the ones being sent; a move the table does
    not allow at all is refused before anything is written."""
    with session_scope(db_engine) as s:
        enqueue_many(s, ({"idempotency_key": f"mw:{i}", "kind": "festival_greeting", "channel": "sms",
                          "address": f"+8613800000{i:03d}", "body": "节日快乐"} for i in range(5)), now=NOW)
    with session_scope(db_engine, immediate=True) as s:
        taken = claim(s, owner="d1", now=NOW, lease_s=30, limit=2)
    with write_scope(db_engine) as s:
        cancelled = move_where(s, T.c.kind == "festival_greeting", from_status=OutboxStatus.QUEUED,
                               to=OutboxStatus.CANCELLED, reason="cancelled by wang", at=NOW)
        assert len(cancelled) == 3 and not {c.id for c in taken} & set(cancelled)
        with pytest.raises(TransitionRefused):
            move_where(s, T.c.id.is_not(None), from_status=OutboxStatus.CANCELLED, to=OutboxStatus.QUEUED,
                       reason="x", at=NOW)
    with session_scope(db_engine) as s:
        statuses = sorted(m.status for m in s.exec(select(OutboxMessage)).all())
    assert statuses == ["cancelled"] * 3 + ["sending"] * 2


def test_a_naive_time_is_refused_before_anything_is_written(db_engine: Engine) -> None:
    """Times are aware: a naive one given to a move fails, and the row keeps its state."""
    ids = _enqueue_two(db_engine)
    with pytest.raises(Exception, match="naive"), session_scope(db_engine) as s:
        move(s, [Move(ids[0], OutboxStatus.QUEUED, "x", {"next_attempt_at": datetime(2026, 3, 2)})], NOW)
    with session_scope(db_engine) as s:
        row = s.get(OutboxMessage, ids[0])
        assert row is not None and row.next_attempt_at == NOW and row.status == "queued"


def test_every_state_is_reached_from_enqueue_and_the_ends_are_final() -> None:
    """The table of moves: each state reachable from a new row; delivered, cancelled and
    suppressed rows never move again; only staff requeue failures."""
    reached, frontier = set(), {None}
    while frontier:
        state = frontier.pop()
        for nxt in TRANSITIONS[state]:
            if nxt not in reached:
                reached.add(nxt)
                frontier.add(nxt)
    assert reached == set(OutboxStatus)
    for end in (OutboxStatus.DELIVERED, OutboxStatus.CANCELLED, OutboxStatus.SUPPRESSED):
        assert TRANSITIONS[end] == frozenset()
    assert TRANSITIONS[OutboxStatus.FAILED] == {OutboxStatus.QUEUED}
    assert ALLOWED_FROM[OutboxStatus.SENDING] == {"queued", "sending"}


def test_codes_and_replies_are_claimed_ahead_of_a_bulk_send(db_engine: Engine) -> None:
    """A one-time code queued after 300 broadcast rows is claimed first: claims go in the order
    of the message class (requested, own case, proactive, bulk), then by time."""
    with session_scope(db_engine) as s:
        enqueue_many(s, ({"idempotency_key": f"bulk:{i}", "kind": "staff_broadcast", "channel": "sms",
                          "address": f"+8613900000{i:03d}", "body": "讲座"} for i in range(300)), now=NOW)
        code = enqueue(s, key="otp:1", kind="otp", channel="sms", address="+8613800000001", body="验证码 482913",
                       now=NOW + timedelta(seconds=5), urgent=True)
        reminder = enqueue(s, key="cert:1", kind="cert_reminder_7", channel="sms", address="+8613800000002",
                           body="认证提醒", now=NOW + timedelta(seconds=6))
    with session_scope(db_engine, immediate=True) as s:
        first = claim(s, owner="d1", now=NOW + timedelta(seconds=10), lease_s=30, limit=3)
    assert {r.id for r in first} >= {code.message_id, reminder.message_id}
    assert {r.kind: r.message_class for r in first}["otp"] == "requested"
