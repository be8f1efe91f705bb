"""Handed-off questions: opened by the bot (`hand_off`), answered by staff through the outbox,
and an answer can become a knowledge-article draft. Called by the engine, the CLI and the web
console alike.

What costs staff time is bounded per sender: a person with an open ticket adds to it rather
than opening another, so repeated messages from one person are one thing to answer; at most
`MAX_TICKETS_PER_DAY` tickets a day open for one address, and what comes after joins the last
of them (reopened if it was answered); a transcript keeps at most `MAX_TRANSCRIPT_ENTRIES`
entries of at most `MAX_ENTRY_CHARS` characters, the first ones (how it began) and the latest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from models.actions import audit
from models.applications import HandoffTicket
from models.privacy import redact

MAX_TICKETS_PER_DAY = 3  # per channel address and office day
MAX_TRANSCRIPT_ENTRIES = 40
MAX_ENTRY_CHARS = 500
KEEP_FIRST_ENTRIES = 10  # of a long transcript: how it began, then the latest


@dataclass(frozen=True)
class Handoff:
    ticket: HandoffTicket
    appended: bool  # the message joined a ticket already open (or the day's last one)


def entry(direction: str, text: str, at: datetime, **extra: Any) -> dict[str, Any]:
    """One transcript line, masked and bounded."""
    return {"dir": direction, "text": redact(text)[:MAX_ENTRY_CHARS], "at": at.isoformat(), **extra}


def bounded(transcript: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if len(transcript) <= MAX_TRANSCRIPT_ENTRIES:
        return transcript
    keep_last = MAX_TRANSCRIPT_ENTRIES - KEEP_FIRST_ENTRIES - 1
    skipped = len(transcript) - KEEP_FIRST_ENTRIES - keep_last
    gap = {"dir": "note", "text": f"({skipped} earlier messages left out)", "at": transcript[KEEP_FIRST_ENTRIES]["at"]}
    return transcript[:KEEP_FIRST_ENTRIES] + [gap] + transcript[-keep_last:]


def hand_off(session: Session, *, channel: str, address: str, beneficiary_id: int | None, language: str,
             reason: str, question: str, context: list[dict[str, Any]], now: datetime, office_tz: Any,
             attachment: dict[str, Any] | None = None) -> Handoff:
    """Give a person's question (or request, or voice message) to staff: a new ticket, or added to the
    one already open for this address, or to the day's last one when the day's limit is reached."""
    lines = [entry("in", question, now, **(attachment or {}))] if question or attachment else []
    joined = session.exec(select(HandoffTicket).where(
        HandoffTicket.channel == channel, HandoffTicket.address == address, HandoffTicket.status == "open")
        .order_by(col(HandoffTicket.created_at).desc(), col(HandoffTicket.id).desc())).first()
    if joined is None:
        start = datetime.combine(now.astimezone(office_tz).date(), time(0), office_tz)
        today = session.exec(select(func.count()).select_from(HandoffTicket).where(
            HandoffTicket.channel == channel, HandoffTicket.address == address,
            col(HandoffTicket.created_at) >= start)).one()
        if today >= MAX_TICKETS_PER_DAY:
            joined = session.exec(select(HandoffTicket).where(
                HandoffTicket.channel == channel, HandoffTicket.address == address,
                col(HandoffTicket.created_at) >= start)
                .order_by(col(HandoffTicket.created_at).desc(), col(HandoffTicket.id).desc())).first()
    if joined is not None:
        joined.transcript = bounded([*(joined.transcript or []), *lines])
        if joined.status != "open":
            joined.status = "open"  # a new message after the answer: staff see it again
        session.add(joined)
        session.flush()
        audit(session, "bot", "ticket.append", "handoff_ticket", joined.id, {"reason": reason, "channel": channel},
              now)
        return Handoff(joined, True)
    ticket = HandoffTicket(channel=channel, address=address, beneficiary_id=beneficiary_id, language=language,
                           question=redact(question)[:MAX_ENTRY_CHARS] or "(asked for a person)", reason=reason[:32],
                           transcript=bounded([*context, *lines]), created_at=now)
    session.add(ticket)
    session.flush()
    audit(session, "bot", "ticket.open", "handoff_ticket", ticket.id, {"reason": reason, "channel": channel}, now)
    return Handoff(ticket, False)



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
