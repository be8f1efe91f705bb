"""`/account/telegram`: a staff member links their own Telegram account, to use `/inbox`,
`/reply` and `/stats` with the bot (bot/staff_telegram.py). The page gives a one-time code to
send as `/link CODE` from that account; it is shown once and lasts ten minutes. Audited."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session
from starlette.datastructures import FormData

from bot import staff_telegram
from models.staff import StaffUser
from web.pages import render
from web.routes.broadcasts import posted
from web.security import SignedIn, flash, require
from web.words import ui

router = APIRouter(include_in_schema=False)


def _page(request: Request, staff: SignedIn, code: str | None = None) -> Response:
    with Session(request.app.state.engine) as db:
        user = db.get(StaffUser, staff.user_id)
        linked = bool(user and user.telegram_chat_id)
    return render(request, "staff_telegram.html", staff, linked=linked, code=code,
                  minutes=int(staff_telegram.CODE_TTL.total_seconds() // 60),
                  staff_chat=bool(request.app.state.settings.staff_telegram_chat_id))


@router.get("/account/telegram")
def telegram_page(request: Request, staff: SignedIn = Depends(require())) -> Response:
    return _page(request, staff)


@router.post("/account/telegram/code")
def telegram_code(request: Request, staff: SignedIn = Depends(require())) -> Response:
    """A fresh code, shown on this answer only (never stored in plain text, never logged)."""
    code = staff_telegram.issue_code(request.app.state.engine, staff.user_id, settings=request.app.state.settings,
                                     now=request.app.state.clock.now(), actor=staff.username)
    return _page(request, staff, code)


@router.post("/account/telegram/unlink")
def telegram_unlink(request: Request, form: FormData = Depends(posted), staff: SignedIn = Depends(require())
                    ) -> Response:
    if form.get("confirmed") == "yes":
        staff_telegram.unlink(request.app.state.engine, staff.user_id, actor=staff.username,
                              now=request.app.state.clock.now())
        flash(request, staff, ui("已解除绑定。", staff.language))
    return RedirectResponse("/account/telegram", status_code=303)
