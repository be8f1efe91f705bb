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
Opt-out words (STOP, TD, 退订 …) reach the engine like any text; it records the opt-out.
Twilio's own STOP handling may also answer and later fail sends with 21610 — expected.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Request, Response

from bot.channels import sms
from models.phone import mask_phone
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
    clock = getattr(state, "clock", None)
    try:
        parsed = sms.parse_inbound(fields, received_at=clock.now() if clock is not None else None)
    except sms.BadSMS as exc:
        log.warning("twilio sms webhook: refused a signed request: %s", exc)
        return Response(f"bad request: {exc}", status_code=400, media_type="text/plain")
    inbound = parsed.inbound
    if parsed.cleaned:
        log.info("sms from %s: control characters removed from the body", mask_phone(inbound.address))
    engine = getattr(state, "bot_engine", None)
    if engine is None:
        return Response("conversation engine not running", status_code=503, media_type="text/plain")
    try:
        replies = await engine.ahandle(inbound)
    except Exception:
        log.exception("sms from %s: the engine failed", mask_phone(inbound.address))
        return _twiml([_SORRY])
    office_day = (clock.now() if clock is not None else datetime.now(UTC)).astimezone(state.settings.tz).date()
    return _twiml(sms.render(replies, today=office_day))
