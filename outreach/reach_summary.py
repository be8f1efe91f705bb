"""Each person's standing for a bulk message, kept on their row so the composer counts without a join.

The broadcast composer shows, while staff type a filter, how many of a million people a
broadcast reaches and why the others are left out. Folding every matched person's contacts into
the contact rule at each keystroke is a join of the roll with its contacts (seconds on
PostgreSQL); so each person's row carries the fold's result instead: the smallest
`reach.contact_rank` of their contacts for a bulk message, for any channel and for each channel
alone (`beneficiary.reach_rank`, `reach_rank_telegram`, `reach_rank_sms`). The count reads them
with `reach.person_stop` (deceased, moved, paused: the person's own columns, read live) and
`reach.standing`, as before.

The ranks are computed by the rule's own SQL (`reach.contact_rank`), by triggers on the contact
table that the database runs in the same transaction as every write to a contact (an ORM change,
a Core UPDATE, the roll's bulk insert, a delete): no writer can forget them. The trigger bodies
are that SQL compiled for the database (`install`), installed when the table is created and by
each migration. A bulk rank does not depend on the person's own columns (a bulk message never
reaches a relative after a death), so a death, move or pause needs no refresh: the count reads
those live. Time is not part of it either: quiet hours only delay sending, they never change who
is counted. `rebuild` recomputes every row (after a migration, or to repair).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, literal_column, select, text, update
from sqlalchemy.engine import Dialect

from models.people import UNRANKED
from outreach import reach
from outreach.reach import B, C

MESSAGE_CLASS = reach.MessageClass.BULK
# The column holding the bulk rank for a broadcast on one channel (None: either channel).
RANK_COLUMNS: dict[str | None, str] = {None: "reach_rank", "telegram": "reach_rank_telegram", "sms": "reach_rank_sms"}
# Writes to these contact columns can change a rank; others (last_inbound_at, …) cannot.
RANKED_CONTACT_COLUMNS = ("beneficiary_id", "family_member_id", "channel", "verified", "opted_out_at", "blocked_at",
                          "invalid_at")
TRIGGERS = ("contact_reach_insert", "contact_reach_update", "contact_reach_delete")
PG_FUNCTION = "contact_reach_refresh"

assert reach.RANK_NONE == UNRANKED, "a person with no contact starts unranked"
assert not reach.rule_for(MESSAGE_CLASS).reaches_relatives_of_deceased, "a bulk rank must not depend on the person"


def rank_column(channel: str | None) -> Any:
    return B.c[RANK_COLUMNS[channel]]


def _rank_of(c: Any, channel: str | None) -> Any:
    return reach.contact_rank(c, B, MESSAGE_CLASS, (channel,) if channel else None)


def _ranks() -> dict[str, Any]:
    """Each rank column's value for the beneficiary row being updated: the rule over its contacts."""
    out = {}
    for channel, name in RANK_COLUMNS.items():
        c = C.alias("ranked_c")
        smallest = select(func.min(_rank_of(c, channel))).where(c.c.beneficiary_id == B.c.id).correlate(B)
        out[name] = func.coalesce(smallest.scalar_subquery(), reach.RANK_NONE)
    return out


def refresh_statement(*where: Any) -> Any:
    """UPDATE of the beneficiary rows matching `where`: their ranks recomputed by the rule."""
    return update(B).where(*where).values(**_ranks())


def _compiled(dialect: Dialect, person_ids: Sequence[str]) -> str:
    stmt = refresh_statement(B.c.id.in_([literal_column(p) for p in person_ids]))
    return str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def trigger_ddl(dialect: Dialect) -> list[str]:
    """The statements that (re)create the triggers for this database."""
    columns = ", ".join(RANKED_CONTACT_COLUMNS)
    drops = [f"DROP TRIGGER IF EXISTS {name}" + (" ON contact" if dialect.name == "postgresql" else "")
             for name in TRIGGERS]
    if dialect.name == "postgresql":
        body = (f"BEGIN\n"
                f"IF TG_OP = 'INSERT' THEN {_compiled(dialect, ['NEW.beneficiary_id'])};\n"
                f"ELSIF TG_OP = 'DELETE' THEN {_compiled(dialect, ['OLD.beneficiary_id'])};\n"
                f"ELSE {_compiled(dialect, ['OLD.beneficiary_id', 'NEW.beneficiary_id'])};\n"
                f"END IF;\nRETURN NULL;\nEND")
        return [*drops,
                f"CREATE OR REPLACE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $reach$\n{body}\n$reach$",
                f"CREATE TRIGGER contact_reach_insert AFTER INSERT ON contact FOR EACH ROW "
                f"WHEN (NEW.beneficiary_id IS NOT NULL) EXECUTE FUNCTION {PG_FUNCTION}()",
                f"CREATE TRIGGER contact_reach_update AFTER UPDATE OF {columns} ON contact FOR EACH ROW "
                f"EXECUTE FUNCTION {PG_FUNCTION}()",
                f"CREATE TRIGGER contact_reach_delete AFTER DELETE ON contact FOR EACH ROW "
                f"WHEN (OLD.beneficiary_id IS NOT NULL) EXECUTE FUNCTION {PG_FUNCTION}()"]
    return [*drops,
            f"CREATE TRIGGER contact_reach_insert AFTER INSERT ON contact WHEN NEW.beneficiary_id IS NOT NULL "
            f"BEGIN {_compiled(dialect, ['NEW.beneficiary_id'])}; END",
            f"CREATE TRIGGER contact_reach_update AFTER UPDATE OF {columns} ON contact "
            f"BEGIN {_compiled(dialect, ['OLD.beneficiary_id', 'NEW.beneficiary_id'])}; END",
            f"CREATE TRIGGER contact_reach_delete AFTER DELETE ON contact WHEN OLD.beneficiary_id IS NOT NULL "
            f"BEGIN {_compiled(dialect, ['OLD.beneficiary_id'])}; END"]


def installed(conn: Connection) -> bool:
    """Whether every trigger is in place (a read: no lock taken)."""
    if conn.dialect.name == "postgresql":
        query = text("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgname = ANY(:names)")
        found = conn.execute(query, {"names": list(TRIGGERS)}).scalar()
    else:
        query = text("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name IN (:a, :b, :c)")
        found = conn.execute(query, dict(zip("abc", TRIGGERS, strict=True))).scalar()
    return found == len(TRIGGERS)


def install(conn: Connection) -> None:
    """(Re)create the triggers, from the rule as this code has it."""
    for statement in trigger_ddl(conn.dialect):
        conn.execute(text(statement))


def rebuild(conn: Connection, *, batch: int = 50_000) -> int:
    """Recompute every person's ranks (after a migration, a restore, or a bulk load with the
    triggers dropped) with the triggers' own statement, a range of ids at a time; returns how
    many people."""
    done = 0
    last = conn.execute(select(func.max(B.c.id))).scalar() or 0
    for start in range(0, last, batch):
        done += conn.execute(refresh_statement(B.c.id > start, B.c.id <= start + batch)).rowcount or 0
    return done


def drop(conn: Connection) -> None:
    """Drop the triggers (before a bulk load that `rebuild` follows)."""
    for statement in trigger_ddl(conn.dialect):
        if statement.startswith("DROP"):
            conn.execute(text(statement))


__all__ = ["MESSAGE_CLASS", "RANK_COLUMNS", "drop", "install", "installed", "rank_column", "rebuild", "refresh_statement", "trigger_ddl"]
