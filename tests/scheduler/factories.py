"""Small builders for scheduler and broadcast tests: people, contacts, staff, a fake renderer."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select
from sqlmodel import Session

from models.db import session_scope
from models.outbox import OutboxMessage
from models.people import Beneficiary, Contact
from models.staff import StaffUser
from outreach.templates import load_templates

SHANGHAI = ZoneInfo("Asia/Shanghai")
_n = itertools.count(1)


TS = load_templates()  # the real templates/messages: what the sweeps send is what they render


def cert(m: OutboxMessage) -> str:
    """A certification reminder row as `<due date>:<days>` (kind cert_reminder_<days>)."""
    return f"{m.occurrence}:{m.kind.rsplit('_', 1)[1]}"


def person(session: Session, *, channel: str | None = "telegram", language: str = "zh-Hans", **fields: Any
           ) -> Beneficiary:
    n = next(_n)
    fields.setdefault("name", f"测试{n}")
    b = Beneficiary(id_hash=f"h{n:08d}", id_masked=f"4407**********{n:04d}", language=language, **fields)
    session.add(b)
    session.flush()
    if channel:
        address = f"{100000 + n}" if channel == "telegram" else f"+86138{n:08d}"
        session.add(Contact(beneficiary_id=b.id, channel=channel, address=address, verified=True))
        session.flush()
    return b


def staff(session: Session, username: str, *roles: str) -> StaffUser:
    user = StaffUser(username=username, display_name=username, roles=list(roles))
    session.add(user)
    session.flush()
    return user


def outbox(engine: Engine, kind_like: str | None = None, **where: Any) -> list[OutboxMessage]:
    with session_scope(engine) as session:
        stmt = select(OutboxMessage)
        if kind_like:
            stmt = stmt.where(OutboxMessage.kind.startswith(kind_like))  # type: ignore[attr-defined]
        for k, v in where.items():
            stmt = stmt.where(getattr(OutboxMessage, k) == v)
        return list(session.execute(stmt.order_by(OutboxMessage.id)).scalars())  # type: ignore[arg-type]


def outbox_count(engine: Engine) -> int:
    with session_scope(engine) as session:
        return session.execute(select(func.count()).select_from(OutboxMessage)).scalar_one()


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    """An office-time (Shanghai) instant, as aware UTC."""
    return datetime(y, m, d, hh, mm, tzinfo=SHANGHAI).astimezone(UTC)


def days(start: date, end: date) -> list[date]:
    out = []
    d = start
    while d <= end:
        out.append(d)
        d = date.fromordinal(d.toordinal() + 1)
    return out
