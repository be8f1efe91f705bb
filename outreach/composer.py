"""The broadcast composer's backend: what the console's compose page reads, checks and shows.

- `AudienceForm`: the audience as a form sends it (strings, check boxes), turned into the
  validated `AudienceFilter` with each problem tied to its field, in words staff read.
- `live_count`: who will get it, by channel and language, and who is left out and why
  (`audiences.audience_size`: one query).
- `preview`: per language and channel, the message exactly as it will arrive (rendered by the
  renderer enqueueing uses: on SMS the office signature, the text and 回复TD退订; on Telegram
  the text and its buttons), with the SMS encoding, segments and cost per message and in all.
- `sending_time`: "now", or a date and time in office time, checked (future, outside quiet hours).
- `template_fields`: the values a message kind needs, for a broadcast from a template.

The lifecycle (submit, approve, send back, send, cancel) is `outreach.broadcasts`; this
module only reads and checks.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import Session

from models.applications import ApplicationType, Stage
from models.outbox import Broadcast
from models.phone import mask_phone
from outreach.audiences import AudienceFilter, AudienceSize, audience_recipients, audience_size
from outreach.broadcasts import (
    BROADCAST_KIND,
    TEMPLATE_CONTEXT,
    BroadcastRefused,
    check_send_time,
    message_renderer,
    telegram_buttons,
)
from outreach.sms_text import sms_length
from outreach.templates import LANGUAGES, STAFF_VARIABLES, TemplateSet

KINDS = ("veteran", "retiree", "union_member")
CHANNELS = ("telegram", "sms")
SCHEMES = ("pension", "medical_mutual_aid", "subsistence", "veteran_insurance", "over80_insurance", "hardship",
           "preferential_care")
# Why someone matched is left out, in the order the page lists them (audiences.audience_size).
EXCLUSION_REASONS = ("opted_out", "blocked", "invalid", "no_contact", "paused", "deceased", "moved")
_TAG_SPLIT = re.compile(r"[,，、;；\s]+")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with what was typed, tied to the form field it is about."""

    field: str
    zh: str
    en: str

    def text(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh


class ComposeRefused(ValueError):
    """What was typed cannot be used; `problems` says what, field by field."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.field}: {p.en}" for p in problems))


YesNo = Literal["", "yes", "no"]


class AudienceForm(BaseModel):
    """The audience fields of the compose form, as posted (empty means "any")."""

    model_config = ConfigDict(extra="ignore")

    kinds: list[str] = Field(default_factory=list)
    district: str = ""
    street: str = ""
    community: str = ""
    age_min: str = ""
    age_max: str = ""
    living_alone: YesNo = ""
    disabled: YesNo = ""
    languages: list[str] = Field(default_factory=list)
    channel: str = ""
    schemes: list[str] = Field(default_factory=list)
    application_type: str = ""
    application_stage: str = ""
    tags: str = ""

    def to_filter(self) -> AudienceFilter:
        """The validated filter, or ComposeRefused naming every field that is wrong."""
        problems: list[Problem] = []

        def age(name: str, raw: str) -> int | None:
            raw = raw.strip()
            if not raw:
                return None
            if not raw.isdigit() or not 0 <= int(raw) <= 130:
                problems.append(Problem(name, f"年龄要写 0 到 130 之间的整数，“{raw}”不行",
                                        f"an age is a whole number from 0 to 130, not {raw!r}"))
                return None
            return int(raw)

        lo, hi = age("age_min", self.age_min), age("age_max", self.age_max)
        if lo is not None and hi is not None and lo > hi:
            problems.append(Problem("age_max", f"最大年龄 {hi} 小于最小年龄 {lo}",
                                    f"the highest age {hi} is below the lowest {lo}"))
        for name, values, known in (("kinds", self.kinds, KINDS), ("languages", self.languages, LANGUAGES),
                                    ("schemes", self.schemes, SCHEMES)):
            unknown = [v for v in values if v not in known]
            if unknown:
                problems.append(Problem(name, f"不认识的选项：{'、'.join(unknown)}", f"unknown choice(s): {', '.join(unknown)}"))
        if self.channel and self.channel not in CHANNELS:
            problems.append(Problem("channel", f"不认识的渠道：{self.channel}", f"unknown channel {self.channel!r}"))
        if self.application_type and self.application_type not in {t.value for t in ApplicationType}:
            problems.append(Problem("application_type", "不认识的申请类型", f"unknown application type {self.application_type!r}"))
        if self.application_stage and self.application_stage not in {s.value for s in Stage}:
            problems.append(Problem("application_stage", "不认识的办理环节", f"unknown stage {self.application_stage!r}"))
        tags = [t for t in _TAG_SPLIT.split(self.tags.strip()) if t]
        if any(len(t) > 32 for t in tags):
            problems.append(Problem("tags", "标签太长（每个最多 32 个字）", "a tag is at most 32 characters"))
        if problems:
            raise ComposeRefused(problems)
        spec: dict[str, Any] = {
            "kinds": sorted(set(self.kinds)), "district": self.district.strip() or None,
            "street": self.street.strip() or None, "community": self.community.strip() or None,
            "age_min": lo, "age_max": hi,
            "living_alone": None if not self.living_alone else self.living_alone == "yes",
            "disabled": None if not self.disabled else self.disabled == "yes",
            "languages": sorted(set(self.languages)), "channel": self.channel or None,
            "schemes": sorted(set(self.schemes)), "application_type": self.application_type or None,
            "application_stage": self.application_stage or None, "tags": tags}
        try:
            return AudienceFilter.model_validate(spec)
        except ValidationError as exc:  # a rule of the filter itself (kept in one place)
            raise ComposeRefused([Problem(str(e["loc"][0]) if e["loc"] else "audience", e["msg"], e["msg"])
                                  for e in exc.errors()]) from None

    @classmethod
    def from_filter(cls, f: AudienceFilter | dict[str, Any]) -> AudienceForm:
        """The form filled in from a stored filter (editing a broadcast)."""
        f = f if isinstance(f, AudienceFilter) else AudienceFilter.model_validate(f)

        def yes_no(v: bool | None) -> YesNo:
            return "" if v is None else "yes" if v else "no"

        return cls(kinds=list(f.kinds), district=f.district or "", street=f.street or "",
                   community=f.community or "", age_min="" if f.age_min is None else str(f.age_min),
                   age_max="" if f.age_max is None else str(f.age_max), living_alone=yes_no(f.living_alone),
                   disabled=yes_no(f.disabled), languages=list(f.languages), channel=f.channel or "",
                   schemes=list(f.schemes), application_type=f.application_type or "",
                   application_stage=f.application_stage or "", tags="、".join(f.tags))


# --- the live count ----------------------------------------------------------------------

@dataclass(frozen=True)
class LiveCount:
    matched: int
    reachable: int
    by_channel: dict[str, int]
    excluded: list[tuple[str, int]]  # (reason, n) in EXCLUSION_REASONS order, zero counts left out

    @classmethod
    def of(cls, size: AudienceSize) -> LiveCount:
        order = {r: i for i, r in enumerate(EXCLUSION_REASONS)}
        excluded = sorted(((r, n) for r, n in size.excluded.items() if n), key=lambda rn: order.get(rn[0], 99))
        return cls(size.matched, size.reachable, dict(size.by_channel), excluded)

    @property
    def excluded_total(self) -> int:
        return sum(n for _, n in self.excluded)


def live_count(session: Session, f: AudienceFilter, today: date) -> LiveCount:
    return LiveCount.of(audience_size(session, f, today))


# --- the preview -------------------------------------------------------------------------

@dataclass(frozen=True)
class MessagePreview:
    """One language on one channel, as it will arrive."""

    lang: str
    channel: str
    recipients: int  # how many get this version
    text: str
    example: str  # whose text this is: a real recipient (masked) or the sample person
    buttons: list[list[dict[str, str]]] = field(default_factory=list)  # Telegram
    encoding: str = ""  # SMS
    characters: int = 0
    segments: int = 0
    too_long: bool = False
    price_per_message: Decimal = Decimal(0)  # yuan
    price_total: Decimal = Decimal(0)
    problem: str = ""  # it cannot be rendered (too long, a value missing): the reason


@dataclass(frozen=True)
class Preview:
    count: LiveCount
    messages: list[MessagePreview]
    sms_segments: int
    price_total: Decimal  # yuan, SMS only (Telegram costs nothing per message)
    price_per_segment: Decimal
    estimated_seconds: float  # at the providers' limits, Telegram and SMS in parallel


_SAMPLE = {"zh-Hans": ("张建国", "张伯"), "zh-Hant": ("張建國", "張伯"), "en": ("Zhang Jianguo", "Zhang Jianguo")}


def draft_broadcast(*, title: str, audience: AudienceFilter, text: dict[str, str] | None = None,
                    template_kind: str | None = None, template_context: dict[str, Any] | None = None) -> Broadcast:
    """An unsaved Broadcast holding what the form says, for previewing before anything is stored."""
    body = dict(text or {}) if template_kind is None else {
        TEMPLATE_CONTEXT: json.dumps(template_context or {}, ensure_ascii=False, default=str)}
    return Broadcast(title=title, template_kind=template_kind, body=body,
                     audience=audience.model_dump(exclude_defaults=True))


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def preview(session: Session, b: Broadcast, *, settings: Any, templates: TemplateSet, today: date) -> Preview:
    """The message per language and channel as it will arrive, with its cost. Languages and
    channels with recipients come first; zh-Hans on both channels is always shown."""
    from outreach.sms_text import MessageTooLong
    from outreach.templates import MissingVariables, StaffTextError

    f = AudienceFilter.model_validate(b.audience)
    size = audience_size(session, f, today)
    count = LiveCount.of(size)
    try:
        render = message_renderer(b, templates)
    except StaffTextError as exc:
        raise ComposeRefused([Problem("text", p, p) for p in exc.problems]) from None
    price = Decimal(str(settings.sms_price_per_segment))
    real: dict[tuple[str, str], Any] = {}
    for r in audience_recipients(session, f, today, sample_per_language=3):
        real.setdefault((templates.language(r.lang), r.channel), r)
    groups: dict[tuple[str, str], int] = {}
    for (lang, channel), n in size.by_language_channel.items():
        key = (templates.language(lang), channel)
        groups[key] = groups.get(key, 0) + n
    for channel in CHANNELS:
        groups.setdefault(("zh-Hans", channel), 0)
    messages: list[MessagePreview] = []
    segments_total = 0
    total = Decimal(0)
    from outreach.notices import Recipient

    for (lang, channel), n in sorted(groups.items(), key=lambda kv: (-kv[1], LANGUAGES.index(kv[0][0]), kv[0][1])):
        recipient = real.get((lang, channel))
        if recipient is not None:
            shown = mask_phone(recipient.address) if channel == "sms" else f"Telegram {recipient.address}"
            example = f"{recipient.values.get('name', '')} · {shown}"
        else:
            name, salutation = _SAMPLE.get(lang, _SAMPLE["zh-Hans"])
            recipient = Recipient(beneficiary_id=0, contact_id=None, channel=channel, address="", lang=lang,
                                  values={"name": name, "salutation": salutation, "district": "", "street": "",
                                          "community": ""})
            example = name
        try:
            text, segments = render(recipient)
            problem = ""
        except MessageTooLong as exc:
            text, segments, problem = "", exc.length.segments, str(exc)
        except (MissingVariables, KeyError) as exc:
            text, segments, problem = "", 0, str(exc)
        if channel == "sms":
            length = sms_length(text) if text else None
            per = _money(price * segments)
            msg = MessagePreview(lang, channel, n, text, example, encoding=length.encoding if length else "",
                                 characters=length.characters if length else 0, segments=segments,
                                 too_long=bool(problem) and segments > 0, price_per_message=per,
                                 price_total=_money(per * n), problem=problem)
            segments_total += segments * n
            total += per * n
        else:
            msg = MessagePreview(lang, channel, n, text, example, buttons=telegram_buttons(lang), problem=problem)
        messages.append(msg)
    telegram = sum(m.recipients for m in messages if m.channel == "telegram")
    seconds = max(telegram / settings.telegram_rate_per_s, segments_total / settings.twilio_segments_per_s)
    return Preview(count, messages, segments_total, _money(total), price, round(seconds, 1))


# --- placeholders, sending time, template kinds ---------------------------------------------

def placeholders() -> list[tuple[str, str]]:
    """What staff may write in a broadcast: (`{{ name }}`, the variable's code for its words)."""
    return [("{{ " + name + " }}", name) for name in STAFF_VARIABLES]


def text_problems(text: dict[str, str]) -> list[Problem]:
    """What is wrong with each language staff wrote, on that language's field (a text the
    office did not write, such as zh-Hant converted from zh-Hans, is not theirs to fix)."""
    from outreach.templates import validate_staff_text

    fields = {"zh-Hans": "text_zh", "zh-Hant": "text_hant", "en": "text_en"}
    out = []
    for lang, source in text.items():
        for problem in validate_staff_text(source):
            zh, _, en = problem.partition(" / ")
            out.append(Problem(fields.get(lang, "text_zh"), zh, en or zh))
    return out


def sending_time(when: str, day: str, clock_time: str, *, settings: Any, now: datetime) -> datetime | None:
    """The form's sending time: None for "now", else the aware instant of that office date and
    time, checked by `broadcasts.check_send_time` (future, within a year, outside quiet hours)."""
    if when != "later":
        return None
    try:
        at = datetime.combine(date.fromisoformat(day.strip()), time.fromisoformat(clock_time.strip()), settings.tz)
    except ValueError:
        raise ComposeRefused([Problem("send_at", "请填写发送日期和时间，例如 2026-03-02 和 09:30",
                                      "give a date and a time, e.g. 2026-03-02 and 09:30")]) from None
    try:
        check_send_time(at, now=now, settings=settings)
    except BroadcastRefused as exc:
        zh, _, en = str(exc).partition(" / ")
        raise ComposeRefused([Problem("send_at", zh, en or zh)]) from None
    return at


@dataclass(frozen=True)
class TemplateField:
    name: str
    input: str  # text | date | number | yuan | choice
    choices: tuple[str, ...] = ()


_DATE_NAMES = ("deadline", "pay_date", "visit_date", "start_date", "day")


def broadcast_kinds(templates: TemplateSet) -> list[str]:
    """Message kinds staff may broadcast instead of writing text."""
    return sorted(k for k, spec in templates.kinds.items()
                  if spec.audience == "beneficiary" and k not in ("otp", BROADCAST_KIND) and not k.startswith("stage_"))


def template_fields(templates: TemplateSet, kind: str) -> list[TemplateField]:
    """The values a kind needs besides the salutation, each with the input that suits it."""
    spec = templates.kinds[kind]
    out = []
    for name in spec.variables:
        if name == "salutation":
            continue
        if name in spec.choices:
            out.append(TemplateField(name, "choice", tuple(spec.choices[name])))
        elif name in _DATE_NAMES:
            out.append(TemplateField(name, "date"))
        elif name.endswith("_fen"):
            out.append(TemplateField(name, "yuan"))
        elif name in ("days_left", "minutes"):
            out.append(TemplateField(name, "number"))
        else:
            out.append(TemplateField(name, "text"))
    return out


def template_context(templates: TemplateSet, kind: str, form: dict[str, str]) -> dict[str, Any]:
    """The kind's values from the form (`tpl_<name>` fields), typed; ComposeRefused otherwise."""
    if kind not in broadcast_kinds(templates):
        raise ComposeRefused([Problem("template_kind", "这种消息不能群发", f"{kind!r} cannot be broadcast")])
    values: dict[str, Any] = {}
    problems = []
    for f in template_fields(templates, kind):
        raw = (form.get(f"tpl_{f.name}") or "").strip()
        if not raw:
            problems.append(Problem(f"tpl_{f.name}", "请填写这一项", "this value is needed"))
            continue
        try:
            if f.input == "date":
                values[f.name] = date.fromisoformat(raw).isoformat()
            elif f.input == "number":
                values[f.name] = int(raw)
            elif f.input == "yuan":
                amount = Decimal(raw)
                if amount <= 0:
                    raise ValueError(raw)
                values[f.name] = int(_money(amount) * 100)
            elif f.input == "choice":
                if raw not in f.choices:
                    raise ValueError(raw)
                values[f.name] = raw
            else:
                values[f.name] = raw[:500]
        except (ValueError, ArithmeticError):
            problems.append(Problem(f"tpl_{f.name}", f"“{raw}”不是有效的值", f"{raw!r} is not a valid value"))
    if problems:
        raise ComposeRefused(problems)
    return values


__all__ = ["AudienceForm", "ComposeRefused", "Problem", "LiveCount", "live_count", "Preview", "MessagePreview",
           "preview", "draft_broadcast", "placeholders", "sending_time", "broadcast_kinds", "template_fields",
           "template_context", "EXCLUSION_REASONS"]
