"""Handed-off questions: staff list them, answer them (through the outbox), turn answers into drafts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
import yaml
from sqlmodel import Session, select
from typer.testing import CliRunner

from bot.commands import register
from bot.tickets import draft_article, reply_to_ticket
from models.applications import HandoffTicket
from models.db import make_engine, session_scope
from models.migrate import upgrade
from models.outbox import OutboxMessage
from models.staff import AuditLog, StaffUser, hash_password
from tests.bot.conftest import Chat

WANG_PASSWORD = "wang-staff-password"


def _staff(db) -> None:
    with session_scope(db) as s:
        s.add(StaffUser(username="wang", display_name="王老师", roles=["caseworker"],
                        password_hash=hash_password(WANG_PASSWORD)))


def test_staff_answer_reaches_the_person_on_their_channel_through_the_outbox(engine, db_engine, clock):
    """The answer is queued to the channel and address the question came from; the ticket is answered
    and the staff action is in the audit log."""
    _staff(db_engine)
    chat = Chat(engine, "sms", "+8618600000001")
    chat("我家老房子拆迁补偿怎么算")
    with Session(db_engine) as s:
        ticket = s.exec(select(HandoffTicket)).one()
    reply_to_ticket(db_engine, ticket.id, "拆迁补偿请咨询街道办，电话12345。", "wang", clock.now())
    with Session(db_engine) as s:
        out = s.exec(select(OutboxMessage)).one()
        ticket = s.get(HandoffTicket, ticket.id)
        audit = s.exec(select(AuditLog).where(AuditLog.action == "ticket.answer")).one()
    assert (out.channel, out.address) == ("sms", "+8618600000001")
    assert "街道办" in out.body and out.status == "queued"
    assert ticket.status == "answered" and ticket.answered_by == "wang" and ticket.answer.startswith("拆迁")
    assert audit.actor == "wang" and audit.target_id == str(ticket.id)


def test_only_known_staff_can_answer(engine, db_engine, clock):
    """An unknown username is refused and nothing is sent."""
    Chat(engine, "telegram", "t9")("我家老房子拆迁补偿怎么算")
    with Session(db_engine) as s:
        ticket = s.exec(select(HandoffTicket)).one()
    with pytest.raises(ValueError, match="no active staff user"):
        reply_to_ticket(db_engine, ticket.id, "答复", "nobody", clock.now())
    with Session(db_engine) as s:
        assert s.exec(select(OutboxMessage)).first() is None
        assert s.get(HandoffTicket, ticket.id).status == "open"


def test_draft_article_from_an_answer_is_a_database_draft_that_answers_nothing(engine, db_engine, clock):
    """The draft carries the question and the staff answer, is kept in the database with its
    author, is not reviewed, and is not part of the knowledge the bot answers from."""
    from bot.knowledge_store import get_article, load_live

    _staff(db_engine)
    Chat(engine, "telegram", "t8")("老年证在哪里办理")
    with Session(db_engine) as s:
        ticket = s.exec(select(HandoffTicket)).one()
    with pytest.raises(ValueError, match="no staff answer"):
        draft_article(db_engine, ticket.id, "wang", clock.now())
    reply_to_ticket(db_engine, ticket.id, "老年证到社区服务中心办理，带身份证和照片。", "wang", clock.now())
    record = draft_article(db_engine, ticket.id, "wang", clock.now())
    assert record.state == "draft" and record.draft_by == "wang" and record.reviewed_by is None
    front = yaml.safe_load(record.draft_text.split("---\n")[1])
    assert front["questions"] == ["老年证在哪里办理"] and front["language"] == "zh-Hans"
    assert record.draft_text.rstrip().endswith("带身份证和照片。")
    assert get_article(db_engine, record.article_id, "zh-Hans").text is None
    assert record.article_id not in {a.id for a in load_live(db_engine).articles}


def test_tickets_commands_list_reply_and_draft(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings, clock):
    """The CLI: `tickets list --json`, `tickets reply ID TEXT --as USER`, `tickets draft-article ID`."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("NUANXIN_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("NUANXIN_ID_HASH_KEY", "cli-key")
    db = make_engine(url)
    upgrade(db)
    _staff(db)
    with session_scope(db) as s:
        s.add(HandoffTicket(channel="telegram", address="555", question="重阳节有什么活动", reason="out_of_scope"))
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    listed = runner.invoke(app, ["tickets", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    tickets = json.loads(listed.output)["tickets"]
    assert [t["question"] for t in tickets] == ["重阳节有什么活动"]
    replied = runner.invoke(app, ["tickets", "reply", str(tickets[0]["id"]), "社区有登高和聚餐。", "--as", "wang"],
                            input=WANG_PASSWORD + "\n")
    assert replied.exit_code == 0, replied.output
    assert json.loads(runner.invoke(app, ["tickets", "list", "--json"]).output)["tickets"] == []
    answered = json.loads(runner.invoke(app, ["tickets", "list", "--status", "answered", "--json"]).output)
    assert answered["tickets"][0]["answered_by"] == "wang"
    drafted = runner.invoke(app, ["tickets", "draft-article", str(tickets[0]["id"]), "--as", "wang"],
                            input=WANG_PASSWORD + "\n")
    assert drafted.exit_code == 0, drafted.output
    assert f"ticket-{tickets[0]['id']}" in drafted.output and "review" in drafted.output
    refused = runner.invoke(app, ["tickets", "reply", "999", "x", "--as", "wang"], input=WANG_PASSWORD + "\n")
    assert refused.exit_code == 2 and "no ticket #999" in refused.output
