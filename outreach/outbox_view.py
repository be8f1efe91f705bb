"""What the console's outbox page reads and does: find messages, show one message's whole
history, retry a failed one, cancel a queued one.

Changes go through the outbox's one state module (`outreach.outbox.move`): a retry is
failed → queued with a fresh deadline, a cancel is queued → cancelled; a row in any other
state is left as it is and the caller is told. Each change is audited with the staff member.
Addresses are shown masked (phones) wherever they leave this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlmodel import Session, col

from models.actions import audit
from models.outbox import Broadcast, OutboxEvent, OutboxMessage, OutboxStatus
from models.people import Beneficiary
from models.phone import mask_phone
from outreach import outbox

PAGE_SIZE = 50


class OutboxActionRefused(ValueError):
    """The message is not in a state the action applies to; the message says which it is in."""


@dataclass(frozen=True)
class OutboxQuery:
    person: str = ""  # a name, a beneficiary number, or the last digits of a phone
    kind: str = ""
    broadcast: int | None = None
    status: str = ""
    channel: str = ""

    def where(self) -> list[Any]:
        o = OutboxMessage
        out: list[Any] = []
        if self.kind:
            out.append(or_(col(o.kind) == self.kind, col(o.kind).startswith(self.kind + "_")))
        if self.broadcast is not None:
            out.append(col(o.broadcast_id) == self.broadcast)
        if self.status:
            out.append(col(o.status) == self.status)
        if self.channel:
            out.append(col(o.channel) == self.channel)
        who = self.person.strip()
        if who:
            digits = who.lstrip("+")
            named = select(col(Beneficiary.id)).where(col(Beneficiary.name).contains(who))
            conds: list[Any] = [col(o.beneficiary_id).in_(named)]
            if digits.isdigit():
                conds.append(col(o.beneficiary_id) == int(digits))
                if len(digits) >= 4:
                    conds.append(col(o.address).endswith(digits))
            out.append(or_(*conds))
        return out


@dataclass(frozen=True)
class Row:
    id: int
    kind: str
    channel: str
    address: str  # masked
    status: str
    person: str
    beneficiary_id: int | None
    broadcast_id: int | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    error_code: str | None
    attempts: int


def shown_address(channel: str, address: str) -> str:
    return mask_phone(address) if channel == "sms" else address


def search(session: Session, q: OutboxQuery, *, page: int = 1, size: int = PAGE_SIZE) -> tuple[list[Row], int]:
    """Messages matching the query, newest first, one page; and how many match in all."""
    o = OutboxMessage
    where = q.where()
    total = int(session.execute(select(func.count()).select_from(o).where(*where)).scalar_one())
    stmt = (select(o, col(Beneficiary.name)).outerjoin(Beneficiary, col(Beneficiary.id) == col(o.beneficiary_id))
            .where(*where).order_by(col(o.id).desc()).offset((max(page, 1) - 1) * size).limit(size))
    rows = [Row(m.id, m.kind, m.channel, shown_address(m.channel, m.address), m.status, name or "",
                m.beneficiary_id, m.broadcast_id, m.created_at, m.sent_at, m.delivered_at, m.error_code, m.attempts)
            for m, name in session.execute(stmt).all()]
    return rows, total


def counts_by_status(session: Session, q: OutboxQuery) -> dict[str, int]:
    """How many of the matching messages are in each status (the query's own status aside)."""
    o = OutboxMessage
    base = OutboxQuery(q.person, q.kind, q.broadcast, "", q.channel)
    return {status: int(n) for status, n in session.execute(
        select(col(o.status), func.count()).where(*base.where()).group_by(col(o.status))).all()}


@dataclass(frozen=True)
class History:
    message: OutboxMessage
    address: str  # masked
    person: Beneficiary | None
    broadcast: Broadcast | None
    events: list[OutboxEvent]  # every change of state, with its reason (the provider's answer among them)


def history(session: Session, message_id: int) -> History | None:
    m = session.get(OutboxMessage, message_id)
    if m is None:
        return None
    events = list(session.execute(select(OutboxEvent).where(col(OutboxEvent.outbox_id) == message_id)
                                  .order_by(col(OutboxEvent.at), col(OutboxEvent.id))).scalars())
    person = session.get(Beneficiary, m.beneficiary_id) if m.beneficiary_id else None
    broadcast = session.get(Broadcast, m.broadcast_id) if m.broadcast_id else None
    return History(m, shown_address(m.channel, m.address), person, broadcast, events)


def _one(session: Session, message_id: int) -> OutboxMessage:
    m = session.get(OutboxMessage, message_id)
    if m is None:
        raise OutboxActionRefused(f"no message {message_id}")
    return m


def retry(session: Session, message_id: int, *, actor: str, now: datetime) -> None:
    """A failed message goes back to the queue, due now, with a fresh deadline and attempts."""
    m = _one(session, message_id)
    applied = outbox.move(session, [outbox.Move(message_id, OutboxStatus.QUEUED, f"requeued by {actor}", {
        "next_attempt_at": now, "deadline_at": now + outbox.DEFAULT_DEADLINE, "attempts": 0},
        only_from=frozenset({OutboxStatus.FAILED.value}))], now)
    if not applied:
        raise OutboxActionRefused(f"message {message_id} is {m.status}; only a failed message is sent again")
    audit(session, actor, "outbox.retry", "outbox_message", message_id, {"kind": m.kind, "channel": m.channel}, now)


def cancel(session: Session, message_id: int, *, actor: str, now: datetime) -> None:
    """A queued message (not yet being sent) is cancelled."""
    m = _one(session, message_id)
    applied = outbox.move(session, [outbox.Move(message_id, OutboxStatus.CANCELLED, f"cancelled by {actor}",
                                                {"error": f"cancelled by {actor}"},
                                                only_from=frozenset({OutboxStatus.QUEUED.value}))], now)
    if not applied:
        raise OutboxActionRefused(f"message {message_id} is {m.status}; only a queued message can be cancelled")
    audit(session, actor, "outbox.cancel_one", "outbox_message", message_id, {"kind": m.kind, "channel": m.channel},
          now)


__all__ = ["OutboxQuery", "Row", "History", "search", "counts_by_status", "history", "retry", "cancel",
           "OutboxActionRefused", "shown_address"]
