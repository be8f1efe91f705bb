"""The outbox page: find messages by person, kind, broadcast, status or channel; a message's
whole history (every change of state and what the provider answered); send a failed one again
or cancel a queued one. Reading is for every outreach role; the two actions are for caseworkers
and composers. Changes go through `outreach.outbox_view` (the outbox's one state module
underneath), each audited.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session
from starlette.datastructures import FormData

from models.db import session_scope
from models.outbox import OutboxStatus
from models.staff import Role
from outreach import outbox_view as view
from web.pages import paging, render
from web.routes.broadcasts import SEES, posted
from web.security import SignedIn, flash, require
from web.words import ui

router = APIRouter(include_in_schema=False)
CHANGES = (Role.CASEWORKER, Role.COMPOSER)
KINDS = ("cert_reminder", "payment_notice", "contribution_notice", "payment_deadline_reminder", "festival_greeting",
         "staff_broadcast", "handoff_answer", "home_visit_notice", "over80_insurance", "survey_invitation", "otp",
         "one_time_code", "staff_summary", "staff_handoff")


@router.get("/outbox")
def outbox_page(request: Request, person: str = "", kind: str = "", broadcast: str = "", status: str = "",
                channel: str = "", page: int = 1, staff: SignedIn = Depends(require(*SEES))) -> Response:
    statuses = [s.value for s in OutboxStatus]
    q = view.OutboxQuery(person=person.strip()[:64], kind=kind if kind in KINDS or kind.startswith("stage_") else "",
                         broadcast=int(broadcast) if broadcast.strip().isdigit() else None,
                         status=status if status in statuses else "",
                         channel=channel if channel in ("telegram", "sms") else "")
    with Session(request.app.state.engine) as db:
        counts = view.counts_by_status(db, q)
        total = sum(n for s, n in counts.items() if not q.status or s == q.status)
        pages = paging(page, total, view.PAGE_SIZE)
        rows, _ = view.search(db, q, page=pages.page)
    return render(request, "outbox.html", staff, q=q, rows=rows, counts=counts, statuses=statuses, kinds=KINDS,
                  pages=pages, broadcast=broadcast, can_change=staff.has_any(CHANGES))


@router.get("/outbox/{message_id}")
def outbox_message(request: Request, message_id: int, staff: SignedIn = Depends(require(*SEES))) -> Response:
    with Session(request.app.state.engine) as db:
        h = view.history(db, message_id)
        if h is None:
            raise HTTPException(404)
        return render(request, "outbox_message.html", staff, h=h, can_change=staff.has_any(CHANGES))


def _act(request: Request, staff: SignedIn, message_id: int, action: str) -> Response:
    try:
        with session_scope(request.app.state.engine, immediate=True) as db:
            step = view.retry if action == "retry" else view.cancel
            step(db, message_id, actor=staff.username, now=request.app.state.clock.now())
        message = ui("已重新排队发送。" if action == "retry" else "已取消这条消息。", staff.language)
    except view.OutboxActionRefused:
        message = ui("这条消息现在不能这样处理（只有发送失败的能重发，只有还在排队的能取消）。", staff.language)
    flash(request, staff, message)
    return RedirectResponse(f"/outbox/{message_id}", status_code=303)


@router.post("/outbox/{message_id}/retry")
def outbox_retry(request: Request, message_id: int, staff: SignedIn = Depends(require(*CHANGES))) -> Response:
    return _act(request, staff, message_id, "retry")


@router.post("/outbox/{message_id}/cancel")
def outbox_cancel(request: Request, message_id: int, form: FormData = Depends(posted),
                  staff: SignedIn = Depends(require(*CHANGES))) -> Response:
    if form.get("confirmed") != "yes":
        flash(request, staff, ui("请勾选确认后再取消。", staff.language))
        return RedirectResponse(f"/outbox/{message_id}", status_code=303)
    return _act(request, staff, message_id, "cancel")
