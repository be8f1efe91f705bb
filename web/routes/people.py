"""People (`/people?q=`, `/people/{id}`): find a person, see everything about them, record what
staff learned (a certification, a move, a death, a contact), each with a reason and audited
through models/actions.py."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from models.actions import (
    CaseworkRefused,
    add_phone,
    mark_invalid,
    opt_in,
    opt_out,
    record_certification,
    record_death,
    record_move,
    replace_phone,
)
from models.applications import Application, Task, TaskNote
from models.conversations import MessageLog
from models.db import session_scope
from models.idcard import IdCard, InvalidIdCard, hash_last6
from models.outbox import OutboxEvent, OutboxMessage
from models.people import Beneficiary, Contact, FamilyMember
from models.phone import InvalidPhone, PhoneNumber
from models.reports import VERIFY_TASKS, task_details
from models.staff import Role, StaffUser
from web.pages import CASEWORK, paging, render, today_in_office
from web.security import SignedIn, flash, require
from web.words import N_, ui

router = APIRouter(include_in_schema=False)
CASEWORKER = require(Role.CASEWORKER)
KINDS = {"veteran": Beneficiary.is_veteran, "retiree": Beneficiary.is_retiree,
         "union_member": Beneficiary.is_union_member}
_DIGITS = re.compile(r"\d+")


def search_condition(db: Session, q: str, id_key: bytes) -> Any:
    """What a typed search means: a whole ID number, its last 6 or 4 characters, a masked ID,
    a phone number (or its last digits), else part of a name or of an address."""
    q = q.strip()
    compact = q.replace(" ", "").upper()
    conditions = []
    try:
        card = IdCard.parse(compact)
        conditions.append(col(Beneficiary.id_hash) == card.hashed(id_key))
    except InvalidIdCard:
        pass
    if "*" in compact:
        conditions.append(col(Beneficiary.id_masked) == compact)
    if re.fullmatch(r"\d{5}[\dX]", compact):
        conditions.append(col(Beneficiary.id_last6_hash) == hash_last6(compact, id_key))
    if re.fullmatch(r"\d{3}[\dX]", compact):
        conditions.append(col(Beneficiary.id_masked).endswith(compact))
    phone_ids = None
    try:
        phone_ids = select(Contact.beneficiary_id).where(Contact.address == PhoneNumber.parse(q).e164)
    except InvalidPhone:
        if _DIGITS.fullmatch(compact) and 4 <= len(compact) <= 8:
            phone_ids = select(Contact.beneficiary_id).where(Contact.channel == "sms",
                                                             col(Contact.address).endswith(compact))
    if phone_ids is not None:
        conditions.append(col(Beneficiary.id).in_(phone_ids))
    if not _DIGITS.fullmatch(compact):
        like = f"%{q}%"
        conditions.append(or_(col(Beneficiary.name).like(like), col(Beneficiary.community).like(like),
                              col(Beneficiary.street).like(like), col(Beneficiary.district).like(like)))
    return or_(*conditions) if conditions else col(Beneficiary.id) == -1


@router.get("/people")
def people(request: Request, q: str = "", kind: str = "", status: str = "", community: str = "", page: int = 1,
           staff: SignedIn = Depends(require(*CASEWORK))) -> Response:
    settings = request.app.state.settings
    with Session(request.app.state.engine) as db:
        query = select(Beneficiary)
        if q.strip():
            query = query.where(search_condition(db, q, settings.id_key))
        if kind in KINDS:
            query = query.where(KINDS[kind] == True)  # noqa: E712
        if status:
            query = query.where(Beneficiary.status == status)
        if community:
            query = query.where(Beneficiary.community == community)
        total = db.exec(select(func.count()).select_from(query.subquery())).one()
        pages = paging(page, total)
        rows = db.exec(query.order_by(Beneficiary.name, col(Beneficiary.id))
                       .offset(pages.offset).limit(pages.size)).all()
        communities = db.exec(select(Beneficiary.district, Beneficiary.street, Beneficiary.community).distinct()
                              .order_by(Beneficiary.district, Beneficiary.street, Beneficiary.community)).all()
    searched = bool(q.strip() or kind or status or community)
    return render(request, "people.html", staff, rows=rows, q=q, kind=kind, status=status, community=community,
                  pages=pages, communities=communities, searched=searched, kinds=list(KINDS))


@dataclass(frozen=True)
class ContactView:
    contact: Contact
    family: FamilyMember | None

    @property
    def state(self) -> str:
        c = self.contact
        if c.opted_out_at:
            return "opted_out"
        if c.blocked_at:
            return "blocked"
        if c.invalid_at:
            return "invalid"
        return "ok" if c.verified else "unverified"


def person_context(db: Session, person: Beneficiary) -> dict[str, Any]:
    pid = person.id
    contacts = db.exec(select(Contact).where(Contact.beneficiary_id == pid).order_by(col(Contact.id))).all()
    family = {f.id: f for f in db.exec(select(FamilyMember).where(FamilyMember.beneficiary_id == pid)).all()}
    addresses = [(c.channel, c.address) for c in contacts]
    log_filter = [col(MessageLog.beneficiary_id) == pid]
    for channel, address in addresses:
        log_filter.append((col(MessageLog.channel) == channel) & (col(MessageLog.address) == address))
    conversation = list(reversed(db.exec(select(MessageLog).where(or_(*log_filter))
                                         .order_by(col(MessageLog.created_at).desc(), col(MessageLog.id).desc())
                                         .limit(40)).all()))
    sent = db.exec(select(OutboxMessage).where(OutboxMessage.beneficiary_id == pid)
                   .order_by(col(OutboxMessage.created_at).desc()).limit(30)).all()
    events: dict[int, list[OutboxEvent]] = {}
    if sent:
        for e in db.exec(select(OutboxEvent).where(col(OutboxEvent.outbox_id).in_([m.id for m in sent]))
                         .order_by(col(OutboxEvent.at), col(OutboxEvent.id))).all():
            events.setdefault(e.outbox_id, []).append(e)
    tasks = db.exec(select(Task).where(Task.beneficiary_id == pid)
                    .order_by(col(Task.status).desc(), col(Task.created_at).desc()).limit(30)).all()
    notes: dict[int, list[TaskNote]] = {}
    if tasks:
        for n in db.exec(select(TaskNote).where(col(TaskNote.task_id).in_([t.id for t in tasks]))
                         .order_by(col(TaskNote.at))).all():
            notes.setdefault(n.task_id, []).append(n)
    reports = {t.id: task_details(t.details) for t in tasks if t.kind in VERIFY_TASKS and t.details}
    staff_names = {u.id: u.shown_name for u in db.exec(select(StaffUser)).all()}
    return {
        "person": person,
        "contacts": [ContactView(c, family.get(c.family_member_id) if c.family_member_id else None) for c in contacts],
        "family": list(family.values()),
        "applications": db.exec(select(Application).where(Application.beneficiary_id == pid)
                                .order_by(col(Application.created_at).desc())).all(),
        "tasks": tasks, "notes": notes, "reports": reports, "staff_names": staff_names,
        "conversation": conversation, "sent": sent, "events": events,
    }


@router.get("/people/{person_id}")
def person_page(request: Request, person_id: int, staff: SignedIn = Depends(require(*CASEWORK))) -> Response:
    with Session(request.app.state.engine) as db:
        person = db.get(Beneficiary, person_id)
        if person is None:
            raise HTTPException(404)
        context = person_context(db, person)
    return render(request, "person.html", staff, **context)


def _parse_day(text: str, field: str, lang: str, *, today: date, past: bool = True) -> date:
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise CaseworkRefused(ui("请填写{field}，例如 2026-03-01。", lang, field=ui(field, lang))) from None
    if past and day > today:
        raise CaseworkRefused(ui("{field}不能是将来的日期。", lang, field=ui(field, lang)))
    return day


def _need_reason(reason: str, lang: str) -> str:
    if not reason.strip():
        raise CaseworkRefused(ui("请写明原因或依据。", lang))
    return reason.strip()


def _parse_phone(text: str, lang: str) -> str:
    try:
        return PhoneNumber.parse(text).e164
    except InvalidPhone:
        raise CaseworkRefused(ui("手机号不对，请写11位手机号，例如13812345678。", lang)) from None


def _act(request: Request, staff: SignedIn, person_id: int, change: Any, done: str) -> Response:
    """Run one audited change on a person; come back to their page with what happened."""
    try:
        with session_scope(request.app.state.engine) as db:
            person = db.get(Beneficiary, person_id)
            if person is None:
                raise HTTPException(404)
            change(db, person, request.app.state.clock.now())
        message = ui(done, staff.language)
    except CaseworkRefused as exc:
        message = ui("未能保存：{why}", staff.language, why=str(exc))
    flash(request, staff, message)
    return RedirectResponse(f"/people/{person_id}", status_code=303)


@router.post("/people/{person_id}/certification")
def person_certification(request: Request, person_id: int, on: str = Form(""), method: str = Form("window"),
                         reason: str = Form(""), staff: SignedIn = Depends(CASEWORKER)) -> Response:
    lang, today = staff.language, today_in_office(request)

    def change(db: Session, person: Beneficiary, now: Any) -> None:
        day = _parse_day(on, "认证日期", lang, today=today)
        record_certification(db, person, on=day, actor=staff.username, method=method[:32],
                             reason=_need_reason(reason, lang), now=now)

    return _act(request, staff, person_id, change, N_("已记录资格认证，今年的认证提醒不再发送。"))


@router.post("/people/{person_id}/move")
def person_move(request: Request, person_id: int, away: str = Form(""), moved_on: str = Form(""),
                district: str = Form(""), street: str = Form(""), community: str = Form(""),
                reason: str = Form(""), staff: SignedIn = Depends(CASEWORKER)) -> Response:
    lang, today = staff.language, today_in_office(request)

    def change(db: Session, person: Beneficiary, now: Any) -> None:
        if away not in ("yes", "no"):
            raise CaseworkRefused(ui("请选择：迁出本地，还是在本地换了住址。", lang))
        day = _parse_day(moved_on, "搬迁日期", lang, today=today) if moved_on.strip() else None
        record_move(db, person, away=away == "yes", moved_on=day, district=district, street=street,
                    community=community, actor=staff.username, reason=_need_reason(reason, lang), now=now)

    return _act(request, staff, person_id, change, N_("已记录搬迁。"))


@router.post("/people/{person_id}/death")
def person_death(request: Request, person_id: int, died_on: str = Form(""), reported_by: str = Form(""),
                 evidence: str = Form(""), reason: str = Form(""), checked: str = Form(""),
                 staff: SignedIn = Depends(CASEWORKER)) -> Response:
    lang, today = staff.language, today_in_office(request)

    def change(db: Session, person: Beneficiary, now: Any) -> None:
        day = _parse_day(died_on, "去世日期", lang, today=today)
        if not reported_by.strip():
            raise CaseworkRefused(ui("请写明是谁报告的。", lang))
        if not evidence.strip():
            raise CaseworkRefused(ui("请写明依据（例如死亡证明、社区核实）。", lang))
        if checked != "yes":
            raise CaseworkRefused(ui("请勾选“我已核实”后再保存。", lang))
        record_death(db, person, died_on=day, actor=staff.username, reported_by=reported_by.strip()[:100],
                     evidence=evidence.strip(), reason=reason.strip(), now=now)

    return _act(request, staff, person_id, change, N_("已记录去世，不再给这个人发通知，并已开好慰问任务。"))


@router.post("/people/{person_id}/contacts")
def person_add_phone(request: Request, person_id: int, phone: str = Form(""), reason: str = Form(""),
                     staff: SignedIn = Depends(CASEWORKER)) -> Response:
    lang = staff.language

    def change(db: Session, person: Beneficiary, now: Any) -> None:
        add_phone(db, person, _parse_phone(phone, lang), actor=staff.username, reason=_need_reason(reason, lang),
                  now=now)

    return _act(request, staff, person_id, change, N_("已添加手机号。"))


def _own_contact(db: Session, person: Beneficiary, contact_id: int) -> Contact:
    contact = db.get(Contact, contact_id)
    if contact is None or contact.beneficiary_id != person.id:
        raise HTTPException(404)
    return contact


@router.post("/people/{person_id}/contacts/{contact_id}")
def person_contact(request: Request, person_id: int, contact_id: int, change_to: str = Form(""),
                   new_phone: str = Form(""), reason: str = Form(""),
                   staff: SignedIn = Depends(CASEWORKER)) -> Response:
    """One contact: replace the number, mark it wrong, stop or restart notices (as the person asked)."""
    lang = staff.language
    done = {"replace": N_("已换成新号码，旧号码不再使用。"), "invalid": N_("已标记为无效号码。"),
            "opt_out": N_("已停止给这个联系方式发通知。"), "opt_in": N_("已恢复给这个联系方式发通知。")}

    def change(db: Session, person: Beneficiary, now: Any) -> None:
        contact = _own_contact(db, person, contact_id)
        why = _need_reason(reason, lang)
        if change_to == "replace":
            replace_phone(db, contact, _parse_phone(new_phone, lang), actor=staff.username, reason=why, now=now)
        elif change_to == "invalid":
            mark_invalid(db, contact, reason=why, actor=staff.username, now=now)
        elif change_to == "opt_out":
            opt_out(db, contact, reason=why, actor=staff.username, now=now)
        elif change_to == "opt_in":
            opt_in(db, contact, actor=staff.username, now=now)
        else:
            raise CaseworkRefused(ui("请选择要做的更改。", lang))

    return _act(request, staff, person_id, change, done.get(change_to, N_("已保存。")))
