"""Broadcasts in a real Chromium: compose with the live count, four eyes, send through the
Twilio and Telegram fakes until delivered, and cancel a scheduled one."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update
from sqlmodel import Session

from models.actions import opt_out
from models.db import session_scope
from models.outbox import Broadcast, OutboxMessage
from models.people import Contact
from models.staff import AuditLog, StaffUser, hash_password
from tests.browser.outreach_console import CHROMIUM, FLAGS, live_console, screenshot, sign_in
from tests.scheduler.factories import local, person

pytestmark = pytest.mark.browser
PASSWORD = "outreach-pass-1"


def status(code: str) -> str:
    """A broadcast status as the console shows it (the catalogue's staff words)."""
    from bot.words import staff_label

    return staff_label("broadcast_status", code)


def _world(engine: Engine) -> None:
    """白沙街道 veterans: two by SMS and one on Telegram who will get it; one opted out and one
    who blocked the bot, who will not; a retiree elsewhere, not in the audience."""
    with session_scope(engine) as s:
        where = {"is_veteran": True, "district": "蓬江区", "street": "白沙街道"}
        person(s, name="王秀英", sex="F", channel="sms", **where)
        person(s, name="李建华", sex="M", channel="sms", **where)
        person(s, name="张建国", sex="M", **where)
        out = person(s, name="赵大爷", channel="sms", **where)
        opt_out(s, s.execute(select(Contact).where(Contact.beneficiary_id == out.id)).scalar_one(), reason="TD",
                actor="bot")
        blocked = person(s, name="钱大妈", **where)
        s.execute(update(Contact).where(Contact.beneficiary_id == blocked.id).values(blocked_at=local(2026, 1, 1)))
        person(s, name="孙师傅", is_retiree=True, street="环市街道")
        s.add(StaffUser(username="alice", display_name="李撰稿", roles=["composer", "approver"],
                        password_hash=hash_password(PASSWORD)))
        s.add(StaffUser(username="bob", display_name="陈科长", roles=["approver"], password_hash=hash_password(PASSWORD)))


def _compose(page, base: str, title: str, text: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(base + "/broadcasts/new")
    page.fill("#title", title)
    page.check("input[name=kinds][value=veteran]")
    page.fill("#street", "白沙街道")
    page.fill("#text_zh", text)


def test_compose_exclude_four_eyes_send_until_delivered_and_cancel_a_scheduled_one(
        sqlite_engine: Engine, tmp_path: Path) -> None:
    """Alice composes for 白沙街道's veterans and sees, while typing, three who will get it and
    the opted-out and blocked ones left out with their reasons; the SMS preview carries the
    office signature and 回复TD退订. She cannot approve her own broadcast; Bob approves and sends
    it; the dispatcher sends through the fakes and Twilio's signed receipts make the page's
    progress reach two delivered (the SMS) and one sent (Telegram). A second broadcast,
    scheduled for tomorrow and approved, is cancelled and queues nothing."""
    from playwright.sync_api import expect, sync_playwright

    _world(sqlite_engine)
    with live_console(sqlite_engine, tmp_path) as live, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        alice = sign_in(browser, live.url, "alice", PASSWORD)
        _compose(alice, live.url, "周六健康讲座", "{{ salutation }}，本周六上午九点社区活动室有健康讲座，欢迎参加。")
        result = alice.locator("#compose-result")
        expect(result.locator("[data-testid=reachable]")).to_have_text("3", timeout=15000)
        expect(result.locator("[data-reason=opted_out]")).to_contain_text("已退订")
        expect(result.locator("[data-reason=blocked]")).to_contain_text("已屏蔽机器人")
        sms = result.locator("figure.phone.sms").first
        expect(sms.locator(".bubble")).to_contain_text("【暖心服务中心】")
        expect(sms.locator(".bubble")).to_contain_text("回复TD退订")
        expect(result.locator("figure.phone.telegram .tg-button").first).to_have_text("主菜单")
        screenshot(alice, "broadcast-compose")
        alice.click("button[name=action][value=submit]")
        alice.wait_for_url(f"{live.url}/broadcasts/*")
        page_url = alice.url
        expect(alice.locator("[data-testid=status]")).to_have_text(status("pending_approval"))

        alice.click("form[action$='/approve'] button")
        expect(alice.locator(".flash")).to_contain_text("另一位审核人")
        expect(alice.locator("[data-testid=status]")).to_have_text(status("pending_approval"))

        bob = sign_in(browser, live.url, "bob", PASSWORD)
        bob.goto(page_url)
        bob.click("form[action$='/approve'] button")
        expect(bob.locator("[data-testid=status]")).to_have_text(status("approved"))
        bob.check("form[action$='/send'] input[name=confirmed]")
        bob.click("form[action$='/send'] button")
        expect(bob.locator(".flash")).to_contain_text("3")
        assert live.dispatch() == 3
        progress = bob.locator("#progress")
        expect(progress.locator("[data-status=delivered] b")).to_have_text("2", timeout=30000)
        expect(progress.locator("[data-status=sent] b")).to_have_text("1")
        screenshot(bob, "broadcast-delivered")

        tomorrow = (datetime.now(live.settings.tz) + timedelta(days=1)).date()
        _compose(alice, live.url, "重阳节活动", "{{ salutation }}，重阳节社区有敬老活动。")
        alice.check("input[name=when][value=later]")
        alice.fill("#send_date", tomorrow.isoformat())
        alice.fill("#send_time", "10:00")
        alice.click("button[name=action][value=submit]")
        alice.wait_for_url(f"{live.url}/broadcasts/*")
        second_url = alice.url
        bob.goto(second_url)
        bob.click("form[action$='/approve'] button")
        expect(bob.locator("[data-testid=status]")).to_have_text(status("scheduled"))
        bob.click("details.danger-zone summary")
        bob.check("form[action$='/cancel'] input[name=confirmed]")
        bob.click("form[action$='/cancel'] button")
        expect(bob.locator("[data-testid=status]")).to_have_text(status("cancelled"))
        screenshot(bob, "broadcast-cancelled")
        bob.goto(live.url + "/broadcasts?tab=done")
        screenshot(bob, "broadcasts")
        browser.close()
        delivered_bodies = [m.body for m in live.twilio.messages]

    assert len(delivered_bodies) == 2 and all(b.endswith("回复TD退订") for b in delivered_bodies)
    with Session(sqlite_engine) as s:
        first, second = s.execute(select(Broadcast).order_by(Broadcast.id)).scalars().all()
        assert (first.status, second.status) == ("sent", "cancelled")
        assert second.scheduled_for is not None and second.scheduled_for.astimezone(live.settings.tz).date() == tomorrow
        rows = s.execute(select(OutboxMessage.broadcast_id, OutboxMessage.status)).all()
        assert sorted(rows) == [(first.id, "delivered"), (first.id, "delivered"), (first.id, "sent")]
        actions = [(a.actor, a.action) for a in s.execute(
            select(AuditLog).where(AuditLog.target_type == "broadcast", AuditLog.target_id == str(first.id))
            .order_by(AuditLog.id)).scalars()]
    assert actions == [("alice", "broadcast.create"), ("alice", "broadcast.approve_refused"),
                       ("bob", "broadcast.approve"), ("bob", "broadcast.send")]
