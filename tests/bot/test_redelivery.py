"""A message the provider delivers twice is answered once."""

from __future__ import annotations

from sqlmodel import Session, func, select

from bot.channels.base import Inbound
from models.conversations import MessageLog


def test_the_same_provider_message_twice_is_answered_once(engine, db_engine):
    """Telegram re-sends an update when a webhook answered slowly; Twilio may retry a webhook.
    The second delivery gets no reply and changes no state."""
    first = engine.handle(Inbound(channel="telegram", address="9001", text="4", provider_message_id="77"))
    again = engine.handle(Inbound(channel="telegram", address="9001", text="4", provider_message_id="77"))
    other_chat = engine.handle(Inbound(channel="telegram", address="9002", text="4", provider_message_id="77"))
    assert first and other_chat
    assert again == []
    with Session(db_engine) as s:
        inbound = s.exec(select(func.count()).select_from(MessageLog).where(MessageLog.address == "9001",
                                                                            MessageLog.direction == "in")).one()
    assert inbound == 1


def test_messages_without_a_provider_id_are_never_taken_for_repeats(engine):
    """The console has no provider ids: the same text twice is two messages."""
    assert engine.handle(Inbound(channel="console", address="c1", text="帮助"))
    assert engine.handle(Inbound(channel="console", address="c1", text="帮助"))
