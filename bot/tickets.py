"""Handed-off questions: staff answers reach the person through the outbox, and an answer
can become a knowledge-article draft. Called by the CLI and the web console alike."""

from __future__ import annotations

from datetime import datetime
from typing import Any


class TicketError(ValueError):
    """The ticket cannot be answered or drafted as asked; the message says why."""


def ticket_summary(t: Any) -> dict[str, Any]:
    return {"id": t.id, "status": t.status, "channel": t.channel, "reason": t.reason, "language": t.language,
            "question": t.question, "beneficiary_id": t.beneficiary_id, "created_at": t.created_at.isoformat(),
            "answer": t.answer, "answered_by": t.answered_by,
            "answered_at": t.answered_at.isoformat() if t.answered_at else None}


def reply_to_ticket(db: Any, ticket_id: int, text: str, username: str, now: datetime, notifier: Any = None) -> Any:
    """Answer a ticket: the answer goes out through the outbox on the channel the person used,
    the ticket becomes answered, and the staff action is audited."""
    from sqlmodel import select

    from bot.identity import OutboxNotifier
    from models.actions import audit
    from models.applications import HandoffTicket
    from models.db import session_scope
    from models.staff import StaffUser

    notifier = notifier or OutboxNotifier()
    if not text.strip():
        raise TicketError("the answer is empty")
    with session_scope(db, immediate=True) as s:
        staff = s.exec(select(StaffUser).where(StaffUser.username == username)).first()
        if staff is None or not staff.active:
            raise TicketError(f"no active staff user {username!r}")
        ticket = s.get(HandoffTicket, ticket_id)
        if ticket is None:
            raise TicketError(f"no ticket #{ticket_id}")
        if ticket.status == "closed":
            raise TicketError(f"ticket #{ticket_id} is closed")
        notifier.send_direct(s, channel=ticket.channel, address=ticket.address, text=text.strip(),
                             kind="handoff_answer", occurrence=f"ticket-{ticket.id}-{now:%Y%m%dT%H%M%S}", now=now,
                             lang=ticket.language, beneficiary_id=ticket.beneficiary_id)
        ticket.status = "answered"
        ticket.answer = text.strip()
        ticket.answered_by = username
        ticket.answered_at = now
        s.add(ticket)
        audit(s, username, "ticket.answer", "handoff_ticket", ticket.id, {"channel": ticket.channel}, now)
        return ticket_summary(ticket)


def draft_article(db: Any, ticket_id: int, staff: str, now: datetime) -> Any:
    """A knowledge-article draft in the database from a staff answer, for review: it answers
    nothing until a reviewer approves it (bot/knowledge_store.py). Returns the ArticleRecord."""
    from bot.knowledge_store import KnowledgeRefused, draft_from_ticket

    try:
        return draft_from_ticket(db, ticket_id, staff, now)
    except KnowledgeRefused as exc:
        raise TicketError(str(exc)) from None
