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
import select
import signal
import subprocess
import sys
import tempfile
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
            "--owner", owner, "--rate", str(rate), "--lease", str(lease_s), "--standby"]


class _Workers:
    """Dispatcher processes, started on standby: each imports the application, says so, and sends
    only when told. A replacement for a killed process is one that has already imported, so a
    kill costs the time a restart takes, not an import (minutes on a busy machine)."""

    def __init__(self, url: str, api: str, rate: float, lease_s: float, logs: Path, spares: int) -> None:
        self.url, self.api, self.rate, self.lease_s, self.logs = url, api, rate, lease_s, logs
        self._owners = iter(f"crash-{n}" for n in range(10_000))
        self.env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self._spares = [self._spawn() for _ in range(spares)]  # as many as run: both may die at once

    def _spawn(self) -> tuple[str, subprocess.Popen[bytes]]:
        owner = next(self._owners)
        # Its log to a file, not a pipe nobody reads while it runs (a full pipe would stop it).
        with open(self.logs / f"{owner}.log", "wb") as log:
            proc = subprocess.Popen(_worker_cmd(self.url, self.api, owner, self.rate, self.lease_s), cwd=ROOT,
                                    env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        return owner, proc

    def start_ready(self) -> tuple[str, subprocess.Popen[bytes]] | None:
        """The next spare told to send, if it has imported (None: not yet; never waited for, so
        the kills go on meanwhile); a new spare begins to import."""
        owner, proc = self._spares[0]
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.poll() is None, f"worker {owner} did not start: {self.log(owner)}"
        if not select.select([proc.stdout], [], [], 0)[0]:
            return None
        assert proc.stdout.readline() == b"ready\n", f"worker {owner} did not start: {self.log(owner)}"
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        self._spares.pop(0)
        self._spares.append(self._spawn())
        return owner, proc

    def log(self, owner: str) -> str:
        return (self.logs / f"{owner}.log").read_bytes().decode(errors="replace")[-2000:]

    def stop_spares(self) -> None:
        for _, proc in self._spares:
            proc.kill()
            proc.wait()


def run_crash(url: str, *, messages: int = 10_000, kills: int = 20, processes: int = 2, rate_per_process: float = 300.0,
              lease_s: float = 5.0, seed: int = 1, timeout_s: float = 240.0, logs: Path | None = None) -> CrashResult:
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
    workers = _Workers(url, fake.base_url, rate_per_process, lease_s, logs or Path(tempfile.mkdtemp(prefix="crash-")),
                       spares=processes)
    procs: list[tuple[str, subprocess.Popen[bytes]] | None] = [None] * processes  # None: a spare to come
    in_flight: list[int] = []

    def unsent() -> int:
        with session_scope(engine) as s:
            return int(s.execute(select(func.count()).where(col(OutboxMessage.status) != "sent")).scalar() or 0)

    # The random moments of the kills, as counts of rows sent (not seconds: on a slow machine
    # everything is slower, and a kill due at a wall-clock moment could find the work done or
    # every process still importing). All fall within the first 60% of the work, so however
    # the processes' starts and sends interleave, each kill finds work still to do.
    kill_at = sorted(rng.randint(messages // 20, messages * 3 // 5) for _ in range(kills))

    def fill() -> None:
        """Each place of a killed process (or one that died on its own) to the next ready spare."""
        for j, place in enumerate(procs):
            if place is not None and place[1].poll() is not None:
                print(f"worker {place[0]} exited {place[1].returncode}: {workers.log(place[0])}", file=sys.stderr)
                procs[j] = place = None
            if place is None:
                procs[j] = workers.start_ready()

    try:
        deadline = started + timeout_s
        while len(in_flight) < kills and time.monotonic() < deadline:
            time.sleep(0.05)
            fill()
            left = unsent()
            if left == 0:
                break
            if messages - left < kill_at[len(in_flight)]:
                continue
            # A process that is at work (holds leased rows), not one still importing.
            with engine.connect() as conn:
                busy = {r[0] for r in conn.execute(text(
                    "SELECT DISTINCT lease_owner FROM outbox_message WHERE status = 'sending'"))}
            candidates = [j for j, place in enumerate(procs)
                          if place is not None and place[0] in busy and place[1].poll() is None]
            if not candidates:
                continue
            i = rng.choice(candidates)
            owner, proc = procs[i]  # type: ignore[misc]
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            with engine.connect() as conn:
                n = conn.execute(text("SELECT count(*) FROM outbox_message WHERE status = 'sending' AND lease_owner = :o"),
                                 {"o": owner}).scalar()
            in_flight.append(int(n or 0))
            procs[i] = None
        while unsent() and time.monotonic() < deadline:
            fill()
            time.sleep(0.2)
        seconds = time.monotonic() - started
    finally:
        workers.stop_spares()
        running = [place[1] for place in procs if place is not None]
        for proc in running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in running:
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
    w.add_argument("--standby", action="store_true", help="import, print 'ready', send once a line comes on stdin")
    args = parser.parse_args(argv)
    if args.standby:
        import outreach.dispatcher  # noqa: F401  (the application's imports, done before the go)
        import outreach.providers.telegram  # noqa: F401

        print("ready", flush=True)
        sys.stdin.readline()
    asyncio.run(_work(args.url, args.api, args.owner, args.rate, args.lease))


if __name__ == "__main__":
    main()
