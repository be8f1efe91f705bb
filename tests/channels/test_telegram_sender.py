"""One Telegram sender per process: conversation replies and outbox sends share one Bot and one
limiter; a reply keeps the chat's limit and goes ahead of a broadcast; a 429 pauses both."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bot.channels import telegram
from bot.channels.base import Reply
from models.clock import SystemClock
from models.db import session_scope
from outreach.dispatcher import Dispatcher
from outreach.limits import LocalLimiter, ProviderLimit
from outreach.outbox import enqueue_many
from outreach.providers.telegram import TelegramProvider
from service import build_outbound
from tests.fakes.fake_telegram import FakeTelegram, Faults

from .support import TOKEN, ScriptedEngine

CHAT = 515151


def arrivals(tg: FakeTelegram, chat: int) -> list[float]:
    return [r.at for r in tg.requests if r.method == "sendMessage" and str(r.params["chat_id"]) == str(chat)]


def test_a_process_builds_one_bot_and_one_limiter_for_replies_and_the_outbox(
        channel_settings: Any, sqlite_engine: Any) -> None:
    """`build_outbound` (what `nuanxin run` uses) gives the dispatcher and the conversation the same
    Telegram provider, whose Bot is the one that polls and whose limiter is the dispatcher's."""
    outbound = build_outbound(channel_settings, sqlite_engine, SystemClock())
    assert outbound.telegram is outbound.providers["telegram"]
    assert outbound.telegram.limiter is outbound.limits["telegram"]
    assert outbound.limits["telegram"].limit == ProviderLimit.one_sender(
        "telegram", channel_settings.telegram_rate_per_s, channel_settings.telegram_per_chat_per_s)
    dp = telegram.create_dispatcher(ScriptedEngine(), channel_settings, reply_sender=outbound.telegram)
    assert dp["reply_sender"] is outbound.telegram
    asyncio.run(outbound.close())


async def test_replies_to_one_chat_keep_its_limit_of_one_a_second(fake_tg: FakeTelegram, channel_settings: Any) -> None:
    """An answer of three messages reaches the chat about a second apart (the chat's limit), not at once."""
    limiter = LocalLimiter(ProviderLimit.one_sender("telegram", 30, per_key_per_s=1), SystemClock())
    sender = TelegramProvider(TOKEN, api_base=fake_tg.base_url, limiter=limiter)
    engine = ScriptedEngine(lambda i: [Reply("第一条"), Reply("第二条"), Reply("第三条")])
    dp = telegram.create_dispatcher(engine, channel_settings, reply_sender=sender)
    try:
        fake_tg.push_update(fake_tg.text_update(CHAT, "你好"))
        [update] = await sender.bot.get_updates(timeout=0)
        await dp.feed_update(sender.bot, update)
    finally:
        await sender.close()
    times = arrivals(fake_tg, CHAT)
    assert [r.params["text"] for r in fake_tg.requests if r.method == "sendMessage"] == ["第一条", "第二条", "第三条"]
    assert all(later - earlier >= 0.95 for earlier, later in zip(times, times[1:], strict=False))


async def test_a_reply_goes_ahead_of_a_broadcast_already_filling_the_rate(
        fake_tg: FakeTelegram, channel_settings: Any, sqlite_engine: Any) -> None:
    """While the dispatcher works through a 3-second backlog of a broadcast at 100/s, a person
    writes: the answer reaches them within a second (a reply takes the next slot, ahead of the
    broadcast's queue), and the broadcast goes on after it through the same Bot and limiter."""
    settings = channel_settings.model_copy(update={"telegram_rate_per_s": 100.0})
    outbound = build_outbound(settings, sqlite_engine, SystemClock())
    sender = outbound.telegram
    with session_scope(sqlite_engine) as s:
        enqueue_many(s, ({"idempotency_key": f"bc:{i}", "kind": "broadcast", "channel": "telegram",
                          "address": str(900000 + i), "body": f"通知 {i}"} for i in range(300)),
                     now=SystemClock().now())
    d = Dispatcher(sqlite_engine, outbound.providers, SystemClock(), settings, limits=outbound.limits)
    dp = telegram.create_dispatcher(ScriptedEngine(lambda i: [Reply("马上为您办理")]), settings, reply_sender=sender)
    stop = asyncio.Event()
    run = asyncio.create_task(d.run(stop))
    try:
        while d.stats["sent"] < 50:  # the broadcast is under way
            await asyncio.sleep(0.01)
        fake_tg.push_update(fake_tg.text_update(CHAT, "我要人工"))
        [update] = await sender.bot.get_updates(timeout=0)
        asked = time.monotonic()
        await dp.feed_update(sender.bot, update)
        answered = time.monotonic()
        broadcast_left = 300 - d.stats["sent"]
        while d.stats["sent"] < 300:
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await run
        await outbound.close()
    [reply_at] = arrivals(fake_tg, CHAT)
    assert answered - asked < 1.0 and reply_at - asked < 1.0
    assert broadcast_left > 100  # a reply in the broadcast's queue would have waited over a second
    broadcast = [r.at for r in fake_tg.requests if r.method == "sendMessage" and r.params["text"].startswith("通知")]
    assert len(broadcast) == 300 and max(broadcast) > reply_at


class _OneThrottle(Faults):
    """The first request is answered 429 (retry after 1 s); every later one succeeds."""

    answered = 0

    def draw(self) -> tuple[str, bool]:
        self.answered += 1
        return ("429", False) if self.answered == 1 else ("", False)


async def test_a_reply_refused_with_429_pauses_the_shared_limit_and_goes_after_retry_after(
        fake_tg: FakeTelegram) -> None:
    """A 429 on a reply pauses Telegram in the limiter the outbox shares, and the reply is sent
    once, after retry_after, rather than lost."""
    clock = SystemClock()
    limiter = LocalLimiter(ProviderLimit.one_sender("telegram", 30, per_key_per_s=1), clock)
    sender = TelegramProvider(TOKEN, api_base=fake_tg.base_url, limiter=limiter)
    fake_tg.faults = _OneThrottle(retry_after=1)
    paused = []
    real_pause = limiter.pause

    async def pause(seconds: float) -> None:
        await real_pause(seconds)
        paused.append(limiter.paused_for())

    limiter.pause = pause  # type: ignore[method-assign]
    try:
        sent = await sender.reply(CHAT, "您好")
    finally:
        await sender.close()
    times = arrivals(fake_tg, CHAT)
    assert len(times) == 2 and times[1] - times[0] >= 0.95
    assert [m["text"] for m in fake_tg.sent] == ["您好"] and sent.chat.id == CHAT
    assert len(paused) == 1 and 0.5 < paused[0] <= 1.0
