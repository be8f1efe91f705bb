"""The dispatcher: takes due rows from the outbox and sends them, exactly as fast as allowed.

One cycle, per channel: claim a batch under a lease (PostgreSQL: SKIP LOCKED, SQLite: an
immediate transaction), re-check every recipient in that same transaction (opted out,
blocked, invalid, deceased → suppressed, never sent), send the rest concurrently under the
provider's rate limits (a row that waited over `second_look_after_s` for its turn is looked
at again right before its grant), then write every outcome in one transaction:
- success → sent (+ provider id, a `MessageLog` "out" row);
- retryable error → queued again with exponential backoff and jitter, until the row's
  deadline (set at enqueue), then failed; a 429 also pauses the provider;
- permanent error → `outbox.fail_permanently`: failed, the stopped/invalid contact marked,
  the fallback to the same person on the other channel, or a staff task to phone them.
Every status change goes through `outreach.outbox`; who may be reached is `outreach.reach`'s
rule (the re-checks ask `reach.verdicts`).
SMS that is not urgent waits out the office's quiet hours (status stays queued, event
"deferred: quiet hours"); one-time codes (urgent) go at once.

A crash loses nothing: rows stay 'sending' under a lease that expires, and are claimed
again. What can be sent twice is only what was in flight (sent, outcome not yet written).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time as _time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, insert

from models.clock import Clock, SystemClock
from models.conversations import MessageLog
from models.db import read_scope, session_scope
from models.outbox import OutboxMessage, OutboxStatus
from outreach import outbox, reach
from outreach.limits import BULK_HORIZON_S, HEADROOM, Blocked, Grant, Lane, Limiter, build_limiters
from outreach.outbox import OutboxRow
from outreach.providers.base import (
    ChannelMisconfigured,
    ConnectionFailed,
    OutgoingMessage,
    Provider,
    SendError,
    SendResult,
    TemporaryFailure,
    Throttled,
)

log = logging.getLogger("nuanxin.dispatcher")

# How late a send may start after its slot: what the limits' headroom absorbs within one second.
LATE_SLOT_S = 1.0 - HEADROOM
ASK_MARGIN_S = 0.001  # a bulk slot is asked for this much after it comes within the horizon (see `_next_ask`)

Claimed = OutboxRow
_MESSAGE_LOG = MessageLog.__table__  # type: ignore[attr-defined]


def in_quiet_hours(local: time, start: time, end: time) -> bool:
    if start == end:
        return False
    if start > end:  # spans midnight, e.g. 21:00-08:00
        return local >= start or local < end
    return start <= local < end


def quiet_hours_end(now: datetime, tz: Any, end: time) -> datetime:
    """The next moment the office's clock shows `end` (the morning), in UTC."""
    local = now.astimezone(tz)
    candidate = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if candidate <= local:
        candidate = (local + timedelta(days=1)).replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    return candidate.astimezone(now.tzinfo)


@dataclass
class Outcome:
    row: Claimed
    result: SendResult | None = None
    error: SendError | None = None
    deferred_s: float = 0.0  # rate limit: not sent, back in the queue for this long
    released: bool = False  # the process is stopping: not sent, back in the queue for another process now
    stopped: reach.Stop | None = None  # the second look found the recipient stopped (or held): not sent, why
    at: datetime | None = None


class _Released(Exception):
    """The process is stopping before this row got a slot: it goes back to the queue."""


class _Stopped(Exception):
    """The second look found that the row's recipient must not get it (now)."""

    def __init__(self, reason: reach.Stop) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Look:
    """One look at the rows waiting to be sent (see `Dispatcher._second_look`)."""

    started: float  # the clock's seconds
    rows: set[int]
    reasons: dict[int, reach.Stop]  # row id → why it must not go
    query: asyncio.Future[dict[int, reach.Stop]] | None = None  # the query behind `reasons`, while it runs

    def covers(self, row_id: int, checked: float, now: float, max_age: float) -> bool:
        return row_id in self.rows and self.started > checked and now - self.started <= max_age


class Dispatcher:
    def __init__(self, engine: Engine, providers: Mapping[str, Provider], clock: Clock | None = None,
                 settings: Any = None, *, owner: str | None = None, batch_size: int = 500,
                 concurrency: int = 256, max_inflight: int | None = None, lease_s: float = 60.0,
                 flush_max: int = 200, flush_interval_s: float = 0.05, flush_min: int = 50,
                 flush_max_age_s: float = 0.25,
                 retry_base_s: float = 30.0, retry_max_s: float = 3600.0, send_timeout_s: float = 30.0,
                 max_hold_s: float = 2.0, idle_s: float = 0.5, second_look_after_s: float = 1.0,
                 limits: Mapping[str, Limiter] | None = None,
                 sleep: Callable[[float], Awaitable[None]] | None = None, seed: int | None = None) -> None:
        self.engine = engine
        self.providers = dict(providers)
        self.clock = clock or SystemClock()
        self.settings = settings
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{random.randrange(1 << 30):x}"
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.max_inflight = max_inflight or 2 * batch_size
        self.flush_max = flush_max
        self.flush_interval_s = flush_interval_s
        self.flush_min = flush_min
        self.flush_max_age_s = flush_max_age_s
        self.lease_s = lease_s
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.send_timeout_s = send_timeout_s
        self.max_hold_s = max_hold_s
        self.idle_s = idle_s
        self.second_look_after_s = second_look_after_s
        self.sleep = sleep or asyncio.sleep
        self.rng = random.Random(seed)
        self.tz = getattr(settings, "tz", None)
        self.quiet_start: time | None = getattr(settings, "quiet_hours_start", None)
        self.quiet_end: time | None = getattr(settings, "quiet_hours_end", None)
        # The providers' limits: passed in (`nuanxin run` shares them with the conversation
        # replies), else one per provider from settings (in Redis when REDIS_URL is set).
        if limits is None:
            from settings import load_settings

            limits = build_limiters(settings if settings is not None else load_settings(), self.clock, self.providers)
        self.limits = dict(limits)
        self._inflight: dict[str, int] = {ch: 0 for ch in self.providers}
        self._reserved: dict[str, int] = {}  # per channel: rows a claim under way may take
        self._waiting_by_channel: dict[str, int] = {}  # per channel: how many of `_waiting`
        self._last_quiet_check = 0.0
        # Claimed rows wait here for one of `concurrency` sender tasks (made per run, in its loop).
        self._queue: asyncio.Queue[Claimed] | None = None
        self._senders: list[asyncio.Task[None]] = []
        self._unsent = 0  # rows handed to the senders whose outcome is not yet in `_pending`
        self._turns: dict[str, asyncio.Lock] = {}  # per channel: whose turn it is to wait for the pace
        self._next_bulk_at: dict[str, float] = {}  # per channel and sender: when its next bulk slot may be asked for
        self._catching_up: dict[str, asyncio.Lock] = {}  # per channel: the late slots, one after another
        self._catch_up_at: dict[str, float] = {}  # per channel: when the next late slot may go
        self._pending: list[Outcome] = []
        self._pending_since = 0.0  # monotonic seconds: when the oldest outcome in `_pending` joined it
        # The second look (see `_second_look`): each claimed row not yet sent, with when it was
        # claimed (the clock's seconds); the latest look at them, and the one under way.
        self._waiting: dict[int, tuple[Claimed, float]] = {}
        self._look: _Look | None = None
        self._looking: _Look | None = None
        self._flush_now = asyncio.Event()
        self._room_event = asyncio.Event()
        self.stats = {"sent": 0, "retried": 0, "failed": 0, "suppressed": 0, "held": 0, "deferred": 0, "fallbacks": 0,
                      "tasks": 0, "late_slots": 0, "window_waits": 0, "released": 0,
                      "slot_calls": 0}  # slot_calls: calls to a limiter for slots (round trips, with Redis)
        # Set when the process stops: rows not yet handed to a provider go back to the queue at
        # once (another dispatcher sends them) instead of waiting here for slots, or for a lease to expire.
        self._stopping = False

    # --- how many to claim ---------------------------------------------------------------
    def _claim_cap(self, channel: str) -> int:
        """The most one claim takes: a limited channel no more than it can send well within one lease."""
        cap = self.batch_size
        limit = self.limits.get(channel)
        if limit is not None and limit.rate_per_s is not None:
            cap = min(cap, max(1, int(limit.rate_per_s * self.lease_s / 4)))
        return cap

    def _claim_size(self, channel: str) -> int:
        """How many rows to claim for `channel` now (0: not now). A channel is topped up when fewer
        than half a claim wait for their turn, and by at least half a claim: claiming whatever
        room the last written outcomes freed cost a claim transaction every flush, a few rows
        each, as a backlog drained behind a rate (five rows a claim at 100/s). With nothing
        waiting any room is taken, so the last rows of a backlog and a lone reminder go at once."""
        cap = self._claim_cap(channel)
        low = max(1, cap // 2)
        waiting = self._waiting_by_channel.get(channel, 0)
        if waiting >= low:
            return 0
        size = min(cap - waiting - self._reserved.get(channel, 0), self._room())
        if waiting and size < low:
            return 0  # outcomes being written free room soon: claim then, in one go
        return max(0, size)

    # --- the database side (run in a thread: sends keep flowing meanwhile) ------------------
    def _defer_quiet_sms(self) -> int:
        if "sms" not in self.providers or self.tz is None or self.quiet_start is None or self.quiet_end is None:
            return 0
        now = self.clock.now()
        if not in_quiet_hours(now.astimezone(self.tz).time(), self.quiet_start, self.quiet_end):
            return 0
        morning = quiet_hours_end(now, self.tz, self.quiet_end)
        t = OutboxMessage.__table__.c  # type: ignore[attr-defined]
        with session_scope(self.engine, immediate=True) as session:
            n = outbox.defer_due(session, (t.channel == "sms") & (t.urgent == False), morning,  # noqa: E712
                          "deferred: quiet hours", now)
        self.stats["deferred"] += n
        return n

    def _claim(self, channel: str, limit: int) -> list[Claimed]:
        now = self.clock.now()
        with session_scope(self.engine, immediate=True) as session:
            rows = outbox.claim(session, owner=self.owner, now=now, lease_s=self.lease_s, limit=limit,
                                channel=channel)
            if not rows:
                return []
            stops = reach.verdicts(session, [r.id for r in rows])
            self._count(outbox.stop_or_hold(session, rows, stops, now, from_status=OutboxStatus.SENDING))
        return [r for r in rows if r.id not in stops]

    def _count(self, result: outbox.StopResult) -> None:
        self.stats["suppressed"] += result.suppressed
        self.stats["held"] += result.held
        self.stats["tasks"] += result.tasks

    def _look_at(self, rows: list[Claimed]) -> dict[int, reach.Stop]:
        """The second look's query: the contact rule's verdict on rows waiting to be sent, read in
        a snapshot that never waits for a writer."""
        with read_scope(self.engine) as session:
            return reach.verdicts(session, [r.id for r in rows])

    # --- sending -----------------------------------------------------------------------
    async def _acquire(self, row: Claimed, claimed_at: float) -> tuple[float, str]:
        """Wait for a slot of the provider's limit. Returns (defer_s, sender): defer_s > 0 when the
        row should rather go back to the queue for that long; sender, the one the limit chose (SMS).
        Raises `_Stopped` when the second look finds the recipient stopped."""
        checked = claimed_at  # when the recipient was last looked at (the claim re-checked it)

        async def look_again_if_due() -> None:
            # Before the grant, not after it: whatever the look costs then delays the grant, not
            # the send that the grant timed.
            nonlocal checked
            now = self.clock.now().timestamp()
            if now - checked > self.second_look_after_s:
                reason = await self._second_look(row, checked)
                if reason is not None:
                    raise _Stopped(reason)
                checked = now

        limiter = self.limits.get(row.channel)
        if self._stopping:
            raise _Released()
        if limiter is None or (limiter.unlimited and limiter.paused_for() <= 0):
            await look_again_if_due()
            return 0.0, ""
        cost = float(row.segments) if row.channel == "sms" else 1.0
        lane = Lane.REPLY if row.urgent else Lane.BULK  # a one-time code goes ahead of a broadcast
        sender = limiter.limit.sender_for(row.address)
        pace = f"{row.channel}:{sender.id if sender else ''}"  # each sender keeps its own pace
        waited = 0.0
        while True:
            # One sender at a time asks for the channel's next slot: slots go out in turn, and a
            # slot coming free wakes one sender, not every sender that is waiting.
            async with self._turns.setdefault(row.channel, asyncio.Lock()):
                while True:
                    # The last grant said when the next bulk slot is worth asking for (`_next_ask`):
                    # sooner it would only be refused (a round trip to Redis for nothing). Further
                    # off than the horizon it is stale (the clock was set back), or an SMS
                    # sender's long slot: then ask, and be told.
                    ahead = self._next_bulk_at.get(pace, 0.0) - self.clock.now().timestamp()
                    if lane is Lane.BULK and 0 < ahead <= BULK_HORIZON_S:
                        await self.sleep(ahead)
                    if self._stopping:
                        raise _Released()
                    await look_again_if_due()
                    self.stats["slot_calls"] += 1
                    grant = await limiter.acquire(row.address, cost, lane)
                    if grant.ok:
                        self._next_bulk_at[pace] = self._next_ask(grant)
                    if grant.ok or grant.blocked is Blocked.KEY:
                        break
                    if grant.blocked is Blocked.PAUSE and waited + grant.wait_s > max(self.max_hold_s,
                                                                                        self.lease_s / 2):
                        return grant.wait_s, ""  # a long pause after a 429: back to the queue
                    await self.sleep(grant.wait_s)
                    waited += grant.wait_s
            if grant.ok:
                # The slot is held: wait for it outside the turn, so the next sender takes the next one.
                until_slot = grant.at - self.clock.now().timestamp()
                if until_slot > 0:
                    await self.sleep(until_slot)
                # Woken later than the limits' headroom covers (a busy event loop, a slow answer
                # from Redis): sending now bunches with the sends of the slots after it.
                late = self.clock.now().timestamp() - grant.at > LATE_SLOT_S
                self.stats["late_slots"] += late
                if limiter.caps_starts:
                    # Every start is counted in the provider's moving window, so a late slot goes
                    # as soon as that window has room: a catch-up, never a lost slot.
                    if late and sender is not None:
                        await self._catch_up(row.channel, cost / sender.per_s)
                    self.stats["window_waits"] += await limiter.start(grant.sender, cost, sleep=self.sleep) > 0
                    return 0.0, grant.sender
                if late:
                    continue  # no window counts the starts: let the slot go rather than bunch, take the next
                return 0.0, grant.sender
            # Another message to this recipient went first. One that must wait longer than
            # max_hold goes back to the queue rather than holding a sending slot (five reminders
            # to one chat must not stall a broadcast).
            if grant.wait_s > self.max_hold_s:
                return grant.wait_s, ""
            await self.sleep(grant.wait_s)
            waited += grant.wait_s

    @staticmethod
    def _next_ask(grant: Grant) -> float:
        """When to ask for this sender's next bulk slot: when the slot after the next comes within
        the horizon (and a millisecond more, so that a wake a microsecond early is not refused).
        Asking when the next slot came within reach was right for one process; with several sharing
        the rate another one has taken that slot by then, so the ask was refused and made again
        (two dispatchers at 300/s: 1.7 calls to Redis a message). One process holds one slot less
        of the future; a sender slower than the horizon (an SMS number) asks when its next slot
        comes within reach, as the slot after it would already be past."""
        interval = grant.next_bulk_at + BULK_HORIZON_S - grant.at
        if 0 < interval <= BULK_HORIZON_S / 2:
            return grant.next_bulk_at + interval + ASK_MARGIN_S
        return grant.next_bulk_at

    async def _catch_up(self, channel: str, interval_s: float) -> None:
        """The slots a late wake finds past go one after another at twice the rate, not all at
        once: a burst admitted by the moving window in one instant leaves this process over the
        tens of milliseconds its sends take, and its last sends would reach the provider in the
        same second as sends counted a second after them."""
        async with self._catching_up.setdefault(channel, asyncio.Lock()):
            ahead = self._catch_up_at.get(channel, 0.0) - self.clock.now().timestamp()
            if 0 < ahead <= interval_s:
                await self.sleep(ahead)
            self._catch_up_at[channel] = self.clock.now().timestamp() + interval_s / 2

    async def _pause(self, channel: str, seconds: float) -> None:
        """Pause the provider for every process that shares its limit."""
        limiter = self.limits.get(channel)
        if limiter is None:
            return
        try:
            await limiter.pause(seconds)
        except Exception:  # the limiter's store unreachable: the retry's own delay still holds
            log.warning("pausing %s for %.1fs failed", channel, seconds, exc_info=True)

    async def _send_one(self, row: Claimed) -> Outcome:
        provider = self.providers[row.channel]
        claimed_at = self._waiting.get(row.id, (row, self.clock.now().timestamp()))[1]
        try:
            defer, sender = await self._acquire(row, claimed_at)
        except _Stopped as stopped:
            return Outcome(row, stopped=stopped.reason, at=self.clock.now())
        except _Released:
            return Outcome(row, released=True)
        finally:
            if self._waiting.pop(row.id, None) is not None:
                self._waiting_by_channel[row.channel] -= 1
        if defer > 0:
            return Outcome(row, deferred_s=defer)
        message = OutgoingMessage(outbox_id=row.id, channel=row.channel, address=row.address, body=row.body,
                                  segments=row.segments, extra=row.extra, idempotency_key=row.idempotency_key,
                                  beneficiary_id=row.beneficiary_id, sender=sender)
        try:
            own_timeout = getattr(provider, "timeout_s", None)
            if own_timeout is not None and own_timeout <= self.send_timeout_s:
                result = await provider.send(message)  # bounded by the provider's own timeout
            else:
                # asyncio.timeout, not wait_for: no extra task, so the send starts the moment
                # the rate limit granted it.
                async with asyncio.timeout(self.send_timeout_s):
                    result = await provider.send(message)
            return Outcome(row, result=result, at=self.clock.now())
        except SendError as exc:
            if isinstance(exc, Throttled):
                await self._pause(row.channel, exc.retry_after)
            elif isinstance(exc, ChannelMisconfigured):
                await self._pause(row.channel, 60.0)
                log.error("channel %s misconfigured: %s", row.channel, exc.detail[:200])
            return Outcome(row, error=exc, at=self.clock.now())
        except TimeoutError:
            return Outcome(row, error=ConnectionFailed("no answer in time", "timeout"), at=self.clock.now())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a provider bug must not lose the message
            log.exception("provider %s raised outside the contract", provider.name)
            return Outcome(row, error=TemporaryFailure(f"{type(exc).__name__}: {exc}"[:300], "unexpected"),
                           at=self.clock.now())

    # --- the second look ---------------------------------------------------------------
    # The claim re-checked every recipient; a row that then waited more than
    # `second_look_after_s` (behind a rate limit, or in the queue) is checked again right
    # before its grant. One look covers the rows next in line at that moment (`_next_in_line`),
    # in one query, and is shared: the rows after it find their answer there until it is that
    # old itself. A query per row would cost a thread hop per message and hold up the
    # channel's turn.
    async def _second_look(self, row: Claimed, checked: float) -> reach.Stop | None:
        """Why the row must not go, from a look that started after `checked` (when the row was
        last looked at) and is at most `second_look_after_s` old; None when it may go."""
        now = self.clock.now().timestamp()
        if self._look is not None and self._look.covers(row.id, checked, now, self.second_look_after_s):
            return self._look.reasons.get(row.id)
        # The look under way if it covers this row; else a new one at the rows next in line.
        look = self._looking
        if look is None or not look.covers(row.id, checked, now, self.second_look_after_s):
            waiting = self._next_in_line(row) | {row.id: row}
            look = self._looking = _Look(now, set(waiting), {}, asyncio.ensure_future(
                asyncio.to_thread(self._look_at, list(waiting.values()))))
        assert look.query is not None
        try:
            look.reasons = await asyncio.shield(look.query)
        finally:
            if self._looking is look and look.query.done():
                self._looking = None
        if self._look is None or self._look.started < look.started:
            self._look = look
        return look.reasons.get(row.id)

    def _next_in_line(self, row: Claimed) -> dict[int, Claimed]:
        """The rows of `row`'s channel that can go before a look started now is too old: those
        its rate grants within `second_look_after_s`, twice over. A row further back is looked
        at when its turn nears; looking at every waiting row each time cost a query row per
        second per waiting row (a backlog of a thousand behind 300/s: ten rows looked at for
        each message sent)."""
        limiter = self.limits.get(row.channel)
        rate = limiter.rate_per_s if limiter is not None else None
        room = len(self._waiting) if rate is None else max(16, int(2 * rate * self.second_look_after_s))
        ahead: dict[int, Claimed] = {}
        for waiting, _ in self._waiting.values():  # in the order they were claimed: the senders' order
            if waiting.channel == row.channel:
                ahead[waiting.id] = waiting
                if len(ahead) >= room:
                    break
        return ahead

    # --- writing outcomes ----------------------------------------------------------------
    def _backoff(self, attempts: int) -> float:
        base = min(self.retry_max_s, self.retry_base_s * (2 ** max(0, attempts - 1)))
        return base * self.rng.uniform(0.5, 1.5)

    def _record(self, outcomes: list[Outcome]) -> None:
        """Write a batch of outcomes in one transaction, every change through `outreach.outbox`."""
        now = self.clock.now()
        moves: list[outbox.Move] = []
        logs: list[dict[str, Any]] = []
        stopped: dict[int, reach.Stop] = {}
        permanent: list[Outcome] = []
        for o in outcomes:
            r = o.row
            if o.result is not None:
                moves.append(outbox.sent(r, provider=self.providers[r.channel].name,
                                         provider_message_id=o.result.provider_message_id, at=o.at or now))
                if not getattr(self.providers[r.channel], "writes_message_log", False):
                    logs.append({"channel": r.channel, "address": r.address, "direction": "out", "text": r.body,
                                 "attachments": [], "beneficiary_id": r.beneficiary_id, "outbox_id": r.id,
                                 "provider_message_id": o.result.provider_message_id[:64],
                                 "created_at": o.at or now})
                self.stats["sent"] += 1
            elif o.stopped is not None:
                stopped[r.id] = o.stopped
            elif o.released:
                moves.append(outbox.deferred(r, delay_s=0.0, now=now, why="released: dispatcher stopping"))
                self.stats["released"] += 1
            elif o.deferred_s > 0:
                moves.append(outbox.deferred(r, delay_s=o.deferred_s, now=now,
                                             why=f"deferred: rate limit ({o.deferred_s:.1f}s)"))
                self.stats["deferred"] += 1
            elif o.error is not None and o.error.retryable:
                err = o.error
                delay = err.retry_after if isinstance(err, Throttled) else self._backoff(r.attempts)
                m = outbox.retry_or_fail(r, delay_s=delay, now=now, error_code=str(err.code or type(err).__name__),
                                         error=f"{type(err).__name__}: {err.detail}",
                                         why=f"{type(err).__name__} {err.code}".strip())
                moves.append(m)
                self.stats["failed" if m.to == OutboxStatus.FAILED else "retried"] += 1
            else:
                permanent.append(o)
        # A row put back in the queue only while this dispatcher still holds its lease (one
        # that expired under a stalled process may be another dispatcher's by now).
        moves = [replace(m, lease_owner=self.owner) if m.to == OutboxStatus.QUEUED else m for m in moves]
        # Immediate: `outbox.move` reads the rows' states before it writes them.
        with session_scope(self.engine, immediate=True) as session:
            outbox.move(session, moves, now)
            if logs:
                session.execute(insert(_MESSAGE_LOG), logs)
            if stopped:
                self._count(outbox.stop_or_hold(session, [o.row for o in outcomes if o.row.id in stopped], stopped,
                                                now, from_status=OutboxStatus.SENDING))
            for o in permanent:
                assert o.error is not None
                err = o.error
                done = outbox.fail_permanently(session, o.row, err, now,
                                               reason=f"permanent: {type(err).__name__} {err.code}".strip(),
                                               fallback_channels=self.providers)
                self.stats["failed"] += done.failed
                self.stats["fallbacks"] += done.fallback_id is not None
                self.stats["tasks"] += done.task
        sms_sids = [o.result.provider_message_id for o in outcomes if o.result is not None and o.row.channel == "sms"]
        if sms_sids:
            from outreach.receipts import apply_early_receipts

            apply_early_receipts(self.engine, sms_sids, now)

    # --- the loop ------------------------------------------------------------------------
    # Claimed rows go to a queue served by `concurrency` sender tasks (a fixed pool: a task and
    # a semaphore wait per row cost more than the send's own bookkeeping at thousands a
    # second); each outcome joins `_pending`, which one flusher writes in batches. A slow send
    # holds up nothing but its sender, and the in-flight window (claimed, outcome not yet
    # written: what a crash could send twice) stays under `max_inflight`.
    def _room(self) -> int:
        return self.max_inflight - sum(self._inflight.values())

    async def _launch(self, channel: str) -> int:
        cap = self._claim_size(channel)
        if cap <= 0 or (self.limits.get(channel) and self.limits[channel].paused_for() > self.lease_s / 4):
            return 0
        # Reserved, so a concurrent launch does not claim the same room.
        self._inflight[channel] += cap
        self._reserved[channel] = self._reserved.get(channel, 0) + cap
        try:
            rows = await asyncio.to_thread(self._claim, channel, cap)
        finally:
            self._inflight[channel] -= cap
            self._reserved[channel] -= cap
        self._inflight[channel] += len(rows)
        claimed_at = self.clock.now().timestamp()
        self._waiting.update((r.id, (r, claimed_at)) for r in rows)
        self._waiting_by_channel[channel] = self._waiting_by_channel.get(channel, 0) + len(rows)
        queue = self._start_senders()
        self._unsent += len(rows)
        for r in rows:
            queue.put_nowait(r)
        return len(rows)

    def _start_senders(self) -> asyncio.Queue[Claimed]:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._senders = [asyncio.create_task(self._sender(self._queue)) for _ in range(self.concurrency)]
        return self._queue

    async def _stop_senders(self) -> None:
        """Cancel the senders. Only on an error or cancellation are rows still waiting: they
        keep their leases and are claimed again when the leases expire."""
        queue, senders, self._senders, self._queue = self._queue, self._senders, [], None
        self._turns = {}
        self._catching_up = {}
        for task in senders:
            task.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        while queue is not None and not queue.empty():
            self._inflight[queue.get_nowait().channel] -= 1
            self._unsent -= 1
        self._waiting.clear()
        self._waiting_by_channel.clear()

    async def _sender(self, queue: asyncio.Queue[Claimed]) -> None:
        while True:
            row = await queue.get()
            try:
                outcome = await self._send_one(row)
            except asyncio.CancelledError:
                raise  # stopping: the row keeps its lease and is claimed again after it expires
            except Exception as exc:  # noqa: BLE001 - e.g. the database during the second look
                log.exception("outbox %s: sending failed outside the provider", row.id)
                outcome = Outcome(row, error=TemporaryFailure(f"{type(exc).__name__}: {exc}"[:300], "unexpected"),
                                  at=self.clock.now())
            if not self._pending:
                self._pending_since = _time.monotonic()
            self._pending.append(outcome)  # not `append(await ...)`: _flush swaps the list meanwhile
            self._unsent -= 1
            queue.task_done()
            if len(self._pending) >= self.flush_max:
                self._flush_now.set()

    async def _flush(self) -> int:
        if not self._pending:
            return 0
        batch, self._pending, since = self._pending, [], self._pending_since
        try:
            await asyncio.to_thread(self._record, batch)
        except BaseException:
            self._pending[:0] = batch  # written next time; the rows keep their leases meanwhile
            self._pending_since = since
            raise
        for o in batch:
            self._inflight[o.row.channel] -= 1
        self._room_event.set()
        return len(batch)

    async def run_once(self) -> int:
        """One pass: quiet-hours deferral, one claim per channel, every send finished and
        written. Returns how many rows were claimed (sent, retried, failed or deferred)."""
        await asyncio.to_thread(self._defer_quiet_sms)
        total = 0
        try:
            for channel in self.providers:
                total += await self._launch(channel)
            if self._queue is not None:
                await self._queue.join()
        finally:
            await self._stop_senders()
        await self._flush()
        return total

    def _batch_due(self, stop: asyncio.Event) -> bool:
        """Whether the outcomes waiting are written now. While rows still wait to be sent (a backlog
        behind a rate), a write waits for `flush_min` outcomes or until the oldest is
        `flush_max_age_s` old: a write's transaction costs about the same for 5 rows as for 50, and
        writing every `flush_interval_s` whatever came cost each of N processes sharing one rate
        N times the writes a message (two dispatchers at 150/s each: 40 transactions a second
        for 300 messages, where one at 300/s wrote 20). The oldest outcome waits at most
        `flush_max_age_s`, so a crash can send again at most that much more than was in flight."""
        if not self._pending:
            return False
        if len(self._pending) >= self.flush_min or not self._unsent or stop.is_set() or self._stopping:
            return True
        return _time.monotonic() - self._pending_since >= self.flush_max_age_s

    async def _flusher(self, stop: asyncio.Event) -> None:
        while not (stop.is_set() and not self._unsent and not self._pending):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), self.flush_interval_s)
            self._flush_now.clear()
            if not self._batch_due(stop):
                continue
            try:
                await self._flush()
            except Exception:  # a database hiccup: keep the outcomes, try again shortly
                log.exception("writing outcomes failed")
                await asyncio.sleep(self.idle_s)

    async def _launcher(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if _time.monotonic() - self._last_quiet_check > 5.0:
                    self._last_quiet_check = _time.monotonic()
                    await asyncio.to_thread(self._defer_quiet_sms)
                launched = 0
                for channel in self.providers:
                    launched += await self._launch(channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup: log, wait, go on (rows keep their leases)
                log.exception("dispatcher claim failed")
                launched = 0
            if launched and self._room() > 0:
                continue
            self._room_event.clear()
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._room_event.wait())]
            await asyncio.wait(waiters, timeout=self.idle_s, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()

    async def _renew(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.lease_s / 3)
            if any(self._inflight.values()):
                try:
                    await asyncio.to_thread(self._renew_sync)
                except Exception:
                    log.exception("lease renewal failed")

    def _renew_sync(self) -> None:
        with session_scope(self.engine, immediate=True) as session:
            outbox.renew_leases(session, owner=self.owner, now=self.clock.now(), lease_s=self.lease_s)

    async def run(self, stop: asyncio.Event) -> None:
        """Send until `stop` is set; then finish what is in flight, write it, give back the rows
        not yet handed to a provider, and return."""
        self._stopping = False
        flusher = asyncio.create_task(self._flusher(stop))
        renew = asyncio.create_task(self._renew(stop))
        try:
            await self._launcher(stop)
            # What was handed to a provider finishes and is written; the rest is given back.
            self._stopping = True
            if self._queue is not None:
                await self._queue.join()
            self._flush_now.set()
            await flusher
            # A stop that came while a claim was under way can find the flusher with nothing to
            # write yet, and it ends: what that claim took is written (given back) here.
            await self._flush()
        finally:
            renew.cancel()
            flusher.cancel()
            await self._stop_senders()


def build_providers(settings: Any, engine: Engine | None,
                    limits: Mapping[str, Limiter] | None = None) -> dict[str, Provider]:
    """Telegram and Twilio when configured; the log sink for a channel that is not. The Telegram
    provider holds the Telegram limiter (`limits`) for the conversation's replies."""
    from outreach.providers.logsink import LogSinkProvider

    providers: dict[str, Provider] = {}
    if settings.telegram_enabled:
        from outreach.providers.telegram import TelegramProvider

        providers["telegram"] = TelegramProvider(settings.telegram_bot_token, api_base=settings.telegram_api_base,
                                                 limiter=(limits or {}).get("telegram"))
    else:
        providers["telegram"] = LogSinkProvider("telegram", engine, settings.data_dir)
    if settings.twilio_enabled:
        from outreach.providers.twilio import TwilioProvider

        providers["sms"] = TwilioProvider(settings.twilio_account_sid, settings.twilio_auth_token,
                                          settings.sms_sender_rates[0][0], api_base=settings.twilio_api_base,
                                          public_base_url=settings.public_base_url)
    else:
        providers["sms"] = LogSinkProvider("sms", engine, settings.data_dir)
    # A console conversation (`nuanxin chat`) is on this machine: a staff answer to it is
    # "delivered" into its message log, where the chat shows it at the next prompt.
    providers["console"] = LogSinkProvider("console", engine, settings.data_dir)
    return providers
