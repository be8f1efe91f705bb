"""The script a conversation is answered in follows what the person writes: one way, Simplified to
Traditional, on a message clearly written in Traditional, English to Chinese on a message clearly
written in Chinese and Chinese to English on a sentence clearly in English; the language on their
record changes only when they pick one."""

from __future__ import annotations

from sqlmodel import Session

from models.people import Beneficiary
from tests.bot.conftest import LI_PHONE, Chat, link


def test_a_traditional_message_in_a_simplified_conversation_is_answered_in_traditional(engine, notifier, roll,
                                                                                     db_engine):
    """Li (Simplified on the roll) writes a sentence in Traditional at the menu: that answer and the ones after
    it, to digits and to Simplified words too, are written in Traditional; her record still says zh-Hans."""
    chat = Chat(engine, "telegram", "follows-hant")
    link(chat, notifier, LI_PHONE)
    assert "请回复数字" in chat("0")
    answer = chat("請問醫療互助每年要交幾多錢？")
    assert "回覆0回主菜單" in answer and "回复0回主菜单" not in answer
    menu = chat("0")
    assert "請回覆數字" in menu and "醫療互助報銷" in menu
    assert "出院" in chat("2") and "請" in chat.last[0].text and "请" not in chat.last[0].text
    assert "回覆" in chat("好的，我知道了")
    with Session(db_engine) as s:
        li = s.get(Beneficiary, roll.li)
        assert li is not None and li.language == "zh-Hans"


def test_a_word_or_two_in_traditional_does_not_turn_a_simplified_conversation(engine, notifier, roll):
    """生活費唔夠 (two Traditional-only characters, as Cantonese input methods write them) at the menu is read as
    the hardship service and answered in Simplified, as the conversation began."""
    chat = Chat(engine, "telegram", "few-hant")
    assert "请回复数字" in chat("你好")
    offer = chat("生活費唔夠")
    assert "困难帮扶" in offer and "回复1" in offer and "回覆" not in offer


def test_a_traditional_reader_writing_simplified_cantonese_keeps_traditional(engine, notifier, roll):
    """A Cantonese speaker whose conversation is in Traditional writes Simplified (我系帮我阿妈问嘅...): the reply
    and the menu after it stay Traditional; a conversation never turns Simplified on what is written."""
    chat = Chat(engine, "telegram", "yue-simplified", hint="zh-HK")
    assert "請回覆數字" in chat("你好")
    reply = chat("我系帮我阿妈问嘅，佢个养老金资格认证几时要做，点样做")
    assert "回覆0回主菜單" in reply and "回复" not in reply
    assert "請回覆數字" in chat("0")


def test_a_person_who_picked_simplified_keeps_it_when_writing_traditional(engine, notifier, roll):
    """Someone who picked 简体 and then writes a sentence in Traditional is still answered in Simplified: what the
    person chose outweighs what their keyboard produced."""
    chat = Chat(engine, "telegram", "picked-hans", hint="zh-TW")
    assert "請回覆數字" in chat("你好")
    assert "请回复数字" in chat("简体")
    reply = chat("請問醫療互助每年要交幾多錢？")
    assert "回复0回主菜单" in reply and "回覆" not in reply


def test_an_english_conversation_turns_chinese_on_a_sentence_written_in_chinese(engine, notifier, roll):
    """A conversation begun with "hello" (answered in English) gets a question written in Traditional: the answer,
    its footer and the menu after it are in Traditional, never an English footer under a Chinese answer."""
    chat = Chat(engine, "telegram", "en-then-hant")
    assert "Reply with a number" in chat("hello")
    reply = chat("請問醫療互助每年要交幾多錢？")
    assert "回覆0回主菜單" in reply and "Reply 0" not in reply
    assert "請回覆數字" in chat("0")


def test_a_chinese_word_in_an_english_sentence_keeps_the_conversation_english(engine, notifier, roll):
    """"what is 低保 exactly" names a Chinese benefit inside an English sentence: the reply stays English."""
    chat = Chat(engine, "telegram", "en-with-word")
    assert "Reply with a number" in chat("hello")
    reply = chat("what is 低保 exactly, can my mother get it")
    assert "Reply 0 for the menu" in reply and "回复0回主菜单" not in reply


def test_a_chinese_conversation_turns_english_on_a_sentence_in_english_but_not_on_ok(engine, notifier, roll):
    """"ok thank you" in a Simplified conversation is still answered in Simplified; "how do I report that my father
    passed away" is a sentence in English, answered in English."""
    chat = Chat(engine, "telegram", "hans-then-en")
    assert "请回复数字" in chat("你好")
    assert "回复0回主菜单" in chat("ok thank you")
    reply = chat("how do I report that my father passed away")
    assert "Reply 1" in reply and "回复" not in reply
