"""The one check of Twilio's webhooks, as a FastAPI dependency: `Depends(signed_twilio_form)`.

Used by `/webhooks/twilio/sms` (inbound SMS) and `/webhooks/twilio/status` (delivery receipts).
In order, each refusing before anything is handed on:
1. size: a body far larger than any Twilio request → 413;
2. signature: `X-Twilio-Signature` must be Twilio's signature, computed by twilio's own
   `RequestValidator`, over the URL Twilio was given (`settings.public_base_url` + the path and
   query it called) and every form field → else 403. The algorithm is the one named in the
   `X-Twilio-Webhooks-Signature-Settings` header (`twilio.request_validator.SIGNATURE_SETTINGS_HEADER`:
   `key=<key id>,algorithm=HMAC_SHA256`), HMAC-SHA1 without it; the key is the shared key that
   header names when it is one of `TWILIO_WEBHOOK_KEYS`, else the account's auth token. With
   no auth token configured every request is refused: an unset secret never means "accept all".
The route gets the form's fields as a dict.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import HTTPException, Request
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

log = logging.getLogger("nuanxin.twilio_webhooks")

MAX_REQUEST_BYTES = 64 * 1024  # Twilio's forms are a few KB, even an MMS with 10 media URLs


def public_url(settings: Any, request: Request) -> str:
    """The URL Twilio signed: our public base plus the path (and query, if any) it called."""
    url = settings.public_base_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    return url


def signing_key(settings: Any, signature_settings: str) -> str:
    """The shared key the settings header names, when we hold it; else the auth token."""
    for part in signature_settings.split(","):
        name, _, value = part.partition("=")
        if name.strip() == "key" and value.strip() in settings.webhook_keys:
            return str(settings.webhook_keys[value.strip()])
    return str(getattr(settings, "twilio_auth_token", "") or "")


async def signed_twilio_form(request: Request) -> dict[str, str]:
    """The form of a request Twilio signed; 413 or 403 (nothing read further) otherwise."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        raise HTTPException(413, "request too large")
    if len(await request.body()) > MAX_REQUEST_BYTES:
        raise HTTPException(413, "request too large")
    settings = request.app.state.settings
    form = await request.form()
    signature = request.headers.get(SIGNATURE_HEADER, "")
    signature_settings = request.headers.get(SIGNATURE_SETTINGS_HEADER, "")
    key = signing_key(settings, signature_settings) if settings.twilio_auth_token else ""
    if not key or not signature or not RequestValidator(key).validate(
            public_url(settings, request), form, signature, get_signature_algorithm(signature_settings)):
        log.warning("twilio webhook %s: bad or missing signature, refused", request.url.path)
        raise HTTPException(403, "invalid signature")
    return {k: v for k, v in form.multi_items() if isinstance(v, str)}
