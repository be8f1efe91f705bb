"""Inbound abuse limits: one address cannot flood staff or run up the SMS bill.

The limits' windows run on the `limits` library's clock (time.time): tests move it with
time-machine instead of sleeping.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from sqlalchemy import Engine as DbEngine
from sqlmodel import Session, select

from bot.engine import Engine
from bot.inbound_limits import InboundLimits, Verdict, parse_windows
from models.clock import FakeClock
from models.conversations import OneTimeCode
from models.db import session_scope
from settings import Settings
from tests.bot.conftest import ZHANG_ID, ZHANG_PHONE, Chat, FakeNotifier, FakeQA, add_person

START = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def limits(per_address: str = "3/minute", codes: str = "2/day", total: str = "5/hour", storage: str = "memory://"
           ) -> InboundLimits:
    return InboundLimits(per_address=parse_windows(per_address), codes_per_phone=parse_windows(codes),
                         codes_total=parse_windows(total), storage_uri=storage, office_phone="12345")


@pytest.fixture
def travel() -> Iterator[Any]:
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def test_an_address_over_its_limit_is_told_once_kindly_then_not_answered_until_the_window_passes(
        travel: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Three messages a minute pass; the fourth gets one kind answer (when to write again, the
    office's phone); the fifth and sixth get none; a minute later the address is heard again.
    The refusal is logged with the number masked."""
    gate = limits()
    phone = "+8613812345678"
    verdicts = [gate.check_message("sms", phone, text="你好").verdict for _ in range(6)]
    assert verdicts == [Verdict.ALLOW] * 3 + [Verdict.REFUSE_AND_SAY, Verdict.REFUSE_SILENTLY, Verdict.REFUSE_SILENTLY]
    travel.shift(timedelta(seconds=30))
    assert gate.check_message("sms", phone, text="你好").verdict is Verdict.REFUSE_SILENTLY
    travel.shift(timedelta(seconds=121))  # the sliding window has emptied
    assert gate.check_message("sms", phone, text="你好").verdict is Verdict.ALLOW
    assert "13812345678" not in caplog.text and "+86138****5678" in caplog.text


def test_the_refusal_says_when_to_write_again_in_the_writers_language(travel: Any) -> None:
    """The one answer is in the language the person wrote in, names the wait and the office phone."""
    gate = limits(per_address="1/hour")
    assert gate.check_message("telegram", "501", text="hello").verdict is Verdict.ALLOW
    english = gate.check_message("telegram", "501", text="hello there")
    assert english.verdict is Verdict.REFUSE_AND_SAY
    assert "in 1 hour" in english.text and "12345" in english.text
    gate.check_message("telegram", "502", text="你好")
    chinese = gate.check_message("telegram", "502", text="请问补贴什么时候发")
    assert "1小时后" in chinese.text and "12345" in chinese.text


def test_other_addresses_are_not_held_back_by_one_that_floods(travel: Any) -> None:
    """Limits are per address: one number over its limit changes nothing for the next."""
    gate = limits(per_address="2/minute")
    for _ in range(5):
        gate.check_message("sms", "+8613800000001")
    assert gate.check_message("sms", "+8613800000002").verdict is Verdict.ALLOW
    assert gate.check_message("telegram", "+8613800000001").verdict is Verdict.ALLOW  # another channel


def test_web_replicas_count_one_address_together_through_redis(redis_url: str) -> None:
    """Two processes' limits on one Redis: the address's messages add up across both, and the
    kind answer is given by one of them only."""
    a, b = limits(storage=redis_url), limits(storage=redis_url)
    phone = "+8613812340000"
    seen = [(a if n % 2 else b).check_message("sms", phone).verdict for n in range(6)]
    assert seen.count(Verdict.ALLOW) == 3
    assert seen.count(Verdict.REFUSE_AND_SAY) == 1
    assert seen[3] is Verdict.REFUSE_AND_SAY


def test_when_the_limits_store_is_down_people_still_get_through(caplog: pytest.LogCaptureFixture) -> None:
    """Our outage must not shut a person out: with Redis unreachable every message passes (and it is logged)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gate = limits(per_address="1/minute", storage=f"redis://127.0.0.1:{port}/0")
    assert [gate.check_message("sms", "+8613812345678").verdict for _ in range(3)] == [Verdict.ALLOW] * 3
    assert gate.may_send_code("+8613812345678") is True
    assert "inbound limits unavailable" in caplog.text


def test_codes_to_one_phone_and_for_the_whole_office_are_capped(travel: Any) -> None:
    """Two codes a day to one phone; five an hour for the office however many phones ask."""
    gate = limits(codes="2/day", total="5/hour")
    assert [gate.may_send_code("+8613800000001") for _ in range(3)] == [True, True, False]
    assert [gate.may_send_code(f"+86139000000{n:02d}") for n in range(4)] == [True, True, True, False]
    travel.shift(timedelta(hours=2, seconds=1))
    assert gate.may_send_code("+8613900000099") is True
    assert gate.may_send_code("+8613800000001") is False  # its day is not over


@dataclass
class LimitedNotifier(FakeNotifier):
    gate: InboundLimits = field(default_factory=limits)

    def may_send_code(self, phone_e164: str) -> bool:
        return self.gate.may_send_code(phone_e164)


def test_the_identity_flow_sends_no_code_the_limits_refuse(db_engine: DbEngine, settings: Settings,
                                                           clock: FakeClock, travel: Any) -> None:
    """The engine asks the limits before each code: past the phone's daily cap the person is told
    so, no code is made, none is sent."""
    notifier = LimitedNotifier(gate=limits(codes="1/day"))
    with session_scope(db_engine) as s:
        add_person(s, settings, ZHANG_ID, "张三", ZHANG_PHONE, is_retiree=True)
    engine = Engine(db_engine, settings, clock, qa=FakeQA(), notifier=notifier)
    try:
        chat = Chat(engine, "telegram", "9001")
        chat("9")
        chat("1")
        assert "+86138****5678" in chat("13812345678")
        assert len(notifier.codes) == 1
        assert "1小时后再试" in chat("重发")
        assert len(notifier.codes) == 1
        with Session(db_engine) as s:
            assert len(s.exec(select(OneTimeCode)).all()) == 1
    finally:
        engine.close()


def test_a_bad_window_setting_stops_start_up_naming_the_variable() -> None:
    """NUANXIN_INBOUND_LIMITS=lots is refused with the variable's name and the notation to use."""
    from settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="NUANXIN_INBOUND_LIMITS.*10/minute"):
        load_settings(inbound_limits="lots")
    assert load_settings(inbound_limits="").inbound_limits == ""  # off


def test_refusals_are_logged_at_warning_without_the_number(travel: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The log says which window refused and a masked chat id; never the full address."""
    caplog.set_level(logging.WARNING, logger="nuanxin.inbound_limits")
    gate = limits(per_address="1/minute")
    gate.check_message("telegram", "123456789")
    gate.check_message("telegram", "123456789")
    assert "1 per 1 minute" in caplog.text and "telegram:***789" in caplog.text
    assert "123456789" not in caplog.text
