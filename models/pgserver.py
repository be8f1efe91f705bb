"""A throwaway PostgreSQL server on 127.0.0.1, for the test suite and the benchmarks.

PostgreSQL refuses to run as root, so when we are root the server runs as the
unprivileged `postgres` user that Debian's package creates, in a temporary data folder
that user owns. `make test` installs the package when `initdb` is missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    pass


def _find_bin(name: str) -> str:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    found = shutil.which(name)
    if candidates:
        return candidates[0]
    if found:
        return found
    raise PostgresUnavailable(f"{name} not found: install Debian's postgresql package (make test does)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    def __init__(self) -> None:
        self.port = _free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="nuanxin-pg-"))
        self.datadir = self.tmp / "data"
        self.as_root = os.geteuid() == 0
        self.started = False

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True)

    def start(self) -> PostgresServer:
        if self.as_root:
            shutil.chown(self.tmp, "postgres", "postgres")
        self._run(_find_bin("initdb"), "-D", str(self.datadir), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.tmp} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
                "-c shared_buffers=256MB")
        self._run(_find_bin("pg_ctl"), "-D", str(self.datadir), "-o", opts, "-l",
                  str(self.tmp / "server.log"), "-w", "-t", "60", "start")
        self.started = True
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise PostgresUnavailable("PostgreSQL did not start: see " + str(self.tmp / "server.log"))

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.started:
            self._run(_find_bin("pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "stop", check=False)
            self.started = False
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
