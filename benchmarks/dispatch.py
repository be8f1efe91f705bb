"""Dispatch throughput: outbox → dispatcher → aiogram's Bot (its own AiohttpSession) → fake Telegram on loopback.

Figures (one run; the fake Telegram runs in a process of its own, so that it does not share the
dispatcher's interpreter, and records the arrival time of each message):
- raw_per_s: the fake's capacity: plain concurrent HTTP POSTs of sendMessage with no database
  and no aiogram (aiohttp posting a form, as aiogram's session does);
- msgs_per_s: outbox rows (SQLite file, the embedded default) sent by one Dispatcher with no
  rate limit, from start until every outcome is written; ratio = msgs_per_s / raw_per_s;
  cpu_us_per_msg: the dispatcher process's CPU time per message in that run;
- limit_per_s, limited_rate_ratio: the same under a limit R (the in-process limiter as
  `nuanxin run` builds it), delivered rate at the fake / R; `limited_window_violations` counts
  the one-second windows of arrivals at the fake holding more than R, `limited_busiest_window`
  the most one held; `limited_send_*` the same over the times the dispatcher handed each
  message to the provider;
- workers_*: 1, then 2 dispatcher processes on PostgreSQL under one limit R = 300/s shared
  through Redis (each process built by `service.build_outbound`, as `nuanxin run` builds its
  own): `workers_delivered_ratio` (both together, at the fake, / R), `workers_window_violations`
  (one-second windows of arrivals over R), `workers_cpu_ratio` (CPU per message with 2
  processes / with 1), and each run's own figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TOKEN = "123456:BENCH"
N = int(os.environ.get("NUANXIN_BENCH_DISPATCH_N", "10000"))
LIMIT = float(os.environ.get("NUANXIN_BENCH_DISPATCH_LIMIT", "200"))
WORKERS_LIMIT = float(os.environ.get("NUANXIN_BENCH_WORKERS_LIMIT", "300"))
WORKERS_SECONDS = float(os.environ.get("NUANXIN_BENCH_WORKERS_SECONDS", "12"))
CONCURRENCY = 256

_SERVE = """
import asyncio, json, sys, threading, time
from tests.fakes.fake_telegram import FakeTelegram
class _Arrivals(list):
    # Keep memory flat in long runs: only the arrival time of each delivered message, and
    # only between 'start' and 'dump' on stdin (the rate-limited runs).
    recording = False
    def append(self, item):
        if self.recording:
            super().append((time.time(), item.get("text")))
def commands(tg):
    for line in sys.stdin:
        if line.strip() == "start":
            tg.sent.clear()
            tg.sent.recording = True
        elif line.strip() == "dump":
            tg.sent.recording = False
            print(json.dumps(list(tg.sent)), flush=True)
        tg.requests.clear()
async def main():
    tg = FakeTelegram(sys.argv[1])
    tg.sent = _Arrivals()
    await tg.start()
    threading.Thread(target=commands, args=(tg,), daemon=True).start()
    print(tg.port, flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


class _Fake:
    """The fake Telegram in its own process; `arrivals()` between `start()` and `dump()`."""

    def __init__(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVE, TOKEN], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.base = f"http://127.0.0.1:{int(self.proc.stdout.readline().strip())}"

    def _say(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def start(self) -> None:
        self._say("start")

    def dump(self) -> list[float]:
        return sorted(at for at, _ in self.dump_texts())

    def dump_texts(self) -> list[tuple[float, str]]:
        """Each message's arrival time and text."""
        self._say("dump")
        assert self.proc.stdout is not None
        return [(at, text) for at, text in json.loads(self.proc.stdout.readline())]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


async def _raw(base: str, n: int) -> float:
    import aiohttp

    url = f"{base}/bot{TOKEN}/sendMessage"
    sem = asyncio.Semaphore(CONCURRENCY)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:
        async def one(i: int) -> None:
            async with sem, session.post(url, data={"chat_id": str(1000 + i), "text": f"raw {i}"}) as r:
                await r.read()

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - t0)


def _fill(engine: Any, n: int, tag: str) -> None:
    from models.clock import SystemClock
    from models.db import session_scope
    from outreach.outbox import enqueue_many

    with session_scope(engine) as s:
        enqueue_many(s, ({"idempotency_key": f"{tag}:{i}", "kind": "bench", "channel": "telegram",
                          "address": str(200000 + i), "body": f"{tag} {i}"} for i in range(n)),
                     now=SystemClock().now())


def _unsent(engine: Any) -> int:
    from sqlalchemy import func, select
    from sqlmodel import col

    from models.db import session_scope
    from models.outbox import OutboxMessage

    with session_scope(engine) as s:
        return int(s.execute(select(func.count()).where(col(OutboxMessage.status) != "sent")).scalar() or 0)


class _Timed:
    """The provider, with the time each send was handed to it."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.times: list[float] = []
        self.bodies: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.provider, name)

    async def send(self, message: Any) -> Any:
        self.times.append(time.time())
        self.bodies.append(message.body)
        return await self.provider.send(message)


def _settings(base: str, **overrides: Any) -> Any:
    from settings import load_settings

    return load_settings(**{"telegram_bot_token": TOKEN, "telegram_api_base": base, "redis_url": "", **overrides})


async def _dispatch(engine: Any, base: str, n: int, limit: float | None,
                    send_times: list[float] | None = None, bodies: list[str] | None = None) -> tuple[float, float]:
    """Send n rows; returns (messages a second, CPU µs per message of this process)."""
    from models.clock import SystemClock
    from outreach.dispatcher import Dispatcher
    from outreach.limits import LocalLimiter, ProviderLimit
    from service import build_outbound

    clock = SystemClock()
    settings = _settings(base, **({"telegram_rate_per_s": limit} if limit else {}))
    outbound = build_outbound(settings, engine, clock)
    if limit is None:  # the raw run: no provider limit at all
        outbound.limits["telegram"] = LocalLimiter(ProviderLimit("telegram"), clock)
    provider = outbound.providers["telegram"]
    timed = _Timed(provider) if send_times is not None else None
    d = Dispatcher(engine, {"telegram": timed or provider}, clock, settings, batch_size=1000,
                   concurrency=CONCURRENCY, max_inflight=2000, flush_max=500, limits=outbound.limits, idle_s=0.02)
    stop = asyncio.Event()
    cpu0, t0 = time.process_time(), time.perf_counter()
    task = asyncio.create_task(d.run(stop))
    # Watch the dispatcher's own count, not the table: a count(*) every few milliseconds
    # would take SQLite's lock from the dispatcher it measures.
    while d.stats["sent"] < n:
        await asyncio.sleep(0.02)
    stop.set()
    await task  # every outcome written
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    assert _unsent(engine) == 0, "rows not sent"
    await outbound.close()
    if timed is not None and send_times is not None:
        send_times.extend(timed.times)
        if bodies is not None:
            bodies.extend(timed.bodies)
    return n / elapsed, cpu * 1e6 / n


# --- the workers part: dispatcher processes on PostgreSQL sharing one limit through Redis -----
async def _work(url: str, base: str, redis_url: str, rate: float) -> dict[str, Any]:
    import service  # noqa: F401 - imported before the CPU is counted
    from models.clock import SystemClock
    from models.db import make_engine
    from outreach.dispatcher import Dispatcher
    from service import build_outbound

    clock = SystemClock()
    engine = make_engine(url, pool_size=4)
    settings = _settings(base, redis_url=redis_url, telegram_rate_per_s=rate, database_url=url)
    outbound = build_outbound(settings, engine, clock)
    d = Dispatcher(engine, {"telegram": outbound.providers["telegram"]}, clock, settings, limits=outbound.limits,
                   idle_s=0.2)
    print("ready", flush=True)  # every process starts at once, when all have imported and connected
    await asyncio.to_thread(sys.stdin.readline)
    cpu0 = time.process_time()
    stop = asyncio.Event()
    task = asyncio.create_task(d.run(stop))
    while await asyncio.to_thread(_unsent, engine):
        await asyncio.sleep(0.5)
    stop.set()
    await task
    cpu = time.process_time() - cpu0
    await outbound.close()
    engine.dispose()
    return {"sent": d.stats["sent"], "cpu_s": cpu, "late_slots": d.stats["late_slots"],
            "window_waits": d.stats["window_waits"], "slot_calls": d.stats["slot_calls"]}


def _workers(fake: _Fake, pg: Any, redis_url: str, processes: int, rate: float, seconds: float) -> dict[str, Any]:
    """`processes` dispatcher processes send rate × seconds messages under one shared limit."""
    from sqlmodel import SQLModel

    from models.db import make_engine
    from tests.fakes.windows import busiest_window, window_violations

    url = pg.create_database(f"workers_{processes}")
    engine = make_engine(url)
    SQLModel.metadata.create_all(engine)
    m = int(rate * seconds)
    _fill(engine, m, f"w{processes}")
    engine.dispose()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.dispatch", "worker", "--url", url, "--api", fake.base,
                               "--redis", redis_url, "--rate", str(rate)], cwd=ROOT, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(processes)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready", p.stderr.read() if p.stderr else ""
    fake.start()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = [p.communicate(timeout=600) for p in procs]
    arrivals = fake.dump()
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    sent = sum(r["sent"] for r in results)
    assert len(arrivals) == m == sent, (len(arrivals), m, sent)
    delivered = (m - 1) / (arrivals[-1] - arrivals[0])
    return {"delivered_ratio": round(delivered / rate, 3), "window_violations": window_violations(arrivals, rate),
            "busiest_window": busiest_window(arrivals), "cpu_us_per_msg": round(sum(r["cpu_s"] for r in results)
                                                                                 * 1e6 / sent, 1),
            "messages": m, "sent_by_process": [r["sent"] for r in results],
            # Slots the process woke for more than the limits' headroom late (a busy machine):
            # sent as soon as the moving window had room, and the sends that waited for that room.
            "late_slots_by_process": [r["late_slots"] for r in results],
            "window_waits_by_process": [r["window_waits"] for r in results],
            # Calls for slots (Redis round trips; the moving window's count of each start is one more a message).
            "slot_calls_per_msg": round(sum(r["slot_calls"] for r in results) / sent, 3)}


def run() -> dict[str, Any]:
    from sqlmodel import SQLModel

    import models  # noqa: F401
    import service  # noqa: F401 - the dispatcher, aiogram and the providers: imported before anything is timed
    from models.db import make_engine
    from models.pgserver import PostgresServer
    from tests.fakes.windows import busiest_window, window_violations
    from tests.redisserver import RedisServer

    fake = _Fake()
    tmp = tempfile.mkdtemp(prefix="nuanxin-bench-dispatch-")
    try:
        raw = asyncio.run(_raw(fake.base, N))
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        SQLModel.metadata.create_all(engine)
        _fill(engine, N, "free")
        msgs, cpu_us = asyncio.run(_dispatch(engine, fake.base, N, None))
        engine.dispose()

        engine = make_engine(f"sqlite:///{tmp}/limited.db")
        SQLModel.metadata.create_all(engine)
        m = int(LIMIT * 10)
        _fill(engine, m, "limited")
        fake.start()
        send_times: list[float] = []
        bodies: list[str] = []
        asyncio.run(_dispatch(engine, fake.base, m, LIMIT, send_times, bodies))
        pairs = fake.dump_texts()
        arrivals = sorted(at for at, _ in pairs)
        arrived = {text: at for at, text in pairs}
        # From handing a message to the provider to its arrival at the fake: the jitter the
        # limits' margin below R must absorb.
        delays = sorted((arrived[b] - t) * 1000 for t, b in zip(send_times, bodies, strict=True) if b in arrived)
        engine.dispose()
        # Delivered rate as the provider saw it: (m - 1) intervals between the first and the
        # last arrival at the fake.
        assert len(arrivals) == m, (len(arrivals), m)
        limited_rate = (m - 1) / (arrivals[-1] - arrivals[0])

        with PostgresServer() as pg, RedisServer() as redis:
            one = _workers(fake, pg, redis.url(0), 1, WORKERS_LIMIT, WORKERS_SECONDS)
            two = _workers(fake, pg, redis.url(1), 2, WORKERS_LIMIT, WORKERS_SECONDS)
    finally:
        fake.stop()
    return {"msgs_per_s": round(msgs, 1), "raw_per_s": round(raw, 1), "ratio": round(msgs / raw, 3),
            "cpu_us_per_msg": round(cpu_us, 1),
            "limit_per_s": LIMIT, "limited_rate_ratio": round(limited_rate / LIMIT, 3),
            "limited_window_violations": window_violations(arrivals, LIMIT),
            "limited_busiest_window": busiest_window(arrivals),
            "limited_send_window_violations": window_violations(send_times, LIMIT),
            "limited_send_busiest_window": busiest_window(send_times),
            "limited_arrival_delay_ms": {"p50": round(delays[len(delays) // 2], 1),
                                         "p99": round(delays[int(len(delays) * 0.99)], 1),
                                         "max": round(delays[-1], 1)} if delays else None,
            "workers_limit_per_s": WORKERS_LIMIT, "workers_delivered_ratio": two["delivered_ratio"],
            "workers_window_violations": two["window_violations"],
            "workers_cpu_ratio": round(two["cpu_us_per_msg"] / one["cpu_us_per_msg"], 3),
            "workers_1": one, "workers_2": two,
            "messages": N, "limited_messages": m, "database": "sqlite", "workers_database": "postgresql",
            "concurrency": CONCURRENCY, "transport": "aiogram AiohttpSession"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dispatch")
    sub = parser.add_subparsers(dest="cmd")
    w = sub.add_parser("worker", help="one dispatcher process of the workers part")
    w.add_argument("--url", required=True)
    w.add_argument("--api", required=True)
    w.add_argument("--redis", required=True)
    w.add_argument("--rate", type=float, required=True)
    args = parser.parse_args(argv)
    if args.cmd == "worker":
        print(json.dumps(asyncio.run(_work(args.url, args.api, args.redis, args.rate))))
    else:
        print(json.dumps(run()))


if __name__ == "__main__":
    main()
