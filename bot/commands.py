"""`nuanxin chat` (the engine in a terminal) and `nuanxin tickets ...` (answer handed-off questions)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from bot.tickets import TicketError, draft_article, reply_to_ticket, ticket_summary

tickets_app = typer.Typer(help="Questions the bot passed to staff: list, answer, turn into articles.",
                          no_args_is_help=True)



def _settings() -> Any:
    from settings import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def _db(settings: Any) -> Any:
    from models.db import make_engine
    from models.migrate import upgrade_if_needed

    engine = make_engine(settings.effective_database_url)
    upgrade_if_needed(engine)
    return engine


def chat(
    phone: str | None = typer.Option(None, "--phone", help="Talk as the person with this phone on the roll "
                                     "(linked at once: a staff terminal or a demo). E.g. +8613812345678."),
    script: Path | None = typer.Option(None, "--script", exists=True, dir_okay=False, readable=True,
                                       help="Feed the lines of this file (one message per line, # for "
                                            "comments, '/file PATH' sends a file) and print the replies."),
    lang: str | None = typer.Option(None, "--lang", help="Language hint: zh-Hans, zh-Hant or en."),
    session: str = typer.Option("local", "--session", help="Console conversation name (its state is kept)."),
) -> None:
    """Talk to the conversation engine in the terminal as a beneficiary would."""
    from bot.channels.console import CHANNEL, run_lines
    from bot.engine import Engine
    from models.clock import SystemClock

    settings = _settings()
    db = _db(settings)
    engine = Engine(db, settings, SystemClock())
    address = f"console:{session}"
    if phone:
        try:
            address = link_console(db, engine, phone, session)
        except ValueError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
    if lang:
        # An explicit --lang wins over the person's preference on the roll, as the word would in a chat.
        from bot.channels.base import Inbound
        word = {"en": "English", "zh-Hant": "繁體", "zh-Hans": "中文"}.get(lang)
        if word is None:
            typer.echo("--lang: use zh-Hans, zh-Hant or en", err=True)
            raise typer.Exit(2)
        engine.handle(Inbound(channel="console", address=address, text=word, language_hint=lang))
    if script is not None:
        run_lines(engine.handle, script.read_text(encoding="utf-8").splitlines(), address, typer.echo, lang)
        return
    typer.echo("暖心 nuanxin console. Ctrl-D to quit. / 按 Ctrl-D 退出。")
    if sys.stdin.isatty():
        seen = _show_delivered(db, address, 0, show=False)  # from now on
        while True:
            seen = _show_delivered(db, address, seen)
            try:
                line = input("> ")
            except (EOFError, KeyboardInterrupt):
                typer.echo("")
                return
            if line.strip():
                from bot.channels.console import render, to_inbound
                typer.echo(render(engine.handle(to_inbound(line, address, lang))))
    else:
        run_lines(engine.handle, sys.stdin, address, typer.echo, lang)
    _ = CHANNEL


def _show_delivered(db: Any, address: str, after_id: int, *, show: bool = True) -> int:
    """Print what was delivered to this console conversation through the outbox since `after_id`
    (a staff member's answer, a notice); returns the last message id seen."""
    from sqlmodel import Session, col, select

    from models.conversations import MessageLog

    with Session(db) as s:
        rows = s.exec(select(MessageLog).where(MessageLog.channel == "console", MessageLog.address == address,
                                               MessageLog.direction == "out", col(MessageLog.outbox_id).is_not(None),
                                               col(MessageLog.id) > after_id).order_by(col(MessageLog.id))).all()
        last = s.exec(select(MessageLog.id).order_by(col(MessageLog.id).desc())).first() or 0
    for row in rows if show else ():
        typer.echo(row.text + "\n")
    return max(last, after_id)


def link_console(db: Any, engine: Any, phone: str, session: str) -> str:
    """Link a console conversation to the person whose phone is on the roll. Returns the address."""
    from sqlmodel import select

    from models.db import session_scope
    from models.people import Contact
    from models.phone import InvalidPhone, PhoneNumber

    try:
        e164 = PhoneNumber.parse(phone).e164
    except InvalidPhone as exc:
        raise ValueError(f"--phone: {exc}") from None
    address = f"console:{session}:{e164}"
    with session_scope(db, immediate=True) as s:
        c = s.exec(select(Contact).where(Contact.channel == "sms", Contact.address == e164,
                                         Contact.beneficiary_id.is_not(None))).first()  # type: ignore[union-attr]
        if c is None or c.beneficiary_id is None:
            raise ValueError("--phone: no one on the roll has this phone number")
        engine.identity.link(s, channel="console", address=address, beneficiary_id=c.beneficiary_id,
                             relationship=None, phone=e164, now=engine.clock.now(), actor="console")
    return address


# --------------------------------------------------------------------------- tickets


@tickets_app.command("list")
def tickets_list(
    status: str | None = typer.Option("open", "--status", help="open, answered, closed, or 'all'."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object: {\"tickets\": [...]}."),
    limit: int = typer.Option(100, "--limit", help="At most this many, oldest first."),
) -> None:
    """List handed-off questions, oldest first."""
    from sqlmodel import select

    from models.applications import HandoffTicket
    from models.db import session_scope

    db = _db(_settings())
    with session_scope(db) as s:
        q = select(HandoffTicket).order_by(HandoffTicket.created_at, HandoffTicket.id).limit(limit)  # type: ignore[arg-type]
        if status and status != "all":
            q = q.where(HandoffTicket.status == status)
        rows = s.exec(q).all()
        if as_json:
            typer.echo(json.dumps({"tickets": [ticket_summary(t) for t in rows]}, ensure_ascii=False))
            return
        if not rows:
            typer.echo("no tickets")
        for t in rows:
            typer.echo(f"#{t.id} [{t.status}] {t.created_at:%Y-%m-%d %H:%M} {t.channel} {t.reason}: "
                       f"{t.question[:80]}")


@tickets_app.command("reply")
def tickets_reply(
    ticket_id: int = typer.Argument(..., help="Ticket number."),
    text: str = typer.Argument(..., help="The answer, as the person will read it."),
    username: str | None = typer.Option(None, "--as", help="Your staff username (your password is asked), "
                                                          "or set NUANXIN_STAFF_TOKEN."),
) -> None:
    """Answer a ticket; the person gets it on the channel they used (through the outbox)."""
    from cli import authenticate_staff
    from models.clock import SystemClock

    db = _db(_settings())
    username = authenticate_staff(username, engine=db)
    try:
        reply_to_ticket(db, ticket_id, text, username, SystemClock().now())
    except TicketError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"ticket #{ticket_id} answered; the reply is queued")


@tickets_app.command("draft-article")
def tickets_draft_article(
    ticket_id: int = typer.Argument(..., help="An answered ticket."),
    username: str | None = typer.Option(None, "--as", help="Your staff username (your password is asked), "
                                                          "or set NUANXIN_STAFF_TOKEN."),
) -> None:
    """Turn a staff answer into a knowledge-article draft in the database, for review (it
    answers nothing until reviewed: `nuanxin knowledge review`)."""
    from cli import authenticate_staff
    from models.clock import SystemClock

    db = _db(_settings())
    username = authenticate_staff(username, engine=db)
    try:
        record = draft_article(db, ticket_id, username, SystemClock().now())
    except TicketError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"draft {record.article_id} ({record.language}) saved for review")


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
    app.add_typer(tickets_app, name="tickets")
