"""The console's outbox view: search, a message's history, retry a failed one, cancel a queued one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from models.clock import FakeClock
from models.db import session_scope, write_scope
from models.outbox import OutboxEvent, OutboxMessage, OutboxStatus
from models.staff import AuditLog
from outreach import outbox, outbox_view
from tests.scheduler.factories import person


def _queue(s, clock: FakeClock, key: str, *, kind: str, channel: str, address: str, beneficiary_id: int | None = None,  # type: ignore[no-untyped-def]
           broadcast_id: int | None = None) -> int:
    return outbox.enqueue(s, key=key, kind=kind, channel=channel, address=address, body="您好", now=clock.now(),
                          beneficiary_id=beneficiary_id, broadcast_id=broadcast_id).message_id


@pytest.fixture
def messages(db_engine: Engine, clock: FakeClock) -> dict[str, int]:
    """张建国: a reminder by SMS (failed) and a greeting on Telegram (queued); 王秀英: a reminder (sent)."""
    with session_scope(db_engine) as s:
        zhang = person(s, name="张建国").id
        wang = person(s, name="王秀英").id
        ids = {"failed": _queue(s, clock, "a", kind="cert_reminder_30", channel="sms", address="+8613812345678",
                                beneficiary_id=zhang),
               "queued": _queue(s, clock, "b", kind="festival_greeting", channel="telegram", address="100200",
                                beneficiary_id=zhang),
               "sent": _queue(s, clock, "c", kind="cert_reminder_7", channel="sms", address="+8613900001111",
                              beneficiary_id=wang)}
    with write_scope(db_engine) as s:
        outbox.move(s, [outbox.Move(ids["failed"], OutboxStatus.SENDING, "claimed by test"),
                        outbox.Move(ids["sent"], OutboxStatus.SENDING, "claimed by test")], clock.now())
        outbox.move(s, [outbox.Move(ids["failed"], OutboxStatus.FAILED, "permanent: Rejected 21211",
                                    {"error_code": "21211", "error": "invalid To"}),
                        outbox.Move(ids["sent"], OutboxStatus.SENT, "sent via twilio SM123",
                                    {"provider_message_id": "SM123"})], clock.now())
    return ids


def test_messages_are_found_by_person_kind_status_and_phone_digits(db_engine: Engine,
                                                                     messages: dict[str, int]) -> None:
    """A name finds that person's messages; a kind finds its numbered variants; a status and
    the last digits of a phone narrow it; addresses come back masked."""
    with session_scope(db_engine) as s:
        def ids(**kw):  # type: ignore[no-untyped-def]
            rows, total = outbox_view.search(s, outbox_view.OutboxQuery(**kw))
            assert total == len(rows)
            return sorted(r.id for r in rows)

        assert ids(person="张建国") == sorted([messages["failed"], messages["queued"]])
        assert ids(kind="cert_reminder") == sorted([messages["failed"], messages["sent"]])
        assert ids(kind="cert_reminder", status="failed") == [messages["failed"]]
        assert ids(person="1111") == [messages["sent"]]
        assert ids(channel="telegram") == [messages["queued"]]
        rows, _ = outbox_view.search(s, outbox_view.OutboxQuery(person="张建国", channel="sms"))
        assert rows[0].address == "+86138****5678" and rows[0].person == "张建国"
        assert outbox_view.counts_by_status(s, outbox_view.OutboxQuery(person="张建国")) == {"failed": 1, "queued": 1}


def test_a_messages_history_holds_every_change_and_the_providers_answer(db_engine: Engine,
                                                                          messages: dict[str, int]) -> None:
    with session_scope(db_engine) as s:
        h = outbox_view.history(s, messages["failed"])
        assert h is not None
        assert [(e.from_status, e.to_status) for e in h.events] == [(None, "queued"), ("queued", "sending"),
                                                                     ("sending", "failed")]
        assert "21211" in h.events[-1].reason and h.message.error == "invalid To"
        assert outbox_view.history(s, 10_000) is None


def test_only_a_failed_message_is_retried_and_only_a_queued_one_cancelled(
        db_engine: Engine, messages: dict[str, int], clock: FakeClock) -> None:
    """Retry: failed → queued, due now, a fresh deadline and attempts; cancel: queued →
    cancelled. The wrong state is refused and changes nothing. Each change is recorded and
    audited with the staff member."""
    clock.advance(timedelta(hours=30))
    with write_scope(db_engine) as s:
        outbox_view.retry(s, messages["failed"], actor="li", now=clock.now())
        outbox_view.cancel(s, messages["queued"], actor="li", now=clock.now())
        with pytest.raises(outbox_view.OutboxActionRefused, match="sent"):
            outbox_view.retry(s, messages["sent"], actor="li", now=clock.now())
        with pytest.raises(outbox_view.OutboxActionRefused, match="sent"):
            outbox_view.cancel(s, messages["sent"], actor="li", now=clock.now())
    with session_scope(db_engine) as s:
        retried = s.get(OutboxMessage, messages["failed"])
        assert (retried.status, retried.attempts, retried.next_attempt_at) == ("queued", 0, clock.now())
        assert retried.deadline_at == clock.now() + outbox.DEFAULT_DEADLINE
        assert s.get(OutboxMessage, messages["queued"]).status == "cancelled"
        assert s.get(OutboxMessage, messages["sent"]).status == "sent"
        last = s.execute(select(OutboxEvent).where(OutboxEvent.outbox_id == messages["failed"])
                         .order_by(OutboxEvent.id.desc())).scalars().first()  # type: ignore[union-attr]
        assert (last.from_status, last.to_status, last.reason) == ("failed", "queued", "requeued by li")
        audited = [(a.actor, a.action, a.target_id) for a in s.execute(
            select(AuditLog).where(AuditLog.target_type == "outbox_message").order_by(AuditLog.id)).scalars()]
    assert audited == [("li", "outbox.retry", str(messages["failed"])), ("li", "outbox.cancel_one",
                                                                         str(messages["queued"]))]
