"""Telegram polling under its lock (one process polls): a database that is busy for a moment does not
end polling, nor the process; one that stays out of reach makes the process stand by, then poll again."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

import service
from tests.fakes.waiting import finished, until


class _Polling:
    """aiogram's Dispatcher as the polling loop uses it: start_polling runs until stop_polling."""

    def __init__(self) -> None:
        self.starts = 0
        self.stops = 0
        self._stopped = asyncio.Event()

    async def start_polling(self, bot: Any, **_: Any) -> None:
        self.starts += 1
        self._stopped = asyncio.Event()
        await self._stopped.wait()

    async def stop_polling(self) -> None:
        self.stops += 1
        self._stopped.set()


class _Lock:
    """The polling lock, whose renewals fail (database locked) while `failing` is set."""

    owner = "this-process"

    def __init__(self) -> None:
        self.failing = 0
        self.renewals = 0

    def acquire(self) -> bool:
        return self._answer()

    def renew(self) -> bool:
        self.renewals += 1
        return self._answer()

    def _answer(self) -> bool:
        if self.failing:
            self.failing -= 1
            raise OperationalError("UPDATE scheduler_lease", {}, Exception("database is locked"))
        return True

    def release(self) -> None:
        return None


async def _run_until(condition: Any, polling: _Polling, lock: _Lock) -> asyncio.Task[None]:
    stop = asyncio.Event()
    process = SimpleNamespace(status={})
    task = asyncio.create_task(service._run_telegram_polling(polling, object(), lock, stop, process))
    await until(lambda: condition() or task.done(), "the polling loop to reach the moment under test", every=0.005)
    stop.set()
    await finished(task, "the polling loop after stop")
    return task


async def test_polling_goes_on_while_its_lock_cannot_be_renewed_for_a_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two renewals refused with "database is locked" (a long sweep holds SQLite's write lock):
    polling is neither stopped nor restarted, and the loop ends only when asked, without an error."""
    monkeypatch.setattr(service, "POLLING_LEADERSHIP_POLL_S", 0.01)
    polling, lock = _Polling(), _Lock()
    lock_fails_after_start = [False]

    def condition() -> bool:
        if polling.starts and not lock_fails_after_start[0]:
            lock.failing, lock_fails_after_start[0] = 2, True
        return lock_fails_after_start[0] and lock.renewals >= 4

    task = await _run_until(condition, polling, lock)
    assert task.exception() is None
    assert lock.renewals >= 4 and polling.starts == 1
    assert polling.stops == 1  # only the stop asked for at the end


async def test_polling_stands_by_while_the_lock_stays_out_of_reach_and_polls_again_after(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Renewals failing for longer than the lock is held on error: polling stops (another process may
    take the lock once it lapses); when the database answers again this process polls again."""
    monkeypatch.setattr(service, "POLLING_LEADERSHIP_POLL_S", 0.01)
    monkeypatch.setattr(service, "POLLING_HOLD_ON_ERROR_S", 0.0)
    polling, lock = _Polling(), _Lock()
    armed = [False]

    def condition() -> bool:
        if polling.starts == 1 and not armed[0]:
            lock.failing, armed[0] = 3, True
        return polling.starts == 2

    task = await _run_until(condition, polling, lock)
    assert task.exception() is None
    assert polling.starts == 2 and polling.stops >= 2
