"""Importing a 100,000-row roll into a fresh SQLite file (goal: under 30 s)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path


def run(rows: int | None = None) -> dict[str, object]:
    import models  # noqa: F401
    from models.db import make_engine
    from models.demo import roll_rows, write_roll_csv
    from models.migrate import upgrade
    from models.roll import import_roll

    rows = rows or int(os.environ.get("NUANXIN_BENCH_ROWS", "100000"))
    with tempfile.TemporaryDirectory() as tmp:
        path = write_roll_csv(Path(tmp) / "roll.csv", roll_rows(rows, seed=11))
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        upgrade(engine)
        started = time.perf_counter()
        report = import_roll(engine, path, id_key=b"bench-key")
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        again = import_roll(engine, path, id_key=b"bench-key")
        rerun = time.perf_counter() - started
        engine.dispose()
    return {"rows": rows, "seconds": round(seconds, 3), "imported": report.imported,
            "rejected": len(report.rejected), "rows_per_s": round(rows / seconds),
            "rerun_seconds": round(rerun, 3), "rerun_imported": again.imported, "rerun_updated": again.updated,
            "database": "sqlite"}
