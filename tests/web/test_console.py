"""The web app: health, sign-in, and staff actions that change state and are audited."""

from __future__ import annotations

import re
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from models.applications import Application, ApplicationStageChange
from models.db import writer
from models.people import Beneficiary
from models.staff import AuditLog, StaffUser, hash_password
from settings import Settings
from web.app import create_app


@pytest.fixture
def client(db_engine: Engine, settings: Settings, clock: object) -> TestClient:
    with Session(db_engine) as s:
        s.add(StaffUser(username="wang", display_name="王社工", roles=["caseworker"],
                        password_hash=hash_password("correct horse")))
        person = Beneficiary(name="李大爷", id_hash="h" * 64, id_masked="4407**********1234", is_veteran=True)
        s.add(person)
        s.flush()
        s.add(Application(reference="NX-2026-000001", type="veteran_insurance", beneficiary_id=person.id,
                          stage="verification"))
        s.commit()
    return TestClient(create_app(settings, db_engine, clock=clock))  # type: ignore[arg-type]


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "form has no CSRF token"
    return match.group(1)


def _sign_in(client: TestClient, password: str = "correct horse") -> None:
    token = _csrf(client.get("/login").text)
    client.post("/login", data={"username": "wang", "password": password, "csrf": token, "next": "/"})


def test_healthz_reports_the_database(client: TestClient, db_engine: Engine) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["database"] == db_engine.dialect.name


def test_console_pages_need_sign_in(client: TestClient) -> None:
    for path in ("/", "/applications", "/tickets", "/tasks", "/audit"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_wrong_password_is_refused_and_audited(client: TestClient, db_engine: Engine) -> None:
    _sign_in(client, password="wrong")
    assert client.get("/", follow_redirects=False).status_code == 303
    with Session(db_engine) as s:
        assert s.exec(select(AuditLog).where(AuditLog.action == "staff.login_failed")).one().actor == "wang"


def test_a_form_without_its_csrf_token_changes_nothing(client: TestClient, db_engine: Engine) -> None:
    _sign_in(client)
    response = client.post("/applications/1/stage", data={"to_stage": "completed", "csrf": "forged"})
    assert response.status_code == 400
    with Session(db_engine) as s:
        assert s.get(Application, 1).stage == "verification"  # type: ignore[union-attr]


def test_staff_move_an_application_and_the_change_is_recorded_and_audited(client: TestClient,
                                                                          db_engine: Engine) -> None:
    _sign_in(client)
    token = _csrf(client.get("/applications/1").text)
    client.post("/applications/1/stage", data={
        "to_stage": "payment_notice", "amount_yuan": "36000.50", "account": "社保基金专户",
        "deadline": "2026-04-01", "confirm": "yes", "csrf": token})
    with Session(db_engine) as s:
        app = s.get(Application, 1)
        assert app is not None and app.stage == "payment_notice"
        assert (app.payment_amount_fen, app.payment_deadline) == (3_600_050, date(2026, 4, 1))
        change = s.exec(select(ApplicationStageChange)).one()
        assert change.actor == "wang" and change.to_stage == "payment_notice"
        assert s.exec(select(AuditLog).where(AuditLog.action == "application.stage")).one().actor == "wang"


def test_a_payment_notice_without_amount_is_refused_with_a_message(client: TestClient, db_engine: Engine) -> None:
    _sign_in(client)
    token = _csrf(client.get("/applications/1").text)
    page = client.post("/applications/1/stage", data={"to_stage": "payment_notice", "csrf": token}).text
    assert "未能更新" in page
    with Session(db_engine) as s:
        assert s.get(Application, 1).stage == "verification"  # type: ignore[union-attr]


def _open_ticket(db_engine: Engine) -> int:
    from models.applications import HandoffTicket

    with Session(db_engine) as s:
        ticket = HandoffTicket(channel="sms", address="+8613800138000", question="我家门口的路灯坏了找谁修？",
                               reason="out_of_scope", language="zh-Hans")
        s.add(ticket)
        s.commit()
        assert ticket.id is not None
        return ticket.id


def test_a_staff_answer_goes_out_through_the_outbox_on_the_persons_channel(client: TestClient,
                                                                            db_engine: Engine) -> None:
    from models.applications import HandoffTicket
    from models.outbox import OutboxMessage

    ticket_id = _open_ticket(db_engine)
    _sign_in(client)
    token = _csrf(client.get("/tickets").text)
    page = client.post(f"/tickets/{ticket_id}/reply", data={"answer": "请拨打12345反映，街道会派人维修。",
                                                           "csrf": token}).text
    assert "已回复" in page
    with Session(db_engine) as s:
        ticket = s.get(HandoffTicket, ticket_id)
        assert ticket is not None and (ticket.status, ticket.answered_by) == ("answered", "wang")
        queued = s.exec(select(OutboxMessage)).one()
        assert (queued.channel, queued.address, queued.kind) == ("sms", "+8613800138000", "handoff_answer")
        assert "12345反映" in queued.body
        assert s.exec(select(AuditLog).where(AuditLog.action == "ticket.answer")).one().actor == "wang"


def test_an_empty_answer_is_refused_and_the_ticket_stays_open(client: TestClient, db_engine: Engine) -> None:
    from models.applications import HandoffTicket

    ticket_id = _open_ticket(db_engine)
    _sign_in(client)
    token = _csrf(client.get("/tickets").text)
    page = client.post(f"/tickets/{ticket_id}/reply", data={"answer": "   ", "csrf": token}).text
    assert "未能回复" in page
    with Session(db_engine) as s:
        assert s.get(HandoffTicket, ticket_id).status == "open"  # type: ignore[union-attr]


def test_the_dashboard_shows_the_daily_summary(client: TestClient) -> None:
    _sign_in(client)
    page = client.get("/").text
    assert 'id="daily-summary"' in page and "今日到期资格认证" in page


def test_closing_a_home_visit_as_certified_records_the_certification(client: TestClient, db_engine: Engine,
                                                                      clock: object) -> None:
    """The visit is done and this year's certification is on record (reminders stop); audited."""
    from models.applications import Task

    with Session(writer(db_engine)) as s:
        person = s.exec(select(Beneficiary)).one()
        task = Task(kind="home_visit", key="home_visit:1:2026", beneficiary_id=person.id, priority=3)
        s.add(task)
        s.commit()
        task_id = task.id
    _sign_in(client)
    token = _csrf(client.get("/tasks").text)
    client.post(f"/tasks/{task_id}/done", data={"certified": "1", "csrf": token})
    with Session(db_engine) as s:
        assert s.get(Task, task_id).status == "done"  # type: ignore[union-attr]
        assert s.exec(select(Beneficiary)).one().last_certified_on == date(2026, 3, 2)
        assert s.exec(select(AuditLog).where(AuditLog.action == "beneficiary.certified")).one().actor == "wang"
