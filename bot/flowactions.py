"""The named outcomes, checks and reports that flow files may use.

`on_complete: [{action: create_application, type: ..., stage: staged}]` in a flow file
calls `create_application` here with the caller's session: everything a flow creates is
written in the same transaction as the conversation state, so a retry or a crash never
leaves half an application behind.
"""

from __future__ import annotations

import secrets
from datetime import date, timedelta
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy import select as sa_select
from sqlmodel import select

from bot.flowregistry import REGISTRY, FlowCtx, Refused
from bot.flowrunner import display
from bot.flowspec import Flow
from bot.state import ConversationState
from bot.texts import localise, short_date, t, to_hant
from bot.tickets import hand_off
from bot.words import catalogue, label, staff_label
from models.actions import audit, create_task
from models.applications import (
    Application,
    ApplicationDocument,
    ApplicationStageChange,
    Stage,
    SurveyAnswer,
)
from models.people import Beneficiary, SchemeMembership


def _v(state: ConversationState, key: str | None) -> Any:
    return state.values.get(key) if key else None


def _public_values(flow: Flow, state: ConversationState) -> dict[str, Any]:
    """What the application keeps: answers, with ID numbers only as hash and masked form."""
    out: dict[str, Any] = {}
    for s in flow.steps:
        if s.id in state.values and s.type not in ("confirm", "documents"):
            out[s.id] = state.values[s.id]
    return out


def priority_for(b: Beneficiary | None, today: date) -> int:
    """Higher first: the very old, those living alone, the disabled (seed 001)."""
    if b is None:
        return 0
    age = b.age_on(today) or 0
    return (5 if age >= 80 else 0) + (3 if b.living_alone else 0) + (3 if b.disabled else 0)


@REGISTRY.action("create_application", required=("type",), optional=("stage", "task"))
def create_application(ctx: FlowCtx, state: ConversationState, flow: Flow, params: dict[str, Any]) -> dict[str, Any]:
    s = ctx.session
    assert ctx.beneficiary_id is not None, "flows that create applications require a link"
    stage = params.get("stage", Stage.STAGED.value)
    app = Application(reference="tmp-" + secrets.token_hex(8), type=params["type"], beneficiary_id=ctx.beneficiary_id,
                      submitted_by_contact_id=ctx.contact_id, submitted_by_relationship=ctx.acting_as or "self",
                      channel=ctx.channel, stage=stage, stage_changed_at=ctx.now, data=_public_values(flow, state),
                      created_at=ctx.now, updated_at=ctx.now)
    s.add(app)
    s.flush()
    assert app.id is not None
    app.reference = f"NX-{ctx.now.year}-{app.id:06d}"
    s.add(ApplicationStageChange(application_id=app.id, from_stage=None, to_stage=stage, reason="submitted by the bot",
                                 actor="bot", at=ctx.now))
    for step in flow.steps:
        if step.type != "documents":
            continue
        docs = state.values.get(step.id, {})
        for item in step.items:
            d = docs.get(item.code, {})
            s.add(ApplicationDocument(application_id=app.id, code=item.code, required=item.required,
                                      received=bool(d.get("received")),
                                      received_at=ctx.now if d.get("received") else None,
                                      file_path=d.get("path") or None, provider_file_id=d.get("file_id") or None,
                                      mime_type=(d.get("mime") or None)))
    audit(s, "bot", "application.create", "application", app.id,
          {"reference": app.reference, "type": app.type, "by": app.submitted_by_relationship, "channel": ctx.channel},
          ctx.now)
    if params.get("task"):
        b = s.get(Beneficiary, ctx.beneficiary_id)
        create_task(s, kind=params["task"], actor="bot", beneficiary_id=ctx.beneficiary_id, application_id=app.id,
                    priority=priority_for(b, ctx.today), note=app.reference, now=ctx.now)
    return {"reference": app.reference}


@REGISTRY.action("create_task", required=("kind",), optional=("priority",))
def create_task_action(ctx: FlowCtx, state: ConversationState, flow: Flow, params: dict[str, Any]) -> dict[str, Any]:
    b = ctx.session.get(Beneficiary, ctx.beneficiary_id) if ctx.beneficiary_id else None
    note_parts = []
    for s in flow.steps:
        if s.id in state.values and s.type not in ("confirm", "documents", "id_card"):
            note_parts.append(f"{localise(s.label, 'zh-Hans')}: {display(s, state.values[s.id], 'zh-Hans')}")
    if ctx.acting_as:
        note_parts.append(f"报告人：{staff_label('relationship', ctx.acting_as)}")
    task = create_task(ctx.session, kind=params["kind"], actor="bot", beneficiary_id=ctx.beneficiary_id,
                       priority=priority_for(b, ctx.today) + int(params.get("priority", 0)),
                       note="; ".join(note_parts), now=ctx.now)
    return {"task": task.id if task else ""}


@REGISTRY.action("certification", required=("choice_field",), optional=("date_field", "reason_field"))
def certification(ctx: FlowCtx, state: ConversationState, flow: Flow, params: dict[str, Any]) -> dict[str, Any]:
    """Book a window visit, or ask for a home visit (priority for the very old, alone, disabled)."""
    choice = _v(state, params["choice_field"])
    b = ctx.session.get(Beneficiary, ctx.beneficiary_id) if ctx.beneficiary_id else None
    year = ctx.today.year
    when = _v(state, params.get("date_field"))
    reason = _v(state, params.get("reason_field"))
    if choice == "home":
        kind, key = "home_visit", f"home_visit:{ctx.beneficiary_id}:{year}"
        prio = priority_for(b, ctx.today) + 2
    else:
        kind, key = "certification_booking", f"certification_booking:{ctx.beneficiary_id}:{year}:{when or ''}"
        prio = priority_for(b, ctx.today)
    note = "; ".join(x for x in (f"date: {when}" if when else "", f"reason: {reason}" if reason else "",
                                 f"by: {ctx.acting_as}" if ctx.acting_as else "") if x)
    due = date.fromisoformat(when) if when else None
    task = create_task(ctx.session, kind=kind, actor="bot", key=key, beneficiary_id=ctx.beneficiary_id,
                       priority=prio, due_on=due, note=note, now=ctx.now)
    return {"task": task.id if task else "", "date": when or ""}


@REGISTRY.action("record_death", required=("id_field", "date_field"), optional=("relationship_field",))
def record_death_action(ctx: FlowCtx, state: ConversationState, flow: Flow, params: dict[str, Any]) -> dict[str, Any]:
    """A reported death becomes a task for staff to verify (models.actions.report_change); the
    record changes only when a caseworker confirms, and outreach to the person pauses meanwhile.
    A person not on our roll still gets a person: the report goes to staff as a ticket."""
    ident = _v(state, params["id_field"]) or {}
    died_on = date.fromisoformat(_v(state, params["date_field"]))
    relationship = _v(state, params.get("relationship_field")) or ctx.acting_as or "self"
    s = ctx.session
    b = s.exec(select(Beneficiary).where(Beneficiary.id_hash == ident.get("hash", ""))).first()
    if b is None:
        hand_off(s, channel=ctx.channel, address=ctx.address, beneficiary_id=ctx.beneficiary_id, language=ctx.lang,
                 reason="flow", question=f"报告不在名册上的人去世：{ident.get('masked')}，{died_on.isoformat()}去世，"
                                         f"报告人：{staff_label('relationship', relationship)}",
                 context=[], now=ctx.now, office_tz=ctx.settings.tz)
        return {"on_roll": ""}
    from models.actions import report_change
    from models.phone import mask_phone
    from models.reports import DeathReport, Reporter

    reporter = Reporter(relationship=relationship, channel=ctx.channel, contact_id=ctx.contact_id,
                        beneficiary_id=ctx.beneficiary_id,
                        address_masked=mask_phone(ctx.address) if ctx.channel == "sms" else ctx.address)
    report_change(s, b, DeathReport(died_on=died_on), reporter, now=ctx.now)
    return {"on_roll": "yes"}


@REGISTRY.action("save_survey", required=("score_field",), optional=("comment_field",))
def save_survey(ctx: FlowCtx, state: ConversationState, flow: Flow, params: dict[str, Any]) -> dict[str, Any]:
    score = int(_v(state, params["score_field"]))
    comment = _v(state, params.get("comment_field")) or ""
    app_id = state.subject_application_id
    ctx.session.add(SurveyAnswer(application_id=app_id, beneficiary_id=ctx.beneficiary_id, score=score,
                                 comment=comment[:1000], channel=ctx.channel, created_at=ctx.now))
    return {}


# --------------------------------------------------------------------------- prechecks


@REGISTRY.precheck("mutual_aid_member")
def mutual_aid_member(ctx: FlowCtx, state: ConversationState, flow: Flow) -> str | None:
    """Only members who paid for the current period (100 yuan a year, seed 004) can claim."""
    year = ctx.today.year
    row = ctx.session.exec(select(SchemeMembership.id).where(
        SchemeMembership.beneficiary_id == ctx.beneficiary_id, SchemeMembership.scheme == "medical_mutual_aid",
        SchemeMembership.period == year)).first()
    return None if row is not None else "not_member"


OPEN_STAGES_END = ("completed", "rejected", "withdrawn")


_APPLICATION = Application.__table__  # type: ignore[attr-defined]
# Built once: entering a flow runs it on every start, and building (and keying) a statement costs
# more than running it.
_OPEN_APPLICATION = (
    sa_select(_APPLICATION.c.type, _APPLICATION.c.reference, _APPLICATION.c.stage)
    .where(_APPLICATION.c.beneficiary_id == bindparam("beneficiary_id"),
           _APPLICATION.c.type.in_(bindparam("kinds", expanding=True)),
           _APPLICATION.c.stage.not_in(OPEN_STAGES_END))
    .order_by(_APPLICATION.c.created_at.desc()).limit(1))


@REGISTRY.precheck("no_open_application")
def no_open_application(ctx: FlowCtx, state: ConversationState, flow: Flow) -> Refused | None:
    """One open application of a kind per person: a second is refused, with the first one's stage."""
    kinds = [call.params["type"] for call in flow.on_complete if call.action == "create_application"]
    if not kinds or ctx.beneficiary_id is None:
        return None
    # A Core read on the message's connection: entering a flow needs no ORM session.
    app = ctx.connection().execute(_OPEN_APPLICATION, {"beneficiary_id": ctx.beneficiary_id, "kinds": kinds}).first()
    if app is None:
        return None
    text = t("already_open", ctx.lang, kind=label("application_type", app.type, ctx.lang), reference=app.reference,
             stage=label("stage", app.stage, ctx.lang))
    return Refused(text)


@REGISTRY.precheck("completed_service")
def completed_service(ctx: FlowCtx, state: ConversationState, flow: Flow) -> str | None:
    """The survey is about a completed service: the latest one not yet rated (or one given by the caller)."""
    preset = state.flow_args.get("application_id")
    if preset:
        state.subject_application_id = int(preset)
        return None
    rated = select(SurveyAnswer.application_id).where(SurveyAnswer.application_id.is_not(None))  # type: ignore[union-attr]
    app = ctx.session.exec(select(Application).where(
        Application.beneficiary_id == ctx.beneficiary_id, Application.stage == Stage.COMPLETED.value,
        Application.id.not_in(rated))  # type: ignore[union-attr]
        .order_by(Application.completed_at.desc())).first()  # type: ignore[union-attr]
    if app is None:
        return "nothing_to_rate"
    state.subject_application_id = app.id
    return None


# --------------------------------------------------------------------------- reports

@REGISTRY.report("certification_status")
def certification_status(ctx: FlowCtx, state: ConversationState) -> str:
    """The record's own certification dates, said before asking how to certify: whoever asks "did he
    do it this year" learns it before booking a visit that is not needed. Nothing when the roll has no date."""
    from outreach.schedule_rules import default_rules
    from outreach.sweeps import certification_due

    person = ctx.person()
    last = getattr(person, "last_certified_on", None)
    if last is None:
        return ""
    lang, today = ctx.lang, ctx.today
    due = certification_due(last)
    warned_from = due - timedelta(days=max(default_rules().certification.reminder_days, default=0))
    key = "cert_status_overdue" if due < today else "cert_status_due" if today >= warned_from else "cert_status_done"
    who = t("cert_status_you", lang) if ctx.acting_as is None else person.name
    return t(key, lang, who=who, last=short_date(last, lang), due=short_date(due, lang, today))


@REGISTRY.report("my_applications")
def my_applications(ctx: FlowCtx, state: ConversationState) -> str:
    lang = ctx.lang
    apps = ctx.session.exec(select(Application).where(Application.beneficiary_id == ctx.beneficiary_id)
                            .order_by(Application.created_at.desc()).limit(5)).all()  # type: ignore[attr-defined]
    if not apps:
        return t("my_applications_none", lang)
    ids = [a.id for a in apps if a.id is not None]
    missing: dict[int, list[str]] = {}
    for d in ctx.session.exec(select(ApplicationDocument).where(
            ApplicationDocument.application_id.in_(ids),  # type: ignore[attr-defined]
            ApplicationDocument.required.is_(True), ApplicationDocument.received.is_(False))).all():  # type: ignore[attr-defined]
        missing.setdefault(d.application_id, []).append(label("document", d.code, lang))
    lines = [t("my_applications_head", lang)]
    for a in apps:
        kind = label("application_type", a.type, lang)
        stage = label("stage", a.stage, lang)
        nxt = (label("stage_next", a.stage, lang) if a.stage in catalogue().codes("stage_next") else "").format(
            deadline=a.payment_deadline or "", amount=f"{(a.payment_amount_fen or 0) / 100:.2f}",
            account=a.payment_account or "", reason=a.return_reason or a.rejection_reason or "")
        line = f"{a.reference} {kind}：{stage}。{nxt}" if lang != "en" else f"{a.reference} {kind}: {stage}. {nxt}"
        if a.id is not None and missing.get(a.id) and a.stage not in ("completed", "rejected", "withdrawn"):
            items = "、".join(missing[a.id or 0])
            line += t("my_applications_missing", lang, items=items)
        lines.append(line)
    text = "\n".join(lines)
    return to_hant(text) if lang == "zh-Hant" else text
