"""Dispatcher processes killed with SIGKILL mid-batch lose nothing and resend only what was in flight."""

from __future__ import annotations

import pytest

from tests.fakes.crashharness import run_crash
from tests.fakes.waiting import PROCESS_HANG_S


@pytest.mark.slow
def test_sigkilled_dispatchers_lose_nothing_and_duplicate_only_in_flight_rows(pg_server, tmp_path):
    """10,000 messages, two dispatcher processes on PostgreSQL, one of them SIGKILLed at a
    random moment 20 times (and restarted): every message reaches its chat, every row ends
    'sent', and the messages delivered twice are no more than the rows the killed processes
    had in flight (claimed, outcome unwritten) when they died."""
    url = pg_server.create_database("crash_test")
    r = run_crash(url, messages=10_000, kills=20, processes=2, seed=20260302, timeout_s=PROCESS_HANG_S,
                  logs=tmp_path)
    print(f"\ncrash run: {r.as_dict()} in flight at kills: {r.in_flight_at_kills}")
    assert r.kills == 20
    assert r.lost == 0 and r.unsent_rows == 0
    assert r.duplicates <= r.in_flight_total
    assert sum(1 for n in r.in_flight_at_kills if n > 0) >= 10  # the kills hit processes at work
