"""Working days in mainland China: weekends and public holidays off, make-up working days on.

`chinese_calendar` holds the State Council's yearly holiday arrangement (the Spring Festival
week, National Day week, and the Saturdays or Sundays worked in exchange). A year it does not
cover yet (it is published each November) falls back to Monday to Friday, so a promise made
late in December is never refused, only less exact.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import chinese_calendar


@lru_cache(maxsize=4096)
def is_workday(day: date) -> bool:
    """True on a working day of mainland China's calendar (a make-up Saturday included)."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:  # a year the calendar does not cover yet
        return day.weekday() < 5


def add_workdays(day: date, count: int) -> date:
    """The `count`-th working day after `day` (`day` itself not counted)."""
    if count < 1:
        raise ValueError("count must be at least 1")
    current = day
    while count:
        current += timedelta(days=1)
        if is_workday(current):
            count -= 1
    return current


def reply_due(now: datetime, tz: ZoneInfo, workdays: int = 1) -> date:
    """The office day by which "within N working days" falls, counted from the office's own
    date of `now` (a message at 23:30 in Shanghai is counted from that day, not from UTC's)."""
    return add_workdays(now.astimezone(tz).date(), workdays)
