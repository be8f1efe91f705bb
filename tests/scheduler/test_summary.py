"""The daily staff summary."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, select

from models.actions import create_task, opt_out
from models.applications import Application
from models.clock import FakeClock
from models.db import session_scope
from models.outbox import OutboxEvent, OutboxMessage
from models.people import Contact
from outreach import sweeps
from outreach.summary import daily_summary, send_daily_summary
from settings import Settings, load_settings
from tests.scheduler.factories import SHANGHAI, TS, local, outbox, person


def test_the_morning_summary_counts_due_sent_failed_opted_out_and_tasks_and_goes_to_the_staff_chat_once(
        db_engine: Engine, settings: Settings) -> None:
    """Yesterday (office day 05-10): one message sent, one failed (21610), one opt-out, one task;
    today (05-11): one certification due, and its last reminder queued for today. The summary is
    queued to the staff chat as `staff_summary`, once however often the job runs."""
    with session_scope(db_engine) as s:
        person(s, is_retiree=True, last_certified_on=date(2025, 5, 11))
        b = person(s, is_retiree=True, last_certified_on=date(2025, 6, 10))
        opt_out(s, s.execute(select(Contact).where(Contact.beneficiary_id == b.id)).scalar_one(), reason="TD",
                actor="bot", now=local(2026, 5, 10, 15))
        create_task(s, kind="hospital_visit", actor="bot", now=local(2026, 5, 10, 11))
        for i, status in enumerate(["sent", "failed"]):
            m = OutboxMessage(idempotency_key=f"x{i}", kind="test", channel="sms", address="+8613800000000",
                              body="x", status=status, error_code="21610" if status == "failed" else None,
                              sent_at=local(2026, 5, 10, 10) if status == "sent" else None)
            s.add(m)
            s.flush()
            s.add(OutboxEvent(outbox_id=m.id, from_status="sending", to_status=status, at=local(2026, 5, 10, 10)))
        s.add(Application(reference="NX-2026-000009", type="veteran_insurance", beneficiary_id=b.id,
                          stage="verification", stage_changed_at=local(2026, 3, 1)))
    clock = FakeClock(local(2026, 5, 11, 7, 30))
    sweeps.daily_sweep(db_engine, clock=clock, tz=SHANGHAI, templates=TS)
    sweeps.run_escalations(db_engine, clock=clock, tz=SHANGHAI, templates=TS)
    with session_scope(db_engine) as s:
        f = daily_summary(s, date(2026, 5, 11), SHANGHAI)
    assert (f["sent"], f["failed"], f["failed_by_reason"], f["opted_out"]) == (1, 1, {"21610": 1}, 1)
    assert f["certifications_due_today"] == 1
    # The retiree due in 30 days opted out; the one due today gets the last (1-day) reminder today.
    assert f["due_today_by_kind"] == {"cert_reminder_1": 1}
    assert f["tasks_opened_by_kind"] == {"hospital_visit": 1, "stuck_application": 1}
    assert [x["reference"] for x in f["stuck_applications"]] == ["NX-2026-000009"]
    staff_settings = load_settings(data_dir=settings.data_dir, staff_telegram_chat_id="-100200")
    clock.set(local(2026, 5, 11, 8, 30))
    for _ in range(2):
        send_daily_summary(db_engine, clock=clock, settings=staff_settings, templates=TS)
    rows = outbox(db_engine, kind="staff_summary")
    assert [(m.channel, m.address) for m in rows] == [("telegram", "-100200")]
    assert "今日到期资格认证：1" in rows[0].body and "NX-2026-000009" in rows[0].body
