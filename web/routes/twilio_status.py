"""POST /webhooks/twilio/status: Twilio's delivery receipts for the SMS we sent.

1. The signature (`X-Twilio-Signature`, Twilio's `RequestValidator` over our public URL and
   the form fields) must be right, else 403 and nothing changes.
2. The receipt moves the outbox row forward only (a late 'sent' never undoes 'delivered'):
   sent → sent, delivered → delivered (+ delivered_at), undelivered / failed → by ErrorCode:
   21610 opts the contact out; invalid-number codes (30005, 30006, 21614, ...) mark it invalid;
   both fail the row and fall back to Telegram when allowed. Temporary codes (30003
   unreachable handset, ...) put the row back in the queue with a delay, within its deadline.
3. Unknown MessageSid: 200 and nothing (a receipt for a message sent by another system).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlmodel import select
from twilio.request_validator import RequestValidator, get_signature_algorithm

from models.actions import mark_invalid, opt_out
from models.clock import SystemClock
from models.db import session_scope
from models.outbox import OutboxMessage, OutboxStatus
from models.people import Contact
from outreach.outbox import transition
from outreach.providers.base import AddressInvalid, ContactStopped
from outreach.providers.twilio import STATUS_CALLBACK_PATH, classify_code

log = logging.getLogger("nuanxin.twilio_status")
router = APIRouter()

_RANK = {OutboxStatus.QUEUED.value: 0, OutboxStatus.SENDING.value: 1, OutboxStatus.SENT.value: 2,
         OutboxStatus.DELIVERED.value: 3}
# Undelivered because of something that may pass: try again after this long.
RETRY_UNDELIVERED_AFTER = timedelta(minutes=30)
DEFAULT_DEADLINE = timedelta(hours=24)


def _public_url(settings: Any, request: Request) -> str:
    url = settings.public_base_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    return url


def signature_ok(settings: Any, request: Request, params: dict[str, str]) -> bool:
    token = getattr(settings, "twilio_auth_token", "")
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not signature:
        return False
    algorithm = get_signature_algorithm(request.headers.get("X-Twilio-Signature-Settings", ""))
    return bool(RequestValidator(token).validate(_public_url(settings, request), params, signature, algorithm))


@router.post(STATUS_CALLBACK_PATH)
async def twilio_status(request: Request) -> Response:
    state = request.app.state
    form = await request.form()
    params = {k: str(v) for k, v in form.multi_items()}
    if not signature_ok(state.settings, request, params):
        log.warning("twilio status callback: bad or missing signature, refused")
        return Response("invalid signature", status_code=403, media_type="text/plain")
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    status = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    code = params.get("ErrorCode") or ""
    clock = getattr(state, "clock", None) or SystemClock()
    from starlette.concurrency import run_in_threadpool

    await run_in_threadpool(apply_receipt, state.engine, sid, status, code, clock.now())
    return Response(status_code=204)


def apply_receipt(engine: Any, sid: str, status: str, error_code: str, now: Any) -> str | None:
    """Apply one delivery receipt; returns the row's new status (None when nothing changed)."""
    if not sid:
        return None
    from outreach.dispatcher import queue_fallback

    with session_scope(engine, immediate=True) as session:
        row = session.exec(select(OutboxMessage).where(OutboxMessage.provider_message_id == sid)).first()
        if row is None:
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
