"""What the benchmarks over a large roll share: a throwaway database of each kind, a bulk load, and
the run over both (PostgreSQL's figures at the top level, SQLite's under `sqlite`)."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, text

from models.db import make_engine

Measure = Callable[[Engine, str], dict[str, Any]]
Table = tuple[str, str, Sequence[tuple[Any, ...]]]  # name, "col, col, …", rows


def bulk_load(engine: Engine, tables: Iterable[Table], sequences: dict[str, int] | None = None) -> float:
    """Load rows as fast as each database takes them (COPY on PostgreSQL, one executemany on SQLite),
    then ANALYZE; returns the seconds it took. Benchmark setup only: the product writes through Core.
    Contacts load as a restore would: the reach triggers dropped, then back and every person's
    ranks rebuilt (`nuanxin reach-rebuild`)."""
    from models.db import writer
    from outreach import reach_summary

    tables = list(tables)
    contacts = any(name == "contact" for name, _, _ in tables)
    if contacts:
        with engine.begin() as conn:
            reach_summary.drop(conn)
    seconds = _copy(engine, tables, sequences)
    if contacts:
        t0 = time.perf_counter()
        with writer(engine).begin() as conn:
            reach_summary.install(conn)
            reach_summary.rebuild(conn)
        seconds += time.perf_counter() - t0
    return seconds


def _copy(engine: Engine, tables: Sequence[Table], sequences: dict[str, int] | None) -> float:
    t0 = time.perf_counter()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if engine.dialect.name == "postgresql":
            for name, cols, rows in tables:
                with cur.copy(f"COPY {name} ({cols}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                    for row in rows:
                        copy.write_row(row)
            for sequence, value in (sequences or {}).items():
                cur.execute("SELECT setval(%s, %s)", (sequence, max(value, 1)))
            raw.commit()
            cur.execute("ANALYZE")
            raw.commit()
        else:
            cur.execute("BEGIN")
            for name, cols, rows in tables:
                marks = ",".join("?" * len(cols.split(",")))
                cur.executemany(f"INSERT INTO {name} ({cols}) VALUES ({marks})",
                                [tuple(v.isoformat(" ") if isinstance(v, datetime) else v for v in row)
                                 for row in rows])
            cur.execute("COMMIT")
            cur.execute("ANALYZE")
    finally:
        raw.close()
    return time.perf_counter() - t0


def on_postgresql(database: str, measure: Measure) -> dict[str, Any]:
    from models.pgserver import PostgresServer

    with PostgresServer() as server:
        engine = make_engine(server.create_database(database))
        try:
            with engine.begin() as conn:
                conn.execute(text("SELECT 1"))
            return measure(engine, "postgresql")
        finally:
            engine.dispose()


def on_sqlite(prefix: str, measure: Measure) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        try:
            return measure(engine, "sqlite")
        finally:
            engine.dispose()


def run_both(name: str, measure: Callable[[Engine, str, int], dict[str, Any]], pg: int | None,
             sqlite: int | None) -> dict[str, Any]:
    """Sizes from the arguments, else NUANXIN_BENCH_<NAME>_PG / _SQLITE (1,000,000 and 100,000; 0 skips)."""
    env = f"NUANXIN_BENCH_{name.upper()}"
    pg = int(os.environ.get(f"{env}_PG", 1_000_000)) if pg is None else pg
    sqlite = int(os.environ.get(f"{env}_SQLITE", 100_000)) if sqlite is None else sqlite
    out: dict[str, Any] = {}
    lite = on_sqlite(f"nuanxin-bench-{name}-", lambda e, db: measure(e, db, sqlite)) if sqlite else None
    if pg:
        out.update(on_postgresql(f"nuanxin_bench_{name}", lambda e, db: measure(e, db, pg)))
    elif lite:
        out.update(lite)
    if lite:
        out["sqlite"] = lite
    return out


def main(doc: str, run: Callable[[int | None, int | None], dict[str, Any]]) -> None:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--pg", type=int, default=None, help="PostgreSQL roll size (0: skip)")
    parser.add_argument("--sqlite", type=int, default=None, help="SQLite roll size (0: skip)")
    args = parser.parse_args()
    print(json.dumps(run(args.pg, args.sqlite), ensure_ascii=False))
