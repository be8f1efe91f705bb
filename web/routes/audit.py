"""The audit log (`/audit`)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlmodel import Session, col, select

from models.staff import AuditLog, Role
from web.pages import render
from web.security import SignedIn, require

router = APIRouter(include_in_schema=False)


@router.get("/audit")
def audit_log(request: Request, staff: SignedIn = Depends(require(Role.ADMIN, Role.APPROVER))) -> Response:
    with Session(request.app.state.engine) as db:
        since = request.app.state.clock.now() - timedelta(days=30)
        rows = db.exec(select(AuditLog).where(col(AuditLog.at) >= since)
                       .order_by(col(AuditLog.id).desc()).limit(300)).all()
    return render(request, "audit.html", staff, rows=rows)
