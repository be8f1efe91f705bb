"""One process runs everything (`nuanxin run`): the web console and webhooks, the
outbox dispatcher, the scheduler, and Telegram long polling when a token is set.

Each part is optional in the sense that it starts only when its module and settings are
there; none of them is a global: they are built here and passed to each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from models.clock import SystemClock
from models.db import make_engine
from models.migrate import upgrade
from models.privacy import configure_logging
from settings import Settings

log = logging.getLogger("nuanxin.service")


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

        return Server(uvicorn.Config(app, host=host, port=port, log_level="info", lifespan="on"))


def build_conversation_engine(engine: Any, settings: Settings, clock: Any) -> Any:
    from bot.engine import Engine

    return Engine(engine, settings, clock)


async def _main(settings: Settings, host: str, port: int) -> int:
    from outreach.dispatcher import Dispatcher, build_providers
    from web.app import create_app

    clock = SystemClock()
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    bot_engine = build_conversation_engine(engine, settings, clock)
    providers = build_providers(settings, engine)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []

    telegram_bot = telegram_dispatcher = None
    if settings.telegram_enabled:
        from bot.channels.telegram import create_bot, create_dispatcher

        telegram_bot = create_bot(settings)
        telegram_dispatcher = create_dispatcher(bot_engine)

    app = create_app(settings, engine, clock=clock, bot_engine=bot_engine, providers=providers,
                     telegram_bot=telegram_bot, telegram_dispatcher=telegram_dispatcher)
    server = _WebServer.create(app, host, port)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)

    dispatcher = Dispatcher(engine, providers, clock, settings)
    tasks.append(asyncio.create_task(dispatcher.run(stop), name="dispatcher"))

    from scheduler import start_scheduler

    # Runs until cancelled; only the process holding the scheduler lock runs jobs.
    scheduler_task = asyncio.create_task(start_scheduler(engine, settings, clock), name="scheduler")

    if telegram_bot is not None and settings.telegram_mode == "polling":
        tasks.append(asyncio.create_task(
            telegram_dispatcher.start_polling(telegram_bot, handle_signals=False),  # type: ignore[union-attr]
            name="telegram-polling"))
    elif telegram_bot is not None:
        from bot.channels.telegram import set_webhook

        await set_webhook(telegram_bot, settings)

    tasks.append(asyncio.create_task(server.serve(), name="web"))
    channels = [f"web console http://{host}:{port:d}", "dispatcher",
                "telegram " + (settings.telegram_mode if telegram_bot else "off (no TELEGRAM_BOT_TOKEN)"),
                "sms via Twilio" if settings.twilio_enabled else "sms off: messages go to the log sink"]
    log.info("nuanxin running: %s", "; ".join(channels))

    # Run until asked to stop, or until a part ends on its own (a crash): then stop everything
    # and exit non-zero, so that a supervisor restarts the whole process rather than leaving
    # it half alive (say, serving the console with no dispatcher).
    stop_waiter = asyncio.create_task(stop.wait(), name="stop")
    done, _ = await asyncio.wait([stop_waiter, scheduler_task, *tasks], return_when=asyncio.FIRST_COMPLETED)
    failed = [t for t in done if t is not stop_waiter]
    for task in failed:
        error = task.exception() if not task.cancelled() else None
        log.error("%s ended unexpectedly: %r; stopping", task.get_name(), error)
    stop.set()
    log.info("stopping")
    server.should_exit = True
    if telegram_dispatcher is not None and settings.telegram_mode == "polling":
        with contextlib.suppress(Exception):
            await telegram_dispatcher.stop_polling()
    scheduler_task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await scheduler_task
    await asyncio.wait(tasks, timeout=15)
    if telegram_bot is not None:
        await telegram_bot.session.close()
    bot_engine.close()
    engine.dispose()
    return 1 if failed else 0


def serve(settings: Settings, *, host: str, port: int) -> int:
    """Run until SIGINT/SIGTERM (exit status 0) or until a part fails (1)."""
    configure_logging()
    return asyncio.run(_main(settings, host, port))
