"""The handoff inbox (`/tickets`): questions the bot passed to a person.

Each shows who is asking (the person's name, or a masked phone when they are not on the roll),
the channel and how long the question has waited; its page has the conversation. Staff reply
(`bot.tickets.reply_to_ticket`: the answer goes out through the outbox on the channel the
person used, a console conversation included), close with a reason, assign to a colleague, or
turn an answer into a knowledge draft in the database (`bot.tickets.draft_article`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func
from sqlmodel import Session, col, select

from models.actions import CaseworkRefused, assign_ticket, close_ticket
from models.applications import HandoffTicket
from models.conversations import MessageLog
from models.db import session_scope
from models.people import Beneficiary
from models.phone import mask_phone
from models.staff import Role, StaffUser
from web.pages import CASEWORK, paging, render
from web.security import SignedIn, flash, require
from web.words import N_, codes, ui

router = APIRouter(include_in_schema=False)
CASEWORKER = require(Role.CASEWORKER)


def who_is_asking(ticket: HandoffTicket, person: Beneficiary | None) -> str:
    if person is not None:
        return person.name
    return mask_phone(ticket.address) if ticket.channel == "sms" else ticket.address


def _staff(db: Session) -> list[StaffUser]:
    return list(db.exec(select(StaffUser).where(StaffUser.active == True).order_by(StaffUser.username)).all())  # noqa: E712


@router.get("/tickets")
def tickets(request: Request, status: str = "open", assignee: str = "", page: int = 1,
            staff: SignedIn = Depends(require(*CASEWORK))) -> Response:
    with Session(request.app.state.engine) as db:
        query = select(HandoffTicket, Beneficiary).join(
            Beneficiary, col(Beneficiary.id) == col(HandoffTicket.beneficiary_id), isouter=True)
        if status:
            query = query.where(HandoffTicket.status == status)
        if assignee == "me":
            query = query.where(HandoffTicket.assigned_staff_id == staff.user_id)
        elif assignee == "none":
            query = query.where(col(HandoffTicket.assigned_staff_id).is_(None))
        total = db.exec(select(func.count()).select_from(query.subquery())).one()
        pages = paging(page, total)
        rows = db.exec(query.order_by(col(HandoffTicket.created_at), col(HandoffTicket.id))
                       .offset(pages.offset).limit(pages.size)).all()
        counts = dict(db.exec(select(HandoffTicket.status, func.count()).group_by(HandoffTicket.status)).all())
        names = {u.id: u.shown_name for u in _staff(db)}
    now = request.app.state.clock.now()
    return render(request, "tickets.html", staff, rows=[(t, p, who_is_asking(t, p)) for t, p in rows],
                  status=status, assignee=assignee, pages=pages, counts=counts, staff_names=names,
                  statuses=list(codes("ticket_status")), waited=lambda at: (now - at).total_seconds())


@router.get("/tickets/{ticket_id}")
def ticket_page(request: Request, ticket_id: int, staff: SignedIn = Depends(require(*CASEWORK))) -> Response:
    with Session(request.app.state.engine) as db:
        ticket = db.get(HandoffTicket, ticket_id)
        if ticket is None:
            raise HTTPException(404)
        person = db.get(Beneficiary, ticket.beneficiary_id) if ticket.beneficiary_id else None
        log = list(reversed(db.exec(select(MessageLog).where(MessageLog.channel == ticket.channel,
                                                             MessageLog.address == ticket.address)
                                    .order_by(col(MessageLog.created_at).desc(), col(MessageLog.id).desc())
                                    .limit(30)).all()))
        colleagues = _staff(db)
    now = request.app.state.clock.now()
    return render(request, "ticket.html", staff, ticket=ticket, person=person, who=who_is_asking(ticket, person),
                  log=log, colleagues=colleagues, staff_names={u.id: u.shown_name for u in colleagues},
                  waited=(now - ticket.created_at).total_seconds(), close_reasons=list(codes("close_reason")))


def _back(ticket_id: int) -> RedirectResponse:
    return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)


@router.post("/tickets/{ticket_id}/reply")
def ticket_reply(request: Request, ticket_id: int, answer: str = Form(""),
                 staff: SignedIn = Depends(CASEWORKER)) -> Response:
    from bot.tickets import TicketError, reply_to_ticket

    try:
        reply_to_ticket(request.app.state.engine, ticket_id, answer, staff.username, request.app.state.clock.now())
        message = ui("已回复，答复会通过对方使用的渠道发出", staff.language)
        target: Response = RedirectResponse("/tickets", status_code=303)
    except TicketError as exc:
        message = ui("未能回复：{why}", staff.language, why=str(exc))
        target = _back(ticket_id)
    flash(request, staff, message)
    return target


def _ticket_action(request: Request, staff: SignedIn, ticket_id: int, change: Any, done: str) -> Response:
    try:
        with session_scope(request.app.state.engine) as db:
            ticket = db.get(HandoffTicket, ticket_id)
            if ticket is None:
                raise HTTPException(404)
            change(db, ticket, request.app.state.clock.now())
        message = ui(done, staff.language)
    except CaseworkRefused as exc:
        message = ui("未能保存：{why}", staff.language, why=str(exc))
    flash(request, staff, message)
    return _back(ticket_id)


@router.post("/tickets/{ticket_id}/close")
def ticket_close(request: Request, ticket_id: int, reason: str = Form(""), note: str = Form(""),
                 staff: SignedIn = Depends(CASEWORKER)) -> Response:
    return _ticket_action(request, staff, ticket_id, lambda db, t, now: close_ticket(
        db, t, reason=reason, note=note, actor=staff.username, now=now), N_("已关闭这个问题。"))


@router.post("/tickets/{ticket_id}/assign")
def ticket_assign(request: Request, ticket_id: int, assignee: str = Form(""),
                  staff: SignedIn = Depends(CASEWORKER)) -> Response:
    def change(db: Session, ticket: HandoffTicket, now: Any) -> None:
        target = staff.user_id if assignee == "me" else None
        if assignee.isdigit():
            user = db.get(StaffUser, int(assignee))
            if user is None or not user.active:
                raise CaseworkRefused(ui("没有这个同事的账号。", staff.language))
            target = user.id
        assign_ticket(db, ticket, target, actor=staff.username, now=now)

    return _ticket_action(request, staff, ticket_id, change, N_("已分派。"))


@router.post("/tickets/{ticket_id}/draft")
def ticket_draft(request: Request, ticket_id: int, staff: SignedIn = Depends(CASEWORKER)) -> Response:
    """Turn a staff answer into a knowledge-article draft (in the database; reviewed before the bot uses it)."""
    from bot.tickets import TicketError, draft_article

    try:
        record = draft_article(request.app.state.engine, ticket_id, staff.username, request.app.state.clock.now())
        with session_scope(request.app.state.engine) as db:
            from models.actions import audit

            audit(db, staff.username, "ticket.draft_article", "handoff_ticket", ticket_id,
                  {"article": record.article_id}, request.app.state.clock.now())
        message = ui("已生成知识库草稿“{id}”，审核通过后机器人才会用它回答。", staff.language, id=record.article_id)
    except TicketError as exc:
        message = ui("未能生成草稿：{why}", staff.language, why=str(exc))
    flash(request, staff, message)
    return _back(ticket_id)
