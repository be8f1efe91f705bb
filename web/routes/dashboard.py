"""The home page (`/`): today's work in office time and the service figures, with charts.

Figures come from `outreach.dashboard` (one query each); the charts are SVG drawn on the server
(templates/web/_outreach.html): every bar carries its number and its name, and what stands
beside the main bars is hatched, so nothing depends on colour alone. The daily summary staff
get on Telegram is shown as it is sent.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import func
from sqlmodel import Session, select

from models.applications import ApplicationType
from models.people import Beneficiary
from web.pages import render, today_in_office
from web.security import SignedIn, require

router = APIRouter(include_in_schema=False)


def message_kind(kind: str) -> tuple[str, int | None]:
    """An outbox kind as its template kind and the days ahead it reminds (cert_reminder_30)."""
    base, _, suffix = kind.rpartition("_")
    return (base, int(suffix)) if suffix.isdigit() and base else (kind, None)


@router.get("/")
def dashboard(request: Request, type: str = "", staff: SignedIn = Depends(require())) -> Response:
    from outreach import dashboard as figures
    from outreach.summary import daily_summary, summary_text
    from outreach.templates import templates_for

    clock, settings = request.app.state.clock, request.app.state.settings
    today = today_in_office(request)
    application_type = type if type in {t.value for t in ApplicationType} else None
    with Session(request.app.state.engine) as db:
        d = figures.dashboard(db, now=clock.now(), tz=settings.tz, application_type=application_type)
        people = db.exec(select(func.count()).select_from(Beneficiary).where(Beneficiary.status == "active")).one()
        summary = summary_text(daily_summary(db, today, settings.tz, now=clock.now()), templates_for(settings))
    return render(request, "dashboard.html", staff, d=d, people=people, summary=summary, day=today,
                  application_type=application_type or "", message_kind=message_kind,
                  application_types=[t.value for t in ApplicationType])
