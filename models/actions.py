"""State changes that several parts make (the bot, the console, the CLI, the dispatcher,
the scheduler), in one place, each writing its audit row.

Every function takes the caller's session and does not commit: the caller's transaction
decides. `actor` is a staff username, or "bot", "system", "scheduler", "dispatcher".
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from models.applications import Application, ApplicationStageChange, Stage, Task
from models.base import utcnow
from models.outbox import OutboxMessage, OutboxStatus
from models.people import Beneficiary, BeneficiaryStatus, Contact, lock_people
from models.phone import mask_phone


def audit(session: Session, actor: str, action: str, target_type: str = "", target_id: Any = "",
          details: dict[str, Any] | None = None, at: datetime | None = None) -> None:
    """Record an action. Details should already be masked; whatever slipped through (a console
    address with a phone in it, a number typed in a note) is masked when stored."""
    from models.privacy import redact
    from models.staff import AuditLog

    session.add(AuditLog(actor=actor, action=action, target_type=target_type, target_id=redact(str(target_id)),
                         details=details or {}, at=at or utcnow()))


def masked_address(contact: Contact) -> str:
    return mask_phone(contact.address) if contact.channel == "sms" else contact.address


def _suppress_stopped(session: Session, where: Any, now: datetime) -> None:
    """Queued outbox rows matching `where` that the contact rule now stops are suppressed, each
    change recorded (the outbox owns its states; outreach depends on models, not the reverse)."""
    from outreach.outbox import suppress_stopped

    session.flush()  # the rule reads the change just made
    suppress_stopped(session, where, now)


def opt_out(session: Session, contact: Contact, *, reason: str, actor: str, now: datetime | None = None) -> bool:
    """Stop proactive messages to this address at once (what the person asked for, and notices
    about their own applications, still go: outreach/reach.py). Returns False if already opted out."""
    now = now or utcnow()
    if contact.opted_out_at is not None:
        return False
    lock_people(session, contact.beneficiary_id)
    contact.opted_out_at = now
    contact.opted_out_reason = reason[:200]
    session.add(contact)
    _suppress_stopped(session, (col(OutboxMessage.channel) == contact.channel)
                      & (col(OutboxMessage.address) == contact.address), now)
    audit(session, actor, "contact.opt_out", "contact", contact.id,
          {"channel": contact.channel, "address": masked_address(contact), "reason": reason}, now)
    return True


def opt_in(session: Session, contact: Contact, *, actor: str, now: datetime | None = None) -> bool:
    if contact.opted_out_at is None:
        return False
    lock_people(session, contact.beneficiary_id)
    contact.opted_out_at = None
    contact.opted_out_reason = None
    session.add(contact)
    audit(session, actor, "contact.opt_in", "contact", contact.id,
          {"channel": contact.channel, "address": masked_address(contact)}, now)
    return True


def mark_blocked(session: Session, contact: Contact, *, reason: str, actor: str = "dispatcher",
                 now: datetime | None = None) -> None:
    now = now or utcnow()
    if contact.blocked_at is None:
        lock_people(session, contact.beneficiary_id)
        contact.blocked_at = now
        session.add(contact)
        audit(session, actor, "contact.blocked", "contact", contact.id,
              {"channel": contact.channel, "address": masked_address(contact), "reason": reason}, now)


def mark_invalid(session: Session, contact: Contact, *, reason: str, actor: str = "dispatcher",
                 now: datetime | None = None) -> None:
    now = now or utcnow()
    if contact.invalid_at is None:
        lock_people(session, contact.beneficiary_id)
        contact.invalid_at = now
        contact.invalid_reason = reason[:200]
        session.add(contact)
        audit(session, actor, "contact.invalid", "contact", contact.id,
              {"channel": contact.channel, "address": masked_address(contact), "reason": reason}, now)


def create_task(session: Session, *, kind: str, actor: str, key: str | None = None,
                beneficiary_id: int | None = None, application_id: int | None = None,
                ticket_id: int | None = None, priority: int = 0, due_on: date | None = None,
                note: str = "", now: datetime | None = None) -> Task | None:
    """Open a staff task. With a `key`, a second call for the same key returns None (no duplicate)."""
    now = now or utcnow()
    if key is not None and session.exec(select(Task).where(Task.key == key)).first() is not None:
        return None
    task = Task(kind=kind, key=key, beneficiary_id=beneficiary_id, application_id=application_id,
                ticket_id=ticket_id, priority=priority, due_on=due_on, note=note, created_at=now)
    session.add(task)
    session.flush()
    audit(session, actor, "task.create", "task", task.id, {"kind": kind, "beneficiary_id": beneficiary_id}, now)
    return task


def record_death(session: Session, beneficiary: Beneficiary, *, died_on: date, actor: str,
                 reported_by: str = "", evidence: str = "", reason: str = "",
                 now: datetime | None = None) -> Task | None:
    """Mark a beneficiary deceased at once: nothing proactive is sent to them again, and a
    condolence visit is opened for community staff. Staff call it directly, or through
    `confirm_report` for a death reported through the bot."""
    now = now or utcnow()
    if beneficiary.status != BeneficiaryStatus.DECEASED.value:
        beneficiary.status = BeneficiaryStatus.DECEASED.value
        beneficiary.deceased_on = died_on
        beneficiary.updated_at = now
        session.add(beneficiary)
        _suppress_stopped(session, col(OutboxMessage.beneficiary_id) == beneficiary.id, now)
        audit(session, actor, "beneficiary.deceased", "beneficiary", beneficiary.id,
              {"died_on": died_on.isoformat(), "reported_by": reported_by, "evidence": evidence[:200],
               "reason": reason[:500]}, now)
        close_tasks_of_the_deceased(session, beneficiary, actor=actor, now=now)
    return create_task(session, kind="condolence_visit", actor=actor, key=f"condolence_visit:{beneficiary.id}",
                       beneficiary_id=beneficiary.id, priority=10, due_on=died_on,
                       note=f"报告人：{reported_by}" if reported_by else "", now=now)


# Work for a living person that has no point once they have died (the condolence visit and the
# verification of the report itself stay).
TASKS_ENDED_BY_DEATH = ("hospital_visit", "home_visit", "certification_booking", "hardship_visit", "over_80_insurance",
                        "callback")


def close_tasks_of_the_deceased(session: Session, beneficiary: Beneficiary, *, actor: str, now: datetime) -> int:
    """Close the person's open visits and bookings, each with the reason, each audited. Returns how many."""
    # Notes are the office's record, written in its language; codes are named through the catalogue.
    reason = f"已关闭：{beneficiary.name}已去世" + (f"（{beneficiary.deceased_on.isoformat()}）"
                                                 if beneficiary.deceased_on else "")
    tasks = session.exec(select(Task).where(col(Task.beneficiary_id) == beneficiary.id, col(Task.status) == "open",
                                            col(Task.kind).in_(TASKS_ENDED_BY_DEATH))).all()
    for task in tasks:
        task.status = "cancelled"
        task.closed_at = now
        task.note = f"{task.note}\n{reason}".strip()
        session.add(task)
        audit(session, actor, "task.cancel", "task", task.id, {"kind": task.kind, "reason": "deceased"}, now)
    return len(tasks)


def record_certification(session: Session, beneficiary: Beneficiary, *, on: date, actor: str,
                         method: str = "window", reason: str = "", now: datetime | None = None) -> None:
    """Record this year's pension eligibility certification; remaining reminders stop."""
    now = now or utcnow()
    beneficiary.last_certified_on = on
    beneficiary.updated_at = now
    session.add(beneficiary)
    from outreach.outbox import move_where

    move_where(session, (col(OutboxMessage.beneficiary_id) == beneficiary.id)
               & col(OutboxMessage.kind).startswith("cert_reminder"), from_status=OutboxStatus.QUEUED,
               to=OutboxStatus.SUPPRESSED, reason="certification recorded", at=now,
               values={"error": "certification recorded"})
    session.execute(update(Task).where(col(Task.beneficiary_id) == beneficiary.id, col(Task.kind) == "home_visit",
                                       col(Task.status) == "open").values(status="done", closed_at=now))
    audit(session, actor, "beneficiary.certified", "beneficiary", beneficiary.id,
          {"on": on.isoformat(), "method": method, **({"reason": reason[:500]} if reason else {})}, now)


# Which stages may follow which (seed 003). Other application types use the same names.
ALLOWED_STAGE_CHANGES: dict[str, set[str]] = {
    Stage.STAGED.value: {Stage.ACCEPTED.value, Stage.RETURNED.value, Stage.REJECTED.value, Stage.WITHDRAWN.value},
    Stage.ACCEPTED.value: {Stage.PRELIMINARY_REVIEW.value, Stage.RETURNED.value, Stage.REJECTED.value,
                           Stage.COMPLETED.value, Stage.WITHDRAWN.value},
    Stage.PRELIMINARY_REVIEW.value: {Stage.VERIFICATION.value, Stage.RETURNED.value, Stage.REJECTED.value,
                                     Stage.COMPLETED.value},
    Stage.VERIFICATION.value: {Stage.PAYMENT_NOTICE.value, Stage.RETURNED.value, Stage.REJECTED.value,
                               Stage.COMPLETED.value},
    Stage.PAYMENT_NOTICE.value: {Stage.PAID.value, Stage.RETURNED.value},
    Stage.PAID.value: {Stage.COMPLETED.value},
    Stage.RETURNED.value: {Stage.ACCEPTED.value, Stage.WITHDRAWN.value, Stage.REJECTED.value},
    Stage.COMPLETED.value: set(),
    Stage.REJECTED.value: set(),
    Stage.WITHDRAWN.value: set(),
}


class StageChangeRefused(ValueError):
    pass


def advance_application(session: Session, application: Application, to_stage: str, *, actor: str,
                        reason: str | None = None, now: datetime | None = None,
                        payment_amount_fen: int | None = None, payment_account: str | None = None,
                        payment_deadline: date | None = None, notify: bool = True) -> ApplicationStageChange:
    """Move an application to its next stage, record the change, and tell the applicant.

    Returned-for-documents and rejection need a reason; a payment notice needs amount,
    account and deadline (seed 003). The notice to the applicant goes through the outbox.
    """
    now = now or utcnow()
    allowed = ALLOWED_STAGE_CHANGES.get(application.stage, set())
    if to_stage not in allowed:
        raise StageChangeRefused(f"cannot move from {application.stage} to {to_stage}")
    if to_stage in (Stage.RETURNED.value, Stage.REJECTED.value) and not (reason and reason.strip()):
        raise StageChangeRefused(f"a reason is required to move to {to_stage}")
    if to_stage == Stage.PAYMENT_NOTICE.value:
        if payment_amount_fen is None or not payment_account or payment_deadline is None:
            raise StageChangeRefused("a payment notice needs amount, account and deadline")
        application.payment_amount_fen = payment_amount_fen
        application.payment_account = payment_account
        application.payment_deadline = payment_deadline
    if to_stage == Stage.RETURNED.value:
        application.return_reason = reason
    if to_stage == Stage.REJECTED.value:
        application.rejection_reason = reason
    if to_stage == Stage.PAID.value:
        application.paid_on = now.date()
    if to_stage == Stage.COMPLETED.value:
        application.completed_at = now
    assert application.id is not None  # a stored application
    change = ApplicationStageChange(application_id=application.id, from_stage=application.stage, to_stage=to_stage,
                                    reason=reason, actor=actor, at=now)
    application.stage = to_stage
    application.stage_changed_at = now
    application.updated_at = now
    session.add(application)
    session.add(change)
    audit(session, actor, "application.stage", "application", application.id,
          {"reference": application.reference, "from": change.from_stage, "to": to_stage, "reason": reason}, now)
    if notify:
        from outreach.notices import notify_stage_change  # outreach depends on models, not the reverse

        notify_stage_change(session, application, now=now)
        if to_stage == Stage.COMPLETED.value:
            invite_to_survey(session, application, now=now)
    return change


SURVEY_FLOW, SURVEY_FIRST_STEP = "survey", "score"


def invite_to_survey(session: Session, application: Application, *, now: datetime) -> bool:
    """After a completed service: send the satisfaction-survey invitation, and put the person's
    idle conversation at the survey's first question, so that a bare "5" in reply is a score
    (and not menu item 5). A person in the middle of another flow is left there: they can
    still rate from the menu. Returns True when the invitation was queued."""
    from bot.conversations import offer_flow
    from outreach.notices import choose_contact, enqueue_notice

    beneficiary = session.get(Beneficiary, application.beneficiary_id)
    if beneficiary is None or not beneficiary.is_active:
        return False
    contact = choose_contact(session, beneficiary.id)  # type: ignore[arg-type]
    if contact is None:
        return False
    queued = enqueue_notice(session, beneficiary=beneficiary, kind="survey_invitation",
                            occurrence=application.reference, now=now, channel=contact.channel,
                            context={"reference": application.reference, "application_type": application.type})
    if queued is None or not queued.created:
        return False
    if contact.family_member_id is not None:
        return True  # a relative's phone: they are asked to pass it on, not put into a flow
    offer_flow(session, channel=contact.channel, address=contact.address, flow=SURVEY_FLOW, step=SURVEY_FIRST_STEP,
               beneficiary_id=beneficiary.id, language=beneficiary.language, now=now,  # type: ignore[arg-type]
               args={"application_id": application.id}, subject_application_id=application.id)
    return True


# --------------------------------------------------------------------------- staff casework
# Reports that change a person's record wait for staff; the record changes only at confirmation.


class CaseworkRefused(ValueError):
    """A casework change that cannot be made as asked; the message says why in plain words."""


def _open_verifications(session: Session, beneficiary_id: int, *, other_than: int | None = None) -> list[Task]:
    from models.reports import VERIFY_TASKS

    rows = session.exec(select(Task).where(Task.beneficiary_id == beneficiary_id, Task.status == "open",
                                           col(Task.kind).in_(sorted(VERIFY_TASKS)))).all()
    return [t for t in rows if t.id != other_than]


def pause_outreach(session: Session, beneficiary: Beneficiary, *, reason: str, actor: str, now: datetime) -> None:
    """No proactive outreach until staff resume it (the contact rule honours the pause)."""
    if beneficiary.outreach_paused_at is None:
        beneficiary.outreach_paused_at = now
        beneficiary.outreach_paused_reason = reason[:200]
        session.add(beneficiary)
        audit(session, actor, "beneficiary.paused", "beneficiary", beneficiary.id, {"reason": reason[:200]}, now)


def resume_outreach(session: Session, beneficiary: Beneficiary, *, actor: str, now: datetime,
                    closing_task: int | None = None) -> bool:
    """Lift the pause, unless another report about this person still waits for staff."""
    if beneficiary.outreach_paused_at is None:
        return False
    assert beneficiary.id is not None  # a stored person
    if _open_verifications(session, beneficiary.id, other_than=closing_task):
        return False
    beneficiary.outreach_paused_at = None
    beneficiary.outreach_paused_reason = None
    session.add(beneficiary)
    audit(session, actor, "beneficiary.resumed", "beneficiary", beneficiary.id, {}, now)
    return True


def report_change(session: Session, beneficiary: Beneficiary, report: Any, reporter: Any, *, now: datetime,
                  actor: str = "bot") -> Task:
    """Someone reported a death, a move or a new contact: open a verification task for staff and
    pause outreach to the person meanwhile. Nothing in the record changes until a caseworker
    confirms (`confirm_report`). A second report of the same kind joins the open task as a note."""
    from models.applications import TaskNote
    from models.reports import VERIFY_TASK, TaskDetails

    assert beneficiary.id is not None  # a stored person
    kind = VERIFY_TASK[report.kind]
    details = TaskDetails(report=report, reporter=reporter).model_dump(mode="json")
    open_same = session.exec(select(Task).where(Task.beneficiary_id == beneficiary.id, Task.kind == kind,
                                                Task.status == "open")).first()
    if open_same is not None:
        assert open_same.id is not None  # a stored task
        session.add(TaskNote(task_id=open_same.id, author=actor, at=now,
                             text=f"another report ({reporter.relationship}, {reporter.channel}): "
                                  f"{report.model_dump_json()}"))
        audit(session, actor, "beneficiary.report", "beneficiary", beneficiary.id,
              {"kind": str(report.kind), "task": open_same.id, "by": reporter.relationship,
               "channel": reporter.channel, "again": True}, now)
        return open_same
    task = Task(kind=kind, key=f"{kind}:{beneficiary.id}:{now:%Y%m%dT%H%M%S%f}", beneficiary_id=beneficiary.id,
                priority=10 if kind == "verify_death" else 5, details=details, created_at=now,
                note=_reported_note(reporter.relationship, reporter.channel))
    session.add(task)
    session.flush()
    audit(session, actor, "task.create", "task", task.id, {"kind": kind, "beneficiary_id": beneficiary.id}, now)
    audit(session, actor, "beneficiary.report", "beneficiary", beneficiary.id,
          {"kind": str(report.kind), "task": task.id, "by": reporter.relationship, "channel": reporter.channel}, now)
    pause_outreach(session, beneficiary, reason=f"{report.kind}_reported", actor=actor, now=now)
    return task


def _close_task(session: Session, task: Task, *, outcome: str, actor: str, now: datetime, note: str = "") -> None:
    from models.applications import TaskNote

    task.status = "done"
    task.outcome = outcome
    task.closed_by = actor
    task.closed_at = now
    session.add(task)
    if note.strip():
        assert task.id is not None  # a stored task
        session.add(TaskNote(task_id=task.id, author=actor, text=note.strip()[:2000], at=now))
    audit(session, actor, "task.done", "task", task.id, {"kind": task.kind, "outcome": outcome}, now)


def confirm_report(session: Session, task: Task, *, actor: str, now: datetime, note: str = "") -> None:
    """A caseworker checked the report and it is true: apply it to the record, close the task,
    and lift the pause (unless another report still waits)."""
    from models.reports import ContactReport, DeathReport, MoveReport, task_details

    if task.status != "open":
        raise CaseworkRefused("这个核实任务已经处理过了 (this report was already handled)")
    details = task_details(task.details)
    beneficiary = session.get(Beneficiary, task.beneficiary_id)
    if beneficiary is None:
        raise CaseworkRefused("找不到这个人 (no such person)")
    report, reporter = details.report, details.reporter
    reported_by = f"{reporter.relationship} via {reporter.channel or 'staff'}"
    if isinstance(report, DeathReport):
        record_death(session, beneficiary, died_on=report.died_on, actor=actor, reported_by=reported_by,
                     evidence=report.evidence, reason=note or "report confirmed", now=now)
    elif isinstance(report, MoveReport):
        record_move(session, beneficiary, moved_on=report.moved_on, away=report.away, district=report.district,
                    street=report.street, community=report.community, actor=actor,
                    reason=note or "report confirmed", now=now)
    elif isinstance(report, ContactReport):
        old = session.get(Contact, report.replaces_contact_id) if report.replaces_contact_id else None
        if old is not None and old.beneficiary_id == beneficiary.id:
            replace_phone(session, old, report.new_phone, actor=actor, reason=note or "report confirmed", now=now)
        else:
            add_phone(session, beneficiary, report.new_phone, actor=actor, reason=note or "report confirmed", now=now)
    _close_task(session, task, outcome="confirmed", actor=actor, now=now, note=note)
    audit(session, actor, "beneficiary.report_confirmed", "beneficiary", beneficiary.id,
          {"kind": str(report.kind), "task": task.id}, now)
    resume_outreach(session, beneficiary, actor=actor, now=now, closing_task=task.id)


def reject_report(session: Session, task: Task, *, actor: str, reason: str, now: datetime) -> None:
    """The report turned out not to be true (or not about this person): nothing in the record
    changes, the task closes with the reason, and the pause is lifted."""
    if task.status != "open":
        raise CaseworkRefused("这个核实任务已经处理过了 (this report was already handled)")
    if not reason.strip():
        raise CaseworkRefused("请写明核实的情况 (say what was found)")
    _close_task(session, task, outcome="not_confirmed", actor=actor, now=now, note=reason)
    beneficiary = session.get(Beneficiary, task.beneficiary_id)
    if beneficiary is not None:
        audit(session, actor, "beneficiary.report_rejected", "beneficiary", beneficiary.id,
              {"kind": task.kind, "task": task.id, "reason": reason.strip()[:500]}, now)
        resume_outreach(session, beneficiary, actor=actor, now=now, closing_task=task.id)


def record_move(session: Session, beneficiary: Beneficiary, *, actor: str, reason: str, now: datetime,
                moved_on: date | None = None, away: bool = True, district: str = "", street: str = "",
                community: str = "") -> None:
    """A move: out of the office's area (status moved; nothing proactive is sent again), or to a
    new address within it (the area changes, so visits go to the right community)."""
    if away:
        if beneficiary.status == BeneficiaryStatus.MOVED.value:
            return
        beneficiary.status = BeneficiaryStatus.MOVED.value
        beneficiary.moved_on = moved_on or now.date()
        beneficiary.updated_at = now
        session.add(beneficiary)
        _suppress_stopped(session, col(OutboxMessage.beneficiary_id) == beneficiary.id, now)
        audit(session, actor, "beneficiary.moved", "beneficiary", beneficiary.id,
              {"moved_on": beneficiary.moved_on.isoformat(), "reason": reason[:500]}, now)
        return
    if not (district.strip() or street.strip() or community.strip()):
        raise CaseworkRefused("请填写新的区、街道或社区 (give the new district, street or community)")
    before = f"{beneficiary.district}{beneficiary.street}{beneficiary.community}"
    beneficiary.district = district.strip()[:64] or beneficiary.district
    beneficiary.street = street.strip()[:64] or beneficiary.street
    beneficiary.community = community.strip()[:64] or beneficiary.community
    beneficiary.updated_at = now
    session.add(beneficiary)
    audit(session, actor, "beneficiary.address", "beneficiary", beneficiary.id,
          {"from": before, "to": f"{beneficiary.district}{beneficiary.street}{beneficiary.community}",
           "reason": reason[:500]}, now)


def add_phone(session: Session, beneficiary: Beneficiary, phone_e164: str, *, actor: str, reason: str,
              now: datetime) -> Contact:
    """Staff add a mobile number to a person's record (verified: staff checked it)."""
    existing = session.exec(select(Contact).where(Contact.channel == "sms", Contact.address == phone_e164)).first()
    if existing is not None and existing.beneficiary_id not in (None, beneficiary.id):
        raise CaseworkRefused("这个号码已经登记在另一个人名下 (this number is on someone else's record)")
    lock_people(session, beneficiary.id)
    contact = existing or Contact(channel="sms", address=phone_e164, created_at=now)
    contact.beneficiary_id = beneficiary.id
    contact.verified, contact.verified_at = True, now
    contact.invalid_at = contact.invalid_reason = None
    session.add(contact)
    session.flush()
    audit(session, actor, "contact.add", "contact", contact.id,
          {"channel": "sms", "address": mask_phone(phone_e164), "beneficiary_id": beneficiary.id,
           "reason": reason[:500]}, now)
    return contact


def replace_phone(session: Session, old: Contact, phone_e164: str, *, actor: str, reason: str,
                  now: datetime) -> Contact:
    """A new number instead of an old one: the new one is added, the old one marked no longer valid."""
    beneficiary = session.get(Beneficiary, old.beneficiary_id)
    if beneficiary is None:
        raise CaseworkRefused("这个联系方式不属于任何人 (this contact belongs to no one)")
    if old.channel == "sms" and old.address == phone_e164:
        raise CaseworkRefused("新号码和原来的一样 (the new number is the same as the old one)")
    lock_people(session, beneficiary.id)  # before the new number's row and the old one's: one order
    new = add_phone(session, beneficiary, phone_e164, actor=actor, reason=reason, now=now)
    mark_invalid(session, old, reason=f"replaced by staff: {reason}"[:200], actor=actor, now=now)
    audit(session, actor, "contact.change", "contact", old.id,
          {"from": masked_address(old), "to": mask_phone(phone_e164), "reason": reason[:500]}, now)
    return new


# Outcomes a task may be completed with, by kind (a certification outcome records the certification).
CERTIFICATION_TASKS = frozenset({"home_visit", "certification_booking"})
TASK_OUTCOMES: dict[str, tuple[str, ...]] = {
    "home_visit": ("certified", "not_certified", "could_not_reach"),
    "certification_booking": ("certified", "not_certified", "could_not_reach"),
}
DEFAULT_OUTCOMES = ("done", "could_not_reach", "not_needed")


def task_outcomes(kind: str) -> tuple[str, ...]:
    from models.reports import VERIFY_TASKS

    if kind in VERIFY_TASKS:
        return ()  # confirmed or rejected through confirm_report / reject_report
    return TASK_OUTCOMES.get(kind, DEFAULT_OUTCOMES)


def complete_task(session: Session, task: Task, *, outcome: str, actor: str, now: datetime, today: date,
                  note: str = "") -> None:
    """Close a task with its outcome. "certified" on a certification task records this year's
    pension eligibility certification (so the remaining reminders stop)."""
    if task.status != "open":
        raise CaseworkRefused("这个任务已经关闭了 (this task is already closed)")
    allowed = task_outcomes(task.kind)
    if not allowed:
        raise CaseworkRefused("核实任务请用“属实”或“不属实”来处理 (confirm or reject the report instead)")
    if outcome not in allowed:
        raise CaseworkRefused("请选择办理结果 (choose the outcome)")
    if outcome == "not_needed" and not note.strip():
        raise CaseworkRefused("请写明为什么不需要办 (say why it is not needed)")
    _close_task(session, task, outcome=outcome, actor=actor, now=now, note=note)
    if outcome == "certified" and task.kind in CERTIFICATION_TASKS and task.beneficiary_id is not None:
        person = session.get(Beneficiary, task.beneficiary_id)
        if person is not None:
            record_certification(session, person, on=today, actor=actor, method=task.kind, reason=note, now=now)


def assign_task(session: Session, task: Task, staff_id: int | None, *, actor: str, now: datetime) -> None:
    task.assigned_staff_id = staff_id
    session.add(task)
    audit(session, actor, "task.assign", "task", task.id, {"to": staff_id}, now)


def add_task_note(session: Session, task: Task, text: str, *, actor: str, now: datetime) -> None:
    from models.applications import TaskNote

    if not text.strip():
        raise CaseworkRefused("备注是空的 (the note is empty)")
    assert task.id is not None  # a stored task
    session.add(TaskNote(task_id=task.id, author=actor, text=text.strip()[:2000], at=now))
    audit(session, actor, "task.note", "task", task.id, {}, now)


CLOSE_REASONS = ("answered_by_phone", "resolved_in_person", "duplicate", "no_reply_needed", "other")


def close_ticket(session: Session, ticket: Any, *, reason: str, note: str, actor: str, now: datetime) -> None:
    """Close a handed-off question without (or after) a written answer, with the reason."""
    if ticket.status == "closed":
        raise CaseworkRefused("这个问题已经关闭了 (already closed)")
    if reason not in CLOSE_REASONS:
        raise CaseworkRefused("请选择关闭的原因 (choose why it is closed)")
    if reason == "other" and not note.strip():
        raise CaseworkRefused("请写明关闭的原因 (say why it is closed)")
    ticket.status = "closed"
    ticket.close_reason, ticket.close_note = reason, note.strip()[:2000] or None
    ticket.closed_by, ticket.closed_at = actor, now
    session.add(ticket)
    audit(session, actor, "ticket.close", "handoff_ticket", ticket.id, {"reason": reason}, now)


def assign_ticket(session: Session, ticket: Any, staff_id: int | None, *, actor: str, now: datetime) -> None:
    ticket.assigned_staff_id = staff_id
    session.add(ticket)
    audit(session, actor, "ticket.assign", "handoff_ticket", ticket.id, {"to": staff_id}, now)


def check_document(session: Session, document: Any, checked: bool, *, actor: str, now: datetime) -> None:
    """Staff tick (or untick) one line of an application's document checklist: they have seen it."""
    document.checked_by, document.checked_at = (actor, now) if checked else (None, None)
    session.add(document)
    audit(session, actor, "application.document_checked", "application", document.application_id,
          {"document": document.code, "checked": checked}, now)


def _reported_note(relationship: str | None, channel: str | None) -> str:
    """"由子女通过短信报告": who reported a change and how, in the office's words."""
    from bot.words import staff_label

    by = staff_label("relationship", relationship) or "本人"
    return f"由{by}通过{staff_label('channel', channel)}报告" if channel else f"由{by}报告，工作人员录入"
