"""Telegram media reach the engine named for what they are; voice notes are kept for staff to hear."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot

from bot.channels import telegram
from tests.fakes.fake_telegram import FakeTelegram

from .support import ScriptedEngine
from .test_telegram import CHAT, process_pending, sent_to


@pytest.fixture
async def bot(channel_settings: Any) -> Any:
    b = telegram.create_bot(channel_settings)
    yield b
    await b.session.close()


def update_with(tg: FakeTelegram, **fields: Any) -> dict[str, Any]:
    update = tg.text_update(CHAT, "x")
    del update["message"]["text"]
    update["message"].update(fields)
    return update


async def test_a_voice_note_is_downloaded_for_staff_to_hear(fake_tg: FakeTelegram, bot: Bot,
                                                            channel_settings: Any) -> None:
    """The voice file is fetched into the chat's upload folder and handed over as kind "voice"."""
    engine = ScriptedEngine()
    dp = telegram.create_dispatcher(engine, channel_settings)
    file_id = fake_tg.add_file(b"OggS-voice-bytes", "voice/file_3.oga")
    fake_tg.push_update(update_with(fake_tg, voice={"file_id": file_id, "file_unique_id": "AgADvoice", "duration": 9,
                                                    "mime_type": "audio/ogg", "file_size": 16}))
    await process_pending(bot, dp)
    [att] = engine.seen[0].attachments
    assert att.kind == "voice" and att.mime_type == "audio/ogg"
    assert Path(att.local_path).read_bytes() == b"OggS-voice-bytes"
    assert Path(att.local_path).parent == Path(channel_settings.data_dir) / "uploads" / str(CHAT)


async def test_a_contact_card_keeps_only_the_masked_number(fake_tg: FakeTelegram, bot: Bot,
                                                           channel_settings: Any) -> None:
    """A shared contact is named as such; its number reaches the engine masked."""
    engine = ScriptedEngine()
    dp = telegram.create_dispatcher(engine, channel_settings)
    fake_tg.push_update(update_with(fake_tg, contact={"phone_number": "+8613812340001", "first_name": "张"}))
    fake_tg.push_update(update_with(fake_tg, sticker={"file_id": "S1", "file_unique_id": "s1", "type": "regular",
                                                      "width": 512, "height": 512, "is_animated": False,
                                                      "is_video": False}))
    fake_tg.push_update(update_with(fake_tg, location={"latitude": 22.58, "longitude": 113.08}))
    await process_pending(bot, dp)
    kinds = [i.attachments[0].kind for i in engine.seen]
    assert kinds == ["contact", "sticker", "location"]
    assert "13812340001" not in engine.seen[0].attachments[0].file_name
    assert len(sent_to(fake_tg, CHAT)) == 3  # each answered


async def test_an_edited_message_reaches_the_engine_as_an_edit_and_is_answered(fake_tg: FakeTelegram, bot: Bot,
                                                                               channel_settings: Any) -> None:
    """Telegram's edited_message update is handed over with `edited` set, and the reply is sent."""
    engine = ScriptedEngine()
    dp = telegram.create_dispatcher(engine, channel_settings)
    update = fake_tg.text_update(CHAT, "改过的字")
    message = update.pop("message")
    message["edit_date"] = message["date"]
    update["edited_message"] = message
    fake_tg.push_update(update)
    await process_pending(bot, dp)
    [inbound] = engine.seen
    assert inbound.edited and inbound.text == "改过的字"
    assert sent_to(fake_tg, CHAT)
