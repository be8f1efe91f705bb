"""Delivery receipts from Twilio: signed, forward-only, and they mark contacts like send errors do."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from outreach_helpers import add_person, contact, events, fake_sleep, queue, row, rows
from sqlmodel import select

from models.db import session_scope
from models.staff import AuditLog
from outreach.dispatcher import Dispatcher
from outreach.providers.twilio import TwilioProvider
from settings import load_settings
from tests.fakes.fake_twilio import FakeTwilio
from tests.fakes.scripted import ScriptedProvider
from tests.fakes.waiting import until
from web.routes.twilio_status import router

PUBLIC = "https://nuanxin.example.org"
TOKEN = "status-test-token"


@pytest.fixture
def tw_settings(tmp_path):
    return load_settings(data_dir=tmp_path / "var", id_hash_key="k", session_secret="s", public_base_url=PUBLIC,
                         twilio_account_sid="AC" + "1" * 32, twilio_auth_token=TOKEN,
                         twilio_from_number="+15005550006")


def app_for(engine, settings, clock):
    app = FastAPI()
    app.include_router(router)
    app.state.engine = engine
    app.state.settings = settings
    app.state.clock = clock
    return app


async def send_through_fake(engine, clock, settings, fake, *addresses, tg=None):
    provider = TwilioProvider(fake.account_sid, fake.auth_token, "+15005550006", api_base=fake.base_url,
                              public_base_url=settings.public_base_url)
    providers = {"sms": provider}
    if tg is not None:
        providers["telegram"] = tg
    d = Dispatcher(engine, providers, clock, settings, sleep=fake_sleep(clock))
    try:
        await d.run_once()
    finally:
        await provider.close()


async def post_all(app, callbacks):
    codes = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC) as client:
        for cb in callbacks:
            assert cb.url == PUBLIC + "/webhooks/twilio/status"
            r = await client.post("/webhooks/twilio/status", data=cb.params,
                                  headers={"X-Twilio-Signature": cb.signature})
            codes.append(r.status_code)
    return codes


async def test_delivered_receipt_marks_the_row_delivered(db_engine, clock, tw_settings):
    """queued → sent → delivered receipts, signed by the fake exactly as Twilio signs, end with
    the row delivered and delivered_at set; the status callback URL is our public one."""
    b, c = add_person(db_engine, sms="+8613800000001")
    oid = queue(db_engine, clock, channel="sms", address="+8613800000001", beneficiary_id=b)
    async with FakeTwilio(tw_settings.twilio_account_sid, TOKEN) as fake:
        await send_through_fake(db_engine, clock, tw_settings, fake)
        sid = row(db_engine, oid).provider_message_id
        assert fake.requests[0]["StatusCallback"] == PUBLIC + "/webhooks/twilio/status"
        codes = await post_all(app_for(db_engine, tw_settings, clock), fake.callbacks_for(sid))
    assert codes == [204, 204, 204]
    r = row(db_engine, oid)
    assert r.status == "delivered" and r.delivered_at == clock.now()
    assert [t for _, t, _ in events(db_engine, oid)][-2:] == ["sent", "delivered"]


async def test_forged_or_unsigned_receipt_is_refused_and_changes_nothing(sqlite_engine, clock, tw_settings):
    """A wrong signature, a signature over other fields, or none at all: 403, row untouched."""
    b, c = add_person(sqlite_engine, sms="+8613800000002")
    oid = queue(sqlite_engine, clock, channel="sms", address="+8613800000002", beneficiary_id=b)
    async with FakeTwilio(tw_settings.twilio_account_sid, TOKEN) as fake:
        await send_through_fake(sqlite_engine, clock, tw_settings, fake)
        sid = row(sqlite_engine, oid).provider_message_id
        good = fake.callbacks_for(sid)[-1]
    app = app_for(sqlite_engine, tw_settings, clock)
    forged = dict(good.params, MessageStatus="undelivered", ErrorCode="21610")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC) as client:
        r1 = await client.post("/webhooks/twilio/status", data=good.params)
        r2 = await client.post("/webhooks/twilio/status", data=forged, headers={"X-Twilio-Signature": good.signature})
        other = FakeTwilio(tw_settings.twilio_account_sid, "another-token").sign(good.url, good.params)
        r3 = await client.post("/webhooks/twilio/status", data=good.params, headers={"X-Twilio-Signature": other})
    assert (r1.status_code, r2.status_code, r3.status_code) == (403, 403, 403)
    assert row(sqlite_engine, oid).status == "sent"
    assert contact(sqlite_engine, c["sms"]).opted_out_at is None


async def test_late_sent_receipt_does_not_undo_delivered(sqlite_engine, clock, tw_settings):
    """Receipts can arrive out of order: the row only moves forward."""
    b, c = add_person(sqlite_engine, sms="+8613800000003")
    oid = queue(sqlite_engine, clock, channel="sms", address="+8613800000003", beneficiary_id=b)
    async with FakeTwilio(tw_settings.twilio_account_sid, TOKEN) as fake:
        await send_through_fake(sqlite_engine, clock, tw_settings, fake)
        cbs = fake.callbacks_for(row(sqlite_engine, oid).provider_message_id)
    app = app_for(sqlite_engine, tw_settings, clock)
    await post_all(app, [cbs[2], cbs[1], cbs[0]])
    assert row(sqlite_engine, oid).status == "delivered"


async def test_undelivered_unsubscribed_opts_out_and_falls_back_to_telegram(db_engine, clock, tw_settings):
    """An 'undelivered' receipt with ErrorCode 21610 opts the contact out (audited), fails the
    row and queues the message by Telegram."""
    b, c = add_person(db_engine, sms="+8613800000004", telegram="777")
    oid = queue(db_engine, clock, channel="sms", address="+8613800000004", beneficiary_id=b)
    async with FakeTwilio(tw_settings.twilio_account_sid, TOKEN) as fake:
        fake.behave("+8613800000004", receipt="undelivered", receipt_error=21610)
        await send_through_fake(db_engine, clock, tw_settings, fake, tg=ScriptedProvider("telegram", clock=clock))
        cbs = fake.callbacks_for(row(db_engine, oid).provider_message_id)
    assert cbs[-1].params["ErrorCode"] == "21610"
    await post_all(app_for(db_engine, tw_settings, clock), cbs)
    assert row(db_engine, oid).status == "failed"
    assert contact(db_engine, c["sms"]).opted_out_at == clock.now()
    assert [(r.channel, r.address) for r in rows(db_engine)][-1] == ("telegram", "777")
    with session_scope(db_engine) as s:
        assert len(s.exec(select(AuditLog).where(AuditLog.action == "contact.opt_out")).all()) == 1


async def test_landline_marks_invalid_and_unreachable_handset_is_retried_later(sqlite_engine, clock, tw_settings):
    """30006 (landline / unreachable carrier) marks the number invalid and fails the row;
    30003 (handset unreachable) leaves the number alone and puts the row back in the queue."""
    b1, c1 = add_person(sqlite_engine, sms="+8613800000005")
    b2, c2 = add_person(sqlite_engine, sms="+8613800000006")
    o1 = queue(sqlite_engine, clock, channel="sms", address="+8613800000005", beneficiary_id=b1)
    o2 = queue(sqlite_engine, clock, channel="sms", address="+8613800000006", beneficiary_id=b2)
    async with FakeTwilio(tw_settings.twilio_account_sid, TOKEN) as fake:
        fake.behave("+8613800000005", receipt="undelivered", receipt_error=30006)
        fake.behave("+8613800000006", receipt="undelivered", receipt_error=30003)
        await send_through_fake(sqlite_engine, clock, tw_settings, fake)
        cbs = [cb for o in (o1, o2) for cb in fake.callbacks_for(row(sqlite_engine, o).provider_message_id)]
    await post_all(app_for(sqlite_engine, tw_settings, clock), cbs)
    assert row(sqlite_engine, o1).status == "failed" and contact(sqlite_engine, c1["sms"]).invalid_at is not None
    r2 = row(sqlite_engine, o2)
    assert r2.status == "queued" and r2.next_attempt_at > clock.now() and r2.error_code == "30003"
    assert contact(sqlite_engine, c2["sms"]).reachable


async def test_fake_fires_signed_callbacks_over_http_to_a_live_server(sqlite_engine, clock, tw_settings):
    """With auto callbacks the fake POSTs receipts itself; a real uvicorn server accepts them."""
    import asyncio
    import socket

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    local = tw_settings.model_copy(update={"public_base_url": f"http://127.0.0.1:{port}"})
    server = uvicorn.Server(uvicorn.Config(app_for(sqlite_engine, local, clock), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    serve = asyncio.create_task(server.serve())
    await until(lambda: server.started, "the webhook server to start")
    try:
        b, c = add_person(sqlite_engine, sms="+8613800000007")
        oid = queue(sqlite_engine, clock, channel="sms", address="+8613800000007", beneficiary_id=b)
        async with FakeTwilio(tw_settings.twilio_account_sid, TOKEN, auto_callbacks=True) as fake:
            await send_through_fake(sqlite_engine, clock, local, fake)
            await until(lambda: row(sqlite_engine, oid).status == "delivered", "the delivery receipt written")
    finally:
        server.should_exit = True
        await serve
    assert row(sqlite_engine, oid).status == "delivered"
