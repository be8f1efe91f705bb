"""Staff on Telegram through real aiogram against the fake Bot API: linking with a one-time
code, who may use the commands, /inbox, /reply reaching the person's channel, /stats, and the
staff chat's handoff alerts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiogram import Bot
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot import staff_telegram
from bot.channels import telegram
from models.applications import HandoffTicket
from models.clock import FakeClock
from models.db import session_scope
from models.outbox import OutboxMessage
from models.people import Beneficiary, Contact
from models.staff import AuditLog, StaffUser
from tests.fakes.fake_telegram import FakeTelegram

from .support import ScriptedEngine
from .test_telegram import process_pending, sent_to

LI = 710001  # a caseworker's Telegram account
STRANGER = 710002
STAFF_CHAT = -100555


class StaffEngine(ScriptedEngine):
    """The conversation engine's stand-in, holding what the staff commands need."""

    def __init__(self, db: Engine, settings: Any, clock: FakeClock) -> None:
        super().__init__()
        self.db, self.settings, self.clock = db, settings, clock


@pytest.fixture
async def bot(channel_settings: Any) -> Any:
    b = telegram.create_bot(channel_settings)
    yield b
    await b.session.close()


@pytest.fixture
def world(sqlite_engine: Engine, channel_settings: Any, clock: FakeClock) -> dict[str, Any]:
    """A caseworker and a viewer, a person who wrote by SMS, and their open question."""
    with session_scope(sqlite_engine) as s:
        s.add(StaffUser(username="li", display_name="李经办", roles=["caseworker"]))
        s.add(StaffUser(username="zhou", display_name="周查看", roles=["viewer"]))
        person = Beneficiary(name="黄伯", id_hash="h" * 64, id_masked="4407**********1111", is_veteran=True)
        s.add(person)
        s.flush()
        s.add(Contact(beneficiary_id=person.id, channel="sms", address="+8613800138000", verified=True))
        ticket = HandoffTicket(channel="sms", address="+8613800138000", beneficiary_id=person.id,
                               question="我的补缴什么时候能办好？", reason="personal_case",
                               created_at=clock.now() - timedelta(hours=3))
        s.add(ticket)
        s.flush()
        ticket_id = ticket.id
    settings = channel_settings.model_copy(update={"staff_telegram_chat_id": str(STAFF_CHAT)})
    return {"settings": settings, "ticket": ticket_id,
            "engine": StaffEngine(sqlite_engine, settings, clock)}


def group_update(tg: FakeTelegram, chat: int, user: int, text: str) -> dict[str, Any]:
    update = tg.text_update(user, text)
    update["message"]["chat"] = {"id": chat, "type": "supergroup", "title": "工作群"}
    return update


def link(db: Engine, settings: Any, clock: FakeClock, username: str) -> str:
    with Session(db) as s:
        user = s.exec(select(StaffUser).where(StaffUser.username == username)).one()
    return staff_telegram.issue_code(db, user.id, settings=settings, now=clock.now(), actor=username)  # type: ignore[arg-type]


async def test_an_unlinked_account_is_refused_and_nothing_reaches_the_bot(
        fake_tg: FakeTelegram, bot: Bot, world: dict[str, Any], sqlite_engine: Engine) -> None:
    """/inbox, /reply and /stats from an account no staff user is linked to: each is answered
    with the refusal, the ticket stays open, no message is queued, the conversation engine
    never sees them, and the refusals are audited; in a group that is not the staff chat the
    bot stays silent."""
    engine = world["engine"]
    dp = telegram.create_dispatcher(engine, world["settings"])
    for text in ("/inbox", f"/reply {world['ticket']} 可以办了", "/stats"):
        fake_tg.push_update(fake_tg.text_update(STRANGER, text))
    fake_tg.push_update(group_update(fake_tg, -100999, STRANGER, "/inbox"))
    await process_pending(bot, dp)
    answers = [m["text"] for m in sent_to(fake_tg, STRANGER)]
    assert answers == [staff_telegram.NOT_LINKED] * 3
    assert sent_to(fake_tg, -100999) == []
    assert engine.seen == []
    with Session(sqlite_engine) as s:
        assert s.get(HandoffTicket, world["ticket"]).status == "open"  # type: ignore[union-attr]
        assert s.exec(select(OutboxMessage)).all() == []
        assert len(s.exec(select(AuditLog).where(AuditLog.action == "staff.telegram_refused")).all()) == 3


async def test_a_linked_caseworker_replies_and_the_answer_goes_to_the_persons_sms(
        fake_tg: FakeTelegram, bot: Bot, world: dict[str, Any], sqlite_engine: Engine, clock: FakeClock) -> None:
    """A wrong code links nothing; the code from the console links Li's account (once: used
    again, it fails); /inbox lists the question with its number; /reply N text answers it:
    the answer is queued to the person's SMS number, the ticket is answered by li, audited."""
    settings, engine = world["settings"], world["engine"]
    dp = telegram.create_dispatcher(engine, settings)
    code = link(sqlite_engine, settings, clock, "li")
    wrong = "00000000" if code != "00000000" else "11111111"
    for text in (f"/link {wrong}", f"/link {code}", f"/link {code}", "/inbox",
                 f"/reply {world['ticket']} 黄伯您好，材料已收齐，本月内办好。"):
        fake_tg.push_update(fake_tg.text_update(LI, text))
    await process_pending(bot, dp)
    answers = [m["text"] for m in sent_to(fake_tg, LI)]
    assert "不对" in answers[0] and "已绑定" in answers[1] and "不对" in answers[2]
    assert f"#{world['ticket']}" in answers[3] and "我的补缴" in answers[3]
    assert "已答复" in answers[4]
    with Session(sqlite_engine) as s:
        assert s.exec(select(StaffUser).where(StaffUser.username == "li")).one().telegram_chat_id == str(LI)
        ticket = s.get(HandoffTicket, world["ticket"])
        assert ticket is not None and (ticket.status, ticket.answered_by) == ("answered", "li")
        [queued] = s.exec(select(OutboxMessage)).all()
        assert (queued.channel, queued.address, queued.kind) == ("sms", "+8613800138000", "handoff_answer")
        assert "本月内办好" in queued.body
        actions = [a.action for a in s.exec(select(AuditLog).where(AuditLog.actor == "li")).all()]
    assert "staff.telegram_linked" in actions and "ticket.answer" in actions
    assert engine.seen == []


async def test_the_staff_chat_takes_commands_from_linked_staff_and_a_viewer_cannot_reply(
        fake_tg: FakeTelegram, bot: Bot, world: dict[str, Any], sqlite_engine: Engine, clock: FakeClock) -> None:
    """In the configured staff chat: a linked viewer gets /stats and /inbox but /reply is refused
    for the role; a /link code sent in the group is refused and links nothing."""
    settings, engine = world["settings"], world["engine"]
    dp = telegram.create_dispatcher(engine, settings)
    viewer = 710003
    code = link(sqlite_engine, settings, clock, "zhou")
    fake_tg.push_update(group_update(fake_tg, STAFF_CHAT, viewer, f"/link {code}"))
    fake_tg.push_update(fake_tg.text_update(viewer, f"/link {code}"))
    for text in ("/stats", "/inbox", f"/reply {world['ticket']} 好的"):
        fake_tg.push_update(group_update(fake_tg, STAFF_CHAT, viewer, text))
    await process_pending(bot, dp)
    group = [m["text"] for m in sent_to(fake_tg, STAFF_CHAT)]
    assert "私聊" in group[0]
    assert "今日概况" in group[1] and "待回复的转人工问题：1" in group[1]
    assert f"#{world['ticket']}" in group[2]
    assert "经办人员" in group[3]
    with Session(sqlite_engine) as s:
        assert s.get(HandoffTicket, world["ticket"]).status == "open"  # type: ignore[union-attr]


def test_each_new_handoff_is_announced_to_the_staff_chat_once(sqlite_engine: Engine, world: dict[str, Any],
                                                              clock: FakeClock) -> None:
    settings = world["settings"]
    assert staff_telegram.announce_handoffs(sqlite_engine, clock=clock, settings=settings) == 1
    assert staff_telegram.announce_handoffs(sqlite_engine, clock=clock, settings=settings) == 0
    with Session(sqlite_engine) as s:
        [alert] = s.exec(select(OutboxMessage)).all()
    assert (alert.channel, alert.address, alert.kind, alert.message_class) == (
        "telegram", str(STAFF_CHAT), "staff_handoff", "staff")
    assert f"/reply {world['ticket']}" in alert.body and "黄伯" in alert.body
