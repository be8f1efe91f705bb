"""Crash benchmark: 10,000 messages, two dispatcher processes on PostgreSQL, 20 SIGKILLs.

Keys: messages, kills, lost (must be 0), duplicates, in_flight_max (most rows a killed
process had in flight), plus in_flight_total and seconds. See tests/fakes/crashharness.py.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def run() -> dict[str, Any]:
    from models.pgserver import PostgresServer
    from tests.fakes.crashharness import run_crash

    n = int(os.environ.get("NUANXIN_BENCH_CRASH_N", "10000"))
    with PostgresServer() as pg:
        url = pg.create_database("crash_bench")
        result = run_crash(url, messages=n, kills=20, processes=2, seed=7, timeout_s=600)
    return {**result.as_dict(), "database": "postgresql", "processes": 2}


if __name__ == "__main__":
    print(json.dumps(run()))
