"""Inbound SMS from Twilio: `POST /webhooks/twilio/sms`.

Order of checks, each refusing before anything is stored or handed on:
1.-2. size (413) and Twilio's signature (403), by the one webhook check `web.twilio_signature`;
3. fields: From must be an E.164 number, Body at most 1,600 characters → else 400 with
   the reason (a signed request that fails here is a misconfiguration worth seeing in
   Twilio's debugger, not a message we could answer). Control characters in the Body
   are removed and the rest is handled: the message is not dropped.

Replies go back as TwiML in the HTTP response (`<Response><Message>…</Message></Response>`):
Twilio sends them from the number the person wrote to, with no outbound API call and no
outbox row. Proactive messages (reminders, broadcasts) go through the outbox instead.
Then, before the engine: the MessageSid is looked up in the database (bot/inbound.py, a read),
so a delivery repeated by Twilio, to this replica or another, gets an empty answer instead of a
second reply; and the sender's inbound limits are checked (bot/inbound_limits.py): over them,
the first refusal is answered kindly and the rest get an empty answer. The engine stores the
message, the conversation's state and its replies in one transaction, and itself answers a
MessageSid it has logged already with nothing (so two replicas racing for one delivery, or a
crash before the receipt is written, still give one reply); the receipt is written once, after.
Opt-out words (STOP, TD, 退订 …) reach the engine like any text; it records the opt-out.
Twilio's own STOP handling may also answer and later fail sends with 21610 — expected.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from bot import inbound as inbound_receipts
from bot.channels import sms
from bot.inbound_limits import InboundLimits, Verdict
from models.phone import mask_phone
from outreach.metrics import metrics_of
from web.twilio_signature import signed_twilio_form

log = logging.getLogger(__name__)
router = APIRouter()

PATH = "/webhooks/twilio/sms"
# Said when the engine fails: the person learns to send again instead of waiting in vain.
_SORRY = "系统暂时繁忙，请稍后再发一次。Sorry, please try again later."


def _twiml(messages: list[str]) -> Response:
    return Response(content=sms.twiml(messages), media_type="application/xml")


@router.post(PATH)
async def inbound_sms(request: Request, fields: dict[str, str] = Depends(signed_twilio_form)) -> Response:
    state = request.app.state
    counted = metrics_of(state).messages_in
    clock = getattr(state, "clock", None)
    try:
        parsed = sms.parse_inbound(fields, received_at=clock.now() if clock is not None else None)
    except sms.BadSMS as exc:
        log.warning("twilio sms webhook: refused a signed request: %s", exc)
        counted.labels(channel="sms", status="refused").inc()
        return Response(f"bad request: {exc}", status_code=400, media_type="text/plain")
    inbound = parsed.inbound
    if parsed.cleaned:
        log.info("sms from %s: control characters removed from the body", mask_phone(inbound.address))
    engine = getattr(state, "bot_engine", None)
    if engine is None:
        return Response("conversation engine not running", status_code=503, media_type="text/plain")
    db = getattr(state, "engine", None)  # the service always has one; a bare test app may not
    sid = inbound.provider_message_id if db is not None else ""
    if db is not None and sid:
        claim = await asyncio.to_thread(inbound_receipts.seen, db, "sms", sid, now=_now(clock))
        if claim is inbound_receipts.Claim.DUPLICATE:
            counted.labels(channel="sms", status="duplicate").inc()
            return _twiml([])
        if claim is inbound_receipts.Claim.ELSEWHERE:  # another replica is answering it right now
            counted.labels(channel="sms", status="elsewhere").inc()
            return Response("being handled", status_code=503, media_type="text/plain", headers={"Retry-After": "5"})
    try:
        refusal = await _limits(state).acheck_message("sms", inbound.address, text=inbound.text,
                                                      language_hint=inbound.language_hint)
        if refusal.verdict is not Verdict.ALLOW:
            counted.labels(channel="sms", status="limited").inc()
            return _twiml([refusal.text] if refusal.verdict is Verdict.REFUSE_AND_SAY else [])
        counted.labels(channel="sms", status="handled").inc()
        try:
            replies = await engine.ahandle(inbound)
        except Exception:
            log.exception("sms from %s: the engine failed", mask_phone(inbound.address))
            return _twiml([_SORRY])
        office_day = _now(clock).astimezone(state.settings.tz).date()
        return _twiml(sms.render(replies, today=office_day))
    finally:
        if db is not None and sid:
            await asyncio.to_thread(inbound_receipts.handled, db, "sms", sid,
                                    owner=getattr(state, "process_owner", "web"), now=_now(clock))


def _now(clock: Any) -> datetime:
    return clock.now() if clock is not None else datetime.now(UTC)


def _limits(state: Any) -> InboundLimits:
    """The process's inbound limits (made from settings on first use for apps built without them)."""
    limits = getattr(state, "inbound_limits", None)
    if limits is None:
        limits = state.inbound_limits = InboundLimits.from_settings(state.settings)
    return limits
