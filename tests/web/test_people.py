"""People: finding a person, their page, and the changes staff record (each with a reason, audited)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from models.actions import report_change
from models.applications import Task
from models.conversations import MessageLog
from models.db import write_scope
from models.idcard import IdCard
from models.outbox import OutboxEvent, OutboxMessage
from models.people import Beneficiary, Contact, FamilyMember
from models.phone import mask_phone
from models.reports import ContactReport, DeathReport, MoveReport, Reporter
from models.staff import AuditLog
from tests.web.conftest import Console, World

KEY = b"test-id-key"
ZHAO_ID = "440703194001010022"
QIAN_ID = "44070319550303001X"


@pytest.fixture
def roll(db_engine: Any, world: World, clock: Any) -> dict[str, int]:
    """Two more people with real-shaped ID numbers, contacts in each state, a family member,
    a conversation and a message with its delivery history."""
    now = clock.now()
    with Session(db_engine, expire_on_commit=False) as s:
        zhao_card, qian_card = IdCard.parse(ZHAO_ID), IdCard.parse(QIAN_ID)
        zhao = Beneficiary(name="赵秀兰", id_hash=zhao_card.hashed(KEY), id_masked=zhao_card.masked,
                           id_last6_hash=zhao_card.last6_hashed(KEY), is_retiree=True, sex="F",
                           birth_date=date(1940, 1, 1), district="江海区", street="江南街道", community="文昌社区",
                           living_alone=True)
        qian = Beneficiary(name="钱国强", id_hash=qian_card.hashed(KEY), id_masked=qian_card.masked,
                           id_last6_hash=qian_card.last6_hashed(KEY), is_veteran=True, sex="M",
                           district="蓬江区", street="白沙街道", community="聚德社区")
        s.add_all([zhao, qian])
        s.flush()
        daughter = FamilyMember(beneficiary_id=zhao.id, name="赵红", relationship="child", phone="+8613900002222")
        s.add(daughter)
        s.flush()
        s.add_all([
            Contact(beneficiary_id=zhao.id, channel="sms", address="+8613700001111", verified=True,
                    opted_out_at=now - timedelta(days=3), opted_out_reason="replied TD"),
            Contact(beneficiary_id=zhao.id, channel="telegram", address="5001", verified=True,
                    blocked_at=now - timedelta(days=1)),
            Contact(beneficiary_id=zhao.id, channel="sms", address="+8613900002222", verified=True,
                    family_member_id=daughter.id),
            Contact(beneficiary_id=qian.id, channel="sms", address="+8613600003333", verified=True,
                    invalid_at=now, invalid_reason="号码是空号"),
            MessageLog(channel="sms", address="+8613900002222", direction="in", text="我妈妈的认证怎么办？",
                       beneficiary_id=zhao.id, created_at=now - timedelta(hours=2)),
        ])
        msg = OutboxMessage(idempotency_key="cert:zhao", kind="cert_reminder", beneficiary_id=zhao.id, channel="sms",
                            address="+8613900002222", body="请转告赵阿姨：今年的养老金资格认证还没有做。",
                            status="delivered", created_at=now - timedelta(days=1))
        s.add(msg)
        s.flush()
        s.add_all([OutboxEvent(outbox_id=msg.id, from_status="queued", to_status="sent", at=now - timedelta(days=1)),
                   OutboxEvent(outbox_id=msg.id, from_status="sent", to_status="delivered",
                               at=now - timedelta(days=1))])
        s.commit()
        return {"zhao": zhao.id, "qian": qian.id}  # type: ignore[dict-item]


def _names(page: str) -> set[str]:
    return {n for n in ("黄伯", "赵秀兰", "钱国强") if f">{n}</a>" in page}


@pytest.mark.parametrize("query, expected", [
    ("赵秀", {"赵秀兰"}),                  # part of a name
    (ZHAO_ID, {"赵秀兰"}),                 # the whole ID number (found by its hash)
    (ZHAO_ID[-6:], {"赵秀兰"}),            # its last six characters
    ("001x", {"钱国强"}),                  # the last four, as the masked form shows them
    ("13600003333", {"钱国强"}),           # a phone number, as people say it
    ("3333", {"钱国强"}),                  # the last digits of a phone
    ("聚德", {"钱国强"}),                  # part of a community's name
    ("4407**********5678", {"黄伯"}),      # a masked ID copied from a letter
    ("nobody", set()),
])
def test_people_are_found_by_name_id_phone_or_community(console: Console, roll: dict[str, int], query: str,
                                                         expected: set[str], settings: Any) -> None:
    console.sign_in("viewer")
    assert _names(console.client.get("/people", params={"q": query}).text) == expected


def test_the_kind_and_community_filters_narrow_the_list(console: Console, roll: dict[str, int]) -> None:
    console.sign_in("viewer")
    assert _names(console.client.get("/people", params={"kind": "veteran"}).text) == {"黄伯", "钱国强"}
    assert _names(console.client.get("/people", params={"community": "文昌社区"}).text) == {"赵秀兰"}


def test_a_persons_page_shows_contacts_with_their_states_family_conversation_and_deliveries(
        console: Console, roll: dict[str, int]) -> None:
    """Opted out (when and why), blocked, a relative's phone, the conversation and each message's delivery."""
    console.sign_in("viewer")
    page = console.get(f"/people/{roll['zhao']}").text
    assert "已退订" in page and "replied TD" in page
    assert "已屏蔽机器人" in page
    assert "赵红" in page and "子女" in page
    assert "我妈妈的认证怎么办？" in page
    assert "资格认证提醒" in page and "已送达" in page
    assert "+8613700001111" not in page and "+8613900002222" not in page  # phones only masked
    assert mask_phone("+8613700001111") in page
    qian = console.get(f"/people/{roll['qian']}").text
    assert "号码无效" in qian and "号码是空号" in qian


def _audits(db_engine: Any, action: str) -> list[AuditLog]:
    with Session(db_engine) as s:
        return list(s.exec(select(AuditLog).where(AuditLog.action == action)).all())


def test_a_caseworker_records_a_certification_with_a_reason(console: Console, roll: dict[str, int],
                                                           db_engine: Any) -> None:
    console.sign_in("caseworker")
    path = f"/people/{roll['zhao']}/certification"
    refused = console.post(path, {"on": "2026-03-01", "method": "window", "reason": ""}, follow=True)
    assert "请写明原因或依据" in refused.text
    console.post(path, {"on": "2026-03-01", "method": "window", "reason": "本人到窗口办理"})
    with Session(db_engine) as s:
        assert s.get(Beneficiary, roll["zhao"]).last_certified_on == date(2026, 3, 1)  # type: ignore[union-attr]
    (row,) = _audits(db_engine, "beneficiary.certified")
    assert row.actor == "caseworker" and row.details["reason"] == "本人到窗口办理"


def test_a_death_needs_date_reporter_evidence_and_the_check_box(console: Console, roll: dict[str, int],
                                                                db_engine: Any) -> None:
    """Without any of them nothing changes; with all, the person is deceased and a condolence visit opens."""
    console.sign_in("caseworker")
    path = f"/people/{roll['qian']}/death"
    full = {"died_on": "2026-02-27", "reported_by": "儿子电话告知", "evidence": "死亡证明", "checked": "yes"}
    for missing in ("died_on", "reported_by", "evidence", "checked"):
        console.post(path, {k: v for k, v in full.items() if k != missing})
        with Session(db_engine) as s:
            assert s.get(Beneficiary, roll["qian"]).status == "active", missing  # type: ignore[union-attr]
    future = console.post(path, {**full, "died_on": "2026-12-01"}, follow=True)
    assert "不能是将来的日期" in future.text
    console.post(path, full)
    with Session(db_engine) as s:
        qian = s.get(Beneficiary, roll["qian"])
        assert qian is not None and (qian.status, qian.deceased_on) == ("deceased", date(2026, 2, 27))
        assert s.exec(select(Task).where(Task.kind == "condolence_visit")).one().beneficiary_id == roll["qian"]
    (row,) = _audits(db_engine, "beneficiary.deceased")
    assert row.details["evidence"] == "死亡证明" and row.details["reported_by"] == "儿子电话告知"


def test_a_move_within_the_area_changes_the_address_and_a_move_away_ends_outreach(
        console: Console, roll: dict[str, int], db_engine: Any) -> None:
    console.sign_in("caseworker")
    console.post(f"/people/{roll['qian']}/move", {"away": "no", "community": "东华社区", "reason": "女儿来电"})
    console.post(f"/people/{roll['zhao']}/move", {"away": "yes", "moved_on": "2026-02-01", "reason": "随子女去广州"})
    with Session(db_engine) as s:
        assert s.get(Beneficiary, roll["qian"]).community == "东华社区"  # type: ignore[union-attr]
        zhao = s.get(Beneficiary, roll["zhao"])
        assert zhao is not None and (zhao.status, zhao.moved_on) == ("moved", date(2026, 2, 1))
    assert _audits(db_engine, "beneficiary.address")[0].details["reason"] == "女儿来电"


def test_staff_replace_a_number_and_stop_notices_on_request(console: Console, roll: dict[str, int],
                                                            db_engine: Any) -> None:
    """A new number replaces the old (marked no longer valid); an opt-out asked by phone is recorded."""
    console.sign_in("caseworker")
    with Session(db_engine) as s:
        old = s.exec(select(Contact).where(Contact.address == "+8613600003333")).one()
    path = f"/people/{roll['qian']}/contacts/{old.id}"
    bad = console.post(path, {"change_to": "replace", "new_phone": "123", "reason": "本人来电"}, follow=True)
    assert "手机号不对" in bad.text
    console.post(path, {"change_to": "replace", "new_phone": "13512345678", "reason": "本人来电"})
    with Session(db_engine) as s:
        new = s.exec(select(Contact).where(Contact.address == "+8613512345678")).one()
        assert new.beneficiary_id == roll["qian"] and new.verified
        assert s.get(Contact, old.id).invalid_at is not None  # type: ignore[union-attr]
    console.post(f"/people/{roll['qian']}/contacts/{new.id}", {"change_to": "opt_out", "reason": "本人电话要求"})
    with Session(db_engine) as s:
        assert s.get(Contact, new.id).opted_out_at is not None  # type: ignore[union-attr]
    change = _audits(db_engine, "contact.change")[0]
    assert change.actor == "caseworker" and "13512345678" not in str(change.details)


def test_a_number_on_someone_elses_record_is_refused(console: Console, roll: dict[str, int], db_engine: Any) -> None:
    console.sign_in("caseworker")
    page = console.post(f"/people/{roll['qian']}/contacts", {"phone": "13700001111", "reason": "来电"}, follow=True)
    assert "另一个人名下" in page.text
    with Session(db_engine) as s:
        assert s.exec(select(Contact).where(Contact.address == "+8613700001111")).one().beneficiary_id == roll["zhao"]


# --------------------------------------------------------------------------- reports verified by staff

def _report(db_engine: Any, person_id: int, report: Any, now: Any) -> int:
    with write_scope(db_engine) as s:
        task = report_change(s, s.get(Beneficiary, person_id), report,  # type: ignore[arg-type]
                             Reporter(relationship="child", channel="sms", address_masked="+86139****2222"), now=now)
        assert task.id is not None
        return task.id


def test_a_reported_death_is_confirmed_by_a_caseworker_on_the_task(console: Console, roll: dict[str, int],
                                                                   db_engine: Any, clock: Any) -> None:
    """Until confirmed: active and paused. Confirmed with how it was checked: deceased, pause lifted."""
    task_id = _report(db_engine, roll["zhao"], DeathReport(died_on=date(2026, 2, 28)), clock.now())
    console.sign_in("caseworker")
    page = console.get(f"/people/{roll['zhao']}").text
    assert "主动联系已暂停" in page and "核实去世报告" in page and "2026-02-28" in page
    with Session(db_engine) as s:
        assert s.get(Beneficiary, roll["zhao"]).status == "active"  # type: ignore[union-attr]
    empty = console.post(f"/tasks/{task_id}/confirm", {"note": ""}, follow=True)
    assert "请写明是怎么核实的" in empty.text
    console.post(f"/tasks/{task_id}/confirm", {"note": "社区主任上门确认"})
    with Session(db_engine) as s:
        zhao = s.get(Beneficiary, roll["zhao"])
        task = s.get(Task, task_id)
    assert zhao is not None and zhao.status == "deceased" and zhao.outreach_paused_at is None
    assert task is not None and (task.status, task.outcome, task.closed_by) == ("done", "confirmed", "caseworker")


def test_a_report_found_untrue_changes_nothing_and_lifts_the_pause(console: Console, roll: dict[str, int],
                                                                  db_engine: Any, clock: Any) -> None:
    task_id = _report(db_engine, roll["zhao"], MoveReport(away=True), clock.now())
    console.sign_in("caseworker")
    console.post(f"/tasks/{task_id}/reject", {"reason": "本人接了电话，没有搬家"})
    with Session(db_engine) as s:
        zhao = s.get(Beneficiary, roll["zhao"])
        assert zhao is not None and zhao.status == "active" and zhao.outreach_paused_at is None
        assert s.get(Task, task_id).outcome == "not_confirmed"  # type: ignore[union-attr]


def test_the_pause_lasts_while_any_report_about_the_person_waits(db_engine: Any, roll: dict[str, int],
                                                                 clock: Any) -> None:
    from models.actions import reject_report

    first = _report(db_engine, roll["zhao"], MoveReport(away=True), clock.now())
    _report(db_engine, roll["zhao"], ContactReport(new_phone="+8613512340000"), clock.now())
    with write_scope(db_engine) as s:
        reject_report(s, s.get(Task, first), actor="caseworker", reason="没有搬", now=clock.now())  # type: ignore[arg-type]
    with Session(db_engine) as s:
        assert s.get(Beneficiary, roll["zhao"]).outreach_paused_at is not None  # type: ignore[union-attr]


def test_a_confirmed_contact_change_adds_the_number(db_engine: Any, roll: dict[str, int], clock: Any) -> None:
    from models.actions import confirm_report

    task_id = _report(db_engine, roll["qian"], ContactReport(new_phone="+8613512340000"), clock.now())
    with write_scope(db_engine) as s:
        confirm_report(s, s.get(Task, task_id), actor="caseworker", now=clock.now(), note="本人确认")  # type: ignore[arg-type]
    with Session(db_engine) as s:
        assert s.exec(select(Contact).where(Contact.address == "+8613512340000")).one().beneficiary_id == roll["qian"]
