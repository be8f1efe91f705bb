"""The FastAPI application: health, provider webhooks and the staff console.

Everything the routes need (database engine, settings, clock, providers, the
conversation engine, the Telegram bot) is passed to `create_app` and kept on
`app.state`; routes read it from `request.app.state`, never from globals.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, func, select, text
from starlette.middleware.sessions import SessionMiddleware

from models.clock import Clock, SystemClock
from settings import Settings
from web.body_limits import BodyLimitMiddleware

# Routers that live in their own modules under web/routes/, included when present.
ROUTE_MODULES = (
    "web.routes.twilio_sms",
    "web.routes.twilio_status",
    "web.routes.telegram",
    "web.console",
)


def create_app(
    settings: Settings,
    engine: Engine,
    *,
    clock: Clock | None = None,
    bot_engine: Any = None,
    providers: dict[str, Any] | None = None,
    telegram_bot: Any = None,
    telegram_dispatcher: Any = None,
) -> FastAPI:
    app = FastAPI(title="nuanxin", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.engine = engine
    app.state.clock = clock or SystemClock()
    app.state.bot_engine = bot_engine
    app.state.providers = providers or {}
    app.state.telegram_bot = telegram_bot
    app.state.telegram_dispatcher = telegram_dispatcher
    app.add_middleware(SessionMiddleware, secret_key=settings.web_session_secret, session_cookie="nuanxin_session",
                       same_site="lax", https_only=settings.public_base_url.startswith("https"), max_age=8 * 3600)
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
                             "telegram": settings.telegram_enabled, "sms": settings.twilio_enabled})

    for name in ROUTE_MODULES:
        if importlib.util.find_spec(name) is not None:
            app.include_router(importlib.import_module(name).router)
    return app
