"""Provider rate limits: one limiter per provider, in this process or shared by every process through Redis.

What is limited, per provider (`ProviderLimit`, from settings by `limits_from_settings`):
- each sender's rate, in cost units a second: Telegram's bot, 30 messages/s (1,000/s paid
  broadcast); each SMS sender, segments a second (a long code about 1/s; a Messaging Service or
  a short code more), several senders side by side, a recipient always on the same one;
- each recipient's own rate: Telegram's 1 message/s per chat;
- a pause: after a 429 with retry-after nothing goes to that provider until it has passed.

The rule is GCRA (the generic cell rate algorithm): each limit keeps the time of its next free
slot; a send of cost c takes the slot at max(now, next) and moves `next` on by c / rate. Slots are
spread evenly (no burst at the top of each second) and a 3-segment SMS keeps its number busy for
3 s. Rates run at `HEADROOM` of the provider's figure, so that sends reaching the provider up to
about 20 ms early or late (network, event loop) still never put more than the figure in a second.

Two lanes. A `REPLY` (to someone who just wrote; a one-time code) takes the next slot whatever
it is. `BULK` (broadcasts, reminders) takes a slot only within `BULK_HORIZON_S` of now, so bulk
never holds more of the future than that, and a reply waits at most that long behind a
broadcast. A slot taken is held for the caller, who sleeps until it and sends.

`LocalLimiter` keeps the slots in this process (the embedded default); `RedisLimiter` (with
`REDIS_URL`) keeps them in Redis, where one Lua script checks the pause, the sender's slot and
the recipient's slot and takes them in one atomic step, so any number of dispatchers and web
replicas share one limit. Both run `take_slot` below, the Lua script line for line.

Under the slots, a cap on what actually starts: the slots are times, and a process that wakes
late for its slot (a busy event loop, a slow answer from Redis, a descheduled process) would either
lose the slot or send it on top of the next ones. Each send that starts is counted, when it starts,
in a moving window of the `limits` library (`MovingWindowRateLimiter`, in memory or in the same
Redis): at most `CAP` of the figure start in any sliding second, across every process
(`cap_items`). A late slot is sent as soon as that window has room, so a late wake costs a short,
bounded burst and never a slot; the window's room above the slots' pace (`HEADROOM`) is where the
backlog of a late wake catches up, and what it leaves below the figure is kept for the jitter
between our start and the provider's arrival. The library keeps its windows on its own
clock (`time.time()`), so the cap is on for limiters that run on that clock (`cap_starts`).

Why a Lua script for the slots and not the `limits` library: its windows are whole seconds or longer and a
hit costing more than the window's amount is never granted (a 3-segment SMS at 1 segment/s could
never go); it checks one limit per call (a chat's limit refusing after the overall limit granted
would spend a slot for nothing); it has no lanes; and it reads `time.time()`, where tests run on
an injected clock. Times are the caller's clock in whole microseconds, as `limits` too takes
them from its caller: processes on several hosts need synchronised clocks (NTP).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Any

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from models.clock import Clock, SystemClock

log = logging.getLogger("nuanxin.limits")

HEADROOM = 0.98  # of each provider's figure: the slots' pace
CAP = 0.99  # of each provider's figure: the most that may start in any sliding second (the moving window)
BULK_HORIZON_S = 0.25  # how far ahead a bulk send may hold a slot (a reply waits at most this long behind bulk)
KEY_LIFETIME_S = 60.0  # a Redis slot key outlives its slot by this much, then Redis forgets it
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


class Lane(IntEnum):
    BULK = 0
    REPLY = 1


class Blocked(StrEnum):
    """What refused a slot."""

    NOTHING = ""
    RATE = "rate"  # the sender's rate (bulk only: the next slot is beyond the horizon)
    KEY = "key"  # the recipient's own rate: another message to them went first
    PAUSE = "pause"  # a pause after a 429


@dataclass(frozen=True)
class Sender:
    """One sender and its rate: Telegram's bot (named "telegram"), an SMS From number, a Messaging Service SID."""

    id: str
    per_s: float

    def __post_init__(self) -> None:
        if not self.id or self.per_s <= 0:
            raise ValueError("a sender has an id and a positive rate")


@dataclass(frozen=True)
class ProviderLimit:
    """What one provider allows. No senders: no overall limit; `per_key_per_s` None: none per recipient."""

    provider: str
    senders: tuple[Sender, ...] = ()
    per_key_per_s: float | None = None

    @classmethod
    def one_sender(cls, provider: str, per_s: float | None, per_key_per_s: float | None = None) -> ProviderLimit:
        """One sender at `per_s` (None: no overall limit)."""
        return cls(provider, (Sender(provider, per_s),) if per_s else (), per_key_per_s)

    @property
    def rate_per_s(self) -> float | None:
        return sum(s.per_s for s in self.senders) if self.senders else None

    def sender_for(self, address: str) -> Sender | None:
        """The sender for this recipient: always the same one (a person sees one number), and
        recipients spread over the senders in proportion to their rates (weighted rendezvous hashing)."""
        if len(self.senders) <= 1:
            return self.senders[0] if self.senders else None

        def score(sender: Sender) -> float:
            digest = hashlib.blake2b(f"{sender.id}\0{address}".encode(), digest_size=8).digest()
            unit = (int.from_bytes(digest, "big") + 1) / (2**64 + 1)  # in (0, 1)
            return sender.per_s / -math.log(unit)

        return max(self.senders, key=score)


@dataclass(frozen=True)
class Grant:
    """`ok`: the slot is held, send after `wait_s` (at `at`, the clock's seconds). Not `ok`: nothing
    taken, ask again after `wait_s`."""

    ok: bool
    wait_s: float
    blocked: Blocked = Blocked.NOTHING
    sender: str = ""
    at: float = 0.0
    next_bulk_at: float = 0.0  # granted: when the sender's next slot comes within the bulk horizon (ask no sooner)


@dataclass(frozen=True)
class Slot:
    """`take_slot`'s answer, in microseconds: the grant, and the slot times to store when granted."""

    ok: bool
    wait_us: int
    blocked: Blocked
    next_rate_us: int = 0
    next_key_us: int = 0


def take_slot(now: int, paused_until: int, next_rate: int, next_key: int, interval: int, key_interval: int,
              lane: Lane, horizon: int) -> Slot:
    """GCRA for one send (all in microseconds; an interval of 0: that limit is not set)."""
    if paused_until > now:
        return Slot(False, paused_until - now, Blocked.PAUSE)
    slot = max(now, next_rate) if interval > 0 else now
    if key_interval > 0 and next_key > slot:
        return Slot(False, next_key - now, Blocked.KEY)
    if lane is not Lane.REPLY and slot - now > horizon:
        return Slot(False, slot - now - horizon, Blocked.RATE)
    return Slot(True, slot - now, Blocked.NOTHING, slot + interval, slot + key_interval)


# The same, in Redis: KEYS are the pause, the sender's slot and the recipient's slot; ARGV are
# now, the interval, the recipient's interval, the lane, the bulk horizon and the keys' lifetime.
TAKE_SLOT_LUA = """
local now = tonumber(ARGV[1])
local paused_until = tonumber(redis.call('GET', KEYS[1]) or '0')
if paused_until > now then return {0, paused_until - now, 'pause'} end
local interval, key_interval = tonumber(ARGV[2]), tonumber(ARGV[3])
local slot = now
if interval > 0 then slot = math.max(now, tonumber(redis.call('GET', KEYS[2]) or '0')) end
if key_interval > 0 then
  local next_key = tonumber(redis.call('GET', KEYS[3]) or '0')
  if next_key > slot then return {0, next_key - now, 'key'} end
end
if ARGV[4] ~= '1' and slot - now > tonumber(ARGV[5]) then return {0, slot - now - tonumber(ARGV[5]), 'rate'} end
local ttl_ms = math.floor((slot - now + tonumber(ARGV[6])) / 1000)
if interval > 0 then redis.call('SET', KEYS[2], string.format('%d', slot + interval), 'PX', ttl_ms) end
if key_interval > 0 then redis.call('SET', KEYS[3], string.format('%d', slot + key_interval), 'PX', ttl_ms) end
return {1, slot - now, '', slot + interval - tonumber(ARGV[5])}
"""

# A pause only ever grows: KEYS[1] is the pause, ARGV the pause's end and its lifetime (ms).
PAUSE_LUA = """
local paused_until = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > paused_until then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return tonumber(ARGV[1])
end
return paused_until
"""


def _micros(clock: Clock) -> int:
    return (clock.now() - _EPOCH) // _US


def _interval_us(cost: float, per_s: float | None) -> int:
    return math.ceil(cost * 1e6 / (per_s * HEADROOM)) if per_s else 0


def cap_items(limit: ProviderLimit) -> dict[str, RateLimitItemPerSecond]:
    """Each sender's moving window: `CAP` of its figure (198 at 200/s, 297 at 300/s), and no less
    than its slots put in one second at `HEADROOM` (30 at 30/s). What the window holds above the
    slots' pace is the room in which a late wake catches up; what it leaves below the figure
    absorbs jitter on the way. None for a sender under 2 a second (an SMS number at one segment a
    second has a second between sends, more than any late wake)."""
    items = {}
    for sender in limit.senders:
        amount = min(math.floor(sender.per_s), max(math.floor(sender.per_s * CAP),
                                                   math.floor(sender.per_s * HEADROOM) + 1))
        if amount >= 2:
            items[sender.id] = RateLimitItemPerSecond(amount, namespace=f"start:{limit.provider}")
    return items


class Limiter:
    """One provider's limits. `acquire` asks for a slot; `admit` counts a send as it starts;
    `pause` stops the provider for a while."""

    def __init__(self, limit: ProviderLimit, clock: Clock, *, cap_storage: Any = None) -> None:
        self.limit = limit
        self.clock = clock
        self._paused_until = 0  # as last seen by this process (µs)
        self._cap = MovingWindowRateLimiter(cap_storage) if cap_storage is not None else None
        self._cap_items = cap_items(limit) if cap_storage is not None else {}
        self._window_waits: dict[str, asyncio.Lock] = {}  # per sender: who waits for room in the window

    @property
    def caps_starts(self) -> bool:
        """Whether sends are counted as they start (see `admit`): a late slot may then still go."""
        return bool(self._cap_items)

    async def admit(self, sender: str, cost: float = 1.0) -> float:
        """Count a send by `sender` starting now in its moving window. 0.0: counted, start it now;
        else nothing counted, and the seconds until the window has room (ask again then). A send
        costing more than the whole window counts as the whole window."""
        item = self._cap_items.get(sender)
        if item is None or self._cap is None:
            return 0.0
        units = min(item.amount, max(1, math.ceil(cost)))
        if await self._cap.hit(item, sender, cost=units):
            return 0.0
        stats = await self._cap.get_window_stats(item, sender)
        return max(0.001, stats.reset_time - time.time())

    async def start(self, sender: str, cost: float = 1.0, *, sleep: Any = asyncio.sleep) -> float:
        """Wait until the moving window admits this send (`admit`); returns the seconds waited.
        While the window is full one send of this process waits for room at a time, and the
        rest queue behind it without asking: each room that opens is one entry leaving the
        window, and every waiter asking for it costs a round trip for one to win."""
        if not self.caps_starts:
            return 0.0
        waiting = self._window_waits.get(sender)
        if waiting is None:
            waiting = self._window_waits[sender] = asyncio.Lock()
        if not waiting.locked() and await self.admit(sender, cost) <= 0:
            return 0.0
        waited = 0.0
        async with waiting:
            while (wait := await self.admit(sender, cost)) > 0:
                await sleep(wait)
                waited += wait
        return max(waited, 1e-6)

    @property
    def rate_per_s(self) -> float | None:
        return self.limit.rate_per_s

    @property
    def unlimited(self) -> bool:
        """Nothing to keep to but a pause (benchmarks' raw runs, a provider with no figure)."""
        return not self.limit.senders and self.limit.per_key_per_s is None

    def paused_for(self) -> float:
        """Seconds of the pause this process knows of: its own, or one it was refused by."""
        return max(0.0, (self._paused_until - _micros(self.clock)) / 1e6)

    def _grant(self, slot: Slot, sender: Sender | None, now: int) -> Grant:
        if slot.blocked is Blocked.PAUSE:
            self._paused_until = max(self._paused_until, now + slot.wait_us)
        next_bulk = (slot.next_rate_us - int(BULK_HORIZON_S * 1e6)) / 1e6 if slot.ok and sender is not None else 0.0
        return Grant(slot.ok, slot.wait_us / 1e6, slot.blocked, sender.id if sender else "",
                     (now + slot.wait_us) / 1e6, next_bulk)

    async def acquire(self, key: str, cost: float = 1.0, lane: Lane = Lane.BULK) -> Grant:
        raise NotImplementedError

    async def pause(self, seconds: float) -> None:
        raise NotImplementedError

    async def ready(self) -> bool:
        """Whether the limiter can answer (for readiness checks): its store is reachable."""
        return True

    async def close(self) -> None:
        return None


class LocalLimiter(Limiter):
    """The slots in this process's memory."""

    def __init__(self, limit: ProviderLimit, clock: Clock, *, cap_starts: bool = False) -> None:
        super().__init__(limit, clock, cap_storage=MemoryStorage() if cap_starts else None)
        self._next_rate: dict[str, int] = {}  # sender id → its next free slot
        self._next_key: dict[str, int] = {}  # recipient → their next free slot

    async def acquire(self, key: str, cost: float = 1.0, lane: Lane = Lane.BULK) -> Grant:
        now = _micros(self.clock)
        sender = self.limit.sender_for(key)
        slot = take_slot(now, self._paused_until, self._next_rate.get(sender.id, 0) if sender else 0,
                         self._next_key.get(key, 0), _interval_us(cost, sender.per_s if sender else None),
                         _interval_us(1.0, self.limit.per_key_per_s), lane, int(BULK_HORIZON_S * 1e6))
        if slot.ok:
            if sender is not None:
                self._next_rate[sender.id] = slot.next_rate_us
            if self.limit.per_key_per_s is not None:
                self._next_key[key] = slot.next_key_us
                if len(self._next_key) > 100_000:  # forget recipients whose slot has passed
                    self._next_key = {k: t for k, t in self._next_key.items() if t > now}
        return self._grant(slot, sender, now)

    async def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, _micros(self.clock) + int(max(0.0, seconds) * 1e6))


class RedisLimiter(Limiter):
    """The slots in Redis, shared by every process that uses the same Redis and prefix.

    Keys: `<prefix>:{<provider>}:pause`, `...:rate:<sender>`, `...:key:<hash of the recipient>` (no
    address in clear; the braces keep one provider's keys in one Redis Cluster slot).
    """

    def __init__(self, limit: ProviderLimit, clock: Clock, redis: Any, *, prefix: str = "nuanxin:limits",
                 owns_client: bool = False, cap_starts: bool = False) -> None:
        # The moving window lives in the same Redis, through the same connections.
        cap = RedisStorage("async+redis://", implementation="redispy", connection_pool=redis.connection_pool,
                           key_prefix=f"{prefix}:cap") if cap_starts else None
        super().__init__(limit, clock, cap_storage=cap)
        self.redis = redis
        self._owns_client = owns_client
        self._base = f"{prefix}:{{{limit.provider}}}"
        self._take = redis.register_script(TAKE_SLOT_LUA)
        self._pause = redis.register_script(PAUSE_LUA)

    def _key(self, address: str) -> str:
        return f"{self._base}:key:{hashlib.blake2b(address.encode(), digest_size=10).hexdigest()}"

    async def acquire(self, key: str, cost: float = 1.0, lane: Lane = Lane.BULK) -> Grant:
        now = _micros(self.clock)
        sender = self.limit.sender_for(key)
        keys = [f"{self._base}:pause", f"{self._base}:rate:{sender.id if sender else '-'}", self._key(key)]
        args = [now, _interval_us(cost, sender.per_s if sender else None),
                _interval_us(1.0, self.limit.per_key_per_s), int(lane), int(BULK_HORIZON_S * 1e6),
                int(KEY_LIFETIME_S * 1e6)]
        ok, wait_us, blocked, *next_bulk = await self._take(keys=keys, args=args)
        reason = blocked.decode() if isinstance(blocked, bytes) else str(blocked)
        next_rate = int(next_bulk[0]) + int(BULK_HORIZON_S * 1e6) if next_bulk else 0
        return self._grant(Slot(bool(ok), int(wait_us), Blocked(reason), next_rate), sender, now)

    async def pause(self, seconds: float) -> None:
        until = _micros(self.clock) + int(max(0.0, seconds) * 1e6)
        lifetime_ms = int((max(0.0, seconds) + KEY_LIFETIME_S) * 1000)
        self._paused_until = max(self._paused_until, int(await self._pause(keys=[f"{self._base}:pause"],
                                                                           args=[until, lifetime_ms])))

    async def ready(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except Exception:  # unreachable, refused, timed out: not ready, whatever the reason
            return False

    async def close(self) -> None:
        if self._owns_client:
            await self.redis.aclose()


async def wait_for_slot(limiter: Limiter, key: str, *, lane: Lane = Lane.REPLY, sleep: Any = asyncio.sleep) -> Grant:
    """Ask until a slot is granted, sleeping as told, then sleep until the slot and until the
    moving window admits the send (for one-off sends such as conversation replies; the dispatcher
    has its own loop that can give a row back)."""
    while True:
        grant = await limiter.acquire(key, 1.0, lane)
        if grant.wait_s > 0:
            await sleep(grant.wait_s)
        if grant.ok:
            await limiter.start(grant.sender, 1.0, sleep=sleep)
            return grant


def limits_from_settings(settings: Any, channels: Iterable[str] = ("telegram", "sms")) -> dict[str, ProviderLimit]:
    """Telegram: the bot's rate and the per-chat rate. SMS: each sender's segments a second."""
    out: dict[str, ProviderLimit] = {}
    for channel in channels:
        if channel == "telegram":
            out[channel] = ProviderLimit.one_sender("telegram", settings.telegram_rate_per_s,
                                                    settings.telegram_per_chat_per_s)
        elif channel == "sms":
            out[channel] = ProviderLimit("sms", tuple(Sender(name, rate) for name, rate in settings.sms_sender_rates))
        else:
            out[channel] = ProviderLimit(channel)
    return out


def build_limiters(settings: Any, clock: Clock, channels: Iterable[str] = ("telegram", "sms"), *,
                   redis_url: str | None = None) -> dict[str, Limiter]:
    """One limiter per provider: in Redis when `REDIS_URL` is set (shared by every process), else in
    this process."""
    url = settings.redis_url if redis_url is None else redis_url
    limits = limits_from_settings(settings, channels)
    # The moving window runs on time.time(): on for the system clock, off for a test's clock.
    cap_starts = isinstance(clock, SystemClock)
    if not url:
        return {channel: LocalLimiter(limit, clock, cap_starts=cap_starts) for channel, limit in limits.items()}
    from redis.asyncio import Redis

    out: dict[str, Limiter] = {}
    for channel, limit in limits.items():
        client = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)
        out[channel] = RedisLimiter(limit, clock, client, prefix=settings.redis_prefix, owns_client=True,
                                    cap_starts=cap_starts)
    return out


async def close_limiters(limiters: Mapping[str, Limiter]) -> None:
    for limiter in limiters.values():
        try:
            await limiter.close()
        except Exception:  # closing at shutdown: say so, do not stop the rest of the shutdown
            log.warning("closing the %s limiter failed", limiter.limit.provider, exc_info=True)
