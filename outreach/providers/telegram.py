"""Telegram through aiogram's `Bot` on aiogram's own `AiohttpSession`, its errors mapped onto our closed set.

`make_bot` builds the one `Bot` of a process; `telegram_api_base` (a local Bot API server, or
the fake in tests) replaces api.telegram.org. `extra["buttons"]` (rows of {"text", "data"} or
{"text", "url"}) become an inline keyboard.
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    ClientDecodeError,
    RestartingTelegram,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from outreach.providers.base import (
    AddressInvalid,
    ChannelMisconfigured,
    ConnectionFailed,
    ContactStopped,
    OutgoingMessage,
    Rejected,
    SendError,
    SendResult,
    TemporaryFailure,
    Throttled,
)


def make_bot(token: str, *, api_base: str = "", timeout: float = 10.0, connections: int = 100) -> Bot:
    """A `Bot` on aiogram's `AiohttpSession`: plain text by default (no parse mode, so nothing we
    send can break markup), `connections` concurrent requests at most."""
    kwargs: dict[str, Any] = {"limit": connections, "timeout": timeout}
    if api_base:
        kwargs["api"] = TelegramAPIServer.from_base(api_base.rstrip("/"), is_local=True)
    return Bot(token, session=AiohttpSession(**kwargs), default=DefaultBotProperties(parse_mode=None))


def inline_keyboard(extra: dict[str, Any]) -> InlineKeyboardMarkup | None:
    rows = extra.get("buttons") or []
    if not rows:
        return None
    keyboard = []
    for row in rows:
        buttons = []
        for b in row:
            if b.get("url"):
                buttons.append(InlineKeyboardButton(text=str(b["text"]), url=str(b["url"])))
            else:
                # Telegram allows 1-64 bytes of callback data.
                buttons.append(InlineKeyboardButton(text=str(b["text"]), callback_data=str(b.get("data", b["text"]))[:64]))
        keyboard.append(buttons)
    return InlineKeyboardMarkup(inline_keyboard=keyboard)


def map_telegram_error(exc: Exception) -> SendError:
    """aiogram exception → one of ours. The descriptions are Telegram's own words."""
    text = str(getattr(exc, "message", "") or exc)
    low = text.lower()
    if isinstance(exc, TelegramRetryAfter):
        return Throttled(exc.retry_after, text, 429)
    if isinstance(exc, TelegramForbiddenError):
        if "blocked" in low or "deactivated" in low or "kicked" in low:
            return ContactStopped("blocked", text, 403)
        # "bot can't initiate conversation with a user": the person never pressed Start.
        return AddressInvalid(text, 403)
    if isinstance(exc, TelegramUnauthorizedError | TelegramNotFound | TelegramConflictError):
        return ChannelMisconfigured(text, getattr(exc, "status", "") or type(exc).__name__)
    if isinstance(exc, TelegramMigrateToChat):
        return AddressInvalid(text, 400)
    if isinstance(exc, TelegramBadRequest):
        if "chat not found" in low or "user not found" in low or "peer_id_invalid" in low:
            return AddressInvalid(text, 400)
        return Rejected(text, 400)
    if isinstance(exc, TelegramEntityTooLarge):
        return Rejected(text, 413)
    if isinstance(exc, RestartingTelegram | TelegramServerError):
        return TemporaryFailure(text, 500)
    if isinstance(exc, TelegramNetworkError):
        return ConnectionFailed(text, "network")
    if isinstance(exc, ClientDecodeError):  # an HTML error page from a proxy in front of the API
        return TemporaryFailure(text[:200], "decode")
    if isinstance(exc, TelegramAPIError):
        return TemporaryFailure(text, "api")
    if isinstance(exc, TimeoutError | OSError):
        return ConnectionFailed(str(exc) or type(exc).__name__, "network")
    return TemporaryFailure(f"{type(exc).__name__}: {exc}", "unexpected")


def chat_id_of(address: str) -> int | str:
    """A numeric chat id as the number Telegram uses; a @channel name as it is."""
    return int(address) if address.lstrip("-").isdigit() else address


class TelegramProvider:
    channel = "telegram"
    name = "telegram"

    def __init__(self, token: str, *, api_base: str = "", timeout: float = 10.0, connections: int = 100,
                 bot: Bot | None = None) -> None:
        self.bot = bot or make_bot(token, api_base=api_base, timeout=timeout, connections=connections)
        # Every send ends within the session's timeout: the dispatcher adds no timer of its own.
        self.timeout_s = float(self.bot.session.timeout)

    async def send(self, message: OutgoingMessage) -> SendResult:
        chat_id = chat_id_of(message.address)
        try:
            # Bounded by the session's timeout (`make_bot`).
            sent = await self.bot.send_message(chat_id, message.body, reply_markup=inline_keyboard(message.extra))
        except Exception as exc:  # noqa: BLE001 - mapped onto the closed set
            raise map_telegram_error(exc) from exc
        return SendResult(f"{chat_id}:{sent.message_id}")

    async def close(self) -> None:
        await self.bot.session.close()
