"""Nobody silently cut off, end to end: what people say to the real engine (signed SMS webhooks,
Telegram through aiogram and the fake Bot API), then the real dispatcher sending what the outbox
holds. The contact rule's promises as people meet them, not only as rows."""

from __future__ import annotations

import re
from pathlib import Path

from outreach_helpers import fake_sleep, queue, row
from sqlmodel import select

from models.actions import record_death
from models.db import session_scope
from models.outbox import OutboxMessage
from models.people import Beneficiary
from models.staff import StaffUser
from outreach.dispatcher import Dispatcher
from tests.fakes.scripted import ScriptedProvider
from tests.journeys.harness import World, open_world
from tests.journeys.journeys import link_if_asked, take_offer_or_use_menu
from tests.journeys.roll import LI_PHONE, ZHAO_DAUGHTER_PHONE, ZHAO_ID, ZHAO_PHONE, seed

BULK_AHEAD = 259  # the reminders a code once waited behind


def dispatcher(w: World, *, batch_size: int = 500) -> tuple[Dispatcher, ScriptedProvider]:
    sms = ScriptedProvider("sms", "sms", w.clock)
    tg = ScriptedProvider("telegram", "tg", w.clock)
    return Dispatcher(w.db, {"sms": sms, "telegram": tg}, w.clock, w.settings, batch_size=batch_size,
                      sleep=fake_sleep(w.clock), seed=1), sms


async def test_after_an_sms_opt_out_the_code_she_asks_for_on_telegram_arrives_ahead_of_bulk(tmp_path: Path) -> None:
    """李桂英 replies TD by SMS: the reply says broadcasts and reminders stop while what she asks
    for still comes. With 259 reminders to others already queued, she links Telegram: the bot
    says the code went to her phone, the first pass of the dispatcher sends it (not
    suppressed, not behind the reminders), and the code she received links her chat."""
    async with open_world(tmp_path, seed) as w:
        stop = await w.sms(LI_PHONE).say("TD")
        contact = w.contact("sms", LI_PHONE)
        assert contact is not None and contact.opted_out_at is not None
        assert re.search(r"broadcasts.*reminders", stop) and "what you ask" in stop  # what stops, what goes on
        reminders = [queue(w.db, w.clock, channel="sms", address=f"+86139{i:08d}", kind="cert_reminder_7",
                           body=f"认证提醒 {i}") for i in range(BULK_AHEAD)]

        p = w.telegram(7301)
        await p.say("/start")
        await p.press("绑定身份（办事前先做）")
        await p.pick("我本人")
        said = await p.say(LI_PHONE)
        assert "验证码已发到" in said and "+86135****5555" in said  # the bot says it was sent, masked

        d, sms = dispatcher(w, batch_size=20)
        await d.run_once()  # one pass: at most 20 rows of the 260
        first_pass = [m.message.address for m in sms.sent]
        assert 1 < len(first_pass) <= 20 and first_pass[0] == LI_PHONE
        [code] = re.findall(r"(?<!\d)\d{6}(?!\d)", sms.sent[0].message.body)
        [otp] = [r for r in w.sms_sent_to(LI_PHONE) if r.kind == "otp"]
        assert otp.status == "sent"
        waiting = sum(row(w.db, r).status == "queued" for r in reminders)
        assert waiting == BULK_AHEAD - (len(first_pass) - 1)  # the rest wait their turn

        await p.say(code)
        linked = w.contact("telegram", "7301")
        assert linked is not None and linked.verified and linked.beneficiary_id == contact.beneficiary_id


async def report_death_by_sms(w: World, phone: str, deceased_id: str) -> str:
    """The family member's side of a death report, answering whatever the bot asks next."""
    p = w.sms(phone)
    await p.say("我爸爸昨天晚上走了")
    await take_offer_or_use_menu(p, "报告家人去世")
    await link_if_asked(w, p, phone, proxy="子女")
    for _ in range(8):
        if "节哀" in p.last and not re.search(r"对吗|提交", p.last):
            return p.last
        if re.search(r"对吗|對嗎", p.last):
            await p.say("1")
        elif "提交" in p.last:
            await p.pick("提交")
        elif "哪天" in p.last:
            await p.say("昨天")
        elif "身份证号" in p.last:
            await p.say(deceased_id)
        else:
            await p.pick("子女")
    raise AssertionError(f"the death report did not finish:\n{p.last}")


async def test_the_daughter_who_reported_her_fathers_death_gets_the_answer_to_her_ticket(tmp_path: Path) -> None:
    """赵小梅 reports her father's death by SMS and asks for a person; staff verify the death and
    answer her ticket: the answer reaches her phone, while a reminder queued for him on his own
    phone is suppressed as deceased. Only the dead are suppressed, never the family member
    writing in."""
    async with open_world(tmp_path, seed) as w:
        done = await report_death_by_sms(w, ZHAO_DAUGHTER_PHONE, ZHAO_ID)
        assert "节哀" in done
        father = w.person("赵六")
        assert father.status == "deceased" or father.outreach_paused_at is not None  # recorded or awaiting staff
        asked = await w.sms(ZHAO_DAUGHTER_PHONE).say("人工")
        assert "工作人员" in asked
        ticket = max(w.tickets(), key=lambda t: t.id or 0)
        assert (ticket.channel, ticket.address, ticket.beneficiary_id) == ("sms", ZHAO_DAUGHTER_PHONE, father.id)
        with session_scope(w.db) as s:
            s.add(StaffUser(username="wang", display_name="王老师", roles=["caseworker"]))
            if father.status != "deceased":  # staff verify what she reported
                record_death(s, s.get(Beneficiary, father.id), died_on=w.clock.now().date(), actor="wang",
                             reported_by="daughter", now=w.clock.now())
        assert w.person("赵六").status == "deceased"
        reminder = queue(w.db, w.clock, channel="sms", address=ZHAO_PHONE, beneficiary_id=father.id,
                         kind="cert_reminder_7", body="养老金认证提醒")
        from bot.tickets import reply_to_ticket

        reply_to_ticket(w.db, ticket.id, "节哀。账户由社保窗口办理停发，请带死亡证明。", "wang", w.clock.now())
        d, sms = dispatcher(w)
        await d.run_once()
        to_her = [m.message.body for m in sms.sent if m.message.address == ZHAO_DAUGHTER_PHONE]
        assert any("死亡证明" in body for body in to_her)
        assert ZHAO_PHONE not in [m.message.address for m in sms.sent]
        stopped = row(w.db, reminder)
        assert stopped.status == "suppressed" and "deceased" in (stopped.error or "")
        with session_scope(w.db) as s:
            answer = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "handoff_answer")).all()
        assert [a.status for a in answer] == ["sent"]
