"""Who is asking, and may they: the console's one role dependency, its cookies and CSRF.

Every console route takes `staff: SignedIn = Depends(require(Role.X, ...))`:
- no live session → `NotSignedIn` (a page asks for sign-in; a GET is redirected to /login);
- a session without any of the roles → `Refused` (403 page, audited as `staff.refused`);
- any method but GET/HEAD must carry the session's CSRF token in a form field named `csrf`
  → else `FormExpired` (400 page that keeps what was typed and offers to send it again).
Administrators pass every role check; `require()` with no roles admits any signed-in member.

The session cookie holds a random secret (its SHA-256 is the `staff_session` row's id):
HTTP-only, SameSite=Lax, Secure and `__Host-` prefixed when the console is served over
https. The sign-in form, before any session exists, is protected by a short-lived random
cookie whose HMAC is the form's CSRF token.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from hashlib import sha256

from fastapi import Request, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from models.actions import audit
from models.db import session_scope
from models.staff import Role, StaffSession, StaffUser
from models.staff_access import AccessPolicy, find_session, session_expired

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf"
PRE_COOKIE = "nuanxin_pre"  # the sign-in form's CSRF seed
LANG_COOKIE = "nuanxin_lang"  # the language before sign-in
TOUCH_EVERY_S = 60  # last_seen_at is written at most once a minute per session


@dataclass(frozen=True)
class SignedIn:
    """The staff member behind this request (read once per request)."""

    user_id: int
    username: str
    name: str
    roles: frozenset[str]
    language: str
    session_id: str
    csrf: str
    flash: str | None

    def has(self, role: Role | str) -> bool:
        return str(role) in self.roles or Role.ADMIN.value in self.roles

    def has_any(self, roles: tuple[Role, ...]) -> bool:
        return not roles or any(self.has(r) for r in roles)


class NotSignedIn(Exception):
    def __init__(self, expired: bool = False) -> None:
        super().__init__("not signed in")
        self.expired = expired


class Refused(Exception):
    def __init__(self, roles: tuple[Role, ...]) -> None:
        super().__init__("refused")
        self.roles = roles


class FormExpired(Exception):
    pass


def policy(request: Request) -> AccessPolicy:
    found = getattr(request.app.state, "access_policy", None)
    return found if isinstance(found, AccessPolicy) else AccessPolicy()


def secure_cookies(request: Request) -> bool:
    return str(request.app.state.settings.public_base_url).startswith("https://")


def session_cookie_name(request: Request) -> str:
    return "__Host-nuanxin" if secure_cookies(request) else "nuanxin_session"


def client_address(request: Request) -> str:
    return request.client.host if request.client else "?"


def set_session_cookie(request: Request, response: Response, secret: str) -> None:
    response.set_cookie(session_cookie_name(request), secret, httponly=True, samesite="lax", path="/",
                        secure=secure_cookies(request))


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(session_cookie_name(request), path="/", httponly=True, samesite="lax",
                           secure=secure_cookies(request))


def _load(request: Request) -> SignedIn | None | bool:
    """The signed-in member, None for a stranger, False for a session that ran out of time."""
    secret = request.cookies.get(session_cookie_name(request), "")
    if not secret:
        return None
    now = request.app.state.clock.now()
    # Immediate: reading the session may touch it (last seen, a flash shown once), a write.
    with session_scope(request.app.state.engine, immediate=True) as db:
        found = find_session(db, secret, now=now, policy=policy(request))
        if found is None:
            return False if session_expired(db, secret, now=now, policy=policy(request)) else None
        row, user = found
        shown = None
        if row.flash and request.method in SAFE_METHODS:
            shown, row.flash = row.flash, None  # shown on this page, once
            db.add(row)
        if (now - row.last_seen_at).total_seconds() >= TOUCH_EVERY_S:
            row.last_seen_at = now
            db.add(row)
        assert user.id is not None  # a stored account
        return SignedIn(user_id=user.id, username=user.username, name=user.shown_name, roles=frozenset(user.roles),
                        language=user.language, session_id=row.id, csrf=row.csrf_token, flash=shown)


async def current_staff(request: Request) -> SignedIn | None:
    """The signed-in member of this request, or None (cached on the request)."""
    if not hasattr(request.state, "staff"):
        loaded = await run_in_threadpool(_load, request)
        request.state.session_expired = loaded is False
        request.state.staff = loaded if isinstance(loaded, SignedIn) else None
    staff = request.state.staff
    return staff if isinstance(staff, SignedIn) else None


async def _form_token(request: Request) -> str:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return ""
    form = await request.form()
    value = form.get(CSRF_FIELD)
    return value if isinstance(value, str) else ""


def _audit_refusal(request: Request, staff: SignedIn, roles: tuple[Role, ...]) -> None:
    with session_scope(request.app.state.engine) as db:
        audit(db, staff.username, "staff.refused", "staff_user", staff.user_id,
              {"method": request.method, "path": request.url.path[:200], "needs": [str(r) for r in roles]},
              request.app.state.clock.now())


def require(*roles: Role) -> Callable[[Request], Awaitable[SignedIn]]:
    """The dependency every console route declares: signed in, one of `roles`, CSRF on changes."""

    async def dependency(request: Request) -> SignedIn:
        staff = await current_staff(request)
        if staff is None:
            raise NotSignedIn(expired=bool(getattr(request.state, "session_expired", False)))
        if not staff.has_any(roles):
            await run_in_threadpool(_audit_refusal, request, staff, roles)
            raise Refused(roles)
        if request.method not in SAFE_METHODS:
            token = await _form_token(request)
            if not token or not hmac.compare_digest(token, staff.csrf):
                raise FormExpired()
        return staff

    dependency.roles = roles  # type: ignore[attr-defined]  # read by the test that walks every route
    return dependency


# --------------------------------------------------------------------------- before sign-in

def _pre_token(request: Request, seed: str) -> str:
    key = str(request.app.state.settings.web_session_secret).encode()
    return hmac.new(key, f"sign-in:{seed}".encode(), sha256).hexdigest()


def pre_session_token(request: Request, response_cookies: dict[str, str]) -> str:
    """The sign-in form's CSRF token; sets the seed cookie when the browser has none."""
    seed = request.cookies.get(PRE_COOKIE, "")
    if len(seed) < 16:
        seed = secrets.token_urlsafe(24)
        response_cookies[PRE_COOKIE] = seed
    return _pre_token(request, seed)


def check_pre_session_token(request: Request, token: str) -> bool:
    seed = request.cookies.get(PRE_COOKIE, "")
    return bool(seed and token) and hmac.compare_digest(token, _pre_token(request, seed))


def set_pre_cookie(request: Request, response: Response, seed: str) -> None:
    response.set_cookie(PRE_COOKIE, seed, httponly=True, samesite="lax", path="/", max_age=3600,
                        secure=secure_cookies(request))


# --------------------------------------------------------------------------- flash messages

def flash(request: Request, staff: SignedIn, text: str) -> None:
    """One message for the next page this member opens (shown once). Call it outside any open
    transaction: it writes in one of its own."""
    with session_scope(request.app.state.engine) as db:
        row = db.get(StaffSession, staff.session_id)
        if row is not None:
            row.flash = text[:500]
            db.add(row)


def staff_user(db: Session, staff: SignedIn) -> StaffUser:
    user = db.get(StaffUser, staff.user_id)
    assert user is not None  # the session was checked at the start of this request
    return user
