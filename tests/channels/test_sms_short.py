"""Short SMS: the repair footer only where it helps, dates as people write them, GSM-7 English,
one numbered list per message, no internal ids, and a reply-by day counted in China's working days."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.channels import sms
from bot.channels.base import Choice, Reply
from bot.flowrunner import load_flows
from bot.texts import T, reply_by, t
from bot.words import AUDIENCES, catalogue
from models.workdays import add_workdays, is_workday, reply_due
from outreach.sms_text import sms_length
from outreach.templates import TemplateSet

from . import e2e
from .support import SmsClient, asgi_client, make_app

SHANGHAI = ZoneInfo("Asia/Shanghai")
TODAY = date(2026, 3, 2)
FOOTER = t("footer_flow", "zh-Hans")


@pytest.fixture
def notifier() -> Any:
    return e2e.CodeNotifier()


@pytest.fixture
def real_engine(db_engine: Any, channel_settings: Any, clock: Any, notifier: Any) -> Any:
    from bot.engine import Engine

    return Engine(db_engine, channel_settings, clock, notifier=notifier)


@pytest.fixture
def roll(db_engine: Any, channel_settings: Any) -> Any:
    return e2e.seed_roll(db_engine, channel_settings)


async def _driver(channel_settings: Any, clock: Any, engine: Any, phone: str) -> e2e.SmsDriver:
    app = make_app({"settings": channel_settings, "clock": clock, "bot_engine": engine})
    return e2e.SmsDriver(SmsClient(await asgi_client(app)), phone)


# --- the repair footer ---------------------------------------------------------------------
async def test_the_repair_footer_comes_on_the_first_reply_and_after_a_misunderstanding_only(
        db_engine: Any, channel_settings: Any, clock: Any, real_engine: Any, roll: Any, notifier: Any) -> None:
    """By SMS the 'reply 返回 / 0 / 人工' line costs a segment in four: it is on the first reply, gone
    from replies that follow a good answer, and back after an answer the bot did not understand."""
    d = await _driver(channel_settings, clock, real_engine, e2e.LI_PHONE)
    first = await d.say("你好")
    assert "人工" in first and "回复0回主菜单" in first
    await e2e.open_flow(d, "医疗互助报销", notifier, e2e.LI_PHONE)
    hospital = await d.say("2026-1-5到2026-1-20")
    assert "哪家医院" in hospital and FOOTER not in hospital
    amount = await d.say("江门市中心医院")
    assert FOOTER not in amount
    misunderstood = await d.say("很多很多")
    assert FOOTER in misunderstood
    after = await d.say("8600")
    assert FOOTER not in after


def test_a_reply_the_engine_marks_for_repair_keeps_its_footer_and_others_lose_it() -> None:
    """The flag is the engine's: metadata repair=1 keeps the footer, repair=0 drops it, none leaves the text."""
    text = f"请发住院日期\n{FOOTER}"
    keep = Reply(text, metadata={"footer": FOOTER, "repair": "1", "lang": "zh-Hans"})
    drop = Reply(text, metadata={"footer": FOOTER, "repair": "0", "lang": "zh-Hans"})
    assert sms.render([keep]) == [text]
    assert sms.render([drop]) == ["请发住院日期"]
    assert sms.render([Reply(text)]) == [text]


# --- dates -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "lang", "expected"), [
    ("- 住院时间：2026-01-05 至 2026-01-20", "zh-Hans", "- 住院时间：1月5日 至 1月20日"),
    ("- 入伍时间：1998-12", "zh-Hans", "- 入伍时间：1998年12月"),
    ("请在2025-11-30前缴费", "zh-Hans", "请在2025年11月30日前缴费"),
    ("請在2026-11-30前繳費", "zh-Hant", "請在11月30日前繳費"),
    ("- Hospital stay: 2026-11-30 to 2026-12-02", "en", "- Hospital stay: 30 Nov to 2 Dec"),
    ("- Enlisted: 1998-12", "en", "- Enlisted: Dec 1998"),
    ("编号NX-2026-000123，电话12345", "zh-Hans", "编号NX-2026-000123，电话12345"),
])
def test_dates_in_sms_are_written_as_people_write_them(text: str, lang: str, expected: str) -> None:
    """ISO dates become 11月30日 / 30 Nov (the year only when not this year's); references stay whole."""
    assert sms.render([Reply(text, metadata={"lang": lang})], today=TODAY) == [expected]


# --- GSM-7 English ---------------------------------------------------------------------------
ENGLISH_SAMPLES = {"salutation": "Mr Zhang", "name": "Zhang Jianguo", "reason": "the discharge form is missing",
                   "text": "A health talk is held at the community centre on Saturday morning.",
                   "answer": "Yes: bring your ID card to the community service station.", "account": "6222 0000 1234"}


def _english_texts() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    words = catalogue()
    for group in words.groups:
        for code in words.codes(group):
            for audience in AUDIENCES:
                found.append((f"words {group}.{code} ({audience})", words.label(group, code, "en", audience)))
    ts = TemplateSet()
    for kind in ts.kinds:
        context = {**ts.sample_context(kind), **{k: v for k, v in ENGLISH_SAMPLES.items()
                                                  if k in ts.kinds[kind].variables}}
        for channel in ("sms", "telegram"):
            found.append((f"template {kind} ({channel})", ts.render(kind, "en", context, channel).text))
            found.append((f"template {kind} for a relative ({channel})",
                          ts.render(kind, "en", context, channel, relay_to="Zhang Jianguo").text))
    for key, texts in T.items():
        if key != "language_pick":  # names the languages in their own scripts: 中文, 繁體
            found.append((f"bot text {key}", texts["en"]))
    for flow in load_flows().values():
        found.append((f"flow {flow.id} title", flow.title["en"]))
        for step in flow.steps:
            found += [(f"flow {flow.id}.{step.id} prompt", step.prompt["en"]),
                      (f"flow {flow.id}.{step.id} label", step.label["en"])]
            found += [(f"flow {flow.id}.{step.id} option", o.label["en"]) for o in step.options]
            found += [(f"flow {flow.id}.{step.id} item", i.label["en"]) for i in step.items]
        found += [(f"flow {flow.id} ending {e}", ending.text["en"]) for e, ending in flow.endings.items()]
        if flow.done.get("en"):
            found.append((f"flow {flow.id} done", flow.done["en"]))
    return found


def test_every_english_word_and_template_stays_in_gsm_7() -> None:
    """Every English catalogue entry, message template (SMS and Telegram), bot text and flow text uses
    only the GSM-7 alphabet: one full-width colon would make the SMS UCS-2, 70 characters a segment."""
    texts = _english_texts()
    assert len(texts) > 300
    wide = [(where, text) for where, text in texts if sms_length(text).encoding != "GSM-7"]
    assert wide == []


def test_an_english_reply_with_wide_punctuation_is_sent_as_gsm_7() -> None:
    """A summary line the engine wrote with '：' or （） still goes as one GSM-7 segment in English."""
    reply = Reply("Please check:\n- Hospital：Central Hospital（Jiangmen）\n- Cost：8600 yuan，“total”",
                  metadata={"lang": "en"})
    [message] = sms.render([reply], today=TODAY)
    assert sms_length(message).encoding == "GSM-7" and sms_length(message).segments == 1
    assert "- Hospital: Central Hospital (Jiangmen)" in message and '"total"' in message


# --- one numbered list -----------------------------------------------------------------------
def test_documents_to_bring_are_not_numbered_beside_the_numbered_choices() -> None:
    """Above '1 提交 2 不提交', the documents to bring are dashes: '1' can only mean 'submit'."""
    text = "要准备的材料（请带到服务窗口）：\n1. 入伍证明材料\n2. 退出现役登记表\n3. 身份证\n请核对：\n回复1提交，回复2不提交。"
    reply = Reply(text, choices=(Choice("提交", "1"), Choice("不提交", "2")), metadata={"lang": "zh-Hans",
                                                                                     "choices_in_text": "1"})
    [message] = sms.render([reply])
    assert "- 入伍证明材料\n- 退出现役登记表\n- 身份证" in message
    assert re.findall(r"(?m)^\d+\.", message) == []


def test_a_numbered_choice_list_keeps_its_numbers() -> None:
    """The menu and the options of a choice step are the choices: their numbers stay."""
    text = "请问是谁要办事？\n1. 我本人\n2. 我是家属，替老人办"
    reply = Reply(text, choices=(Choice("本人", "1"), Choice("家属", "2")), metadata={"choices_in_text": "1"})
    assert sms.render([reply]) == [text]


async def test_by_sms_the_veteran_flow_lists_documents_without_numbers(
        db_engine: Any, channel_settings: Any, clock: Any, real_engine: Any, roll: Any, notifier: Any) -> None:
    """Through the signed webhook: the documents list before the summary carries no numbers."""
    d = await _driver(channel_settings, clock, real_engine, e2e.ZHANG_PHONE)
    await e2e.open_flow(d, "退役士兵社保接续", notifier, e2e.ZHANG_PHONE)
    for answer in ("是", "不是", "1", "张三", e2e.ZHANG_ID, "1998-12", "2002-12"):
        await d.say(answer)
    summary = await d.say("江门市机械厂")
    assert "请带到服务窗口" in summary and "- 解除劳动合同书" in summary
    numbered = re.findall(r"(?m)^(\d+)[.、 ]", summary)
    assert set(numbered) <= {"1", "2"}
    assert "1998年12月" in summary and "1998-12" not in summary


# --- no internal ids -------------------------------------------------------------------------
def test_no_word_people_see_carries_an_internal_id() -> None:
    """'(seed 003)' and the like never reach a person: not in the catalogue, templates, bot or flow texts."""
    internal = re.compile(r"\bseed\s*\d|\(seed|\bseed_\w+", re.IGNORECASE)
    offenders = [(where, text) for where, text in _english_texts() if internal.search(text)]
    words = catalogue()
    offenders += [(f"{g}.{c}", words.label(g, c, "zh-Hans", a)) for g in words.groups for c in words.codes(g)
                  for a in AUDIENCES if internal.search(words.label(g, c, "zh-Hans", a))]
    offenders += [(k, v["zh-Hans"]) for k, v in T.items() if internal.search(v["zh-Hans"])]
    for path in (Path(__file__).resolve().parents[2] / "bot" / "flows").glob("*.yaml"):
        if internal.search(re.sub(r"(?m)^\s*#.*$", "", path.read_text(encoding="utf-8"))):
            offenders.append((path.name, "mentions a seed id"))
    assert offenders == []


# --- working days ----------------------------------------------------------------------------
@pytest.mark.parametrize(("day", "due"), [
    (date(2026, 3, 2), date(2026, 3, 3)),  # Monday -> Tuesday
    (date(2026, 3, 6), date(2026, 3, 9)),  # Friday -> Monday
    (date(2026, 3, 7), date(2026, 3, 9)),  # Saturday -> Monday
    (date(2026, 2, 13), date(2026, 2, 14)),  # Friday -> the make-up working Saturday before the Spring Festival
    (date(2026, 2, 14), date(2026, 2, 24)),  # the Spring Festival holiday is skipped
    (date(2026, 9, 30), date(2026, 10, 8)),  # National Day week (1-7 October)
])
def test_one_working_day_is_counted_with_chinas_holidays_and_make_up_days(day: date, due: date) -> None:
    """The promise '一般1个工作日内' falls on China's next working day: holidays off, make-up days on."""
    assert add_workdays(day, 1) == due


def test_a_year_the_calendar_does_not_cover_falls_back_to_weekdays() -> None:
    """Past the published holiday arrangement, Monday to Friday are the working days (no error)."""
    assert is_workday(date(2040, 1, 2)) and not is_workday(date(2040, 1, 7))


def test_the_reply_by_day_is_counted_from_the_offices_date_not_utc() -> None:
    """At 00:30 Monday in Shanghai (16:30 Sunday UTC) the next working day is Tuesday, not Monday."""
    now = datetime(2026, 3, 1, 16, 30, tzinfo=UTC)
    assert reply_due(now, SHANGHAI) == date(2026, 3, 3)
    assert reply_due(now, ZoneInfo("UTC")) == date(2026, 3, 2)
    assert reply_by(now, SHANGHAI, "zh-Hans") == "3月3日（周二）"
    assert reply_by(now, SHANGHAI, "en") == "Tue 3 Mar"


async def test_a_handoff_by_sms_names_the_working_day_of_the_reply(
        db_engine: Any, channel_settings: Any, clock: Any, real_engine: Any, roll: Any) -> None:
    """Asking for a person on Monday 2 March (office time) promises a reply by Tuesday 3 March."""
    d = await _driver(channel_settings, clock, real_engine, e2e.LI_PHONE)
    reply = await d.say("人工")
    assert "1个工作日" in reply and "最晚3月3日（周二）" in reply


# --- the opt-out reply -----------------------------------------------------------------------
@pytest.mark.parametrize(("word", "says"), [
    ("退订", ["退订", "这里", "群发", "问候", "提醒", "答复", "申请的进展", "全部停止", "人工", "订阅"]),
    ("STOP", ["这里", "群发", "答复", "全部停止"]),
])
async def test_the_opt_out_reply_says_what_stops_what_continues_and_how_to_stop_everything(
        db_engine: Any, channel_settings: Any, clock: Any, real_engine: Any, roll: Any, word: str,
        says: list[str]) -> None:
    """After 退订 the person reads that broadcasts, greetings and reminders stop here, that answers and
    news of their own applications still come, and how to stop everything and to undo it."""
    d = await _driver(channel_settings, clock, real_engine, e2e.LI_PHONE)
    reply = await d.say(word)
    for part in says:
        assert part in reply, part


def test_the_english_opt_out_reply_says_the_same() -> None:
    """The English words name the same three things, in GSM-7."""
    text = t("opted_out", "en")
    for part in ("broadcasts", "greetings", "reminders", "here", "Answers", "your own applications",
                 "stop everything", "START"):
        assert part in text
    assert sms_length(text).encoding == "GSM-7"
