"""Benchmark: the broadcast composer's live count over a large roll.

What a staff member waits for while building an audience: for each filter, how many will get
the message (by channel) and how many are left out and why (opted out, blocked, no reachable
contact, deceased, moved, paused). Ten different filters, each counted several times; the
figure is the 95th percentile of all counts.

PostgreSQL (a throwaway server, bulk-loaded with COPY): 1,000,000 beneficiaries by default,
goal `count_ms_p95` <= 1,000. SQLite: 100,000. Sizes: NUANXIN_BENCH_AUDIENCE_PG /
NUANXIN_BENCH_AUDIENCE_SQLITE (0 skips that database), or
`python benchmarks/audience.py --pg 100000 --sqlite 20000`.

The roll: 40% veterans, 70% retirees, 15% union members (some several kinds); seven districts,
five streets each, forty communities each; ages 55-100; 10% living alone, 5% disabled;
90% zh-Hans, 5% zh-Hant, 5% en; 2% deceased, 1% moved, 0.5% paused; 60% Telegram, 30% SMS,
5% both, 5% none; of contacts 3% opted out, 1% blocked, 1% invalid, 2% unverified;
tags on 8% (党员, 困难, 空巢); scheme memberships for the current year; 2% of veterans with a
veterans' social-insurance application in some stage.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, text  # noqa: E402
from sqlmodel import SQLModel  # noqa: E402

import models  # noqa: E402,F401
from benchmarks.twodatabases import bulk_load, main, run_both  # noqa: E402
from models.db import session_scope  # noqa: E402

TODAY = date(2026, 5, 11)
DISTRICTS = ("蓬江区", "江海区", "新会区", "台山市", "开平市", "鹤山市", "恩平市")
STREETS = ("白沙街道", "环市街道", "潮连街道", "外海街道", "会城街道")
TAGS = ("党员", "困难", "空巢")
STAGES = ("staged", "accepted", "preliminary_review", "verification", "payment_notice", "paid", "completed",
          "returned", "rejected")
REPEATS = 5

# Ten filters a staff member might build, from the widest to narrow ones.
FILTERS: tuple[dict[str, Any], ...] = (
    {},
    {"kinds": ["veteran"]},
    {"kinds": ["retiree"], "age_min": 80},
    {"district": "蓬江区", "street": "白沙街道"},
    {"district": "新会区", "street": "会城街道", "community": "会城街道社区7"},
    {"living_alone": True, "age_min": 75},
    {"kinds": ["veteran"], "disabled": True, "channel": "sms"},
    {"languages": ["zh-Hant", "en"]},
    {"schemes": ["medical_mutual_aid"], "kinds": ["union_member"]},
    {"tags": ["困难", "空巢"], "district": "江海区", "age_min": 60, "age_max": 90},
)


def _rows(n: int, seed: int = 11) -> dict[str, list[tuple[Any, ...]]]:
    rnd = random.Random(seed)
    now = datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None)
    people, contacts, memberships, applications = [], [], [], []
    cid = mid = aid = 0
    for i in range(1, n + 1):
        retiree = rnd.random() < 0.7
        veteran = rnd.random() < 0.4 or not retiree
        union = rnd.random() < 0.15
        born = TODAY - timedelta(days=rnd.randrange(55 * 365, 100 * 365))
        r = rnd.random()
        status = "deceased" if r < 0.02 else "moved" if r < 0.03 else "active"
        paused = now if status == "active" and rnd.random() < 0.005 else None
        lr = rnd.random()
        lang = "zh-Hans" if lr < 0.9 else "zh-Hant" if lr < 0.95 else "en"
        district, street = rnd.choice(DISTRICTS), rnd.choice(STREETS)
        community = f"{street}社区{rnd.randrange(40)}"
        tags = json.dumps([rnd.choice(TAGS)], ensure_ascii=False) if rnd.random() < 0.08 else "[]"
        people.append((i, f"测试{i}", f"h{i:012d}", f"4407**********{i % 10000:04d}", "", born, rnd.choice("MF"),
                       veteran, retiree, union, district, street, community, rnd.random() < 0.1,
                       rnd.random() < 0.05, lang, status, tags, "import", paused, now, now))
        c = rnd.random()
        channels = ("telegram",) if c < 0.6 else ("sms",) if c < 0.9 else ("telegram", "sms") if c < 0.95 else ()
        for channel in channels:
            cid += 1
            s = rnd.random()
            opted = now if s < 0.03 else None
            blocked = now if 0.03 <= s < 0.04 else None
            invalid = now if 0.04 <= s < 0.05 else None
            verified = not 0.05 <= s < 0.07
            address = str(10_000_000 + cid) if channel == "telegram" else f"+86138{cid:08d}"
            contacts.append((cid, i, channel, address, verified, opted, blocked, invalid, now))
        if union and rnd.random() < 0.6:
            mid += 1
            memberships.append((mid, i, "medical_mutual_aid", TODAY.year, "{}"))
        if retiree:
            mid += 1
            memberships.append((mid, i, "pension", TODAY.year, "{}"))
        if veteran and rnd.random() < 0.02:
            aid += 1
            applications.append((aid, f"NX-2026-{aid:06d}", "veteran_insurance", i, rnd.choice(STAGES), "{}",
                                 now, now, now, "self", ""))
    return {"people": people, "contacts": contacts, "memberships": memberships, "applications": applications}


TABLES = {
    "people": ("beneficiary", "id, name, id_hash, id_masked, id_last6_hash, birth_date, sex, is_veteran, is_retiree, "
               "is_union_member, district, street, community, living_alone, disabled, language, status, tags, "
               "source, {paused}created_at, updated_at"),
    "contacts": ("contact", "id, beneficiary_id, channel, address, verified, opted_out_at, blocked_at, invalid_at, "
                 "created_at"),
    "memberships": ("scheme_membership", "id, beneficiary_id, scheme, period, details"),
    "applications": ("application", "id, reference, type, beneficiary_id, stage, data, stage_changed_at, "
                     "created_at, updated_at, submitted_by_relationship, channel"),
}


def _has_paused(engine: Engine) -> bool:
    return "outreach_paused_at" in SQLModel.metadata.tables["beneficiary"].c


def _columns(engine: Engine, table: str) -> tuple[str, str]:
    name, cols = TABLES[table]
    return name, cols.replace("{paused}", "outreach_paused_at, " if _has_paused(engine) else "")


def _strip_paused(engine: Engine, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    if _has_paused(engine):
        return rows
    return [r[:19] + r[20:] for r in rows]  # the roll without the paused column


def _load(engine: Engine, n: int) -> float:
    """The roll bulk-loaded (every person's reach ranks rebuilt after it: `bulk_load`), then
    vacuumed as autovacuum would after such a load."""
    data = _rows(n)
    data["people"] = _strip_paused(engine, data["people"])
    seconds = bulk_load(engine, [(*_columns(engine, key), data[key])
                                 for key in ("people", "contacts", "memberships", "applications")])
    t0 = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))
    return seconds + time.perf_counter() - t0


def _measure(engine: Engine, database: str, n: int) -> dict[str, Any]:
    from outreach.audiences import AudienceFilter, audience_size

    SQLModel.metadata.create_all(engine)
    load_seconds = _load(engine, n)
    timings: list[float] = []
    per_filter: list[dict[str, Any]] = []
    for spec in FILTERS:
        f = AudienceFilter.model_validate(spec)
        runs = []
        size = None
        for _ in range(REPEATS):
            with session_scope(engine) as session:
                t0 = time.perf_counter()
                size = audience_size(session, f, TODAY)
                runs.append((time.perf_counter() - t0) * 1000)
        assert size is not None
        timings += runs
        per_filter.append({"filter": f.describe(), "matched": size.matched, "reachable": size.reachable,
                           "excluded": size.excluded, "ms_median": round(statistics.median(runs), 1),
                           "ms_max": round(max(runs), 1)})
    timings.sort()
    p95 = timings[max(0, int(round(0.95 * len(timings))) - 1)]
    return {"database": database, "beneficiaries": n, "filters": len(FILTERS), "counts": len(timings),
            "count_ms_p95": round(p95, 1), "count_ms_median": round(statistics.median(timings), 1),
            "count_ms_max": round(timings[-1], 1), "load_seconds": round(load_seconds, 1),
            "goal_ms": 1000 if database == "postgresql" else None, "per_filter": per_filter}


def run(pg: int | None = None, sqlite: int | None = None) -> dict[str, Any]:
    """The PostgreSQL figures at the top level (the 1,000,000 goal); SQLite's under `sqlite`."""
    return run_both("audience", _measure, pg, sqlite)


if __name__ == "__main__":
    main(__doc__ or "", run)
