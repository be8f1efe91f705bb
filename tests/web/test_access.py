"""Who may open which page and take which action: every route, every role, and strangers."""

from __future__ import annotations

import re
from typing import Any

from fastapi.routing import APIRoute
from sqlmodel import Session, select

from models.applications import Application, HandoffTicket, Task
from models.outbox import Broadcast
from models.staff import AuditLog
from tests.web.conftest import ROLES, Console, World

ALL = frozenset(ROLES)
CASE_READ = frozenset({"viewer", "caseworker"})
OUTREACH_READ = frozenset({"viewer", "caseworker", "composer", "approver"})
KNOWLEDGE_EDIT = frozenset({"caseworker", "composer", "approver"})
SIMULATOR = frozenset({"caseworker", "composer", "approver"})
# (method, path) -> the roles that may use it (administrators may use everything).
# Written out here, not read from the code: the code must agree with this table.
PERMISSIONS: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/"): ALL,
    ("GET", "/account"): ALL,
    ("POST", "/account/language"): ALL,
    ("POST", "/account/password"): ALL,
    ("POST", "/account/tokens"): ALL,
    ("POST", "/account/tokens/{token_id}/revoke"): ALL,
    ("GET", "/account/telegram"): ALL,
    ("POST", "/account/telegram/code"): ALL,
    ("POST", "/account/telegram/unlink"): ALL,
    ("GET", "/applications"): CASE_READ,
    ("GET", "/applications/{app_id}"): CASE_READ,
    ("POST", "/applications/{app_id}/stage"): frozenset({"caseworker"}),
    ("POST", "/applications/{app_id}/documents/{doc_id}"): frozenset({"caseworker"}),
    ("GET", "/applications/{app_id}/documents/{doc_id}/file"): CASE_READ,
    ("GET", "/tickets"): CASE_READ,
    ("GET", "/tickets/{ticket_id}"): CASE_READ,
    ("POST", "/tickets/{ticket_id}/reply"): frozenset({"caseworker"}),
    ("POST", "/tickets/{ticket_id}/close"): frozenset({"caseworker"}),
    ("POST", "/tickets/{ticket_id}/assign"): frozenset({"caseworker"}),
    ("POST", "/tickets/{ticket_id}/draft"): frozenset({"caseworker"}),
    ("GET", "/people"): CASE_READ,
    ("GET", "/people/{person_id}"): CASE_READ,
    ("POST", "/people/{person_id}/certification"): frozenset({"caseworker"}),
    ("POST", "/people/{person_id}/move"): frozenset({"caseworker"}),
    ("POST", "/people/{person_id}/death"): frozenset({"caseworker"}),
    ("POST", "/people/{person_id}/contacts"): frozenset({"caseworker"}),
    ("POST", "/people/{person_id}/contacts/{contact_id}"): frozenset({"caseworker"}),
    ("GET", "/tasks"): CASE_READ,
    ("GET", "/tasks/{task_id}"): CASE_READ,
    ("POST", "/tasks/{task_id}/done"): frozenset({"caseworker"}),
    ("POST", "/tasks/{task_id}/note"): frozenset({"caseworker"}),
    ("POST", "/tasks/{task_id}/assign"): frozenset({"caseworker"}),
    ("POST", "/tasks/{task_id}/confirm"): frozenset({"caseworker"}),
    ("POST", "/tasks/{task_id}/reject"): frozenset({"caseworker"}),
    ("GET", "/import"): frozenset(),
    ("POST", "/import"): frozenset(),
    ("GET", "/import/{token}"): frozenset(),
    ("POST", "/import/{token}/confirm"): frozenset(),
    ("GET", "/import/{token}/report.csv"): frozenset(),
    ("GET", "/audit"): frozenset({"approver"}),
    ("GET", "/audit.csv"): frozenset({"approver"}),
    ("GET", "/staff"): frozenset(),
    ("POST", "/staff"): frozenset(),
    ("POST", "/staff/{user_id}/roles"): frozenset(),
    ("POST", "/staff/{user_id}/active"): frozenset(),
    ("POST", "/staff/{user_id}/password"): frozenset(),
    # Outreach: a viewer sees, a composer composes, an approver approves (issue #14).
    ("GET", "/broadcasts"): OUTREACH_READ,
    ("GET", "/broadcasts/new"): frozenset({"composer"}),
    ("POST", "/broadcasts/new"): frozenset({"composer"}),
    ("POST", "/broadcasts/preview"): frozenset({"composer"}),
    ("GET", "/broadcasts/{broadcast_id}"): OUTREACH_READ,
    ("GET", "/broadcasts/{broadcast_id}/progress"): OUTREACH_READ,
    ("GET", "/broadcasts/{broadcast_id}/edit"): frozenset({"composer"}),
    ("POST", "/broadcasts/{broadcast_id}/edit"): frozenset({"composer"}),
    ("POST", "/broadcasts/{broadcast_id}/submit"): frozenset({"composer"}),
    ("POST", "/broadcasts/{broadcast_id}/approve"): frozenset({"approver"}),
    ("POST", "/broadcasts/{broadcast_id}/send-back"): frozenset({"approver"}),
    ("POST", "/broadcasts/{broadcast_id}/send"): frozenset({"composer", "approver"}),
    ("POST", "/broadcasts/{broadcast_id}/schedule"): frozenset({"composer", "approver"}),
    ("POST", "/broadcasts/{broadcast_id}/cancel"): frozenset({"composer", "approver"}),
    ("GET", "/knowledge"): OUTREACH_READ,
    ("GET", "/knowledge/new"): KNOWLEDGE_EDIT,
    ("POST", "/knowledge/new"): KNOWLEDGE_EDIT,
    ("POST", "/knowledge/preview"): KNOWLEDGE_EDIT,
    ("POST", "/knowledge/from-ticket/{ticket_id}"): KNOWLEDGE_EDIT,
    ("GET", "/knowledge/{article_id}/{language}"): OUTREACH_READ,
    ("POST", "/knowledge/{article_id}/{language}"): KNOWLEDGE_EDIT,
    ("POST", "/knowledge/{article_id}/{language}/review"): frozenset({"approver"}),
    ("POST", "/knowledge/{article_id}/{language}/retire"): frozenset({"approver"}),
    ("GET", "/outbox"): OUTREACH_READ,
    ("GET", "/outbox/{message_id}"): OUTREACH_READ,
    ("POST", "/outbox/{message_id}/retry"): frozenset({"caseworker", "composer"}),
    ("POST", "/outbox/{message_id}/cancel"): frozenset({"caseworker", "composer"}),
    ("GET", "/simulator"): SIMULATOR,
    ("POST", "/simulator/send"): SIMULATOR,
    ("POST", "/simulator/restart"): SIMULATOR,
    ("GET", "/schedule"): OUTREACH_READ,
    ("POST", "/schedule/occasions/{occasion}"): frozenset({"approver"}),
    ("POST", "/logout"): ALL,
}
PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/login"), ("POST", "/login"), ("GET", "/login/language"),
          ("POST", "/webhooks/twilio/sms"), ("POST", "/webhooks/twilio/status"), ("POST", "/webhooks/telegram")}
# Outside the console's sessions: answered only with its own bearer token (tests/scale checks it).
TOKEN_ONLY = {("GET", "/metrics")}
# Routes that end the session come last in a walk.
LAST = {("POST", "/logout")}


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    out: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            out.append(route)
        elif hasattr(route, "original_router"):  # an included router
            out.extend(_api_routes(route.original_router.routes))
    return out


def _routes(app: Any) -> set[tuple[str, str]]:
    return {(method, route.path) for route in _api_routes(app.routes) for method in route.methods - {"HEAD"}}


def _declares_roles(route: APIRoute) -> bool:
    return any(hasattr(dep.call, "roles") for dep in route.dependant.dependencies)


def _concrete(path: str, world: World, role: str) -> str:
    ids = {"app_id": world.application, "ticket_id": world.ticket, "task_id": world.task,
           "person_id": world.person, "contact_id": world.contact,
           "user_id": world.staff["viewer"], "broadcast_id": world.broadcast, "token_id": 1,
           "token": "no-such-upload-token", "doc_id": world.document,
           "message_id": world.message, "occasion": "mid_autumn",
           "article_id": "mutual-cost", "language": "zh-Hans"}
    return re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), path)


def _walk_order() -> list[tuple[str, str]]:
    return sorted(PERMISSIONS, key=lambda r: (r in LAST, r[0] == "POST", r[1]))


def test_every_route_is_in_the_permission_table(app: Any) -> None:
    """A route added without saying who may use it fails here: the table and the app agree exactly,
    and every console route declares its roles through the one dependency."""
    assert _routes(app) == set(PERMISSIONS) | PUBLIC | TOKEN_ONLY
    for route in _api_routes(app.routes):
        for method in route.methods - {"HEAD"}:
            if (method, route.path) in PERMISSIONS:
                assert _declares_roles(route), route.path


def test_a_stranger_is_sent_to_sign_in_from_every_console_route(console: Console, world: World) -> None:
    """Pages redirect to /login (coming back afterwards); actions are refused with a page, not run."""
    for method, path in _walk_order():
        url = _concrete(path, world, "stranger")
        if method == "GET":
            response = console.get(url)
            assert response.status_code == 303, (method, path)
            assert response.headers["location"].startswith("/login?next="), (method, path)
        else:
            response = console.client.post(url, data={"csrf": "x", "answer": "想改点东西"}, follow_redirects=False)
            assert response.status_code == 401, (method, path)
            assert "请先登录" in response.text and "<html" in response.text
    assert console.get("/healthz").status_code == 200
    assert console.get("/login").status_code == 200
    assert console.get("/metrics").status_code in (401, 404)  # never without its token


def test_each_role_is_refused_every_page_and_action_it_may_not_use(new_console: Any, world: World,
                                                                  db_engine: Any) -> None:
    """For every role and every route: refused ones answer 403 with a page and are audited; allowed
    ones are not refused. A viewer and a composer, walked first, change nothing at all."""
    def state() -> tuple[Any, ...]:
        with Session(db_engine) as s:
            return (s.get(Application, world.application).stage, s.get(HandoffTicket, world.ticket).status,  # type: ignore[union-attr]
                    s.get(Task, world.task).status, s.get(Broadcast, world.broadcast).status)  # type: ignore[union-attr]

    before = state()
    for role in ("viewer", "composer", "caseworker", "approver", "admin"):
        console = new_console()
        assert console.sign_in(role).status_code == 303
        for method, path in _walk_order():
            allowed = role == "admin" or role in PERMISSIONS[(method, path)]
            url = _concrete(path, world, role)
            if method == "GET":
                response = console.get(url)
            else:
                response = console.post(url, {"answer": ""}, from_page="/account")
            if allowed:
                assert response.status_code not in (401, 403), (role, method, path, response.status_code)
            else:
                assert response.status_code == 403, (role, method, path, response.status_code)
                assert "没有权限" in response.text
        if role in ("viewer", "composer"):
            assert state() == before, f"a {role} changed something"
    with Session(db_engine) as s:
        refused = s.exec(select(AuditLog).where(AuditLog.action == "staff.refused")).all()
    assert {a.actor for a in refused} == {"viewer", "composer", "caseworker", "approver"}
    assert any(a.details["path"] == f"/applications/{world.application}/stage" and a.actor == "viewer"
               for a in refused)


def test_pages_show_only_the_menu_entries_a_role_may_open(new_console: Any, world: World) -> None:
    """The composer's menu has no casework, no audit, no staff; the viewer's has casework and the
    outreach pages to read, no administration."""
    composer = new_console()
    composer.sign_in("composer")
    page = composer.get("/").text
    assert 'href="/broadcasts"' in page
    assert all(f'href="{p}"' not in page for p in ("/people", "/applications", "/audit", "/staff", "/import"))
    viewer = new_console()
    viewer.sign_in("viewer")
    page = viewer.get(f"/applications/{world.application}").text
    assert 'href="/applications"' in page and 'href="/broadcasts"' in page  # a viewer sees outreach (issue #14)
    assert 'href="/staff"' not in page and 'href="/import"' not in page
    assert 'action="/applications/' not in page  # no action form for a viewer


def test_metrics_answer_only_their_bearer_token_never_a_console_session(db_engine: Any, settings: Any,
                                                                       clock: Any, world: World) -> None:
    """/metrics is outside the console: a stranger, a wrong token and even a signed-in administrator
    without the token are refused; the configured bearer token alone gets the figures."""
    from fastapi.testclient import TestClient

    from web.app import create_app

    app = create_app(settings.model_copy(update={"metrics_token": "metrics-secret-1"}), db_engine, clock=clock)
    console = Console(TestClient(app))
    assert console.get("/metrics").status_code == 401
    assert console.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert console.sign_in("admin").status_code == 303
    assert console.get("/metrics").status_code == 401
    answer = console.get("/metrics", headers={"Authorization": "Bearer metrics-secret-1"})
    assert answer.status_code == 200 and "# TYPE" in answer.text
