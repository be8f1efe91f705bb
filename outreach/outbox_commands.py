"""`nuanxin outbox ...`: look at the outbox, requeue failures, cancel unsent messages.

Every change is a staff action: it is recorded per row (OutboxEvent with the actor in the
reason) and once in the audit log, with the actor from `--as` or $USER.
"""

from __future__ import annotations

import json
import os
from typing import Any

import typer
from sqlalchemy import and_

outbox_app = typer.Typer(help="The outbox: status, retry failed messages, cancel unsent ones.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(outbox_app, name="outbox")


def _engine() -> Any:
    from models.db import make_engine
    from settings import get_settings

    return make_engine(get_settings().effective_database_url)


def _actor(given: str | None) -> str:
    return given or os.environ.get("USER") or "cli"


def counts(engine: Any) -> dict[str, dict[str, int]]:
    """{status: {kind: n}}."""
    from sqlalchemy import func, select
    from sqlmodel import col

    from models.db import session_scope
    from models.outbox import OutboxMessage

    out: dict[str, dict[str, int]] = {}
    with session_scope(engine) as s:
        for status, kind, n in s.execute(select(col(OutboxMessage.status), col(OutboxMessage.kind), func.count())
                                         .group_by(col(OutboxMessage.status), col(OutboxMessage.kind))):
            out.setdefault(status, {})[kind] = int(n)
    return out


def retry_failed(engine: Any, *, actor: str, kind: str | None = None, now: Any = None) -> int:
    """Failed rows back to queued, due now, with a fresh deadline. Returns how many."""
    from models.actions import audit
    from models.base import utcnow
    from models.db import session_scope
    from models.outbox import OutboxMessage, OutboxStatus
    from outreach.outbox import DEFAULT_DEADLINE, move_where

    now = now or utcnow()
    t = OutboxMessage.__table__  # type: ignore[attr-defined]
    with session_scope(engine, immediate=True) as s:
        ids = move_where(s, t.c.kind == kind if kind else t.c.id.is_not(None), from_status=OutboxStatus.FAILED,
                         to=OutboxStatus.QUEUED, reason=f"requeued by {actor}", at=now,
                         values={"next_attempt_at": now, "deadline_at": now + DEFAULT_DEADLINE, "attempts": 0})
        audit(s, actor, "outbox.retry_failed", "outbox", kind or "*", {"kind": kind, "rows": len(ids)}, now)
    return len(ids)


def cancel(engine: Any, *, actor: str, broadcast: int | None = None, kind: str | None = None, now: Any = None) -> int:
    """Unsent (queued) rows of a broadcast or a kind → cancelled. Rows being sent are left alone."""
    from models.actions import audit
    from models.base import utcnow
    from models.db import session_scope
    from models.outbox import OutboxMessage, OutboxStatus
    from outreach.outbox import move_where

    if broadcast is None and not kind:
        raise ValueError("give a broadcast id or a kind")
    now = now or utcnow()
    t = OutboxMessage.__table__  # type: ignore[attr-defined]
    where = [t.c.broadcast_id == broadcast] if broadcast is not None else []
    where += [t.c.kind == kind] if kind else []
    with session_scope(engine, immediate=True) as s:
        ids = move_where(s, and_(*where), from_status=OutboxStatus.QUEUED, to=OutboxStatus.CANCELLED,
                         reason=f"cancelled by {actor}", at=now, values={"error": f"cancelled by {actor}"})
        audit(s, actor, "outbox.cancel", "broadcast" if broadcast is not None else "outbox",
              broadcast if broadcast is not None else kind, {"kind": kind, "rows": len(ids)}, now)
    return len(ids)


@outbox_app.command("status")
def status_cmd(as_json: bool = typer.Option(False, "--json", help="Print one JSON object {status: {kind: n}}.")
               ) -> None:
    """Count outbox messages by status and kind."""
    data = counts(_engine())
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False, sort_keys=True))
        return
    if not data:
        typer.echo("outbox is empty")
    for status in sorted(data):
        total = sum(data[status].values())
        typer.echo(f"{status:<11} {total:>8}  " + ", ".join(f"{k}={n}" for k, n in sorted(data[status].items())))


@outbox_app.command("retry-failed")
def retry_failed_cmd(kind: str | None = typer.Option(None, "--kind", help="Only messages of this kind."),
                     actor: str | None = typer.Option(None, "--as", help="Staff username (default: $USER)."),
                     ) -> None:
    """Put failed messages back in the queue (audited)."""
    n = retry_failed(_engine(), actor=_actor(actor), kind=kind)
    typer.echo(f"requeued {n} failed message(s)")


@outbox_app.command("cancel")
def cancel_cmd(broadcast: int | None = typer.Option(None, "--broadcast", help="Broadcast id."),
               kind: str | None = typer.Option(None, "--kind", help="Message kind."),
               actor: str | None = typer.Option(None, "--as", help="Staff username (default: $USER)."),
               ) -> None:
    """Cancel messages not yet sent, of one broadcast or one kind (audited)."""
    if broadcast is None and not kind:
        typer.echo("give --broadcast ID or --kind KIND", err=True)
        raise typer.Exit(2)
    n = cancel(_engine(), actor=_actor(actor), broadcast=broadcast, kind=kind)
    typer.echo(f"cancelled {n} unsent message(s)")
