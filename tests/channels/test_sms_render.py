"""SMS rendering and parsing rules: numbered choices, two-segment messages, Twilio fields."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from bot.channels import sms
from bot.channels.base import Choice, Reply
from outreach.sms_text import sms_length

MENU = Reply("您好，这里是暖心服务。请回复数字：", choices=(
    Choice("退役士兵社保接续", "veteran_si"), Choice("职工医疗互助报销", "mutual_aid"),
    Choice("困难帮扶", "hardship"), Choice("报告住院", "hospital"), Choice("报告去世", "death"),
    Choice("资格认证", "certification"), Choice("我的申请", "my_applications")))


def test_choices_are_numbered_one_per_line_after_the_text() -> None:
    """A person without buttons reads '1 label' lines and types the digit back."""
    [message] = sms.render([MENU])
    lines = message.split("\n")
    assert lines[0] == "您好，这里是暖心服务。请回复数字："
    assert lines[1:] == ["1 退役士兵社保接续", "2 职工医疗互助报销", "3 困难帮扶", "4 报告住院",
                         "5 报告去世", "6 资格认证", "7 我的申请"]


@pytest.mark.parametrize(("typed", "expected"), [
    ("1", "veteran_si"), ("７", "my_applications"), (" 3 ", "hardship"), ("2。", "mutual_aid"),
    ("0", None), ("8", None), ("12", None), ("一", None), ("申请", None), ("", None),
])
def test_a_typed_digit_maps_back_to_the_choice_with_that_number(typed: str, expected: str | None) -> None:
    """Digits (also full-width) map to the numbered choice; anything else is no choice."""
    choice = sms.digit_choice(typed, MENU.choices)
    assert (choice.value if choice else None) == expected


def test_every_message_stays_within_two_segments_and_nothing_is_lost() -> None:
    """A long reply is split into messages of at most two segments; the text survives whole."""
    checklist = ("请带上以下材料到服务窗口办理：" + "居民身份证原件及复印件一份，退役证或士兵证，"
                 "安置部门出具的安置证明，原单位缴费记录，户口簿首页和本人页，近期一寸免冠照片两张。" * 3)
    reply = Reply(checklist + "\n办理地址：区退役军人服务中心一楼3号窗口。\n工作时间：周一至周五 9:00-17:00。")
    messages = sms.render([reply])
    assert len(messages) > 1
    assert all(sms_length(m).segments <= 2 for m in messages)
    assert "".join(m.replace("\n", "") for m in messages) == reply.text.replace("\n", "")


def test_a_split_falls_at_a_line_or_sentence_end_not_mid_word() -> None:
    """Each message but the last ends where a line or a sentence ends."""
    text = "\n".join(f"第{i}项：请带上本人身份证原件和复印件，社保卡，以及单位出具的证明材料。" for i in range(1, 8))
    messages = sms.render([Reply(text)])
    assert len(messages) > 1
    for m in messages[:-1]:
        assert m.endswith(("。", "，")), m


def test_numbered_choice_lines_are_never_cut_in_two() -> None:
    """When a menu does not fit one message, the break falls between whole choice lines."""
    long_menu = Reply("请选择您要办理的业务，回复数字即可，我们会一步一步带您办理：", choices=tuple(
        Choice(f"第{i}类业务：退役士兵养老保险和医疗保险接续办理", f"v{i}") for i in range(1, 7)))
    messages = sms.render([long_menu])
    assert len(messages) > 1
    lines = [line for m in messages for line in m.split("\n")]
    assert lines[1:] == [f"{i} 第{i}类业务：退役士兵养老保险和医疗保险接续办理" for i in range(1, 7)]


def test_short_replies_are_joined_into_one_message() -> None:
    """Two short replies cost one message, not two."""
    messages = sms.render([Reply("已记下。"), Reply("下一步：请输入您的身份证号码后六位。")])
    assert messages == ["已记下。\n下一步：请输入您的身份证号码后六位。"]


def test_an_sms_variant_in_metadata_replaces_the_long_text() -> None:
    """A reply may carry its own short SMS wording; markdown emphasis is dropped."""
    assert sms.render([Reply("长长的说明", metadata={"sms": "短说明"})]) == ["短说明"]
    assert sms.render([Reply("请带上**身份证**")]) == ["请带上身份证"]


def test_one_overlong_sentence_is_cut_by_length_as_a_last_resort() -> None:
    """A run with no punctuation at all still leaves in pieces of at most two segments."""
    messages = sms.render([Reply("很" * 400)])
    assert all(sms_length(m).segments <= 2 for m in messages)
    assert "".join(messages) == "很" * 400


TWILIO_FORMS = [
    # (name, form fields as Twilio posts them, expected text, attachments, error)
    ("plain zh", {"From": "+8613812345678", "To": "+8610655000", "Body": "你好", "MessageSid": "SM1",
                  "NumMedia": "0", "SmsSid": "SM1", "AccountSid": "AC1", "ApiVersion": "2010-04-01"},
     "你好", 0, None),
    ("mms photo", {"From": "+8613812345678", "To": "+8610655000", "Body": "", "MessageSid": "MM2",
                   "NumMedia": "1", "MediaUrl0": "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM2/Media/ME1",
                   "MediaContentType0": "image/jpeg"}, "", 1, None),
    ("control chars removed", {"From": "+447700900123", "Body": "STOP\x00\x07", "MessageSid": "SM3"},
     "STOP", 0, None),
    ("crlf kept as newline", {"From": "+14155550100", "Body": "line1\r\nline2", "MessageSid": "SM4"},
     "line1\nline2", 0, None),
    ("missing From", {"Body": "hi", "MessageSid": "SM5"}, None, 0, "missing From"),
    ("alphanumeric From", {"From": "NUANXIN", "Body": "hi"}, None, 0, "E.164"),
    ("national From", {"From": "13812345678", "Body": "hi"}, None, 0, "E.164"),
    ("huge Body", {"From": "+8613812345678", "Body": "长" * 1601}, None, 0, "1600"),
    ("bad NumMedia", {"From": "+8613812345678", "Body": "x", "NumMedia": "many"}, None, 0, "NumMedia"),
]


@pytest.mark.parametrize(("name", "form", "text", "n_media", "error"), TWILIO_FORMS, ids=[r[0] for r in TWILIO_FORMS])
def test_twilio_form_fields_become_an_inbound_or_a_clear_refusal(
        name: str, form: dict[str, str], text: str | None, n_media: int, error: str | None) -> None:
    """Usable fields become an sms Inbound addressed by the sender; unusable ones say why."""
    if error:
        with pytest.raises(sms.BadSMS, match=error):
            sms.parse_inbound(form)
        return
    parsed = sms.parse_inbound(form)
    assert parsed.inbound.channel == "sms"
    assert parsed.inbound.address == form["From"]
    assert parsed.inbound.text == text
    assert parsed.inbound.provider_message_id == form["MessageSid"]
    assert len(parsed.inbound.attachments) == n_media
    if n_media:
        assert parsed.inbound.attachments[0].file_id == form["MediaUrl0"]
        assert parsed.inbound.attachments[0].kind == "photo"


def test_twiml_escapes_xml_and_drops_characters_xml_cannot_carry() -> None:
    """Text with <, & and control characters still makes well-formed TwiML with the same words."""
    doc = sms.twiml(["A&B <tag> \"q\" 'a'\x01", "第二条"])
    root = ET.fromstring(doc.encode())
    assert root.tag == "Response"
    assert [m.text for m in root.findall("Message")] == ["A&B <tag> \"q\" 'a'", "第二条"]


def test_no_replies_make_an_empty_twiml_response() -> None:
    """Nothing to say → <Response/> with no Message: Twilio sends nothing."""
    root = ET.fromstring(sms.twiml([]).encode())
    assert root.tag == "Response" and list(root) == []


@pytest.mark.parametrize(("text", "choices"), [
    ("请选择：\n1. 退役士兵社保接续\n2. 困难帮扶", (Choice("退役士兵社保接续", "1"), Choice("困难帮扶", "2"))),
    ("是否住院？\n回复1（是）或2（不是）", (Choice("是", "1"), Choice("不是", "2"))),
])
def test_choices_the_text_already_numbers_are_not_listed_twice(text: str, choices: tuple[Choice, ...]) -> None:
    """When the engine's text already lists '1. label', SMS sends the text alone."""
    assert sms.render([Reply(text, choices=choices)]) == [text]


def test_choices_missing_from_the_text_are_still_listed() -> None:
    """A label the text does not number is listed, so no choice is ever hidden from an SMS reader."""
    reply = Reply("请选择：\n1. 退役士兵社保接续", choices=(Choice("退役士兵社保接续", "1"), Choice("困难帮扶", "2")))
    assert sms.render([reply]) == ["请选择：\n1. 退役士兵社保接续\n1 退役士兵社保接续\n2 困难帮扶"]
