"""The audit log (`/audit`, administrators and approvers): filter by staff member, action, person
and date; each row a readable sentence; the same selection as CSV (`/audit.csv`, cells a
spreadsheet would run escaped).

Failed sign-ins are kept (one row per wrong password, one per lock) but left out of the default
view, counted beside it, so that a burst of guessing never pushes real work out of sight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import and_, func, or_
from sqlmodel import Session, col, select

from models.applications import Application, HandoffTicket, Task
from models.people import Beneficiary, Contact
from models.phone import mask_phone
from models.staff import AuditLog, Role, StaffUser
from web.audit_words import describe
from web.csvout import csv_download
from web.pages import paging, render
from web.security import SignedIn, require
from web.words import EN, codes, label, ui

router = APIRouter(include_in_schema=False)
AUDITORS = require(Role.ADMIN, Role.APPROVER)
SIGN_IN_NOISE = ("staff.login_failed", "staff.login_locked")
SYSTEM_ACTORS = ("bot", "system", "scheduler", "dispatcher")
CSV_LIMIT = 50_000


@dataclass(frozen=True)
class AuditFilter:
    actor: str = ""
    action: str = ""
    person: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    signins: bool = False


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _person_targets(db: Session, person_id: int) -> Any:
    """Everything about one person: their record, contacts, applications and tasks."""
    def ids(model: Any, column: Any) -> list[str]:
        return [str(i) for i in db.exec(select(model.id).where(column == person_id)).all()]

    return or_(and_(col(AuditLog.target_type) == "beneficiary", col(AuditLog.target_id) == str(person_id)),
               and_(col(AuditLog.target_type) == "contact",
                    col(AuditLog.target_id).in_(ids(Contact, Contact.beneficiary_id))),
               and_(col(AuditLog.target_type) == "application",
                    col(AuditLog.target_id).in_(ids(Application, Application.beneficiary_id))),
               and_(col(AuditLog.target_type) == "task", col(AuditLog.target_id).in_(ids(Task, Task.beneficiary_id))),
               and_(col(AuditLog.target_type) == "handoff_ticket",
                    col(AuditLog.target_id).in_(ids(HandoffTicket, HandoffTicket.beneficiary_id))))


def _query(db: Session, f: AuditFilter, tz: Any) -> tuple[Any, int]:
    query = select(AuditLog)
    if f.actor:
        query = query.where(AuditLog.actor == f.actor)
    if f.action:
        query = query.where(AuditLog.action == f.action)
    if f.person is not None:
        query = query.where(_person_targets(db, f.person))
    if f.date_from:
        query = query.where(col(AuditLog.at) >= datetime.combine(f.date_from, time.min, tzinfo=tz))
    if f.date_to:
        query = query.where(col(AuditLog.at) < datetime.combine(f.date_to + timedelta(days=1), time.min, tzinfo=tz))
    hidden = 0
    if not f.signins and f.action not in SIGN_IN_NOISE:
        noise = query.where(col(AuditLog.action).in_(SIGN_IN_NOISE))
        hidden = int(db.exec(select(func.count()).select_from(noise.subquery())).one())
        query = query.where(col(AuditLog.action).not_in(SIGN_IN_NOISE))
    return query, hidden


def names_for(db: Session, rows: list[AuditLog], lang: str) -> dict[tuple[str, str], str]:
    """Readable names of the staff and the things these rows are about."""
    out: dict[tuple[str, str], str] = {}
    for u in db.exec(select(StaffUser)).all():
        out[("staff", u.username)] = u.shown_name
        out[("staff_id", str(u.id))] = u.shown_name
        out[("staff_user", str(u.id))] = f"{u.shown_name}（{u.username}）"

    def wanted(kind: str) -> list[int]:
        return [int(r.target_id) for r in rows if r.target_type == kind and r.target_id.isdigit()]

    applications = db.exec(select(Application).where(col(Application.id).in_(wanted("application")))).all()
    tasks = db.exec(select(Task).where(col(Task.id).in_(wanted("task")))).all()
    # A task or an application is named with the person it is about: "上门认证（黄国华）".
    people = set(wanted("beneficiary")) | {a.beneficiary_id for a in applications} | {
        t.beneficiary_id for t in tasks if t.beneficiary_id is not None}
    person = {b.id: b.name for b in db.exec(select(Beneficiary).where(col(Beneficiary.id).in_(people))).all()}
    for b_id, name in person.items():
        out[("beneficiary", str(b_id))] = name

    def about(thing: str, b_id: int | None) -> str:
        if b_id not in person:
            return thing
        return f"{thing} ({person[b_id]})" if lang == EN else f"{thing}（{person[b_id]}）"

    for a in applications:
        out[("application", str(a.id))] = about(a.reference, a.beneficiary_id)
    for c in db.exec(select(Contact).where(col(Contact.id).in_(wanted("contact")))).all():
        out[("contact", str(c.id))] = mask_phone(c.address) if c.channel == "sms" else label("channel", c.channel, lang)
    for t in tasks:
        out[("task", str(t.id))] = about(label("task_kind", t.kind, lang), t.beneficiary_id)
    for ticket in db.exec(select(HandoffTicket).where(col(HandoffTicket.id).in_(wanted("handoff_ticket")))).all():
        out[("handoff_ticket", str(ticket.id))] = ui("转人工问题 #{n}", lang, n=ticket.id)
    return out


def _filter(actor: str, action: str, person: str, date_from: str, date_to: str, signins: str) -> AuditFilter:
    return AuditFilter(actor=actor.strip(), action=action.strip(),
                       person=int(person) if person.strip().isdigit() else None,
                       date_from=_day(date_from), date_to=_day(date_to), signins=signins == "1")


@router.get("/audit")
def audit_log(request: Request, actor: str = "", action: str = "", person: str = "", date_from: str = "",
              date_to: str = "", signins: str = "", page: int = 1, staff: SignedIn = Depends(AUDITORS)) -> Response:
    f = _filter(actor, action, person, date_from, date_to, signins)
    tz = request.app.state.settings.tz
    with Session(request.app.state.engine) as db:
        query, hidden = _query(db, f, tz)
        total = int(db.exec(select(func.count()).select_from(query.subquery())).one())
        pages = paging(page, total, size=50)
        rows = list(db.exec(query.order_by(col(AuditLog.at).desc(), col(AuditLog.id).desc())
                            .offset(pages.offset).limit(pages.size)).all())
        names = names_for(db, rows, staff.language)
        actors = [u.username for u in db.exec(select(StaffUser).order_by(StaffUser.username)).all()]
        person_name = None
        if f.person is not None:
            found = db.get(Beneficiary, f.person)
            person_name = found.name if found else None
    entries = [(row, describe(row, names, staff.language)) for row in rows]
    return render(request, "audit.html", staff, entries=entries, f=f, pages=pages, hidden=hidden,
                  actors=actors, system_actors=SYSTEM_ACTORS, actions=list(codes("audit_action")),
                  person_name=person_name)


@router.get("/audit.csv")
def audit_csv(request: Request, actor: str = "", action: str = "", person: str = "", date_from: str = "",
              date_to: str = "", signins: str = "", staff: SignedIn = Depends(AUDITORS)) -> Response:
    f = _filter(actor, action, person, date_from, date_to, signins)
    tz, lang = request.app.state.settings.tz, staff.language
    with Session(request.app.state.engine) as db:
        query, _ = _query(db, f, tz)
        rows = list(db.exec(query.order_by(col(AuditLog.at).desc(), col(AuditLog.id).desc()).limit(CSV_LIMIT)).all())
        names = names_for(db, rows, lang)
    out = []
    for row in rows:
        sentence = describe(row, names, lang)
        out.append([row.at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"), sentence.actor, sentence.action,
                    sentence.target, sentence.details])
    today = request.app.state.clock.now().astimezone(tz).date().isoformat()
    return csv_download(f"{ui('操作记录', lang)}-{today}.csv",
                        [ui("时间", lang), ui("操作人", lang), ui("操作", lang), ui("对象", lang), ui("详情", lang)], out)
