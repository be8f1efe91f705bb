"""An inbound message is claimed once by its provider id, in the database, whichever process it reaches."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import Engine, func, select

from bot import inbound
from bot.inbound import Claim
from models.clock import FakeClock
from models.inbound import InboundReceipt


def test_the_first_delivery_is_handled_and_a_repeat_after_it_is_a_duplicate(db_engine: Engine,
                                                                             clock: FakeClock) -> None:
    """The first claim of an id handles it; once finished, any later delivery is a duplicate."""
    assert inbound.claim(db_engine, "telegram", "7:100", owner="web-a", now=clock.now()) is Claim.FIRST
    inbound.finish(db_engine, "telegram", "7:100", now=clock.now())
    assert inbound.claim(db_engine, "telegram", "7:100", owner="web-b", now=clock.now()) is Claim.DUPLICATE
    assert inbound.claim(db_engine, "telegram", "7:100", owner="web-a", now=clock.now()) is Claim.DUPLICATE


def test_a_delivery_while_another_process_handles_it_is_sent_away_and_taken_over_once_the_lease_ends(
        db_engine: Engine, clock: FakeClock) -> None:
    """While replica A handles an update, B is told it is being handled (Telegram delivers it again);
    if A dies, the next delivery after A's lease takes it over, so the message is not lost."""
    assert inbound.claim(db_engine, "sms", "SM1", owner="web-a", now=clock.now()) is Claim.FIRST
    assert inbound.claim(db_engine, "sms", "SM1", owner="web-b", now=clock.now()) is Claim.ELSEWHERE
    clock.advance(inbound.LEASE - timedelta(seconds=1))
    assert inbound.claim(db_engine, "sms", "SM1", owner="web-b", now=clock.now()) is Claim.ELSEWHERE
    clock.advance(timedelta(seconds=2))
    assert inbound.claim(db_engine, "sms", "SM1", owner="web-b", now=clock.now()) is Claim.FIRST
    assert inbound.claim(db_engine, "sms", "SM1", owner="web-c", now=clock.now()) is Claim.ELSEWHERE


def test_the_same_id_on_two_channels_are_two_messages(db_engine: Engine, clock: FakeClock) -> None:
    """The key is (channel, provider id): an SMS sid and a Telegram update never collide."""
    assert inbound.claim(db_engine, "sms", "42", owner="a", now=clock.now()) is Claim.FIRST
    assert inbound.claim(db_engine, "telegram", "42", owner="a", now=clock.now()) is Claim.FIRST


def test_a_released_claim_lets_the_next_delivery_start_afresh(db_engine: Engine, clock: FakeClock) -> None:
    """Handling that failed before anything was said gives the id back at once (no lease to wait out)."""
    assert inbound.claim(db_engine, "telegram", "7:5", owner="a", now=clock.now()) is Claim.FIRST
    inbound.release(db_engine, "telegram", "7:5")
    assert inbound.claim(db_engine, "telegram", "7:5", owner="b", now=clock.now()) is Claim.FIRST


def test_racing_replicas_cannot_both_win_one_update(pg_engine: Engine, clock: FakeClock) -> None:
    """Eight threads (eight replicas' requests) claim one id at the same moment on PostgreSQL:
    exactly one handles it, and there is one row."""
    results: list[Claim] = []
    barrier = threading.Barrier(8)

    def replica(n: int) -> None:
        barrier.wait()
        results.append(inbound.claim(pg_engine, "telegram", "7:999", owner=f"web-{n}", now=clock.now()))

    threads = [threading.Thread(target=replica, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(Claim.FIRST) == 1
    assert results.count(Claim.ELSEWHERE) == 7
    with pg_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(InboundReceipt)).scalar_one() == 1


def test_receipts_older_than_a_week_are_forgotten(db_engine: Engine, clock: FakeClock) -> None:
    """Housekeeping deletes old receipts and keeps recent ones (they still catch redeliveries)."""
    inbound.claim(db_engine, "sms", "old", owner="a", now=clock.now())
    clock.advance(timedelta(days=6))
    inbound.claim(db_engine, "sms", "recent", owner="a", now=clock.now())
    clock.advance(timedelta(days=2))
    assert inbound.forget_before(db_engine, clock.now()) == 1
    with db_engine.connect() as conn:
        left = conn.execute(select(InboundReceipt.provider_id)).scalars().all()  # type: ignore[call-overload]
    assert left == ["recent"]
