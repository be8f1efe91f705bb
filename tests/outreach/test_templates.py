"""Message templates: declared placeholders, send and preview from one object, sandboxed staff text."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from outreach.sms_text import MessageTooLong
from outreach.templates import (
    LANGUAGES,
    MESSAGES_DIR,
    BadValue,
    MissingVariables,
    StaffTextError,
    TemplateProblem,
    TemplateSet,
    compile_staff_text,
    validate_staff_text,
)

OCCASIONS = ["spring_festival", "lantern", "qingming", "dragon_boat", "mid_autumn", "double_ninth",
             "national_day", "army_day"]
STAGES = ["staged", "accepted", "preliminary_review", "verification", "payment_notice", "paid", "completed",
          "returned", "rejected", "withdrawn"]


@pytest.fixture(scope="module")
def ts() -> TemplateSet:
    return TemplateSet(office_name="白沙街道退役军人服务站", office_phone="0750-1234567")


@pytest.fixture
def tmp_messages(tmp_path: Path) -> Path:
    root = tmp_path / "messages"
    shutil.copytree(MESSAGES_DIR, root)
    return root


def test_every_kind_renders_in_every_language_on_both_channels(ts: TemplateSet) -> None:
    """All kinds × zh-Hans/zh-Hant/en × telegram/sms render with their sample values; no SMS is over 10 segments."""
    required_kinds = {"cert_reminder", "payment_notice", "contribution_notice", "payment_deadline_reminder",
                      "festival_greeting", "otp", "home_visit_notice", "over80_insurance", "survey_invitation",
                      "staff_broadcast", "handoff_answer", "daily_staff_summary"} | {f"stage_{s}" for s in STAGES}
    assert required_kinds <= set(ts.kinds)
    for kind in ts.kinds:
        for lang in LANGUAGES:
            for channel in ("telegram", "sms"):
                r = ts.render(kind, lang, ts.sample_context(kind), channel)
                assert r.text and "{{" not in r.text and r.lang == lang and r.kind == kind
                assert (r.sms is not None) == (channel == "sms")


def test_every_beneficiary_message_says_how_to_reach_a_person(ts: TemplateSet) -> None:
    """Each message to a beneficiary (not one-time codes) carries the office phone, on both channels."""
    for kind, spec in ts.kinds.items():
        if spec.audience != "beneficiary" or kind == "otp":
            continue
        for lang in LANGUAGES:
            for channel in ("telegram", "sms"):
                assert "0750-1234567" in ts.render(kind, lang, ts.sample_context(kind), channel).text, (kind, lang)


@pytest.mark.parametrize("occasion", OCCASIONS)
def test_each_festival_has_its_own_greeting(ts: TemplateSet, occasion: str) -> None:
    """Every occasion renders a distinct wording (army day thanks veterans for their service)."""
    texts = {o: ts.render("festival_greeting", "zh-Hans", {"salutation": "张伯", "occasion": o}).text
             for o in OCCASIONS}
    assert list(texts.values()).count(texts[occasion]) == 1
    if occasion == "army_day":
        assert "建军节" in texts[occasion]


def test_festival_outside_declared_choices_is_refused(ts: TemplateSet) -> None:
    """An occasion that the kind does not declare is an error, not a blank greeting."""
    with pytest.raises(BadValue, match="halloween"):
        ts.render("festival_greeting", "zh-Hans", {"salutation": "张伯", "occasion": "halloween"})


def test_missing_variable_is_an_error_that_names_it(ts: TemplateSet) -> None:
    """Rendering the payment notice without the account names `account`."""
    ctx = ts.sample_context("stage_payment_notice")
    del ctx["account"]
    with pytest.raises(MissingVariables) as info:
        ts.render("stage_payment_notice", "zh-Hans", ctx, "sms")
    assert info.value.names == ["account"]
    assert "account" in str(info.value)


def test_stage_notices_carry_payment_details_and_reasons(ts: TemplateSet) -> None:
    """The payment notice shows amount in yuan, account and deadline; returned and rejected show the reason."""
    ctx = {"salutation": "张伯", "reference": "NX-2026-000007", "application_type": "veteran_insurance",
           "amount_fen": 1234550, "account": "6222000012345678", "deadline": date(2026, 4, 30)}
    text = ts.render("stage_payment_notice", "zh-Hans", ctx, "sms").text
    assert "12,345.50元" in text and "6222000012345678" in text and "2026年4月30日" in text
    en = ts.render("stage_payment_notice", "en", ctx).text
    assert "12,345.50 yuan" in en and "30 April 2026" in en
    for stage in ("returned", "rejected"):
        base = {k: ctx[k] for k in ("salutation", "reference", "application_type")}
        assert "缺少退出现役登记表" in ts.render(f"stage_{stage}", "zh-Hans", {**base, "reason": "缺少退出现役登记表"}).text


def test_cert_reminder_kinds_with_days_share_one_template(ts: TemplateSet) -> None:
    """`cert_reminder_30` and `cert_reminder_1` render `cert_reminder`; days_left changes the wording."""
    ctx = {"salutation": "王阿姨", "deadline": date(2026, 3, 31)}
    thirty = ts.render("cert_reminder_30", "zh-Hans", {**ctx, "days_left": 30}).text
    one = ts.render("cert_reminder_1", "zh-Hans", {**ctx, "days_left": 1}).text
    assert "还有30天" in thirty and "明天就到期" in one


def test_over_80_notice_says_nothing_to_pay(ts: TemplateSet) -> None:
    """The over-80 veterans' insurance notice says it is automatic and costs nothing, in every language."""
    ctx = {"salutation": "李伯", "start_date": date(2026, 5, 1)}
    assert "不用交任何费用" in ts.render("over80_insurance", "zh-Hans", ctx).text
    assert "無需繳費" in ts.render("over80_insurance", "zh-Hant", ctx, "sms").text
    assert "pay nothing" in ts.render("over80_insurance", "en", ctx).text


def test_zh_hant_is_converted_from_zh_hans_by_opencc_keeping_typed_values(ts: TemplateSet) -> None:
    """With no zh-Hant file, the wording is Traditional, while a typed reason stays as typed."""
    tmpl = ts.get("stage_returned", "zh-Hant")
    assert tmpl.generated
    text = ts.render("stage_returned", "zh-Hant", {"salutation": "张伯", "reference": "NX-1",
                                                   "application_type": "veteran_insurance", "reason": "缺少证明"}).text
    assert "補充材料" in text and "退役士兵社會保險接續" in text
    assert "缺少证明" in text  # what staff typed is sent as typed


def test_explicit_zh_hant_file_wins_over_the_conversion(tmp_messages: Path) -> None:
    """A hand-written zh-Hant.j2 is used as written."""
    (tmp_messages / "otp" / "zh-Hant.j2").write_text(
        "{% block body %}驗證碼：{{ code }}（{{ minutes }}分鐘）{% endblock %}{% block sms %}碼{{ code }}{% endblock %}",
        encoding="utf-8")
    ts = TemplateSet(tmp_messages)
    assert not ts.get("otp", "zh-Hant").generated
    assert ts.render("otp", "zh-Hant", {"code": "123456", "minutes": 10}, "sms").text == "碼123456"


def test_template_using_an_undeclared_variable_is_refused_at_load(tmp_messages: Path) -> None:
    """A template reading a variable its kind does not declare stops loading, naming file, variable and line."""
    path = tmp_messages / "stage_paid" / "en.j2"
    path.write_text(path.read_text(encoding="utf-8").replace("{{ reference }}", "{{ refrence }}", 1), encoding="utf-8")
    with pytest.raises(TemplateProblem) as info:
        TemplateSet(tmp_messages)
    assert "stage_paid/en.j2" in str(info.value) and "refrence" in str(info.value) and "line" in str(info.value)


def test_template_without_an_sms_block_is_refused_at_load(tmp_messages: Path) -> None:
    """Each file must have both the body and the sms block."""
    (tmp_messages / "otp" / "en.j2").write_text("{% block body %}{{ code }}{% endblock %}", encoding="utf-8")
    with pytest.raises(TemplateProblem, match="block sms"):
        TemplateSet(tmp_messages)


def test_one_time_code_never_carries_the_opt_out_footer(ts: TemplateSet, tmp_messages: Path) -> None:
    """The code SMS has no footer; declaring one for otp is refused when loading."""
    for lang in LANGUAGES:
        text = ts.render("otp", lang, {"code": "482913", "minutes": 10}, "sms").text
        assert "TD" not in text and "STOP" not in text
    kinds = tmp_messages / "kinds.yaml"
    kinds.write_text(kinds.read_text(encoding="utf-8").replace(
        "  variables: [code, minutes]", "  variables: [code, minutes]\n  footer: true"), encoding="utf-8")
    with pytest.raises(TemplateProblem, match="otp"):
        TemplateSet(tmp_messages)


def test_sms_broadcast_ends_with_the_opt_out_footer_and_it_counts_toward_segments(ts: TemplateSet) -> None:
    """The footer (回复TD退订 / Reply STOP to opt out) ends each SMS broadcast and is in the segment count."""
    staff = compile_staff_text({"zh-Hans": "好" * 36, "en": "Health talk on Saturday at 9."})
    zh = ts.render_staff(staff, "zh-Hans", {}, "sms")
    assert zh.text.endswith("回复TD退订")
    assert zh.sms is not None and zh.sms.characters == len(zh.text)
    without = zh.text.removesuffix("回复TD退订")
    assert len(without) <= 70 < len(zh.text)  # the footer is what tips it into a second segment
    assert zh.sms.segments == 2
    hant = ts.render_staff(staff, "zh-Hant", {}, "sms")
    assert hant.text.endswith("回覆TD退訂")
    en = TemplateSet(office_name={"zh-Hans": "暖心", "en": "Baisha Veterans Station"}).render_staff(
        staff, "en", {}, "sms")
    assert en.text.endswith(" Reply STOP to opt out") and en.sms is not None and en.sms.encoding == "GSM-7"
    assert "TD" not in ts.render_staff(staff, "zh-Hans", {}, "telegram").text


def test_sms_over_ten_segments_is_refused_before_queueing(ts: TemplateSet) -> None:
    """Rendering a too-long SMS raises; the staff preview shows it as too long instead."""
    staff = compile_staff_text("长" * 700)
    with pytest.raises(MessageTooLong):
        ts.render_staff(staff, "zh-Hans", {}, "sms")
    preview = ts.preview_staff(staff, "zh-Hans", {}, "sms")
    assert preview.sms is not None and preview.sms.too_long and "too-long" in preview.html


def test_preview_is_escaped_and_shows_the_sms_length(ts: TemplateSet) -> None:
    """The preview escapes HTML in staff text and carries the same text as what is sent, with its length."""
    staff = compile_staff_text("<b>{{ salutation }}</b> & 您好")
    ctx = {"name": "王秀英", "salutation": "王阿姨"}
    sent = ts.render_staff(staff, "zh-Hans", ctx, "sms")
    preview = ts.preview_staff(staff, "zh-Hans", ctx, "sms")
    assert preview.text == sent.text and preview.sms == sent.sms
    assert "<b>" not in preview.html and "&lt;b&gt;王阿姨&lt;/b&gt; &amp; 您好" in preview.html
    assert sent.sms is not None and sent.sms.describe() in preview.html


def test_unknown_variable_in_staff_text_is_refused_naming_it() -> None:
    """`{{ adress }}` on line 2 is named, with its line and the allowed variables."""
    problems = validate_staff_text("{{ salutation }}您好\n请到{{ adress }}领取")
    assert len(problems) == 1
    assert "adress" in problems[0] and "第2行" in problems[0] and "line 2" in problems[0]
    assert "salutation" in problems[0]
    with pytest.raises(StaffTextError) as info:
        compile_staff_text("{{ adress }}")
    assert "adress" in str(info.value)


def test_syntax_error_in_staff_text_names_the_line() -> None:
    """An unclosed tag on line 3 is reported at line 3 in plain words."""
    problems = validate_staff_text("您好\n欢迎参加\n{{ name 活动")
    assert len(problems) == 1 and "第3行" in problems[0] and "line 3" in problems[0]


def test_unknown_filter_in_staff_text_is_refused() -> None:
    """A filter that does not exist is found before sending, not per recipient."""
    problems = validate_staff_text("{{ name|shout }}")
    assert problems and "shout" in problems[0]


def test_staff_text_cannot_reach_beyond_the_sandbox() -> None:
    """Attribute tricks to reach Python internals are refused by the sandbox."""
    problems = validate_staff_text("{{ name.__class__.__mro__ }}")
    assert problems and "cannot render" in problems[0]


def test_staff_text_sees_only_the_documented_variables(ts: TemplateSet) -> None:
    """A recipient's other fields (ID, phone) never reach staff text: using one is an unknown variable."""
    assert validate_staff_text("{{ id_masked }}")
    staff = compile_staff_text("{{ salutation }}，{{ district }}{{ community }}的活动，{{ today }}")
    text = ts.render_staff(staff, "zh-Hans", {"salutation": "张伯", "district": "蓬江区", "community": "白沙社区",
                                              "id_masked": "4407**********1234"}).text
    assert "张伯，蓬江区白沙社区的活动" in text and "4407" not in text and "年" in text


def test_staff_text_missing_a_recipient_value_names_it(ts: TemplateSet) -> None:
    """Rendering staff text that uses {{ name }} for a recipient without a name names `name`."""
    staff = compile_staff_text("{{ name }}您好")
    with pytest.raises(MissingVariables, match="name"):
        ts.render_staff(staff, "zh-Hans", {"salutation": "张伯"})


def test_staff_text_in_simplified_only_is_converted_for_traditional_readers(ts: TemplateSet) -> None:
    """A broadcast written only in zh-Hans reaches zh-Hant readers in Traditional and English readers in zh-Hans."""
    staff = compile_staff_text("社区健康讲座")
    assert "社區健康講座" in ts.render_staff(staff, "zh-Hant", {}).text
    assert "社区健康讲座" in ts.render_staff(staff, "en", {}).text


def test_broadcast_renderer_gives_what_render_staff_gives(ts: TemplateSet) -> None:
    """The fast per-recipient path sends exactly what the general path would."""
    staff = compile_staff_text({"zh-Hans": "{{ salutation }}，周六{{ community }}有义诊。", "en": "Dear {{ name }}, clinic on Saturday."})
    ctx = {"name": "Li Ming", "salutation": "李伯", "community": "白沙社区"}
    for lang in LANGUAGES:
        for channel in ("sms", "telegram"):
            fast = ts.broadcast_renderer(staff, lang, channel)(ctx)
            assert fast == ts.render_staff(staff, lang, ctx, channel)


@pytest.mark.parametrize("source", [
    "{{ salutation }}，您好！{{ community }}周六有义诊。",
    "  Dear {{ name }},\n{{ office_name }} {{ office_phone }} {{ today }}  ",
    "没有变量的通知",
    "{% if name %}{{ name }}{% endif %}您好",  # not plain: the sandboxed template renders it
    "{{ name|upper }}",
])
def test_plain_staff_text_fast_path_renders_exactly_what_the_sandbox_renders(ts: TemplateSet, source: str) -> None:
    """The per-recipient shortcut for words-and-variables text gives the sandbox's output, character for character."""
    staff = compile_staff_text(source)
    values = ts.staff_context("zh-Hans", {"name": "Li Ming", "salutation": "李伯", "community": "白沙社区"})
    expected = staff.render("zh-Hans", values)
    fast = staff.fast_renderer("zh-Hans")
    plain = "{%" not in source and "|" not in source
    assert (fast is not None) == plain
    if fast is not None:
        assert fast(values) == expected
    assert ts.broadcast_renderer(staff, "zh-Hans", "sms")(values) == ts.render_staff(staff, "zh-Hans", values, "sms")
