"""Conversation state per (channel, address), the message log and one-time codes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import JSONType, RedactedText, UTCDateTime, utcnow


class Conversation(SQLModel, table=True):
    __tablename__ = "conversation"
    __table_args__ = (UniqueConstraint("channel", "address"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    address: str = Field(max_length=64)
    beneficiary_id: int | None = Field(default=None, foreign_key="beneficiary.id", index=True)
    # When a family member talks for a beneficiary: the relationship, else None.
    acting_as: str | None = Field(default=None, max_length=32)
    language: str | None = Field(default=None, max_length=8)
    flow: str | None = Field(default=None, max_length=64)
    step: str | None = Field(default=None, max_length=64)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    # Previous (flow, step) pairs, for "back".
    history: list[Any] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    version: int = 0  # bumped on every save: optimistic concurrency between processes
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class MessageLog(SQLModel, table=True):
    __tablename__ = "message_log"
    __table_args__ = (
        Index("ix_message_log_conv_time", "channel", "address", "created_at"),
        # The engine answers a provider's message once: a repeat delivery is found by its id.
        Index("ix_message_log_provider_id", "channel", "address", "provider_message_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    address: str = Field(max_length=64)
    direction: str = Field(max_length=3)  # in | out
    text: str = Field(default="", sa_type=RedactedText)  # phone and ID numbers masked at rest
    attachments: list[Any] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    beneficiary_id: int | None = Field(default=None, index=True)
    outbox_id: int | None = Field(default=None)
    provider_message_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class OneTimeCode(SQLModel, table=True):
    """A code sent to prove a phone belongs to the person on the roll. Only its hash is kept."""

    __tablename__ = "one_time_code"
    __table_args__ = (Index("ix_otc_address_time", "channel", "address", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)  # the channel the user is linking
    address: str = Field(max_length=64)
    beneficiary_id: int = Field(foreign_key="beneficiary.id", index=True)
    phone: str = Field(max_length=20)  # where the code was sent (E.164)
    relationship: str | None = Field(default=None, max_length=32)  # set when linking as a proxy
    code_hash: str = Field(max_length=64)
    attempts: int = 0
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
