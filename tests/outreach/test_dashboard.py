"""The dashboard's figures: each one against what the database holds, "today" in office time."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from models.actions import audit
from models.applications import Application, HandoffTicket, SurveyAnswer, Task
from models.db import session_scope
from models.outbox import OutboxMessage
from outreach import dashboard as dash
from tests.scheduler.factories import person

TZ = ZoneInfo("Asia/Shanghai")
# 01:30 on 3 March in Shanghai, still 2 March in UTC: "today" is the 3rd.
NOW = datetime(2026, 3, 2, 17, 30, tzinfo=UTC)


_message_numbers = itertools.count()


def _message(s, kind: str, status: str, channel: str, created: datetime, due: datetime | None = None) -> None:  # type: ignore[no-untyped-def]
    n = next(_message_numbers)  # numbered here, not by counting the table: the session only writes
    s.add(OutboxMessage(idempotency_key=f"{kind}:{n}", kind=kind, channel=channel, address=str(n), body="x",
                        status=status, created_at=created, next_attempt_at=due or created))


def test_the_funnel_counts_each_stage_in_the_order_of_seed_003(db_engine: Engine) -> None:
    """Counts per stage equal the database's, in seed 003's order, returned and rejected beside;
    a type filter counts that type only."""
    stages = ["accepted"] * 3 + ["verification"] * 2 + ["completed", "returned", "rejected", "rejected", "staged"]
    with session_scope(db_engine) as s:
        b = person(s)
        for i, stage in enumerate(stages):
            s.add(Application(reference=f"NX-2026-{i:06d}", type="veteran_insurance" if i % 2 else "hardship",
                              beneficiary_id=b.id, stage=stage))
    with session_scope(db_engine) as s:
        stages_now, beside = dash.funnel(s)
        by_db = dict(s.execute(select(Application.stage, func.count()).group_by(Application.stage)).all())
        only, _ = dash.funnel(s, "veteran_insurance")
    assert [code for code, _ in stages_now] == ["staged", "accepted", "preliminary_review", "verification",
                                                "payment_notice", "paid", "completed"]
    assert dict(stages_now) | dict(beside) == {**{c: 0 for c, _ in stages_now}, **by_db, "returned": 1,
                                               "rejected": 2}
    assert [c for c, _ in beside] == ["returned", "rejected"]
    assert {c: n for c, n in only if n} == {"staged": 1, "accepted": 1, "verification": 1, "completed": 1}


def test_today_is_the_office_day_for_due_messages_and_tasks(db_engine: Engine) -> None:
    """At 01:30 office time on 3 March: a reminder queued for 09:30 that day and one overdue
    count, one for 4 March does not; a task due on the 3rd counts, one due on the 4th does not;
    staff summaries are not beneficiaries' reminders."""
    with session_scope(db_engine) as s:
        _message(s, "cert_reminder_7", "queued", "sms", NOW, datetime(2026, 3, 3, 1, 30, tzinfo=UTC))
        _message(s, "cert_reminder_7", "queued", "sms", NOW - timedelta(days=1), NOW - timedelta(hours=20))
        _message(s, "cert_reminder_1", "queued", "sms", NOW, datetime(2026, 3, 4, 1, 30, tzinfo=UTC))
        _message(s, "staff_summary", "queued", "telegram", NOW)
        s.add(Task(kind="home_visit", due_on=date(2026, 3, 3)))
        s.add(Task(kind="home_visit", due_on=date(2026, 3, 4)))
        s.add(Task(kind="callback", due_on=date(2026, 3, 1)))
        s.add(Task(kind="callback", due_on=date(2026, 3, 1), status="done"))
    with session_scope(db_engine) as s:
        d = dash.dashboard(s, now=NOW, tz=TZ)
    assert d.today == date(2026, 3, 3)
    assert d.due_messages == [("cert_reminder_7", 2)]
    assert d.due_tasks == [("callback", 1), ("home_visit", 1)]


def test_open_handoffs_are_counted_by_how_long_they_have_waited(db_engine: Engine) -> None:
    """Five open tickets in five age bands; an answered one is not counted."""
    with session_scope(db_engine) as s:
        for age in (timedelta(minutes=10), timedelta(hours=2), timedelta(hours=5), timedelta(days=2),
                    timedelta(days=9)):
            s.add(HandoffTicket(channel="sms", address="+8613800000000", question="?", reason="flow",
                                created_at=NOW - age))
        s.add(HandoffTicket(channel="sms", address="+8613800000000", question="?", reason="flow", status="answered",
                            created_at=NOW - timedelta(days=2)))
    with session_scope(db_engine) as s:
        ages = dash.handoffs_by_age(s, NOW)
    assert ages == [("under_1h", 1), ("1_4h", 1), ("4_24h", 1), ("1_3d", 1), ("over_3d", 1)]


def test_deliveries_cover_thirty_days_by_channel_and_status_without_staff_messages(db_engine: Engine) -> None:
    with session_scope(db_engine) as s:
        _message(s, "festival_greeting", "delivered", "sms", NOW - timedelta(days=1))
        _message(s, "festival_greeting", "delivered", "sms", NOW - timedelta(days=29))
        _message(s, "festival_greeting", "failed", "telegram", NOW - timedelta(days=3))
        _message(s, "festival_greeting", "delivered", "sms", NOW - timedelta(days=31))
        _message(s, "staff_summary", "delivered", "telegram", NOW - timedelta(days=1))
    with session_scope(db_engine) as s:
        assert dash.deliveries(s, NOW) == {"sms": {"delivered": 2}, "telegram": {"failed": 1}}


def test_opt_outs_per_week_count_every_opt_out_in_office_weeks(db_engine: Engine) -> None:
    """Two opt-outs this week (one at 01:00 office time on Monday, still Sunday in UTC), one
    two weeks back; a re-subscription does not take one away."""
    monday_0100 = datetime(2026, 3, 1, 17, 0, tzinfo=UTC)  # Mon 2 March 01:00 in Shanghai
    with session_scope(db_engine) as s:
        audit(s, "bot", "contact.opt_out", "contact", 1, {}, monday_0100)
        audit(s, "bot", "contact.opt_out", "contact", 2, {}, NOW - timedelta(hours=1))
        audit(s, "bot", "contact.opt_in", "contact", 2, {}, NOW)
        audit(s, "bot", "contact.opt_out", "contact", 3, {}, NOW - timedelta(days=14))
    with session_scope(db_engine) as s:
        weeks = dash.opt_outs_by_week(s, date(2026, 3, 3), TZ)
    assert len(weeks) == 12 and weeks[-1] == (date(2026, 3, 2), 2)
    assert dict(weeks)[date(2026, 2, 16)] == 1 and sum(n for _, n in weeks) == 3


def test_satisfaction_is_the_surveys_average_share_satisfied_and_number_of_answers(db_engine: Engine) -> None:
    with session_scope(db_engine) as s:
        for score in (5, 5, 4, 2, 3):
            s.add(SurveyAnswer(score=score, created_at=NOW - timedelta(days=3)))
        s.add(SurveyAnswer(score=1, created_at=NOW - timedelta(days=400)))
    with session_scope(db_engine) as s:
        sat = dash.satisfaction(s, date(2026, 3, 3), TZ)
        none = dash.satisfaction(s, date(2030, 1, 1), TZ)
    assert (sat.answers, sat.average, sat.satisfied_share) == (5, 3.8, 0.6)
    assert sat.by_score == {1: 0, 2: 1, 3: 1, 4: 1, 5: 2}
    assert (none.answers, none.average) == (0, None)
