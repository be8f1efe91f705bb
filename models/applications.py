"""Applications with their stage history and documents, staff tasks, handoff tickets, surveys."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Index
from sqlmodel import Field, SQLModel

from models.base import JSONType, UTCDateTime, utcnow


class ApplicationType(StrEnum):
    VETERAN_INSURANCE = "veteran_insurance"  # 退役士兵社会保险接续 (seed 003)
    MUTUAL_AID_CLAIM = "mutual_aid_claim"  # 职工医疗互助 (seed 004)
    HARDSHIP = "hardship"  # 困难帮扶
    HOSPITAL_STAY = "hospital_stay"  # 住院探视
    DEATH_REPORT = "death_report"  # 去世报告 → 慰问
    CERTIFICATION = "certification"  # 养老金资格认证


class Stage(StrEnum):
    """Stages of an application (seed 003); other types use a subset."""

    STAGED = "staged"  # 暂存
    ACCEPTED = "accepted"  # 受理
    PRELIMINARY_REVIEW = "preliminary_review"  # 初审
    VERIFICATION = "verification"  # 核查
    PAYMENT_NOTICE = "payment_notice"  # 缴费通知
    PAID = "paid"  # 已缴费
    COMPLETED = "completed"  # 办结
    RETURNED = "returned"  # 退回补件
    REJECTED = "rejected"  # 不予受理
    WITHDRAWN = "withdrawn"  # 撤回


class Application(SQLModel, table=True):
    __tablename__ = "application"
    __table_args__ = (Index("ix_application_type_stage", "type", "stage", "stage_changed_at"),)

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=32, unique=True)  # shown to people: NX-2026-000123
    type: str = Field(max_length=32)
    beneficiary_id: int = Field(foreign_key="beneficiary.id", index=True)
    # Who made it: the contact used, and the relationship when a family member did.
    submitted_by_contact_id: int | None = Field(default=None, foreign_key="contact.id")
    submitted_by_relationship: str = Field(default="self", max_length=32)
    channel: str = Field(default="", max_length=16)
    stage: str = Field(default=Stage.STAGED.value, max_length=32)
    stage_changed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    assigned_staff_id: int | None = Field(default=None, foreign_key="staff_user.id")
    return_reason: str | None = None
    rejection_reason: str | None = None
    payment_amount_fen: int | None = None
    payment_account: str | None = Field(default=None, max_length=64)
    payment_deadline: date | None = None
    paid_on: date | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ApplicationStageChange(SQLModel, table=True):
    __tablename__ = "application_stage_change"

    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    from_stage: str | None = Field(default=None, max_length=32)
    to_stage: str = Field(max_length=32)
    reason: str | None = None
    actor: str = Field(max_length=64)  # staff username, "bot" or "system"
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ApplicationDocument(SQLModel, table=True):
    """One line of an application's document checklist, and the file once received."""

    __tablename__ = "application_document"

    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    code: str = Field(max_length=48)  # enlistment_papers, discharge_form, id_card, ...
    required: bool = True
    received: bool = False
    received_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    file_path: str | None = None  # where the uploaded file is stored
    provider_file_id: str | None = Field(default=None, max_length=200)
    mime_type: str | None = Field(default=None, max_length=64)
    # Ticked by staff once they have seen the document (the original, or a good copy).
    checked_by: str | None = Field(default=None, max_length=64)
    checked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class TaskKind(StrEnum):
    HOSPITAL_VISIT = "hospital_visit"
    CONDOLENCE_VISIT = "condolence_visit"
    HOME_VISIT = "home_visit"  # certification at home
    CERTIFICATION_BOOKING = "certification_booking"
    OVER_80_INSURANCE = "over_80_insurance"
    STUCK_APPLICATION = "stuck_application"
    HARDSHIP_VISIT = "hardship_visit"
    CALLBACK = "callback"
    VERIFY_DEATH = "verify_death"  # a death reported through the bot, to confirm
    VERIFY_MOVE = "verify_move"
    VERIFY_CONTACT = "verify_contact"


class TaskStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class Task(SQLModel, table=True):
    """Work for community or office staff, created by the bot, the scheduler or staff."""

    __tablename__ = "task"
    __table_args__ = (Index("ix_task_status_priority", "status", "priority"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    # Makes creation idempotent for sweeps: e.g. "home_visit:42:2026".
    key: str | None = Field(default=None, max_length=128, unique=True)
    beneficiary_id: int | None = Field(default=None, foreign_key="beneficiary.id", index=True)
    application_id: int | None = Field(default=None, foreign_key="application.id")
    ticket_id: int | None = Field(default=None, foreign_key="handoff_ticket.id")
    priority: int = 0  # higher first: over 80, living alone, disabled
    status: str = Field(default="open", max_length=16)  # open | done | cancelled
    due_on: date | None = None
    assigned_staff_id: int | None = Field(default=None, foreign_key="staff_user.id")
    note: str = ""
    # What a verification task is about (models.reports.Report, as JSON).
    # (`default=dict` also fills it for bulk Core inserts that leave it out, as the sweeps do.)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False, default=dict))
    outcome: str | None = Field(default=None, max_length=32)  # how it ended: certified, confirmed, not_true...
    closed_by: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class TaskNote(SQLModel, table=True):
    """A note staff add to a task (a call made, a visit arranged), kept in order."""

    __tablename__ = "task_note"

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id", index=True)
    author: str = Field(max_length=64)
    text: str
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class TicketStatus(StrEnum):
    OPEN = "open"
    ANSWERED = "answered"
    CLOSED = "closed"


class HandoffReason(StrEnum):
    """Why a question went to staff (the words are in templates/words/handoff_reason.yaml)."""

    OUT_OF_SCOPE = "out_of_scope"  # no reviewed article answers it
    PERSONAL_CASE = "personal_case"  # about the asker's own case
    COMPLAINT = "complaint"
    ASKED_FOR_PERSON = "asked_for_person"
    FLOW = "flow"  # a service passed it on (e.g. a death report for someone not on the roll)


class HandoffTicket(SQLModel, table=True):
    """A question passed from the bot to a person."""

    __tablename__ = "handoff_ticket"
    __table_args__ = (Index("ix_ticket_status_created", "status", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    address: str = Field(max_length=64)
    beneficiary_id: int | None = Field(default=None, foreign_key="beneficiary.id", index=True)
    language: str = Field(default="zh-Hans", max_length=8)
    question: str
    reason: str = Field(max_length=32)  # out_of_scope, personal_case, complaint, asked_for_person, flow
    transcript: list[Any] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    status: str = Field(default="open", max_length=16)  # open | answered | closed
    answer: str | None = None
    answered_by: str | None = Field(default=None, max_length=64)
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    escalated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    assigned_staff_id: int | None = Field(default=None, foreign_key="staff_user.id")
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_by: str | None = Field(default=None, max_length=64)
    close_reason: str | None = Field(default=None, max_length=32)  # answered_by_phone, duplicate, ...
    close_note: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SurveyAnswer(SQLModel, table=True):
    __tablename__ = "survey_answer"

    id: int | None = Field(default=None, primary_key=True)
    application_id: int | None = Field(default=None, foreign_key="application.id", index=True)
    beneficiary_id: int | None = Field(default=None, foreign_key="beneficiary.id")
    score: int = Field(ge=1, le=5)
    comment: str = ""
    channel: str = Field(default="", max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
