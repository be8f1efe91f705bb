"""What each process counts, for Prometheus (prometheus-client), and the figures read from the database.

Several processes, one picture: every process (`nuanxin web` replicas, dispatchers, schedulers,
or the one `nuanxin run`) keeps its own `Metrics` registry and serves it at its own `/metrics`:
what *it* did (messages in and out, provider latency and errors, rate-limit waits, scheduler
runs, engine latency). Prometheus scrapes each process as its own target and adds them up
(`sum by (channel) (rate(nuanxin_messages_out_total[5m]))`). prometheus-client's multiprocess
mode is not used: it shares files between forked workers of one server on one host, and these
processes are separate services, often on separate hosts or containers.

What belongs to the whole deployment (outbox depth, the oldest queued row, open handoffs) is read
from the database at scrape time by `DatabaseFigures`, which only web processes register: those
figures are the same whichever process reads them, and counting them once per dispatcher would
multiply the queries and the series (several web replicas give identical values: take `max`).

Measuring is done by wrapping, at the edges each role builds (`MeasuredProvider`,
`MeasuredLimiter`, `MeasuredEngine`), so the dispatcher and the engine stay unaware of it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from models.clock import Clock, SystemClock
from outreach.limits import Grant, Lane, Limiter
from outreach.providers.base import OutgoingMessage, Provider, SendError, SendResult

log = logging.getLogger("nuanxin.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Provider round trips: tens of milliseconds normally, seconds when a provider struggles.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_ENGINE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_JOB_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)


class Metrics:
    """One process's metrics, in a registry of its own (tests build as many as they like)."""

    def __init__(self, role: str = "run", registry: CollectorRegistry | None = None) -> None:
        self.role = role
        self.registry = r = registry or CollectorRegistry()
        self.messages_in = Counter(
            "nuanxin_messages_in_total", "Inbound messages by channel and what became of them "
            "(handled, duplicate, limited, refused: bad signature or malformed)", ["channel", "status"], registry=r)
        self.messages_out = Counter(
            "nuanxin_messages_out_total", "Messages handed to a provider by channel and outcome "
            "(sent, or the send error's class)", ["channel", "status"], registry=r)
        self.provider_seconds = Histogram(
            "nuanxin_provider_send_seconds", "Time of one send to a provider", ["provider"],
            buckets=_LATENCY_BUCKETS, registry=r)
        self.provider_errors = Counter(
            "nuanxin_provider_errors_total", "Send errors by provider and class (outreach/providers/base.py)",
            ["provider", "error"], registry=r)
        self.rate_limit_waits = Counter(
            "nuanxin_rate_limit_waits_total", "Sends that had to wait for a provider limit, by what held them "
            "(rate, recipient, pause after a 429)", ["provider", "reason"], registry=r)
        self.rate_limit_wait_seconds = Counter(
            "nuanxin_rate_limit_wait_seconds_total", "Seconds of waiting the provider limits asked for",
            ["provider"], registry=r)
        self.scheduler_runs = Counter(
            "nuanxin_scheduler_runs_total", "Scheduler job runs by job and outcome (ok, failed, skipped: "
            "not leading)", ["job", "outcome"], registry=r)
        self.scheduler_seconds = Histogram(
            "nuanxin_scheduler_run_seconds", "Duration of scheduler job runs", ["job"], buckets=_JOB_BUCKETS,
            registry=r)
        self.scheduler_leader = Gauge(
            "nuanxin_scheduler_leader", "1 while this process leads the scheduler", registry=r)
        self.engine_seconds = Histogram(
            "nuanxin_engine_seconds", "Time the conversation engine takes to answer one message", ["channel"],
            buckets=_ENGINE_BUCKETS, registry=r)
        self.process_info = Gauge("nuanxin_process_info", "The role of this process (always 1)", ["role", "pid"],
                                  registry=r)
        self.process_info.labels(role=role, pid=str(os.getpid())).set(1)
        self._database: DatabaseFigures | None = None

    def track_database(self, engine: Engine, clock: Clock | None = None) -> None:
        """Export the deployment-wide figures from the database (web processes only; see the module)."""
        if self._database is None:
            self._database = DatabaseFigures(engine, clock or SystemClock())
            self.registry.register(self._database)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def metrics_of(state: Any) -> Metrics:
    """The process's Metrics kept on an app's state (made on first use for apps built without one)."""
    metrics = getattr(state, "metrics", None)
    if metrics is None:
        metrics = state.metrics = Metrics()
    return metrics


# --- the deployment's figures, from the database ---------------------------------------------

class DatabaseFigures(Collector):
    """Outbox depth and age, open handoffs: asked of the database at each scrape (a few indexed
    counts: the claim index covers status)."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def describe(self) -> list[Any]:
        return []  # read at scrape time only: registering must not query the database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from models.applications import HandoffTicket
        from models.outbox import OutboxMessage, OutboxStatus

        up = GaugeMetricFamily("nuanxin_database_up", "1 when the database answered this scrape")
        queued = GaugeMetricFamily("nuanxin_outbox_queued", "Outbox rows waiting (queued), due or not",
                                   labels=["channel"])
        due = GaugeMetricFamily("nuanxin_outbox_due", "Queued outbox rows whose time has come", labels=["channel"])
        sending = GaugeMetricFamily("nuanxin_outbox_sending", "Outbox rows claimed by a dispatcher",
                                    labels=["channel"])
        oldest = GaugeMetricFamily("nuanxin_outbox_oldest_queued_age_seconds",
                                   "Age of the oldest queued row (since it was enqueued)", labels=["channel"])
        waiting = GaugeMetricFamily("nuanxin_outbox_oldest_due_wait_seconds",
                                    "How long the longest-waiting due row has been due", labels=["channel"])
        handoffs = GaugeMetricFamily("nuanxin_handoffs_open", "Handed-off questions no one has answered yet")
        t = OutboxMessage.__table__.c  # type: ignore[attr-defined]
        now = self.clock.now()
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(t.channel, t.status, func.count(), func.min(t.created_at), func.min(t.next_attempt_at),
                           func.count().filter(t.next_attempt_at <= now))
                    .where(t.status.in_([OutboxStatus.QUEUED.value, OutboxStatus.SENDING.value]))
                    .group_by(t.channel, t.status)).all()
                open_tickets = conn.execute(select(func.count()).select_from(HandoffTicket)
                                            .where(HandoffTicket.status == "open")).scalar_one()  # type: ignore[arg-type]
        except Exception as exc:  # a scrape must say the database is down, not fail
            log.warning("database figures unavailable: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        for channel, status, count, first_created, first_due, n_due in rows:
            if status == OutboxStatus.SENDING.value:
                sending.add_metric([channel], count)
                continue
            queued.add_metric([channel], count)
            due.add_metric([channel], n_due)
            oldest.add_metric([channel], _age(now, first_created))
            waiting.add_metric([channel], _age(now, first_due) if n_due else 0.0)
        handoffs.add_metric([], open_tickets)
        yield from (up, queued, due, sending, oldest, waiting, handoffs)


def _age(now: datetime, then: Any) -> float:
    if not isinstance(then, datetime):  # SQLite's min() of a UTC column comes back as text
        then = datetime.fromisoformat(str(then))
    if then.tzinfo is None:
        then = then.replace(tzinfo=now.tzinfo)
    return max(0.0, (now - then).total_seconds())


# --- measuring at the edges -------------------------------------------------------------------

class MeasuredProvider:
    """A provider whose sends are timed and counted; everything else is the provider's own."""

    def __init__(self, provider: Provider, metrics: Metrics) -> None:
        self._provider = provider
        self._metrics = metrics
        self.channel = provider.channel
        self.name = provider.name
        self._latency = metrics.provider_seconds.labels(provider=provider.name)
        self._sent = metrics.messages_out.labels(channel=provider.channel, status="sent")

    def __getattr__(self, name: str) -> Any:  # timeout_s, writes_message_log, close, bot ...
        return getattr(self._provider, name)

    async def send(self, message: OutgoingMessage) -> SendResult:
        started = time.perf_counter()
        try:
            result = await self._provider.send(message)
        except SendError as exc:
            error = type(exc).__name__
            self._metrics.provider_errors.labels(provider=self.name, error=error).inc()
            self._metrics.messages_out.labels(channel=self.channel, status=error).inc()
            raise
        finally:
            self._latency.observe(time.perf_counter() - started)
        self._sent.inc()
        return result


def measured_providers(providers: Mapping[str, Provider], metrics: Metrics) -> dict[str, Provider]:
    return {channel: MeasuredProvider(p, metrics) for channel, p in providers.items()}  # type: ignore[misc]


class MeasuredLimiter(Limiter):
    """A limiter whose refusals and waits are counted (the dispatcher and the replies ask it as before)."""

    def __init__(self, inner: Limiter, metrics: Metrics) -> None:
        super().__init__(inner.limit, inner.clock)
        self.inner = inner
        self._metrics = metrics
        self._seconds = metrics.rate_limit_wait_seconds.labels(provider=inner.limit.provider)

    @property
    def unlimited(self) -> bool:
        return self.inner.unlimited

    def paused_for(self) -> float:
        return self.inner.paused_for()

    async def acquire(self, key: str, cost: float = 1.0, lane: Lane = Lane.BULK) -> Grant:
        grant = await self.inner.acquire(key, cost, lane)
        if grant.wait_s > 0:
            reason = grant.blocked.value or "slot"  # granted, but the slot is ahead: a paced wait
            self._metrics.rate_limit_waits.labels(provider=self.limit.provider, reason=reason).inc()
            self._seconds.inc(grant.wait_s)
        return grant

    @property
    def caps_starts(self) -> bool:
        return self.inner.caps_starts

    async def admit(self, sender: str, cost: float = 1.0) -> float:
        wait = await self.inner.admit(sender, cost)
        if wait > 0:  # the moving window is full: a catch-up after a late wake waits for room
            self._metrics.rate_limit_waits.labels(provider=self.limit.provider, reason="window").inc()
            self._seconds.inc(wait)
        return wait

    async def pause(self, seconds: float) -> None:
        await self.inner.pause(seconds)

    async def ready(self) -> bool:
        return await self.inner.ready()

    async def close(self) -> None:
        await self.inner.close()


def measured_limiters(limiters: Mapping[str, Limiter], metrics: Metrics) -> dict[str, Limiter]:
    return {channel: MeasuredLimiter(limiter, metrics) for channel, limiter in limiters.items()}


class MeasuredEngine:
    """The conversation engine with each answer timed, per channel."""

    def __init__(self, engine: Any, metrics: Metrics) -> None:
        self._engine = engine
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    async def ahandle(self, inbound: Any) -> Any:
        started = time.perf_counter()
        try:
            return await self._engine.ahandle(inbound)
        finally:
            self._metrics.engine_seconds.labels(channel=inbound.channel).observe(time.perf_counter() - started)

    def handle(self, inbound: Any) -> Any:
        started = time.perf_counter()
        try:
            return self._engine.handle(inbound)
        finally:
            self._metrics.engine_seconds.labels(channel=inbound.channel).observe(time.perf_counter() - started)
