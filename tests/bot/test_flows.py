"""Every flow end to end through the console channel, plus the flow-file format's validation."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bot.channels.console import run_lines
from bot.commands import link_console
from bot.flowrunner import FlowError, load_flows
from models.applications import (
    Application,
    ApplicationDocument,
    ApplicationStageChange,
    HandoffTicket,
    SurveyAnswer,
    Task,
)
from models.db import session_scope
from models.outbox import OutboxMessage
from models.people import Beneficiary
from outreach.outbox import enqueue
from tests.bot.conftest import LI_ID, LI_PHONE, ZHANG_ID, ZHANG_PHONE, Chat


def console(engine, db_engine, phone: str, script: str, session: str = "t") -> str:
    address = link_console(db_engine, engine, phone, session)
    out: list[str] = []
    run_lines(engine.handle, script.strip().splitlines(), address, out.append)
    return "\n".join(out)


def test_veterans_insurance_end_to_end_with_uploaded_documents(engine, roll, db_engine, tmp_path):
    """Seed 003: eligibility, details, six documents (files on the console), an application at stage staged
    with its stage-history row and one document row per checklist item."""
    photo = tmp_path / "enlist.jpg"
    photo.write_bytes(b"\xff\xd8 fake jpeg")
    out = console(engine, db_engine, ZHANG_PHONE, f"""
1
是
不是
1
张三
{ZHANG_ID}
1998年12月
2002年12月
江门市机械厂
/file {photo}
/file {photo}
跳过
以后
1
""")
    assert "收到：入伍证明材料" in out and "收到：退出现役登记表" in out
    assert "已提交，编号NX-2026-" in out
    assert "还缺这些材料，请带到服务窗口：身份证、缴费记录、安置介绍信、解除劳动合同书" in out
    with Session(db_engine) as s:
        app = s.exec(select(Application)).one()
        docs = {d.code: d for d in s.exec(select(ApplicationDocument)).all()}
        history = s.exec(select(ApplicationStageChange)).all()
    assert app.type == "veteran_insurance" and app.stage == "staged" and app.beneficiary_id == roll.zhang
    assert app.data["placement_unit"] == "江门市机械厂"
    assert app.data["enlistment_date"] == "1998-12-01" and app.data["discharge_date"] == "2002-12-01"
    assert app.data["id_number"]["masked"] == "1101**********0024" and ZHANG_ID not in str(app.data)
    assert len(docs) == 6 and docs["enlistment_papers"].received and docs["discharge_form"].received
    assert docs["enlistment_papers"].file_path == str(photo)
    assert not docs["id_card"].received
    assert [(h.from_stage, h.to_stage, h.actor) for h in history] == [(None, "staged", "bot")]


@pytest.mark.parametrize(("answers", "why"), [
    (["2"], "政府安排工作"),
    (["1", "1"], "开除军籍"),
    (["1", "2", "2"], "判刑"),
    (["1", "2", "5"], "自己辞职"),
])
def test_veterans_insurance_exclusions_say_why_and_offer_a_person(engine, roll, db_engine, answers, why):
    """Not arranged by the government, expelled, or after placement sentenced/dismissed/struck off/left:
    the reason is said plainly, a person is offered, and nothing is created."""
    # The answer that ends the flow is confirmed first ("1": yes, that is right).
    out = console(engine, db_engine, ZHANG_PHONE, "1\n" + "\n".join(answers) + "\n1")
    last = out.split("> ")[-1]
    assert why in last and "人工" in last and "不能办" in last or "办不了" in last
    with Session(db_engine) as s:
        assert s.exec(select(Application)).first() is None


def test_veterans_insurance_by_sms_lists_documents_to_bring(engine, roll, db_engine):
    """On SMS the checklist is a list to bring to the service window; the application is still created."""
    chat = Chat(engine, "sms", ZHANG_PHONE)
    for answer in ("1", "是", "不是", "1", "张三", ZHANG_ID, "1998-12", "2002-12"):
        chat(answer)
    text = chat("江门市机械厂")
    assert "请带到服务窗口" in text and "解除劳动合同书" in text and "回复1提交" in text
    assert "NX-2026-" in chat("1")


def test_discharge_before_enlistment_is_refused(engine, roll, db_engine):
    """Dates are checked against each other."""
    out = console(engine, db_engine, ZHANG_PHONE, f"1\n是\n不是\n1\n张三\n{ZHANG_ID}\n2002年12月\n1998年12月")
    assert "应该在2002-12-01之后" in out


def test_mutual_aid_claim_end_to_end(engine, roll, db_engine):
    """Seed 004: a member for 2026 claims a hospital stay with amount and serious-illness flag."""
    out = console(engine, db_engine, LI_PHONE, """
2
2026-1-5到2026-1-20
江门市中心医院
8,600元
是
跳过
跳过
1
""")
    assert "8600元" in out and "已提交" in out
    with Session(db_engine) as s:
        app = s.exec(select(Application)).one()
    assert app.type == "mutual_aid_claim"
    assert app.data["stay"] == {"start": "2026-01-05", "end": "2026-01-20"}
    assert app.data["amount"] == 860000 and app.data["serious_illness"] == "yes"


def test_mutual_aid_claim_without_membership_says_so_and_offers_a_person(engine, roll, db_engine):
    """Without a membership for the current year: told plainly (100 yuan a year), a person offered."""
    out = console(engine, db_engine, ZHANG_PHONE, "2")
    assert "100元" in out and "人工" in out
    with Session(db_engine) as s:
        assert s.exec(select(Application)).first() is None


def test_hardship_help_creates_an_application_and_a_visit(engine, roll, db_engine):
    """Hardship help: an application and a community visit task, priority for the very old living alone."""
    out = console(engine, db_engine, ZHANG_PHONE, "3\n2\n老伴去世后一个人住，退休金不够看病\n1500\n1")
    assert "已提交" in out
    with Session(db_engine) as s:
        app = s.exec(select(Application)).one()
        task = s.exec(select(Task)).one()
    assert app.type == "hardship" and app.data["monthly_income"] == 150000
    assert task.kind == "hardship_visit" and task.application_id == app.id and task.priority >= 8


def test_hospital_stay_report_creates_a_visit_task(engine, roll, db_engine):
    """Reporting a hospital stay opens a hospital-visit task with the details."""
    out = console(engine, db_engine, ZHANG_PHONE, "4\n江门市人民医院\n昨天\n心内科12床\n1")
    assert "看望" in out
    with Session(db_engine) as s:
        task = s.exec(select(Task)).one()
    assert task.kind == "hospital_visit" and task.beneficiary_id == roll.zhang
    assert "江门市人民医院" in task.note and "2026-03-01" in task.note


def test_a_reported_death_waits_for_staff_and_changes_nothing_until_confirmed(engine, roll, db_engine, clock):
    """A family member reports a death: the reporter is thanked and told what happens next; a
    verification task opens and outreach to the person pauses, but the record, the queued
    messages and the condolence visit wait until a caseworker confirms. Then all three follow."""
    from models.actions import confirm_report

    with session_scope(db_engine) as s:
        enqueue(s, key="festival:li", kind="festival_greeting", channel="sms", address=LI_PHONE, body="节日快乐",
                now=clock.now(), beneficiary_id=roll.li)
    # 2 is 配偶 in the one relationship list (子女 first, as linking numbers them).
    out = console(engine, db_engine, ZHANG_PHONE, f"5\n{LI_ID}\n2026-2-28\n2\n1")
    assert "请节哀" in out and "核实" in out
    with Session(db_engine) as s:
        li = s.get(Beneficiary, roll.li)
        row = s.exec(select(OutboxMessage)).one()
        task = s.exec(select(Task)).one()
    assert li.status == "active" and li.deceased_on is None and li.outreach_paused_at is not None
    assert row.status == "queued"
    assert task.kind == "verify_death" and task.beneficiary_id == roll.li
    assert task.details["report"]["died_on"] == "2026-02-28" and task.details["reporter"]["relationship"] == "spouse"
    with session_scope(db_engine) as s:
        confirm_report(s, s.get(Task, task.id), actor="wang", now=clock.now(), note="社区已核实")
    with Session(db_engine) as s:
        li = s.get(Beneficiary, roll.li)
        row = s.exec(select(OutboxMessage)).one()
        visit = s.exec(select(Task).where(Task.kind == "condolence_visit")).one()
    assert li.status == "deceased" and li.deceased_on == date(2026, 2, 28) and li.outreach_paused_at is None
    assert row.status == "suppressed"
    assert visit.beneficiary_id == roll.li


def test_death_report_for_someone_not_on_the_roll_goes_to_staff(engine, roll, db_engine):
    """Nobody is left without a reply: an unknown person's death becomes a ticket for staff."""
    console(engine, db_engine, ZHANG_PHONE, "5\n110105195001010012\n昨天\n2\n1")
    with Session(db_engine) as s:
        ticket = s.exec(select(HandoffTicket)).one()
    assert "1101**********0012" in ticket.question and "110105195001010012" not in ticket.question


def test_certification_home_visit_has_priority_for_the_very_old_living_alone(engine, roll, db_engine):
    """Seed 001: a home visit asked by someone over 80 living alone is a high-priority home-visit task."""
    out = console(engine, db_engine, ZHANG_PHONE, "6\n2\n1\n1")
    assert "每年要认证一次" in out and "安排好了" in out
    with Session(db_engine) as s:
        task = s.exec(select(Task)).one()
    assert task.kind == "home_visit" and task.priority >= 10


def test_certification_window_booking_creates_a_booking(engine, roll, db_engine):
    """Booking the window: a certification-booking task on the chosen day."""
    console(engine, db_engine, LI_PHONE, "6\n1\n2026-3-10\n1")
    with Session(db_engine) as s:
        task = s.exec(select(Task)).one()
    assert task.kind == "certification_booking" and task.due_on == date(2026, 3, 10)


def test_my_applications_explain_stage_missing_documents_and_next_step(engine, roll, db_engine):
    """Plain words: where it is, what is missing, what happens next; a payment notice gives amount and date."""
    console(engine, db_engine, ZHANG_PHONE, f"1\n是\n不是\n1\n张三\n{ZHANG_ID}\n1998-12\n2002-12\n厂\n以后\n1")
    with session_scope(db_engine) as s:
        app = s.exec(select(Application)).one()
        app.stage = "payment_notice"
        app.payment_amount_fen = 1234500
        app.payment_account = "6222000011112222"
        app.payment_deadline = date(2026, 4, 30)
        s.add(app)
    out = console(engine, db_engine, ZHANG_PHONE, "7", session="t2")
    assert "需要缴费" in out and "12345.00元" in out and "2026-04-30" in out
    assert "还缺：" in out and "身份证" in out


def test_survey_after_a_completed_service(engine, roll, db_engine, clock):
    """Seed 001: a 1–5 score and an optional comment, saved against the completed application."""
    out = console(engine, db_engine, ZHANG_PHONE, "8")
    assert "没有已经办完" in out
    with session_scope(db_engine) as s:
        app = Application(reference="NX-2026-777777", type="hardship", beneficiary_id=roll.zhang,
                          stage="completed", completed_at=clock.now())
        s.add(app)
    console(engine, db_engine, ZHANG_PHONE, "8\n4\n没有\n1", session="t2")
    with Session(db_engine) as s:
        ans = s.exec(select(SurveyAnswer)).one()
    assert ans.score == 4 and ans.comment == "" and ans.application_id is not None


def test_every_flow_answers_global_words_at_every_step(engine, roll, db_engine):
    """At each step of every flow: help repeats the step, back/menu/human answer, nothing is lost."""
    scripts = {
        "1": ["是", "不是", "1", "张三", ZHANG_ID, "1998-12", "2002-12", "厂"],
        "3": ["2", "困难", "100"],
        "4": ["医院", "今天", "跳过"],
        "5": [LI_ID, "今天", "1"],
        "6": ["2", "1"],
    }
    for menu, answers in scripts.items():
        chat = Chat(engine, "telegram", f"gw{menu}")
        from bot.commands import link_console as _  # noqa: F401
        engine.identity.link(_session := Session(db_engine), channel="telegram", address=f"gw{menu}",
                             beneficiary_id=roll.zhang, relationship=None, phone=None, now=engine.clock.now())
        _session.commit()
        _session.close()
        chat(menu)
        for n, answer in enumerate(answers):
            before = chat.state()
            assert before[0] is not None
            for word in ("帮助", "语言"):
                assert "人工" in chat(word) or "English" in chat.last[0].text
                assert chat.state() == before
            chat("0")
            assert chat.state() == (None, None)
            again = chat(menu)
            assert chat.state() == before
            assert n == 0 or "接着您上次的办理" in again
            chat(answer)
        chat("0")  # leave it parked, or the next chat of the same person would take it over


def test_flow_files_are_valid_and_numbered_for_the_menu():
    """The shipped flows load; menu numbers 1-8 are used once each."""
    flows = load_flows()
    assert sorted(f.menu for f in flows.values() if f.menu) == list(range(1, 9))


@pytest.mark.parametrize(("text", "message"), [
    ("id: x\ntitle: {zh-Hans: 标题}\nsteps: []\n", "title.en: missing text"),
    ("id: x\ntitle: {zh-Hans: a, en: b}\nsteps:\n  - {id: a, type: magic, prompt: {zh-Hans: a, en: b}}\n"
     "done: {zh-Hans: a, en: b}\n", "steps[0](a).type"),
    ("id: x\ntitle: {zh-Hans: a, en: b}\nsteps:\n  - {id: a, type: yes_no, prompt: {zh-Hans: a, en: b}, "
     "branch: {no: 'end:nowhere'}}\ndone: {zh-Hans: a, en: b}\n", "unknown ending 'nowhere'"),
    ("id: x\ntitle: {zh-Hans: a, en: b}\nsteps:\n  - {id: a, type: confirm, prompt: {zh-Hans: a, en: b}}\n"
     "on_complete: [{action: launch_rocket}]\ndone: {zh-Hans: a, en: b}\n", "on_complete[0].action"),
    ("id: x\ntitle: [unclosed\n", "not valid YAML"),
])
def test_a_broken_flow_file_is_an_error_naming_the_file_and_field(tmp_path: Path, text, message):
    """Start-up stops with the file and the field that is wrong."""
    (tmp_path / "99_broken.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(FlowError) as exc:
        load_flows(tmp_path)
    assert "99_broken.yaml" in str(exc.value) and message in str(exc.value)


def test_a_new_flow_file_appears_in_the_menu_without_engine_changes(tmp_path, db_engine, settings, clock, notifier):
    """A developer adds a flow by adding a file."""
    from bot.engine import Engine
    (tmp_path / "09_feedback.yaml").write_text("""
id: feedback
menu: 9
title: {zh-Hans: 提建议, en: Suggestions}
steps:
  - {id: idea, type: text, prompt: {zh-Hans: 请写建议, en: Your suggestion}}
  - {id: confirm, type: confirm, prompt: {zh-Hans: 核对, en: Check}}
on_complete: [{action: create_task, kind: callback}]
done: {zh-Hans: 谢谢建议, en: Thanks}
""", encoding="utf-8")
    engine = Engine(db_engine, settings, clock, notifier=notifier, flows=load_flows(tmp_path))
    chat = Chat(engine, "telegram", "nf1")
    assert "9. 提建议" in chat("0")
    chat("9")
    chat("多开几个窗口")
    assert "谢谢建议" in chat("1")
