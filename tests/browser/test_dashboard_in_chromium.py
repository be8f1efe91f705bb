"""The dashboard in a real Chromium: its funnel counts are the database's, in seed 003's order,
and its charts read without colour (every bar names its value)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from models.actions import audit
from models.applications import Application, HandoffTicket, SurveyAnswer, Task
from models.db import session_scope
from models.outbox import OutboxMessage
from models.staff import StaffUser, hash_password
from outreach.dashboard import BESIDE, FUNNEL
from tests.browser.outreach_console import CHROMIUM, FLAGS, live_console, screenshot, sign_in
from tests.scheduler.factories import person

pytestmark = pytest.mark.browser
PASSWORD = "dashboard-pass-1"


def _world(engine: Engine) -> None:
    rnd = random.Random(3)
    now = datetime.now(UTC)
    stages = [s.value for s in (*FUNNEL, *BESIDE)]
    with session_scope(engine) as s:
        people = [person(s, is_veteran=True, channel=rnd.choice(["sms", "telegram"])) for _ in range(12)]
        for i in range(60):
            s.add(Application(reference=f"NX-2026-{i:06d}", type=rnd.choice(["veteran_insurance", "hardship"]),
                              beneficiary_id=rnd.choice(people).id, stage=rnd.choices(stages, weights=[
                                  3, 8, 6, 5, 4, 3, 9, 2, 1])[0]))
        for hours in (0.2, 0.5, 2, 7, 30, 50, 100):
            s.add(HandoffTicket(channel="sms", address="+8613800000001", question="我的补缴怎么办？",
                                reason="personal_case", created_at=now - timedelta(hours=hours)))
        for i in range(40):
            status = rnd.choice(["delivered", "delivered", "sent", "failed", "suppressed", "queued"])
            s.add(OutboxMessage(idempotency_key=f"dash:{i}", kind="festival_greeting",
                                channel=rnd.choice(["sms", "telegram"]), address=str(i), body="节日快乐",
                                status=status, created_at=now - timedelta(days=rnd.randrange(0, 30))))
        for i in range(9):
            audit(s, "bot", "contact.opt_out", "contact", i, {}, now - timedelta(days=rnd.randrange(0, 80)))
        for score in (5, 5, 5, 4, 4, 3, 2):
            s.add(SurveyAnswer(score=score, created_at=now - timedelta(days=5)))
        s.add(Task(kind="home_visit", due_on=now.date()))
        s.add(StaffUser(username="viewer1", display_name="刘查看", roles=["viewer"],
                        password_hash=hash_password(PASSWORD)))


def test_the_dashboards_funnel_is_the_databases_in_the_order_of_seed_003(sqlite_engine: Engine,
                                                                         tmp_path: Path) -> None:
    """The funnel table lists staged → completed in seed 003's order, then returned and
    rejected; each count is the database's; the chart has a bar with its number for each;
    filtering by type counts that type only; no chart label is cut off."""
    from playwright.sync_api import sync_playwright

    _world(sqlite_engine)
    with Session(sqlite_engine) as s:
        all_counts = dict(s.execute(select(Application.stage, func.count()).group_by(Application.stage)).all())
        hardship = dict(s.execute(select(Application.stage, func.count()).where(Application.type == "hardship")
                                  .group_by(Application.stage)).all())
    with live_console(sqlite_engine, tmp_path) as live, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = sign_in(browser, live.url, "viewer1", PASSWORD)
        page.goto(live.url + "/")
        rows = page.locator("#funnel-table tbody tr")
        shown = [(rows.nth(i).get_attribute("data-stage"), int(rows.nth(i).locator("td").nth(1).inner_text()))
                 for i in range(rows.count())]
        bars = page.locator("#chart-funnel > rect").count()
        handoffs = page.inner_text("#fig-handoffs")
        # The left edge of every chart label, in its chart's own units: below 0 it is cut off.
        cut_off = page.evaluate("[...document.querySelectorAll('svg.chart text')]"
                                ".filter(t => t.getBBox().x < -0.5).map(t => t.textContent)")
        screenshot(page, "dashboard")
        page.select_option("#type", "hardship")
        page.click("form.filters button")
        page.wait_for_url("**/?type=hardship")
        rows = page.locator("#funnel-table tbody tr")
        only = {rows.nth(i).get_attribute("data-stage"): int(rows.nth(i).locator("td").nth(1).inner_text())
                for i in range(rows.count())}
        page.set_viewport_size({"width": 390, "height": 900})
        page.goto(live.url + "/")
        wide = page.evaluate("document.documentElement.scrollWidth > window.innerWidth + 2")
        screenshot(page, "dashboard-phone")
        browser.close()
    assert [code for code, _ in shown] == [s.value for s in (*FUNNEL, *BESIDE)]
    assert {code: n for code, n in shown} == {s.value: all_counts.get(s.value, 0) for s in (*FUNNEL, *BESIDE)}
    assert only == {s.value: hardship.get(s.value, 0) for s in (*FUNNEL, *BESIDE)}
    assert bars == len(FUNNEL) + len(BESIDE)
    assert handoffs == "7"
    assert cut_off == [], "chart labels cut off at the left"
    assert not wide, "the dashboard scrolls sideways at phone width"
