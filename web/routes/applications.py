"""Applications (`/applications`): the review queue and one application's page."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select

from models.actions import ALLOWED_STAGE_CHANGES, StageChangeRefused, advance_application
from models.applications import Application, ApplicationDocument, ApplicationStageChange
from models.people import Beneficiary
from models.staff import Role
from web.pages import CASEWORK, render
from web.security import SignedIn, flash, require
from web.words import label, ui

router = APIRouter(include_in_schema=False)


@router.get("/applications")
def applications(request: Request, stage: str = "", type: str = "",
                 staff: SignedIn = Depends(require(*CASEWORK))) -> Response:
    with Session(request.app.state.engine) as db:
        query = select(Application, Beneficiary).join(Beneficiary,
                                                      col(Beneficiary.id) == col(Application.beneficiary_id))
        if stage:
            query = query.where(Application.stage == stage)
        if type:
            query = query.where(Application.type == type)
        rows = db.exec(query.order_by(col(Application.stage_changed_at).desc()).limit(200)).all()
    return render(request, "applications.html", staff, rows=rows, stage=stage, type=type)


@router.get("/applications/{app_id}")
def application_detail(request: Request, app_id: int, staff: SignedIn = Depends(require(*CASEWORK))) -> Response:
    with Session(request.app.state.engine) as db:
        app = db.get(Application, app_id)
        if app is None:
            raise HTTPException(404)
        person = db.get(Beneficiary, app.beneficiary_id)
        history = db.exec(select(ApplicationStageChange).where(ApplicationStageChange.application_id == app_id)
                          .order_by(col(ApplicationStageChange.at))).all()
        documents = db.exec(select(ApplicationDocument).where(ApplicationDocument.application_id == app_id)).all()
    return render(request, "application.html", staff, app=app, person=person, history=history,
                  documents=documents, next_stages=sorted(ALLOWED_STAGE_CHANGES.get(app.stage, set())))


@router.post("/applications/{app_id}/stage")
def application_stage(request: Request, app_id: int, to_stage: str = Form(""), reason: str = Form(""),
                      amount_yuan: str = Form(""), account: str = Form(""), deadline: str = Form(""),
                      staff: SignedIn = Depends(require(Role.CASEWORKER))) -> Response:
    with Session(request.app.state.engine, expire_on_commit=False) as db:
        app = db.get(Application, app_id)
        if app is None:
            raise HTTPException(404)
        try:
            amount = round(float(amount_yuan) * 100) if amount_yuan.strip() else None
            due = date.fromisoformat(deadline) if deadline.strip() else None
            advance_application(db, app, to_stage, actor=staff.username, reason=reason.strip() or None,
                                now=request.app.state.clock.now(), payment_amount_fen=amount,
                                payment_account=account.strip() or None, payment_deadline=due)
            db.commit()
            message = ui("已更新为“{stage}”，已通知申请人", staff.language, stage=label("stage", to_stage, staff.language))
        except (StageChangeRefused, ValueError) as exc:
            db.rollback()
            message = ui("未能更新：{why}", staff.language, why=str(exc))
    flash(request, staff, message)
    return RedirectResponse(f"/applications/{app_id}", status_code=303)
