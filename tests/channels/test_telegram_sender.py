"""One Telegram sender per process: conversation replies and outbox sends share one Bot and one
limiter; a reply keeps the chat's limit and goes ahead of a broadcast; a 429 pauses both."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiogram.types import Update

from bot.channels import telegram
from bot.channels.base import Reply
from models.clock import SystemClock
from models.db import session_scope
from outreach.dispatcher import Dispatcher
from outreach.limits import BULK_HORIZON_S, HEADROOM, LocalLimiter, ProviderLimit
from outreach.outbox import enqueue_many
from outreach.providers.telegram import TelegramProvider
from service import build_outbound
from tests.fakes.fake_telegram import FakeTelegram, Faults
from tests.fakes.windows import window_violations
from tests.outreach.outreach_helpers import fake_sleep

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


async def test_an_answer_during_a_broadcast_takes_the_next_slots_and_keeps_the_chats_limit_with_the_outbox(
        fake_tg: FakeTelegram, channel_settings: Any, sqlite_engine: Any, clock: Any) -> None:
    """One Bot and one limiter (20 messages/s, 1 a second per chat) serve a broadcast of 200 and
    a person who writes while it goes out, one of whose broadcast messages went just before. Read
    on the clock at each request the Bot makes (virtual time, so the figures are exact): the
    three-part answer goes at the first slot the chat allows and then one a second, never behind
    the broadcast's backlog; every message to the chat, the outbox's and the answer's, is at least
    a second after the one before; no second holds more than 20 sends; each message goes once."""
    rate, per_chat = 20.0, 1.0
    sleep = fake_sleep(clock)
    limiter = LocalLimiter(ProviderLimit.one_sender("telegram", rate, per_key_per_s=per_chat), clock)
    sender = TelegramProvider(TOKEN, api_base=fake_tg.base_url, limiter=limiter, sleep=sleep)
    sends: list[tuple[float, str, str]] = []  # (clock's seconds, chat, text) as each request leaves
    their_notice_went = asyncio.Event()

    async def record(make_request: Any, bot: Any, method: Any) -> Any:
        if method.__api_method__ == "sendMessage":
            sends.append((clock.now().timestamp(), str(method.chat_id), method.text))
            if str(method.chat_id) == str(CHAT):
                their_notice_went.set()
        return await make_request(bot, method)

    sender.bot.session.middleware(record)
    with session_scope(sqlite_engine) as s:
        enqueue_many(s, ({"idempotency_key": f"bc:{i}", "kind": "broadcast", "channel": "telegram",
                          "address": str(CHAT if i == 40 else 900000 + i), "body": f"通知 {i}"} for i in range(200)),
                     now=clock.now())
    d = Dispatcher(sqlite_engine, {"telegram": sender}, clock, channel_settings, limits={"telegram": limiter},
                   sleep=sleep)
    answer = ["第一条", "第二条", "第三条"]
    dp = telegram.create_dispatcher(ScriptedEngine(lambda i: [Reply(t) for t in answer]), channel_settings,
                                    reply_sender=sender)
    asked: list[float] = []

    async def person_writes() -> None:
        await their_notice_went.wait()  # the broadcast reached the person's own message of it
        await sleep(0.5)  # and is half a second past it, well under way
        asked.append(clock.now().timestamp())
        update = Update.model_validate({"update_id": 1, **fake_tg.text_update(CHAT, "我要人工")},
                                       context={"bot": sender.bot})
        await dp.feed_update(sender.bot, update)

    try:
        await asyncio.gather(d.run_once(), person_writes())
    finally:
        await sender.close()
    to_chat = [(t, text) for t, chat, text in sends if chat == str(CHAT)]
    assert [text for _, text in to_chat] == ["通知 40", *answer]
    gaps = [later - earlier for (earlier, _), (later, _) in zip(to_chat, to_chat[1:], strict=False)]
    assert all(gap >= 1 / per_chat for gap in gaps), gaps
    # The first slot the chat allows (a second after its broadcast message, which went before the
    # person wrote), then one a second: the bulk lane holds at most BULK_HORIZON_S of the future.
    outbox_at, first_at = to_chat[0][0], to_chat[1][0]
    assert outbox_at < asked[0] < outbox_at + 1 / per_chat
    assert first_at - (outbox_at + 1 / per_chat) <= BULK_HORIZON_S + 0.06
    assert all(gap <= 1 / (per_chat * HEADROOM) + BULK_HORIZON_S + 0.06 for gap in gaps[1:]), gaps
    broadcast_after = [t for t, chat, text in sends if text.startswith("通知") and t > to_chat[-1][0]]
    assert len(broadcast_after) > 50  # the backlog the answer did not wait behind
    assert window_violations([t for t, _, _ in sends], rate) == 0
    assert sorted(text for _, _, text in sends) == sorted([f"通知 {i}" for i in range(200)] + answer)
    assert d.stats["sent"] == 200


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
