"""The scheduler's rules as validated data (outreach/schedule.yaml): job times, reminder
offsets, catch-up windows, payment days per scheme, escalation limits, office hours.

Festival occasions, their audiences and send time live in outreach/occasions.yaml (owned
by occasions.py); this file holds everything else the sweeps need.
"""

from __future__ import annotations

import os
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, Field, field_validator

# libyaml's parser, several times faster than the pure-Python one (same results); the pure one
# where libyaml is absent.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

DEFAULT_FILE = Path(__file__).with_name("schedule.yaml")


class Certification(BaseModel):
    reminder_days: list[int] = Field(default_factory=lambda: [30, 7, 1])
    home_visit_after_days: int = Field(default=15, ge=0)

    @field_validator("reminder_days")
    @classmethod
    def _desc(cls, value: list[int]) -> list[int]:
        if not value or any(d < 0 for d in value) or len(set(value)) != len(value):
            raise ValueError("reminder_days: distinct non-negative day counts")
        return sorted(value, reverse=True)


class Over80(BaseModel):
    age: int = 80
    catch_up_days: int = Field(default=30, ge=0)


class SchemeRule(BaseModel):
    payment_day: int | None = Field(default=None, ge=1, le=31)
    notify: bool = True


class Payments(BaseModel):
    deadline_reminder_days: int = Field(default=3, ge=0)
    catch_up_days: int = Field(default=3, ge=0, le=27)
    schemes: dict[str, SchemeRule] = Field(default_factory=dict)


class OfficeHours(BaseModel):
    start: time = time(9, 0)
    end: time = time(17, 0)
    weekdays: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4])  # Monday = 0

    def working_seconds(self, start: datetime, end: datetime, tz: ZoneInfo) -> float:
        """Office working time between two aware instants (wall time outside office hours and
        weekends does not count). Public holidays are not modelled: a ticket raised before a
        holiday escalates on its first working morning after, which staff prefer to silence."""
        if end <= start:
            return 0.0
        local_start, local_end = start.astimezone(tz), end.astimezone(tz)
        total = 0.0
        day = local_start.date()
        while day <= local_end.date():
            if day.weekday() in self.weekdays:
                open_at = datetime.combine(day, self.start, tz)
                close_at = datetime.combine(day, self.end, tz)
                lo, hi = max(open_at, local_start), min(close_at, local_end)
                if hi > lo:
                    total += (hi - lo).total_seconds()
            day += timedelta(days=1)
        return total


class Escalation(BaseModel):
    stage_limit_days: dict[str, int] = Field(default_factory=dict)
    ticket_working_hours: float = Field(default=4, gt=0)
    office_hours: OfficeHours = Field(default_factory=OfficeHours)


class ScheduleRules(BaseModel):
    daily_sweep_time: time = time(7, 30)
    send_time: time = time(9, 30)
    payment_run_time: time = time(10, 0)
    staff_summary_time: time = time(8, 30)
    certification: Certification = Field(default_factory=Certification)
    over_80: Over80 = Field(default_factory=Over80)
    payments: Payments = Field(default_factory=Payments)
    escalation: Escalation = Field(default_factory=Escalation)

    def send_at(self, day: date, tz: ZoneInfo) -> datetime:
        """When something queued for `day` may go out (office time), as an aware datetime."""
        return datetime.combine(day, self.send_time, tz)


def load_rules(path: str | Path | None = None) -> ScheduleRules:
    """Read the rules; NUANXIN_SCHEDULE_FILE overrides the bundled outreach/schedule.yaml."""
    path = Path(path or os.environ.get("NUANXIN_SCHEDULE_FILE") or DEFAULT_FILE)
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER) or {}
    return ScheduleRules.model_validate(data)


@lru_cache(maxsize=1)
def default_rules() -> ScheduleRules:
    return load_rules()
