"""Personal data masked in logs and at rest: one redaction function, a formatter on every handler."""

from __future__ import annotations

import io
import logging
import logging.config
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert
from sqlmodel import Session, select

from models.actions import audit
from models.conversations import MessageLog
from models.idcard import check_digit
from models.logs import configure_logging, uvicorn_log_config
from models.privacy import RedactingFormatter, redact
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


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_an_exception_carrying_a_phone_and_an_id_is_masked_by_every_handler_uvicorns_included(
        log_format: str) -> None:
    """The service's logging as `serve` sets it up (models.logs: the root handler, JSON or text, and
    uvicorn's loggers through the log_config uvicorn is given): an exception whose message,
    arguments and traceback carry a phone and an ID number, logged by our code and by uvicorn's
    error and access loggers, is written by every handler with neither in full."""
    names = ("uvicorn", "uvicorn.error", "uvicorn.access")
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    saved = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate,
                    logging.getLogger(name).level) for name in names}
    streams: list[io.StringIO] = []
    try:
        root.handlers = []
        configure_logging(log_format=log_format, level="INFO")
        logging.config.dictConfig(uvicorn_log_config("info"))
        handlers = [*root.handlers, *(h for name in names for h in logging.getLogger(name).handlers)]
        assert handlers, "the service configures at least one handler"
        for handler in handlers:
            assert isinstance(handler.formatter, RedactingFormatter)
            assert isinstance(handler, logging.StreamHandler)
            stream = io.StringIO()
            handler.setStream(stream)
            streams.append(stream)
        for name in names:  # uvicorn's records reach the root's handler (else they would be lost)
            logger = logging.getLogger(name)
            assert logger.handlers or logger.propagate
        _raise_with_personal_data()
    finally:
        root.handlers, level = saved_root
        root.setLevel(level)
        for name, (handlers_before, propagate, logger_level) in saved.items():
            logging.getLogger(name).handlers = handlers_before
            logging.getLogger(name).propagate = propagate
            logging.getLogger(name).setLevel(logger_level)
    written = "".join(s.getvalue() for s in streams)
    assert "Traceback" in written and "no person for phone" in written and "/people?q=" in written
    assert "in uvicorn:" in written and "with a stack" in written
    for stream in streams:
        assert stream.getvalue(), "every handler wrote something"
    flat = written.replace(" ", "").replace("-", "")
    assert PHONE_DIGITS not in flat and ID not in flat and ID[4:14] not in written
    assert "138****5678" in written and f"{ID[:4]}**********{ID[-4:]}" in written


def test_a_number_right_after_a_line_break_is_masked_in_a_json_line() -> None:
    """A JSON line escapes a traceback's line breaks as "\\n": an ID or phone number that begins
    a line of the traceback is masked all the same."""
    from models.logs import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(JsonFormatter("run")))
    log = logging.getLogger("nuanxin.json-lines-test")
    log.addHandler(handler)
    log.propagate = False
    try:
        try:
            raise LookupError(f"\n{ID}\n{PHONE_DIGITS}\t{ID}")
        except LookupError:
            log.exception("not found:\n%s", ID)
    finally:
        log.removeHandler(handler)
    import json

    line = stream.getvalue()
    entry = json.loads(line)
    assert ID not in line and PHONE_DIGITS not in line
    assert f"{ID[:4]}**********{ID[-4:]}" in entry["exc"] and "138****5678" in entry["exc"]
    assert entry["message"].endswith(f"{ID[:4]}**********{ID[-4:]}")


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
    stored masked, whoever writes them (the audit helper, the ORM or a Core bulk insert)."""
    with Session(db_engine) as s:
        audit(s, "console", "contact.link", "contact", f"console:abc:+86{PHONE_DIGITS}",
              {"address": f"console:abc:+86{PHONE_DIGITS}", "notes": [f"身份证 {ID}"]})
        s.add(MessageLog(channel="sms", address=f"+86{PHONE_DIGITS}", direction="in",
                         text=f"我儿子电话 139 0000 1111，身份证 {ID[:6]} {ID[6:]}"))
        # The dispatcher's and the conversation's bulk path: a Core insert into the table.
        s.execute(insert(MessageLog.__table__),  # type: ignore[attr-defined]
                  [{"channel": "telegram", "address": "42", "direction": "out", "attachments": [],
                    "text": f"已登记：电话 +86-137-0000-2222，证件 {ID[:6]}-{ID[6:14]}-{ID[14:]}"}])
        s.commit()
    with Session(db_engine) as s:
        row = s.exec(select(AuditLog)).one()
        logs = s.exec(select(MessageLog).order_by(MessageLog.id)).all()  # type: ignore[arg-type]
    log = logs[0]
    assert len(logs) == 2 and "137****2222" in logs[1].text
    stored = f"{row.target_id} {row.details} {log.text} {logs[1].text}"
    assert PHONE_DIGITS not in stored and "13900001111" not in stored.replace(" ", "")
    assert ID not in stored.replace(" ", "").replace("-", "") and "13700002222" not in stored.replace("-", "")
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
