"""Running the Alembic migrations from code (`nuanxin migrate`, `make run`, tests).

A start only needs to know whether the database is at this code's revision: `is_current`
reads Alembic's version table with SQLAlchemy Core and compares it with `SCHEMA_HEAD`, without
importing Alembic (about 0.2-0.3 s of CPU and several MB in every process). Anything else
(an empty database, one behind or ahead) goes through Alembic itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Column, Engine, MetaData, String, Table, select
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The head of models/migrations/versions/: the revision this code's schema is at. A new
# revision changes it too (tests/reliability/test_start_and_stop.py checks that they agree).
SCHEMA_HEAD = "0001"
# Alembic's own table (its default name, which models/migrations/env.py keeps).
_VERSION_TABLE = Table("alembic_version", MetaData(), Column("version_num", String(32), primary_key=True))


def alembic_config(url: str | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def is_current(engine: Engine) -> bool:
    """Whether the database's schema is at this code's revision (read without Alembic)."""
    try:
        with engine.connect() as conn:
            stored = set(conn.execute(select(_VERSION_TABLE.c.version_num)).scalars())
    except DBAPIError:  # no version table: never migrated (Alembic says so in detail)
        return False
    return stored == {SCHEMA_HEAD}


def upgrade_if_needed(engine: Engine) -> bool:
    """Upgrade when the database is behind the migrations' head; a current schema is only
    compared (a fraction of a second instead of a full Alembic run). Returns whether it ran."""
    if is_current(engine):
        return False
    from alembic.script import ScriptDirectory

    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    if current_revision(engine) in heads:
        return False
    upgrade(engine)
    return True


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
