"""Telegram through aiogram's `Bot` on aiogram's own `AiohttpSession`, its errors mapped onto our closed set.

`TelegramProvider` is the one Telegram sender of a process: one `Bot` (`make_bot`; a local Bot API
server or the fake in tests replaces api.telegram.org when `telegram_api_base` is set) and one
limiter. The dispatcher sends the outbox through `send` after taking a bulk slot of that limiter;
the conversation's replies go through `reply`, which takes a reply slot of the same limiter (ahead
of any broadcast, within the chat's own 1 message a second). `extra["buttons"]` (rows of
{"text", "data"} or {"text", "url"}) become an inline keyboard.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
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
from aiogram.methods.base import Response
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message

from outreach.limits import Lane, Limiter, wait_for_slot
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

log = logging.getLogger("nuanxin.telegram")

REPLY_ATTEMPTS = 3  # a reply refused with 429 is sent again after retry_after, this many times in all

# aiogram reads each answer as `Response[<the method's result type>]`, and pydantic keeps such
# generic classes only weakly: under a steady load the collector drops `Response[Message]` and the
# next answer builds it again (tens of milliseconds of CPU each time). Held here, it is built once.
ANSWER_MODELS = (Response[Message], Response[bool])


def make_bot(token: str, *, api_base: str = "", timeout: float = 10.0, connections: int = 256) -> Bot:
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

    def __init__(self, token: str, *, api_base: str = "", timeout: float = 10.0, connections: int = 256,
                 bot: Bot | None = None, limiter: Limiter | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.bot = bot or make_bot(token, api_base=api_base, timeout=timeout, connections=connections)
        self.limiter = limiter  # shared with the dispatcher; None: replies are not limited here
        self.sleep = sleep
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

    async def reply(self, chat_id: int | str, text: str, reply_markup: Any = None) -> Message:
        """Answer someone who just wrote: ahead of bulk sends, keeping the chat's own limit. A 429
        pauses Telegram for every process sharing the limit, and the reply goes after it."""
        for attempt in range(1, REPLY_ATTEMPTS + 1):
            await self._reply_slot(str(chat_id))
            try:
                return await self.bot.send_message(chat_id, text, reply_markup=reply_markup)
            except TelegramRetryAfter as exc:
                if self.limiter is not None:
                    await self.limiter.pause(exc.retry_after)
                if attempt == REPLY_ATTEMPTS:
                    raise
                if self.limiter is None:
                    await self.sleep(exc.retry_after)
        raise AssertionError("unreachable")

    async def _reply_slot(self, key: str) -> None:
        if self.limiter is None:
            return
        try:
            await wait_for_slot(self.limiter, key, lane=Lane.REPLY, sleep=self.sleep)
        except Exception:  # the shared store unreachable: a reply is not lost to it (Telegram's 429 still holds us back)
            log.warning("telegram reply: the rate limiter is unavailable; sending without it", exc_info=True)

    async def close(self) -> None:
        await self.bot.session.close()
