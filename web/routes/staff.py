"""Staff accounts (`/staff`, administrators): add, change roles, deactivate, reset a password.

Each change goes through `models.staff_access` (audited); a role change, a deactivation and
a reset end the member's sessions at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import col, select

from models.db import session_scope
from models.staff import Role, StaffUser
from models.staff_access import AccountError, create_staff, set_active, set_password, set_roles
from web.pages import render
from web.security import SignedIn, flash, require
from web.words import ui

router = APIRouter(include_in_schema=False)
ADMIN = require(Role.ADMIN)


def _page(request: Request, staff: SignedIn, *, status_code: int = 200, **context: object) -> Response:
    with session_scope(request.app.state.engine) as db:
        users = db.exec(select(StaffUser).order_by(col(StaffUser.active).desc(), StaffUser.username)).all()
        return render(request, "staff.html", staff, status_code=status_code, users=users,
                      roles=[r.value for r in Role], **context)


@router.get("/staff")
def staff_list(request: Request, staff: SignedIn = Depends(ADMIN)) -> Response:
    return _page(request, staff)


@router.post("/staff")
def staff_add(request: Request, username: str = Form(""), display_name: str = Form(""),
              roles: list[str] = Form(default=[]), password: str = Form(""),
              staff: SignedIn = Depends(ADMIN)) -> Response:
    try:
        with session_scope(request.app.state.engine) as db:
            user = create_staff(db, username=username, password=password, roles=roles, display_name=display_name,
                                actor=staff.username, now=request.app.state.clock.now())
            name = user.username
    except AccountError as exc:
        return _page(request, staff, status_code=400, add_error=str(exc),
                     typed={"username": username, "display_name": display_name, "roles": roles})
    flash(request, staff, ui("已新建账号 {name}。请把密码当面交给本人，并提醒登录后修改。", staff.language, name=name))
    return RedirectResponse("/staff", status_code=303)


def _change_account(request: Request, staff: SignedIn, user_id: int, change: Callable[[Any, StaffUser, Any], str],
                    failed: str) -> Response:
    """Apply one change to another staff account, say what happened (or why not), back to the list."""
    try:
        with session_scope(request.app.state.engine) as db:
            user = db.get(StaffUser, user_id)
            if user is None:
                raise AccountError(ui("没有这个账号。", staff.language))
            message = change(db, user, request.app.state.clock.now())
    except AccountError as exc:
        message = ui(failed, staff.language, why=str(exc))
    flash(request, staff, message)
    return RedirectResponse("/staff", status_code=303)


@router.post("/staff/{user_id}/roles")
def staff_roles(request: Request, user_id: int, roles: list[str] = Form(default=[]),
                staff: SignedIn = Depends(ADMIN)) -> Response:
    def change(db: Any, user: StaffUser, now: Any) -> str:
        set_roles(db, user, roles, actor=staff.username, now=now)
        return ui("已更改 {name} 的角色；对方需要重新登录。", staff.language, name=user.username)

    return _change_account(request, staff, user_id, change, "未能更改：{why}")


@router.post("/staff/{user_id}/active")
def staff_active(request: Request, user_id: int, active: str = Form(...),
                 staff: SignedIn = Depends(ADMIN)) -> Response:
    def change(db: Any, user: StaffUser, now: Any) -> str:
        set_active(db, user, active == "yes", actor=staff.username, now=now)
        return ui("已启用 {name}。" if active == "yes" else "已停用 {name}，对方已被退出登录。", staff.language,
                  name=user.username)

    return _change_account(request, staff, user_id, change, "未能更改：{why}")


@router.post("/staff/{user_id}/password")
def staff_password(request: Request, user_id: int, new_password: str = Form(""),
                   staff: SignedIn = Depends(ADMIN)) -> Response:
    def change(db: Any, user: StaffUser, now: Any) -> str:
        set_password(db, user, new_password, actor=staff.username, now=now)
        return ui("已重设 {name} 的密码，对方已被退出登录。", staff.language, name=user.username)

    return _change_account(request, staff, user_id, change, "未能重设：{why}")
