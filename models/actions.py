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
from models.people import Beneficiary, BeneficiaryStatus, Contact
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
        contact.blocked_at = now
        session.add(contact)
        audit(session, actor, "contact.blocked", "contact", contact.id,
              {"channel": contact.channel, "address": masked_address(contact), "reason": reason}, now)


def mark_invalid(session: Session, contact: Contact, *, reason: str, actor: str = "dispatcher",
                 now: datetime | None = None) -> None:
    now = now or utcnow()
    if contact.invalid_at is None:
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
                 reported_by: str = "", now: datetime | None = None) -> Task | None:
    """Mark a beneficiary deceased at once: nothing proactive is sent to them again, and a
    condolence visit is opened for community staff."""
    now = now or utcnow()
    if beneficiary.status != BeneficiaryStatus.DECEASED.value:
        beneficiary.status = BeneficiaryStatus.DECEASED.value
        beneficiary.deceased_on = died_on
        beneficiary.updated_at = now
        session.add(beneficiary)
        _suppress_stopped(session, col(OutboxMessage.beneficiary_id) == beneficiary.id, now)
        audit(session, actor, "beneficiary.deceased", "beneficiary", beneficiary.id,
              {"died_on": died_on.isoformat(), "reported_by": reported_by}, now)
    return create_task(session, kind="condolence_visit", actor=actor, key=f"condolence_visit:{beneficiary.id}",
                       beneficiary_id=beneficiary.id, priority=10, due_on=died_on,
                       note=f"reported by {reported_by}" if reported_by else "", now=now)


def record_certification(session: Session, beneficiary: Beneficiary, *, on: date, actor: str,
                         method: str = "window", now: datetime | None = None) -> None:
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
          {"on": on.isoformat(), "method": method}, now)


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
