"""Request bodies bounded before they are read: refused with 413 on the declared length, or as the
body streams in past the route's limit, before the route parses or checks anything."""

from __future__ import annotations

from typing import Any

from web.body_limits import BodyLimitMiddleware, BodyLimits

LIMITS = BodyLimits(default=1000, by_prefix={"/webhooks/twilio/": 100, "/import": 10_000})


class Route:
    """Stands for a route: reads the whole body, then answers 200 with its length."""

    def __init__(self) -> None:
        self.called = False
        self.read = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.called = True
        while True:
            message = await receive()
            self.read += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(self.read).encode()})


async def _call(path: str, chunks: int, chunk: bytes = b"x" * 50, headers: list[Any] | None = None
                ) -> tuple[int, Route, int]:
    route = Route()
    app = BodyLimitMiddleware(route, LIMITS)
    sent = {"n": 0}
    answers: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        sent["n"] += 1
        return {"type": "http.request", "body": chunk, "more_body": sent["n"] < chunks}

    async def send(message: dict[str, Any]) -> None:
        answers.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers or []}
    await app(scope, receive, send)
    return answers[0]["status"], route, sent["n"]


async def test_a_declared_length_over_the_limit_is_refused_without_calling_the_route() -> None:
    status, route, received = await _call("/webhooks/twilio/sms", 1, headers=[(b"content-length", b"300000000")])
    assert status == 413 and not route.called and received == 0


async def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit() -> None:
    """No Content-Length: a body of a million chunks is cut off after the third 50-byte chunk
    (limit 100) and the route never gets to the end of it."""
    status, route, received = await _call("/webhooks/twilio/sms", 1_000_000)
    assert status == 413 and received == 3


async def test_each_route_has_its_own_limit() -> None:
    assert (await _call("/webhooks/twilio/sms", 2))[0] == 200  # 100 bytes: at the limit
    assert (await _call("/login", 20))[0] == 200  # 1,000: the default
    assert (await _call("/login", 21))[0] == 413
    assert (await _call("/import", 200))[0] == 200  # 10,000: the upload's larger limit
