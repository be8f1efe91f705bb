"""PostgreSQL lock order between a person and their contacts: writers racing on one person never deadlock.

The reach triggers (outreach/reach_summary.py) update the person's row whenever one of their
contacts is written, so a contact write takes the contact's row lock and then the person's. A
writer that holds the person and then writes a contact (a staff-confirmed phone change adds the
new number, then marks the old one invalid) would deadlock against one that writes the contact
first (the old number texting TD). The rule (models/people.py `lock_people`): every writer of a
contact takes the person's row first, so all of them lock person before contact.

Each pair of real code paths runs on two connections in the interleaving most likely to
deadlock: the first until its first write (its first row lock is held), then the second until it
waits for a lock or ends, then the first to its end; and again the other way round. PostgreSQL
only: SQLite has one writer at a time and no row locks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from bot.channels.base import Inbound
from bot.engine import Engine as ConversationEngine
from models.actions import confirm_report, report_change
from models.applications import Task
from models.clock import FakeClock
from models.db import make_engine, session_scope
from models.outbox import OutboxMessage
from models.people import Beneficiary, BeneficiaryStatus, Contact
from models.reports import ContactReport, DeathReport, Reporter
from outreach import reach_summary
from outreach.outbox import T as OUTBOX
from outreach.outbox import fail_permanently, load
from outreach.providers.base import AddressInvalid
from settings import Settings
from tests.bot.conftest import ZHANG_ID, ZHANG_PHONE, FakeNotifier, FakeQA, add_person

DEADLOCK = "40P01"
NEW_PHONE = "+8613600006666"
WAIT_S = 20.0  # a bound on each wait, never a pause: the run goes on as soon as the condition holds


def _deadlock(exc: BaseException | None) -> bool:
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) == DEADLOCK


@dataclass
class Outcome:
    errors: list[BaseException] = field(default_factory=list)
    logged: list[BaseException] = field(default_factory=list)  # caught and logged by the code path (the engine)

    @property
    def deadlocks(self) -> list[BaseException]:
        return [e for e in [*self.errors, *self.logged] if _deadlock(e)]


class _Caught(logging.Handler):
    """Collects the exceptions the code paths log instead of raising (the engine answers "try again")."""

    def __init__(self, into: list[BaseException]) -> None:
        super().__init__(logging.ERROR)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.into.append(record.exc_info[1])


def _is_write(statement: str) -> bool:
    head = statement.lstrip().split(None, 1)[0].upper()
    return head in ("INSERT", "UPDATE", "DELETE") or " FOR UPDATE" in statement or " FOR NO KEY UPDATE" in statement


@pytest.fixture
def connections(pg_schema_url: str, pg_engine: Engine) -> Iterator[tuple[Engine, Engine, Engine]]:
    """Two writers' engines and a monitor's, each its own pool, on the emptied test database."""
    made = [make_engine(pg_schema_url, pool_size=2) for _ in range(3)]
    yield made[0], made[1], made[2]
    for e in made:
        e.dispose()


def _waiting_for_a_lock(monitor: Engine, pid: int) -> bool:
    with monitor.connect() as conn:
        return bool(conn.execute(text("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :pid"),
                                 {"pid": pid}).scalar())


def interleave(first: Callable[[Engine], None], second: Callable[[Engine], None],
               engines: tuple[Engine, Engine, Engine]) -> Outcome:
    """`first` to its first write, `second` until it waits for a lock or ends, then `first` on."""
    a, b, monitor = engines
    outcome = Outcome()
    first_wrote, second_done = threading.Event(), threading.Event()
    second_pid: list[int] = []
    paused: list[bool] = []

    def hold_after_first_write(conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if paused or not _is_write(statement):
            return
        paused.append(True)
        first_wrote.set()
        for _ in range(int(WAIT_S * 200)):
            if second_done.is_set() or (second_pid and _waiting_for_a_lock(monitor, second_pid[0])):
                return
            second_done.wait(0.005)
        raise AssertionError("the second writer neither waited for a lock nor finished")

    def note_pid(conn: Any, _record: Any) -> None:
        second_pid.append(conn.info.backend_pid)

    event.listen(a, "after_cursor_execute", hold_after_first_write)
    event.listen(b, "connect", note_pid)

    def run_first() -> None:
        try:
            first(a)
        except BaseException as exc:  # noqa: BLE001  (recorded, asserted by the test)
            outcome.errors.append(exc)
        finally:
            first_wrote.set()

    def run_second() -> None:
        try:
            assert first_wrote.wait(WAIT_S)
            second(b)
        except BaseException as exc:  # noqa: BLE001
            outcome.errors.append(exc)
        finally:
            second_done.set()

    b.dispose()  # a fresh connection, so its backend's pid is noted
    caught = _Caught(outcome.logged)
    logging.getLogger().addHandler(caught)
    threads = [threading.Thread(target=run_first), threading.Thread(target=run_second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S * 3)
    event.remove(a, "after_cursor_execute", hold_after_first_write)
    event.remove(b, "connect", note_pid)
    logging.getLogger().removeHandler(caught)
    assert not any(t.is_alive() for t in threads), "a writer hung"
    return outcome


@pytest.fixture
def person(pg_engine: Engine, settings: Settings) -> int:
    with session_scope(pg_engine) as s:
        b = add_person(s, settings, ZHANG_ID, "张三", ZHANG_PHONE, is_retiree=True)
        s.add(Contact(channel="telegram", address="7001", beneficiary_id=b.id, verified=True))
        assert b.id is not None
        return b.id


def _contact(engine: Engine, channel: str, address: str) -> Contact:
    with Session(engine) as s:
        found = s.execute(select(Contact).where(Contact.channel == channel, Contact.address == address)).scalar_one()
        s.expunge(found)
        return found


def _ranks(engine: Engine, person_id: int) -> tuple[int, int, int]:
    with engine.connect() as conn:
        row = conn.execute(select(reach_summary.rank_column(None), reach_summary.rank_column("telegram"),
                                  reach_summary.rank_column("sms")).where(reach_summary.B.c.id == person_id)).one()
        return row[0], row[1], row[2]


def assert_ranks_are_the_rules(engine: Engine, person_id: int) -> None:
    """The person's stored ranks are what the rule gives for the contacts as they now are."""
    stored = _ranks(engine, person_id)
    with engine.begin() as conn:
        reach_summary.rebuild(conn)
    assert _ranks(engine, person_id) == stored


def _report(engine: Engine, person_id: int, report: Any, now: Any) -> int:
    with session_scope(engine) as s:
        b = s.get(Beneficiary, person_id)
        assert b is not None
        task = report_change(s, b, report, Reporter(relationship="child", channel="sms"), now=now)
        assert task.id is not None
        return task.id


def staff_confirms(task_id: int, now: Any) -> Callable[[Engine], None]:
    def run(engine: Engine) -> None:
        with session_scope(engine) as s:
            task = s.get(Task, task_id)
            assert task is not None
            confirm_report(s, task, actor="caseworker", now=now, note="called the family back")
    return run


def texts(settings: Settings, clock: FakeClock, phone: str, words: str) -> Callable[[Engine], None]:
    def run(engine: Engine) -> None:
        conversation = ConversationEngine(engine, settings, clock, qa=FakeQA(), notifier=FakeNotifier())
        try:
            assert conversation.handle(Inbound(channel="sms", address=phone, text=words))
        finally:
            conversation.close()
    return run


def provider_says_invalid(outbox_id: int, now: Any) -> Callable[[Engine], None]:
    def run(engine: Engine) -> None:
        with session_scope(engine) as s:
            row = load(s, OUTBOX.c.id == outbox_id)
            assert row is not None
            fail_permanently(s, row, AddressInvalid("not a valid phone number", 21211), now,
                             reason="provider refused the address")
    return run


BOTH_ORDERS = pytest.mark.parametrize("reverse", [False, True], ids=["staff-first", "person-first"])


@BOTH_ORDERS
def test_phone_change_confirmed_while_the_old_phone_texts_stop_never_deadlocks(
        reverse: bool, connections: tuple[Engine, Engine, Engine], pg_engine: Engine, person: int,
        settings: Settings, clock: FakeClock) -> None:
    """Staff confirm a reported new number (new contact added, old one marked invalid) while the
    old number sends TD: neither fails with a deadlock, and the record ends with the old number
    opted out and invalid, the new one verified and reachable, the ranks as the rule says."""
    old = _contact(pg_engine, "sms", ZHANG_PHONE)
    task_id = _report(pg_engine, person, ContactReport(new_phone=NEW_PHONE, replaces_contact_id=old.id), clock.now())
    staff, stop = staff_confirms(task_id, clock.now()), texts(settings, clock, ZHANG_PHONE, "TD")

    outcome = interleave(stop, staff, connections) if reverse else interleave(staff, stop, connections)

    assert not outcome.deadlocks, outcome.deadlocks
    assert not outcome.errors, outcome.errors
    old_now, new = _contact(pg_engine, "sms", ZHANG_PHONE), _contact(pg_engine, "sms", NEW_PHONE)
    assert old_now.invalid_at is not None and old_now.opted_out_at is not None
    assert new.beneficiary_id == person and new.verified and new.reachable
    assert_ranks_are_the_rules(pg_engine, person)


@BOTH_ORDERS
def test_death_confirmed_while_a_relative_stops_and_a_send_fails_never_deadlocks(
        reverse: bool, connections: tuple[Engine, Engine, Engine], pg_engine: Engine, person: int,
        settings: Settings, clock: FakeClock) -> None:
    """Staff confirm a reported death (the person's row first) while the provider reports the
    person's number invalid (outbox row, then the contact): no deadlock; the person is deceased,
    the number invalid, the ranks as the rule says."""
    task_id = _report(pg_engine, person, DeathReport(died_on=clock.now().date() - timedelta(days=2)), clock.now())
    with session_scope(pg_engine) as s:
        row = OutboxMessage(kind="reminder", channel="sms", address=ZHANG_PHONE, beneficiary_id=person,
                            body="提醒", status="sending", idempotency_key="lock-order-1", created_at=clock.now(),
                            not_before=clock.now(), message_class="proactive")
        s.add(row)
        s.flush()
        assert row.id is not None
        outbox_id = row.id
    staff, failed = staff_confirms(task_id, clock.now()), provider_says_invalid(outbox_id, clock.now())

    outcome = interleave(failed, staff, connections) if reverse else interleave(staff, failed, connections)

    assert not outcome.deadlocks, outcome.deadlocks
    assert not outcome.errors, outcome.errors
    with Session(pg_engine) as s:
        b = s.get(Beneficiary, person)
        assert b is not None and b.status == BeneficiaryStatus.DECEASED.value and b.deceased_on is not None
    assert _contact(pg_engine, "sms", ZHANG_PHONE).invalid_at is not None
    assert_ranks_are_the_rules(pg_engine, person)
