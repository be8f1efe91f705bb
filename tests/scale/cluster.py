"""Start nuanxin's process roles as a deployment would, on 127.0.0.1, for the scale tests and benchmarks.

`Cluster(env)` starts `nuanxin web`, `nuanxin worker dispatch` and `nuanxin worker scheduler`
processes (the real CLI, `python -m cli ...`) with one environment (DATABASE_URL, REDIS_URL,
providers pointed at the fakes), each with its own port and log file, and stops them at the end.
`Node` is one process: its HTTP endpoints, its resident memory, SIGKILL / SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
ROLE_ARGS = {"web": ["web"], "dispatch": ["worker", "dispatch"], "scheduler": ["worker", "scheduler"],
             "run": ["run"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(**values: str) -> dict[str, str]:
    """The shell's environment without any nuanxin or provider setting, plus `values`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NUANXIN_", "TELEGRAM_", "TWILIO_", "DATABASE_URL", "REDIS_URL"))}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(values)
    return env


def schedule_sending_at_once(directory: Path) -> Path:
    """The office's schedule rules (a NUANXIN_SCHEDULE_FILE) with the daily sweep and its sending at
    midnight, office time: what the sweep queues at start-up is due at once, whatever the hour a
    run starts at (with the bundled 09:30, a run after midnight in Shanghai queues it for the morning)."""
    rules = yaml.safe_load((REPO / "outreach" / "schedule.yaml").read_text(encoding="utf-8"))
    rules.update(daily_sweep_time="00:00", send_time="00:00")
    path = directory / "schedule.yaml"
    path.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    return path


def nuanxin(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout, check=True)


def rss_mb(pid: int) -> float:
    """Resident memory of a process (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Node:
    role: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    exit_seconds: float | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def owner_prefix(self) -> str:
        """The start of this process's lease owner (service.process_owner)."""
        return f"{socket.gethostname()}:{self.pid}:"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get_json(self, path: str, timeout: float = 3.0) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def post_json(self, path: str, body: Any, headers: dict[str, str], timeout: float = 15.0) -> int:
        request = urllib.request.Request(self.url(path), data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json", **headers})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self, tail: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:] if self.log_path.exists() else ""

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM; returns the exit status and records how long the exit took."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.exit_seconds = time.monotonic() - started
        return code

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)


@dataclass
class Cluster:
    env: dict[str, str]
    logs: Path
    nodes: list[Node] = field(default_factory=list)

    def start(self, role: str, *, port: int | None = None, extra_env: dict[str, str] | None = None) -> Node:
        port = port or free_port()
        n = sum(1 for node in self.nodes if node.role == role)
        log_path = self.logs / f"{role}-{n}.log"
        env = dict(self.env, **(extra_env or {}))
        with log_path.open("wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "cli", *ROLE_ARGS[role], "--port", str(port)], cwd=REPO,
                                    env=env, stdout=log, stderr=subprocess.STDOUT)
        node = Node(role, port, proc, log_path)
        self.nodes.append(node)
        return node

    def wait_until(self, condition: Callable[[], Any], what: str, seconds: float = 120.0, every: float = 0.2) -> Any:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(every)
        raise AssertionError(f"timed out after {seconds:.0f}s waiting for {what}\n" + self.report())

    def wait_healthy(self, node: Node, path: str = "/healthz", seconds: float = 420.0) -> None:
        def up() -> bool:
            assert node.alive(), f"{node.role} on {node.port} exited:\n{node.log()}"
            try:
                return node.get_json(path, timeout=2)[0] == 200
            except OSError:
                return False

        self.wait_until(up, f"{node.role} on port {node.port} to answer {path}", seconds)

    def report(self) -> str:
        """Each process: alive or its exit status, what its /healthz says (a worker's counters), its log's end."""
        def status(node: Node) -> str:
            if not node.alive():
                return f"exit {node.proc.returncode}"
            try:
                return f"alive {node.get_json('/healthz', timeout=2)[1]}"
            except OSError as exc:
                return f"alive, /healthz: {exc}"

        return "\n".join(f"--- {n.role}:{n.port} pid {n.pid} ({status(n)})\n{n.log(2500)}" for n in self.nodes)

    def stop(self) -> None:
        for node in self.nodes:
            if node.alive():
                node.terminate(15)
