"""Telegram in webhook mode: `POST /webhooks/telegram`.

Telegram sends each update with the secret given to setWebhook in the
`X-Telegram-Bot-Api-Secret-Token` header. A request without it, or with another value,
is refused (403) before it is parsed; with no secret configured every request is refused,
so an unprotected webhook never runs. A good update goes to the same dispatcher polling
uses (`app.state.telegram_dispatcher`, `app.state.telegram_bot`); replies are sent with
API calls from the handlers, and the response is an empty 200 so Telegram moves on.
"""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

log = logging.getLogger(__name__)
router = APIRouter()

PATH = "/webhooks/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_UPDATE_BYTES = 1024 * 1024


def _secret_ok(expected: str, given: str | None) -> bool:
    if not expected or given is None:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


@router.post(PATH)
async def telegram_update(request: Request) -> Response:
    state = request.app.state
    if not _secret_ok(state.settings.telegram_webhook_secret, request.headers.get(SECRET_HEADER)):
        log.warning("telegram webhook: missing or wrong secret token, refused")
        return Response("forbidden", status_code=403, media_type="text/plain")
    body = await request.body()
    if len(body) > MAX_UPDATE_BYTES:
        return Response("update too large", status_code=413, media_type="text/plain")
    bot = getattr(state, "telegram_bot", None)
    dp = getattr(state, "telegram_dispatcher", None)
    if bot is None or dp is None:  # webhook mode not started in this process
        return Response("telegram is not running here", status_code=503, media_type="text/plain")
    from aiogram.types import Update  # here, not at import: aiogram takes seconds to load

    try:
        update = Update.model_validate_json(body, context={"bot": bot})
    except ValidationError:
        return Response("not a Telegram update", status_code=400, media_type="text/plain")
    # Handler errors are answered by the dispatcher's error handler (a polite "try again"),
    # so a failing update is not redelivered by Telegram over and over.
    await dp.feed_update(bot, update)
    return Response(status_code=200)
