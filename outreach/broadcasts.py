"""Broadcasts: compose, preview, approve (four eyes), schedule or send, cancel or stop, follow.

Lifecycle (models.outbox.BroadcastStatus):
  create ─► draft ─submit─► pending_approval ─approve (a different approver)─► approved ─send─► sending ─► sent
            ▲                      │
            └── send back (an approver, with a comment; the author edits and submits again)
                                              └─ scheduled_for set ─► scheduled ─(due: the scheduler's
                                                 minute poll)─► sending
  cancel: before sending (pending/approved/scheduled) ─► cancelled
  stop:   while sending or after (queued rows not yet claimed ─► cancelled) ─► stopped
"sent" means every recipient is in the outbox; `broadcast_status` follows the delivery.

Every staff action writes an audit row; submissions, approvals and send-backs also a
`models.broadcasts.BroadcastReview` row (the comment the author reads). Enqueueing is in batches (5,000 by default), each
committed, each keyed per broadcast and recipient: a crash mid-way is resumed by the
scheduler's poll (status sending, not finished) and queues nobody twice; a stop between two
batches ends the loop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select
from sqlmodel import Session, col

from models.actions import audit
from models.broadcasts import BroadcastReview, ReviewStep
from models.clock import Clock
from models.db import read_scope, session_scope
from models.outbox import Broadcast, BroadcastStatus, OutboxMessage, OutboxStatus
from models.people import Contact
from models.phone import mask_phone
from models.staff import Role, StaffUser
from outreach.audiences import AudienceFilter, audience_recipients, audience_size
from outreach.outbox import enqueue_many, idempotency_key, move_where

BROADCAST_KIND = "staff_broadcast"
TEMPLATE_CONTEXT = "_context"  # body key holding a template broadcast's fixed values (JSON)


class BroadcastRefused(PermissionError):
    """A staff action is not allowed: the message says why (role, four eyes, state)."""


def _need(user: StaffUser, *roles: str) -> None:
    if not user.active or not any(user.has_role(r) for r in roles):
        raise BroadcastRefused(f"{user.username} needs the {' or '.join(roles)} role")


def _state(b: Broadcast, *allowed: BroadcastStatus) -> None:
    if b.status not in {s.value for s in allowed}:
        raise BroadcastRefused(f"broadcast {b.id} is {b.status}; needs {' or '.join(s.value for s in allowed)}")


def occurrence(broadcast_id: int) -> str:
    return f"broadcast-{broadcast_id}"


# What a broadcast offers on Telegram: the global words the engine knows, one tap each
# (the SMS version ends with 回复TD退订 instead).
_BUTTONS: dict[str, tuple[tuple[str, str], ...]] = {
    "zh-Hans": (("主菜单", "菜单"), ("不再接收通知", "退订")),
    "zh-Hant": (("主選單", "菜单"), ("不再接收通知", "退订")),
    "en": (("Main menu", "menu"), ("Stop notifications", "stop")),
}


def telegram_buttons(lang: str) -> list[list[dict[str, str]]]:
    """The buttons under a broadcast on Telegram, one per row (`extra["buttons"]`)."""
    return [[{"text": text, "data": data}] for text, data in _BUTTONS.get(lang, _BUTTONS["zh-Hans"])]


def check_send_time(at: datetime | None, *, now: datetime, settings: Any = None) -> None:
    """A scheduled time must be in the future, within a year, and (in office time) outside the
    SMS quiet hours, when nobody should be woken by a notice."""
    if at is None:
        return
    if at.tzinfo is None:
        raise BroadcastRefused("the sending time needs a time zone (office time)")
    if at <= now:
        raise BroadcastRefused("发送时间已过 / the sending time has passed")
    if at - now > timedelta(days=366):
        raise BroadcastRefused("发送时间太远，最多一年内 / the sending time is more than a year ahead")
    if settings is not None:
        local = at.astimezone(settings.tz).time()
        start, end = settings.quiet_hours_start, settings.quiet_hours_end
        quiet = (start <= local or local < end) if start > end else (start <= local < end)
        if quiet:
            raise BroadcastRefused(f"{local:%H:%M} 在免打扰时段（{start:%H:%M}–{end:%H:%M}）内 / "
                                   f"{local:%H:%M} is within quiet hours ({start:%H:%M}–{end:%H:%M})")


def _review(session: Session, b: Broadcast, user: StaffUser, step: ReviewStep, now: datetime,
            comment: str = "") -> None:
    assert b.id is not None  # flushed before any review is written
    session.add(BroadcastReview(broadcast_id=b.id, staff_user_id=user.id, step=step.value, comment=comment, at=now))


def _refuse_too_long_sms(staff_text: Any, templates: Any) -> None:
    """Before approval: the SMS of every language, framed and with its footer, for a typical
    recipient, must fit the segment cap (a person on Telegram may get it by SMS as a fallback)."""
    from outreach.sms_text import MessageTooLong

    sample = {"name": "张建国", "salutation": "张伯", "district": "", "street": "", "community": ""}
    for lang in sorted({"zh-Hans", *staff_text.languages}):
        try:
            templates.render_staff(staff_text, lang, sample, "sms")
        except MessageTooLong as exc:
            raise BroadcastRefused(f"refused: [{lang}] {exc}") from None


def _body(text: str | dict[str, str] | None, template_kind: str | None, template_context: dict[str, Any] | None,
          templates: Any) -> dict[str, str]:
    """The stored body: staff text per language (checked in the sandbox), or a template kind's values."""
    from outreach.templates import StaffTextError, compile_staff_text, default_templates

    if (text is None) == (template_kind is None):
        raise BroadcastRefused("give either the text or a template kind")
    if text is not None:
        try:
            staff_text = compile_staff_text(text)
        except StaffTextError as exc:
            raise BroadcastRefused("; ".join(exc.problems)) from None
        _refuse_too_long_sms(staff_text, templates or default_templates())
        return {"zh-Hans": text} if isinstance(text, str) else {k: v for k, v in text.items() if v and v.strip()}
    assert template_kind is not None  # exactly one of text and template kind, checked above
    ts = templates or default_templates()
    spec = ts.kinds.get(template_kind)
    if spec is None or spec.audience != "beneficiary" or template_kind in ("otp", BROADCAST_KIND):
        raise BroadcastRefused(f"{template_kind!r} is not a message kind that can be broadcast")
    missing = set(spec.variables) - {"salutation"} - set(template_context or {})
    if missing:
        raise BroadcastRefused(f"{template_kind} needs {', '.join(sorted(missing))}")
    return {TEMPLATE_CONTEXT: json.dumps(template_context or {}, ensure_ascii=False, default=str)}


# --- compose -----------------------------------------------------------------------------

def create_broadcast(session: Session, *, author: StaffUser, title: str, audience: AudienceFilter | dict[str, Any],
                     text: str | dict[str, str] | None = None, template_kind: str | None = None,
                     template_context: dict[str, Any] | None = None, scheduled_for: datetime | None = None,
                     now: datetime, templates: Any = None, settings: Any = None, submit: bool = True) -> Broadcast:
    """A composer writes text (checked in the sandbox) or picks a template kind. Submitted, it
    waits for approval; otherwise it stays a draft its author can edit and submit later."""
    _need(author, Role.COMPOSER.value)
    audience = audience if isinstance(audience, AudienceFilter) else AudienceFilter.model_validate(audience)
    if not title.strip():
        raise BroadcastRefused("请写一个标题 / give the broadcast a title")
    body = _body(text, template_kind, template_context, templates)
    check_send_time(scheduled_for, now=now, settings=settings)
    status = BroadcastStatus.PENDING_APPROVAL if submit else BroadcastStatus.DRAFT
    b = Broadcast(title=title.strip()[:200], template_kind=template_kind, body=body,
                  audience=audience.model_dump(exclude_defaults=True), status=status.value,
                  created_by=author.id, scheduled_for=scheduled_for, created_at=now, stats={})
    session.add(b)
    session.flush()
    audit(session, author.username, "broadcast.create", "broadcast", b.id,
          {"title": b.title, "audience": b.audience, "template_kind": template_kind, "status": b.status}, now)
    if submit:
        _review(session, b, author, ReviewStep.SUBMITTED, now)
    return b


def update_broadcast(session: Session, b: Broadcast, *, actor: StaffUser, title: str,
                     audience: AudienceFilter | dict[str, Any], text: str | dict[str, str] | None = None,
                     template_kind: str | None = None, template_context: dict[str, Any] | None = None,
                     scheduled_for: datetime | None = None, now: datetime, templates: Any = None,
                     settings: Any = None) -> Broadcast:
    """Change a broadcast before it is approved (a draft, one sent back, or one waiting).
    Once approved it is what the approver saw: cancel it and write a new one instead."""
    _need(actor, Role.COMPOSER.value)
    _state(b, BroadcastStatus.DRAFT, BroadcastStatus.PENDING_APPROVAL)
    audience = audience if isinstance(audience, AudienceFilter) else AudienceFilter.model_validate(audience)
    if not title.strip():
        raise BroadcastRefused("请写一个标题 / give the broadcast a title")
    body = _body(text, template_kind, template_context, templates)
    check_send_time(scheduled_for, now=now, settings=settings)
    changed = sorted(k for k, old, new in (
        ("title", b.title, title.strip()[:200]), ("audience", b.audience, audience.model_dump(exclude_defaults=True)),
        ("body", b.body, body), ("template_kind", b.template_kind, template_kind),
        ("scheduled_for", b.scheduled_for, scheduled_for)) if old != new)
    b.title = title.strip()[:200]
    b.audience = audience.model_dump(exclude_defaults=True)
    b.body = body
    b.template_kind = template_kind
    b.scheduled_for = scheduled_for
    session.add(b)
    audit(session, actor.username, "broadcast.edit", "broadcast", b.id, {"changed": changed}, now)
    _review(session, b, actor, ReviewStep.EDITED, now, "、".join(changed))
    return b


def submit_broadcast(session: Session, b: Broadcast, *, actor: StaffUser, now: datetime,
                     settings: Any = None) -> Broadcast:
    """Ask for approval (a draft, or one that was sent back and edited)."""
    _need(actor, Role.COMPOSER.value)
    _state(b, BroadcastStatus.DRAFT)
    check_send_time(b.scheduled_for, now=now, settings=settings)
    b.status = BroadcastStatus.PENDING_APPROVAL.value
    session.add(b)
    audit(session, actor.username, "broadcast.submit", "broadcast", b.id, {}, now)
    _review(session, b, actor, ReviewStep.SUBMITTED, now)
    return b


def send_back_broadcast(session: Session, b: Broadcast, *, approver: StaffUser, comment: str,
                        now: datetime) -> Broadcast:
    """An approver returns it to its author with a comment saying what to change."""
    _need(approver, Role.APPROVER.value)
    _state(b, BroadcastStatus.PENDING_APPROVAL)
    if not comment.strip():
        raise BroadcastRefused("退回时请写明原因 / say what should change when sending it back")
    if approver.id == b.created_by:
        raise BroadcastRefused("four eyes: the author cannot review their own broadcast")
    b.status = BroadcastStatus.DRAFT.value
    session.add(b)
    audit(session, approver.username, "broadcast.send_back", "broadcast", b.id, {"comment": comment.strip()[:500]},
          now)
    _review(session, b, approver, ReviewStep.SENT_BACK, now, comment.strip()[:2000])
    return b


def reviews(session: Session, broadcast_id: int) -> list[BroadcastReview]:
    """The broadcast's review trail, oldest first."""
    return list(session.execute(select(BroadcastReview).where(col(BroadcastReview.broadcast_id) == broadcast_id)
                                .order_by(col(BroadcastReview.at), col(BroadcastReview.id))).scalars())


def _renderer(b: Broadcast, templates: Any) -> Any:
    """(recipient, channel=its own) -> (text, segments) for this broadcast, compiled once per
    language and channel."""
    from outreach.templates import compile_staff_text

    cache: dict[tuple[str, str], Any] = {}
    if b.template_kind is None:
        staff_text = compile_staff_text(b.body)
        used: dict[str, tuple[str, ...]] = {}
        # Texts depend only on the placeholders the staff text uses: thousands of people share
        # a salutation and a community, so each distinct text is rendered once.
        texts: dict[tuple[Any, ...], tuple[str, int]] = {}

        def render(r: Any, channel: str | None = None) -> tuple[str, int]:
            lang = templates.language(r.lang)
            channel = channel or r.channel
            names = used.get(lang)
            if names is None:
                names = used[lang] = tuple(sorted(staff_text.placeholders(lang)))
            key = (lang, channel, *(r.values.get(n) for n in names))
            hit = texts.get(key)
            if hit is None:
                fn = cache.get((lang, channel))
                if fn is None:
                    fn = cache[(lang, channel)] = templates.broadcast_renderer(staff_text, lang, channel)
                out = fn(r.values)
                hit = texts[key] = (out.text, out.sms.segments if out.sms else 1)
            return hit
        return render
    fixed = json.loads(b.body.get(TEMPLATE_CONTEXT, "{}"))
    rendered: dict[tuple[str, str, str], tuple[str, int]] = {}  # (language, channel, salutation) -> (text, segments)

    def render_template(r: Any, channel: str | None = None) -> tuple[str, int]:
        lang = templates.language(r.lang)
        channel = channel or r.channel
        key = (lang, channel, r.values["salutation"])
        hit = rendered.get(key)
        if hit is None:
            out = templates.render(b.template_kind, lang, {**fixed, "salutation": r.values["salutation"]}, channel)
            hit = rendered[key] = (out.text, out.sms.segments if out.sms else 1)
        return hit
    return render_template


# --- preview -----------------------------------------------------------------------------

@dataclass
class Preview:
    size: dict[str, Any]
    samples: list[dict[str, Any]] = field(default_factory=list)  # real recipients, each language
    sms: dict[str, dict[str, Any]] = field(default_factory=dict)  # per language: encoding, characters, segments
    telegram_messages: int = 0
    sms_messages: int = 0
    sms_segments: int = 0
    seconds: float = 0.0  # how long sending takes under the provider limits

    def as_dict(self) -> dict[str, Any]:
        return {"size": self.size, "samples": self.samples, "sms": self.sms, "telegram_messages": self.telegram_messages,
                "sms_messages": self.sms_messages, "sms_segments": self.sms_segments,
                "estimated_seconds": round(self.seconds, 1)}


def preview_broadcast(session: Session, b: Broadcast, *, settings: Any, now: datetime, templates: Any = None,
                      samples_per_language: int = 2) -> Preview:
    """Size first (the excluded counted), then the text for real recipients in each language,
    the SMS encoding and segments, the cost in segments and the time the send will take."""
    from outreach.sms_text import sms_length
    from outreach.templates import default_templates

    ts = templates or default_templates()
    today = now.astimezone(settings.tz).date()
    f = AudienceFilter.model_validate(b.audience)
    size = audience_size(session, f, today)
    out = Preview(size=size.as_dict())
    render = _renderer(b, ts)
    for r in audience_recipients(session, f, today, sample_per_language=samples_per_language):
        text, segments = render(r)
        out.samples.append({"beneficiary_id": r.beneficiary_id, "language": r.lang, "channel": r.channel,
                            "address": mask_phone(r.address) if r.channel == "sms" else r.address, "text": text,
                            "segments": segments})
    # SMS length per language, from a typical recipient's SMS wording (salutations differ by a character or two).
    from outreach.notices import Recipient

    for lang in sorted({k[0] for k in size.by_language_channel} | {"zh-Hans"}):
        sample = Recipient(beneficiary_id=0, contact_id=None, channel="sms", address="", lang=lang,
                           values={"name": "张建国", "salutation": "张伯" if lang != "en" else "Zhang Jianguo",
                                   "district": "", "street": "", "community": ""})
        text, _ = render(sample)
        length = sms_length(text)
        out.sms[lang] = {"encoding": length.encoding, "characters": length.characters, "segments": length.segments,
                         "too_long": length.too_long, "describe": length.describe(lang if lang == "en" else "zh-Hans")}
    for (lang, channel), n in size.by_language_channel.items():
        if channel == "sms":
            out.sms_messages += n
            out.sms_segments += n * out.sms.get(lang, out.sms["zh-Hans"])["segments"]
        else:
            out.telegram_messages += n
    # Telegram and SMS go out in parallel, each at its provider's limit.
    out.seconds = max(out.telegram_messages / settings.telegram_rate_per_s,
                      out.sms_segments / settings.twilio_segments_per_s)
    return out


# --- approve, schedule, send -------------------------------------------------------------

def approve_broadcast(session: Session, b: Broadcast, *, approver: StaffUser, now: datetime) -> Broadcast:
    """Four eyes: an approver who did not write it."""
    _need(approver, Role.APPROVER.value)
    _state(b, BroadcastStatus.PENDING_APPROVAL)
    if approver.id == b.created_by:
        audit(session, approver.username, "broadcast.approve_refused", "broadcast", b.id,
              {"reason": "four eyes: the author cannot approve"}, now)
        raise BroadcastRefused("four eyes: a broadcast must be approved by someone other than its author")
    if b.scheduled_for is not None and b.scheduled_for <= now:
        raise BroadcastRefused("设定的发送时间已过，请改时间或立即发送 / the time set has passed: "
                               "choose a new time, or clear it to send now")
    b.approved_by = approver.id
    b.approved_at = now
    b.status = (BroadcastStatus.SCHEDULED if b.scheduled_for else BroadcastStatus.APPROVED).value
    session.add(b)
    audit(session, approver.username, "broadcast.approve", "broadcast", b.id,
          {"scheduled_for": b.scheduled_for.isoformat() if b.scheduled_for else None}, now)
    _review(session, b, approver, ReviewStep.APPROVED, now)
    return b


def schedule_broadcast(session: Session, b: Broadcast, *, actor: StaffUser, at: datetime, now: datetime,
                       settings: Any = None) -> Broadcast:
    _need(actor, Role.COMPOSER.value, Role.APPROVER.value)
    _state(b, BroadcastStatus.PENDING_APPROVAL, BroadcastStatus.APPROVED, BroadcastStatus.SCHEDULED)
    check_send_time(at, now=now, settings=settings)
    b.scheduled_for = at
    if b.status != BroadcastStatus.PENDING_APPROVAL.value:
        b.status = BroadcastStatus.SCHEDULED.value
    session.add(b)
    audit(session, actor.username, "broadcast.schedule", "broadcast", b.id, {"at": at.isoformat()}, now)
    return b


def start_sending(session: Session, b: Broadcast, *, actor: str, now: datetime) -> Broadcast:
    _state(b, BroadcastStatus.APPROVED, BroadcastStatus.SCHEDULED)
    b.status = BroadcastStatus.SENDING.value
    b.started_at = now
    b.stats = {**(b.stats or {}), "queued": 0, "after_id": 0, "enqueue_done": False}
    session.add(b)
    audit(session, actor, "broadcast.send", "broadcast", b.id, {}, now)
    return b


def enqueue_broadcast(engine: Engine, broadcast_id: int, *, now: datetime, settings: Any, templates: Any = None,
                      batch: int = 5000, max_batches: int | None = None) -> int:
    """Queue every reachable recipient, a batch per transaction, resuming where a previous run
    stopped; a stop between batches ends it. `max_batches` bounds this call (the rest is left
    for the next call). Returns how many rows this call created."""
    from outreach.templates import default_templates

    ts = templates or default_templates()
    created = 0
    batches = 0
    today = now.astimezone(settings.tz).date()
    occ = occurrence(broadcast_id)
    while max_batches is None or batches < max_batches:
        batches += 1
        # Who is next is read in a read-only snapshot, the texts are rendered with no
        # transaction open, and the write lock is held only to insert them: rendering 5,000
        # recipients never holds up a webhook's write.
        with read_scope(engine) as session:
            b = session.get(Broadcast, broadcast_id)
            if b is None or b.status != BroadcastStatus.SENDING.value or (b.stats or {}).get("enqueue_done"):
                return created
            after = int((b.stats or {}).get("after_id", 0))
            chunk = audience_recipients(session, AudienceFilter.model_validate(b.audience), today,
                                        after_id=after, limit=batch)
        rows = []
        if chunk:
            render = _renderer(b, ts)
            buttons = {lang: {"buttons": telegram_buttons(ts.language(lang))} for lang in {r.lang for r in chunk}}
            for r in chunk:
                text, segments = render(r)
                sms_body, sms_segments = render(r, "sms") if r.channel != "sms" else (None, None)
                rows.append({"idempotency_key": idempotency_key(BROADCAST_KIND, f"b{r.beneficiary_id}", occ),
                             "kind": BROADCAST_KIND, "occurrence": occ, "beneficiary_id": r.beneficiary_id,
                             "contact_id": r.contact_id, "channel": r.channel, "address": r.address,
                             "language": ts.language(r.lang), "body": text, "segments": segments,
                             "sms_body": sms_body, "sms_segments": sms_segments,
                             "broadcast_id": broadcast_id, "next_attempt_at": now,
                             "extra": buttons.get(r.lang) if r.channel == "telegram" else {}})
        with session_scope(engine, immediate=True) as session:
            b = session.get(Broadcast, broadcast_id)
            if b is None or b.status != BroadcastStatus.SENDING.value or (b.stats or {}).get("enqueue_done"):
                return created  # stopped (or finished elsewhere) while this batch was rendered
            stats = dict(b.stats or {})
            if int(stats.get("after_id", 0)) != after:
                continue  # another process queued this batch meanwhile: read again from where it stopped
            if not chunk:
                b.status = BroadcastStatus.SENT.value
                b.finished_at = now
                stats["enqueue_done"] = True
                b.stats = stats
                session.add(b)
                return created
            n = enqueue_many(session, rows, now=now)
            created += n
            stats["queued"] = int(stats.get("queued", 0)) + n
            stats["after_id"] = chunk[-1].beneficiary_id
            b.stats = stats
            session.add(b)
    return created


def send_broadcast(engine: Engine, broadcast_id: int, *, actor: StaffUser, now: datetime, settings: Any,
                   templates: Any = None) -> int:
    """Send now (approved or scheduled): enqueue everyone; returns how many were queued."""
    with session_scope(engine, immediate=True) as session:
        b = session.get(Broadcast, broadcast_id)
        if b is None:
            raise BroadcastRefused(f"no broadcast {broadcast_id}")
        _need(actor, Role.COMPOSER.value, Role.APPROVER.value)
        if b.status == BroadcastStatus.PENDING_APPROVAL.value:
            raise BroadcastRefused("four eyes: this broadcast is not approved yet")
        start_sending(session, b, actor=actor.username, now=now)
    return enqueue_broadcast(engine, broadcast_id, now=now, settings=settings, templates=templates)


def run_due_broadcasts(engine: Engine, *, clock: Clock, settings: Any, templates: Any = None) -> dict[int, int]:
    """The scheduler's minute poll: start scheduled broadcasts that are due, and resume any
    whose enqueueing was interrupted (a crash mid-send)."""
    now = clock.now()
    with session_scope(engine, immediate=True) as session:
        due = session.execute(select(Broadcast).where(
            col(Broadcast.status) == BroadcastStatus.SCHEDULED.value,
            col(Broadcast.scheduled_for) <= now)).scalars().all()
        for b in due:
            start_sending(session, b, actor="scheduler", now=now)
        sending = [b.id for b in session.execute(select(Broadcast).where(
            col(Broadcast.status) == BroadcastStatus.SENDING.value)).scalars()
            if not (b.stats or {}).get("enqueue_done")]
    return {bid: enqueue_broadcast(engine, bid, now=now, settings=settings, templates=templates)
            for bid in sending if bid is not None}


# --- cancel, stop ------------------------------------------------------------------------

def cancel_broadcast(session: Session, b: Broadcast, *, actor: StaffUser, now: datetime) -> int:
    """Before it starts: cancelled. Once sending: stopped (see stop_broadcast). Returns rows cancelled."""
    _need(actor, Role.COMPOSER.value, Role.APPROVER.value)
    if b.status in (BroadcastStatus.SENDING.value, BroadcastStatus.SENT.value):
        return stop_broadcast(session, b, actor=actor, now=now)
    _state(b, BroadcastStatus.DRAFT, BroadcastStatus.PENDING_APPROVAL, BroadcastStatus.APPROVED,
           BroadcastStatus.SCHEDULED)
    b.status = BroadcastStatus.CANCELLED.value
    session.add(b)
    audit(session, actor.username, "broadcast.cancel", "broadcast", b.id, {}, now)
    _review(session, b, actor, ReviewStep.CANCELLED, now)
    return 0


def stop_broadcast(session: Session, b: Broadcast, *, actor: StaffUser, now: datetime) -> int:
    """Stop one in progress: no more batches; queued rows not yet claimed become cancelled
    (rows already being sent finish). Returns how many were cancelled."""
    _need(actor, Role.COMPOSER.value, Role.APPROVER.value)
    _state(b, BroadcastStatus.SENDING, BroadcastStatus.SENT)
    o = OutboxMessage.__table__  # type: ignore[attr-defined]
    ids = move_where(session, o.c.broadcast_id == b.id, from_status=OutboxStatus.QUEUED, to=OutboxStatus.CANCELLED,
                     reason=f"broadcast stopped by {actor.username}", at=now, values={"error": "broadcast stopped"})
    b.status = BroadcastStatus.STOPPED.value
    b.finished_at = now
    b.stats = {**(b.stats or {}), "cancelled": len(ids)}
    session.add(b)
    audit(session, actor.username, "broadcast.stop", "broadcast", b.id, {"cancelled": len(ids)}, now)
    return len(ids)


# --- progress ----------------------------------------------------------------------------

def broadcast_status(session: Session, b: Broadcast) -> dict[str, Any]:
    """Progress and results: rows by status, failures by reason, opt-outs since it started."""
    o = OutboxMessage
    by_status: dict[str, int] = dict(session.execute(
        select(col(o.status), func.count()).where(col(o.broadcast_id) == b.id).group_by(col(o.status))).all())
    failed: dict[str, int] = {}
    for code, n in session.execute(select(col(o.error_code), func.count()).where(
            col(o.broadcast_id) == b.id, col(o.status) == OutboxStatus.FAILED.value)
            .group_by(col(o.error_code))).all():
        failed[code or "unknown"] = failed.get(code or "unknown", 0) + n
    opted_out_after = 0
    if b.started_at is not None:
        opted_out_after = int(session.execute(
            select(func.count(func.distinct(Contact.id))).select_from(o)
            .join(Contact, col(Contact.id) == col(o.contact_id))
            .where(col(o.broadcast_id) == b.id, col(Contact.opted_out_at) >= b.started_at)).scalar_one())
    total = sum(by_status.values())
    return {
        "id": b.id, "title": b.title, "status": b.status, "total": total,
        "queued": by_status.get("queued", 0) + by_status.get("sending", 0),
        "sent": by_status.get("sent", 0) + by_status.get("delivered", 0),
        "delivered": by_status.get("delivered", 0), "failed": by_status.get("failed", 0),
        "failed_by_reason": failed, "cancelled": by_status.get("cancelled", 0),
        "suppressed": by_status.get("suppressed", 0), "opted_out_after": opted_out_after,
        "by_status": by_status, "started_at": b.started_at.isoformat() if b.started_at else None,
        "scheduled_for": b.scheduled_for.isoformat() if b.scheduled_for else None,
    }


message_renderer = _renderer  # (broadcast, templates) -> (recipient -> (text, segments)), as enqueueing renders

__all__ = ["BroadcastRefused", "create_broadcast", "update_broadcast", "submit_broadcast", "send_back_broadcast",
           "reviews", "telegram_buttons", "check_send_time", "message_renderer", "preview_broadcast", "approve_broadcast", "schedule_broadcast",
           "send_broadcast", "enqueue_broadcast", "run_due_broadcasts", "cancel_broadcast", "stop_broadcast",
           "broadcast_status", "Preview"]
