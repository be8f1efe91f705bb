"""Broadcasts: compose, preview, approve (four eyes), schedule or send, cancel or stop, follow.

Lifecycle (models.outbox.BroadcastStatus):
  create ─► pending_approval ─approve (a different approver)─► approved ─send─► sending ─► sent
                                              └─ scheduled_for set ─► scheduled ─(due: the scheduler's
                                                 minute poll)─► sending
  cancel: before sending (pending/approved/scheduled) ─► cancelled
  stop:   while sending or after (queued rows not yet claimed ─► cancelled) ─► stopped
"sent" means every recipient is in the outbox; `broadcast_status` follows the delivery.

Every staff action writes an audit row. Enqueueing is in batches (5,000 by default), each
committed, each keyed per broadcast and recipient: a crash mid-way is resumed by the
scheduler's poll (status sending, not finished) and queues nobody twice; a stop between two
batches ends the loop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlmodel import Session, col

from models.actions import audit
from models.clock import Clock
from models.db import read_scope, session_scope
from models.outbox import Broadcast, BroadcastStatus, OutboxEvent, OutboxMessage, OutboxStatus
from models.people import Contact
from models.phone import mask_phone
from models.staff import Role, StaffUser
from outreach.audiences import AudienceFilter, audience_recipients, audience_size
from outreach.outbox import enqueue_many, idempotency_key

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


# --- compose -----------------------------------------------------------------------------

def create_broadcast(session: Session, *, author: StaffUser, title: str, audience: AudienceFilter | dict[str, Any],
                     text: str | dict[str, str] | None = None, template_kind: str | None = None,
                     template_context: dict[str, Any] | None = None, scheduled_for: datetime | None = None,
                     now: datetime, templates: Any = None) -> Broadcast:
    """A composer writes text (checked in the sandbox) or picks a template kind; it waits for approval."""
    from outreach.templates import StaffTextError, compile_staff_text, default_templates

    _need(author, Role.COMPOSER.value)
    audience = audience if isinstance(audience, AudienceFilter) else AudienceFilter.model_validate(audience)
    if (text is None) == (template_kind is None):
        raise BroadcastRefused("give either the text or a template kind")
    body: dict[str, str]
    if text is not None:
        try:
            staff_text = compile_staff_text(text)
        except StaffTextError as exc:
            raise BroadcastRefused("; ".join(exc.problems)) from None
        _refuse_too_long_sms(staff_text, templates or default_templates())
        body = {"zh-Hans": text} if isinstance(text, str) else dict(text)
    else:
        assert template_kind is not None  # exactly one of text and template kind, checked above
        ts = templates or default_templates()
        spec = ts.kinds.get(template_kind)
        if spec is None or spec.audience != "beneficiary" or template_kind == "otp":
            raise BroadcastRefused(f"{template_kind!r} is not a message kind that can be broadcast")
        missing = set(spec.variables) - {"salutation"} - set(template_context or {})
        if missing:
            raise BroadcastRefused(f"{template_kind} needs {', '.join(sorted(missing))}")
        body = {TEMPLATE_CONTEXT: json.dumps(template_context or {}, ensure_ascii=False, default=str)}
    b = Broadcast(title=title[:200], template_kind=template_kind, body=body,
                  audience=audience.model_dump(exclude_defaults=True), status=BroadcastStatus.PENDING_APPROVAL.value,
                  created_by=author.id, scheduled_for=scheduled_for, created_at=now, stats={})
    session.add(b)
    session.flush()
    audit(session, author.username, "broadcast.create", "broadcast", b.id,
          {"title": b.title, "audience": b.audience, "template_kind": template_kind}, now)
    return b


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


def _renderer(b: Broadcast, templates: Any) -> Any:
    """(recipient) -> (text, segments) for this broadcast, compiled once per language/channel."""
    from outreach.templates import compile_staff_text

    cache: dict[tuple[str, str], Any] = {}
    if b.template_kind is None:
        staff_text = compile_staff_text(b.body)

        def render(r: Any) -> tuple[str, int]:
            lang = templates.language(r.lang)
            fn = cache.get((lang, r.channel))
            if fn is None:
                fn = cache[(lang, r.channel)] = templates.broadcast_renderer(staff_text, lang, r.channel)
            out = fn(r.values)
            return out.text, out.sms.segments if out.sms else 1
        return render
    fixed = json.loads(b.body.get(TEMPLATE_CONTEXT, "{}"))
    rendered: dict[tuple[str, str, str], tuple[str, int]] = {}  # (language, channel, salutation) -> (text, segments)

    def render_template(r: Any) -> tuple[str, int]:
        lang = templates.language(r.lang)
        key = (lang, r.channel, r.values["salutation"])
        hit = rendered.get(key)
        if hit is None:
            out = templates.render(b.template_kind, lang, {**fixed, "salutation": r.values["salutation"]}, r.channel)
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
    _state(b, BroadcastStatus.PENDING_APPROVAL, BroadcastStatus.DRAFT)
    if approver.id == b.created_by:
        audit(session, approver.username, "broadcast.approve_refused", "broadcast", b.id,
              {"reason": "four eyes: the author cannot approve"}, now)
        raise BroadcastRefused("four eyes: a broadcast must be approved by someone other than its author")
    b.approved_by = approver.id
    b.approved_at = now
    b.status = (BroadcastStatus.SCHEDULED if b.scheduled_for else BroadcastStatus.APPROVED).value
    session.add(b)
    audit(session, approver.username, "broadcast.approve", "broadcast", b.id,
          {"scheduled_for": b.scheduled_for.isoformat() if b.scheduled_for else None}, now)
    return b


def schedule_broadcast(session: Session, b: Broadcast, *, actor: StaffUser, at: datetime, now: datetime) -> Broadcast:
    _need(actor, Role.COMPOSER.value, Role.APPROVER.value)
    _state(b, BroadcastStatus.PENDING_APPROVAL, BroadcastStatus.APPROVED, BroadcastStatus.SCHEDULED)
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
            for r in chunk:
                text, segments = render(r)
                rows.append({"idempotency_key": idempotency_key(BROADCAST_KIND, f"b{r.beneficiary_id}", occ),
                             "kind": BROADCAST_KIND, "occurrence": occ, "beneficiary_id": r.beneficiary_id,
                             "contact_id": r.contact_id, "channel": r.channel, "address": r.address,
                             "language": ts.language(r.lang), "body": text, "segments": segments,
                             "broadcast_id": broadcast_id, "next_attempt_at": now})
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
    return 0


def stop_broadcast(session: Session, b: Broadcast, *, actor: StaffUser, now: datetime) -> int:
    """Stop one in progress: no more batches; queued rows not yet claimed become cancelled
    (rows already being sent finish). Returns how many were cancelled."""
    _need(actor, Role.COMPOSER.value, Role.APPROVER.value)
    _state(b, BroadcastStatus.SENDING, BroadcastStatus.SENT)
    o = OutboxMessage.__table__  # type: ignore[attr-defined]
    ids = [r[0] for r in session.execute(
        update(o).where(o.c.broadcast_id == b.id, o.c.status == OutboxStatus.QUEUED.value)
        .values(status=OutboxStatus.CANCELLED.value, error="broadcast stopped").returning(o.c.id)).all()]
    if ids:
        session.execute(OutboxEvent.__table__.insert(), [  # type: ignore[attr-defined]
            {"outbox_id": i, "from_status": OutboxStatus.QUEUED.value, "to_status": OutboxStatus.CANCELLED.value,
             "reason": f"broadcast stopped by {actor.username}", "at": now} for i in ids])
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


__all__ = ["BroadcastRefused", "create_broadcast", "preview_broadcast", "approve_broadcast", "schedule_broadcast",
           "send_broadcast", "enqueue_broadcast", "run_due_broadcasts", "cancel_broadcast", "stop_broadcast",
           "broadcast_status", "Preview"]
