"""Broadcasts: audience size with exclusions, four eyes, preview, send, stop, status."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, select, update

from models.actions import opt_out, record_death
from models.clock import FakeClock
from models.db import session_scope, write_scope
from models.outbox import Broadcast, OutboxMessage
from models.people import Contact
from models.staff import AuditLog
from outreach import broadcasts as bc
from outreach.audiences import AudienceFilter, audience_size
from settings import Settings
from tests.scheduler.factories import TS, local, outbox, person, staff


@pytest.fixture
def people(db_engine: Engine) -> dict[str, int]:
    """Veterans in 白沙街道: 3 reachable (one English, one by SMS), one deceased, one moved,
    one opted out, one blocked, one with no contact; and a retiree elsewhere (not matched)."""
    ids: dict[str, int] = {}
    with session_scope(db_engine) as s:
        area = {"is_veteran": True, "district": "蓬江区", "street": "白沙街道"}
        ids["zh"] = person(s, name="张建国", sex="M", birth_date=date(1950, 3, 1), **area).id
        ids["en"] = person(s, name="Li Ming", language="en", **area).id
        ids["sms"] = person(s, name="王秀英", sex="F", channel="sms", birth_date=date(1948, 1, 1), **area).id
        dead = person(s, **area)
        record_death(s, dead, died_on=date(2026, 1, 5), actor="alice")
        person(s, status="moved", **area)
        out = person(s, **area)
        opt_out(s, s.execute(select(Contact).where(Contact.beneficiary_id == out.id)).scalar_one(), reason="TD",
                actor="bot")
        blocked = person(s, **area)
        s.execute(update(Contact).where(Contact.beneficiary_id == blocked.id).values(blocked_at=local(2026, 1, 1)))
        person(s, channel=None, **area)
        person(s, is_retiree=True, street="别的街道")
        staff(s, "alice", "composer")
        staff(s, "bob", "approver")
        staff(s, "carol", "composer", "approver")
    return ids


AREA = {"kinds": ["veteran"], "street": "白沙街道"}


def users(session):  # type: ignore[no-untyped-def]
    from models.staff import StaffUser

    return {u.username: u for u in session.execute(select(StaffUser)).scalars()}


def test_the_audience_size_counts_the_excluded_by_reason(db_engine: Engine, people: dict[str, int]) -> None:
    """Eight matched; three reachable; the deceased, moved, opted-out, blocked and unreachable counted apart."""
    with session_scope(db_engine) as s:
        size = audience_size(s, AudienceFilter.model_validate(AREA), date(2026, 3, 2))
    assert (size.matched, size.reachable) == (8, 3)
    assert size.excluded == {"deceased": 1, "moved": 1, "opted_out": 1, "blocked": 1, "no_contact": 1}
    assert size.by_channel == {"telegram": 2, "sms": 1}


def test_an_audience_filter_is_validated_data(db_engine: Engine, people: dict[str, int]) -> None:
    """Unknown fields, kinds and stages, and an inverted age range, are refused; ages and channel filter."""
    for bad in ({"kind": ["veteran"]}, {"kinds": ["soldier"]}, {"application_stage": "lost"},
                {"age_min": 90, "age_max": 80}):
        with pytest.raises(ValidationError):
            AudienceFilter.model_validate(bad)
    with session_scope(db_engine) as s:
        assert audience_size(s, AudienceFilter(**AREA, age_min=76), date(2026, 3, 2)).reachable == 2
        assert audience_size(s, AudienceFilter(**AREA, age_min=77), date(2026, 3, 2)).reachable == 1
        assert audience_size(s, AudienceFilter(**AREA, channel="sms"), date(2026, 3, 2)).reachable == 1


def test_the_author_cannot_approve_their_own_broadcast(db_engine: Engine, people: dict[str, int],
                                                        clock: FakeClock) -> None:
    """Four eyes: carol (composer and approver) cannot approve what she wrote, and it cannot be
    sent unapproved; bob approves it. A composer without the approver role cannot approve. Audited."""
    with write_scope(db_engine) as s:
        u = users(s)
        b = bc.create_broadcast(s, author=u["carol"], title="讲座", audience=AREA, text="{{ salutation }}，周六有讲座。",
                                now=clock.now(), templates=TS)
        with pytest.raises(bc.BroadcastRefused, match="four eyes"):
            bc.approve_broadcast(s, b, approver=u["carol"], now=clock.now())
        with pytest.raises(bc.BroadcastRefused, match="approver"):
            bc.approve_broadcast(s, b, approver=u["alice"], now=clock.now())
        bid = b.id
    with session_scope(db_engine) as s:
        carol = users(s)["carol"]
    with pytest.raises(bc.BroadcastRefused, match="not approved"):
        bc.send_broadcast(db_engine, bid, actor=carol, now=clock.now(), settings=None)
    with write_scope(db_engine) as s:
        bc.approve_broadcast(s, s.get(Broadcast, bid), approver=users(s)["bob"], now=clock.now())
        actions = [a.action for a in s.execute(select(AuditLog).where(AuditLog.target_type == "broadcast")).scalars()]
    assert actions == ["broadcast.create", "broadcast.approve_refused", "broadcast.approve"]


def test_staff_text_that_the_sandbox_refuses_is_not_accepted(db_engine: Engine, people: dict[str, int],
                                                             clock: FakeClock) -> None:
    """An unknown variable is named before anything is stored."""
    with session_scope(db_engine) as s, pytest.raises(bc.BroadcastRefused, match="idcard"):
        bc.create_broadcast(s, author=users(s)["alice"], title="x", audience=AREA, text="{{ idcard }}",
                            now=clock.now(), templates=TS)


def test_the_preview_shows_real_recipients_each_language_sms_length_cost_and_time(
        db_engine: Engine, people: dict[str, int], clock: FakeClock, settings: Settings) -> None:
    """Samples are real recipients with their salutation; SMS is UCS-2 for Chinese; the cost is
    the SMS segments; the time is the slower of the two providers at their limits."""
    with write_scope(db_engine) as s:
        b = bc.create_broadcast(s, author=users(s)["alice"], title="讲座", audience=AREA,
                                text={"zh-Hans": "{{ salutation }}，周六上午社区有健康讲座。", "en": "Dear {{ name }}, a health talk on Saturday."},
                                now=clock.now(), templates=TS)
        p = bc.preview_broadcast(s, b, settings=settings, now=clock.now(), templates=TS)
    assert p.size["reachable"] == 3 and p.size["excluded"]["opted_out"] == 1
    texts = {x["beneficiary_id"]: x for x in p.samples}
    assert "张伯" in texts[people["zh"]]["text"] and "王阿姨" in texts[people["sms"]]["text"]
    assert "Li Ming" in texts[people["en"]]["text"]
    assert texts[people["sms"]]["address"].startswith("+86") and "*" in texts[people["sms"]]["address"]
    assert p.sms["zh-Hans"]["encoding"] == "UCS-2"
    assert (p.telegram_messages, p.sms_messages) == (2, 1)
    assert p.sms_segments == p.sms["zh-Hans"]["segments"]
    assert p.seconds == max(2 / settings.telegram_rate_per_s, p.sms_segments / settings.twilio_segments_per_s)


def send_approved(db_engine: Engine, clock: FakeClock, settings: Settings, **kw):  # type: ignore[no-untyped-def]
    with write_scope(db_engine) as s:
        u = users(s)
        b = bc.create_broadcast(s, author=u["alice"], title="讲座", audience=AREA, text="{{ salutation }}，周六有讲座。",
                                now=clock.now(), templates=TS, **kw)
        bc.approve_broadcast(s, b, approver=u["bob"], now=clock.now())
        return b.id


def test_sending_queues_each_reachable_recipient_once_even_if_sent_twice(
        db_engine: Engine, people: dict[str, int], clock: FakeClock, settings: Settings) -> None:
    """Three rows, keyed per broadcast and recipient; a second enqueue pass adds nothing."""
    bid = send_approved(db_engine, clock, settings)
    with session_scope(db_engine) as s:
        alice = users(s)["alice"]
    n = bc.send_broadcast(db_engine, bid, actor=alice, now=clock.now(), settings=settings, templates=TS)
    assert n == 3
    with write_scope(db_engine) as s:
        b = s.get(Broadcast, bid)
        b.status, b.stats = "sending", {**b.stats, "enqueue_done": False, "after_id": 0}
    assert bc.enqueue_broadcast(db_engine, bid, now=clock.now(), settings=settings, templates=TS) == 0
    rows = outbox(db_engine, broadcast_id=bid)
    assert sorted(m.beneficiary_id for m in rows) == sorted([people["zh"], people["en"], people["sms"]])
    assert {m.idempotency_key for m in rows} == {f"staff_broadcast:b{i}:broadcast-{bid}" for i in
                                                  (people["zh"], people["en"], people["sms"])}


def test_a_scheduled_broadcast_goes_when_due_and_a_cancelled_one_never(
        db_engine: Engine, people: dict[str, int], clock: FakeClock, settings: Settings) -> None:
    """Scheduled for 14:00: the minute poll at 13:59 does nothing, at 14:00 it queues everyone;
    another, cancelled before its time, queues nothing."""
    at = clock.now() + timedelta(hours=4)
    bid = send_approved(db_engine, clock, settings, scheduled_for=at)
    other = send_approved(db_engine, clock, settings, scheduled_for=at)
    with write_scope(db_engine) as s:
        assert s.get(Broadcast, bid).status == "scheduled"
        bc.cancel_broadcast(s, s.get(Broadcast, other), actor=users(s)["bob"], now=clock.now())
    clock.set(at - timedelta(minutes=1))
    assert bc.run_due_broadcasts(db_engine, clock=clock, settings=settings, templates=TS) == {}
    clock.set(at)
    assert bc.run_due_broadcasts(db_engine, clock=clock, settings=settings, templates=TS) == {bid: 3}
    assert outbox(db_engine, broadcast_id=other) == []


def test_stopping_mid_broadcast_cancels_the_unsent_rows_and_queues_no_more(
        db_engine: Engine, people: dict[str, int], clock: FakeClock, settings: Settings) -> None:
    """Batches of one: after the first batch one row was sent by the dispatcher; staff stop it:
    the queued row is cancelled (with its event), the rest are never queued, the sent one stays
    sent; the status counts it all and notes the opt-out that followed."""
    bid = send_approved(db_engine, clock, settings)
    with write_scope(db_engine) as s:
        bc.start_sending(s, s.get(Broadcast, bid), actor="alice", now=clock.now())
    assert bc.enqueue_broadcast(db_engine, bid, now=clock.now(), settings=settings, templates=TS,
                                batch=1, max_batches=2) == 2
    first, second = outbox(db_engine, broadcast_id=bid)
    with write_scope(db_engine) as s:
        m = s.get(OutboxMessage, first.id)
        m.status, m.sent_at = "sent", clock.now()
        opt_out(s, s.get(Contact, m.contact_id), reason="TD", actor="bot", now=clock.now() + timedelta(minutes=1))
    with write_scope(db_engine) as s:
        assert bc.stop_broadcast(s, s.get(Broadcast, bid), actor=users(s)["bob"], now=clock.now()) == 1
    assert bc.enqueue_broadcast(db_engine, bid, now=clock.now(), settings=settings, templates=TS) == 0
    statuses = {m.id: m.status for m in outbox(db_engine, broadcast_id=bid)}
    assert statuses == {first.id: "sent", second.id: "cancelled"}
    with session_scope(db_engine) as s:
        st = bc.broadcast_status(s, s.get(Broadcast, bid))
    assert (st["status"], st["total"], st["sent"], st["cancelled"], st["queued"]) == ("stopped", 2, 1, 1, 0)
    assert st["opted_out_after"] == 1
