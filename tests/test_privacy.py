"""Personal data masked in logs and at rest: one redaction function, a formatter on every handler."""

from __future__ import annotations

import io
import logging
import logging.config
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from models.actions import audit
from models.conversations import MessageLog
from models.idcard import check_digit
from models.privacy import RedactingFormatter, configure_logging, redact, uvicorn_log_config
from models.staff import AuditLog

ID = "44070319420815123" + check_digit("44070319420815123")
PHONE_DIGITS = "13812345678"


@pytest.mark.parametrize("written", [
    "13812345678", "138 1234 5678", "138-1234-5678", "+86 138 1234 5678", "+86-138-1234-5678",
    "0086 13812345678", "0086-138-1234-5678", "(+86) 138 1234 5678", "+8613812345678",
    "１３８１２３４５６７８", "＋８６ １３８ １２３４ ５６７８", "86 13812345678",
])
def test_a_phone_number_is_masked_however_it_is_written(written: str) -> None:
    """Every common way of writing a mainland mobile leaves only the first three and last four digits."""
    text = redact(f"我的电话是{written}，谢谢")
    assert "1234" not in text.replace("5678", "")
    assert "138****5678" in text and text.startswith("我的电话是") and text.endswith("，谢谢")


@pytest.mark.parametrize("written", [
    ID, ID[:6] + " " + ID[6:14] + " " + ID[14:], " ".join(ID[i:i + 4] for i in range(0, 18, 4)),
    ID[:6] + "-" + ID[6:14] + "-" + ID[14:], "".join(chr(ord(c) + 0xFEE0) for c in ID),
])
def test_an_id_number_is_masked_with_or_without_spaces(written: str) -> None:
    """An ID number, spaced, dashed or in full-width digits, shows only its first and last four."""
    text = redact(f"身份证 {written} 已核对")
    assert ID[4:14] not in text.replace(" ", "").replace("-", "")
    assert f"{ID[:4]}**********{ID[-4:]}" in text


@pytest.mark.parametrize("written", ["+852 9123 4567", "00852 9123 4567", "+1 415 555 0100", "020-12345678"])
def test_other_phone_numbers_are_masked_too(written: str) -> None:
    """Hong Kong, US and landline numbers lose their middle digits."""
    text = redact(f"call {written}")
    digits = "".join(c for c in written if c.isdigit())
    assert digits not in "".join(c for c in text if c.isdigit())
    assert text.endswith(written[-4:])


@pytest.mark.parametrize("kept", [
    "reference NX-2026-000123 stays", "2026-03-02 10:00:00.123456", "12,345 yuan on 2026年3月2日, age 85",
    "took 0.30000000000000004 s", "outbox 4412 sent, 17 queued",
])
def test_ordinary_numbers_are_left_alone(kept: str) -> None:
    """Dates, amounts, references and figures are not mistaken for personal numbers."""
    assert redact(kept) == kept


def _raise_with_personal_data() -> None:
    try:
        raise ValueError(f"no person for phone 138 1234 5678 and ID {ID}")
    except ValueError:
        logging.getLogger("nuanxin.test").exception("lookup failed for %s", "+86 138-1234-5678")
    logging.getLogger("uvicorn.error").exception("in uvicorn: %s", ID, exc_info=ValueError(PHONE_DIGITS))
    logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET",
                                            f"/people?q={PHONE_DIGITS}", "1.1", 200)
    logging.getLogger("nuanxin.test").warning("with a stack", stack_info=True, extra={"x": ID})


def test_an_exception_carrying_a_phone_and_an_id_is_masked_by_every_handler_uvicorns_included() -> None:
    """The service's logging (root handler and uvicorn's own handlers from its log_config): an
    exception whose message, arguments and traceback carry a phone and an ID number is written by
    every handler with neither in full."""
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    saved = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate)
             for name in ("uvicorn", "uvicorn.error", "uvicorn.access")}
    streams: list[io.StringIO] = []
    try:
        root.handlers = [logging.StreamHandler(io.StringIO())]
        configure_logging(logging.INFO)
        logging.config.dictConfig(uvicorn_log_config("info"))
        handlers = [*root.handlers, *logging.getLogger("uvicorn").handlers,
                    *logging.getLogger("uvicorn.access").handlers]
        assert len(handlers) >= 3  # ours, uvicorn's default and uvicorn's access handler
        for handler in handlers:
            assert isinstance(handler.formatter, RedactingFormatter)
            assert isinstance(handler, logging.StreamHandler)
            stream = io.StringIO()
            handler.setStream(stream)
            streams.append(stream)
        _raise_with_personal_data()
    finally:
        root.handlers, level = saved_root
        root.setLevel(level)
        for name, (handlers_before, propagate) in saved.items():
            logging.getLogger(name).handlers = handlers_before
            logging.getLogger(name).propagate = propagate
    written = "".join(s.getvalue() for s in streams)
    assert "Traceback" in written and "no person for phone" in written and "/people?q=" in written
    for stream in streams:
        assert stream.getvalue(), "every handler wrote something"
    assert PHONE_DIGITS not in written.replace(" ", "").replace("-", "")
    assert ID not in written.replace(" ", "") and ID[4:14] not in written
    assert "138****5678" in written and f"{ID[:4]}**********{ID[-4:]}" in written


def test_a_json_formatter_wrapped_keeps_the_masking() -> None:
    """Any formatter (say a JSON one) wrapped in RedactingFormatter writes masked text."""

    class Json(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            import json
            return json.dumps({"msg": record.getMessage(), "exc": self.formatException(record.exc_info)
                               if record.exc_info else None}, ensure_ascii=False)

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(Json()))
    log = logging.getLogger("nuanxin.json-test")
    log.addHandler(handler)
    log.propagate = False
    try:
        try:
            raise RuntimeError(f"phone {PHONE_DIGITS}")
        except RuntimeError:
            log.exception("id %s", ID)
    finally:
        log.removeHandler(handler)
    assert PHONE_DIGITS not in stream.getvalue() and ID not in stream.getvalue()
    assert '"msg"' in stream.getvalue()


def test_audit_details_and_the_message_log_are_stored_masked(db_engine: Engine) -> None:
    """A console address with a phone in it, and a message with a spaced phone and ID number, are
    stored masked, whoever writes them (the audit helper or a direct insert)."""
    with Session(db_engine) as s:
        audit(s, "console", "contact.link", "contact", f"console:abc:+86{PHONE_DIGITS}",
              {"address": f"console:abc:+86{PHONE_DIGITS}", "notes": [f"身份证 {ID}"]})
        s.add(MessageLog(channel="sms", address=f"+86{PHONE_DIGITS}", direction="in",
                         text=f"我儿子电话 139 0000 1111，身份证 {ID[:6]} {ID[6:]}"))
        s.commit()
    with Session(db_engine) as s:
        row = s.exec(select(AuditLog)).one()
        log = s.exec(select(MessageLog)).one()
    stored = f"{row.target_id} {row.details} {log.text}"
    assert PHONE_DIGITS not in stored and "13900001111" not in stored.replace(" ", "")
    assert ID not in stored.replace(" ", "")
    assert row.details["address"] == "console:abc:+86138****5678"
    assert log.address == f"+86{PHONE_DIGITS}"  # the address is how the conversation is found: kept


def test_the_data_folder_and_database_file_are_for_this_user_alone(tmp_path: Path) -> None:
    """A fresh data folder is 0700; the SQLite file and its WAL are 0600."""
    from sqlmodel import SQLModel

    import models  # noqa: F401
    from models.db import make_engine
    from settings import load_settings

    settings = load_settings(data_dir=tmp_path / "var", id_hash_key="k", session_secret="s")
    settings.ensure_data_dir()
    engine = make_engine(settings.effective_database_url)
    SQLModel.metadata.create_all(engine)
    with Session(engine) as s:
        audit(s, "system", "test", details={})
        s.commit()
        db_file = Path(settings.effective_database_url.removeprefix("sqlite:///"))
        assert (tmp_path / "var").stat().st_mode & 0o777 == 0o700
        assert db_file.stat().st_mode & 0o777 == 0o600
        assert Path(str(db_file) + "-wal").stat().st_mode & 0o777 == 0o600
    assert settings.secret_from_file("session")
    assert (tmp_path / "var" / "session.key").stat().st_mode & 0o777 == 0o600
    engine.dispose()
