"""Property: every path that decides who gets a message picks the same address, or none.

Random people (active, deceased, moved; outreach paused or not) with random contacts of their
own and of relatives (verified or not; opted out, blocked, invalid; recently active or not),
random message classes and random times of day (quiet hours or not). For each, the paths that
choose or check an address are compared with the rules as the issue states them (`expected`,
below): the sweep's SQL, `notices.choose_contact`, the broadcast composer's counts and the
recipients a broadcast queues, the dispatcher's re-check before sending (a real dispatcher run),
and the fallback after a permanent failure (a real dispatcher run).
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from outreach_helpers import fake_sleep
from sqlalchemy import Engine, delete, text
from sqlmodel import SQLModel, select

from models.clock import FakeClock
from models.db import session_scope
from models.outbox import OutboxMessage
from models.people import Beneficiary, Contact, FamilyMember
from outreach.audiences import AudienceFilter, audience_recipients, audience_size
from outreach.dispatcher import Dispatcher
from outreach.notices import choose_contact
from outreach.outbox import enqueue
from outreach.providers.base import ContactStopped
from outreach.reach import B
from outreach.sweeps import due_recipients
from tests.fakes.scripted import ScriptedProvider

DAY = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
NIGHT = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)  # 22:30 in Shanghai: SMS quiet hours
CLASSES = ("requested", "own_case", "proactive", "bulk")
# A kind of each class, as the paths that send it name it.
KIND_OF = {"requested": "handoff_answer", "own_case": "stage_accepted", "proactive": "cert_reminder_7",
           "bulk": "festival_greeting"}
_serial = itertools.count(1)


# --- the world -----------------------------------------------------------------------------

@dataclass
class AContact:
    channel: str
    relative: int | None  # index of the relative whose address it is; None: the person's own
    verified: bool
    opted_out: bool
    blocked: bool
    invalid: bool
    last_inbound_h: int | None  # hours before now the person last wrote from it
    id: int = 0
    address: str = ""


@dataclass
class APerson:
    status: str
    paused: bool
    relatives: int
    contacts: list[AContact] = field(default_factory=list)
    id: int = 0
    tag: str = ""


contacts = st.builds(
    AContact, channel=st.sampled_from(["telegram", "sms"]), relative=st.one_of(st.none(), st.integers(0, 1)),
    verified=st.integers(0, 4).map(lambda n: n != 0), opted_out=st.booleans(), blocked=st.booleans(),
    invalid=st.integers(0, 4).map(lambda n: n == 0), last_inbound_h=st.one_of(st.none(), st.integers(0, 48)))
people = st.builds(APerson, status=st.sampled_from(["active", "active", "active", "deceased", "moved"]),
                   paused=st.integers(0, 4).map(lambda n: n == 0), relatives=st.integers(0, 2),
                   contacts=st.lists(contacts, max_size=4))


# --- the rules, as the issue states them ---------------------------------------------------

def usable(p: APerson, c: AContact, cls: str, *, choosing: bool) -> bool:
    """May a message of class `cls` go to this address of this person?"""
    own = c.relative is None
    if c.blocked or c.invalid:
        return False  # the provider refuses: nothing gets through
    if c.opted_out and cls in ("proactive", "bulk"):
        return False  # an opt-out stops broadcasts, greetings and reminders, not what they asked for
    if p.status == "deceased" and (own or cls in ("proactive", "bulk")):
        return False  # only the deceased is suppressed, never the family member writing in about them
    if p.status == "moved" and cls in ("proactive", "bulk"):
        return False
    if p.paused and cls in ("proactive", "bulk"):
        return False  # a report awaits verification: no proactive outreach
    if choosing and cls != "requested" and not c.verified:
        return False  # a choice is made among verified addresses only
    # a relative's phone is never a way round the person's own stop (unless the relative asked)
    own_stop = any(x.relative is None and (x.opted_out or x.blocked) for x in p.contacts)
    return own or cls == "requested" or not own_stop


def expected(p: APerson, cls: str, channels: tuple[str, ...] = ("telegram", "sms"), *,
             owner: object = "any", prefer: str = "telegram") -> AContact | None:
    """The address a message of this class goes to: own before a relative's, `prefer` first,
    the most recently active, the oldest contact; None when nobody may be reached."""
    pool = [c for c in p.contacts if c.channel in channels and usable(p, c, cls, choosing=True)
            and (owner == "any" or (owner == "own" and c.relative is None) or owner == ("relative", c.relative))]
    if not pool:
        return None
    never = 10 ** 6  # never wrote from it: after every address they did
    return min(pool, key=lambda c: (c.relative is not None, c.channel != prefer,
                                    c.last_inbound_h if c.last_inbound_h is not None else never, c.id))


def expected_reason(p: APerson) -> str:
    """Why a broadcast leaves this person out (the composer's counts)."""
    if expected(p, "bulk") is not None:
        return "reachable"
    if p.status in ("deceased", "moved"):
        return p.status
    if p.paused:
        return "paused"
    own = [c for c in p.contacts if c.relative is None]
    if any(c.opted_out for c in own):
        return "opted_out"
    if any(c.blocked for c in own):
        return "blocked"
    if any(c.invalid for c in p.contacts):
        return "invalid"
    return "no_contact"


# --- building the world in the database ----------------------------------------------------

def clear(engine: Engine) -> None:
    with session_scope(engine) as s:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
            s.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(SQLModel.metadata.sorted_tables):
                s.execute(delete(table))


def build(engine: Engine, world: list[APerson], now: datetime) -> None:
    clear(engine)
    with session_scope(engine) as s:
        for p in world:
            n = next(_serial)
            p.tag = f"p{n}"
            b = Beneficiary(name=f"测试{n}", id_hash=f"prop{n}", id_masked="4407**********0000", status=p.status,
                            is_veteran=True, tags=[p.tag], outreach_paused_at=now if p.paused else None)
            s.add(b)
            s.flush()
            assert b.id is not None
            p.id = b.id
            relatives = []
            for r in range(p.relatives):
                f = FamilyMember(beneficiary_id=b.id, name=f"亲属{r}", relationship="child")
                s.add(f)
                s.flush()
                relatives.append(f.id)
            for i, c in enumerate(p.contacts):
                if c.relative is not None and c.relative >= len(relatives):
                    c.relative = None  # no such relative: the person's own
                c.address = f"{n}{i:02d}" if c.channel == "telegram" else f"+86139{n:05d}{i:03d}"
                row = Contact(beneficiary_id=b.id, channel=c.channel, address=c.address, verified=c.verified,
                              family_member_id=relatives[c.relative] if c.relative is not None else None,
                              opted_out_at=now if c.opted_out else None, blocked_at=now if c.blocked else None,
                              invalid_at=now if c.invalid else None,
                              last_inbound_at=now - timedelta(hours=c.last_inbound_h)
                              if c.last_inbound_h is not None else None)
                s.add(row)
                s.flush()
                assert row.id is not None
                c.id = row.id


def _address(c: AContact | None) -> str | None:
    return c.address if c is not None else None


PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])


@PROPERTY
@given(world=st.lists(people, min_size=1, max_size=3), cls=st.sampled_from(CLASSES))
def test_sweeps_notices_and_broadcast_counts_pick_the_same_address_or_none(db_engine: Engine,
                                                                            world: list[APerson], cls: str) -> None:
    """For a message of any class, `notices.choose_contact` and the sweep's SQL pick the address
    the rules pick (or none); for a broadcast, the composer counts each person as reached on
    that address's channel or excluded for the reason the rules give, and the recipients a
    broadcast queues are those addresses."""
    build(db_engine, world, DAY)
    kind = KIND_OF[cls]
    with session_scope(db_engine) as s:
        for p in world:
            want = expected(p, cls)
            got = choose_contact(s, p.id, message_class=cls)
            assert (got.address if got else None) == _address(want), (p, cls)
            for prefer in ("telegram", "sms"):
                got = choose_contact(s, p.id, message_class=cls, prefer=prefer)
                assert (got.address if got else None) == _address(expected(p, cls, prefer=prefer))
            if cls != "requested":  # sweeps queue what the office starts, never a reply
                swept = due_recipients(s, [B.c.id == p.id], kind, "2026")
                assert [r.address for r in swept] == ([want.address] if want else [])
                assert all(r.family == (want is not None and want.relative is not None) for r in swept)
            for channel in ("telegram", "sms", None):
                f = AudienceFilter(tags=[p.tag], channel=channel)
                size = audience_size(s, f, DAY.date())
                bulk = expected(p, "bulk", (channel,) if channel else ("telegram", "sms"))
                if bulk is None:
                    assert size.reachable == 0
                    if channel is None:
                        assert size.excluded == {expected_reason(p): 1}, p
                else:
                    assert size.reachable == 1 and size.by_channel == {bulk.channel: 1}
                queued = audience_recipients(s, f, DAY.date())
                assert [r.address for r in queued] == ([bulk.address] if bulk else [])


def _dispatcher(engine: Engine, clock: FakeClock, settings_: object, **errors: object) -> tuple[Dispatcher, ...]:
    tg = ScriptedProvider("telegram", "tg", clock)
    sms = ScriptedProvider("sms", "sms", clock)
    d = Dispatcher(engine, {"telegram": tg, "sms": sms}, clock, settings_, sleep=fake_sleep(clock), seed=1)
    return d, tg, sms


@PROPERTY
@given(world=st.lists(people, min_size=1, max_size=2), cls=st.sampled_from(CLASSES), night=st.booleans())
def test_the_dispatchers_recheck_sends_exactly_what_the_rule_allows_at_any_hour(
        db_engine: Engine, settings: object, world: list[APerson], cls: str, night: bool) -> None:
    """A row queued to each of a person's addresses is sent when the rules allow that address
    (so always the chosen one), and never otherwise: suppressed, or held while the person is
    paused. Quiet hours only delay every SMS to the morning, when the same rule decides."""
    now = NIGHT if night else DAY
    build(db_engine, world, now)
    clock = FakeClock(now)
    rows: dict[int, tuple[APerson, AContact]] = {}
    with session_scope(db_engine) as s:
        for p in world:
            for c in p.contacts:
                done = enqueue(s, key=f"prop:{c.address}", kind=KIND_OF[cls], message_class=cls,
                               channel=c.channel, address=c.address, body="您好", now=now, beneficiary_id=p.id,
                               allow_fallback=False)
                rows[done.message_id] = (p, c)
    d, tg, sms = _dispatcher(db_engine, clock, settings)
    asyncio.run(d.run_once())
    if night:  # every SMS waits for the morning, whatever its address: then it is looked at
        with session_scope(db_engine) as s:
            waiting = [m for m in s.exec(select(OutboxMessage)).all() if m.channel == "sms"]
        assert sms.attempts == [] and all(m.status == "queued" and m.next_attempt_at > now for m in waiting)
        clock.set(now + timedelta(hours=10))  # 08:30 the next morning
        asyncio.run(d.run_once())
    sent = {m.message.address for m in tg.sent + sms.sent}
    with session_scope(db_engine) as s:
        status = {m.id: m for m in s.exec(select(OutboxMessage)).all()}
    for row_id, (p, c) in rows.items():
        allowed = usable(p, c, cls, choosing=False)
        m = status[row_id]
        if allowed:
            assert m.status == "sent" and c.address in sent, (p, c, cls, m.status, m.error)
        else:
            assert c.address not in sent and m.status in ("suppressed", "queued"), (p, c, cls, m.status)
            held = (p.paused and cls in ("proactive", "bulk") and p.status == "active"
                    and not (c.blocked or c.invalid or (c.opted_out and cls in ("proactive", "bulk"))))
            assert (m.status == "queued") == held, (p, c, cls, m.status, m.error)
    for p in world:
        chosen = expected(p, cls)
        if chosen is not None:
            assert usable(p, chosen, cls, choosing=False)


@PROPERTY
@given(world=st.lists(people, min_size=1, max_size=2), cls=st.sampled_from(CLASSES[1:]))
def test_after_a_permanent_failure_the_fallback_goes_where_the_rule_now_points(
        db_engine: Engine, settings: object, world: list[APerson], cls: str) -> None:
    """A message to the address the rules chose fails for good (the bot is blocked, or the
    number unsubscribed): the address is marked, and the copy goes to the same person on the
    other channel exactly where the rules now point (the person's own, or the same
    relative's), or nowhere; never round the person's own stop through a relative."""
    build(db_engine, world, DAY)
    clock = FakeClock(DAY)
    chosen = {p.id: expected(p, cls) for p in world}
    d, tg, sms = _dispatcher(db_engine, clock, settings)
    with session_scope(db_engine) as s:
        for p in world:
            c = chosen[p.id]
            if c is None:
                continue
            enqueue(s, key=f"fb:{p.id}", kind=KIND_OF[cls], message_class=cls, channel=c.channel, address=c.address,
                    body="您好", sms_body="【站】您好", now=DAY, beneficiary_id=p.id)
            (tg if c.channel == "telegram" else sms).errors[c.address] = (
                ContactStopped("blocked", "Forbidden: bot was blocked by the user", 403) if c.channel == "telegram"
                else ContactStopped("opted_out", "unsubscribed", 21610))
    asyncio.run(d.run_once())
    with session_scope(db_engine) as s:
        copies = {m.beneficiary_id: m for m in s.exec(select(OutboxMessage)).all()
                  if m.idempotency_key.endswith(("fallback:sms", "fallback:telegram"))}
    for p in world:
        c = chosen[p.id]
        if c is None:
            assert p.id not in copies
            continue
        if c.channel == "telegram":
            c.blocked = True
        else:
            c.opted_out = True
        other = "sms" if c.channel == "telegram" else "telegram"
        owner = "own" if c.relative is None else ("relative", c.relative)
        want = expected(p, cls, (other,), owner=owner)
        got = copies.get(p.id)
        assert (got.address if got else None) == _address(want), (p, cls)
        if got is not None and other == "sms":
            assert got.body == "【站】您好"


def test_a_person_who_blocked_the_bot_gets_no_fallback_on_a_relatives_phone(db_engine: Engine, settings: object
                                                                            ) -> None:
    """张伯 has his own Telegram chat and his daughter's phone on file. He blocks the bot: the
    reminder fails, his chat is marked blocked, and nothing goes to his daughter's phone."""
    world = [APerson("active", False, 1, [AContact("telegram", None, True, False, False, False, 1),
                                          AContact("sms", 0, True, False, False, False, 2)])]
    build(db_engine, world, DAY)
    p, (own_chat, daughter) = world[0], world[0].contacts
    clock = FakeClock(DAY)
    d, tg, sms = _dispatcher(db_engine, clock, settings)
    tg.errors[own_chat.address] = ContactStopped("blocked", "Forbidden: bot was blocked by the user", 403)
    with session_scope(db_engine) as s:
        enqueue(s, key="cert:zhang", kind="cert_reminder_7", channel="telegram", address=own_chat.address,
                body="请在3月9日前认证", sms_body="【站】请在3月9日前认证。回复TD退订", now=DAY, beneficiary_id=p.id)
    asyncio.run(d.run_once())
    asyncio.run(d.run_once())
    assert [r.message.address for r in tg.attempts] == [own_chat.address]
    assert sms.attempts == [] and daughter.address not in {r.message.address for r in sms.attempts}
    with session_scope(db_engine) as s:
        assert [m.address for m in s.exec(select(OutboxMessage)).all()] == [own_chat.address]
        assert s.get(Contact, own_chat.id).blocked_at is not None  # type: ignore[union-attr]
        assert choose_contact(s, p.id) is None
