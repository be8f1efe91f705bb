"""`nuanxin broadcast create|preview|approve|send|cancel|status`.

Each command acts as a staff member proven first (`cli.authenticate_staff`): `--as USERNAME` and
that member's password, or a personal token from the console in $NUANXIN_STAFF_TOKEN. So the
four-eyes rule holds on the command line too: approving as someone else needs their password.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import typer

broadcast_app = typer.Typer(help="Broadcasts: compose, preview, approve (a second person), send, cancel, status.",
                            no_args_is_help=True)

AS = typer.Option(None, "--as", help="Your staff username (your password is asked), or set NUANXIN_STAFF_TOKEN.")


def _ctx(as_: str | None) -> tuple[Any, Any, Any, str]:
    """Engine, settings, clock, and the proven staff username."""
    from cli import _engine, _settings, authenticate_staff
    from models.clock import SystemClock

    engine = _engine()
    return engine, _settings(), SystemClock(), authenticate_staff(as_, engine=engine)


def _user(session: Any, username: str) -> Any:
    from sqlmodel import select

    from models.staff import StaffUser

    user = session.exec(select(StaffUser).where(StaffUser.username == username)).first()
    if user is None or not user.active:
        typer.echo(f"no active staff user {username!r}", err=True)
        raise typer.Exit(2)
    return user


def _broadcast(session: Any, broadcast_id: int) -> Any:
    from models.outbox import Broadcast

    b = session.get(Broadcast, broadcast_id)
    if b is None:
        typer.echo(f"no broadcast {broadcast_id}", err=True)
        raise typer.Exit(2)
    return b


def _refused(exc: Exception) -> None:
    typer.echo(f"refused: {exc}", err=True)
    raise typer.Exit(1)


def _when(value: str | None, tz: Any) -> datetime | None:
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        typer.echo(f"--at: {value!r} is not a time like 2026-03-02T14:00 (office time)", err=True)
        raise typer.Exit(2) from None
    return at if at.tzinfo else at.replace(tzinfo=tz)


def register(app: typer.Typer) -> None:
    app.add_typer(broadcast_app, name="broadcast")

    @broadcast_app.command("create")
    def create(
        as_: str | None = AS,
        title: str = typer.Option(..., help="A title staff will recognise."),
        text: str = typer.Option(None, help="The message (zh-Hans); may use {{ salutation }}, {{ name }}, ..."),
        text_en: str = typer.Option(None, "--text-en", help="English wording (optional)."),
        text_hant: str = typer.Option(None, "--text-hant", help="Traditional Chinese wording (optional; "
                                                                 "converted from zh-Hans otherwise)."),
        template: str = typer.Option(None, help="A message kind from templates/messages instead of text."),
        context: str = typer.Option("{}", help="JSON values the template kind needs, e.g. '{\"occasion\": \"double_ninth\"}'."),
        audience: str = typer.Option("{}", help="Audience filter as JSON, e.g. '{\"kinds\": [\"veteran\"], "
                                                "\"street\": \"白沙街道\", \"age_min\": 80}'."),
        at: str = typer.Option(None, help="Send at this office time (YYYY-MM-DDTHH:MM) once approved."),
    ) -> None:
        """Compose a broadcast; it waits for approval by a second staff member."""
        from pydantic import ValidationError

        from models.db import read_scope, write_scope
        from outreach.broadcasts import BroadcastRefused, create_broadcast
        from outreach.templates import StaffTextError, compile_staff_text, templates_for

        engine, settings, clock, who = _ctx(as_)
        body: Any = None
        if text:
            body = {"zh-Hans": text, **({"en": text_en} if text_en else {}), **({"zh-Hant": text_hant} if text_hant else {})}
        with read_scope(engine) as session:
            author = _user(session, who)
        try:
            if body is not None:
                # Checked (a bounded render in a worker) before the write transaction opens.
                compile_staff_text(body)
            with write_scope(engine) as session:
                b = create_broadcast(session, author=author, title=title, audience=json.loads(audience),
                                     text=body, template_kind=template, template_context=json.loads(context),
                                     scheduled_for=_when(at, settings.tz), now=clock.now(),
                                     templates=templates_for(settings), settings=settings)
                bid = b.id
        except StaffTextError as exc:
            _refused(BroadcastRefused("; ".join(exc.problems)))
        except (BroadcastRefused, ValidationError, json.JSONDecodeError) as exc:
            _refused(exc)
        typer.echo(f"broadcast {bid} created; waiting for approval (nuanxin broadcast preview {bid})")

    @broadcast_app.command("preview")
    def preview(broadcast_id: int, as_: str | None = AS,
                as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """Audience size (and who is left out), the text for real recipients, SMS length, cost and time."""
        from models.db import read_scope
        from outreach.broadcasts import preview_broadcast
        from outreach.templates import templates_for

        engine, settings, clock, who = _ctx(as_)
        with read_scope(engine) as session:
            _user(session, who)
            p = preview_broadcast(session, _broadcast(session, broadcast_id), settings=settings, now=clock.now(),
                                  templates=templates_for(settings)).as_dict()
        if as_json:
            typer.echo(json.dumps(p, ensure_ascii=False))
            return
        size = p["size"]
        typer.echo(f"audience: {size['reachable']} reachable of {size['matched']} matched; left out: "
                   + (", ".join(f"{k} {v}" for k, v in sorted(size["excluded"].items())) or "none"))
        typer.echo(f"telegram {p['telegram_messages']}, sms {p['sms_messages']} ({p['sms_segments']} segments); "
                   f"about {p['estimated_seconds']:.0f} s to send")
        for lang, info in p["sms"].items():
            typer.echo(f"  SMS {lang}: {info['describe']}")
        for s in p["samples"]:
            typer.echo(f"--- {s['language']} {s['channel']} {s['address']}\n{s['text']}")

    @broadcast_app.command("approve")
    def approve(broadcast_id: int, as_: str | None = AS) -> None:
        """Approve (approver role; not the author)."""
        from models.db import session_scope
        from outreach.broadcasts import BroadcastRefused, approve_broadcast

        engine, _, clock, who = _ctx(as_)
        try:
            with session_scope(engine, immediate=True) as session:
                b = approve_broadcast(session, _broadcast(session, broadcast_id), approver=_user(session, who),
                                      now=clock.now())
                status = b.status
        except BroadcastRefused as exc:
            _refused(exc)
        typer.echo(f"broadcast {broadcast_id} {status}")

    @broadcast_app.command("send")
    def send(broadcast_id: int, as_: str | None = AS,
             at: str = typer.Option(None, help="Schedule for this office time instead of sending now.")) -> None:
        """Send now (queue every recipient), or schedule with --at."""
        from models.db import read_scope, session_scope
        from outreach.broadcasts import BroadcastRefused, schedule_broadcast, send_broadcast
        from outreach.templates import templates_for

        engine, settings, clock, who = _ctx(as_)
        try:
            if at:
                with session_scope(engine, immediate=True) as session:
                    broadcast, user = _broadcast(session, broadcast_id), _user(session, who)
                    when = _when(at, settings.tz)
                    assert when is not None  # `at` is not empty: a time, or _when exited
                    b = schedule_broadcast(session, broadcast, actor=user, at=when, now=clock.now(), settings=settings)
                    typer.echo(f"broadcast {broadcast_id} {b.status} for {when.astimezone(settings.tz)}")
                return
            with read_scope(engine) as session:
                user = _user(session, who)
            n = send_broadcast(engine, broadcast_id, actor=user, now=clock.now(), settings=settings,
                               templates=templates_for(settings))
        except BroadcastRefused as exc:
            _refused(exc)
        typer.echo(f"broadcast {broadcast_id}: {n} queued")

    @broadcast_app.command("cancel")
    def cancel(broadcast_id: int, as_: str | None = AS) -> None:
        """Cancel before it starts, or stop it while sending (unsent messages are cancelled)."""
        from models.db import session_scope
        from outreach.broadcasts import BroadcastRefused, cancel_broadcast

        engine, _, clock, who = _ctx(as_)
        try:
            with session_scope(engine, immediate=True) as session:
                b = _broadcast(session, broadcast_id)
                n = cancel_broadcast(session, b, actor=_user(session, who), now=clock.now())
                status = b.status
        except BroadcastRefused as exc:
            _refused(exc)
        typer.echo(f"broadcast {broadcast_id} {status}" + (f"; {n} unsent messages cancelled" if n else ""))

    @broadcast_app.command("status")
    def status(broadcast_id: int, as_: str | None = AS,
               as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """Progress and results: queued, sent, delivered, failed by reason, opted out after it."""
        from models.db import read_scope
        from outreach.broadcasts import broadcast_status

        engine, _, _, who = _ctx(as_)
        with read_scope(engine) as session:
            _user(session, who)
            st = broadcast_status(session, _broadcast(session, broadcast_id))
        if as_json:
            typer.echo(json.dumps(st, ensure_ascii=False))
            return
        typer.echo(f"broadcast {st['id']} «{st['title']}» {st['status']}: {st['total']} messages; queued {st['queued']}, "
                   f"sent {st['sent']} (delivered {st['delivered']}), failed {st['failed']}, cancelled {st['cancelled']}, "
                   f"opted out after it {st['opted_out_after']}")
        for reason, n in sorted(st["failed_by_reason"].items()):
            typer.echo(f"  failed {reason}: {n}")
