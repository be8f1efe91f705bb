"""The outreach pages' places in the console: broadcasts awaiting approval, and the pages the
outreach console will fill (`/broadcasts/new`, `/knowledge`, `/outbox`, `/simulator`,
`/schedule`), each behind the roles it will need.

What works here today is the approval of a broadcast written with `nuanxin broadcast create`:
an approver who is not its author approves it (four eyes, `outreach.broadcasts.approve_broadcast`).
The other pages say plainly that they are not open yet and which command does the work meanwhile.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import col, select

from models.db import session_scope
from models.outbox import Broadcast, BroadcastStatus
from models.staff import Role, StaffUser
from web.pages import render
from web.security import SignedIn, flash, require, staff_user
from web.words import N_, ui

router = APIRouter(include_in_schema=False)


@router.get("/broadcasts")
def broadcasts(request: Request, staff: SignedIn = Depends(require(Role.COMPOSER, Role.APPROVER))) -> Response:
    with session_scope(request.app.state.engine) as db:
        rows = db.exec(select(Broadcast).order_by(col(Broadcast.created_at).desc()).limit(100)).all()
        authors = {u.id: u.shown_name for u in db.exec(select(StaffUser)).all()}
        return render(request, "broadcasts.html", staff, rows=rows, authors=authors,
                      waiting={BroadcastStatus.PENDING_APPROVAL.value, BroadcastStatus.DRAFT.value})


@router.post("/broadcasts/{broadcast_id}/approve")
def broadcast_approve(request: Request, broadcast_id: int,
                      staff: SignedIn = Depends(require(Role.APPROVER))) -> Response:
    from outreach.broadcasts import BroadcastRefused, approve_broadcast

    try:
        with session_scope(request.app.state.engine) as db:
            b = db.get(Broadcast, broadcast_id)
            if b is None:
                raise HTTPException(404)
            approve_broadcast(db, b, approver=staff_user(db, staff), now=request.app.state.clock.now())
            message = ui("已批准“{title}”。", staff.language, title=b.title)
    except BroadcastRefused as exc:
        # The refusal is audited by approve_broadcast; that row is kept in a transaction of its own.
        with session_scope(request.app.state.engine) as db:
            from models.actions import audit

            audit(db, staff.username, "broadcast.approve_refused", "broadcast", broadcast_id,
                  {"reason": str(exc)}, request.app.state.clock.now())
        four_eyes = "four eyes" in str(exc)
        message = ui("不能批准：通知必须由撰写人以外的另一位审核人批准。" if four_eyes else "不能批准：{why}",
                     staff.language, why=str(exc))
    flash(request, staff, message)
    return RedirectResponse("/broadcasts", status_code=303)


PLANNED = {
    "/broadcasts/new": (N_("撰写群发通知"), "nuanxin broadcast create"),
    "/knowledge": (N_("知识库审核"), "nuanxin eval-qa"),
    "/outbox": (N_("消息发送记录"), "nuanxin outbox status"),
    "/simulator": (N_("机器人试用"), "nuanxin chat"),
    "/schedule": (N_("发送日程"), "nuanxin schedule preview"),
}


def _planned(request: Request, staff: SignedIn) -> Response:
    title, command = PLANNED[request.url.path]
    return render(request, "planned.html", staff, title=title, command=command)


@router.get("/broadcasts/new")
def broadcast_new(request: Request, staff: SignedIn = Depends(require(Role.COMPOSER))) -> Response:
    return _planned(request, staff)


@router.get("/knowledge")
def knowledge(request: Request,
              staff: SignedIn = Depends(require(Role.CASEWORKER, Role.COMPOSER, Role.APPROVER))) -> Response:
    return _planned(request, staff)


@router.get("/outbox")
def outbox(request: Request, staff: SignedIn = Depends(require(Role.CASEWORKER))) -> Response:
    return _planned(request, staff)


@router.get("/simulator")
def simulator(request: Request, staff: SignedIn = Depends(require(Role.CASEWORKER, Role.COMPOSER))) -> Response:
    return _planned(request, staff)


@router.get("/schedule")
def schedule(request: Request, staff: SignedIn = Depends(require(Role.COMPOSER, Role.APPROVER))) -> Response:
    return _planned(request, staff)
