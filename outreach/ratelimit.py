"""Token buckets with an injected clock, and a provider pause after a 429.

Two shapes, both exact on an injected clock and never blocking (they answer "0, granted"
or "wait this many seconds", so the caller decides whether to wait or look at another
message):
- `SlidingWindow(limit, window)`: at most `limit` in any window of `window` seconds (a log of
  the last sends). Telegram's "30 per second overall" is this, together with an even pace
  (below): a second never holds more than 30 grants, and they are spread over it.
- `TokenBucket(rate, burst=1)`: pacing. With burst 1 no two sends are closer than cost/rate:
  Telegram's 1 per second per chat, and Twilio's 1 segment per second per long code (a
  3-segment SMS keeps the number busy for 3 s).

`ProviderLimits` combines an overall limit, an optional per-key bucket and a pause
(`retry_after` from a 429) for one provider. Without `pacing` the overall limit is the window
plus a pace at `PACE` of the rate with a burst of `PACE_BURST_S` seconds' worth.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from models.clock import Clock

PACE = 0.98  # of the provider's rate: headroom for the jitter between grant and arrival
PACE_BURST_S = 0.05  # seconds' worth of the rate that may go at once to make up for late wake-ups


def _seconds(clock: Clock) -> float:
    return clock.now().timestamp()


@dataclass
class TokenBucket:
    rate: float  # tokens per second
    burst: float  # most tokens held at once
    clock: Clock
    tokens: float = -1.0
    updated: float = 0.0

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst <= 0:
            raise ValueError("rate and burst must be positive")
        if self.tokens < 0:
            self.tokens = self.burst
        self.updated = _seconds(self.clock)

    def _refill(self) -> None:
        now = _seconds(self.clock)
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def wait_time(self, cost: float = 1.0) -> float:
        """Seconds until `cost` tokens are there (0 if now). A cost above the burst waits for a full bucket."""
        self._refill()
        need = min(cost, self.burst)
        if self.tokens >= need - 1e-9:  # float dust from the refill arithmetic is not a wait
            return 0.0
        return max(1e-6, (need - self.tokens) / self.rate)  # clocks count whole microseconds

    def take(self, cost: float = 1.0) -> None:
        """Spend `cost` (the balance may go negative for a cost above the burst: later sends wait)."""
        self._refill()
        self.tokens -= cost

    def try_take(self, cost: float = 1.0) -> float:
        wait = self.wait_time(cost)
        if wait <= 0:
            self.take(cost)
        return wait


class SlidingWindow:
    """At most `limit` (sum of costs) in any half-open window of `window` seconds."""

    def __init__(self, limit: float, window: float, clock: Clock) -> None:
        if limit <= 0 or window <= 0:
            raise ValueError("limit and window must be positive")
        self.limit = limit
        self.window = window
        self.clock = clock
        self._log: deque[tuple[float, float]] = deque()
        self._total = 0.0

    def _expire(self, now: float) -> None:
        while self._log and self._log[0][0] <= now - self.window:
            self._total -= self._log.popleft()[1]

    def wait_time(self, cost: float = 1.0) -> float:
        now = _seconds(self.clock)
        self._expire(now)
        if self._total + cost <= self.limit + 1e-9 or not self._log:
            return 0.0
        # Walk the log until enough cost has left the window.
        freed = self._total + cost - self.limit
        for at, c in self._log:
            freed -= c
            if freed <= 1e-9:
                return max(1e-6, at + self.window - now)
        return max(1e-6, self._log[-1][0] + self.window - now)

    def take(self, cost: float = 1.0) -> None:
        now = _seconds(self.clock)
        self._log.append((now, cost))
        self._total += cost


@dataclass
class ProviderLimits:
    """Overall rate (+ burst), optional per-key rate, and a pause after a 429."""

    clock: Clock
    rate: float | None  # the provider's limit; None: no limit (benchmarks' raw runs)
    per_key_rate: float | None = None
    pacing: bool = False  # True: a burst-1 bucket (cost/rate apart); False: paced and windowed
    paused_until: float = 0.0
    _overall: TokenBucket | SlidingWindow | None = None
    _pace: TokenBucket | None = None
    _per_key: dict[str, TokenBucket] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rate is not None:
            self._overall = (TokenBucket(self.rate, 1.0, self.clock) if self.pacing
                             else SlidingWindow(self.rate, 1.0, self.clock))
            if not self.pacing:
                # Spread grants over the second instead of granting the window's worth at
                # once: a burst reaches the provider smeared out by the event loop and the
                # network, and the next second's burst lands on top of it (measured: 399
                # arrivals in one second under a bare 200/s window). The pace runs at PACE of
                # the rate with a small burst to make up late wake-ups; the window still
                # bounds every second of grants at the rate.
                self._pace = TokenBucket(self.rate * PACE, max(2.0, self.rate * PACE_BURST_S), self.clock)

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, _seconds(self.clock) + max(0.0, seconds))

    def unlimited(self) -> bool:
        """No limit configured and no pause: every send may go at once."""
        return self.rate is None and self.per_key_rate is None and self.paused_for() <= 0

    def paused_for(self) -> float:
        return max(0.0, self.paused_until - _seconds(self.clock))

    def _key_bucket(self, key: str) -> TokenBucket | None:
        if self.per_key_rate is None:
            return None
        bucket = self._per_key.get(key)
        if bucket is None:
            bucket = self._per_key[key] = TokenBucket(self.per_key_rate, 1.0, self.clock)
            if len(self._per_key) > 100_000:  # forget idle chats; a full bucket is the default anyway
                self._forget_full()
        return bucket

    def _forget_full(self) -> None:
        for key in [k for k, b in self._per_key.items() if b.wait_time(1.0) == 0 and b.tokens >= b.burst]:
            del self._per_key[key]

    def key_wait(self, key: str) -> float:
        bucket = self._key_bucket(key)
        return 0.0 if bucket is None else bucket.wait_time(1.0)

    def try_acquire(self, key: str, cost: float = 1.0) -> float:
        """0 and the tokens are spent; or the seconds to wait (nothing spent)."""
        paused = self.paused_for()
        if paused > 0:
            return paused
        key_bucket = self._key_bucket(key)
        key_wait = key_bucket.wait_time(1.0) if key_bucket else 0.0
        overall_wait = self._overall.wait_time(cost) if self._overall else 0.0
        if self._pace is not None:
            overall_wait = max(overall_wait, self._pace.wait_time(cost))
        wait = max(key_wait, overall_wait)
        if wait > 0:
            return wait
        if key_bucket:
            key_bucket.take(1.0)
        if self._overall:
            self._overall.take(cost)
        if self._pace is not None:
            self._pace.take(cost)
        return 0.0


def limits_for(channel: str, clock: Clock, *, telegram_rate: float, telegram_per_chat: float,
               sms_segments_per_s: float) -> ProviderLimits:
    if channel == "telegram":
        return ProviderLimits(clock, telegram_rate, per_key_rate=telegram_per_chat)
    if channel == "sms":
        return ProviderLimits(clock, sms_segments_per_s, pacing=True)
    return ProviderLimits(clock, None)


def window_violations(times: list[datetime] | list[float], limit: float, window: float = 1.0,
                      costs: list[float] | None = None) -> int:
    """How many sliding windows of `window` seconds hold more than `limit * window` cost (for tests)."""
    ts = [t.timestamp() if isinstance(t, datetime) else float(t) for t in times]
    cs = costs or [1.0] * len(ts)
    pairs = sorted(zip(ts, cs, strict=True))
    bad = 0
    start = 0
    total = 0.0
    for end in range(len(pairs)):
        total += pairs[end][1]
        while pairs[end][0] - pairs[start][0] >= window - 1e-9:
            total -= pairs[start][1]
            start += 1
        if total > limit * window + 1e-9:
            bad += 1
    return bad
