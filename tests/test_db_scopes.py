"""Transactions as WAL mode wants them: reads never wait for a writer, writes take the lock at
BEGIN and wait their turn, a read scope cannot write, checkpoints keep the WAL bounded."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlmodel import SQLModel

import models  # noqa: F401
from models.db import checkpoint, make_engine, read_scope, session_scope, write_scope
from models.staff import AuditLog


def _insert(session: object, actor: str) -> None:
    session.execute(AuditLog.__table__.insert().values(  # type: ignore[attr-defined]
        actor=actor, action="test", target_type="", target_id="", details={}, at=func.now()))


def _count(engine: Engine) -> int:
    with read_scope(engine) as s:
        return int(s.execute(select(func.count()).select_from(AuditLog)).scalar_one())


def test_a_read_does_not_wait_while_a_writer_holds_the_lock(sqlite_engine: Engine) -> None:
    """While one connection holds SQLite's write lock (a slow staff command), a read-only page and
    a plain session's read answer at once from the last committed snapshot."""
    with write_scope(sqlite_engine) as w:
        _insert(w, "before")
    holding, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        with write_scope(sqlite_engine) as s:
            _insert(s, "slow")
            holding.set()
            release.wait(10)

    t = threading.Thread(target=slow_writer)
    t.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        assert _count(sqlite_engine) == 1  # the slow writer's row is not committed yet
        with session_scope(sqlite_engine) as s:
            assert s.execute(select(func.count()).select_from(AuditLog)).scalar_one() == 1
        with sqlite_engine.connect() as conn:  # what /healthz does
            assert conn.execute(text("SELECT 1")).scalar() == 1
        assert time.monotonic() - started < 1.0
    finally:
        release.set()
        t.join()
    assert _count(sqlite_engine) == 2


def test_a_writer_waits_for_the_lock_instead_of_failing_on_a_stale_read(sqlite_engine: Engine) -> None:
    """Two read-then-write transactions on the same counter, both in write scopes: the second
    waits for the first and sees its row, so neither fails with "database is locked" and the
    count is exact."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def bump(n: int) -> None:
        try:
            barrier.wait()
            for _ in range(10):
                with write_scope(sqlite_engine) as s:
                    seen = s.execute(select(func.count()).select_from(AuditLog)).scalar_one()
                    _insert(s, f"w{n}-{seen}")
        except BaseException as exc:  # recorded and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=bump, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with read_scope(sqlite_engine) as s:
        actors = s.execute(select(AuditLog.actor)).scalars().all()
    seen_counts = sorted(int(a.split("-")[1]) for a in actors)
    assert seen_counts == list(range(40))  # each transaction saw every earlier one


def test_a_read_scope_cannot_write(db_engine: Engine) -> None:
    """A page that only reads is opened read-only: a write inside it fails at once, on both databases."""
    with pytest.raises(Exception, match="(?i)read.?only"), read_scope(db_engine) as s:
        _insert(s, "sneaky")
        s.flush()
    assert _count(db_engine) == 0
    with write_scope(db_engine) as s:  # the connection went back to the pool writable
        _insert(s, "fine")
    assert _count(db_engine) == 1


def test_objects_read_in_a_read_scope_stay_readable_after_it(db_engine: Engine) -> None:
    """What a read scope loaded can be used once it is closed (nothing is expired)."""
    with write_scope(db_engine) as s:
        _insert(s, "kept")
    with read_scope(db_engine) as s:
        row = s.execute(select(AuditLog)).scalars().one()
    assert row.actor == "kept"


def test_checkpoints_keep_the_wal_file_bounded(tmp_path: Path) -> None:
    """After many writes the WAL holds megabytes; a checkpoint with a lower bound truncates it."""
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    SQLModel.metadata.create_all(engine)
    for batch in range(20):
        with write_scope(engine) as s:
            for i in range(200):
                _insert(s, f"{batch}-{i}-" + "x" * 40)
    wal = tmp_path / "w.db-wal"
    assert wal.stat().st_size > 100_000
    assert checkpoint(engine, truncate_above=50_000) == 0
    assert wal.stat().st_size == 0
    assert _count(engine) == 4000
    engine.dispose()



def test_write_lock_waits_and_holds_past_the_threshold_are_logged_with_where(
        sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Each write transaction's wait for SQLite's write lock and its time holding it are measured:
    at or past `SLOW_LOCK_MS` each is logged with how long and the code that opened it (so a slow
    webhook can be told apart from a long writer); below it nothing is logged."""
    import models.db

    def write(actor: str) -> None:
        with caplog.at_level("WARNING", logger="models.db"), write_scope(sqlite_engine) as s:
            _insert(s, actor)

    monkeypatch.setattr(models.db, "SLOW_LOCK_MS", 0)
    write("measured")
    said = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("waited ") and "for the database's write lock" in m and "in write" in m for m in said), said
    assert any(m.startswith("held the database's write lock for ") and "in write" in m for m in said), said

    caplog.clear()
    monkeypatch.setattr(models.db, "SLOW_LOCK_MS", 60_000)
    write("quick")
    assert not [r for r in caplog.records if "write lock" in r.getMessage()]
