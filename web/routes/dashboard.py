"""The home page (`/`): today's figures and the daily summary, for every signed-in member."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import func
from sqlmodel import Session, col, select

from models.applications import Application, HandoffTicket, Task
from models.outbox import OutboxMessage, OutboxStatus
from models.people import Beneficiary, Contact
from web.pages import render, today_in_office
from web.security import SignedIn, require

router = APIRouter(include_in_schema=False)


@router.get("/")
def dashboard(request: Request, staff: SignedIn = Depends(require())) -> Response:
    from outreach.summary import daily_summary, summary_text
    from outreach.templates import templates_for

    clock, settings = request.app.state.clock, request.app.state.settings
    today = today_in_office(request)
    start = datetime.combine(today, datetime.min.time(), tzinfo=settings.tz)
    with Session(request.app.state.engine) as db:
        figures = {
            "people": db.exec(select(func.count()).select_from(Beneficiary).where(Beneficiary.status == "active")).one(),
            "contacts_opted_out": db.exec(select(func.count()).select_from(Contact)
                                          .where(col(Contact.opted_out_at).is_not(None))).one(),
            "tickets_open": db.exec(select(func.count()).select_from(HandoffTicket)
                                    .where(HandoffTicket.status == "open")).one(),
            "tasks_open": db.exec(select(func.count()).select_from(Task).where(Task.status == "open")).one(),
        }
        outbox = dict(db.exec(select(OutboxMessage.status, func.count()).where(col(OutboxMessage.created_at) >= start)
                              .group_by(OutboxMessage.status)).all())
        stages = db.exec(select(Application.type, Application.stage, func.count())
                         .group_by(Application.type, Application.stage)
                         .order_by(Application.type, Application.stage)).all()
        summary = summary_text(daily_summary(db, today, settings.tz, now=clock.now()), templates_for(settings))
    return render(request, "dashboard.html", staff, figures=figures, outbox=outbox, stages=stages, summary=summary,
                  outbox_statuses=[s.value for s in OutboxStatus], day=today)
