"""Telegram through aiogram's `Bot`, with aiogram's exceptions mapped onto our closed set.

`telegram_api_base` (a local Bot API server, or the fake in tests) replaces
api.telegram.org. `extra["buttons"]` (rows of {"text", "data"} or {"text", "url"}) become an
inline keyboard.

Calls without files go as a JSON body (the Bot API takes application/json for every method
but uploads) over a small keep-alive HTTP/1.1 pool (`TelegramSession`, `http1.HTTP1Pool`):
at thousands of messages a second, aiogram's form building and aiohttp's per-request work
cost more CPU than everything else the dispatcher does for a message.
"""

from __future__ import annotations

import ssl
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import urlsplit

import certifi
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import PRODUCTION, TelegramAPIServer
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
from aiogram.methods import SendMessage, TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, InputFile
from pydantic import BaseModel, ConfigDict, ValidationError

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
from outreach.providers.http1 import HTTP1Pool, HTTPError


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



class SentMessage(BaseModel):
    """What the dispatcher keeps of sendMessage's answer (a whole Message): its id."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    message_id: int


class SendMessageForId(SendMessage):
    """sendMessage, exactly as aiogram sends it, whose answer is read as `SentMessage`.

    The dispatcher needs only the message id. Validating the whole `Message` (chat, sender,
    entities, each bound to the bot) was the largest single cost of a send.
    """

    __returning__ = SentMessage  # type: ignore[assignment]


class TelegramSession(AiohttpSession):
    """aiogram's session, with calls that carry no file sent as one JSON body over `HTTP1Pool`.

    Values are prepared by aiogram's own `prepare_value` (bot defaults, enums, dates, nested
    objects) and answers checked by its `check_response`, so results and errors are exactly
    aiogram's. A call with a file, a file download, or an API server on another host than
    the pool's goes through aiogram's aiohttp session as usual.
    """

    def __init__(self, *, api: TelegramAPIServer = PRODUCTION, limit: int = 100, timeout: float = 60.0) -> None:
        super().__init__(api=api, limit=limit, timeout=timeout)
        origin = urlsplit(api.api_url(token="0:x", method="getMe"))
        self._origin = f"{origin.scheme}://{origin.netloc}"
        # Answer model classes by result type. pydantic builds `Response[...]` on first use (about
        # half a second) and keeps it only weakly: held here, it is built once per session.
        self._response_types: dict[Any, Any] = {}
        # The CA bundle is read only when the API is reached over TLS.
        tls = ssl.create_default_context(cafile=certifi.where()) if origin.scheme == "https" else None
        self._pool = HTTP1Pool(self._origin, limit=limit, ssl_context=tls)

    async def __call__(self, bot: Bot, method: TelegramMethod[TelegramType],
                       timeout: int | None = None) -> TelegramType:
        if len(self.middleware):
            return await super().__call__(bot, method, timeout)
        # No request middleware: straight to the request (aiogram's chain of partials costs a
        # runtime generic subscription per call).
        return await self.make_request(bot, method, timeout)

    async def make_request(self, bot: Bot, method: TelegramMethod[TelegramType],
                           timeout: int | None = None) -> TelegramType:
        url = self.api.api_url(token=bot.token, method=method.__api_method__)
        files: dict[str, InputFile] = {}
        payload: dict[str, Any] = {}
        # The method's own fields, not its `model_dump`: `prepare_value` dumps nested objects
        # itself, so dumping the method first only copied every value once more.
        fields = method.__dict__.items()
        extra = method.__pydantic_extra__
        for key, value in (fields if not extra else [*fields, *extra.items()]):
            if value is None:
                continue
            prepared = self.prepare_value(value, bot=bot, files=files, _dumps_json=False)
            if prepared is not None and prepared != "":  # what aiogram's form leaves out
                payload[key] = prepared
        if files or not url.startswith(self._origin):
            return await super().make_request(bot, method, timeout)
        try:
            answer = await self._pool.request("POST", url[len(self._origin):], self.json_dumps(payload).encode(),
                                              timeout=self.timeout if timeout is None else timeout)
        except TimeoutError as e:
            raise TelegramNetworkError(method=method, message="Request timeout error") from e
        except HTTPError as e:
            raise TelegramNetworkError(method=method, message=f"HTTPError: {e}") from e
        response = self._read_success(bot, method, answer.status, answer.body)
        if response is None:  # aiogram's own check raises its own errors
            response = super().check_response(bot=bot, method=method, status_code=answer.status,
                                              content=answer.body.decode("utf-8", "replace"))
        return cast(TelegramType, response.result)

    def check_response(self, bot: Bot, method: TelegramMethod[TelegramType], status_code: int,
                       content: str) -> Response[TelegramType]:
        """aiogram's check, with a well-formed success read as `_read_success` reads it."""
        response = self._read_success(bot, method, status_code, content)
        return response if response is not None else super().check_response(bot, method, status_code, content)

    def _read_success(self, bot: Bot, method: TelegramMethod[TelegramType], status_code: int,
                      content: str | bytes) -> Response[TelegramType] | None:
        """A successful answer, parsed and validated in one step by pydantic, with the answer's
        model class looked up once per result type (aiogram subscripts `Response[...]` on every
        call, a costly generic-cache lookup). None for anything else."""
        if not HTTPStatus.OK <= status_code <= HTTPStatus.IM_USED:
            return None
        response_type = self._response_types.get(method.__returning__)
        if response_type is None:
            response_type = self._response_types[method.__returning__] = Response[method.__returning__]  # type: ignore[name-defined]
        try:
            response: Response[TelegramType] = response_type.model_validate_json(content, context={"bot": bot})
        except (ValueError, ValidationError):
            return None  # aiogram's check names the problem
        return response if response.ok else None

    async def close(self) -> None:
        await self._pool.close()
        await super().close()


class TelegramProvider:
    channel = "telegram"
    name = "telegram"

    def __init__(self, token: str, *, api_base: str = "", timeout: float = 10.0, connections: int = 256,
                 bot: Bot | None = None) -> None:
        if bot is None:
            kwargs: dict[str, Any] = {"limit": connections, "timeout": timeout}
            if api_base:
                kwargs["api"] = TelegramAPIServer.from_base(api_base, is_local=True)
            bot = Bot(token, session=TelegramSession(**kwargs))
        self.bot = bot
        self.timeout = timeout
        self.timeout_s = timeout  # every send ends within this (the dispatcher adds no timer of its own)

    async def send(self, message: OutgoingMessage) -> SendResult:
        chat_id: int | str = int(message.address) if message.address.lstrip("-").isdigit() else message.address
        try:
            method = SendMessageForId(  # type: ignore[call-arg]
                chat_id=chat_id, text=message.body, reply_markup=inline_keyboard(message.extra))
            sent = cast(SentMessage, await self.bot(method, request_timeout=self.timeout))  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - mapped onto the closed set
            raise map_telegram_error(exc) from exc
        return SendResult(f"{chat_id}:{sent.message_id}")

    async def close(self) -> None:
        await self.bot.session.close()
