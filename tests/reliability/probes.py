"""Probes against a real `nuanxin run`: the service as a subprocess on loopback, its SQLite file,
signed Twilio webhooks, the command line for staff work, and the hostile inputs of issue #17.

Used by the reliability tests (`tests/reliability/`) and by `benchmarks/reliability.py`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twilio.request_validator import RequestValidator

REPO = Path(__file__).resolve().parents[2]
NUANXIN = [sys.executable, "-m", "cli"]
TWILIO_TOKEN = "reliability-auth-token"
STAFF_PASSWORD = "reliable-password-1"
SORRY = "系统暂时繁忙"  # the apology the SMS route gives when the engine fails
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Reply:
    status: int
    text: str
    ms: float


@dataclass
class Service:
    """One `nuanxin run` with its own data folder (SQLite), Twilio's inbound webhook signed with
    a known token, outgoing messages to the log sink."""

    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    serving_s: float = 0.0  # wall time from exec to the first /healthz answer
    serving_cpu_s: float = 0.0  # CPU the process used until then
    knowledge_s: float = 0.0  # wall time until /healthz says the knowledge is loaded
    knowledge_cpu_s: float = 0.0

    @property
    def data_dir(self) -> Path:
        return self.root / "var"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "service.log"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "nuanxin.db"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "TWILIO_", "DATABASE_URL"))}
        env.update(NUANXIN_DATA_DIR=str(self.data_dir), NUANXIN_PUBLIC_BASE_URL=self.base,
                   TWILIO_AUTH_TOKEN=TWILIO_TOKEN, NUANXIN_ID_HASH_KEY="reliability-id-key",
                   NUANXIN_SESSION_SECRET="reliability-session",
                   # No quiet hours: the queued SMS are being sent whatever the time of day, so a
                   # stop always finds the dispatcher at work.
                   NUANXIN_QUIET_HOURS_START="00:00", NUANXIN_QUIET_HOURS_END="00:00")
        return env

    def cli(self, *args: str, input: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*NUANXIN, *args], cwd=REPO, env=self.env, input=input, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def prepare(self, *, demo_people: int = 0) -> Service:
        done = self.cli("migrate", timeout=300)
        assert done.returncode == 0, done.stderr
        if demo_people:
            done = self.cli("demo-data", "--people", str(demo_people), timeout=600)
            assert done.returncode == 0, done.stderr
        return self

    def start(self, timeout: float = 180) -> Service:
        log = self.log_path.open("ab")
        self.serving_s = self.knowledge_s = 0.0  # of this start (the service may have run before)
        started = time.monotonic()
        self.proc = subprocess.Popen([*NUANXIN, "run", "--port", str(self.port)], cwd=REPO, env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = started + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "nuanxin run exited:\n" + self.log()[-4000:]
            health = self.healthz(timeout=2)
            if health is not None:
                if not self.serving_s:
                    self.serving_s = time.monotonic() - started
                    self.serving_cpu_s = cpu_seconds(self.proc.pid)
                if health.get("knowledge") == "loaded":
                    self.knowledge_s = time.monotonic() - started
                    self.knowledge_cpu_s = cpu_seconds(self.proc.pid)
                    return self
            time.sleep(0.1)  # the resolution of serving_s and knowledge_s
        raise AssertionError("nuanxin run did not become ready:\n" + self.log()[-4000:])

    def start_cpu(self) -> tuple[float, float]:
        """The CPU the process says it had used when its port served and when its knowledge was
        loaded (seconds, all threads), in its latest start."""
        found = {name: float(value) for name, value in re.findall(
            r"(web serving|knowledge loaded).*?\(([\d.]+) s of CPU since the process began\)", self.log())}
        return found.get("web serving", float("nan")), found.get("knowledge loaded", float("nan"))

    def stop(self, timeout: float = 60) -> tuple[float, int]:
        """SIGTERM; (seconds until the process exited, its exit status)."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return time.monotonic() - started, code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    # --- requests ------------------------------------------------------------------------
    def healthz(self, timeout: float = 5) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"{self.base}/healthz", timeout=timeout) as response:
                return dict(json.loads(response.read()))
        except (OSError, ValueError):
            return None

    def get(self, path: str, timeout: float = 30) -> Reply:
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(f"{self.base}{path}", timeout=timeout) as response:
                text = response.read().decode("utf-8", "replace")
                status = response.status
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode("utf-8", "replace")
        return Reply(status, text, (time.perf_counter() - started) * 1000)

    def sms(self, sender: str, body: str, timeout: float = 30) -> Reply:
        """An inbound SMS, signed as Twilio signs it."""
        path = "/webhooks/twilio/sms"
        params = {"From": sender, "To": "+8610690000", "Body": body, "MessageSid": f"SM{random.getrandbits(120):030x}",
                  "AccountSid": "AC" + "0" * 32, "NumMedia": "0"}
        signature = RequestValidator(TWILIO_TOKEN).compute_signature(self.base + path, params)
        data = urllib.parse.urlencode(params).encode()
        request = urllib.request.Request(self.base + path, data=data, method="POST", headers={
            "X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"})
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, text = response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode("utf-8", "replace")
        except OSError as exc:
            status, text = 0, f"{type(exc).__name__}: {exc}"
        return Reply(status, text, (time.perf_counter() - started) * 1000)

    def chunked_post(self, path: str, total_bytes: int, chunk: int = 64 * 1024) -> tuple[int, int]:
        """POST a body without Content-Length (chunked), unsigned, until the server answers or
        `total_bytes` are sent; (status, bytes sent)."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        sent = 0
        try:
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                         "Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode())
            piece = f"{chunk:x}\r\n".encode() + b"a" * chunk + b"\r\n"
            sock.setblocking(False)
            answer = b""
            while sent < total_bytes:
                with contextlib.suppress(BlockingIOError):
                    answer += sock.recv(65536)
                if answer:
                    break
                try:
                    sock.send(piece)
                    sent += chunk
                except BlockingIOError:
                    time.sleep(0.001)
                except (BrokenPipeError, ConnectionResetError):
                    break
            sock.setblocking(True)
            sock.settimeout(30)
            with contextlib.suppress(OSError):
                while b"\r\n" not in answer:
                    more = sock.recv(65536)
                    if not more:
                        break
                    answer += more
        finally:
            sock.close()
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
        return status, sent

    # --- the database and staff ----------------------------------------------------------
    def engine(self) -> Any:
        from models.db import make_engine

        return make_engine(f"sqlite:///{self.db_path}")

    def add_staff(self, username: str, *roles: str) -> None:
        args = ["staff", "add", username, "--password-stdin"]
        for role in roles:
            args += ["--role", role]
        done = self.cli(*args, input=STAFF_PASSWORD + "\n", timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr


@contextlib.contextmanager
def running(root: Path, *, demo_people: int = 0) -> Iterator[Service]:
    service = Service(root).prepare(demo_people=demo_people).start()
    try:
        yield service
    finally:
        service.kill()


# --- hostile inputs ------------------------------------------------------------------------

HOSTILE_TEMPLATES = (
    "{{ 'a' * 10**9 }}",
    "{{ 9**(9**9) }}",
    "{{ 9**(9**7) }}",
    "{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}",
    "{{ lipsum(200000) }}",
    "{% for a in 'x' * 4000 %}{% for b in 'x' * 4000 %}{% endfor %}{% endfor %}",
    "{{ 'x'|center(1000000000) }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ '%999999999d' % 1 }}",
    "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "{{ [1] * 10**9 }}",
    "{{ name.__class__.__mro__[1].__subclasses__() }}",
    "长" * 700,  # 11 SMS segments
    "好" * 30_000,  # 30,000 characters (a command-line argument holds at most 128 KB)
)


def create_broadcast(service: Service, username: str, text: str, timeout: float = 120) -> tuple[int, str, float]:
    """`nuanxin broadcast create` as a composer; (exit status, what it said, seconds)."""
    started = time.monotonic()
    try:
        done = service.cli("broadcast", "create", "--as", username, "--title", "probe", "--text", text,
                           input=STAFF_PASSWORD + "\n", timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "timed out", time.monotonic() - started
    return done.returncode, (done.stdout + done.stderr)[-2000:], time.monotonic() - started


@dataclass
class BadRoll:
    name: str
    path: Path
    data_rows: int  # rows that hold data (what must be accounted for when the file is read)
    expect_refused: bool


def _roll_csv(rows: list[dict[str, str]], *, header: list[str] | None = None) -> list[str]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header or list(rows[0]))
    writer.writerows([list(r.values()) for r in rows])
    return out.getvalue().splitlines()


def bad_rolls(directory: Path, seed: int = 17) -> list[BadRoll]:
    """Files clerks really produce, and worse: each with the number of data rows it holds."""
    from openpyxl import Workbook

    from models.demo import roll_rows

    directory.mkdir(parents=True, exist_ok=True)
    made: list[BadRoll] = []

    def rows(n: int, offset: int) -> list[dict[str, str]]:
        return roll_rows(n, seed=seed * 100 + offset)

    def text_file(name: str, lines: list[str], data: int, refused: bool, encoding: str = "utf-8",
                  newline: str = "\n") -> None:
        path = directory / name
        path.write_bytes(newline.join(lines).encode(encoding) + newline.encode(encoding))
        made.append(BadRoll(name, path, data, refused))

    lines = _roll_csv(rows(50, 1))
    lines[3] = lines[3].replace(",", ',"', 1)
    text_file("stray-quote.csv", lines, 50, True)
    lines = _roll_csv(rows(20, 2))
    lines[5] = lines[5].replace(",", "," + "长" * 200_000, 1)
    text_file("huge-cell.csv", lines, 20, True)
    body = rows(30, 3)
    for r, name in zip(body, ["陳大文", "黃國強", "張麗華", "劉德明", "鄭淑貞", "謝國樑"] * 5, strict=True):
        r.update({"姓名": name, "类别": "退役軍人", "区": "蓬江區", "街道": "白沙街道", "社区": "白沙社區",
                  "独居": "否", "残疾": "否", "语言": "繁體"})
    trad = ["姓名", "身份證號", "手機號碼", "類別", "區", "街道", "社區", "獨居", "殘疾", "語言", "上次認證日期"]
    lines = _roll_csv(body, header=trad)
    text_file("big5.csv", lines, 30, False, encoding="big5")
    text_file("utf16-no-bom.csv", _roll_csv(rows(30, 4)), 30, False, encoding="utf-16-le")
    text_file("utf16-bom.csv", _roll_csv(rows(30, 5)), 30, False, encoding="utf-16")
    sjis = ["氏名,身分証番号,電話番号,種別"] + ["山田太郎,440703194208151234,09012345678,退役軍人"] * 30
    text_file("shift-jis.csv", sjis, 30, True, encoding="shift_jis")
    formula = rows(10, 6)
    for r, value in zip(formula, ['=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "@SUM(1)", "-1+1"],
                        strict=False):
        r["姓名"] = value
    text_file("formulas.csv", _roll_csv(formula), 10, False)
    lines = _roll_csv(rows(40, 7))
    lines[7] = lines[7][:5] + "\x00" + lines[7][5:]
    text_file("nul-byte.csv", lines, 40, False)  # read: the NUL is an invisible character, cleaned
    lines = _roll_csv(rows(40, 8))
    for i in (5, 10, 15):
        lines.insert(i, "")
    lines.insert(20, ",,,,,")
    text_file("blank-lines.csv", lines, 44, False)
    dup = rows(30, 9)
    dup += [dict(dup[0]), dict(dup[1])]
    text_file("duplicates.csv", _roll_csv(dup), 32, False)
    broken = rows(60, 10)
    for i, r in enumerate(broken):
        if i % 3 == 0:
            r["手机号"] = "12345"
        if i % 5 == 0:
            r["身份证号"] = r["身份证号"][:10]
        if i % 7 == 0:
            r["类别"] = "学生"
    text_file("many-bad-rows.csv", _roll_csv(broken), 60, False)
    text_file("crlf.csv", _roll_csv(rows(25, 11)), 25, False, newline="\r\n")
    text_file("gb18030.csv", _roll_csv(rows(25, 12)), 25, False, encoding="gb18030")
    mixed = _roll_csv(rows(20, 13))
    path = directory / "mixed-encodings.csv"
    path.write_bytes("\n".join(mixed[:10]).encode("utf-8") + b"\n" + "\n".join(mixed[10:]).encode("gb18030") + b"\n")
    made.append(BadRoll("mixed-encodings.csv", path, 20, True))
    text_file("wrong-columns.csv", ["名字,电话", "张三,13800138000"], 1, True)
    (directory / "empty.csv").write_bytes(b"")
    made.append(BadRoll("empty.csv", directory / "empty.csv", 0, True))
    (directory / "binary.csv").write_bytes(bytes(range(256)) * 40)
    made.append(BadRoll("binary.csv", directory / "binary.csv", 0, True))
    wide = rows(15, 14)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet()
    ws.append(list(wide[0]) + [f"extra{i}" for i in range(300)])
    for i, r in enumerate(wide):
        values: list[Any] = list(r.values())
        if i == 4:
            values[0] = "名" * 50_000
        ws.append(values + ["x"] * 300)
    wb.save(directory / "wide-huge-cell.xlsx")
    made.append(BadRoll("wide-huge-cell.xlsx", directory / "wide-huge-cell.xlsx", 15, False))
    (directory / "not-a-workbook.xlsx").write_bytes(b"PK\x03\x04" + os.urandom(2000))
    made.append(BadRoll("not-a-workbook.xlsx", directory / "not-a-workbook.xlsx", 0, True))
    return made


@dataclass
class RollOutcome:
    roll: BadRoll
    refused: str | None
    accounted: int
    silent_loss: int


def import_bad_roll(service: Service, roll: BadRoll) -> RollOutcome:
    """Import one file into the running service's database; rows neither written, found
    unchanged, blank nor reported are its silent loss."""
    from models.roll import RollFileError, import_roll

    engine = service.engine()
    try:
        report = import_roll(engine, roll.path, id_key=b"reliability-id-key", actor="probe")
    except RollFileError as exc:
        return RollOutcome(roll, str(exc), 0, 0)
    finally:
        engine.dispose()
    accounted = report.imported + report.updated + report.unchanged + len(report.rejected)
    return RollOutcome(roll, None, accounted, max(0, roll.data_rows - accounted - report.blank))


def fuzz_messages(count: int, seed: int = 5) -> list[tuple[str, str]]:
    """(sender, text) pairs: the odd things people and machines send, within Twilio's shape."""
    rng = random.Random(seed)
    samples = ["菜单", "人工", "TD", "退订", "START", "STOP", "ok", "1", "99", "0", "", " ", "\u200b", "?", "？？？",
               "老兵80岁以后有什么保险？", "醫療互助每年要繳多少錢", "how much is mutual aid", "我要申请困难帮扶",
               "{{ 7*7 }}", "{% for x in range(10**9) %}", "'; DROP TABLE contact; --", "<script>alert(1)</script>",
               "\x00\x01\x02 control", "😀" * 50, "a" * 1600, "长" * 800, "\u202e reversed", "%s%s%n", "\\x41",
               "我的电话是 138 1234 5678", "身份证 440703 19420815 1234", "12345678901234567890", "\r\n\r\n",
               "返回", "上一步", "是", "否", "不是", "好的谢谢", "null", "undefined", "NaN", "-1", "1e309"]
    out = []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            text = rng.choice(samples)
        elif kind == 1:
            text = "".join(chr(rng.randint(0x20, 0x2FFF)) for _ in range(rng.randint(1, 200)))
        elif kind == 2:
            text = "".join(rng.choice(samples) for _ in range(rng.randint(2, 5)))[:1600]
        else:
            text = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 120))).decode("utf-8", "replace")
        out.append((f"+861{rng.choice('3456789')}{rng.randint(0, 10**9 - 1):09d}", text))
    return out


def answered(reply: Reply) -> bool:
    """A reply a person can read: a 200 with a TwiML message that is not the apology."""
    return reply.status == 200 and "<Message>" in reply.text and SORRY not in reply.text


@dataclass
class Probe:
    """Requests sent in a loop from its own thread while something heavy runs; latencies kept."""

    send: Callable[[int], Reply]
    replies: list[Reply] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> Probe:
        def loop() -> None:
            i = 0
            while not self.stop.is_set():
                self.replies.append(self.send(i))
                i += 1
                time.sleep(0.05)

        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()
        return self

    def finish(self) -> list[Reply]:
        self.stop.set()
        assert self.thread is not None
        self.thread.join(60)
        return self.replies


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))] if ordered else 0.0


def write_large_roll(path: Path, rows: int, seed: int = 99) -> Path:
    from models.demo import roll_rows, write_roll_csv

    return write_roll_csv(path, roll_rows(rows, seed=seed))
