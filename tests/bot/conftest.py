"""Fixtures for the conversation engine: a small roll, a fake notifier and a fake Q&A."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine as DbEngine
from sqlmodel import Session, select

from bot.channels.base import Attachment, Inbound, Reply
from bot.engine import Engine
from models.clock import FakeClock
from models.db import session_scope
from models.idcard import IdCard
from models.people import Beneficiary, Contact, FamilyMember, SchemeMembership
from settings import Settings

# Real-shaped ID numbers (valid check digits), never real people.
ZHANG_ID = "110105194012310024"  # born 1940: over 80 in 2026
LI_ID = "44070319650101001X"
WANG_ID = "440703197003150022"
ZHANG_PHONE = "+8613812345678"
LI_PHONE = "+8613900001111"
WANG_PHONE = "+8613700002222"
DAUGHTER_PHONE = "+8615000003333"


def _id(number: str) -> IdCard:
    return IdCard.parse(number)


@dataclass
class FakeNotifier:
    """Stands in for outreach.notices: records codes and direct messages instead of queueing them."""

    codes: list[tuple[str, str]] = field(default_factory=list)  # (phone, code)
    direct: list[dict[str, Any]] = field(default_factory=list)

    def send_one_time_code(self, session: Session, *, phone_e164: str, code: str, lang: str, now: datetime,
                           beneficiary_id: int | None = None) -> None:
        self.codes.append((phone_e164, code))

    def send_direct(self, session: Session, **kw: Any) -> None:
        self.direct.append(kw)

    @property
    def last_code(self) -> str:
        return self.codes[-1][1]


class FakeQA:
    """Answers questions mentioning 互助 or 'mutual aid' with a source; everything else goes to staff."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.after: list[str | None] = []  # the question each one was asked as a follow-up of
        self.handoffs: dict[str, Any] = {}  # a word in the question -> the handoff given for it

    def answer(self, question: str, lang_hint: str | None = None, after: str | None = None) -> Any:
        self.asked.append(question)
        self.after.append(after)
        lang = lang_hint or "zh-Hans"
        for word, handoff in self.handoffs.items():
            if word in question:
                return handoff
        if "互助" in question or "mutual aid" in question.lower():
            text = "每年交100元。\n\n来源：职工医疗互助 — 永定区总工会 (seed 004)"
            return SimpleNamespace(handoff=False, answer=text, sources=["职工医疗互助 (seed 004)"], lang=lang,
                                   reason="answered", article_id="mutual-cost", score=0.9, detail="",
                                   sms="每年交100元（来源：永定区总工会）")
        return SimpleNamespace(handoff=True, answer="这个问题已经转给工作人员，一般1个工作日内回复您。", sources=[],
                               lang=lang, reason="out_of_scope", article_id=None, score=0.0, sms="已转工作人员",
                               detail="low_confidence")


@dataclass
class Roll:
    zhang: int
    li: int
    wang: int


def add_person(s: Session, settings: Settings, number: str, name: str, phone: str | None, **kw: Any) -> Beneficiary:
    card = _id(number)
    b = Beneficiary(name=name, id_hash=card.hashed(settings.id_key), id_masked=card.masked,
                    id_last6_hash=card.last6_hashed(settings.id_key), birth_date=card.birth_date, sex=card.sex, **kw)
    s.add(b)
    s.flush()
    if phone:
        s.add(Contact(channel="sms", address=phone, beneficiary_id=b.id, verified=True))
    return b


@pytest.fixture
def roll(db_engine: DbEngine, settings: Settings) -> Roll:
    with session_scope(db_engine) as s:
        zhang = add_person(s, settings, ZHANG_ID, "张三", ZHANG_PHONE, is_veteran=True, is_retiree=True,
                           living_alone=True)
        li = add_person(s, settings, LI_ID, "李四", LI_PHONE, is_union_member=True, is_retiree=True)
        wang = add_person(s, settings, WANG_ID, "王五", WANG_PHONE, is_retiree=True, language="en")
        s.add(SchemeMembership(beneficiary_id=li.id, scheme="medical_mutual_aid", period=2026,
                               paid_on=date(2026, 1, 10), amount_fen=10000))
        s.add(FamilyMember(beneficiary_id=zhang.id, relationship="child", name="张小红", phone=DAUGHTER_PHONE))
        return Roll(zhang.id, li.id, wang.id)  # type: ignore[arg-type]


@pytest.fixture
def notifier() -> FakeNotifier:
    return FakeNotifier()


@pytest.fixture
def fake_qa() -> FakeQA:
    return FakeQA()


@pytest.fixture
def engine(db_engine: DbEngine, settings: Settings, clock: FakeClock, notifier: FakeNotifier,
           fake_qa: FakeQA) -> Iterator[Engine]:
    e = Engine(db_engine, settings, clock, qa=fake_qa, notifier=notifier)
    yield e
    e.close()


class Chat:
    """One person talking on one channel: `chat("1")` returns the reply text."""

    def __init__(self, engine: Engine, channel: str, address: str, hint: str | None = None) -> None:
        self.engine, self.channel, self.address, self.hint = engine, channel, address, hint
        self.last: list[Reply] = []

    def __call__(self, text: str = "", *, files: int = 0, choice: str | None = None) -> str:
        atts = tuple(Attachment(kind="photo", file_id=f"file-{i}", mime_type="image/jpeg",
                                local_path=f"/var/files/{i}.jpg") for i in range(files))
        self.last = self.engine.handle(Inbound(channel=self.channel, address=self.address, text=text,
                                               attachments=atts, language_hint=self.hint, choice=choice))
        assert self.last, "every message gets an answer"
        return "\n".join(r.text for r in self.last)

    def state(self) -> tuple[str | None, str | None]:
        from models.conversations import Conversation
        with Session(self.engine.db) as s:
            c = s.exec(select(Conversation).where(Conversation.channel == self.channel,
                                                  Conversation.address == self.address)).one()
            return c.flow, c.step


@pytest.fixture
def chat_factory(engine: Engine) -> Callable[..., Chat]:
    def make(channel: str = "telegram", address: str = "7001", hint: str | None = None) -> Chat:
        return Chat(engine, channel, address, hint)
    return make


def link(chat: Chat, notifier: FakeNotifier, key: str, proxy: str | None = None) -> str:
    """Link through the real dialogue: who, (relationship), key, code."""
    if not _has_conv(chat) or chat.state()[0] != "link":
        chat("9")
    if proxy:
        chat("2")
        chat(proxy)
    else:
        chat("1")
    chat(key)
    return chat(notifier.last_code)


def _has_conv(chat: Chat) -> bool:
    try:
        chat.state()
        return True
    except Exception:
        return False
