"""A live console for the outreach browser tests: uvicorn on loopback, the Telegram and Twilio
fakes configured as the providers, a dispatcher run on demand, and Chromium pages signed in.

Screenshots go to `test-artifacts/outreach/` at the repository's root (ignored by git)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import Engine

from settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
ARTEFACTS = ROOT / "test-artifacts" / "outreach"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic"]
TOKEN = "123456:OUTREACH-TEST"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveConsole:
    url: str
    engine: Engine
    settings: Settings
    telegram: Any  # FakeTelegram
    twilio: Any  # FakeTwilio

    def dispatch(self) -> int:
        """One pass of the real dispatcher through the fakes; returns the rows it claimed."""
        from outreach.dispatcher import Dispatcher, build_providers
        from outreach.providers.base import close_provider

        async def once() -> int:
            providers = build_providers(self.settings, self.engine)
            try:
                return await Dispatcher(self.engine, providers, settings=self.settings).run_once()
            finally:
                for provider in providers.values():
                    await close_provider(provider)

        # Its own thread: Playwright's synchronous API keeps an event loop running in this one.
        claimed: list[int] = []
        worker = threading.Thread(target=lambda: claimed.append(asyncio.run(once())))
        worker.start()
        worker.join(timeout=60)
        assert claimed, "the dispatcher did not finish"
        return claimed[0]


@contextmanager
def live_console(engine: Engine, tmp_path: Path, **overrides: Any) -> Iterator[LiveConsole]:
    from tests.fakes.fake_telegram import FakeTelegram
    from tests.fakes.fake_twilio import FakeTwilio
    from web.app import create_app

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with FakeTelegram(TOKEN) as tg, FakeTwilio(auto_callbacks=True) as tw:
        settings = load_settings(
            data_dir=tmp_path / "var", id_hash_key="test-id-key", session_secret="test-session", public_base_url=url,
            telegram_bot_token=TOKEN, telegram_api_base=tg.base_url, twilio_account_sid=tw.account_sid,
            twilio_auth_token=tw.auth_token, twilio_from_number="+8613900000000", twilio_api_base=tw.base_url,
            # The test runs at any hour: no quiet hours, and no waiting on the providers' pace.
            quiet_hours_start="00:00", quiet_hours_end="00:00", twilio_segments_per_s=100,
            telegram_per_chat_per_s=100, **overrides)
        server = uvicorn.Server(uvicorn.Config(create_app(settings, engine), host="127.0.0.1", port=port,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "console did not start"
            time.sleep(0.05)
        try:
            yield LiveConsole(url, engine, settings, tg, tw)
        finally:
            server.should_exit = True
            thread.join(timeout=10)


def sign_in(browser: Any, base: str, username: str, password: str) -> Any:
    """A new browser context signed in as `username`; returns its page."""
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(base + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page


def screenshot(page: Any, name: str) -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
