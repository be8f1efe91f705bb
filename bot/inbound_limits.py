"""Limits on what one address may cost: inbound messages, and one-time codes sent by SMS.

One number (or one Telegram chat) writing hundreds of messages floods staff's handoff queue and,
on SMS, costs a reply each; one number asking for code after code costs an SMS each. The channel
adapters ask `check_message` before the engine sees a message, and the identity flow asks
`may_send_code` before it sends a code. Limits are windows ("10/minute;60/hour;200/day", the
`limits` library's notation), counted with its sliding-window counter: in Redis when `REDIS_URL`
is set, so every web replica counts together, else in this process.

A refused message is answered once, kindly, with when to write again and the office's phone for
anything urgent; further messages in the same window get no answer at all (each answer would cost
what the limit is there to save). Refusals are logged with the address masked. A message refused
is not counted, so the address is heard again as soon as its window has room.

When the limits' store cannot be reached the message goes through (a person must never be shut
out by our outage) and the failure is logged; one-time codes keep the identity flow's own
per-hour limit in the database either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from bot.language import detect_language
from bot.texts import t
from models.phone import mask_phone

log = logging.getLogger("nuanxin.inbound_limits")

PREFIX = "nuanxin:inbound"


class Verdict(StrEnum):
    ALLOW = "allow"
    REFUSE_AND_SAY = "refuse_and_say"  # the first refusal in this window: say so once
    REFUSE_SILENTLY = "refuse_silently"


@dataclass(frozen=True)
class Refusal:
    verdict: Verdict
    limit: str = ""  # the window that refused, e.g. "10 per 1 minute"
    text: str = ""  # what to say (REFUSE_AND_SAY only)


ALLOWED = Refusal(Verdict.ALLOW)


def mask_address(channel: str, address: str) -> str:
    """A phone number as +86138****5678; a chat id with its last 3 digits only."""
    if address.startswith("+"):
        return mask_phone(address)
    return f"{channel}:***{address[-3:]}" if len(address) > 3 else f"{channel}:***"


def parse_windows(text: str) -> tuple[RateLimitItem, ...]:
    """"10/minute;60/hour" → the limits' items; "" → none. ValueError on anything else."""
    text = text.strip()
    if not text:
        return ()
    try:
        return tuple(parse_many(text))
    except ValueError as exc:
        raise ValueError(f"{text!r}: write windows as 10/minute;60/hour;200/day") from exc


def _wait_words(item: RateLimitItem, lang: str) -> str:
    """When to write again, as the refusal says it: "1分钟后" / "in 1 minute", "明天" / "tomorrow"."""
    seconds = item.get_expiry()
    if seconds >= 86400:
        return "tomorrow" if lang == "en" else "明天"
    if seconds >= 3600:
        n, zh, en = seconds // 3600, "小时", "hour"
    else:
        n, zh, en = max(1, seconds // 60), "分钟", "minute"
    return f"in {n} {en}{'s' if n > 1 else ''}" if lang == "en" else f"{n}{zh}后"


class InboundLimits:
    """The limits of one process (sharing their counts through Redis when given a URL)."""

    def __init__(self, *, per_address: tuple[RateLimitItem, ...], codes_per_phone: tuple[RateLimitItem, ...],
                 codes_total: tuple[RateLimitItem, ...], storage_uri: str = "memory://",
                 office_phone: str = "", prefix: str = PREFIX) -> None:
        self.per_address = per_address
        self.codes_per_phone = codes_per_phone
        self.codes_total = codes_total
        self.office_phone = office_phone
        options: dict[str, Any] = {}
        if storage_uri.startswith(("redis://", "rediss://", "unix://")):
            options = {"key_prefix": prefix, "socket_timeout": 2, "socket_connect_timeout": 2}
            if storage_uri.startswith("unix://"):
                storage_uri = "redis+" + storage_uri
        self.storage = storage_from_string(storage_uri, **options)
        self.limiter = SlidingWindowCounterRateLimiter(self.storage)

    @classmethod
    def from_settings(cls, settings: Any) -> InboundLimits:
        return cls(per_address=parse_windows(settings.inbound_limits),
                   codes_per_phone=parse_windows(settings.code_limits_per_phone),
                   codes_total=parse_windows(settings.code_limits_total),
                   storage_uri=settings.redis_url or "memory://", office_phone=settings.office_phone)

    # --- inbound messages ---------------------------------------------------------------
    def check_message(self, channel: str, address: str, *, text: str = "", language_hint: str | None = None
                      ) -> Refusal:
        """May this message reach the engine? Counts it when it may."""
        try:
            refused = self._first_full(self.per_address, "in", channel, address)
            if refused is None:
                for item in self.per_address:
                    self.limiter.hit(item, "in", channel, address)
                return ALLOWED
            # One answer per refusing window: the notice has a limit of its own, 1 per that window.
            notice = _one_per(refused)
            first = self.limiter.hit(notice, "told", channel, address)
        except Exception as exc:  # the store is down: let the person through
            log.warning("inbound limits unavailable (%s): %s let through", type(exc).__name__,
                        mask_address(channel, address))
            return ALLOWED
        described = str(refused)
        log.warning("inbound limit %s reached by %s: message %s", described, mask_address(channel, address),
                    "refused, told once" if first else "refused silently")
        if not first:
            return Refusal(Verdict.REFUSE_SILENTLY, described)
        lang = detect_language(text, language_hint)
        return Refusal(Verdict.REFUSE_AND_SAY, described,
                       t("too_many_messages", lang, wait=_wait_words(refused, lang), phone=self.office_phone))

    async def acheck_message(self, channel: str, address: str, *, text: str = "",
                             language_hint: str | None = None) -> Refusal:
        """`check_message` for the event loop (Redis is asked from a thread)."""
        if not self.per_address:
            return ALLOWED
        return await asyncio.to_thread(self.check_message, channel, address, text=text, language_hint=language_hint)

    # --- one-time codes -------------------------------------------------------------------
    def may_send_code(self, phone_e164: str) -> bool:
        """May a code go by SMS to this phone now? Counts it when it may. Per phone, and for
        the whole office (a spread-out attack still cannot run up the bill)."""
        try:
            refused = (self._first_full(self.codes_per_phone, "code", phone_e164)
                       or self._first_full(self.codes_total, "code", "*"))
            if refused is None:
                for item in self.codes_per_phone:
                    self.limiter.hit(item, "code", phone_e164)
                for item in self.codes_total:
                    self.limiter.hit(item, "code", "*")
                return True
        except Exception as exc:
            log.warning("code limits unavailable (%s): code to %s allowed", type(exc).__name__, mask_phone(phone_e164))
            return True
        log.warning("one-time code limit %s reached: no code to %s", refused, mask_phone(phone_e164))
        return False

    def _first_full(self, items: tuple[RateLimitItem, ...], *ids: str) -> RateLimitItem | None:
        for item in items:
            if not self.limiter.test(item, *ids):
                return item
        return None

    def reset(self) -> None:
        """Forget every count (tests; an operator lifting a block)."""
        self.storage.reset()


class TelegramInboundGate:
    """An aiogram outer middleware on updates (polling and webhook alike): a chat over its limit
    gets the one kind answer, then nothing, and the update goes no further. Counts what came in.

    A plain callable, as aiogram allows: this module must not import aiogram (the SMS route uses it).
    """

    def __init__(self, limits: InboundLimits, metrics: Any = None) -> None:
        self.limits = limits
        self.metrics = metrics

    def _count(self, status: str) -> None:
        if self.metrics is not None:
            self.metrics.messages_in.labels(channel="telegram", status=status).inc()

    async def __call__(self, handler: Any, update: Any, data: dict[str, Any]) -> Any:
        message = getattr(update, "message", None)
        query = getattr(update, "callback_query", None)
        chat = message.chat if message is not None else (
            query.message.chat if query is not None and query.message is not None else None)
        if chat is None:  # nothing we answer (edits, channel posts…): the routers ignore it
            return await handler(update, data)
        sender = getattr(message if message is not None else query, "from_user", None)
        text = (message.text or message.caption or "") if message is not None else ""
        refusal = await self.limits.acheck_message("telegram", str(chat.id), text=text,
                                                   language_hint=getattr(sender, "language_code", None))
        if refusal.verdict is Verdict.ALLOW:
            self._count("handled")
            return await handler(update, data)
        self._count("limited")
        if query is not None:
            with contextlib.suppress(Exception):
                await query.answer()  # stop the button's spinner
        bot = data.get("bot")
        if refusal.verdict is Verdict.REFUSE_AND_SAY and bot is not None:
            try:
                await bot.send_message(chat.id, refusal.text)
            except Exception as exc:  # the notice is a courtesy: its failure changes nothing
                log.warning("telegram %s: the limit notice was not sent: %s", mask_address("telegram", str(chat.id)),
                            type(exc).__name__)
        return None


def _one_per(item: RateLimitItem) -> RateLimitItem:
    return type(item)(1, item.multiples, item.namespace)


__all__ = ["ALLOWED", "InboundLimits", "Refusal", "TelegramInboundGate", "Verdict", "mask_address", "parse_windows"]
