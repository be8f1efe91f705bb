"""Which jobs run when. The scheduler only decides WHEN; outreach/sweeps.py decides WHO and WHAT.

Few coarse jobs, never one per person (RapidPro's habit: the database is the schedule):
| job               | when (office time)                  | does                                          |
| daily_sweep       | daily at rules.daily_sweep_time      | certification reminders, home visits, over-80, payment-deadline reminders |
| payment_run       | daily at rules.payment_run_time      | per-scheme payment notices for today's payment days |
| festival:<o>:<d>  | once, at each occasion's send time   | the festival greeting (occasions.yaml)        |
| broadcasts        | every minute                         | staff-scheduled broadcasts that are due       |
| escalations       | hourly                               | stuck applications, unanswered tickets        |
| staff_summary     | daily at rules.staff_summary_time    | the morning figures to the staff Telegram chat |
| housekeeping      | hourly (at :35)                      | forget inbound receipts older than a week (bot/inbound.py) |

The leader and each daily sweep first refresh the query planner's statistics (ANALYZE), so that
a roll that grew is still read batch by batch in id order (models/db.py).

Only one process runs jobs at a time:
- PostgreSQL: a session-level advisory lock held on a dedicated connection. Another process
  retries every few seconds; if the leader dies its connection drops, the lock frees, and
  the next try takes over (a SIGKILLed leader: within `poll_seconds`). The lock's connection
  asks the server for TCP keepalives of a few seconds, so a leader whose host vanished (no
  FIN ever comes) is noticed within about 20 s instead of the kernel's two hours.
- SQLite: a lease row (`scheduler_lease`) renewed every `ttl/3`; a dead leader stops renewing
  and the lease is taken once it expires.
A job also checks leadership just before it runs, so a leader that lost its lock while a job
was queued does not run it. Two leaders overlapping for a moment (one that lost its lock
mid-sweep) still enqueue each reminder once: every outbox row has a unique idempotency key
(what, whom, which occurrence), and a second insert of it is a no-op.

After downtime each daily job runs once at start if its last scheduled time was missed
(recorded in `scheduler_job_run`; coalesced: one run, however many days were missed). The
sweeps ask "who is due as of today and not yet sent", so one run covers the missed days.
APScheduler's misfire_grace_time + coalesce do the same within a running process (a job held
up by a long sweep, or a laptop asleep).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time as _time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from models.clock import Clock, SystemClock
from models.db import is_sqlite, refresh_statistics, session_scope
from models.scheduler import SchedulerJobRun, SchedulerLease
from outreach.schedule_rules import ScheduleRules, default_rules

log = logging.getLogger(__name__)

# pg_try_advisory_lock key: any constant the rest of nuanxin does not use ("nuanxin" in hex-ish).
ADVISORY_LOCK_KEY = 0x6E75616E78696E
LEASE_NAME = "scheduler"
# The lock connection's server-side keepalives: idle 5 s, then a probe every 5 s, dead after 3 missed.
LOCK_KEEPALIVES = {"tcp_keepalives_idle": 5, "tcp_keepalives_interval": 5, "tcp_keepalives_count": 3}


def process_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


# --- leadership --------------------------------------------------------------------------

class Leadership(Protocol):
    owner: str

    def acquire(self) -> bool:
        """Try once, without waiting; True if this process now leads."""
        ...

    def renew(self) -> bool:
        """Confirm (and extend) leadership; False once it is lost."""
        ...

    def release(self) -> None:
        ...


class PgAdvisoryLeadership:
    """A session-level advisory lock on a connection kept open for as long as we lead."""

    def __init__(self, engine: Engine, *, key: int = ADVISORY_LOCK_KEY, owner: str | None = None) -> None:
        self.engine = engine
        self.key = key
        self.owner = owner or process_owner()
        self._conn: Connection | None = None

    def acquire(self) -> bool:
        if self._conn is not None:
            return self.renew()
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            for name, value in LOCK_KEEPALIVES.items():
                conn.execute(text("SELECT set_config(:name, :value, false)"), {"name": name, "value": str(value)})
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar())
        except Exception:
            conn.close()
            raise
        if got:
            self._conn = conn
        else:
            conn.close()
        return got

    def renew(self) -> bool:
        if self._conn is None:
            return False
        try:
            held = self._conn.execute(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
                "AND granted AND ((classid::bigint << 32) | objid::bigint) = :k"), {"k": self.key}).scalar()
        except Exception as exc:  # the connection dropped: the lock went with it
            log.warning("scheduler lost its PostgreSQL lock connection: %s", type(exc).__name__)
            self._drop()
            return False
        if not held:
            self._drop()
            return False
        return True

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except Exception:  # already gone
                pass

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            self._conn.close()
        except Exception:
            pass
        self._conn = None


class LeaseLeadership:
    """A lease row with an expiry, renewed by its holder (SQLite: one file, several processes)."""

    def __init__(self, engine: Engine, *, clock: Clock, owner: str | None = None,
                 ttl: timedelta = timedelta(seconds=30), name: str = LEASE_NAME) -> None:
        self.engine = engine
        self.clock = clock
        self.owner = owner or process_owner()
        self.ttl = ttl
        self.name = name
        self._leading = False

    def _take(self, *, only_if_mine: bool) -> bool:
        now = self.clock.now()
        with session_scope(self.engine, immediate=True) as session:
            lease = session.get(SchedulerLease, self.name)
            if lease is None:
                if only_if_mine:
                    return False
                session.add(SchedulerLease(name=self.name, owner=self.owner, acquired_at=now, renewed_at=now,
                                           expires_at=now + self.ttl))
                return True
            mine = lease.owner == self.owner
            if not mine and (only_if_mine or lease.expires_at > now):
                return False
            if not mine:
                lease.owner = self.owner
                lease.acquired_at = now
            lease.renewed_at = now
            lease.expires_at = now + self.ttl
            session.add(lease)
            return True

    def acquire(self) -> bool:
        self._leading = self._take(only_if_mine=False)
        return self._leading

    def renew(self) -> bool:
        if not self._leading:
            return False
        self._leading = self._take(only_if_mine=True)
        return self._leading

    def release(self) -> None:
        if not self._leading:
            return
        with session_scope(self.engine, immediate=True) as session:
            lease = session.get(SchedulerLease, self.name)
            if lease is not None and lease.owner == self.owner:
                session.delete(lease)
        self._leading = False


def make_leadership(engine: Engine, clock: Clock, owner: str | None = None) -> Leadership:
    if is_sqlite(engine):
        return LeaseLeadership(engine, clock=clock, owner=owner)
    return PgAdvisoryLeadership(engine, owner=owner)


# --- jobs --------------------------------------------------------------------------------

@dataclass(frozen=True)
class DailyJob:
    name: str
    at: time
    catch_up_within: timedelta  # a missed run older than this is not caught up at start


class NuanxinScheduler:
    """APScheduler plus leadership: jobs run only in the process that leads."""

    def __init__(self, engine: Engine, settings: Any, clock: Clock | None = None, *,
                 leadership: Leadership | None = None, rules: ScheduleRules | None = None,
                 templates: Any | None = None, occasion_rules: dict[str, Any] | None = None,
                 poll_seconds: float = 5.0, metrics: Any = None) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock or SystemClock()
        self.tz = settings.tz
        self.rules = rules or default_rules()
        if templates is None:
            from outreach.templates import templates_for

            templates = templates_for(settings)
        self.templates = templates
        self.occasion_rules = occasion_rules
        self.leadership = leadership or make_leadership(engine, self.clock)
        self.poll_seconds = poll_seconds
        self.metrics = metrics  # outreach.metrics.Metrics, or None
        self.is_leader = False
        self.aps = AsyncIOScheduler(timezone=self.tz, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": 3600})
        self._occasions_version: tuple[int, Any] | None = None
        self.daily_jobs = [
            DailyJob("daily_sweep", self.rules.daily_sweep_time, timedelta(days=7)),
            DailyJob("payment_run", self.rules.payment_run_time, timedelta(days=7)),
            DailyJob("staff_summary", self.rules.staff_summary_time, timedelta(hours=12)),
        ]
        self._add_jobs()

    # The jobs, by name: each asks the database what is due.
    def job_functions(self) -> dict[str, Callable[[], Any]]:
        from outreach import sweeps

        def broadcasts() -> Any:
            from bot.staff_telegram import announce_handoffs
            from outreach.broadcasts import run_due_broadcasts

            self.replan_if_occasions_changed()
            announce_handoffs(self.engine, clock=self.clock, settings=self.settings)  # new handoffs to the staff chat
            return run_due_broadcasts(self.engine, clock=self.clock, settings=self.settings)

        def staff_summary() -> Any:
            from outreach.summary import send_daily_summary

            return send_daily_summary(self.engine, clock=self.clock, settings=self.settings)

        def festivals() -> Any:
            return sweeps.run_festivals(self.engine, clock=self.clock, tz=self.tz, rules=self.rules,
                                        templates=self.templates, occasion_rules=self.current_occasion_rules())

        def housekeeping() -> Any:
            from bot.inbound import forget_before

            return {"inbound_receipts_forgotten": forget_before(self.engine, self.clock.now())}

        def daily_sweep() -> Any:
            self.plan_festivals()  # keep a rolling year of festival jobs
            self.refresh_statistics()  # a roll that grew since yesterday is read in id order still
            return sweeps.daily_sweep(self.engine, clock=self.clock, tz=self.tz, rules=self.rules,
                                      templates=self.templates)

        return {
            "daily_sweep": daily_sweep,
            "payment_run": lambda: sweeps.payment_run(self.engine, clock=self.clock, tz=self.tz, rules=self.rules,
                                                      templates=self.templates),
            "festivals": festivals,
            "broadcasts": broadcasts,
            "escalations": lambda: sweeps.run_escalations(self.engine, clock=self.clock, tz=self.tz,
                                                          rules=self.rules),
            "staff_summary": staff_summary,
            "housekeeping": housekeeping,
        }

    def _add_jobs(self) -> None:
        for job in self.daily_jobs:
            self.aps.add_job(self.run_job, CronTrigger(hour=job.at.hour, minute=job.at.minute, timezone=self.tz),
                             args=[job.name], id=job.name, name=job.name, replace_existing=True)
        self.aps.add_job(self.run_job, IntervalTrigger(minutes=1, timezone=self.tz), args=["broadcasts"],
                         id="broadcasts", name="broadcasts", replace_existing=True, misfire_grace_time=50)
        self.aps.add_job(self.run_job, CronTrigger(minute=5, timezone=self.tz), args=["escalations"],
                         id="escalations", name="escalations", replace_existing=True)
        self.aps.add_job(self.run_job, CronTrigger(minute=35, timezone=self.tz), args=["housekeeping"],
                         id="housekeeping", name="housekeeping", replace_existing=True)
        self.plan_festivals()

    def plan_festivals(self, horizon: timedelta = timedelta(days=400)) -> list[str]:
        """One date job per greeting in the coming `horizon` (and any sent in the last 12 hours,
        which runs at once: a greeting missed while down goes out late that day, never later)."""
        from outreach.occasions import greetings_due

        now = self.clock.now()
        ids = []
        for g in greetings_due(now - timedelta(hours=12), now + horizon, self.tz, self.current_occasion_rules()):
            job_id = f"festival:{g.occasion}:{g.festival.isoformat()}"
            trigger = DateTrigger(run_date=g.send_at, timezone=UTC)
            planned = self.aps.get_job(job_id)
            if planned is not None:  # planned before: it takes the time in force now
                planned.reschedule(trigger)
            else:
                self.aps.add_job(self.run_job, trigger, args=["festivals"], id=job_id, name=job_id,
                                 replace_existing=True, misfire_grace_time=12 * 3600)
            ids.append(job_id)
        return ids

    def current_occasion_rules(self) -> dict[str, Any]:
        """The occasions file with the office's changes from the console on top, read afresh
        (rules given to the constructor win: a test's own)."""
        if self.occasion_rules is not None:
            return self.occasion_rules
        from outreach.occasion_settings import occasion_rules

        with session_scope(self.engine) as session:
            return occasion_rules(session, self.settings)

    def replan_if_occasions_changed(self) -> bool:
        """An office switched an occasion off or moved it: plan the greetings again (a moved
        greeting's job takes its new time; one switched off finds nothing due when it fires)."""
        from outreach.occasion_settings import version

        with session_scope(self.engine) as session:
            now_version = version(session)
        if now_version == self._occasions_version:
            return False
        self._occasions_version = now_version
        self.plan_festivals()
        return True

    # --- running ---------------------------------------------------------------------------
    def run_job(self, name: str) -> Any:
        """Run one job now if this process leads (checked again right before running)."""
        if not (self.is_leader and self.leadership.renew()):
            self.is_leader = False
            self._measure(name, "skipped")
            log.info("job %s skipped: this process does not lead the scheduler", name)
            return None
        started = self.clock.now()
        timer = _time.perf_counter()
        self._record(name, started=started)
        try:
            result = self.job_functions()[name]()
        except Exception:
            self._measure(name, "failed", _time.perf_counter() - timer)
            raise
        summary = result.as_dict() if hasattr(result, "as_dict") else result
        self._record(name, finished=self.clock.now(), result=str(summary)[:500])
        self._measure(name, "ok", _time.perf_counter() - timer)
        log.info("job %s done: %s", name, summary)
        return result

    def _measure(self, name: str, outcome: str, seconds: float | None = None) -> None:
        if self.metrics is None:
            return
        self.metrics.scheduler_runs.labels(job=name, outcome=outcome).inc()
        if seconds is not None:
            self.metrics.scheduler_seconds.labels(job=name).observe(seconds)

    def _record(self, name: str, *, started: datetime | None = None, finished: datetime | None = None,
                result: str = "") -> None:
        with session_scope(self.engine, immediate=True) as session:
            row = session.get(SchedulerJobRun, name) or SchedulerJobRun(job=name)
            if started is not None:
                row.last_started_at = started
            if finished is not None:
                row.last_finished_at = finished
                row.last_result = result
            row.last_owner = self.leadership.owner[:128]
            session.add(row)

    def last_runs(self) -> dict[str, SchedulerJobRun]:
        with session_scope(self.engine) as session:
            return {r.job: r for r in session.exec(select(SchedulerJobRun)).all()}

    def missed_jobs(self) -> list[str]:
        """Daily jobs whose latest scheduled time passed without a finished run (catch up once)."""
        now = self.clock.now()
        local = now.astimezone(self.tz)
        runs = self.last_runs()
        missed = []
        for job in self.daily_jobs:
            due = datetime.combine(local.date(), job.at, self.tz)
            if due > local:
                due -= timedelta(days=1)
            if now - due > job.catch_up_within:
                continue
            last = runs.get(job.name)
            if last is None or last.last_finished_at is None or last.last_finished_at < due:
                missed.append(job.name)
        return missed

    def catch_up(self) -> list[str]:
        missed = self.missed_jobs()
        for name in missed:
            log.info("catching up missed job %s", name)
            try:
                self.run_job(name)
            except Exception:
                log.exception("catch-up of %s failed; the next scheduled run will cover it", name)
        return missed

    def step(self) -> bool:
        """One round of the leadership loop: keep or take the lead; pause jobs when not leading.
        Returns whether this process leads after the round."""
        if self.is_leader:
            if not self.leadership.renew():
                log.warning("scheduler leadership lost; jobs paused")
                self.is_leader = False
                self._pause()
        elif self.leadership.acquire():
            log.info("scheduler leadership taken by %s", self.leadership.owner)
            self.is_leader = True
            self.refresh_statistics()
            self.catch_up()
            self._resume()
        if self.metrics is not None:
            self.metrics.scheduler_leader.set(1 if self.is_leader else 0)
        return self.is_leader

    def refresh_statistics(self) -> None:
        """The query planner's statistics (models.db.refresh_statistics) before the sweeps read
        the roll; a database too busy for it now is asked again with the next daily sweep."""
        try:
            refresh_statistics(self.engine)
        except OperationalError:
            log.warning("planner statistics not refreshed (database busy); the next daily sweep tries again")

    def _pause(self) -> None:
        if self.aps.running:
            self.aps.pause()

    def _resume(self) -> None:
        if self.aps.running:
            self.aps.resume()

    async def run_forever(self) -> None:
        """Start APScheduler (paused until we lead) and keep the leadership loop going."""
        self.aps.start(paused=True)
        try:
            while True:
                try:
                    await asyncio.to_thread(self.step)
                except Exception:
                    log.exception("scheduler leadership round failed; retrying")
                    self.is_leader = False
                    self._pause()
                await asyncio.sleep(self.poll_seconds)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        if self.aps.running:
            self.aps.shutdown(wait=False)
        if self.is_leader:
            self.leadership.release()
            self.is_leader = False


def build_scheduler(engine: Engine, settings: Any, clock: Clock | None = None, **kwargs: Any) -> NuanxinScheduler:
    """The scheduler for `nuanxin run`: jobs added, not started, not leading yet."""
    return NuanxinScheduler(engine, settings, clock, **kwargs)


async def start_scheduler(engine: Engine, settings: Any, clock: Clock | None = None,
                          **kwargs: Any) -> NuanxinScheduler:
    """Run the scheduler until cancelled (run it as a task: `asyncio.create_task(start_scheduler(...))`)."""
    sched = build_scheduler(engine, settings, clock, **kwargs)
    await sched.run_forever()
    return sched
