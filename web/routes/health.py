"""`GET /readyz`: may this process be sent traffic? (`/healthz`, in web/app.py, says it is alive.)

Ready means: the database answers; its schema is not behind this code (a schema *ahead* is
ready: during a rolling upgrade the old processes keep serving after `nuanxin migrate` added
what the new code needs); Redis answers when `REDIS_URL` is set (the shared provider limits
and inbound limits live there); and, in a process that takes Telegram's webhook updates, that its
Telegram handler has started (until then such an update is answered 503: a replica still starting
is kept out of the rotation instead). 200 with each check's result, or 503 naming what failed.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text

router = APIRouter()


@functools.cache
def _code_heads() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    from models.migrate import alembic_config

    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def schema_state(engine: Engine) -> str:
    """"current", "behind" (run `nuanxin migrate`), "ahead" (a newer version migrated it) or "empty"."""
    from models.migrate import alembic_config, current_revision, is_current

    if is_current(engine):  # the usual answer, without importing Alembic
        return "current"
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    revision = current_revision(engine)
    if revision is None:
        return "empty"
    if revision in _code_heads():
        return "current"
    try:
        known = ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    except CommandError:
        known = None
    return "behind" if known is not None else "ahead"


def readiness(engine: Engine, redis_url: str) -> tuple[bool, dict[str, Any]]:
    checks: dict[str, Any] = {}
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
        checks["migrations"] = schema_state(engine)
    except Exception as exc:  # the point of the check is to say so
        checks["database"] = f"error: {type(exc).__name__}"
    if redis_url:
        import redis

        try:
            with redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2) as client:
                client.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
    ready = (checks.get("database") == "ok" and checks.get("migrations") in ("current", "ahead")
             and checks.get("redis", "ok") == "ok")
    return ready, checks


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    state = request.app.state
    ready, checks = await asyncio.to_thread(readiness, state.engine, state.settings.redis_url)
    if getattr(state, "takes_telegram_updates", False):
        checks["telegram"] = "ok" if getattr(state, "telegram_dispatcher", None) is not None else "starting"
        ready = ready and checks["telegram"] == "ok"
    return JSONResponse({"status": "ready" if ready else "not ready", **checks}, status_code=200 if ready else 503)
