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
    from models.migrate import upgrade

    engine = make_engine(_settings().effective_database_url)
    if migrate:
        upgrade(engine)
    return engine


def _actor(given: str | None) -> str:
    return given or os.environ.get("USER") or "cli"


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (SQLite file by default, DATABASE_URL for PostgreSQL)."""
    from models.migrate import current_revision

    engine = _engine(migrate=True)
    typer.echo(f"database at revision {current_revision(engine)}")


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
    actor: str | None = typer.Option(None, "--as", help="Staff username recorded in the audit log."),
) -> None:
    """Import a beneficiary roll: valid rows inserted or updated, bad rows reported with row and reason."""
    from models.roll import RollFileError, import_roll

    settings, engine = _settings(), _engine()
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


@staff_app.command("add")
def staff_add(
    username: str,
    role: list[str] = typer.Option(..., "--role", help="caseworker, composer, approver or admin; repeat for several."),
    display_name: str = typer.Option("", help="Name shown in the console."),
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
    actor: str | None = typer.Option(None, "--as", help="Who is adding this account (audit log)."),
) -> None:
    """Create a staff account."""
    from sqlmodel import select

    from models.actions import audit
    from models.staff import Role, StaffUser, hash_password

    known = {r.value for r in Role}
    bad = [r for r in role if r not in known]
    if bad:
        typer.echo(f"unknown role(s): {', '.join(bad)} (choose from {', '.join(sorted(known))})", err=True)
        raise typer.Exit(2)
    from models.db import write_scope

    with write_scope(_engine()) as session:
        if session.exec(select(StaffUser).where(StaffUser.username == username)).first():
            typer.echo(f"staff user {username} already exists", err=True)
            raise typer.Exit(2)
        user = StaffUser(username=username, display_name=display_name, roles=role,
                         password_hash=hash_password(password))
        session.add(user)
        session.flush()
        audit(session, _actor(actor), "staff.create", "staff_user", user.id, {"username": username, "roles": role})
    typer.echo(f"staff user {username} created")


@app.command()
def run(
    host: str | None = typer.Option(None, help="Web console address (default from settings: 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Web console port (default 8080)."),
) -> None:
    """Start everything in one process: web console, dispatcher, scheduler, Telegram polling when configured."""
    from service import serve

    settings = _settings()
    code = serve(settings, host=host or settings.web_host, port=port or settings.web_port)
    if code:
        raise typer.Exit(code)


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
