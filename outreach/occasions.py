"""Festival dates for any year, and who is greeted on which occasion, and when.

Lunar festivals move every year, and 清明 is a solar term (4 or 5 April, sometimes the 6th),
so dates come from lunar-python's calendar, never from a hand-typed table. The tests
cross-check ten years against a second library (sxtwl).

Who gets which greeting, and at what time, is data: `outreach/occasions.yaml` (the reasons
for each choice are written there), which an office may replace with its own file or
override field by field (`load_occasion_rules(path, overrides)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from lunar_python import Lunar, Solar

# libyaml's parser, several times faster than the pure-Python one (same results); the pure one
# where libyaml is absent.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

OCCASIONS: tuple[str, ...] = (
    "spring_festival",  # 春节, 正月初一
    "lantern",  # 元宵, 正月十五
    "qingming",  # 清明, the solar term
    "dragon_boat",  # 端午, 五月初五
    "army_day",  # 八一建军节, 08-01
    "mid_autumn",  # 中秋, 八月十五
    "national_day",  # 国庆, 10-01
    "double_ninth",  # 重阳 (敬老节), 九月初九
)
KINDS = frozenset({"veteran", "retiree", "union_member"})
DEFAULT_RULES_FILE = Path(__file__).with_name("occasions.yaml")

_LUNAR = {"spring_festival": (1, 1), "lantern": (1, 15), "dragon_boat": (5, 5), "mid_autumn": (8, 15),
          "double_ninth": (9, 9)}
_FIXED = {"national_day": (10, 1), "army_day": (8, 1)}


class OccasionConfigError(ValueError):
    """The occasions file or an override names something unknown; the message says what."""


def _lunar_to_date(year: int, month: int, day: int) -> date:
    solar = Lunar.fromYmd(year, month, day).getSolar()
    return date(solar.getYear(), solar.getMonth(), solar.getDay())


def _qingming(year: int) -> date:
    # Any day in mid-April belongs to a lunar year whose jieqi table holds this year's 清明.
    solar = Solar.fromYmd(year, 4, 15).getLunar().getJieQiTable()["清明"]
    return date(solar.getYear(), solar.getMonth(), solar.getDay())


@lru_cache(maxsize=64)
def _dates(year: int) -> tuple[tuple[str, date], ...]:
    out: dict[str, date] = {}
    for name, (m, d) in _LUNAR.items():
        # Lunar month 1–9 of lunar year Y always falls within Gregorian year Y.
        out[name] = _lunar_to_date(year, m, d)
    out["qingming"] = _qingming(year)
    for name, (m, d) in _FIXED.items():
        out[name] = date(year, m, d)
    return tuple(sorted(out.items(), key=lambda kv: kv[1]))


def occasion_dates(year: int) -> dict[str, date]:
    """Each occasion's date in Gregorian `year`, in calendar order."""
    return dict(_dates(year))


def occasions_between(start: date, end: date) -> list[tuple[str, date]]:
    """Occasions falling on `start`..`end` (both included), in date order."""
    out = [(name, day) for year in range(start.year, end.year + 1)
           for name, day in _dates(year) if start <= day <= end]
    return sorted(out, key=lambda item: (item[1], item[0]))


@dataclass(frozen=True)
class OccasionRule:
    name: str
    audience: frozenset[str]  # beneficiary kinds greeted; empty: the occasion is off
    days_before: int  # 0: on the day; 1: the day before
    send_time: time  # office time

    def greets(self, kinds: list[str] | set[str] | frozenset[str]) -> bool:
        return bool(self.audience & set(kinds))

    def send_day(self, festival: date) -> date:
        return festival - timedelta(days=self.days_before)

    def send_at(self, festival: date, tz: ZoneInfo) -> datetime:
        """When the greeting for `festival` goes out, as an aware UTC datetime."""
        return datetime.combine(self.send_day(festival), self.send_time, tzinfo=tz).astimezone(UTC)


def _parse_time(value: Any, where: str) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, int):  # YAML reads 09:00 unquoted as sexagesimal minutes
        return time(value // 60, value % 60)
    try:
        return time.fromisoformat(str(value))
    except ValueError:
        raise OccasionConfigError(f"{where}: send_time {value!r} is not a time of day like 09:00") from None


def _rule(name: str, spec: dict[str, Any], default_time: time) -> OccasionRule:
    if name not in OCCASIONS:
        raise OccasionConfigError(f"unknown occasion {name!r} (known: {', '.join(OCCASIONS)})")
    unknown_fields = set(spec) - {"audience", "days_before", "send_time"}
    if unknown_fields:
        raise OccasionConfigError(f"{name}: unknown field(s) {', '.join(sorted(unknown_fields))}")
    audience = frozenset(spec.get("audience") or [])
    if audience - KINDS:
        raise OccasionConfigError(f"{name}: unknown beneficiary kind(s) {', '.join(sorted(audience - KINDS))}"
                                  f" (known: {', '.join(sorted(KINDS))})")
    days_before = int(spec.get("days_before", 0))
    if not 0 <= days_before <= 7:
        raise OccasionConfigError(f"{name}: days_before must be 0..7, got {days_before}")
    send_time = _parse_time(spec["send_time"], name) if "send_time" in spec else default_time
    return OccasionRule(name, audience, days_before, send_time)


def load_occasion_rules(path: Path | str | None = None,
                        overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, OccasionRule]:
    """Rules from the YAML file (default `outreach/occasions.yaml`), with per-occasion
    `overrides` (e.g. from settings) applied field by field on top. Every occasion has a rule."""
    raw = yaml.load(Path(path or DEFAULT_RULES_FILE).read_text(encoding="utf-8"), Loader=_YAML_LOADER) or {}
    default_time = _parse_time(raw.get("send_time", "09:00"), "send_time")
    specs: dict[str, dict[str, Any]] = {name: {"audience": []} for name in OCCASIONS}
    for name, spec in (raw.get("occasions") or {}).items():
        specs.setdefault(name, {}).update(spec or {})
    for name, spec in (overrides or {}).items():
        specs.setdefault(name, {}).update(spec or {})
    return {name: _rule(name, spec, default_time) for name, spec in specs.items()}


@dataclass(frozen=True)
class DueGreeting:
    occasion: str
    festival: date
    send_at: datetime  # UTC
    audience: frozenset[str]

    @property
    def occurrence(self) -> str:
        """Distinguishes this year's greeting from next year's in the idempotency key."""
        return occurrence(self.occasion, self.festival)


def occurrence(name: str, festival: date) -> str:
    return f"{name}-{festival.isoformat()}"


def greetings_due(start: datetime, end: datetime, tz: ZoneInfo,
                  rules: dict[str, OccasionRule] | None = None) -> list[DueGreeting]:
    """Greetings whose send time falls in [start, end) (aware datetimes): what a daily
    scheduler sweep asks for. Occasions with an empty audience are left out."""
    rules = rules or load_occasion_rules()
    # A greeting may be sent up to 7 days before its festival: look a little past `end`.
    first = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date() + timedelta(days=8)
    due = []
    for name, day in occasions_between(first, last):
        rule = rules.get(name)
        if rule is None or not rule.audience:
            continue
        at = rule.send_at(day, tz)
        if start <= at < end:
            due.append(DueGreeting(name, day, at, rule.audience))
    return due


def rules_for(settings: Any) -> dict[str, OccasionRule]:
    """The rules in force: `settings.occasions_file` (NUANXIN_OCCASIONS_FILE) when set, else the default file."""
    return load_occasion_rules(getattr(settings, "occasions_file", None))
