"""Inbound messages seen, by the provider's own id: one reply however often an update arrives.

Telegram delivers a webhook update again when it got no 200 in time, and with several web
replicas the second delivery may reach another process; Twilio retries an inbound SMS when
told to (connection overrides, a fallback URL). The row is the claim: the process that
inserts (channel, provider_id) handles the message; any other delivery of it finds the row.
A claim is a lease: a process that dies while handling leaves it `handling`, and a delivery
after `lease_until` takes it over, so a crash does not swallow the message.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import UTCDateTime, utcnow


class InboundState(StrEnum):
    HANDLING = "handling"
    DONE = "done"


class InboundReceipt(SQLModel, table=True):
    __tablename__ = "inbound_receipt"
    __table_args__ = (
        UniqueConstraint("channel", "provider_id", name="uq_inbound_receipt_channel_provider_id"),
        Index("ix_inbound_receipt_received_at", "received_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    # Telegram's update_id (per bot), Twilio's MessageSid: never anything personal.
    provider_id: str = Field(max_length=64)
    state: str = Field(default=InboundState.HANDLING.value, max_length=16)
    claimed_by: str = Field(default="", max_length=128)
    lease_until: datetime = Field(sa_type=UTCDateTime)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    done_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
