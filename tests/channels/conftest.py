"""Fixtures for the channel adapters: the fake Bot API on loopback, settings pointing at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.fakes.fake_telegram import FakeTelegram

from .support import AUTH_TOKEN, PUBLIC, TOKEN


@pytest.fixture
async def fake_tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as tg:
        yield tg


@pytest.fixture
def channel_settings(settings: Any, fake_tg: FakeTelegram) -> Any:
    """Settings pointing the bot at the fake Bot API, with webhook and Twilio secrets."""
    return settings.model_copy(update={
        "telegram_bot_token": TOKEN,
        "telegram_api_base": fake_tg.base_url,
        "telegram_webhook_secret": "s3cret-Token_1",
        "twilio_account_sid": "AC" + "0" * 32,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_from_number": "+8610655000",
        "public_base_url": PUBLIC,
    })
