"""Keeping personal data out of logs.

Code logs masked forms on purpose; `RedactingFilter` is the safety net on every
handler: any 18-character ID-card number or phone number that slipped into a log
line is masked before it is written.
"""

from __future__ import annotations

import logging
import re

from models.idcard import mask_id
from models.phone import mask_phone

_ID_RE = re.compile(r"(?<![0-9A-Za-z])(\d{17}[\dXx])(?![0-9A-Za-z])")
_E164_RE = re.compile(r"\+\d{10,15}\b")
_CN_MOBILE_RE = re.compile(r"(?<!\d)(1[3-9]\d{9})(?!\d)")
_OTP_RE = re.compile(r"(验证码|code)([^0-9]{0,6})(\d{4,8})", re.IGNORECASE)


def redact(text: str) -> str:
    text = _ID_RE.sub(lambda m: mask_id(m.group(1)), text)
    text = _E164_RE.sub(lambda m: mask_phone(m.group(0)), text)
    text = _CN_MOBILE_RE.sub(lambda m: m.group(1)[:3] + "****" + m.group(1)[-4:], text)
    text = _OTP_RE.sub(lambda m: m.group(1) + m.group(2) + "******", text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging to report
            return True
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


def configure_logging(level: int = logging.INFO) -> None:
    """Root logging with the redaction filter on every handler."""
    root = logging.getLogger()
    if not root.handlers:
        handler: logging.Handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level)
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
