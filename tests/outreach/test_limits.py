"""Provider limits on a fake clock, in this process and in a real Redis: never more than allowed
in any window, close to it, replies ahead of broadcasts, a 429 pausing every process."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from outreach_helpers import dispatch_until_sent, fake_sleep, queue, telegram_breaches

from models.clock import FakeClock
from outreach.dispatcher import Dispatcher
from outreach.limits import (
    BULK_HORIZON_S,
    HEADROOM,
    Blocked,
    Lane,
    LocalLimiter,
    ProviderLimit,
    RedisLimiter,
    Sender,
    build_limiters,
    limits_from_settings,
    wait_for_slot,
)
from tests.fakes.scripted import ScriptedProvider
from tests.fakes.waiting import PROCESS_HANG_S
from tests.fakes.windows import window_violations

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["in-process", "redis"])
async def make_limiter(request, clock):
    """Builds limiters of one kind on the test's clock: in this process, or in a real Redis (each
    call a new client, as each process would have; all of them share the Redis database)."""
    made = []

    def make(limit: ProviderLimit):
        if request.param == "in-process":
            return LocalLimiter(limit, clock)
        url = request.getfixturevalue("redis_url")
        limiter = RedisLimiter(limit, clock, aioredis.Redis.from_url(url), owns_client=True)
        made.append(limiter)
        return limiter

    make.kind = request.param
    yield make
    for limiter in made:
        await limiter.close()


async def take_all(limiter, clock, seconds: float, keys, cost: float = 1.0, lane=Lane.BULK):
    """Ask for slots as fast as allowed for `seconds` (keys round-robin), moving the clock as each
    answer says; returns the slot times granted (the clock's seconds)."""
    start = clock.now().timestamp()
    granted = []
    keys = list(keys)
    i = 0
    while clock.now().timestamp() - start < seconds:
        grant = await limiter.acquire(keys[i % len(keys)], cost, lane)
        if grant.ok:
            granted.append(clock.now().timestamp() + grant.wait_s)
            i += 1
        else:
            clock.advance(grant.wait_s)
    return granted


async def test_telegram_slots_never_exceed_the_rate_in_any_second_and_use_it(make_limiter, clock):
    """A full queue for 10 s at 30/s: never more than 30 in any second, never more than 5 in any
    100 ms (slots are spread over the second, not granted in one burst at its start), and at least
    97% of the rate used."""
    limiter = make_limiter(ProviderLimit.one_sender("telegram", 30))
    granted = await take_all(limiter, clock, 10, (str(n) for n in range(1000)))
    assert window_violations(granted, 30) == 0
    assert window_violations(granted, 50, window=0.1) == 0
    assert len(granted) >= 0.97 * 30 * 10


def test_window_checker_catches_a_burst(clock: FakeClock):
    """The checker itself fails a series with 31 sends inside one second (so the rule can fail)."""
    times = [clock.now().timestamp() + i * 0.03 for i in range(31)]
    assert window_violations(times, 30) > 0
    assert window_violations(times[:30], 30) == 0


async def test_an_sms_keeps_its_sender_busy_for_its_segments(make_limiter, clock):
    """At 1 segment/s a 3-segment SMS holds its number for 3 s (at the limit's headroom): the next
    one waits that long, whatever it costs."""
    limiter = make_limiter(ProviderLimit.one_sender("sms", 1.0))
    first = await limiter.acquire("+8613800000001", 3)
    assert first.ok and first.wait_s == 0
    second = await limiter.acquire("+8613800000002", 1)
    assert not second.ok and second.blocked is Blocked.RATE
    clock.advance(second.wait_s)
    slot = await limiter.acquire("+8613800000002", 1)
    assert slot.ok
    assert 3.0 <= second.wait_s + slot.wait_s <= 3.0 / 0.98 + 1e-6


async def test_a_chat_gets_one_message_a_second_while_others_go_on(make_limiter, clock):
    """The second message to a chat is refused for the chat's own limit (about a second), while a
    message to another chat goes at once."""
    limiter = make_limiter(ProviderLimit.one_sender("telegram", 30, per_key_per_s=1))
    assert (await limiter.acquire("42")).ok
    again = await limiter.acquire("42")
    assert not again.ok and again.blocked is Blocked.KEY and 1.0 <= again.wait_s <= 1.03
    assert (await limiter.acquire("43")).ok
    clock.advance(again.wait_s)
    assert (await limiter.acquire("42")).ok


async def test_a_pause_after_a_429_holds_every_limiter_that_shares_it(make_limiter, clock):
    """A pause (retry_after) refuses every send until it has passed; with Redis a pause set by one
    process refuses the others too, which then know of it (`paused_for`)."""
    one = make_limiter(ProviderLimit.one_sender("telegram", 30, per_key_per_s=1))
    other = make_limiter(ProviderLimit.one_sender("telegram", 30, per_key_per_s=1)) if make_limiter.kind == "redis" else one
    await one.pause(3)
    assert one.paused_for() == pytest.approx(3)
    refused = await other.acquire("1")
    assert not refused.ok and refused.blocked is Blocked.PAUSE and refused.wait_s == pytest.approx(3)
    assert other.paused_for() == pytest.approx(3)
    await other.pause(1)  # a shorter pause never shortens a longer one
    clock.advance(2.9)
    assert not (await one.acquire("1")).ok
    clock.advance(0.1)
    assert (await other.acquire("1")).ok


async def test_a_reply_goes_ahead_of_a_broadcast_that_fills_the_rate(make_limiter, clock):
    """A broadcast asks for slots as fast as allowed: it never holds more than the bulk horizon of
    the future, so a reply asked for meanwhile gets a slot within that horizon (plus one slot),
    while the broadcast behind it waits; the rate still holds for both together."""
    limiter = make_limiter(ProviderLimit.one_sender("telegram", 30, per_key_per_s=1))
    bulk = await take_all(limiter, clock, 2, (str(n) for n in range(100)))
    asked = clock.now().timestamp()
    reply = await limiter.acquire("reply-chat", lane=Lane.REPLY)
    assert reply.ok and reply.wait_s <= BULK_HORIZON_S + 1 / (30 * 0.98) + 1e-6
    after = await take_all(limiter, clock, 1, (str(n) for n in range(100, 200)))
    assert min(after) > asked + reply.wait_s  # the broadcast's next slot is after the reply's
    assert window_violations([*bulk, asked + reply.wait_s, *after], 30) == 0


async def test_each_sms_sender_keeps_its_own_rate_and_a_recipient_keeps_their_sender(make_limiter, clock):
    """Two From numbers at 1 segment/s and a Messaging Service at 3/s: every recipient always gets
    the same sender; the senders share the traffic in proportion to their rates; none of them goes
    over its own rate in any second."""
    limit = ProviderLimit("sms", (Sender("+8613900000001", 1), Sender("+8613900000002", 1), Sender("MG" + "a" * 32, 3)))
    recipients = [f"+86138{n:08d}" for n in range(2000)]
    chosen = {r: limit.sender_for(r).id for r in recipients}
    assert all(limit.sender_for(r).id == chosen[r] for r in recipients)  # sticky
    share = Counter(chosen.values())
    assert 0.52 <= share["MG" + "a" * 32] / len(recipients) <= 0.68  # 3 of 5
    limiter = make_limiter(limit)
    by_sender = defaultdict(list)
    waiting = defaultdict(list)  # each sender's recipients, as a dispatcher with many senders would hold them
    for recipient in recipients:
        waiting[chosen[recipient]].append(recipient)
    start = clock.now().timestamp()
    while clock.now().timestamp() - start < 60:
        waits = []
        for queue_of_sender in waiting.values():
            recipient = queue_of_sender[0]
            grant = await limiter.acquire(recipient, 1)
            if grant.ok:
                assert grant.sender == chosen[recipient]
                by_sender[grant.sender].append(clock.now().timestamp() + grant.wait_s)
                queue_of_sender.pop(0)
            waits.append(grant.wait_s)
        clock.advance(max(min(waits), 1e-6))
    for sender in limit.senders:
        assert window_violations(by_sender[sender.id], sender.per_s) == 0
    assert sum(map(len, by_sender.values())) >= 0.9 * 5 * 60


def test_limits_from_settings_name_every_sender_with_its_rate(settings):
    """NUANXIN_TWILIO_SENDERS lists senders with their own rates; without it the one sender is the
    Messaging Service or the From number at NUANXIN_TWILIO_SEGMENTS_PER_S."""
    several = settings.model_copy(update={"twilio_senders": "+8613900000001=1, MG123=10, +8613900000002",
                                          "twilio_segments_per_s": 2.0})
    assert limits_from_settings(several)["sms"].senders == (
        Sender("+8613900000001", 1.0), Sender("MG123", 10.0), Sender("+8613900000002", 2.0))
    one = settings.model_copy(update={"twilio_from_number": "+8613900000003", "telegram_rate_per_s": 100.0})
    assert limits_from_settings(one)["sms"].senders == (Sender("+8613900000003", 1.0),)
    assert limits_from_settings(one)["telegram"] == ProviderLimit.one_sender("telegram", 100.0, 1.0)


async def test_limiters_are_kept_in_redis_when_redis_url_is_set(settings, clock, redis_url):
    """Without REDIS_URL each process keeps its own limits; with it the limits live in Redis."""
    local = build_limiters(settings, clock)
    assert all(isinstance(limiter, LocalLimiter) for limiter in local.values())
    shared = build_limiters(settings.model_copy(update={"redis_url": redis_url}), clock)
    try:
        assert all(isinstance(limiter, RedisLimiter) for limiter in shared.values())
        assert (await shared["telegram"].acquire("7")).ok
        assert (await shared["telegram"].acquire("7")).blocked is Blocked.KEY
    finally:
        for limiter in shared.values():
            await limiter.close()


async def test_a_redis_limiter_says_whether_its_store_answers(clock, redis_url):
    """`ready()` is true while Redis answers and false, not an error, once it cannot be reached."""
    from tests.fakes.loopback import free_port

    up = RedisLimiter(ProviderLimit.one_sender("telegram", 30), clock, aioredis.Redis.from_url(redis_url), owns_client=True)
    down = RedisLimiter(ProviderLimit.one_sender("telegram", 30), clock,
                        aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1),
                        owns_client=True)
    try:
        assert await up.ready() is True
        assert await down.ready() is False
        assert await LocalLimiter(ProviderLimit("sms"), clock).ready() is True
    finally:
        await up.close()
        await down.close()


_PROCESS = """
import asyncio, json, sys, time
from models.clock import SystemClock
from outreach.limits import ProviderLimit, RedisLimiter
import redis.asyncio as aioredis

async def main(url, rate):
    print("ready", flush=True)  # imported: the test sends both processes the same moment to begin
    start, until = map(float, sys.stdin.readline().split())
    while time.time() < start:
        await asyncio.sleep(0.001)
    limiter = RedisLimiter(ProviderLimit.one_sender("telegram", rate), SystemClock(), aioredis.Redis.from_url(url))
    turn, slots = asyncio.Lock(), []

    async def sender():  # as the dispatcher's senders do: one asks at a time, each waits for its slot alone
        while time.time() < until:
            async with turn:
                while not (grant := await limiter.acquire(str(len(slots)))).ok:
                    await asyncio.sleep(grant.wait_s)
                slots.append((grant.at, grant.at - grant.wait_s))  # the slot, and the limiter's now when granted
            await asyncio.sleep(grant.at - time.time())

    await asyncio.gather(*(sender() for _ in range(16)))
    print(json.dumps(slots))

asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""


@pytest.mark.slow
def test_two_processes_under_one_shared_limit_never_exceed_it_in_any_second(redis_url):
    """Two processes ask the same Redis for slots as fast as they can for 4 s at 200/s: the slots
    granted to both together never hold more than 200 in any one-second window, are one pace
    apart or more, and each is the first free when it was granted (no slot left idle while a
    process asks). How many slots a second the processes manage to ask for depends on the
    machine's speed, not on the limiter: the benchmark's `workers` part measures that."""
    import time

    rate, seconds = 200.0, 4.0
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-c", _PROCESS, redis_url, str(rate)], cwd=REPO, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    # Both begin at one moment once both have imported, however long that took.
    assert [p.stdout.readline() for p in procs if p.stdout] == ["ready\n", "ready\n"]
    start = time.time() + 0.5
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(f"{start} {start + seconds}\n")
        p.stdin.flush()
    outs = [p.communicate(timeout=PROCESS_HANG_S) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    slots = [json.loads(out) for out, _ in outs]
    granted = sorted((at, now) for s in slots for at, now in s)
    assert all(len(s) >= 0.1 * len(granted) for s in slots)  # both really took part
    both = [at for at, _ in granted]
    assert window_violations(both, rate) == 0
    pace = 1 / (rate * HEADROOM)
    after = list(zip(granted, granted[1:], strict=False))
    assert all(later - earlier >= pace - 1e-5 for (earlier, _), (later, _) in after)
    # Shared: the next slot is the other process's last one plus the pace, or now if that has passed.
    idle = [(earlier, later, now) for (earlier, _), (later, now) in after if later > max(now, earlier + pace) + 1e-5]
    assert idle == [], idle[:5]


async def test_wait_for_slot_sleeps_until_the_reply_may_go(clock):
    """A reply asked for right after a message to the same chat is sent a second later, not refused."""
    limiter = LocalLimiter(ProviderLimit.one_sender("telegram", 30, per_key_per_s=1), clock)
    assert (await limiter.acquire("42")).ok
    slept = []

    async def sleep(seconds):
        slept.append(seconds)
        clock.advance(seconds)

    grant = await wait_for_slot(limiter, "42", sleep=sleep)
    assert grant.ok and 1.0 <= sum(slept) <= 1.03


async def test_a_reply_waits_its_turn_behind_a_running_broadcast_by_at_most_the_horizon(sqlite_engine, clock, settings):
    """While the dispatcher sends a 300-message broadcast at 30/s, replies asked for now and then
    get their slot within the bulk horizon (plus one slot): they go ahead of the broadcast's
    queue; together they stay within 30 in any second, and each chat within 1 a second."""
    for i in range(300):
        queue(sqlite_engine, clock, channel="telegram", address=str(5000 + i), body=f"b{i}")
    tg = ScriptedProvider("telegram", "tg", clock)
    limiter = LocalLimiter(limits_from_settings(settings)["telegram"], clock)
    sleep = fake_sleep(clock)
    d = Dispatcher(sqlite_engine, {"telegram": tg}, clock, settings, sleep=sleep, limits={"telegram": limiter})
    replies = []

    async def replier():
        rng = random.Random(5)
        for n in range(8):
            await sleep(rng.uniform(0.5, 1.0))
            asked = clock.now()
            await wait_for_slot(limiter, "777" if n % 2 else "778", sleep=sleep)
            replies.append((asked, clock.now()))

    task = asyncio.create_task(replier())
    while len(tg.sent) < 300:
        if await d.run_once() == 0:
            clock.advance(0.1)
    await task
    waits = [(sent - asked).total_seconds() for asked, sent in replies]
    assert len(replies) == 8
    # Replies alternate between two chats asked < 1 s apart: a chat's own second may hold a reply back.
    for (asked, sent), wait in zip(replies, waits, strict=True):
        assert wait <= max(BULK_HORIZON_S + 1 / (30 * 0.98), 1 / 0.98) + 1e-3, (asked, sent)
    bulk = [r.at.timestamp() for r in tg.sent]
    assert window_violations([*bulk, *(sent.timestamp() for _, sent in replies)], 30) == 0
    for chat in ("777", "778"):
        assert window_violations([sent for (asked, sent), n in zip(replies, range(8), strict=True)
                                  if ("777" if n % 2 else "778") == chat], 1) == 0


async def test_dispatcher_never_exceeds_telegram_limits(sqlite_engine, clock, settings):
    """600 messages to 60 chats (some chats get 15): in every 1 s window at most 30 sends
    overall and at most 1 per chat; and it keeps close to 30/s while there is work."""
    rng = random.Random(3)
    for i in range(600):
        chat = str(1000 + (i % 40 if i < 450 else 40 + rng.randrange(20)))
        queue(sqlite_engine, clock, channel="telegram", address=chat, body=f"m{i}")
    tg = ScriptedProvider("telegram", "tg", clock)
    d = Dispatcher(sqlite_engine, {"telegram": tg}, clock, settings, sleep=fake_sleep(clock), batch_size=200)
    start = clock.now()
    await dispatch_until_sent(d, tg, 600, lambda: clock.advance(0.1))
    times = [r.at for r in tg.sent]
    assert telegram_breaches(tg.sent, settings) == (0, 0)
    # The 40 busy chats get 11-12 messages each: at 1/s per chat that takes >= 11 s; 600 at 30/s >= 20 s.
    elapsed = (max(times) - start).total_seconds()
    assert 19 <= elapsed <= 40


async def test_dispatcher_paces_sms_by_segments(sqlite_engine, clock, settings):
    """At 1 segment/s, a k-segment SMS is followed by the next no sooner than k seconds later."""
    segs = [1, 3, 2, 1, 1, 4, 2, 1, 3, 1]
    for i, k in enumerate(segs):
        queue(sqlite_engine, clock, channel="sms", address=f"+86138000{i:05d}", body=f"s{i}", segments=k)
    sms = ScriptedProvider("sms", "sms", clock)
    d = Dispatcher(sqlite_engine, {"sms": sms}, clock, settings, sleep=fake_sleep(clock))
    for _ in range(200):
        if len(sms.sent) == len(segs):
            break
        if await d.run_once() == 0:
            clock.advance(0.5)
    assert len(sms.sent) == len(segs)
    sent = sorted(sms.sent, key=lambda r: r.at)
    for a, b in zip(sent, sent[1:], strict=False):
        assert (b.at - a.at).total_seconds() >= a.message.segments / settings.twilio_segments_per_s - 1e-6
    assert window_violations([r.at for r in sent], settings.twilio_segments_per_s, window=sum(segs),
                             costs=[r.message.segments for r in sent]) == 0

