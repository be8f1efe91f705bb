"""The Twilio inbound-SMS webhook: signed requests in, TwiML out, forgeries refused."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from bot.channels.base import Choice, Reply

from .support import PUBLIC, ScriptedEngine, SmsClient, asgi_client, make_app, sign

# Captured-looking inbound payloads, field for field as Twilio posts them.
BASE = {
    "ToCountry": "CN", "ToState": "", "SmsMessageSid": "SM0a1b2c3d4e5f60718293a4b5c6d7e8f9",
    "NumMedia": "0", "ToCity": "", "FromZip": "", "SmsSid": "SM0a1b2c3d4e5f60718293a4b5c6d7e8f9",
    "FromState": "", "SmsStatus": "received", "FromCity": "", "FromCountry": "CN", "To": "+8610655000",
    "ToZip": "", "NumSegments": "1", "MessageSid": "SM0a1b2c3d4e5f60718293a4b5c6d7e8f9",
    "AccountSid": "AC" + "0" * 32, "From": "+8613812345678", "ApiVersion": "2010-04-01",
}


def payload(**fields: str) -> dict[str, str]:
    return {**BASE, **fields}


async def _app(channel_settings: Any, clock: Any, engine: Any) -> Any:
    app = make_app({"settings": channel_settings, "clock": clock, "bot_engine": engine})
    return SmsClient(await asgi_client(app))


def messages_of(twiml: str) -> list[str]:
    root = ET.fromstring(twiml.encode())
    assert root.tag == "Response"
    return [m.text or "" for m in root.findall("Message")]


SIGNED_CASES = [
    # (name, form, what the engine must see as text)
    ("chinese text", payload(Body="你好，我想问社保接续"), "你好，我想问社保接续"),
    ("digit reply", payload(Body="1"), "1"),
    ("opt-out TD", payload(Body="TD"), "TD"),
    ("opt-out 退订", payload(Body="退订"), "退订"),
    ("STOP with emoji", payload(Body="STOP 🙏"), "STOP 🙏"),
    ("control characters", payload(Body="人工\x00\x1b"), "人工"),
    ("mms with caption", payload(Body="材料", NumMedia="1", MessageSid="MM9",
                                 MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/AC0/Messages/MM9/Media/ME1",
                                 MediaContentType0="image/jpeg"), "材料"),
]


@pytest.mark.parametrize(("name", "form", "text"), SIGNED_CASES, ids=[c[0] for c in SIGNED_CASES])
async def test_signed_message_reaches_the_engine_and_is_answered_in_twiml(
        channel_settings: Any, clock: Any, name: str, form: dict[str, str], text: str) -> None:
    """A correctly signed message goes to the engine as sms text; the reply comes back as TwiML."""
    engine = ScriptedEngine()
    client = await _app(channel_settings, clock, engine)
    response = await client.post(form)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    [inbound] = engine.seen
    assert (inbound.channel, inbound.address, inbound.text) == ("sms", form["From"], text)
    assert inbound.provider_message_id == form["MessageSid"]
    assert inbound.received_at == clock.now()
    assert messages_of(response.text) == [f"收到：{text}\n1 申请社保接续\n2 返回主菜单"]


FORGED = [
    ("unsigned", None, {}),
    ("wrong token", sign(PUBLIC + "/webhooks/twilio/sms", payload(Body="hi"), token="not-our-token"), {}),
    ("signed for another URL", sign("https://evil.example/webhooks/twilio/sms", payload(Body="hi")), {}),
    ("garbage", "bm90IGEgc2lnbmF0dXJl", {}),
]


@pytest.mark.parametrize(("name", "signature", "headers"), FORGED, ids=[f[0] for f in FORGED])
async def test_unsigned_or_forged_request_is_refused_and_nothing_is_handled(
        channel_settings: Any, clock: Any, name: str, signature: str | None, headers: dict[str, str]) -> None:
    """Without Twilio's valid signature: 403, and the engine never sees the message."""
    engine = ScriptedEngine()
    client = await _app(channel_settings, clock, engine)
    response = await client.post(payload(Body="hi"), signature=signature, headers=headers)
    assert response.status_code == 403
    assert engine.seen == []


async def test_a_body_changed_after_signing_is_refused(channel_settings: Any, clock: Any) -> None:
    """The signature covers every field: altering the Body breaks it."""
    engine = ScriptedEngine()
    client = await _app(channel_settings, clock, engine)
    signature = sign(PUBLIC + "/webhooks/twilio/sms", payload(Body="1"))
    response = await client.post(payload(Body="退订"), signature=signature)
    assert response.status_code == 403
    assert engine.seen == []


async def test_without_an_auth_token_every_request_is_refused(channel_settings: Any, clock: Any) -> None:
    """An unconfigured token never means 'accept anything'."""
    engine = ScriptedEngine()
    unset = channel_settings.model_copy(update={"twilio_auth_token": ""})
    client = await _app(unset, clock, engine)
    response = await client.post(payload(Body="hi"), signature=sign(PUBLIC + "/webhooks/twilio/sms",
                                                                       payload(Body="hi"), token=""))
    assert response.status_code == 403
    assert engine.seen == []


async def test_sha256_signature_named_in_the_settings_header_is_accepted(channel_settings: Any, clock: Any) -> None:
    """Twilio's HMAC-SHA256 webhook signatures validate when the header names the algorithm."""
    from twilio.request_validator import RequestValidator

    engine = ScriptedEngine()
    client = await _app(channel_settings, clock, engine)
    form = payload(Body="你好")
    signature = RequestValidator("twilio-test-auth-token").compute_signature(
        PUBLIC + "/webhooks/twilio/sms", form, algorithm="HMAC_SHA256")
    response = await client.post(form, signature=signature, headers={
        "X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_x,algorithm=HMAC_SHA256"})
    assert response.status_code == 200
    assert len(engine.seen) == 1


MALFORMED = [
    ("missing From", {k: v for k, v in payload(Body="hi").items() if k != "From"}, 400, "From"),
    ("short-code From", payload(From="10086", Body="hi"), 400, "E.164"),
    ("alphanumeric From", payload(From="NUANXIN", Body="hi"), 400, "E.164"),
    ("huge Body", payload(Body="长" * 2000), 400, "1600"),
]


@pytest.mark.parametrize(("name", "form", "status", "reason"), MALFORMED, ids=[m[0] for m in MALFORMED])
async def test_malformed_signed_request_gets_a_clear_400_and_no_handling(
        channel_settings: Any, clock: Any, name: str, form: dict[str, str], status: int, reason: str) -> None:
    """Signed but unusable fields: 400 naming the problem; the engine is not called."""
    engine = ScriptedEngine()
    client = await _app(channel_settings, clock, engine)
    response = await client.post(form)
    assert response.status_code == status
    assert reason in response.text
    assert engine.seen == []


async def test_an_oversized_request_is_refused_before_parsing(channel_settings: Any, clock: Any) -> None:
    """A body far beyond any Twilio request is refused with 413 before its signature is even read."""
    engine = ScriptedEngine()
    client = await _app(channel_settings, clock, engine)
    response = await client.post(payload(Body="x" * 100_000))
    assert response.status_code == 413
    assert engine.seen == []


async def test_reply_text_with_markup_characters_is_escaped_in_twiml(channel_settings: Any, clock: Any) -> None:
    """Whatever the engine says arrives word for word: TwiML is well-formed XML."""
    engine = ScriptedEngine(lambda i: [Reply("费用 <100元> & 无需缴费 \"免费\"")])
    client = await _app(channel_settings, clock, engine)
    response = await client.post(payload(Body="多少钱"))
    assert messages_of(response.text) == ["费用 <100元> & 无需缴费 \"免费\""]


async def test_long_reply_leaves_as_several_messages_of_at_most_two_segments(
        channel_settings: Any, clock: Any) -> None:
    """A long checklist becomes several <Message>s, each within two segments."""
    from outreach.sms_text import sms_length

    text = "\n".join(f"{i}. 请带上本人身份证原件和复印件，社保卡，以及单位出具的证明材料。" for i in range(1, 9))
    engine = ScriptedEngine(lambda i: [Reply(text, choices=(Choice("好的", "ok"),))])
    client = await _app(channel_settings, clock, engine)
    response = await client.post(payload(Body="材料"))
    messages = messages_of(response.text)
    assert len(messages) >= 2
    assert all(sms_length(m).segments <= 2 for m in messages)
    assert messages[-1].endswith("1 好的")


async def test_when_the_engine_fails_the_person_is_asked_to_send_again(channel_settings: Any, clock: Any) -> None:
    """An engine error is not silence: the answer asks the person to try again."""
    engine = ScriptedEngine(fail=True)
    client = await _app(channel_settings, clock, engine)
    response = await client.post(payload(Body="你好"))
    assert response.status_code == 200
    [message] = messages_of(response.text)
    assert "稍后再发" in message


async def test_no_reply_from_the_engine_gives_an_empty_response(channel_settings: Any, clock: Any) -> None:
    """If the engine has nothing to say, Twilio is told to send nothing."""
    engine = ScriptedEngine(lambda i: [])
    client = await _app(channel_settings, clock, engine)
    response = await client.post(payload(Body="STOP"))
    assert response.status_code == 200
    assert messages_of(response.text) == []


# --- end to end with the real engine -----------------------------------------------------------
@pytest.fixture
def notifier() -> Any:
    from .e2e import CodeNotifier

    return CodeNotifier()


@pytest.fixture
def real_engine(db_engine: Any, channel_settings: Any, clock: Any, notifier: Any) -> Any:
    from bot.engine import Engine

    return Engine(db_engine, channel_settings, clock, notifier=notifier)


@pytest.fixture
def roll(db_engine: Any, channel_settings: Any) -> Any:
    from .e2e import seed_roll

    return seed_roll(db_engine, channel_settings)


def _log_rows(db_engine: Any) -> list[Any]:
    from sqlmodel import Session, select

    from models.conversations import MessageLog

    with Session(db_engine) as s:
        return list(s.exec(select(MessageLog)).all())


@pytest.mark.parametrize("flow", ["veteran_insurance", "veteran_insurance_excluded", "mutual_aid_claim", "hardship",
                                  "hospital_stay", "death_report_by_family", "certification", "my_applications",
                                  "survey"])
async def test_every_flow_completes_by_sms_with_numbered_choices(
        db_engine: Any, channel_settings: Any, clock: Any, real_engine: Any, roll: Any, notifier: Any,
        flow: str) -> None:
    """Each service can be done start to finish by plain SMS: numbers typed back, documents to the window."""
    from . import e2e

    client = await _app(channel_settings, clock, real_engine)
    phone = {"mutual_aid_claim": e2e.LI_PHONE, "survey": e2e.LI_PHONE,
             "death_report_by_family": e2e.ZHAO_DAUGHTER_PHONE}.get(flow, e2e.ZHANG_PHONE)
    await e2e.FLOWS[flow](e2e.SmsDriver(client, phone), db_engine, roll, notifier)


async def test_every_sms_of_a_flow_stays_within_two_segments(
        db_engine: Any, channel_settings: Any, clock: Any, real_engine: Any, roll: Any, notifier: Any) -> None:
    """Replies of a whole flow, the long checklist and summary included: each <Message> is at most two segments."""
    from outreach.sms_text import sms_length

    from . import e2e

    client = await _app(channel_settings, clock, real_engine)
    seen: list[str] = []
    original = client.post

    async def recording_post(params: dict[str, str], **kw: Any) -> Any:
        response = await original(params, **kw)
        seen.extend(messages_of(response.text))
        return response

    client.post = recording_post  # type: ignore[method-assign]
    await e2e.veteran_insurance(e2e.SmsDriver(client, e2e.ZHANG_PHONE), db_engine, roll, notifier)
    assert seen
    for message in seen:
        assert sms_length(message).segments <= 2, message


@pytest.mark.parametrize("word", ["TD", "退订", "STOP", "Unsubscribe", "stop "])
async def test_opt_out_by_sms_reaches_the_engine_and_is_recorded(
        db_engine: Any, channel_settings: Any, clock: Any, real_engine: Any, roll: Any, word: str) -> None:
    """Opt-out words (TD, 退订, Twilio's STOP family) reach the engine, which records the opt-out."""
    from sqlmodel import Session, select

    from models.people import Contact

    from . import e2e

    client = await _app(channel_settings, clock, real_engine)
    response = await client.post(payload(From=e2e.ZHANG_PHONE, Body=word))
    assert response.status_code == 200
    assert messages_of(response.text)
    with Session(db_engine) as s:
        contact = s.exec(select(Contact).where(Contact.channel == "sms", Contact.address == e2e.ZHANG_PHONE)).one()
    assert contact.opted_out_at is not None


async def test_forged_sms_leaves_no_message_log_row_and_a_signed_one_does(
        db_engine: Any, channel_settings: Any, clock: Any, real_engine: Any, roll: Any) -> None:
    """Forged or unsigned: 403 and nothing stored. The same message signed: logged in and out."""
    client = await _app(channel_settings, clock, real_engine)
    for signature in (None, "Zm9yZ2Vk"):
        response = await client.post(payload(Body="退订"), signature=signature)
        assert response.status_code == 403
    assert _log_rows(db_engine) == []
    response = await client.post(payload(Body="你好"))
    assert response.status_code == 200
    rows = _log_rows(db_engine)
    assert [r.direction for r in rows].count("in") == 1
    assert any(r.direction == "out" for r in rows)
    assert {r.channel for r in rows} == {"sms"}


async def test_a_malformed_sms_leaves_no_message_log_row(
        db_engine: Any, channel_settings: Any, clock: Any, real_engine: Any) -> None:
    """Signed but unusable (no From): 400 and nothing stored."""
    client = await _app(channel_settings, clock, real_engine)
    response = await client.post({k: v for k, v in payload(Body="hi").items() if k != "From"})
    assert response.status_code == 400
    assert _log_rows(db_engine) == []


async def test_the_service_app_serves_both_webhooks_with_the_real_engine(
        db_engine: Any, channel_settings: Any, clock: Any, real_engine: Any, roll: Any, fake_tg: Any) -> None:
    """Wired as the one-process service wires it (web.app.create_app): SMS and Telegram webhooks answer."""
    from bot.channels import telegram
    from web.app import create_app

    from . import e2e
    from .support import SmsClient, asgi_client

    bot = telegram.create_bot(channel_settings)
    dp = telegram.create_dispatcher(real_engine)
    app = create_app(channel_settings, db_engine, clock=clock, bot_engine=real_engine,
                     telegram_bot=bot, telegram_dispatcher=dp)
    try:
        client = await asgi_client(app)
        sms_reply = await SmsClient(client).post(payload(From=e2e.ZHANG_PHONE, Body="菜单"))
        assert sms_reply.status_code == 200 and "退役士兵社保接续" in sms_reply.text
        update = {"update_id": 31, **fake_tg.text_update(4711, "/menu")}
        tg_reply = await client.post("/webhooks/telegram", json=update, headers={
            "X-Telegram-Bot-Api-Secret-Token": channel_settings.telegram_webhook_secret})
        assert tg_reply.status_code == 200
        # On Telegram the menu is on the buttons (the text does not list it a second time).
        assert any("退役士兵社保接续" in m.get("text", "") + str(m.get("reply_markup")) for m in fake_tg.sent)
        forged = await SmsClient(client).post(payload(Body="菜单"), signature="Zm9yZ2Vk")
        assert forged.status_code == 403
    finally:
        await bot.session.close()
