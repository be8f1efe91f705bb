"""Rendering console pages: one Jinja2 environment, the navigation, the words, paging.

Every page extends `templates/web/base.html`; `render()` gives it the signed-in member,
the language, the CSRF token, the flash message and the navigation the member's roles allow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from models.phone import mask_phone
from models.privacy import redact
from models.staff import Role
from web.security import LANG_COOKIE, SignedIn
from web.words import EN, LANGUAGES, N_, ZH, choices, label, ui

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates" / "web"))


def looks_like_code(value: str) -> bool:
    """A value a form sends from a button or a drop-down (a code, a number, a date), not typed words."""
    return bool(_CODE.fullmatch(value))


_CODE = re.compile(r"[A-Za-z0-9_.:/+-]*")
TEMPLATES.env.globals.update(label=label, choices=choices, looks_like_code=looks_like_code)
TEMPLATES.env.filters["phone"] = mask_phone
TEMPLATES.env.filters["masked"] = redact  # free text people typed: ID numbers, phones, codes masked

PAGE_SIZE = 25


@dataclass(frozen=True)
class NavItem:
    path: str
    text: str  # Chinese; translated with ui()
    roles: tuple[Role, ...]


# The console's pages in the order staff use them; each shown only to the roles its route admits.
CASEWORK = (Role.VIEWER, Role.CASEWORKER)
OUTREACH = (Role.VIEWER, Role.CASEWORKER, Role.COMPOSER, Role.APPROVER)  # see the outreach pages
NAV: tuple[NavItem, ...] = (
    NavItem("/", N_("首页"), ()),
    NavItem("/people", N_("服务对象"), CASEWORK),
    NavItem("/applications", N_("申请"), CASEWORK),
    NavItem("/tickets", N_("转人工"), CASEWORK),
    NavItem("/tasks", N_("任务"), CASEWORK),
    NavItem("/broadcasts", N_("群发通知"), OUTREACH),
    NavItem("/outbox", N_("发送记录"), OUTREACH),
    NavItem("/schedule", N_("发送日程"), OUTREACH),
    NavItem("/knowledge", N_("知识库"), OUTREACH),
    NavItem("/simulator", N_("机器人试用"), (Role.CASEWORKER, Role.COMPOSER, Role.APPROVER)),
    NavItem("/import", N_("导入名册"), (Role.ADMIN,)),
    NavItem("/audit", N_("操作记录"), (Role.ADMIN, Role.APPROVER)),
    NavItem("/staff", N_("工作人员"), (Role.ADMIN,)),
)


def language(request: Request, staff: SignedIn | None) -> str:
    if staff is not None:
        return staff.language if staff.language in LANGUAGES else ZH
    wanted = request.cookies.get(LANG_COOKIE, ZH)
    return wanted if wanted in LANGUAGES else ZH


def fmt_time(value: datetime | None, tz: Any, with_year: bool = True) -> str:
    if value is None:
        return ""
    local = value.astimezone(tz)
    return local.strftime("%Y-%m-%d %H:%M" if with_year else "%m-%d %H:%M")


def fmt_money(fen: int | None) -> str:
    if fen is None:
        return ""
    return f"{fen / 100:,.2f}"


def age_words(seconds: float, lang: str) -> str:
    """How long ago, in words staff read at a glance."""
    minutes = int(seconds // 60)
    if minutes < 60:
        return ui("{n} 分钟", lang, n=max(minutes, 1))
    hours = minutes // 60
    if hours < 48:
        return ui("{n} 小时", lang, n=hours)
    return ui("{n} 天", lang, n=hours // 24)


@dataclass(frozen=True)
class Paging:
    page: int
    size: int
    total: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def first_shown(self) -> int:
        return 0 if self.total == 0 else self.offset + 1

    @property
    def last_shown(self) -> int:
        return min(self.total, self.offset + self.size)


def paging(page: int, total: int, size: int = PAGE_SIZE) -> Paging:
    pages = max(1, -(-total // size))
    return Paging(min(max(page, 1), pages), size, total)


def query_with(request: Request, **changes: Any) -> str:
    """This page's query string with some values changed (for paging and filter links)."""
    params = dict(request.query_params)
    for key, value in changes.items():
        if value in (None, ""):
            params.pop(key, None)
        else:
            params[key] = str(value)
    return "?" + urlencode(params) if params else "?"


def render(request: Request, name: str, staff: SignedIn | None, *, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    lang = language(request, staff)
    tz = request.app.state.settings.tz

    def _(text: str, **values: Any) -> str:
        return ui(text, lang, **values)

    context.update(
        request=request, staff=staff, lang=lang, _=_, ZH=ZH, EN=EN,
        csrf=context.get("csrf") or (staff.csrf if staff else ""),
        flash=context.get("flash") or (staff.flash if staff else None),
        nav=[item for item in NAV if staff is not None and staff.has_any(item.roles)],
        current_path=request.url.path,
        time=lambda value, with_year=True: fmt_time(value, tz, with_year),
        money=fmt_money, query_with=lambda **kw: query_with(request, **kw),
        age=lambda seconds: age_words(seconds, lang),
        today=request.app.state.clock.now().astimezone(tz).date(),
        L=lambda group, code: label(group, code, lang),
        options=lambda group: choices(group, lang),
    )
    response = TEMPLATES.TemplateResponse(request, name, context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


def today_in_office(request: Request) -> date:
    return request.app.state.clock.now().astimezone(request.app.state.settings.tz).date()
