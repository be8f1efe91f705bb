"""The simulator in a real Chromium: staff talk to the real engine as a demo person and as a
stranger, in the Telegram and SMS looks; nothing of it reaches the office's records, its
figures or the providers."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from models.applications import HandoffTicket
from models.conversations import Conversation, MessageLog
from models.outbox import OutboxMessage
from models.staff import StaffUser, hash_password
from tests.browser.outreach_console import CHROMIUM, FLAGS, live_console, screenshot, sign_in

pytestmark = pytest.mark.browser
PASSWORD = "simulator-pass-1"


def _count(engine: Engine, model: type) -> int:
    with Session(engine) as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def test_the_simulators_messages_reach_no_provider_and_no_record(sqlite_engine: Engine, tmp_path: Path) -> None:
    """As the demo veteran on Telegram: the menu with its buttons, a button pressed, a policy
    question answered from the knowledge base; as a stranger by SMS: a request for a person.
    Every line is on the page, what would have been queued is marked as a test; then the
    real dispatcher runs with both fakes configured and sends nothing: the office's database
    holds no message, conversation, ticket or outbox row from it."""
    from playwright.sync_api import expect, sync_playwright

    with Session(sqlite_engine) as s:
        s.add(StaffUser(username="li", display_name="李经办", roles=["caseworker"], password_hash=hash_password(PASSWORD)))
        s.commit()
    with live_console(sqlite_engine, tmp_path) as live, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = sign_in(browser, live.url, "li", PASSWORD)
        page.goto(live.url + "/simulator?persona=veteran&channel=telegram")
        page.fill("#text", "菜单")
        page.click("form.sim-input button")
        transcript = page.locator("#transcript")
        expect(transcript.locator("li[data-direction=out]").last).to_contain_text("菜单", timeout=20000)
        buttons = transcript.locator(".tg-button")
        assert buttons.count() >= 3
        buttons.first.click()
        expect(transcript.locator("li[data-direction=in]")).to_have_count(2, timeout=20000)
        page.fill("#text", "老兵80岁以后有什么保险？")
        page.click("form.sim-input button")
        expect(transcript.locator("li[data-direction=in]").last).to_contain_text("保险", timeout=20000)
        screenshot(page, "simulator-telegram")

        page.goto(live.url + "/simulator?persona=stranger&channel=sms")
        page.fill("#text", "人工")
        page.click("form.sim-input button")
        expect(transcript.locator("li[data-direction=in]")).to_have_count(1, timeout=20000)
        expect(page.locator(".test-mark").first).to_be_visible()
        screenshot(page, "simulator-sms")
        browser.close()
        assert live.dispatch() == 0
        sent_telegram, sent_sms = list(live.telegram.sent), list(live.twilio.messages)
    assert (sent_telegram, sent_sms) == ([], [])
    for model in (MessageLog, Conversation, HandoffTicket, OutboxMessage):
        assert _count(sqlite_engine, model) == 0, model.__name__
    from models.db import make_engine

    sandbox_db = make_engine(f"sqlite:///{tmp_path / 'var' / 'simulator.db'}")  # the simulator's own file
    with Session(sandbox_db) as s:
        assert s.execute(select(func.count()).select_from(HandoffTicket)).scalar_one() >= 1
        assert s.execute(select(func.count()).select_from(MessageLog)).scalar_one() >= 6
    sandbox_db.dispose()
