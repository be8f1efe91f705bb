"""From events to the outbox (outreach/notices.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import logging
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from models.actions import advance_application, opt_out, record_death
from models.applications import Application
from models.db import session_scope, write_scope
from models.outbox import OutboxMessage
from models.people import Beneficiary, Contact, FamilyMember
from outreach.notices import (
    Recipient,
    broadcast_rows,
    choose_contact,
    enqueue_notice,
    salutation_for,
    send_direct,
    send_one_time_code,
)
from outreach.outbox import enqueue_many
from outreach.templates import TemplateSet, compile_staff_text

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def ts() -> TemplateSet:
    return TemplateSet(office_name="白沙退役军人服务站", office_phone="0750-1234567")


def person(session: Session, *, name: str = "张建国", sex: str = "M", born: date = date(1944, 5, 1),
           language: str = "zh-Hans", veteran: bool = True) -> Beneficiary:
    n = next(_ids)
    b = Beneficiary(name=name, id_hash=f"hash-{n}", id_masked="4407**********0000", sex=sex, birth_date=born,
                    language=language, is_veteran=veteran, district="蓬江区", community="白沙社区")
    session.add(b)
    session.flush()
    return b


def contact(session: Session, b: Beneficiary, channel: str, address: str, *, verified: bool = True,
            family: FamilyMember | None = None, last_inbound_at: datetime | None = None) -> Contact:
    c = Contact(beneficiary_id=b.id, channel=channel, address=address, verified=verified,
                family_member_id=family.id if family else None, last_inbound_at=last_inbound_at)
    session.add(c)
    session.flush()
    return c


def relative(session: Session, b: Beneficiary) -> FamilyMember:
    f = FamilyMember(beneficiary_id=b.id, name="张小明", relationship="child", phone="+8613900000002")
    session.add(f)
    session.flush()
    return f


def outbox(session: Session) -> list[OutboxMessage]:
    return list(session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all())


def cert_ctx() -> dict:
    return {"days_left": 7, "deadline": date(2026, 3, 9)}


def test_telegram_is_preferred_unless_told_otherwise(db_engine: Engine) -> None:
    """With a verified Telegram chat and phone, Telegram is chosen; prefer='sms' picks the phone."""
    with session_scope(db_engine) as s:
        b = person(s)
        sms = contact(s, b, "sms", "+8613800000001")
        tg = contact(s, b, "telegram", "1001")
        assert choose_contact(s, b.id).id == tg.id
        assert choose_contact(s, b.id, prefer="sms").id == sms.id


def test_unverified_opted_out_blocked_or_invalid_contacts_are_not_chosen(db_engine: Engine) -> None:
    """Only verified, reachable addresses are used; with none left there is nobody to reach."""
    with session_scope(db_engine) as s:
        b = person(s)
        contact(s, b, "telegram", "1001", verified=False)
        blocked = contact(s, b, "telegram", "1002")
        blocked.blocked_at = NOW
        invalid = contact(s, b, "sms", "+8613800000003")
        invalid.invalid_at = NOW
        good = contact(s, b, "sms", "+8613800000004")
        assert choose_contact(s, b.id).id == good.id
        opt_out(s, good, reason="TD", actor="bot", now=NOW)
        assert choose_contact(s, b.id) is None


def test_family_contact_only_when_the_beneficiary_has_none_of_their_own(db_engine: Engine, ts: TemplateSet) -> None:
    """A relative's phone is used when the beneficiary has no address; the message says whom it is for."""
    with session_scope(db_engine) as s:
        b = person(s)
        fam = contact(s, b, "sms", "+8613900000002", family=relative(s, b))
        assert choose_contact(s, b.id).id == fam.id
        got = enqueue_notice(s, beneficiary=b, kind="cert_reminder_7", occurrence="2026", context=cert_ctx(),
                             now=NOW, templates=ts)
        assert got is not None
        row = s.get(OutboxMessage, got.message_id)
        assert row.address == "+8613900000002" and "请转告张伯" in row.body
        own = contact(s, b, "sms", "+8613800000001")
        assert choose_contact(s, b.id).id == own.id


def test_opted_out_beneficiary_is_not_reached_through_a_relative(db_engine: Engine) -> None:
    """If the beneficiary said stop on their own phone, a family member's phone is no way round it."""
    with session_scope(db_engine) as s:
        b = person(s)
        contact(s, b, "sms", "+8613900000002", family=relative(s, b))
        own = contact(s, b, "sms", "+8613800000001")
        opt_out(s, own, reason="退订", actor="bot", now=NOW)
        assert choose_contact(s, b.id) is None


def test_deceased_beneficiary_gets_no_notice(db_engine: Engine, ts: TemplateSet) -> None:
    """After a death is recorded nothing new is queued for that person."""
    with session_scope(db_engine) as s:
        b = person(s)
        contact(s, b, "telegram", "1001")
        record_death(s, b, died_on=date(2026, 3, 1), actor="staff1", now=NOW)
        assert enqueue_notice(s, beneficiary=b, kind="cert_reminder", occurrence="2026", context=cert_ctx(),
                              now=NOW, templates=ts) is None
        assert outbox(s) == []


def test_beneficiary_who_moved_away_gets_no_notice(db_engine: Engine, ts: TemplateSet) -> None:
    """A beneficiary marked moved is not active: no notice."""
    with session_scope(db_engine) as s:
        b = person(s)
        contact(s, b, "telegram", "1001")
        b.status = "moved"
        assert enqueue_notice(s, beneficiary=b, kind="cert_reminder", occurrence="2026", context=cert_ctx(),
                              now=NOW, templates=ts) is None


def test_beneficiary_with_nobody_to_reach_gets_none(db_engine: Engine, ts: TemplateSet) -> None:
    """No contact at all: None, and nothing queued."""
    with session_scope(db_engine) as s:
        b = person(s)
        assert enqueue_notice(s, beneficiary=b, kind="cert_reminder", occurrence="2026", context=cert_ctx(),
                              now=NOW, templates=ts) is None
        assert outbox(s) == []


def test_notice_is_rendered_in_the_beneficiarys_language_for_the_channel(db_engine: Engine, ts: TemplateSet) -> None:
    """A zh-Hant reader on SMS gets the Traditional short variant, with its segment count stored."""
    with session_scope(db_engine) as s:
        b = person(s, name="陳美玲", sex="F", language="zh-Hant")
        contact(s, b, "sms", "+85291234567")
        got = enqueue_notice(s, beneficiary=b, kind="over80_insurance", occurrence="2026",
                             context={"start_date": date(2026, 5, 1)}, now=NOW, templates=ts)
        row = s.get(OutboxMessage, got.message_id)
        assert row.channel == "sms" and row.language == "zh-Hant"
        assert row.body.startswith("【白沙退役軍人服務站】陳阿姨") and "無需繳費" in row.body
        assert row.segments == 2 and row.kind == "over80_insurance"
        assert row.idempotency_key == f"over80_insurance:b{b.id}:2026"


def test_same_occurrence_twice_queues_one_message(db_engine: Engine, ts: TemplateSet) -> None:
    """A sweep that runs twice for the same occurrence does not queue a second message."""
    with session_scope(db_engine) as s:
        b = person(s)
        contact(s, b, "telegram", "1001")
        first = enqueue_notice(s, beneficiary=b, kind="cert_reminder_7", occurrence="2026", context=cert_ctx(),
                               now=NOW, templates=ts)
        second = enqueue_notice(s, beneficiary=b, kind="cert_reminder_7", occurrence="2026", context=cert_ctx(),
                                now=NOW, templates=ts)
        assert first.created and not second.created and first.message_id == second.message_id
        assert len(outbox(s)) == 1


def test_telegram_row_carries_the_sms_wording_for_fallback(db_engine: Engine, ts: TemplateSet) -> None:
    """A Telegram notice stores the SMS variant and its segments so the dispatcher can fall back without rendering."""
    with session_scope(db_engine) as s:
        b = person(s)
        contact(s, b, "telegram", "1001")
        got = enqueue_notice(s, beneficiary=b, kind="festival_greeting", occurrence="army_day-2026-08-01",
                             context={"occasion": "army_day"}, now=NOW, templates=ts)
        row = s.get(OutboxMessage, got.message_id)
        assert row.channel == "telegram" and "建军节" in row.body and "TD" not in row.body
        assert row.sms_body.startswith("【白沙退役军人服务站】") and row.sms_body.endswith("回复TD退订")
        assert row.sms_segments >= 1


def test_channel_given_is_the_only_channel_used(db_engine: Engine, ts: TemplateSet) -> None:
    """channel='sms' for someone with only Telegram queues nothing."""
    with session_scope(db_engine) as s:
        b = person(s)
        contact(s, b, "telegram", "1001")
        assert enqueue_notice(s, beneficiary=b, kind="cert_reminder", occurrence="2026", context=cert_ctx(),
                              now=NOW, channel="sms", templates=ts) is None


def test_missing_notice_variable_is_named_and_nothing_is_queued(db_engine: Engine, ts: TemplateSet) -> None:
    """A caller that forgets the deadline gets an error naming it."""
    from outreach.templates import MissingVariables

    with session_scope(db_engine) as s:
        b = person(s)
        contact(s, b, "telegram", "1001")
        with pytest.raises(MissingVariables, match="deadline"):
            enqueue_notice(s, beneficiary=b, kind="cert_reminder", occurrence="2026", context={"days_left": 7},
                           now=NOW, templates=ts)
        assert outbox(s) == []


def _application(s: Session, b: Beneficiary, stage: str = "staged") -> Application:
    app = Application(reference=f"NX-2026-{next(_ids):06d}", type="veteran_insurance", beneficiary_id=b.id,
                      stage=stage)
    s.add(app)
    s.flush()
    return app


def test_stage_change_tells_the_applicant_with_payment_details(db_engine: Engine) -> None:
    """advance_application to payment_notice queues a notice with amount, account and deadline."""
    with session_scope(db_engine) as s:
        b = person(s)
        contact(s, b, "sms", "+8613800000001")
        app = _application(s, b, stage="verification")
        advance_application(s, app, "payment_notice", actor="staff1", now=NOW, payment_amount_fen=1234550,
                            payment_account="6222000012345678", payment_deadline=date(2026, 4, 30))
        (row,) = outbox(s)
        assert row.kind == "stage_payment_notice" and row.channel == "sms"
        assert "12,345.50元" in row.body and "6222000012345678" in row.body and "2026年4月30日" in row.body
        assert row.occurrence == f"{app.reference}:payment_notice:1"


def test_second_move_to_the_same_stage_is_a_new_message(db_engine: Engine) -> None:
    """Returned, accepted again, returned again: two 'returned' notices, each with its own reason."""
    with session_scope(db_engine) as s:
        b = person(s)
        contact(s, b, "telegram", "1001")
        app = _application(s, b, stage="accepted")
        advance_application(s, app, "returned", actor="staff1", reason="缺少退出现役登记表", now=NOW)
        advance_application(s, app, "accepted", actor="staff1", now=NOW + timedelta(days=3))
        advance_application(s, app, "returned", actor="staff1", reason="身份证复印件不清楚", now=NOW + timedelta(days=5))
        rows = outbox(s)
        assert [r.kind for r in rows] == ["stage_returned", "stage_accepted", "stage_returned"]
        assert "缺少退出现役登记表" in rows[0].body and "身份证复印件不清楚" in rows[2].body
        assert rows[0].idempotency_key != rows[2].idempotency_key


def test_rejection_notice_carries_the_reason(db_engine: Engine) -> None:
    """不予受理 says why."""
    with session_scope(db_engine) as s:
        b = person(s)
        contact(s, b, "telegram", "1001")
        app = _application(s, b, stage="accepted")
        advance_application(s, app, "rejected", actor="staff1", reason="服役期间被开除军籍", now=NOW)
        (row,) = outbox(s)
        assert row.kind == "stage_rejected" and "服役期间被开除军籍" in row.body


def test_one_time_code_is_urgent_sms_without_footer_and_each_is_distinct(db_engine: Engine, ts: TemplateSet) -> None:
    """Two codes to the same phone are two messages, urgent, SMS only, no fallback, expiring with the code."""
    with write_scope(db_engine) as s:
        a = send_one_time_code(s, phone_e164="+8613800000009", code="482913", lang="zh-Hans", now=NOW, templates=ts)
        b = send_one_time_code(s, phone_e164="+8613800000009", code="482913", lang="zh-Hans", now=NOW, templates=ts)
        assert a.created and b.created and a.key != b.key
        row = s.get(OutboxMessage, a.message_id)
        assert row.urgent and row.channel == "sms" and not row.allow_fallback and row.kind == "otp"
        assert "482913" in row.body and "TD" not in row.body
        assert row.deadline_at == NOW + timedelta(minutes=10)
        assert "8613800000009" not in row.idempotency_key and "482913" not in row.idempotency_key
        assert row.extra.get("secret") is True


def test_one_time_code_is_never_logged(db_engine: Engine, ts: TemplateSet, caplog: pytest.LogCaptureFixture) -> None:
    """Queuing a code writes nothing with the code to any log."""
    caplog.set_level(logging.DEBUG)
    with write_scope(db_engine) as s:
        send_one_time_code(s, phone_e164="+8613800000009", code="771234", lang="en", now=NOW, templates=ts)
    assert "771234" not in caplog.text


def test_direct_reply_goes_back_on_the_channel_used(db_engine: Engine, ts: TemplateSet) -> None:
    """A staff answer goes to the same chat in the handoff_answer frame; unknown kinds are sent as written."""
    with session_scope(db_engine) as s:
        b = person(s)
        contact(s, b, "sms", "+8613800000001")
        tg = contact(s, b, "telegram", "1001")
        got = send_direct(s, channel="telegram", address="1001", text="可以的，带身份证来。", kind="handoff_answer",
                          occurrence="t17", now=NOW, lang="zh-Hans", context={"staff_name": "李姐"}, templates=ts)
        row = s.get(OutboxMessage, got.message_id)
        assert row.channel == "telegram" and row.address == "1001" and row.contact_id == tg.id
        assert row.beneficiary_id == b.id and "可以的，带身份证来。" in row.body and "李姐" in row.body
        assert not row.allow_fallback
        raw = send_direct(s, channel="sms", address="+8613800000077", text="Thanks!", kind="reply",
                          occurrence="t18", now=NOW, lang="en", templates=ts)
        assert s.get(OutboxMessage, raw.message_id).body == "Thanks!"


def test_broadcast_rows_queue_one_row_per_recipient_with_footer(db_engine: Engine, ts: TemplateSet) -> None:
    """Rows from broadcast_rows go through enqueue_many; SMS rows end with the footer; re-running adds none."""
    staff = compile_staff_text("{{ salutation }}，周六上午{{ community }}有义诊。")
    with session_scope(db_engine) as s:
        people = [person(s), person(s, name="王秀英", sex="F")]
        recips = [Recipient(p.id, contact(s, p, ch, addr).id, ch, addr, "zh-Hans",
                            {"name": p.name, "salutation": salutation_for(p, "zh-Hans", on=NOW.date()),
                             "community": p.community})
                  for p, (ch, addr) in zip(people, [("sms", "+8613800000001"), ("telegram", "1001")], strict=True)]
        made = enqueue_many(s, broadcast_rows(ts, staff, recips, broadcast_id=None, occurrence="bc1"), now=NOW)
        again = enqueue_many(s, broadcast_rows(ts, staff, recips, broadcast_id=None, occurrence="bc1"), now=NOW)
        assert (made, again) == (2, 0)
        sms_row, tg_row = outbox(s)
        assert sms_row.body == "【白沙退役军人服务站】张伯，周六上午白沙社区有义诊。（咨询电话0750-1234567）回复TD退订"
        assert sms_row.segments == 1
        assert tg_row.body.startswith("王阿姨，周六上午白沙社区有义诊。") and "TD" not in tg_row.body


@pytest.mark.parametrize(("name", "sex", "born", "lang", "expected"), [
    ("张建国", "M", date(1944, 1, 1), "zh-Hans", "张伯"),
    ("王秀英", "F", date(1950, 1, 1), "zh-Hans", "王阿姨"),
    ("欧阳明", "M", date(1940, 1, 1), "zh-Hans", "欧阳伯"),
    ("李强", "M", date(1980, 1, 1), "zh-Hans", "李先生"),
    ("赵丽", "F", date(1985, 1, 1), "zh-Hans", "赵女士"),
    ("张建国", "M", date(1944, 1, 1), "en", "张建国"),
])
def test_salutation_follows_age_and_sex(name: str, sex: str, born: date, lang: str, expected: str) -> None:
    """张伯 / 王阿姨 for 60 and over, 先生 / 女士 below; compound surnames kept whole; English uses the name."""
    b = Beneficiary(name=name, id_hash="x", id_masked="x", sex=sex, birth_date=born)
    assert salutation_for(b, lang, on=date(2026, 3, 2)) == expected
