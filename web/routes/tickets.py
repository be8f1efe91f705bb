"""Handed-off questions (`/tickets`): who is asking, the conversation, reply, close, assign."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select

from models.applications import HandoffTicket
from models.staff import Role
from web.pages import CASEWORK, render
from web.security import SignedIn, flash, require
from web.words import ui

router = APIRouter(include_in_schema=False)


@router.get("/tickets")
def tickets(request: Request, status: str = "open", staff: SignedIn = Depends(require(*CASEWORK))) -> Response:
    with Session(request.app.state.engine) as db:
        rows = db.exec(select(HandoffTicket).where(HandoffTicket.status == status)
                       .order_by(col(HandoffTicket.created_at)).limit(200)).all()
    return render(request, "tickets.html", staff, rows=rows, status=status)


@router.post("/tickets/{ticket_id}/reply")
def ticket_reply(request: Request, ticket_id: int, answer: str = Form(""),
                 staff: SignedIn = Depends(require(Role.CASEWORKER))) -> Response:
    from bot.tickets import TicketError, reply_to_ticket

    try:
        reply_to_ticket(request.app.state.engine, ticket_id, answer, staff.username, request.app.state.clock.now())
        message = ui("已回复，答复会通过对方使用的渠道发出", staff.language)
    except TicketError as exc:
        message = ui("未能回复：{why}", staff.language, why=str(exc))
    flash(request, staff, message)
    return RedirectResponse("/tickets", status_code=303)
