"""The small HTTP app a worker serves (`nuanxin worker dispatch|scheduler --port N`): `/healthz`,
`/readyz` and `/metrics`, and nothing else: no console, no webhooks, no sessions.

`/healthz` says the process is alive and what it is doing (the dispatcher's counts, whether this
scheduler leads); `/readyz` and `/metrics` are the web's own routes (web/routes/health.py,
web/routes/metrics.py), so a worker answers them exactly as a web replica does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import Engine

from outreach.metrics import Metrics


def create_ops_app(settings: Any, engine: Engine, *, metrics: Metrics,
                   status: Callable[[], dict[str, Any]]) -> FastAPI:
    from web.routes import health
    from web.routes import metrics as metrics_route

    app = FastAPI(title="nuanxin worker", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.engine = engine
    app.state.metrics = metrics

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        """Alive (the event loop answers), and what this worker is doing."""
        return JSONResponse({"status": "ok", **status()})

    app.include_router(health.router)
    app.include_router(metrics_route.router)
    return app
