"""Helpers for the outreach delivery tests (importable as `outreach_helpers`: this folder is on sys.path)."""

from __future__ import annotations

import hashlib
import itertools
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import select

from models.clock import FakeClock
from models.db import session_scope
from models.outbox import OutboxEvent, OutboxMessage
from models.people import Beneficiary, Contact
from outreach.outbox import enqueue
from tests.fakes.windows import window_violations

_n = itertools.count(1)


def add_person(engine: Engine, *, telegram: str | None = None, sms: str | None = None,
               verified: bool = True, **fields: Any) -> tuple[int, dict[str, int]]:
    """A beneficiary with a Telegram chat and/or a phone. Returns (beneficiary id, {channel: contact id})."""
    i = next(_n)
    with session_scope(engine) as s:
        b = Beneficiary(name=f"测试{i}", id_hash=hashlib.sha256(f"id{i}{id(engine)}".encode()).hexdigest(),
                        id_masked="4407**********0000", **fields)
        s.add(b)
        s.flush()
        contacts = {}
        for channel, address in (("telegram", telegram), ("sms", sms)):
            if address:
                c = Contact(beneficiary_id=b.id, channel=channel, address=address, verified=verified)
                s.add(c)
                s.flush()
                contacts[channel] = c.id
        return b.id, contacts


def queue(engine: Engine, clock: FakeClock, *, channel: str, address: str, body: str = "您好",
          key: str | None = None, beneficiary_id: int | None = None, **kw: Any) -> int:
    with session_scope(engine) as s:
        done = enqueue(s, key=key or f"test:{channel}:{address}:{next(_n)}", kind=kw.pop("kind", "test"),
                       channel=channel, address=address, body=body, now=clock.now(),
                       beneficiary_id=beneficiary_id, **kw)
        return done.message_id


def row(engine: Engine, outbox_id: int) -> OutboxMessage:
    with session_scope(engine) as s:
        return s.get(OutboxMessage, outbox_id)


def rows(engine: Engine) -> list[OutboxMessage]:
    with session_scope(engine) as s:
        return list(s.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all())


def events(engine: Engine, outbox_id: int) -> list[tuple[str | None, str, str]]:
    with session_scope(engine) as s:
        return [(e.from_status, e.to_status, e.reason) for e in s.exec(
            select(OutboxEvent).where(OutboxEvent.outbox_id == outbox_id).order_by(OutboxEvent.id)).all()]


def contact(engine: Engine, contact_id: int) -> Contact:
    with session_scope(engine) as s:
        return s.get(Contact, contact_id)


class _CountingExecutor(ThreadPoolExecutor):
    """The loop's default executor, counting the jobs handed to it whose result the loop has
    not yet been handed."""

    def __init__(self, loop: Any) -> None:
        super().__init__(max_workers=8, thread_name_prefix="virtual-time")
        self.unfinished = 0
        self._loop = loop

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.unfinished += 1  # submitted from the loop's thread
        future = super().submit(fn, *args, **kwargs)
        # Counted down on the loop, queued after asyncio's own hand-over of the result: the
        # callback is attached once `run_in_executor` has attached asyncio's (on the loop's next
        # turn), and the worker thread runs a future's callbacks in the order they were attached.
        # Until the count is down the hand-over is queued or done, and its waiter ready: time
        # cannot move on between the two (were the count down first, a worker thread paused
        # between its two callbacks would let it).
        self._loop.call_soon(future.add_done_callback,
                             lambda _: self._loop.call_soon_threadsafe(self._finished))
        return future

    def _finished(self) -> None:
        self.unfinished -= 1


class VirtualSleep:
    """asyncio's sleep on a FakeClock, as real time would order it: sleepers wake in the order
    of their wake-up times, and the clock moves on to the earliest one only when nothing else
    can run (the loop's ready queue is empty and no work handed to a thread is unfinished:
    a query takes a moment, not the next sleeper's wait). Many sleepers waiting at once share
    the time that passes, as they would in real time."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self._sleepers: list[tuple[datetime, int, Any]] = []
        self._order = itertools.count()
        self._ticking = False
        self._threads: _CountingExecutor | None = None

    async def __call__(self, seconds: float) -> None:
        import asyncio
        import heapq

        loop = asyncio.get_running_loop()
        if self._threads is None:
            self._threads = _CountingExecutor(loop)
            loop.set_default_executor(self._threads)
        woken = loop.create_future()
        heapq.heappush(self._sleepers, (self.clock.now() + timedelta(seconds=max(seconds, 0.0)),
                                        next(self._order), woken))
        if not self._ticking:
            self._ticking = True
            loop.call_soon(self._tick, loop)
        await woken

    def _tick(self, loop: Any) -> None:
        import heapq

        if loop._ready or (self._threads is not None and self._threads.unfinished):
            # something else can still run before time moves on
            loop.call_soon(self._tick, loop)
            return
        while self._sleepers:
            at, _, woken = heapq.heappop(self._sleepers)
            if woken.done():  # cancelled
                continue
            if self.clock.now() < at:
                self.clock.set(at)
            woken.set_result(None)
            break
        if self._sleepers:
            loop.call_soon(self._tick, loop)
        else:
            self._ticking = False


def fake_sleep(clock: FakeClock) -> VirtualSleep:
    return VirtualSleep(clock)


class ScaledClock:
    """Real time, running `scale` times faster (for fault tests whose retry_after and backoff
    are seconds): pair it with `scaled_sleep`."""

    def __init__(self, scale: float) -> None:
        import time
        from datetime import UTC

        self.scale = scale
        self.t0 = time.monotonic()
        self.start = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)

    def now(self) -> datetime:
        import time

        return self.start + timedelta(seconds=(time.monotonic() - self.t0) * self.scale)

    async def sleep(self, seconds: float) -> None:
        import asyncio

        await asyncio.sleep(max(0.0, seconds) / self.scale)


async def dispatch_until_sent(dispatcher: Any, provider: Any, count: int, idle: Callable[[], None],
                              rounds: int = 2000) -> None:
    """Run the dispatcher until the provider has `count` sends; `idle` moves time on when a round sent nothing."""
    for _ in range(rounds):
        if len(provider.sent) >= count:
            break
        if await dispatcher.run_once() == 0:
            idle()
    assert len(provider.sent) == count


def telegram_breaches(sent: list[Any], settings: Any) -> tuple[int, int]:
    """(one-second windows over Telegram's overall rate, over its per-chat rate) in what the provider got."""
    per_chat: dict[str, list[Any]] = defaultdict(list)
    for r in sent:
        per_chat[r.message.address].append(r.at)
    overall = window_violations([r.at for r in sent], settings.telegram_rate_per_s)
    return overall, sum(window_violations(ts, settings.telegram_per_chat_per_s) for ts in per_chat.values())
