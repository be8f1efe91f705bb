"""POST /webhooks/twilio/status: Twilio's delivery receipts for the SMS we sent.

1. The signature (`X-Twilio-Signature`, Twilio's `RequestValidator` over our public URL and
   the form fields) must be right, else 403 and nothing changes.
2. The receipt moves the outbox row forward only (a late 'sent' never undoes 'delivered'):
   sent → sent, delivered → delivered (+ delivered_at), undelivered / failed → by ErrorCode:
   21610 opts the contact out; invalid-number codes (30005, 30006, 21614, ...) mark it invalid;
   both fail the row and fall back to Telegram when allowed. Temporary codes (30003
   unreachable handset, ...) put the row back in the queue with a delay, within its deadline.
3. A receipt for a send not recorded yet is kept and applied when it is (outreach/receipts.py).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from twilio.request_validator import RequestValidator, get_signature_algorithm

from models.clock import SystemClock
from outreach.providers.twilio import STATUS_CALLBACK_PATH
from outreach.receipts import apply_receipt

log = logging.getLogger("nuanxin.twilio_status")
router = APIRouter()

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
