"""What the link already tells is confirmed, not asked again; what is typed is checked against it."""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import Session, select

from bot.flowspec import load_flows
from bot.identity import RELATIONSHIPS
from models.actions import create_task, record_death
from models.applications import Application, Task
from models.db import session_scope
from models.people import Beneficiary
from models.staff import AuditLog
from tests.bot.conftest import DAUGHTER_PHONE, LI_ID, LI_PHONE, ZHANG_ID, ZHANG_PHONE, Chat, link


def to_name_step(chat: Chat) -> str:
    chat("1")
    chat("是")
    chat("不是")
    return chat("都没有")


def test_a_linked_person_confirms_name_and_id_in_one_reply(engine, notifier, roll, db_engine):
    """Linked as himself, 张三 sees his name and masked ID and replies 1; the application holds them."""
    chat = Chat(engine, "telegram", "wk1")
    link(chat, notifier, ZHANG_PHONE)
    text = to_name_step(chat)
    assert "我们登记的是：姓名：张三，身份证号：1101**********0024。对吗？" in text
    assert "入伍" in chat("1")
    for answer in ("1998-12", "2002-12", "厂", "以后", "1"):
        chat(answer)
    with Session(db_engine) as s:
        app = s.exec(select(Application)).one()
    assert app.data["name"] == "张三" and app.data["id_number"]["masked"] == "1101**********0024"
    assert ZHANG_ID not in str(app.data)


def test_someone_elses_id_is_refused_for_the_linked_person(engine, notifier, roll):
    """Typing another person's ID for himself: told it does not match, asked again, not moved on."""
    chat = Chat(engine, "telegram", "wk2")
    link(chat, notifier, ZHANG_PHONE)
    to_name_step(chat)
    chat("2")  # the record is not how he wants it: he types it
    chat("张三")
    text = chat(LI_ID)
    assert "对不上" in text and chat.state() == ("veteran_insurance", "id_number")
    assert "入伍" in chat(ZHANG_ID)


def test_a_relative_reporting_a_death_confirms_the_person_and_is_not_asked_the_relationship(
        engine, notifier, roll, db_engine):
    """The daughter linked as child: "is it 张三?" — 1 — the date — straight to the summary; the
    report reaches staff as 张三's death reported by his child."""
    chat = Chat(engine, "telegram", "wk3")
    link(chat, notifier, DAUGHTER_PHONE, proxy="1")
    text = chat("5")
    assert "张三（1101**********0024）" in text
    chat("1")
    summary = chat("昨天")
    assert "请核对" in summary and "子女" in summary
    chat("1")
    with Session(db_engine) as s:
        task = s.exec(select(Task).where(Task.kind == "verify_death")).one()
    assert task.beneficiary_id == roll.zhang and task.details["reporter"]["relationship"] == "child"


def test_a_person_cannot_report_their_own_death(engine, notifier, roll):
    """Linked as himself, the ID of the person who died cannot be his own."""
    chat = Chat(engine, "telegram", "wk4")
    link(chat, notifier, ZHANG_PHONE)
    chat("5")
    assert "您本人的身份证号" in chat(ZHANG_ID)
    assert chat.state() == ("death_report", "deceased_id")


def test_the_relationship_list_is_one_list_numbered_the_same_everywhere():
    """Linking and the death report offer the same relationships in the same order."""
    report = load_flows()["death_report"].step("relationship")
    assert [(o.value, o.label["zh-Hans"]) for o in report.options] == [(v, lbl["zh-Hans"]) for v, lbl in RELATIONSHIPS]


def test_a_second_open_application_of_the_same_kind_is_refused_with_its_stage(engine, notifier, roll, db_engine):
    """An application in review: applying again says which one is open and where it is."""
    with session_scope(db_engine) as s:
        s.add(Application(reference="NX-2026-000555", type="hardship", beneficiary_id=roll.zhang,
                          stage="preliminary_review"))
    chat = Chat(engine, "sms", ZHANG_PHONE)
    text = chat("3")
    assert "NX-2026-000555" in text and "已经有一份" in text
    assert chat.state() == (None, None)


def test_a_deceased_persons_phone_cannot_act_for_him(engine, notifier, roll, db_engine, clock):
    """After 李四's death is recorded, his own phone starts no service as him; a relative may link."""
    with session_scope(db_engine) as s:
        record_death(s, s.get(Beneficiary, roll.li), died_on=date(2026, 3, 1), actor="staff", now=clock.now())
    chat = Chat(engine, "sms", LI_PHONE)
    text = chat("4")
    assert "已经去世" in text and chat.state() == (None, None)
    other = Chat(engine, "telegram", "wk7")
    other("9")
    other("1")
    assert "已经去世" in other(LI_PHONE) and not notifier.codes


def test_a_recorded_death_closes_the_persons_open_visits_with_the_reason(engine, roll, db_engine, clock):
    """Hospital and home visits for someone who has died are closed, each saying why, each audited."""
    with session_scope(db_engine) as s:
        create_task(s, kind="hospital_visit", actor="bot", beneficiary_id=roll.li, now=clock.now())
        create_task(s, kind="home_visit", actor="bot", beneficiary_id=roll.li, now=clock.now())
        record_death(s, s.get(Beneficiary, roll.li), died_on=date(2026, 3, 1), actor="staff", now=clock.now())
    with Session(db_engine) as s:
        tasks = {t.kind: t for t in s.exec(select(Task)).all()}
        cancels = s.exec(select(AuditLog).where(AuditLog.action == "task.cancel")).all()
    assert tasks["hospital_visit"].status == "cancelled" and "去世" in tasks["hospital_visit"].note
    assert tasks["home_visit"].status == "cancelled"
    assert tasks["condolence_visit"].status == "open"
    assert len(cancels) == 2


@pytest.mark.parametrize(("last", "said"), [
    (date(2025, 6, 10), "张三上次认证是2025年6月10日，下次在6月10日前做就行"),
    (date(2025, 3, 20), "张三上次认证是2025年3月20日，这次要在3月20日前做"),
    (date(2025, 1, 5), "张三上次认证是2025年1月5日，这次本该在1月5日前做，已经过了日子"),
])
def test_the_certification_starts_with_the_records_own_dates(engine, notifier, roll, db_engine, last, said):
    """A daughter asking for her father (on 2026-03-02) is told when he last certified and by when the next one is
    due (done, due within the reminders' 30 days, or overdue) before she is asked how to certify: nobody books a
    visit that is not needed."""
    with session_scope(db_engine) as s:
        person = s.get(Beneficiary, roll.zhang)
        assert person is not None
        person.last_certified_on = last
    chat = Chat(engine, "telegram", f"cert-dates-{last}")
    link(chat, notifier, ZHANG_PHONE, proxy="1")
    text = chat("6")
    assert said in text
    assert text.index("上次认证") < text.index("您想怎么认证")


def test_the_certification_says_no_date_when_the_roll_has_none(engine, notifier, roll, db_engine):
    """Someone the roll has no certification date for goes straight to how to certify: no made-up date."""
    chat = Chat(engine, "telegram", "cert-dates-none")
    link(chat, notifier, ZHANG_PHONE)
    text = chat("6")
    assert "上次认证" not in text and "您想怎么认证" in text
