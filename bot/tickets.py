"""Handed-off questions: staff answers reach the person through the outbox, and an answer
can become a knowledge-article draft. Called by the CLI and the web console alike."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
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


def draft_article(db: Any, ticket_id: int, drafts_dir: Path, today: str) -> Path:
    """Write a knowledge-article draft from a staff answer, for review (reviewed_by left empty)."""
    import yaml

    from models.applications import HandoffTicket
    from models.db import session_scope

    with session_scope(db) as s:
        ticket = s.get(HandoffTicket, ticket_id)
        if ticket is None:
            raise TicketError(f"no ticket #{ticket_id}")
        if not ticket.answer:
            raise TicketError(f"ticket #{ticket_id} has no staff answer yet")
        lang = "en" if ticket.language == "en" else "zh-Hans"
        front = {"id": f"ticket-{ticket.id}", "title": ticket.question[:40], "language": lang, "seed": "",
                 "questions": [ticket.question], "keywords": [], "reviewed_by": "", "reviewed_on": "",
                 "drafted_from": f"handoff_ticket {ticket.id}", "drafted_on": today,
                 "answered_by": ticket.answered_by or ""}
        body = ticket.answer
    drafts_dir.mkdir(parents=True, exist_ok=True)
    path = drafts_dir / f"ticket-{ticket_id}.md"
    path.write_text("---\n" + yaml.safe_dump(front, allow_unicode=True, sort_keys=False) + "---\n" + body + "\n",
                    encoding="utf-8")
    return path
