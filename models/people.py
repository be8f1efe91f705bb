"""Beneficiaries, their contact addresses, family members and scheme memberships."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Index, UniqueConstraint, event, select
from sqlmodel import Field, Session, SQLModel

from models.base import JSONType, UTCDateTime, utcnow


class BeneficiaryKind(StrEnum):
    VETERAN = "veteran"
    RETIREE = "retiree"
    UNION_MEMBER = "union_member"


class BeneficiaryStatus(StrEnum):
    ACTIVE = "active"
    DECEASED = "deceased"
    MOVED = "moved"


class Language(StrEnum):
    ZH_HANS = "zh-Hans"
    ZH_HANT = "zh-Hant"
    EN = "en"


class Channel(StrEnum):
    TELEGRAM = "telegram"
    SMS = "sms"
    CONSOLE = "console"


UNRANKED = 8  # outreach.reach.RANK_NONE: no usable, stopped or invalid contact


class Beneficiary(SQLModel, table=True):
    __tablename__ = "beneficiary"
    __table_args__ = (
        Index("ix_beneficiary_status_certified", "status", "last_certified_on"),
        Index("ix_beneficiary_area", "district", "street", "community"),
        # What the broadcast composer's count reads for the filters without an area, tag or
        # scheme: the person's standing, language and reach ranks with the filter columns, so
        # the count over a million people scans this instead of the roll's wide rows.
        Index("ix_beneficiary_audience", "status", "language", "reach_rank", "reach_rank_telegram", "reach_rank_sms",
              "outreach_paused_at", "is_veteran", "is_retiree", "is_union_member", "living_alone", "disabled",
              "birth_date"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    # Keyed hash (HMAC-SHA256) of the normalised ID-card number: the lookup key.
    id_hash: str = Field(max_length=64, unique=True, index=True)
    id_masked: str = Field(max_length=32)  # 4407**********1234
    id_last6_hash: str = Field(default="", max_length=64, index=True)
    birth_date: date | None = Field(default=None, index=True)
    sex: str | None = Field(default=None, max_length=1)  # "M" / "F", from the ID number
    # One person may be more than one kind.
    is_veteran: bool = Field(default=False, index=True)
    is_retiree: bool = Field(default=False, index=True)
    is_union_member: bool = Field(default=False, index=True)
    district: str = Field(default="", max_length=64)
    street: str = Field(default="", max_length=64)
    community: str = Field(default="", max_length=64)
    living_alone: bool = False
    disabled: bool = False
    language: str = Field(default=Language.ZH_HANS.value, max_length=8)
    status: str = Field(default=BeneficiaryStatus.ACTIVE.value, max_length=16)
    deceased_on: date | None = None
    moved_on: date | None = None
    # Set while a reported death, move or contact change awaits staff verification: no
    # proactive outreach until then (replies to what the person asked still go).
    outreach_paused_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    outreach_paused_reason: str | None = Field(default=None, max_length=200)
    last_certified_on: date | None = None
    # Veterans' fields (seed 003).
    enlistment_date: date | None = None
    discharge_date: date | None = None
    placement_type: str | None = Field(default=None, max_length=32)
    placement_unit: str | None = Field(default=None, max_length=128)
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    source: str = Field(default="import", max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # The smallest contact rank of the person's contacts for a bulk message (either channel, and
    # each alone): what the broadcast composer counts by. Kept by triggers on `contact`
    # (outreach/reach_summary.py), never written by code; UNRANKED: no contact yet.
    reach_rank: int = Field(default=UNRANKED, sa_column_kwargs={"server_default": str(UNRANKED)})
    reach_rank_telegram: int = Field(default=UNRANKED, sa_column_kwargs={"server_default": str(UNRANKED)})
    reach_rank_sms: int = Field(default=UNRANKED, sa_column_kwargs={"server_default": str(UNRANKED)})

    @property
    def kinds(self) -> list[str]:
        out = []
        if self.is_veteran:
            out.append(BeneficiaryKind.VETERAN.value)
        if self.is_retiree:
            out.append(BeneficiaryKind.RETIREE.value)
        if self.is_union_member:
            out.append(BeneficiaryKind.UNION_MEMBER.value)
        return out

    def set_kinds(self, kinds: list[str] | set[str]) -> None:
        self.is_veteran = BeneficiaryKind.VETERAN.value in kinds
        self.is_retiree = BeneficiaryKind.RETIREE.value in kinds
        self.is_union_member = BeneficiaryKind.UNION_MEMBER.value in kinds

    @property
    def is_active(self) -> bool:
        return self.status == BeneficiaryStatus.ACTIVE.value

    def age_on(self, day: date) -> int | None:
        if self.birth_date is None:
            return None
        b = self.birth_date
        return day.year - b.year - ((day.month, day.day) < (b.month, b.day))


class SchemeMembership(SQLModel, table=True):
    """A beneficiary's membership of a scheme for a period, e.g. medical mutual aid paid for 2026."""

    __tablename__ = "scheme_membership"
    __table_args__ = (UniqueConstraint("beneficiary_id", "scheme", "period"),)

    id: int | None = Field(default=None, primary_key=True)
    beneficiary_id: int = Field(foreign_key="beneficiary.id", index=True)
    scheme: str = Field(max_length=32)  # medical_mutual_aid, pension, subsistence, ...
    period: int  # year
    paid_on: date | None = None
    amount_fen: int | None = None  # money in fen (1/100 yuan)
    payment_day: int | None = None  # day of month this scheme pays this person, if it pays
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))


class Contact(SQLModel, table=True):
    """One address on one channel. A Telegram chat or a phone may exist before it is linked."""

    __tablename__ = "contact"
    __table_args__ = (UniqueConstraint("channel", "address"),)

    id: int | None = Field(default=None, primary_key=True)
    beneficiary_id: int | None = Field(default=None, foreign_key="beneficiary.id", index=True)
    channel: str = Field(max_length=16)
    address: str = Field(max_length=64)  # Telegram chat id, or phone in E.164
    verified: bool = False
    verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Set when this address belongs to a family member acting for the beneficiary.
    family_member_id: int | None = Field(default=None, foreign_key="family_member.id")
    opted_out_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    opted_out_reason: str | None = Field(default=None, max_length=200)
    blocked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    invalid_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    invalid_reason: str | None = Field(default=None, max_length=200)
    last_inbound_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    @property
    def reachable(self) -> bool:
        return self.opted_out_at is None and self.blocked_at is None and self.invalid_at is None


class FamilyMember(SQLModel, table=True):
    """Someone who may act for a beneficiary (son, daughter, spouse, carer)."""

    __tablename__ = "family_member"

    id: int | None = Field(default=None, primary_key=True)
    beneficiary_id: int = Field(foreign_key="beneficiary.id", index=True)
    name: str = Field(default="", max_length=100)
    relationship: str = Field(max_length=32)  # child, spouse, sibling, carer, other
    phone: str | None = Field(default=None, max_length=20)  # E.164
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


@event.listens_for(Contact.__table__, "after_create")  # type: ignore[attr-defined]
def _install_reach_triggers(_table: Any, connection: Any, **_kw: Any) -> None:
    """The triggers that keep `Beneficiary.reach_rank*` (outreach/reach_summary.py); migrations
    install them too (models/migrations/env.py)."""
    from outreach.reach_summary import install

    install(connection)


def lock_people(session: Session, *beneficiary_ids: int | None) -> None:
    """Take these people's row locks, in id order, before writing any of their contacts.

    The reach triggers update the person's row whenever one of their contacts is written, so a
    contact write locks the contact and then the person. A writer that held the person (or
    another of their contacts) and then wrote a contact would deadlock against one writing in
    that order; with every contact writer calling this first, all of them lock person before
    contact, and the trigger finds the lock already held. FOR NO KEY UPDATE is the lock the
    trigger's UPDATE takes, so inserts of rows pointing at the person (their key share) never
    wait for it. SQLite has one writer at a time: nothing to order."""
    ids = sorted({i for i in beneficiary_ids if i is not None})
    if not ids or session.get_bind().dialect.name == "sqlite":
        return
    table = Beneficiary.__table__  # type: ignore[attr-defined]
    session.execute(select(table.c.id).where(table.c.id.in_(ids)).order_by(table.c.id)
                    .with_for_update(key_share=True)).all()
