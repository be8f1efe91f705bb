"""Tasks for community and office staff (`/tasks`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select

from models.actions import audit, record_certification
from models.applications import Task
from models.people import Beneficiary
from models.staff import Role
from web.pages import CASEWORK, render, today_in_office
from web.security import SignedIn, flash, require
from web.words import ui

router = APIRouter(include_in_schema=False)
CERTIFICATION_TASKS = {"home_visit", "certification_booking"}


@router.get("/tasks")
def tasks(request: Request, status: str = "open", staff: SignedIn = Depends(require(*CASEWORK))) -> Response:
    with Session(request.app.state.engine) as db:
        rows = db.exec(select(Task, Beneficiary)
                       .join(Beneficiary, col(Beneficiary.id) == col(Task.beneficiary_id), isouter=True)
                       .where(Task.status == status)
                       .order_by(col(Task.priority).desc(), col(Task.created_at)).limit(50)).all()
    return render(request, "tasks.html", staff, rows=rows, status=status, certification_tasks=CERTIFICATION_TASKS)


@router.post("/tasks/{task_id}/done")
def task_done(request: Request, task_id: int, note: str = Form(""), certified: str = Form(""),
              staff: SignedIn = Depends(require(Role.CASEWORKER))) -> Response:
    message = None
    with Session(request.app.state.engine, expire_on_commit=False) as db:
        task = db.get(Task, task_id)
        if task is None:
            raise HTTPException(404)
        if task.status == "open":
            now = request.app.state.clock.now()
            task.status = "done"
            task.closed_at = now
            task.note = (task.note + "\n" + note).strip() if note else task.note
            db.add(task)
            audit(db, staff.username, "task.done", "task", task.id, {"kind": task.kind})
            if certified and task.kind in CERTIFICATION_TASKS and task.beneficiary_id is not None:
                person = db.get(Beneficiary, task.beneficiary_id)
                if person is not None:
                    record_certification(db, person, on=today_in_office(request), actor=staff.username,
                                         method=task.kind, now=now)
                    message = ui("已记录{name}今年的资格认证，后续提醒不再发送", staff.language, name=person.name)
            db.commit()
    if message:
        flash(request, staff, message)
    return RedirectResponse("/tasks", status_code=303)
