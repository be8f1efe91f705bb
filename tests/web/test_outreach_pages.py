"""The outreach pages through HTTP: what each role sees and may do, and that a form's problems
come back on the page with what was typed."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from models.broadcasts import BroadcastReview
from models.outbox import Broadcast, OutboxMessage
from models.scheduler import OccasionSetting
from models.staff import AuditLog
from tests.web.conftest import Console, World


def test_a_composers_mistakes_come_back_on_the_form_with_what_was_typed(console: Console, world: World,
                                                                       db_engine: Any) -> None:
    """No title, an age in words, an unknown variable and a time in quiet hours: nothing is
    stored, each problem is named, and the typed text is still in the form."""
    console.sign_in("composer")
    response = console.post("/broadcasts/new", {
        "title": "", "mode": "text", "text_zh": "{{ 身份证 }}您好", "age_min": "八十", "when": "later",
        "send_date": "2026-03-03", "send_time": "22:30", "action": "submit"}, from_page="/broadcasts/new")
    assert response.status_code == 422
    page = response.text
    for words in ("请写一个标题", "“八十”不行", "免打扰", "{{ 身份证 }}您好", 'value="八十"'):
        assert words in page, words
    with Session(db_engine) as s:
        assert len(s.exec(select(Broadcast)).all()) == 1  # only the world's


def test_an_approver_sends_a_broadcast_back_and_the_author_sees_why(new_console: Any, world: World,
                                                                   db_engine: Any) -> None:
    """The approver's comment is on the broadcast's page for its author, the broadcast is a
    draft again, and the step is on its trail and in the audit log; a send-back without a
    comment is refused and changes nothing."""
    approver = new_console()
    approver.sign_in("approver")
    page = f"/broadcasts/{world.broadcast}"
    approver.post(f"{page}/send-back", {"comment": "  "}, from_page=page)
    with Session(db_engine) as s:
        assert s.get(Broadcast, world.broadcast).status == "pending_approval"  # type: ignore[union-attr]
    approver.post(f"{page}/send-back", {"comment": "请写明活动地点和时间"}, from_page=page)
    author = new_console()
    author.sign_in("composer")
    shown = author.get(page).text
    assert "请写明活动地点和时间" in shown and "审核人退回了这条通知" in shown
    with Session(db_engine) as s:
        assert s.get(Broadcast, world.broadcast).status == "draft"  # type: ignore[union-attr]
        assert [r.step for r in s.exec(select(BroadcastReview)).all()] == ["sent_back"]
        assert s.exec(select(AuditLog).where(AuditLog.action == "broadcast.send_back")).one().actor == "approver"


def test_a_caseworker_cancels_a_queued_message_only_when_confirmed(console: Console, world: World,
                                                                  db_engine: Any) -> None:
    console.sign_in("caseworker")
    page = f"/outbox/{world.message}"
    assert "重阳节快乐" in console.get(page).text
    console.post(f"{page}/cancel", {}, from_page=page)
    with Session(db_engine) as s:
        assert s.get(OutboxMessage, world.message).status == "queued"  # type: ignore[union-attr]
    console.post(f"{page}/cancel", {"confirmed": "yes"}, from_page=page)
    with Session(db_engine) as s:
        assert s.get(OutboxMessage, world.message).status == "cancelled"  # type: ignore[union-attr]
    listed = console.get("/outbox?person=黄伯").text
    assert f'data-id="{world.message}"' in listed and "+86138****8000" in listed and "+8613800138000" not in listed


def test_an_approver_turns_an_occasion_off_and_the_schedule_says_so(console: Console, world: World,
                                                                    db_engine: Any) -> None:
    """Mid-Autumn switched off from the schedule page: stored with who did it, audited, shown."""
    console.sign_in("approver")
    console.post("/schedule/occasions/mid_autumn", {"enabled": "no", "send_time": "09:00", "action": "save"},
                 from_page="/schedule")
    with Session(db_engine) as s:
        row = s.get(OccasionSetting, "mid_autumn")
        assert row is not None and (row.enabled, row.updated_by) == (False, "approver")
        assert s.exec(select(AuditLog).where(AuditLog.action == "schedule.occasion")).one().actor == "approver"
    page = console.get("/schedule").text
    row_html = page.split('id="occasion-mid_autumn"')[1].split("</tr>")[0]
    assert "不发" in row_html and "approver" in row_html


def test_a_telegram_linking_code_is_shown_once_and_kept_only_as_a_hash(console: Console, world: World,
                                                                        db_engine: Any) -> None:
    """The page shows `/link CODE` once; the database holds the code's hash, not the code; a
    second code makes the first unusable; the request is audited."""
    import re

    from models.staff_telegram import StaffLinkCode

    console.sign_in("viewer")
    first = re.search(r"/link (\d{8})", console.post("/account/telegram/code", {}, from_page="/account/telegram").text)
    second = re.search(r"/link (\d{8})", console.post("/account/telegram/code", {}, from_page="/account/telegram").text)
    assert first and second
    assert "/link" not in console.get("/account/telegram").text
    with Session(db_engine) as s:
        rows = s.exec(select(StaffLinkCode)).all()
        assert len(rows) == 2 and all(first.group(1) not in r.code_hash for r in rows)
        assert [r.used_at is None for r in rows] == [False, True]
        assert len(s.exec(select(AuditLog).where(AuditLog.action == "staff.telegram_code")).all()) == 2
