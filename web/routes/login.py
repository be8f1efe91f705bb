"""Sign-in and sign-out (`/login`, `/logout`).

Sign-in goes through `models.staff_access.sign_in` (limits per account and per address, one
answer and one answer time for unknown names, wrong passwords and inactive accounts, audit);
a new server-side session is started and its secret set in an HTTP-only cookie. Sign-out
revokes the session on the server, so a copy of the cookie is worth nothing afterwards.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from models.db import session_scope
from models.staff import StaffSession
from models.staff_access import SignInRefusal, end_session, sign_in, start_session
from web.pages import language, render
from web.security import (
    LANG_COOKIE,
    PRE_COOKIE,
    SignedIn,
    check_pre_session_token,
    clear_session_cookie,
    client_address,
    current_staff,
    pre_session_token,
    require,
    set_pre_cookie,
    set_session_cookie,
)
from web.words import LANGUAGES, ZH, ui

router = APIRouter(include_in_schema=False)


def safe_next(target: str) -> str:
    """Only a path on this site (never `//host` or a full URL), and never back to /login."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or target.startswith("/login"):
        return "/"
    return target


def _login_page(request: Request, *, next: str, error: str | None = None, username: str = "",
                expired: bool = False, status_code: int = 200) -> Response:
    cookies: dict[str, str] = {}
    token = pre_session_token(request, cookies)
    response = render(request, "login.html", None, status_code=status_code, csrf=token, next=safe_next(next),
                      error=error, username=username, expired=expired)
    if PRE_COOKIE in cookies:
        set_pre_cookie(request, response, cookies[PRE_COOKIE])
    return response


@router.get("/login")
async def login_form(request: Request, next: str = "/", expired: int = 0) -> Response:
    if await current_staff(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, next=next, expired=bool(expired))


@router.get("/login/language")
def login_language(request: Request, to: str = ZH) -> Response:
    """The language of the sign-in page (after sign-in, each staff member's own setting decides)."""
    response = RedirectResponse("/login", status_code=303)
    response.set_cookie(LANG_COOKIE, to if to in LANGUAGES else ZH, max_age=365 * 86400, samesite="lax",
                        httponly=True, path="/")
    return response


@router.post("/login")
async def login(request: Request, username: str = Form(""), password: str = Form(""), next: str = Form("/"),
                csrf: str = Form("")) -> Response:
    lang = language(request, None)
    if not check_pre_session_token(request, csrf):
        return _login_page(request, next=next, username=username, status_code=400,
                           error=ui("登录页面已过期，请再输入一次密码。", lang))

    def attempt() -> str | SignInRefusal:
        now = request.app.state.clock.now()
        with session_scope(request.app.state.engine) as db:
            result = sign_in(db, username=username, password=password, address=client_address(request), now=now,
                             policy=request.app.state.access_policy)
            if result.user is None:
                assert result.refusal is not None  # no user: there is a reason
                return result.refusal
            return start_session(db, result.user, now=now, address=client_address(request),
                                 user_agent=request.headers.get("user-agent", "")).secret

    outcome = await run_in_threadpool(attempt)
    if isinstance(outcome, SignInRefusal):
        message = "尝试次数太多，请过一分钟再试。" if outcome == SignInRefusal.LOCKED else "用户名或密码不对。"
        return _login_page(request, next=next, username=username, status_code=401, error=ui(message, lang))
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(request, response, outcome)
    response.delete_cookie(PRE_COOKIE, path="/")
    return response


@router.post("/logout")
def logout(request: Request, staff: SignedIn = Depends(require())) -> Response:
    with session_scope(request.app.state.engine) as db:
        row = db.get(StaffSession, staff.session_id)
        if row is not None:
            end_session(db, row, actor=staff.username, now=request.app.state.clock.now())
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(request, response)
    return response
