"""Keeping personal data out of logs and out of what is stored without need.

`redact(text)` is the one redaction function: it masks ID-card numbers (18 characters, with
or without spaces or dashes, full-width digits too), phone numbers as people write them
(`13812345678`, `138 1234 5678`, `138-1234-5678`, `+86 138…`, `0086…`, `(+86)…`, full-width
digits, other countries' `+852 9123 4567`, landlines `020-12345678`), bank-card-length digit runs
and one-time codes. Audit details and the message log store `redact`ed text; every log handler
formats through `RedactingFormatter`, which masks the whole line it writes: message, arguments,
exception and stack trace. It wraps any other formatter (models/logs.py's JSON or text one), so a
different output format keeps the masking; uvicorn's loggers propagate to that same handler.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from models.idcard import mask_id
from models.phone import mask_phone

# Full-width digits, plus and minus signs, parentheses and the ideographic space, as ASCII.
_FOLD = str.maketrans({**{chr(0xFF10 + d): str(d) for d in range(10)},
                       "＋": "+", "－": "-", "（": "(", "）": ")", "\u3000": " ", "Ｘ": "X", "ｘ": "x"})
_SEP = r"[ \-\u00a0]?"
_ID_RE = re.compile(rf"(?<![0-9A-Za-z.])\d(?:{_SEP}\d){{16}}{_SEP}[\dXx](?![0-9A-Za-z])")
_MOBILE_RE = re.compile(
    rf"(?<![\d+])(?P<cc>\(?(?:\+|00)\s?86\)?[ \-]?|86[ \-])?(?P<n>1[3-9]\d(?:{_SEP}\d){{8}})(?!\d)")
_INTL_RE = re.compile(rf"(?<![\d+.])(?<!\d[ \-])(?:\+|00)\(?\d{{1,3}}\)?(?:{_SEP}\(?\d\)?){{6,13}}(?!\d)")
_LANDLINE_RE = re.compile(r"(?<!\d)(?:\(0\d{2,3}\)\s?|0\d{2,3}[ \-])\d{3,4}[ \-]?\d{4}(?!\d)")
_LONG_DIGITS_RE = re.compile(rf"(?<![0-9A-Za-z.])\d(?:{_SEP}\d){{14,22}}(?![0-9A-Za-z])")
_OTP_RE = re.compile(r"(验证码|code)([^0-9]{0,6})(\d{4,8})", re.IGNORECASE)
_DIGITS = re.compile(r"[^\dXx+]")
# Every pattern above needs four digits with at most three separators between one and the next
# (a one-time code, the shortest, has four in a row): a text without such a run has nothing to mask,
# which one search tells (a menu's "1. … 2. …" no longer runs the six patterns).
_FOUR_DIGITS_RE = re.compile(r"\d(?:[\s\-()+]{0,3}\d){3}")
_ANY_DIGIT_RE = re.compile(r"\d")


def _digits(text: str) -> str:
    return _DIGITS.sub("", text)


def _mask_mobile(m: re.Match[str]) -> str:
    number = _digits(m.group("n"))
    return ("+86" if m.group("cc") else "") + number[:3] + "****" + number[-4:]


def _mask_international(m: re.Match[str]) -> str:
    digits = _digits(m.group(0)).lstrip("+")
    if m.group(0).startswith("00"):
        digits = digits[2:]
    return mask_phone("+" + digits)


def _mask_run(m: re.Match[str]) -> str:
    digits = _digits(m.group(0))
    return digits[:4] + "*" * (len(digits) - 8) + digits[-4:]


def redact(text: str) -> str:
    """`text` with every ID number, phone number, card number and one-time code masked."""
    if not text:
        return text
    folded = text.translate(_FOLD)
    if _FOUR_DIGITS_RE.search(folded) is None:
        return folded if _ANY_DIGIT_RE.search(folded) else text
    folded = _ID_RE.sub(lambda m: mask_id(_digits(m.group(0)).upper()), folded)
    folded = _MOBILE_RE.sub(_mask_mobile, folded)
    folded = _LONG_DIGITS_RE.sub(_mask_run, folded)
    folded = _INTL_RE.sub(_mask_international, folded)
    folded = _LANDLINE_RE.sub(lambda m: m.group(0)[:-4].rstrip()[:4] + "****" + m.group(0)[-4:], folded)
    folded = _OTP_RE.sub(lambda m: m.group(1) + m.group(2) + "******", folded)
    return folded


def redact_value(value: Any) -> Any:
    """`redact` through JSON-like data (audit details): strings masked, structure kept."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


class RedactingFormatter(logging.Formatter):
    """Formats with `inner` (any logging.Formatter) and masks what it writes: the message with
    its arguments, the exception and the stack trace, whatever the inner format is."""

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        # The parts are masked before the inner formatter sees them (a JSON formatter escapes a
        # traceback's line breaks as "\n", and a number right after one would no longer stand
        # apart), and the whole line once more after (extra fields, the formatter's own text).
        # The traceback's text is cached on the record masked, so no handler reuses a clear copy.
        masked = logging.makeLogRecord(record.__dict__)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: show the template, masked
            message = str(record.msg)
        masked.msg, masked.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.inner.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = masked.exc_text = redact(record.exc_text)
        if record.stack_info:
            masked.stack_info = redact(record.stack_info)
        return redact(self.inner.format(masked))


def install_redaction(handler: logging.Handler) -> None:
    """Wrap the handler's formatter (or the default one) in a RedactingFormatter, once."""
    if not isinstance(handler.formatter, RedactingFormatter):
        handler.setFormatter(RedactingFormatter(handler.formatter))


def configure_logging(level: int = logging.INFO) -> None:
    """Root logging with redaction on every handler."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    root.setLevel(level)
    for handler in root.handlers:
        install_redaction(handler)
