"""Who a broadcast goes to: a validated filter, its size (with the excluded counted by reason),
and its recipients in id order for batched enqueueing.

The filter is data (stored as JSON on the Broadcast row), checked on the way in: an unknown
field, kind, stage or an inverted age range is refused with a message saying which.
Who is reached, on which address, and why the others are not, is the one contact rule
(`outreach.reach`) for a bulk message.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import String, exists, func, literal, or_, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB, array
from sqlmodel import Session

from models.applications import Application, ApplicationType, Stage
from models.people import SchemeMembership
from outreach import reach, reach_summary
from outreach.reach import B, C
from outreach.sweeps import add_years

Kind = Literal["veteran", "retiree", "union_member"]
SendChannel = Literal["telegram", "sms"]
BROADCAST_CLASS = reach.MessageClass.BULK
# Schemes a person can be a member of for a year (models.people.SchemeMembership.scheme).
Scheme = Literal["pension", "medical_mutual_aid", "subsistence", "veteran_insurance", "over80_insurance",
                 "hardship", "preferential_care"]


class AudienceFilter(BaseModel):
    """Everyone matching every given field (a list field matches any of its values)."""

    model_config = ConfigDict(extra="forbid")

    kinds: list[Kind] = Field(default_factory=list)
    district: str | None = None
    street: str | None = None
    community: str | None = None
    age_min: int | None = Field(default=None, ge=0, le=130)
    age_max: int | None = Field(default=None, ge=0, le=130)
    living_alone: bool | None = None
    disabled: bool | None = None
    channel: SendChannel | None = None
    languages: list[str] = Field(default_factory=list)
    application_type: str | None = None
    application_stage: str | None = None
    tags: list[str] = Field(default_factory=list)
    # Members of any of these schemes for the current year (office time).
    schemes: list[Scheme] = Field(default_factory=list)

    @field_validator("application_type")
    @classmethod
    def _type(cls, value: str | None) -> str | None:
        if value is not None and value not in {t.value for t in ApplicationType}:
            raise ValueError(f"unknown application type {value!r}")
        return value

    @field_validator("application_stage")
    @classmethod
    def _stage(cls, value: str | None) -> str | None:
        if value is not None and value not in {s.value for s in Stage}:
            raise ValueError(f"unknown stage {value!r}")
        return value

    @model_validator(mode="after")
    def _ages(self) -> AudienceFilter:
        if self.age_min is not None and self.age_max is not None and self.age_min > self.age_max:
            raise ValueError(f"age_min {self.age_min} is above age_max {self.age_max}")
        return self

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.model_dump(exclude_defaults=True).items()]
        return ", ".join(parts) or "everyone"


def _tags_clause(session: Session, tags: list[str]) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return type_coerce(B.c.tags, JSONB).has_any(array(tags, type_=String))
    each = func.json_each(B.c.tags).table_valued("value")
    return exists(select(literal(1)).select_from(each).where(each.c.value.in_(tags)))


def filter_clauses(session: Session, f: AudienceFilter, today: date) -> list[Any]:
    """The filter as SQL on the beneficiary table (status not included: the size counts it)."""
    b = B.c
    out: list[Any] = []
    if f.kinds:
        flags = {"veteran": b.is_veteran, "retiree": b.is_retiree, "union_member": b.is_union_member}
        out.append(or_(*[flags[k].is_(True) for k in f.kinds]))
    for name in ("district", "street", "community"):
        value = getattr(f, name)
        if value:
            out.append(b[name] == value)
    if f.age_min is not None:
        out.append(b.birth_date <= add_years(today, -f.age_min))
    if f.age_max is not None:
        out.append(b.birth_date > add_years(today, -(f.age_max + 1)))
    if f.living_alone is not None:
        out.append(b.living_alone.is_(f.living_alone))
    if f.disabled is not None:
        out.append(b.disabled.is_(f.disabled))
    if f.languages:
        out.append(b.language.in_(f.languages))
    if f.application_type or f.application_stage:
        a = Application.__table__.alias("aud_app")  # type: ignore[attr-defined]
        conds = [a.c.beneficiary_id == b.id]
        if f.application_type:
            conds.append(a.c.type == f.application_type)
        if f.application_stage:
            conds.append(a.c.stage == f.application_stage)
        out.append(exists().where(*conds))
    if f.tags:
        out.append(_tags_clause(session, f.tags))
    if f.schemes:
        m = SchemeMembership.__table__.alias("aud_scheme")  # type: ignore[attr-defined]
        out.append(exists().where(m.c.beneficiary_id == b.id, m.c.scheme.in_(f.schemes), m.c.period == today.year))
    return out


def _contact_id(f: AudienceFilter) -> Any:
    return reach.best_contact_id(B, BROADCAST_CLASS, (f.channel,) if f.channel else None)


@dataclass
class AudienceSize:
    matched: int = 0  # everyone the filter matches, whatever their status
    reachable: int = 0  # those a message will be queued for
    # why the others are left out (reach.Stop): deceased, moved, paused, opted_out, blocked, invalid, no_contact
    excluded: dict[str, int] = field(default_factory=dict)
    by_channel: dict[str, int] = field(default_factory=dict)
    by_language_channel: dict[tuple[str, str], int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"matched": self.matched, "reachable": self.reachable, "excluded": dict(self.excluded),
                "by_channel": dict(self.by_channel),
                "by_language_channel": {f"{k[0]}/{k[1]}": v for k, v in self.by_language_channel.items()}}


def audience_size(session: Session, f: AudienceFilter, today: date) -> AudienceSize:
    """How many a broadcast reaches, and why the others are left out: one GROUP BY over the roll.

    Each person's row carries the smallest `reach.contact_rank` of their contacts for a bulk
    message (`reach_summary`: computed by that rule, kept in step with every contact write by
    the database), so the count reads the roll alone: that rank with `reach.person_stop` says
    (`reach.standing`) whether and on which channel each person is reached, or why not."""
    channels = (f.channel,) if f.channel else None
    stop = reach.person_stop(B, BROADCAST_CLASS).label("stop")
    rank = reach_summary.rank_column(f.channel)
    size = AudienceSize()
    rows = session.execute(select(stop, B.c.language, rank, func.count()).where(*filter_clauses(session, f, today))
                           .group_by(stop, B.c.language, rank)).all()
    for why_person, lang, person_rank, n in rows:
        size.matched += n
        why, channel = reach.standing(why_person, person_rank, channels)
        if channel is not None:
            size.reachable += n
            size.by_channel[channel] = size.by_channel.get(channel, 0) + n
            key = (lang or "zh-Hans", channel)
            size.by_language_channel[key] = size.by_language_channel.get(key, 0) + n
        else:
            assert why is not None
            size.excluded[why.value] = size.excluded.get(why.value, 0) + n
    return size


def audience_recipients(session: Session, f: AudienceFilter, today: date, *, after_id: int = 0,
                        limit: int = 5000, sample_per_language: int | None = None) -> list[Any]:
    """Reachable recipients with id > after_id, in id order (one batch), as `notices.Recipient`.
    `sample_per_language`: instead, up to that many real recipients per language (previews)."""
    from outreach.notices import Recipient, salutation_from

    cid = _contact_id(f)
    inner = select(B.c.id, B.c.name, B.c.sex, B.c.birth_date, B.c.language, B.c.district, B.c.street,
                   B.c.community, cid.label("cid")).where(
        *reach.person_clauses(BROADCAST_CLASS), B.c.id > after_id, *filter_clauses(session, f, today)
    ).subquery()
    stmt = select(inner, C.c.channel, C.c.address).join(C, C.c.id == inner.c.cid).order_by(inner.c.id)
    # A preview looks at the first few thousand only: enough for samples in every language present.
    stmt = stmt.limit(limit if sample_per_language is None else 5000)
    out = []
    seen: dict[str, int] = {}
    for r in session.execute(stmt).mappings():
        lang = r["language"] or "zh-Hans"
        if sample_per_language is not None:
            if seen.get(lang, 0) >= sample_per_language:
                continue
            seen[lang] = seen.get(lang, 0) + 1
        values = {"name": r["name"], "salutation": salutation_from(r["name"], r["sex"], r["birth_date"], lang, on=today),
                  "district": r["district"], "street": r["street"], "community": r["community"]}
        out.append(Recipient(beneficiary_id=r["id"], contact_id=r["cid"], channel=r["channel"],
                             address=r["address"], lang=lang, values=values))
    return out


def iter_recipients(session: Session, f: AudienceFilter, today: date, batch: int = 5000) -> Iterator[list[Any]]:
    after = 0
    while True:
        chunk = audience_recipients(session, f, today, after_id=after, limit=batch)
        if not chunk:
            return
        yield chunk
        after = chunk[-1].beneficiary_id


__all__ = ["AudienceFilter", "AudienceSize", "audience_size", "audience_recipients", "iter_recipients",
           "filter_clauses"]
