"""Who may act as a staff member: sign-in with limits, server-side sessions, personal tokens,
and the account changes an administrator makes (each audited).

Used by the web console and the command line alike, so that both follow one rule:
- Sign-in is limited per account and per address: after `per_account` wrong passwords for
  one name within `window`, every further try for that name is refused until the window has
  passed, even with the right password; the same for `per_address` wrong passwords from one
  address. Unknown names are checked against a dummy hash, so the answer takes as long.
- Each wrong password writes one audit row (`staff.login_failed`); refusals while locked
  write one `staff.login_locked` row per lock, not one per try, so a flood of attempts
  cannot push real entries out of the audit log.
- A session is valid while not revoked, used within the idle timeout and younger than its
  absolute limit; sign-out, a password change, a reset, a role change and deactivation
  revoke it on the server (the cookie alone is worth nothing afterwards).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, func, update
from sqlmodel import Session, col, select

from models.actions import audit
from models.staff import (
    Role,
    SignInAttempt,
    StaffLanguage,
    StaffSession,
    StaffToken,
    StaffUser,
    check_password,
    dummy_hash,
    hash_password,
    password_needs_rehash,
    secret_digest,
)

MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "nxt_"


@dataclass(frozen=True)
class AccessPolicy:
    per_account: int = 10  # wrong passwords per name within the window
    per_address: int = 30  # wrong passwords per address within the window
    window: timedelta = timedelta(minutes=1)
    idle: timedelta = timedelta(minutes=60)  # a session unused this long is over
    absolute: timedelta = timedelta(hours=12)  # and none lasts longer than this
    token_days: int = 90


class SignInRefusal(StrEnum):
    WRONG = "wrong"  # unknown name, wrong password or inactive account: one answer for all three
    LOCKED = "locked"  # too many wrong passwords for this name or from this address


@dataclass(frozen=True)
class SignInResult:
    """Either the staff member, or why not. The attempt is written in the caller's transaction,
    which commits in both cases (a refusal is as much worth keeping as a success)."""

    user: StaffUser | None
    refusal: SignInRefusal | None = None


class AccountError(ValueError):
    """An account change that cannot be made; the message says why in plain words."""


def normalise_username(username: str) -> str:
    return username.strip().lower()[:64]


def _failures(session: Session, column: object, value: str, since: datetime) -> int:
    return int(session.exec(select(func.count()).select_from(SignInAttempt).where(
        column == value, SignInAttempt.outcome == SignInRefusal.WRONG.value,  # type: ignore[arg-type]
        col(SignInAttempt.at) >= since)).one())


def sign_in(session: Session, *, username: str, password: str, address: str, now: datetime,
            policy: AccessPolicy = AccessPolicy()) -> SignInResult:
    """Check a name and password under the limits. Writes the attempt (and its audit row for a
    refusal) in the caller's transaction."""
    name = normalise_username(username)
    address = (address or "?")[:64]
    since = now - policy.window
    session.execute(delete(SignInAttempt).where(col(SignInAttempt.at) < now - timedelta(days=1)))
    locked = (_failures(session, SignInAttempt.username, name, since) >= policy.per_account
              or _failures(session, SignInAttempt.address, address, since) >= policy.per_address)
    user = session.exec(select(StaffUser).where(func.lower(StaffUser.username) == name)).first() if name else None
    # Always one argon2 check, whatever the name and the lock: the same time for every answer.
    stored = user.password_hash if user is not None else dummy_hash()
    matches = check_password(password, stored)
    if locked:
        already = session.exec(select(SignInAttempt.id).where(
            SignInAttempt.username == name, SignInAttempt.outcome == SignInRefusal.LOCKED.value,
            col(SignInAttempt.at) >= since)).first()
        session.add(SignInAttempt(username=name, address=address, outcome=SignInRefusal.LOCKED.value, at=now))
        if already is None:
            audit(session, name or "?", "staff.login_locked", "staff_user", user.id if user else "",
                  {"ip": address}, now)
        return SignInResult(None, SignInRefusal.LOCKED)
    if user is None or not user.active or not matches:
        session.add(SignInAttempt(username=name, address=address, outcome=SignInRefusal.WRONG.value, at=now))
        audit(session, name or "?", "staff.login_failed", "staff_user", user.id if user else "",
              {"ip": address}, now)
        return SignInResult(None, SignInRefusal.WRONG)
    session.add(SignInAttempt(username=name, address=address, outcome="ok", at=now))
    if password_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        audit(session, user.username, "staff.password_upgraded", "staff_user", user.id, {}, now)
    user.last_sign_in_at = now
    session.add(user)
    return SignInResult(user)


# --------------------------------------------------------------------------- sessions

@dataclass(frozen=True)
class NewSession:
    secret: str  # goes into the cookie, never stored
    row: StaffSession


def start_session(session: Session, user: StaffUser, *, now: datetime, address: str = "",
                  user_agent: str = "") -> NewSession:
    assert user.id is not None  # a stored account
    secret = secrets.token_urlsafe(32)
    row = StaffSession(id=secret_digest(secret), staff_id=user.id, csrf_token=secrets.token_urlsafe(32),
                       created_at=now, last_seen_at=now, address=address[:64], user_agent=user_agent[:200])
    session.add(row)
    audit(session, user.username, "staff.login", "staff_user", user.id, {"ip": address[:64]}, now)
    return NewSession(secret, row)


def find_session(session: Session, secret: str, *, now: datetime,
                 policy: AccessPolicy = AccessPolicy()) -> tuple[StaffSession, StaffUser] | None:
    """The live session for a cookie's secret, with its active staff member, or None."""
    if not secret:
        return None
    row = session.get(StaffSession, secret_digest(secret))
    if row is None or row.revoked_at is not None:
        return None
    if now - row.last_seen_at > policy.idle or now - row.created_at > policy.absolute:
        return None
    user = session.get(StaffUser, row.staff_id)
    if user is None or not user.active:
        return None
    return row, user


def session_expired(session: Session, secret: str, *, now: datetime, policy: AccessPolicy = AccessPolicy()) -> bool:
    """True when the cookie names a session that ran out of time (not one that was revoked)."""
    row = session.get(StaffSession, secret_digest(secret)) if secret else None
    return (row is not None and row.revoked_at is None
            and (now - row.last_seen_at > policy.idle or now - row.created_at > policy.absolute))


def end_session(session: Session, row: StaffSession, *, actor: str, now: datetime) -> None:
    row.revoked_at = now
    row.revoked_reason = "signed_out"
    session.add(row)
    audit(session, actor, "staff.logout", "staff_user", row.staff_id, {}, now)


def revoke_sessions(session: Session, staff_id: int, *, reason: str, now: datetime) -> int:
    """Revoke every live session of a staff member."""
    result = session.execute(update(StaffSession).where(
        col(StaffSession.staff_id) == staff_id, col(StaffSession.revoked_at).is_(None))
        .values(revoked_at=now, revoked_reason=reason[:32]))
    return int(getattr(result, "rowcount", 0) or 0)


# --------------------------------------------------------------------------- personal tokens

def issue_token(session: Session, user: StaffUser, *, label: str, now: datetime,
                policy: AccessPolicy = AccessPolicy()) -> str:
    """A personal token for the command line; shown once, stored as its SHA-256."""
    assert user.id is not None  # a stored account
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = StaffToken(staff_id=user.id, label=label.strip()[:100], token_hash=secret_digest(secret),
                     hint=secret[-4:], created_at=now, expires_at=now + timedelta(days=policy.token_days))
    session.add(row)
    session.flush()
    audit(session, user.username, "staff.token_issued", "staff_token", row.id, {"label": row.label}, now)
    return secret


def revoke_token(session: Session, user: StaffUser, token_id: int, *, now: datetime) -> bool:
    row = session.get(StaffToken, token_id)
    if row is None or row.staff_id != user.id or row.revoked_at is not None:
        return False
    row.revoked_at = now
    session.add(row)
    audit(session, user.username, "staff.token_revoked", "staff_token", row.id, {"label": row.label}, now)
    return True


def user_for_token(session: Session, token: str, *, now: datetime) -> StaffUser | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = session.exec(select(StaffToken).where(StaffToken.token_hash == secret_digest(token.strip()))).first()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    user = session.get(StaffUser, row.staff_id)
    if user is None or not user.active:
        return None
    row.last_used_at = now
    session.add(row)
    return user


# --------------------------------------------------------------------------- accounts

def check_new_password(password: str, username: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"密码至少要 {MIN_PASSWORD_LENGTH} 个字符 (at least {MIN_PASSWORD_LENGTH} characters)")
    if password.strip().lower() == username.strip().lower():
        raise AccountError("密码不能和用户名一样 (the password cannot be the username)")


def check_roles(roles: list[str]) -> list[str]:
    known = {r.value for r in Role}
    bad = [r for r in roles if r not in known]
    if bad:
        raise AccountError(f"unknown role(s): {', '.join(bad)} (choose from {', '.join(r.value for r in Role)})")
    if not roles:
        raise AccountError("至少选一个角色 (choose at least one role)")
    return sorted(set(roles), key=[r.value for r in Role].index)


def create_staff(session: Session, *, username: str, password: str, roles: list[str], actor: str, now: datetime,
                 display_name: str = "", district: str | None = None) -> StaffUser:
    name = username.strip()
    if not name or len(name) > 64 or any(c.isspace() for c in name):
        raise AccountError("用户名不能为空、不能有空格，最多 64 个字符 (a username: no spaces, at most 64 characters)")
    if session.exec(select(StaffUser).where(func.lower(StaffUser.username) == name.lower())).first():
        raise AccountError(f"用户名 {name} 已经有人用了 (staff user {name} already exists)")
    roles = check_roles(roles)
    check_new_password(password, name)
    user = StaffUser(username=name, display_name=display_name.strip()[:100], roles=roles, district=district,
                     password_hash=hash_password(password), password_changed_at=now, created_at=now,
                     language=StaffLanguage.ZH_HANS.value)
    session.add(user)
    session.flush()
    audit(session, actor, "staff.create", "staff_user", user.id, {"username": name, "roles": roles}, now)
    return user


def set_roles(session: Session, user: StaffUser, roles: list[str], *, actor: str, now: datetime) -> None:
    roles = check_roles(roles)
    if actor == user.username and Role.ADMIN.value in user.roles and Role.ADMIN.value not in roles:
        raise AccountError("不能取消自己的管理员角色 (you cannot remove your own admin role)")
    before = list(user.roles)
    user.roles = roles
    session.add(user)
    assert user.id is not None  # a stored account
    revoke_sessions(session, user.id, reason="roles_changed", now=now)
    audit(session, actor, "staff.roles", "staff_user", user.id, {"username": user.username, "from": before,
                                                               "to": roles}, now)


def set_active(session: Session, user: StaffUser, active: bool, *, actor: str, now: datetime) -> None:
    if not active and actor == user.username:
        raise AccountError("不能停用自己的账号 (you cannot deactivate your own account)")
    if user.active == active:
        return
    user.active = active
    session.add(user)
    assert user.id is not None  # a stored account
    if not active:
        revoke_sessions(session, user.id, reason="deactivated", now=now)
        session.execute(update(StaffToken).where(col(StaffToken.staff_id) == user.id,
                                                 col(StaffToken.revoked_at).is_(None)).values(revoked_at=now))
    audit(session, actor, "staff.activate" if active else "staff.deactivate", "staff_user", user.id,
          {"username": user.username}, now)


def set_password(session: Session, user: StaffUser, password: str, *, actor: str, now: datetime) -> None:
    """A new password (own change or an administrator's reset): every session of the account ends."""
    check_new_password(password, user.username)
    user.password_hash = hash_password(password)
    user.password_changed_at = now
    session.add(user)
    assert user.id is not None  # a stored account
    revoke_sessions(session, user.id, reason="password_changed", now=now)
    action = "staff.password_changed" if actor == user.username else "staff.password_reset"
    audit(session, actor, action, "staff_user", user.id, {"username": user.username}, now)


def set_language(session: Session, user: StaffUser, language: str, *, now: datetime) -> None:
    if language not in {x.value for x in StaffLanguage}:
        raise AccountError(f"unknown language {language!r}")
    if user.language != language:
        user.language = language
        session.add(user)
        audit(session, user.username, "staff.language", "staff_user", user.id, {"language": language}, now)
