"""One reply per inbound message, however many times and to however many processes it is delivered.

The webhook routes call `claim` with the provider's own id before anything else happens to the
message (no download, no button answered, no engine), and `finish` once it is handled:

- `Claim.FIRST`: this process handles it (a new id, or a claim whose holder died: lease over);
- `Claim.DUPLICATE`: handled already; answer the provider "ok" and do nothing;
- `Claim.ELSEWHERE`: another process is handling it right now; answer "try later" (Telegram and
  Twilio deliver again), so that if that process dies the message is not lost.

The claim is one INSERT … ON CONFLICT DO NOTHING on a unique key (models/inbound.py), so two
replicas racing for one update cannot both win. `forget_before` deletes old receipts: Telegram
redelivers for about a day and Twilio within minutes, so a week is ample.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Engine, and_, delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from models.db import is_sqlite
from models.inbound import InboundReceipt, InboundState

RECEIPTS = InboundReceipt.__table__  # type: ignore[attr-defined]
LEASE = timedelta(seconds=60)  # a message that takes longer than this to answer may be answered twice
KEEP = timedelta(days=7)


class Claim(StrEnum):
    FIRST = "first"
    DUPLICATE = "duplicate"
    ELSEWHERE = "elsewhere"


def claim(engine: Engine, channel: str, provider_id: str, *, owner: str, now: datetime,
          lease: timedelta = LEASE) -> Claim:
    """Take the message for this process, or say who has it (see the module's docstring)."""
    c = RECEIPTS.c
    insert = sqlite_insert if is_sqlite(engine) else pg_insert
    with engine.begin() as session:
        inserted = session.execute(
            insert(RECEIPTS).values(channel=channel, provider_id=provider_id, state=InboundState.HANDLING.value,
                                    claimed_by=owner[:128], lease_until=now + lease, received_at=now)
            .on_conflict_do_nothing(index_elements=["channel", "provider_id"]).returning(c.id)).first()
        if inserted is not None:
            return Claim.FIRST
        taken_over = session.execute(
            update(RECEIPTS).where(and_(c.channel == channel, c.provider_id == provider_id,
                                        c.state == InboundState.HANDLING.value, c.lease_until < now))
            .values(claimed_by=owner[:128], lease_until=now + lease)).rowcount
        if taken_over:
            return Claim.FIRST
        state = session.execute(RECEIPTS.select().with_only_columns(c.state).where(
            and_(c.channel == channel, c.provider_id == provider_id))).scalar()
    return Claim.DUPLICATE if state == InboundState.DONE.value else Claim.ELSEWHERE


def seen(engine: Engine, channel: str, provider_id: str, *, now: datetime) -> Claim:
    """What a claim would say, by reading only (no write, no lock): DUPLICATE when handled,
    ELSEWHERE while another process holds a live claim, else FIRST. For a path whose handler
    dedupes by the provider's id in its own transaction (the SMS webhook: the engine's message
    log), so that the one write is `handled` afterwards."""
    c = RECEIPTS.c
    with engine.connect() as conn:
        row = conn.execute(RECEIPTS.select().with_only_columns(c.state, c.lease_until).where(
            and_(c.channel == channel, c.provider_id == provider_id))).first()
    if row is None:
        return Claim.FIRST
    if row.state == InboundState.DONE.value:
        return Claim.DUPLICATE
    return Claim.ELSEWHERE if row.lease_until >= now else Claim.FIRST


def handled(engine: Engine, channel: str, provider_id: str, *, owner: str, now: datetime) -> None:
    """Record the message as handled in one write (a new row, or a claim's row finished): later
    deliveries are duplicates."""
    c = RECEIPTS.c
    insert = sqlite_insert if is_sqlite(engine) else pg_insert
    stmt = insert(RECEIPTS).values(channel=channel, provider_id=provider_id, state=InboundState.DONE.value,
                                   claimed_by=owner[:128], lease_until=now, received_at=now, done_at=now)
    with engine.begin() as session:
        session.execute(stmt.on_conflict_do_update(index_elements=[c.channel, c.provider_id],
                                                   set_={"state": InboundState.DONE.value, "done_at": now}))


def finish(engine: Engine, channel: str, provider_id: str, *, now: datetime) -> None:
    """The message is handled (answered, or refused on purpose): later deliveries are duplicates."""
    c = RECEIPTS.c
    with engine.begin() as session:
        session.execute(update(RECEIPTS).where(and_(c.channel == channel, c.provider_id == provider_id))
                        .values(state=InboundState.DONE.value, done_at=now))


def release(engine: Engine, channel: str, provider_id: str) -> None:
    """Handling failed before anything was said: the next delivery starts afresh."""
    c = RECEIPTS.c
    with engine.begin() as session:
        session.execute(delete(RECEIPTS).where(and_(c.channel == channel, c.provider_id == provider_id,
                                                    c.state == InboundState.HANDLING.value)))


def forget_before(engine: Engine, now: datetime, keep: timedelta = KEEP) -> int:
    """Delete receipts older than `keep`; returns how many."""
    with engine.begin() as session:
        return int(session.execute(delete(RECEIPTS).where(RECEIPTS.c.received_at < now - keep)).rowcount or 0)
