"""After a completed service the person is invited to rate it, and a bare number is a score."""

from __future__ import annotations

from sqlmodel import Session, select

from bot.channels.base import Inbound
from models.actions import advance_application
from models.applications import Application, SurveyAnswer
from models.db import session_scope
from models.outbox import OutboxMessage
from tests.bot.conftest import ZHANG_PHONE


def _complete(db_engine, roll, clock) -> int:  # type: ignore[no-untyped-def]
    with session_scope(db_engine) as s:
        app = Application(reference="NX-2026-000321", type="hardship", beneficiary_id=roll.zhang, stage="accepted")
        s.add(app)
        s.flush()
        advance_application(s, app, "completed", actor="wang", now=clock.now())
        assert app.id is not None
        return app.id


def test_completing_an_application_invites_a_rating_and_five_means_five(engine, roll, db_engine, clock):
    """The invitation says "reply 1 to 5": replying "5" records a score of 5 for that application,
    not menu item 5."""
    app_id = _complete(db_engine, roll, clock)
    with Session(db_engine) as s:
        kinds = [m.kind for m in s.exec(select(OutboxMessage).where(OutboxMessage.address == ZHANG_PHONE)).all()]
    assert "stage_completed" in kinds and "survey_invitation" in kinds
    say = lambda text: " ".join(r.text for r in engine.handle(Inbound(channel="sms", address=ZHANG_PHONE, text=text)))  # noqa: E731
    assert "还有什么想说" in say("5")  # the score is taken; the optional comment is asked next
    say("服务很好")
    say("1")
    with Session(db_engine) as s:
        answer = s.exec(select(SurveyAnswer)).one()
    assert (answer.application_id, answer.score, answer.comment) == (app_id, 5, "服务很好")


def test_a_person_in_another_flow_is_not_pulled_out_of_it(engine, roll, db_engine, clock):
    """Someone halfway through a hospital-stay report keeps their place; the invitation still goes."""
    engine.handle(Inbound(channel="sms", address=ZHANG_PHONE, text="4"))
    with Session(db_engine) as s:
        from models.conversations import Conversation

        before = s.exec(select(Conversation).where(Conversation.address == ZHANG_PHONE)).one()
    _complete(db_engine, roll, clock)
    with Session(db_engine) as s:
        after = s.exec(select(Conversation).where(Conversation.address == ZHANG_PHONE)).one()
        assert s.exec(select(OutboxMessage).where(OutboxMessage.kind == "survey_invitation")).one()
    assert (after.flow, after.step) == (before.flow, before.step) and after.flow != "survey"
