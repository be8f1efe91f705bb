"""The deployment guide (deploy/) against the code it describes: every setting documented, every
command in the compose file and the systemd units accepted by the CLI, and a backup made by
deploy/backup.sh restored by deploy/restore.sh into an empty database with every row."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml
from sqlalchemy import inspect, select, text
from typer.testing import CliRunner

from models.db import make_engine, session_scope
from models.outbox import OutboxMessage
from models.pgserver import PostgresServer, _find_bin
from outreach.outbox import enqueue_many
from settings import Settings, env_name
from tests.fakes.waiting import PROCESS_HANG_S

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
# Read directly rather than through Settings (the CLI's staff token, the schedule rules' file, uvicorn's proxies).
DIRECT_VARIABLES = ("NUANXIN_STAFF_TOKEN", "NUANXIN_SCHEDULE_FILE", "FORWARDED_ALLOW_IPS")


def test_every_setting_is_in_the_environment_reference() -> None:
    """An operator finds every variable nuanxin reads in deploy/ENVIRONMENT.md, under its real name."""
    reference = (DEPLOY / "ENVIRONMENT.md").read_text()
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", reference))
    # "`NUANXIN_QUIET_HOURS_START` / `_END`" documents both ends
    documented |= {name.replace("_START", "_END") for name in documented if name.endswith("_START")}
    wanted = {env_name(field) for field in Settings.model_fields} | set(DIRECT_VARIABLES)
    assert not wanted - documented, f"missing from deploy/ENVIRONMENT.md: {sorted(wanted - documented)}"


def _deployed_commands() -> list[list[str]]:
    """The nuanxin command lines the compose file and the systemd units run."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    commands = [list(service["command"]) for service in compose["services"].values()
                if service.get("image", "").startswith("nuanxin") and "command" in service]
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        for line in unit.read_text().splitlines():
            if line.startswith("ExecStart="):
                argv = shlex.split(line.removeprefix("ExecStart=").replace("%i", "9100"))
                assert argv[0].endswith("/nuanxin"), line
                commands.append(argv[1:])
    return commands


def test_every_deployed_command_is_one_the_cli_accepts() -> None:
    """Each process the guide starts (migrate, web, both workers, with their options) is a command
    line the CLI parses: a renamed command or option breaks this test, not a deployment."""
    from cli import app

    commands = _deployed_commands()
    roles = {tuple(c[:2]) if c[0] == "worker" else (c[0],) for c in commands}
    assert roles == {("migrate",), ("web",), ("worker", "dispatch"), ("worker", "scheduler")}, roles
    runner = CliRunner()
    for argv in commands:
        # --help after the options: typer parses (and rejects unknown) options before it prints help
        result = runner.invoke(app, [*argv, "--help"])
        assert result.exit_code == 0, (argv, result.output)


def test_compose_runs_every_role_twice_behind_nginx_on_one_database_and_redis() -> None:
    """The compose file is the topology the guide describes: two web replicas, two dispatchers,
    two schedulers (one standing by), all on the one PostgreSQL and Redis, nginx in front."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    roles = [tuple(s["command"][:2]) if s["command"][0] == "worker" else (s["command"][0],)
             for s in services.values() if "command" in s and s.get("image", "").startswith("nuanxin")]
    assert sorted(roles) == sorted([("migrate",), ("web",), ("web",), ("worker", "dispatch"),
                                    ("worker", "dispatch"), ("worker", "scheduler"), ("worker", "scheduler")])
    for name, service in services.items():
        if service.get("image", "").startswith("nuanxin"):
            env = service["environment"]
            assert env["DATABASE_URL"].startswith("postgresql://") and "@postgres:" in env["DATABASE_URL"], name
            assert env["REDIS_URL"] == "redis://redis:6379/0", name
    assert {"postgres", "redis", "nginx"} <= set(services)


def _counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {table: int(conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one())
                    for table in inspect(conn).get_table_names()}
    finally:
        engine.dispose()


def test_a_backup_restores_into_an_empty_database_with_every_row_and_a_current_schema(
        pg_server: PostgresServer, tmp_path: Path) -> None:
    """deploy/backup.sh dumps a live database; deploy/restore.sh loads the dump into an empty one:
    the same tables with the same number of rows, the same outbox rows, and a schema that the
    roles accept (/readyz's check: current)."""
    from tests.scheduler.factories import person
    from web.routes.health import schema_state

    source = pg_server.create_database("nuanxin_backup_source")
    target = pg_server.create_database("nuanxin_backup_target")
    bin_dir = str(Path(_find_bin("pg_dump")).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUANXIN_", "DATABASE_URL", "REDIS_URL"))}
    env.update(PATH=bin_dir + os.pathsep + str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
               NUANXIN_DATA_DIR=str(tmp_path / "var"), NUANXIN_ID_HASH_KEY="backup-key")
    subprocess.run([sys.executable, "-m", "cli", "migrate"], cwd=REPO, env={**env, "DATABASE_URL": source},
                   check=True, capture_output=True, timeout=PROCESS_HANG_S)
    engine = make_engine(source)
    from models.clock import SystemClock

    with session_scope(engine) as s:
        people = [person(s, is_retiree=True) for _ in range(25)]
        s.flush()
        enqueue_many(s, ({"idempotency_key": f"backup:{p.id}", "kind": "broadcast", "channel": "telegram",
                          "address": str(700000 + int(p.id or 0)), "body": f"冬至问候 {p.id}",
                          "beneficiary_id": p.id, "message_class": "bulk"} for p in people),
                     now=SystemClock().now())
    with engine.connect() as conn:
        queued = conn.execute(select(OutboxMessage.idempotency_key, OutboxMessage.body, OutboxMessage.status)
                              .order_by(OutboxMessage.idempotency_key)).all()
    engine.dispose()
    assert len(queued) == 25

    dumped = subprocess.run([str(DEPLOY / "backup.sh"), str(tmp_path / "backups")], env={**env, "DATABASE_URL": source},
                            check=True, capture_output=True, text=True, timeout=PROCESS_HANG_S)
    dump = Path(dumped.stdout.strip().splitlines()[-1])
    assert dump.is_file() and dump.stat().st_size > 0
    assert dump.stat().st_mode & 0o077 == 0, "a dump of personal data is readable by its owner only"

    subprocess.run([str(DEPLOY / "restore.sh"), str(dump)], cwd=REPO, env={**env, "DATABASE_URL": target},
                   check=True, capture_output=True, text=True, timeout=PROCESS_HANG_S)
    assert _counts(target) == _counts(source)
    restored = make_engine(target)
    try:
        with restored.connect() as conn:
            assert conn.execute(select(OutboxMessage.idempotency_key, OutboxMessage.body, OutboxMessage.status)
                                .order_by(OutboxMessage.idempotency_key)).all() == queued
        assert schema_state(restored) == "current"
    finally:
        restored.dispose()
