"""The outbox: every proactive message is a row here before it is sent; and broadcasts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Index, text
from sqlmodel import Field, SQLModel

from models.base import JSONType, UTCDateTime, utcnow


class OutboxStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"  # permanent, or temporary past its deadline
    CANCELLED = "cancelled"
    SUPPRESSED = "suppressed"  # opted out, blocked, deceased


# Column values the database fills in when an insert leaves them out: a bulk insert (a
# broadcast's 100,000 rows) then sends only what differs from them. Python's defaults agree.
DATABASE_DEFAULTS: dict[str, Any] = {
    "occurrence": "", "language": "zh-Hans", "segments": 1, "extra": {}, "message_class": "proactive",
    "priority": 2, "urgent": False, "allow_fallback": True, "status": OutboxStatus.QUEUED.value, "attempts": 0,
}


def _server_default(name: str) -> dict[str, Any]:
    value = DATABASE_DEFAULTS[name]
    if isinstance(value, bool):
        return {"server_default": text("true" if value else "false")}  # both databases read these words
    return {"server_default": str(value)}


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox_message"
    __table_args__ = (
        Index("ix_outbox_claim", "status", "priority", "next_attempt_at"),
        Index("ix_outbox_broadcast_status", "broadcast_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # (kind, recipient, occurrence): enqueuing the same thing twice is a no-op.
    idempotency_key: str = Field(max_length=200, unique=True)
    kind: str = Field(max_length=48, index=True)
    occurrence: str = Field(default="", max_length=64, sa_column_kwargs=_server_default("occurrence"))
    beneficiary_id: int | None = Field(default=None, foreign_key="beneficiary.id", index=True)
    contact_id: int | None = Field(default=None, foreign_key="contact.id")
    channel: str = Field(max_length=16)
    address: str = Field(max_length=64)
    language: str = Field(default="zh-Hans", max_length=8, sa_column_kwargs=_server_default("language"))
    body: str  # as it is sent on `channel` (on SMS: with the office's signature and any opt-out line)
    segments: int = Field(default=1, sa_column_kwargs=_server_default("segments"))  # of `body` by SMS
    # The SMS copy of a message queued for another channel: what a fallback to SMS sends.
    sms_body: str | None = None
    sms_segments: int | None = None
    # What the message offers on Telegram (buttons), if anything.
    extra: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False,
                                                                         server_default=text("'{}'")))
    # How the contact rule treats it (outreach/reach.py: requested, own_case, proactive, bulk,
    # staff), and the claim order that follows from it (lower first).
    message_class: str = Field(default="proactive", max_length=16, sa_column_kwargs=_server_default("message_class"))
    priority: int = Field(default=2, sa_column_kwargs=_server_default("priority"))
    urgent: bool = Field(default=False, sa_column_kwargs=_server_default("urgent"))  # codes: ignore quiet hours
    allow_fallback: bool = Field(default=True, sa_column_kwargs=_server_default("allow_fallback"))
    broadcast_id: int | None = Field(default=None, foreign_key="broadcast.id")
    status: str = Field(default=OutboxStatus.QUEUED.value, max_length=16, sa_column_kwargs=_server_default("status"))
    attempts: int = Field(default=0, sa_column_kwargs=_server_default("attempts"))
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    deadline_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    provider_message_id: str | None = Field(default=None, max_length=64, index=True)
    error_code: str | None = Field(default=None, max_length=32)
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class OutboxEvent(SQLModel, table=True):
    """Each transition of an outbox row, with time and reason."""

    __tablename__ = "outbox_event"

    id: int | None = Field(default=None, primary_key=True)
    outbox_id: int = Field(foreign_key="outbox_message.id", index=True)
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str = Field(max_length=16)
    reason: str = ""
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class EarlyReceipt(SQLModel, table=True):
    """A delivery receipt that arrived before the dispatcher recorded the send it is about
    (Twilio can call back within milliseconds; outcomes are written in batches). Applied and
    removed when the send is recorded."""

    __tablename__ = "early_receipt"

    id: int | None = Field(default=None, primary_key=True)
    provider_message_id: str = Field(max_length=64, index=True)
    status: str = Field(max_length=16)
    error_code: str = Field(default="", max_length=16)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class BroadcastStatus(StrEnum):
    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    CANCELLED = "cancelled"
    STOPPED = "stopped"


class Broadcast(SQLModel, table=True):
    __tablename__ = "broadcast"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=200)
    # Either a message template kind, or staff-written text (rendered in the sandbox).
    template_kind: str | None = Field(default=None, max_length=48)
    body: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    audience: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    status: str = Field(default=BroadcastStatus.DRAFT.value, max_length=24)
    created_by: int | None = Field(default=None, foreign_key="staff_user.id")
    approved_by: int | None = Field(default=None, foreign_key="staff_user.id")
    approved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    scheduled_for: datetime | None = Field(default=None, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    stats: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
