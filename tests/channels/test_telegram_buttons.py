"""Keyboards on Telegram: each carries its prompt's token, and an older one is taken away or refused."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram import Bot

from bot.channels import telegram
from tests.fakes.fake_telegram import FakeTelegram

from .e2e import CodeNotifier, TelegramDriver, seed_roll

CHAT = 626262


@pytest.fixture
async def bot(channel_settings: Any) -> Any:
    b = telegram.create_bot(channel_settings)
    yield b
    await b.session.close()


@pytest.fixture
def driver(fake_tg: FakeTelegram, bot: Bot, db_engine: Any, channel_settings: Any, clock: Any) -> TelegramDriver:
    from bot.engine import Engine

    seed_roll(db_engine, channel_settings)
    engine = Engine(db_engine, channel_settings, clock, notifier=CodeNotifier())
    return TelegramDriver(fake_tg, bot, telegram.create_dispatcher(engine, channel_settings), chat_id=CHAT)


def removed(fake_tg: FakeTelegram) -> list[int]:
    return [int(e["message_id"]) for e in fake_tg.edits
            if e["method"] == "editMessageReplyMarkup" and not e.get("reply_markup")]


async def test_each_button_carries_the_token_of_its_prompt(driver: TelegramDriver) -> None:
    """Callback data is ~token~value: the menu's "1" and a later "1" are told apart."""
    await driver.say("/start")
    [menu] = driver.last_messages
    data = [b["callback_data"] for row in menu["reply_markup"]["inline_keyboard"] for b in row]
    assert all(d.startswith("~") and d.count("~") >= 2 for d in data)
    assert len({d.split("~")[1] for d in data}) == 1


async def test_when_the_conversation_moves_on_the_previous_keyboard_is_taken_away(
        driver: TelegramDriver, fake_tg: FakeTelegram) -> None:
    """Typing instead of pressing: the menu's keyboard is removed when the next question is sent."""
    await driver.say("/start")
    [menu] = driver.last_messages
    await driver.say("我本人")  # not a menu item: the menu is asked again, the old keyboard removed
    assert menu["message_id"] in removed(fake_tg)


async def test_a_press_on_a_keyboard_already_replaced_is_refused_kindly(
        driver: TelegramDriver, fake_tg: FakeTelegram) -> None:
    """A quick second tap on the menu after it moved on is not taken as an answer to the new question."""
    await driver.say("/start")
    [menu] = driver.last_messages
    await driver.pick("绑定身份（办事前先做）")
    assert "请问是谁要办事" in driver.last
    # The same menu message pressed again (as a slow phone would send it): "1" must not mean "myself".
    button = menu["reply_markup"]["inline_keyboard"][0][0]
    press = fake_tg.callback_update(CHAT, button["callback_data"], message_id=menu["message_id"])
    press["callback_query"]["message"]["reply_markup"] = menu["reply_markup"]
    text = await driver._run(press)
    assert "前面一条消息的按钮" in text and "请问是谁要办事" in text
    assert len(fake_tg.callback_answers) == 2  # both presses answered: no spinner left


async def test_a_keyboard_from_before_tokens_is_not_taken_as_an_answer(
        driver: TelegramDriver, fake_tg: FakeTelegram) -> None:
    """Bare callback data (a keyboard sent by an older version) is refused the same way."""
    await driver.say("/start")
    await driver.pick("绑定身份（办事前先做）")
    press = fake_tg.callback_update(CHAT, "1", message_id=1)
    text = await driver._run(press)
    assert "前面一条消息的按钮" in text
