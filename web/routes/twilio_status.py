"""POST /webhooks/twilio/status: Twilio's delivery receipts for the SMS we sent.

1. The request must be signed by Twilio (`web.twilio_signature`: SHA-1, or SHA-256 as the
   signature-settings header names it), else 403 and nothing changes.
2. The receipt moves the outbox row forward only (a late 'sent' never undoes 'delivered'):
   sent → sent, delivered → delivered (+ delivered_at), undelivered / failed → by ErrorCode:
   21610 opts the contact out; invalid-number codes (30005, 30006, 21614, ...) mark it invalid;
   both fail the row and fall back to Telegram when allowed. Temporary codes (30003
   unreachable handset, ...) put the row back in the queue with a delay, within its deadline.
3. A receipt for a send not recorded yet is kept and applied when it is (outreach/receipts.py).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request, Response

from models.clock import SystemClock
from outreach.providers.twilio_codes import STATUS_CALLBACK_PATH
from outreach.receipts import apply_receipt
from web.twilio_signature import signed_twilio_form

log = logging.getLogger("nuanxin.twilio_status")
router = APIRouter()

@router.post(STATUS_CALLBACK_PATH)
async def twilio_status(request: Request, params: dict[str, str] = Depends(signed_twilio_form)) -> Response:
    state = request.app.state
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    status = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    code = params.get("ErrorCode") or ""
    clock = getattr(state, "clock", None) or SystemClock()
    from starlette.concurrency import run_in_threadpool

    await run_in_threadpool(apply_receipt, state.engine, sid, status, code, clock.now())
    return Response(status_code=204)
