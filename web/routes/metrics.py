"""`GET /metrics`: this process's Prometheus metrics (outreach/metrics.py), behind a bearer token.

Only `Authorization: Bearer $NUANXIN_METRICS_TOKEN` is answered (compared in constant time);
without a configured token the route answers 404, so metrics are never exposed by accident.
The figures themselves hold no personal data: channels, providers, error classes, job names.
"""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Request, Response

from outreach.metrics import CONTENT_TYPE, metrics_of

router = APIRouter()

PATH = "/metrics"


def bearer_ok(expected: str, header: str | None) -> bool:
    scheme, _, given = (header or "").partition(" ")
    if not expected or scheme.lower() != "bearer" or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.strip().encode())


@router.get(PATH, include_in_schema=False)
async def metrics(request: Request) -> Response:
    token = request.app.state.settings.metrics_token
    if not token:
        return Response("metrics are off: set NUANXIN_METRICS_TOKEN", status_code=404, media_type="text/plain")
    if not bearer_ok(token, request.headers.get("authorization")):
        return Response("a bearer token is required", status_code=401, media_type="text/plain",
                        headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    # The database figures are read while rendering: off the event loop.
    body = await asyncio.to_thread(metrics_of(request.app.state).render)
    return Response(body, media_type=CONTENT_TYPE)
