"""An office's changes to festival occasions: stored, audited, shown by the schedule preview
and honoured by the scheduler without a restart."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import Engine, select

from models.clock import FakeClock
from models.db import session_scope, write_scope
from models.staff import AuditLog
from outreach.occasion_settings import OccasionChangeRefused, change_occasion, occasion_rules, reset_occasion
from scheduler import build_scheduler
from scheduler_commands import per_day, upcoming
from settings import Settings
from tests.scheduler.factories import SHANGHAI, TS, local, outbox, person


def test_switching_army_day_off_stops_its_greeting_and_the_preview_says_so(
        db_engine: Engine, settings: Settings) -> None:
    """Army Day switched off on the morning itself, with the scheduler running: the preview
    lists it as off with nobody to get it, the festival job at 09:00 queues nothing, and the
    change is in the audit log with the staff member's name."""
    with session_scope(db_engine) as s:
        person(s, is_veteran=True)
    clock = FakeClock(local(2026, 8, 1, 7, 0))
    sched = build_scheduler(db_engine, settings, clock, templates=TS)
    assert sched.step() is True
    with write_scope(db_engine) as s:
        rule = change_occasion(s, "army_day", actor="chen", now=clock.now(), settings=settings, enabled=False)
        assert not rule.audience
        entries = upcoming(s, date(2026, 8, 1), 1, SHANGHAI, occasion_rules=occasion_rules(s, settings),
                           today=date(2026, 8, 1))
        audited = s.execute(select(AuditLog).where(AuditLog.action == "schedule.occasion")).scalar_one()
    army = next(e for e in entries if e["occasion"] == "army_day")
    assert (army["enabled"], army["audience"]) == (False, 0)
    assert audited.actor == "chen" and audited.details["after"]["enabled"] is False
    clock.set(local(2026, 8, 1, 9, 0))
    sched.run_job("festivals")
    assert outbox(db_engine, kind="festival_greeting") == []
    sched.shutdown()


def test_moving_a_greetings_time_moves_its_job_and_it_goes_at_the_new_time(
        db_engine: Engine, settings: Settings) -> None:
    """Mid-Autumn 2026 (25 September) moved from 09:00 to 15:30: at the scheduler's next minute
    poll its job takes the new time; at 09:00 nothing goes, at 15:30 the greeting is queued."""
    with session_scope(db_engine) as s:
        person(s, is_retiree=True)
    clock = FakeClock(local(2026, 9, 25, 8, 0))
    sched = build_scheduler(db_engine, settings, clock, templates=TS)
    assert sched.step() is True
    with write_scope(db_engine) as s:
        change_occasion(s, "mid_autumn", actor="chen", now=clock.now(), settings=settings, enabled=True,
                        send_time="15:30")
    assert sched.replan_if_occasions_changed() is True
    assert sched.replan_if_occasions_changed() is False  # nothing changed since
    job = sched.aps.get_job("festival:mid_autumn:2026-09-25")
    assert job.trigger.run_date.astimezone(SHANGHAI).isoformat() == "2026-09-25T15:30:00+08:00"
    clock.set(local(2026, 9, 25, 9, 0))
    sched.run_job("festivals")
    assert outbox(db_engine, kind="festival_greeting") == []
    clock.set(local(2026, 9, 25, 15, 30))
    sched.run_job("festivals")
    assert len(outbox(db_engine, kind="festival_greeting")) == 1
    sched.shutdown()


def test_an_occasion_change_is_checked_before_it_is_stored(db_engine: Engine, settings: Settings,
                                                           clock: FakeClock) -> None:
    """A time in quiet hours, a word for a time, an unknown occasion, and switching on the
    Lantern Festival (off in the file) without saying who gets it are refused; with an
    audience it is on; reset brings back the file's rule."""
    with write_scope(db_engine) as s:
        for kwargs, words in (({"occasion": "mid_autumn", "send_time": "22:30"}, "免打扰"),
                              ({"occasion": "mid_autumn", "send_time": "早上"}, "09:00"),
                              ({"occasion": "halloween"}, "不认识"), ({"occasion": "lantern"}, "哪些人")):
            with pytest.raises(OccasionChangeRefused, match=words):
                change_occasion(s, kwargs.pop("occasion"), actor="chen", now=clock.now(), settings=settings,
                                enabled=True, **kwargs)
        rule = change_occasion(s, "lantern", actor="chen", now=clock.now(), settings=settings, enabled=True,
                               audience=["retiree"])
        assert rule.audience == frozenset({"retiree"})
        reset_occasion(s, "lantern", actor="chen", now=clock.now())
        assert occasion_rules(s, settings)["lantern"].audience == frozenset()


def test_the_schedule_counts_what_goes_out_each_day(db_engine: Engine, settings: Settings) -> None:
    """Around the Double Ninth 2026 (18 October): two people greeted that day and a retiree's
    certification reminder 7 days before it falls due; each day's count adds its entries."""
    with session_scope(db_engine) as s:
        person(s, is_veteran=True)
        person(s, is_retiree=True, last_certified_on=date(2025, 10, 25))
        entries = upcoming(s, date(2026, 10, 17), 3, SHANGHAI, occasion_rules=occasion_rules(s, settings),
                           today=date(2026, 10, 17))
    days = {day: (n, sorted(e["kind"] for e in items)) for day, n, items in per_day(entries, SHANGHAI)}
    assert days[date(2026, 10, 18)] == (3, ["cert_reminder_7", "festival_greeting"])
    assert all(day >= date(2026, 10, 17) and day < date(2026, 10, 17) + timedelta(days=3) for day in days)
