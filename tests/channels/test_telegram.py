"""The Telegram adapter through real aiogram against the fake Bot API on 127.0.0.1.

Polling tests push updates into the fake's getUpdates queue and let the dispatcher fetch
and handle them; webhook tests POST the same update JSON to our FastAPI route.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot

from bot.channels import telegram
from bot.channels.base import Choice, Reply
from tests.fakes.fake_telegram import FakeTelegram
from tests.fakes.waiting import until

from .support import ScriptedEngine, asgi_client, make_app

CHAT = 424242


async def process_pending(bot: Bot, dp: Any, offset: int = 0) -> int:
    """Fetch what getUpdates has queued and feed it through the dispatcher, in order.

    Returns the next offset (as polling would confirm). Deterministic: no waiting on timers.
    """
    updates = await bot.get_updates(offset=offset or None, timeout=0)
    for update in updates:
        await dp.feed_update(bot, update)
        offset = update.update_id + 1
    return offset


async def wait_until(condition: Any) -> None:
    """Yield to the loop until `condition()` holds, for the real polling loop (bounded only
    against a hang: a busy machine is slow, not wrong)."""
    await until(condition, "the polling loop's answers")


@pytest.fixture
async def bot(channel_settings: Any) -> Any:
    b = telegram.create_bot(channel_settings)
    yield b
    await b.session.close()


def sent_to(tg: FakeTelegram, chat: int) -> list[dict[str, Any]]:
    return [r.params for r in tg.requests if r.method == "sendMessage" and str(r.params["chat_id"]) == str(chat)]


def buttons(params: dict[str, Any]) -> list[list[tuple[str, str]]]:
    markup = params.get("reply_markup") or {}
    return [[(b["text"], b["callback_data"]) for b in row] for row in markup.get("inline_keyboard", [])]


def photo_update(tg: FakeTelegram, chat: int, file_id: str, caption: str = "") -> dict[str, Any]:
    update = tg.text_update(chat, "x")
    message = update["message"]
    del message["text"]
    message["photo"] = [
        {"file_id": file_id + "s", "file_unique_id": "small", "width": 90, "height": 90, "file_size": 10},
        {"file_id": file_id, "file_unique_id": "AgADbig", "width": 1280, "height": 960, "file_size": 2048},
    ]
    if caption:
        message["caption"] = caption
    return update


def document_update(tg: FakeTelegram, chat: int, file_id: str, name: str, mime: str) -> dict[str, Any]:
    update = tg.text_update(chat, "x")
    message = update["message"]
    del message["text"]
    message["document"] = {"file_id": file_id, "file_unique_id": "AgADdoc", "file_name": name,
                           "mime_type": mime, "file_size": 14}
    return update


async def test_text_message_becomes_an_inbound_and_the_reply_has_one_big_button_per_row(
        fake_tg: FakeTelegram, bot: Bot, channel_settings: Any) -> None:
    """Chat id is the address, the user's language is the hint; choices become inline buttons."""
    engine = ScriptedEngine()
    dp = telegram.create_dispatcher(engine, channel_settings)
    fake_tg.push_update(fake_tg.text_update(CHAT, "你好"))
    await process_pending(bot, dp)
    [inbound] = engine.seen
    assert (inbound.channel, inbound.address, inbound.text) == ("telegram", str(CHAT), "你好")
    assert inbound.language_hint == "zh-hans"
    assert inbound.received_at is not None and inbound.received_at.tzinfo is not None
    [sent] = sent_to(fake_tg, CHAT)
    assert sent["text"] == "收到：你好"
    assert buttons(sent) == [[("申请社保接续", "apply")], [("返回主菜单", "menu")]]
    assert "parse_mode" not in sent or sent["parse_mode"] in (None, "")


async def test_columns_lay_buttons_side_by_side(fake_tg: FakeTelegram, bot: Bot, channel_settings: Any) -> None:
    """`Reply.columns` puts that many buttons in a row (e.g. 是 / 否)."""
    engine = ScriptedEngine(lambda i: [Reply("是否住院？", choices=(
        Choice("是", "yes"), Choice("否", "no"), Choice("返回", "back")), columns=2)])
    dp = telegram.create_dispatcher(engine, channel_settings)
    fake_tg.push_update(fake_tg.text_update(CHAT, "住院"))
    await process_pending(bot, dp)
    [sent] = sent_to(fake_tg, CHAT)
    assert buttons(sent) == [[("是", "yes"), ("否", "no")], [("返回", "back")]]


async def test_button_press_becomes_a_choice_and_is_answered(
        fake_tg: FakeTelegram, bot: Bot, channel_settings: Any) -> None:
    """A callback query reaches the engine as Inbound.choice; answerCallbackQuery stops the spinner."""
    engine = ScriptedEngine()
    dp = telegram.create_dispatcher(engine, channel_settings)
    fake_tg.push_update(fake_tg.callback_update(CHAT, "apply", message_id=7))
    await process_pending(bot, dp)
    [inbound] = engine.seen
    assert (inbound.address, inbound.choice, inbound.text) == (str(CHAT), "apply", "")
    assert len(fake_tg.callback_answers) == 1
    # The pressed menu loses its buttons, so it cannot be pressed twice.
    assert [int(e["message_id"]) for e in fake_tg.edits if e["method"] == "editMessageReplyMarkup"] == [7]
    [sent] = sent_to(fake_tg, CHAT)
    assert sent["text"] == "收到：apply"


async def test_a_choice_value_too_long_for_callback_data_still_comes_back(
        fake_tg: FakeTelegram, bot: Bot, channel_settings: Any) -> None:
    """Values over Telegram's 64 bytes go as the button's position and return as its label."""
    long_value = "申请" * 20  # 120 bytes in UTF-8
    engine = ScriptedEngine(lambda i: [Reply("请选择", choices=(Choice("短", "short"), Choice("长的选项", long_value)))])
    dp = telegram.create_dispatcher(engine, channel_settings)
    fake_tg.push_update(fake_tg.text_update(CHAT, "菜单"))
    offset = await process_pending(bot, dp)
    [sent] = sent_to(fake_tg, CHAT)
    [[first], [second]] = buttons(sent)
    assert first == ("短", "short")
    assert len(second[1].encode()) <= 64
    # The person presses the second button of that very message.
    press = fake_tg.callback_update(CHAT, second[1], message_id=1)
    press["callback_query"]["message"]["reply_markup"] = sent["reply_markup"]
    fake_tg.push_update(press)
    await process_pending(bot, dp, offset)
    assert engine.seen[-1].choice is None and engine.seen[-1].text == "长的选项"


@pytest.mark.parametrize(("command", "word"), [
    ("/start", "菜单"), ("/menu", "菜单"), ("/help", "帮助"), ("/lang", "语言"), ("/stop", "退订"),
    ("/start@nuanxin_test_bot", "菜单"),
])
async def test_commands_reach_the_engine_as_its_global_words(
        fake_tg: FakeTelegram, bot: Bot, channel_settings: Any, command: str, word: str) -> None:
    """A command does what the same word typed does: the engine sees the word."""
    engine = ScriptedEngine()
    dp = telegram.create_dispatcher(engine, channel_settings)
    fake_tg.push_update(fake_tg.text_update(CHAT, command))
    await process_pending(bot, dp)
    assert [i.text for i in engine.seen] == [word]


async def test_photo_is_downloaded_under_uploads_chat_and_handed_over_with_its_path(
        fake_tg: FakeTelegram, bot: Bot, channel_settings: Any) -> None:
    """The largest photo size is fetched with getFile into <data_dir>/uploads/<chat>/."""
    engine = ScriptedEngine()
    dp = telegram.create_dispatcher(engine, channel_settings)
    file_id = fake_tg.add_file(b"\xff\xd8\xff\xe0JPEGDATA", "photos/file_1.jpg")
    fake_tg.push_update(photo_update(fake_tg, CHAT, file_id, caption="退役证"))
    await process_pending(bot, dp)
    [inbound] = engine.seen
    assert inbound.text == "退役证"
    [att] = inbound.attachments
    assert (att.kind, att.file_id, att.mime_type) == ("photo", file_id, "image/jpeg")
    path = Path(att.local_path)
    assert path.parent == Path(channel_settings.data_dir) / "uploads" / str(CHAT)
    assert path.read_bytes() == b"\xff\xd8\xff\xe0JPEGDATA"


async def test_document_keeps_a_safe_version_of_its_name(
        fake_tg: FakeTelegram, bot: Bot, channel_settings: Any) -> None:
    """A document's name cannot climb out of the upload folder."""
    engine = ScriptedEngine()
    dp = telegram.create_dispatcher(engine, channel_settings)
    file_id = fake_tg.add_file(b"%PDF-1.4 proof", "documents/file_2.pdf")
    fake_tg.push_update(document_update(fake_tg, CHAT, file_id, "../../etc/安置证明.pdf", "application/pdf"))
    await process_pending(bot, dp)
    [att] = engine.seen[0].attachments
    assert att.kind == "document" and att.file_name == "../../etc/安置证明.pdf"
    path = Path(att.local_path)
    assert path.parent == Path(channel_settings.data_dir) / "uploads" / str(CHAT)
    assert path.name.endswith("安置证明.pdf")
    assert path.read_bytes() == b"%PDF-1.4 proof"


async def test_a_file_that_cannot_be_fetched_still_reaches_the_engine_without_a_path(
        fake_tg: FakeTelegram, bot: Bot, channel_settings: Any) -> None:
    """getFile failing does not drop the message: the attachment arrives without local_path."""
    engine = ScriptedEngine()
    dp = telegram.create_dispatcher(engine, channel_settings)
    fake_tg.push_update(photo_update(fake_tg, CHAT, "NO-SUCH-FILE"))
    await process_pending(bot, dp)
    [att] = engine.seen[0].attachments
    assert att.kind == "photo" and att.local_path == ""


async def test_an_engine_failure_gets_a_polite_apology_not_silence(
        fake_tg: FakeTelegram, bot: Bot, channel_settings: Any) -> None:
    """If the engine raises, the person is told to try again."""
    dp = telegram.create_dispatcher(ScriptedEngine(fail=True), channel_settings)
    fake_tg.push_update(fake_tg.text_update(CHAT, "你好"))
    await process_pending(bot, dp)
    [sent] = sent_to(fake_tg, CHAT)
    assert "稍后再试" in sent["text"]


async def test_very_long_text_is_sent_in_pieces_with_the_buttons_on_the_last(
        fake_tg: FakeTelegram, bot: Bot, channel_settings: Any) -> None:
    """Telegram takes 4096 characters per message; longer replies split at line ends."""
    text = "\n".join(f"第{i:03d}行：材料清单说明。" for i in range(600))
    engine = ScriptedEngine(lambda i: [Reply(text, choices=(Choice("好", "ok"),))])
    dp = telegram.create_dispatcher(engine, channel_settings)
    fake_tg.push_update(fake_tg.text_update(CHAT, "清单"))
    await process_pending(bot, dp)
    sent = sent_to(fake_tg, CHAT)
    assert len(sent) > 1 and all(len(s["text"]) <= 4096 for s in sent)
    assert "\n".join(s["text"] for s in sent) == text
    assert [bool(s.get("reply_markup")) for s in sent] == [False] * (len(sent) - 1) + [True]


async def test_run_polling_sets_commands_in_zh_and_en_and_handles_queued_updates_in_order(
        fake_tg: FakeTelegram, bot: Bot, channel_settings: Any) -> None:
    """The real polling loop: commands set, webhook removed, each chat answered in arrival order."""
    engine = ScriptedEngine(lambda i: [Reply(f"回：{i.text}")])
    dp = telegram.create_dispatcher(engine, channel_settings)
    for text in ("一", "二", "三"):
        fake_tg.push_update(fake_tg.text_update(CHAT, text))
    fake_tg.push_update(fake_tg.text_update(CHAT + 1, "别人"))
    task = asyncio.create_task(telegram.run_polling(bot, engine, dp=dp, polling_timeout=1))
    try:
        await wait_until(lambda: len(fake_tg.sent) >= 4)
    finally:
        await dp.stop_polling()
        await task
    assert [s["text"] for s in sent_to(fake_tg, CHAT)] == ["回：一", "回：二", "回：三"]
    assert [s["text"] for s in sent_to(fake_tg, CHAT + 1)] == ["回：别人"]
    calls = [r for r in fake_tg.requests if r.method == "setMyCommands"]
    by_lang = {c.params.get("language_code") or "": [x["command"] for x in c.params["commands"]] for c in calls}
    assert set(by_lang) == {"", "zh", "en"}
    assert by_lang["en"] == ["menu", "help", "lang", "stop"]
    zh = next(c for c in calls if c.params.get("language_code") == "zh")
    assert zh.params["commands"][0]["description"] == "主菜单"
    assert any(r.method == "deleteWebhook" for r in fake_tg.requests)


async def test_set_webhook_registers_the_public_url_with_the_secret(
        fake_tg: FakeTelegram, bot: Bot, channel_settings: Any) -> None:
    """setWebhook gets <public_base_url>/webhooks/telegram and the secret token."""
    dp = telegram.create_dispatcher(ScriptedEngine(), channel_settings)
    url = await telegram.set_webhook(bot, channel_settings, dp)
    assert url == "https://nuanxin.example.org/webhooks/telegram"
    assert fake_tg.webhook_url == url
    [call] = [r for r in fake_tg.requests if r.method == "setWebhook"]
    assert call.params["secret_token"] == channel_settings.telegram_webhook_secret
    # Edited messages are answered too (they used to get no reply at all).
    assert sorted(call.params["allowed_updates"]) == ["callback_query", "edited_message", "message"]


# --- webhook mode ------------------------------------------------------------------------
async def _webhook_client(channel_settings: Any, bot: Bot, engine: Any) -> Any:
    dp = telegram.create_dispatcher(engine, channel_settings)
    app = make_app({"settings": channel_settings, "telegram_bot": bot, "telegram_dispatcher": dp,
                    "bot_engine": engine})
    return await asgi_client(app)


async def test_webhook_update_with_the_secret_is_handled(
        fake_tg: FakeTelegram, bot: Bot, channel_settings: Any) -> None:
    """A POSTed update with the right secret header goes through the dispatcher; reply sent."""
    engine = ScriptedEngine()
    client = await _webhook_client(channel_settings, bot, engine)
    update = {"update_id": 9001, **fake_tg.text_update(CHAT, "你好")}
    response = await client.post("/webhooks/telegram", json=update,
                                 headers={"X-Telegram-Bot-Api-Secret-Token": channel_settings.telegram_webhook_secret})
    assert response.status_code == 200
    assert [i.text for i in engine.seen] == ["你好"]
    assert [s["text"] for s in sent_to(fake_tg, CHAT)] == ["收到：你好"]


@pytest.mark.parametrize("secret", [None, "", "wrong", "s3cret-Token_"])
async def test_webhook_without_the_right_secret_is_refused_and_nothing_processed(
        fake_tg: FakeTelegram, bot: Bot, channel_settings: Any, secret: str | None) -> None:
    """Missing or wrong X-Telegram-Bot-Api-Secret-Token → 403; the engine never sees it."""
    engine = ScriptedEngine()
    client = await _webhook_client(channel_settings, bot, engine)
    headers = {} if secret is None else {"X-Telegram-Bot-Api-Secret-Token": secret}
    update = {"update_id": 9002, **fake_tg.text_update(CHAT, "你好")}
    response = await client.post("/webhooks/telegram", json=update, headers=headers)
    assert response.status_code == 403
    assert engine.seen == []
    assert sent_to(fake_tg, CHAT) == []


async def test_webhook_refuses_everything_when_no_secret_is_configured(
        fake_tg: FakeTelegram, bot: Bot, channel_settings: Any) -> None:
    """No configured secret never means an open webhook."""
    engine = ScriptedEngine()
    client = await _webhook_client(channel_settings.model_copy(update={"telegram_webhook_secret": ""}), bot, engine)
    update = {"update_id": 9003, **fake_tg.text_update(CHAT, "你好")}
    response = await client.post("/webhooks/telegram", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": ""})
    assert response.status_code == 403
    assert engine.seen == []


async def test_webhook_with_a_body_that_is_not_an_update_is_a_400(
        fake_tg: FakeTelegram, bot: Bot, channel_settings: Any) -> None:
    """Garbage with the right secret is refused clearly, not crashed on."""
    engine = ScriptedEngine()
    client = await _webhook_client(channel_settings, bot, engine)
    response = await client.post("/webhooks/telegram", content=b"{not json",
                                 headers={"X-Telegram-Bot-Api-Secret-Token": channel_settings.telegram_webhook_secret})
    assert response.status_code == 400
    assert engine.seen == []


# --- end to end with the real engine -------------------------------------------------------------
@pytest.fixture
def notifier() -> Any:
    from .e2e import CodeNotifier

    return CodeNotifier()


@pytest.fixture
def real_engine(db_engine: Any, channel_settings: Any, clock: Any, notifier: Any) -> Any:
    from bot.engine import Engine

    return Engine(db_engine, channel_settings, clock, notifier=notifier)


@pytest.fixture
def roll(db_engine: Any, channel_settings: Any) -> Any:
    from .e2e import seed_roll

    return seed_roll(db_engine, channel_settings)


@pytest.mark.parametrize("flow", ["veteran_insurance", "veteran_insurance_excluded", "mutual_aid_claim", "hardship",
                                  "hospital_stay", "death_report_by_family", "certification", "my_applications",
                                  "survey"])
async def test_every_flow_completes_on_telegram_with_buttons(
        fake_tg: FakeTelegram, bot: Bot, db_engine: Any, channel_settings: Any, real_engine: Any, roll: Any,
        notifier: Any, flow: str) -> None:
    """Each service start to finish on Telegram: link by code, press buttons, send photos of documents."""
    from . import e2e

    dp = telegram.create_dispatcher(real_engine, channel_settings)
    driver = e2e.TelegramDriver(fake_tg, bot, dp, chat_id=5550000 + len(flow))
    await e2e.FLOWS[flow](driver, db_engine, roll, notifier)
    # Every button press was answered, so no spinner was left turning.
    assert driver.presses >= 1
    assert len(fake_tg.callback_answers) == driver.presses


async def test_start_command_shows_the_engine_menu_as_buttons(
        fake_tg: FakeTelegram, bot: Bot, db_engine: Any, channel_settings: Any, real_engine: Any) -> None:
    """/start gives the real menu with one big button per service, and the messages are logged."""
    from sqlmodel import Session, select

    from models.conversations import MessageLog

    dp = telegram.create_dispatcher(real_engine, channel_settings)
    fake_tg.push_update(fake_tg.text_update(CHAT, "/start"))
    await process_pending(bot, dp)
    [sent] = sent_to(fake_tg, CHAT)
    rows = buttons(sent)
    assert all(len(row) == 1 for row in rows)
    # Callback data carries the prompt's token before the value (~token~value).
    decoded = [(label, data.rsplit("~", 1)[-1]) for row in rows for label, data in row]
    assert decoded[0] == ("退役士兵社保接续", "1")
    assert ("绑定身份（办事前先做）", "9") in decoded
    with Session(db_engine) as s:
        logged = s.exec(select(MessageLog).where(MessageLog.channel == "telegram")).all()
    assert [r.direction for r in logged] == ["in", "out"]


def test_every_command_maps_to_a_word_the_engine_knows() -> None:
    """The command table and the engine's global words cannot drift apart unnoticed."""
    from bot import engine

    known = {
        "菜单": engine.MENU_WORDS, "帮助": engine.HELP_WORDS, "语言": engine.LANG_PICK_WORDS,
        "退订": engine.STOP_WORDS,
    }
    for command, word in telegram.COMMAND_WORDS.items():
        assert word in known, command
        assert word in known[word], (command, word)


async def test_stop_command_records_the_opt_out(
        fake_tg: FakeTelegram, bot: Bot, db_engine: Any, channel_settings: Any, real_engine: Any) -> None:
    """/stop reaches the engine as 退订 and the contact is opted out."""
    from sqlmodel import Session, select

    from models.people import Contact

    dp = telegram.create_dispatcher(real_engine, channel_settings)
    fake_tg.push_update(fake_tg.text_update(CHAT, "/stop"))
    await process_pending(bot, dp)
    with Session(db_engine) as s:
        contact = s.exec(select(Contact).where(Contact.channel == "telegram", Contact.address == str(CHAT))).one()
    assert contact.opted_out_at is not None
    assert sent_to(fake_tg, CHAT)


async def test_webhook_with_the_wrong_secret_leaves_no_message_log_row(
        fake_tg: FakeTelegram, bot: Bot, db_engine: Any, channel_settings: Any, real_engine: Any) -> None:
    """Refused webhook updates store nothing; the same update with the secret is logged."""
    from sqlmodel import Session, select

    from models.conversations import MessageLog

    client = await _webhook_client(channel_settings, bot, real_engine)
    update = {"update_id": 777, **fake_tg.text_update(CHAT, "你好")}
    response = await client.post("/webhooks/telegram", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "x"})
    assert response.status_code == 403
    with Session(db_engine) as s:
        assert s.exec(select(MessageLog)).all() == []
    response = await client.post("/webhooks/telegram", json=update,
                                 headers={"X-Telegram-Bot-Api-Secret-Token": channel_settings.telegram_webhook_secret})
    assert response.status_code == 200
    with Session(db_engine) as s:
        assert len(s.exec(select(MessageLog)).all()) == 2


async def test_dispatcher_started_directly_also_sets_commands_and_drops_the_webhook(
        fake_tg: FakeTelegram, bot: Bot, channel_settings: Any) -> None:
    """`dp.start_polling` (as the one-process service calls it) does what run_polling does on start."""
    engine = ScriptedEngine(lambda i: [Reply("好")])
    engine.settings = channel_settings  # type: ignore[attr-defined]  # data_dir from the engine
    dp = telegram.create_dispatcher(engine)
    fake_tg.webhook_url = "https://old.example/webhooks/telegram"
    fake_tg.push_update(fake_tg.text_update(CHAT, "你好"))
    task = asyncio.create_task(dp.start_polling(bot, handle_signals=False, close_bot_session=False, polling_timeout=1))
    try:
        await wait_until(lambda: len(fake_tg.sent) >= 1)
    finally:
        await dp.stop_polling()
        await task
    assert fake_tg.webhook_url == ""
    assert {r.params.get("language_code") or "" for r in fake_tg.requests if r.method == "setMyCommands"} == {
        "", "zh", "en"}


async def test_group_chats_are_ignored(fake_tg: FakeTelegram, bot: Bot, channel_settings: Any) -> None:
    """The bot serves people one to one: a message or command in a group reaches nobody."""
    engine = ScriptedEngine()
    dp = telegram.create_dispatcher(engine, channel_settings)
    for text in ("你好", "/start"):
        update = fake_tg.text_update(-100123, text)
        update["message"]["chat"] = {"id": -100123, "type": "group", "title": "老战友群"}
        fake_tg.push_update(update)
    await process_pending(bot, dp)
    assert engine.seen == []
    assert sent_to(fake_tg, -100123) == []
