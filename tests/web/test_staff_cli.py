"""`nuanxin staff …` and the command line acting as a staff member only once proven."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner, Result

from models.db import make_engine, session_scope, write_scope
from models.migrate import upgrade
from models.outbox import Broadcast
from models.staff import AuditLog, StaffUser
from models.staff_access import issue_token, sign_in


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The `nuanxin` command pointed at a fresh SQLite file."""
    from settings import get_settings

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("NUANXIN_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("NUANXIN_ID_HASH_KEY", "cli-key")
    monkeypatch.delenv("NUANXIN_STAFF_TOKEN", raising=False)
    get_settings.cache_clear()
    engine = make_engine(url)
    upgrade(engine)
    yield engine
    get_settings.cache_clear()
    engine.dispose()


def nuanxin(*args: str, input: str | None = None) -> Result:
    from cli import app

    return CliRunner().invoke(app, list(args), input=input)


def _add(name: str, *roles: str, password: str) -> None:
    role_args = [a for r in roles for a in ("--role", r)]
    result = nuanxin("staff", "add", name, *role_args, "--password-stdin", input=password + "\n")
    assert result.exit_code == 0, result.output


def test_staff_add_reads_the_password_from_stdin_and_it_signs_in(cli_db: Engine) -> None:
    """The contract: `nuanxin staff add NAME --role ROLE --password-stdin`; roles repeatable."""
    _add("zhou", "caseworker", "approver", password="zhou-password-1")
    with session_scope(cli_db) as s:
        result = sign_in(s, username="zhou", password="zhou-password-1", address="test",
                         now=datetime.now(UTC))
        assert result.user is not None and result.user.roles == ["caseworker", "approver"]
        assert result.user.password_hash.startswith("$argon2id$")


def test_staff_add_refuses_an_unknown_role_a_short_password_and_a_taken_name(cli_db: Engine) -> None:
    assert nuanxin("staff", "add", "a", "--role", "boss", "--password-stdin", input="long-enough-1\n").exit_code == 2
    short = nuanxin("staff", "add", "a", "--role", "viewer", "--password-stdin", input="short\n")
    assert short.exit_code == 2 and "10" in short.output
    _add("a", "viewer", password="long-enough-1")
    assert nuanxin("staff", "add", "a", "--role", "viewer", "--password-stdin", input="long-enough-1\n").exit_code == 2


def test_staff_list_deactivate_and_reset_password(cli_db: Engine) -> None:
    _add("zhou", "caseworker", password="zhou-password-1")
    listed = json.loads(nuanxin("staff", "list", "--json").stdout)["staff"]
    assert [(u["username"], u["roles"], u["active"]) for u in listed] == [("zhou", ["caseworker"], True)]
    assert nuanxin("staff", "reset-password", "zhou", "--password-stdin", input="zhou-password-2\n").exit_code == 0
    with session_scope(cli_db) as s:
        assert sign_in(s, username="zhou", password="zhou-password-2", address="t", now=datetime.now(UTC)).user
    assert nuanxin("staff", "deactivate", "zhou").exit_code == 0
    with session_scope(cli_db) as s:
        assert sign_in(s, username="zhou", password="zhou-password-2", address="t",
                       now=datetime.now(UTC)).user is None
        actions = [a.action for a in s.exec(select(AuditLog)).all()]
    assert {"staff.create", "staff.password_reset", "staff.deactivate"} <= set(actions)
    assert nuanxin("staff", "deactivate", "nobody").exit_code == 2


def _create_broadcast(author: str, password: str) -> int:
    result = nuanxin("broadcast", "create", "--as", author, "--title", "重阳节活动", "--text", "重阳节社区有活动。",
                     "--audience", '{"kinds": ["veteran"]}', input=password + "\n")
    assert result.exit_code == 0, result.output
    return int(result.stdout.split()[1])


def test_a_name_alone_is_not_enough_to_act_as_a_staff_member(cli_db: Engine) -> None:
    """`--as NAME` without that member's password (or token) does nothing: four eyes hold on the CLI."""
    _add("alice", "composer", password="alice-password-1")
    _add("bob", "approver", password="bob-password-11")
    bid = _create_broadcast("alice", "alice-password-1")
    for typed in ("", "alice-password-1", "guessing-12345"):
        refused = nuanxin("broadcast", "approve", str(bid), "--as", "bob", input=typed + "\n")
        assert refused.exit_code == 2 and "not signed in" in refused.output
    assert nuanxin("broadcast", "approve", str(bid)).exit_code == 2  # nobody named, no token
    with Session(cli_db) as s:
        assert s.get(Broadcast, bid).status == "pending_approval"  # type: ignore[union-attr]
    approved = nuanxin("broadcast", "approve", str(bid), "--as", "bob", input="bob-password-11\n")
    assert approved.exit_code == 0, approved.output
    with Session(cli_db) as s:
        b = s.get(Broadcast, bid)
        bob = s.exec(select(StaffUser).where(StaffUser.username == "bob")).one()
        assert b is not None and b.status == "approved" and b.approved_by == bob.id


def test_the_author_cannot_approve_their_own_broadcast_on_the_cli(cli_db: Engine) -> None:
    _add("carol", "composer", "approver", password="carol-password-1")
    bid = _create_broadcast("carol", "carol-password-1")
    refused = nuanxin("broadcast", "approve", str(bid), "--as", "carol", input="carol-password-1\n")
    assert refused.exit_code == 1 and "four eyes" in refused.output
    with Session(cli_db) as s:
        assert s.get(Broadcast, bid).status == "pending_approval"  # type: ignore[union-attr]


def test_a_personal_token_from_the_console_proves_who_is_acting(cli_db: Engine,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """NUANXIN_STAFF_TOKEN stands for the password; a token cannot be used to act as someone else."""
    _add("alice", "composer", password="alice-password-1")
    _add("bob", "approver", password="bob-password-11")
    bid = _create_broadcast("alice", "alice-password-1")
    with write_scope(cli_db) as s:
        bob = s.exec(select(StaffUser).where(StaffUser.username == "bob")).one()
        token = issue_token(s, bob, label="office server", now=datetime.now(UTC))
    monkeypatch.setenv("NUANXIN_STAFF_TOKEN", token)
    assert nuanxin("broadcast", "approve", str(bid), "--as", "alice").exit_code == 2
    assert nuanxin("broadcast", "approve", str(bid)).exit_code == 0
    monkeypatch.setenv("NUANXIN_STAFF_TOKEN", token[:-2] + "xx")
    assert nuanxin("broadcast", "status", str(bid)).exit_code == 2
