"""The conversation's state is typed and stored as JSON; a stored state that no longer fits never fails a message."""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import Session, select

from bot.state import ConversationState
from models.conversations import Conversation
from models.db import session_scope
from tests.bot.conftest import ZHANG_PHONE, Chat, link


def test_state_survives_the_round_trip_through_its_json_column() -> None:
    """What is saved is what is loaded: answers, the saved flows, the pending confirmation."""
    state = ConversationState(flow="hardship", step="situation", history=["kind"], values={"kind": "living"})
    state.park()
    state.language_chosen = True
    again = ConversationState.from_row(None, None, state.to_data(), [])
    assert again.saved["hardship"].values == {"kind": "living"} and again.saved["hardship"].step == "situation"
    assert again.language_chosen and again.flow is None


def test_a_stored_state_that_does_not_validate_starts_the_person_at_the_menu(engine, notifier, roll,
                                                                              db_engine) -> None:
    """A row written by an older version (unknown keys, wrong types) is answered with the menu, not an error."""
    chat = Chat(engine, "telegram", "old1")
    link(chat, notifier, ZHANG_PHONE)
    with session_scope(db_engine) as s:
        s.execute(update(Conversation).where(Conversation.address == "old1")
                  .values(data={"v": {"x": 1}, "doc_i": "three", "tmp": []}, flow="hardship", step="situation"))
    text = chat("3")
    assert "哪方面的困难" in text and "没有丢" not in text
    with Session(db_engine) as s:
        row = s.exec(select(Conversation).where(Conversation.address == "old1")).one()
    assert row.flow == "hardship" and "doc_i" not in row.data
