"""The one contact rule: may we contact this person, for this kind of message, on which
address, in which order.

Every path asks here: the sweeps and broadcasts (set-based SQL, `best_contact_id`), notices
(`choose_contact`), the broadcast composer's counts (`contact_rank` folded per person, kept on
each person's row by outreach/reach_summary.py, read by `standing`), the dispatcher's
re-checks before sending (`verdicts`), and the fallback to the other channel
(`fallback_contact`). They share one SQL expression built from `RULES` (`contact_rank`, and
for a row already addressed `verdicts`); a property test
(tests/outreach/test_reach_property.py) shows they pick the same address or none.

What a message may do depends on its class, declared per kind in templates/messages/kinds.yaml
(`class:`), and stored on each outbox row:
- requested: the person asked for it (a one-time code, the answer to their own question);
  an opt-out does not stop it, a pause does not hold it, and the family member writing in
  about someone who died still gets the answer to their own question.
- own_case: about the person's own application; an opt-out does not stop it.
- proactive: the office reaching out to one person (reminders, payment notices); stopped by
  an opt-out, held while a reported death or move awaits verification, never sent to someone
  who moved away.
- bulk: the same words to many (broadcasts, festival greetings): as proactive, sent last.
- staff: to the office's own staff chat; no beneficiary rule applies.
Always: a blocked chat or an invalid address gets nothing; a deceased person's own address
gets nothing; a relative's address is never a way round the person's own stop (an opt-out or
block on their own address), except for what that relative asked for themselves.
Where a message of a class that must reach (requested, own_case, or a kind declared
`unreachable: task`, such as a payment with an amount and a deadline) cannot, a staff task
to phone the person opens instead of silence (`open_unreachable_task`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, case, exists, func, literal, not_, null, or_, select, true
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from models.outbox import OutboxMessage
from models.people import Beneficiary, BeneficiaryStatus, Contact

B = Beneficiary.__table__  # type: ignore[attr-defined]
C = Contact.__table__  # type: ignore[attr-defined]
O = OutboxMessage.__table__  # type: ignore[attr-defined]  # noqa: E741

SENDABLE_CHANNELS = ("telegram", "sms")
OTHER_CHANNEL = {"telegram": "sms", "sms": "telegram"}


class MessageClass(StrEnum):
    REQUESTED = "requested"
    OWN_CASE = "own_case"
    PROACTIVE = "proactive"
    BULK = "bulk"
    STAFF = "staff"


@dataclass(frozen=True)
class ClassRule:
    """What stops, holds or reaches a message of one class."""

    priority: int  # claim order, lowest first: codes and replies go ahead of bulk sends
    opt_out_stops: bool  # an opted-out address does not get it
    pause_holds: bool  # held while the person's reported death or move awaits verification
    moved_stops: bool  # someone who moved away does not get it
    reaches_relatives_of_deceased: bool  # after a death, a relative's address still gets it
    verified_only: bool  # only a verified address of the person
    own_stop_bars_relatives: bool  # the person's own stop also stops their relatives' addresses
    must_reach: bool  # unreachable or refused: a staff task to phone them
    about_a_person: bool = True  # False: no beneficiary rule applies (staff messages)


RULES: dict[MessageClass, ClassRule] = {
    MessageClass.REQUESTED: ClassRule(0, opt_out_stops=False, pause_holds=False, moved_stops=False,
                                      reaches_relatives_of_deceased=True, verified_only=False,
                                      own_stop_bars_relatives=False, must_reach=True),
    MessageClass.STAFF: ClassRule(0, opt_out_stops=False, pause_holds=False, moved_stops=False,
                                  reaches_relatives_of_deceased=True, verified_only=False,
                                  own_stop_bars_relatives=False, must_reach=False, about_a_person=False),
    MessageClass.OWN_CASE: ClassRule(1, opt_out_stops=False, pause_holds=False, moved_stops=False,
                                     reaches_relatives_of_deceased=True, verified_only=True,
                                     own_stop_bars_relatives=True, must_reach=True),
    MessageClass.PROACTIVE: ClassRule(2, opt_out_stops=True, pause_holds=True, moved_stops=True,
                                      reaches_relatives_of_deceased=False, verified_only=True,
                                      own_stop_bars_relatives=True, must_reach=False),
    MessageClass.BULK: ClassRule(3, opt_out_stops=True, pause_holds=True, moved_stops=True,
                                 reaches_relatives_of_deceased=False, verified_only=True,
                                 own_stop_bars_relatives=True, must_reach=False),
}
DEFAULT_CLASS = MessageClass.PROACTIVE  # a kind that declares none: the strictest for the person


def rule_for(message_class: str | None) -> ClassRule:
    try:
        return RULES[MessageClass(message_class or DEFAULT_CLASS)]
    except ValueError:
        return RULES[DEFAULT_CLASS]


class Stop(StrEnum):
    """Why a message does not go to an address (or to anyone)."""

    OPTED_OUT = "opted_out"
    BLOCKED = "blocked"
    INVALID = "invalid"
    DECEASED = "deceased"
    MOVED = "moved"
    PAUSED = "paused"
    UNVERIFIED = "unverified"
    OWN_STOP = "own_stop"
    NO_CONTACT = "no_contact"

    @property
    def text(self) -> str:
        return _STOP_TEXT[self]

    @property
    def holds(self) -> bool:
        """The row waits (stays queued) instead of being suppressed."""
        return self is Stop.PAUSED

    @property
    def person_gone(self) -> bool:
        """Nobody is to be phoned about it: the person died or moved away."""
        return self in (Stop.DECEASED, Stop.MOVED)


_STOP_TEXT = {
    Stop.OPTED_OUT: "opted out", Stop.BLOCKED: "contact blocked the bot", Stop.INVALID: "address invalid",
    Stop.DECEASED: "beneficiary deceased", Stop.MOVED: "beneficiary moved away", Stop.PAUSED: "outreach paused",
    Stop.UNVERIFIED: "address not verified", Stop.OWN_STOP: "the person said stop on their own address",
    Stop.NO_CONTACT: "no reachable contact",
}


# --- the rule in SQL -----------------------------------------------------------------------

def own_said_stop(person: Any) -> ColumnElement[bool]:
    """The person's own address was opted out or blocked: that was their choice."""
    c = C.alias("own_stop_c")
    return (select(literal(1)).select_from(c)
            .where(c.c.beneficiary_id == person.c.id, c.c.family_member_id.is_(None),
                   or_(c.c.opted_out_at.is_not(None), c.c.blocked_at.is_not(None)))
            .correlate(person).exists())


def _contact_stops(rule: ClassRule, c: Any, *, choosing: bool) -> list[tuple[Any, Stop]]:
    """(condition, reason) on the address alone (contact columns `c`; NULL when the address is
    no known contact). `choosing`: picking among the person's contacts, where only verified
    ones are picked; a row already addressed is not refused for that."""
    out: list[tuple[Any, Stop]] = []
    if rule.opt_out_stops:
        out.append((c.opted_out_at.is_not(None), Stop.OPTED_OUT))
    out += [(c.blocked_at.is_not(None), Stop.BLOCKED), (c.invalid_at.is_not(None), Stop.INVALID)]
    if choosing and rule.about_a_person and rule.verified_only:
        out.append((c.verified.is_not(True), Stop.UNVERIFIED))
    return out


def _person_stops(rule: ClassRule, person: Any, own: Any) -> list[tuple[Any, Stop]]:
    """(condition, reason) on the person (a beneficiary table or alias), for an address that is
    the person's own (`own`) or a relative's."""
    if not rule.about_a_person:
        return []
    deceased = person.c.status == BeneficiaryStatus.DECEASED.value
    out = [(and_(deceased, own) if rule.reaches_relatives_of_deceased else deceased, Stop.DECEASED)]
    if rule.moved_stops:
        out.append((person.c.status == BeneficiaryStatus.MOVED.value, Stop.MOVED))
    if rule.pause_holds:
        out.append((person.c.outreach_paused_at.is_not(None), Stop.PAUSED))
    return out


# A contact's rank for one class of message; a person's smallest rank says whether, where and
# why not. Usable own addresses come first, then the person's own stops (which therefore shut
# out every relative's address), then usable relatives' addresses, then invalid ones.
RANK_OWN, RANK_OWN_OTHER, RANK_OPTED_OUT, RANK_BLOCKED = 1, 2, 3, 4
RANK_RELATIVE, RANK_RELATIVE_OTHER, RANK_INVALID, RANK_NONE = 5, 6, 7, 8
REACHABLE_RANKS = (RANK_OWN, RANK_OWN_OTHER, RANK_RELATIVE, RANK_RELATIVE_OTHER)
_RANK_STOP = {RANK_OPTED_OUT: Stop.OPTED_OUT, RANK_BLOCKED: Stop.BLOCKED, RANK_INVALID: Stop.INVALID,
              RANK_NONE: Stop.NO_CONTACT}


def _rank(c: Any, rule: ClassRule, channels: Sequence[str] | None, prefer: str | None, *,
          own_unusable: bool) -> Any:
    """SQL on the contact's own columns: its rank. `own_unusable`: the person died, and only a
    relative may still be written to (the class allows it)."""
    cc = c.c
    own = cc.family_member_id.is_(None)
    on_channel = cc.channel.in_(channels or SENDABLE_CHANNELS)
    usable = and_(on_channel, not_(or_(*[cond for cond, _ in _contact_stops(rule, cc, choosing=True)])))
    first = cc.channel == (prefer or "telegram")
    whens: list[tuple[Any, int]] = []
    if not own_unusable:
        whens += [(and_(usable, own, first), RANK_OWN), (and_(usable, own), RANK_OWN_OTHER)]
    if rule.own_stop_bars_relatives:
        whens += [(and_(own, cc.opted_out_at.is_not(None)), RANK_OPTED_OUT),
                  (and_(own, cc.blocked_at.is_not(None)), RANK_BLOCKED)]
    relative = not_(own) if own_unusable else true()
    whens += [(and_(usable, relative, first), RANK_RELATIVE), (and_(usable, relative), RANK_RELATIVE_OTHER),
              (and_(on_channel, cc.invalid_at.is_not(None)), RANK_INVALID)]
    return case(*whens, else_=RANK_NONE)


def contact_rank(c: Any, person: Any, message_class: str = DEFAULT_CLASS, channels: Sequence[str] | None = None,
                 prefer: str | None = None) -> Any:
    """SQL: the rank of contact `c` (a contact table or alias joined to `person`) for this class;
    with `person_stop`, what a fold over a person's contacts (`min`) needs (`standing`)."""
    rule = rule_for(message_class)
    normal = _rank(c, rule, channels, prefer, own_unusable=False)
    if not (rule.about_a_person and rule.reaches_relatives_of_deceased):
        return normal
    return case((person.c.status == BeneficiaryStatus.DECEASED.value,
                 _rank(c, rule, channels, prefer, own_unusable=True)), else_=normal)


class Owner:
    """Whose addresses a choice may use: anyone's (own first), the person's own, or one relative's."""

    ANY: Any = None
    OWN = "own"


def best_contact_id(person: Any = B, message_class: str = DEFAULT_CLASS, channels: Sequence[str] | None = None,
                    *, prefer: str | None = None, owner: str | int | None = None) -> Any:
    """SQL (correlated to `person`): the contact a message of this class goes to, or NULL.

    Nobody when `person_stop` says so; else the person's contact of smallest `contact_rank`
    (own usable address before a relative's; `prefer`, else Telegram, before the other
    channel), the most recently active first, then the oldest; NULL when that contact is one
    of the person's own stops or nothing is usable. `owner`: only the person's own addresses,
    or one relative's (still shut out by the person's own stop)."""
    rule = rule_for(message_class)

    def pick(own_unusable: bool) -> Any:
        c = C.alias("best_c")
        rank = _rank(c, rule, channels, prefer, own_unusable=own_unusable)
        conds = [c.c.beneficiary_id == person.c.id]
        if owner == Owner.OWN:
            conds.append(c.c.family_member_id.is_(None))
        elif owner is not None:
            conds.append(c.c.family_member_id == owner)
            if rule.own_stop_bars_relatives:
                conds.append(not_(own_said_stop(person)))
        return (select(case((rank.in_(REACHABLE_RANKS), c.c.id), else_=None)).where(*conds)
                .order_by(rank, c.c.last_inbound_at.desc().nulls_last(), c.c.id)
                .limit(1).correlate(person).scalar_subquery())

    whens: list[tuple[Any, Any]] = []
    stop = person_stop(person, message_class)
    if stop is not None:
        whens.append((stop.is_not(None), null()))
    if rule.about_a_person and rule.reaches_relatives_of_deceased:
        whens.append((person.c.status == BeneficiaryStatus.DECEASED.value, pick(own_unusable=True)))
    return case(*whens, else_=pick(own_unusable=False)) if whens else pick(own_unusable=False)


def person_clauses(message_class: str, person: Any = B) -> list[Any]:
    """Conditions on the person alone that any address needs for this class (for WHERE clauses
    of set-based queries; `best_contact_id` holds them too)."""
    rule = rule_for(message_class)
    if not rule.about_a_person:
        return []
    out = []
    if not rule.reaches_relatives_of_deceased and rule.moved_stops:
        out.append(person.c.status == BeneficiaryStatus.ACTIVE.value)  # an equality the status indexes serve
    elif not rule.reaches_relatives_of_deceased:
        out.append(person.c.status != BeneficiaryStatus.DECEASED.value)
    elif rule.moved_stops:
        out.append(person.c.status != BeneficiaryStatus.MOVED.value)
    if rule.pause_holds:
        out.append(person.c.outreach_paused_at.is_(None))
    return out


def person_stop(person: Any = B, message_class: str = DEFAULT_CLASS) -> Any:
    """SQL: why nobody of `person` gets this class whatever their addresses (deceased, moved,
    paused), or NULL; None (no SQL) when the class has no such rule."""
    rule = rule_for(message_class)
    whens: list[tuple[Any, str]] = []
    if rule.about_a_person:
        if not rule.reaches_relatives_of_deceased:
            whens.append((person.c.status == BeneficiaryStatus.DECEASED.value, Stop.DECEASED.value))
        if rule.moved_stops:
            whens.append((person.c.status == BeneficiaryStatus.MOVED.value, Stop.MOVED.value))
        if rule.pause_holds:
            whens.append((person.c.outreach_paused_at.is_not(None), Stop.PAUSED.value))
    return case(*whens, else_=None) if whens else None


def standing(stop: str | None, rank: int | None, channels: Sequence[str] | None = None,
             prefer: str | None = None) -> tuple[Stop | None, str | None]:
    """From `person_stop` and the person's smallest `contact_rank`: (why not, None), or
    (None, the channel the message goes on)."""
    if stop is not None:
        return Stop(stop), None
    if rank in REACHABLE_RANKS:
        first = prefer or "telegram"
        other = next(c for c in SENDABLE_CHANNELS if c != first)
        return None, first if rank in (RANK_OWN, RANK_RELATIVE) else other
    return _RANK_STOP.get(rank or RANK_NONE, Stop.NO_CONTACT), None


def exclusion_reason(person: Any = B, message_class: str = MessageClass.BULK,
                     channels: Sequence[str] | None = None) -> Any:
    """SQL: "reachable", or why nobody of `person` gets a message of this class: deceased, moved,
    paused, opted_out, blocked, invalid, no_contact. Built from `best_contact_id` and the
    contacts' own marks, not from `contact_rank`: an independent reading of the same rule that
    tests compare the broadcast composer's counts with."""
    rule = rule_for(message_class)
    whens: list[tuple[Any, Any]] = []
    stop = person_stop(person, message_class)
    if stop is not None:
        whens.append((stop.is_not(None), stop))
    whens.append((best_contact_id(person, message_class, channels).is_not(None), "reachable"))

    def has(condition: Any) -> Any:
        c = C.alias("why_c")
        return exists().where(c.c.beneficiary_id == person.c.id, condition(c.c)).correlate(person)

    if rule.opt_out_stops:
        whens.append((has(lambda c: c.family_member_id.is_(None) & c.opted_out_at.is_not(None)),
                      Stop.OPTED_OUT.value))
    whens.append((has(lambda c: c.family_member_id.is_(None) & c.blocked_at.is_not(None)), Stop.BLOCKED.value))
    # an invalid address on a channel the message does not use is no reason: it has no address there
    whens.append((has(lambda c: c.invalid_at.is_not(None) & c.channel.in_(channels or SENDABLE_CHANNELS)),
                  Stop.INVALID.value))
    return case(*whens, else_=Stop.NO_CONTACT.value)


def _row_stop(classes: Iterable[MessageClass], c: Any, p: Any, own: Any) -> Any:
    """SQL: why the outbox row must not go to its address now (a Stop value), or NULL."""
    def for_class(rule: ClassRule) -> Any:
        stops = _contact_stops(rule, c.c, choosing=False) + _person_stops(rule, p, own)
        if rule.about_a_person and rule.own_stop_bars_relatives:
            stops.append((and_(not_(own), own_said_stop(p)), Stop.OWN_STOP))
        return case(*[(cond, stop.value) for cond, stop in stops], else_=None)

    return case(*[(O.c.message_class == k.value, for_class(RULES[k])) for k in classes],
                else_=for_class(RULES[DEFAULT_CLASS]))


def verdicts(session: Session, ids: Sequence[int]) -> dict[int, Stop]:
    """For outbox rows (by id): why each must not go to its address now; rows that may go are
    absent. The dispatcher asks right before sending; the same rule as every choice."""
    if not ids:
        return {}
    c = C.alias("row_c")
    p = B.alias("row_p")
    own = and_(c.c.beneficiary_id == p.c.id, c.c.family_member_id.is_(None))
    reason = _row_stop(list(MessageClass), c, p, own)
    out: dict[int, Stop] = {}
    for start in range(0, len(ids), 500):
        chunk = list(ids[start:start + 500])
        stmt = (select(O.c.id, reason)
                .select_from(O.outerjoin(c, and_(c.c.channel == O.c.channel, c.c.address == O.c.address))
                             .outerjoin(p, p.c.id == func.coalesce(O.c.beneficiary_id, c.c.beneficiary_id)))
                .where(O.c.id.in_(chunk)))
        out.update({row_id: Stop(why) for row_id, why in session.execute(stmt) if why is not None})
    return out


# --- the rule for one person -------------------------------------------------------------

def choose_contact(session: Session, beneficiary_id: int, *, message_class: str = DEFAULT_CLASS,
                   prefer: str | None = None, channels: Sequence[str] | None = None,
                   owner: str | int | None = None) -> Contact | None:
    """The contact a message of this class to this person goes to, or None."""
    contact_id = session.execute(
        select(best_contact_id(B, message_class, channels, prefer=prefer, owner=owner)).where(B.c.id == beneficiary_id)
    ).scalar()
    return session.get(Contact, contact_id) if contact_id is not None else None


def why_unreachable(session: Session, beneficiary_id: int, *, message_class: str = DEFAULT_CLASS,
                    channels: Sequence[str] | None = None) -> Stop | None:
    """Why nobody of this person gets a message of this class (None when someone does)."""
    c = C.alias("why_c")
    stop = person_stop(B, message_class)
    row = session.execute(select(stop if stop is not None else literal(None),
                                 func.min(contact_rank(c, B, message_class, channels)))
                          .select_from(B.outerjoin(c, c.c.beneficiary_id == B.c.id))
                          .where(B.c.id == beneficiary_id).group_by(B.c.id, B.c.status, B.c.outreach_paused_at)).first()
    if row is None:
        return Stop.NO_CONTACT
    return standing(row[0], row[1], channels)[0]


def fallback_contact(session: Session, *, beneficiary_id: int | None, channel: str, address: str,
                     message_class: str) -> Contact | None:
    """Where a message that could not go to (channel, address) goes instead: the same person on
    the other channel (the person's own other address, or the same relative's), chosen by the
    rule as it stands now (the failure has just marked the address)."""
    other = OTHER_CHANNEL.get(channel)
    if other is None:
        return None
    failed = session.execute(select(C.c.beneficiary_id, C.c.family_member_id)
                             .where(C.c.channel == channel, C.c.address == address)).first()
    person = beneficiary_id or (failed.beneficiary_id if failed else None)
    if person is None:
        return None
    owner: str | int = Owner.OWN if failed is None or failed.family_member_id is None else failed.family_member_id
    return choose_contact(session, person, message_class=message_class, channels=(other,), owner=owner)


# --- nobody silently cut off ---------------------------------------------------------------

def must_reach(kind: str, message_class: str | None) -> bool:
    """A message that opens a staff task when it cannot reach the person: its class says so
    (requested, own_case), or its kind does (`unreachable: task`: money and a deadline)."""
    if rule_for(message_class).must_reach:
        return True
    from outreach.templates import kind_spec

    spec = kind_spec(kind)
    return spec is not None and spec.unreachable == "task"


def class_of(kind: str) -> MessageClass:
    """The class kinds.yaml declares for `kind` (`cert_reminder_30` → `cert_reminder`'s)."""
    from outreach.templates import kind_spec

    spec = kind_spec(kind)
    return MessageClass(spec.message_class) if spec is not None else DEFAULT_CLASS


def unreachable_task_key(message_key: str) -> str:
    key = f"unreachable:{message_key}"
    return key if len(key) <= 128 else f"unreachable:{hashlib.sha256(message_key.encode()).hexdigest()}"


def open_unreachable_task(session: Session, *, beneficiary_id: int | None, kind: str, message_key: str,
                          why: str, now: datetime, actor: str) -> bool:
    """A staff task to phone the person about a message that cannot reach them; once per
    message (keyed by its idempotency key). Returns True when a task was opened."""
    if beneficiary_id is None:
        return False
    from bot.words import staff_label
    from models.actions import create_task
    from models.applications import TaskKind

    code = why.replace(" ", "_")  # a Stop's text ("opted out") or a provider's answer ("21610 ...")
    named = staff_label("suppression_reason", code)
    task = create_task(session, kind=TaskKind.CALLBACK.value, actor=actor, key=unreachable_task_key(message_key),
                       beneficiary_id=beneficiary_id, priority=8, due_on=now.date(),
                       note=f"消息无法送达（{why if named == code else named}），"
                            f"请电话联系：{staff_label('message_kind', kind)}")
    return task is not None


__all__ = ["B", "C", "ClassRule", "MessageClass", "OTHER_CHANNEL", "Owner", "RULES", "SENDABLE_CHANNELS", "Stop",
           "best_contact_id", "choose_contact", "class_of", "contact_rank", "fallback_contact", "must_reach",
           "open_unreachable_task", "own_said_stop", "person_clauses", "person_stop", "rule_for", "standing", "verdicts",
           "why_unreachable"]
