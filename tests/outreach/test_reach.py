"""Nobody silently cut off: the contact rule's promises, each through the paths people meet."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from outreach_helpers import add_person, fake_sleep, queue, row
from sqlalchemy import Engine
from sqlmodel import select

from bot.words import staff_label
from models.actions import opt_out, record_death
from models.applications import Application, HandoffTicket, Task
from models.clock import FakeClock
from models.db import session_scope, write_scope
from models.outbox import OutboxMessage
from models.people import Beneficiary, Contact, FamilyMember
from models.staff import StaffUser
from outreach import sweeps
from outreach.dispatcher import Dispatcher
from outreach.notices import enqueue_notice, send_one_time_code
from outreach.outbox_commands import retry_failed
from outreach.providers.base import ContactStopped
from outreach.templates import load_templates
from tests.fakes.scripted import ScriptedProvider

TS = load_templates()
SHANGHAI = ZoneInfo("Asia/Shanghai")


def make(engine: Engine, clock: FakeClock, settings: object) -> tuple[Dispatcher, ScriptedProvider, ScriptedProvider]:
    tg = ScriptedProvider("telegram", "tg", clock)
    sms = ScriptedProvider("sms", "sms", clock)
    return Dispatcher(engine, {"telegram": tg, "sms": sms}, clock, settings, sleep=fake_sleep(clock), seed=1), tg, sms


def opted_out(engine: Engine, contact_id: int) -> None:
    with write_scope(engine) as s:
        c = s.get(Contact, contact_id)
        assert c is not None
        opt_out(s, c, reason="TD", actor="bot")


def tasks(engine: Engine) -> list[Task]:
    with session_scope(engine) as s:
        return list(s.exec(select(Task).order_by(Task.id)).all())  # type: ignore[arg-type]


async def test_an_opt_out_stops_reminders_but_not_the_code_the_person_asked_for(db_engine, clock, settings):
    """After 回复TD退订 on their phone, a queued certification reminder is suppressed at once, and
    the one-time code they then ask for to link Telegram still goes to that phone."""
    b, c = add_person(db_engine, sms="+8613800000011")
    reminder = queue(db_engine, clock, channel="sms", address="+8613800000011", beneficiary_id=b,
                     kind="cert_reminder_7")
    opted_out(db_engine, c["sms"])
    assert row(db_engine, reminder).status == "suppressed"
    with write_scope(db_engine) as s:
        code = send_one_time_code(s, phone_e164="+8613800000011", code="482913", lang="zh-Hans", now=clock.now(),
                                  beneficiary_id=b, templates=TS)
    d, _, sms = make(db_engine, clock, settings)
    await d.run_once()
    assert [m.message.address for m in sms.sent] == ["+8613800000011"] and "482913" in sms.sent[0].message.body
    assert row(db_engine, code.message_id).status == "sent"


async def test_a_notice_about_their_own_application_still_reaches_an_opted_out_person(db_engine, clock, settings):
    """Opted out of notifications on Telegram, a veteran still hears that their application
    was accepted; a festival greeting queued the same morning does not reach them."""
    b, c = add_person(db_engine, telegram="1101", sex="M")
    opted_out(db_engine, c["telegram"])
    with write_scope(db_engine) as s:
        person = s.get(Beneficiary, b)
        accepted = enqueue_notice(s, beneficiary=person, kind="stage_accepted", occurrence="NX-1:accepted:1",
                                  context={"reference": "NX-2026-000001", "application_type": "veteran_insurance"},
                                  now=clock.now(), templates=TS)
        greeting = enqueue_notice(s, beneficiary=person, kind="festival_greeting", occurrence="army_day-2026",
                                  context={"occasion": "army_day"}, now=clock.now(), templates=TS)
    assert accepted is not None and greeting is None
    d, tg, _ = make(db_engine, clock, settings)
    await d.run_once()
    assert [m.message.address for m in tg.sent] == ["1101"] and "NX-2026-000001" in tg.sent[0].message.body


async def test_the_daughter_who_reported_a_death_gets_the_reply_to_her_own_ticket(db_engine, clock, settings):
    """She wrote from her own phone about her father; after his death is recorded, staff's
    answer to her ticket still reaches her, while a reminder about him to her phone does not."""
    b, _ = add_person(db_engine, telegram="1201", sex="M")
    with session_scope(db_engine) as s:
        daughter = FamilyMember(beneficiary_id=b, name="李丽", relationship="child", phone="+8613900001201")
        s.add(daughter)
        s.flush()
        s.add(Contact(beneficiary_id=b, channel="sms", address="+8613900001201", verified=True,
                      family_member_id=daughter.id))
        s.add(StaffUser(username="wang", display_name="王老师", roles=["caseworker"]))
        ticket = HandoffTicket(channel="sms", address="+8613900001201", beneficiary_id=b, question="父亲去世了怎么办",
                               reason="personal_case", created_at=clock.now())
        s.add(ticket)
        s.flush()
        ticket_id = ticket.id
        record_death(s, s.get(Beneficiary, b), died_on=date(2026, 3, 1), actor="wang", reported_by="daughter",
                     now=clock.now())
    reminder = queue(db_engine, clock, channel="sms", address="+8613900001201", beneficiary_id=b,
                     kind="cert_reminder_7")
    from bot.tickets import reply_to_ticket

    reply_to_ticket(db_engine, ticket_id, "节哀。请带死亡证明到社区办理丧葬补助。", "wang", clock.now())
    d, _, sms = make(db_engine, clock, settings)
    await d.run_once()
    assert [m.message.address for m in sms.sent] == ["+8613900001201"]
    assert "丧葬补助" in sms.sent[0].message.body
    assert row(db_engine, reminder).status == "suppressed" and "deceased" in row(db_engine, reminder).error


async def test_a_refused_notice_about_their_case_opens_one_staff_task_to_phone_them(db_engine, clock, settings):
    """Twilio refuses the notice of a payment due (21610: the number sent STOP) and there is
    no other channel: the row fails and a callback task opens for staff to phone them; the
    same message refused again after staff requeue it opens no second task."""
    b, c = add_person(db_engine, sms="+8613800001301")
    with session_scope(db_engine) as s:
        app = Application(reference="NX-2026-001301", type="veteran_insurance", beneficiary_id=b, stage="verification")
        s.add(app)
        s.flush()
        notice = enqueue_notice(s, beneficiary=s.get(Beneficiary, b), kind="stage_payment_notice",
                                occurrence="NX-2026-001301:payment_notice:1", now=clock.now(), templates=TS,
                                context={"reference": app.reference, "application_type": app.type,
                                         "amount_fen": 1234500, "account": "6222000012345678",
                                         "deadline": date(2026, 3, 12)})
    assert notice is not None
    d, _, sms = make(db_engine, clock, settings)
    sms.errors["+8613800001301"] = ContactStopped("opted_out", "Attempt to send to unsubscribed recipient", 21610)
    await d.run_once()
    assert row(db_engine, notice.message_id).status == "failed"
    [task] = tasks(db_engine)
    assert (task.kind, task.beneficiary_id, task.status) == ("callback", b, "open") and staff_label("message_kind", "stage_payment_notice") in task.note
    assert retry_failed(db_engine, actor="wang", now=clock.now()) == 1
    await d.run_once()
    assert row(db_engine, notice.message_id).status == "failed" and len(tasks(db_engine)) == 1


def test_both_channels_opted_out_and_a_payment_deadline_opens_a_staff_task_not_silence(db_engine):
    """A veteran opted out on Telegram and by SMS owes 1,234.50 yuan by 20 April: the reminder
    three days before is not sent, and staff get one task to phone them instead (a re-run of
    the sweep opens no second one)."""
    with session_scope(db_engine) as s:
        b = Beneficiary(name="王秀英", id_hash="pay-both-out", id_masked="4407**********0000", is_veteran=True)
        s.add(b)
        s.flush()
        for channel, address in (("telegram", "1401"), ("sms", "+8613800001401")):
            contact = Contact(beneficiary_id=b.id, channel=channel, address=address, verified=True)
            s.add(contact)
            s.flush()
            opt_out(s, contact, reason="TD", actor="bot")
        s.add(Application(reference="NX-2026-001401", type="veteran_insurance", beneficiary_id=b.id,
                          stage="payment_notice", payment_amount_fen=123450, payment_account="6222",
                          payment_deadline=date(2026, 4, 20)))
        bid = b.id
    morning = FakeClock(datetime(2026, 4, 17, 7, 30, tzinfo=SHANGHAI).astimezone(UTC))
    for _ in range(2):
        sweeps.daily_sweep(db_engine, clock=morning, tz=SHANGHAI, templates=TS)
    with session_scope(db_engine) as s:
        assert s.exec(select(OutboxMessage)).all() == []
    [task] = tasks(db_engine)
    assert (task.kind, task.beneficiary_id) == ("callback", bid) and staff_label("message_kind", "payment_deadline_reminder") in task.note


async def test_a_paused_person_gets_no_reminder_but_the_answer_to_their_question(db_engine, clock, settings):
    """While a reported move awaits verification, the daily sweep queues no reminder for them, a
    reminder already queued waits (held, not dropped), and a staff answer to their question
    goes out."""
    b, c = add_person(db_engine, telegram="1501", is_retiree=True, last_certified_on=date(2025, 3, 9))
    held = queue(db_engine, clock, channel="telegram", address="1501", beneficiary_id=b, kind="cert_reminder_30")
    with write_scope(db_engine) as s:
        person = s.get(Beneficiary, b)
        person.outreach_paused_at = clock.now()
        person.outreach_paused_reason = "moved: awaiting verification"
        s.add(person)
    sweeps.daily_sweep(db_engine, clock=clock, tz=SHANGHAI, templates=TS)
    reply = queue(db_engine, clock, channel="telegram", address="1501", beneficiary_id=b, kind="handoff_answer",
                  message_class="requested")
    d, tg, _ = make(db_engine, clock, settings)
    await d.run_once()
    assert [m.message.address for m in tg.sent] == ["1501"] and row(db_engine, reply).status == "sent"
    r = row(db_engine, held)
    assert r.status == "queued" and r.next_attempt_at == clock.now() + timedelta(hours=1)
    with session_scope(db_engine) as s:
        kinds = [m.kind for m in s.exec(select(OutboxMessage)).all()]
    assert kinds == ["cert_reminder_30", "handoff_answer"]
