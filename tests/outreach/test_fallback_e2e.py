"""Telegram → SMS fallback end to end, through the fake Bot API and the fake Twilio.

A message queued for Telegram carries its SMS copy as a field of its own (with its segment
count); when Telegram refuses it for good, the copy that reaches Twilio is the SMS wording:
the office's signature first and the opt-out line last, never the Telegram text.
"""

from __future__ import annotations

from datetime import date

import pytest
from outreach_helpers import fake_sleep
from sqlalchemy import Engine
from sqlmodel import select

from models.clock import FakeClock
from models.db import session_scope, write_scope
from models.outbox import OutboxMessage
from models.people import Beneficiary, Contact, FamilyMember
from models.staff import StaffUser
from outreach import broadcasts as bc
from outreach.dispatcher import Dispatcher
from outreach.notices import enqueue_notice
from outreach.providers.telegram import TelegramProvider
from outreach.providers.twilio import TwilioProvider
from outreach.sms_text import sms_length
from outreach.templates import TemplateSet
from settings import Settings
from tests.fakes.fake_telegram import FakeTelegram
from tests.fakes.fake_twilio import FakeTwilio

TOKEN = "424242:FALLBACK"
OFFICE = "白沙退役军人服务站"
TS = TemplateSet(office_name=OFFICE, office_phone="0750-1234567")


def zhang(engine: Engine, *, chat: str, own_phone: str | None = None, daughters_phone: str | None = None) -> int:
    """张建国 (80), with his own Telegram chat, and his own phone or his daughter's."""
    with session_scope(engine) as s:
        b = Beneficiary(name="张建国", id_hash=f"fb-{chat}", id_masked="4407**********0000", sex="M",
                        birth_date=date(1946, 5, 1), is_veteran=True, street="白沙街道", community="白沙社区")
        s.add(b)
        s.flush()
        s.add(Contact(beneficiary_id=b.id, channel="telegram", address=chat, verified=True))
        if own_phone:
            s.add(Contact(beneficiary_id=b.id, channel="sms", address=own_phone, verified=True))
        if daughters_phone:
            daughter = FamilyMember(beneficiary_id=b.id, name="张丽", relationship="child", phone=daughters_phone)
            s.add(daughter)
            s.flush()
            s.add(Contact(beneficiary_id=b.id, channel="sms", address=daughters_phone, verified=True,
                          family_member_id=daughter.id))
        assert b.id is not None
        return b.id


def queue_greeting(engine: Engine, clock: FakeClock, beneficiary_id: int) -> None:
    with write_scope(engine) as s:
        queued = enqueue_notice(s, beneficiary=s.get(Beneficiary, beneficiary_id), kind="festival_greeting",
                                occurrence="army_day-2026-08-01", context={"occasion": "army_day"}, now=clock.now(),
                                templates=TS)
        assert queued is not None


def queue_broadcast(engine: Engine, clock: FakeClock, settings: Settings) -> None:
    with session_scope(engine) as s:
        alice = StaffUser(username="alice", display_name="alice", roles=["composer"])
        bob = StaffUser(username="bob", display_name="bob", roles=["approver"])
        s.add_all([alice, bob])
        s.flush()
        b = bc.create_broadcast(s, author=alice, title="健康讲座", audience={"kinds": ["veteran"]},
                                text="{{ salutation }}，周六上午{{ community }}有义诊，欢迎参加。", now=clock.now(),
                                templates=TS)
        bc.approve_broadcast(s, b, approver=bob, now=clock.now())
        bid = b.id
    with session_scope(engine) as s:
        bob = s.exec(select(StaffUser).where(StaffUser.username == "bob")).one()
    assert bc.send_broadcast(engine, bid, actor=bob, now=clock.now(), settings=settings, templates=TS) == 1


async def dispatch(engine: Engine, clock: FakeClock, settings: Settings, tg: FakeTelegram, tw: FakeTwilio,
                   passes: int = 2) -> None:
    telegram = TelegramProvider(TOKEN, api_base=tg.base_url)
    sms = TwilioProvider(tw.account_sid, tw.auth_token, "+15005550006", api_base=tw.base_url,
                         public_base_url="https://nuanxin.example.org")
    d = Dispatcher(engine, {"telegram": telegram, "sms": sms}, clock, settings, sleep=fake_sleep(clock))
    try:
        for _ in range(passes):
            await d.run_once()
    finally:
        await telegram.close()
        await sms.close()


@pytest.mark.parametrize("queue", ["greeting", "broadcast"])
async def test_a_telegram_message_refused_for_good_reaches_twilio_in_its_sms_wording(
        db_engine: Engine, clock: FakeClock, settings: Settings, queue: str) -> None:
    """张伯 blocked the bot: the 403 marks his chat blocked, and the copy by SMS that reaches the
    fake Twilio is the SMS wording, signed 【白沙退役军人服务站】 at the start and ending with
    回复TD退订, its segments counted on that text; the Telegram row stored it as a field."""
    bid = zhang(db_engine, chat="4242", own_phone="+8613800004242")
    if queue == "greeting":
        queue_greeting(db_engine, clock, bid)
    else:
        queue_broadcast(db_engine, clock, settings)
    with session_scope(db_engine) as s:
        [tg_row] = s.exec(select(OutboxMessage)).all()
        assert tg_row.channel == "telegram" and "TD" not in tg_row.body and tg_row.sms_body is not None
        assert tg_row.sms_segments == sms_length(tg_row.sms_body).segments
    async with FakeTelegram(TOKEN) as tg, FakeTwilio("AC" + "4" * 32, "fallback-token") as tw:
        tg.block(4242)
        await dispatch(db_engine, clock, settings, tg, tw)
        bodies = [r["Body"] for r in tw.requests]
    assert len(bodies) == 1 and [r["To"] for r in tw.requests] == ["+8613800004242"]
    assert bodies[0].startswith(f"【{OFFICE}】") and bodies[0].endswith("回复TD退订")
    assert bodies[0] == tg_row.sms_body
    with session_scope(db_engine) as s:
        rows = {m.channel: m for m in s.exec(select(OutboxMessage)).all()}
        chat = s.exec(select(Contact).where(Contact.address == "4242")).one()
    assert rows["telegram"].status == "failed" and chat.blocked_at is not None
    assert rows["sms"].status == "sent" and rows["sms"].segments == sms_length(bodies[0]).segments
    assert "buttons" not in rows["sms"].extra


async def test_a_person_who_blocked_the_bot_gets_nothing_on_a_relatives_phone(
        db_engine: Engine, clock: FakeClock, settings: Settings) -> None:
    """张伯 has no phone of his own, only his daughter's on file. He blocks the bot: the greeting
    fails, his chat is marked blocked, and nothing reaches Twilio for his daughter's phone, then
    or on the next pass."""
    bid = zhang(db_engine, chat="4343", daughters_phone="+8613900004343")
    queue_greeting(db_engine, clock, bid)
    async with FakeTelegram(TOKEN) as tg, FakeTwilio("AC" + "4" * 32, "fallback-token") as tw:
        tg.block(4343)
        await dispatch(db_engine, clock, settings, tg, tw, passes=3)
        assert tw.requests == []
    with session_scope(db_engine) as s:
        rows = s.exec(select(OutboxMessage)).all()
        chat = s.exec(select(Contact).where(Contact.address == "4343")).one()
    assert [(m.channel, m.status) for m in rows] == [("telegram", "failed")] and chat.blocked_at is not None
