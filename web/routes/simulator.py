"""The simulator page: staff talk to the bot as a beneficiary would (a demo person or a
stranger), in the look of Telegram or of an SMS thread, to try a flow or an article before
announcing it. It runs the real engine on a sandbox (`bot/simulator.py`): every message here is
a test, counted in no figure and sent to no provider.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from bot.simulator import CHANNELS, PERSONAS, STRANGER, simulator_for
from models.staff import Role
from web.pages import render
from web.routes.broadcasts import posted
from web.security import SignedIn, require

router = APIRouter(include_in_schema=False)
TRIES = (Role.CASEWORKER, Role.COMPOSER, Role.APPROVER)
CODES = (STRANGER, *(p.code for p in PERSONAS))


def _who(persona: str, channel: str) -> tuple[str, str]:
    return (persona if persona in CODES else STRANGER, channel if channel in CHANNELS else "telegram")


def _back(persona: str, channel: str) -> RedirectResponse:
    return RedirectResponse("/simulator?" + urlencode({"persona": persona, "channel": channel}) + "#chat",
                            status_code=303)


@router.get("/simulator")
async def simulator_page(request: Request, persona: str = STRANGER, channel: str = "telegram",
                         staff: SignedIn = Depends(require(*TRIES))) -> Response:
    persona, channel = _who(persona, channel)
    sim = await run_in_threadpool(simulator_for, request.app.state)
    address = sim.address(staff.user_id, persona, channel, 0)
    lines = await run_in_threadpool(sim.transcript, channel, address)
    return render(request, "simulator.html", staff, persona=persona, channel=channel, lines=lines,
                  personas=PERSONAS, stranger=STRANGER, channels=CHANNELS)


@router.post("/simulator/send")
async def simulator_send(request: Request, form: FormData = Depends(posted),
                         staff: SignedIn = Depends(require(*TRIES))) -> Response:
    def one(name: str) -> str:
        value = form.get(name)
        return value if isinstance(value, str) else ""

    persona, channel = _who(one("persona"), one("channel"))
    text, choice = one("text").strip(), one("choice") or None
    if text or choice:
        sim = await run_in_threadpool(simulator_for, request.app.state)
        address = sim.address(staff.user_id, persona, channel, 0)
        await run_in_threadpool(sim.link, address, channel, persona)
        await run_in_threadpool(sim.send, channel, address, text, choice)
    return _back(persona, channel)


@router.post("/simulator/restart")
async def simulator_restart(request: Request, form: FormData = Depends(posted),
                            staff: SignedIn = Depends(require(*TRIES))) -> Response:
    persona, channel = _who(str(form.get("persona") or ""), str(form.get("channel") or ""))
    if form.get("confirmed") == "yes":
        sim = await run_in_threadpool(simulator_for, request.app.state)
        await run_in_threadpool(sim.start_again, channel, sim.address(staff.user_id, persona, channel, 0))
    return _back(persona, channel)
