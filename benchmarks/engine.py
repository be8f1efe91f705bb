"""Conversation engine throughput and latency with state persisted on SQLite.

`msgs_per_s`: inbound -> reply, one transaction per message (load state, step, save with the
version check, log in and out), sequentially over many conversations.
`cpu_ms_per_msg`: the CPU this process spent per message in that run (on a shared machine the
wall-clock figures also measure the neighbours; this one much less).
`statements_per_msg` / `transactions_per_msg`: in that run, the statements the database was sent
(BEGIN included, COMMIT not) and the transactions begun, per message.
`p50_ms`/`p99_ms`: 100 conversations in flight at once (asyncio, `Engine.ahandle` in a pool of
threads), each sending its next message as soon as the previous one is answered; latency is
from submitting a message to having its replies, so it includes waiting for the database.
`p99_ms_beside_writer`: the same 100 conversations (their next 30 messages) while another writer of
this process (a console or dispatcher thread, `write_scope` transactions of one UPDATE each) writes
`BESIDE_WRITES_PER_S` times a second: the two meet at SQLite's write lock, where the loser waits in
SQLite's busy handler (it sleeps 1, 2, 5, 10 ... ms between tries). `beside_writer_p99_ms` is that
writer's own latency, BEGIN to COMMIT.
`load_1m_start` / `load_1m_end`: the machine's one-minute load average before and after the run (the
wall-clock figures, p99 above all, move with the neighbours' load).
Messages walk the hardship flow and its global words (a realistic mix: menu choices, text,
money, confirm, help, back).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CONCURRENCY = 100
SEQUENTIAL_MESSAGES = 5000
CONCURRENT_ROUNDS = 30
PERIOD = 0.2  # seconds between one person's messages: 100 people -> 500 msg/s offered, far above real use
BESIDE_WRITES_PER_S = 200  # the other writer's transactions a second in the last part

SCRIPT = ["0", "3", "2", "帮助", "生活困难，看病花钱多", "返回", "生活困难，看病花钱多", "1500", "0", "3", "2"]


def _setup(tmp: Path) -> tuple[Any, Any]:
    from sqlmodel import SQLModel

    import models  # noqa: F401
    from bot.engine import Engine
    from models.clock import SystemClock
    from models.db import make_engine, session_scope
    from models.idcard import IdCard
    from models.people import Beneficiary, Contact
    from settings import load_settings

    settings = load_settings(data_dir=tmp / "var", id_hash_key="bench-key")
    db = make_engine(f"sqlite:///{tmp / 'bench.db'}")
    SQLModel.metadata.create_all(db)
    card = IdCard.parse("110105194012310024")
    with session_scope(db) as s:
        # One person per conversation: several chats of one person would (rightly) share one flow.
        for i in range(CONCURRENCY * 3 + 1):
            b = Beneficiary(name="张三", id_hash=f"{card.hashed(settings.id_key)[:50]}{i}", id_masked=card.masked,
                            birth_date=card.birth_date)
            s.add(b)
            s.flush()
            s.add(Contact(channel="telegram", address=f"bench-{i}" if i < CONCURRENCY * 3 else "bench-warm",
                          beneficiary_id=b.id, verified=True, verified_at=datetime.now(UTC)))

    # Imported here, as a service loads its Q&A at start: the first question of the timed run must not
    # pay for importing the Q&A modules (about 0.6 s of CPU, seconds of wall clock on a busy machine).
    from bot.qa import Answer

    class NoArticle:
        """The knowledge without an article for what is asked: a sentence typed where a choice is
        expected goes to the Q&A (answered outside the transaction) and the step explains itself."""

        def answer(self, q: str, lang: str | None = None) -> Any:
            return Answer(handoff=True, answer="", sources=[], lang=lang or "zh-Hans", reason="out_of_scope",
                          article_id=None, score=0.0, sms="", detail="no_article")

    return Engine(db, settings, SystemClock(), qa=NoArticle()), db


def _in_flight(engine: Any, first_round: int) -> tuple[list[float], float]:
    """100 conversations at once, each person sending a message every PERIOD seconds (open loop, staggered)
    and waiting for the answer before the next: the latencies (from the moment a message arrives to its replies
    being ready, any wait for the database included) and the seconds the part took."""
    from bot.channels.base import Inbound

    latencies: list[float] = []
    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="engine")

    async def one_conversation(i: int, t0: float) -> None:
        loop = asyncio.get_running_loop()
        address = f"bench-{CONCURRENCY * 2 + i}"
        for r in range(CONCURRENT_ROUNDS):
            due = t0 + (i / CONCURRENCY + r) * PERIOD
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            arrived = max(due, time.perf_counter()) if delay > 0 else due
            step = first_round + r
            inbound = Inbound(channel="telegram", address=address, text=SCRIPT[step % len(SCRIPT)],
                              provider_message_id=str(step))
            replies = await loop.run_in_executor(pool, engine.handle, inbound)
            latencies.append(time.perf_counter() - arrived)
            assert replies

    async def main() -> float:
        t = time.perf_counter()
        await asyncio.gather(*(one_conversation(i, t + 0.05) for i in range(CONCURRENCY)))
        return time.perf_counter() - t

    seconds = asyncio.run(main())
    pool.shutdown()
    return latencies, seconds


def _other_writer(db: Any, stop: threading.Event, took: list[float]) -> None:
    """Another writer of the process: BESIDE_WRITES_PER_S short write transactions a second until `stop`."""
    from sqlalchemy import update

    from models.db import write_scope
    from models.people import Beneficiary

    person = Beneficiary.__table__  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    k = 0
    while not stop.is_set():
        delay = t0 + k / BESIDE_WRITES_PER_S - time.perf_counter()
        if delay > 0:
            stop.wait(delay)
        k += 1
        started = time.perf_counter()
        with write_scope(db) as s:
            s.execute(update(person).where(person.c.id == 1 + k % CONCURRENCY).values(street=f"街道{k % 7}"))
        took.append(time.perf_counter() - started)


def _p99(xs: list[float]) -> float:
    return round(statistics.quantiles(sorted(xs), n=100)[98] * 1000, 2)


def run() -> dict[str, Any]:
    from sqlalchemy import event

    from bot.channels.base import Inbound

    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        engine, db = _setup(Path(d))
        # Warm up: compile statements, load flows, touch every code path once.
        for i in range(len(SCRIPT)):
            engine.handle(Inbound(channel="telegram", address="bench-warm", text=SCRIPT[i]))

        # What a long-running service does after start-up: the flows, statements and models it keeps
        # for its whole life are no longer scanned by every garbage collection.
        gc.collect()
        gc.freeze()

        # Throughput: one message after another, spread over many conversations.
        convs = CONCURRENCY * 2
        sent = {"statements": 0, "transactions": 0}

        def count_statement(*_args: Any) -> None:
            sent["statements"] += 1

        def count_transaction(*_args: Any) -> None:
            sent["transactions"] += 1

        event.listen(db, "before_cursor_execute", count_statement)
        event.listen(db, "begin", count_transaction)
        t0, cpu0 = time.perf_counter(), time.process_time()
        for n in range(SEQUENTIAL_MESSAGES):
            conv = n % convs
            step = (n // convs) % len(SCRIPT)
            # Provider message ids as Telegram gives them (the engine checks each is new).
            replies = engine.handle(Inbound(channel="telegram", address=f"bench-{conv}", text=SCRIPT[step],
                                            provider_message_id=str(n)))
            assert replies
        seq_seconds = time.perf_counter() - t0
        cpu_ms_per_msg = (time.process_time() - cpu0) / SEQUENTIAL_MESSAGES * 1000
        msgs_per_s = SEQUENTIAL_MESSAGES / seq_seconds
        event.remove(db, "before_cursor_execute", count_statement)
        event.remove(db, "begin", count_transaction)

        # Latency with 100 conversations in flight.
        latencies, conc_seconds = _in_flight(engine, 0)

        # The same, with another writer of this process beside the engine.
        stop = threading.Event()
        writes: list[float] = []
        other = threading.Thread(target=_other_writer, args=(db, stop, writes), name="other-writer")
        other.start()
        try:
            beside, beside_seconds = _in_flight(engine, CONCURRENT_ROUNDS)
        finally:
            stop.set()
            other.join()
        engine.close()
        db.dispose()
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    return {
        "msgs_per_s": round(msgs_per_s, 1),
        "cpu_ms_per_msg": round(cpu_ms_per_msg, 3),
        "statements_per_msg": round(sent["statements"] / SEQUENTIAL_MESSAGES, 2),
        "transactions_per_msg": round(sent["transactions"] / SEQUENTIAL_MESSAGES, 2),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(q[98] * 1000, 2),
        "concurrency": CONCURRENCY,
        "offered_msgs_per_s": round(CONCURRENCY / PERIOD, 1),
        "concurrent_msgs_per_s": round(len(latencies) / conc_seconds, 1),
        "p99_ms_beside_writer": _p99(beside),
        "beside_writer_tx_per_s": round(len(writes) / beside_seconds, 1),
        "beside_writer_p99_ms": _p99(writes),
        "messages": SEQUENTIAL_MESSAGES + len(latencies) + len(beside),
        "database": "sqlite",
        "load_1m_start": round(load_start, 2),
        "load_1m_end": round(os.getloadavg()[0], 2),
    }


if __name__ == "__main__":
    print(json.dumps(run()))
