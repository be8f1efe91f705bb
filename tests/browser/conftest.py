"""The console served on loopback by uvicorn, driven by Debian's Chromium through Playwright.

Screenshots go to `test-artifacts/screenshots/<test>/` at the project's root (ignored by git).
"""

from __future__ import annotations

import re
import shutil
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import Engine
from sqlmodel import Session

from models.applications import Application, ApplicationDocument, HandoffTicket, Task
from models.clock import FakeClock
from models.idcard import IdCard
from models.outbox import Broadcast
from models.people import Beneficiary, Contact
from models.staff import StaffUser, hash_password
from settings import Settings
from web.app import create_app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "browser-password-1"
ROLES = ("viewer", "caseworker", "composer", "approver", "admin")
HUANG_ID = "440703194001010022"
ZHAO_ID = "44070319550303001X"
ID_KEY = b"test-id-key"  # the `settings` fixture's id_hash_key


@dataclass
class Office:
    url: str
    engine: Engine
    settings: Settings
    clock: FakeClock
    ids: dict[str, int]


def _people(s: Session) -> dict[str, int]:
    huang_card, zhao_card = IdCard.parse(HUANG_ID), IdCard.parse(ZHAO_ID)
    huang = Beneficiary(name="黄国华", id_hash=huang_card.hashed(ID_KEY), id_masked=huang_card.masked,
                        id_last6_hash=huang_card.last6_hashed(ID_KEY), is_veteran=True, sex="M",
                        birth_date=huang_card.birth_date, district="蓬江区", street="白沙街道", community="白沙社区",
                        living_alone=True)
    zhao = Beneficiary(name="赵秀兰", id_hash=zhao_card.hashed(ID_KEY), id_masked=zhao_card.masked,
                       id_last6_hash=zhao_card.last6_hashed(ID_KEY), is_retiree=True, sex="F",
                       birth_date=zhao_card.birth_date, district="江海区", street="江南街道", community="文昌社区")
    s.add_all([huang, zhao])
    s.flush()
    s.add_all([Contact(beneficiary_id=huang.id, channel="telegram", address="5001", verified=True),
               Contact(beneficiary_id=huang.id, channel="sms", address="+8613800138000", verified=True),
               Contact(beneficiary_id=zhao.id, channel="sms", address="+8613900139000", verified=True)])
    return {"huang": huang.id, "zhao": zhao.id}  # type: ignore[dict-item]


def _png(width: int, height: int) -> bytes:
    """A small grey-and-red picture standing for a photographed document."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"".join(b"\xa8\x32\x2a" if (x // 10 + y // 10) % 2 else b"\xe0\xe0\xe0"
                                        for x in range(width)) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def build_office(engine: Engine, settings: Settings, clock: FakeClock) -> dict[str, int]:
    uploads = Path(settings.data_dir) / "uploads" / "5001"
    uploads.mkdir(parents=True, exist_ok=True)
    image = uploads / "discharge.png"
    image.write_bytes(_png(120, 80))
    with Session(engine, expire_on_commit=False) as s:
        users = {role: StaffUser(username=role, display_name={"viewer": "赵查看", "caseworker": "李社工",
                                                              "composer": "周撰稿", "approver": "陈科长",
                                                              "admin": "王管理"}[role],
                                 roles=[role], password_hash=hash_password(PASSWORD)) for role in ROLES}
        users["author"] = StaffUser(username="author", display_name="吴撰稿", roles=["composer", "approver"],
                                    password_hash=hash_password(PASSWORD))
        s.add_all(users.values())
        ids = _people(s)
        typed = IdCard.parse(HUANG_ID)
        app = Application(reference="NX-2026-000042", type="veteran_insurance", beneficiary_id=ids["huang"],
                          stage="accepted", channel="telegram", created_at=clock.now() - timedelta(days=9),
                          stage_changed_at=clock.now() - timedelta(days=6),
                          data={"name": "黄国华", "id_number": {"masked": typed.masked, "hash": typed.hashed(ID_KEY)},
                                "enlistment_date": "1958-12-01", "discharge_date": "1962-12-01",
                                "placement_unit": "江门市机械厂"})
        s.add(app)
        s.flush()
        s.add_all([ApplicationDocument(application_id=app.id, code="discharge_form", received=True,
                                       file_path=str(image), mime_type="image/png"),
                   ApplicationDocument(application_id=app.id, code="placement_letter", received=False)])
        ticket = HandoffTicket(channel="telegram", address="5001", beneficiary_id=ids["huang"],
                               question="我的社保补缴什么时候能办好？", reason="personal_case",
                               created_at=clock.now() - timedelta(hours=3))
        stranger = HandoffTicket(channel="sms", address="+8613711112222", question="重阳节社区有活动吗？",
                                 reason="out_of_scope", created_at=clock.now() - timedelta(days=2))
        s.add_all([ticket, stranger])
        for n in range(30):
            s.add(Task(kind="home_visit" if n % 2 else "hospital_visit", beneficiary_id=ids["huang" if n % 3 else "zhao"],
                       priority=n % 10, key=f"t{n}"))
        s.flush()
        broadcast = Broadcast(title="重阳节活动通知", body={"zh-Hans": "重阳节社区有活动。"}, status="pending_approval",
                              created_by=users["author"].id, audience={"kinds": ["veteran"]})
        s.add(broadcast)
        s.commit()
        ids.update(application=app.id, ticket=ticket.id, stranger_ticket=stranger.id,  # type: ignore[dict-item]
                   broadcast=broadcast.id, **{f"staff_{r}": u.id for r, u in users.items()})  # type: ignore[misc]
    return ids


@pytest.fixture
def office(sqlite_engine: Engine, settings: Settings, clock: FakeClock) -> Iterator[Office]:
    ids = build_office(sqlite_engine, settings, clock)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings, sqlite_engine, clock=clock), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "console did not start"
        time.sleep(0.05)
    yield Office(f"http://127.0.0.1:{port}", sqlite_engine, settings, clock, ids)
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield chromium
        chromium.close()


class Shots:
    """Full-page screenshots of one test, named in the order taken."""

    def __init__(self, test_name: str) -> None:
        self.folder = ARTIFACTS / re.sub(r"[^\w.-]+", "_", test_name)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def __call__(self, page: Any, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    return Shots(request.node.name)


def sign_in(browser: Any, office: Office, username: str, *, width: int = 1280, height: int = 900) -> Any:
    context = browser.new_context(locale="zh-CN", viewport={"width": width, "height": height})
    page = context.new_page()
    page.goto(office.url + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(office.url + "/")
    return page


def sideways_overflow(page: Any) -> int:
    """How many CSS pixels the page is wider than the window (0: no sideways scroll)."""
    return int(page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth"))
