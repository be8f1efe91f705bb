"""The process roles and Telegram's webhook, as commands: `nuanxin web`, `nuanxin worker dispatch`,
`nuanxin worker scheduler`, `nuanxin telegram set-webhook | delete-webhook | webhook-info`.

(`nuanxin run`, everything in one process, is in cli.py.) service.py builds each role.
"""

from __future__ import annotations

import asyncio
import json

import typer

worker_app = typer.Typer(help="Background workers: the outbox dispatcher and the scheduler (one process each).",
                         no_args_is_help=True)
telegram_app = typer.Typer(help="Telegram's webhook: set it once per deployment, not from each web replica.",
                           no_args_is_help=True)


def _settings():  # type: ignore[no-untyped-def]
    from settings import SettingsError, get_settings

    try:
        return get_settings()
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def _serve(role_name: str, host: str | None, port: int | None) -> None:
    from service import Role, serve

    settings = _settings()
    serve(settings, role=Role(role_name), host=host or settings.web_host, port=port)  # exits the process


def web(
    host: str | None = typer.Option(None, help="Address to listen on (default from settings: 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default NUANXIN_WEB_PORT, 8080)."),
) -> None:
    """The console and the provider webhooks (run several behind a proxy). No dispatcher, no
    scheduler; Telegram polling only while this replica holds the polling lock (webhook mode: none)."""
    _serve("web", host, port)


@worker_app.command("dispatch")
def worker_dispatch(
    host: str | None = typer.Option(None, help="Address of /healthz, /readyz, /metrics (default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port of /healthz, /readyz, /metrics (none: not served)."),
) -> None:
    """Send the outbox (run several: they share the rows, and with REDIS_URL the provider limits)."""
    _serve("dispatch", host, port)


@worker_app.command("scheduler")
def worker_scheduler(
    host: str | None = typer.Option(None, help="Address of /healthz, /readyz, /metrics (default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port of /healthz, /readyz, /metrics (none: not served)."),
) -> None:
    """Run the scheduler's jobs while this process leads; stand by while another does (run two)."""
    _serve("scheduler", host, port)


async def _with_bot(action):  # type: ignore[no-untyped-def]
    from bot.channels.telegram import create_bot

    settings = _settings()
    if not settings.telegram_enabled:
        typer.echo("TELEGRAM_BOT_TOKEN is not set", err=True)
        raise typer.Exit(2)
    bot = create_bot(settings)
    try:
        return await action(bot, settings)
    finally:
        await bot.session.close()


@telegram_app.command("set-webhook")
def set_webhook(
    drop_pending: bool = typer.Option(False, "--drop-pending", help="Forget updates Telegram is holding."),
) -> None:
    """Point Telegram at NUANXIN_PUBLIC_BASE_URL/webhooks/telegram with TELEGRAM_WEBHOOK_SECRET
    (once per deployment, or after either changes; with NUANXIN_TELEGRAM_MODE=webhook)."""
    from bot.channels.telegram import create_dispatcher, webhook_url
    from bot.channels.telegram import set_webhook as set_it

    async def action(bot, settings):  # type: ignore[no-untyped-def]
        if not settings.telegram_webhook_secret:
            typer.echo("TELEGRAM_WEBHOOK_SECRET must be set: Telegram signs every update with it", err=True)
            raise typer.Exit(2)
        if not webhook_url(settings).startswith("https://"):
            typer.echo(f"note: {webhook_url(settings)} is not https (Telegram accepts only https, "
                       "except from a local Bot API server)", err=True)
        if drop_pending:
            await bot.delete_webhook(drop_pending_updates=True)
        dispatcher = create_dispatcher(engine=None, uploads_dir=settings.data_dir / "uploads")  # type: ignore[arg-type]
        return await set_it(bot, settings, dispatcher)

    url = asyncio.run(_with_bot(action))
    typer.echo(f"telegram webhook set: {url}")


@telegram_app.command("delete-webhook")
def delete_webhook(
    drop_pending: bool = typer.Option(False, "--drop-pending", help="Forget updates Telegram is holding."),
) -> None:
    """Stop Telegram posting updates (before going back to polling)."""
    async def action(bot, settings):  # type: ignore[no-untyped-def]
        return await bot.delete_webhook(drop_pending_updates=drop_pending)

    asyncio.run(_with_bot(action))
    typer.echo("telegram webhook deleted")


@telegram_app.command("webhook-info")
def webhook_info(as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """What Telegram says of our webhook: URL, updates waiting, the last error."""
    async def action(bot, settings):  # type: ignore[no-untyped-def]
        return await bot.get_webhook_info()

    info = asyncio.run(_with_bot(action))
    figures = {"url": info.url, "pending_update_count": info.pending_update_count,
               "last_error_message": info.last_error_message or "",
               "allowed_updates": list(info.allowed_updates or [])}
    if as_json:
        typer.echo(json.dumps(figures, ensure_ascii=False))
        return
    for key, value in figures.items():
        typer.echo(f"{key}: {value}")


def register(app: typer.Typer) -> None:
    app.command("web")(web)
    app.add_typer(worker_app, name="worker")
    app.add_typer(telegram_app, name="telegram")
