"""Staff users and the audit log."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from models.base import JSONType, RedactedJSON, UTCDateTime, utcnow


class Role(StrEnum):
    CASEWORKER = "caseworker"  # reviews applications, answers tickets
    COMPOSER = "composer"  # writes broadcasts
    APPROVER = "approver"  # approves broadcasts written by someone else
    ADMIN = "admin"  # manages staff and imports rolls


class StaffUser(SQLModel, table=True):
    __tablename__ = "staff_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    display_name: str = Field(default="", max_length=100)
    password_hash: str = Field(default="", max_length=256)
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    telegram_chat_id: str | None = Field(default=None, max_length=32)
    district: str | None = Field(default=None, max_length=64)  # community staff's area
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    def has_role(self, role: str) -> bool:
        return role in self.roles or Role.ADMIN.value in self.roles


class AuditLog(SQLModel, table=True):
    """Every staff action (and every state change made on someone's behalf). Details are masked."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    actor: str = Field(max_length=64)  # staff username, "bot", "system", "scheduler", "dispatcher"
    action: str = Field(max_length=64, index=True)
    target_type: str = Field(default="", max_length=32)
    target_id: str = Field(default="", max_length=64)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(RedactedJSON, nullable=False))


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """scrypt, from the standard library: `scrypt$<salt hex>$<hash hex>`."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, salt_hex, _ = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    return hmac.compare_digest(hash_password(password, salt=bytes.fromhex(salt_hex)), stored)
