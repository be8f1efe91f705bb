"""The dispatcher: takes due rows from the outbox and sends them, exactly as fast as allowed.

One cycle, per channel: claim a batch under a lease (PostgreSQL: SKIP LOCKED, SQLite: an
immediate transaction), re-check every recipient in that same transaction (opted out,
blocked, invalid, deceased → suppressed, never sent), send the rest concurrently under the
provider's rate limits (a row that waited over `second_look_after_s` for its turn is looked
at again right before its grant), then write every outcome in one transaction:
- success → sent (+ provider id, a `MessageLog` "out" row);
- retryable error → queued again with exponential backoff and jitter, until the row's
  deadline (default 24 h after it was queued), then failed; a 429 also pauses the provider;
- permanent error → failed; a stopped/invalid contact is marked (models.actions) and, when
  the row allows it, the message falls back to the beneficiary's other verified, reachable
  contact on the other channel (a new row, derived idempotency key).
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
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import Session, col

from models.actions import mark_blocked, mark_invalid, opt_out
from models.bulk import Driver
from models.clock import Clock, SystemClock
from models.conversations import MessageLog
from models.db import read_scope, session_scope
from models.outbox import OutboxMessage, OutboxStatus
from models.people import Beneficiary, BeneficiaryStatus, Contact
from models.phone import mask_phone
from outreach.outbox import (
    Change,
    Claimed,
    apply_changes,
    claim,
    defer_due,
    derived_key,
    enqueue,
    renew_leases,
)
from outreach.providers.base import (
    AddressInvalid,
    ChannelMisconfigured,
    ConnectionFailed,
    ContactStopped,
    OutgoingMessage,
    Provider,
    SendError,
    SendResult,
    TemporaryFailure,
    Throttled,
)
from outreach.ratelimit import ProviderLimits, limits_for

log = logging.getLogger("nuanxin.dispatcher")

OTHER_CHANNEL = {"telegram": "sms", "sms": "telegram"}
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
    suppressed: str | None = None  # the second look found the recipient stopped: not sent, why
    given_back: bool = False  # the dispatcher is stopping: not sent, back in the queue at once
    at: datetime | None = None


class _GiveBack(Exception):
    """The dispatcher is stopping: a row not yet sent goes back to the queue, lease released."""


class _Stopped(Exception):
    """The second look found that the row's recipient must not get it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Look:
    """One look at the rows waiting to be sent (see `Dispatcher._second_look`)."""

    started: float  # the clock's seconds
    rows: set[int]
    reasons: dict[int, str]  # row id → why it must not go
    query: asyncio.Future[dict[int, str]] | None = None  # the query behind `reasons`, while it runs

    def covers(self, row_id: int, checked: float, now: float, max_age: float) -> bool:
        return row_id in self.rows and self.started > checked and now - self.started <= max_age


def _suppression(row_id: int, reason: str) -> Change:
    """A claimed row that is not sent because of its recipient: suppressed, lease released."""
    return Change(row_id, OutboxStatus.SENDING.value, OutboxStatus.SUPPRESSED.value, reason,
                  {"lease_owner": None, "lease_expires_at": None, "error": reason})


def queue_fallback(session: Session, r: Claimed | OutboxMessage, contact: Contact | None,
                   now: datetime) -> int | None:
    """Queue the message again on the beneficiary's other channel, to a verified, reachable
    contact (their own before a family member's). Returns the new row's id, or None."""
    beneficiary_id = r.beneficiary_id or (contact.beneficiary_id if contact else None)
    other = OTHER_CHANNEL.get(r.channel)
    if beneficiary_id is None or other is None:
        return None
    beneficiary = session.get(Beneficiary, beneficiary_id)
    if beneficiary is None or beneficiary.status == BeneficiaryStatus.DECEASED.value:
        return None
    candidates = session.execute(select(Contact).where(
        col(Contact.beneficiary_id) == beneficiary_id, col(Contact.channel) == other,
        col(Contact.verified) == True)).scalars().all()  # noqa: E712
    target = next((c for c in candidates if c.reachable and c.family_member_id is None), None) or next(
        (c for c in candidates if c.reachable), None)
    if target is None:
        return None
    extra_in = dict(r.extra or {})
    body = str(extra_in.get("fallback_body") or r.body)
    drop = ("buttons", "fallback_body") if other == "sms" else ("fallback_body",)
    extra = {k: v for k, v in extra_in.items() if k not in drop}
    done = enqueue(session, key=derived_key(r.idempotency_key, f"fallback:{other}"), kind=r.kind,
                   channel=other, address=target.address, body=body, now=now, beneficiary_id=beneficiary_id,
                   contact_id=target.id, occurrence=r.occurrence, language=r.language,
                   segments=_sms_segments(body) if other == "sms" else 1, urgent=r.urgent,
                   allow_fallback=False, broadcast_id=r.broadcast_id, deadline_at=r.deadline_at, extra=extra)
    if not done.created:
        return None
    shown = mask_phone(target.address) if other == "sms" else target.address
    log.info("outbox %s: fallback to %s %s as outbox %s", r.id, other, shown, done.message_id)
    return done.message_id


def _sms_segments(text: str) -> int:
    try:
        from outreach.sms_text import sms_length

        return sms_length(text).segments
    except ImportError:  # pragma: no cover
        per = 160 if text.isascii() else 70
        return max(1, -(-len(text) // per))


class Dispatcher:
    def __init__(self, engine: Engine, providers: Mapping[str, Provider], clock: Clock | None = None,
                 settings: Any = None, *, owner: str | None = None, batch_size: int = 500,
                 concurrency: int = 256, max_inflight: int | None = None, lease_s: float = 60.0,
                 flush_max: int = 200, flush_interval_s: float = 0.05,
                 retry_base_s: float = 30.0, retry_max_s: float = 3600.0,
                 default_deadline: timedelta = timedelta(hours=24), send_timeout_s: float = 30.0,
                 max_hold_s: float = 2.0, idle_s: float = 0.5, second_look_after_s: float = 1.0,
                 limits: Mapping[str, ProviderLimits] | None = None,
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
        self.lease_s = lease_s
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.default_deadline = default_deadline
        self.send_timeout_s = send_timeout_s
        self.max_hold_s = max_hold_s
        self.idle_s = idle_s
        self.second_look_after_s = second_look_after_s
        self.sleep = sleep or asyncio.sleep
        self.rng = random.Random(seed)
        self.tz = getattr(settings, "tz", None)
        self.quiet_start: time | None = getattr(settings, "quiet_hours_start", None)
        self.quiet_end: time | None = getattr(settings, "quiet_hours_end", None)
        if limits is None:
            limits = {ch: limits_for(ch, self.clock,
                                     telegram_rate=getattr(settings, "telegram_rate_per_s", 30.0),
                                     telegram_per_chat=getattr(settings, "telegram_per_chat_per_s", 1.0),
                                     sms_segments_per_s=getattr(settings, "twilio_segments_per_s", 1.0))
                      for ch in self.providers}
        self.limits = dict(limits)
        self._inflight: dict[str, int] = {ch: 0 for ch in self.providers}
        self._last_quiet_check = 0.0
        # Claimed rows wait here for one of `concurrency` sender tasks (made per run, in its loop).
        self._queue: asyncio.Queue[Claimed] | None = None
        self._stopping = False
        self._senders: list[asyncio.Task[None]] = []
        self._unsent = 0  # rows handed to the senders whose outcome is not yet in `_pending`
        self._turns: dict[str, asyncio.Lock] = {}  # per channel: whose turn it is to wait for the pace
        self._pending: list[Outcome] = []
        # The second look (see `_second_look`): each claimed row not yet sent, with when it was
        # claimed (the clock's seconds); the latest look at them, and the one under way.
        self._waiting: dict[int, tuple[Claimed, float]] = {}
        self._look: _Look | None = None
        self._looking: _Look | None = None
        self._flush_now = asyncio.Event()
        self._room_event = asyncio.Event()
        self.stats = {"sent": 0, "retried": 0, "failed": 0, "suppressed": 0, "deferred": 0, "fallbacks": 0,
                      "given_back": 0}

    # --- how many to claim ---------------------------------------------------------------
    def _claim_cap(self, channel: str) -> int:
        """A limited channel claims no more than it can send well within one lease."""
        cap = self.batch_size
        limit = self.limits.get(channel)
        if limit is not None and limit.rate is not None:
            cap = min(cap, max(1, int(limit.rate * self.lease_s / 4)))
        return max(0, cap - self._inflight.get(channel, 0))

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
            n = defer_due(session, (t.channel == "sms") & (t.urgent == False), morning,  # noqa: E712
                          "deferred: quiet hours", now)
        self.stats["deferred"] += n
        return n

    def _claim(self, channel: str, limit: int) -> list[Claimed]:
        now = self.clock.now()
        with session_scope(self.engine, immediate=True) as session:
            rows = claim(session, owner=self.owner, now=now, lease_s=self.lease_s, limit=limit, channel=channel)
            if not rows:
                return []
            stopped = self._recheck(session, rows, now)
        return [r for r in rows if r.id not in stopped]

    def _recheck(self, session: Session, rows: list[Claimed], now: datetime) -> set[int]:
        """Right before sending: suppress rows whose recipient cannot or must not get them."""
        reasons = self._stop_reasons(session, rows)
        changes = [_suppression(row_id, reason) for row_id, reason in reasons.items()]
        apply_changes(session, changes, now)
        self.stats["suppressed"] += len(changes)
        return set(reasons)

    def _stop_reasons(self, session: Session, rows: list[Claimed]) -> dict[int, str]:
        """Rows (of one channel) whose recipient opted out, blocked the bot, has an invalid
        address or died: row id → why. Runs for every batch, so through the driver (`models.bulk`)."""
        if not rows:
            return {}
        db = Driver(session)
        channel = rows[0].channel
        addresses = sorted({r.address for r in rows})
        # address -> (opted_out_at, blocked_at, invalid_at, beneficiary_id)
        contacts = {row[0]: row[1:] for row in db.execute(
            "SELECT address, opted_out_at, blocked_at, invalid_at, beneficiary_id FROM contact "
            f"WHERE channel = ? AND address IN ({db.marks(addresses)})", [channel, *addresses])}
        ben_ids = sorted({r.beneficiary_id for r in rows if r.beneficiary_id} | {
            c[3] for c in contacts.values() if c[3]})
        deceased = set()
        if ben_ids:
            deceased = {row[0] for row in db.execute(
                f"SELECT id FROM beneficiary WHERE id IN ({db.marks(ben_ids)}) AND status = ?",
                [*ben_ids, BeneficiaryStatus.DECEASED.value])}
        reasons: dict[int, str] = {}
        for r in rows:
            opted_out_at, blocked_at, invalid_at, contact_beneficiary = contacts.get(r.address, (None,) * 4)
            reason = None
            if opted_out_at is not None:
                reason = "suppressed: opted out"
            elif blocked_at is not None:
                reason = "suppressed: contact blocked the bot"
            elif invalid_at is not None:
                reason = "suppressed: address invalid"
            elif (r.beneficiary_id or contact_beneficiary) in deceased:
                reason = "suppressed: beneficiary deceased"
            if reason:
                reasons[r.id] = reason
        return reasons

    def _look_at(self, rows: list[Claimed]) -> dict[int, str]:
        """The second look's query: `_stop_reasons` for rows of any channels."""
        by_channel: dict[str, list[Claimed]] = {}
        for r in rows:
            by_channel.setdefault(r.channel, []).append(r)
        reasons: dict[int, str] = {}
        with read_scope(self.engine) as session:
            for channel_rows in by_channel.values():
                for i in range(0, len(channel_rows), 500):
                    reasons.update(self._stop_reasons(session, channel_rows[i:i + 500]))
        return reasons

    # --- sending -----------------------------------------------------------------------
    async def _acquire(self, row: Claimed, claimed_at: float) -> float:
        """Wait for the rate limit; return >0 (seconds) when the row should rather go back to the
        queue. Raises `_Stopped` when the second look finds the recipient stopped."""
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

        if self._stopping:
            raise _GiveBack
        limits = self.limits.get(row.channel)
        if limits is None or limits.unlimited():
            await look_again_if_due()
            return 0.0
        cost = float(row.segments) if row.channel == "sms" else 1.0
        waited = 0.0
        while True:
            # A chat that must wait longer than max_hold goes back to the queue rather than
            # holding a sending slot (five reminders to one chat must not stall a broadcast).
            key_wait = limits.key_wait(row.address)
            if key_wait > self.max_hold_s:
                return key_wait
            if key_wait > 0:
                await self.sleep(key_wait)
                waited += key_wait
                continue
            # One sender at a time waits for the channel's pace: grants go out in turn, and
            # each grant wakes one sender, not every sender that is waiting.
            async with self._turns.setdefault(row.channel, asyncio.Lock()):
                while True:
                    if self._stopping:
                        raise _GiveBack
                    await look_again_if_due()
                    wait = limits.try_acquire(row.address, cost)
                    if wait <= 0:
                        return 0.0
                    if limits.key_wait(row.address) > 0:
                        break  # another message to this chat went first: wait for the chat outside the turn
                    if waited + wait > max(self.max_hold_s, self.lease_s / 2) and limits.paused_for() > 0:
                        return wait  # a long pause after a 429: back to the queue
                    await self.sleep(wait)
                    waited += wait

    async def _send_one(self, row: Claimed) -> Outcome:
        provider = self.providers[row.channel]
        claimed_at = self._waiting.get(row.id, (row, self.clock.now().timestamp()))[1]
        try:
            defer = await self._acquire(row, claimed_at)
        except _Stopped as stopped:
            return Outcome(row, suppressed=stopped.reason, at=self.clock.now())
        except _GiveBack:
            return Outcome(row, given_back=True, at=self.clock.now())
        finally:
            self._waiting.pop(row.id, None)
        if defer > 0:
            return Outcome(row, deferred_s=defer)
        message = OutgoingMessage(outbox_id=row.id, channel=row.channel, address=row.address, body=row.body,
                                  segments=row.segments, extra=row.extra, idempotency_key=row.idempotency_key,
                                  beneficiary_id=row.beneficiary_id)
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
                self.limits.get(row.channel, ProviderLimits(self.clock, None)).pause(exc.retry_after)
            elif isinstance(exc, ChannelMisconfigured):
                self.limits.get(row.channel, ProviderLimits(self.clock, None)).pause(60.0)
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
    # before its grant. One look covers every row waiting at that moment, in one query, and
    # is shared: the rows after it find their answer there until it is that old itself. A
    # query per row would cost a thread hop per message and hold up the channel's turn.
    async def _second_look(self, row: Claimed, checked: float) -> str | None:
        """Why the row must not go, from a look that started after `checked` (when the row was
        last looked at) and is at most `second_look_after_s` old; None when it may go."""
        now = self.clock.now().timestamp()
        if self._look is not None and self._look.covers(row.id, checked, now, self.second_look_after_s):
            return self._look.reasons.get(row.id)
        # The look under way if it covers this row; else a new one at every row waiting now.
        look = self._looking
        if look is None or not look.covers(row.id, checked, now, self.second_look_after_s):
            waiting = {r.id: r for r, _ in self._waiting.values()} | {row.id: row}
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

    # --- writing outcomes ----------------------------------------------------------------
    def _backoff(self, attempts: int) -> float:
        base = min(self.retry_max_s, self.retry_base_s * (2 ** max(0, attempts - 1)))
        return base * self.rng.uniform(0.5, 1.5)

    def _record(self, outcomes: list[Outcome]) -> None:
        now = self.clock.now()
        changes: list[Change] = []
        logs: list[dict[str, Any]] = []
        permanent: list[Outcome] = []
        sending = OutboxStatus.SENDING.value
        release = {"lease_owner": None, "lease_expires_at": None}
        for o in outcomes:
            r = o.row
            if o.result is not None:
                changes.append(Change(r.id, sending, OutboxStatus.SENT.value,
                                      f"sent via {self.providers[r.channel].name}",
                                      {**release, "provider_message_id": o.result.provider_message_id[:64],
                                       "sent_at": o.at or now, "error_code": None, "error": None}))
                if not getattr(self.providers[r.channel], "writes_message_log", False):
                    logs.append({"channel": r.channel, "address": r.address, "direction": "out", "text": r.body,
                                 "attachments": [], "beneficiary_id": r.beneficiary_id, "outbox_id": r.id,
                                 "provider_message_id": o.result.provider_message_id[:64],
                                 "created_at": o.at or now})
                self.stats["sent"] += 1
            elif o.suppressed is not None:
                changes.append(_suppression(r.id, o.suppressed))
                self.stats["suppressed"] += 1
            elif o.given_back:
                changes.append(Change(r.id, sending, OutboxStatus.QUEUED.value, "given back: the dispatcher stopped",
                                      {**release, "attempts": max(0, r.attempts - 1)}))
                self.stats["given_back"] += 1
            elif o.deferred_s > 0:
                changes.append(Change(r.id, sending, OutboxStatus.QUEUED.value,
                                      f"deferred: rate limit ({o.deferred_s:.1f}s)",
                                      {**release, "next_attempt_at": now + timedelta(seconds=o.deferred_s),
                                       "attempts": max(0, r.attempts - 1)}))
                self.stats["deferred"] += 1
            elif o.error is not None and o.error.retryable:
                err = o.error
                delay = err.retry_after if isinstance(err, Throttled) else self._backoff(r.attempts)
                deadline = r.deadline_at or (r.created_at + self.default_deadline)
                values = {**release, "error_code": str(err.code or type(err).__name__)[:32],
                          "error": f"{type(err).__name__}: {err.detail}"[:500]}
                if now + timedelta(seconds=delay) > deadline:
                    changes.append(Change(r.id, sending, OutboxStatus.FAILED.value,
                                          f"deadline passed after {r.attempts} attempts: {type(err).__name__}",
                                          values))
                    self.stats["failed"] += 1
                else:
                    changes.append(Change(r.id, sending, OutboxStatus.QUEUED.value,
                                          f"retry in {delay:.1f}s: {type(err).__name__} {err.code}".strip(),
                                          {**values, "next_attempt_at": now + timedelta(seconds=delay)}))
                    self.stats["retried"] += 1
            else:
                permanent.append(o)
        with session_scope(self.engine, immediate=True) as session:
            apply_changes(session, changes, now)
            Driver(session).insert_many(_MESSAGE_LOG, logs)
            for o in permanent:
                self._permanent(session, o, now)
        sms_sids = [o.result.provider_message_id for o in outcomes if o.result is not None and o.row.channel == "sms"]
        if sms_sids:
            from outreach.receipts import apply_early_receipts

            apply_early_receipts(self.engine, sms_sids, now)

    def _permanent(self, session: Session, o: Outcome, now: datetime) -> None:
        """Fail the row, mark the contact, fall back to the other channel when allowed."""
        r, err = o.row, o.error
        assert err is not None
        kind = type(err).__name__
        values = {"lease_owner": None, "lease_expires_at": None, "error_code": str(err.code or kind)[:32],
                  "error": f"{kind}: {err.detail}"[:500]}
        contact = session.execute(select(Contact).where(col(Contact.channel) == r.channel,
                                                        col(Contact.address) == r.address)).scalar_one_or_none()
        if contact is not None:
            if isinstance(err, ContactStopped) and err.reason == "opted_out":
                opt_out(session, contact, reason=f"provider: {err.detail or err.code}"[:200], actor="dispatcher",
                        now=now)
            elif isinstance(err, ContactStopped):
                mark_blocked(session, contact, reason=err.detail[:200] or "blocked", now=now)
            elif isinstance(err, AddressInvalid):
                mark_invalid(session, contact, reason=f"{err.code} {err.detail}"[:200], now=now)
        apply_changes(session, [Change(r.id, OutboxStatus.SENDING.value, OutboxStatus.FAILED.value,
                                       f"permanent: {kind} {err.code}".strip(), values)], now)
        self.stats["failed"] += 1
        if isinstance(err, ContactStopped | AddressInvalid) and r.allow_fallback:
            self._fallback(session, r, contact, now)

    def _fallback(self, session: Session, r: Claimed, contact: Contact | None, now: datetime) -> None:
        if OTHER_CHANNEL.get(r.channel) not in self.providers:
            return
        if queue_fallback(session, r, contact, now) is not None:
            self.stats["fallbacks"] += 1

    # --- the loop ------------------------------------------------------------------------
    # Claimed rows go to a queue served by `concurrency` sender tasks (a fixed pool: a task and
    # a semaphore wait per row cost more than the send's own bookkeeping at thousands a
    # second); each outcome joins `_pending`, which one flusher writes in batches. A slow send
    # holds up nothing but its sender, and the in-flight window (claimed, outcome not yet
    # written: what a crash could send twice) stays under `max_inflight`.
    def _room(self) -> int:
        return self.max_inflight - sum(self._inflight.values())

    async def _launch(self, channel: str) -> int:
        cap = min(self._claim_cap(channel), self._room())
        if cap <= 0 or (self.limits.get(channel) and self.limits[channel].paused_for() > self.lease_s / 4):
            return 0
        self._inflight[channel] += cap  # reserve, so a concurrent launch does not claim the same room
        try:
            rows = await asyncio.to_thread(self._claim, channel, cap)
        finally:
            self._inflight[channel] -= cap
        self._inflight[channel] += len(rows)
        claimed_at = self.clock.now().timestamp()
        self._waiting.update((r.id, (r, claimed_at)) for r in rows)
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
        for task in senders:
            task.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        while queue is not None and not queue.empty():
            self._inflight[queue.get_nowait().channel] -= 1
            self._unsent -= 1
        self._waiting.clear()

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
            self._pending.append(outcome)  # not `append(await ...)`: _flush swaps the list meanwhile
            self._unsent -= 1
            queue.task_done()
            if len(self._pending) >= self.flush_max:
                self._flush_now.set()

    async def _flush(self) -> int:
        if not self._pending:
            return 0
        batch, self._pending = self._pending, []
        try:
            await asyncio.to_thread(self._record, batch)
        except BaseException:
            self._pending[:0] = batch  # written next time; the rows keep their leases meanwhile
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

    async def _flusher(self, stop: asyncio.Event) -> None:
        while not (stop.is_set() and not self._unsent and not self._pending):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), self.flush_interval_s)
            self._flush_now.clear()
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
            renew_leases(session, owner=self.owner, now=self.clock.now(), lease_s=self.lease_s)

    async def run(self, stop: asyncio.Event) -> None:
        """Send until `stop` is set; then finish the sends already handed to a provider, give
        every other claimed row back to the queue (lease released, due at once, for the next
        process), write it all, and return: stopping takes about one rate-limit wait, not the
        time to send every claimed row."""
        flusher = asyncio.create_task(self._flusher(stop))
        renew = asyncio.create_task(self._renew(stop))
        try:
            await self._launcher(stop)
            self._stopping = True
            if self._queue is not None:
                await self._queue.join()
            self._flush_now.set()
            await flusher
        finally:
            renew.cancel()
            flusher.cancel()
            await self._stop_senders()


def build_providers(settings: Any, engine: Engine | None) -> dict[str, Provider]:
    """Telegram and Twilio when configured; the log sink for a channel that is not."""
    from outreach.providers.logsink import LogSinkProvider

    providers: dict[str, Provider] = {}
    if settings.telegram_enabled:
        from outreach.providers.telegram import TelegramProvider

        providers["telegram"] = TelegramProvider(settings.telegram_bot_token, api_base=settings.telegram_api_base)
    else:
        providers["telegram"] = LogSinkProvider("telegram", engine, settings.data_dir)
    if settings.twilio_enabled:
        from outreach.providers.twilio import TwilioProvider

        providers["sms"] = TwilioProvider(settings.twilio_account_sid, settings.twilio_auth_token,
                                          settings.twilio_from_number, api_base=settings.twilio_api_base,
                                          public_base_url=settings.public_base_url)
    else:
        providers["sms"] = LogSinkProvider("sms", engine, settings.data_dir)
    return providers
