"""Linking a channel address to a beneficiary on the roll, with a one-time code by SMS.

The user gives the phone number on the roll, or the last 6 characters of their ID number
(matched through `Beneficiary.id_last6_hash`); when several people match one key, the
other key is asked for. A 6-digit code goes by SMS only to a phone on the roll that the person
typed in full: an ID ending alone sends nothing and shows no number (a stranger who knows
someone's ID ending cannot make us text them), and what is asked next does not tell whether
the ending matched. Only the code's keyed hash is stored. Codes expire after 10 minutes, are
single use, allow 5 tries, and at most 3 are sent per hour to one address or for one
beneficiary (the notifier adds its own limits per destination phone). Failed lookups are
limited per sender per office day. "Not found" says where to register. A family member can
link as a proxy: the relationship is recorded (FamilyMember, Contact.family_member_id,
Conversation.acting_as) and every application says who made it.

The code itself never reaches a log: the inbound message at the code step is stored as
"[code]" in the message log (see engine), and nothing here logs it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func
from sqlmodel import Session, select

from bot import answers
from bot.flowregistry import FlowCtx
from bot.flowrunner import Out, clean_text, word
from bot.flowspec import relationship_options
from bot.language import DEFAULT_LANGUAGE
from bot.state import ConversationState
from bot.texts import localise, t
from models.actions import audit
from models.conversations import OneTimeCode
from models.idcard import hash_last6
from models.people import Beneficiary, Contact, FamilyMember, lock_people
from models.phone import InvalidPhone, PhoneNumber, mask_phone

CODE_TTL = timedelta(minutes=10)
MAX_ATTEMPTS = 5
MAX_CODES_PER_HOUR = 3
MAX_LOOKUPS = 6  # failed roll lookups from one sender in an office day; then only a person can help

LINK_FLOW = "link"

# The one list of relationships (the catalogue's), numbered the same here and in every flow that asks.
RELATIONSHIPS = tuple((o["value"], o["label"]) for o in relationship_options())

RESEND = frozenset(["重发", "再发", "重新发", "没收到", "resend", "again"])


class Notifier(Protocol):
    """What identity and tickets need from outreach/notices (faked in tests)."""

    def send_one_time_code(self, session: Session, *, phone_e164: str, code: str, lang: str, now: datetime,
                           beneficiary_id: int | None = None) -> Any: ...

    def send_direct(self, session: Session, *, channel: str, address: str, text: str, kind: str, occurrence: str,
                    now: datetime, lang: str, beneficiary_id: int | None = None) -> Any: ...


def code_hash(key: bytes, channel: str, address: str, code: str) -> str:
    return hmac.new(key, f"otp:{channel}:{address}:{code}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Linked:
    beneficiary_id: int
    relationship: str | None
    language: str
    name: str


class Identity:
    def __init__(self, settings: Any, notifier: Notifier) -> None:
        self.settings = settings
        self.notifier = notifier

    # -- the linking dialogue -----------------------------------------------------------
    def enter(self, state: ConversationState, ctx: FlowCtx) -> list[Out]:
        state.clear_flow()
        state.flow, state.step = LINK_FLOW, "who"
        return [self._prompt(state, ctx.lang)]

    def _prompt(self, state: ConversationState, lang: str) -> Out:
        step = state.step
        if step == "who":
            return Out(t("link_who", lang), (("1", t("link_myself", lang)), ("2", t("link_family_member", lang))),
                       "choice")
        if step == "relationship":
            lines = [t("link_relationship", lang)] + [f"{i}. {localise(lbl, lang)}"
                                                 for i, (_, lbl) in enumerate(RELATIONSHIPS, 1)]
            return Out("\n".join(lines), tuple((str(i), localise(lbl, lang))
                                               for i, (_, lbl) in enumerate(RELATIONSHIPS, 1)), "choice")
        if step == "key":
            return Out(t("link_key" if state.link.relationship else "link_key_self", lang))
        if step == "phone":
            return Out(t("link_ask_phone", lang))
        if step == "last6":
            return Out(t("link_ask_last6", lang))
        return Out(t("link_sent", lang, phone=state.link.masked_phone), expects="code")

    def prompt(self, state: ConversationState, ctx: FlowCtx) -> Out:
        return self._prompt(state, ctx.lang)

    def back(self, state: ConversationState, ctx: FlowCtx) -> list[Out] | None:
        order = {"relationship": "who", "key": "relationship" if state.link.relationship else "who",
                 "phone": "key", "last6": "key", "code": "key"}
        prev = order.get(state.step or "")
        if prev is None:
            return None
        state.step = prev
        return [self._prompt(state, ctx.lang)]

    def answer(self, state: ConversationState, text: str, ctx: FlowCtx) -> tuple[list[Out], Linked | None]:
        lang = ctx.lang
        wd = word(text)
        step = state.step
        if step == "who":
            said = answers.who_acts(text)  # 我爸叫钱德 / 我是他女儿: a family member, and which
            if wd in ("1", "本人", "我本人", "myself", "me", "self") or (said is not None and not said.proxy):
                state.link.relationship = None
                state.step = "key"
            elif wd in ("2", "家属", "家属代办", "family", "family member") or said is not None:
                if said is not None and said.relationship is not None:
                    state.link.relationship = said.relationship
                    state.step = "key"
                else:
                    state.step = "relationship"
            else:
                return [self._again(state, lang)], None
            return [self._prompt(state, lang)], None
        if step == "relationship":
            said = answers.who_acts(text)
            for i, (value, lbl) in enumerate(RELATIONSHIPS, 1):
                if (wd == str(i) or wd in (word(x) for x in lbl.values()) or wd == value
                        or (said is not None and said.relationship == value)):
                    state.link.relationship = value
                    state.step = "key"
                    return [self._prompt(state, lang)], None
            return [self._again(state, lang)], None
        if step in ("key", "phone", "last6"):
            return self._key(state, text, ctx), None
        # step == "code"
        if wd in RESEND:
            return self._send(state, ctx), None
        code = re.sub(r"\s", "", clean_text(text))
        if not re.fullmatch(r"\d{6}", code):
            return [Out(t("link_code_format", lang), expects="code")], None
        return self._verify(state, code, ctx)

    def _again(self, state: ConversationState, lang: str) -> Out:
        out = self._prompt(state, lang)
        head = t("link_reply_number", lang)
        return Out(head + "\n" + out.text, out.choices, out.expects)

    # -- looking people up ---------------------------------------------------------------
    def _key(self, state: ConversationState, text: str, ctx: FlowCtx) -> list[Out]:
        lang = ctx.lang
        raw = re.sub(r"[\s\-]", "", clean_text(text)).upper()
        phone: str | None = None
        last6: str | None = None
        if re.fullmatch(r"\d{5}[\dX]", raw):
            last6 = raw
        else:
            try:
                phone = PhoneNumber.parse(raw).e164
            except InvalidPhone:
                return [Out(t("link_key_bad", lang) + "\n" + self._prompt(state, lang).text)]
        if state.step == "phone" and phone is None or state.step == "last6" and last6 is None:
            return [Out(t("link_key_bad", lang) + "\n" + self._prompt(state, lang).text)]
        day = ctx.now.astimezone(self.settings.tz).date().isoformat()
        if state.lookups.day != day:
            state.lookups = type(state.lookups)(day=day)
        if state.lookups.failures >= MAX_LOOKUPS:
            # This sender has guessed enough today: nothing more is looked up.
            return [Out(self._where_to_register("too_many_lookups", lang))]
        if phone:
            state.link.phone = phone
        if last6:
            state.link.last6_hash = hash_last6(last6, self.settings.id_key)
        if state.link.phone is None:
            # An ID ending alone sends nothing: the phone is asked for whether or not the ending
            # matched, so the question itself tells a stranger nothing.
            state.step = "phone"
            return [self._prompt(state, lang)]
        candidates = self._candidates(ctx.session, state.link.phone, state.link.last6_hash)
        if not candidates:
            state.link.phone = None
            state.link.last6_hash = None
            state.step = "key"
            state.lookups.failures += 1
            misses = state.lookups.failures
            return [Out(self._where_to_register("too_many_lookups" if misses >= MAX_LOOKUPS else "not_found", lang))]
        if len(candidates) > 1:
            if state.link.last6_hash is None:
                state.step = "last6"
                return [self._prompt(state, lang)]
            return [Out(self._where_to_register("too_many_lookups", lang))]
        state.link.beneficiary_id = candidates[0]
        return self._send(state, ctx)

    def _where_to_register(self, key: str, lang: str) -> str:
        return t(f"link_{key}", lang, office=self.settings.office_name, phone=self.settings.office_phone)

    def _candidates(self, session: Session, phone: str | None, last6_hash: str | None) -> list[int]:
        ids: set[int] | None = None
        if phone:
            by_phone = set(session.exec(select(Contact.beneficiary_id).where(
                Contact.channel == "sms", Contact.address == phone, Contact.beneficiary_id.is_not(None))).all())  # type: ignore[union-attr]
            by_phone |= set(session.exec(select(FamilyMember.beneficiary_id).where(FamilyMember.phone == phone)).all())
            ids = {int(i) for i in by_phone if i is not None}
        if last6_hash:
            by_id = {int(i) for i in session.exec(select(Beneficiary.id).where(
                Beneficiary.id_last6_hash == last6_hash)).all() if i is not None}
            ids = by_id if ids is None else ids & by_id
        return sorted(ids or ())

    def _roll_phone(self, session: Session, beneficiary_id: int, given: str | None) -> str | None:
        """Where the code goes: the number typed, and only when it is on the roll for this person
        (theirs or a family member's); never a number the person did not type."""
        if not given:
            return None
        phones = [c for c in session.exec(select(Contact.address).where(
            Contact.channel == "sms", Contact.beneficiary_id == beneficiary_id)).all()]
        family = [p for p in session.exec(select(FamilyMember.phone).where(
            FamilyMember.beneficiary_id == beneficiary_id, FamilyMember.phone.is_not(None))).all() if p]  # type: ignore[union-attr]
        return given if given in phones + family else None

    # -- codes -------------------------------------------------------------------------
    def _send(self, state: ConversationState, ctx: FlowCtx) -> list[Out]:
        lang = ctx.lang
        s = ctx.session
        bid = state.link.beneficiary_id
        assert bid is not None
        person = s.get(Beneficiary, bid)
        if person is not None and person.status == "deceased" and not state.link.relationship:
            state.step = "key"
            return [Out(t("link_deceased_self", lang))]
        phone = self._roll_phone(s, bid, state.link.phone)
        if phone is None:
            state.step = "key"
            return [Out(t("link_no_phone", lang))]
        since = ctx.now - timedelta(hours=1)
        per_address = s.exec(select(func.count()).select_from(OneTimeCode).where(
            OneTimeCode.channel == ctx.channel, OneTimeCode.address == ctx.address,
            OneTimeCode.created_at >= since)).one()
        per_person = s.exec(select(func.count()).select_from(OneTimeCode).where(
            OneTimeCode.beneficiary_id == bid, OneTimeCode.created_at >= since)).one()
        # The notifier may also keep limits of its own per destination phone and for the whole
        # office (bot/inbound_limits.py, shared by every process through Redis).
        may_send = getattr(self.notifier, "may_send_code", None)
        if (per_address >= MAX_CODES_PER_HOUR or per_person >= MAX_CODES_PER_HOUR
                or (may_send is not None and not may_send(phone))):
            state.step = "code" if state.step == "code" else state.step
            return [Out(t("link_rate_limited", lang))]
        code = f"{secrets.randbelow(1_000_000):06d}"
        # Earlier unused codes for this address stop working: only the newest is valid.
        for old in s.exec(select(OneTimeCode).where(OneTimeCode.channel == ctx.channel,
                                                    OneTimeCode.address == ctx.address,
                                                    OneTimeCode.used_at.is_(None))).all():  # type: ignore[union-attr]
            old.expires_at = min(old.expires_at, ctx.now)
            s.add(old)
        s.add(OneTimeCode(channel=ctx.channel, address=ctx.address, beneficiary_id=bid, phone=phone,
                          relationship=state.link.relationship,
                          code_hash=code_hash(self.settings.id_key, ctx.channel, ctx.address, code),
                          expires_at=ctx.now + CODE_TTL, created_at=ctx.now))
        self.notifier.send_one_time_code(s, phone_e164=phone, code=code, lang=lang, now=ctx.now, beneficiary_id=bid)
        state.link.masked_phone = mask_phone(phone)
        state.step = "code"
        return [self._prompt(state, lang)]

    def _verify(self, state: ConversationState, code: str, ctx: FlowCtx) -> tuple[list[Out], Linked | None]:
        lang = ctx.lang
        s = ctx.session
        row = s.exec(select(OneTimeCode).where(OneTimeCode.channel == ctx.channel, OneTimeCode.address == ctx.address)
                     .order_by(OneTimeCode.created_at.desc(), OneTimeCode.id.desc())).first()  # type: ignore[attr-defined,union-attr]
        if row is None or row.used_at is not None or row.expires_at <= ctx.now:
            return [Out(t("link_code_expired", lang), expects="code")], None
        if row.attempts >= MAX_ATTEMPTS:
            return [Out(t("link_code_locked", lang), expects="code")], None
        if not hmac.compare_digest(row.code_hash, code_hash(self.settings.id_key, ctx.channel, ctx.address, code)):
            row.attempts += 1
            s.add(row)
            left = MAX_ATTEMPTS - row.attempts
            return [Out(t("link_code_bad", lang, left=left) if left > 0 else t("link_code_locked", lang), expects="code")], None
        row.used_at = ctx.now
        s.add(row)
        linked = self.link(s, channel=ctx.channel, address=ctx.address, beneficiary_id=row.beneficiary_id,
                           relationship=row.relationship, phone=row.phone, now=ctx.now)
        masked = s.get(Beneficiary, linked.beneficiary_id)
        lang = language_after_link(lang, linked.language, chosen=state.language_chosen)
        text = (t("link_linked_proxy", lang, rel=_rel_label(linked.relationship, lang), name=linked.name,
                  masked=masked.id_masked if masked else "")
                if linked.relationship else
                t("link_linked", lang, name=linked.name, masked=masked.id_masked if masked else ""))
        state.clear_flow()
        state.lookups = type(state.lookups)()
        return [Out(text, in_flow=False)], linked

    # -- the link itself ---------------------------------------------------------------
    def link(self, session: Session, *, channel: str, address: str, beneficiary_id: int, relationship: str | None,
             phone: str | None, now: datetime, actor: str = "bot") -> Linked:
        contact = session.exec(select(Contact).where(Contact.channel == channel, Contact.address == address)).first()
        lock_people(session, beneficiary_id, contact.beneficiary_id if contact is not None else None)
        if contact is None:
            contact = Contact(channel=channel, address=address, created_at=now)
        contact.beneficiary_id = beneficiary_id
        contact.verified = True
        contact.verified_at = now
        contact.family_member_id = None
        if relationship:
            fm = session.exec(select(FamilyMember).where(FamilyMember.beneficiary_id == beneficiary_id,
                                                         FamilyMember.relationship == relationship)).first()
            if fm is None:
                fm = FamilyMember(beneficiary_id=beneficiary_id, relationship=relationship,
                                  phone=address if channel == "sms" else None, created_at=now)
                session.add(fm)
                session.flush()
            contact.family_member_id = fm.id
        session.add(contact)
        session.flush()
        b = session.get(Beneficiary, beneficiary_id)
        audit(session, actor, "contact.link", "contact", contact.id,
              {"channel": channel, "address": mask_phone(address) if channel == "sms" else address,
               "beneficiary_id": beneficiary_id, "relationship": relationship or "self",
               "code_sent_to": mask_phone(phone) if phone else ""}, now)
        return Linked(beneficiary_id, relationship, b.language if b else "zh-Hans", b.name if b else "")


def language_after_link(current: str, recorded: str, *, chosen: bool) -> str:
    """The conversation's language once linked: the one on the person's record, unless the person
    picked one or has been writing in English or Traditional Chinese (what they write wins)."""
    return recorded if not chosen and current == DEFAULT_LANGUAGE else current


def _rel_label(value: str | None, lang: str) -> str:
    for v, lbl in RELATIONSHIPS:
        if v == value:
            return localise(lbl, lang)
    return value or ""


class OutboxNotifier:
    """Default seam to outreach: uses outreach.notices when present, else queues plain text itself."""

    def send_one_time_code(self, session: Session, *, phone_e164: str, code: str, lang: str, now: datetime,
                           beneficiary_id: int | None = None) -> Any:
        try:
            from outreach import notices
        except ImportError:
            notices = None  # type: ignore[assignment]
        if notices is not None and hasattr(notices, "send_one_time_code"):
            return notices.send_one_time_code(session, phone_e164=phone_e164, code=code, lang=lang, now=now,
                                              beneficiary_id=beneficiary_id)
        from outreach.outbox import enqueue
        body = (f"Nuanxin code: {code}. Valid 10 minutes. Do not share it." if lang == "en"
                else f"【暖心】验证码{code}，10分钟内有效，请勿告诉他人。")
        return enqueue(session, key=f"otp:{phone_e164}:{now.isoformat()}:{secrets.token_hex(4)}", kind="one_time_code",
                       channel="sms", address=phone_e164, body=body, now=now, beneficiary_id=beneficiary_id,
                       language=lang, urgent=True, allow_fallback=False, deadline_at=now + CODE_TTL)

    def send_direct(self, session: Session, *, channel: str, address: str, text: str, kind: str, occurrence: str,
                    now: datetime, lang: str, beneficiary_id: int | None = None) -> Any:
        try:
            from outreach import notices
        except ImportError:
            notices = None  # type: ignore[assignment]
        if notices is not None and hasattr(notices, "send_direct"):
            return notices.send_direct(session, channel=channel, address=address, text=text, kind=kind,
                                       occurrence=occurrence, now=now, lang=lang, beneficiary_id=beneficiary_id)
        from outreach.outbox import enqueue
        return enqueue(session, key=f"{kind}:{channel}:{address}:{occurrence}", kind=kind, channel=channel,
                       address=address, body=text, now=now, beneficiary_id=beneficiary_id, language=lang)
