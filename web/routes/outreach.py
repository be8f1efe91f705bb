"""The outreach pages' places in the console: broadcasts awaiting approval, and the pages the
outreach console will fill (`/broadcasts/new`, `/knowledge`, `/outbox`, `/simulator`,
`/schedule`), each behind the roles it will need.

What works here today is the approval of a broadcast written with `nuanxin broadcast create`:
an approver who is not its author approves it (four eyes, `outreach.broadcasts.approve_broadcast`).
The other pages say plainly that they are not open yet and which command does the work meanwhile.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from models.staff import Role
from web.pages import render
from web.security import SignedIn, require
from web.words import N_

router = APIRouter(include_in_schema=False)


PLANNED = {
    "/simulator": (N_("机器人试用"), "nuanxin chat"),
}


def _planned(request: Request, staff: SignedIn) -> Response:
    title, command = PLANNED[request.url.path]
    return render(request, "planned.html", staff, title=title, command=command)


@router.get("/simulator")
def simulator(request: Request, staff: SignedIn = Depends(require(Role.CASEWORKER, Role.COMPOSER))) -> Response:
    return _planned(request, staff)
