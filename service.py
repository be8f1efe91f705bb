"""The process roles, from one code base.

| role                         | runs                                                       | several? |
| `nuanxin run`                | everything below in one process (the embedded default)     | one      |
| `nuanxin web`                | console, webhooks, the conversation engine and its Q&A     | yes, behind a proxy |
| `nuanxin worker dispatch`    | the outbox dispatcher                                      | yes (SKIP LOCKED, shared limits in Redis) |
| `nuanxin worker scheduler`   | the scheduler                                              | one leads, the others stand by |

Each part is built here and passed to the others; none is a global. A worker serves `/healthz`,
`/readyz` and `/metrics` on its own `--port` (a small app, not the console): every process exports
its own metrics (outreach/metrics.py says why). A dispatcher loads no Q&A and no console.

Schema: `nuanxin run` migrates the database at start; the other roles only check it (several
processes starting at once must not race Alembic) and refuse to start on a schema older than
their code: run `nuanxin migrate` first (deploy/README.md, "Upgrading").

Telegram: polling, the default, runs in one process at a time (`nuanxin run`, or whichever web
replica holds the polling lock; the others stand by). In webhook mode every web replica takes
updates and `set_webhook` is called once, by `nuanxin run` at start or `nuanxin telegram
set-webhook`, never by each replica.

Start: the port opens first (a current schema is only compared, not migrated again); the
knowledge (articles and their embeddings) loads in a thread beside it, and `/healthz` says
"loaded" once a question would be answered at full speed. Questions come first: the providers,
the dispatcher, the scheduler and Telegram start once the knowledge is loaded (or after at most
`KNOWLEDGE_WAIT_S`), so that nothing else takes the cores from it; Telegram is set up in the
background.

Stop (SIGTERM or SIGINT): the web finishes the requests under way, the dispatcher finishes the
sends already handed to a provider and the rest of its claimed rows go back to the queue, the
scheduler lets go of its lock so a standby takes over at once; all within `STOP_BUDGET_S`. A part
still busy then (a long sweep in its thread) is abandoned: its transaction rolls back when the
process exits, and the next leader runs the job again (sweeps are idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn

from models.clock import SystemClock
from models.db import checkpoint, is_sqlite, make_engine
from settings import Settings

log = logging.getLogger("nuanxin.service")

# SIGTERM to exit, at most (a supervisor's usual grace period is 10 s; systemd's default is 90 s).
STOP_BUDGET_S = 8.0
# How often the SQLite WAL is copied back into the database (and cut back when it grew).
CHECKPOINT_EVERY_S = 30.0
# How long the other parts wait for the knowledge to load before starting anyway (questions first).
KNOWLEDGE_WAIT_S = 10.0
# How often a standby web replica asks for the Telegram polling lock.
POLLING_LEADERSHIP_POLL_S = 5.0
# Polling goes on this long while its lock cannot be renewed (the database busy), well inside
# the lease's 30 s after which another process could take it over.
POLLING_HOLD_ON_ERROR_S = 20.0
POLLING_LOCK_KEY = 0x6E75616E7467  # pg advisory lock of Telegram polling ("nuantg"); the scheduler's differs
POLLING_LEASE = "telegram-polling"


class Role(StrEnum):
    RUN = "run"
    WEB = "web"
    DISPATCH = "dispatch"
    SCHEDULER = "scheduler"


@dataclass(frozen=True)
class Parts:
    web: bool  # the FastAPI app: console, webhooks, /healthz /readyz /metrics
    conversation: bool  # the conversation engine with policy Q&A (answers webhooks and polling)
    dispatcher: bool
    scheduler: bool
    migrates: bool  # runs the migrations at start (else only checks the schema)


PARTS: dict[Role, Parts] = {
    Role.RUN: Parts(web=True, conversation=True, dispatcher=True, scheduler=True, migrates=True),
    Role.WEB: Parts(web=True, conversation=True, dispatcher=False, scheduler=False, migrates=False),
    Role.DISPATCH: Parts(web=False, conversation=False, dispatcher=True, scheduler=False, migrates=False),
    Role.SCHEDULER: Parts(web=False, conversation=False, dispatcher=False, scheduler=True, migrates=False),
}


class SchemaNotReady(RuntimeError):
    """The database's schema is older than this code (or missing): run `nuanxin migrate`."""


def process_owner(role: Role) -> str:
    import socket

    return f"{socket.gethostname()}:{os.getpid()}:{role.value}"


class _WebServer:
    """uvicorn's server without its own signal handling: SIGINT/SIGTERM stop every part, not just the web."""

    @staticmethod
    def create(app: Any, host: str, port: int) -> Any:
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self):  # type: ignore[no-untyped-def]
                yield

            async def serve(self, sockets: Any = None) -> None:
                try:
                    await super().serve(sockets)
                except SystemExit as exc:  # uvicorn exits the interpreter when it cannot bind
                    raise RuntimeError(f"the web server could not start on {host}:{port} "
                                       "(is the port in use? set NUANXIN_WEB_PORT or --port)") from exc

        from models.logs import uvicorn_log_config

        return Server(uvicorn.Config(app, host=host, port=port, log_level="info", lifespan="on",
                                     log_config=uvicorn_log_config(), timeout_graceful_shutdown=3))


@dataclass
class Outbound:
    """What one process sends with: one limiter per provider (shared through Redis when REDIS_URL
    is set), the providers, and the one Telegram sender (`telegram`: the Telegram provider, whose
    Bot also polls or takes webhooks and whose limiter also paces the conversation's replies;
    None without a token). With `metrics`, the limiters' waits and the providers' sends are
    measured (outreach/metrics.py)."""

    limits: dict[str, Any]
    providers: dict[str, Any]
    telegram: Any = None

    async def close(self) -> None:
        from outreach.limits import close_limiters
        from outreach.providers.base import close_provider

        for provider in self.providers.values():
            with contextlib.suppress(Exception):
                await close_provider(provider)
        await close_limiters(self.limits)


def build_outbound(settings: Settings, engine: Any, clock: Any, metrics: Any = None) -> Outbound:
    from outreach.dispatcher import build_providers
    from outreach.limits import build_limiters
    from outreach.metrics import measured_limiters, measured_providers

    limits = build_limiters(settings, clock)
    if metrics is not None:
        limits = measured_limiters(limits, metrics)
    providers = build_providers(settings, engine, limits)
    telegram = providers.get("telegram")
    if metrics is not None:
        providers = measured_providers(providers, metrics)
    if settings.telegram_enabled:  # aiogram only where Telegram is configured
        from outreach.providers.telegram import TelegramProvider

        return Outbound(limits, providers, telegram if isinstance(telegram, TelegramProvider) else None)
    return Outbound(limits, providers)


class DatabaseKnowledge:
    """The process's policy answers over the knowledge staff review in the database (they follow
    its reviews without a restart). bot.qa, with its tokenisers and numpy (about half a second
    of CPU to import), is imported on first use: by the knowledge thread once the port is open,
    or by a question that comes sooner; either registers the database first, once."""

    def __init__(self, engine: Any, cache_dir: Path | None = None) -> None:
        self.engine = engine
        self.cache_dir = cache_dir  # the built index kept for the next start (bot/knowledge_cache.py)
        self._lock = threading.Lock()
        self._registered = False

    def qa(self) -> Any:
        from bot.qa import get_qa, use_database

        with self._lock:
            if not self._registered:
                use_database(self.engine, self.cache_dir)
                self._registered = True
        return get_qa()

    def answer(self, question: str, lang_hint: str | None = None, after: str | None = None) -> Any:
        return self.qa().answer(question, lang_hint, after)


def build_conversation_engine(engine: Any, settings: Settings, clock: Any, **kwargs: Any) -> Any:
    from bot.engine import Engine

    kwargs.setdefault("qa", DatabaseKnowledge(engine))
    return Engine(engine, settings, clock, **kwargs)


def check_schema(engine: Any, *, migrate: bool) -> None:
    """Migrate (`nuanxin run`), or make sure the schema is not behind this code (every other role)."""
    from web.routes.health import schema_state

    if migrate:
        from models.migrate import upgrade_if_needed

        upgrade_if_needed(engine)
        return
    state = schema_state(engine)
    if state in ("behind", "empty"):
        raise SchemaNotReady(f"the database schema is {state}: run `nuanxin migrate` (once, from one place) "
                             "before starting this process")
    if state == "ahead":
        log.warning("the database schema is newer than this code: running on (expand-then-contract upgrades "
                    "keep the old code working); upgrade this process soon")


def load_knowledge(app: Any, knowledge: DatabaseKnowledge) -> None:
    """The policy answers loaded and their models warmed (a first question answers at full
    speed); `/healthz` says "loaded" from then on."""
    started = time.monotonic()
    try:
        qa = knowledge.qa()  # bot.qa imported, the database's knowledge registered, the index built or read back
        from bot.qa import LiveQA, warm_up

        warm_up()  # the embedding model loaded
        knowledge.answer("你好", "zh-Hans")
        app.state.knowledge = "loaded"
        origin = (qa.current if isinstance(qa, LiveQA) else qa).origin
        log.info("knowledge loaded in %.1f s, index %s (%.1f s of CPU since the process began)",
                 time.monotonic() - started, "read from its cache" if origin == "cache" else "built",
                 time.process_time())
    except Exception:  # the engine hands questions to staff when the knowledge cannot load
        app.state.knowledge = "failed"
        log.exception("knowledge could not be loaded: questions go to staff")
    # The reader of amounts in words (一千五, 三万五) builds its patterns on import: after the
    # knowledge, so that neither the port nor the first question waits for it.
    with contextlib.suppress(Exception):
        import cn2an  # noqa: F401


def _in_daemon_thread(loop: asyncio.AbstractEventLoop, name: str, work: Callable[..., None],
                      *args: Any) -> asyncio.Future[None]:
    """`work(*args)` in a daemon thread; the future is done when it returns. A stop that comes
    sooner does not wait for it (the process exits and the thread with it: loading the knowledge
    writes nothing), where a thread of the loop's executor would hold the exit up."""
    done: asyncio.Future[None] = loop.create_future()

    def finished() -> None:
        if not done.done():
            done.set_result(None)

    def run() -> None:
        try:
            work(*args)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the process is exiting
                loop.call_soon_threadsafe(finished)

    threading.Thread(target=run, name=name, daemon=True).start()
    return done


async def keep_wal_bounded(engine: Any, stop: asyncio.Event) -> None:
    """SQLite: checkpoint the WAL now and then, so that it stays small under a long import."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), CHECKPOINT_EVERY_S)
        try:
            await asyncio.to_thread(checkpoint, engine)
        except Exception:  # busy or closing: the next round tries again
            log.debug("WAL checkpoint skipped", exc_info=True)


@dataclass
class _Process:
    """What one process built, and how to take it down again."""

    role: Role
    settings: Settings
    stop: asyncio.Event
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)  # what the worker's /healthz shows


async def _run_telegram_polling(dispatcher: Any, bot: Any, leadership: Any, stop: asyncio.Event,
                                process: _Process) -> None:
    """Poll Telegram while this process holds the polling lock; stand by otherwise."""
    polling: asyncio.Task[Any] | None = None
    renewed = time.monotonic()
    try:
        while not stop.is_set():
            try:
                leading = await asyncio.to_thread(leadership.renew if polling else leadership.acquire)
            except Exception as exc:
                # The database busy (a long sweep holding SQLite's write lock) or out of reach for
                # a moment: that is no reason to end polling, nor the process. The lock is kept
                # until it could have lapsed for another process to take; then this one stands by.
                leading = polling is not None and time.monotonic() - renewed < POLLING_HOLD_ON_ERROR_S
                log.warning("telegram polling lock: %s; %s", type(exc).__name__,
                            "polling goes on" if leading else "standing by until the database answers")
            else:
                renewed = time.monotonic()
            if leading and polling is None:
                log.info("telegram polling started by this process")
                polling = asyncio.create_task(dispatcher.start_polling(bot, handle_signals=False,
                                                                       close_bot_session=False))
            elif not leading and polling is not None:
                log.warning("telegram polling lock lost: standing by")
                with contextlib.suppress(Exception):
                    await dispatcher.stop_polling()
                await asyncio.wait([polling], timeout=5)
                polling = None
            process.status["telegram_polling"] = polling is not None
            if polling is not None and polling.done():
                raise RuntimeError(f"telegram polling ended: {polling.exception()!r}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLLING_LEADERSHIP_POLL_S)
    finally:
        if polling is not None:
            with contextlib.suppress(Exception):
                await dispatcher.stop_polling()
            await asyncio.wait([polling], timeout=3)
        await asyncio.to_thread(leadership.release)


def _polling_leadership(engine: Any, clock: Any, owner: str) -> Any:
    from scheduler import LeaseLeadership, PgAdvisoryLeadership

    if is_sqlite(engine):
        return LeaseLeadership(engine, clock=clock, owner=owner, name=POLLING_LEASE)
    return PgAdvisoryLeadership(engine, key=POLLING_LOCK_KEY, owner=owner)


async def _main(role: Role, settings: Settings, host: str, port: int | None) -> int:
    from outreach.metrics import Metrics

    parts = PARTS[role]
    clock = SystemClock()
    settings.ensure_data_dir()  # 0700: the database, keys and uploads are this user's alone
    if parts.scheduler or parts.web:  # they load the templates; a dispatcher renders nothing
        from bot.language import KEPT_FOLDER_NAME, keep_conversions_in

        keep_conversions_in(settings.data_dir / KEPT_FOLDER_NAME)
    # A dispatcher's sends and a web replica's webhooks each hold a connection only briefly;
    # the pool per process stays small so that many processes fit PostgreSQL's max_connections.
    engine = make_engine(settings.effective_database_url)
    check_schema(engine, migrate=parts.migrates)
    metrics = Metrics(role.value)
    stop = asyncio.Event()
    process = _Process(role, settings, stop)
    owner = process_owner(role)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)

    server = app = bot_engine = None
    if parts.web:
        from bot.inbound_limits import InboundLimits
        from outreach.metrics import MeasuredEngine
        from web.app import create_app

        inbound_limits = InboundLimits.from_settings(settings)
        from bot.knowledge_cache import FOLDER_NAME

        database_knowledge = DatabaseKnowledge(engine, settings.data_dir / FOLDER_NAME)
        bot_engine = MeasuredEngine(build_conversation_engine(engine, settings, clock, qa=database_knowledge,
                                                              **_code_limit(inbound_limits)), metrics)
        app = create_app(settings, engine, clock=clock, bot_engine=bot_engine)
        app.state.metrics = metrics
        app.state.inbound_limits = inbound_limits
        # /readyz says not ready until the webhook's handler is up (web/routes/health.py).
        app.state.takes_telegram_updates = (parts.conversation and settings.telegram_enabled
                                            and settings.telegram_mode == "webhook")
        app.state.process_owner = owner
        metrics.track_database(engine, clock)
        app.state.knowledge = "loading"
        server = _WebServer.create(app, host, port or settings.web_port)
        web = asyncio.create_task(server.serve(), name="web")
        process.tasks.append(web)
        # The port first: everything else starts once the web answers (webhooks, /healthz).
        while not server.started and not web.done() and not stop.is_set():
            await asyncio.sleep(0.01)
        log.info("web serving on http://%s:%d (%.1f s of CPU since the process began)", host,
                 port or settings.web_port, time.process_time())
    # No port, no knowledge: a web part that could not start stops the process in a moment.
    knowledge = (_in_daemon_thread(loop, "knowledge", load_knowledge, app, database_knowledge)
                 if app is not None and server is not None and server.started and parts.conversation else None)
    if is_sqlite(engine):
        process.tasks.append(asyncio.create_task(keep_wal_bounded(engine, stop), name="wal-checkpoints"))
    if knowledge is not None:
        # Questions first: on two cores, importing the providers' libraries and building the
        # scheduler's templates beside the knowledge would delay the first answers by as much.
        stop_asked = asyncio.create_task(stop.wait())
        # (A stop, or a part ending on its own, ends the wait: the loop below deals with either.)
        waited: list[asyncio.Future[Any]] = [knowledge, stop_asked, *process.tasks]
        await asyncio.wait(waited, timeout=KNOWLEDGE_WAIT_S,
                           return_when=asyncio.FIRST_COMPLETED)
        stop_asked.cancel()

    outbound: Outbound | None = None
    if parts.dispatcher or parts.conversation:
        # The providers' libraries (aiogram, twilio) take a while to import: off the event loop.
        await asyncio.to_thread(_import_providers, settings)
        # One limiter per provider for the whole process: the dispatcher's broadcasts and the
        # conversation's replies take slots of the same one (and of every process's, with Redis).
        outbound = build_outbound(settings, engine, clock, metrics)
        if app is not None:
            app.state.providers = outbound.providers
        process.closers.append(outbound.close)

    telegram = None
    if app is not None and outbound is not None and outbound.telegram is not None:
        telegram = asyncio.create_task(_start_telegram(role, app, settings, engine, clock, owner, bot_engine,
                                                       outbound.telegram, app.state.inbound_limits, metrics,
                                                       process), name="telegram-start")

    dispatcher = None
    if parts.dispatcher:
        from outreach.dispatcher import Dispatcher

        assert outbound is not None
        dispatcher = Dispatcher(engine, outbound.providers, clock, settings, owner=owner, limits=outbound.limits,
                                lease_s=settings.dispatch_lease_s)
        process.tasks.append(asyncio.create_task(dispatcher.run(stop), name="dispatcher"))

    scheduler_task = None
    sched = None
    if parts.scheduler:
        from scheduler import build_scheduler

        sched = build_scheduler(engine, settings, clock, metrics=metrics)

        async def scheduler_after_knowledge() -> None:
            # The scheduler's catch-up (a missed daily sweep...) waits for the knowledge, so that
            # the first questions after a start are answered soon.
            if knowledge is not None:
                await asyncio.wait([knowledge], timeout=KNOWLEDGE_WAIT_S)
            await sched.run_forever()

        scheduler_task = asyncio.create_task(scheduler_after_knowledge(), name="scheduler")

    if not parts.web and port:
        from web.ops import create_ops_app

        def worker_status() -> dict[str, Any]:
            status: dict[str, Any] = {"role": role.value, "owner": owner}
            if dispatcher is not None:
                status["dispatcher"] = dict(dispatcher.stats)
            if sched is not None:
                status["scheduler_leader"] = sched.is_leader
            return status

        ops = create_ops_app(settings, engine, metrics=metrics, status=worker_status)
        server = _WebServer.create(ops, host, port)
        process.tasks.append(asyncio.create_task(server.serve(), name="ops"))

    log.info("nuanxin running as %s: %s", role.value, "; ".join(_describe(role, parts, settings, host, port)))

    # Run until asked to stop, or until a part ends on its own (a crash): then stop everything and
    # exit non-zero, so that a supervisor restarts the whole process rather than leaving it half
    # alive (say, serving the console with no dispatcher).
    stop_waiter = asyncio.create_task(stop.wait(), name="stop")
    watched = [stop_waiter] + ([scheduler_task] if scheduler_task else [])
    failed: list[asyncio.Task[Any]] = []
    while not failed and not stop.is_set():
        starting = [telegram] if telegram is not None and not telegram.done() else []
        done, _ = await asyncio.wait([*watched, *process.tasks, *starting], return_when=asyncio.FIRST_COMPLETED)
        # Telegram's set-up finishing is not a part ending (its polling task is watched from then on).
        # A part that returns because the stop was asked (it can finish in the same turn of the loop
        # as the stop's own waiter, before it) has not failed; one that raised has.
        failed = [t for t in done if t is not stop_waiter
                  and not (t is telegram and not t.cancelled() and t.exception() is None)
                  and not (stop.is_set() and not t.cancelled() and t.exception() is None)]
    for task in failed:
        error = task.exception() if not task.cancelled() else None
        log.error("%s ended unexpectedly: %r; stopping", task.get_name(), error)
    stop.set()
    stopping = time.monotonic()
    log.info("stopping")
    if server is not None:
        server.should_exit = True
    if telegram is not None and not telegram.done():
        telegram.cancel()
    if scheduler_task is not None:
        scheduler_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await scheduler_task
    remaining = max(0.5, STOP_BUDGET_S - (time.monotonic() - stopping))
    _, late = await asyncio.wait(process.tasks, timeout=remaining) if process.tasks else (set(), set())
    for task in late:
        log.warning("%s did not stop in time; cancelled (its claimed rows keep their leases)", task.get_name())
        task.cancel()
    for close in reversed(process.closers):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(close(), 2)
    if knowledge is not None and not knowledge.done():
        knowledge.cancel()
    if bot_engine is not None:
        bot_engine.close()
    if is_sqlite(engine):
        with contextlib.suppress(Exception):
            checkpoint(engine, truncate_above=0)
    engine.dispose()
    log.info("stopped in %.1f s", time.monotonic() - stopping)
    return 1 if failed else 0


def _import_providers(settings: Settings) -> None:
    import outreach.dispatcher  # noqa: F401

    if settings.telegram_enabled:
        import outreach.providers.telegram  # noqa: F401
    if settings.twilio_enabled:
        import outreach.providers.twilio  # noqa: F401


def _code_limit(inbound_limits: Any) -> dict[str, Any]:
    """The engine's notifier, asking the inbound limits before each one-time code."""
    from bot.identity import OutboxNotifier

    class LimitedNotifier(OutboxNotifier):
        def may_send_code(self, phone_e164: str) -> bool:
            return bool(inbound_limits.may_send_code(phone_e164))

    return {"notifier": LimitedNotifier()}


async def _start_telegram(role: Role, app: Any, settings: Settings, engine: Any, clock: Any, owner: str,
                          bot_engine: Any, sender: Any, inbound_limits: Any, metrics: Any, process: _Process) -> None:
    """Telegram once the web is up: the process's one Telegram sender (`sender`, the provider)
    lends its Bot to polling and webhooks and paces the replies; polling starts under the
    polling lock, or (`nuanxin run` in webhook mode) the webhook is set. Until then a webhook
    update is answered 503 and Telegram delivers it again."""
    await asyncio.to_thread(__import__, "bot.channels.telegram")
    from bot.channels.telegram import create_dispatcher, set_webhook
    from bot.inbound_limits import TelegramInboundGate

    bot = sender.bot
    dispatcher = create_dispatcher(bot_engine, settings, reply_sender=sender)
    dispatcher.update.outer_middleware(TelegramInboundGate(inbound_limits, metrics))
    app.state.telegram_bot, app.state.telegram_dispatcher = bot, dispatcher
    if settings.telegram_mode == "polling":
        leadership = _polling_leadership(engine, clock, owner)
        process.tasks.append(asyncio.create_task(
            _run_telegram_polling(dispatcher, bot, leadership, process.stop, process), name="telegram-polling"))
    elif role is Role.RUN:
        url = await set_webhook(bot, settings, dispatcher)
        log.info("telegram webhook set to %s", url)


def _describe(role: Role, parts: Parts, settings: Settings, host: str, port: int | None) -> list[str]:
    out = []
    if parts.web:
        out.append(f"web console http://{host}:{port or settings.web_port:d}")
    elif port:
        out.append(f"health and metrics http://{host}:{port:d}")
    if parts.dispatcher:
        out.append("dispatcher")
        out.append("sms via Twilio" if settings.twilio_enabled else "sms off: messages go to the log sink")
    if parts.scheduler:
        out.append("scheduler (leads when it holds the lock)")
    if parts.conversation:
        out.append("telegram " + (settings.telegram_mode if settings.telegram_enabled
                                  else "off (no TELEGRAM_BOT_TOKEN)"))
    out.append("limits in Redis" if settings.redis_url else "limits in this process")
    return out


def serve(settings: Settings, *, role: Role = Role.RUN, host: str, port: int | None) -> NoReturn:
    """Run one role until SIGINT/SIGTERM (exit status 0) or until a part fails (1); 2 when the
    schema is not ready. Exits within STOP_BUDGET_S (+ a second) of the signal, whatever a part does:
    the process ends here."""
    from models.logs import configure_logging

    configure_logging(settings, role=role.value)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    code = 1
    try:
        code = loop.run_until_complete(_main(role, settings, host, port))
    except SchemaNotReady as exc:
        log.error("%s", exc)
        code = 2
    finally:
        # Threads still working (a job, a query) get what is left of the budget, then the process
        # exits without them: their transactions roll back, nothing half-written stays.
        with contextlib.suppress(Exception):
            loop.run_until_complete(asyncio.wait_for(loop.shutdown_default_executor(), 1.0))
        busy = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon
                and t.is_alive()]
        if busy:
            log.warning("exiting with work still under way in %s (rolled back; the next run repeats it)",
                        ", ".join(busy))
            logging.shutdown()
            os._exit(code)
        loop.close()
    # Without the interpreter's teardown: freeing a large heap object by object (the Q&A's model,
    # aiogram's models) took 16 s on a busy 2-core machine after a 0.1 s stop, and nothing is
    # left to do: every part has stopped, the database pool is closed, the logs are flushed here.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
