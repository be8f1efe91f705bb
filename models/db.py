"""Database engines and sessions.

SQLite (WAL, busy timeout) is the embedded default; `DATABASE_URL` selects PostgreSQL.
Sessions are passed in to whatever needs one; nothing reaches for a global session.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlmodel import Session


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("sqlite:///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite defers BEGIN on its own; emit it ourselves so that `BEGIN IMMEDIATE`
        # (see `session_scope(immediate=True)`) takes the write lock up front.
        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # IMMEDIATE by default: a deferred transaction that reads and then writes fails at
            # once with "database is locked" when another connection wrote in between (WAL
            # cannot upgrade a stale snapshot); taking the write lock at BEGIN makes it wait
            # (busy_timeout) instead. Readers are never blocked in WAL mode.
            conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN IMMEDIATE"))

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    return create_engine(url, **kwargs)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@contextmanager
def session_scope(engine: Engine, *, immediate: bool = False) -> Iterator[Session]:
    """A session that commits on success and rolls back on error.

    `immediate=True` takes SQLite's write lock at BEGIN, so read-then-write sequences
    (claiming outbox rows, counting rate limits) cannot interleave between processes.
    On PostgreSQL it changes nothing; use row locks there.
    """
    bind = engine
    if immediate and is_sqlite(engine):
        bind = engine.execution_options(sqlite_begin="BEGIN IMMEDIATE")
    with Session(bind, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def sqlite_pragma(engine: Engine, statement: str) -> list[Any]:
    """Run a PRAGMA outside any transaction (checkpoints refuse to run inside one, and every
    SQLAlchemy transaction here begins IMMEDIATE)."""
    with engine.connect() as conn:
        dbapi = conn.connection.driver_connection
        assert dbapi is not None
        return list(dbapi.execute(statement).fetchall())
