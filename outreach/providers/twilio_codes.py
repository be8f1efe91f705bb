"""Twilio's error codes mapped onto ours, and the path of its delivery receipts.

Apart from outreach/providers/twilio.py (the client) so that what receives receipts and webhooks
needs neither the `twilio` client nor aiohttp: a web process answers before those are imported.
"""

from __future__ import annotations

from outreach.providers.base import (
    AddressInvalid,
    ChannelMisconfigured,
    ContactStopped,
    Rejected,
    SendError,
    TemporaryFailure,
    Throttled,
)

STATUS_CALLBACK_PATH = "/webhooks/twilio/status"

# Twilio error codes, by what we do about them.
STOPPED_CODES = {21610}  # unsubscribed (STOP / 退订)
INVALID_CODES = {21211, 21212, 21214, 21217, 21401, 21407, 21408, 21612, 21614, 30005, 30006}
REJECTED_CODES = {21617, 21602, 21619, 30034, 30007}
MISCONFIGURED_CODES = {20003, 20404, 21606, 21603, 21659, 21660, 21661, 30032}
THROTTLED_CODES = {20429, 14107, 30022}
TEMPORARY_CODES = {30001, 30003, 30008, 30009, 30010, 30017, 30018, 30027, 30028}


def classify_code(code: int | None, status: int = 400, detail: str = "", retry_after: float = 1.0) -> SendError:
    """Twilio error code (API error or delivery-receipt ErrorCode) → our error class."""
    if code in STOPPED_CODES:
        return ContactStopped("opted_out", detail, code)
    if code in THROTTLED_CODES or status == 429:
        return Throttled(retry_after, detail, code or 429)
    if code in MISCONFIGURED_CODES or status in (401, 403):
        return ChannelMisconfigured(detail, code or status)
    if code in REJECTED_CODES and code not in INVALID_CODES:
        return Rejected(detail, code)
    if code in INVALID_CODES:
        return AddressInvalid(detail, code)
    if code in TEMPORARY_CODES or status >= 500:
        return TemporaryFailure(detail, code or status)
    if status == 404:
        return ChannelMisconfigured(detail, code or status)
    return Rejected(detail, code or status)
