"""The scheduler: one leader across processes, coarse jobs, catch-up once, festival jobs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import date, timedelta

from sqlalchemy import Engine, select

from models.actions import record_death
from models.clock import FakeClock
from models.db import session_scope, write_scope
from models.pgserver import PostgresServer
from models.scheduler import SchedulerJobRun
from scheduler import LeaseLeadership, PgAdvisoryLeadership, build_scheduler
from settings import Settings
from tests.scheduler.factories import SHANGHAI, TS, local, outbox, person


def test_a_second_sqlite_scheduler_runs_nothing_while_the_lease_is_held_and_takes_over_when_it_lapses(
        sqlite_engine: Engine, settings: Settings) -> None:
    """Two processes on one SQLite file: the second neither leads nor runs a job while the first
    renews its lease; when the first dies (stops renewing), the second takes the lease once it
    has expired and runs jobs; the first, coming back, finds it has lost the lead."""
    clock = FakeClock(local(2026, 5, 11, 7, 30))
    with session_scope(sqlite_engine) as s:
        person(s, is_retiree=True, last_certified_on=date(2025, 6, 10))
    first = build_scheduler(sqlite_engine, settings, clock, templates=TS,
                            leadership=LeaseLeadership(sqlite_engine, clock=clock, owner="first"))
    second = build_scheduler(sqlite_engine, settings, clock, templates=TS,
                             leadership=LeaseLeadership(sqlite_engine, clock=clock, owner="second"))
    assert first.step() is True  # leads, and catches the missed daily jobs up: one reminder queued
    assert len(outbox(sqlite_engine)) == 1
    assert second.step() is False
    assert second.run_job("daily_sweep") is None
    clock.advance(timedelta(seconds=20))
    assert first.step() is True  # renewed
    clock.advance(timedelta(seconds=20))
    assert second.step() is False  # 40 s after the start, but only 20 s after the renewal
    clock.advance(timedelta(seconds=11))  # the first has died: no renewal for 31 s
    assert second.step() is True
    clock.set(local(2026, 6, 3, 7, 30))  # the 7-day reminder's day
    assert second.run_job("daily_sweep").total_enqueued == 1
    assert len(outbox(sqlite_engine)) == 2
    assert first.step() is False
    assert first.run_job("daily_sweep") is None


def test_a_second_postgres_scheduler_waits_on_the_advisory_lock_and_takes_over_when_the_leader_dies(
        pg_server: PostgresServer, pg_engine: Engine, settings: Settings) -> None:
    """A leader in another process holds the advisory lock: we cannot lead and run nothing.
    The leader is killed (its connection drops, the lock frees): our next round takes over."""
    leader = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from models.db import make_engine
        from scheduler import PgAdvisoryLeadership
        lead = PgAdvisoryLeadership(make_engine({str(pg_engine.url.render_as_string(hide_password=False))!r}))
        assert lead.acquire()
        print("leading", flush=True)
        time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True, cwd=str(__import__("pathlib").Path(__file__).parents[2]))
    try:
        assert leader.stdout is not None and leader.stdout.readline().strip() == "leading"
        clock = FakeClock(local(2026, 5, 11, 7, 30))
        with session_scope(pg_engine) as s:
            person(s, is_retiree=True, last_certified_on=date(2025, 6, 10))
        ours = build_scheduler(pg_engine, settings, clock, templates=TS, leadership=PgAdvisoryLeadership(pg_engine))
        assert ours.step() is False
        assert ours.run_job("daily_sweep") is None
        assert outbox(pg_engine) == []
        leader.kill()
        leader.wait(timeout=30)
        deadline = time.monotonic() + 30
        while not ours.step():  # the server notices the dead backend within moments
            assert time.monotonic() < deadline, "the lock was not freed when its holder died"
            time.sleep(0.1)
        assert len(outbox(pg_engine)) == 1  # taking the lead caught the missed 07:30 sweep up
        assert ours.run_job("daily_sweep").total_enqueued == 0
        other = PgAdvisoryLeadership(pg_engine)
        assert other.acquire() is False  # and now we hold it
    finally:
        leader.kill()
        leader.wait(timeout=30)
    ours.shutdown()
    after = PgAdvisoryLeadership(pg_engine)
    assert after.acquire() is True  # released on shutdown
    after.release()


def test_after_downtime_each_daily_job_is_caught_up_once_when_leadership_is_taken(
        db_engine: Engine, settings: Settings) -> None:
    """The scheduler was down over 07:30, 08:30 and 10:00 (sweep, staff summary, payment run):
    on taking the lead at 11:00 it runs each once; the next round (still leading) runs nothing."""
    clock = FakeClock(local(2026, 5, 11, 11, 0))
    with session_scope(db_engine) as s:
        person(s, is_retiree=True, last_certified_on=date(2025, 6, 10))
    sched = build_scheduler(db_engine, settings, clock, templates=TS)
    missed = sched.missed_jobs()
    assert missed == ["daily_sweep", "payment_run", "staff_summary"]
    assert sched.step() is True
    with session_scope(db_engine) as s:
        runs = {r.job: r for r in s.execute(select(SchedulerJobRun)).scalars()}
    assert runs["daily_sweep"].last_finished_at == clock.now()
    assert sched.missed_jobs() == []
    clock.advance(timedelta(minutes=1))
    assert sched.step() is True
    assert len(outbox(db_engine, kind_like="cert_reminder")) == 1
    sched.shutdown()


def test_festival_jobs_are_one_per_occasion_date_at_its_office_send_time(sqlite_engine: Engine,
                                                                      settings: Settings) -> None:
    """A year ahead from 2026-01-01: one date job per greeted occasion (lantern is off), each
    at its send time in office time; Spring Festival 2026 (17 February) is greeted on the eve."""
    clock = FakeClock(local(2026, 1, 1, 0, 0))
    sched = build_scheduler(sqlite_engine, settings, clock, templates=TS)
    jobs = {j.id: j for j in sched.aps.get_jobs() if j.id.startswith("festival:")}
    in_2026 = sorted((j for j in jobs if j.split(":")[2].startswith("2026")), key=lambda j: j.split(":")[2])
    assert [j.split(":")[1] for j in in_2026] == [
        "spring_festival", "qingming", "dragon_boat", "army_day", "mid_autumn", "national_day", "double_ninth"]
    spring = jobs["festival:spring_festival:2026-02-17"]
    assert spring.trigger.run_date.astimezone(SHANGHAI).isoformat() == "2026-02-16T09:00:00+08:00"
    assert {j.id for j in sched.aps.get_jobs()} >= {"daily_sweep", "payment_run", "broadcasts", "escalations",
                                                    "staff_summary"}


def test_a_death_recorded_before_a_greeting_stops_it_and_after_queueing_suppresses_it(
        db_engine: Engine, settings: Settings) -> None:
    """Army Day 2026 (veterans): one veteran died in July, another dies after the greeting is
    queued but before it is sent; a retiree is not in the audience. Only the living veteran's
    greeting stays queued; re-running the festival job adds nothing."""
    with session_scope(db_engine) as s:
        alive = person(s, is_veteran=True, is_retiree=True)
        died_before = person(s, is_veteran=True)
        record_death(s, died_before, died_on=date(2026, 7, 20), actor="alice")
        dies_after = person(s, is_veteran=True)
        person(s, is_retiree=True)
    clock = FakeClock(local(2026, 8, 1, 9, 0))
    sched = build_scheduler(db_engine, settings, clock, templates=TS)
    assert sched.step() is True
    sched.run_job("festivals")
    with write_scope(db_engine) as s:
        record_death(s, s.get(type(alive), dies_after.id), died_on=date(2026, 8, 1), actor="alice",
                     now=local(2026, 8, 1, 9, 5))
    clock.advance(timedelta(minutes=10))
    sched.run_job("festivals")
    rows = outbox(db_engine, kind="festival_greeting")
    assert sorted((m.beneficiary_id, m.status) for m in rows) == [(alive.id, "queued"), (dies_after.id, "suppressed")]
    assert rows[0].occurrence == "army_day-2026-08-01"
    assert rows[0].deadline_at == local(2026, 8, 2, 0, 0)
    sched.shutdown()
