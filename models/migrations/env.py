"""Alembic environment: the URL comes from the caller (nuanxin migrate) or the settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, inspect
from sqlmodel import SQLModel

import models  # noqa: F401  (registers every table)
from models.db import make_engine

config = context.config
target_metadata = SQLModel.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from settings import get_settings

    return get_settings().effective_database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        before = context.get_context().get_current_revision()
        context.run_migrations()
        _reach_summary(connection, changed=context.get_context().get_current_revision() != before)


def _reach_summary(connection: Connection, *, changed: bool) -> None:
    """The triggers that keep each person's reach ranks, from the rule as this code has it
    (autogenerate does not see triggers); after a schema change every person's ranks are
    recomputed, as the rule may have moved with it."""
    from outreach import reach_summary

    if "contact" not in inspect(connection).get_table_names():
        return
    # A current schema with its triggers is left alone: a CLI command checking the schema while the
    # service runs must not take SQLite's write lock for DDL (it would wait behind a roll import).
    if changed or not reach_summary.installed(connection):
        reach_summary.install(connection)
    if changed:
        reach_summary.rebuild(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
