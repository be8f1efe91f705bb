"""The daily sweep, driven by a FakeClock one office day at a time."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest
from sqlalchemy import Engine, select

from models.actions import opt_out, record_certification, record_death
from models.applications import Application, HandoffTicket, Task
from models.clock import FakeClock
from models.db import session_scope, write_scope
from models.people import Beneficiary, Contact, SchemeMembership
from outreach import sweeps
from outreach.templates import TemplateSet
from tests.scheduler.factories import SHANGHAI, TS, cert, days, local, outbox, person


def run_days(engine: Engine, start: date, end: date, *, hour: int = 7, minute: int = 30,
             skip: set[date] = frozenset()) -> None:  # type: ignore[assignment]
    clock = FakeClock(local(start.year, start.month, start.day, hour, minute))
    for day in days(start, end):
        if day in skip:
            continue
        clock.set(local(day.year, day.month, day.day, hour, minute))
        sweeps.daily_sweep(engine, clock=clock, tz=SHANGHAI, templates=TS)


def reminder_days(engine: Engine) -> list[tuple[str, date, date]]:
    """(occurrence, office day it was queued, office day it may be sent) per reminder row."""
    return [(cert(m), m.created_at.astimezone(SHANGHAI).date(), m.next_attempt_at.astimezone(SHANGHAI).date())
            for m in outbox(engine, kind_like="cert_reminder")]


@pytest.mark.parametrize(("hour", "start", "end"), [
    (7, date(2026, 1, 1), date(2026, 12, 31)),  # a year at 07:30 Shanghai = 23:30 UTC the day before
    (23, date(2026, 5, 1), date(2026, 7, 31)),  # evenings: 23:30 Shanghai = 15:30 UTC, same date
])
def test_each_certification_reminder_goes_once_on_its_office_day_over_a_year(
        db_engine: Engine, hour: int, start: date, end: date) -> None:
    """Certified 2025-06-10, due 2026-06-10: reminders queued on 05-11, 06-03 and 06-09
    (office time), each once, whether the server's UTC date matches the office date or not;
    the home visit opens on 06-25 (15 days overdue), once."""
    with session_scope(db_engine) as s:
        person(s, is_retiree=True, last_certified_on=date(2025, 6, 10), sex="M", birth_date=date(1950, 1, 1),
               name="张建国")
    run_days(db_engine, start, end, hour=hour)
    got = reminder_days(db_engine)
    assert [(occ, queued) for occ, queued, _ in got] == [
        ("2026-06-10:30", date(2026, 5, 11)), ("2026-06-10:7", date(2026, 6, 3)), ("2026-06-10:1", date(2026, 6, 9))]
    for _, queued, sendable in got:
        assert sendable == queued  # sent that same office day, from 09:30 (or at once if later)
    assert "张伯" in outbox(db_engine, kind_like="cert_reminder")[0].body
    with session_scope(db_engine) as s:
        tasks = s.execute(select(Task)).scalars().all()
    assert [(t.kind, t.key, t.created_at.astimezone(SHANGHAI).date()) for t in tasks] == [
        ("home_visit", f"home_visit:{tasks[0].beneficiary_id}:2026", date(2026, 6, 25))]


def test_a_reminder_missed_while_down_is_sent_once_late_unless_a_later_one_supersedes_it(db_engine: Engine) -> None:
    """Down 05-05..05-20: the 30-day reminder (due 05-11) goes on 05-21, once. Down 05-11..06-04:
    the 30-day one is superseded and skipped; the 7-day one goes on 06-05. Nothing after the due date."""
    with session_scope(db_engine) as s:
        late = person(s, is_retiree=True, last_certified_on=date(2025, 6, 10))
    run_days(db_engine, date(2026, 5, 1), date(2026, 6, 30), skip=set(days(date(2026, 5, 5), date(2026, 5, 20))))
    got = [(cert(m), m.created_at.astimezone(SHANGHAI).date())
           for m in outbox(db_engine, kind_like="cert_reminder", beneficiary_id=late.id)]
    assert got == [("2026-06-10:30", date(2026, 5, 21)), ("2026-06-10:7", date(2026, 6, 3)),
                   ("2026-06-10:1", date(2026, 6, 9))]
    # A second person, same due date, a longer outage (the first person's rows are all sent).
    with session_scope(db_engine) as s:
        skipped = person(s, is_retiree=True, last_certified_on=date(2025, 6, 10))
    run_days(db_engine, date(2026, 5, 1), date(2026, 6, 30), skip=set(days(date(2026, 5, 11), date(2026, 6, 4))))
    got = [(cert(m), m.created_at.astimezone(SHANGHAI).date())
           for m in outbox(db_engine, kind_like="cert_reminder", beneficiary_id=skipped.id)]
    assert got == [("2026-06-10:7", date(2026, 6, 5)), ("2026-06-10:1", date(2026, 6, 9))]


def test_a_recorded_certification_stops_the_remaining_reminders_and_the_home_visit(db_engine: Engine) -> None:
    """After the 30-day reminder, certifying on 05-20 stops the 7- and 1-day ones, and no home
    visit is opened; a reminder already queued but unsent is suppressed."""
    with session_scope(db_engine) as s:
        b = person(s, is_retiree=True, last_certified_on=date(2025, 6, 10))
    run_days(db_engine, date(2026, 5, 1), date(2026, 5, 11))
    assert [m.status for m in outbox(db_engine, kind_like="cert_reminder")] == ["queued"]
    with write_scope(db_engine) as s:
        record_certification(s, s.get(Beneficiary, b.id), on=date(2026, 5, 20), actor="alice",
                             now=local(2026, 5, 20, 10))
    run_days(db_engine, date(2026, 5, 12), date(2026, 7, 31))
    assert [(cert(m), m.status) for m in outbox(db_engine, kind_like="cert_reminder")] == [
        ("2026-06-10:30", "suppressed")]
    with session_scope(db_engine) as s:
        assert s.execute(select(Task)).scalars().all() == []


def test_nobody_deceased_moved_or_opted_out_is_reminded_and_a_blocked_contact_is_passed_over(
        db_engine: Engine) -> None:
    """Only the active, reachable person gets the reminder; with a blocked Telegram chat it goes by SMS."""
    cert = {"is_retiree": True, "last_certified_on": date(2025, 6, 10)}
    with session_scope(db_engine) as s:
        dead = person(s, **cert)
        record_death(s, dead, died_on=date(2026, 4, 1), actor="alice")
        person(s, status="moved", **cert)
        out = person(s, **cert)
        opt_out(s, s.execute(select(Contact).where(Contact.beneficiary_id == out.id)).scalar_one(),
                reason="TD", actor="bot")
        ok = person(s, **cert)
        tg = s.execute(select(Contact).where(Contact.beneficiary_id == ok.id)).scalar_one()
        tg.blocked_at = local(2026, 1, 1)
        s.add(Contact(beneficiary_id=ok.id, channel="sms", address="+8613900000001", verified=True))
        person(s, channel=None, **cert)  # no contact at all: nothing to send, nothing fails
    run_days(db_engine, date(2026, 5, 11), date(2026, 5, 11))
    rows = outbox(db_engine, kind_like="cert_reminder")
    assert [(m.beneficiary_id, m.channel, m.address) for m in rows] == [(ok.id, "sms", "+8613900000001")]


def test_home_visits_put_the_very_old_alone_and_disabled_first_once_per_due_year(db_engine: Engine) -> None:
    """Overdue by 15 days: one home-visit task per person and due year, priority for over 80,
    living alone or disabled; re-running changes nothing."""
    cert = {"is_retiree": True, "last_certified_on": date(2025, 3, 1)}
    with session_scope(db_engine) as s:
        young = person(s, birth_date=date(1960, 1, 1), **cert)
        old_alone = person(s, birth_date=date(1940, 1, 1), living_alone=True, **cert)
        disabled = person(s, birth_date=date(1955, 1, 1), disabled=True, **cert)
        person(s, birth_date=date(1950, 1, 1), is_retiree=True, last_certified_on=date(2025, 3, 2))  # not yet
    run_days(db_engine, date(2026, 3, 16), date(2026, 3, 16))
    run_days(db_engine, date(2026, 3, 16), date(2026, 3, 16))
    with session_scope(db_engine) as s:
        tasks = {t.beneficiary_id: (t.key, t.priority) for t in s.execute(select(Task)).scalars()}
    assert tasks == {young.id: (f"home_visit:{young.id}:2026", 0),
                     old_alone.id: (f"home_visit:{old_alone.id}:2026", 15),
                     disabled.id: (f"home_visit:{disabled.id}:2026", 5)}


def test_a_veteran_turning_80_gets_one_notice_and_staff_one_task_even_after_downtime(db_engine: Engine) -> None:
    """Seed 000: cover starts automatically at 80. Born 1946-07-15; the scheduler is down on
    the birthday and back three days later: one notice, one task. Non-veterans get none."""
    with session_scope(db_engine) as s:
        vet = person(s, is_veteran=True, birth_date=date(1946, 7, 15))
        person(s, is_retiree=True, birth_date=date(1946, 7, 15))
        person(s, is_veteran=True, birth_date=date(1946, 7, 20))  # turns 80 after the window
    run_days(db_engine, date(2026, 7, 10), date(2026, 7, 19), skip=set(days(date(2026, 7, 14), date(2026, 7, 17))))
    rows = outbox(db_engine, kind="over80_insurance")
    assert [(m.beneficiary_id, m.created_at.astimezone(SHANGHAI).date()) for m in rows] == [
        (vet.id, date(2026, 7, 18))]
    with session_scope(db_engine) as s:
        assert [(t.kind, t.beneficiary_id) for t in s.execute(select(Task)).scalars()] == [
            ("over_80_insurance", vet.id)]


def test_a_person_born_on_29_february_is_reminded_on_28_february_in_a_common_year(db_engine: Engine) -> None:
    """Certified 2024-02-29: due 2025-02-28; the 1-day reminder goes 2025-02-27, once."""
    with session_scope(db_engine) as s:
        person(s, is_retiree=True, last_certified_on=date(2024, 2, 29))
        person(s, is_retiree=True, last_certified_on=date(2024, 2, 28))
    run_days(db_engine, date(2025, 1, 1), date(2025, 3, 5))
    got = [(cert(m), m.created_at.astimezone(SHANGHAI).date()) for m in outbox(db_engine, kind_like="cert_reminder")]
    assert sorted(got) == sorted([("2025-02-28:30", date(2025, 1, 29)), ("2025-02-28:7", date(2025, 2, 21)),
                                  ("2025-02-28:1", date(2025, 2, 27))] * 2)


def test_payment_notices_go_on_each_schemes_payment_day_and_a_31st_pays_on_the_last_day(db_engine: Engine) -> None:
    """Pension pays on the 15th by default; a membership with payment_day 31 pays on 30 June;
    a scheme with notify false sends nothing; each notice once a month."""
    with session_scope(db_engine) as s:
        a = person(s, is_retiree=True)
        b = person(s, is_retiree=True)
        c = person(s, is_union_member=True)
        s.add(SchemeMembership(beneficiary_id=a.id, scheme="pension", period=2026, amount_fen=312000))
        s.add(SchemeMembership(beneficiary_id=b.id, scheme="pension", period=2026, payment_day=31, amount_fen=1))
        s.add(SchemeMembership(beneficiary_id=c.id, scheme="medical_mutual_aid", period=2026, payment_day=15,
                               amount_fen=10000))
    clock = FakeClock(local(2026, 6, 5, 10))
    for day in days(date(2026, 6, 5), date(2026, 7, 16)):
        clock.set(local(day.year, day.month, day.day, 10))
        sweeps.payment_run(db_engine, clock=clock, tz=SHANGHAI, templates=TS)
    got = [(m.beneficiary_id, m.occurrence, m.created_at.astimezone(SHANGHAI).date())
           for m in outbox(db_engine, kind="payment_notice")]
    assert got == [(a.id, "pension:2026-06", date(2026, 6, 15)), (b.id, "pension:2026-06", date(2026, 6, 30)),
                   (a.id, "pension:2026-07", date(2026, 7, 15))]
    assert "养老金3,120元" in outbox(db_engine, kind="payment_notice")[0].body
    assert "养老金3,120元" in outbox(db_engine, kind="payment_notice")[0].body


def test_an_unpaid_payment_deadline_is_reminded_three_days_before_and_a_paid_one_is_not(db_engine: Engine) -> None:
    """Seed 003: payment notice with a deadline of 2026-04-20: one reminder on 04-17 if unpaid."""
    with session_scope(db_engine) as s:
        unpaid = person(s, is_veteran=True)
        paid = person(s, is_veteran=True)
        for i, (who, paid_on) in enumerate([(unpaid, None), (paid, date(2026, 4, 10))]):
            s.add(Application(reference=f"NX-2026-{i:06d}", type="veteran_insurance", beneficiary_id=who.id,
                              stage="payment_notice" if paid_on is None else "paid", payment_amount_fen=123450,
                              payment_account="6222", payment_deadline=date(2026, 4, 20), paid_on=paid_on))
    run_days(db_engine, date(2026, 4, 10), date(2026, 4, 25))
    rows = outbox(db_engine, kind="payment_deadline_reminder")
    assert [(m.beneficiary_id, m.created_at.astimezone(SHANGHAI).date()) for m in rows] == [
        (unpaid.id, date(2026, 4, 17))]
    assert "1,234.50" in rows[0].body


def test_a_crash_mid_sweep_then_a_rerun_enqueues_each_message_once(db_engine: Engine) -> None:
    """The renderer dies during the over-80 part: the certification part is committed, the
    over-80 part rolled back; the re-run completes it and duplicates nothing."""
    with session_scope(db_engine) as s:
        for _ in range(5):
            person(s, is_retiree=True, last_certified_on=date(2025, 6, 10))
        for _ in range(3):
            person(s, is_veteran=True, birth_date=date(1946, 5, 11), language="en")
    clock = FakeClock(local(2026, 5, 11, 7, 30))

    class DiesOnOver80(TemplateSet):
        def render(self, kind, *args, **kwargs):  # type: ignore[no-untyped-def]
            if kind == "over80_insurance":
                raise RuntimeError("power cut")
            return super().render(kind, *args, **kwargs)

    with pytest.raises(RuntimeError):
        sweeps.daily_sweep(db_engine, clock=clock, tz=SHANGHAI, templates=DiesOnOver80())
    assert len(outbox(db_engine)) == 5
    clock.advance(timedelta(minutes=5))
    again = sweeps.daily_sweep(db_engine, clock=clock, tz=SHANGHAI, templates=TS)
    assert again.enqueued["cert_reminder"] == 0 and again.enqueued["over80_insurance"] == 3
    assert sweeps.daily_sweep(db_engine, clock=clock, tz=SHANGHAI, templates=TS).total_enqueued == 0
    keys = [m.idempotency_key for m in outbox(db_engine)]
    assert len(keys) == len(set(keys)) == 8


def test_two_processes_sweeping_at_once_enqueue_each_message_once(db_engine: Engine) -> None:
    """Two sweeps racing on the same day (a second process without the lock, say) still
    produce one row per (kind, person, occurrence)."""
    with session_scope(db_engine) as s:
        for _ in range(40):
            person(s, is_retiree=True, last_certified_on=date(2025, 6, 10))
    clock = FakeClock(local(2026, 5, 11, 7, 30))
    errors: list[BaseException] = []

    def go() -> None:
        try:
            sweeps.daily_sweep(db_engine, clock=clock, tz=SHANGHAI, templates=TS)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(outbox(db_engine, kind_like="cert_reminder")) == 40


def test_a_stuck_application_gets_one_task_per_stay_in_a_stage(db_engine: Engine) -> None:
    """Verification has a 20-day limit: day 21 opens a task, later checks do not repeat it."""
    with session_scope(db_engine) as s:
        b = person(s, is_veteran=True)
        s.add(Application(reference="NX-2026-000001", type="veteran_insurance", beneficiary_id=b.id,
                          stage="verification", stage_changed_at=local(2026, 3, 2, 10)))
        s.add(Application(reference="NX-2026-000002", type="veteran_insurance", beneficiary_id=b.id,
                          stage="completed", stage_changed_at=local(2025, 1, 1)))
    clock = FakeClock(local(2026, 3, 22, 9))
    assert sweeps.run_escalations(db_engine, clock=clock, tz=SHANGHAI).tasks["stuck_application"] == 0
    clock.set(local(2026, 3, 22, 11))
    assert sweeps.run_escalations(db_engine, clock=clock, tz=SHANGHAI).tasks["stuck_application"] == 1
    clock.advance(timedelta(days=3))
    assert sweeps.run_escalations(db_engine, clock=clock, tz=SHANGHAI).tasks["stuck_application"] == 0


def test_a_ticket_escalates_after_four_working_hours_not_four_wall_hours(db_engine: Engine) -> None:
    """Raised Friday 16:00 office time: one working hour on Friday, none over the weekend,
    three on Monday morning: escalated at Monday 12:00, not before; audited; a task opened."""
    with session_scope(db_engine) as s:
        s.add(HandoffTicket(channel="telegram", address="1", question="?", reason="personal_case",
                            created_at=local(2026, 3, 6, 16)))  # Friday
    clock = FakeClock(local(2026, 3, 7, 20))  # Saturday evening: 28 wall hours
    assert sweeps.run_escalations(db_engine, clock=clock, tz=SHANGHAI).escalated == 0
    clock.set(local(2026, 3, 9, 11, 59))
    assert sweeps.run_escalations(db_engine, clock=clock, tz=SHANGHAI).escalated == 0
    clock.set(local(2026, 3, 9, 12, 0))
    assert sweeps.run_escalations(db_engine, clock=clock, tz=SHANGHAI).escalated == 1
    clock.advance(timedelta(hours=1))
    assert sweeps.run_escalations(db_engine, clock=clock, tz=SHANGHAI).escalated == 0
    with session_scope(db_engine) as s:
        ticket = s.execute(select(HandoffTicket)).scalar_one()
        assert ticket.escalated_at == local(2026, 3, 9, 12)
        assert [t.kind for t in s.execute(select(Task)).scalars()] == ["callback"]


def test_a_family_members_phone_is_used_only_when_the_person_has_none_and_never_after_they_said_stop(
        db_engine: Engine) -> None:
    """张伯 has no phone of his own: the reminder goes to his daughter's, saying it is for him.
    王阿姨 opted out on her own phone: her son's phone is no way round it."""
    from models.people import FamilyMember

    cert = {"is_retiree": True, "last_certified_on": date(2025, 6, 10), "sex": "M", "birth_date": date(1940, 1, 1)}
    with session_scope(db_engine) as s:
        zhang = person(s, channel=None, name="张建国", **cert)
        daughter = FamilyMember(beneficiary_id=zhang.id, name="张丽", relationship="child", phone="+8613900000002")
        s.add(daughter)
        s.flush()
        s.add(Contact(beneficiary_id=zhang.id, channel="sms", address="+8613900000002", verified=True,
                      family_member_id=daughter.id))
        wang = person(s, channel="sms", name="王秀英", **{**cert, "sex": "F"})
        opt_out(s, s.execute(select(Contact).where(Contact.beneficiary_id == wang.id)).scalar_one(), reason="TD",
                actor="bot")
        son = FamilyMember(beneficiary_id=wang.id, name="王强", relationship="child", phone="+8613900000003")
        s.add(son)
        s.flush()
        s.add(Contact(beneficiary_id=wang.id, channel="sms", address="+8613900000003", verified=True,
                      family_member_id=son.id))
    run_days(db_engine, date(2026, 5, 11), date(2026, 5, 11))
    rows = outbox(db_engine, kind_like="cert_reminder")
    assert [(m.beneficiary_id, m.address) for m in rows] == [(zhang.id, "+8613900000002")]
    assert "张伯" in rows[0].body and "转告" in rows[0].body


def test_a_greeting_to_thousands_is_queued_in_short_write_transactions_each_once(db_engine: Engine) -> None:
    """A festival greeting to 2,500 veterans is written in transactions of at most 1,000 rows (the lock
    is let go between them, so webhooks get their turn), every greeting once; a re-run adds none."""
    from sqlalchemy import event

    with session_scope(db_engine) as s:
        for _ in range(2500):
            person(s, is_veteran=True)
    per_transaction: list[int] = []
    pending = [0]

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO OUTBOX_MESSAGE"):
            pending[0] += max(cursor.rowcount, 0)

    def committed(conn):  # type: ignore[no-untyped-def]
        if pending[0]:
            per_transaction.append(pending[0])
        pending[0] = 0

    event.listen(db_engine, "after_cursor_execute", count)
    event.listen(db_engine, "commit", committed)
    try:
        ctx = sweeps.make_context(FakeClock(local(2026, 10, 1, 9)).now(), SHANGHAI, None, TS)
        with session_scope(db_engine, immediate=True) as s:
            made = sweeps.sweep_festival(s, ctx, "national_day", date(2026, 10, 1), ["veteran"])
    finally:
        event.remove(db_engine, "after_cursor_execute", count)
        event.remove(db_engine, "commit", committed)
    assert made == 2500 and len(outbox(db_engine, kind_like="festival")) == 2500
    assert len(per_transaction) >= 3 and max(per_transaction) <= 1000 and sum(per_transaction) == 2500
    with session_scope(db_engine, immediate=True) as s:
        assert sweeps.sweep_festival(s, ctx, "national_day", date(2026, 10, 1), ["veteran"]) == 0
