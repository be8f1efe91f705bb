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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


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
