"""Providers against the protocol fakes: error mapping, buttons, and a faulty 5,000-message run."""

from __future__ import annotations

from collections import Counter

import pytest
from outreach_helpers import ScaledClock
from sqlalchemy import func, select

from models.db import session_scope
from models.outbox import OutboxEvent, OutboxMessage
from outreach.dispatcher import Dispatcher
from outreach.limits import LocalLimiter, ProviderLimit
from outreach.outbox import enqueue_many
from outreach.providers.base import (
    AddressInvalid,
    ChannelMisconfigured,
    ConnectionFailed,
    ContactStopped,
    OutgoingMessage,
    Rejected,
    TemporaryFailure,
    Throttled,
)
from outreach.providers.telegram import TelegramProvider
from outreach.providers.twilio import TwilioProvider
from tests.fakes.fake_telegram import FakeTelegram, Faults
from tests.fakes.fake_twilio import FakeTwilio

TOKEN = "4242:TEST"


def msg(address: str, body: str = "您好", **kw) -> OutgoingMessage:
    return OutgoingMessage(outbox_id=1, channel=kw.pop("channel", "telegram"), address=address, body=body, **kw)


async def test_telegram_send_renders_buttons_as_inline_keyboard():
    """extra["buttons"] reach Telegram as an inline keyboard with callback data; the id is chat:message."""
    async with FakeTelegram(TOKEN) as tg:
        p = TelegramProvider(TOKEN, api_base=tg.base_url)
        try:
            r = await p.send(msg("42", extra={"buttons": [[{"text": "确认", "data": "confirm"},
                                                           {"text": "网站", "url": "https://example.org"}]]}))
        finally:
            await p.close()
    assert r.provider_message_id == "42:1"
    assert tg.sent[0]["reply_markup"] == {"inline_keyboard": [[{"text": "确认", "callback_data": "confirm"},
                                                               {"text": "网站", "url": "https://example.org"}]]}


@pytest.mark.parametrize("setup, expected", [
    (lambda tg: tg.block(43), ContactStopped),
    (lambda tg: tg.forget(43), AddressInvalid),
    (lambda tg: setattr(tg, "faults", Faults(throttle=1.0, retry_after=7)), Throttled),
    (lambda tg: setattr(tg, "faults", Faults(error_5xx=1.0)), TemporaryFailure),
])
async def test_telegram_errors_map_onto_the_closed_set(setup, expected):
    """403 blocked → ContactStopped(blocked); 400 chat not found → AddressInvalid; 429 →
    Throttled(retry_after); 5xx → TemporaryFailure."""
    async with FakeTelegram(TOKEN) as tg:
        setup(tg)
        p = TelegramProvider(TOKEN, api_base=tg.base_url)
        try:
            with pytest.raises(expected) as err:
                await p.send(msg("43"))
        finally:
            await p.close()
    if expected is Throttled:
        assert err.value.retry_after == 7
    if expected is ContactStopped:
        assert err.value.reason == "blocked"


async def test_telegram_timeout_network_error_and_wrong_token():
    """No answer within the timeout → ConnectionFailed; nobody listening → ConnectionFailed;
    a wrong token → ChannelMisconfigured."""
    async with FakeTelegram(TOKEN, faults=Faults(timeout=1.0, hang_s=1.0, timeout_success=1.0)) as tg:
        p = TelegramProvider(TOKEN, api_base=tg.base_url, timeout=0.2)
        wrong = TelegramProvider("1:WRONG", api_base=tg.base_url)
        try:
            with pytest.raises(ConnectionFailed):
                await p.send(msg("44"))
            with pytest.raises(ChannelMisconfigured):
                await wrong.send(msg("44"))
        finally:
            await p.close()
            await wrong.close()
        assert len(tg.hidden_deliveries) == 1  # it did go out: the client could not know
        base = tg.base_url
    gone = TelegramProvider(TOKEN, api_base=base, timeout=1)
    try:
        with pytest.raises(ConnectionFailed):
            await gone.send(msg("44"))
    finally:
        await gone.close()


@pytest.mark.parametrize("code, expected", [
    (21610, ContactStopped), (21211, AddressInvalid), (21614, AddressInvalid), (21612, AddressInvalid),
    (21617, Rejected), (30003, TemporaryFailure), (30006, AddressInvalid),
])
async def test_twilio_error_codes_map_onto_the_closed_set(code, expected):
    """Twilio's error JSON (code, message, more_info, status) → our error classes."""
    async with FakeTwilio() as fake:
        fake.behave("+8613800000001", error=code)
        p = TwilioProvider(fake.account_sid, fake.auth_token, "+15005550006", api_base=fake.base_url)
        try:
            with pytest.raises(expected) as err:
                await p.send(msg("+8613800000001", channel="sms"))
        finally:
            await p.close()
    assert err.value.code == str(code)


async def test_twilio_429_carries_retry_after_and_bad_credentials_are_misconfiguration():
    async with FakeTwilio(faults=Faults(throttle=1.0, retry_after=4)) as fake:
        p = TwilioProvider(fake.account_sid, fake.auth_token, "+15005550006", api_base=fake.base_url)
        bad = TwilioProvider(fake.account_sid, "not-the-token", "+15005550006", api_base=fake.base_url)
        try:
            with pytest.raises(Throttled) as err:
                await p.send(msg("+8613800000001", channel="sms"))
            fake.faults = Faults()
            with pytest.raises(ChannelMisconfigured):
                await bad.send(msg("+8613800000001", channel="sms"))
        finally:
            await p.close()
            await bad.close()
    assert err.value.retry_after == 4


async def test_twilio_counts_segments_and_gets_the_status_callback():
    """The fake counts segments as the network does (UCS-2: 70, then 67 per segment)."""
    async with FakeTwilio() as fake:
        p = TwilioProvider(fake.account_sid, fake.auth_token, "+15005550006", api_base=fake.base_url,
                           public_base_url="https://x.example")
        try:
            r = await p.send(msg("+8613800000001", "您" * 71, channel="sms"))
        finally:
            await p.close()
    assert r.provider_message_id.startswith("SM") and fake.segments_sent == 2
    assert fake.requests[0]["StatusCallback"] == "https://x.example/webhooks/twilio/status"


@pytest.mark.slow
async def test_faulty_provider_every_message_delivered_and_duplicates_only_from_hidden_successes(
        sqlite_engine, settings):
    """5,000 messages through aiogram to the fake Telegram with 10% 5xx, 5% 429 (retry_after)
    and 2% timeouts (half of which were delivered although the client gave up): every row ends
    sent, with one success recorded and nothing done to it after that (a row whose success was
    written is never claimed or sent again); every message reached its chat; a message reached
    it more than once only after a send whose answer the dispatcher never got, at most once more
    per such send; every success the fake knows the client missed is such a send. Time runs 50x
    faster for backoff and retry_after (real HTTP, real timeouts).

    Duplicates are counted against the dispatcher's record of unanswered sends, not against the
    fake's list of hidden deliveries: on a loaded machine an answer the fake wrote in time can
    still reach the client after the client's own timeout fired. The fake cannot see that; the
    dispatcher can (it recorded ConnectionFailed and tried again, as it must)."""
    n = 5000
    clock = ScaledClock(50)
    faults = Faults(error_5xx=0.10, throttle=0.05, retry_after=1, timeout=0.02, hang_s=3.0, timeout_success=0.5,
                    seed=20260302)
    with session_scope(sqlite_engine) as s:
        enqueue_many(s, ({"idempotency_key": f"fault:{i}", "kind": "test", "channel": "telegram",
                          "address": str(100000 + i), "body": f"消息 {i}"} for i in range(n)), now=clock.now())
    async with FakeTelegram(TOKEN, faults=faults) as tg:
        provider = TelegramProvider(TOKEN, api_base=tg.base_url, timeout=2.0)
        d = Dispatcher(sqlite_engine, {"telegram": provider}, clock, settings, sleep=clock.sleep,
                       limits={"telegram": LocalLimiter(ProviderLimit("telegram"), clock)}, retry_base_s=5, batch_size=500,
                       concurrency=200, send_timeout_s=5)
        try:
            for _ in range(3000):
                with session_scope(sqlite_engine) as s:
                    left = s.execute(select(func.count()).where(OutboxMessage.status != "sent")).scalar()
                if not left:
                    break
                if await d.run_once() == 0:
                    await clock.sleep(1.0)
        finally:
            await provider.close()
    assert left == 0
    delivered = tg.deliveries()
    assert set(delivered) == {(str(100000 + i), f"消息 {i}") for i in range(n)}
    # The dispatcher's side: each row's trail of events, in order.
    with session_scope(sqlite_engine) as s:
        address_of = dict(s.execute(select(OutboxMessage.id, OutboxMessage.address)).all())
        trail = s.execute(select(OutboxEvent.outbox_id, OutboxEvent.to_status, OutboxEvent.reason)
                          .order_by(OutboxEvent.id)).all()
    successes: Counter[int] = Counter()
    unanswered: Counter[str] = Counter()  # per chat: sends that ended without the provider's answer
    after_success = []
    for oid, to_status, reason in trail:
        if successes[oid]:
            after_success.append((oid, to_status, reason))
        successes[oid] += to_status == "sent"
        unanswered[address_of[oid]] += "ConnectionFailed" in reason
    assert after_success == []
    assert set(successes.values()) == {1} and len(successes) == n
    duplicated = {k: c for k, c in delivered.items() if c > 1}
    assert all(c <= 1 + unanswered[address] for (address, _), c in duplicated.items()), {
        k: (c, unanswered[k[0]]) for k, c in duplicated.items() if c > 1 + unanswered[k[0]]}
    hidden = {(str(m["chat"]["id"]), m["text"]) for m in tg.hidden_deliveries}
    assert all(unanswered[address] for address, _ in hidden)
    requests = sum(1 for r in tg.requests if r.method == "sendMessage")
    print(f"\nfault run: requests={requests} hidden={len(tg.hidden_deliveries)} "
          f"unanswered={sum(unanswered.values())} duplicates={sum(c - 1 for c in duplicated.values())} "
          f"not hidden={len(set(duplicated) - hidden)} stats={d.stats}")
    assert d.stats["retried"] >= 0.15 * n  # the faults really happened


async def test_telegram_a_call_with_a_file_still_goes_as_aiograms_multipart_form():
    from aiogram.types import BufferedInputFile

    async with FakeTelegram(TOKEN) as tg:
        p = TelegramProvider(TOKEN, api_base=tg.base_url)
        try:
            sent = await p.bot.send_document(42, BufferedInputFile(b"%PDF-1.4 ...", "回执.pdf"), caption="回执")
        finally:
            await p.close()
    call = tg.requests[-1]
    assert call.method == "sendDocument" and call.content_type == "multipart/form-data"
    assert call.params["caption"] == "回执" and sent.chat.id == 42


async def test_telegram_request_middleware_registered_on_the_session_still_runs():
    seen = []

    async def count(make_request, bot, method):
        seen.append(method.__api_method__)
        return await make_request(bot, method)

    async with FakeTelegram(TOKEN) as tg:
        p = TelegramProvider(TOKEN, api_base=tg.base_url)
        p.bot.session.middleware(count)
        try:
            await p.send(msg("42"))
        finally:
            await p.close()
    assert seen == ["sendMessage"] and len(tg.sent) == 1


async def test_telegram_provider_reads_the_message_id_alone_and_a_malformed_success_is_a_temporary_failure():
    """The provider reads only the id from sendMessage's answer; an "ok" answer without one is
    aiogram's decode error, retried later, not a success without an id."""
    async with FakeTelegram(TOKEN) as tg:
        p = TelegramProvider(TOKEN, api_base=tg.base_url)
        try:
            first = await p.send(msg("42"))
            second = await p.send(msg("42"))
            tg._m_sendmessage = lambda params: {"chat": {"id": 42, "type": "private"}}  # ok, but no message_id
            with pytest.raises(TemporaryFailure):
                await p.send(msg("42"))
        finally:
            await p.close()
    assert (first.provider_message_id, second.provider_message_id) == ("42:1", "42:2")
