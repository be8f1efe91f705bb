"""A protocol-faithful fake of the Telegram Bot API, for tests and benchmarks.

It speaks the subset aiogram uses, at the same paths and with the same JSON envelopes
Telegram sends, so the real `aiogram.Bot` talks to it unchanged:

    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from tests.fakes.fake_telegram import FakeTelegram

    async with FakeTelegram(token="123:ABC") as tg:              # 127.0.0.1, free port
        bot = Bot("123:ABC", session=AiohttpSession(
            api=TelegramAPIServer.from_base(tg.base_url, is_local=True)))
        await bot.send_message(42, "你好")
        assert tg.sent[-1]["text"] == "你好"
        tg.block(43)                       # 403 Forbidden: bot was blocked by the user
        tg.forget(44)                      # 400 Bad Request: chat not found
        tg.push_update(tg.text_update(chat_id=42, text="/start"))   # for getUpdates polling
        file_id = tg.add_file(b"...jpeg...", "photos/p1.jpg")       # getFile + download
        await bot.session.close()

    # Synchronous tests and benchmarks: it runs in a background thread.
    with FakeTelegram(faults=Faults(error_5xx=0.1, throttle=0.05, timeout=0.02, seed=1)) as tg:
        ...

Recorded: `requests` (every call: method name and parameters), `sent` (every message that
was delivered, including those delivered under a timeout the client never saw:
`hidden_deliveries` lists those, injected or because the client had gone when the answer was ready). Updates pushed with `push_update` are served by
`getUpdates` with long polling and offsets as Telegram does; `setWebhook` / `deleteWebhook`
record the webhook URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakes.loopback import Faults, LoopbackServer, client_gone

__all__ = ["FakeTelegram", "Faults", "RecordedRequest"]


@dataclass
class RecordedRequest:
    method: str
    params: dict[str, Any]
    at: float  # time.monotonic()
    content_type: str = ""  # application/json, multipart/form-data, application/x-www-form-urlencoded


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(code: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=code)


_JSON_FIELDS = {"reply_markup", "entities", "caption_entities", "commands", "scope", "allowed_updates",
                "link_preview_options", "reply_parameters"}


class FakeTelegram(LoopbackServer):
    def __init__(self, token: str = "123456:TEST-TOKEN", *, faults: Faults | None = None,
                 bot_username: str = "nuanxin_test_bot", port: int = 0) -> None:
        super().__init__()
        self.port = port
        self.token = token
        self.bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 123456
        self.bot_username = bot_username
        self.faults = faults or Faults()
        self.requests: list[RecordedRequest] = []
        self.sent: list[dict[str, Any]] = []
        self.hidden_deliveries: list[dict[str, Any]] = []
        self.blocked: set[str] = set()
        self.unknown: set[str] = set()
        self.webhook_url: str = ""
        self.commands: list[Any] = []
        self.callback_answers: list[dict[str, Any]] = []
        self.edits: list[dict[str, Any]] = []
        self._message_ids = itertools.count(1)
        self._update_ids = itertools.count(1)
        self._updates: list[dict[str, Any]] = []
        self._update_event: asyncio.Event | None = None
        self._files: dict[str, tuple[str, bytes]] = {}
        self._file_dir = Path(tempfile.mkdtemp(prefix="fake-telegram-files-"))

    # --- behaviours ------------------------------------------------------------------
    def block(self, chat_id: int | str) -> None:
        """This user blocked the bot: sends get 403 Forbidden: bot was blocked by the user."""
        self.blocked.add(str(chat_id))

    def forget(self, chat_id: int | str) -> None:
        """This chat does not exist: sends get 400 Bad Request: chat not found."""
        self.unknown.add(str(chat_id))

    def deliveries(self) -> Counter[tuple[str, str]]:
        """How many times each (chat_id, text) was delivered."""
        return Counter((m["chat"]["id"].__str__(), m.get("text") or m.get("caption") or "") for m in self.sent)

    # --- updates (for polling) -------------------------------------------------------
    def text_update(self, chat_id: int, text: str, *, first_name: str = "张", username: str | None = None
                    ) -> dict[str, Any]:
        """A `message` update as Telegram sends it for a private chat (update_id filled in on push)."""
        user = {"id": chat_id, "is_bot": False, "first_name": first_name, "language_code": "zh-hans"}
        if username:
            user["username"] = username
        return {"message": {"message_id": next(self._message_ids), "date": int(time.time()),
                            "chat": {"id": chat_id, "type": "private", "first_name": first_name},
                            "from": user, "text": text}}

    def callback_update(self, chat_id: int, data: str, *, message_id: int = 1) -> dict[str, Any]:
        user = {"id": chat_id, "is_bot": False, "first_name": "张"}
        return {"callback_query": {"id": str(next(self._update_ids) * 1000), "from": user, "chat_instance": "1",
                                   "data": data,
                                   "message": {"message_id": message_id, "date": int(time.time()),
                                               "chat": {"id": chat_id, "type": "private"}, "text": "…"}}}

    def push_update(self, update: dict[str, Any]) -> int:
        """Queue an update for getUpdates; returns its update_id. Thread-safe."""
        update = dict(update)
        update.setdefault("update_id", next(self._update_ids))

        def add() -> None:
            self._updates.append(update)
            if self._update_event is not None:
                self._update_event.set()

        self.call_in_loop(add)
        return int(update["update_id"])

    def add_file(self, content: bytes, file_path: str = "documents/file.bin") -> str:
        """Store a file the bot can fetch with getFile; returns its file_id.

        getFile answers with the absolute path of a copy on disk, which is what a local Bot
        API server does (aiogram with `is_local=True` reads it from disk); the same path also
        downloads over HTTP at /file/bot<token>/<path>.
        """
        file_id = f"FILE{len(self._files) + 1}"
        local = self._file_dir / file_id / file_path
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(content)
        self._files[file_id] = (str(local), content)
        return file_id

    # --- the server ------------------------------------------------------------------
    def build_app(self) -> web.Application:
        self._update_event = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.*}", self._download)
        return app

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST":
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        params[key] = {"filename": value.filename, "size": len(value.file.read())}
                    else:
                        params[key] = value
        for key in _JSON_FIELDS:
            if isinstance(params.get(key), str):
                with contextlib.suppress(ValueError):
                    params[key] = json.loads(params[key])
        return params

    async def _api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params = await self._params(request)
        self.requests.append(RecordedRequest(method, params, time.monotonic(), request.content_type))
        handler = getattr(self, f"_m_{method.lower()}", None)
        if handler is None:
            return _error(404, "Not Found: method not found")
        if method.lower() in ("sendmessage", "sendphoto", "senddocument"):
            return await self._send(request, method.lower(), params, handler)
        return await handler(params)

    async def _send(self, request: web.Request, method: str, params: dict[str, Any], handler: Any) -> web.Response:
        chat = str(params.get("chat_id", ""))
        fault, timeout_delivers = self.faults.draw()
        if fault == "5xx":
            return _error(502, "Bad Gateway")
        if fault == "429":
            ra = self.faults.retry_after
            return _error(429, f"Too Many Requests: retry after {ra}", {"retry_after": ra})
        if chat in self.blocked:
            return _error(403, "Forbidden: bot was blocked by the user")
        if chat in self.unknown or not chat:
            return _error(400, "Bad Request: chat not found")
        if not (params.get("text") or method != "sendmessage"):
            return _error(400, "Bad Request: message text is empty")
        if fault == "timeout":
            if timeout_delivers:
                message = handler(params)
                self.hidden_deliveries.append(message)
            await asyncio.sleep(self.faults.hang_s)
            if timeout_delivers:
                return _ok(message)
            return _error(502, "Bad Gateway")
        message = handler(params)
        await asyncio.sleep(0)  # answer as a server would: after the event loop's other work
        if client_gone(request):
            # Delivered, but the client already gave up (its own timeout under load): the
            # same hidden success as an injected timeout.
            self.hidden_deliveries.append(message)
        return _ok(message)

    def _message(self, params: dict[str, Any], **fields: Any) -> dict[str, Any]:
        chat_id = params["chat_id"]
        with contextlib.suppress(TypeError, ValueError):
            chat_id = int(chat_id)
        message: dict[str, Any] = {
            "message_id": next(self._message_ids), "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": {"id": self.bot_id, "is_bot": True, "first_name": "暖心", "username": self.bot_username},
        }
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        message.update(fields)
        self.sent.append(message)
        return message

    # Each _m_<method> returns the `result` (sends) or a Response (others).
    def _m_sendmessage(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._message(params, text=params.get("text", ""))

    def _m_sendphoto(self, params: dict[str, Any]) -> dict[str, Any]:
        photo = [{"file_id": "PHOTO1", "file_unique_id": "P1", "width": 100, "height": 100}]
        return self._message(params, photo=photo, caption=params.get("caption") or None)

    def _m_senddocument(self, params: dict[str, Any]) -> dict[str, Any]:
        doc = {"file_id": "DOC1", "file_unique_id": "D1", "file_name": "document"}
        return self._message(params, document=doc, caption=params.get("caption") or None)

    async def _m_getme(self, params: dict[str, Any]) -> web.Response:
        return _ok({"id": self.bot_id, "is_bot": True, "first_name": "暖心", "username": self.bot_username,
                    "can_join_groups": False, "can_read_all_group_messages": False,
                    "supports_inline_queries": False})

    async def _m_getupdates(self, params: dict[str, Any]) -> web.Response:
        offset = int(params.get("offset") or 0)
        timeout = min(float(params.get("timeout") or 0), 30.0)
        limit = int(params.get("limit") or 100)
        if offset:
            # Telegram forgets updates below the offset once it is confirmed.
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates and timeout > 0 and self._update_event is not None:
            self._update_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._update_event.wait(), timeout)
        return _ok(self._updates[:limit])

    async def _m_getfile(self, params: dict[str, Any]) -> web.Response:
        file_id = str(params.get("file_id", ""))
        if file_id not in self._files:
            return _error(400, "Bad Request: invalid file_id")
        path, content = self._files[file_id]
        return _ok({"file_id": file_id, "file_unique_id": "U" + file_id, "file_size": len(content),
                    "file_path": path})

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        wanted = request.match_info["path"]
        for path, content in self._files.values():
            if path.endswith(wanted) or path == "/" + wanted.lstrip("/"):
                return web.Response(body=content)
        return web.Response(status=404, text="Not Found")

    async def _m_answercallbackquery(self, params: dict[str, Any]) -> web.Response:
        self.callback_answers.append(params)
        return _ok(True)

    async def _m_editmessagetext(self, params: dict[str, Any]) -> web.Response:
        self.edits.append({"method": "editMessageText", **params})
        return _ok({"message_id": int(params.get("message_id") or 1), "date": int(time.time()),
                    "chat": {"id": int(params.get("chat_id") or 0), "type": "private"},
                    "text": params.get("text", "")})

    async def _m_editmessagereplymarkup(self, params: dict[str, Any]) -> web.Response:
        self.edits.append({"method": "editMessageReplyMarkup", **params})
        return _ok({"message_id": int(params.get("message_id") or 1), "date": int(time.time()),
                    "chat": {"id": int(params.get("chat_id") or 0), "type": "private"}, "text": "…"})

    async def _m_setwebhook(self, params: dict[str, Any]) -> web.Response:
        self.webhook_url = str(params.get("url", ""))
        return _ok(True)

    async def _m_deletewebhook(self, params: dict[str, Any]) -> web.Response:
        self.webhook_url = ""
        return _ok(True)

    async def _m_getwebhookinfo(self, params: dict[str, Any]) -> web.Response:
        return _ok({"url": self.webhook_url, "has_custom_certificate": False,
                    "pending_update_count": len(self._updates)})

    async def _m_setmycommands(self, params: dict[str, Any]) -> web.Response:
        self.commands = params.get("commands") or []
        return _ok(True)

    async def _m_deletemycommands(self, params: dict[str, Any]) -> web.Response:
        self.commands = []
        return _ok(True)

    async def _m_sendchataction(self, params: dict[str, Any]) -> web.Response:
        return _ok(True)

    async def _m_close(self, params: dict[str, Any]) -> web.Response:
        return _ok(True)
