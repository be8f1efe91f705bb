"""Database engines and sessions.

SQLite (WAL, busy timeout) is the embedded default; `DATABASE_URL` selects PostgreSQL.
Sessions are passed in to whatever needs one; nothing reaches for a global session.

Transactions, the way WAL mode wants them:
- `read_scope(engine)`: a deferred, read-only transaction. On SQLite it reads a snapshot and
  never waits for a writer; on PostgreSQL it is `READ ONLY`. Pages, /healthz, previews, reports.
- `write_scope(engine)` (the same as `session_scope(engine, immediate=True)`): takes SQLite's
  write lock at BEGIN, so a transaction that reads and then writes waits its turn (busy timeout)
  instead of failing on a stale snapshot. Keep it short: check templates, render, parse files and
  call providers *before* opening it, never inside.
- `writes_expected()`: inside it (a web form post, see web/body_limits.py), transactions that
  did not say otherwise begin IMMEDIATE, as a request that changes something will write.
- `session_scope(engine)`: deferred; commits on success. Fine for a transaction whose first
  statement writes (SQLite then takes the lock and waits for it). A transaction that reads and
  then writes in a deferred scope is logged (once per place) as a mistake: under concurrent
  writers SQLite refuses it with "database is locked".
WAL checkpoints: `journal_size_limit` truncates the WAL after each checkpoint that resets it, and
`checkpoint(engine)` (run periodically by `nuanxin run`) keeps it from growing without bound.
Planner statistics: `refresh_statistics(engine)` after a roll import, when a scheduler takes the
lead and before each daily sweep (scheduler.py). Without
them SQLite takes any index on `status` for selective and reads a broadcast's batch of 5,000 by
sorting every active person (0.2 s a batch at 100,000 people, instead of 0.03 s in id order).
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import stat
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlmodel import Session

log = logging.getLogger(__name__)

# How long a writer waits for SQLite's write lock before "database is locked". Every write
# transaction is short, so a wait this long means something is wrong, not busy.
BUSY_TIMEOUT_MS = 10_000
# The WAL file is cut back to this size after a checkpoint that resets it.
WAL_SIZE_LIMIT = 64 * 1024 * 1024
# A wait for the write lock at BEGIN IMMEDIATE, or a write transaction holding it, longer than
# this is logged (with where it was): the first sign that something holds the lock too long for
# webhooks to answer in time. (A deferred transaction that writes waits inside its first write,
# unmeasured: the discipline above is to open those immediate.)
SLOW_LOCK_MS = 200
_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
_READ = re.compile(r"^\s*(SELECT|WITH)\b", re.IGNORECASE)
_warned_sites: set[str] = set()
_writes_expected: contextvars.ContextVar[bool] = contextvars.ContextVar("writes_expected", default=False)


@contextmanager
def writes_expected() -> Iterator[None]:
    """Transactions opened in this context (this request, this task) without a begin of their own
    take SQLite's write lock at BEGIN."""
    token = _writes_expected.set(True)
    try:
        yield
    finally:
        _writes_expected.reset(token)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    cur.close()


def secure_file(path: Path) -> None:
    """The database file (and its WAL and shared-memory files) readable by this user alone."""
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if stat.S_IMODE(candidate.stat().st_mode) != 0o600:
                candidate.chmod(0o600)
        except FileNotFoundError:
            continue


def secure_dir(path: Path) -> None:
    """A data folder created for this user alone (0700); an existing one is tightened to it."""
    path.mkdir(parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o700)


def _sqlite_path(url: str) -> Path | None:
    path = url.split("sqlite:///", 1)[-1].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def _caller() -> str:
    """The innermost project frames (outside SQLAlchemy and this module): where the write is and
    who opened the transaction around it."""
    frames = []
    for frame in reversed(traceback.extract_stack()[:-3]):
        name = frame.filename
        if any(part in name for part in ("sqlalchemy", "sqlmodel", "site-packages", "/lib/python")) \
                or name.endswith(("models/db.py", "contextlib.py")):
            continue
        frames.append(f"{Path(name).name}:{frame.lineno} in {frame.name}")
        if len(frames) == 3:
            break
    return " <- ".join(frames) or "?"


def _locked(conn: Any, asked: float) -> None:
    """The write lock was taken: log a long wait for it, and note when it was taken."""
    now = time.perf_counter()
    conn.info["nx_locked"] = now
    waited_ms = (now - asked) * 1000
    if waited_ms >= SLOW_LOCK_MS:
        log.warning("waited %.0f ms for the database's write lock (%s)", waited_ms, _caller())


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        path = _sqlite_path(url)
        if path is not None:
            if not path.parent.exists():
                secure_dir(path.parent)
            if not path.exists():
                # Created here, empty, 0600, before SQLite opens it with the umask's mode.
                fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
                               **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)

        # pysqlite defers BEGIN on its own; emit it ourselves so that `BEGIN IMMEDIATE`
        # (write_scope / `session_scope(immediate=True)`) takes the write lock up front.
        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            if path is not None:
                secure_file(path)

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            begin = conn.get_execution_options().get("sqlite_begin") or (
                "BEGIN IMMEDIATE" if _writes_expected.get() else "BEGIN")
            conn.info["nx_tx"] = "writing" if begin != "BEGIN" else "fresh"
            asked = time.perf_counter()
            conn.exec_driver_sql(begin)
            if begin != "BEGIN":
                _locked(conn, asked)

        @event.listens_for(engine, "before_cursor_execute")
        def _watch(conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool) -> None:
            state = conn.info.get("nx_tx")
            if state is None or state == "writing":
                return
            if _WRITE.match(statement):
                if state == "read":
                    site = _caller()
                    if site not in _warned_sites:
                        _warned_sites.add(site)
                        log.warning("a deferred transaction read and then wrote (%s): under concurrent writers "
                                    "SQLite refuses this; open it with write_scope(engine)", site)
                conn.info["nx_tx"] = "writing"
            elif state == "fresh" and _READ.match(statement):
                conn.info["nx_tx"] = "read"

        @event.listens_for(engine, "commit")
        @event.listens_for(engine, "rollback")
        def _end(conn: Any) -> None:
            conn.info.pop("nx_tx", None)
            locked = conn.info.pop("nx_locked", None)
            if locked is not None:
                held_ms = (time.perf_counter() - locked) * 1000
                if held_ms >= SLOW_LOCK_MS:
                    log.warning("held the database's write lock for %.0f ms (%s)", held_ms, _caller())

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    # The same discipline as SQLite's busy timeout: a transaction waits at most this long for a
    # row lock (then fails with a clear error instead of hanging), and one left open idle is ended.
    kwargs.setdefault("connect_args", {"options": f"-c lock_timeout={BUSY_TIMEOUT_MS} "
                                                  "-c idle_in_transaction_session_timeout=300000"})
    return create_engine(url, **kwargs)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def writer(engine: Engine) -> Engine:
    """The engine whose transactions take SQLite's write lock at BEGIN, for code that manages its
    own connections and transactions (the conversation engine). PostgreSQL: the engine itself."""
    return engine.execution_options(sqlite_begin="BEGIN IMMEDIATE") if is_sqlite(engine) else engine


@contextmanager
def session_scope(engine: Engine, *, immediate: bool = False) -> Iterator[Session]:
    """A session that commits on success and rolls back on error.

    `immediate=True` (or `write_scope`) takes SQLite's write lock at BEGIN, so read-then-write
    sequences (claiming outbox rows, leases, counters) cannot interleave between processes and
    wait their turn instead of failing. On PostgreSQL it changes nothing; use row locks there.
    Without it the transaction is deferred: readers never wait.
    """
    bind = writer(engine) if immediate else engine
    with Session(bind, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# A write that held SQLite's write lock longer than this steps aside after it (`step_aside`).
QUICK_WRITE_S = 0.02
STEP_ASIDE_MIN_S = 0.15  # longer than the longest sleep of SQLite's busy handler (100 ms)


def step_aside(session: Session, since: float) -> None:
    """Commit the write under way (begun at monotonic time `since`) and, on SQLite, when it held
    the write lock longer than a quick write, wait as long as it held it (0.15 s to 1 s), so that
    the webhooks and workers waiting in SQLite's busy handler get their turn before the next
    batch takes the lock again: a long job writes in batches, holding the lock at most half the time."""
    session.commit()
    held = time.monotonic() - since
    if held > QUICK_WRITE_S and session.get_bind().dialect.name == "sqlite":
        time.sleep(min(max(held, STEP_ASIDE_MIN_S), 1.0))


def write_scope(engine: Engine) -> Any:
    """A short write transaction: `session_scope(engine, immediate=True)`."""
    return session_scope(engine, immediate=True)


@contextmanager
def read_scope(engine: Engine) -> Iterator[Session]:
    """A read-only transaction that never waits for a writer (SQLite: a deferred snapshot with
    `query_only`; PostgreSQL: `READ ONLY`). A write inside it fails at once."""
    with engine.connect() as conn:
        if is_sqlite(engine):
            conn = conn.execution_options(sqlite_begin="BEGIN")
            conn.exec_driver_sql("PRAGMA query_only=1")
        else:
            conn = conn.execution_options(postgresql_readonly=True)
        try:
            with Session(bind=conn, expire_on_commit=False) as session:
                yield session  # closed, not rolled back: what it loaded stays readable
        finally:
            if is_sqlite(engine):
                conn.rollback()
                conn.exec_driver_sql("PRAGMA query_only=0")
                conn.rollback()


def sqlite_pragma(engine: Engine, statement: str) -> list[Any]:
    """Run a PRAGMA outside any transaction (checkpoints refuse to run inside one)."""
    with engine.connect() as conn:
        dbapi = conn.connection.driver_connection
        assert dbapi is not None
        return list(dbapi.execute(statement).fetchall())


def refresh_statistics(engine: Engine) -> None:
    """ANALYZE, so that the query planner knows how many rows share a status, a channel or a
    language (95 ms at 100,000 people). Every row is read: a sample (`analysis_limit`) of a
    column where all share one value is taken for selective. PostgreSQL's autovacuum analyzes
    too, but not at once after a bulk load."""
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()


def checkpoint(engine: Engine, *, truncate_above: int = WAL_SIZE_LIMIT) -> int:
    """Copy the WAL into the database file (PASSIVE: never waits for anyone), and when the WAL
    is still larger than `truncate_above`, TRUNCATE it (waits at most a moment for readers).
    Returns the WAL's size in bytes afterwards (0 when not SQLite)."""
    if not is_sqlite(engine) or engine.url.database in (None, "", ":memory:"):
        return 0
    wal = Path(str(engine.url.database) + "-wal")
    sqlite_pragma(engine, "PRAGMA wal_checkpoint(PASSIVE)")
    size = wal.stat().st_size if wal.exists() else 0
    if size > truncate_above:
        with engine.connect() as conn:
            dbapi = conn.connection.driver_connection
            assert dbapi is not None
            dbapi.execute("PRAGMA busy_timeout=200")
            try:
                dbapi.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                dbapi.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        size = wal.stat().st_size if wal.exists() else 0
    return size
