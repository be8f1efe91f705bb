"""Delivery receipts (Twilio status callbacks) turned into outbox and contact state.

Called by the status webhook, and by the dispatcher for receipts that arrived before it
had recorded the send they are about.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import col, select

from models.actions import mark_invalid, opt_out
from models.db import session_scope
from models.outbox import EarlyReceipt, OutboxMessage, OutboxStatus
from models.people import Contact
from outreach.outbox import transition
from outreach.providers.base import AddressInvalid, ContactStopped
from outreach.providers.twilio import classify_code

_RANK = {OutboxStatus.QUEUED.value: 0, OutboxStatus.SENDING.value: 1, OutboxStatus.SENT.value: 2,
         OutboxStatus.DELIVERED.value: 3}
# Undelivered because of something that may pass: try again after this long.
RETRY_UNDELIVERED_AFTER = timedelta(minutes=30)
DEFAULT_DEADLINE = timedelta(hours=24)


def apply_receipt(engine: Any, sid: str, status: str, error_code: str, now: Any) -> str | None:
    """Apply one delivery receipt; returns the row's new status (None when nothing changed)."""
    if not sid:
        return None
    from outreach.dispatcher import queue_fallback

    with session_scope(engine, immediate=True) as session:
        row = session.exec(select(OutboxMessage).where(OutboxMessage.provider_message_id == sid)).first()
        if row is None:
            if status in ("sent", "delivered", "undelivered", "failed"):
                # The send is not recorded yet (outcomes are written in batches): keep the
                # receipt; the dispatcher applies it when it records the send.
                session.add(EarlyReceipt(provider_message_id=sid[:64], status=status, error_code=error_code[:16],
                                         received_at=now))
            return None
        if status in ("queued", "accepted", "scheduled", "sending"):
            return None
        if status in ("sent", "delivered"):
            target = OutboxStatus.SENT.value if status == "sent" else OutboxStatus.DELIVERED.value
            if row.status not in _RANK or _RANK[row.status] >= _RANK[target]:
                return None
            if target == OutboxStatus.DELIVERED.value:
                row.delivered_at = now
            transition(session, row, target, f"receipt: {status}", now)
            return target
        if status not in ("undelivered", "failed"):
            return None
        if row.status not in (OutboxStatus.SENT.value, OutboxStatus.SENDING.value):
            return None  # already delivered, failed, or requeued: a repeated receipt changes nothing
        err = classify_code(int(error_code) if error_code.isdigit() else None, 400, f"receipt {status}")
        row.error_code = (error_code or status)[:32]
        row.error = f"receipt {status} {error_code}".strip()[:500]
        contact = session.exec(select(Contact).where(Contact.channel == row.channel,
                                                     Contact.address == row.address)).first()
        if err.retryable:
            deadline = row.deadline_at or (row.created_at + DEFAULT_DEADLINE)
            if now + RETRY_UNDELIVERED_AFTER <= deadline:
                row.next_attempt_at = now + RETRY_UNDELIVERED_AFTER
                row.provider_message_id = None
                transition(session, row, OutboxStatus.QUEUED.value,
                           f"receipt: {status} {error_code}, retry later".strip(), now)
                return OutboxStatus.QUEUED.value
            transition(session, row, OutboxStatus.FAILED.value, f"receipt: {status} {error_code}, past deadline", now)
            return OutboxStatus.FAILED.value
        if contact is not None and isinstance(err, ContactStopped):
            opt_out(session, contact, reason=f"twilio {error_code}", actor="dispatcher", now=now)
        elif contact is not None and isinstance(err, AddressInvalid):
            mark_invalid(session, contact, reason=f"twilio {error_code}", actor="dispatcher", now=now)
        transition(session, row, OutboxStatus.FAILED.value, f"receipt: {status} {error_code}".strip(), now)
        if row.allow_fallback and isinstance(err, ContactStopped | AddressInvalid):
            queue_fallback(session, row, contact, now)
        return OutboxStatus.FAILED.value


def apply_early_receipts(engine: Any, sids: list[str], now: Any) -> int:
    """Apply, in the order they came, receipts that arrived before their sends were recorded."""
    if not sids:
        return 0
    with session_scope(engine, immediate=True) as session:
        early = session.exec(select(EarlyReceipt).where(col(EarlyReceipt.provider_message_id).in_(sids))
                             .order_by(col(EarlyReceipt.id))).all()
        pending = [(e.provider_message_id, e.status, e.error_code) for e in early]
        for e in early:
            session.delete(e)
    for sid, status, code in pending:
        apply_receipt(engine, sid, status, code, now)
    return len(pending)
