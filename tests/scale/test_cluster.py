"""The deployment on one machine: PostgreSQL, Redis, two web replicas, two dispatchers and two
schedulers, as separate processes started by the real CLI, sending through the fake Telegram.

While a broadcast (1,500 messages here, `NUANXIN_CLUSTER_BROADCAST=10000` for the issue's full
figure; about 15 s of sending at the test's rate) and the day's certification reminders go out under one shared
rate, one dispatcher and the leading scheduler are SIGKILLed: every message still reaches its chat
once (bar the killed dispatcher's in-flight window), the standby scheduler leads within 30 s, no
reminder is queued twice, the fake never takes more than the rate in any second, and an update
delivered to both web replicas gets one reply. The survivors stop on SIGTERM within 10 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlmodel import col

from models.clock import SystemClock
from models.conversations import MessageLog
from models.db import make_engine, session_scope
from models.inbound import InboundReceipt
from models.outbox import OutboxMessage
from models.pgserver import PostgresServer
from outreach.outbox import enqueue_many
from tests.fakes.windows import busiest_window, window_violations
from tests.redisserver import RedisServer
from tests.scale.cluster import REPO, Cluster, Node, base_env, nuanxin, schedule_sending_at_once

TOKEN = "777111:CLUSTER"
SECRET = "cluster-webhook-secret"
LEASE_S = 10  # a killed dispatcher's claimed rows are taken by the other after this
RATE = 100.0  # messages a second to Telegram, for every process together (two dispatchers and the fake fit on 2 cores)
BROADCAST = int(os.environ.get("NUANXIN_CLUSTER_BROADCAST", "1500"))
REMINDERS = 300
SHANGHAI_OFFSET = timedelta(hours=8)


def _seed_people_due_for_certification(url: str, n: int) -> list[int]:
    """Retirees whose yearly certification is 30 days away today (office time): each is owed one
    reminder by today's daily sweep, on their Telegram chat."""
    from tests.scheduler.factories import person

    today = (datetime.now(UTC) + SHANGHAI_OFFSET).date()
    anniversary = today + timedelta(days=30)
    engine = make_engine(url)
    with session_scope(engine) as s:
        ids = [person(s, is_retiree=True, last_certified_on=date(anniversary.year - 1, anniversary.month,
                                                                 min(anniversary.day, 28))).id
               for _ in range(n)]
    engine.dispose()
    return [i for i in ids if i is not None]


class FakeTelegramProcess:
    """tests/scale/fake_process.py, started and read from here."""

    def __init__(self, token: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.scale.fake_process", token], cwd=REPO,
                                     env=base_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()

    def sent(self) -> list[tuple[str, str, float]]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("dump\n")
        self.proc.stdin.flush()
        return [tuple(m) for m in json.loads(self.proc.stdout.readline())]  # type: ignore[misc]

    def stop(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(15)


def _text_update(update_id: int, chat_id: int, text: str) -> dict[str, object]:
    """A private-chat message update as Telegram posts it."""
    user = {"id": chat_id, "is_bot": False, "first_name": "张", "language_code": "zh-hans"}
    return {"update_id": update_id, "message": {"message_id": 1, "date": int(time.time()), "text": text,
                                                 "chat": {"id": chat_id, "type": "private", "first_name": "张"},
                                                 "from": user}}


def _unsent_by_state(db: Engine) -> str:
    """What is not yet sent, grouped: status, kind, whether due, lease owner (for a timeout's message)."""
    now = SystemClock().now()
    t = OutboxMessage.__table__.c  # type: ignore[attr-defined]
    with db.connect() as conn:
        groups = conn.execute(select(t.status, t.kind, t.next_attempt_at <= now, t.lease_owner, func.count())
                              .where(t.status.not_in(["sent", "delivered"]))
                              .group_by(t.status, t.kind, t.next_attempt_at <= now, t.lease_owner)).all()
    return "\n".join(f"{status} {kind} due={due} owner={owner}: {n}" for status, kind, due, owner, n in groups)


def _per_second(times: list[float]) -> list[int]:
    start = min(times)
    counts = Counter(int(t - start) for t in times)
    return [counts[i] for i in range(max(counts) + 1)]


def _leader(schedulers: list[Node]) -> Node | None:
    for node in schedulers:
        if node.alive():
            try:
                if node.get_json("/healthz", timeout=1)[1].get("scheduler_leader"):
                    return node
            except OSError:
                continue
    return None


# Six service processes (each importing aiogram, the web also building the Q&A) take 100-210 s to
# start on the shared 2-core machine under load (2026-12-01); the sending, kills and take-over then
# take about 15 s. Too long for every run of the suite: it runs where asked (NUANXIN_CLUSTER_TEST=1).
@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("NUANXIN_CLUSTER_TEST") != "1",
                    reason="the six-process cluster run is opt-in: NUANXIN_CLUSTER_TEST=1")
def test_a_broadcast_survives_a_killed_dispatcher_and_a_killed_leader_under_one_shared_rate(
        pg_server: PostgresServer, redis_server: RedisServer, tmp_path: Path) -> None:
    url = pg_server.create_database("nuanxin_cluster")
    redis_server_url = redis_server.url(7)
    import redis

    with redis.Redis.from_url(redis_server_url) as r:
        r.flushdb()
    tg = FakeTelegramProcess(TOKEN)
    try:
        env = base_env(
            DATABASE_URL=url, REDIS_URL=redis_server_url, NUANXIN_DATA_DIR=str(tmp_path / "var"),
            NUANXIN_ID_HASH_KEY="cluster-id-key", NUANXIN_SESSION_SECRET="cluster-session",
            TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_BASE=tg.base_url, TELEGRAM_WEBHOOK_SECRET=SECRET,
            NUANXIN_TELEGRAM_MODE="webhook", NUANXIN_TELEGRAM_RATE_PER_S=str(RATE),
            NUANXIN_QUIET_HOURS_START="00:00", NUANXIN_QUIET_HOURS_END="00:00",
            NUANXIN_METRICS_TOKEN="cluster-metrics", NUANXIN_LOG_FORMAT="json",
            NUANXIN_SCHEDULE_FILE=str(schedule_sending_at_once(tmp_path)), NUANXIN_DISPATCH_LEASE_S=str(LEASE_S))
        nuanxin("migrate", env=env)
        people = _seed_people_due_for_certification(url, REMINDERS)
        db = make_engine(url)
        now = SystemClock().now()
        with session_scope(db) as s:
            enqueue_many(s, ({"idempotency_key": f"cluster:{i}", "kind": "broadcast", "channel": "telegram",
                              "address": str(600000 + i), "body": f"春节慰问 {i}", "message_class": "bulk"}
                             for i in range(BROADCAST)), now=now)

        cluster = Cluster(env, tmp_path)
        began = time.monotonic()
        phases: dict[str, float] = {}
        try:
            webs = [cluster.start("web") for _ in range(2)]
            schedulers = [cluster.start("scheduler") for _ in range(2)]
            dispatchers = [cluster.start("dispatch") for _ in range(2)]
            for node in webs:
                cluster.wait_healthy(node, "/readyz")
            for node in schedulers + dispatchers:
                cluster.wait_healthy(node)
            phases["started"] = time.monotonic() - began

            # The leading scheduler dies while the broadcast goes out.
            cluster.wait_until(lambda: len(tg.sent()) >= BROADCAST // 10, "the broadcast under way", 300, every=0.5)
            leader = cluster.wait_until(lambda: _leader(schedulers), "a scheduler to lead", 60, every=0.05)
            standby = next(n for n in schedulers if n is not leader)
            leader.kill()
            killed_leader_at = time.monotonic()
            cluster.wait_until(lambda: _leader([standby]), "the standby scheduler to lead", 30, every=0.2)
            takeover_s = time.monotonic() - killed_leader_at
            phases["leader killed"] = killed_leader_at - began

            # One dispatcher dies mid-broadcast; what it had claimed and not written is the in-flight window.
            cluster.wait_until(lambda: len(tg.sent()) >= BROADCAST * 2 // 5, "two fifths delivered", 300, every=0.5)
            victim = dispatchers[0]
            victim.kill()
            phases["dispatcher killed"] = time.monotonic() - began
            with db.connect() as conn:
                in_flight = conn.execute(text(
                    "SELECT count(*) FROM outbox_message WHERE status = 'sending' AND lease_owner LIKE :o"),
                    {"o": victim.owner_prefix + "%"}).scalar_one()

            # The same update reaches both web replicas at once (Telegram redelivering, a proxy retrying).
            update = _text_update(4242, 990001, "菜单")
            codes: list[int] = []
            posts = [threading.Thread(target=lambda n=n: codes.append(n.post_json(
                "/webhooks/telegram", update, {"X-Telegram-Bot-Api-Secret-Token": SECRET}))) for n in webs]
            for t in posts:
                t.start()
            for t in posts:
                t.join()
            assert sorted(codes) in ([200, 200], [200, 503]), codes
            again = webs[1].post_json("/webhooks/telegram", update, {"X-Telegram-Bot-Api-Secret-Token": SECRET})
            assert again == 200

            def unsent() -> int:
                with db.connect() as conn:
                    return int(conn.execute(select(func.count()).select_from(OutboxMessage).where(
                        col(OutboxMessage.status).not_in(["sent", "delivered"]))).scalar_one())

            try:
                cluster.wait_until(lambda: unsent() == 0, "every outbox row sent", 120, every=0.5)
            except AssertionError as timeout:
                raise AssertionError(f"{_unsent_by_state(db)}\n{timeout}") from None
            phases["all sent"] = time.monotonic() - began
            survivors = [n for n in cluster.nodes if n.alive()]
            exits = {f"{n.role}:{n.port}": n.terminate(30) for n in survivors}
            phases["stopped"] = time.monotonic() - began
        finally:
            print(f"\ncluster phases (s since the first process started): {phases}")
            cluster.stop()
            report = cluster.report()
        sent = tg.sent()
    finally:
        tg.stop()
    # Every broadcast message reached its chat; twice only within the killed dispatcher's window.
    delivered = Counter((chat, text) for chat, text, _ in sent)
    broadcast = {(str(600000 + i), f"春节慰问 {i}") for i in range(BROADCAST)}
    lost = broadcast - set(delivered)
    duplicates = sum(c - 1 for c in delivered.values() if c > 1)
    assert not lost, f"{len(lost)} broadcast messages never delivered\n{report}"
    assert duplicates <= in_flight, (duplicates, in_flight)

    # The standby took over in time, and the day's reminders were queued once each.
    assert takeover_s <= 30, takeover_s
    with db.connect() as conn:
        reminders = conn.execute(select(OutboxMessage.beneficiary_id, OutboxMessage.address, OutboxMessage.body)
                                 .where(col(OutboxMessage.kind).startswith("cert_reminder"))).all()
        per_person = Counter(r.beneficiary_id for r in reminders)
        reply_rows = conn.execute(select(MessageLog.direction).where(
            MessageLog.channel == "telegram", MessageLog.address == "990001")).scalars().all()
        receipts = conn.execute(select(func.count()).select_from(InboundReceipt)).scalar_one()
    assert set(per_person) == set(people), "everyone due got a reminder"
    assert set(per_person.values()) == {1}, "no reminder queued twice"
    undelivered = [r.address for r in reminders if (r.address, r.body) not in delivered]
    assert not undelivered, f"{len(undelivered)} reminders queued but never reached their chat"

    # The update delivered to both replicas was handled once: one inbound row, one set of replies.
    assert receipts == 1
    assert reply_rows.count("in") == 1
    replies_sent = [m for m in sent if m[0] == "990001"]
    assert len(replies_sent) == reply_rows.count("out") >= 1

    # The shared limit held at the fake: no one-second window over the rate, both dispatchers together.
    arrivals = [at for _, _, at in sent]
    assert window_violations(arrivals, RATE) == 0, (busiest_window(arrivals), _per_second(arrivals))

    # Every surviving process stopped cleanly within 10 s of SIGTERM.
    assert set(exits.values()) == {0}, (exits, report[-6000:])
    slow = {f"{n.role}:{n.port}": round(n.exit_seconds or 0, 1) for n in cluster.nodes
            if n.exit_seconds is not None and n.exit_seconds > 10}
    assert not slow, slow
    db.dispose()

