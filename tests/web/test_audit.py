"""The audit log: sentences, filters, failed sign-ins kept apart, CSV export safe for spreadsheets."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

from sqlmodel import Session

from models.actions import audit
from models.applications import Task
from models.db import session_scope, write_scope
from tests.web.conftest import Console, World
from web.words import label


def _history(db_engine: Any, world: World, clock: Any) -> None:
    now = clock.now()
    with session_scope(db_engine) as s:
        audit(s, "caseworker", "application.stage", "application", world.application,
              {"reference": "NX-2026-000042", "from": "accepted", "to": "completed", "reason": None},
              now - timedelta(days=2))
        audit(s, "caseworker", "contact.opt_out", "contact", world.contact,
              {"channel": "sms", "address": "+86138****8000", "reason": "=HYPERLINK(\"http://x\")"},
              now - timedelta(days=1))
        audit(s, "admin", "staff.roles", "staff_user", world.staff["viewer"],
              {"username": "viewer", "from": ["viewer"], "to": ["viewer", "caseworker"]}, now)
        audit(s, "bot", "ticket.open", "handoff_ticket", world.ticket, {"reason": "personal_case",
                                                                       "channel": "sms"}, now)


def test_each_row_is_a_sentence_with_names_not_codes(console: Console, db_engine: Any, world: World,
                                                     clock: Any) -> None:
    _history(db_engine, world, clock)
    console.sign_in("admin")
    page = console.get("/audit").text
    rows = page[page.index('id="audit-rows"'):]
    assert "变更申请环节" in rows and "NX-2026-000042" in rows and "从“受理”改为“办结”" in rows
    assert "从“只读查看”改为“只读查看、经办人员”" in rows or "从“查看”改为“查看、经办人”" in rows
    assert "机器人" in rows and "个人情况" in rows
    for raw in ("{'", "application.stage", "contact.opt_out", "personal_case", "staff_user", "handoff_ticket"):
        assert raw not in rows, raw


def test_the_filters_narrow_by_staff_member_action_person_and_date(console: Console, db_engine: Any,
                                                                   world: World, clock: Any) -> None:
    _history(db_engine, world, clock)
    console.sign_in("admin")

    def shown(**params: str) -> int:
        page = console.client.get("/audit", params=params).text
        return page[page.index('id="audit-rows"'):].count("<tr><td")

    assert shown(actor="caseworker") == 2
    assert shown(action="staff.roles") == 1
    assert shown(person=str(world.person)) == 3  # the application, the contact, the ticket: all about 黄伯
    today = clock.now().astimezone(console.client.app.state.settings.tz).date()  # type: ignore[attr-defined]
    # The two days before today hold the stage change and the opt-out (today has the sign-in too).
    two_days = (today - timedelta(days=2)).isoformat(), (today - timedelta(days=1)).isoformat()
    assert shown(date_from=two_days[0], date_to=two_days[1]) == 2


def test_failed_sign_ins_do_not_push_real_entries_out_of_view(console: Console, db_engine: Any, world: World,
                                                              clock: Any, new_console: Any) -> None:
    _history(db_engine, world, clock)
    guesser = new_console()
    for _ in range(12):
        guesser.sign_in("admin", "guess-guess-guess")
    console.sign_in("approver")  # the admin account is locked for the minute
    page = console.get("/audit").text
    assert "另有 11 条登录失败记录没有显示" in page  # ten wrong passwords and one lock
    assert "变更申请环节" in page
    with_signins = console.client.get("/audit", params={"signins": "1"}).text
    assert "登录失败" in with_signins and "登录尝试过多被暂停" in with_signins


def test_the_csv_export_has_the_selection_with_formula_cells_escaped(console: Console, db_engine: Any,
                                                                     world: World, clock: Any) -> None:
    """The CSV holds exactly the filtered entries, actions named in the catalogue's staff words, and no
    cell a spreadsheet would run as a formula (a masked phone starting with + is escaped)."""
    _history(db_engine, world, clock)
    console.sign_in("approver")
    response = console.client.get("/audit.csv", params={"actor": "caseworker"})
    assert response.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert lines[0] == ["时间", "操作人", "操作", "对象", "详情"]
    assert len(lines) == 3 and {line[2] for line in lines[1:]} == {label("audit_action", "application.stage"),
                                                                  label("audit_action", "contact.opt_out")}
    assert all(not cell.startswith(("=", "+", "-", "@")) for line in lines for cell in line)
    with Session(db_engine):
        pass


def test_an_entry_about_a_task_or_an_application_names_the_person_it_is_about(console: Console, db_engine: Any,
                                                                               world: World, clock: Any) -> None:
    """A row about a task or an application says whom it concerns, so "新建任务：上门认证" is never a
    sentence without a person: the task kind and the reference are followed by the person's name."""
    with session_scope(db_engine) as s:
        audit(s, "scheduler", "task.create", "task", world.task, {"kind": "home_visit"}, clock.now())
        audit(s, "caseworker", "application.stage", "application", world.application,
              {"reference": "NX-2026-000042", "from": "accepted", "to": "completed"}, clock.now())
    console.sign_in("admin")
    page = console.get("/audit").text
    rows = page[page.index('id="audit-rows"'):]
    with Session(db_engine) as s:
        task = s.get(Task, world.task)
        assert task is not None and task.beneficiary_id == world.person
    assert f"{label('task_kind', task.kind)}（黄伯）" in rows
    assert "NX-2026-000042（黄伯）" in rows


def test_visits_closed_by_a_recorded_death_read_as_sentences_with_the_reason(console: Console, db_engine: Any,
                                                                            world: World, clock: Any) -> None:
    """Recording a death cancels the person's open home visit; the audit log says so in words (取消任务,
    the visit and the person, 原因：本人已去世), never the recorded code "deceased"."""
    from models.actions import record_death
    from models.people import Beneficiary

    with write_scope(db_engine) as s:
        person = s.get(Beneficiary, world.person)
        assert person is not None
        record_death(s, person, died_on=clock.now().date(), actor="caseworker", reported_by="女儿",
                     evidence="死亡证明", reason="家属来电", now=clock.now())
    with Session(db_engine) as s:
        task = s.get(Task, world.task)
        assert task is not None and task.status == "cancelled"
    console.sign_in("admin")
    page = console.get("/audit", params={"action": "task.cancel"}).text
    rows = page[page.index('id="audit-rows"'):]
    assert label("audit_action", "task.cancel") in rows and f"{label('task_kind', 'home_visit')}（黄伯）" in rows
    assert "原因：本人已去世" in rows and "deceased" not in rows
