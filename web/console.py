"""The staff console: sign-in, today's figures, applications by stage, tickets, tasks, audit.

Forms carry a per-session CSRF token; every state change goes through models.actions
(or the area's own action function) and so writes its audit row.
"""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import func
from sqlmodel import Session, col, select

from models.actions import StageChangeRefused, advance_application, audit
from models.applications import Application, ApplicationStageChange, HandoffTicket, Stage, Task
from models.db import writer
from models.outbox import OutboxMessage
from models.people import Beneficiary, Contact
from models.staff import AuditLog, StaffUser, check_password

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates" / "web"))
router = APIRouter(include_in_schema=False)

STAGE_LABELS = {
    "staged": "暂存", "accepted": "受理", "preliminary_review": "初审", "verification": "核查",
    "payment_notice": "缴费通知", "paid": "已缴费", "completed": "办结", "returned": "退回补件",
    "rejected": "不予受理", "withdrawn": "撤回",
}
TYPE_LABELS = {
    "veteran_insurance": "退役士兵社保接续", "mutual_aid_claim": "医疗互助申领", "hardship": "困难帮扶",
    "hospital_stay": "住院探视", "death_report": "去世报告", "certification": "资格认证",
}
TEMPLATES.env.globals.update(STAGE_LABELS=STAGE_LABELS, TYPE_LABELS=TYPE_LABELS)


class NotSignedIn(Exception):
    pass


def _session(request: Request) -> Session:
    # A page (GET) reads a snapshot and never waits for a writer; a form post takes the write
    # lock when it begins, so its reads and writes cannot be overtaken (models/db.py).
    engine = request.app.state.engine
    return Session(engine if request.method in ("GET", "HEAD") else writer(engine), expire_on_commit=False)


def current_staff(request: Request, db: Session) -> StaffUser:
    user_id = request.session.get("staff_id")
    user = db.get(StaffUser, user_id) if user_id else None
    if user is None or not user.active:
        raise HTTPException(status_code=303, headers={"Location": f"/login?next={request.url.path}"})
    return user


def _csrf(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return str(token)


def _check_csrf(request: Request, token: str) -> None:
    if not token or not secrets.compare_digest(token, str(request.session.get("csrf", ""))):
        raise HTTPException(status_code=400, detail="表单已过期，请刷新页面后重试 (form expired, reload and retry)")


def _page(request: Request, name: str, user: StaffUser | None, **context: Any) -> HTMLResponse:
    context.update(user=user, csrf=_csrf(request), flash=request.session.pop("flash", None))
    return TEMPLATES.TemplateResponse(request, name, context)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return _page(request, "login.html", None, next=next, error=None)


@router.post("/login")
def login(request: Request, username: str = Form(""), password: str = Form(""), next: str = Form("/"),
          csrf: str = Form("")) -> Response:
    _check_csrf(request, csrf)
    with _session(request) as db:
        user = db.exec(select(StaffUser).where(StaffUser.username == username.strip())).first()
        if user is None or not user.active or not check_password(password, user.password_hash):
            audit(db, username.strip()[:64] or "?", "staff.login_failed", "staff_user", "", {})
            db.commit()
            return _page(request, "login.html", None, next=next, error="用户名或密码不对 (wrong username or password)")
        request.session.clear()
        request.session["staff_id"] = user.id
        audit(db, user.username, "staff.login", "staff_user", user.id, {})
        db.commit()
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    return RedirectResponse(target, status_code=303)


@router.post("/logout")
def logout(request: Request, csrf: str = Form("")) -> Response:
    _check_csrf(request, csrf)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request) -> HTMLResponse:
    with _session(request) as db:
        user = current_staff(request, db)
        clock = request.app.state.clock
        tz = request.app.state.settings.tz
        today = clock.now().astimezone(tz).date()
        start = datetime.combine(today, datetime.min.time(), tzinfo=tz)
        figures = {
            "people": db.exec(select(func.count()).select_from(Beneficiary).where(Beneficiary.status == "active")).one(),
            "contacts_opted_out": db.exec(select(func.count()).select_from(Contact)
                                          .where(Contact.opted_out_at.is_not(None))).one(),  # type: ignore[union-attr]
            "tickets_open": db.exec(select(func.count()).select_from(HandoffTicket)
                                    .where(HandoffTicket.status == "open")).one(),
            "tasks_open": db.exec(select(func.count()).select_from(Task).where(Task.status == "open")).one(),
        }
        outbox = dict(db.exec(select(OutboxMessage.status, func.count()).where(OutboxMessage.created_at >= start)
                              .group_by(OutboxMessage.status)).all())
        stages = db.exec(select(Application.type, Application.stage, func.count())
                         .group_by(Application.type, Application.stage)).all()
        from outreach.summary import daily_summary, summary_text
        from outreach.templates import templates_for

        figures_today = daily_summary(db, today, tz, now=clock.now())
        summary = summary_text(figures_today, templates_for(request.app.state.settings))
        return _page(request, "dashboard.html", user, today=today, figures=figures, outbox=outbox,
                     stages=stages, summary=summary)


@router.get("/applications", response_class=HTMLResponse)
def applications(request: Request, stage: str = "", type: str = "") -> HTMLResponse:
    with _session(request) as db:
        user = current_staff(request, db)
        query = select(Application, Beneficiary).join(Beneficiary,
                                                      col(Beneficiary.id) == col(Application.beneficiary_id))
        if stage:
            query = query.where(Application.stage == stage)
        if type:
            query = query.where(Application.type == type)
        rows = db.exec(query.order_by(col(Application.stage_changed_at).desc()).limit(200)).all()
        return _page(request, "applications.html", user, rows=rows, stage=stage, type=type)


@router.get("/applications/{app_id}", response_class=HTMLResponse)
def application_detail(request: Request, app_id: int) -> HTMLResponse:
    from models.actions import ALLOWED_STAGE_CHANGES
    from models.applications import ApplicationDocument

    with _session(request) as db:
        user = current_staff(request, db)
        app = db.get(Application, app_id)
        if app is None:
            raise HTTPException(404, "no such application")
        person = db.get(Beneficiary, app.beneficiary_id)
        history = db.exec(select(ApplicationStageChange).where(ApplicationStageChange.application_id == app_id)
                          .order_by(col(ApplicationStageChange.at))).all()
        documents = db.exec(select(ApplicationDocument).where(ApplicationDocument.application_id == app_id)).all()
        return _page(request, "application.html", user, app=app, person=person, history=history,
                     documents=documents, next_stages=sorted(ALLOWED_STAGE_CHANGES.get(app.stage, set())))


@router.post("/applications/{app_id}/stage")
def application_stage(request: Request, app_id: int, to_stage: str = Form(...), reason: str = Form(""),
                      amount_yuan: str = Form(""), account: str = Form(""), deadline: str = Form(""),
                      csrf: str = Form("")) -> Response:
    _check_csrf(request, csrf)
    with _session(request) as db:
        user = current_staff(request, db)
        app = db.get(Application, app_id)
        if app is None:
            raise HTTPException(404, "no such application")
        try:
            amount = round(float(amount_yuan) * 100) if amount_yuan.strip() else None
            due = date.fromisoformat(deadline) if deadline.strip() else None
            advance_application(db, app, to_stage, actor=user.username, reason=reason.strip() or None,
                                now=request.app.state.clock.now(), payment_amount_fen=amount,
                                payment_account=account.strip() or None, payment_deadline=due)
            db.commit()
            request.session["flash"] = f"已更新为“{STAGE_LABELS.get(to_stage, to_stage)}”，已通知申请人"
        except (StageChangeRefused, ValueError) as exc:
            db.rollback()
            request.session["flash"] = f"未能更新：{exc}"
    return RedirectResponse(f"/applications/{app_id}", status_code=303)


@router.get("/tickets", response_class=HTMLResponse)
def tickets(request: Request, status: str = "open") -> HTMLResponse:
    with _session(request) as db:
        user = current_staff(request, db)
        rows = db.exec(select(HandoffTicket).where(HandoffTicket.status == status)
                       .order_by(col(HandoffTicket.created_at)).limit(200)).all()
        return _page(request, "tickets.html", user, rows=rows, status=status)


@router.post("/tickets/{ticket_id}/reply")
def ticket_reply(request: Request, ticket_id: int, answer: str = Form(...), csrf: str = Form("")) -> Response:
    _check_csrf(request, csrf)
    from bot.tickets import TicketError, reply_to_ticket

    with _session(request) as db:
        user = current_staff(request, db)
    try:
        reply_to_ticket(request.app.state.engine, ticket_id, answer, user.username, request.app.state.clock.now())
        request.session["flash"] = "已回复，答复会通过对方使用的渠道发出 (answer queued on the person's channel)"
    except TicketError as exc:
        request.session["flash"] = f"未能回复：{exc}"
    return RedirectResponse("/tickets", status_code=303)


@router.post("/tickets/{ticket_id}/draft")
def ticket_draft(request: Request, ticket_id: int, csrf: str = Form("")) -> Response:
    """Turn a staff answer into a knowledge-article draft (reviewed before the bot uses it)."""
    _check_csrf(request, csrf)
    from bot.commands import DRAFTS_DIR
    from bot.tickets import TicketError, draft_article

    with _session(request) as db:
        user = current_staff(request, db)
        try:
            today = request.app.state.clock.now().astimezone(request.app.state.settings.tz).date()
            path = draft_article(request.app.state.engine, ticket_id, DRAFTS_DIR, today.isoformat())
            audit(db, user.username, "ticket.draft_article", "handoff_ticket", ticket_id, {"file": path.name})
            db.commit()
            request.session["flash"] = f"已生成知识库草稿 {path.name}，审核后生效"
        except TicketError as exc:
            request.session["flash"] = f"未能生成草稿：{exc}"
    return RedirectResponse("/tickets?status=answered", status_code=303)


@router.get("/tasks", response_class=HTMLResponse)
def tasks(request: Request, status: str = "open") -> HTMLResponse:
    with _session(request) as db:
        user = current_staff(request, db)
        rows = db.exec(select(Task, Beneficiary)
                       .join(Beneficiary, col(Beneficiary.id) == col(Task.beneficiary_id), isouter=True)
                       .where(Task.status == status)
                       .order_by(col(Task.priority).desc(), col(Task.created_at)).limit(300)).all()
        return _page(request, "tasks.html", user, rows=rows, status=status)


CERTIFICATION_TASKS = {"home_visit", "certification_booking"}


@router.post("/tasks/{task_id}/done")
def task_done(request: Request, task_id: int, note: str = Form(""), certified: str = Form(""),
              csrf: str = Form("")) -> Response:
    """Close a task. Closing a home visit or a window booking with "certified" records this
    year's pension eligibility certification, which stops the remaining reminders."""
    _check_csrf(request, csrf)
    from models.actions import record_certification

    with _session(request) as db:
        user = current_staff(request, db)
        task = db.get(Task, task_id)
        if task is None:
            raise HTTPException(404, "no such task")
        if task.status == "open":
            now = request.app.state.clock.now()
            task.status = "done"
            task.closed_at = now
            task.note = (task.note + "\n" + note).strip() if note else task.note
            db.add(task)
            audit(db, user.username, "task.done", "task", task.id, {"kind": task.kind})
            if certified and task.kind in CERTIFICATION_TASKS and task.beneficiary_id is not None:
                person = db.get(Beneficiary, task.beneficiary_id)
                if person is not None:
                    today = now.astimezone(request.app.state.settings.tz).date()
                    record_certification(db, person, on=today, actor=user.username, method=task.kind, now=now)
                    request.session["flash"] = f"已记录{person.name}今年的资格认证，后续提醒不再发送"
            db.commit()
    return RedirectResponse("/tasks", status_code=303)


@router.get("/audit", response_class=HTMLResponse)
def audit_log(request: Request) -> HTMLResponse:
    with _session(request) as db:
        user = current_staff(request, db)
        since = request.app.state.clock.now() - timedelta(days=30)
        rows = db.exec(select(AuditLog).where(AuditLog.at >= since)
                       .order_by(AuditLog.id.desc()).limit(300)).all()  # type: ignore[union-attr]
        return _page(request, "audit.html", user, rows=rows)


__all__ = ["router", "Stage"]
