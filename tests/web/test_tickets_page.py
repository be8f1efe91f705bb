"""The handoff inbox: who is asking, replies on the person's own channel, close, assign, drafts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from models.applications import HandoffTicket
from models.conversations import MessageLog
from models.knowledge import KnowledgeArticle
from models.outbox import OutboxMessage
from models.staff import AuditLog
from tests.web.conftest import Console, World


def _ticket(db_engine: Any, clock: Any, **fields: Any) -> int:
    with Session(db_engine) as s:
        t = HandoffTicket(**{"question": "重阳节社区有活动吗？", "reason": "out_of_scope",
                             "created_at": clock.now() - timedelta(hours=5), **fields})
        s.add(t)
        s.commit()
        assert t.id is not None
        return t.id


def test_the_inbox_says_who_is_asking_on_which_channel_and_for_how_long(console: Console, db_engine: Any,
                                                                        world: World, clock: Any) -> None:
    """A person on the roll by name; a stranger by masked phone; the channel and the wait in words."""
    _ticket(db_engine, clock, channel="sms", address="+8613711112222")
    console.sign_in("viewer")
    page = console.get("/tickets").text
    assert "黄伯" in page  # the world's ticket, from a person on the roll
    assert "+86137****2222" in page and "+8613711112222" not in page
    assert "短信" in page and "5 小时" in page
    assert "out_of_scope" not in page and "personal_case" not in page


@pytest.mark.parametrize("channel, address", [("sms", "+8613711112222"), ("telegram", "7001"),
                                              ("console", "console:local")])
def test_a_reply_is_queued_to_the_channel_the_person_used(console: Console, db_engine: Any, clock: Any,
                                                          world: World, channel: str, address: str) -> None:
    ticket_id = _ticket(db_engine, clock, channel=channel, address=address)
    console.sign_in("caseworker")
    page = console.post(f"/tickets/{ticket_id}/reply", {"answer": "有的，10月29日上午在社区活动室。"},
                        from_page=f"/tickets/{ticket_id}", follow=True).text
    assert "已回复" in page
    with Session(db_engine) as s:
        queued = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "handoff_answer")).one()
        ticket = s.get(HandoffTicket, ticket_id)
    assert (queued.channel, queued.address) == (channel, address) and "10月29日" in queued.body
    assert ticket is not None and (ticket.status, ticket.answered_by) == ("answered", "caseworker")


async def test_a_reply_to_a_console_conversation_is_delivered_into_it(db_engine: Any, settings: Any,
                                                                     clock: Any) -> None:
    """The dispatcher has a way to the console channel: the reply lands in that conversation's log."""
    from bot.tickets import reply_to_ticket
    from models.db import session_scope
    from models.staff import StaffUser
    from outreach.dispatcher import Dispatcher, build_providers

    ticket_id = _ticket(db_engine, clock, channel="console", address="console:local")
    with session_scope(db_engine) as s:
        s.add(StaffUser(username="li", roles=["caseworker"]))
    reply_to_ticket(db_engine, ticket_id, "请带身份证到社区服务中心办理。", "li", clock.now())
    dispatcher = Dispatcher(db_engine, build_providers(settings, db_engine), clock, settings)
    await dispatcher.run_once()
    with Session(db_engine) as s:
        row = s.exec(select(OutboxMessage)).one()
        logged = s.exec(select(MessageLog).where(MessageLog.channel == "console", MessageLog.direction == "out")).one()
    assert row.status in ("sent", "delivered") and "请带身份证" in logged.text and logged.address == "console:local"


def test_closing_needs_a_reason_and_is_audited(console: Console, db_engine: Any, world: World) -> None:
    console.sign_in("caseworker")
    path = f"/tickets/{world.ticket}/close"
    console.post(path, {"reason": "other", "note": ""}, from_page=f"/tickets/{world.ticket}")
    with Session(db_engine) as s:
        assert s.get(HandoffTicket, world.ticket).status == "open"  # type: ignore[union-attr]
    console.post(path, {"reason": "answered_by_phone"}, from_page=f"/tickets/{world.ticket}")
    with Session(db_engine) as s:
        ticket = s.get(HandoffTicket, world.ticket)
        audit = s.exec(select(AuditLog).where(AuditLog.action == "ticket.close")).one()
    assert ticket is not None and (ticket.status, ticket.close_reason, ticket.closed_by) == (
        "closed", "answered_by_phone", "caseworker")
    assert audit.details == {"reason": "answered_by_phone"}


def test_a_ticket_is_assigned_to_a_colleague(console: Console, db_engine: Any, world: World) -> None:
    console.sign_in("caseworker")
    console.post(f"/tickets/{world.ticket}/assign", {"assignee": str(world.staff["approver"])},
                 from_page=f"/tickets/{world.ticket}")
    with Session(db_engine) as s:
        assert s.get(HandoffTicket, world.ticket).assigned_staff_id == world.staff["approver"]  # type: ignore[union-attr]
    mine = console.get("/tickets?assignee=me").text
    assert "我的补缴什么时候能办好" not in mine


def test_an_answer_becomes_a_knowledge_draft_in_the_database_not_a_file(console: Console, db_engine: Any,
                                                                        world: World, clock: Any) -> None:
    from bot.tickets import reply_to_ticket

    drafts = Path(__file__).resolve().parents[2] / "knowledge" / "drafts"
    before = sorted(drafts.glob("*")) if drafts.exists() else []
    reply_to_ticket(db_engine, world.ticket, "补缴一般在受理后两个月内办好。", "caseworker", clock.now())
    console.sign_in("caseworker")
    page = console.post(f"/tickets/{world.ticket}/draft", from_page=f"/tickets/{world.ticket}", follow=True).text
    assert "已生成知识库草稿" in page
    with Session(db_engine) as s:
        article = s.exec(select(KnowledgeArticle)).one()
    assert article.article_id == f"ticket-{world.ticket}"
    assert (sorted(drafts.glob("*")) if drafts.exists() else []) == before
