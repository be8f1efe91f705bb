"""The Telegram channel (aiogram 3): updates → `Inbound`, `Reply` → messages with buttons.

Handlers only translate; every decision is the engine's. One Router per concern:
`commands` (/start /menu /help /lang /stop → the engine's global words), `callbacks`
(a button press → `Inbound.choice`, answered so the button stops spinning), `messages`
(text, photos, documents and voice notes, downloaded to `<data_dir>/uploads/<chat>/`;
stickers, locations, contact cards and videos named so the engine can answer them; an
edited message as `Inbound.edited`).

`create_dispatcher(engine, settings, reply_sender=...)` builds the Dispatcher; the engine, the
upload folder and the process's one Telegram sender (`outreach.providers.telegram.TelegramProvider`:
the same Bot and limiter as the outbox, replies ahead of broadcasts, 1 a second per chat) are
given to it once and arrive in handlers as keyword arguments. Without a sender (the adapter's
own tests) replies go straight through the handler's Bot. Polling
(`run_polling`) is the default; webhook mode feeds the same dispatcher from
`web/routes/telegram.py`, after `set_webhook` told Telegram where to post.

Rendering: plain text (no parse mode, so nothing the engine writes can break markup),
big inline buttons one per row unless `Reply.columns` says otherwise, then the navigation
buttons ([返回] [找人工]) in one row; with buttons the text is `Reply.button_text` (the
numbered list and "reply 1 or 2" left out, so nothing is listed twice). Callback data is
`~<prompt token>~<value>`: the token names the question the keyboard was sent with, so the
engine can refuse a press on an older keyboard. A value too long for Telegram's 64 bytes is
sent as the button's position and mapped back through the pressed message's own keyboard.
When the conversation moves on, the previous keyboard is taken off its message
(`Keyboards`, one per dispatcher: the chat's last keyboard message, kept in memory; the
token check is what makes an old press harmless even when that memory is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from aiogram import BaseMiddleware, Bot, Dispatcher, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command
from aiogram.types import (
    BotCommand,
    CallbackQuery,
    ErrorEvent,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    TelegramObject,
)

from bot.channels.base import Attachment, Inbound, Reply
from models.phone import mask_phone

log = logging.getLogger(__name__)

CHANNEL = "telegram"
MAX_TEXT = 4096  # Telegram's limit for one message's text
MAX_CALLBACK_BYTES = 64
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # the cloud Bot API's getFile limit
_INDEX_PREFIX = "~i:"  # callback data that names a button's position instead of its value
_TOKENED = re.compile(r"^~([A-Za-z0-9_-]{1,16})~(.*)$", re.S)  # ~<prompt token>~<value>
MAX_REMEMBERED_CHATS = 50_000
_SORRY = "系统暂时繁忙，请稍后再试。Sorry, something went wrong; please try again."


class ConversationEngine(Protocol):
    async def ahandle(self, inbound: Inbound) -> list[Reply]: ...


class ReplySender(Protocol):
    async def reply(self, chat_id: int | str, text: str, reply_markup: Any = None) -> Any: ...


SendText = Callable[..., Awaitable[Any]]  # (chat_id, text, reply_markup=None)


def _send(bot: Bot, reply_sender: ReplySender | None) -> SendText:
    return reply_sender.reply if reply_sender is not None else bot.send_message


# --- commands --------------------------------------------------------------------------
# Each command is sent to the engine as the global word it stands for, so a command and
# the same word typed (or sent by SMS) do the same thing.
COMMAND_WORDS: dict[str, str] = {
    "start": "菜单",
    "menu": "菜单",
    "help": "帮助",
    "lang": "语言",
    "stop": "退订",
}
BOT_COMMANDS: dict[str, list[tuple[str, str]]] = {
    "zh": [("menu", "主菜单"), ("help", "帮助与人工服务"), ("lang", "切换语言 / Language"),
           ("stop", "不再接收通知")],
    "en": [("menu", "Main menu"), ("help", "Help and talking to staff"), ("lang", "Language / 语言"),
           ("stop", "Stop notifications")],
}


async def set_commands(bot: Bot) -> None:
    """The command menu in Chinese (also the default for any other language) and English."""
    zh = [BotCommand(command=c, description=d) for c, d in BOT_COMMANDS["zh"]]
    en = [BotCommand(command=c, description=d) for c, d in BOT_COMMANDS["en"]]
    await bot.set_my_commands(zh)
    await bot.set_my_commands(zh, language_code="zh")
    await bot.set_my_commands(en, language_code="en")


# --- rendering -------------------------------------------------------------------------
def callback_data(value: str, index: int, token: str = "") -> str:
    prefix = f"~{token}~" if token else ""
    if value.startswith(("~", _INDEX_PREFIX)) or len((prefix + value).encode("utf-8")) > MAX_CALLBACK_BYTES:
        return f"{prefix}{_INDEX_PREFIX}{index}"
    return prefix + value


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    if not reply.choices and not reply.navigation:
        return None
    token = reply.metadata.get("prompt", "")
    per_row = max(1, reply.columns)
    buttons = [InlineKeyboardButton(text=c.label, callback_data=callback_data(c.value, i, token))
               for i, c in enumerate(reply.choices)]
    rows = [buttons[i:i + per_row] for i in range(0, len(buttons), per_row)]
    offset = len(reply.choices)
    if reply.navigation:
        rows.append([InlineKeyboardButton(text=c.label, callback_data=callback_data(c.value, offset + i, token))
                     for i, c in enumerate(reply.navigation)])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def shown_text(reply: Reply) -> str:
    """With buttons, the text without what the buttons already say."""
    if (reply.choices or reply.navigation) and reply.button_text:
        return reply.button_text
    return reply.text


class Keyboards:
    """The last message with a keyboard in each chat, so that keyboard is taken away when the
    conversation moves on (an old keyboard pressed later is refused by the engine anyway)."""

    def __init__(self, limit: int = MAX_REMEMBERED_CHATS) -> None:
        self._last: OrderedDict[str, int] = OrderedDict()
        self._limit = limit

    def remember(self, chat_id: int | str, message_id: int) -> None:
        key = str(chat_id)
        self._last.pop(key, None)
        self._last[key] = message_id
        while len(self._last) > self._limit:
            self._last.popitem(last=False)

    def forget(self, chat_id: int | str, message_id: int) -> None:
        if self._last.get(str(chat_id)) == message_id:
            del self._last[str(chat_id)]

    async def retire(self, bot: Bot, chat_id: int | str) -> None:
        """Take the chat's last keyboard off its message (it stays readable)."""
        message_id = self._last.pop(str(chat_id), None)
        if message_id is None:
            return
        with contextlib.suppress(TelegramAPIError):
            await bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id, reply_markup=None)


def _chunks(text: str) -> list[str]:
    """Text cut at line ends into pieces Telegram accepts (rarely more than one)."""
    if len(text) <= MAX_TEXT:
        return [text]
    out, current = [], ""
    for line in text.split("\n"):
        while len(line) > MAX_TEXT:
            if current:
                out.append(current)
                current = ""
            out.append(line[:MAX_TEXT])
            line = line[MAX_TEXT:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > MAX_TEXT:
            out.append(current)
            current = line
        else:
            current = candidate
    if current:
        out.append(current)
    return out


async def send_replies(send: SendText, chat_id: int | str, replies: Sequence[Reply],
                       keyboards: Keyboards | None = None, bot: Bot | None = None) -> None:
    """Send the engine's replies in order; the keyboard rides on the last piece of its reply.
    The chat's previous keyboard is taken away first (through `bot`): only what is asked now can be pressed."""
    if keyboards is not None and bot is not None and replies:
        await keyboards.retire(bot, chat_id)
    for reply in replies:
        text = shown_text(reply).strip()
        markup = keyboard(reply)
        if not text and markup is None:
            continue
        pieces = _chunks(text or "请选择 / Please choose:")
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            sent = await send(chat_id, piece, reply_markup=markup if last else None)
            if last and markup is not None and keyboards is not None:
                keyboards.remember(chat_id, sent.message_id)


# --- inbound ---------------------------------------------------------------------------
_UNSAFE = re.compile(r"[^\w.\-]+", re.UNICODE)


def _safe_name(name: str, fallback: str) -> str:
    cleaned = _UNSAFE.sub("_", Path(name).name).strip("._")[:80]
    return cleaned or fallback


async def _download(bot: Bot, uploads: Path, chat_id: int, message_id: int, file_id: str,
                    file_unique_id: str, name: str, size: int | None) -> str:
    """Store the file under uploads/<chat>/ and return its path, or "" when it cannot be fetched."""
    if size and size > MAX_DOWNLOAD_BYTES:
        return ""
    folder = uploads / str(chat_id)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{message_id}-{_safe_name(file_unique_id, 'file')}-{_safe_name(name, 'file')}"
    try:
        await bot.download(file_id, destination=target)
    except (TelegramAPIError, OSError) as exc:
        log.warning("telegram chat %s: could not download a file: %s", chat_id, type(exc).__name__)
        return ""
    return str(target)


async def attachments_of(message: Message, bot: Bot, uploads: Path) -> tuple[Attachment, ...]:
    """Photos and documents, downloaded; other media named so the engine can say what it takes."""
    out: list[Attachment] = []
    chat = message.chat.id
    if message.photo:
        p = message.photo[-1]  # the largest size Telegram made
        path = await _download(bot, uploads, chat, message.message_id, p.file_id, p.file_unique_id,
                               "photo.jpg", p.file_size)
        out.append(Attachment(kind="photo", file_id=p.file_id, mime_type="image/jpeg",
                              file_name="photo.jpg", size=p.file_size or 0, local_path=path))
    if message.document:
        d = message.document
        name = d.file_name or "document"
        path = await _download(bot, uploads, chat, message.message_id, d.file_id, d.file_unique_id,
                               name, d.file_size)
        out.append(Attachment(kind="document", file_id=d.file_id, mime_type=d.mime_type or "",
                              file_name=name, size=d.file_size or 0, local_path=path))
    for kind, audio in (("voice", message.voice), ("audio", message.audio)):
        if audio is not None:
            # Staff listen to it from the ticket: the file is kept like a document.
            name = getattr(audio, "file_name", None) or ("voice.ogg" if kind == "voice" else "audio")
            path = await _download(bot, uploads, chat, message.message_id, audio.file_id, audio.file_unique_id,
                                   name, audio.file_size)
            out.append(Attachment(kind=kind, file_id=audio.file_id, mime_type=audio.mime_type or "",
                                  file_name=name, size=audio.file_size or 0, local_path=path))
    if message.sticker:
        out.append(Attachment(kind="sticker", file_id=message.sticker.file_id))
    if message.location:
        out.append(Attachment(kind="location",
                              file_name=f"{message.location.latitude},{message.location.longitude}"))
    if message.contact:
        # A shared contact card: only its masked number is kept.
        out.append(Attachment(kind="contact", file_name=mask_phone(message.contact.phone_number or "")))
    for other in (message.video, message.video_note, message.animation):
        if other is not None:
            out.append(Attachment(kind="video", file_id=other.file_id, size=other.file_size or 0))
    return tuple(out)


def _language(obj: Message | CallbackQuery) -> str | None:
    user = obj.from_user
    return user.language_code if user and user.language_code else None


def message_inbound(message: Message, text: str, attachments: tuple[Attachment, ...] = ()) -> Inbound:
    return Inbound(channel=CHANNEL, address=str(message.chat.id), text=text, attachments=attachments,
                   language_hint=_language(message), received_at=message.date,
                   provider_message_id=str(message.message_id))


def prompt_token_of(query: CallbackQuery) -> str:
    """The token the pressed keyboard was sent with; "" for a keyboard from before tokens."""
    found = _TOKENED.match(query.data or "")
    return found.group(1) if found else ""


def choice_of(query: CallbackQuery) -> tuple[str | None, str]:
    """(choice value, label): a position-coded button is looked up in the pressed keyboard."""
    data = query.data or ""
    found = _TOKENED.match(data)
    if found:
        data = found.group(2)
    if not data.startswith(_INDEX_PREFIX):
        return data, ""
    markup = getattr(query.message, "reply_markup", None) if query.message else None
    try:
        index = int(data[len(_INDEX_PREFIX):])
        buttons = [b for row in markup.inline_keyboard for b in row] if markup else []
        return None, buttons[index].text
    except (ValueError, IndexError):
        return None, ""


# --- handlers (registered on fresh routers by `routers()`) --------------------------------
async def on_command(message: Message, bot: Bot, engine: ConversationEngine, keyboards: Keyboards,
                     reply_sender: ReplySender | None = None) -> None:
    name = (message.text or "/").split()[0][1:].split("@")[0].lower()
    replies = await engine.ahandle(message_inbound(message, COMMAND_WORDS[name]))
    await send_replies(_send(bot, reply_sender), message.chat.id, replies, keyboards, bot)


async def on_button(query: CallbackQuery, bot: Bot, engine: ConversationEngine, keyboards: Keyboards,
                    reply_sender: ReplySender | None = None) -> None:
    await query.answer()  # stop the spinner first: old phones show it for a long time
    if query.message is None:  # too old for Telegram to tell us the chat
        return
    chat_id = query.message.chat.id
    value, label = choice_of(query)
    if value is None and not label:
        return
    # Take the buttons off the pressed message so an old menu cannot be pressed twice.
    with contextlib.suppress(TelegramAPIError):
        await bot.edit_message_reply_markup(chat_id=chat_id, message_id=query.message.message_id,
                                            reply_markup=None)
    keyboards.forget(chat_id, query.message.message_id)
    # A position-coded button comes back as its label, as if typed, still with its keyboard's token.
    inbound = Inbound(channel=CHANNEL, address=str(chat_id), text=label if value is None else "",
                      language_hint=_language(query), choice=value, prompt_token=prompt_token_of(query),
                      provider_message_id=f"cb:{query.id}")
    replies = await engine.ahandle(inbound)
    await send_replies(_send(bot, reply_sender), chat_id, replies, keyboards, bot)


async def on_message(message: Message, bot: Bot, engine: ConversationEngine, uploads_dir: Path,
                     keyboards: Keyboards, reply_sender: ReplySender | None = None) -> None:
    attachments = await attachments_of(message, bot, uploads_dir)
    text = message.text or message.caption or ""
    if not text and not attachments:
        return
    replies = await engine.ahandle(message_inbound(message, text, attachments))
    await send_replies(_send(bot, reply_sender), message.chat.id, replies, keyboards, bot)


async def on_edited(message: Message, bot: Bot, engine: ConversationEngine, keyboards: Keyboards,
                    reply_sender: ReplySender | None = None) -> None:
    """An edited message: the engine says that answers already taken do not change with it."""
    inbound = Inbound(channel=CHANNEL, address=str(message.chat.id), text=message.text or message.caption or "",
                      language_hint=_language(message), received_at=message.date,
                      provider_message_id=f"edit:{message.message_id}:{message.edit_date or 0}", edited=True)
    replies = await engine.ahandle(inbound)
    await send_replies(_send(bot, reply_sender), message.chat.id, replies, keyboards, bot)


async def on_error(event: ErrorEvent, bot: Bot, reply_sender: ReplySender | None = None) -> bool:
    """Log (without personal data) and tell the person to try again rather than go silent."""
    update = event.update
    chat_id = None
    if update.message is not None:
        chat_id = update.message.chat.id
    elif update.callback_query is not None and update.callback_query.message is not None:
        chat_id = update.callback_query.message.chat.id
    elif update.edited_message is not None:
        chat_id = update.edited_message.chat.id
    log.error("telegram update %s failed: %s", update.update_id, type(event.exception).__name__,
              exc_info=event.exception)
    if chat_id is not None:
        with contextlib.suppress(TelegramAPIError):
            await _send(bot, reply_sender)(chat_id, _SORRY)
    return True


class OneAtATimePerChat(BaseMiddleware):
    """Handle a chat's updates in arrival order, one at a time; different chats in parallel.

    Polling runs each update as its own task: without this, two quick messages from one
    person could reach the engine out of order.
    """

    def __init__(self) -> None:
        self._locks: dict[int, asyncio.Lock] = {}

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        chat = data.get("event_chat")
        if chat is None:
            return await handler(event, data)
        lock = self._locks.setdefault(chat.id, asyncio.Lock())
        try:
            async with lock:
                return await handler(event, data)
        finally:
            if not lock.locked() and not getattr(lock, "_waiters", None):
                self._locks.pop(chat.id, None)


def routers() -> list[Router]:
    """One Router per concern, new each time: aiogram attaches a router to one parent only."""
    private = F.chat.type == "private"  # the bot serves people one to one, never a group
    commands = Router(name="commands")
    commands.message.register(on_command, Command(*COMMAND_WORDS), private)
    callbacks = Router(name="callbacks")
    callbacks.callback_query.register(on_button, F.data)
    messages = Router(name="messages")
    messages.message.register(on_message, private)
    messages.edited_message.register(on_edited, private)
    errors = Router(name="errors")
    errors.errors.register(on_error)
    return [commands, callbacks, messages, errors]


async def on_polling_start(bot: Bot) -> None:
    """When polling starts (by `run_polling` or `dp.start_polling`): commands set, webhook off.

    aiogram emits startup only for polling, so webhook mode never deletes its own webhook.
    A failure to set the command menu is logged, not fatal: messages work without it.
    """
    try:
        await set_commands(bot)
    except TelegramAPIError as exc:
        log.warning("telegram: could not set the command menu: %s", exc)
    await bot.delete_webhook(drop_pending_updates=False)  # polling and a webhook exclude each other


def create_dispatcher(engine: ConversationEngine, settings: Any = None, *,
                      uploads_dir: Path | None = None, reply_sender: ReplySender | None = None) -> Dispatcher:
    """A Dispatcher whose handlers reach `engine` and store files under `<data_dir>/uploads`.

    `data_dir` comes from `settings`, else from the engine's own settings.
    """
    if uploads_dir is None:
        settings = settings if settings is not None else getattr(engine, "settings", None)
        if settings is None:
            raise ValueError("give settings (for data_dir) or uploads_dir")
        uploads_dir = Path(settings.data_dir) / "uploads"
    dp = Dispatcher(engine=engine, uploads_dir=Path(uploads_dir), keyboards=Keyboards(), reply_sender=reply_sender)
    serial = OneAtATimePerChat()
    dp.message.outer_middleware(serial)
    dp.callback_query.outer_middleware(serial)
    from bot.staff_telegram import router as staff_router

    dp.include_routers(staff_router(), *routers())  # staff commands first: /inbox never reaches the engine
    dp.startup.register(on_polling_start)
    return dp


def create_bot(settings: Any) -> Bot:
    """A Bot as the provider makes it (`outreach.providers.telegram.make_bot`), talking to
    `settings.telegram_api_base` (a local Bot API server) when set. `nuanxin run` uses the
    provider's own Bot instead, so that a process has one."""
    from outreach.providers.telegram import make_bot

    return make_bot(settings.telegram_bot_token, api_base=getattr(settings, "telegram_api_base", ""))


def webhook_url(settings: Any) -> str:
    return settings.public_base_url.rstrip("/") + "/webhooks/telegram"


async def set_webhook(bot: Bot, settings: Any, dp: Dispatcher | None = None) -> str:
    """Tell Telegram to post updates to our public URL, signed with the webhook secret."""
    if not settings.telegram_webhook_secret:
        raise ValueError("TELEGRAM_WEBHOOK_SECRET must be set for webhook mode")
    url = webhook_url(settings)
    allowed = dp.resolve_used_update_types() if dp is not None else ["message", "edited_message", "callback_query"]
    await bot.set_webhook(url, secret_token=settings.telegram_webhook_secret, allowed_updates=allowed)
    await set_commands(bot)
    return url


async def run_polling(bot: Bot, engine: ConversationEngine, settings: Any = None, *,
                      dp: Dispatcher | None = None, uploads_dir: Path | None = None,
                      handle_signals: bool = False, polling_timeout: int = 10) -> None:
    """Long-poll Telegram until `dp.stop_polling()` (or a signal, if `handle_signals`).

    On start the command menu is set and any webhook removed (`on_polling_start`).
    """
    dp = dp or create_dispatcher(engine, settings, uploads_dir=uploads_dir)
    await dp.start_polling(bot, handle_signals=handle_signals, polling_timeout=polling_timeout,
                           close_bot_session=False)
