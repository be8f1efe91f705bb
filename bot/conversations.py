"""Where conversation rows are read and written: the engine's store, and the one door for others.

The engine loads a conversation (creating it and its contact on the first message from an
address), saves it with an optimistic `version` check, takes over another channel's
unfinished flow and writes the message log, all through SQLAlchemy Core statements built
once. Code outside the engine that needs to put a person into a flow (the survey after a
completed service) calls `offer_flow`; nothing else writes a `conversation` row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlmodel import Session

from bot.state import ConversationState
from models.conversations import Conversation, MessageLog
from models.people import Beneficiary, Contact, FamilyMember

CONV = Conversation.__table__  # type: ignore[attr-defined]
LOG = MessageLog.__table__  # type: ignore[attr-defined]
CONTACT = Contact.__table__  # type: ignore[attr-defined]
FAMILY = FamilyMember.__table__  # type: ignore[attr-defined]
PERSON = Beneficiary.__table__  # type: ignore[attr-defined]
LINK_FLOW = "link"


class Conflict(Exception):
    """Another process saved this conversation first: start the message again."""


@dataclass
class Conv:
    """A conversation row as the engine works on it: the row's own fields and the typed state."""

    id: int
    channel: str
    address: str
    beneficiary_id: int | None
    acting_as: str | None
    language: str | None
    version: int
    updated_at: datetime
    state: ConversationState
    contact_id: int | None = None
    # The flow and step the message arrived at (before the engine moved anything).
    arrived_flow: str | None = None
    arrived_step: str | None = None
    # Read with the row, in the same statement: the status of `beneficiary_id` as loaded, and whether
    # another conversation of the same person holds a newer unfinished flow (None: not known, ask).
    person_status: tuple[int, str | None] | None = None  # (beneficiary id, its status)
    adoptable: bool | None = None

    @property
    def lang(self) -> str:
        return self.language or "zh-Hans"


_COLUMNS = (CONV.c.id, CONV.c.channel, CONV.c.address, CONV.c.beneficiary_id, CONV.c.acting_as, CONV.c.language,
            CONV.c.flow, CONV.c.step, CONV.c.data, CONV.c.history, CONV.c.version, CONV.c.updated_at)
_OTHER = CONV.alias("other")


def _adoptable_from(beneficiary_id: Any, acting_as: Any, cid: Any, since: Any) -> Any:
    """Another conversation of the same person (and relationship) with an unfinished flow newer than `since`."""
    return (select(_OTHER.c.id).where(
        _OTHER.c.beneficiary_id == beneficiary_id, _OTHER.c.acting_as.is_not_distinct_from(acting_as),
        _OTHER.c.id != cid, _OTHER.c.flow.is_not(None), _OTHER.c.flow != LINK_FLOW, _OTHER.c.updated_at > since)
        .order_by(_OTHER.c.updated_at.desc()).limit(1))


# What the engine needs with the row, read by the same statement (one round trip per message): the id of
# the address's contact, the status of the person it is linked to, and whether there is a flow to adopt.
_WITH_ROW = (
    select(CONTACT.c.id).where(CONTACT.c.channel == CONV.c.channel, CONTACT.c.address == CONV.c.address)
    .scalar_subquery().label("contact_id"),
    select(PERSON.c.status).where(PERSON.c.id == CONV.c.beneficiary_id).scalar_subquery().label("person_status"),
    _adoptable_from(CONV.c.beneficiary_id, CONV.c.acting_as, CONV.c.id, CONV.c.updated_at)
    .exists().label("adoptable"),
)


def _conv(row: Any) -> Conv:
    state = ConversationState.from_row(row.flow, row.step, row.data, row.history)
    return Conv(id=row.id, channel=row.channel, address=row.address, beneficiary_id=row.beneficiary_id,
                acting_as=row.acting_as, language=row.language, version=row.version, updated_at=row.updated_at,
                state=state, arrived_flow=row.flow, arrived_step=row.step)


def _loaded(row: Any) -> Conv:
    """A conversation read with `_WITH_ROW`."""
    conv = _conv(row)
    conv.contact_id = row.contact_id
    conv.person_status = (row.beneficiary_id, row.person_status) if row.beneficiary_id is not None else None
    conv.adoptable = bool(row.adoptable) if row.beneficiary_id is not None else False
    return conv


class ConversationStore:
    """The engine's statements, built once (building and keying a statement costs more than running it)."""

    def __init__(self) -> None:
        self._select = select(*_COLUMNS, *_WITH_ROW).where(CONV.c.channel == bindparam("channel"),
                                                           CONV.c.address == bindparam("address"))
        self._save = (update(CONV).where(CONV.c.id == bindparam("cid"), CONV.c.version == bindparam("old_version"))
                      .values(flow=bindparam("flow"), step=bindparam("step"), data=bindparam("data"),
                              history=bindparam("history"), version=bindparam("new_version"),
                              beneficiary_id=bindparam("beneficiary_id"), acting_as=bindparam("acting_as"),
                              language=bindparam("language"), updated_at=bindparam("now")))
        self._handled = (select(LOG.c.id).where(LOG.c.channel == bindparam("channel"),
                                                LOG.c.address == bindparam("address"), LOG.c.direction == "in",
                                                LOG.c.provider_message_id == bindparam("pid")).limit(1))
        self._contact = select(CONTACT.c.id, CONTACT.c.beneficiary_id, CONTACT.c.verified,
                               CONTACT.c.family_member_id).where(CONTACT.c.channel == bindparam("channel"),
                                                                 CONTACT.c.address == bindparam("address"))
        self._log = insert(LOG)
        self._select_seen = select(*_COLUMNS, *_WITH_ROW, self._handled.exists().label("seen")).where(
            CONV.c.channel == bindparam("channel"), CONV.c.address == bindparam("address"))
        self._adopt = select(*_COLUMNS).where(CONV.c.id == _adoptable_from(
            bindparam("beneficiary_id"), bindparam("acting_as", type_=CONV.c.acting_as.type), bindparam("cid"),
            bindparam("since", type_=CONV.c.updated_at.type)).scalar_subquery())
        self._release = (update(CONV).where(CONV.c.id == bindparam("cid"), CONV.c.version == bindparam("old_version"))
                         .values(flow=None, step=None, history=bindparam("history"), data=bindparam("data"),
                                 version=bindparam("new_version")))

    # -- one message's reads and writes -----------------------------------------------------
    def already_handled(self, conn: Connection, channel: str, address: str, provider_message_id: str) -> bool:
        return conn.execute(self._handled, {"channel": channel, "address": address,
                                            "pid": provider_message_id}).first() is not None

    def load(self, conn: Connection, channel: str, address: str) -> Conv | None:
        row = conn.execute(self._select, {"channel": channel, "address": address}).first()
        return _loaded(row) if row is not None else None

    def load_unless_seen(self, conn: Connection, channel: str, address: str,
                         provider_message_id: str) -> tuple[Conv | None, bool]:
        """The conversation, and whether this provider message was handled before (one round trip)."""
        if not provider_message_id:
            return self.load(conn, channel, address), False
        row = conn.execute(self._select_seen, {"channel": channel, "address": address,
                                               "pid": provider_message_id}).first()
        if row is None:
            return None, self.already_handled(conn, channel, address, provider_message_id)
        return _loaded(row), bool(row.seen)

    def create(self, conn: Connection, channel: str, address: str, now: datetime, language_of_text: str) -> Conv:
        """First message from an address: its contact (if new) and its conversation row.

        A message from the phone on the roll is that person (or their recorded family member)."""
        contact = conn.execute(self._contact, {"channel": channel, "address": address}).first()
        if contact is None:
            conn.execute(insert(CONTACT).values(channel=channel, address=address, verified=False, created_at=now))
        beneficiary_id: int | None = None
        acting_as: str | None = None
        language: str | None = None
        if contact is not None and contact.beneficiary_id is not None and (contact.verified or channel == "sms"):
            beneficiary_id = contact.beneficiary_id
            if contact.family_member_id:
                acting_as = conn.execute(select(FAMILY.c.relationship).where(
                    FAMILY.c.id == contact.family_member_id)).scalar()
            language = conn.execute(select(PERSON.c.language).where(PERSON.c.id == beneficiary_id)).scalar()
        language = language or language_of_text
        # Created "just before now", so a flow left on another channel in this same instant is newer.
        created = now - timedelta(microseconds=1)
        new_id = conn.execute(insert(CONV).values(
            channel=channel, address=address, beneficiary_id=beneficiary_id, acting_as=acting_as, language=language,
            data={}, history=[], version=0, updated_at=created, created_at=now).returning(CONV.c.id)).scalar_one()
        return Conv(id=new_id, channel=channel, address=address, beneficiary_id=beneficiary_id, acting_as=acting_as,
                    language=language, version=0, updated_at=created, state=ConversationState())

    def save(self, conn: Connection, conv: Conv, now: datetime) -> None:
        st = conv.state
        result = conn.execute(self._save, {
            "cid": conv.id, "old_version": conv.version, "flow": st.flow, "step": st.step, "data": st.to_data(),
            "history": list(st.history), "new_version": conv.version + 1, "beneficiary_id": conv.beneficiary_id,
            "acting_as": conv.acting_as, "language": conv.language, "now": now})
        if result.rowcount != 1:
            raise Conflict()

    def log(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        if rows:
            conn.execute(self._log, rows)

    def contact_id(self, conn: Connection, channel: str, address: str) -> int | None:
        row = conn.execute(self._contact, {"channel": channel, "address": address}).first()
        return row.id if row is not None else None

    # -- continuity across channels -----------------------------------------------------------
    def adopt(self, conn: Connection, conv: Conv) -> str | None:
        """Take over the newer unfinished flow of the same person on another channel; its channel, or None."""
        if conv.adoptable is False:  # known from the load: nothing to take over
            return None
        other = conn.execute(self._adopt, {"beneficiary_id": conv.beneficiary_id, "acting_as": conv.acting_as,
                                           "cid": conv.id, "since": conv.updated_at}).first()
        if other is None:
            return None
        theirs = _conv(other)
        conv.state.take_over(theirs.state)
        theirs.state.clear_flow()
        result = conn.execute(self._release, {"cid": theirs.id, "old_version": theirs.version, "history": [],
                                              "data": theirs.state.to_data(), "new_version": theirs.version + 1})
        if result.rowcount != 1:
            raise Conflict()
        return theirs.channel


def log_row(conv: Conv, direction: str, text: str, now: datetime, *, attachments: list[dict[str, Any]] | None = None,
            provider_message_id: str | None = None) -> dict[str, Any]:
    return {"channel": conv.channel, "address": conv.address, "direction": direction, "text": text,
            "attachments": attachments or [], "beneficiary_id": conv.beneficiary_id, "outbox_id": None,
            "provider_message_id": provider_message_id or None, "created_at": now}


def offer_flow(session: Session, *, channel: str, address: str, flow: str, step: str, beneficiary_id: int,
               language: str | None, now: datetime, args: dict[str, Any] | None = None,
               subject_application_id: int | None = None) -> bool:
    """Put an idle conversation at `step` of `flow` (so a bare reply answers that question).

    A conversation in the middle of another flow is left where it is; returns whether it was placed."""
    row = session.execute(select(*_COLUMNS).where(CONV.c.channel == channel, CONV.c.address == address)).first()
    if row is not None and row.flow is not None:
        return False
    state = ConversationState() if row is None else _conv(row).state
    state.clear_flow()
    state.flow, state.step = flow, step
    state.flow_args = dict(args or {})
    state.subject_application_id = subject_application_id
    if row is None:
        session.execute(insert(CONV).values(channel=channel, address=address, beneficiary_id=beneficiary_id,
                                            language=language, flow=flow, step=step, data=state.to_data(),
                                            history=[], version=1, updated_at=now, created_at=now))
    else:
        result = session.execute(update(CONV).where(CONV.c.id == row.id, CONV.c.version == row.version).values(
            flow=flow, step=step, data=state.to_data(), history=[], version=row.version + 1, updated_at=now))
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict()
    return True
