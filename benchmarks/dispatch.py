"""Dispatch throughput: outbox → dispatcher → aiogram's Bot → fake Telegram on loopback.

Figures (one run, same fake server process for all):
- raw_per_s: the fake's capacity: plain concurrent HTTP POSTs of sendMessage with no database
  and no aiogram (aiohttp posting a form, as aiogram's session does);
- msgs_per_s: outbox rows (SQLite file, the embedded default) sent by one Dispatcher with no
  rate limit, from start until every outcome is written;
- ratio = msgs_per_s / raw_per_s;
- limit_per_s, limited_rate_ratio: the same with a provider limit R, delivered rate / R
  (measured over the messages' arrival times at the fake), and how many 1 s windows of
  arrivals held more than R and the most one held; `limited_send_*`: the same over the times
  the dispatcher handed each message to the provider (what the rate limit decides; arrivals
  add the loopback's and the fake's own jitter).
The fake runs in its own process so that it does not share the dispatcher's interpreter.
"""

from __future__ import annotations

import asyncio
import bisect
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
CONCURRENCY = 256

_SERVE = """
import asyncio, json, sys, threading, time
from outreach.providers.fake_telegram import FakeTelegram
class _Arrivals(list):
    # Keep memory flat in long runs: only the arrival time of each delivered message, and
    # only between 'start' and 'dump' on stdin (the rate-limited run).
    recording = False
    def append(self, item):
        if self.recording:
            super().append(time.time())
def commands(arrivals):
    for line in sys.stdin:
        if line.strip() == "start":
            arrivals.clear()
            arrivals.recording = True
        elif line.strip() == "dump":
            arrivals.recording = False
            print(json.dumps(list(arrivals)), flush=True)
async def main():
    tg = FakeTelegram(sys.argv[1])
    tg.sent = _Arrivals()
    await tg.start()
    threading.Thread(target=commands, args=(tg.sent,), daemon=True).start()
    print(tg.port, flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def _start_fake() -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", _SERVE, TOKEN], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stdin=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    port = int(proc.stdout.readline().strip())
    return proc, f"http://127.0.0.1:{port}"


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


class _Timed:
    """The provider, with the time each send was handed to it."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.times: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.provider, name)

    async def send(self, message: Any) -> Any:
        self.times.append(time.time())
        return await self.provider.send(message)


def _busiest(times: list[float], window: float = 1.0) -> int:
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


async def _dispatch(engine: Any, base: str, n: int, limit: float | None,
                    send_times: list[float] | None = None) -> float:
    from sqlalchemy import func, select
    from sqlmodel import col

    from models.clock import SystemClock
    from models.db import session_scope
    from models.outbox import OutboxMessage
    from outreach.dispatcher import Dispatcher
    from outreach.providers.telegram import TelegramProvider
    from outreach.ratelimit import ProviderLimits
    from settings import load_settings

    clock = SystemClock()
    provider = TelegramProvider(TOKEN, api_base=base, connections=CONCURRENCY)
    timed = _Timed(provider) if send_times is not None else None
    d = Dispatcher(engine, {"telegram": timed or provider}, clock, load_settings(), batch_size=1000, concurrency=CONCURRENCY,
                   max_inflight=2000, flush_max=500, limits={"telegram": ProviderLimits(clock, limit)},
                   idle_s=0.02)
    stop = asyncio.Event()
    t0 = time.perf_counter()
    task = asyncio.create_task(d.run(stop))

    # Watch the dispatcher's own count, not the table: a count(*) every few milliseconds
    # would take SQLite's lock from the dispatcher it measures.
    while d.stats["sent"] < n:
        await asyncio.sleep(0.02)
    stop.set()
    await task  # every outcome written
    elapsed = time.perf_counter() - t0
    with session_scope(engine) as s:
        unsent = int(s.execute(select(func.count()).where(col(OutboxMessage.status) != "sent")).scalar() or 0)
    assert unsent == 0, f"{unsent} rows not sent"
    await provider.close()
    if timed is not None and send_times is not None:
        send_times.extend(timed.times)
    return n / elapsed


def run() -> dict[str, Any]:
    from sqlmodel import SQLModel

    import models  # noqa: F401
    from models.db import make_engine
    from outreach.ratelimit import window_violations

    fake, base = _start_fake()
    tmp = tempfile.mkdtemp(prefix="nuanxin-bench-dispatch-")
    try:
        raw = asyncio.run(_raw(base, N))
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        SQLModel.metadata.create_all(engine)
        _fill(engine, N, "free")
        msgs = asyncio.run(_dispatch(engine, base, N, None))
        engine.dispose()
        engine = make_engine(f"sqlite:///{tmp}/limited.db")
        SQLModel.metadata.create_all(engine)
        m = int(LIMIT * 10)
        _fill(engine, m, "limited")
        assert fake.stdin is not None and fake.stdout is not None
        fake.stdin.write("start\n")
        fake.stdin.flush()
        send_times: list[float] = []
        asyncio.run(_dispatch(engine, base, m, LIMIT, send_times))
        fake.stdin.write("dump\n")
        fake.stdin.flush()
        arrivals = sorted(json.loads(fake.stdout.readline()))
        engine.dispose()
        # Delivered rate as the provider saw it: (m - 1) intervals between the first and the
        # last arrival at the fake. The limit is a 1 s sliding window, so the first window's
        # worth goes at once and this rate reads a little above R; `limited_window_violations`
        # counts the 1 s windows of arrivals that held more than R (the limit's own check).
        assert len(arrivals) == m, (len(arrivals), m)
        limited_rate = (m - 1) / (arrivals[-1] - arrivals[0]) if m > 1 else 0.0
        violations = window_violations(arrivals, LIMIT)
        send_times.sort()
        send_violations = window_violations(send_times, LIMIT)
    finally:
        fake.terminate()
        fake.wait(10)
    return {"msgs_per_s": round(msgs, 1), "raw_per_s": round(raw, 1),
            "ratio": round(msgs / raw, 3),
            "limit_per_s": LIMIT, "limited_rate_ratio": round(limited_rate / LIMIT, 3),
            "limited_window_violations": violations, "limited_busiest_window": _busiest(arrivals),
            "limited_send_window_violations": send_violations, "limited_send_busiest_window": _busiest(send_times),
            "messages": N,
            "limited_messages": m, "database": "sqlite", "concurrency": CONCURRENCY, "transport": "aiogram"}


if __name__ == "__main__":
    print(json.dumps(run()))
