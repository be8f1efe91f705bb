"""A protocol-faithful fake of Twilio's Messages API and its status callbacks.

    from tests.fakes.fake_twilio import FakeTwilio
    from outreach.providers.twilio import TwilioProvider

    async with FakeTwilio(account_sid="AC" + "0" * 32, auth_token="secret") as tw:
        provider = TwilioProvider(tw.account_sid, tw.auth_token, "+15005550006",
                                  api_base=tw.base_url, public_base_url="http://testserver")
        tw.behave("+8613800000001", error=21610)                       # unsubscribed
        tw.behave("+8613800000002", receipt="undelivered", error=30003)  # accepted, then a bad receipt
        result = await provider.send(...)
        calls = tw.callbacks_for(result.provider_message_id)   # signed form posts, not yet sent
        await tw.fire_callbacks(post=...)                      # or POST them to the URL over HTTP

`POST /2010-04-01/Accounts/{AccountSid}/Messages.json` takes Twilio's form fields (To,
From, Body, StatusCallback), checks HTTP basic auth (AccountSid:AuthToken), counts segments
as the network does, and answers in Twilio's JSON shapes (sid "SM…", status "queued"; errors
as {"code", "message", "more_info", "status"}). Fault injection and the seeded RNG are the
same as the Telegram fake's (`Faults`). Status callbacks carry MessageSid, MessageStatus,
ErrorCode, ... and `X-Twilio-Signature` computed with Twilio's own `RequestValidator`: with the
auth token and HMAC-SHA1 by default, or, with `signing_key=(key_id, secret)`, with that shared
key and HMAC-SHA256, named in `X-Twilio-Webhooks-Signature-Settings` (`webhook_headers` gives
the headers for any webhook, inbound SMS included).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import aiohttp
from aiohttp import web
from twilio.request_validator import (
    HMAC_SHA1,
    HMAC_SHA256,
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
)

from outreach.sms_text import sms_length
from tests.fakes.loopback import Faults, LoopbackServer, client_gone

__all__ = ["FakeTwilio", "Faults", "Callback"]

_MESSAGES = {
    20003: "Authenticate",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    21211: "The 'To' number {to} is not a valid phone number.",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number is not currently reachable via SMS.",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
}


@dataclass
class Behaviour:
    error: int | None = None  # answered at once, as an API error (21610, 21211, ...)
    receipt: str = "delivered"  # final status in the callbacks: delivered | undelivered | failed
    receipt_error: int | None = None  # ErrorCode in an undelivered / failed receipt


@dataclass
class Callback:
    url: str
    params: dict[str, str]
    signature: str
    response_status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)  # as Twilio sends them: the signature and its settings


@dataclass
class _Message:
    sid: str
    to: str
    from_: str
    body: str
    segments: int
    status_callback: str
    at: float
    callbacks: list[Callback] = field(default_factory=list)


def _error(status: int, code: int, **fmt: str) -> web.Response:
    message = _MESSAGES.get(code, "Error").format(**fmt) if fmt else _MESSAGES.get(code, "Error")
    return web.json_response({"code": code, "message": message,
                              "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status},
                             status=status)


class FakeTwilio(LoopbackServer):
    def __init__(self, account_sid: str = "AC" + "0" * 32, auth_token: str = "fake-auth-token", *,
                 faults: Faults | None = None, auto_callbacks: bool = False, port: int = 0,
                 signing_key: tuple[str, str] | None = None) -> None:
        super().__init__()
        self.port = port
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.faults = faults or Faults()
        self.signing_key = signing_key
        self.validator = RequestValidator(signing_key[1] if signing_key else auth_token)
        self.algorithm = HMAC_SHA256 if signing_key else HMAC_SHA1
        self.behaviours: dict[str, Behaviour] = {}
        self.requests: list[dict[str, Any]] = []
        self.messages: list[_Message] = []  # accepted (delivered to Twilio), including hidden ones
        self.hidden_deliveries: list[_Message] = []
        self.segments_sent = 0
        # Fire callbacks over HTTP for each accepted message as soon as it is accepted.
        self.auto_callbacks = auto_callbacks
        self._seq = itertools.count(1)
        self._client: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def behave(self, number: str, *, error: int | None = None, receipt: str = "delivered",
               receipt_error: int | None = None) -> None:
        self.behaviours[number] = Behaviour(error, receipt, receipt_error)

    def deliveries(self) -> Counter[tuple[str, str]]:
        return Counter((m.to, m.body) for m in self.messages)

    # --- callbacks --------------------------------------------------------------------
    def sign(self, url: str, params: dict[str, str]) -> str:
        return str(self.validator.compute_signature(url, params, self.algorithm))

    def webhook_headers(self, url: str, params: dict[str, str]) -> dict[str, str]:
        """The headers Twilio signs a webhook to `url` with."""
        headers = {SIGNATURE_HEADER: self.sign(url, params)}
        if self.signing_key is not None:
            headers[SIGNATURE_SETTINGS_HEADER] = f"key={self.signing_key[0]},algorithm={self.algorithm}"
        return headers

    def _callbacks(self, m: _Message) -> list[Callback]:
        b = self.behaviours.get(m.to, Behaviour())
        final = [b.receipt] if b.receipt in ("undelivered", "failed") else ["delivered"]
        out = []
        for status in ["queued", "sent", *final] if final != ["failed"] else ["queued", "failed"]:
            params = {"AccountSid": self.account_sid, "ApiVersion": "2010-04-01", "From": m.from_, "To": m.to,
                      "MessageSid": m.sid, "SmsSid": m.sid, "MessageStatus": status, "SmsStatus": status,
                      "NumSegments": str(m.segments)}
            if status in ("undelivered", "failed") and b.receipt_error:
                params["ErrorCode"] = str(b.receipt_error)
            headers = self.webhook_headers(m.status_callback, params)
            out.append(Callback(m.status_callback, params, headers[SIGNATURE_HEADER], headers=headers))
        return out

    def callbacks_for(self, sid: str) -> list[Callback]:
        """The status callbacks Twilio would send for this message, signed, in order."""
        for m in self.messages:
            if m.sid == sid:
                return self._callbacks(m)
        raise KeyError(sid)

    async def post_callback(self, cb: Callback) -> int:
        if self._client is None or self._client.closed:
            self._client = aiohttp.ClientSession()
        async with self._client.post(cb.url, data=cb.params, headers=cb.headers) as r:
            cb.response_status = r.status
            return r.status

    async def fire_callbacks(self, sid: str | None = None) -> list[Callback]:
        """POST the status callbacks of one message (or all) to their StatusCallback URLs."""
        fired = []
        for m in self.messages:
            if (sid is None or m.sid == sid) and m.status_callback:
                for cb in self._callbacks(m):
                    await self.post_callback(cb)
                    fired.append(cb)
        return fired

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._client is not None:
            await self._client.close()
        await super().stop()

    # --- the server ---------------------------------------------------------------------
    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._create)
        app.router.add_get("/2010-04-01/Accounts/{sid}/Messages/{msid}.json", self._fetch)
        return app

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return secrets.compare_digest(user, self.account_sid) and secrets.compare_digest(password, self.auth_token)

    def _resource(self, m: _Message, status: str = "queued") -> dict[str, Any]:
        now = formatdate(usegmt=True)
        return {
            "account_sid": self.account_sid, "api_version": "2010-04-01", "body": m.body,
            "date_created": now, "date_sent": None, "date_updated": now, "direction": "outbound-api",
            "error_code": None, "error_message": None, "from": m.from_, "messaging_service_sid": None,
            "num_media": "0", "num_segments": str(m.segments), "price": None, "price_unit": "USD",
            "sid": m.sid, "status": status, "to": m.to,
            "subresource_uris": {"media": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{m.sid}/Media.json"},
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{m.sid}.json",
        }

    async def _create(self, request: web.Request) -> web.Response:
        if request.match_info["sid"] != self.account_sid or not self._authorised(request):
            return _error(401, 20003)
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append(form)
        to, from_, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        if not to.startswith("+") or not to[1:].isdigit():
            return _error(400, 21211, to=to)
        fault, timeout_delivers = self.faults.draw()
        if fault == "5xx":
            return _error(500, 20500)
        if fault == "429":
            resp = _error(429, 20429)
            resp.headers["Retry-After"] = str(self.faults.retry_after)
            return resp
        behaviour = self.behaviours.get(to)
        if behaviour and behaviour.error:
            return _error(400, behaviour.error, to=to)
        if len(body) > 1600:
            return _error(400, 21617)
        m = self._accept(to, from_, body, form.get("StatusCallback", ""))
        if fault == "timeout":
            if timeout_delivers:
                self.hidden_deliveries.append(m)
            else:
                self.messages.remove(m)
                self.segments_sent -= m.segments
            await asyncio.sleep(self.faults.hang_s)
            if not timeout_delivers:
                return _error(500, 20500)
        elif client_gone(request):
            self.hidden_deliveries.append(m)
        return web.json_response(self._resource(m), status=201)

    def _accept(self, to: str, from_: str, body: str, callback: str) -> _Message:
        sid = "SM" + f"{next(self._seq):032x}"
        m = _Message(sid, to, from_, body, sms_length(body).segments, callback, time.monotonic())
        self.messages.append(m)
        self.segments_sent += m.segments
        if self.auto_callbacks and callback:
            task = asyncio.get_running_loop().create_task(self._auto(m))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return m

    async def _auto(self, m: _Message) -> None:
        for cb in self._callbacks(m):
            try:
                await self.post_callback(cb)
            except aiohttp.ClientError:
                cb.response_status = None

    async def _fetch(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _error(401, 20003)
        for m in self.messages:
            if m.sid == request.match_info["msid"]:
                return web.json_response(self._resource(m, "delivered"))
        return web.json_response({"code": 20404, "message": "The requested resource was not found",
                                  "more_info": "https://www.twilio.com/docs/errors/20404", "status": 404},
                                 status=404)
