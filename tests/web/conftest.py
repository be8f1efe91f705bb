"""Console fixtures: one staff member per role, a small casework world, and a signed-in client."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine
from sqlmodel import Session

from models.applications import Application, ApplicationDocument, HandoffTicket, Task
from models.clock import FakeClock
from models.outbox import Broadcast, OutboxMessage
from models.people import Beneficiary, Contact
from models.staff import StaffUser, hash_password
from settings import Settings
from web.app import create_app

PASSWORD = "staff-password-1"
ROLES = ("viewer", "caseworker", "composer", "approver", "admin")


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


@dataclass
class World:
    """Ids of what the console fixtures created."""

    staff: dict[str, int]
    person: int
    contact: int
    application: int
    document: int
    ticket: int
    task: int
    broadcast: int
    message: int  # an outbox row, queued


def build_world(engine: Engine) -> World:
    with Session(engine, expire_on_commit=False) as s:
        users = {role: StaffUser(username=role, display_name=f"{role} 同事", roles=[role],
                                 password_hash=hash_password(PASSWORD)) for role in ROLES}
        s.add_all(users.values())
        person = Beneficiary(name="黄伯", id_hash="b" * 64, id_masked="4407**********5678", is_veteran=True,
                             district="蓬江区", street="白沙街道", community="白沙社区", sex="M")
        s.add(person)
        s.flush()
        contact = Contact(beneficiary_id=person.id, channel="sms", address="+8613800138000", verified=True)
        s.add(contact)
        app = Application(reference="NX-2026-000042", type="veteran_insurance", beneficiary_id=person.id,
                          stage="accepted", channel="sms")
        ticket = HandoffTicket(channel="sms", address="+8613800138000", beneficiary_id=person.id,
                               question="我的补缴什么时候能办好？", reason="personal_case")
        task = Task(kind="home_visit", beneficiary_id=person.id, priority=5)
        s.add_all([app, ticket, task])
        s.flush()
        document = ApplicationDocument(application_id=app.id, code="discharge_form", received=True)
        s.add(document)
        s.flush()
        broadcast = Broadcast(title="重阳节活动通知", body={"zh-Hans": "重阳节社区有活动。"}, status="pending_approval",
                              created_by=users["composer"].id)
        s.add(broadcast)
        message = OutboxMessage(idempotency_key="world:1", kind="festival_greeting", channel="sms",
                                address="+8613800138000", body="重阳节快乐", beneficiary_id=person.id)
        s.add(message)
        s.commit()
        return World(staff={r: u.id for r, u in users.items()}, person=person.id, contact=contact.id,  # type: ignore[misc]
                     application=app.id, document=document.id, ticket=ticket.id, task=task.id, broadcast=broadcast.id,
                     message=message.id)  # type: ignore[arg-type]


class Console:
    """A browser-like client of the console: keeps cookies, finds CSRF tokens in pages."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def sign_in(self, username: str, password: str = PASSWORD) -> Response:
        token = csrf_of(self.client.get("/login").text)
        return self.client.post("/login", data={"username": username, "password": password, "csrf": token,
                                                "next": "/"}, follow_redirects=False)

    def token(self, path: str = "/") -> str:
        return csrf_of(self.client.get(path).text)

    def post(self, path: str, data: dict[str, Any] | None = None, *, from_page: str = "/",
             follow: bool = False, **kw: Any) -> Response:
        body = {"csrf": self.token(from_page), **(data or {})}
        return self.client.post(path, data=body, follow_redirects=follow, **kw)

    def get(self, path: str, **kw: Any) -> Response:
        return self.client.get(path, follow_redirects=False, **kw)


@pytest.fixture
def world(db_engine: Engine) -> World:
    return build_world(db_engine)


@pytest.fixture
def app(db_engine: Engine, settings: Settings, clock: FakeClock, world: World) -> Any:
    return create_app(settings, db_engine, clock=clock)


@pytest.fixture
def console(app: Any) -> Console:
    return Console(TestClient(app))


@pytest.fixture
def new_console(app: Any) -> Any:
    """Another browser (its own cookies) on the same console."""
    return lambda: Console(TestClient(app))
