"""Every scripted conversation in journeys.py, as a test: it must reach its end (every button the
person pressed was on screen, every number they typed was asked for) and every outcome it checks
(the record made, what the person was told, what they were never sent, the tickets opened) must hold.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import run
from .journeys import JOURNEYS
from .roll import seed


def test_there_are_journeys_for_every_persona_and_both_channels() -> None:
    """At least 40 conversations, on SMS and on Telegram both."""
    assert len(JOURNEYS) >= 40
    assert any(name.startswith("sms_") for name in JOURNEYS) and any(name.startswith("tg_") for name in JOURNEYS)


@pytest.mark.parametrize("name", sorted(JOURNEYS))
async def test_the_journey_ends_as_it_must(name: str, tmp_path: Path) -> None:
    """The journey's docstring says what must hold; its own checks say where it did not."""
    outcome = await run(name, JOURNEYS[name], tmp_path, seed)
    assert outcome.completed, outcome.error
    assert outcome.failures == [], outcome.failures
