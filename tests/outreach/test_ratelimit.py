"""Rate limits on a fake clock: never more than allowed in any window, and close to it."""

from __future__ import annotations

import random
from collections import defaultdict

from outreach_helpers import fake_sleep, queue

from models.clock import FakeClock
from outreach.dispatcher import Dispatcher
from outreach.providers.scripted import ScriptedProvider
from outreach.ratelimit import ProviderLimits, SlidingWindow, TokenBucket, window_violations


def test_sliding_window_never_holds_more_than_the_limit(clock: FakeClock):
    """Random attempts over 60 s at 30 per 1 s window: every granted send fits, and the window fills."""
    w = SlidingWindow(30, 1.0, clock)
    rng = random.Random(7)
    granted = []
    while clock.now().timestamp() - 1772416800 < 60:
        if w.wait_time() == 0:
            w.take()
            granted.append(clock.now())
        clock.advance(rng.choice([0.0, 0.001, 0.01, 0.05]))
    assert window_violations(granted, 30) == 0
    assert len(granted) >= 0.95 * 30 * 60  # steps of up to 50 ms lose a little


def test_telegram_grants_are_spread_over_the_second_not_granted_in_one_burst(clock: FakeClock):
    """A full queue for 10 s at 30/s: never more than 30 in a second, never more than 5 in any
    100 ms (3 at the pace plus a make-up burst of 2), and at least 97% of the rate used. A
    burst granted at once reaches the provider smeared out and lands on the next second's."""
    limits = ProviderLimits(clock, 30)
    granted = []
    while clock.now().timestamp() - 1772416800 < 10:
        wait = limits.try_acquire(str(len(granted)))
        if wait == 0:
            granted.append(clock.now().timestamp())
        else:
            clock.advance(wait)
    assert window_violations(granted, 30) == 0
    assert window_violations(granted, 50, window=0.1) == 0
    assert len(granted) >= 0.97 * 30 * 10


def test_window_checker_catches_a_burst(clock: FakeClock):
    """The checker itself fails a series with 31 sends inside one second (so the rule can fail)."""
    times = [clock.now().timestamp() + i * 0.03 for i in range(31)]
    assert window_violations(times, 30) > 0
    assert window_violations(times[:30], 30) == 0


def test_token_bucket_paces_by_cost(clock: FakeClock):
    """Burst 1 at 1 segment/s: a 3-segment SMS keeps the next one waiting 3 s."""
    b = TokenBucket(1.0, 1.0, clock)
    assert b.try_take(3) == 0
    assert b.try_take(1) == 3.0
    clock.advance(2.5)
    assert b.try_take(1) == 0.5
    clock.advance(0.5)
    assert b.try_take(1) == 0


def test_pause_after_429_blocks_until_retry_after(clock: FakeClock):
    limits = ProviderLimits(clock, 30, per_key_rate=1)
    limits.pause(3)
    assert limits.try_acquire("1") == 3
    clock.advance(3)
    assert limits.try_acquire("1") == 0


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
    for _ in range(2000):
        if len(tg.sent) == 600:
            break
        if await d.run_once() == 0:
            clock.advance(0.1)
    assert len(tg.sent) == 600
    times = [r.at for r in tg.sent]
    assert window_violations(times, settings.telegram_rate_per_s) == 0
    per_chat = defaultdict(list)
    for r in tg.sent:
        per_chat[r.message.address].append(r.at)
    assert all(window_violations(ts, settings.telegram_per_chat_per_s) == 0 for ts in per_chat.values())
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
