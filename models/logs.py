"""How every process logs: one line per record, JSON when standard error is not a terminal.

Under systemd, compose or any log shipper a process writes JSON lines (`{"ts", "level",
"logger", "message", "role", "pid", "exc"}`) that journald, Loki or Elasticsearch index as
they are; on a terminal it writes the usual text. `NUANXIN_LOG_FORMAT` (auto, json, text) and
`NUANXIN_LOG_LEVEL` choose. Personal data is masked by models/privacy.py's redaction, which wraps
whatever formatter is installed here (a JSON line is masked as a whole: masks are digits and
asterisks, so the line stays valid JSON). uvicorn's own loggers (server errors, access lines)
propagate to the same handler, so they are JSON and masked too.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries whose INFO and DEBUG lines say nothing an operator acts on (bm25s sets its own logger to
# DEBUG when imported and logs every index build and empty query; httpx logs every request's URL).
# Their warnings and errors still come through.
QUIET_LIBRARIES = ("bm25s", "httpx", "httpcore", "urllib3", "python_multipart")


class QuietLibraries(logging.Filter):
    """Drops records below WARNING from the libraries in QUIET_LIBRARIES. A filter on the handler rather than
    a level on their loggers: a library that sets its own level when it is imported (after logging is set up)
    cannot undo it."""

    def __init__(self, names: tuple[str, ...] = QUIET_LIBRARIES) -> None:
        super().__init__()
        self.names = names
        self.prefixes = tuple(f"{name}." for name in names)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        return not (record.name in self.names or record.name.startswith(self.prefixes))


class JsonFormatter(logging.Formatter):
    """One JSON object per record; the traceback, if any, in "exc"."""

    def __init__(self, role: str = "") -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.role:
            entry["role"] = self.role
        entry["pid"] = record.process
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def wants_json(log_format: str = "auto", stream: Any = None) -> bool:
    if log_format in ("json", "text"):
        return log_format == "json"
    stream = stream if stream is not None else sys.stderr
    return not (hasattr(stream, "isatty") and stream.isatty())


def configure_logging(settings: Any = None, *, role: str = "", log_format: str | None = None,
                      level: str | None = None) -> None:
    """The root logger: one handler on standard error, JSON or text, with personal data masked."""
    from models.privacy import configure_logging as install_redaction

    log_format = log_format or getattr(settings, "log_format", None) or os.environ.get("NUANXIN_LOG_FORMAT", "auto")
    level = (level or getattr(settings, "log_level", None) or "INFO").upper()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_nuanxin", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._nuanxin = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter(role) if wants_json(log_format) else logging.Formatter(_TEXT_FORMAT))
    handler.addFilter(QuietLibraries())
    # The handler keeps to the level too: a logger a library set to DEBUG on its own still logs below it.
    handler.setLevel(getattr(logging, level, logging.INFO))
    root.addHandler(handler)
    install_redaction(getattr(logging, level, logging.INFO))


def uvicorn_log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's loggers without handlers of their own: they propagate to the root handler above."""
    quiet = {"level": level.upper(), "handlers": [], "propagate": True}
    return {"version": 1, "disable_existing_loggers": False,
            "loggers": {"uvicorn": quiet, "uvicorn.error": quiet, "uvicorn.access": quiet}}
