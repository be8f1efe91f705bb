"""Twilio's webhooks, both routes, through the one signature check: HMAC-SHA1 with the auth token
and HMAC-SHA256 named in `X-Twilio-Webhooks-Signature-Settings`, signed by the fake exactly as
Twilio signs them; anything else refused before it is handled."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from twilio.request_validator import SIGNATURE_HEADER, SIGNATURE_SETTINGS_HEADER, RequestValidator

from outreach.dispatcher import Dispatcher
from outreach.providers.twilio import TwilioProvider
from tests.fakes.fake_twilio import FakeTwilio
from tests.outreach.outreach_helpers import add_person, fake_sleep, queue, row
from web.routes import twilio_sms, twilio_status

from .support import AUTH_TOKEN, PUBLIC, ScriptedEngine

SHARED_KEY = ("webhooks_sharedkey_01", "shared-secret-for-webhooks")
INBOUND = {"MessageSid": "SM" + "1" * 32, "SmsSid": "SM" + "1" * 32, "AccountSid": "AC" + "0" * 32,
           "From": "+8613812345678", "To": "+8610655000", "Body": "你好", "NumMedia": "0", "NumSegments": "1",
           "SmsStatus": "received", "ApiVersion": "2010-04-01"}
RECEIPT = {"MessageSid": "SM" + "2" * 32, "SmsSid": "SM" + "2" * 32, "AccountSid": "AC" + "0" * 32,
           "MessageStatus": "delivered", "SmsStatus": "delivered", "From": "+8610655000", "To": "+8613812345678",
           "ApiVersion": "2010-04-01"}
ROUTES = [("/webhooks/twilio/sms", INBOUND, 200), ("/webhooks/twilio/status", RECEIPT, 204)]
# (name, the fake's signing: None for the auth token with SHA-1, else a shared key with SHA-256)
SIGNINGS = [("sha1-auth-token", None), ("sha256-shared-key", SHARED_KEY)]


@pytest.fixture
def app(channel_settings: Any, clock: Any, sqlite_engine: Any) -> FastAPI:
    settings = channel_settings.model_copy(update={"twilio_webhook_keys": f"{SHARED_KEY[0]}={SHARED_KEY[1]}"})
    app = FastAPI()
    app.include_router(twilio_sms.router)
    app.include_router(twilio_status.router)
    app.state.settings = settings
    app.state.clock = clock
    app.state.engine = sqlite_engine
    app.state.bot_engine = ScriptedEngine()
    return app


def fake(signing: tuple[str, str] | None) -> FakeTwilio:
    return FakeTwilio("AC" + "0" * 32, AUTH_TOKEN, signing_key=signing)


async def post(app: FastAPI, path: str, params: dict[str, str], headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        return await client.post(path, data=params, headers=headers)


@pytest.mark.parametrize(("path", "params", "status"), ROUTES, ids=["sms", "status"])
@pytest.mark.parametrize(("name", "signing"), SIGNINGS, ids=[s[0] for s in SIGNINGS])
async def test_a_request_signed_as_twilio_signs_it_is_accepted_on_both_routes(
        app: FastAPI, path: str, params: dict[str, str], status: int, name: str, signing: Any) -> None:
    """SHA-1 with the auth token (no settings header) and SHA-256 with the shared key the
    settings header names are both Twilio's signatures: the request is handled."""
    tw = fake(signing)
    headers = tw.webhook_headers(PUBLIC + path, params)
    assert (SIGNATURE_SETTINGS_HEADER in headers) == (signing is not None)
    response = await post(app, path, params, headers)
    assert response.status_code == status, response.text
    if path.endswith("/sms"):
        assert [i.text for i in app.state.bot_engine.seen] == ["你好"]


def _forgeries(path: str, params: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
    url = PUBLIC + path
    sha256 = RequestValidator(SHARED_KEY[1]).compute_signature(url, params, "HMAC_SHA256")
    settings = f"key={SHARED_KEY[0]},algorithm=HMAC_SHA256"
    return [
        ("sha256 signature without its settings header (checked as sha1)", {SIGNATURE_HEADER: sha256}),
        ("sha1 signature under a settings header naming sha256",
         {SIGNATURE_HEADER: RequestValidator(AUTH_TOKEN).compute_signature(url, params),
          SIGNATURE_SETTINGS_HEADER: settings}),
        ("sha256 with a key we do not hold",
         {SIGNATURE_HEADER: RequestValidator("not-our-key").compute_signature(url, params, "HMAC_SHA256"),
          SIGNATURE_SETTINGS_HEADER: "key=webhooks_sharedkey_99,algorithm=HMAC_SHA256"}),
        ("an algorithm twilio does not know",
         {SIGNATURE_HEADER: sha256, SIGNATURE_SETTINGS_HEADER: f"key={SHARED_KEY[0]},algorithm=HMAC_MD5"}),
        ("signed for another URL",
         {SIGNATURE_HEADER: RequestValidator(AUTH_TOKEN).compute_signature("https://evil.example" + path, params)}),
        ("no signature at all", {}),
    ]


@pytest.mark.parametrize(("path", "params", "status"), ROUTES, ids=["sms", "status"])
async def test_a_forged_request_is_refused_on_both_routes_and_nothing_is_handled(
        app: FastAPI, sqlite_engine: Any, path: str, params: dict[str, str], status: int) -> None:
    """Every way of getting the signature wrong is a 403; the engine sees nothing and no receipt is kept."""
    from sqlmodel import Session, select

    from models.outbox import EarlyReceipt

    for name, headers in _forgeries(path, params):
        response = await post(app, path, params, headers)
        assert response.status_code == 403, name
    assert app.state.bot_engine.seen == []
    with Session(sqlite_engine) as s:
        assert s.exec(select(EarlyReceipt)).all() == []


async def test_a_field_changed_after_signing_with_sha256_is_refused(app: FastAPI) -> None:
    """SHA-256 covers every field, as SHA-1 does: a changed Body breaks the signature."""
    tw = fake(SHARED_KEY)
    headers = tw.webhook_headers(PUBLIC + "/webhooks/twilio/sms", INBOUND)
    response = await post(app, "/webhooks/twilio/sms", {**INBOUND, "Body": "退订"}, headers)
    assert response.status_code == 403 and app.state.bot_engine.seen == []


@pytest.mark.parametrize(("name", "signing"), SIGNINGS, ids=[s[0] for s in SIGNINGS])
async def test_a_delivery_receipt_signed_either_way_marks_the_message_delivered(
        app: FastAPI, sqlite_engine: Any, clock: Any, name: str, signing: Any) -> None:
    """An SMS sent through the fake Twilio; its receipts, signed with SHA-1 or SHA-256 as Twilio
    would, reach the status route and the row ends delivered (a SHA-256 receipt is not lost)."""
    settings = app.state.settings
    b, _ = add_person(sqlite_engine, sms="+8613800000011")
    oid = queue(sqlite_engine, clock, channel="sms", address="+8613800000011", beneficiary_id=b)
    async with fake(signing) as tw:
        provider = TwilioProvider(tw.account_sid, tw.auth_token, "+8610655000", api_base=tw.base_url,
                                  public_base_url=settings.public_base_url)
        try:
            await Dispatcher(sqlite_engine, {"sms": provider}, clock, settings, sleep=fake_sleep(clock)).run_once()
        finally:
            await provider.close()
        callbacks = tw.callbacks_for(row(sqlite_engine, oid).provider_message_id)
    codes = [(await post(app, "/webhooks/twilio/status", cb.params, cb.headers)).status_code for cb in callbacks]
    assert codes == [204, 204, 204]
    assert row(sqlite_engine, oid).status == "delivered"


@pytest.mark.parametrize(("name", "signing"), SIGNINGS, ids=[s[0] for s in SIGNINGS])
async def test_the_service_app_takes_twilio_signed_webhooks_either_way_and_refuses_a_forgery(
        db_engine: Any, channel_settings: Any, clock: Any, name: str, signing: Any) -> None:
    """Wired as `nuanxin run` and `nuanxin web` wire it (web.app.create_app), on SQLite and
    PostgreSQL: an inbound SMS and a delivery receipt signed by Twilio (SHA-1 with the auth token,
    or SHA-256 with a shared key of TWILIO_WEBHOOK_KEYS) are handled; the same receipt with one
    field changed is refused and leaves the row as it was."""
    from web.app import create_app

    settings = channel_settings.model_copy(update={"twilio_webhook_keys": f"{SHARED_KEY[0]}={SHARED_KEY[1]}"})
    engine = ScriptedEngine()
    app = create_app(settings, db_engine, clock=clock, bot_engine=engine)
    b, _ = add_person(db_engine, sms="+8613800000012")
    oid = queue(db_engine, clock, channel="sms", address="+8613800000012", beneficiary_id=b)
    async with fake(signing) as tw:
        provider = TwilioProvider(tw.account_sid, tw.auth_token, "+8610655000", api_base=tw.base_url,
                                  public_base_url=settings.public_base_url)
        try:
            await Dispatcher(db_engine, {"sms": provider}, clock, settings, sleep=fake_sleep(clock)).run_once()
        finally:
            await provider.close()
        sid = row(db_engine, oid).provider_message_id
        callbacks = tw.callbacks_for(sid)
        inbound = {**INBOUND, "From": "+8613800000012"}
        inbound_headers = tw.webhook_headers(PUBLIC + "/webhooks/twilio/sms", inbound)
    assert row(db_engine, oid).status == "sent"
    forged = {**callbacks[-1].params, "MessageStatus": "undelivered", "ErrorCode": "21610"}
    assert (await post(app, "/webhooks/twilio/status", forged, callbacks[-1].headers)).status_code == 403
    assert row(db_engine, oid).status == "sent"  # the forged opt-out changed nothing
    codes = [(await post(app, "/webhooks/twilio/status", cb.params, cb.headers)).status_code for cb in callbacks]
    assert codes == [204, 204, 204] and row(db_engine, oid).status == "delivered"
    reply = await post(app, "/webhooks/twilio/sms", inbound, inbound_headers)
    assert reply.status_code == 200 and "<Message>" in reply.text
    assert [i.text for i in engine.seen] == ["你好"]
