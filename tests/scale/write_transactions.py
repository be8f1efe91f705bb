"""Counts the write transactions an engine runs, and how long each held its write lock.

A transaction counts from its first write (SQLite: from BEGIN IMMEDIATE, which takes the lock)
to its commit or rollback; transactions that only read are not counted. Listens through
SQLAlchemy's public event API on the engine the code under test uses.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event

_STARTS_WRITING = re.compile(r"^\s*(BEGIN\s+IMMEDIATE|BEGIN\s+EXCLUSIVE|INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


@dataclass
class WriteTransaction:
    statements: list[str] = field(default_factory=list)
    held_ms: float = 0.0

    def writes(self, table: str) -> int:
        """How many of its statements write to `table`."""
        pattern = re.compile(rf"^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?{table}\"?\b", re.IGNORECASE)
        return sum(1 for s in self.statements if pattern.match(s))


@dataclass
class WriteTransactions:
    done: list[WriteTransaction] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.done)


@contextmanager
def counting_writes(engine: Engine) -> Iterator[WriteTransactions]:
    """Within the block, every write transaction `engine` commits or rolls back is recorded."""
    seen = WriteTransactions()

    def statement(conn: Any, _cursor: Any, sql: str, *_rest: Any) -> None:
        open_one = conn.info.get("counted_tx")
        if open_one is None:
            if not _STARTS_WRITING.match(sql):
                return
            open_one = conn.info["counted_tx"] = (WriteTransaction(), time.perf_counter())
        open_one[0].statements.append(sql)

    def end(conn: Any) -> None:
        open_one = conn.info.pop("counted_tx", None)
        if open_one is not None:
            tx, started = open_one
            tx.held_ms = (time.perf_counter() - started) * 1000
            seen.done.append(tx)

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", end)
    event.listen(engine, "rollback", end)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", end)
        event.remove(engine, "rollback", end)
