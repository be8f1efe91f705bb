"""Stopping a dispatcher in the middle of a broadcast: what was handed to the provider is written as
sent, everything else goes straight back to the queue for another process (not held until its
lease expires), and the dispatcher returns at once rather than sending out its whole claim."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from models.clock import SystemClock
from models.db import session_scope
from models.outbox import OutboxMessage, OutboxStatus
from outreach.dispatcher import Dispatcher
from outreach.limits import LocalLimiter, ProviderLimit
from outreach.outbox import enqueue_many
from tests.fakes.scripted import ScriptedProvider
from tests.fakes.waiting import finished, until

RATE = 5.0  # a second: the 200 rows claimed would take 40 s to send


async def test_a_stopping_dispatcher_gives_back_what_it_has_not_sent_and_returns_at_once(sqlite_engine, settings):
    """200 rows behind a 5/s limit; stop after a few sends. run() returns within 10 s (not the
    ~40 s the claimed rows would take), every row the provider took is `sent` once, every other
    row is `queued` with no lease and its attempt not counted, so another dispatcher sends it at
    once; no row is left `sending`."""
    clock = SystemClock()
    with session_scope(sqlite_engine) as s:
        enqueue_many(s, ({"idempotency_key": f"stop:{i}", "kind": "broadcast", "channel": "telegram",
                          "address": str(810000 + i), "body": f"元旦问候 {i}", "message_class": "bulk"}
                         for i in range(200)), now=clock.now())
    tg = ScriptedProvider("telegram", "tg", clock)
    limiter = LocalLimiter(ProviderLimit.one_sender("telegram", RATE, 1.0), clock)
    # A lease long enough that one claim takes all 200 (a claim holds at most a quarter lease's sends).
    d = Dispatcher(sqlite_engine, {"telegram": tg}, clock, settings, idle_s=0.01, limits={"telegram": limiter},
                   lease_s=4 * 200 / RATE)
    stop = asyncio.Event()
    task = asyncio.create_task(d.run(stop))
    await until(lambda: len(tg.sent) >= 3, "the broadcast under way")
    stop.set()
    stopped_at = time.monotonic()
    await finished(task, "run() after stop")
    took = time.monotonic() - stopped_at
    # A quarter of what sending the claim takes: a dispatcher that sent on before returning
    # would take over 30 s, however fast the machine; giving back takes a moment on any.
    assert took < 10.0, f"run() took {took:.1f}s to return after stop"

    with session_scope(sqlite_engine) as s:
        rows = s.execute(select(OutboxMessage.address, OutboxMessage.status, OutboxMessage.lease_owner,
                                OutboxMessage.attempts, OutboxMessage.next_attempt_at)).all()
    sent_at_provider = [m.message.address for m in tg.sent]
    assert len(sent_at_provider) == len(set(sent_at_provider)), "nothing sent twice"
    by_status: dict[str, list[str]] = {}
    for address, status, *_ in rows:
        by_status.setdefault(status, []).append(address)
    assert set(by_status) <= {OutboxStatus.SENT.value, OutboxStatus.QUEUED.value}, by_status.keys()
    assert sorted(by_status[OutboxStatus.SENT.value]) == sorted(sent_at_provider)
    given_back = [r for r in rows if r.status == OutboxStatus.QUEUED.value]
    assert len(given_back) == 200 - len(sent_at_provider) > 100
    assert all(r.lease_owner is None and r.attempts == 0 for r in given_back), "released, attempt not counted"
    now = clock.now().replace(tzinfo=None)
    assert all(r.next_attempt_at is None or r.next_attempt_at.replace(tzinfo=None) <= now for r in given_back), \
        "due at once for another dispatcher"
    assert d.stats["released"] == len(given_back)


QUEUED_SMS = 10_000


@pytest.mark.slow
def test_nuanxin_run_with_ten_thousand_queued_sms_exits_within_ten_seconds_of_sigterm_losing_none(
        tmp_path: Path) -> None:
    """`nuanxin run` (SQLite, SMS to the log sink at one segment a second) with 10,000 SMS queued:
    once it is sending, SIGTERM ends it with status 0 within 10 s; afterwards every row is either
    sent or back in the queue unleased (none left `sending`, none lost)."""
    from sqlalchemy import create_engine, func

    from tests.scale.cluster import Cluster, base_env, nuanxin

    data = tmp_path / "var"
    env = base_env(NUANXIN_DATA_DIR=str(data), NUANXIN_ID_HASH_KEY="stop-id-key", NUANXIN_SESSION_SECRET="stop",
                   NUANXIN_QUIET_HOURS_START="00:00", NUANXIN_QUIET_HOURS_END="00:00", NUANXIN_LOG_FORMAT="json")
    nuanxin("migrate", env=env)
    engine = create_engine(f"sqlite:///{data / 'nuanxin.db'}")
    clock = SystemClock()
    with session_scope(engine) as s:
        enqueue_many(s, ({"idempotency_key": f"sms-stop:{i}", "kind": "broadcast", "channel": "sms",
                          "address": f"+86139{i:08d}", "body": f"重阳节问候 {i}", "message_class": "bulk"}
                         for i in range(QUEUED_SMS)), now=clock.now())

    def statuses() -> dict[str, int]:
        with engine.connect() as conn:
            return dict(conn.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())

    cluster = Cluster(env, tmp_path)
    try:
        node = cluster.start("run")
        cluster.wait_healthy(node)
        cluster.wait_until(lambda: statuses().get(OutboxStatus.SENDING.value, 0) > 0, "rows claimed for sending",
                           120, every=0.5)
        code = node.terminate(30)
    finally:
        cluster.stop()
    assert code == 0, node.log()
    assert node.exit_seconds is not None and node.exit_seconds < 10, (node.exit_seconds, node.log())
    after = statuses()
    assert OutboxStatus.SENDING.value not in after, after
    assert set(after) <= {OutboxStatus.SENT.value, OutboxStatus.QUEUED.value}, after
    assert sum(after.values()) == QUEUED_SMS
    with engine.connect() as conn:
        leased = conn.execute(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.status == OutboxStatus.QUEUED.value, OutboxMessage.lease_owner.is_not(None))).scalar_one()
    assert leased == 0, "every row given back unleased"
    engine.dispose()


async def test_a_stop_that_comes_while_the_first_claim_is_under_way_still_gives_every_row_back(
        sqlite_engine, settings, monkeypatch: pytest.MonkeyPatch):
    """A process stopped just as its dispatcher starts (SIGTERM a moment after the port opened):
    the stop lands while the first claim's transaction is running. The rows that claim took are
    given back to the queue when run() returns (none left `sending` under a lease until it
    expires), and none is sent."""
    import outreach.dispatcher as dispatcher_module

    clock = SystemClock()
    with session_scope(sqlite_engine) as s:
        enqueue_many(s, ({"idempotency_key": f"early-stop:{i}", "kind": "broadcast", "channel": "telegram",
                          "address": str(820000 + i), "body": f"通知 {i}", "message_class": "bulk"}
                         for i in range(15)), now=clock.now())
    tg = ScriptedProvider("telegram", "tg", clock)
    d = Dispatcher(sqlite_engine, {"telegram": tg}, clock, settings, idle_s=0.01, flush_interval_s=0.01)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    claim = dispatcher_module.outbox.claim

    def claim_while_stopping(*args, **kwargs):  # type: ignore[no-untyped-def]
        rows = claim(*args, **kwargs)
        # The signal arrives now, and the event loop runs on (past the flusher's interval) while
        # this transaction finishes.
        loop.call_soon_threadsafe(stop.set)
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0.05), loop).result()
        return rows

    monkeypatch.setattr(dispatcher_module.outbox, "claim", claim_while_stopping)
    await finished(d.run(stop), "run() stopped during its claim")
    with session_scope(sqlite_engine) as s:
        rows = s.execute(select(OutboxMessage.status, OutboxMessage.lease_owner)).all()
    assert len(rows) == 15
    assert {status for status, _ in rows} == {OutboxStatus.QUEUED.value}, rows
    assert all(owner is None for _, owner in rows)
    assert tg.sent == []
