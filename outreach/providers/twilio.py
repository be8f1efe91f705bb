"""SMS through the `twilio` client, asynchronously, with Twilio's error codes mapped onto ours.

twilio 9.13 has no base-URL option, so `RewritingHttpClient` (an async HTTP client for
`twilio.rest.Client`) rewrites scheme and host to `twilio_api_base` when it is set (a
Twilio-compatible gateway, or the fake in tests). It also turns HTTP 429 into `Throttled`
with the Retry-After header, which `TwilioRestException` would otherwise drop.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from outreach.providers.base import (
    AddressInvalid,
    ConnectionFailed,
    ContactStopped,
    OutgoingMessage,
    Rejected,
    SendError,
    SendResult,
    TemporaryFailure,
    Throttled,
)
from outreach.providers.twilio_codes import STATUS_CALLBACK_PATH, classify_code

_logger = logging.getLogger("nuanxin.twilio")

def _retry_after(headers: Any, default: float = 1.0) -> float:
    try:
        return max(0.0, float((headers or {}).get("Retry-After", default)))
    except (TypeError, ValueError):
        return default


class RewritingHttpClient(AsyncHttpClient):
    """aiohttp-based async client for `twilio.rest.Client`; sends to `api_base` when set."""

    def __init__(self, api_base: str = "", *, timeout: float = 10.0, connections: int = 256) -> None:
        super().__init__(_logger, True, timeout)
        self.api_base = urlsplit(api_base) if api_base else None
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None

    def rewrite(self, url: str) -> str:
        if self.api_base is None:
            return url
        parts = urlsplit(url)
        base_path = self.api_base.path.rstrip("/")
        return urlunsplit((self.api_base.scheme, self.api_base.netloc, base_path + parts.path, parts.query, ""))

    async def request(self, method: str, url: str, params: dict[str, Any] | None = None,
                      data: dict[str, object] | None = None, headers: dict[str, str] | None = None,
                      auth: tuple[str, str] | None = None, timeout: float | None = None,
                      allow_redirects: bool = False) -> Response:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.connections))
        headers = dict(headers or {})
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        total = timeout if timeout is not None else self.timeout
        async with self._session.request(
            method.upper(), self.rewrite(url), params=params, data=data, headers=headers,
            timeout=aiohttp.ClientTimeout(total=total), allow_redirects=allow_redirects,
        ) as resp:
            text = await resp.text()
            if resp.status == 429:
                code = None
                with contextlib.suppress(ValueError):
                    code = json.loads(text).get("code")
                raise Throttled(_retry_after(resp.headers), text[:200], code or 429)
            return Response(resp.status, text, dict(resp.headers))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class TwilioProvider:
    """`from_number`: the default sender, a From number or a Messaging Service SID (MG…); a message
    may name another one (`OutgoingMessage.sender`, chosen by the SMS limiter per recipient)."""

    channel = "sms"
    name = "twilio"

    def __init__(self, account_sid: str, auth_token: str, from_number: str, *, api_base: str = "",
                 public_base_url: str = "", timeout: float = 10.0, connections: int = 256) -> None:
        self.http = RewritingHttpClient(api_base, timeout=timeout, connections=connections)
        self.client = Client(account_sid, auth_token, http_client=self.http)
        self.from_number = from_number
        self.status_callback = public_base_url.rstrip("/") + STATUS_CALLBACK_PATH if public_base_url else None

    async def send(self, message: OutgoingMessage) -> SendResult:
        sender = message.sender or self.from_number
        kwargs: dict[str, Any] = {"to": message.address, "body": message.body}
        if sender.startswith("MG"):
            kwargs["messaging_service_sid"] = sender
        else:
            kwargs["from_"] = sender
        if self.status_callback:
            kwargs["status_callback"] = self.status_callback
        try:
            created = await self.client.messages.create_async(**kwargs)
        except SendError:
            raise
        except TwilioRestException as exc:
            raise classify_code(exc.code, exc.status, str(exc.msg)[:300]) from exc
        except TimeoutError as exc:
            raise ConnectionFailed("timeout", "timeout") from exc
        except aiohttp.ClientError as exc:
            raise ConnectionFailed(f"{type(exc).__name__}: {exc}"[:300], "network") from exc
        except Exception as exc:  # noqa: BLE001 - anything else is a temporary failure, never a loss
            raise TemporaryFailure(f"{type(exc).__name__}: {exc}"[:300], "unexpected") from exc
        if created.error_code:
            raise classify_code(int(created.error_code), 400, str(created.error_message or ""))
        return SendResult(str(created.sid))

    async def close(self) -> None:
        await self.http.close()


__all__ = ["TwilioProvider", "RewritingHttpClient", "classify_code", "STATUS_CALLBACK_PATH",
           "AddressInvalid", "ContactStopped", "Rejected"]
