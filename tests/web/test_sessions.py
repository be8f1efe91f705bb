"""Sign-in, sessions, CSRF and the security headers of the console."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from models.applications import Application
from models.clock import FakeClock
from models.db import writer
from models.staff import AuditLog, StaffUser
from tests.web.conftest import PASSWORD, Console, World


def _cookie(console: Console) -> tuple[str, str]:
    jar = console.client.cookies
    name = next(n for n in jar if n in ("nuanxin_session", "__Host-nuanxin"))
    return name, jar[name]


def test_a_cookie_saved_before_sign_out_is_refused_afterwards(console: Console, new_console: Any) -> None:
    """Sign-out revokes the session on the server: replaying the old cookie gets the sign-in page."""
    console.sign_in("caseworker")
    name, value = _cookie(console)
    assert console.get("/tasks").status_code == 200
    console.post("/logout")
    thief = new_console()
    thief.client.cookies.set(name, value)
    response = thief.get("/tasks")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_the_eleventh_wrong_password_in_a_minute_is_refused_even_when_right(console: Console, clock: FakeClock,
                                                                           db_engine: Any) -> None:
    """Ten wrong passwords for one name lock it for the rest of the minute, whatever is typed;
    after the minute the right password works again. One audit row per failure, one for the lock."""
    for _ in range(10):
        assert console.sign_in("caseworker", "wrong-password").status_code == 401
    locked = console.sign_in("caseworker", PASSWORD)
    assert locked.status_code == 401 and "尝试次数太多" in locked.text
    assert console.get("/").status_code == 303  # not signed in
    assert console.sign_in("caseworker", PASSWORD).status_code == 401
    clock.advance(timedelta(seconds=61))
    assert console.sign_in("caseworker", PASSWORD).status_code == 303
    with Session(db_engine) as s:
        actions = [a.action for a in s.exec(select(AuditLog).where(AuditLog.actor == "caseworker")).all()]
    assert actions.count("staff.login_failed") == 10 and actions.count("staff.login_locked") == 1


def test_wrong_passwords_from_one_address_lock_every_name_from_it(console: Console, clock: FakeClock) -> None:
    """Trying many names from one address is limited too (30 wrong passwords a minute)."""
    for i in range(30):
        console.sign_in(f"guess{i}", "wrong-password")
    assert console.sign_in("admin", PASSWORD).status_code == 401
    clock.advance(timedelta(seconds=61))
    assert console.sign_in("admin", PASSWORD).status_code == 303


def test_unknown_and_known_names_get_the_same_answer_after_the_same_work(console: Console,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """One argon2 check whatever the name (a dummy hash for unknown names), and the same words."""
    import models.staff_access as access

    checked: list[str] = []
    real = access.check_password

    def spy(password: str, stored: str) -> bool:
        checked.append(stored[:9])
        return real(password, stored)

    monkeypatch.setattr(access, "check_password", spy)
    unknown = console.sign_in("nobody-here", "wrong-password")
    known = console.sign_in("caseworker", "wrong-password")
    assert checked == ["$argon2id", "$argon2id"]
    assert unknown.status_code == known.status_code == 401
    assert "用户名或密码不对" in unknown.text and "用户名或密码不对" in known.text


def test_a_session_unused_for_the_idle_timeout_ends(console: Console, clock: FakeClock) -> None:
    """After 60 minutes without a request the cookie no longer works; the sign-in page says why."""
    console.sign_in("viewer")
    clock.advance(timedelta(minutes=59))
    assert console.get("/tasks").status_code == 200
    clock.advance(timedelta(minutes=61))
    response = console.get("/tasks")
    assert response.status_code == 303 and "expired=1" in response.headers["location"]
    assert "很久没有操作" in console.client.get(response.headers["location"]).text


def test_changing_the_password_signs_out_every_other_browser(console: Console, new_console: Any) -> None:
    """The member stays signed in where they changed it; elsewhere the old session is revoked."""
    other = new_console()
    other.sign_in("viewer")
    console.sign_in("viewer")
    response = console.post("/account/password", {"current_password": PASSWORD, "new_password": "a-new-password-2",
                                                   "new_password_again": "a-new-password-2"}, from_page="/account")
    assert response.status_code == 303
    assert console.get("/account").status_code == 200
    assert other.get("/account").status_code == 303
    assert new_console().sign_in("viewer", "a-new-password-2").status_code == 303


def test_an_admin_reset_or_deactivation_ends_the_members_sessions(console: Console, new_console: Any,
                                                                 world: World) -> None:
    member = new_console()
    member.sign_in("caseworker")
    console.sign_in("admin")
    console.post(f"/staff/{world.staff['caseworker']}/password", {"new_password": "reset-password-3"},
                 from_page="/staff")
    assert member.get("/tasks").status_code == 303
    member.sign_in("caseworker", "reset-password-3")
    console.post(f"/staff/{world.staff['caseworker']}/active", {"active": "no"}, from_page="/staff")
    assert member.get("/tasks").status_code == 303
    assert new_console().sign_in("caseworker", "reset-password-3").status_code == 401


def test_an_old_scrypt_hash_is_upgraded_to_argon2_at_sign_in(console: Console, db_engine: Any, world: World) -> None:
    import hashlib

    salt = b"0123456789abcdef"
    old = f"scrypt${salt.hex()}${hashlib.scrypt(PASSWORD.encode(), salt=salt, n=2**14, r=8, p=1).hex()}"
    with Session(writer(db_engine)) as s:
        user = s.get(StaffUser, world.staff["approver"])
        user.password_hash = old  # type: ignore[union-attr]
        s.add(user)
        s.commit()
    assert console.sign_in("approver").status_code == 303
    with Session(db_engine) as s:
        assert s.get(StaffUser, world.staff["approver"]).password_hash.startswith("$argon2id$")  # type: ignore[union-attr]


def test_session_cookie_is_http_only_and_same_site(console: Console) -> None:
    response = console.sign_in("viewer")
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie


def test_over_https_the_cookie_is_secure_and_host_prefixed(db_engine: Any, settings: Any, clock: FakeClock,
                                                           world: World) -> None:
    from fastapi.testclient import TestClient

    from web.app import create_app

    secure = settings.model_copy(update={"public_base_url": "https://console.example.org"})
    client = Console(TestClient(create_app(secure, db_engine, clock=clock), base_url="https://testserver"))
    cookie = client.sign_in("viewer").headers["set-cookie"]
    assert cookie.startswith("__Host-nuanxin=") and "Secure" in cookie and "HttpOnly" in cookie


def test_a_form_without_or_with_a_wrong_csrf_token_is_refused_and_keeps_the_typed_text(
        console: Console, db_engine: Any, world: World) -> None:
    """400 with the console's page; nothing changes; the reason typed is on the page, ready to resend."""
    console.sign_in("caseworker")
    for token in (None, "forged-token"):
        data = {"to_stage": "rejected", "reason": "材料不全，请补交退役证"}
        if token:
            data["csrf"] = token
        response = console.client.post(f"/applications/{world.application}/stage", data=data, follow_redirects=False)
        assert response.status_code == 400
        assert "表单已过期" in response.text and "材料不全，请补交退役证" in response.text
        assert 'name="csrf"' in response.text  # a fresh token, to send it again on purpose
    with Session(db_engine) as s:
        assert s.get(Application, world.application).stage == "accepted"  # type: ignore[union-attr]


def test_the_sign_in_form_needs_its_own_token(console: Console) -> None:
    response = console.client.post("/login", data={"username": "admin", "password": PASSWORD, "csrf": "x"},
                                   follow_redirects=False)
    assert response.status_code == 400 and console.get("/").status_code == 303


def test_sign_in_returns_only_to_a_path_on_this_site(console: Console) -> None:
    from tests.web.conftest import csrf_of

    token = csrf_of(console.client.get("/login").text)
    response = console.client.post("/login", data={"username": "viewer", "password": PASSWORD, "csrf": token,
                                                   "next": "//evil.example/steal"}, follow_redirects=False)
    assert response.headers["location"] == "/"


def test_every_answer_carries_the_content_security_policy(console: Console) -> None:
    """No inline script or style is allowed, and no site may frame the console."""
    for path in ("/login", "/healthz", "/static/console.css", "/no-such-page"):
        headers = console.get(path).headers
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert headers["x-frame-options"] == "DENY"


def test_a_missing_page_is_an_html_page_in_the_console_style(console: Console) -> None:
    console.sign_in("viewer")
    for path in ("/no-such-page", "/applications/99999", "/applications/not-a-number"):
        response = console.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert "找不到这个页面" in response.text and '"detail"' not in response.text


def test_the_language_is_remembered_for_the_staff_member(console: Console, new_console: Any) -> None:
    """Switched to English in one browser, the console is English in the next one too."""
    console.sign_in("viewer")
    console.post("/account/language", {"language": "en", "back": "/tasks"})
    assert 'lang="en"' in console.get("/tasks").text
    later = new_console()
    later.sign_in("viewer")
    page = later.get("/tasks").text
    assert 'lang="en"' in page and "Tasks" in page
