"""A staff member's own account (`/account`): console language, password, command-line tokens.

Changing the password ends every session of the account (other browsers are signed out) and
starts a fresh one here. A command-line token is shown once, at issue; only its hash is kept.
"""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import col, select

from models.db import session_scope
from models.staff import StaffToken, check_password
from models.staff_access import (
    AccountError,
    issue_token,
    revoke_token,
    set_language,
    set_password,
    start_session,
)
from web.pages import render
from web.routes.login import safe_next
from web.security import SignedIn, client_address, flash, require, set_session_cookie, staff_user
from web.words import ui

router = APIRouter(include_in_schema=False)


def _page(request: Request, staff: SignedIn, *, status_code: int = 200, **context: object) -> Response:
    now = request.app.state.clock.now()
    with session_scope(request.app.state.engine) as db:
        user = staff_user(db, staff)
        tokens = db.exec(select(StaffToken).where(StaffToken.staff_id == staff.user_id,
                                                  col(StaffToken.revoked_at).is_(None))
                         .order_by(col(StaffToken.created_at).desc())).all()
        live = [t for t in tokens if t.expires_at > now]
        return render(request, "account.html", staff, status_code=status_code, user=user, tokens=live, **context)


@router.get("/account")
def account(request: Request, staff: SignedIn = Depends(require())) -> Response:
    return _page(request, staff)


@router.post("/account/language")
def account_language(request: Request, language: str = Form(...), back: str = Form("/"),
                     staff: SignedIn = Depends(require())) -> Response:
    # An unknown language changes nothing; the page stays as it was.
    with session_scope(request.app.state.engine) as db, contextlib.suppress(AccountError):
        set_language(db, staff_user(db, staff), language, now=request.app.state.clock.now())
    return RedirectResponse(safe_next(back), status_code=303)


@router.post("/account/password")
def account_password(request: Request, current_password: str = Form(""), new_password: str = Form(""),
                     new_password_again: str = Form(""), staff: SignedIn = Depends(require())) -> Response:
    lang = staff.language
    now = request.app.state.clock.now()
    error = None
    with session_scope(request.app.state.engine) as db:
        user = staff_user(db, staff)
        if not check_password(current_password, user.password_hash):
            error = ui("现在的密码不对。", lang)
        elif new_password != new_password_again:
            error = ui("两次输入的新密码不一样。", lang)
        else:
            try:
                set_password(db, user, new_password, actor=user.username, now=now)
            except AccountError as exc:
                error = str(exc)
        if error is None:
            secret = start_session(db, user, now=now, address=client_address(request),
                                   user_agent=request.headers.get("user-agent", "")).secret
    if error is not None:
        return _page(request, staff, status_code=400, password_error=error)
    response = RedirectResponse("/account", status_code=303)
    set_session_cookie(request, response, secret)
    return response


@router.post("/account/tokens")
def account_token(request: Request, label: str = Form(""), staff: SignedIn = Depends(require())) -> Response:
    with session_scope(request.app.state.engine) as db:
        secret = issue_token(db, staff_user(db, staff), label=label or ui("命令行", staff.language),
                             now=request.app.state.clock.now(), policy=request.app.state.access_policy)
    return _page(request, staff, new_token=secret)


@router.post("/account/tokens/{token_id}/revoke")
def account_token_revoke(request: Request, token_id: int, staff: SignedIn = Depends(require())) -> Response:
    with session_scope(request.app.state.engine) as db:
        done = revoke_token(db, staff_user(db, staff), token_id, now=request.app.state.clock.now())
    flash(request, staff, ui("令牌已作废。", staff.language) if done else ui("没有这个令牌。", staff.language))
    return RedirectResponse("/account", status_code=303)
