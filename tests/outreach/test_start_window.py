"""The moving window under the slots: each send is counted as it starts, so a process that wakes
late for its slots catches up in a short burst that never puts more than the provider's figure in
any second, and loses no slot. Time is virtual: time_machine moves `time.time()` (the `limits`
library's clock, which keeps the window) and the limiter's and dispatcher's clock together."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
import time_machine
from outreach_helpers import VirtualSleep, dispatch_until_sent, queue, telegram_breaches

from outreach.dispatcher import Dispatcher
from outreach.limits import Lane, LocalLimiter, ProviderLimit, RedisLimiter, cap_items, limits_from_settings
from tests.fakes.scripted import ScriptedProvider
from tests.fakes.windows import busiest_window, window_violations


class TravelClock:
    """The system clock under time_machine, moved by the test (and by `VirtualSleep`)."""

    def __init__(self, traveller: Any) -> None:
        self.traveller = traveller

    def now(self) -> datetime:
        return datetime.now(UTC)

    def set(self, when: datetime) -> None:
        self.traveller.move_to(when)

    def advance(self, seconds: float) -> None:
        self.traveller.shift(seconds)


@pytest.fixture
def travel() -> Iterator[TravelClock]:
    with time_machine.travel(datetime(2026, 3, 2, 2, 0, tzinfo=UTC), tick=False) as traveller:
        yield TravelClock(traveller)


@pytest.fixture(params=["in-process", "redis"])
async def make_capped(request: Any, travel: TravelClock) -> Any:
    """Limiters that count starts in their moving window: in this process, or in a real Redis."""
    made = []

    def make(limit: ProviderLimit) -> Any:
        if request.param == "in-process":
            return LocalLimiter(limit, travel, cap_starts=True)
        limiter = RedisLimiter(limit, travel, aioredis.Redis.from_url(request.getfixturevalue("redis_url")),
                               owns_client=True, cap_starts=True)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.close()


def test_the_window_holds_what_steady_pacing_puts_in_a_second_and_no_more() -> None:
    """At 200/s the window admits 198 a second and at 300/s 297: above the slots' pace (196, 294),
    so a late wake can catch up, and below the figure, for the network's jitter; at 30/s 30 (the
    slots alone may put 30 in a second). A number at one segment a second has no window (a second
    between its sends)."""
    assert cap_items(ProviderLimit.one_sender("telegram", 30))["telegram"].amount == 30
    assert cap_items(ProviderLimit.one_sender("telegram", 200))["telegram"].amount == 198
    assert cap_items(ProviderLimit.one_sender("telegram", 300))["telegram"].amount == 297
    assert cap_items(ProviderLimit.one_sender("sms", 1.0)) == {}


async def test_a_late_wake_catches_up_without_a_second_over_the_rate(make_capped: Any, travel: TravelClock) -> None:
    """At 30/s: a second of slots taken and started on time; then the bulk horizon's worth taken
    and the process wakes 0.2 s late; then two more seconds on time. The late slots start as soon
    as the window has room: no second holds more than 30 starts (started at their slots or at the
    late wake, the same sends would put more in the second from the wake on); every slot taken
    starts, and the last no later after its slot than the wake was late."""
    limiter = make_capped(ProviderLimit.one_sender("telegram", 30))

    async def sleep(seconds: float) -> None:
        travel.advance(seconds)

    slots: list[float] = []
    starts: list[float] = []

    async def take() -> Any:
        while not (grant := await limiter.acquire(str(len(slots)))).ok:
            await sleep(grant.wait_s)
        slots.append(grant.at)
        return grant

    async def start(grant: Any) -> None:
        if grant.at > time.time():
            await sleep(grant.at - time.time())
        await limiter.start(grant.sender, sleep=sleep)
        starts.append(time.time())

    began = time.time()
    while time.time() - began < 1.0:
        await start(await take())
    held = []
    while (grant := await limiter.acquire(str(len(slots)), 1.0, Lane.BULK)).ok:
        slots.append(grant.at)
        held.append(grant)
    assert len(held) >= 5  # the horizon's worth
    await sleep(0.2)  # the late wake
    woke = time.time()
    for grant in held:
        await start(grant)
    while time.time() - began < 3.2:
        await start(await take())

    # With no window under the slots each would start at its slot, or at the late wake.
    late = {grant.at for grant in held}
    unwindowed = [max(at, woke) if at in late else at for at in slots]
    assert busiest_window(unwindowed) > 30  # so the rule below can fail
    assert window_violations(starts, 30) == 0
    assert len(starts) == len(slots)
    assert starts[-1] - slots[-1] <= 0.2 + 1e-6


async def test_a_dispatcher_woken_late_loses_no_slot_and_keeps_every_second_within_the_rate(
        sqlite_engine: Any, travel: TravelClock, settings: Any) -> None:
    """300 messages to 100 chats at 30/s, and one sleep in seven of the dispatcher wakes 0.15 s
    late (a busy event loop): every slot taken is sent, none let go, yet no second holds more than
    30 sends overall or more than one per chat; all 300 go within the time the rate needs (10.2 s)
    plus the catch-up."""
    for i in range(300):
        queue(sqlite_engine, travel, channel="telegram", address=str(7000 + i % 100), body=f"m{i}")
    tg = ScriptedProvider("telegram", "tg", travel)
    class CountingLimiter(LocalLimiter):
        granted = 0

        async def acquire(self, key: str, cost: float = 1.0, lane: Lane = Lane.BULK) -> Any:
            grant = await super().acquire(key, cost, lane)
            self.granted += grant.ok
            return grant

    limiter = CountingLimiter(limits_from_settings(settings)["telegram"], travel, cap_starts=True)
    virtual = VirtualSleep(travel)  # type: ignore[arg-type]
    sleeps = 0

    async def late_sleep(seconds: float) -> None:
        nonlocal sleeps
        sleeps += 1
        await virtual(seconds + (0.15 if sleeps % 7 == 0 else 0.0))

    d = Dispatcher(sqlite_engine, {"telegram": tg}, travel, settings, sleep=late_sleep, limits={"telegram": limiter})
    start = time.time()
    await dispatch_until_sent(d, tg, 300, lambda: travel.advance(0.1))
    assert d.stats["late_slots"] > 0  # the late wakes happened, and their slots were sent
    times = [r.at for r in tg.sent]
    assert telegram_breaches(tg.sent, settings) == (0, 0)
    assert limiter.granted == 300  # every slot taken was used: none let go for being late
    assert max(t.timestamp() for t in times) - start <= 300 / (settings.telegram_rate_per_s * 0.98) + 3.0


async def test_a_429_at_one_dispatcher_pauses_the_other_sharing_the_limit(sqlite_engine: Any, clock: Any,
                                                                        settings: Any, redis_url: str) -> None:
    """Two dispatchers share Telegram's limit through Redis. The first gets a 429 (retry after 5 s)
    for its row; the second, with a row of its own already due, sends nothing until those 5 s have
    passed, and then sends it."""
    from datetime import timedelta

    from outreach.providers.base import Throttled

    first_row = queue(sqlite_engine, clock, channel="telegram", address="8101")
    limit = limits_from_settings(settings)["telegram"]
    shared = [RedisLimiter(limit, clock, aioredis.Redis.from_url(redis_url), owns_client=True) for _ in range(2)]
    providers = [ScriptedProvider("telegram", f"tg{n}", clock) for n in range(2)]
    providers[0].script["8101"] = [Throttled(5)]
    virtual = VirtualSleep(clock)
    one, other = (Dispatcher(sqlite_engine, {"telegram": p}, clock, settings, sleep=virtual, limits={"telegram": lim})
                  for p, lim in zip(providers, shared, strict=True))
    try:
        throttled_at = clock.now()
        assert await one.run_once() == 1 and not providers[0].sent
        second_row = queue(sqlite_engine, clock, channel="telegram", address="8102")
        assert await other.run_once() == 1  # claimed at once, sent only after the pause
        assert [r.message.outbox_id for r in providers[1].sent] == [second_row]
        assert providers[1].sent[0].at >= throttled_at + timedelta(seconds=5)
        assert shared[1].paused_for() == 0 and first_row not in [r.message.outbox_id for r in providers[1].sent]
    finally:
        for limiter in shared:
            await limiter.close()
