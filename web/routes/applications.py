"""Applications (`/applications`): the review queue, and one application with everything the
applicant sent, the documents checklist, and the next stage.

The next stage is always chosen (no default); returning and rejecting need a reason in words;
completing, rejecting, withdrawing and a payment notice show a confirmation page with the
message the applicant will get, rendered by the same code that sends it (the change is made
in a transaction that is rolled back). Every change goes through
`models.actions.advance_application`: recorded, audited, and the applicant told through the outbox.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from models.actions import ALLOWED_STAGE_CHANGES, StageChangeRefused, advance_application, check_document
from models.applications import Application, ApplicationDocument, ApplicationStageChange, Stage
from models.db import session_scope
from models.outbox import OutboxMessage
from models.people import Beneficiary
from models.staff import Role
from web.pages import CASEWORK, paging, render, today_in_office
from web.payment import PaymentNotice, PaymentProblem, check_payment_notice
from web.security import SignedIn, flash, require
from web.words import codes, label, ui

router = APIRouter(include_in_schema=False)
CASEWORKER = require(Role.CASEWORKER)
CONFIRM_FIRST = frozenset({Stage.COMPLETED.value, Stage.REJECTED.value, Stage.WITHDRAWN.value,
                           Stage.PAYMENT_NOTICE.value})
NEED_REASON = frozenset({Stage.RETURNED.value, Stage.REJECTED.value})
OPEN_STAGES = tuple(s.value for s in Stage if ALLOWED_STAGE_CHANGES.get(s.value))
_WORDS = re.compile(r"[\u4e00-\u9fffA-Za-z]")
IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
               ".webp": "image/webp"}


@router.get("/applications")
def applications(request: Request, stage: str = "", type: str = "", q: str = "", page: int = 1,
                 staff: SignedIn = Depends(require(*CASEWORK))) -> Response:
    with Session(request.app.state.engine) as db:
        query = select(Application, Beneficiary).join(Beneficiary,
                                                      col(Beneficiary.id) == col(Application.beneficiary_id))
        if stage == "open" or not stage:
            query = query.where(col(Application.stage).in_(OPEN_STAGES))
        elif stage != "all":
            query = query.where(Application.stage == stage)
        if type:
            query = query.where(Application.type == type)
        if q.strip():
            like = f"%{q.strip()}%"
            query = query.where(or_(col(Application.reference).like(like), col(Beneficiary.name).like(like)))
        total = db.exec(select(func.count()).select_from(query.subquery())).one()
        pages = paging(page, total)
        rows = db.exec(query.order_by(col(Application.stage_changed_at), col(Application.id))
                       .offset(pages.offset).limit(pages.size)).all()
        counts = dict(db.exec(select(Application.stage, func.count()).group_by(Application.stage)).all())
    now = request.app.state.clock.now()
    return render(request, "applications.html", staff, rows=rows, stage=stage or "open", type=type, q=q,
                  pages=pages, counts=counts, stages=list(codes("stage")), types=list(codes("application_type")),
                  waited=lambda at: (now - at).total_seconds())


@dataclass(frozen=True)
class Answer:
    label: str
    value: str


def _flow_for(app_type: str) -> Any:
    from bot.flowspec import load_flows

    for flow in load_flows().values():
        if any(call.action == "create_application" and call.get("type") == app_type for call in flow.on_complete):
            return flow
    return None


def answers_of(app: Application, lang: str) -> list[Answer]:
    """What the applicant answered, with the flow's own questions as labels."""
    from bot.flowrunner import display
    from bot.texts import localise

    data = dict(app.data or {})
    flow = _flow_for(app.type)
    out: list[Answer] = []
    if flow is not None:
        for step in flow.steps:
            if step.id in data and step.type not in ("confirm", "documents"):
                out.append(Answer(localise(step.label, lang), display(step, data.pop(step.id), lang)))
    for key, value in data.items():  # anything the flow no longer asks: shown, not hidden
        if isinstance(value, dict):
            value = value.get("masked") or ""
        out.append(Answer(key.replace("_", " "), str(value)))
    return out


def id_differs(app: Application, person: Beneficiary) -> bool | None:
    """True when the ID number the applicant typed is not the one on the roll (None: none typed)."""
    typed = next((v for v in (app.data or {}).values() if isinstance(v, dict) and "hash" in v), None)
    if typed is None:
        return None
    return bool(typed.get("hash") != person.id_hash)


def _uploads_root(request: Request) -> Path:
    return (Path(request.app.state.settings.data_dir) / "uploads").resolve()


def _served_file(request: Request, doc: ApplicationDocument) -> Path | None:
    """The document's stored file, only when it lies inside the uploads folder."""
    if not doc.file_path:
        return None
    path = Path(doc.file_path).resolve()
    root = _uploads_root(request)
    if not path.is_file() or root not in path.parents:
        return None
    return path


@dataclass
class StageForm:
    to_stage: str = ""
    reason: str = ""
    amount_yuan: str = ""
    account: str = ""
    deadline: str = ""


def _detail(request: Request, staff: SignedIn, app_id: int, *, form: StageForm | None = None,
            errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    with Session(request.app.state.engine) as db:
        app = db.get(Application, app_id)
        if app is None:
            raise HTTPException(404)
        person = db.get(Beneficiary, app.beneficiary_id)
        assert person is not None  # an application belongs to a person (foreign key)
        history = db.exec(select(ApplicationStageChange).where(ApplicationStageChange.application_id == app_id)
                          .order_by(col(ApplicationStageChange.at), col(ApplicationStageChange.id))).all()
        documents = db.exec(select(ApplicationDocument).where(ApplicationDocument.application_id == app_id)
                            .order_by(col(ApplicationDocument.id))).all()
        notices = db.exec(select(OutboxMessage).where(OutboxMessage.beneficiary_id == app.beneficiary_id,
                                                      col(OutboxMessage.kind).startswith("stage_"))
                          .order_by(col(OutboxMessage.created_at).desc()).limit(10)).all()
    files = {d.id: _served_file(request, d) for d in documents}
    return render(request, "application.html", staff, status_code=status_code, app=app, person=person,
                  history=history, documents=documents, files=files, notices=notices,
                  answers=answers_of(app, staff.language), id_differs=id_differs(app, person),
                  next_stages=[s for s in codes("stage") if s in ALLOWED_STAGE_CHANGES.get(app.stage, set())],
                  form=form or StageForm(), errors=errors or {}, need_reason=NEED_REASON,
                  ceiling=request.app.state.settings.payment_notice_max_yuan,
                  image_types=IMAGE_TYPES)


@router.get("/applications/{app_id}")
def application_detail(request: Request, app_id: int, staff: SignedIn = Depends(require(*CASEWORK))) -> Response:
    return _detail(request, staff, app_id)


def _check(form: StageForm, app: Application, request: Request, lang: str) -> tuple[dict[str, str],
                                                                                    PaymentNotice | None]:
    errors: dict[str, str] = {}
    notice = None
    allowed = ALLOWED_STAGE_CHANGES.get(app.stage, set())
    if not form.to_stage:
        errors["to_stage"] = ui("请选择下一步。", lang)
    elif form.to_stage not in allowed:
        errors["to_stage"] = ui("现在的环节不能直接改为“{stage}”。", lang, stage=label("stage", form.to_stage, lang))
    if form.to_stage in NEED_REASON and len(_WORDS.findall(form.reason)) < 2:
        errors["reason"] = ui("退回或不予受理时，请用文字写明原因，申请人会看到。", lang)
    if form.to_stage == Stage.PAYMENT_NOTICE.value:
        try:
            notice = check_payment_notice(form.amount_yuan, form.account, form.deadline,
                                          today=today_in_office(request),
                                          ceiling_yuan=request.app.state.settings.payment_notice_max_yuan, lang=lang)
        except PaymentProblem as exc:
            errors.update(exc.problems)
    return errors, notice


def _advance(db: Session, app: Application, form: StageForm, notice: PaymentNotice | None, *, actor: str,
             now: datetime) -> None:
    advance_application(db, app, form.to_stage, actor=actor, reason=form.reason.strip() or None, now=now,
                        payment_amount_fen=notice.amount_fen if notice else None,
                        payment_account=notice.account if notice else None,
                        payment_deadline=notice.deadline if notice else None)


@dataclass(frozen=True)
class MessagePreview:
    channel: str
    text: str


def preview_messages(request: Request, app_id: int, form: StageForm, notice: PaymentNotice | None,
                     actor: str) -> list[MessagePreview]:
    """The messages this change would queue, made by the real change in a transaction rolled back."""
    now = request.app.state.clock.now()
    with Session(request.app.state.engine) as db:
        try:
            app = db.get(Application, app_id)
            assert app is not None  # checked by the caller
            before = db.exec(select(func.max(OutboxMessage.id))).one() or 0
            _advance(db, app, form, notice, actor=actor, now=now)
            db.flush()
            rows = db.exec(select(OutboxMessage).where(col(OutboxMessage.id) > before)
                           .order_by(col(OutboxMessage.id))).all()
            return [MessagePreview(r.channel, r.body) for r in rows]
        finally:
            db.rollback()


@router.post("/applications/{app_id}/stage")
def application_stage(request: Request, app_id: int, to_stage: str = Form(""), reason: str = Form(""),
                      amount_yuan: str = Form(""), account: str = Form(""), deadline: str = Form(""),
                      confirm: str = Form(""), seen_stage: str = Form(""),
                      staff: SignedIn = Depends(CASEWORKER)) -> Response:
    """`seen_stage` is the stage the page showed: a change made meanwhile by someone else is not
    overwritten by a decision taken on what is no longer there."""
    lang = staff.language
    form = StageForm(to_stage, reason, amount_yuan, account, deadline)
    with Session(request.app.state.engine) as db:
        app = db.get(Application, app_id)
        if app is None:
            raise HTTPException(404)
        errors, notice = _check(form, app, request, lang)
        reference, from_stage = app.reference, seen_stage or app.stage
        if app.stage != from_stage:
            errors = {"to_stage": ui("这份申请刚被别人改成了“{stage}”，请看一下再决定。", lang,
                                     stage=label("stage", app.stage, lang))}
    if errors:
        return _detail(request, staff, app_id, form=form, errors=errors, status_code=400)
    if form.to_stage in CONFIRM_FIRST and confirm != "yes":
        previews = preview_messages(request, app_id, form, notice, staff.username)
        return render(request, "application_confirm.html", staff, app_id=app_id, reference=reference,
                      from_stage=from_stage, form=form, notice=notice, previews=previews)
    try:
        with session_scope(request.app.state.engine) as db:
            app = db.get(Application, app_id)
            assert app is not None  # it was there a moment ago; applications are never deleted
            if app.stage != from_stage:
                raise StageChangeRefused(ui("这份申请刚被别人改成了“{stage}”，请看一下再决定。", lang,
                                            stage=label("stage", app.stage, lang)))
            _advance(db, app, form, notice, actor=staff.username, now=request.app.state.clock.now())
        message = ui("已更新为“{stage}”，已通知申请人", lang, stage=label("stage", form.to_stage, lang))
    except StageChangeRefused as exc:
        message = ui("未能更新：{why}", lang, why=str(exc))
    flash(request, staff, message)
    return RedirectResponse(f"/applications/{app_id}", status_code=303)


@router.post("/applications/{app_id}/documents/{doc_id}")
def application_document(request: Request, app_id: int, doc_id: int, checked: str = Form(""),
                         staff: SignedIn = Depends(CASEWORKER)) -> Response:
    with session_scope(request.app.state.engine) as db:
        doc = db.get(ApplicationDocument, doc_id)
        if doc is None or doc.application_id != app_id:
            raise HTTPException(404)
        check_document(db, doc, checked == "yes", actor=staff.username, now=request.app.state.clock.now())
        name = label("document", doc.code, staff.language)
    flash(request, staff, ui("已核对：{name}", staff.language, name=name) if checked == "yes"
          else ui("已取消核对：{name}", staff.language, name=name))
    return RedirectResponse(f"/applications/{app_id}#documents", status_code=303)


@router.get("/applications/{app_id}/documents/{doc_id}/file")
def application_document_file(request: Request, app_id: int, doc_id: int,
                              staff: SignedIn = Depends(require(*CASEWORK))) -> Response:
    """An uploaded document, shown to staff (only files inside the uploads folder are served)."""
    with Session(request.app.state.engine) as db:
        doc = db.get(ApplicationDocument, doc_id)
    if doc is None or doc.application_id != app_id:
        raise HTTPException(404)
    path = _served_file(request, doc)
    if path is None:
        raise HTTPException(404)
    media = IMAGE_TYPES.get(path.suffix.lower(), "application/octet-stream")
    return FileResponse(path, media_type=media, headers={"Cache-Control": "private, no-store",
                                                        "Content-Disposition": "inline"})


