"""One inbound SMS, webhook to TwiML reply, takes two write transactions: the engine's (the message,
the conversation's state, the replies, together) and the receipt's; a repeat gets no second reply."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import Engine as DbEngine
from sqlalchemy import func, select

from bot.channels.base import Inbound
from bot.engine import Engine
from models.conversations import MessageLog
from tests.bot.conftest import FakeNotifier, FakeQA
from tests.channels.support import SmsClient, asgi_client, make_app
from tests.scale.test_webhook_replicas import _limits, _sms_form
from tests.scale.write_transactions import counting_writes

PHONE = "+8613812345678"


@pytest.fixture
async def conversation(channel_settings: Any, db_engine: DbEngine, clock: Any) -> AsyncIterator[Engine]:
    engine = Engine(db_engine, channel_settings, clock, qa=FakeQA(), notifier=FakeNotifier())
    yield engine
    engine.close()


async def _client(channel_settings: Any, db_engine: DbEngine, clock: Any, engine: Engine, name: str) -> SmsClient:
    app = make_app({"settings": channel_settings, "clock": clock, "bot_engine": engine, "engine": db_engine,
                    "process_owner": name, "inbound_limits": _limits()})
    return SmsClient(await asgi_client(app))


def _replies(twiml: str) -> list[str]:
    return [m.text or "" for m in ET.fromstring(twiml.encode()).findall("Message")]


def _logged_in(db_engine: DbEngine) -> int:
    with db_engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(MessageLog).where(
            MessageLog.direction == "in", MessageLog.address == PHONE)).scalar_one())


@pytest.mark.parametrize("body", ["你好", "1", "TD"])
async def test_one_inbound_sms_takes_two_write_transactions_and_is_answered(
        body: str, channel_settings: Any, db_engine: DbEngine, clock: Any, conversation: Engine) -> None:
    """A greeting, a menu choice and an opt-out each: exactly two write transactions (the engine's,
    holding the stored message with its replies, and the receipt's), a TwiML reply, the message
    stored once; the same MessageSid again writes nothing and gets an empty answer."""
    client = await _client(channel_settings, db_engine, clock, conversation, "web-a")
    await client.post(_sms_form("SM" + "0" * 32, body="你好", sender=PHONE))  # the conversation exists

    with counting_writes(db_engine) as writes:
        answered = await client.post(_sms_form("SM" + "7" * 32, body=body, sender=PHONE))

    assert answered.status_code == 200 and _replies(answered.text)
    assert len(writes) == 2, [t.statements[:3] for t in writes.done]
    assert [t.writes("message_log") for t in writes.done] == [1, 0]  # the message and its replies, together
    assert [t.writes("inbound_receipt") for t in writes.done] == [0, 1]
    with counting_writes(db_engine) as again:
        repeat = await client.post(_sms_form("SM" + "7" * 32, body=body, sender=PHONE))
    assert repeat.status_code == 200 and _replies(repeat.text) == []
    assert len(again) == 0
    assert _logged_in(db_engine) == 2


async def test_a_crash_after_the_engine_before_the_receipt_still_gives_one_reply(
        channel_settings: Any, db_engine: DbEngine, clock: Any, conversation: Engine) -> None:
    """The engine's transaction committed but the process died before the receipt was written:
    Twilio's retry, on another replica, gets an empty answer (the engine knows the MessageSid),
    the message is stored once, and the receipt is written so later retries stop earlier."""
    sid = "SM" + "5" * 32
    assert conversation.handle(Inbound(channel="sms", address=PHONE, text="你好", provider_message_id=sid))
    client = await _client(channel_settings, db_engine, clock, conversation, "web-b")

    retry = await client.post(_sms_form(sid, body="你好", sender=PHONE))

    assert retry.status_code == 200 and _replies(retry.text) == []
    assert _logged_in(db_engine) == 1
    with counting_writes(db_engine) as later:
        assert _replies((await client.post(_sms_form(sid, body="你好", sender=PHONE))).text) == []
    assert len(later) == 0
