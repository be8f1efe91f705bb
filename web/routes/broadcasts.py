"""Broadcasts: the list, the composer, a broadcast's page with its review and its progress.

Who may do what (the one role dependency on every route):
- anyone who works with outreach sees the list and a broadcast's page (viewer, composer, approver);
- a composer writes, previews, saves a draft, edits and submits for approval;
- an approver who is not the author approves or sends back with a comment;
- after approval a composer or an approver sends now, sets a time, cancels, or stops it
  (the unsent part is cancelled).
Every step goes through `outreach.broadcasts`, which checks roles, four eyes and state again and
writes the audit row; the composer's reading and checking is `outreach.composer`.

The live count and preview are a fragment (`POST /broadcasts/preview`) that console.js asks
for while the form is being filled in; without JavaScript the "预览" button posts the form and
the page comes back with the same fragment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select
from starlette.datastructures import FormData

from models.db import session_scope
from models.outbox import Broadcast, BroadcastStatus
from models.staff import Role, StaffUser
from outreach import broadcasts as bc
from outreach import composer
from web.pages import render, today_in_office
from web.security import SignedIn, flash, require, staff_user
from web.words import N_, ui

router = APIRouter(include_in_schema=False)

SEES = (Role.VIEWER, Role.CASEWORKER, Role.COMPOSER, Role.APPROVER)
SENDS = (Role.COMPOSER, Role.APPROVER)
TABS = {
    "waiting": (BroadcastStatus.PENDING_APPROVAL.value,),
    "drafts": (BroadcastStatus.DRAFT.value,),
    "going": (BroadcastStatus.APPROVED.value, BroadcastStatus.SCHEDULED.value, BroadcastStatus.SENDING.value),
    "done": (BroadcastStatus.SENT.value, BroadcastStatus.CANCELLED.value, BroadcastStatus.STOPPED.value),
}


async def posted(request: Request) -> FormData:
    """The posted form (read once; the role dependency read its CSRF field from the same)."""
    return await request.form()


def _templates(request: Request) -> Any:
    from outreach.templates import templates_for

    return templates_for(request.app.state.settings)


# --- the compose form ---------------------------------------------------------------------

@dataclass
class Compose:
    """What the compose form holds, as typed (shown again on every answer, nothing lost)."""

    title: str = ""
    mode: str = "text"  # text | template
    text_zh: str = ""
    text_hant: str = ""
    text_en: str = ""
    template_kind: str = ""
    template_values: dict[str, str] = field(default_factory=dict)  # tpl_<name> -> typed
    audience: composer.AudienceForm = field(default_factory=composer.AudienceForm)
    when: str = "now"  # now | later
    send_date: str = ""
    send_time: str = ""

    @classmethod
    def from_form(cls, form: FormData) -> Compose:
        def one(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        def many(name: str) -> list[str]:
            return [v for v in form.getlist(name) if isinstance(v, str) and v]

        audience = composer.AudienceForm.model_validate({
            "kinds": many("kinds"), "district": one("district"), "street": one("street"),
            "community": one("community"), "age_min": one("age_min"), "age_max": one("age_max"),
            "living_alone": one("living_alone") if one("living_alone") in ("yes", "no") else "",
            "disabled": one("disabled") if one("disabled") in ("yes", "no") else "", "languages": many("languages"),
            "channel": one("channel"), "schemes": many("schemes"), "application_type": one("application_type"),
            "application_stage": one("application_stage"), "tags": one("tags")})
        return cls(title=one("title").strip()[:200], mode="template" if one("mode") == "template" else "text",
                   text_zh=one("text_zh"), text_hant=one("text_hant"), text_en=one("text_en"),
                   template_kind=one("template_kind"),
                   template_values={k: v for k, v in form.multi_items() if k.startswith("tpl_") and isinstance(v, str)},
                   audience=audience, when="later" if one("when") == "later" else "now",
                   send_date=one("send_date"), send_time=one("send_time"))

    @classmethod
    def from_broadcast(cls, b: Broadcast, tz: Any) -> Compose:
        import json

        values: dict[str, str] = {}
        if b.template_kind:
            values = {f"tpl_{k}": str(v) for k, v in json.loads(b.body.get(bc.TEMPLATE_CONTEXT, "{}")).items()}
        local = b.scheduled_for.astimezone(tz) if b.scheduled_for else None
        return cls(title=b.title, mode="template" if b.template_kind else "text",
                   text_zh=b.body.get("zh-Hans", ""), text_hant=b.body.get("zh-Hant", ""),
                   text_en=b.body.get("en", ""), template_kind=b.template_kind or "", template_values=values,
                   audience=composer.AudienceForm.from_filter(b.audience), when="later" if local else "now",
                   send_date=local.date().isoformat() if local else "",
                   send_time=local.strftime("%H:%M") if local else "")

    def text(self) -> dict[str, str] | None:
        if self.mode != "text":
            return None
        return {lang: t for lang, t in (("zh-Hans", self.text_zh), ("zh-Hant", self.text_hant), ("en", self.text_en))
                if t.strip()}


@dataclass
class Parts:
    """The form read into what the backend takes."""

    audience: Any
    text: dict[str, str] | None
    template_kind: str | None
    template_context: dict[str, Any] | None
    scheduled_for: datetime | None


def _parts(c: Compose, request: Request, *, need_title: bool) -> Parts:
    """Everything checked at once: every problem is listed against its field."""
    problems: list[composer.Problem] = []
    audience = None
    try:
        audience = c.audience.to_filter()
    except composer.ComposeRefused as exc:
        problems += exc.problems
    text = c.text()
    kind, context = None, None
    if c.mode == "text":
        if not text or not text.get("zh-Hans", "").strip():
            problems.append(composer.Problem("text_zh", "请写通知内容（中文）", "write the message (in Chinese)"))
        else:
            problems += composer.text_problems(text)
    else:
        kind = c.template_kind
        try:
            context = composer.template_context(_templates(request), kind, c.template_values)
        except composer.ComposeRefused as exc:
            problems += exc.problems
    if need_title and not c.title:
        problems.append(composer.Problem("title", "请写一个标题，方便同事认出这条通知", "give it a title colleagues will recognise"))
    at = None
    try:
        at = composer.sending_time(c.when, c.send_date, c.send_time, settings=request.app.state.settings,
                                   now=request.app.state.clock.now())
    except composer.ComposeRefused as exc:
        problems += exc.problems
    if problems:
        raise composer.ComposeRefused(problems)
    return Parts(audience, text, kind, context, at)


def _result(request: Request, c: Compose) -> dict[str, Any]:
    """The live count and the preview of what the form says, or the problems that stop it."""
    from sqlalchemy.exc import SQLAlchemyError

    settings, ts = request.app.state.settings, _templates(request)
    try:
        parts = _parts(c, request, need_title=False)
    except composer.ComposeRefused as exc:
        count = None
        try:  # the count still shows while the text is being written
            with Session(request.app.state.engine) as db:
                count = composer.live_count(db, c.audience.to_filter(), today_in_office(request))
        except composer.ComposeRefused:
            pass
        return {"problems": exc.problems, "count": count, "preview": None}
    draft = composer.draft_broadcast(title=c.title, audience=parts.audience, text=parts.text,
                                     template_kind=parts.template_kind, template_context=parts.template_context)
    try:
        with Session(request.app.state.engine) as db:
            preview = composer.preview(db, draft, settings=settings, templates=ts, today=today_in_office(request))
    except composer.ComposeRefused as exc:
        return {"problems": exc.problems, "count": None, "preview": None}
    except SQLAlchemyError:  # a database that does not answer: say so, keep the form
        return {"problems": [composer.Problem("audience", "暂时无法统计人数，请稍后再试", "cannot count just now; try again")],
                "count": None, "preview": None}
    return {"problems": [], "count": preview.count, "preview": preview}


def _compose_page(request: Request, staff: SignedIn, c: Compose, *, broadcast: Broadcast | None = None,
                  result: dict[str, Any] | None = None, status_code: int = 200) -> Response:
    ts = _templates(request)
    with Session(request.app.state.engine) as db:
        areas = _areas(db)
    kinds = composer.broadcast_kinds(ts)
    fields = {k: composer.template_fields(ts, k) for k in kinds}
    return render(request, "broadcast_compose.html", staff, status_code=status_code, c=c, broadcast=broadcast,
                  result=result, placeholders=composer.placeholders(), template_kinds=kinds, template_fields=fields,
                  areas=areas, kinds=composer.KINDS, schemes=composer.SCHEMES, channels=composer.CHANNELS,
                  languages=("zh-Hans", "zh-Hant", "en"),
                  problem_fields={p.field for p in (result or {}).get("problems", [])},
                  settings=request.app.state.settings)


def _areas(db: Session) -> dict[str, list[str]]:
    """Districts, streets and communities on the roll, for the form's suggestions."""
    from models.people import Beneficiary

    out: dict[str, list[str]] = {}
    for name in ("district", "street", "community"):
        column = getattr(Beneficiary, name)
        out[name] = [v for v in db.exec(select(column).distinct().where(column != "").order_by(column).limit(300)).all()
                     if v]
    return out


# --- pages --------------------------------------------------------------------------------

@router.get("/broadcasts")
def broadcasts(request: Request, tab: str = "", staff: SignedIn = Depends(require(*SEES))) -> Response:
    with session_scope(request.app.state.engine) as db:
        counts = {name: len(db.exec(select(Broadcast.id).where(col(Broadcast.status).in_(statuses))).all())
                  for name, statuses in TABS.items()}
        if tab not in TABS:
            tab = "waiting" if counts["waiting"] or not any(counts.values()) else next(t for t, n in counts.items() if n)
        rows = db.exec(select(Broadcast).where(col(Broadcast.status).in_(TABS[tab]))
                       .order_by(col(Broadcast.created_at).desc()).limit(200)).all()
        authors = {u.id: u.shown_name for u in db.exec(select(StaffUser)).all()}
        progress = {b.id: bc.broadcast_status(db, b) for b in rows
                    if b.status in (BroadcastStatus.SENDING.value, BroadcastStatus.SENT.value,
                                    BroadcastStatus.STOPPED.value)}
        return render(request, "broadcasts.html", staff, rows=rows, authors=authors, tab=tab, counts=counts,
                      progress=progress, tabs=list(TABS))


@router.get("/broadcasts/new")
def broadcast_new(request: Request, copy: int = 0, staff: SignedIn = Depends(require(Role.COMPOSER))) -> Response:
    c = Compose()
    if copy:
        with Session(request.app.state.engine) as db:
            source = db.get(Broadcast, copy)
            if source is not None:
                c = Compose.from_broadcast(source, request.app.state.settings.tz)
                c.when, c.send_date, c.send_time = "now", "", ""
    return _compose_page(request, staff, c)


@router.post("/broadcasts/preview")
def broadcast_preview(request: Request, form: FormData = Depends(posted),
                      staff: SignedIn = Depends(require(Role.COMPOSER))) -> Response:
    """The live count and preview, as a fragment for the compose page."""
    c = Compose.from_form(form)
    return render(request, "_broadcast_result.html", staff, c=c, result=_result(request, c))


@router.post("/broadcasts/new")
def broadcast_create(request: Request, form: FormData = Depends(posted),
                     staff: SignedIn = Depends(require(Role.COMPOSER))) -> Response:
    c = Compose.from_form(form)
    action = form.get("action")
    if action not in ("draft", "submit"):
        return _compose_page(request, staff, c, result=_result(request, c))
    try:
        parts = _parts(c, request, need_title=True)
        with session_scope(request.app.state.engine) as db:
            b = bc.create_broadcast(db, author=staff_user(db, staff), title=c.title, audience=parts.audience,
                                    text=parts.text, template_kind=parts.template_kind,
                                    template_context=parts.template_context, scheduled_for=parts.scheduled_for,
                                    now=request.app.state.clock.now(), templates=_templates(request),
                                    settings=request.app.state.settings, submit=action == "submit")
            bid = b.id
    except composer.ComposeRefused as exc:
        return _compose_page(request, staff, c, result={"problems": exc.problems, "count": None, "preview": None},
                             status_code=422)
    except bc.BroadcastRefused as exc:
        return _compose_page(request, staff, c, status_code=422, result={
            "problems": [composer.Problem("form", str(exc), str(exc))], "count": None, "preview": None})
    flash(request, staff, ui("已提交审核，等待另一位审核人批准。" if action == "submit" else "已存为草稿。", staff.language))
    return RedirectResponse(f"/broadcasts/{bid}", status_code=303)


def _load(db: Session, broadcast_id: int) -> Broadcast:
    b = db.get(Broadcast, broadcast_id)
    if b is None:
        raise HTTPException(404)
    return b


@router.get("/broadcasts/{broadcast_id}")
def broadcast_page(request: Request, broadcast_id: int, staff: SignedIn = Depends(require(*SEES))) -> Response:
    settings = request.app.state.settings
    with Session(request.app.state.engine) as db:
        b = _load(db, broadcast_id)
        users = {u.id: u for u in db.exec(select(StaffUser)).all()}
        trail = bc.reviews(db, broadcast_id)
        progress = bc.broadcast_status(db, b) if b.started_at else None
        preview = None
        problem = ""
        if b.status not in (BroadcastStatus.CANCELLED.value,):
            try:
                preview = composer.preview(db, b, settings=settings, templates=_templates(request),
                                           today=today_in_office(request))
            except composer.ComposeRefused as exc:
                problem = "; ".join(p.text(staff.language) for p in exc.problems)
        c = Compose.from_broadcast(b, settings.tz)
        author = users.get(b.created_by)
        return render(request, "broadcast.html", staff, b=b, c=c, users=users, trail=trail, progress=progress,
                      preview=preview, problem=problem, author=author,
                      is_author=b.created_by == staff.user_id, audience=composer.AudienceForm.from_filter(b.audience),
                      can_edit=staff.has(Role.COMPOSER) and b.status in ("draft", "pending_approval"),
                      can_review=staff.has(Role.APPROVER) and b.status == "pending_approval",
                      can_send=staff.has_any(SENDS) and b.status in ("approved", "scheduled"),
                      can_cancel=staff.has_any(SENDS) and b.status in (
                          "draft", "pending_approval", "approved", "scheduled", "sending", "sent"),
                      live=b.status == BroadcastStatus.SENDING.value or bool(progress and progress["queued"]))


@router.get("/broadcasts/{broadcast_id}/progress")
def broadcast_progress(request: Request, broadcast_id: int, staff: SignedIn = Depends(require(*SEES))) -> Response:
    """The progress panel alone (console.js refreshes it while messages are still going out)."""
    with Session(request.app.state.engine) as db:
        b = _load(db, broadcast_id)
        progress = bc.broadcast_status(db, b) if b.started_at else None
        return render(request, "_broadcast_progress.html", staff, b=b, progress=progress,
                      live=b.status == BroadcastStatus.SENDING.value or bool(progress and progress["queued"]))


@router.get("/broadcasts/{broadcast_id}/edit")
def broadcast_edit_form(request: Request, broadcast_id: int,
                        staff: SignedIn = Depends(require(Role.COMPOSER))) -> Response:
    with Session(request.app.state.engine) as db:
        b = _load(db, broadcast_id)
    c = Compose.from_broadcast(b, request.app.state.settings.tz)
    return _compose_page(request, staff, c, broadcast=b, result=_result(request, c))


@router.post("/broadcasts/{broadcast_id}/edit")
def broadcast_edit(request: Request, broadcast_id: int, form: FormData = Depends(posted),
                   staff: SignedIn = Depends(require(Role.COMPOSER))) -> Response:
    c = Compose.from_form(form)
    action = form.get("action")
    with Session(request.app.state.engine) as db:
        b = _load(db, broadcast_id)
    if action not in ("draft", "submit"):
        return _compose_page(request, staff, c, broadcast=b, result=_result(request, c))
    try:
        parts = _parts(c, request, need_title=True)
        with session_scope(request.app.state.engine) as db:
            b = _load(db, broadcast_id)
            now, user = request.app.state.clock.now(), staff_user(db, staff)
            bc.update_broadcast(db, b, actor=user, title=c.title, audience=parts.audience, text=parts.text,
                                template_kind=parts.template_kind, template_context=parts.template_context,
                                scheduled_for=parts.scheduled_for, now=now, templates=_templates(request),
                                settings=request.app.state.settings)
            if action == "submit" and b.status == BroadcastStatus.DRAFT.value:
                bc.submit_broadcast(db, b, actor=user, now=now, settings=request.app.state.settings)
    except composer.ComposeRefused as exc:
        return _compose_page(request, staff, c, broadcast=b, status_code=422,
                             result={"problems": exc.problems, "count": None, "preview": None})
    except bc.BroadcastRefused as exc:
        return _compose_page(request, staff, c, broadcast=b, status_code=422, result={
            "problems": [composer.Problem("form", str(exc), str(exc))], "count": None, "preview": None})
    flash(request, staff, ui("已保存修改。", staff.language))
    return RedirectResponse(f"/broadcasts/{broadcast_id}", status_code=303)


def _act(request: Request, staff: SignedIn, broadcast_id: int, step: Any, done: str) -> Response:
    """Run one lifecycle step in its own transaction; a refusal is shown, and audited by the step."""
    try:
        with session_scope(request.app.state.engine) as db:
            step(db, _load(db, broadcast_id), staff_user(db, staff), request.app.state.clock.now())
        message = ui(done, staff.language)
    except bc.BroadcastRefused as exc:
        message = _refusal(exc, staff.language)
        if "four eyes" in str(exc):
            _audit_refusal(request, staff, broadcast_id, str(exc))
    flash(request, staff, message)
    return RedirectResponse(f"/broadcasts/{broadcast_id}", status_code=303)


def _refusal(exc: Exception, lang: str) -> str:
    text = str(exc)
    if "four eyes" in text:
        return ui("不能这样做：群发通知必须由撰写人以外的另一位审核人批准或退回。", lang)
    zh, _, en = text.partition(" / ")
    return ui("未能完成：{why}", lang, why=en if lang == "en" and en else zh)


def _audit_refusal(request: Request, staff: SignedIn, broadcast_id: int, why: str) -> None:
    """The step audits its refusal inside the transaction that was rolled back: write it again."""
    from models.actions import audit

    with session_scope(request.app.state.engine) as db:
        audit(db, staff.username, "broadcast.approve_refused", "broadcast", broadcast_id, {"reason": why},
              request.app.state.clock.now())


def _confirmed(form: FormData) -> bool:
    return form.get("confirmed") == "yes"


@router.post("/broadcasts/{broadcast_id}/submit")
def broadcast_submit(request: Request, broadcast_id: int, staff: SignedIn = Depends(require(Role.COMPOSER))
                     ) -> Response:
    settings = request.app.state.settings
    return _act(request, staff, broadcast_id,
                lambda db, b, user, now: bc.submit_broadcast(db, b, actor=user, now=now, settings=settings),
                N_("已提交审核，等待另一位审核人批准。"))


@router.post("/broadcasts/{broadcast_id}/approve")
def broadcast_approve(request: Request, broadcast_id: int, staff: SignedIn = Depends(require(Role.APPROVER))
                      ) -> Response:
    return _act(request, staff, broadcast_id,
                lambda db, b, user, now: bc.approve_broadcast(db, b, approver=user, now=now), N_("已批准。"))


@router.post("/broadcasts/{broadcast_id}/send-back")
def broadcast_send_back(request: Request, broadcast_id: int, form: FormData = Depends(posted),
                        staff: SignedIn = Depends(require(Role.APPROVER))) -> Response:
    comment = form.get("comment")
    comment = comment if isinstance(comment, str) else ""
    return _act(request, staff, broadcast_id,
                lambda db, b, user, now: bc.send_back_broadcast(db, b, approver=user, comment=comment, now=now),
                N_("已退回撰写人修改。"))


@router.post("/broadcasts/{broadcast_id}/send")
def broadcast_send(request: Request, broadcast_id: int, form: FormData = Depends(posted),
                   staff: SignedIn = Depends(require(*SENDS))) -> Response:
    """Send now: every recipient is queued (in batches); the dispatcher sends them."""
    if not _confirmed(form):
        flash(request, staff, ui("请勾选确认后再发送。", staff.language))
        return RedirectResponse(f"/broadcasts/{broadcast_id}", status_code=303)
    settings = request.app.state.settings
    try:
        with session_scope(request.app.state.engine) as db:
            user = staff_user(db, staff)
        n = bc.send_broadcast(request.app.state.engine, broadcast_id, actor=user,
                              now=request.app.state.clock.now(), settings=settings, templates=_templates(request))
        message = ui("已开始发送：{n} 条消息排队中。", staff.language, n=n)
    except bc.BroadcastRefused as exc:
        message = _refusal(exc, staff.language)
    flash(request, staff, message)
    return RedirectResponse(f"/broadcasts/{broadcast_id}", status_code=303)


@router.post("/broadcasts/{broadcast_id}/schedule")
def broadcast_schedule(request: Request, broadcast_id: int, form: FormData = Depends(posted),
                       staff: SignedIn = Depends(require(*SENDS))) -> Response:
    settings = request.app.state.settings
    day, at = form.get("send_date"), form.get("send_time")
    try:
        when = composer.sending_time("later", day if isinstance(day, str) else "", at if isinstance(at, str) else "",
                                     settings=settings, now=request.app.state.clock.now())
    except composer.ComposeRefused as exc:
        flash(request, staff, ui("未能完成：{why}", staff.language, why=exc.problems[0].text(staff.language)))
        return RedirectResponse(f"/broadcasts/{broadcast_id}", status_code=303)
    assert when is not None  # "later" always gives a time or a refusal
    return _act(request, staff, broadcast_id,
                lambda db, b, user, now: bc.schedule_broadcast(db, b, actor=user, at=when, now=now,
                                                               settings=settings),
                N_("已安排发送时间。"))


@router.post("/broadcasts/{broadcast_id}/cancel")
def broadcast_cancel(request: Request, broadcast_id: int, form: FormData = Depends(posted),
                     staff: SignedIn = Depends(require(*SENDS))) -> Response:
    """Before it starts: cancelled. While sending: stopped, the unsent messages cancelled."""
    if not _confirmed(form):
        flash(request, staff, ui("请勾选确认后再取消。", staff.language))
        return RedirectResponse(f"/broadcasts/{broadcast_id}", status_code=303)
    return _act(request, staff, broadcast_id,
                lambda db, b, user, now: bc.cancel_broadcast(db, b, actor=user, now=now),
                N_("已取消，未发出的消息不会再发。"))
