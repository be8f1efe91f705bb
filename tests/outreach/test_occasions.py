"""Festival dates (lunar-python, cross-checked with sxtwl) and who is greeted when (outreach/occasions.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sxtwl

from outreach.occasions import (
    OCCASIONS,
    OccasionConfigError,
    greetings_due,
    load_occasion_rules,
    occasion_dates,
    occasions_between,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
QINGMING_INDEX = 7  # sxtwl numbers solar terms from 冬至 = 0: 小寒 大寒 立春 雨水 惊蛰 春分 清明


def _sxtwl_lunar(year: int, month: int, day: int) -> date:
    d = sxtwl.fromLunar(year, month, day)
    return date(d.getSolarYear(), d.getSolarMonth(), d.getSolarDay())


def _sxtwl_qingming(year: int) -> date:
    for offset in range(15):
        day = date(year, 3, 28) + timedelta(days=offset)
        d = sxtwl.fromSolar(day.year, day.month, day.day)
        if d.hasJieQi() and d.getJieQi() == QINGMING_INDEX:
            return day
    raise AssertionError(f"sxtwl found no 清明 in {year}")


def test_known_2027_dates() -> None:
    """2027: 春节 02-06, 清明 04-05, 中秋 09-15, 重阳 10-08 (as published)."""
    d = occasion_dates(2027)
    assert d["spring_festival"] == date(2027, 2, 6)
    assert d["qingming"] == date(2027, 4, 5)
    assert d["mid_autumn"] == date(2027, 9, 15)
    assert d["double_ninth"] == date(2027, 10, 8)
    assert d["army_day"] == date(2027, 8, 1)
    assert d["national_day"] == date(2027, 10, 1)


@pytest.mark.parametrize("year", range(2026, 2036))
def test_lunar_dates_agree_with_sxtwl_for_ten_years(year: int) -> None:
    """Every lunar festival and 清明 agree with a second, independent library for 2026–2035."""
    d = occasion_dates(year)
    assert set(d) == set(OCCASIONS)
    assert d["spring_festival"] == _sxtwl_lunar(year, 1, 1)
    assert d["lantern"] == _sxtwl_lunar(year, 1, 15)
    assert d["dragon_boat"] == _sxtwl_lunar(year, 5, 5)
    assert d["mid_autumn"] == _sxtwl_lunar(year, 8, 15)
    assert d["double_ninth"] == _sxtwl_lunar(year, 9, 9)
    assert d["qingming"] == _sxtwl_qingming(year)


def test_qingming_is_the_solar_term_not_a_fixed_day() -> None:
    """清明 moves between 4 and 5 April (2027: the 5th, 2028: the 4th), so it cannot be typed in."""
    days = {occasion_dates(y)["qingming"].day for y in range(2026, 2036)}
    assert days == {4, 5}


def test_occasions_between_spans_years_in_date_order() -> None:
    """A window across New Year lists the festivals of both years, in order, ends included."""
    got = occasions_between(date(2026, 10, 1), date(2027, 2, 6))
    assert got[0] == ("national_day", date(2026, 10, 1))
    assert got[-1] == ("spring_festival", date(2027, 2, 6))
    assert [d for _, d in got] == sorted(d for _, d in got)


def test_army_day_greets_veterans_only_and_double_ninth_everyone() -> None:
    """The declared audience: 八一 for veterans; 重阳 (the elders' day) for every kind."""
    rules = load_occasion_rules()
    assert rules["army_day"].greets(["veteran"]) and not rules["army_day"].greets(["retiree"])
    for kind in ("veteran", "retiree", "union_member"):
        assert rules["double_ninth"].greets([kind])


def test_spring_festival_greeting_goes_on_new_years_eve_at_nine_office_time() -> None:
    """春节 is greeted on 除夕 at 09:00 Shanghai time (01:00 UTC); other occasions on the day."""
    rules = load_occasion_rules()
    assert rules["spring_festival"].send_at(date(2027, 2, 6), SHANGHAI) == datetime(2027, 2, 5, 1, 0, tzinfo=UTC)
    assert rules["mid_autumn"].send_at(date(2027, 9, 15), SHANGHAI) == datetime(2027, 9, 15, 1, 0, tzinfo=UTC)


def test_overrides_change_one_field_and_keep_the_rest() -> None:
    """An office may turn lantern on for retirees and move one send time; the rest stays as declared."""
    rules = load_occasion_rules(overrides={"lantern": {"audience": ["retiree"], "send_time": "10:30"}})
    assert rules["lantern"].audience == frozenset({"retiree"})
    assert rules["lantern"].send_time == time(10, 30)
    assert rules["army_day"].audience == frozenset({"veteran"})


def test_unknown_occasion_or_kind_in_configuration_is_refused_naming_it(tmp_path: Path) -> None:
    """A typo in the rules stops loading with a message naming the bad value."""
    with pytest.raises(OccasionConfigError, match="womens_day"):
        load_occasion_rules(overrides={"womens_day": {"audience": ["retiree"]}})
    with pytest.raises(OccasionConfigError, match="veterans"):
        load_occasion_rules(overrides={"army_day": {"audience": ["veterans"]}})
    path = tmp_path / "occasions.yaml"
    path.write_text("send_time: '25:00'\noccasions: {}\n", encoding="utf-8")
    with pytest.raises(OccasionConfigError, match="25:00"):
        load_occasion_rules(path)


def test_own_rules_file_replaces_the_default(tmp_path: Path) -> None:
    """A file naming only army_day greets nobody on other occasions; YAML's unquoted 08:30 is read right."""
    path = tmp_path / "occasions.yaml"
    path.write_text("send_time: 08:30\noccasions:\n  army_day: {audience: [veteran]}\n", encoding="utf-8")
    rules = load_occasion_rules(path)
    assert rules["army_day"].send_time == time(8, 30)
    assert not rules["double_ninth"].audience


def test_greetings_due_lists_each_send_time_inside_the_window_once() -> None:
    """A daily sweep over 2027-02-05 (Shanghai) finds the Spring Festival greeting; the next day's sweep does not."""
    day = datetime(2027, 2, 5, tzinfo=SHANGHAI).astimezone(UTC)
    due = greetings_due(day, day + timedelta(days=1), SHANGHAI)
    assert [(g.occasion, g.festival) for g in due] == [("spring_festival", date(2027, 2, 6))]
    assert due[0].occurrence == "spring_festival-2027-02-06"
    nxt = greetings_due(day + timedelta(days=1), day + timedelta(days=2), SHANGHAI)
    assert nxt == []


def test_occasion_turned_off_is_never_due() -> None:
    """Lantern is off by default (two weeks after Spring Festival): no sweep returns it."""
    start = datetime(2027, 1, 1, tzinfo=UTC)
    due = greetings_due(start, start + timedelta(days=365), SHANGHAI)
    assert "lantern" not in {g.occasion for g in due}
    assert {g.occasion for g in due} == set(OCCASIONS) - {"lantern"}
