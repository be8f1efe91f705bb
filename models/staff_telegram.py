"""One-time codes that link a staff member's Telegram account to their staff user.

A member asks for a code in the console (`/account/telegram`), then sends `/link CODE` to the
bot from their own Telegram account; the account's user id is then kept on the staff user
(`StaffUser.telegram_chat_id`: in a private chat the chat id is the user id). Only the code's
keyed hash is stored; a code lasts ten minutes and works once.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.base import UTCDateTime, utcnow


class StaffLinkCode(SQLModel, table=True):
    __tablename__ = "staff_link_code"

    id: int | None = Field(default=None, primary_key=True)
    staff_user_id: int = Field(foreign_key="staff_user.id", index=True)
    code_hash: str = Field(max_length=64, index=True)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
