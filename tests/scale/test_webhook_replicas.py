"""Webhooks on several web replicas: an update delivered twice, to two replicas, gets one reply;
an address over its inbound limit is answered once, kindly, and the engine never sees the rest."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from typing import Any

import time_machine
from sqlalchemy import Engine as DbEngine
from sqlalchemy import func, select

from bot.channels import telegram
from bot.inbound_limits import InboundLimits, TelegramInboundGate, parse_windows
from models.clock import FakeClock
from models.inbound import InboundReceipt
from outreach.metrics import Metrics
from tests.channels.support import ScriptedEngine, SmsClient, asgi_client, make_app
from tests.fakes.fake_telegram import FakeTelegram

CHAT = 424242
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def _limits(per_address: str = "") -> InboundLimits:
    return InboundLimits(per_address=parse_windows(per_address), codes_per_phone=(), codes_total=(),
                         office_phone="12345")


def _sms_form(sid: str, body: str = "你好", sender: str = "+8613812345678") -> dict[str, str]:
    return {"MessageSid": sid, "SmsSid": sid, "AccountSid": "AC" + "0" * 32, "From": sender,
            "To": "+8610655000", "Body": body, "NumMedia": "0", "ApiVersion": "2010-04-01"}


def _messages(twiml: str) -> list[str]:
    return [m.text or "" for m in ET.fromstring(twiml.encode()).findall("Message")]


def _replica(settings: Any, db: DbEngine, clock: FakeClock, engine: Any, *, bot: Any = None, name: str,
             limits: InboundLimits | None = None, metrics: Metrics | None = None) -> Any:
    """One web replica's webhooks: its own dispatcher, limits and metrics; the database shared."""
    limits = limits or _limits()
    metrics = metrics or Metrics("web")
    state: dict[str, Any] = {"settings": settings, "clock": clock, "bot_engine": engine, "engine": db,
                             "process_owner": name, "inbound_limits": limits, "metrics": metrics}
    if bot is not None:
        dp = telegram.create_dispatcher(engine, settings)
        dp.update.outer_middleware(TelegramInboundGate(limits, metrics))
        state |= {"telegram_bot": bot, "telegram_dispatcher": dp}
    return make_app(state)


async def test_one_telegram_update_delivered_to_two_replicas_gets_one_reply(
        fake_tg: FakeTelegram, bot: Any, channel_settings: Any, db_engine: DbEngine, clock: FakeClock) -> None:
    """Telegram redelivers an update (the first 200 came late), and the proxy sends it to the other
    replica, even at the same moment: the engine sees it once, one reply goes out, and both
    requests are answered so that Telegram stops delivering it."""
    engine = ScriptedEngine()
    a = await asgi_client(_replica(channel_settings, db_engine, clock, engine, bot=bot, name="web-a"))
    b = await asgi_client(_replica(channel_settings, db_engine, clock, engine, bot=bot, name="web-b"))
    update = {"update_id": 7001, **fake_tg.text_update(CHAT, "你好")}
    headers = {SECRET_HEADER: channel_settings.telegram_webhook_secret}
    first, second = await asyncio.gather(a.post("/webhooks/telegram", json=update, headers=headers),
                                         b.post("/webhooks/telegram", json=update, headers=headers))
    assert sorted([first.status_code, second.status_code]) in ([200, 200], [200, 503])
    again = await b.post("/webhooks/telegram", json=update, headers=headers)  # a later redelivery
    assert again.status_code == 200
    assert [i.text for i in engine.seen] == ["你好"]
    replies = [r.params for r in fake_tg.requests if r.method == "sendMessage" and str(r.params["chat_id"]) == str(CHAT)]
    assert [r["text"] for r in replies] == ["收到：你好"]
    with db_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(InboundReceipt)).scalar_one() == 1


async def test_one_sms_delivered_to_two_replicas_gets_one_twiml_reply(
        channel_settings: Any, db_engine: DbEngine, clock: FakeClock) -> None:
    """Twilio retrying an inbound SMS (same MessageSid) to another replica: one reply in TwiML,
    an empty answer the second time, the engine asked once."""
    engine = ScriptedEngine()
    a = SmsClient(await asgi_client(_replica(channel_settings, db_engine, clock, engine, name="web-a")))
    b = SmsClient(await asgi_client(_replica(channel_settings, db_engine, clock, engine, name="web-b")))
    form = _sms_form("SM" + "1" * 32)
    first = await a.post(form)
    second = await b.post(form)
    assert first.status_code == second.status_code == 200
    assert _messages(first.text) and _messages(second.text) == []
    assert len(engine.seen) == 1
    other = await b.post(_sms_form("SM" + "2" * 32, body="1"))  # a new message is handled as usual
    assert _messages(other.text) and len(engine.seen) == 2


async def test_sms_over_the_limit_is_answered_once_and_never_reaches_the_engine(
        channel_settings: Any, db_engine: DbEngine, clock: FakeClock) -> None:
    """Two SMS a minute from one number reach the engine; the third gets the kind refusal in
    TwiML; the fourth an empty answer (no SMS costs); both replicas count together (one store)."""
    engine = ScriptedEngine()
    shared = _limits("2/minute")
    metrics = Metrics("web")
    apps = [SmsClient(await asgi_client(_replica(channel_settings, db_engine, clock, engine, name=n, limits=shared,
                                                 metrics=metrics))) for n in ("web-a", "web-b")]
    with time_machine.travel("2026-03-02 02:00:00+00:00", tick=False):
        answers = [_messages((await apps[n % 2].post(_sms_form(f"SM{n:032d}", body=f"第{n}条"))).text)
                   for n in range(4)]
    assert len(engine.seen) == 2
    assert answers[0] and answers[1]
    assert len(answers[2]) == 1 and "1分钟后" in answers[2][0] and "12345" in answers[2][0]
    assert answers[3] == []
    counted = metrics.registry.get_sample_value
    assert counted("nuanxin_messages_in_total", {"channel": "sms", "status": "limited"}) == 2
    assert counted("nuanxin_messages_in_total", {"channel": "sms", "status": "handled"}) == 2


async def test_telegram_chat_over_the_limit_gets_one_notice_then_silence(
        fake_tg: FakeTelegram, bot: Any, channel_settings: Any, db_engine: DbEngine, clock: FakeClock) -> None:
    """The gate sits before the handlers: the third update in a minute gets one notice, the fourth
    nothing, and the engine saw two."""
    engine = ScriptedEngine()
    client = await asgi_client(_replica(channel_settings, db_engine, clock, engine, bot=bot, name="web-a",
                                        limits=_limits("2/minute")))
    headers = {SECRET_HEADER: channel_settings.telegram_webhook_secret}
    with time_machine.travel("2026-03-02 02:00:00+00:00", tick=False):
        for n in range(4):
            update = {"update_id": 8000 + n, **fake_tg.text_update(CHAT, f"消息{n}")}
            assert (await client.post("/webhooks/telegram", json=update, headers=headers)).status_code == 200
    assert [i.text for i in engine.seen] == ["消息0", "消息1"]
    texts = [r.params["text"] for r in fake_tg.requests if r.method == "sendMessage"]
    assert texts[:2] == ["收到：消息0", "收到：消息1"]
    assert len(texts) == 3 and "1分钟后" in texts[2]


async def test_a_forged_update_is_refused_before_any_claim(
        fake_tg: FakeTelegram, bot: Any, channel_settings: Any, db_engine: DbEngine, clock: FakeClock) -> None:
    """Without the secret nothing is claimed: a forger cannot burn the update ids of real updates."""
    engine = ScriptedEngine()
    client = await asgi_client(_replica(channel_settings, db_engine, clock, engine, bot=bot, name="web-a"))
    update = {"update_id": 9100, **fake_tg.text_update(CHAT, "你好")}
    response = await client.post("/webhooks/telegram", json=update, headers={SECRET_HEADER: "guess"})
    assert response.status_code == 403
    with db_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(InboundReceipt)).scalar_one() == 0
    signed = await client.post("/webhooks/telegram", json=update,
                               headers={SECRET_HEADER: channel_settings.telegram_webhook_secret})
    assert signed.status_code == 200 and [i.text for i in engine.seen] == ["你好"]
