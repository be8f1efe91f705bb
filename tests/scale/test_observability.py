"""Metrics, readiness and logs: what an operator sees of each process."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from models.applications import HandoffTicket
from models.clock import FakeClock
from models.db import session_scope
from models.logs import JsonFormatter, configure_logging, wants_json
from outreach.limits import Lane, LocalLimiter, ProviderLimit
from outreach.metrics import MeasuredLimiter, MeasuredProvider, Metrics
from outreach.outbox import enqueue
from outreach.providers.base import AddressInvalid, OutgoingMessage, SendResult, Throttled
from settings import Settings
from web.ops import create_ops_app

TOKEN = "metrics-token-1"


async def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def _ops(settings: Settings, engine: Engine, metrics: Metrics | None = None) -> Any:
    return create_ops_app(settings, engine, metrics=metrics or Metrics("dispatch"), status=lambda: {"role": "dispatch"})


async def test_metrics_answer_only_the_bearer_token_and_are_off_without_one(settings: Settings,
                                                                            sqlite_engine: Engine) -> None:
    """No token configured: 404 (never exposed by accident); a missing or wrong token: 401 with a
    Bearer challenge; the right one: Prometheus text."""
    off = await _client(_ops(settings, sqlite_engine))
    assert (await off.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 404
    on = await _client(_ops(settings.model_copy(update={"metrics_token": TOKEN}), sqlite_engine))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}):
        response = await on.get("/metrics", headers=headers)
        assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")
    good = await on.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert good.status_code == 200 and good.headers["content-type"].startswith("text/plain")
    assert 'nuanxin_process_info{pid=' in good.text and 'role="dispatch"' in good.text


async def test_the_web_exports_outbox_depth_its_oldest_row_and_open_handoffs_from_the_database(
        settings: Settings, db_engine: Engine, clock: FakeClock) -> None:
    """Figures of the whole deployment come from the database: queued rows per channel, how many
    are due, the age of the oldest, rows being sent, and handed-off questions still open."""
    with session_scope(db_engine) as s:
        for n in range(3):
            enqueue(s, key=f"m:{n}", kind="test_notice", channel="sms", address=f"+861380000000{n}", body="x",
                    now=clock.now() - timedelta(minutes=10 * n))
        enqueue(s, key="later", kind="test_notice", channel="telegram", address="42", body="x", now=clock.now(),
                not_before=clock.now() + timedelta(hours=1))
        s.add(HandoffTicket(channel="sms", address="+8613800000001", reason="asked_for_person", question="请找人", transcript=[]))
        s.add(HandoffTicket(channel="sms", address="+8613800000002", reason="asked_for_person", question="请找人", transcript=[],
                            status="answered"))
    metrics = Metrics("web")
    metrics.track_database(db_engine, clock)
    get = metrics.registry.get_sample_value
    assert get("nuanxin_database_up") == 1
    assert get("nuanxin_outbox_queued", {"channel": "sms"}) == 3
    assert get("nuanxin_outbox_due", {"channel": "sms"}) == 3
    assert get("nuanxin_outbox_oldest_queued_age_seconds", {"channel": "sms"}) == pytest.approx(1200, abs=1)
    assert get("nuanxin_outbox_queued", {"channel": "telegram"}) == 1
    assert get("nuanxin_outbox_due", {"channel": "telegram"}) == 0  # its time has not come
    assert get("nuanxin_handoffs_open") == 1


def test_database_figures_say_the_database_is_down_instead_of_failing_the_scrape(tmp_path: Any,
                                                                                 clock: FakeClock) -> None:
    """A database that does not answer gives nuanxin_database_up 0; the process's own metrics still render."""
    from models.db import make_engine

    broken = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", pool_pre_ping=False)
    metrics = Metrics("web")
    metrics.track_database(broken, clock)
    body = metrics.render().decode()
    assert "nuanxin_database_up 0.0" in body and "nuanxin_process_info" in body


class _Provider:
    channel, name = "telegram", "telegram"

    def __init__(self, outcomes: list[Any]) -> None:
        self.outcomes = outcomes
        self.timeout_s = 7.0

    async def send(self, message: OutgoingMessage) -> SendResult:
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return SendResult(outcome)


async def test_sends_are_counted_by_outcome_and_timed_and_errors_keep_their_class() -> None:
    """A measured provider counts sent / each error class, times every send, and re-raises the
    provider's own error unchanged (the dispatcher decides from its class)."""
    metrics = Metrics("dispatch")
    provider = MeasuredProvider(_Provider(["m1", Throttled(3), AddressInvalid("chat not found"), "m2"]), metrics)
    message = OutgoingMessage(outbox_id=1, channel="telegram", address="42", body="hi")
    assert (await provider.send(message)).provider_message_id == "m1"
    with pytest.raises(Throttled):
        await provider.send(message)
    with pytest.raises(AddressInvalid):
        await provider.send(message)
    await provider.send(message)
    get = metrics.registry.get_sample_value
    assert get("nuanxin_messages_out_total", {"channel": "telegram", "status": "sent"}) == 2
    assert get("nuanxin_messages_out_total", {"channel": "telegram", "status": "Throttled"}) == 1
    assert get("nuanxin_provider_errors_total", {"provider": "telegram", "error": "AddressInvalid"}) == 1
    assert get("nuanxin_provider_send_seconds_count", {"provider": "telegram"}) == 4
    assert provider.timeout_s == 7.0  # the dispatcher still sees the provider's own attributes


async def test_rate_limit_waits_are_counted_by_what_held_them(clock: FakeClock) -> None:
    """Slots ahead of now (the rate), a chat's own limit and a pause each count as a wait, with its seconds."""
    metrics = Metrics("dispatch")
    limiter = MeasuredLimiter(LocalLimiter(ProviderLimit.one_sender("telegram", 10.0, 1.0), clock), metrics)
    first = await limiter.acquire("42", 1.0, Lane.BULK)
    assert first.ok and first.wait_s == 0
    same_chat = await limiter.acquire("42", 1.0, Lane.BULK)
    assert not same_chat.ok
    other = await limiter.acquire("43", 1.0, Lane.REPLY)
    assert other.ok and other.wait_s > 0
    await limiter.pause(5)
    paused = await limiter.acquire("44", 1.0, Lane.REPLY)
    assert not paused.ok
    get = metrics.registry.get_sample_value
    assert get("nuanxin_rate_limit_waits_total", {"provider": "telegram", "reason": "key"}) == 1
    assert get("nuanxin_rate_limit_waits_total", {"provider": "telegram", "reason": "slot"}) == 1
    assert get("nuanxin_rate_limit_waits_total", {"provider": "telegram", "reason": "pause"}) == 1
    assert get("nuanxin_rate_limit_wait_seconds_total", {"provider": "telegram"}) > 5
    assert await limiter.ready()


async def test_ready_means_database_migrations_and_redis(settings: Settings, tmp_path: Any, redis_url: str) -> None:
    """/readyz: 503 on an empty database (migrations not run), 200 once migrated; with REDIS_URL
    set, 503 while Redis does not answer; /healthz answers alive in every case."""
    import socket

    from models.db import make_engine
    from models.migrate import upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'ready.db'}")
    client = await _client(_ops(settings, engine))
    empty = await client.get("/readyz")
    assert empty.status_code == 503 and empty.json()["migrations"] == "empty"
    upgrade(engine)
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "database": "ok", "migrations": "current"}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    down = await (await _client(_ops(settings.model_copy(update={"redis_url": dead}), engine))).get("/readyz")
    assert down.status_code == 503 and down.json()["redis"].startswith("error")
    up = await (await _client(_ops(settings.model_copy(update={"redis_url": redis_url}), engine))).get("/readyz")
    assert up.status_code == 200 and up.json()["redis"] == "ok"
    assert (await client.get("/healthz")).json() == {"status": "ok", "role": "dispatch"}
    engine.dispose()


async def test_a_replica_taking_telegram_webhooks_is_ready_only_once_its_telegram_handler_runs(
        settings: Settings, tmp_path: Any) -> None:
    """A web replica in webhook mode answers updates 503 until its Telegram handler has started, so
    /readyz says 503 with telegram "starting" until then (kept out of the rotation), 200 after; a
    process that takes no webhook updates has no such check."""
    from models.db import make_engine
    from models.migrate import upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'ready.db'}")
    upgrade(engine)
    app = _ops(settings, engine)
    client = await _client(app)
    assert (await client.get("/readyz")).json() == {"status": "ready", "database": "ok", "migrations": "current"}
    app.state.takes_telegram_updates = True
    starting = await client.get("/readyz")
    assert starting.status_code == 503 and starting.json()["telegram"] == "starting"
    app.state.telegram_dispatcher = object()  # what service.py sets once the handler is built
    started = await client.get("/readyz")
    assert started.status_code == 200 and started.json()["telegram"] == "ok"
    engine.dispose()


def test_a_schema_left_behind_by_new_code_is_not_ready_and_one_ahead_is(sqlite_engine: Engine) -> None:
    """A revision this code knows but is not its head: behind (run nuanxin migrate). One it does not
    know: a newer version migrated (rolling upgrade): still ready."""
    from web.routes.health import readiness, schema_state

    with sqlite_engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(text("DELETE FROM alembic_version"))
        conn.execute(text("INSERT INTO alembic_version VALUES ('0002_from_the_future')"))
    assert schema_state(sqlite_engine) == "ahead"
    assert readiness(sqlite_engine, "")[0] is True


def test_log_lines_are_json_off_a_terminal_with_personal_data_masked(caplog: pytest.LogCaptureFixture) -> None:
    """Under a supervisor each record is one JSON object (ts, level, logger, message, role, exc);
    phone and ID numbers in the message or the traceback are masked."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("dispatch"))
    from models.privacy import install_redaction

    install_redaction(handler)  # as the service installs it on every handler
    log = logging.getLogger("nuanxin.test.json")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("sms to %s failed", "+8613812345678")
        try:
            raise ValueError("bad")
        except ValueError:
            log.exception("boom for 110105194012310024")
    finally:
        log.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [entry["level"] for entry in lines] == ["WARNING", "ERROR"]
    assert lines[0]["message"] == "sms to +86138****5678 failed" and lines[0]["role"] == "dispatch"
    assert "13812345678" not in stream.getvalue() and "110105194012310024" not in stream.getvalue()
    assert "ValueError: bad" in lines[1]["exc"]


def test_json_is_chosen_when_standard_error_is_not_a_terminal() -> None:
    """auto: JSON for a pipe or a journal, text for a person at a terminal; the setting overrides."""
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert wants_json("auto", io.StringIO()) is True
    assert wants_json("auto", Tty()) is False
    assert wants_json("json", Tty()) is True and wants_json("text", io.StringIO()) is False


def test_configure_logging_installs_one_masked_handler_however_often_it_is_called(settings: Settings) -> None:
    """Starting a role twice in one interpreter (tests, a reload) leaves one handler, not two."""
    root = logging.getLogger()
    before = [h for h in root.handlers if not getattr(h, "_nuanxin", False)]
    try:
        configure_logging(settings, role="web", log_format="json")
        configure_logging(settings, role="web", log_format="json")
        ours = [h for h in root.handlers if getattr(h, "_nuanxin", False)]
        assert len(ours) == 1 and isinstance(ours[0].formatter, JsonFormatter | logging.Formatter)
    finally:
        for h in [h for h in root.handlers if getattr(h, "_nuanxin", False)]:
            root.removeHandler(h)
        assert [h for h in root.handlers if not getattr(h, "_nuanxin", False)] == before
