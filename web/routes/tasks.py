"""Tasks for community and office staff (`/tasks`): visits, certification, escalations and the
verification of reports. Filters by kind, community, state and assignee, with paging; a task's
page has its notes, the assignee, and the outcome it is completed with (a certification outcome
records the certification). Reports are confirmed or found untrue here, never just closed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func
from sqlmodel import Session, col, select

from models.actions import (
    CaseworkRefused,
    add_task_note,
    assign_task,
    complete_task,
    confirm_report,
    reject_report,
    task_outcomes,
)
from models.applications import Application, Task, TaskNote
from models.db import session_scope
from models.people import Beneficiary
from models.reports import VERIFY_TASKS, task_details
from models.staff import Role, StaffUser
from web.pages import CASEWORK, paging, render, today_in_office
from web.routes.login import safe_next
from web.security import SignedIn, flash, require
from web.words import N_, codes, ui

router = APIRouter(include_in_schema=False)
CASEWORKER = require(Role.CASEWORKER)


def _staff_list(db: Session) -> list[StaffUser]:
    return list(db.exec(select(StaffUser).where(StaffUser.active == True).order_by(StaffUser.username)).all())  # noqa: E712


@router.get("/tasks")
def tasks(request: Request, status: str = "open", kind: str = "", community: str = "", assignee: str = "",
          page: int = 1, staff: SignedIn = Depends(require(*CASEWORK))) -> Response:
    with Session(request.app.state.engine) as db:
        query = select(Task, Beneficiary).join(Beneficiary, col(Beneficiary.id) == col(Task.beneficiary_id),
                                               isouter=True)
        if status:
            query = query.where(Task.status == status)
        if kind:
            query = query.where(Task.kind == kind)
        if community:
            query = query.where(Beneficiary.community == community)
        if assignee == "me":
            query = query.where(Task.assigned_staff_id == staff.user_id)
        elif assignee == "none":
            query = query.where(col(Task.assigned_staff_id).is_(None))
        elif assignee.isdigit():
            query = query.where(Task.assigned_staff_id == int(assignee))
        total = db.exec(select(func.count()).select_from(query.subquery())).one()
        pages = paging(page, total)
        rows = db.exec(query.order_by(col(Task.priority).desc(), col(Task.due_on).asc(), col(Task.created_at))
                       .offset(pages.offset).limit(pages.size)).all()
        communities = db.exec(select(Beneficiary.community).where(Beneficiary.community != "").distinct()
                              .order_by(Beneficiary.community)).all()
        staff_rows = _staff_list(db)
    return render(request, "tasks.html", staff, rows=rows, status=status, kind=kind, community=community,
                  assignee=assignee, pages=pages, communities=communities, staff_rows=staff_rows,
                  staff_names={u.id: u.shown_name for u in staff_rows},
                  kinds=list(codes("task_kind")), verify_tasks=VERIFY_TASKS)


@router.get("/tasks/{task_id}")
def task_page(request: Request, task_id: int, staff: SignedIn = Depends(require(*CASEWORK))) -> Response:
    with Session(request.app.state.engine) as db:
        task = db.get(Task, task_id)
        if task is None:
            raise HTTPException(404)
        person = db.get(Beneficiary, task.beneficiary_id) if task.beneficiary_id else None
        application = db.get(Application, task.application_id) if task.application_id else None
        notes = db.exec(select(TaskNote).where(TaskNote.task_id == task_id).order_by(col(TaskNote.at))).all()
        staff_rows = _staff_list(db)
        report = task_details(task.details) if task.kind in VERIFY_TASKS and task.details else None
    return render(request, "task.html", staff, task=task, person=person, application=application, notes=notes,
                  staff_rows=staff_rows, staff_names={u.id: u.shown_name for u in staff_rows}, report=report,
                  outcomes=task_outcomes(task.kind))


def _task_action(request: Request, staff: SignedIn, task_id: int, change: Any, done: str, back: str = "") -> Response:
    try:
        with session_scope(request.app.state.engine) as db:
            task = db.get(Task, task_id)
            if task is None:
                raise HTTPException(404)
            change(db, task, request.app.state.clock.now())
        message = ui(done, staff.language)
    except CaseworkRefused as exc:
        message = ui("未能保存：{why}", staff.language, why=str(exc))
    flash(request, staff, message)
    return RedirectResponse(safe_next(back) if back else f"/tasks/{task_id}", status_code=303)


@router.post("/tasks/{task_id}/done")
def task_done(request: Request, task_id: int, outcome: str = Form(""), note: str = Form(""),
              certified: str = Form(""), back: str = Form(""), staff: SignedIn = Depends(CASEWORKER)) -> Response:
    """Complete with an outcome. (`certified=1` is the older form of outcome=certified.)"""
    today = today_in_office(request)
    chosen = outcome or ("certified" if certified else "")

    def change(db: Session, task: Task, now: Any) -> None:
        picked = chosen or ("done" if task_outcomes(task.kind) and "done" in task_outcomes(task.kind) else "")
        complete_task(db, task, outcome=picked, actor=staff.username, now=now, today=today, note=note)

    done = N_("已完成任务；认证已记录，后续提醒不再发送。") if chosen == "certified" else N_("已完成任务。")
    return _task_action(request, staff, task_id, change, done, back)


@router.post("/tasks/{task_id}/note")
def task_note(request: Request, task_id: int, note: str = Form(""), staff: SignedIn = Depends(CASEWORKER)) -> Response:
    return _task_action(request, staff, task_id,
                        lambda db, task, now: add_task_note(db, task, note, actor=staff.username, now=now),
                        N_("已添加备注。"))


@router.post("/tasks/{task_id}/assign")
def task_assign(request: Request, task_id: int, assignee: str = Form(""),
                staff: SignedIn = Depends(CASEWORKER)) -> Response:
    def change(db: Session, task: Task, now: Any) -> None:
        target = None
        if assignee == "me":
            target = staff.user_id
        elif assignee.isdigit():
            user = db.get(StaffUser, int(assignee))
            if user is None or not user.active:
                raise CaseworkRefused(ui("没有这个同事的账号。", staff.language))
            target = user.id
        assign_task(db, task, target, actor=staff.username, now=now)

    return _task_action(request, staff, task_id, change, N_("已分派。"))


@router.post("/tasks/{task_id}/confirm")
def task_confirm(request: Request, task_id: int, note: str = Form(""), back: str = Form(""),
                 staff: SignedIn = Depends(CASEWORKER)) -> Response:
    def change(db: Session, task: Task, now: Any) -> None:
        if not note.strip():
            raise CaseworkRefused(ui("请写明是怎么核实的。", staff.language))
        confirm_report(db, task, actor=staff.username, now=now, note=note)

    return _task_action(request, staff, task_id, change, N_("已核实，记录已更新。"), back)


@router.post("/tasks/{task_id}/reject")
def task_reject(request: Request, task_id: int, reason: str = Form(""), back: str = Form(""),
                staff: SignedIn = Depends(CASEWORKER)) -> Response:
    return _task_action(request, staff, task_id,
                        lambda db, task, now: reject_report(db, task, actor=staff.username, reason=reason, now=now),
                        N_("已记录为不属实，记录没有改变，恢复正常联系。"), back)
