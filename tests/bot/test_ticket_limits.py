"""What costs staff time is bounded per sender: one open ticket collects the rest, a few a day at most."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from models.applications import HandoffTicket
from models.db import session_scope
from models.staff import AuditLog
from tests.bot.conftest import Chat

QUESTIONS = ["我家楼下的路灯坏了", "邻居的狗天天叫", "物业费太贵了", "小区门口要装红绿灯", "公交车太少了",
             "菜市场搬走了", "楼道灯也坏了"]


def tickets(db_engine, address: str) -> list[HandoffTicket]:
    with Session(db_engine) as s:
        return list(s.exec(select(HandoffTicket).where(HandoffTicket.address == address)
                           .order_by(HandoffTicket.id)).all())  # type: ignore[arg-type]


def test_repeated_messages_from_one_person_join_their_open_ticket(engine, roll, db_engine):
    """Seven things nothing answers, one after another: one ticket holds them all, each told kindly."""
    chat = Chat(engine, "telegram", "tl1")
    first = chat(QUESTIONS[0])
    assert "转给" in first and "编号" in first
    for question in QUESTIONS[1:]:
        assert "和您之前的问题" in chat(question)
    [ticket] = tickets(db_engine, "tl1")
    said = [e["text"] for e in ticket.transcript if e["dir"] == "in"]
    assert all(q in said for q in QUESTIONS)
    with Session(db_engine) as s:
        actions = [a.action for a in s.exec(select(AuditLog)).all()]
    assert actions.count("ticket.open") == 1 and actions.count("ticket.append") == 6


def test_asking_for_a_person_with_a_question_open_joins_it(engine, roll, db_engine):
    """人工 while a question is with staff: told it is already with them, no second ticket."""
    chat = Chat(engine, "telegram", "tl2")
    chat(QUESTIONS[0])
    assert "已经在工作人员那里" in chat("人工")
    assert len(tickets(db_engine, "tl2")) == 1


def test_at_most_three_tickets_a_day_then_the_last_collects_the_rest(engine, roll, db_engine, clock):
    """Answered tickets let new ones open, three a day; the fourth question joins (and reopens) the third."""
    chat = Chat(engine, "sms", "+8613311112222")
    for question in QUESTIONS[:4]:
        chat(question)
        with session_scope(db_engine) as s:
            for ticket in s.exec(select(HandoffTicket)).all():
                ticket.status = "answered"
                s.add(ticket)
    found = tickets(db_engine, "+8613311112222")
    assert len(found) == 3
    assert found[-1].status == "answered"
    chat(QUESTIONS[4])
    found = tickets(db_engine, "+8613311112222")
    assert len(found) == 3 and found[-1].status == "open"
    assert QUESTIONS[4] in [e["text"] for e in found[-1].transcript]
    clock.advance(timedelta(days=1))
    with session_scope(db_engine) as s:
        for ticket in s.exec(select(HandoffTicket)).all():
            ticket.status = "answered"
            s.add(ticket)
    chat(QUESTIONS[5])
    assert len(tickets(db_engine, "+8613311112222")) == 4  # a new day, a new ticket


def test_a_ticket_transcript_stays_bounded_however_much_is_sent(engine, roll, db_engine):
    """A hundred long messages: the transcript keeps how it began and the latest, each line cut short."""
    chat = Chat(engine, "telegram", "tl4")
    for n in range(100):
        chat(f"第{n}条：" + "很长的话" * 300)
    [ticket] = tickets(db_engine, "tl4")
    assert len(ticket.transcript) <= 40
    assert all(len(e["text"]) <= 500 for e in ticket.transcript)
    assert any("第99条" in e["text"] for e in ticket.transcript)
    assert len(str(ticket.transcript)) < 30_000


@pytest.mark.parametrize("words", ["我要搵真人", "轉人工"])
def test_a_handoff_in_traditional_is_answered_in_traditional_throughout(engine, roll, words):
    """Someone writing in Traditional Chinese who asks for a person reads the ticket line in
    Traditional: 編號, not the Simplified 编号, and the due day in the same script."""
    chat = Chat(engine, "telegram", "hant1")
    chat("你好，我想問問")
    text = chat(words)
    assert "編號" in text and "编号" not in text
    assert "工作人員" in text
