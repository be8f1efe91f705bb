"""A small world for scripted conversations: the real engine behind the real channel paths.

Telegram: aiogram's `Bot` and our dispatcher against the fake Bot API on 127.0.0.1, updates
fetched with getUpdates and fed to the dispatcher exactly as polling does. SMS: Twilio-shaped
form posts, signed as Twilio signs them, to our `/webhooks/twilio/sms` route, answered in
TwiML. One-time codes go through the real outbox notifier; a person reads theirs from the SMS
the outbox holds for their phone. Policy questions go to the real Q&A over the shipped
knowledge base.

A person presses only buttons that are on screen (`press`); `press_stale` presses one of an
older message as it was shown before the bot took its keyboard away (a quick double tap, a
slow network). Outcome checks are soft (`World.expect`): a journey runs to its end and lists
every outcome that was wrong; a missing button or number stops it (not completed).
"""

from __future__ import annotations

import contextlib
import itertools
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiogram import Bot
from fastapi import FastAPI
from sqlalchemy import Engine as DbEngine
from sqlmodel import Session, SQLModel, select
from twilio.request_validator import RequestValidator

from bot.channels import telegram
from bot.engine import Engine
from models.applications import Application, HandoffTicket, Task
from models.clock import FakeClock
from models.db import make_engine
from models.outbox import OutboxMessage
from models.people import Beneficiary, Contact
from outreach.sms_text import sms_length
from tests.fakes.fake_telegram import FakeTelegram

TOKEN = "123456:JOURNEY-TOKEN"
AUTH_TOKEN = "journey-twilio-auth-token"
PUBLIC = "https://nuanxin.example.org"
OFFICE_NUMBER = "+8610655000"
START = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # a Monday, 10:00 in the office


class NotOnScreen(AssertionError):
    """The person was asked to press or type something the bot did not offer."""


@dataclass
class World:
    db: DbEngine
    settings: Any
    clock: FakeClock
    engine: Engine
    tg: FakeTelegram
    bot: Bot
    dp: Any
    http: httpx.AsyncClient
    failures: list[str] = field(default_factory=list)
    phones: set[str] = field(default_factory=set)  # the SMS numbers of this journey's people
    sms_replies: list[str] = field(default_factory=list)  # every TwiML message sent back
    _offset: int = 0
    _sids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- outcomes --------------------------------------------------------------------------
    def expect(self, condition: object, what: str) -> bool:
        if not condition:
            self.failures.append(what)
        return bool(condition)

    def rows(self, model: Any, *where: Any) -> list[Any]:
        with Session(self.db) as s:
            return list(s.exec(select(model).where(*where)).all())

    def applications(self, *where: Any) -> list[Application]:
        return self.rows(Application, *where)

    def tasks(self, *where: Any) -> list[Task]:
        return self.rows(Task, *where)

    def tickets(self, *where: Any) -> list[HandoffTicket]:
        return self.rows(HandoffTicket, *where)

    def person(self, name: str) -> Beneficiary:
        [b] = self.rows(Beneficiary, Beneficiary.name == name)
        return b

    def contact(self, channel: str, address: str) -> Contact | None:
        found = self.rows(Contact, Contact.channel == channel, Contact.address == address)
        return found[0] if found else None

    def sms_sent_to(self, phone: str) -> list[OutboxMessage]:
        return self.rows(OutboxMessage, OutboxMessage.channel == "sms", OutboxMessage.address == phone)

    def code_for(self, phone: str) -> str:
        """The one-time code in the newest SMS the outbox holds for `phone`."""
        for row in sorted(self.sms_sent_to(phone), key=lambda r: r.id or 0, reverse=True):
            found = re.search(r"(?<!\d)(\d{6})(?!\d)", row.body)
            if row.kind in ("otp", "one_time_code") and found:
                return found.group(1)
        raise NotOnScreen(f"no code was sent to {phone}")

    # -- figures -----------------------------------------------------------------------------
    def sms_segments(self) -> int:
        """Outbound SMS segments: replies in TwiML and what the outbox holds for the journey's phones."""
        replies = sum(sms_length(text).segments for text in self.sms_replies)
        queued = sum(row.segments or sms_length(row.body).segments for phone in self.phones
                     for row in self.sms_sent_to(phone))
        return replies + queued

    # -- people ------------------------------------------------------------------------------
    def telegram(self, chat_id: int, language: str = "zh-hans", name: str = "张") -> TelegramPerson:
        return TelegramPerson(self, chat_id, language, name)

    def sms(self, phone: str) -> SmsPerson:
        self.phones.add(phone)
        return SmsPerson(self, phone)

    async def feed_updates(self) -> None:
        updates = await self.bot.get_updates(offset=self._offset or None, timeout=0)
        for u in updates:
            await self.dp.feed_update(self.bot, u)
            self._offset = u.update_id + 1

    async def post_sms(self, form: dict[str, str]) -> httpx.Response:
        path = "/webhooks/twilio/sms"
        signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + path, form)
        return await self.http.post(path, data=form, headers={"X-Twilio-Signature": signature})


class TelegramPerson:
    channel = "telegram"

    def __init__(self, world: World, chat_id: int, language: str, name: str) -> None:
        self.w, self.chat_id, self.language, self.name = world, chat_id, language, name
        self.last = ""
        self.last_messages: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []

    def _user(self) -> dict[str, Any]:
        return {"id": self.chat_id, "is_bot": False, "first_name": self.name, "language_code": self.language}

    def _message(self, **fields: Any) -> dict[str, Any]:
        update = self.w.tg.text_update(self.chat_id, "x", first_name=self.name)
        message = update["message"]
        del message["text"]
        message["from"] = self._user()
        message.update(fields)
        return update

    async def _run(self, update: dict[str, Any]) -> str:
        before = len(self.w.tg.sent)
        self.w.tg.push_update(update)
        await self.w.feed_updates()
        self.last_messages = [m for m in self.w.tg.sent[before:] if str(m["chat"]["id"]) == str(self.chat_id)]
        self.received += self.last_messages
        self.last = "\n".join(m.get("text", "") for m in self.last_messages)
        return self.last

    def on_screen(self, message: dict[str, Any]) -> bool:
        """A message's keyboard is still shown unless the bot took it away."""
        for edit in self.w.tg.edits:
            if (edit["method"] == "editMessageReplyMarkup" and str(edit.get("chat_id")) == str(self.chat_id)
                    and int(edit.get("message_id") or 0) == message["message_id"] and not edit.get("reply_markup")):
                return False
        return bool(message.get("reply_markup"))

    def buttons(self, message: dict[str, Any] | None = None) -> list[str]:
        shown = [message] if message else [m for m in self.received if self.on_screen(m)][-1:]
        return [b["text"] for m in shown for row in (m.get("reply_markup") or {}).get("inline_keyboard", [])
                for b in row]

    def keyboards_on_screen(self) -> int:
        return sum(1 for m in self.received if self.on_screen(m))

    async def say(self, text: str) -> str:
        update = self._message(text=text)
        return await self._run(update)

    async def _press(self, message: dict[str, Any], label: str) -> str:
        for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
            for button in row:
                if button["text"] == label:
                    press = self.w.tg.callback_update(self.chat_id, button["callback_data"],
                                                      message_id=message["message_id"])
                    press["callback_query"]["from"] = self._user()
                    press["callback_query"]["message"]["reply_markup"] = message["reply_markup"]
                    return await self._run(press)
        raise NotOnScreen(f"no button {label!r} on:\n{message.get('text', '')}")

    async def press(self, label: str) -> str:
        """Press the button `label` on the newest message that still shows one."""
        for message in reversed(self.received):
            if self.on_screen(message) and label in self.buttons(message):
                return await self._press(message, label)
        raise NotOnScreen(f"no button {label!r} on screen; last:\n{self.last}")

    async def press_stale(self, back: int, label: str) -> str:
        """Press `label` on the keyboard of the message `back` keyboards ago, as it was first shown."""
        with_keyboards = [m for m in self.received if m.get("reply_markup")]
        return await self._press(with_keyboards[-1 - back], label)

    async def pick(self, label: str) -> str:
        return await self.press(label)

    async def photo(self, caption: str = "", content: bytes = b"\xff\xd8\xffPHOTO") -> str:
        file_id = self.w.tg.add_file(content, f"photos/{len(self.w.tg.sent)}.jpg")
        fields: dict[str, Any] = {"photo": [{"file_id": file_id, "file_unique_id": f"U{file_id}", "width": 1280,
                                             "height": 960, "file_size": len(content)}]}
        if caption:
            fields["caption"] = caption
        return await self._run(self._message(**fields))

    async def document(self, name: str, caption: str = "", content: bytes = b"%PDF-1.4 journey") -> str:
        file_id = self.w.tg.add_file(content, f"documents/{name}")
        fields: dict[str, Any] = {"document": {"file_id": file_id, "file_unique_id": f"U{file_id}",
                                               "file_name": name, "mime_type": "application/pdf",
                                               "file_size": len(content)}}
        if caption:
            fields["caption"] = caption
        return await self._run(self._message(**fields))

    async def voice(self, seconds: int = 12, content: bytes = b"OggS-voice") -> str:
        file_id = self.w.tg.add_file(content, f"voice/{len(self.w.tg.sent)}.oga")
        return await self._run(self._message(voice={"file_id": file_id, "file_unique_id": f"U{file_id}",
                                                    "duration": seconds, "mime_type": "audio/ogg",
                                                    "file_size": len(content)}))

    async def sticker(self) -> str:
        return await self._run(self._message(sticker={
            "file_id": "STICKER1", "file_unique_id": "S1", "type": "regular", "width": 512, "height": 512,
            "is_animated": False, "is_video": False, "emoji": "👍"}))

    async def location(self) -> str:
        return await self._run(self._message(location={"latitude": 22.58, "longitude": 113.08}))

    async def contact_card(self, phone: str, first_name: str) -> str:
        return await self._run(self._message(contact={"phone_number": phone, "first_name": first_name}))

    async def edit(self, text: str) -> str:
        """Edit the person's last message (Telegram sends an edited_message update)."""
        update = self._message(text=text)
        update["edited_message"] = update.pop("message")
        update["edited_message"]["edit_date"] = update["edited_message"]["date"]
        return await self._run(update)


class SmsPerson:
    channel = "sms"

    def __init__(self, world: World, phone: str) -> None:
        self.w, self.phone = world, phone
        self.last = ""
        self.replies: list[str] = []

    async def say(self, text: str) -> str:
        sid = next(self.w._sids)
        form = {"From": self.phone, "To": OFFICE_NUMBER, "Body": text, "MessageSid": f"SM{sid:032d}",
                "AccountSid": "AC" + "0" * 32, "NumMedia": "0", "ApiVersion": "2010-04-01"}
        response = await self.w.post_sms(form)
        assert response.status_code == 200, response.text
        root = ET.fromstring(response.text.encode())
        messages = [m.text or "" for m in root.findall("Message")]
        self.w.sms_replies += messages
        self.replies += messages
        self.last = "\n".join(messages)
        return self.last

    async def pick(self, label: str) -> str:
        """Type the number the last SMS showed beside `label`."""
        # "1. 是", "1、是", "1 是", "1（是）", "1 (Submit)", "回复1提交"
        pattern = rf"(?<!\d)(\d+)(?:\. ?|、| ?（| ?\(| )?(?:{re.escape(label)})(?=$|[）)。，,；;或\s])"
        found = re.search(pattern, self.last, re.M)
        if found is None:
            raise NotOnScreen(f"no number for {label!r} in SMS:\n{self.last}")
        return await self.say(found.group(1))

    press = pick


def _web_app(world_state: dict[str, Any]) -> FastAPI:
    from web.routes import twilio_sms

    app = FastAPI()
    app.include_router(twilio_sms.router)
    for key, value in world_state.items():
        setattr(app.state, key, value)
    return app


@contextlib.asynccontextmanager
async def open_world(tmp: Path, seed: Callable[[DbEngine, Any], Any] | None = None) -> AsyncIterator[World]:
    """A fresh database (SQLite file), the fake Bot API, the engine and the SMS webhook."""
    import models  # noqa: F401  (every table)
    from settings import load_settings

    db = make_engine(f"sqlite:///{tmp / 'journey.db'}")
    SQLModel.metadata.create_all(db)
    async with FakeTelegram(token=TOKEN) as tg:
        settings = load_settings(
            data_dir=tmp / "var", id_hash_key="journey-key", session_secret="journey-secret",
            telegram_bot_token=TOKEN, telegram_api_base=tg.base_url, twilio_account_sid="AC" + "0" * 32,
            twilio_auth_token=AUTH_TOKEN, twilio_from_number=OFFICE_NUMBER, public_base_url=PUBLIC)
        if seed is not None:
            seed(db, settings)
        clock = FakeClock(START)
        engine = Engine(db, settings, clock)
        bot = telegram.create_bot(settings)
        dp = telegram.create_dispatcher(engine, settings)
        app = _web_app({"settings": settings, "clock": clock, "bot_engine": engine})
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        try:
            yield World(db=db, settings=settings, clock=clock, engine=engine, tg=tg, bot=bot, dp=dp, http=http)
        finally:
            await http.aclose()
            await bot.session.close()
            engine.close()
            db.dispose()


Journey = Callable[[World], Awaitable[None]]


@dataclass
class Outcome:
    name: str
    completed: bool
    failures: list[str]
    sms_segments: int
    tickets: int
    error: str = ""


async def run(name: str, journey: Journey, tmp: Path, seed: Callable[[DbEngine, Any], Any]) -> Outcome:
    async with open_world(tmp, seed) as world:
        try:
            await journey(world)
        except (NotOnScreen, AssertionError, ValueError, KeyError, IndexError) as exc:
            return Outcome(name, False, world.failures, world.sms_segments(), len(world.tickets()),
                           f"{type(exc).__name__}: {exc}")
        return Outcome(name, True, world.failures, world.sms_segments(), len(world.tickets()))
