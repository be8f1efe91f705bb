"""Buttons cannot answer the wrong question, and one mis-tap cannot end a flow."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from bot.channels.base import Inbound
from models.applications import Application, Task
from tests.bot.conftest import ZHANG_PHONE, Chat, link


def press(chat: Chat, value: str, token: str) -> str:
    chat.last = chat.engine.handle(Inbound(channel=chat.channel, address=chat.address, choice=value,
                                           prompt_token=token))
    return "\n".join(r.text for r in chat.last)


def token(chat: Chat) -> str:
    return chat.last[-1].metadata["prompt"]


def test_a_press_on_an_older_keyboard_is_refused_and_the_question_repeated(engine, notifier, roll):
    """The menu's "1" pressed while the flow asks "expelled?" is not taken as "yes"."""
    chat = Chat(engine, "telegram", "sb1")
    link(chat, notifier, ZHANG_PHONE)
    chat("0")
    menu_token = token(chat)
    chat("1")
    chat("是")
    assert chat.state() == ("veteran_insurance", "expelled")
    text = press(chat, "1", menu_token)
    assert "前面一条消息的按钮" in text and "开除军籍" in text
    assert chat.state() == ("veteran_insurance", "expelled")
    assert token(chat) != menu_token


def test_the_current_keyboard_still_works_after_the_question_is_repeated(engine, notifier, roll):
    """Help repeats the question with the same token: the keyboard already on screen stays valid."""
    chat = Chat(engine, "telegram", "sb2")
    link(chat, notifier, ZHANG_PHONE)
    chat("1")
    current = token(chat)
    chat("帮助")
    assert token(chat) == current
    press(chat, "1", current)
    assert chat.state() == ("veteran_insurance", "expelled")


def test_a_person_can_always_be_reached_from_an_old_keyboard(engine, notifier, roll):
    """[找人工] on an older message still reaches a person."""
    chat = Chat(engine, "telegram", "sb3")
    link(chat, notifier, ZHANG_PHONE)
    chat("0")
    old = token(chat)
    chat("1")
    assert "已转给工作人员" in press(chat, "人工", old)


def test_a_disqualifying_answer_is_confirmed_and_can_be_chosen_again(engine, notifier, roll, db_engine):
    """"Expelled: yes" asks "您选的是'是'，确定吗？" under the question itself (a bare "是" says not to what);
    重新选 goes back to the question; nothing ends."""
    chat = Chat(engine, "telegram", "sb4")
    link(chat, notifier, ZHANG_PHONE)
    chat("1")
    chat("是")
    text = chat("是")
    assert "您选的是“是”，确定吗？" in text and "不能办" not in text
    assert "服役期间，您有没有被开除军籍？\n您选的是“是”" in text
    assert chat.state() == ("veteran_insurance", "expelled")
    assert "开除军籍" in chat("2")
    assert "到地方工作以后" in chat("不是")
    assert chat.state() == ("veteran_insurance", "after_placement")


@pytest.mark.parametrize(("lang_word", "typed", "expected"), [
    ("中文", "自己辞职", "到地方工作以后，您有没有下面的情况？\n您选的是“自己辞职离开”，确定吗？"),
    ("繁體", "自己辭職", "到地方工作以後，您有沒有下面的情況？\n您選的是“自己辭職離開”，確定嗎？"),
    ("English", "I left", 'After you were placed in a job, did any of these happen?\nYou chose "I left of my own '
                          'accord". Are you sure?'),
], ids=["zh-Hans", "zh-Hant", "en"])
def test_a_disqualifying_choice_is_confirmed_with_its_question_and_the_option_chosen(engine, notifier, roll,
                                                                                   lang_word, typed, expected):
    """"自己辞职" at "after placement?" (it ends the application) is confirmed with the question it answers and the
    option's own words, in the person's language; the options are not listed again and nothing ends yet."""
    chat = Chat(engine, "telegram", f"sb-choice-{lang_word}")
    link(chat, notifier, ZHANG_PHONE)
    chat(lang_word)
    chat("1")
    chat("1")
    chat("2")
    assert chat.state() == ("veteran_insurance", "after_placement")
    text = chat(typed)
    assert expected in text
    assert "2. " not in text and chat.state() == ("veteran_insurance", "after_placement")


def test_a_confirmed_disqualifying_answer_ends_the_flow_with_the_reason(engine, notifier, roll, db_engine):
    """Confirming the answer ends the flow as before: the reason said, a person offered."""
    chat = Chat(engine, "telegram", "sb5")
    link(chat, notifier, ZHANG_PHONE)
    chat("1")
    chat("是")
    chat("是")
    text = chat("确定")
    assert "不能办社保接续" in text and "人工" in text
    assert chat.state() == (None, None)


def test_back_while_confirming_returns_to_the_question(engine, notifier, roll):
    """"Back" at the confirmation is the question it confirms."""
    chat = Chat(engine, "telegram", "sb6")
    link(chat, notifier, ZHANG_PHONE)
    chat("1")
    chat("2")
    assert "确定吗" in chat.last[0].text
    assert "政府安排工作" in chat("返回")
    assert chat.state() == ("veteran_insurance", "left_by_job")


def test_not_submitting_is_confirmed_and_then_nothing_is_created(engine, notifier, roll, db_engine):
    """不提交 at the summary asks first; 重新选 shows the summary again; confirming creates nothing."""
    chat = Chat(engine, "telegram", "sb7")
    link(chat, notifier, ZHANG_PHONE)
    for answer in ("4", "江门市人民医院", "今天", "跳过"):
        chat(answer)
    assert "确定不提交吗" in chat("2")
    assert "请核对" in chat("2")
    chat("2")
    assert "没有提交" in chat("1")
    with Session(db_engine) as s:
        assert s.exec(select(Task)).all() == [] and s.exec(select(Application)).all() == []


def test_buttons_come_with_back_and_a_person_and_the_text_does_not_list_them_again(engine, notifier, roll):
    """With buttons the menu is not numbered in the text; a flow's prompts offer back and a person."""
    chat = Chat(engine, "telegram", "sb8")
    chat("0")
    [menu] = chat.last
    assert "1. 退役士兵社保接续" in menu.text and "1. 退役士兵社保接续" not in menu.button_text
    assert [c.value for c in menu.navigation] == ["人工"]
    link(chat, notifier, ZHANG_PHONE)
    chat("1")
    [question] = chat.last
    assert "回复1（是）" in question.text and "回复1（是）" not in question.button_text
    assert [c.label for c in question.navigation] == ["返回", "找人工"]
    assert "人工" not in question.button_text  # the footer is said by the buttons


def test_the_documents_step_offers_skip_and_later(engine, notifier, roll):
    """The checklist step has [跳过] and [以后带去]; pressing 以后带去 leaves the rest for the window."""
    chat = Chat(engine, "telegram", "sb9")
    link(chat, notifier, "+8613900001111")
    for answer in ("2", "2026-1-5到2026-1-20", "江门市中心医院", "8600", "不是"):
        chat(answer)
    [prompt] = chat.last
    assert [(c.label, c.value) for c in prompt.choices] == [("跳过", "跳过"), ("以后带去", "以后")]
    assert "请核对" in press(chat, "以后", token(chat))
