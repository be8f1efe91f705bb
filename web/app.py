"""The FastAPI application: health, provider webhooks and the staff console.

Everything the routes need (database engine, settings, clock, providers, the
conversation engine, the Telegram bot) is passed to `create_app` and kept on
`app.state`; routes read it from `request.app.state`, never from globals.
Each console page is one router in `web/routes/<page>.py`; every console route declares
its roles with `web.security.require`.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine, func, select, text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.clock import Clock, SystemClock
from models.staff_access import AccessPolicy
from settings import Settings
from web.body_limits import BodyLimitMiddleware

STATIC_DIR = Path(__file__).resolve().parent / "static"

# Routers that live in their own modules under web/routes/, included when present.
ROUTE_MODULES = (
    "web.routes.twilio_sms",
    "web.routes.twilio_status",
    "web.routes.telegram",
    "web.routes.health",
    "web.routes.metrics",
    "web.routes.login",
    "web.routes.account",
    "web.routes.dashboard",
    "web.routes.people",
    "web.routes.roll_import",
    "web.routes.applications",
    "web.routes.tickets",
    "web.routes.tasks",
    "web.routes.audit",
    "web.routes.staff",
    "web.routes.broadcasts",
    "web.routes.outbox",
    "web.routes.schedule",
    "web.routes.knowledge",
    "web.routes.simulator",
    "web.routes.staff_telegram",
)

# No inline script or style anywhere: the console's CSS and JavaScript are files under /static.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                           "base-uri 'none'; object-src 'none'")
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)


class SecurityHeaders:
    """Adds the console's security headers to every HTTP response (pure ASGI: streams untouched)."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.headers = SECURITY_HEADERS + (
            ((b"strict-transport-security", b"max-age=31536000"),) if https else ())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in self.headers if k not in present]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    settings: Settings,
    engine: Engine,
    *,
    clock: Clock | None = None,
    bot_engine: Any = None,
    providers: dict[str, Any] | None = None,
    telegram_bot: Any = None,
    telegram_dispatcher: Any = None,
    access_policy: AccessPolicy | None = None,
) -> FastAPI:
    from web import errors

    app = FastAPI(title="nuanxin", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.engine = engine
    app.state.clock = clock or SystemClock()
    app.state.bot_engine = bot_engine
    app.state.providers = providers or {}
    app.state.telegram_bot = telegram_bot
    app.state.telegram_dispatcher = telegram_dispatcher
    app.state.access_policy = access_policy or AccessPolicy(idle=settings.console_idle_timeout)
    app.add_middleware(SecurityHeaders, https=settings.public_base_url.startswith("https://"))
    errors.install(app)
    # Outermost: a body over its route's limit is refused before anything reads it.
    app.add_middleware(BodyLimitMiddleware)

    @app.get("/healthz", include_in_schema=False)
    def healthz(request: Request) -> JSONResponse:
        """Liveness and the database: 200 when the database answers, 503 when it does not."""
        from models.outbox import OutboxMessage

        db = request.app.state.engine
        try:
            with db.connect() as conn:
                conn.execute(text("SELECT 1"))
                queued = conn.execute(select(func.count()).select_from(OutboxMessage)
                                      .where(OutboxMessage.status == "queued")).scalar_one()  # type: ignore[arg-type]
        except Exception as exc:  # the point of a health check is to say so, not to crash
            return JSONResponse({"status": "error", "database": db.dialect.name, "error": type(exc).__name__},
                                status_code=503)
        return JSONResponse({"status": "ok", "database": db.dialect.name, "outbox_queued": queued,
                             "knowledge": getattr(request.app.state, "knowledge", "not loaded here"),
                             "telegram": settings.telegram_enabled, "sms": settings.twilio_enabled})

    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    for name in ROUTE_MODULES:
        if importlib.util.find_spec(name) is not None:
            app.include_router(importlib.import_module(name).router)
    return app
