"""What the two protocol fakes share: fault injection with a seeded RNG, and running an
aiohttp app on 127.0.0.1 either in the caller's event loop or in a background thread.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass
class Faults:
    """Which fraction of requests fail, and how. Each request draws once from a seeded RNG.

    `timeout`: the server hangs for `hang_s` (longer than the client's timeout) before it
    answers; with probability `timeout_success` the message was really delivered (recorded
    at once, before the hang) — the client cannot know, which is the one legitimate source
    of duplicates.
    """

    error_5xx: float = 0.0
    throttle: float = 0.0
    retry_after: int = 1
    timeout: float = 0.0
    hang_s: float = 2.0
    timeout_success: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.lock = threading.Lock()

    def draw(self) -> tuple[str, bool]:
        """Return (fault, timeout_delivers): fault is '', '5xx', '429' or 'timeout'."""
        with self.lock:
            x = self.rng.random()
            delivers = self.rng.random() < self.timeout_success
        if x < self.error_5xx:
            return "5xx", False
        x -= self.error_5xx
        if x < self.throttle:
            return "429", False
        x -= self.throttle
        if x < self.timeout:
            return "timeout", delivers
        return "", False


def client_gone(request: web.Request) -> bool:
    """True when the client closed the connection before we answered (it timed out)."""
    transport = request.transport
    return transport is None or transport.is_closing()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoopbackServer:
    """An aiohttp app on 127.0.0.1:<free port>. `async with` it, or `start_in_thread()`."""

    def __init__(self) -> None:
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None

    def build_app(self) -> web.Application:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Any:
        self._loop = asyncio.get_running_loop()
        # handler_cancellation stays off (aiohttp's default): a request whose client gave
        # up still runs to its end, like a real provider that already accepted the message.
        self._runner = web.AppRunner(self.build_app(), access_log=None)
        await self._runner.setup()
        self.port = self.port or free_port()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=2048)
        await site.start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Any:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- background thread, for synchronous tests and benchmarks -------------------
    def start_in_thread(self) -> Any:
        ready = threading.Event()
        errors: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._stopped = asyncio.Event()

            async def serve() -> None:
                try:
                    await self.start()
                except BaseException as exc:  # surfaced to the starting thread
                    errors.append(exc)
                    ready.set()
                    return
                ready.set()
                assert self._stopped is not None
                await self._stopped.wait()
                await self.stop()

            loop.run_until_complete(serve())
            loop.close()

        self._thread = threading.Thread(target=main, name=type(self).__name__, daemon=True)
        self._thread.start()
        ready.wait(30)
        if errors:
            raise errors[0]
        return self

    def stop_thread(self) -> None:
        if self._thread is not None and self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(30)
            self._thread = None

    def __enter__(self) -> Any:
        return self.start_in_thread()

    def __exit__(self, *exc: object) -> None:
        self.stop_thread()

    def call_in_loop(self, fn: Callable[[], None]) -> None:
        """Run `fn` in the server's loop (thread-safe); directly when no loop runs yet."""
        if self._loop is None:
            fn()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            fn()
        else:
            self._loop.call_soon_threadsafe(fn)
