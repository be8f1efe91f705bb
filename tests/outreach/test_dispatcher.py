"""The dispatcher's rules: send, suppress, retry, fail, mark, fall back, wait out quiet hours."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from outreach_helpers import add_person, contact, events, fake_sleep, queue, row, rows
from sqlalchemy import func, select
from sqlmodel import Session

from models.actions import record_death
from models.conversations import MessageLog
from models.db import session_scope, write_scope
from models.outbox import OutboxMessage, OutboxStatus
from models.people import Beneficiary, Contact
from models.staff import AuditLog
from outreach.dispatcher import Dispatcher, build_providers, in_quiet_hours, quiet_hours_end
from outreach.limits import LocalLimiter, ProviderLimit
from outreach.outbox import claim
from outreach.providers.base import AddressInvalid, ContactStopped, Rejected, TemporaryFailure, Throttled
from outreach.providers.logsink import LogSinkProvider
from tests.fakes.scripted import ScriptedProvider
from tests.fakes.waiting import finished, until


def make(engine, clock, settings, **kw):
    tg = ScriptedProvider("telegram", "tg", clock)
    sms = ScriptedProvider("sms", "sms", clock)
    kw.setdefault("retry_base_s", 10.0)
    d = Dispatcher(engine, {"telegram": tg, "sms": sms}, clock, settings, sleep=fake_sleep(clock), seed=1, **kw)
    return d, tg, sms


async def test_queued_message_is_sent_recorded_and_logged(db_engine, clock, settings):
    """A due row is sent once: status sent with the provider's id, a MessageLog 'out' row, and
    each transition recorded with its reason."""
    b, c = add_person(db_engine, telegram="1001")
    oid = queue(db_engine, clock, channel="telegram", address="1001", beneficiary_id=b,
                extra={"buttons": [[{"text": "确认", "data": "ok"}]]})
    d, tg, _ = make(db_engine, clock, settings)
    assert await d.run_once() == 1
    r = row(db_engine, oid)
    assert r.status == "sent" and r.provider_message_id == "tg-1" and r.sent_at == clock.now()
    assert r.lease_owner is None and r.attempts == 1
    assert [m.message.extra["buttons"][0][0]["text"] for m in tg.sent] == ["确认"]
    assert [(f, t) for f, t, _ in events(db_engine, oid)] == [(None, "queued"), ("queued", "sending"),
                                                             ("sending", "sent")]
    with session_scope(db_engine) as s:
        logs = s.exec(select(MessageLog).where(MessageLog.outbox_id == oid)).scalars().all()
        assert [(m.direction, m.channel, m.address) for m in logs] == [("out", "telegram", "1001")]
    assert await d.run_once() == 0 and len(tg.sent) == 1


async def test_opted_out_a_second_before_sending_is_suppressed_not_sent(db_engine, clock, settings):
    """The recipient is re-checked in the claiming transaction: an opt-out that landed a
    second earlier (after the row was queued) stops the message."""
    b, c = add_person(db_engine, sms="+8613800000001")
    oid = queue(db_engine, clock, channel="sms", address="+8613800000001", beneficiary_id=b)
    with write_scope(db_engine) as s:  # written directly, as a racing inbound STOP would be
        ct = s.get(Contact, c["sms"])
        ct.opted_out_at = clock.now() - timedelta(seconds=1)
        s.add(ct)
    d, _, sms = make(db_engine, clock, settings)
    await d.run_once()
    assert sms.attempts == []
    r = row(db_engine, oid)
    assert r.status == "suppressed" and "opted out" in r.error
    assert events(db_engine, oid)[-1][:2] == ("sending", "suppressed")


async def test_a_row_that_waited_behind_the_rate_limit_is_looked_at_again_before_it_goes(db_engine, clock, settings):
    """Rows waiting longer than `second_look_after_s` (a second by default) get a second look: recipients who opted out or
    blocked the bot meanwhile are suppressed with the reason, not sent, and a blocked contact
    is not turned into an opt-out (the look suppresses; it records nothing about the contact)."""
    people = [add_person(db_engine, telegram=str(3001 + i)) for i in range(3)]
    ids = [queue(db_engine, clock, channel="telegram", address=str(3001 + i), beneficiary_id=b)
           for i, (b, _) in enumerate(people)]

    def first_send_stops_the_others(message):
        if message.address == "3001":  # a STOP and a 403 from a webhook, while the others wait
            with write_scope(db_engine) as s:
                opted, blocked = s.get(Contact, people[1][1]["telegram"]), s.get(Contact, people[2][1]["telegram"])
                opted.opted_out_at = blocked.blocked_at = clock.now()
                s.add_all([opted, blocked])

    # One a second: the second row goes a second after the claim, the third two seconds after.
    d, tg, _ = make(db_engine, clock, settings, limits={"telegram": LocalLimiter(ProviderLimit.one_sender("telegram", 1.0), clock)},
                    second_look_after_s=0.5)
    tg.before_send = first_send_stops_the_others
    assert await d.run_once() == 3
    assert [m.message.address for m in tg.sent] == ["3001"]
    assert [(row(db_engine, i).status, row(db_engine, i).error) for i in ids] == [
        ("sent", None), ("suppressed", "suppressed: opted out"), ("suppressed", "suppressed: contact blocked the bot")]
    blocked = contact(db_engine, people[2][1]["telegram"])
    assert blocked.opted_out_at is None and blocked.blocked_at is not None
    assert d.stats["suppressed"] == 2 and d.stats["failed"] == 0


async def test_a_look_covers_the_rows_next_in_line_and_a_row_further_back_still_gets_its_own(
        db_engine, clock, settings):
    """Behind a limit of 20 a second, 200 claimed rows wait up to ten seconds. Each second look
    covers the rows the limit grants while the look is fresh, not the whole backlog: at most
    3 rows are looked at per message (looking at every waiting row each time is about 10). A
    person at the back of the queue who opts out while the first row goes is still looked at
    before their turn and is not sent."""
    people = [add_person(db_engine, telegram=str(5000 + i)) for i in range(200)]
    ids = [queue(db_engine, clock, channel="telegram", address=str(5000 + i), beneficiary_id=b)
           for i, (b, _) in enumerate(people)]
    last = people[-1][1]["telegram"]

    def the_last_opts_out_while_the_first_goes(message):
        if message.address == "5000":
            with write_scope(db_engine) as s:
                c = s.get(Contact, last)
                c.opted_out_at = clock.now()
                s.add(c)

    d, tg, _ = make(db_engine, clock, settings, second_look_after_s=0.5,
                    limits={"telegram": LocalLimiter(ProviderLimit.one_sender("telegram", 20.0), clock)})
    tg.before_send = the_last_opts_out_while_the_first_goes
    looked: list[int] = []
    look_at = d._look_at
    d._look_at = lambda waiting: looked.append(len(waiting)) or look_at(waiting)
    assert await d.run_once() == 200
    assert sorted(m.message.address for m in tg.sent) == sorted(str(5000 + i) for i in range(199))
    assert row(db_engine, ids[-1]).status == "suppressed" and row(db_engine, ids[-1]).error == "suppressed: opted out"
    assert looked and sum(looked) <= 3 * 200, (len(looked), sum(looked))


async def test_the_watchers_recent_look_answers_the_second_look_and_a_stale_one_does_not(db_engine, clock, settings):
    """After the grant the second look is a lookup in the watcher's last look at the waiting
    rows, if that look is under a second old and started after the row was claimed; otherwise
    the row is looked at alone, then."""
    from outreach.dispatcher import _Look
    from outreach.outbox import claim as claim_rows

    _, c = add_person(db_engine, telegram="3101")
    queue(db_engine, clock, channel="telegram", address="3101")
    with write_scope(db_engine) as s:
        [claimed] = claim_rows(s, owner="t", now=clock.now(), lease_s=60, limit=1, channel="telegram")
    d, _, _ = make(db_engine, clock, settings)
    queried = []
    d._look_at = lambda rows: queried.append([r.id for r in rows]) or {}
    now = clock.now().timestamp()
    d._look = _Look(started=now - 0.4, rows={claimed.id}, reasons={claimed.id: "suppressed: opted out"})
    assert await d._second_look(claimed, checked=now - 1.5) == "suppressed: opted out" and queried == []
    clock.advance(timedelta(seconds=0.7))  # the look is now 1.1 s old: too old
    assert await d._second_look(claimed, checked=now - 1.5) is None and queried == [[claimed.id]]
    d._look = _Look(started=now, rows={claimed.id + 1}, reasons={})  # recent, but not of this row
    assert await d._second_look(claimed, checked=now - 1.5) is None and len(queried) == 2


async def test_deceased_beneficiary_and_blocked_contact_are_suppressed(db_engine, clock, settings):
    """Nothing goes to a beneficiary recorded as deceased, nor to a chat that blocked the bot."""
    b1, _ = add_person(db_engine, telegram="2001")
    b2, c2 = add_person(db_engine, telegram="2002")
    o1 = queue(db_engine, clock, channel="telegram", address="2001", beneficiary_id=b1)
    o2 = queue(db_engine, clock, channel="telegram", address="2002", beneficiary_id=b2)
    d, tg, _ = make(db_engine, clock, settings)
    with write_scope(db_engine) as s:
        # Claimed first, then the death is recorded: record_death only suppresses queued rows,
        # so it is the dispatcher's re-check that must stop it.
        claim(s, owner="other", now=clock.now(), lease_s=1, limit=10)
        record_death(s, s.get(Beneficiary, b1), died_on=date(2026, 3, 1), actor="staff1", now=clock.now())
        ct = s.get(Contact, c2["telegram"])
        ct.blocked_at = clock.now()
        s.add(ct)
    clock.advance(2)  # the other dispatcher's lease expires
    await d.run_once()
    assert tg.attempts == []
    assert row(db_engine, o1).status == "suppressed" and "deceased" in row(db_engine, o1).error
    assert row(db_engine, o2).status == "suppressed" and "blocked" in row(db_engine, o2).error


async def test_blocked_bot_marks_contact_and_falls_back_to_verified_sms(db_engine, clock, settings):
    """403 'bot was blocked' fails the row for good, marks the contact blocked (with an audit
    row), and queues the same message by SMS to the beneficiary's verified phone under a
    derived idempotency key; the copy does not fall back again."""
    b, c = add_person(db_engine, telegram="3001", sms="+8613800003001")
    oid = queue(db_engine, clock, channel="telegram", address="3001", beneficiary_id=b, key="remind:b:2026-03",
                extra={"buttons": [[{"text": "好", "data": "y"}]]})
    d, tg, sms = make(db_engine, clock, settings)
    tg.errors["3001"] = ContactStopped("blocked", "Forbidden: bot was blocked by the user", 403)
    await d.run_once()
    r = row(db_engine, oid)
    assert r.status == "failed" and r.error_code == "403"
    assert contact(db_engine, c["telegram"]).blocked_at == clock.now()
    all_rows = rows(db_engine)
    copy = [x for x in all_rows if x.channel == "sms"]
    assert len(copy) == 1 and copy[0].idempotency_key == "remind:b:2026-03:fallback:sms"
    assert copy[0].allow_fallback is False and "buttons" not in copy[0].extra
    await d.run_once()
    assert [m.message.address for m in sms.sent] == ["+8613800003001"]
    with session_scope(db_engine) as s:
        actions = s.exec(select(AuditLog.action)).scalars().all()
    assert "contact.blocked" in actions


async def test_unsubscribed_number_is_opted_out_and_falls_back_to_telegram(db_engine, clock, settings):
    """Twilio 21610 (unsubscribed) opts the contact out, which also suppresses its other queued
    rows, and the message goes by Telegram instead."""
    b, c = add_person(db_engine, telegram="4001", sms="+8613800004001")
    o1 = queue(db_engine, clock, channel="sms", address="+8613800004001", beneficiary_id=b)
    o2 = queue(db_engine, clock, channel="sms", address="+8613800004001", beneficiary_id=b,
               not_before=clock.now() + timedelta(hours=1))
    d, tg, sms = make(db_engine, clock, settings)
    sms.errors["+8613800004001"] = ContactStopped("opted_out", "unsubscribed", 21610)
    await d.run_once()
    assert row(db_engine, o1).status == "failed"
    assert row(db_engine, o2).status == "suppressed"
    assert contact(db_engine, c["sms"]).opted_out_at is not None
    await d.run_once()
    assert [m.message.address for m in tg.sent] == ["4001"]


async def test_no_fallback_to_unverified_contact_or_when_not_allowed(db_engine, clock, settings):
    """Fallback needs a verified, reachable contact, and the row's permission."""
    b1, c1 = add_person(db_engine, telegram="5001", sms="+8613800005001", verified=False)
    b2, c2 = add_person(db_engine, telegram="5002", sms="+8613800005002")
    queue(db_engine, clock, channel="telegram", address="5001", beneficiary_id=b1)
    queue(db_engine, clock, channel="telegram", address="5002", beneficiary_id=b2, allow_fallback=False)
    d, tg, sms = make(db_engine, clock, settings)
    tg.errors["5001"] = AddressInvalid("Bad Request: chat not found", 400)
    tg.errors["5002"] = AddressInvalid("Bad Request: chat not found", 400)
    await d.run_once()
    assert contact(db_engine, c1["telegram"]).invalid_at is not None
    assert contact(db_engine, c2["telegram"]).invalid_at is not None
    assert [r.channel for r in rows(db_engine)] == ["telegram", "telegram"]


async def test_rejected_message_fails_without_marking_contact(db_engine, clock, settings):
    """A refusal of the message itself (too long) is permanent but says nothing about the person."""
    b, c = add_person(db_engine, sms="+8613800006001", telegram="6001")
    oid = queue(db_engine, clock, channel="sms", address="+8613800006001", beneficiary_id=b)
    d, _, sms = make(db_engine, clock, settings)
    sms.errors["+8613800006001"] = Rejected("too long", 21617)
    await d.run_once()
    assert row(db_engine, oid).status == "failed" and row(db_engine, oid).error_code == "21617"
    assert contact(db_engine, c["sms"]).reachable
    assert len(rows(db_engine)) == 1


async def test_temporary_error_retries_with_growing_backoff_then_sends(sqlite_engine, clock, settings):
    """5xx-like failures go back to the queue with exponential backoff (with jitter); the row is
    not due before its time, and is sent once the provider recovers."""
    engine = sqlite_engine
    oid = queue(engine, clock, channel="telegram", address="7001")
    d, tg, _ = make(engine, clock, settings, retry_base_s=10.0)
    tg.script["7001"] = [TemporaryFailure("Bad Gateway", 502)] * 3
    delays = []
    for _ in range(3):
        await d.run_once()
        r = row(engine, oid)
        assert r.status == "queued" and r.error_code == "502"
        delays.append((r.next_attempt_at - clock.now()).total_seconds())
        assert await d.run_once() == 0  # not due yet
        clock.set(r.next_attempt_at)
    await d.run_once()
    assert row(engine, oid).status == "sent" and row(engine, oid).attempts == 4
    assert 5 <= delays[0] <= 15 and 10 <= delays[1] <= 30 and 20 <= delays[2] <= 60


async def test_temporary_errors_past_the_deadline_fail(sqlite_engine, clock, settings):
    """A message that cannot be sent before its deadline fails instead of retrying for ever."""
    engine = sqlite_engine
    oid = queue(engine, clock, channel="telegram", address="7002", deadline_at=clock.now() + timedelta(minutes=1))
    d, tg, _ = make(engine, clock, settings, retry_base_s=20.0)
    tg.errors["7002"] = TemporaryFailure("Bad Gateway", 502)
    for _ in range(10):
        await d.run_once()
        r = row(engine, oid)
        if r.status != "queued":
            break
        clock.set(r.next_attempt_at)
    assert r.status == "failed" and "deadline" in events(engine, oid)[-1][2]
    assert clock.now() <= datetime(2026, 3, 2, 2, 1, tzinfo=UTC) + timedelta(seconds=1)


async def test_throttled_pauses_the_provider_and_requeues_for_retry_after(sqlite_engine, clock, settings):
    """A 429 puts the row back for retry_after seconds and pauses the whole provider."""
    engine = sqlite_engine
    o1 = queue(engine, clock, channel="telegram", address="8001")
    d, tg, _ = make(engine, clock, settings)
    tg.script["8001"] = [Throttled(5)]
    await d.run_once()
    r = row(engine, o1)
    assert r.status == "queued" and r.next_attempt_at == clock.now() + timedelta(seconds=5)
    assert d.limits["telegram"].paused_for() == pytest.approx(5)
    clock.advance(5)
    await d.run_once()
    assert row(engine, o1).status == "sent"


def test_quiet_hours_span_midnight_in_office_time(settings):
    """21:00-08:00 Shanghai: 22:30 and 07:59 are quiet, 08:00 and 20:59 are not; the morning is 08:00 local."""
    from datetime import time

    s, e = settings.quiet_hours_start, settings.quiet_hours_end
    assert in_quiet_hours(time(22, 30), s, e) and in_quiet_hours(time(7, 59), s, e)
    assert not in_quiet_hours(time(8, 0), s, e) and not in_quiet_hours(time(20, 59), s, e)
    now = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)  # 22:30 in Shanghai
    assert quiet_hours_end(now, settings.tz, e) == datetime(2026, 3, 3, 0, 0, tzinfo=UTC)


async def test_quiet_hours_defer_non_urgent_sms_and_send_urgent_ones(db_engine, clock, settings):
    """At 22:30 office time a reminder by SMS waits until 08:00 (still queued, event 'deferred:
    quiet hours'); a one-time code goes at once; Telegram is not held back."""
    clock.set(datetime(2026, 3, 2, 14, 30, tzinfo=UTC))
    reminder = queue(db_engine, clock, channel="sms", address="+8613800009001")
    code = queue(db_engine, clock, channel="sms", address="+8613800009002", urgent=True, body="验证码 123456")
    tg_row = queue(db_engine, clock, channel="telegram", address="9003")
    d, tg, sms = make(db_engine, clock, settings)
    await d.run_once()
    assert [m.message.address for m in sms.sent] == ["+8613800009002"]
    assert len(tg.sent) == 1 and row(db_engine, tg_row).status == "sent"
    r = row(db_engine, reminder)
    assert r.status == "queued" and r.next_attempt_at == datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
    assert events(db_engine, reminder)[-1] == ("queued", "queued", "deferred: quiet hours")
    assert row(db_engine, code).status == "sent"
    clock.set(datetime(2026, 3, 3, 0, 0, tzinfo=UTC))
    await d.run_once()
    assert row(db_engine, reminder).status == "sent"


async def test_expired_lease_is_claimed_again_and_live_lease_is_not(db_engine, clock, settings):
    """Rows of a dispatcher that died stay 'sending' until their lease ends, then another takes them."""
    oid = queue(db_engine, clock, channel="telegram", address="10001")
    with session_scope(db_engine, immediate=True) as s:
        assert len(claim(s, owner="dead", now=clock.now(), lease_s=60, limit=10)) == 1
    d, tg, _ = make(db_engine, clock, settings)
    assert await d.run_once() == 0 and tg.attempts == []
    clock.advance(61)
    assert await d.run_once() == 1
    assert row(db_engine, oid).status == "sent"
    assert any("lease of dead expired" in reason for _, _, reason in events(db_engine, oid))


async def test_a_stalled_dispatcher_does_not_requeue_a_row_another_has_claimed_since(db_engine, clock, settings):
    """A dispatcher stalls mid-send past its lease; another claims the row meanwhile. The first
    one's outcome (a temporary error: back to the queue) changes nothing: the row stays with the
    one that holds its lease, whose outcome is then written."""
    oid = queue(db_engine, clock, channel="telegram", address="10002")
    d, tg, _ = make(db_engine, clock, settings, lease_s=60)
    taken = []

    def taken_over_while_sending(_message):
        clock.advance(61)  # the first dispatcher stalled past its lease
        with session_scope(db_engine, immediate=True) as s:
            taken.extend(claim(s, owner="other", now=clock.now(), lease_s=60, limit=10))

    tg.before_send = taken_over_while_sending
    tg.errors["10002"] = TemporaryFailure("connection reset", "reset")
    assert await d.run_once() == 1 and len(taken) == 1
    r = row(db_engine, oid)
    assert (r.status, r.lease_owner) == ("sending", "other")
    assert not any(to == "queued" for _, to, _ in events(db_engine, oid)[1:])
    with session_scope(db_engine, immediate=True) as s:
        from outreach import outbox

        applied = outbox.move(s, [outbox.sent(taken[0], provider="tg", provider_message_id="tg-9", at=clock.now())],
                              clock.now())
    assert len(applied) == 1 and row(db_engine, oid).status == "sent"


async def test_concurrent_claims_on_postgresql_take_disjoint_rows(pg_engine, clock):
    """SKIP LOCKED: two open claiming transactions never get the same row."""
    for i in range(20):
        queue(pg_engine, clock, channel="telegram", address=str(11000 + i))
    with Session(pg_engine) as s1, Session(pg_engine) as s2:
        a = claim(s1, owner="a", now=clock.now(), lease_s=60, limit=15)
        b = claim(s2, owner="b", now=clock.now(), lease_s=60, limit=15)
        s1.commit()
        s2.commit()
    assert len(a) == 15 and len(b) == 5
    assert not {r.id for r in a} & {r.id for r in b}


async def test_run_stops_when_told_and_sends_everything_due(sqlite_engine, settings):
    """`run(stop)` keeps sending until the event is set (real clock, no rate limit in the way)."""
    from models.clock import SystemClock

    clock = SystemClock()
    engine = sqlite_engine
    for i in range(50):
        with session_scope(engine) as s:
            from outreach.outbox import enqueue

            enqueue(s, key=f"k{i}", kind="t", channel="telegram", address=str(12000 + i), body="x", now=clock.now())
    tg = ScriptedProvider("telegram", "tg", clock)
    d = Dispatcher(engine, {"telegram": tg}, clock, settings, idle_s=0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(d.run(stop))
    await until(lambda: len(tg.sent) == 50, "the 50 rows sent")
    stop.set()
    await finished(task, "run() after stop")
    assert len(tg.sent) == 50
    with session_scope(engine) as s:
        assert s.execute(select(func.count()).where(OutboxMessage.status == OutboxStatus.SENT.value)).scalar() == 50


async def _drain_600_behind_400_a_second(engine: Any, settings: Any, **dispatcher_options: Any) -> ScriptedProvider:
    """600 broadcast rows sent by one dispatcher (claims of 200) behind a local limit of 400 a second, on the
    real clock, until every row has gone and the dispatcher has stopped."""
    from models.clock import SystemClock
    from outreach.outbox import enqueue_many

    clock = SystemClock()
    with session_scope(engine) as s:
        enqueue_many(s, ({"idempotency_key": f"drain:{i}", "kind": "broadcast", "channel": "telegram",
                          "address": str(30000 + i), "body": "x"} for i in range(600)), now=clock.now())
    tg = ScriptedProvider("telegram", "tg", clock)
    limit = LocalLimiter(ProviderLimit.one_sender("telegram", 400.0), clock)
    d = Dispatcher(engine, {"telegram": tg}, clock, settings, batch_size=200, idle_s=0.05,
                   limits={"telegram": limit}, **dispatcher_options)
    stop = asyncio.Event()
    task = asyncio.create_task(d.run(stop))
    await until(lambda: len(tg.sent) == 600, "the backlog of 600 sent")
    stop.set()
    await finished(task, "run() after stop")
    return tg


async def test_a_backlog_draining_behind_a_rate_is_claimed_in_large_batches_not_a_few_rows_each_write(
        sqlite_engine, settings):
    """While a backlog drains behind a provider's rate (400 a second here), the dispatcher tops up
    its claimed rows when fewer than half a claim wait, by at least half a claim (100 rows with
    claims of 200): never a claim transaction for the few rows each written outcome freed. Only
    the backlog's last claim may be smaller. Every row is sent once (real clock, real limiter)."""
    from models.outbox import OutboxEvent

    engine = sqlite_engine
    tg = await _drain_600_behind_400_a_second(engine, settings)
    assert len(tg.sent) == 600
    with session_scope(engine) as s:
        claims = s.execute(select(OutboxEvent.at, func.count()).where(OutboxEvent.to_status == "sending")
                           .group_by(OutboxEvent.at).order_by(OutboxEvent.at)).all()
    sizes = [n for _, n in claims]
    assert sum(sizes) == 600, sizes
    assert all(n >= 100 for n in sizes[:-1]), sizes
    assert len(sizes) <= 6, sizes


def test_build_providers_picks_the_log_sink_without_credentials(settings, sqlite_engine):
    """No tokens: both channels go to the log sink (as the local console conversation always does);
    with a token, Telegram is the real provider."""
    providers = build_providers(settings, sqlite_engine)
    assert {ch: p.name for ch, p in providers.items()} == {"telegram": "logsink", "sms": "logsink", "console": "logsink"}
    from settings import load_settings

    s2 = load_settings(data_dir=settings.data_dir, telegram_bot_token="1:X", twilio_account_sid="AC1",
                       twilio_auth_token="t", twilio_from_number="+15005550006")
    p2 = build_providers(s2, sqlite_engine)
    assert (p2["telegram"].name, p2["sms"].name) == ("telegram", "twilio")


async def test_log_sink_writes_database_and_a_masked_file(sqlite_engine, clock, settings):
    """The sink records the message as sent (MessageLog 'out') and appends a line with the phone masked."""
    oid = queue(sqlite_engine, clock, channel="sms", address="+8613812345678", body="测试短信")
    sink = LogSinkProvider("sms", sqlite_engine, settings.data_dir)
    d = Dispatcher(sqlite_engine, {"sms": sink}, clock, settings, sleep=fake_sleep(clock))
    await d.run_once()
    assert row(sqlite_engine, oid).status == "sent"
    text = (settings.data_dir / "outbox-sink.log").read_text(encoding="utf-8")
    assert "+86138****5678" in text and "+8613812345678" not in text and "测试短信" in text
    with session_scope(sqlite_engine) as s:
        assert s.execute(select(func.count()).select_from(MessageLog)).scalar() == 1


def test_outbox_commands_count_requeue_and_cancel_with_audit(db_engine, clock, settings, monkeypatch):
    """`outbox status --json` counts by status and kind; `retry-failed --kind` requeues only that
    kind; `cancel --kind` cancels only queued rows; each writes an audit row naming the actor."""
    from typer.testing import CliRunner

    import outreach.outbox_commands as oc

    a = queue(db_engine, clock, channel="sms", address="+8613800000101", kind="notice")
    b = queue(db_engine, clock, channel="sms", address="+8613800000102", kind="greeting")
    c = queue(db_engine, clock, channel="sms", address="+8613800000103", kind="greeting")
    with write_scope(db_engine) as s:
        for oid in (a, b):
            r = s.get(OutboxMessage, oid)
            r.status = "failed"
            s.add(r)
    monkeypatch.setattr(oc, "_engine", lambda: db_engine)
    runner = CliRunner()
    import json

    import typer

    app = typer.Typer()
    oc.register(app)
    app.command("noop")(lambda: None)
    out = runner.invoke(app, ["outbox", "status", "--json"])
    assert json.loads(out.stdout) == {"failed": {"greeting": 1, "notice": 1}, "queued": {"greeting": 1}}
    assert "requeued 1" in runner.invoke(app, ["outbox", "retry-failed", "--kind", "notice", "--as", "wang"]).stdout
    assert row(db_engine, a).status == "queued" and row(db_engine, b).status == "failed"
    assert "cancelled 1" in runner.invoke(app, ["outbox", "cancel", "--kind", "notice", "--as", "wang"]).stdout
    assert row(db_engine, a).status == "cancelled"
    assert row(db_engine, b).status == "failed" and row(db_engine, c).status == "queued"
    assert runner.invoke(app, ["outbox", "cancel"]).exit_code == 2
    with session_scope(db_engine) as s:
        acts = s.exec(select(AuditLog.actor, AuditLog.action)).all()
    assert ("wang", "outbox.retry_failed") in acts and ("wang", "outbox.cancel") in acts


async def test_a_backlog_draining_behind_a_rate_writes_its_outcomes_in_batches_not_every_interval(
        sqlite_engine, settings):
    """While rows still wait behind a provider's rate (400 a second here), the dispatcher writes
    the outcomes in batches of `flush_min` (50) or after `flush_max_age_s`, not every
    `flush_interval_s` whatever came (20 rows a write at 400/s, 5 at 100/s: a write's
    transaction costs about the same for either). Every row is sent once and its outcome
    written (real clock, real limiter)."""
    from models.outbox import OutboxEvent

    engine = sqlite_engine
    tg = await _drain_600_behind_400_a_second(engine, settings, flush_min=50, flush_max_age_s=0.25,
                                              flush_interval_s=0.05)
    with session_scope(engine) as s:
        writes = s.execute(select(OutboxEvent.at, func.count()).where(OutboxEvent.to_status == "sent")
                           .group_by(OutboxEvent.at).order_by(OutboxEvent.at)).all()
        unsent = s.execute(select(func.count()).where(OutboxMessage.status != "sent")).scalar()
    sizes = [n for _, n in writes]
    assert sum(sizes) == 600 and unsent == 0, sizes
    assert len(tg.sent) == 600 and len({r.message.outbox_id for r in tg.sent}) == 600
    # 600 / 50 = 12 writes, and a few more where a claim's last rows or the age bound ended one.
    assert len(sizes) <= 16, sizes


async def test_two_dispatchers_sharing_a_rate_ask_for_each_slot_about_once(sqlite_engine, settings):
    """Two dispatchers draining one backlog under one shared limit (300 a second) each ask for a
    bulk slot when the slot after the next comes within the horizon: the other one takes the
    next slot meanwhile, so asking when the next slot came within reach was refused and asked
    again (1.7 calls a message between two processes). Together they ask at most 1.15 times a
    message and send every row once (that the slots of several processes never hold more than
    the rate in a second is test_limits' `test_two_processes_under_one_shared_limit_...`)."""
    from models.clock import SystemClock
    from outreach.outbox import enqueue_many

    clock = SystemClock()
    engine = sqlite_engine
    with session_scope(engine) as s:
        enqueue_many(s, ({"idempotency_key": f"shared:{i}", "kind": "broadcast", "channel": "telegram",
                          "address": str(50000 + i), "body": "x"} for i in range(600)), now=clock.now())
    tg = ScriptedProvider("telegram", "tg", clock)
    limit = LocalLimiter(ProviderLimit.one_sender("telegram", 300.0), clock)
    ds = [Dispatcher(engine, {"telegram": tg}, clock, settings, batch_size=100, idle_s=0.05,
                     limits={"telegram": limit}) for _ in range(2)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(d.run(stop)) for d in ds]
    await until(lambda: len(tg.sent) == 600, "the backlog of 600 sent")
    stop.set()
    for task in tasks:
        await finished(task, "run() after stop")
    assert all(d.stats["sent"] >= 100 for d in ds), [d.stats["sent"] for d in ds]  # both took part
    assert len({r.message.outbox_id for r in tg.sent}) == 600
    calls = sum(d.stats["slot_calls"] for d in ds)
    assert calls <= 1.15 * 600, calls
