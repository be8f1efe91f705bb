"""One process runs everything (`nuanxin run`): the web console and webhooks, the
outbox dispatcher, the scheduler, and Telegram long polling when a token is set.

Each part is optional in the sense that it starts only when its module and settings are
there; none of them is a global: they are built here and passed to each other.

Start: the port opens first (migrations are checked, not rerun, when the schema is current);
the knowledge base loads in a thread beside it, and Telegram (aiogram's hundreds of pydantic
models take seconds to build) is set up in the background once the web is serving. Stop:
sends already handed to a provider finish, every other claimed row goes back to the queue with
its lease released, and the process exits within `STOP_BUDGET_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Any

from models.clock import SystemClock
from models.db import checkpoint, is_sqlite, make_engine
from models.migrate import upgrade_if_needed
from models.privacy import configure_logging, uvicorn_log_config
from settings import Settings

log = logging.getLogger("nuanxin.service")

# SIGTERM to exit, at most (a supervisor's usual grace period is 10 s).
STOP_BUDGET_S = 8.0
# How often the SQLite WAL is copied back into the database (and cut back when it grew).
CHECKPOINT_EVERY_S = 30.0


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

        # uvicorn's own loggers (errors, access lines with paths and queries) format through the
        # redacting formatter too.
        return Server(uvicorn.Config(app, host=host, port=port, log_level="info", lifespan="on",
                                     log_config=uvicorn_log_config("info"), timeout_graceful_shutdown=3))


def build_conversation_engine(engine: Any, settings: Settings, clock: Any) -> Any:
    from bot.engine import Engine

    return Engine(engine, settings, clock)


def load_knowledge(app: Any) -> None:
    """The policy answers loaded and their models warmed (a first question answers at full
    speed); `/healthz` says "loaded" from then on."""
    started = time.monotonic()
    try:
        from bot.qa import get_qa

        get_qa().answer("你好", "zh-Hans")
        app.state.knowledge = "loaded"
        log.info("knowledge loaded in %.1f s (%.1f s of CPU since the process began)", time.monotonic() - started,
                 time.process_time())
    except Exception:  # the engine hands questions to staff when the knowledge cannot load
        app.state.knowledge = "failed"
        log.exception("knowledge could not be loaded: questions go to staff")


async def start_telegram(app: Any, settings: Settings, bot_engine: Any, tasks: list[asyncio.Task[Any]]) -> None:
    """Telegram once the web is serving: aiogram is imported in a thread, then polling starts
    (or the webhook is set); until then a webhook update is answered 503 and Telegram retries."""
    await asyncio.to_thread(__import__, "bot.channels.telegram")
    from bot.channels.telegram import create_bot, create_dispatcher

    bot = create_bot(settings)
    dispatcher = create_dispatcher(bot_engine)
    app.state.telegram_bot, app.state.telegram_dispatcher = bot, dispatcher
    if settings.telegram_mode == "polling":
        tasks.append(asyncio.create_task(dispatcher.start_polling(bot, handle_signals=False), name="telegram-polling"))
    else:
        from bot.channels.telegram import set_webhook

        await set_webhook(bot, settings)
    log.info("telegram %s", settings.telegram_mode)


async def keep_wal_bounded(engine: Any, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), CHECKPOINT_EVERY_S)
        try:
            await asyncio.to_thread(checkpoint, engine)
        except Exception:  # busy or closing: the next round tries again
            log.debug("WAL checkpoint skipped", exc_info=True)


async def _main(settings: Settings, host: str, port: int) -> int:
    from outreach.dispatcher import Dispatcher, build_providers
    from web.app import create_app

    clock = SystemClock()
    settings.ensure_data_dir()
    engine = make_engine(settings.effective_database_url)
    upgrade_if_needed(engine)
    bot_engine = build_conversation_engine(engine, settings, clock)
    providers = build_providers(settings, engine)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []

    app = create_app(settings, engine, clock=clock, bot_engine=bot_engine, providers=providers)
    app.state.knowledge = "loading"
    server = _WebServer.create(app, host, port)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)

    web = asyncio.create_task(server.serve(), name="web")
    tasks.append(web)
    # The port first: everything else starts once the web answers (webhooks, /healthz).
    while not server.started and not web.done() and not stop.is_set():
        await asyncio.sleep(0.01)
    log.info("web serving on http://%s:%d (%.1f s of CPU since the process began)", host, port, time.process_time())
    knowledge = asyncio.create_task(asyncio.to_thread(load_knowledge, app), name="knowledge")
    dispatcher = Dispatcher(engine, providers, clock, settings)
    tasks.append(asyncio.create_task(dispatcher.run(stop), name="dispatcher"))
    if is_sqlite(engine):
        tasks.append(asyncio.create_task(keep_wal_bounded(engine, stop), name="wal-checkpoints"))

    from scheduler import start_scheduler

    async def scheduler_after_knowledge() -> None:
        # The scheduler's catch-up (a missed daily sweep...) waits for the knowledge, so that
        # the first questions are answered soon after start; it runs until cancelled, and only
        # the process holding the scheduler lock runs jobs.
        await asyncio.wait([knowledge], timeout=10)
        await start_scheduler(engine, settings, clock)

    scheduler_task = asyncio.create_task(scheduler_after_knowledge(), name="scheduler")
    telegram = (asyncio.create_task(start_telegram(app, settings, bot_engine, tasks), name="telegram-start")
                if settings.telegram_enabled else None)
    channels = [f"web console http://{host}:{port:d}", "dispatcher",
                "telegram " + (settings.telegram_mode if settings.telegram_enabled else "off (no TELEGRAM_BOT_TOKEN)"),
                "sms via Twilio" if settings.twilio_enabled else "sms off: messages go to the log sink"]
    log.info("nuanxin running: %s", "; ".join(channels))

    # Run until asked to stop, or until a part ends on its own (a crash): then stop everything
    # and exit non-zero, so that a supervisor restarts the whole process rather than leaving
    # it half alive (say, serving the console with no dispatcher).
    stop_waiter = asyncio.create_task(stop.wait(), name="stop")
    failed: list[asyncio.Task[Any]] = []
    while not failed and not stop.is_set():
        starting = [telegram] if telegram is not None and not telegram.done() else []
        done, _ = await asyncio.wait([stop_waiter, scheduler_task, *tasks, *starting],
                                     return_when=asyncio.FIRST_COMPLETED)
        # Telegram's set-up finishing is not a part ending (its polling task is watched from then on).
        failed = [t for t in done if t is not stop_waiter
                  and not (t is telegram and not t.cancelled() and t.exception() is None)]
    for task in failed:
        error = task.exception() if not task.cancelled() else None
        log.error("%s ended unexpectedly: %r; stopping", task.get_name(), error)
    stop.set()
    stopping = time.monotonic()
    log.info("stopping")
    server.should_exit = True
    if telegram is not None and not telegram.done():
        telegram.cancel()
    telegram_dispatcher = getattr(app.state, "telegram_dispatcher", None)
    if telegram_dispatcher is not None and settings.telegram_mode == "polling":
        with contextlib.suppress(Exception):
            await telegram_dispatcher.stop_polling()
    scheduler_task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await scheduler_task
    _, late = await asyncio.wait(tasks, timeout=max(0.5, STOP_BUDGET_S - (time.monotonic() - stopping)))
    for task in late:
        log.warning("%s did not stop in time; cancelled (its claimed rows keep their leases)", task.get_name())
        task.cancel()
    telegram_bot = getattr(app.state, "telegram_bot", None)
    if telegram_bot is not None:
        await telegram_bot.session.close()
    if not knowledge.done():
        knowledge.cancel()
    bot_engine.close()
    if is_sqlite(engine):
        with contextlib.suppress(Exception):
            checkpoint(engine, truncate_above=0)
    engine.dispose()
    log.info("stopped in %.1f s", time.monotonic() - stopping)
    return 1 if failed else 0


def serve(settings: Settings, *, host: str, port: int) -> int:
    """Run until SIGINT/SIGTERM (exit status 0) or until a part fails (1)."""
    configure_logging()
    code = asyncio.run(_main(settings, host, port))
    log.info("exiting")
    return code
