"""Reviewing applications: the queue, what the applicant sent, an explicit next stage, confirmation
with the applicant's message previewed, a payment notice that must make sense."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from models.applications import Application, ApplicationDocument
from models.db import writer
from models.idcard import IdCard
from models.outbox import OutboxMessage
from models.staff import AuditLog
from tests.web.conftest import Console, World

KEY = b"test-id-key"


def _app(db_engine: Any, world: World) -> Application:
    with Session(db_engine) as s:
        app = s.get(Application, world.application)
        assert app is not None
        return app


def _notices(db_engine: Any) -> list[OutboxMessage]:
    with Session(db_engine) as s:
        return list(s.exec(select(OutboxMessage).where(OutboxMessage.kind.startswith("stage_"))).all())  # type: ignore[attr-defined]


def _move(db_engine: Any, world: World, stage: str) -> None:
    with Session(writer(db_engine)) as s:
        app = s.get(Application, world.application)
        app.stage = stage  # type: ignore[union-attr]
        s.add(app)
        s.commit()


def test_the_queue_filters_by_type_and_stage_pages_and_leaves_finished_ones_out(
        console: Console, db_engine: Any, world: World, clock: Any) -> None:
    with Session(db_engine) as s:
        for n in range(40):  # 14 completed, 26 staged
            s.add(Application(reference=f"NX-2026-{100 + n:06d}", type="hardship", beneficiary_id=world.person,
                              stage="completed" if n % 3 == 0 else "staged",
                              stage_changed_at=clock.now() - timedelta(days=n)))
        s.commit()
    console.sign_in("viewer")
    page = console.get("/applications").text  # waiting ones only: 26 staged + the accepted one
    assert "共 27 份" in page and "NX-2026-000100" not in page
    hardship = console.client.get("/applications", params={"type": "hardship", "stage": "completed"}).text
    assert "共 14 份" in hardship and "NX-2026-000042" not in hardship
    second = console.client.get("/applications", params={"page": 2}).text
    assert "第 2 / 2 页" in second and len(re.findall(r'href="/applications/\d+"', second)) == 2
    assert "NX-2026-000138" in page  # the longest waiting first (39 is completed)


def test_the_application_shows_the_answers_and_flags_an_id_that_differs_from_the_roll(
        console: Console, db_engine: Any, world: World) -> None:
    typed = IdCard.parse("44070319550303001X")
    with Session(writer(db_engine)) as s:
        app = s.get(Application, world.application)
        app.data = {"name": "黄伯", "id_number": {"masked": typed.masked, "hash": typed.hashed(KEY)},  # type: ignore[union-attr]
                    "placement_unit": "江门市某国有企业"}
        s.add(app)
        s.commit()
    console.sign_in("viewer")
    page = console.get(f"/applications/{world.application}").text
    assert 'id="id-differs"' in page and typed.masked in page
    assert "安置单位" in page and "江门市某国有企业" in page  # the flow's own question as the label
    assert "placement_unit" not in page and "enlistment_papers" not in page and "discharge_form" not in page


def test_an_uploaded_image_is_shown_and_only_files_in_the_uploads_folder_are_served(
        console: Console, db_engine: Any, world: World, settings: Any, tmp_path: Path) -> None:
    uploads = Path(settings.data_dir) / "uploads" / "5001"
    uploads.mkdir(parents=True)
    image = uploads / "discharge.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 32)
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"\x89PNG\r\n\x1a\nsecret")
    with Session(writer(db_engine)) as s:
        doc = s.get(ApplicationDocument, world.document)
        doc.file_path = str(image)  # type: ignore[union-attr]
        s.add(doc)
        other = ApplicationDocument(application_id=world.application, code="id_card", received=True,
                                    file_path=str(outside))
        s.add(other)
        s.commit()
        other_id = other.id
    console.sign_in("viewer")
    page = console.get(f"/applications/{world.application}").text
    src = f"/applications/{world.application}/documents/{world.document}/file"
    assert f'<img class="thumb" src="{src}"' in page
    served = console.get(src)
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert console.get(f"/applications/{world.application}/documents/{other_id}/file").status_code == 404


def test_the_next_stage_has_no_default_and_nothing_happens_without_one(console: Console, db_engine: Any,
                                                                       world: World) -> None:
    console.sign_in("caseworker")
    page = console.get(f"/applications/{world.application}").text
    select_html = page[page.index('name="to_stage"'):page.index("</select>", page.index('name="to_stage"'))]
    assert "selected" not in select_html and '<option value="">请选择</option>' in select_html
    response = console.post(f"/applications/{world.application}/stage", {"to_stage": ""},
                            from_page=f"/applications/{world.application}")
    assert response.status_code == 400 and "请选择下一步" in response.text and "未能更新" in response.text
    assert _app(db_engine, world).stage == "accepted" and _notices(db_engine) == []


def test_returning_needs_a_reason_in_words_and_tells_the_applicant(console: Console, db_engine: Any,
                                                                   world: World) -> None:
    console.sign_in("caseworker")
    path = f"/applications/{world.application}/stage"
    for reason in ("", "123", "。。"):
        refused = console.post(path, {"to_stage": "returned", "reason": reason}, from_page=path.rsplit("/", 1)[0])
        assert refused.status_code == 400 and "请用文字写明原因" in refused.text
    assert _app(db_engine, world).stage == "accepted"
    console.post(path, {"to_stage": "returned", "reason": "请补交退役证复印件"}, from_page=path.rsplit("/", 1)[0])
    app = _app(db_engine, world)
    assert (app.stage, app.return_reason) == ("returned", "请补交退役证复印件")
    (notice,) = _notices(db_engine)
    assert notice.kind == "stage_returned" and "请补交退役证复印件" in notice.body


def test_completing_asks_for_confirmation_with_the_message_previewed(console: Console, db_engine: Any,
                                                                     world: World) -> None:
    """The first post shows what the applicant will read and changes nothing; confirming does it."""
    console.sign_in("caseworker")
    detail = f"/applications/{world.application}"
    first = console.post(f"{detail}/stage", {"to_stage": "completed"}, from_page=detail)
    assert first.status_code == 200 and "请确认" in first.text and 'id="message-preview"' in first.text
    assert "NX-2026-000042" in first.text
    assert _app(db_engine, world).stage == "accepted" and _notices(db_engine) == []
    console.post(f"{detail}/stage", {"to_stage": "completed", "confirm": "yes"}, from_page=detail)
    assert _app(db_engine, world).stage == "completed"
    kinds = [n.kind for n in _notices(db_engine)]
    assert kinds == ["stage_completed"]
    with Session(db_engine) as s:
        audit = s.exec(select(AuditLog).where(AuditLog.action == "application.stage")).one()
    assert audit.actor == "caseworker" and audit.details["to"] == "completed"


@pytest.mark.parametrize("amount, account, deadline, message", [
    ("-5", "江门市社会保险基金专户", "2026-04-30", "缴费金额必须大于 0"),
    ("0", "江门市社会保险基金专户", "2026-04-30", "缴费金额必须大于 0"),
    ("9999999", "江门市社会保险基金专户", "2026-04-30", "缴费金额应小于 200,000 元"),
    ("一千块钱吧", "江门市社会保险基金专户", "2026-04-30", "看不懂这个金额"),
    ("12.345", "江门市社会保险基金专户", "2026-04-30", "最多写到分"),
    ("1000", "x", "2026-04-30", "账户格式不对"),
    ("1000", "江门市社会保险基金专户", "2020-01-01", "截止日期必须在今天以后"),
    ("1000", "江门市社会保险基金专户", "2026-03-02", "截止日期必须在今天以后"),
    ("1000", "江门市社会保险基金专户", "", "请填写缴费截止日期"),
])
def test_an_invalid_payment_notice_is_refused_with_a_clear_message(console: Console, db_engine: Any, world: World,
                                                                  amount: str, account: str, deadline: str,
                                                                  message: str) -> None:
    _move(db_engine, world, "verification")
    console.sign_in("caseworker")
    detail = f"/applications/{world.application}"
    response = console.post(f"{detail}/stage", {"to_stage": "payment_notice", "amount_yuan": amount,
                                                "account": account, "deadline": deadline, "confirm": "yes"},
                            from_page=detail)
    assert response.status_code == 400 and message in response.text
    assert f'value="{amount}"' in response.text  # what was typed stays in the form
    assert _app(db_engine, world).stage == "verification" and _notices(db_engine) == []


def test_a_payment_notice_in_chinese_numerals_is_previewed_then_sent(console: Console, db_engine: Any,
                                                                     world: World) -> None:
    _move(db_engine, world, "verification")
    console.sign_in("caseworker")
    detail = f"/applications/{world.application}"
    form = {"to_stage": "payment_notice", "amount_yuan": "三万六千", "account": "江门市社会保险基金专户",
            "deadline": "2026-04-30"}
    preview = console.post(f"{detail}/stage", form, from_page=detail).text
    assert 'id="confirm-amount">36,000.00' in preview
    body = re.search(r'id="message-preview">(.*?)</div>', preview, re.S).group(1)  # type: ignore[union-attr]
    assert "36000" in body.replace(",", "") and "江门市社会保险基金专户" in body and "2026" in body
    assert _app(db_engine, world).stage == "verification"
    console.post(f"{detail}/stage", {**form, "confirm": "yes"}, from_page=detail)
    app = _app(db_engine, world)
    assert (app.stage, app.payment_amount_fen, str(app.payment_deadline)) == ("payment_notice", 3_600_000,
                                                                               "2026-04-30")
    (notice,) = _notices(db_engine)
    assert notice.body.strip() == html.unescape(body).strip()  # what was previewed is what is sent


def test_staff_tick_the_documents_they_have_seen(console: Console, db_engine: Any, world: World) -> None:
    console.sign_in("caseworker")
    console.post(f"/applications/{world.application}/documents/{world.document}", {"checked": "yes"},
                 from_page=f"/applications/{world.application}")
    with Session(db_engine) as s:
        doc = s.get(ApplicationDocument, world.document)
        assert doc is not None and doc.checked_by == "caseworker" and doc.checked_at is not None
        audit = s.exec(select(AuditLog).where(AuditLog.action == "application.document_checked")).one()
    assert audit.details == {"document": "discharge_form", "checked": True}


def test_a_change_made_meanwhile_by_someone_else_is_not_overwritten(console: Console, db_engine: Any,
                                                                    world: World) -> None:
    """Confirming a page that is out of date (the application moved since) changes nothing."""
    console.sign_in("caseworker")
    detail = f"/applications/{world.application}"
    console.post(f"{detail}/stage", {"to_stage": "completed"}, from_page=detail)  # the confirmation page
    _move(db_engine, world, "preliminary_review")
    page = console.post(f"{detail}/stage", {"to_stage": "completed", "confirm": "yes", "seen_stage": "accepted"},
                        from_page=detail, follow=True).text
    assert _app(db_engine, world).stage == "preliminary_review"
    assert "未能更新" in page and "刚被别人改成了" in page
