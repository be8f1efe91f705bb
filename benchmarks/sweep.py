"""Benchmark: the daily sweep over a large roll, first run and an immediate re-run.

PostgreSQL (a throwaway server, bulk-loaded with COPY): 1,000,000 beneficiaries by default,
goal <= 60 s for the first run and 0 enqueued by the re-run. SQLite: 100,000.
Sizes: NUANXIN_BENCH_SWEEP_PG / NUANXIN_BENCH_SWEEP_SQLITE (0 skips that database), or
`python benchmarks/sweep.py --pg 100000 --sqlite 20000`.

The roll: 70% retirees certified on a day spread over the last 385 days (so some are due in
the next 30 days and some are overdue), 40% veterans born 1936-1966 (some turn 80 this month),
2% deceased, 1% moved; 60% Telegram, 35% SMS, 5% no contact; 90% zh-Hans, 5% zh-Hant, 5% en.
"""

from __future__ import annotations

import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, func, select  # noqa: E402
from sqlmodel import SQLModel  # noqa: E402

import models  # noqa: E402,F401
from benchmarks.twodatabases import bulk_load, main, run_both  # noqa: E402
from models.applications import Task  # noqa: E402
from models.clock import FakeClock  # noqa: E402
from models.db import session_scope  # noqa: E402
from models.outbox import OutboxMessage  # noqa: E402

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "建国华明军平志强伟芳秀英兰玉珍桂香淑凤海林德福文春生荣"
TODAY = date(2026, 5, 11)
SWEEP_AT = datetime(2026, 5, 10, 23, 30, tzinfo=UTC)  # 07:30 office time (Shanghai) on TODAY


def _rows(n: int, seed: int = 7) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    rnd = random.Random(seed)
    people, contacts = [], []
    now = datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None)
    for i in range(1, n + 1):
        retiree = rnd.random() < 0.7
        veteran = rnd.random() < 0.4 or not retiree
        certified = TODAY - timedelta(days=rnd.randrange(0, 385)) if retiree else None
        born = date(1936, 1, 1) + timedelta(days=rnd.randrange(0, 30 * 365))
        r = rnd.random()
        status = "deceased" if r < 0.02 else "moved" if r < 0.03 else "active"
        lr = rnd.random()
        lang = "zh-Hans" if lr < 0.9 else "zh-Hant" if lr < 0.95 else "en"
        name = rnd.choice(SURNAMES) + rnd.choice(GIVEN) + (rnd.choice(GIVEN) if rnd.random() < 0.7 else "")
        people.append((i, name, f"h{i:012d}", f"4407**********{i % 10000:04d}", "", born, rnd.choice("MF"),
                       veteran, retiree, False, "蓬江区", "白沙街道", f"社区{i % 42}", rnd.random() < 0.1,
                       rnd.random() < 0.05, lang, status, certified, "[]", "import", now, now))
        c = rnd.random()
        if c < 0.6:
            contacts.append((i, i, "telegram", str(10_000_000 + i), True, now))
        elif c < 0.95:
            contacts.append((i, i, "sms", f"+86138{i:08d}", True, now))
    return people, contacts


P_COLS = ("id, name, id_hash, id_masked, id_last6_hash, birth_date, sex, is_veteran, is_retiree, is_union_member, "
          "district, street, community, living_alone, disabled, language, status, last_certified_on, tags, source, "
          "created_at, updated_at")
C_COLS = "id, beneficiary_id, channel, address, verified, created_at"


def load_roll(engine: Engine, n: int) -> float:
    people, contacts = _rows(n)
    return bulk_load(engine, [("beneficiary", P_COLS, people), ("contact", C_COLS, contacts)],
                     sequences={"beneficiary_id_seq": n, "contact_id_seq": len(contacts)})


def _count(engine: Engine, model: Any) -> int:
    with session_scope(engine) as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def _measure(engine: Engine, database: str, n: int) -> dict[str, Any]:
    from zoneinfo import ZoneInfo

    from outreach.sweeps import daily_sweep
    from outreach.templates import load_templates

    SQLModel.metadata.create_all(engine)
    load_seconds = load_roll(engine, n)
    templates = load_templates()
    clock = FakeClock(SWEEP_AT)
    tz = ZoneInfo("Asia/Shanghai")
    t0 = time.perf_counter()
    first = daily_sweep(engine, clock=clock, tz=tz, templates=templates)
    seconds = time.perf_counter() - t0
    clock.advance(timedelta(minutes=1))
    t1 = time.perf_counter()
    again = daily_sweep(engine, clock=clock, tz=tz, templates=templates)
    rerun_seconds = time.perf_counter() - t1
    return {
        "database": database, "beneficiaries": n, "seconds": round(seconds, 3),
        "enqueued": first.total_enqueued, "rerun_enqueued": again.total_enqueued,
        "rerun_seconds": round(rerun_seconds, 3), "tasks": sum(first.tasks.values()),
        "rerun_tasks": sum(again.tasks.values()), "by_kind": first.enqueued,
        "outbox_rows": _count(engine, OutboxMessage), "task_rows": _count(engine, Task),
        "load_seconds": round(load_seconds, 1), "goal_seconds": 60 if database == "postgresql" else None,
    }


def run(pg: int | None = None, sqlite: int | None = None) -> dict[str, Any]:
    """The PostgreSQL figures at the top level (the 1,000,000 goal); SQLite's under `sqlite`."""
    return run_both("sweep", _measure, pg, sqlite)


if __name__ == "__main__":
    main(__doc__ or "", run)
