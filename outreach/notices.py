"""From events to the outbox: whom to reach, in which language, with which words.

Callers (the scheduler's sweeps, `models.actions.advance_application`, the bot's identity
linking, staff answering a handed-off question) say *what* happened; this module picks the
contact and the language, renders the template for that channel, counts SMS segments and
queues one outbox row with an idempotency key, inside the caller's transaction.

Decisions (also in templates/messages/README.md):
- Contact: the one contact rule (`outreach.reach`) for the kind's class (kinds.yaml): a
  verified address not stopped for that class; the person's own before a relative's (and a
  relative's never when the person's own address said stop); Telegram first unless told
  otherwise; the most recently active address within a channel. Nobody deceased, moved or
  paused gets a reminder; notices about their own applications still reach them.
  A message that reaches a relative starts with "请转告张伯：" ("For Mr Zhang: ").
- A kind that must reach the person and reaches nobody opens a staff task to phone them.
- A row for Telegram also carries its SMS copy as fields of its own (`sms_body` with the
  office's signature and any opt-out line, `sms_segments` counted on it), so the dispatcher
  falls back to SMS in the SMS wording without rendering anything.
- One-time codes: urgent, SMS only, no fallback, no footer, expire with the code; nothing
  here logs, and the row says `extra["secret"] = True` so that nothing downstream logs its body.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from models.applications import Application, ApplicationStageChange
from models.people import Beneficiary, Contact
from outreach import reach
from outreach.outbox import Enqueued, enqueue, idempotency_key
from outreach.sms_text import check_sms_length, sms_length
from outreach.templates import StaffText, TemplateSet, default_templates

OTP_VALID_MINUTES = 10

# Two-character surnames: the salutation needs the whole surname (欧阳伯, not 欧伯).
COMPOUND_SURNAMES = frozenset(
    ["欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒", "夏侯", "端木", "令狐", "澹台", "申屠", "太史", "轩辕", "独孤", "南宫", "西门", "呼延", "闻人", "万俟", "赫连", "钟离", "宗政", "濮阳", "公冶", "太叔", "仲孙", "单于", "淳于", "百里", "东郭", "拓跋"]
)


def surname(name: str) -> str:
    name = name.strip()
    return name[:2] if name[:2] in COMPOUND_SURNAMES else name[:1]


def salutation_for(beneficiary: Beneficiary, lang: str, *, on: date | None = None) -> str:
    """How a message addresses this person.

    Chinese, 60 and over: the warm form community staff use, 张伯 / 王阿姨; under 60:
    张先生 / 王女士; sex unknown: the full name. English: the full name as registered.
    A `salutation` attribute on the beneficiary, when the model has one and it is set, wins.
    """
    own = getattr(beneficiary, "salutation", None)
    if own:
        return str(own)
    return salutation_from(beneficiary.name, beneficiary.sex, beneficiary.birth_date, lang, on=on)


def salutation_from(name: str, sex: str | None, birth_date: date | None, lang: str, *, on: date | None = None) -> str:
    """`salutation_for` from plain columns (bulk paths that do not load Beneficiary objects)."""
    name = name.strip()
    if lang == "en" or not name or sex not in ("M", "F"):
        return name
    age = None
    if on is not None and birth_date is not None:
        age = on.year - birth_date.year - ((on.month, on.day) < (birth_date.month, birth_date.day))
    family = surname(name)
    if age is not None and age < 60:
        return family + ("先生" if sex == "M" else "女士")
    return family + ("伯" if sex == "M" else "阿姨")


def beneficiary_context(beneficiary: Beneficiary, lang: str, now: datetime, templates: TemplateSet) -> dict[str, Any]:
    today = now.astimezone(templates.tz).date()
    return {
        "name": beneficiary.name, "salutation": salutation_for(beneficiary, lang, on=today),
        "district": beneficiary.district, "street": beneficiary.street, "community": beneficiary.community,
        "today": today,
    }


def choose_contact(session: Session, beneficiary_id: int, *, prefer: str | None = None,
                   message_class: str = reach.MessageClass.PROACTIVE) -> Contact | None:
    """The contact a message of this class goes to (see the module note), or None."""
    return reach.choose_contact(session, beneficiary_id, message_class=message_class, prefer=prefer)


def sms_copy(templates: TemplateSet, kind: str, lang: str, context: Mapping[str, Any],
             relay_to: str | None) -> tuple[str, int]:
    """The SMS wording of a message queued for another channel, and its segments."""
    sms = templates.render(kind, lang, context, "sms", relay_to=relay_to)
    return sms.text, sms.sms.segments if sms.sms else 1


def enqueue_notice(
    session: Session,
    *,
    beneficiary: Beneficiary,
    kind: str,
    occurrence: str,
    context: Mapping[str, Any],
    now: datetime,
    urgent: bool = False,
    channel: str | None = None,
    not_before: datetime | None = None,
    deadline_at: datetime | None = None,
    broadcast_id: int | None = None,
    templates: TemplateSet | None = None,
) -> Enqueued | None:
    """Queue message `kind` for this beneficiary; None when the contact rule lets it reach nobody
    (then, for a kind that must reach them, a staff task to phone them opens).

    `channel` set: that channel only (None if their contact for it is on another channel).
    `kind` may carry a number suffix naming the occurrence type (`cert_reminder_30`): it
    renders the `cert_reminder` template and stays distinct in the idempotency key.
    Raises MissingVariables naming what `context` lacks; MessageTooLong for an SMS over 10 segments.
    """
    if beneficiary.id is None:
        return None
    ts = templates or default_templates()
    message_class = ts.kinds[ts.kind_for(kind)].message_class
    key = idempotency_key(kind, f"b{beneficiary.id}", occurrence)
    contact = choose_contact(session, beneficiary.id, prefer=channel, message_class=message_class)
    if contact is None and channel is None and reach.must_reach(kind, message_class):
        why = reach.why_unreachable(session, beneficiary.id, message_class=message_class)
        if why is not None and not why.person_gone and not why.holds:
            reach.open_unreachable_task(session, beneficiary_id=beneficiary.id, kind=kind, message_key=key,
                                        why=why.text, now=now, actor="system")
    if contact is None or (channel is not None and contact.channel != channel):
        return None
    lang = ts.language(beneficiary.language)
    ctx = {**beneficiary_context(beneficiary, lang, now, ts), **context}
    relay_to = str(ctx["salutation"]) if contact.family_member_id is not None else None
    rendered = ts.render(kind, lang, ctx, contact.channel, relay_to=relay_to)
    sms_body, sms_segments = sms_copy(ts, kind, lang, ctx, relay_to) if contact.channel != "sms" else (None, None)
    return enqueue(
        session, key=key, kind=kind, message_class=message_class, channel=contact.channel, address=contact.address, body=rendered.text, now=now,
        beneficiary_id=beneficiary.id, contact_id=contact.id, occurrence=occurrence, language=lang,
        segments=rendered.sms.segments if rendered.sms else 1, urgent=urgent, broadcast_id=broadcast_id,
        not_before=not_before, deadline_at=deadline_at, sms_body=sms_body, sms_segments=sms_segments,
    )


def notify_stage_change(session: Session, application: Application, *, now: datetime,
                        templates: TemplateSet | None = None) -> Enqueued | None:
    """Tell the applicant their application moved to `application.stage`.

    The occurrence is reference + stage + how many stage changes the application has had,
    so moving to the same stage a second time (returned twice) is a new message, while a
    retried transaction re-queues nothing.
    """
    ts = templates or default_templates()
    kind = f"stage_{application.stage}"
    if kind not in ts.kinds:
        return None
    beneficiary = session.get(Beneficiary, application.beneficiary_id)
    if beneficiary is None:
        return None
    changes = session.exec(
        select(func.count()).select_from(ApplicationStageChange)
        .where(ApplicationStageChange.application_id == application.id)
    ).one()
    context: dict[str, Any] = {"reference": application.reference, "application_type": application.type}
    if application.stage == "payment_notice":
        context.update(amount_fen=application.payment_amount_fen, account=application.payment_account,
                       deadline=application.payment_deadline)
    elif application.stage == "returned":
        context["reason"] = application.return_reason or ""
    elif application.stage == "rejected":
        context["reason"] = application.rejection_reason or ""
    return enqueue_notice(session, beneficiary=beneficiary, kind=kind,
                          occurrence=f"{application.reference}:{application.stage}:{changes}",
                          context=context, now=now, templates=ts)


def _recipient_tag(beneficiary_id: int | None, channel: str, address: str) -> str:
    if beneficiary_id is not None:
        return f"b{beneficiary_id}"
    # No beneficiary yet (a phone being linked): a hash, so the key holds no number.
    return f"{channel[:1]}{hashlib.sha256(address.encode()).hexdigest()[:16]}"


def send_one_time_code(session: Session, *, phone_e164: str, code: str, lang: str, now: datetime,
                       beneficiary_id: int | None = None, valid_minutes: int = OTP_VALID_MINUTES,
                       templates: TemplateSet | None = None) -> Enqueued:
    """Queue a one-time code by SMS: urgent (ignores quiet hours), no fallback, no opt-out
    footer, given up when the code expires. Each call is a new message. Never logged."""
    ts = templates or default_templates()
    rendered = ts.render("otp", lang, {"code": code, "minutes": valid_minutes}, "sms")
    contact = session.exec(select(Contact).where(Contact.channel == "sms", Contact.address == phone_e164)).first()
    occurrence = f"{now:%Y%m%dT%H%M%S}-{secrets.token_hex(6)}"
    return enqueue(
        session, key=idempotency_key("otp", _recipient_tag(beneficiary_id, "sms", phone_e164), occurrence),
        kind="otp", channel="sms", address=phone_e164, body=rendered.text, now=now,
        beneficiary_id=beneficiary_id, contact_id=contact.id if contact else None, occurrence=occurrence,
        language=rendered.lang, segments=rendered.sms.segments if rendered.sms else 1, urgent=True,
        allow_fallback=False, deadline_at=now + timedelta(minutes=valid_minutes), extra={"secret": True},
    )


def send_direct(session: Session, *, channel: str, address: str, text: str, kind: str, occurrence: str,
                now: datetime, lang: str, beneficiary_id: int | None = None,
                context: Mapping[str, Any] | None = None, templates: TemplateSet | None = None) -> Enqueued:
    """Queue a reply on the channel and address the person used (no fallback): what the person
    asked for, so an opt-out does not stop it (outreach.reach: requested).

    When `kind` is a template kind (e.g. `handoff_answer`), `text` fills its `answer`/`text`
    variable and `context` the rest (question, staff_name, salutation); otherwise `text` is
    sent as written. An SMS over 10 segments is refused (MessageTooLong).
    """
    ts = templates or default_templates()
    lang = ts.language(lang)
    if kind in ts.kinds:
        rendered = ts.render(kind, lang, {"answer": text, "text": text, **(context or {})}, channel)
        body = rendered.text
    else:
        body = text
    segments = check_sms_length(body).segments if channel == "sms" else 1
    contact = session.exec(select(Contact).where(Contact.channel == channel, Contact.address == address)).first()
    if beneficiary_id is None and contact is not None:
        beneficiary_id = contact.beneficiary_id
    return enqueue(
        session, key=idempotency_key(kind, _recipient_tag(beneficiary_id, channel, address), occurrence),
        kind=kind, channel=channel, address=address, body=body, now=now, beneficiary_id=beneficiary_id,
        contact_id=contact.id if contact else None, occurrence=occurrence, language=lang, segments=segments,
        allow_fallback=False, message_class=reach.MessageClass.REQUESTED,
    )


@dataclass(frozen=True)
class Recipient:
    """One broadcast recipient, as an audience query yields it."""

    beneficiary_id: int
    contact_id: int | None
    channel: str
    address: str
    lang: str
    values: Mapping[str, Any]  # the STAFF_VARIABLES for this person (name, salutation, district...)


def broadcast_rows(templates: TemplateSet, staff_text: StaffText, recipients: Iterable[Recipient], *,
                   broadcast_id: int | None, occurrence: str, kind: str = "staff_broadcast",
                   not_before: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Outbox rows for `outreach.outbox.enqueue_many`: one rendering function per (language,
    channel), made once; per recipient only the render and the segment count (and, for
    Telegram, the SMS copy a fallback sends)."""
    renderers: dict[tuple[str, str], Any] = {}

    def render(lang: str, channel: str, values: Mapping[str, Any]) -> Any:
        render_one = renderers.get((lang, channel))
        if render_one is None:
            render_one = renderers[(lang, channel)] = templates.broadcast_renderer(staff_text, lang, channel)
        return render_one(values)

    for r in recipients:
        lang = templates.language(r.lang)
        rendered = render(lang, r.channel, r.values)
        sms = render(lang, "sms", r.values) if r.channel != "sms" else None
        yield {
            "idempotency_key": idempotency_key(kind, f"b{r.beneficiary_id}", occurrence),
            "kind": kind, "occurrence": occurrence, "beneficiary_id": r.beneficiary_id,
            "contact_id": r.contact_id, "channel": r.channel, "address": r.address, "language": lang,
            "body": rendered.text, "segments": rendered.sms.segments if rendered.sms else 1,
            "sms_body": sms.text if sms else None, "sms_segments": sms.sms.segments if sms and sms.sms else None,
            "broadcast_id": broadcast_id, "next_attempt_at": not_before,
        }


__all__ = [
    "Recipient", "beneficiary_context", "broadcast_rows", "choose_contact", "enqueue_notice",
    "notify_stage_change", "salutation_for", "salutation_from", "send_direct", "send_one_time_code", "sms_length", "surname",
]
