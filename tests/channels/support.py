"""Helpers for the channel tests: a stand-in engine, a signed-SMS client, a small web app.

`ScriptedEngine` follows the engine's signature (`handle`, `ahandle`) and only records what
it was given; the end-to-end tests use the real `bot.engine.Engine` instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI
from twilio.request_validator import RequestValidator

from bot.channels.base import Choice, Inbound, Reply

TOKEN = "123456:TEST-TOKEN"
AUTH_TOKEN = "twilio-test-auth-token"
PUBLIC = "https://nuanxin.example.org"


class ScriptedEngine:
    """Answers every inbound with `replies_for(inbound)`; records each inbound."""

    def __init__(self, replies_for: Callable[[Inbound], list[Reply]] | None = None,
                 fail: bool = False) -> None:
        self.seen: list[Inbound] = []
        self.fail = fail
        self.replies_for = replies_for or (lambda i: [Reply(
            f"收到：{i.choice or i.text}",
            choices=(Choice("申请社保接续", "apply"), Choice("返回主菜单", "menu")), expects="choice")])

    def handle(self, inbound: Inbound) -> list[Reply]:
        self.seen.append(inbound)
        if self.fail:
            raise RuntimeError("engine down")
        return self.replies_for(inbound)

    async def ahandle(self, inbound: Inbound) -> list[Reply]:
        return self.handle(inbound)


def sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


class SmsClient:
    """Posts Twilio-shaped form requests, signed as Twilio signs them."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.path = "/webhooks/twilio/sms"

    async def post(self, params: dict[str, str], *, signature: str | None = "auto",
                   headers: dict[str, str] | None = None) -> httpx.Response:
        h = dict(headers or {})
        if signature == "auto":
            signature = sign(PUBLIC + self.path, params)
        if signature is not None:
            h["X-Twilio-Signature"] = signature
        return await self.client.post(self.path, data=params, headers=h)


def make_app(state: dict[str, Any]) -> FastAPI:
    """A small FastAPI app with our two webhook routers, state as the lead's app sets it."""
    from web.routes import telegram as telegram_routes
    from web.routes import twilio_sms

    app = FastAPI()
    app.include_router(twilio_sms.router)
    app.include_router(telegram_routes.router)
    for key, value in state.items():
        setattr(app.state, key, value)
    return app


async def asgi_client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
