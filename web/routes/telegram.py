"""Telegram in webhook mode: `POST /webhooks/telegram`, on any number of web replicas.

Telegram sends each update with the secret given to setWebhook in the
`X-Telegram-Bot-Api-Secret-Token` header. A request without it, or with another value, is
refused (403, compared in constant time) before it is parsed; with no secret configured every
request is refused, so an unprotected webhook never runs.

An update is handled once, whichever replica it reaches and however often Telegram delivers it
(it does again when a 200 came late): the replica first claims the update's id in the database
(bot/inbound.py). A duplicate is answered 200 and dropped; one being handled by another replica
right now is answered 503, so Telegram delivers it again later (handled by then, or taken over if
that replica died). A good update goes to the same aiogram dispatcher polling uses
(`app.state.telegram_dispatcher`, `app.state.telegram_bot`), where the inbound limits and the
handlers run; replies are API calls from the handlers, and the response is an empty 200.

Who calls setWebhook is decided once, not by each replica: `nuanxin telegram set-webhook`
(a deployment step) or `nuanxin run` at its start.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from bot import inbound
from outreach.metrics import metrics_of

log = logging.getLogger(__name__)
router = APIRouter()

PATH = "/webhooks/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_UPDATE_BYTES = 1024 * 1024
RETRY_AFTER_S = 5


def from_telegram(request: Request) -> None:
    """The dependency of the Telegram webhook: the secret token setWebhook was given, or 403."""
    expected = request.app.state.settings.telegram_webhook_secret
    given = request.headers.get(SECRET_HEADER)
    if not expected or given is None or not hmac.compare_digest(expected.encode(), given.encode()):
        log.warning("telegram webhook: missing or wrong secret token, refused")
        metrics_of(request.app.state).messages_in.labels(channel="telegram", status="refused").inc()
        raise HTTPException(403, "forbidden")


@router.post(PATH, dependencies=[Depends(from_telegram)])
async def telegram_update(request: Request) -> Response:
    state = request.app.state
    counted = metrics_of(state).messages_in
    body = await request.body()
    if len(body) > MAX_UPDATE_BYTES:
        return Response("update too large", status_code=413, media_type="text/plain")
    bot = getattr(state, "telegram_bot", None)
    dp = getattr(state, "telegram_dispatcher", None)
    if bot is None or dp is None:  # webhook mode not started (yet) in this process: Telegram retries
        return Response("telegram is not running here", status_code=503, media_type="text/plain",
                        headers={"Retry-After": str(RETRY_AFTER_S)})
    from aiogram.types import Update  # imported late: the web answers before aiogram is loaded
    from pydantic import ValidationError

    try:
        update = Update.model_validate_json(body, context={"bot": bot})
    except ValidationError:
        counted.labels(channel="telegram", status="refused").inc()
        return Response("not a Telegram update", status_code=400, media_type="text/plain")
    db = getattr(state, "engine", None)  # the service always has one; a bare test app may not
    if db is None:
        await dp.feed_update(bot, update)
        return Response(status_code=200)
    clock = getattr(state, "clock", None)
    key = f"{bot.id}:{update.update_id}"
    owner = getattr(state, "process_owner", "web")
    claim = await asyncio.to_thread(inbound.claim, db, "telegram", key, owner=owner, now=_now(clock))
    if claim is inbound.Claim.DUPLICATE:
        counted.labels(channel="telegram", status="duplicate").inc()
        return Response(status_code=200)
    if claim is inbound.Claim.ELSEWHERE:
        counted.labels(channel="telegram", status="elsewhere").inc()
        return Response("being handled", status_code=503, media_type="text/plain",
                        headers={"Retry-After": str(RETRY_AFTER_S)})
    # Handler errors are answered by the dispatcher's error handler (a polite "try again"),
    # so a failing update is not redelivered by Telegram over and over.
    try:
        await dp.feed_update(bot, update)
    except Exception:
        log.exception("telegram update %s could not be handled; Telegram will deliver it again", update.update_id)
        await asyncio.to_thread(inbound.release, db, "telegram", key)
        return Response("failed", status_code=500, media_type="text/plain")
    await asyncio.to_thread(inbound.finish, db, "telegram", key, now=_now(clock))
    return Response(status_code=200)


def _now(clock: Any) -> datetime:
    return clock.now() if clock is not None else datetime.now(UTC)
