"""Settings, migrations, value objects, health and the privacy of logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine
from sqlmodel import SQLModel
from typer.testing import CliRunner

from models.db import make_engine
from models.idcard import IdCard, InvalidIdCard, check_digit
from models.migrate import current_revision, upgrade
from models.phone import InvalidPhone, PhoneNumber
from models.privacy import configure_logging, redact
from settings import SettingsError, load_settings


def _id(prefix17: str) -> str:
    return prefix17 + check_digit(prefix17)


# --- settings --------------------------------------------------------------------

@pytest.mark.parametrize(("variable", "value"), [
    ("NUANXIN_OFFICE_TIMEZONE", "Mars/Olympus"),
    ("NUANXIN_QUIET_HOURS_START", "25:99"),
    ("NUANXIN_WEB_PORT", "eighty"),
    ("DATABASE_URL", "mysql://x"),
    ("NUANXIN_TELEGRAM_RATE_PER_S", "-3"),
])
def test_a_bad_setting_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str,
                                                      value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert variable in str(info.value)


def test_cli_start_up_with_a_bad_setting_exits_with_the_variable_named(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    from cli import app
    from settings import get_settings

    monkeypatch.setenv("NUANXIN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("NUANXIN_OFFICE_TIMEZONE", "Nowhere/Town")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["migrate"])
    get_settings.cache_clear()
    assert result.exit_code == 2
    assert "NUANXIN_OFFICE_TIMEZONE" in result.output


def test_settings_default_to_an_embedded_sqlite_file_in_the_office_zone(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'nuanxin.db'}"
    assert settings.office_timezone == "Asia/Shanghai"
    assert settings.id_key == load_settings(data_dir=tmp_path).id_key  # generated once, then kept


def test_postgres_urls_use_the_psycopg_driver() -> None:
    assert load_settings(database_url="postgresql://u@h/db").database_url == "postgresql+psycopg://u@h/db"


# --- migrations ------------------------------------------------------------------

def _fresh(kind: str, tmp_path: Path, pg_server: object) -> Engine:
    if kind == "sqlite":
        return make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    return make_engine(pg_server.create_database(f"migrate_{tmp_path.name[-20:].lower()}"))  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migrations_create_exactly_the_schema_the_models_declare(kind: str, tmp_path: Path, pg_server: object) -> None:
    engine = _fresh(kind, tmp_path, pg_server)
    upgrade(engine)
    assert current_revision(engine) is not None
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), SQLModel.metadata)
    engine.dispose()
    assert diff == []


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migrating_twice_changes_nothing(kind: str, tmp_path: Path, pg_server: object) -> None:
    engine = _fresh(kind, tmp_path, pg_server)
    upgrade(engine)
    first = current_revision(engine)
    upgrade(engine)
    assert current_revision(engine) == first
    engine.dispose()


def test_sqlite_runs_in_wal_mode(sqlite_engine: Engine) -> None:
    with sqlite_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


# --- value objects ---------------------------------------------------------------

def test_id_card_gives_birth_date_sex_and_masked_form() -> None:
    card = IdCard.parse(_id("44070319420815123"))
    assert card.birth_date.isoformat() == "1942-08-15"
    assert card.sex == "F" if int(card.number[16]) % 2 == 0 else "M"
    assert card.masked == card.number[:4] + "*" * 10 + card.number[-4:]
    assert card.number not in repr(card)


@pytest.mark.parametrize("raw", ["", "12345", "44070319421315123X", "4407031942081512X3", "44070319420815123A"])
def test_malformed_id_numbers_are_refused_with_a_reason(raw: str) -> None:
    with pytest.raises(InvalidIdCard):
        IdCard.parse(raw)


def test_lower_case_x_and_full_width_digits_are_accepted() -> None:
    number = _id("11010519491231002")
    assert number.endswith("X")
    wide = "".join(chr(ord(c) + 0xFEE0) for c in number[:-1]) + "x"
    assert IdCard.parse(wide).number == number


@pytest.mark.parametrize(("raw", "e164"), [
    ("13812345678", "+8613812345678"), ("+86 138-1234-5678", "+8613812345678"),
    ("008613812345678", "+8613812345678"), ("+852 9123 4567", "+85291234567"),
    ("+886 912 345 678", "+886912345678"), ("+1 415 555 2671", "+14155552671"),
])
def test_phone_numbers_become_e164(raw: str, e164: str) -> None:
    assert PhoneNumber.parse(raw).e164 == e164


@pytest.mark.parametrize("raw", ["", "12", "138123456789999", "hello"])
def test_bad_phone_numbers_are_refused_with_a_code(raw: str) -> None:
    with pytest.raises(InvalidPhone) as info:
        PhoneNumber.parse(raw)
    assert info.value.code in {"empty", "unparseable", "invalid"}


# --- privacy of logs --------------------------------------------------------------

def test_no_plain_id_or_phone_reaches_a_log_even_from_sql_echo(tmp_path: Path) -> None:
    """Run a real import with SQL statement logging on (parameters included) and check
    that every line written by the handlers shows only masked forms."""
    from models.demo import roll_rows, write_roll_csv
    from models.roll import import_roll

    log_file = tmp_path / "all.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    root = logging.getLogger()
    root.addHandler(handler)
    configure_logging(logging.DEBUG)
    sql_logger = logging.getLogger("sqlalchemy.engine")
    old_level = sql_logger.level
    sql_logger.setLevel(logging.INFO)
    rows = roll_rows(30, seed=21)
    try:
        engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
        upgrade(engine)
        import_roll(engine, write_roll_csv(tmp_path / "r.csv", rows), id_key=b"k")
        logging.getLogger("nuanxin.test").info("careless line %s %s code 123456 验证码：654321",
                                               rows[0]["身份证号"], rows[0]["手机号"])
    finally:
        sql_logger.setLevel(old_level)
        root.removeHandler(handler)
        handler.close()
    written = log_file.read_text(encoding="utf-8")
    assert "INSERT INTO beneficiary" in written  # the SQL log really was on
    for row in rows:
        assert row["身份证号"] not in written
        assert row["手机号"] not in written
        assert "+86" + row["手机号"] not in written
    assert "654321" not in written and "123456" not in written


def test_redaction_keeps_the_masked_forms_people_can_still_read() -> None:
    number = _id("44070319420815123")
    assert redact(f"id={number}") == f"id={number[:4]}**********{number[-4:]}"
    assert redact("tel +8613812345678") == "tel +86138****5678"
    assert redact("reference NX-2026-000123 stays") == "reference NX-2026-000123 stays"
