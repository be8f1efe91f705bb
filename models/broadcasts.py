"""The review trail of a broadcast: each submission, approval and send-back, with its comment.

The broadcast itself is `models.outbox.Broadcast`; its status says where it is now, this
table says how it got there (the author sees why it was sent back, the approver sees what
changed since). Every row also has its audit-log entry.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from models.base import UTCDateTime, utcnow


class ReviewStep(StrEnum):
    SUBMITTED = "submitted"  # the author asks for approval
    EDITED = "edited"  # the author changed it while it waited or after it came back
    APPROVED = "approved"
    SENT_BACK = "sent_back"  # an approver returned it to the author with a comment
    CANCELLED = "cancelled"


class BroadcastReview(SQLModel, table=True):
    __tablename__ = "broadcast_review"

    id: int | None = Field(default=None, primary_key=True)
    broadcast_id: int = Field(foreign_key="broadcast.id", index=True)
    staff_user_id: int | None = Field(default=None, foreign_key="staff_user.id")
    step: str = Field(max_length=16)
    comment: str = Field(default="", max_length=2000)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
