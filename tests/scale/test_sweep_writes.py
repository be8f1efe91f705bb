"""The home-visit sweep writes in short transactions: webhooks waiting for SQLite's write lock
get their turn between pages, and the tasks opened are the same as in one go."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, select
from sqlmodel import SQLModel

from models.actions import record_death
from models.applications import Task
from models.db import make_engine, session_scope, write_scope
from models.people import Beneficiary
from models.staff import AuditLog
from outreach import sweeps
from outreach.schedule_rules import default_rules
from tests.scale.write_transactions import counting_writes
from tests.scheduler.factories import SHANGHAI, TS

SWEEP_AT = datetime(2026, 3, 16, 23, 30, tzinfo=UTC)  # 07:30 office time on 2026-03-17
PEOPLE = 1_000


def _roll(engine: Engine, seed: int = 11) -> None:
    """Retirees certified on days spread over 13 months (some overdue), a few not retirees, some
    deceased or moved, some already given this year's home visit (by the bot, or by hand)."""
    rnd = random.Random(seed)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    people = []
    for i in range(1, PEOPLE + 1):
        r = rnd.random()
        people.append({"id": i, "name": f"测试{i}", "id_hash": f"h{i:08d}", "id_masked": f"4407**********{i % 10000:04d}",
                       "birth_date": date(1936, 1, 1) + timedelta(days=rnd.randrange(0, 30 * 365)),
                       "is_retiree": rnd.random() < 0.9, "living_alone": rnd.random() < 0.1,
                       "disabled": rnd.random() < 0.05, "status": "deceased" if r < 0.03 else "moved" if r < 0.05
                       else "active", "last_certified_on": date(2026, 3, 17) - timedelta(days=rnd.randrange(0, 760)),
                       "tags": [], "created_at": now, "updated_at": now})
    with session_scope(engine) as s:
        s.execute(insert(Beneficiary.__table__), people)  # type: ignore[attr-defined]
        for i in range(7, PEOPLE + 1, 97):  # this due year's visit already open for these
            certified = people[i - 1]["last_certified_on"]
            s.add(Task(kind="home_visit", key=f"home_visit:{i}:{certified.year + 1}", beneficiary_id=i,
                       priority=1, note="opened by hand"))


def _sweep(engine: Engine, batch: int) -> int:
    ctx = sweeps.make_context(SWEEP_AT, SHANGHAI, default_rules(), TS)
    return sweeps.sweep_home_visits(engine, ctx, batch=batch)


def _opened(engine: Engine) -> tuple[list[tuple[Any, ...]], int]:
    with session_scope(engine) as s:
        tasks = [tuple(r) for r in s.execute(select(Task.key, Task.beneficiary_id, Task.priority, Task.due_on,  # type: ignore[call-overload]
                                                    Task.note, Task.status).order_by(Task.key))]
        audits = len(s.execute(select(AuditLog.id).where(AuditLog.action == "task.create")).all())
    return tasks, audits


@pytest.fixture
def two_rolls(tmp_path: Path) -> tuple[Engine, Engine]:
    """Two SQLite databases holding the same roll."""
    engines = []
    for name in ("one_go", "pages"):
        engine = make_engine(f"sqlite:///{tmp_path / name}.db")
        SQLModel.metadata.create_all(engine)
        _roll(engine)
        engines.append(engine)
    return engines[0], engines[1]


def test_home_visit_sweep_opens_the_same_tasks_page_by_page_as_in_one_go(two_rolls: tuple[Engine, Engine]) -> None:
    """Written 60 people at a time, the sweep opens exactly the tasks (key, person, priority, due
    day, note) and audit rows it opens in a single page; each page is its own write transaction
    holding at most one page's tasks, and a second run opens nothing."""
    one_go, pages = two_rolls
    with counting_writes(one_go) as single:
        made_at_once = _sweep(one_go, batch=PEOPLE)
    with counting_writes(pages) as paged:
        made_in_pages = _sweep(pages, batch=60)

    assert made_at_once == made_in_pages > 200  # a roll with plenty overdue
    assert _opened(pages) == _opened(one_go)
    assert len(single) == 1
    assert len(paged) == -(-made_in_pages // 60)  # one write transaction per page of those due
    assert all(tx.writes("task") == 1 for tx in paged.done)  # one INSERT of at most a page of tasks
    assert _sweep(pages, batch=60) == 0


def _visited(engine: Engine) -> set[int]:
    with session_scope(engine) as s:
        return set(s.execute(select(Task.beneficiary_id).where(Task.kind == "home_visit",  # type: ignore[call-overload]
                                                                Task.note != "opened by hand")).scalars())


def test_a_death_recorded_between_the_read_and_the_write_gets_no_home_visit(two_rolls: tuple[Engine, Engine],
                                                                           tmp_path: Path) -> None:
    """Who is due is read outside the write lock; each write asks again for its page, so a person
    whose death is recorded after the read (by staff, on another connection) gets no home visit,
    and everyone else the same tasks as without the death."""
    one_go, pages = two_rolls
    _sweep(one_go, batch=PEOPLE)
    expected = _visited(one_go)
    died = sorted(expected)[3]
    staff = make_engine(f"sqlite:///{tmp_path / 'pages'}.db")
    recorded = []

    def death_just_before_the_first_write(_conn: Any, _cursor: Any, sql: str, *_rest: Any) -> None:
        if sql.lstrip().upper().startswith("BEGIN IMMEDIATE") and not recorded:
            recorded.append(died)
            with write_scope(staff) as s:
                person = s.get(Beneficiary, died)
                assert person is not None
                record_death(s, person, died_on=date(2026, 3, 10), actor="caseworker")

    event.listen(pages, "before_cursor_execute", death_just_before_the_first_write)
    made = _sweep(pages, batch=50)
    event.remove(pages, "before_cursor_execute", death_just_before_the_first_write)
    staff.dispose()

    assert recorded == [died]
    assert _visited(pages) == expected - {died}
    assert made == len(expected) - 1
