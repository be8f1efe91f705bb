"""Staff accounts, their sign-in sessions and personal tokens, sign-in attempts, the audit log.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's low-memory profile);
hashes from before (`scrypt$salt$hash`) are still checked and upgraded at the next sign-in.
Session and token secrets are random and only their SHA-256 is stored: a copy of the
database does not let anyone sign in.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from argon2 import Parameters, PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Column, Index
from sqlmodel import Field, SQLModel

from models.base import JSONType, RedactedJSON, UTCDateTime, utcnow


class Role(StrEnum):
    VIEWER = "viewer"  # reads casework: people, applications, tickets, tasks
    CASEWORKER = "caseworker"  # reviews applications, answers tickets, verifies reports, closes tasks
    COMPOSER = "composer"  # writes broadcasts
    APPROVER = "approver"  # approves broadcasts written by someone else
    ADMIN = "admin"  # manages staff, imports rolls, reads the audit log


class StaffLanguage(StrEnum):
    ZH_HANS = "zh-Hans"
    EN = "en"


class StaffUser(SQLModel, table=True):
    __tablename__ = "staff_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    display_name: str = Field(default="", max_length=100)
    password_hash: str = Field(default="", max_length=256)
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    telegram_chat_id: str | None = Field(default=None, max_length=32)
    district: str | None = Field(default=None, max_length=64)  # community staff's area
    language: str = Field(default=StaffLanguage.ZH_HANS.value, max_length=8)  # the console's language
    active: bool = True
    password_changed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_sign_in_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    def has_role(self, role: str) -> bool:
        return role in self.roles or Role.ADMIN.value in self.roles

    @property
    def shown_name(self) -> str:
        return self.display_name or self.username


class StaffSession(SQLModel, table=True):
    """A signed-in browser. The cookie holds a random secret; this row holds its SHA-256.

    Valid while not revoked, used within the idle timeout and younger than the absolute
    limit; revoked at sign-out, password change, deactivation and role change."""

    __tablename__ = "staff_session"
    __table_args__ = (Index("ix_staff_session_staff", "staff_id", "revoked_at"),)

    id: str = Field(primary_key=True, max_length=64)  # sha256 of the cookie's secret
    staff_id: int = Field(foreign_key="staff_user.id")
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=UTCDateTime)
    last_seen_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_reason: str | None = Field(default=None, max_length=32)
    address: str = Field(default="", max_length=64)  # where it signed in from
    user_agent: str = Field(default="", max_length=200)
    flash: str | None = Field(default=None, max_length=500)  # one message for the next page


class StaffToken(SQLModel, table=True):
    """A personal token a staff member issues in the console for the command line."""

    __tablename__ = "staff_token"

    id: int | None = Field(default=None, primary_key=True)
    staff_id: int = Field(foreign_key="staff_user.id", index=True)
    label: str = Field(default="", max_length=100)
    token_hash: str = Field(max_length=64, unique=True)
    hint: str = Field(default="", max_length=16)  # the last characters, to tell tokens apart
    created_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SignInAttempt(SQLModel, table=True):
    """Every sign-in try (console and command line), for the per-account and per-address limits."""

    __tablename__ = "sign_in_attempt"
    __table_args__ = (
        Index("ix_sign_in_attempt_name", "username", "at"),
        Index("ix_sign_in_attempt_address", "address", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64)  # as typed (trimmed, lower-cased, cut to 64)
    address: str = Field(max_length=64)  # client address, or "cli"
    outcome: str = Field(max_length=16)  # ok | wrong | locked
    at: datetime = Field(sa_type=UTCDateTime, index=True)


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


# --------------------------------------------------------------------------- passwords

# argon2-cffi's default profile (RFC 9106, low memory: 64 MiB, 3 passes). The test suite swaps
# in argon2-cffi's CHEAPEST profile (same algorithm and code path, a thousandth of the cost).
HASH_PROFILE: Parameters = profiles.RFC_9106_LOW_MEMORY


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher.from_parameters(HASH_PROFILE)


def use_hash_profile(profile: Parameters) -> None:
    """Hash with other argon2 parameters from now on (the test suite's cheap profile)."""
    global HASH_PROFILE
    HASH_PROFILE = profile
    _hasher.cache_clear()
    dummy_hash.cache_clear()


def hash_password(password: str) -> str:
    """argon2id with HASH_PROFILE's parameters."""
    return _hasher().hash(password)


def _check_scrypt(password: str, stored: str) -> bool:
    """Hashes written before argon2: `scrypt$<salt hex>$<hash hex>` (n=2**14, r=8, p=1)."""
    try:
        _, salt_hex, digest_hex = stored.split("$")
        salt, digest = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)
    except ValueError:
        return False
    candidate = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return hmac.compare_digest(candidate, digest)


def check_password(password: str, stored: str) -> bool:
    """True when `password` matches `stored` (argon2, or an old scrypt hash)."""
    if stored.startswith("scrypt$"):
        return _check_scrypt(password, stored)
    if not stored.startswith("$argon2"):
        return False
    try:
        return bool(_hasher().verify(stored, password))
    except (VerificationError, InvalidHashError):
        return False


def password_needs_rehash(stored: str) -> bool:
    """An old scheme, or argon2 with weaker parameters than today's: hash again at sign-in."""
    if not stored.startswith("$argon2"):
        return True
    try:
        return bool(_hasher().check_needs_rehash(stored))
    except InvalidHashError:
        return True


@lru_cache(maxsize=1)
def dummy_hash() -> str:
    """Checked against when the name is unknown, so that the answer takes as long as for a known one."""
    return hash_password("no such staff member: this hash only spends the same time")


def secret_digest(secret: str) -> str:
    """What is stored for a session cookie or a personal token (high-entropy secrets: SHA-256 suffices)."""
    return hashlib.sha256(secret.encode()).hexdigest()
