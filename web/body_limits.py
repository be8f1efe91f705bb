"""Request bodies bounded before they are read: a pure ASGI middleware (and the write intent of
a form post, from the same place, because it is the one that sees every request first).

Each route has a limit (webhooks small, the roll upload larger, everything else in between). A
request that declares a longer body (`Content-Length`) is answered 413 before the application
sees it; a body sent without a length (chunked) is counted as it streams in and refused with 413
the moment it passes the limit: before any parsing, any signature check, any buffering of the
rest. uvicorn reads no faster than the application asks, so memory stays at one chunk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.db import writes_expected

KB = 1024
MB = 1024 * KB
_READING_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class BodyLimits:
    """Longest body per path prefix (the longest matching prefix wins), and for the rest."""

    default: int = 1 * MB
    by_prefix: Mapping[str, int] = field(default_factory=lambda: {
        "/webhooks/twilio/": 64 * KB,  # Twilio's forms are a few KB, even with ten media URLs
        "/webhooks/telegram": 1 * MB,  # an update with a long message and its entities
        "/import": 200 * MB,  # a roll file
    })

    def for_path(self, path: str) -> int:
        best, limit = -1, self.default
        for prefix, value in self.by_prefix.items():
            if path.startswith(prefix) and len(prefix) > best:
                best, limit = len(prefix), value
        return limit


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit:,} bytes")
        self.limit = limit


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limits: BodyLimits | None = None) -> None:
        self.app = app
        self.limits = limits or BodyLimits()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.for_path(scope.get("path", ""))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, limit)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            if scope.get("method", "GET") in _READING_METHODS:
                await self.app(scope, counted_receive, watched_send)
            else:
                # A post changes something: its transactions take SQLite's write lock at BEGIN,
                # so a read-then-write waits its turn instead of failing (models/db.py).
                with writes_expected():
                    await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            if not started:
                await _refuse(send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, limit: int) -> None:
    body = f"request too large: at most {limit:,} bytes\n".encode()
    headers: list[tuple[bytes, bytes]] = [(b"content-type", b"text/plain; charset=utf-8"),
                                          (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def install(app: Any, limits: BodyLimits | None = None) -> None:
    """Add the middleware outermost among the application's own (FastAPI / Starlette)."""
    app.add_middleware(BodyLimitMiddleware, limits=limits)
