"""A delivery receipt that beats the dispatcher's record of the send is not lost."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlmodel import Session, select

from models.db import session_scope, writer
from models.outbox import EarlyReceipt, OutboxMessage
from outreach.outbox import enqueue
from outreach.receipts import apply_early_receipts, apply_receipt

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def test_a_receipt_before_the_send_is_recorded_is_applied_when_it_is(db_engine: Engine) -> None:
    with session_scope(db_engine) as s:
        queued = enqueue(s, key="k:1", kind="test", channel="sms", address="+8613800138000", body="你好", now=NOW)
    # Twilio calls back before the dispatcher has written the message's sid.
    assert apply_receipt(db_engine, "SM123", "delivered", "", NOW) is None
    with Session(writer(db_engine)) as s:
        assert s.exec(select(EarlyReceipt)).one().provider_message_id == "SM123"
        row = s.get(OutboxMessage, queued.message_id)
        assert row is not None
        row.status, row.provider_message_id = "sent", "SM123"
        s.add(row)
        s.commit()
    assert apply_early_receipts(db_engine, ["SM123"], NOW) == 1
    with Session(db_engine) as s:
        row = s.get(OutboxMessage, queued.message_id)
        assert row is not None and row.status == "delivered" and row.delivered_at == NOW
        assert s.exec(select(EarlyReceipt)).all() == []


def test_an_early_queued_receipt_is_not_kept(db_engine: Engine) -> None:
    """'queued' says nothing new; only receipts that move a row forward are kept."""
    apply_receipt(db_engine, "SM9", "queued", "", NOW)
    with Session(db_engine) as s:
        assert s.exec(select(EarlyReceipt)).all() == []
