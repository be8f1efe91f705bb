"""The staff console in a real Chromium (Debian's /usr/bin/chromium, driven by Playwright)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import Engine
from sqlmodel import Session, select

from models.applications import Application
from models.people import Beneficiary
from models.staff import AuditLog, StaffUser, hash_password
from settings import Settings
from web.app import create_app

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic"]


@pytest.fixture
def live_console(sqlite_engine: Engine, settings: Settings) -> Iterator[str]:
    with Session(sqlite_engine) as s:
        s.add(StaffUser(username="chen", display_name="陈科长", roles=["caseworker", "approver"],
                        password_hash=hash_password("s3cret-pass")))
        person = Beneficiary(name="黄伯", id_hash="b" * 64, id_masked="4407**********5678", is_veteran=True)
        s.add(person)
        s.flush()
        s.add(Application(reference="NX-2026-000042", type="veteran_insurance", beneficiary_id=person.id,
                          stage="preliminary_review"))
        s.commit()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings, sqlite_engine), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "console did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_staff_sign_in_and_return_an_application_for_documents(live_console: str, sqlite_engine: Engine,
                                                               tmp_path: Path) -> None:
    """A caseworker signs in, opens an application, returns it with a reason; the page shows
    the new stage and the database and audit log agree."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        context = browser.new_context(locale="zh-CN")
        page = context.new_page()
        page.goto(live_console + "/applications")
        assert "/login" in page.url
        page.fill("input[name=username]", "chen")
        page.fill("input[name=password]", "s3cret-pass")
        page.click("button[type=submit]")
        page.wait_for_url(live_console + "/applications")
        page.click("text=NX-2026-000042")
        page.select_option("select[name=to_stage]", "returned")
        page.fill("input[name=reason]", "请补交退役证复印件")
        page.click("text=更新并通知申请人")
        page.wait_for_selector(".flash")
        assert "退回补件" in page.inner_text(".flash")
        assert "请补交退役证复印件" in page.content()
        page.screenshot(path=str(tmp_path / "application.png"), full_page=True)
        browser.close()
    with Session(sqlite_engine) as s:
        app = s.exec(select(Application)).one()
        assert (app.stage, app.return_reason) == ("returned", "请补交退役证复印件")
        assert s.exec(select(AuditLog).where(AuditLog.action == "application.stage")).one().actor == "chen"
