"""The schedule page: what the scheduler will send in the coming days, day by day with counts
(the same entries as `nuanxin schedule preview --all`: festivals, certification reminders,
payment notices, scheduled broadcasts), and the festival occasions with the office's changes.
An approver switches an occasion off or on, moves its time or names who gets it; the
scheduler reads the change at its next minute (no restart). Audited.
"""

from __future__ import annotations

from datetime import date, timedelta

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, select
from starlette.datastructures import FormData

from models.db import session_scope
from models.scheduler import OccasionSetting
from models.staff import Role
from outreach.occasion_settings import (
    OccasionChangeRefused,
    change_occasion,
    file_rules,
    occasion_rules,
    reset_occasion,
)
from outreach.occasions import KINDS, OCCASIONS, occasion_dates
from web.pages import render, today_in_office
from web.routes.broadcasts import SEES, posted
from web.security import SignedIn, flash, require
from web.words import ui

router = APIRouter(include_in_schema=False)
MAX_DAYS = 92


@router.get("/schedule")
def schedule_page(request: Request, start: str = "", days: int = 14, staff: SignedIn = Depends(require(*SEES))
                  ) -> Response:
    from scheduler_commands import per_day, upcoming

    settings = request.app.state.settings
    today = today_in_office(request)
    try:
        first = date.fromisoformat(start) if start else today
    except ValueError:
        first = today
    days = min(max(days, 1), MAX_DAYS)
    with Session(request.app.state.engine) as db:
        rules = occasion_rules(db, settings)
        entries = upcoming(db, first, days, settings.tz, occasion_rules=rules, today=today)
        changes = {row.occasion: row for row in db.exec(select(OccasionSetting)).all()}
    defaults = file_rules(settings)
    this_year = occasion_dates(today.year)
    next_year = occasion_dates(today.year + 1)
    dates = {name: this_year[name] if this_year[name] >= today else next_year[name] for name in OCCASIONS}
    return render(request, "schedule.html", staff, days=per_day(entries, settings.tz), first=first, n_days=days,
                  rules=rules, defaults=defaults, changes=changes, dates=dates, occasions=sorted(OCCASIONS,
                  key=lambda o: dates[o]), kinds=sorted(KINDS), can_change=staff.has(Role.APPROVER),
                  earlier=(first - timedelta(days=days)).isoformat(), later=(first + timedelta(days=days)).isoformat())


@router.post("/schedule/occasions/{occasion}")
def schedule_change(request: Request, occasion: str, form: FormData = Depends(posted),
                    staff: SignedIn = Depends(require(Role.APPROVER))) -> Response:
    if occasion not in OCCASIONS:
        raise HTTPException(404)
    now, settings = request.app.state.clock.now(), request.app.state.settings
    action, enabled = form.get("action"), form.get("enabled")
    try:
        with session_scope(request.app.state.engine) as db:
            if action == "reset":
                reset_occasion(db, occasion, actor=staff.username, now=now)
                message = ui("已恢复默认安排。", staff.language)
            elif enabled in ("yes", "no"):
                send_time = form.get("send_time")
                audience = [k for k in form.getlist("audience") if isinstance(k, str)]
                change_occasion(db, occasion, actor=staff.username, now=now, settings=settings,
                                enabled=enabled == "yes", send_time=send_time if isinstance(send_time, str) else None,
                                audience=audience if form.get("own_audience") == "yes" else None)
                message = ui("已保存，定时任务一分钟内按新的安排执行。", staff.language)
            else:
                message = ui("请选择发送还是不发。", staff.language)
    except OccasionChangeRefused as exc:
        zh, _, en = str(exc).partition(" / ")
        message = ui("未能完成：{why}", staff.language, why=en if staff.language == "en" and en else zh)
    flash(request, staff, message)
    return RedirectResponse(f"/schedule#occasion-{occasion}", status_code=303)
