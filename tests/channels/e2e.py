"""End-to-end scripts of every flow, run through a channel adapter against the real engine.

A script talks as a person does: `say` types text, `pick` chooses an offered choice by its
label (Telegram: presses the button of that label on the last message; SMS: types the
number the SMS showed next to that label), `photo` sends a picture (Telegram only). So the
adapters' rendering is exercised, not bypassed: a button that is not there, or a number
that is not shown, fails the script.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiogram import Bot
from sqlalchemy import Engine as DbEngine
from sqlmodel import Session, select

from models.applications import Application, ApplicationDocument, Stage, SurveyAnswer, Task
from models.db import session_scope
from models.idcard import IdCard
from models.people import Beneficiary, Contact, FamilyMember, SchemeMembership
from tests.fakes.fake_telegram import FakeTelegram

from .support import SmsClient

# Real-shaped ID numbers (valid check digits), never real people.
ZHANG_ID = "11010519491231002X"  # veteran and retiree, born 1949, lives alone
LI_ID = "44070319650101001X"  # union member, in medical mutual aid for 2026
ZHAO_ID = "440703193805120011"  # retiree whose daughter reports his death
ZHANG_PHONE = "+8613812345678"
LI_PHONE = "+8613900001111"
ZHAO_PHONE = "+8613700002222"
ZHAO_DAUGHTER_PHONE = "+8615000003333"
ZHANG_OLD_APP = "NX-2025-000777"
LI_DONE_APP = "NX-2025-000900"


@dataclass
class CodeNotifier:
    """Stands in for outreach's one-time-code sender: keeps the codes so a script can type them."""

    codes: list[tuple[str, str]] = field(default_factory=list)
    direct: list[dict[str, Any]] = field(default_factory=list)

    def send_one_time_code(self, session: Session, *, phone_e164: str, code: str, lang: str, now: datetime,
                           beneficiary_id: int | None = None) -> None:
        self.codes.append((phone_e164, code))

    def send_direct(self, session: Session, **kw: Any) -> None:
        self.direct.append(kw)

    def code_for(self, phone: str) -> str:
        return next(code for p, code in reversed(self.codes) if p == phone)


@dataclass
class Roll:
    zhang: int
    li: int
    zhao: int


def _person(s: Session, settings: Any, number: str, name: str, phone: str, **kw: Any) -> Beneficiary:
    card = IdCard.parse(number)
    b = Beneficiary(name=name, id_hash=card.hashed(settings.id_key), id_masked=card.masked,
                    id_last6_hash=card.last6_hashed(settings.id_key), birth_date=card.birth_date, sex=card.sex, **kw)
    s.add(b)
    s.flush()
    s.add(Contact(channel="sms", address=phone, beneficiary_id=b.id, verified=True))
    return b


def seed_roll(db: DbEngine, settings: Any) -> Roll:
    """Three people on the roll, an application in progress and one completed (for the survey)."""
    done_at = datetime(2026, 2, 20, 3, 0, tzinfo=UTC)
    with session_scope(db) as s:
        zhang = _person(s, settings, ZHANG_ID, "张三", ZHANG_PHONE, is_veteran=True, is_retiree=True,
                        living_alone=True)
        li = _person(s, settings, LI_ID, "李四", LI_PHONE, is_union_member=True, is_retiree=True)
        zhao = _person(s, settings, ZHAO_ID, "赵六", ZHAO_PHONE, is_retiree=True)
        s.add(FamilyMember(beneficiary_id=zhao.id, relationship="child", name="赵小梅", phone=ZHAO_DAUGHTER_PHONE))
        s.add(SchemeMembership(beneficiary_id=li.id, scheme="medical_mutual_aid", period=2026,
                               paid_on=datetime(2026, 1, 10).date(), amount_fen=10000))
        # Of another kind than the flows he goes through: a second open application of a kind is refused.
        s.add(Application(reference=ZHANG_OLD_APP, type="certification", beneficiary_id=zhang.id,
                          stage=Stage.PRELIMINARY_REVIEW.value, channel="sms"))
        s.add(Application(reference=LI_DONE_APP, type="hardship", beneficiary_id=li.id,
                          stage=Stage.COMPLETED.value, channel="sms", completed_at=done_at))
        return Roll(zhang.id, li.id, zhao.id)  # type: ignore[arg-type]


# --- drivers ---------------------------------------------------------------------------------
def number_for(label: str, text: str) -> str:
    """The number an SMS shows right before `label` ("3. 申请困难帮扶", "回复1（是）", "2 困难帮扶")."""
    pattern = rf"(?<!\d)(\d+)(?:\. ?|、| |（|\()?(?:{re.escape(label)})(?=$|[）)。，,；;或\s])"
    m = re.search(pattern, text, re.M)
    if m is None:
        raise AssertionError(f"no number for {label!r} in SMS:\n{text}")
    return m.group(1)


class SmsDriver:
    channel = "sms"

    def __init__(self, client: SmsClient, phone: str) -> None:
        self.client = client
        self.phone = phone
        self.last = ""
        self.sids = 0

    async def say(self, text: str) -> str:
        self.sids += 1
        form = {"From": self.phone, "To": "+8610655000", "Body": text, "MessageSid": f"SM{self.sids:032d}",
                "AccountSid": "AC" + "0" * 32, "NumMedia": "0", "ApiVersion": "2010-04-01"}
        response = await self.client.post(form)
        assert response.status_code == 200, response.text
        root = ET.fromstring(response.text.encode())
        self.last = "\n".join(m.text or "" for m in root.findall("Message"))
        assert self.last, f"no reply to {text!r}"
        return self.last

    async def pick(self, label: str) -> str:
        return await self.say(number_for(label, self.last))


class TelegramDriver:
    channel = "telegram"

    def __init__(self, tg: FakeTelegram, bot: Bot, dp: Any, chat_id: int) -> None:
        self.tg, self.bot, self.dp, self.chat_id = tg, bot, dp, chat_id
        self.offset = 0
        self.presses = 0
        self.last = ""
        self.last_messages: list[dict[str, Any]] = []

    async def _run(self, update: dict[str, Any]) -> str:
        before = len(self.tg.sent)
        self.tg.push_update(update)
        updates = await self.bot.get_updates(offset=self.offset or None, timeout=0)
        for u in updates:
            await self.dp.feed_update(self.bot, u)
            self.offset = u.update_id + 1
        self.last_messages = [m for m in self.tg.sent[before:] if str(m["chat"]["id"]) == str(self.chat_id)]
        self.last = "\n".join(m.get("text", "") for m in self.last_messages)
        assert self.last, "no reply"
        return self.last

    async def say(self, text: str) -> str:
        return await self._run(self.tg.text_update(self.chat_id, text))

    async def pick(self, label: str) -> str:
        """Press the button labelled `label` on the last message that had buttons."""
        for message in reversed(self.last_messages):
            for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
                for button in row:
                    if button["text"] == label:
                        press = self.tg.callback_update(self.chat_id, button["callback_data"],
                                                        message_id=message["message_id"])
                        press["callback_query"]["message"]["reply_markup"] = message["reply_markup"]
                        self.presses += 1
                        return await self._run(press)
        raise AssertionError(f"no button {label!r} on:\n{self.last}")

    async def photo(self, content: bytes, caption: str = "") -> str:
        file_id = self.tg.add_file(content, f"photos/file_{len(self.tg.sent)}.jpg")
        update = self.tg.text_update(self.chat_id, "x")
        message = update["message"]
        del message["text"]
        message["photo"] = [{"file_id": file_id, "file_unique_id": f"U{file_id}", "width": 1280, "height": 960,
                             "file_size": len(content)}]
        if caption:
            message["caption"] = caption
        return await self._run(update)


# --- the scripts -----------------------------------------------------------------------------
async def open_flow(d: Any, label: str, notifier: CodeNotifier, phone: str, proxy: str | None = None) -> str:
    """Pick a service from the menu; on an unlinked channel, link through the real dialogue first."""
    await d.say("菜单")
    reply = await d.pick(label)
    if "请问是谁要办事" in reply:
        if proxy:
            # The SMS text words it in full; the Telegram button is the short label.
            await d.pick("家属代办" if d.channel == "telegram" else "我是家属，替老人办")
            await d.pick(proxy)
        else:
            await d.pick("我本人")
        await d.say(phone)
        reply = await d.say(notifier.code_for(phone))
        assert "绑定成功" in reply, reply
    return reply


def _one(db: DbEngine, model: Any, *where: Any) -> Any:
    with Session(db) as s:
        rows = s.exec(select(model).where(*where)).all()
    assert len(rows) == 1, rows
    return rows[0]


async def veteran_insurance(d: Any, db: DbEngine, roll: Roll, notifier: CodeNotifier) -> None:
    reply = await open_flow(d, "退役士兵社保接续", notifier, ZHANG_PHONE)
    assert "政府安排工作" in reply
    await d.pick("是")
    await d.pick("不是")  # not expelled
    assert "请发您的姓名" in await d.pick("都没有")
    await d.say("张三")
    await d.say(ZHANG_ID)
    await d.say("1968年3月")
    await d.say("1972年12月")
    reply = await d.say("江门市第一机械厂")
    if d.channel == "telegram":
        assert "第1/6份：入伍证明材料" in reply
        assert "收到：入伍证明材料" in await d.photo(b"\xff\xd8\xffENLISTMENT", caption="入伍证明")
        reply = await d.say("以后")  # the rest to the service window
    else:
        assert "请带到服务窗口" in reply and "安置介绍信" in reply
    assert "请核对" in reply
    done = await d.pick("提交")
    assert "已提交，编号NX-2026-" in done and "请带到服务窗口" in done
    app = _one(db, Application, Application.type == "veteran_insurance", Application.reference != ZHANG_OLD_APP)
    assert app.beneficiary_id == roll.zhang and app.stage == Stage.STAGED.value
    assert app.reference in done
    doc = _one(db, ApplicationDocument, ApplicationDocument.application_id == app.id,
               ApplicationDocument.code == "enlistment_papers")
    if d.channel == "telegram":
        assert doc.received and doc.file_path
        with open(doc.file_path, "rb") as f:
            assert f.read() == b"\xff\xd8\xffENLISTMENT"
        assert f"/uploads/{d.chat_id}/" in doc.file_path
    else:
        assert not doc.received


async def veteran_insurance_excluded(d: Any, db: DbEngine, roll: Roll, notifier: CodeNotifier) -> None:
    await open_flow(d, "退役士兵社保接续", notifier, ZHANG_PHONE)
    await d.pick("是")
    await d.pick("不是")
    await d.pick("被判过刑")
    reply = await d.pick("确定")  # an answer that ends the flow is confirmed first
    assert "不能办社保接续" in reply and "人工" in reply
    with Session(db) as s:
        assert s.exec(select(Application).where(Application.type == "veteran_insurance",
                                                Application.reference != ZHANG_OLD_APP)).all() == []


async def mutual_aid_claim(d: Any, db: DbEngine, roll: Roll, notifier: CodeNotifier) -> None:
    reply = await open_flow(d, "医疗互助报销", notifier, LI_PHONE)
    assert "住院和出院日期" in reply
    await d.say("2026-1-5到2026-1-20")
    await d.say("江门市中心医院")
    await d.say("8600")
    reply = await d.pick("不是")
    if d.channel == "telegram":
        assert "出院小结" in reply
        await d.photo(b"\xff\xd8\xffSUMMARY")
        reply = await d.photo(b"\xff\xd8\xffINVOICE")
    else:
        assert "请带到服务窗口" in reply and "住院发票" in reply
    assert "请核对" in reply
    done = await d.pick("提交")
    assert "已提交，编号NX-2026-" in done
    app = _one(db, Application, Application.type == "mutual_aid_claim")
    assert app.beneficiary_id == roll.li and app.channel == d.channel


async def hardship(d: Any, db: DbEngine, roll: Roll, notifier: CodeNotifier) -> None:
    reply = await open_flow(d, "申请困难帮扶", notifier, ZHANG_PHONE)
    assert "哪方面的困难" in reply
    await d.pick("生活费不够")
    await d.say("老伴去年走了，一个人住，退休金不够看病和吃饭。")
    assert "请核对" in await d.say("1800")
    done = await d.pick("提交")
    assert "社区工作人员会联系您" in done
    app = _one(db, Application, Application.type == "hardship", Application.beneficiary_id == roll.zhang)
    _one(db, Task, Task.kind == "hardship_visit", Task.application_id == app.id)


async def hospital_stay(d: Any, db: DbEngine, roll: Roll, notifier: CodeNotifier) -> None:
    reply = await open_flow(d, "报告住院", notifier, ZHANG_PHONE)
    assert "哪家医院" in reply
    await d.say("江门市人民医院")
    await d.say("昨天")
    assert "请核对" in await d.say("跳过")
    done = await d.pick("提交")
    assert "祝早日康复" in done
    _one(db, Task, Task.kind == "hospital_visit", Task.beneficiary_id == roll.zhang)


async def death_report_by_family(d: Any, db: DbEngine, roll: Roll, notifier: CodeNotifier) -> None:
    """Zhao's daughter links as his child (the code goes to her phone on the roll) and reports."""
    reply = await open_flow(d, "报告家人去世", notifier, ZHAO_DAUGHTER_PHONE, proxy="子女")
    assert "代赵六" in reply and "身份证号" in reply
    await d.say(ZHAO_ID)
    reply = await d.say("昨天")
    await d.pick("子女")
    done = await d.pick("提交")
    assert "请节哀" in done
    # The record waits for staff: a verification task, and outreach paused meanwhile.
    with Session(db) as s:
        zhao = s.get(Beneficiary, roll.zhao)
        assert zhao is not None and zhao.status == "active" and zhao.outreach_paused_at is not None
    _one(db, Task, Task.kind == "verify_death", Task.beneficiary_id == roll.zhao)


async def certification(d: Any, db: DbEngine, roll: Roll, notifier: CodeNotifier) -> None:
    reply = await open_flow(d, "养老金资格认证", notifier, ZHANG_PHONE)
    assert "怎么认证" in reply
    await d.pick("行动不便，请工作人员上门")
    assert "请核对" in await d.pick("一个人住，没人陪")
    done = await d.pick("提交")
    assert "已经安排好了" in done
    _one(db, Task, Task.kind == "home_visit", Task.beneficiary_id == roll.zhang)


async def my_applications(d: Any, db: DbEngine, roll: Roll, notifier: CodeNotifier) -> None:
    reply = await open_flow(d, "我的申请办到哪了", notifier, ZHANG_PHONE)
    assert ZHANG_OLD_APP in reply


async def survey(d: Any, db: DbEngine, roll: Roll, notifier: CodeNotifier) -> None:
    reply = await open_flow(d, "评价我们的服务", notifier, LI_PHONE)
    assert "满意吗" in reply
    await d.pick("满意")
    assert "请核对" in await d.say("没有")
    done = await d.pick("提交")
    assert "谢谢您的评价" in done
    answer = _one(db, SurveyAnswer, SurveyAnswer.beneficiary_id == roll.li)
    assert answer.score == 4


FLOWS = {
    "veteran_insurance": veteran_insurance,
    "veteran_insurance_excluded": veteran_insurance_excluded,
    "mutual_aid_claim": mutual_aid_claim,
    "hardship": hardship,
    "hospital_stay": hospital_stay,
    "death_report_by_family": death_report_by_family,
    "certification": certification,
    "my_applications": my_applications,
    "survey": survey,
}
