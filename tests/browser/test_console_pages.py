"""The casework console in Chromium: every page for every role, at desk and phone width, and the
main journeys of a working day (import, review, payment notice, handoff, reported death, four eyes).
Each test saves full-page screenshots under test-artifacts/screenshots/."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from models.applications import Application, Task
from models.demo import roll_rows, write_roll_csv
from models.outbox import Broadcast, OutboxMessage
from models.people import Beneficiary
from tests.browser.conftest import HUANG_ID, Office, Shots, sideways_overflow, sign_in
from tests.web.test_access import PERMISSIONS

pytestmark = pytest.mark.browser

PAGES = ["/", "/people", "/people?q=黄", "/people/{huang}", "/applications", "/applications/{application}",
         "/tickets", "/tickets/{ticket}", "/tasks", "/import", "/audit", "/staff", "/account", "/broadcasts",
         "/broadcasts/new", "/knowledge", "/outbox", "/simulator", "/schedule"]


def _allowed(role: str) -> set[str]:
    """The pages `role` may open, read from the console's one permission table (tests/web/test_access.py),
    so this walk and the route-by-route check cannot disagree; the rest answer 403."""

    def shape(path: str) -> str:  # "/people/{huang}" and "/people/{person_id}" both read "/people/{}"
        return re.sub(r"\{[^}]+\}", "{}", path.split("?")[0])

    readable = {shape(path) for (method, path), roles in PERMISSIONS.items() if method == "GET" and role in roles}
    return {page for page in PAGES if shape(page) in readable}


def _url(office: Office, path: str) -> str:
    return office.url + path.format(**office.ids)


def test_every_page_works_at_desk_and_phone_width_for_an_administrator(browser: Any, office: Office,
                                                                       shots: Shots) -> None:
    """Each page is HTML in the console's style, with no sideways scroll at 390 px (a phone) nor at
    640 px (1280 px zoomed to 200%); a missing page is a page too, not JSON."""
    for width, tag in ((1280, "desk"), (390, "phone"), (640, "zoom200")):
        page = sign_in(browser, office, "admin", width=width)
        for path in [*PAGES, "/no-such-page"]:
            response = page.goto(_url(office, path))
            assert response is not None and "text/html" in response.headers["content-type"], path
            assert response.status == (404 if path == "/no-such-page" else 200), path
            assert sideways_overflow(page) <= 0, (path, width)
            assert "{" not in page.inner_text("h1"), path
            if tag != "zoom200":
                shots(page, (path.strip("/").replace("/", "_").replace("?", "_") or "home") + f"-{tag}")
        page.context.close()


def test_the_page_can_be_used_from_the_keyboard(browser: Any, office: Office) -> None:
    """The first Tab reaches "skip to the content"; every control on a form page is reachable by Tab."""
    with Session(office.engine) as s:
        app = s.get(Application, office.ids["application"])
        app.stage = "verification"  # type: ignore[union-attr]  # the payment notice's fields are on the form
        s.add(app)
        s.commit()
    page = sign_in(browser, office, "caseworker")
    page.goto(_url(office, "/applications/{application}"))
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "跳到正文"
    seen = set()
    for _ in range(120):
        page.keyboard.press("Tab")
        seen.add(page.evaluate("document.activeElement.name || document.activeElement.id || ''"))
    assert {"to_stage", "reason", "amount_yuan", "account", "deadline"} <= seen


@pytest.mark.parametrize("role", ["viewer", "composer"])
def test_a_viewer_and_a_composer_are_refused_every_page_they_may_not_use(browser: Any, office: Office,
                                                                        shots: Shots, role: str) -> None:
    page = sign_in(browser, office, role)
    allowed = _allowed(role)
    assert "/people" in allowed if role == "viewer" else "/broadcasts/new" in allowed
    for path in PAGES:
        response = page.goto(_url(office, path))
        assert response is not None
        if path in allowed:
            assert response.status == 200, (role, path)
        else:
            assert response.status == 403, (role, path)
            assert "没有权限" in page.inner_text("main")
            if path == "/audit":
                shots(page, f"refused-{role}")
    if role == "viewer":  # reading casework shows no form that changes it
        page.goto(_url(office, "/applications/{application}"))
        assert page.locator("form[action*='/stage']").count() == 0
        page.goto(_url(office, "/people/{huang}"))
        assert page.locator("form[action*='/death']").count() == 0


def test_import_a_roll_with_bad_rows_see_the_report_then_confirm(browser: Any, office: Office, shots: Shots,
                                                                tmp_path: Path) -> None:
    rows = roll_rows(12, seed=31)
    rows[2]["身份证号"] = "44070319500101001"  # 17 characters
    rows[5]["手机号"] = "12345"
    path = write_roll_csv(tmp_path / "白沙街道名册.csv", rows)
    page = sign_in(browser, office, "admin")
    page.goto(office.url + "/import")
    shots(page, "upload")
    page.set_input_files("input[name=roll]", str(path))
    page.click("text=检查这个文件")
    page.wait_for_selector("#would-import")
    assert page.inner_text("#would-import") == "10" and page.inner_text("#rejected-count") == "2"
    rejected = page.inner_text("#rejected-rows")
    assert "身份证号应为18位" in rejected and "4" in rejected and "7" in rejected
    shots(page, "checked")
    with Session(office.engine) as s:
        assert len(s.exec(select(Beneficiary)).all()) == 2  # only the fixture's two: nothing written yet
    page.click("button:has-text('确认导入')")
    page.wait_for_selector("#import-done")
    assert "新增 10 人" in page.inner_text("#import-done")
    shots(page, "imported")
    with Session(office.engine) as s:
        assert len(s.exec(select(Beneficiary)).all()) == 12


def _choose(page: Any, stage_label: str) -> None:
    page.select_option("select[name=to_stage]", label=stage_label)


def test_review_an_application_from_accepted_to_completed(browser: Any, office: Office, shots: Shots) -> None:
    """Each step is chosen; the payment notice and the completion are previewed and confirmed; the
    applicant's messages are in the outbox, on their Telegram chat."""
    page = sign_in(browser, office, "caseworker")
    page.goto(_url(office, "/applications/{application}"))
    assert "江门市机械厂" in page.inner_text("main") and "填写的身份证号和名册一致" in page.inner_text("main")
    assert page.locator("img.thumb").count() == 1
    shots(page, "accepted")
    for label in ("初审", "核查"):
        _choose(page, label)
        page.click("text=更新并通知申请人")
        page.wait_for_selector(".flash")
        assert label in page.inner_text(".flash")
    _choose(page, "缴费通知")
    page.fill("input[name=amount_yuan]", "一万二千五百")
    page.fill("input[name=account]", "江门市社会保险基金专户")
    page.fill("input[name=deadline]", "2026-04-30")
    page.click("text=更新并通知申请人")
    page.wait_for_selector("#message-preview")
    assert page.inner_text("#confirm-amount").startswith("12,500.00")
    assert "江门市社会保险基金专户" in page.inner_text("#message-preview")
    shots(page, "payment-notice-preview")
    page.click("button:has-text('确认')")
    page.wait_for_selector(".flash")
    _choose(page, "已缴费")
    page.click("text=更新并通知申请人")
    page.wait_for_selector(".flash")
    _choose(page, "办结")
    page.click("text=更新并通知申请人")
    page.wait_for_selector("#message-preview")
    shots(page, "completion-preview")
    with Session(office.engine) as s:
        assert s.get(Application, office.ids["application"]).stage == "paid"  # type: ignore[union-attr]
    page.click("button:has-text('确认')")
    page.wait_for_selector(".flash")
    assert "办结" in page.inner_text(".flash")
    shots(page, "completed")
    with Session(office.engine) as s:
        app = s.get(Application, office.ids["application"])
        notices = s.exec(select(OutboxMessage).where(OutboxMessage.beneficiary_id == office.ids["huang"])
                         .order_by(OutboxMessage.id)).all()  # type: ignore[arg-type]
    assert app is not None and app.stage == "completed" and app.payment_amount_fen == 1_250_000
    kinds = [m.kind for m in notices]
    assert kinds[:5] == ["stage_preliminary_review", "stage_verification", "stage_payment_notice", "stage_paid",
                         "stage_completed"]
    assert all(m.channel == "telegram" and m.address == "5001" for m in notices if m.kind.startswith("stage_"))
    page.goto(_url(office, "/people/{huang}"))
    assert "申请已办结" in page.inner_text("main") or "办结" in page.inner_text("main")


@pytest.mark.parametrize("amount, account, deadline, message", [
    ("-5", "江门市社会保险基金专户", "2026-04-30", "缴费金额必须大于 0"),
    ("1000", "x", "2026-04-30", "账户格式不对"),
    ("1000", "江门市社会保险基金专户", "2020-01-01", "截止日期必须在今天以后"),
    ("一千块左右", "江门市社会保险基金专户", "2026-04-30", "看不懂这个金额"),
])
def test_an_invalid_payment_notice_is_refused_with_a_clear_message(browser: Any, office: Office, shots: Shots,
                                                                  amount: str, account: str, deadline: str,
                                                                  message: str) -> None:
    with Session(office.engine) as s:
        app = s.get(Application, office.ids["application"])
        app.stage = "verification"  # type: ignore[union-attr]
        s.add(app)
        s.commit()
    page = sign_in(browser, office, "caseworker")
    page.goto(_url(office, "/applications/{application}"))
    _choose(page, "缴费通知")
    page.fill("input[name=amount_yuan]", amount)
    page.fill("input[name=account]", account)
    page.evaluate("document.querySelector('input[name=deadline]').removeAttribute('min')")
    page.fill("input[name=deadline]", deadline)
    page.click("text=更新并通知申请人")
    page.wait_for_selector(".errors")
    assert message in page.inner_text(".errors")
    assert page.input_value("input[name=amount_yuan]") == amount
    shots(page, "refused")
    with Session(office.engine) as s:
        assert s.get(Application, office.ids["application"]).stage == "verification"  # type: ignore[union-attr]


def test_answer_a_handoff_and_the_reply_is_queued_to_the_persons_channel(browser: Any, office: Office,
                                                                        shots: Shots) -> None:
    page = sign_in(browser, office, "caseworker")
    page.goto(office.url + "/tickets")
    assert "黄国华" in page.inner_text("main") and "+86137****2222" in page.inner_text("main")
    shots(page, "inbox")
    page.click("text=我的社保补缴什么时候能办好")
    shots(page, "ticket")
    page.fill("textarea[name=answer]", "黄伯您好，您的补缴已到核查环节，预计本月底出结果。")
    page.click("button:has-text('回复')")
    page.wait_for_selector(".flash")
    assert "已回复" in page.inner_text(".flash")
    with Session(office.engine) as s:
        row = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "handoff_answer")).one()
    assert (row.channel, row.address) == ("telegram", "5001") and "本月底" in row.body


def test_a_death_reported_through_the_bot_changes_nothing_until_a_caseworker_confirms(
        browser: Any, office: Office, shots: Shots) -> None:
    """Zhao, linked on the console channel, reports that Huang died (she is not his relative): the
    reply thanks her and says staff check; Huang stays active, paused, with a task to verify."""
    from bot.channels.console import run_lines
    from bot.commands import link_console
    from bot.engine import Engine

    bot = Engine(office.engine, office.settings, office.clock)
    address = link_console(office.engine, bot, "+8613900139000", "browser")
    out: list[str] = []
    run_lines(bot.handle, ["5", HUANG_ID, "2026-2-28", "4", "1"], address, out.append)
    assert "核实" in "\n".join(out)
    with Session(office.engine) as s:
        huang = s.get(Beneficiary, office.ids["huang"])
        task = s.exec(select(Task).where(Task.kind == "verify_death")).one()
    assert huang is not None and huang.status == "active" and huang.outreach_paused_at is not None
    page = sign_in(browser, office, "caseworker")
    page.goto(_url(office, "/people/{huang}"))
    main = page.inner_text("main")
    assert "主动联系已暂停" in main and "核实去世报告" in main and "2026-02-28" in main
    shots(page, "person-with-report")
    page.fill(f"#confirm-note-{task.id}", "社区主任上门确认，已见死亡证明")
    page.click("text=属实，更新记录")
    page.wait_for_selector(".flash")
    shots(page, "confirmed")
    with Session(office.engine) as s:
        huang = s.get(Beneficiary, office.ids["huang"])
    assert huang is not None and huang.status == "deceased" and huang.deceased_on == date(2026, 2, 28)


def test_one_person_cannot_approve_what_they_wrote_in_the_console(browser: Any, office: Office,
                                                                  shots: Shots) -> None:
    """The author of a broadcast, though an approver too, is warned on its page and refused on approving;
    it stays waiting until another approver approves it."""
    page = sign_in(browser, office, "author")
    page.goto(office.url + f"/broadcasts/{office.ids['broadcast']}")
    assert "须由另一位审核人批准" in page.inner_text("main")
    page.click("button:has-text('批准')")
    page.wait_for_selector(".flash")
    assert "撰写人以外" in page.inner_text(".flash")
    shots(page, "author-refused")
    with Session(office.engine) as s:
        assert s.get(Broadcast, office.ids["broadcast"]).status == "pending_approval"  # type: ignore[union-attr]
    other = sign_in(browser, office, "approver")
    other.goto(office.url + f"/broadcasts/{office.ids['broadcast']}")
    other.click("button:has-text('批准')")
    other.wait_for_selector(".flash")
    with Session(office.engine) as s:
        b = s.get(Broadcast, office.ids["broadcast"])
    assert b is not None and b.status == "approved" and b.approved_by == office.ids["staff_approver"]


def test_tasks_are_filtered_paged_and_completed_with_an_outcome(browser: Any, office: Office, shots: Shots) -> None:
    page = sign_in(browser, office, "caseworker")
    page.goto(office.url + "/tasks")
    assert "共 30 项" in page.inner_text("main") and "第 1 / 2 页" in page.inner_text("main")
    assert page.evaluate("document.documentElement.scrollHeight") < 6000
    page.select_option("select[name=kind]", label="上门认证")
    page.click("button:has-text('筛选')")
    assert "共 15 项" in page.inner_text("main")
    shots(page, "filtered")
    page.locator("table a", has_text="上门认证").first.click()
    page.fill("textarea[name=note]", "已电话联系，约好周三上午上门")
    page.click("button:has-text('添加备注')")
    page.wait_for_selector(".flash")
    page.check("input[value=certified]")
    page.click("form[action$='/done'] button")
    page.wait_for_selector(".flash")
    assert "认证已记录" in page.inner_text(".flash")
    shots(page, "completed")
    task_id = int(re.search(r"/tasks/(\d+)", page.url).group(1))  # type: ignore[union-attr]
    with Session(office.engine) as s:
        task = s.get(Task, task_id)
        person = s.get(Beneficiary, task.beneficiary_id) if task else None  # type: ignore[arg-type]
    assert task is not None and task.outcome == "certified" and person is not None
    assert person.last_certified_on is not None
