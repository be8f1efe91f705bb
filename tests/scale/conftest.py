"""Fixtures for the scale tests: the channel tests' fake Bot API and settings pointing at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.channels.conftest import channel_settings, fake_tg  # noqa: F401  (fixtures shared)


@pytest.fixture
async def bot(channel_settings: Any) -> AsyncIterator[Any]:  # noqa: F811
    from bot.channels import telegram

    b = telegram.create_bot(channel_settings)
    yield b
    await b.session.close()
