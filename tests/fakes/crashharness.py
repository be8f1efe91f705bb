"""Kill dispatchers at random and count what was lost or sent twice (the crash test and benchmark).

The harness queues N Telegram messages in a PostgreSQL database, serves the fake Telegram
in a background thread, and runs two dispatcher *processes* (`python -m tests.fakes.crashharness
worker ...`). While they send, it SIGKILLs one of them at random moments, notes how many rows
that process had in flight (claimed, outcome not written: the only ones that may go out
twice), and starts a replacement. When every row is sent it compares the fake's deliveries
with the outbox: `lost` (messages never delivered, or rows not sent) must be 0, and
`duplicates` must not exceed the rows in flight at the kills.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "777000:CRASH"


@dataclass
class CrashResult:
    messages: int
    kills: int
    lost: int
    duplicates: int
    in_flight_max: int
    in_flight_total: int
    seconds: float
    unsent_rows: int
    in_flight_at_kills: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "in_flight_at_kills"}


def _worker_cmd(url: str, api: str, owner: str, rate: float, lease_s: float) -> list[str]:
    return [sys.executable, "-m", "tests.fakes.crashharness", "worker", "--url", url, "--api", api,
            "--owner", owner, "--rate", str(rate), "--lease", str(lease_s)]


def _spawn(url: str, api: str, owner: str, rate: float, lease_s: float) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(_worker_cmd(url, api, owner, rate, lease_s), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run_crash(url: str, *, messages: int = 10_000, kills: int = 20, processes: int = 2, rate_per_process: float = 300.0,
              lease_s: float = 5.0, seed: int = 1, timeout_s: float = 240.0) -> CrashResult:
    """`url`: an empty PostgreSQL database. Returns the figures; raises if it does not finish in time."""
    from sqlalchemy import func, select, text
    from sqlmodel import SQLModel, col

    import models  # noqa: F401
    from models.clock import SystemClock
    from models.db import make_engine, session_scope
    from models.outbox import OutboxMessage
    from outreach.outbox import enqueue_many
    from tests.fakes.fake_telegram import FakeTelegram

    rng = random.Random(seed)
    engine = make_engine(url)
    SQLModel.metadata.create_all(engine)
    now = SystemClock().now()
    with session_scope(engine) as s:
        enqueue_many(s, ({"idempotency_key": f"crash:{i}", "kind": "crash", "channel": "telegram",
                          "address": str(500000 + i), "body": f"crash {i}"} for i in range(messages)), now=now)
    fake = FakeTelegram(TOKEN).start_in_thread()
    started = time.monotonic()
    owners = iter(f"crash-{n}" for n in range(10_000))
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    in_flight: list[int] = []

    def unsent() -> int:
        with session_scope(engine) as s:
            return int(s.execute(select(func.count()).where(col(OutboxMessage.status) != "sent")).scalar() or 0)

    try:
        for _ in range(processes):
            owner = next(owners)
            procs.append((owner, _spawn(url, fake.base_url, owner, rate_per_process, lease_s)))
        # Let the first sends start, then kill at random moments while there is work.
        deadline = started + timeout_s
        while len(in_flight) < kills and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.2, 0.8))
            if unsent() == 0:
                break
            # A random moment, and a process that is at work (holds leased rows), not one still importing.
            with engine.connect() as conn:
                busy = {r[0] for r in conn.execute(text(
                    "SELECT DISTINCT lease_owner FROM outbox_message WHERE status = 'sending'"))}
            candidates = [j for j, (o, p) in enumerate(procs) if o in busy and p.poll() is None]
            if not candidates:
                continue
            i = rng.choice(candidates)
            owner, proc = procs[i]
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            with engine.connect() as conn:
                n = conn.execute(text("SELECT count(*) FROM outbox_message WHERE status = 'sending' AND lease_owner = :o"),
                                 {"o": owner}).scalar()
            in_flight.append(int(n or 0))
            new_owner = next(owners)
            procs[i] = (new_owner, _spawn(url, fake.base_url, new_owner, rate_per_process, lease_s))
        while unsent() and time.monotonic() < deadline:
            for j, (owner, proc) in enumerate(procs):
                if proc.poll() is not None:  # a worker that died on its own is restarted too
                    err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
                    print(f"worker {owner} exited {proc.returncode}: {err}", file=sys.stderr)
                    new_owner = next(owners)
                    procs[j] = (new_owner, _spawn(url, fake.base_url, new_owner, rate_per_process, lease_s))
            time.sleep(0.2)
        seconds = time.monotonic() - started
    finally:
        for _, proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        fake.stop_thread()
    remaining = unsent()
    engine.dispose()
    delivered = fake.deliveries()
    expected = {(str(500000 + i), f"crash {i}") for i in range(messages)}
    lost = len(expected - set(delivered)) + remaining
    duplicates = sum(c - 1 for c in delivered.values() if c > 1)
    if remaining and seconds >= timeout_s:
        raise TimeoutError(f"crash run did not finish in {timeout_s}s: {remaining} rows unsent")
    return CrashResult(messages=messages, kills=len(in_flight), lost=lost, duplicates=duplicates,
                       in_flight_max=max(in_flight, default=0), in_flight_total=sum(in_flight),
                       seconds=round(seconds, 1), unsent_rows=remaining, in_flight_at_kills=in_flight)


# --- the worker process ----------------------------------------------------------------------
async def _work(url: str, api: str, owner: str, rate: float, lease_s: float) -> None:
    from models.clock import SystemClock
    from models.db import make_engine
    from outreach.dispatcher import Dispatcher
    from outreach.limits import LocalLimiter, ProviderLimit
    from outreach.providers.telegram import TelegramProvider
    from settings import load_settings

    clock = SystemClock()
    engine = make_engine(url, pool_size=4)
    provider = TelegramProvider(TOKEN, api_base=api, timeout=30.0)
    settings = load_settings()
    d = Dispatcher(engine, {"telegram": provider}, clock, settings, owner=owner, lease_s=lease_s,
                   batch_size=200, concurrency=100, limits={"telegram": LocalLimiter(ProviderLimit.one_sender("telegram", rate), clock)},
                   idle_s=0.2, retry_base_s=1.0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await d.run(stop)
    finally:
        await provider.close()
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.crashharness")
    sub = parser.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker", help="run one dispatcher process against the fake Telegram")
    w.add_argument("--url", required=True)
    w.add_argument("--api", required=True)
    w.add_argument("--owner", required=True)
    w.add_argument("--rate", type=float, default=300.0)
    w.add_argument("--lease", type=float, default=5.0)
    args = parser.parse_args(argv)
    asyncio.run(_work(args.url, args.api, args.owner, args.rate, args.lease))


if __name__ == "__main__":
    main()
