"""The named outcomes, checks and reports that flow files may use.

`on_complete: [{action: create_application, type: ..., stage: staged}]` in a flow file
calls `create_application` here with the caller's session: everything a flow creates is
written in the same transaction as the conversation state, so a retry or a crash never
leaves half an application behind.
"""

from __future__ import annotations

import secrets
from datetime import date
from typing import Any

from sqlmodel import select

from bot.flowrunner import Flow, FlowCtx, State, action, precheck, report
from bot.texts import localise, to_hant
from models.actions import audit, create_task
from models.applications import (
    Application,
    ApplicationDocument,
    ApplicationStageChange,
    HandoffTicket,
    Stage,
    SurveyAnswer,
)
from models.people import Beneficiary, SchemeMembership


def _v(state: State, key: str | None) -> Any:
    return state.values.get(key) if key else None


def _public_values(flow: Flow, state: State) -> dict[str, Any]:
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


@action("create_application", "type")
def create_application(ctx: FlowCtx, state: State, flow: Flow, params: dict[str, Any]) -> dict[str, Any]:
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


@action("create_task", "kind")
def create_task_action(ctx: FlowCtx, state: State, flow: Flow, params: dict[str, Any]) -> dict[str, Any]:
    b = ctx.session.get(Beneficiary, ctx.beneficiary_id) if ctx.beneficiary_id else None
    note_parts = []
    for s in flow.steps:
        if s.id in state.values and s.type not in ("confirm", "documents", "id_card"):
            from bot.flowrunner import display
            note_parts.append(f"{localise(s.label, 'zh-Hans')}: {display(s, state.values[s.id], 'zh-Hans')}")
    if ctx.acting_as:
        note_parts.append(f"reported by: {ctx.acting_as}")
    task = create_task(ctx.session, kind=params["kind"], actor="bot", beneficiary_id=ctx.beneficiary_id,
                       priority=priority_for(b, ctx.today) + int(params.get("priority", 0)),
                       note="; ".join(note_parts), now=ctx.now)
    return {"task": task.id if task else ""}


@action("certification", "choice_field")
def certification(ctx: FlowCtx, state: State, flow: Flow, params: dict[str, Any]) -> dict[str, Any]:
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


@action("record_death", "id_field", "date_field")
def record_death_action(ctx: FlowCtx, state: State, flow: Flow, params: dict[str, Any]) -> dict[str, Any]:
    """A reported death becomes a task for staff to verify (models.actions.report_change); the
    record changes only when a caseworker confirms, and outreach to the person pauses meanwhile.
    A person not on our roll still gets a person: the report goes to staff as a ticket."""
    ident = _v(state, params["id_field"]) or {}
    died_on = date.fromisoformat(_v(state, params["date_field"]))
    relationship = _v(state, params.get("relationship_field")) or ctx.acting_as or "self"
    s = ctx.session
    b = s.exec(select(Beneficiary).where(Beneficiary.id_hash == ident.get("hash", ""))).first()
    if b is None:
        s.add(HandoffTicket(channel=ctx.channel, address=ctx.address, beneficiary_id=ctx.beneficiary_id,
                            language=ctx.lang, reason="flow",
                            question=f"death report for a person not on the roll: {ident.get('masked')}, "
                                     f"died {died_on.isoformat()}, reported by {relationship}",
                            transcript=[], created_at=ctx.now))
        return {"on_roll": ""}
    from models.actions import report_change
    from models.phone import mask_phone
    from models.reports import DeathReport, Reporter

    reporter = Reporter(relationship=relationship, channel=ctx.channel, contact_id=ctx.contact_id,
                        beneficiary_id=ctx.beneficiary_id,
                        address_masked=mask_phone(ctx.address) if ctx.channel == "sms" else ctx.address)
    report_change(s, b, DeathReport(died_on=died_on), reporter, now=ctx.now)
    return {"on_roll": "yes"}


@action("save_survey", "score_field")
def save_survey(ctx: FlowCtx, state: State, flow: Flow, params: dict[str, Any]) -> dict[str, Any]:
    score = int(_v(state, params["score_field"]))
    comment = _v(state, params.get("comment_field")) or ""
    app_id = state.data.get("tmp", {}).get("application_id")
    ctx.session.add(SurveyAnswer(application_id=app_id, beneficiary_id=ctx.beneficiary_id, score=score,
                                 comment=comment[:1000], channel=ctx.channel, created_at=ctx.now))
    return {}


# --------------------------------------------------------------------------- prechecks


@precheck("mutual_aid_member")
def mutual_aid_member(ctx: FlowCtx, state: State) -> str | None:
    """Only members who paid for the current period (100 yuan a year, seed 004) can claim."""
    year = ctx.today.year
    row = ctx.session.exec(select(SchemeMembership.id).where(
        SchemeMembership.beneficiary_id == ctx.beneficiary_id, SchemeMembership.scheme == "medical_mutual_aid",
        SchemeMembership.period == year)).first()
    return None if row is not None else "not_member"


@precheck("completed_service")
def completed_service(ctx: FlowCtx, state: State) -> str | None:
    """The survey is about a completed service: the latest one not yet rated (or one given by the caller)."""
    tmp = state.data.setdefault("tmp", {})
    preset = state.data.get("start_args", {}).get("application_id")
    if preset:
        tmp["application_id"] = preset
        return None
    rated = select(SurveyAnswer.application_id).where(SurveyAnswer.application_id.is_not(None))  # type: ignore[union-attr]
    app = ctx.session.exec(select(Application).where(
        Application.beneficiary_id == ctx.beneficiary_id, Application.stage == Stage.COMPLETED.value,
        Application.id.not_in(rated))  # type: ignore[union-attr]
        .order_by(Application.completed_at.desc())).first()  # type: ignore[union-attr]
    if app is None:
        return "nothing_to_rate"
    tmp["application_id"] = app.id
    return None


# --------------------------------------------------------------------------- reports

STAGE_WORDS: dict[str, dict[str, str]] = {
    "staged": {"zh-Hans": "已收到，等工作人员受理", "en": "received, waiting for staff to accept it"},
    "accepted": {"zh-Hans": "已受理，正在排队审核", "en": "accepted, waiting for review"},
    "preliminary_review": {"zh-Hans": "工作人员正在初审材料", "en": "staff are checking your papers"},
    "verification": {"zh-Hans": "社保、医保等部门正在核查", "en": "the pension and medical offices are checking"},
    "payment_notice": {"zh-Hans": "需要缴费", "en": "a payment is due"},
    "paid": {"zh-Hans": "已缴费，等最后办结", "en": "paid, being finished"},
    "completed": {"zh-Hans": "已办结", "en": "completed"},
    "returned": {"zh-Hans": "退回补材料", "en": "returned: documents needed"},
    "rejected": {"zh-Hans": "不予受理", "en": "not accepted"},
    "withdrawn": {"zh-Hans": "已撤回", "en": "withdrawn"},
}
NEXT_WORDS: dict[str, dict[str, str]] = {
    "staged": {"zh-Hans": "下一步：工作人员受理后会通知您。", "en": "Next: we will tell you when staff accept it."},
    "accepted": {"zh-Hans": "下一步：初审，您不用做什么。", "en": "Next: review. Nothing for you to do."},
    "preliminary_review": {"zh-Hans": "下一步：转有关部门核查，您不用做什么。",
                           "en": "Next: the other offices check it. Nothing for you to do."},
    "verification": {"zh-Hans": "下一步：核查完会发缴费通知给您。", "en": "Next: we send you a payment notice."},
    "payment_notice": {"zh-Hans": "请在{deadline}前缴费{amount}元，账户{account}。",
                       "en": "Please pay {amount} yuan to account {account} by {deadline}."},
    "paid": {"zh-Hans": "下一步：办结后会通知您。", "en": "Next: we tell you when it is finished."},
    "completed": {"zh-Hans": "已经办完了。", "en": "It is finished."},
    "returned": {"zh-Hans": "原因：{reason}。请补好材料带到服务窗口。", "en": "Reason: {reason}. Please bring the papers to the window."},
    "rejected": {"zh-Hans": "原因：{reason}。有疑问请回复“人工”。", "en": "Reason: {reason}. Questions? Reply \"human\"."},
    "withdrawn": {"zh-Hans": "", "en": ""},
}
TYPE_WORDS: dict[str, dict[str, str]] = {
    "veteran_insurance": {"zh-Hans": "退役士兵社保接续", "en": "Veterans' insurance continuation"},
    "mutual_aid_claim": {"zh-Hans": "医疗互助报销", "en": "Medical mutual-aid claim"},
    "hardship": {"zh-Hans": "困难帮扶", "en": "Hardship help"},
    "hospital_stay": {"zh-Hans": "住院探视", "en": "Hospital visit"},
    "death_report": {"zh-Hans": "去世报告", "en": "Death report"},
    "certification": {"zh-Hans": "资格认证", "en": "Certification"},
}
DOC_WORDS: dict[str, dict[str, str]] = {
    "enlistment_papers": {"zh-Hans": "入伍材料", "en": "enlistment papers"},
    "discharge_form": {"zh-Hans": "退出现役登记表", "en": "discharge registration form"},
    "id_card": {"zh-Hans": "身份证", "en": "ID card"},
    "payment_records": {"zh-Hans": "缴费记录", "en": "payment records"},
    "placement_letter": {"zh-Hans": "安置介绍信", "en": "placement letter"},
    "contract_termination": {"zh-Hans": "解除劳动合同书", "en": "labour-contract termination"},
    "discharge_summary": {"zh-Hans": "出院小结", "en": "discharge summary"},
    "invoices": {"zh-Hans": "住院发票", "en": "hospital invoices"},
    "income_proof": {"zh-Hans": "收入证明", "en": "proof of income"},
}


def _loc(d: dict[str, str], lang: str) -> str:
    return localise(d, lang) if d.get("zh-Hans") else ""


@report("my_applications")
def my_applications(ctx: FlowCtx, state: State) -> str:
    lang = ctx.lang
    apps = ctx.session.exec(select(Application).where(Application.beneficiary_id == ctx.beneficiary_id)
                            .order_by(Application.created_at.desc()).limit(5)).all()  # type: ignore[attr-defined]
    if not apps:
        return localise({"zh-Hans": "您现在没有在办的申请。", "en": "You have no applications."}, lang)
    ids = [a.id for a in apps if a.id is not None]
    missing: dict[int, list[str]] = {}
    for d in ctx.session.exec(select(ApplicationDocument).where(
            ApplicationDocument.application_id.in_(ids),  # type: ignore[attr-defined]
            ApplicationDocument.required.is_(True), ApplicationDocument.received.is_(False))).all():  # type: ignore[attr-defined]
        missing.setdefault(d.application_id, []).append(_loc(DOC_WORDS.get(d.code, {"zh-Hans": d.code, "en": d.code}), lang))
    lines = [localise({"zh-Hans": "您的申请：", "en": "Your applications:"}, lang)]
    for a in apps:
        kind = _loc(TYPE_WORDS.get(a.type, {"zh-Hans": a.type, "en": a.type}), lang)
        stage = _loc(STAGE_WORDS.get(a.stage, {"zh-Hans": a.stage, "en": a.stage}), lang)
        nxt = _loc(NEXT_WORDS.get(a.stage, {"zh-Hans": "", "en": ""}), lang).format(
            deadline=a.payment_deadline or "", amount=f"{(a.payment_amount_fen or 0) / 100:.2f}",
            account=a.payment_account or "", reason=a.return_reason or a.rejection_reason or "")
        line = f"{a.reference} {kind}：{stage}。{nxt}" if lang != "en" else f"{a.reference} {kind}: {stage}. {nxt}"
        if a.id is not None and missing.get(a.id) and a.stage not in ("completed", "rejected", "withdrawn"):
            items = "、".join(missing[a.id or 0])
            line += localise({"zh-Hans": f"还缺：{items}，请带到服务窗口。",
                              "en": f" Still missing: {items}; please bring them to the window."}, lang)
        lines.append(line)
    text = "\n".join(lines)
    return to_hant(text) if lang == "zh-Hant" else text
