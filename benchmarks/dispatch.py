"""Dispatch throughput: outbox → dispatcher → aiogram → fake Telegram on loopback.

Figures (one run, same fake server process for all three):
- raw_per_s: plain concurrent HTTP POSTs of sendMessage to the fake (aiohttp, no database);
- msgs_per_s: outbox rows (SQLite file, the embedded default) sent by one Dispatcher with no
  rate limit, from start until every row is 'sent';
- ratio = msgs_per_s / raw_per_s;
- limit_per_s, limited_rate_ratio: the same with a provider limit R, delivered rate / R
  (measured over the sends' own timestamps).
The fake runs in its own process so that it does not share the dispatcher's interpreter.
"""

from __future__ import annotations

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
CONCURRENCY = 256

_SERVE = """
import asyncio, sys
from outreach.providers.fake_telegram import FakeTelegram
async def main():
    tg = FakeTelegram(sys.argv[1])
    tg.sent = _Count()
    await tg.start()
    print(tg.port, flush=True)
    await asyncio.Event().wait()
class _Count(list):
    # Keep memory flat in long runs: count, do not keep every message.
    def append(self, item): pass
asyncio.run(main())
"""


def _start_fake() -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", _SERVE, TOKEN], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
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


async def _dispatch(engine: Any, base: str, n: int, limit: float | None) -> tuple[float, list[float]]:
    from sqlalchemy import func, select

    from models.clock import SystemClock
    from models.db import session_scope
    from models.outbox import OutboxMessage
    from outreach.dispatcher import Dispatcher
    from outreach.providers.telegram import TelegramProvider
    from outreach.ratelimit import ProviderLimits
    from settings import load_settings

    clock = SystemClock()
    provider = TelegramProvider(TOKEN, api_base=base, connections=CONCURRENCY)
    d = Dispatcher(engine, {"telegram": provider}, clock, load_settings(), batch_size=1000, concurrency=CONCURRENCY,
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
        unsent = int(s.execute(select(func.count()).where(OutboxMessage.status != "sent")).scalar() or 0)
    assert unsent == 0, f"{unsent} rows not sent"
    await provider.close()
    with session_scope(engine) as s:
        times = [t.timestamp() for t in s.execute(select(OutboxMessage.sent_at)).scalars()]
    return n / elapsed, sorted(times)


def run() -> dict[str, Any]:
    from sqlmodel import SQLModel

    import models  # noqa: F401
    from models.db import make_engine

    fake, base = _start_fake()
    tmp = tempfile.mkdtemp(prefix="nuanxin-bench-dispatch-")
    try:
        raw = asyncio.run(_raw(base, N))
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        SQLModel.metadata.create_all(engine)
        _fill(engine, N, "free")
        msgs, _ = asyncio.run(_dispatch(engine, base, N, None))
        engine.dispose()
        engine = make_engine(f"sqlite:///{tmp}/limited.db")
        SQLModel.metadata.create_all(engine)
        m = int(LIMIT * 10)
        _fill(engine, m, "limited")
        _, times = asyncio.run(_dispatch(engine, base, m, LIMIT))
        engine.dispose()
        # Delivered rate over the sends themselves: (m - 1) intervals between first and last send.
        limited_rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    finally:
        fake.terminate()
        fake.wait(10)
    return {"msgs_per_s": round(msgs, 1), "raw_per_s": round(raw, 1), "ratio": round(msgs / raw, 3),
            "limit_per_s": LIMIT, "limited_rate_ratio": round(limited_rate / LIMIT, 3), "messages": N,
            "limited_messages": m, "database": "sqlite", "concurrency": CONCURRENCY, "transport": "aiogram"}


if __name__ == "__main__":
    print(json.dumps(run()))
