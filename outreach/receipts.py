"""Delivery receipts (Twilio status callbacks) turned into outbox and contact state.

Called by the status webhook, and by the dispatcher for receipts that arrived before it had
recorded the send they are about. Every change goes through `outreach.outbox`: a receipt
only moves a row forward (its transitions refuse a late 'sent' after 'delivered', or a
repeated 'failed'); a refusal is handled exactly as the dispatcher handles one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import col, select

from models.db import session_scope
from models.outbox import EarlyReceipt, OutboxMessage, OutboxStatus
from outreach import outbox
from outreach.providers.twilio_codes import classify_code

# Undelivered because of something that may pass: try again after this long.
RETRY_UNDELIVERED_AFTER = timedelta(minutes=30)
_AFTER_SEND = frozenset({OutboxStatus.SENT.value, OutboxStatus.SENDING.value})
_T = OutboxMessage.__table__  # type: ignore[attr-defined]


def apply_receipt(engine: Any, sid: str, status: str, error_code: str, now: Any) -> str | None:
    """Apply one delivery receipt; returns the row's new status (None when nothing changed)."""
    if not sid:
        return None
    with session_scope(engine, immediate=True) as session:
        row = outbox.load(session, _T.c.provider_message_id == sid)
        if row is None:
            if status in ("sent", "delivered", "undelivered", "failed"):
                # The send is not recorded yet (outcomes are written in batches): keep the
                # receipt; the dispatcher applies it when it records the send.
                session.add(EarlyReceipt(provider_message_id=sid[:64], status=status, error_code=error_code[:16],
                                         received_at=now))
            return None
        if status in ("sent", "delivered"):
            target = OutboxStatus.SENT if status == "sent" else OutboxStatus.DELIVERED
            values = {"delivered_at": now} if target == OutboxStatus.DELIVERED else {}
            done = outbox.move(session, [outbox.Move(row.id, target, f"receipt: {status}", values)], now)
            return target.value if done else None
        if status not in ("undelivered", "failed"):
            return None  # queued, accepted, scheduled, sending: nothing new
        code = error_code or status
        err = classify_code(int(error_code) if error_code.isdigit() else None, 400, f"receipt {status}")
        what = f"receipt: {status} {error_code}".strip()
        if err.retryable:
            m = outbox.retry_or_fail(row, delay_s=RETRY_UNDELIVERED_AFTER.total_seconds(), now=now, error_code=code,
                                     error=f"receipt {status} {error_code}".strip(), why=what,
                                     from_status=OutboxStatus.SENT, values={"provider_message_id": None})
            m = outbox.Move(m.id, m.to, f"{what}, retry later" if m.to == OutboxStatus.QUEUED else
                            f"{what}, past deadline", m.values, _AFTER_SEND)
            return m.to.value if outbox.move(session, [m], now) else None
        failed = outbox.fail_permanently(session, row, err, now, reason=what, from_statuses=_AFTER_SEND,
                                         error_code=code, actor="dispatcher")
        return OutboxStatus.FAILED.value if failed.failed else None


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
