"""The one language module: detection, Traditional <-> Simplified, command words after conversion."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.engine import Engine
from bot.language import (
    UnknownVariant,
    detect_language,
    normalise_command,
    to_simplified,
    to_traditional,
)
from bot.qa import QA
from settings import SettingsError, load_settings
from tests.bot.conftest import LI_PHONE, ZHANG_PHONE, Chat, link

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("text", "hint", "expected"), [
    ("社保补缴的钱我怎么交", None, "zh-Hans"),
    ("我媽住院了，工會那個互助金能報多少", None, "zh-Hant"),
    ("唔係", None, "zh-Hant"),  # Cantonese, written in Traditional characters
    ("冇", "zh-Hant", "zh-Hant"),  # the same in both scripts: a Traditional reader stays Traditional
    ("您好", "zh-TW", "zh-Hant"),
    ("您好", "en-US", "zh-Hans"),  # Chinese text is Chinese whatever the client's setting
    ("How much is the mutual aid per year?", None, "en"),
    ("How much is the mutual aid per year?", "zh-Hans", "en"),  # a sentence in English is English
    ("Hello", None, "en"),
    ("STOP", "en-US", "en"),
    ("0", None, "zh-Hans"),
    # A reader of Chinese who types digits, a code, "ok" or a short Latin reply keeps Chinese.
    ("ok", "zh-Hans", "zh-Hans"),
    ("OK", None, "zh-Hans"),
    ("ok thanks", "zh-Hans", "zh-Hans"),
    ("12345X", "zh-Hans", "zh-Hans"),
    ("8600", "zh-Hant", "zh-Hant"),
    ("TD", None, "zh-Hans"),
    ("菜单", "en", "en"),  # a command word (a Telegram client sends /start as 菜单) does not decide
    ("/start", "en-US", "en"),
    ("菜單", None, "zh-Hant"),  # typed in Traditional, it does
    ("100", "en", "en"),
])
def test_language_comes_from_the_text_and_the_hint_decides_only_what_it_cannot(text, hint, expected):
    """The script decides; digits, codes, 'ok' and command words keep the language already known."""
    assert detect_language(text, hint) == expected


def test_traditional_is_written_in_the_regional_variant_never_plain_s2t():
    """zh-Hant uses 為/回覆 (Hong Kong and Taiwan forms), never s2t's 爲/回複; Taiwan also changes phrases."""
    hk = to_traditional("为了回复您，请确认软件信息", "s2hk")
    tw = to_traditional("为了回复您，请确认软件信息", "s2twp")
    for text in (hk, tw):
        assert "為" in text and "回覆" in text and "爲" not in text and "回複" not in text
    assert "軟件" in hk and "軟體" in tw
    assert to_traditional("回复TD退订 {{ code }}", "s2hk") == "回覆TD退訂 {{ code }}"  # ASCII untouched


@pytest.mark.parametrize("variant", ["s2hk", "s2twp"])
def test_reply_is_written_as_reply_even_before_a_number(variant):
    """"请回复数字" is 請回覆數字, not 回複數字 (OpenCC would read 复数, plural, across the two words);
    复数 alone is still 複數."""
    assert to_traditional("您好，请回复数字：", variant) == "您好，請回覆數字："
    assert to_traditional("复数", variant) == "複數"


def test_the_variant_is_a_setting_and_an_unknown_one_is_refused():
    """NUANXIN_TRADITIONAL_VARIANT takes s2hk or s2twp; s2t (or a typo) stops start-up naming the variable."""
    assert load_settings(traditional_variant="s2twp").traditional_variant == "s2twp"
    assert load_settings().traditional_variant == "s2hk"
    with pytest.raises(SettingsError, match="NUANXIN_TRADITIONAL_VARIANT"):
        load_settings(traditional_variant="s2t")
    with pytest.raises(UnknownVariant):
        to_traditional("你好", "s2t")


@pytest.mark.parametrize("variant", ["s2hk", "s2twp"])
@pytest.mark.parametrize("word", ["跳过", "以后", "帮助", "菜单", "确认", "人工", "返回", "退订", "订阅", "语言",
                                  "重发", "提交", "不提交", "取消", "主菜单", "继续"])
def test_every_word_the_bot_asks_for_is_recognised_when_typed_in_traditional(variant, word):
    """Whatever the bot tells a zh-Hant reader to type (菜单 shown as 選單 in Taiwan) comes back as the same word."""
    assert normalise_command(to_traditional(word, variant)) == word


def test_quoted_words_in_the_bot_texts_survive_the_round_trip():
    """Every “quoted” word the engine's texts ask people to type, shown in Traditional and typed back,
    is the word the engine matches."""
    from bot.texts import T

    quoted = {m for entry in T.values() for m in re.findall(r"“([^”]+)”", entry["zh-Hans"])}
    assert quoted, "the texts quote the words to type"
    for variant in ("s2hk", "s2twp"):
        for word in quoted:
            assert normalise_command(to_traditional(word, variant)) == normalise_command(word), (variant, word)


def test_simplified_conversion_keeps_the_words_as_written():
    """to_simplified changes characters only; ASCII and Simplified text come back unchanged."""
    assert to_simplified("請確認住院發票") == "请确认住院发票"
    assert to_simplified("NX-2026-000123") == "NX-2026-000123"
    assert to_simplified("已经简体") == "已经简体"


@pytest.mark.parametrize("typed", ["菜單", "選單", "主菜單"])
def test_traditional_menu_word_works_inside_a_flow(engine, notifier, roll, typed):
    """菜單 (and Taiwan's 選單) leave a flow for the menu, as 菜单 does."""
    chat = Chat(engine, "telegram", f"hant-menu-{typed}")
    link(chat, notifier, ZHANG_PHONE)
    chat("1")
    assert chat.state()[0] == "veteran_insurance"
    chat(typed)
    assert chat.state() == (None, None)


def test_traditional_help_skip_later_and_confirm_complete_a_claim(engine, notifier, roll):
    """幫助 gives help, 跳過 and 以後 answer the documents step, 確認 submits: the claim is made."""
    chat = Chat(engine, "telegram", "hant-claim")
    link(chat, notifier, LI_PHONE)
    chat("2")
    chat("2026-1-5到2026-1-20")
    chat("江門市中心醫院")
    chat("8600")
    chat("是")
    assert "怎么用" in chat("幫助") or "怎麼用" in chat.last[0].text
    assert chat.state() == ("mutual_aid_claim", "documents")
    chat("跳過")
    chat("以後")
    assert chat.state() == ("mutual_aid_claim", "confirm")
    text = chat("確認")
    assert chat.state() == (None, None)
    assert "已提交" in text or "已提交" in to_simplified(text)


@pytest.fixture
def real_qa_engine(db_engine, settings, clock, notifier) -> Iterator[Engine]:
    e = Engine(db_engine, settings, clock, qa=QA.load(), notifier=notifier)
    yield e
    e.close()


@pytest.mark.parametrize("typed", ["ok", "OK", "ok thanks", "12345"])
def test_a_chinese_reader_typing_latin_letters_or_digits_is_answered_in_chinese(real_qa_engine, typed):
    """Someone who wrote in Simplified Chinese and then types 'ok' or digits gets Chinese back, not English."""
    chat = Chat(real_qa_engine, "sms", f"+86139{abs(hash(typed)) % 10**8:08d}")
    chat("你好")
    reply = chat(typed)
    assert re.search(r"[\u4e00-\u9fff]", reply), reply
    assert not re.search(r"\b(Sorry|Reply|staff|please)\b", reply, re.IGNORECASE), reply


def test_only_the_language_module_builds_opencc_converters():
    """No other product module imports OpenCC: one place decides how Chinese is converted."""
    offenders = []
    for folder in ("bot", "outreach", "models", "web"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "language.py" and path.parent.name == "bot":
                continue
            if re.search(r"^\s*(import opencc|from opencc)", path.read_text(encoding="utf-8"), re.MULTILINE):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
