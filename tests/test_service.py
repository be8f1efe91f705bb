"""`nuanxin run` as a user starts it: one process serving /healthz, and a clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOKEN = "123456:SERVICE-TEST"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_nuanxin_run_serves_health_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """From an empty data folder: migrate, load the demo roll, start everything, answer
    /healthz, show what would have been sent in the log sink, and exit 0 on SIGTERM."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "TWILIO_", "DATABASE_URL"))}
    env["NUANXIN_DATA_DIR"] = str(tmp_path / "var")
    nuanxin = [sys.executable, "-m", "cli"]
    subprocess.run([*nuanxin, "migrate"], cwd=REPO, env=env, check=True, capture_output=True, timeout=120)
    subprocess.run([*nuanxin, "demo-data", "--people", "300"], cwd=REPO, env=env, check=True, capture_output=True,
                   timeout=180)
    port = _free_port()
    log_path = tmp_path / "run.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([*nuanxin, "run", "--port", str(port)], cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            body = None
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                        body = json.loads(response.read())
                        break
                except OSError:
                    time.sleep(0.2)
            assert body is not None, log_path.read_text()
            assert body["status"] == "ok" and body["database"] == "sqlite"
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as response:
                assert "工作人员登录" in response.read().decode()
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
    output = log_path.read_text()
    assert code == 0, output
    assert "nuanxin running" in output
    assert "Traceback" not in output, output


def _wait_for(condition, what: str, proc: subprocess.Popen[bytes], log_path: Path, seconds: float = 90):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, "nuanxin run exited:\n" + log_path.read_text()
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}:\n" + log_path.read_text()[-4000:])


def test_nuanxin_run_with_telegram_and_twilio_answers_and_delivers(tmp_path: Path) -> None:
    """The one process with both providers configured (pointed at the loopback fakes):
    a Telegram /start gets the menu by long polling; a queued SMS goes out through Twilio,
    and Twilio's signed delivery receipt, posted to /webhooks/twilio/status, marks it delivered."""
    from sqlmodel import Session, select

    from models.db import make_engine, session_scope
    from models.outbox import OutboxMessage
    from models.people import Contact
    from outreach.outbox import enqueue
    from tests.fakes.fake_telegram import FakeTelegram
    from tests.fakes.fake_twilio import FakeTwilio

    port = _free_port()
    with FakeTelegram(TOKEN) as tg, FakeTwilio(auto_callbacks=True) as tw:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "TWILIO_", "DATABASE_URL"))}
        env.update({
            "NUANXIN_DATA_DIR": str(tmp_path / "var"), "NUANXIN_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE": tg.base_url,
            "TWILIO_ACCOUNT_SID": tw.account_sid, "TWILIO_AUTH_TOKEN": tw.auth_token,
            "TWILIO_FROM_NUMBER": "+8613900000000", "TWILIO_API_BASE": tw.base_url,
            # No quiet hours in this test: it may run at any hour.
            "NUANXIN_QUIET_HOURS_START": "00:00", "NUANXIN_QUIET_HOURS_END": "00:00",
        })
        nuanxin = [sys.executable, "-m", "cli"]
        subprocess.run([*nuanxin, "migrate"], cwd=REPO, env=env, check=True, capture_output=True, timeout=120)
        subprocess.run([*nuanxin, "demo-data", "--people", "60"], cwd=REPO, env=env, check=True,
                       capture_output=True, timeout=180)
        db = make_engine(f"sqlite:///{tmp_path / 'var' / 'nuanxin.db'}")
        with Session(db) as s:
            phone = s.exec(select(Contact).where(Contact.channel == "sms", Contact.opted_out_at.is_(None))  # type: ignore[union-attr]
                           ).first()
            assert phone is not None
        log_path = tmp_path / "run.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen([*nuanxin, "run", "--port", str(port)], cwd=REPO, env=env, stdout=log,
                                    stderr=subprocess.STDOUT)
            try:
                tg.push_update(tg.text_update(chat_id=777001, text="/start"))
                menu = _wait_for(lambda: [m for m in tg.sent if m["chat"]["id"] == 777001], "the bot's menu",
                                 proc, log_path)
                assert any("人工" in (m.get("text") or "") for m in menu)

                with session_scope(db) as s:
                    queued = enqueue(s, key="service-test:1", kind="test_notice", channel="sms",
                                     address=phone.address, body="【暖心】测试通知", now=datetime.now(UTC),
                                     beneficiary_id=phone.beneficiary_id, contact_id=phone.id)

                def delivered() -> bool:
                    with Session(db) as s:
                        row = s.get(OutboxMessage, queued.message_id)
                        return row is not None and row.status == "delivered"

                _wait_for(lambda: any(m.body == "【暖心】测试通知" for m in tw.messages), "the SMS at Twilio", proc,
                          log_path)
                _wait_for(delivered, "the delivery receipt", proc, log_path)
            finally:
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(timeout=60)
        db.dispose()
    assert code == 0, log_path.read_text()[-4000:]


def test_nuanxin_run_on_a_busy_port_says_so_and_exits_non_zero(tmp_path: Path) -> None:
    """A part that cannot start stops the whole process with a clear line, not a half-alive service."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "TWILIO_", "DATABASE_URL"))}
    env["NUANXIN_DATA_DIR"] = str(tmp_path / "var")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "cli", "run", "--port", str(port)], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "could not start" in result.stderr and "port in use" in result.stderr
    assert "Traceback" not in result.stderr
