"""The `nuanxin` command.

Area modules add their own commands through `register(app)`; heavy imports happen
inside the commands so that `nuanxin --help` and `nuanxin ask` start quickly.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path

import typer

app = typer.Typer(help="暖心 nuanxin: the messaging front door for veterans and retirees.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
roll_app = typer.Typer(help="Beneficiary rolls: import and check.", no_args_is_help=True)
staff_app = typer.Typer(help="Staff accounts.", no_args_is_help=True)
app.add_typer(roll_app, name="roll")
app.add_typer(staff_app, name="staff")

# Modules that add commands; each has `register(app)`.
COMMAND_MODULES = (
    "bot.qa_commands",
    "bot.commands",
    "outreach.outbox_commands",
    "outreach.broadcast_commands",
    "scheduler_commands",
    "service_commands",
)


def _settings():  # type: ignore[no-untyped-def]
    from settings import SettingsError, get_settings

    try:
        return get_settings()
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def _engine(migrate: bool = True):  # type: ignore[no-untyped-def]
    from models.db import make_engine
    from models.migrate import upgrade_if_needed

    engine = make_engine(_settings().effective_database_url)
    if migrate:
        upgrade_if_needed(engine)
    return engine


def _actor(given: str | None) -> str:
    """Who a server command is recorded as when no staff member is named: the server account."""
    return given or "server:" + (os.environ.get("USER") or "cli")


STAFF_TOKEN_ENV = "NUANXIN_STAFF_TOKEN"


def authenticate_staff(username: str | None, *, engine=None) -> str:  # type: ignore[no-untyped-def]
    """The staff member a workflow command acts as, once proven: a personal token issued in the
    console (in $NUANXIN_STAFF_TOKEN), or that member's password (asked for on the terminal, or
    read from standard input). Sign-in limits apply as in the console. Exits 2 when not proven."""
    from models.clock import SystemClock
    from models.db import session_scope
    from models.staff_access import SignInRefusal, normalise_username, sign_in, user_for_token

    db = engine if engine is not None else _engine()
    now = SystemClock().now()
    token = os.environ.get(STAFF_TOKEN_ENV, "").strip()
    if token:
        with session_scope(db, immediate=True) as session:
            user = user_for_token(session, token, now=now)
            name = user.username if user is not None else None
        if name is None:
            typer.echo(f"{STAFF_TOKEN_ENV}: the token is unknown, expired or revoked (issue a new one at /account)",
                       err=True)
            raise typer.Exit(2)
        if username and normalise_username(username) != normalise_username(name):
            typer.echo(f"--as {username}: the token in {STAFF_TOKEN_ENV} belongs to {name}", err=True)
            raise typer.Exit(2)
        return name
    if not username:
        typer.echo(f"say who you are: --as USERNAME (your password is asked), or set {STAFF_TOKEN_ENV}", err=True)
        raise typer.Exit(2)
    password = typer.prompt(f"password for {username}", hide_input=True, err=True, default="", show_default=False)
    with session_scope(db, immediate=True) as session:
        result = sign_in(session, username=username, password=password, address="cli", now=now)
        name = result.user.username if result.user is not None else None
    if name is None:
        why = ("too many wrong passwords: wait a minute" if result.refusal == SignInRefusal.LOCKED
               else "wrong username or password")
        typer.echo(f"not signed in: {why}", err=True)
        raise typer.Exit(2)
    return name


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (SQLite file by default, DATABASE_URL for PostgreSQL)."""
    from models.migrate import current_revision, upgrade

    engine = _engine(migrate=False)
    upgrade(engine)  # a full run even when current: it also puts back the reach triggers if missing
    typer.echo(f"database at revision {current_revision(engine)}")


@app.command("reach-rebuild")
def reach_rebuild() -> None:
    """Recompute every person's reach ranks, which the broadcast composer counts by (the database
    keeps them with every contact change; after restoring a backup or a bulk load with triggers off)."""
    from models.db import writer
    from outreach.reach_summary import install, rebuild

    engine = _engine(migrate=True)
    with writer(engine).begin() as conn:
        install(conn)
        typer.echo(f"reach ranks recomputed for {rebuild(conn)} people")


@app.command("demo-data")
def demo_data(people: int = typer.Option(3000, help="How many people to generate.")) -> None:
    """Load a realistic generated roll, staff accounts and a few applications (once)."""
    from models.demo import STAFF, load_demo

    result = load_demo(_engine(), id_key=_settings().id_key, people=people)
    if result["loaded"]:
        typer.echo(f"demo data loaded: {result['people']} people")
        typer.echo("staff sign-in (demo only): " + ", ".join(f"{u} / {p}" for u, _, _, p in STAFF))
    else:
        typer.echo(f"demo data not loaded: {result['reason']}")


@roll_app.command("import")
def roll_import(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                help="CSV (UTF-8, UTF-8 with BOM, GB18030) or XLSX roll."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check every row and report; write nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object."),
    actor: str | None = typer.Option(None, "--as", help="Your staff username, recorded in the audit log (your "
                                                        "password is asked); without it, the server account."),
) -> None:
    """Import a beneficiary roll: valid rows inserted or updated, bad rows reported with row and reason."""
    from models.roll import RollFileError, import_roll

    settings, engine = _settings(), _engine()
    if actor is not None:
        actor = authenticate_staff(actor, engine=engine)
    progress = None
    bar = None
    if not as_json and sys.stdout.isatty():
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("checking rows", total=None)
        def progress(n: int) -> None:
            bar.advance(task, n)
    try:
        report = import_roll(engine, file, id_key=settings.id_key, actor=_actor(actor), dry_run=dry_run,
                             progress=progress)
    except RollFileError as exc:
        if as_json:
            typer.echo(json.dumps({"error": str(exc)}, ensure_ascii=False))
        else:
            typer.echo(f"cannot import {file.name}: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        if bar is not None:
            bar.stop()
    if as_json:
        typer.echo(json.dumps(report.as_json(), ensure_ascii=False))
        return
    verb = "would import" if dry_run else "imported"
    typer.echo(f"{verb} {report.imported}, updated {report.updated}, unchanged {report.unchanged}, "
               f"rejected {len(report.rejected)}")
    for item in report.rejected[:200]:
        typer.echo(f"  row {item['row']}: {item['reason']}")
    if len(report.rejected) > 200:
        typer.echo(f"  … and {len(report.rejected) - 200} more (use --json for all)")


def _read_password(password_stdin: bool, prompt: str) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=True, err=True))


def _account_error(exc: Exception) -> None:
    typer.echo(str(exc), err=True)
    raise typer.Exit(2)


@staff_app.command("add")
def staff_add(
    username: str,
    role: list[str] = typer.Option(..., "--role", help="viewer, caseworker, composer, approver or admin; "
                                                       "repeat for several."),
    display_name: str = typer.Option("", help="Name shown in the console."),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Read the password from the first line of standard input."),
) -> None:
    """Create a staff account (on the server: how the first administrator is made)."""
    from models.clock import SystemClock
    from models.db import session_scope
    from models.staff_access import AccountError, create_staff

    password = _read_password(password_stdin, "password")
    try:
        with session_scope(_engine(), immediate=True) as session:
            create_staff(session, username=username, password=password, roles=role, display_name=display_name,
                         actor=_actor(None), now=SystemClock().now())
    except AccountError as exc:
        _account_error(exc)
    typer.echo(f"staff user {username} created")


@staff_app.command("list")
def staff_list(as_json: bool = typer.Option(False, "--json", help="Print one JSON object {\"staff\": [...]}.")) -> None:
    """List staff accounts: username, name, roles, active, last sign-in."""
    from sqlmodel import Session, select

    from models.staff import StaffUser

    with Session(_engine()) as session:
        users = session.exec(select(StaffUser).order_by(StaffUser.username)).all()
        rows = [{"username": u.username, "display_name": u.display_name, "roles": list(u.roles), "active": u.active,
                 "last_sign_in_at": u.last_sign_in_at.isoformat() if u.last_sign_in_at else None} for u in users]
    if as_json:
        typer.echo(json.dumps({"staff": rows}, ensure_ascii=False))
        return
    for u in users:
        state = "active" if u.active else "deactivated"
        typer.echo(f"{u.username:<20} {','.join(u.roles):<32} {state:<12} {u.display_name}")


def _staff_change(username: str, change) -> None:  # type: ignore[no-untyped-def]
    from sqlmodel import func, select

    from models.clock import SystemClock
    from models.db import session_scope
    from models.staff import StaffUser
    from models.staff_access import AccountError

    try:
        with session_scope(_engine(), immediate=True) as session:
            user = session.exec(select(StaffUser).where(func.lower(StaffUser.username) == username.lower())).first()
            if user is None:
                raise AccountError(f"no staff user {username}")
            change(session, user, SystemClock().now())
    except AccountError as exc:
        _account_error(exc)


@staff_app.command("deactivate")
def staff_deactivate(username: str) -> None:
    """Deactivate an account: its sessions and tokens end at once; the audit log keeps its history."""
    from models.staff_access import set_active

    _staff_change(username, lambda s, user, now: set_active(s, user, False, actor=_actor(None), now=now))
    typer.echo(f"staff user {username} deactivated")


@staff_app.command("reset-password")
def staff_reset_password(
    username: str,
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Read the new password from the first line of standard input."),
) -> None:
    """Set a new password for an account; every session of the account ends."""
    from models.staff_access import set_password

    password = _read_password(password_stdin, "new password")
    _staff_change(username, lambda s, user, now: set_password(s, user, password, actor=_actor(None), now=now))
    typer.echo(f"password of {username} reset; their sessions are signed out")


@app.command()
def run(
    host: str | None = typer.Option(None, help="Web console address (default from settings: 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Web console port (default 8080)."),
) -> None:
    """Start everything in one process: web console, dispatcher, scheduler, Telegram polling when configured."""
    from service import serve

    settings = _settings()
    serve(settings, host=host or settings.web_host, port=port or settings.web_port)  # exits the process


def _register_area_commands() -> None:
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        module.register(app)


_register_area_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
