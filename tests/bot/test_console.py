"""`nuanxin chat`: the same engine in a terminal, scripted for demos and tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from sqlmodel import Session, SQLModel, select
from typer.testing import CliRunner

from bot.channels.console import to_inbound
from bot.commands import register
from models.applications import Application
from models.db import make_engine, session_scope
from models.migrate import upgrade
from settings import load_settings
from tests.bot.conftest import ZHANG_ID, ZHANG_PHONE, add_person


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A CLI pointed at a fresh SQLite file with one person on the roll."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("NUANXIN_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("NUANXIN_ID_HASH_KEY", "cli-key")
    db = make_engine(url)
    upgrade(db)
    conf = load_settings()
    with session_scope(db) as s:
        add_person(s, conf, ZHANG_ID, "张三", ZHANG_PHONE, is_veteran=True)
    app = typer.Typer()
    register(app)
    app.command("noop", hidden=True)(lambda: None)  # keeps typer in multi-command mode
    return app, db


def test_chat_script_runs_a_whole_application_and_prints_the_replies(cli_env, tmp_path):
    """`chat --phone --script FILE` feeds each line and prints each reply; the application is created."""
    app, db = cli_env
    script = tmp_path / "demo.txt"
    script.write_text(f"# a veteran applies\n1\n是\n不是\n1\n张三\n{ZHANG_ID}\n1998年12月\n2002年12月\n机械厂\n以后\n1\n",
                      encoding="utf-8")
    result = CliRunner().invoke(app, ["chat", "--phone", "+86 138 1234 5678", "--script", str(script)])
    assert result.exit_code == 0, result.output
    assert "> 1" in result.output and "政府安排工作" in result.output
    assert "已提交，编号NX-" in result.output
    assert "# a veteran" not in result.output
    with Session(db) as s:
        app_row = s.exec(select(Application)).one()
    assert app_row.channel == "console" and app_row.submitted_by_relationship == "self"


def test_chat_without_a_phone_is_an_unlinked_visitor(cli_env, tmp_path):
    """Without --phone the console is someone not yet linked: menus work, applying asks to link."""
    app, _db = cli_env
    script = tmp_path / "s.txt"
    script.write_text("你好\n1\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["chat", "--script", str(script)])
    assert result.exit_code == 0, result.output
    assert "9. 绑定身份" in result.output and "先确认您的身份" in result.output


def test_chat_in_english_and_state_kept_between_runs(cli_env, tmp_path):
    """--lang en gives English; a second run of the same session continues where the first stopped."""
    app, _db = cli_env
    first = tmp_path / "a.txt"
    first.write_text("menu\n3\n", encoding="utf-8")
    out1 = CliRunner().invoke(app, ["chat", "--phone", ZHANG_PHONE, "--lang", "en", "--script", str(first)])
    assert "What is the main difficulty?" in out1.output
    second = tmp_path / "b.txt"
    second.write_text("2\n", encoding="utf-8")
    out2 = CliRunner().invoke(app, ["chat", "--phone", ZHANG_PHONE, "--script", str(second)])
    assert "describe the situation" in out2.output


def test_chat_with_a_phone_not_on_the_roll_is_refused(cli_env, tmp_path):
    """--phone must be someone on the roll."""
    app, _db = cli_env
    script = tmp_path / "s.txt"
    script.write_text("0\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["chat", "--phone", "+8613100000000", "--script", str(script)])
    assert result.exit_code == 2 and "no one on the roll" in result.output


def test_file_lines_become_attachments(tmp_path):
    """`/file PATH` sends a file: a photo when it looks like one."""
    photo = tmp_path / "a.JPG"
    photo.write_bytes(b"x")
    inbound = to_inbound(f"/file {photo}", "console:t")
    assert inbound.attachments[0].kind == "photo" and inbound.attachments[0].local_path == str(photo)
    assert to_inbound("hello\n", "console:t").text == "hello"
    _ = SQLModel
