"""Waiting for something to happen in real time, bounded only against a hang.

A test that runs the real event loop (a dispatcher's `run`, a polling loop, a server) waits for
the event it is about, not for a number of rounds or a short timeout: on a slow or busy machine
everything takes longer, and only a hang should end the wait. `HANG_S` is that bound, far above
what any of these waits takes on a loaded machine; a test that reaches it has found a bug.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

HANG_S = 120.0
# The same for a child process (a CLI command, a script, a worker that imports the application):
# seconds on a quiet machine, minutes on one whose cores other processes hold.
PROCESS_HANG_S = 900.0


async def until(condition: Callable[[], Any], what: str, hang_s: float = HANG_S, every: float = 0.01) -> None:
    """Yield to the loop until `condition()` holds; AssertionError naming `what` after `hang_s`."""
    try:
        async with asyncio.timeout(hang_s):
            while not condition():
                await asyncio.sleep(every)
    except TimeoutError:
        raise AssertionError(f"still waiting after {hang_s:g} s for {what}") from None


async def finished(work: Awaitable[T], what: str, hang_s: float = HANG_S) -> T:
    """`work`'s result; AssertionError naming `what` if it has not finished after `hang_s`."""
    try:
        return await asyncio.wait_for(work, hang_s)
    except TimeoutError:
        raise AssertionError(f"{what} had not finished after {hang_s:g} s") from None
