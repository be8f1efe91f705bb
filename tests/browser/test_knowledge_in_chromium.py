"""Knowledge review in a real Chromium: edit an article with the live preview, an invalid one
refused with its reasons, review by a second member, and `nuanxin ask` and a bot that was
already running answer with the new text (no restart)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from models.staff import StaffUser, hash_password
from tests.browser.outreach_console import CHROMIUM, FLAGS, ROOT, live_console, screenshot, sign_in

pytestmark = pytest.mark.browser
PASSWORD = "knowledge-pass-1"
QUESTION = "医疗互助一年交多少钱"


def _ask(db_file: Path, data_dir: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "TWILIO_", "DATABASE_URL"))}
    env.update({"DATABASE_URL": f"sqlite:///{db_file}", "NUANXIN_DATA_DIR": str(data_dir)})
    out = subprocess.run([sys.executable, "-m", "cli", "ask", QUESTION, "--json"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_an_edited_article_answers_once_a_second_member_reviews_it(sqlite_engine: Engine, tmp_path: Path) -> None:
    """Li saves a draft with broken front matter: the page lists the problem and Chen's review
    is refused with it. Li edits 'what mutual aid costs' to 120 yuan and sees the preview
    answer with it; the draft does not answer yet; Chen reviews it and the page names him; then `nuanxin ask` answers 120 yuan, and so does the
    Q&A a running bot built before the review."""
    from playwright.sync_api import expect, sync_playwright

    from bot.knowledge_store import live_qa

    with Session(sqlite_engine) as s:
        s.add(StaffUser(username="li", display_name="李经办", roles=["caseworker"], password_hash=hash_password(PASSWORD)))
        s.add(StaffUser(username="chen", display_name="陈科长", roles=["approver"], password_hash=hash_password(PASSWORD)))
        s.commit()
    db_file = Path(str(sqlite_engine.url.database))
    running = live_qa(sqlite_engine)  # a bot started before anything changed
    assert "100元" in running.answer(QUESTION).answer
    with live_console(sqlite_engine, tmp_path) as live, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        li = sign_in(browser, live.url, "li", PASSWORD)
        li.goto(live.url + "/knowledge/mutual-cost/zh-Hans")
        original = li.input_value("#text")
        li.fill("#text", "---\nid: mutual-cost\ntitle: [不完整\n---\n答案")
        li.click("#article-form button")
        expect(li.locator("#form-problems")).to_contain_text("front matter")
        chen = sign_in(browser, live.url, "chen", PASSWORD)
        chen.goto(live.url + "/knowledge/mutual-cost/zh-Hans")
        chen.click("form[action$='/review'] button")
        expect(chen.locator(".flash")).to_contain_text("不能审核通过")
        edited = original.replace("每年交100元", "每年交120元")
        li.fill("#text", edited)
        li.fill("#question", QUESTION)
        expect(li.locator("#knowledge-preview [data-testid=answer]")).to_contain_text("120元", timeout=20000)
        screenshot(li, "knowledge-edit")
        li.click("#article-form button")
        expect(li.locator(".flash")).to_contain_text("草稿已保存")
        assert "100元" in _ask(db_file, tmp_path / "var")["answer"]  # a draft answers nothing

        chen.goto(live.url + "/knowledge/mutual-cost/zh-Hans")
        chen.click("form[action$='/review'] button")
        expect(chen.locator(".flash")).to_contain_text("已审核通过")
        expect(chen.locator("[data-testid=reviewed-by]")).to_contain_text("chen")
        screenshot(chen, "knowledge-reviewed")
        chen.goto(live.url + "/knowledge?state=reviewed")
        expect(chen.locator("tr[data-article=mutual-cost] td").nth(3)).to_have_text("chen")
        screenshot(chen, "knowledge")
        browser.close()
    answer = _ask(db_file, tmp_path / "var")
    assert answer["handoff"] is False and "120元" in str(answer["answer"])
    assert "120元" in running.answer(QUESTION).answer
