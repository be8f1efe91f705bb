"""How older people write: a bare "yeah" or "是的" after an answer, a digit where an amount is asked (a button
habit), questions in Cantonese or without a question word, "唔使喇" where something is to be written."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from bot import answers
from models.applications import HandoffTicket
from tests.bot.conftest import WANG_PHONE, ZHANG_PHONE, Chat, link


def _linked(engine, notifier, session: str, phone: str, *messages: str) -> Chat:
    """A Telegram chat linked to the person with this phone, after these messages."""
    chat = Chat(engine, "telegram", session)
    link(chat, notifier, phone)
    for message in messages:
        chat(message)
    return chat


def _tickets(db_engine) -> list[HandoffTicket]:
    with Session(db_engine) as s:
        return list(s.exec(select(HandoffTicket)).all())


@pytest.mark.parametrize("typed", ["yeah", "yes", "是的", "对", "嗯", "係呀"])
def test_a_bare_yes_after_an_answer_is_heard_not_passed_to_staff(engine, notifier, roll, db_engine, typed):
    """After a question went to staff, "yeah" or "是的" (nothing is asked at the menu) gets a short acknowledgement;
    it opens no ticket and is not added to the open one as a new question."""
    chat = Chat(engine, "telegram", f"bare-yes-{typed}")
    chat("你好")
    assert "编号" in chat("我家房子漏水了找谁")
    [ticket] = _tickets(db_engine)
    before = len(ticket.transcript or [])
    reply = chat(typed)
    assert "好的" in reply or "All right" in reply
    assert "编号" not in reply and "工作人员那里" not in reply
    [after] = _tickets(db_engine)
    assert after.id == ticket.id and len(after.transcript or []) == before


@pytest.mark.parametrize("typed", ["1", "2", "9"])
def test_a_lone_digit_where_an_amount_is_asked_is_not_taken_as_that_many_yuan(engine, notifier, roll, typed):
    """"1" at "monthly income?" (pressed as if a button) is asked again with how to write an amount; written with its
    unit ("1元") it is taken: the summary says 1元."""
    chat = _linked(engine, notifier, f"lone-digit-{typed}", ZHANG_PHONE, "3", "1", "老伴有病，药费每个月一千多")
    assert chat.state() == ("hardship", "monthly_income")
    text = chat(typed)
    assert f"如果真是{typed}元" in text and "请核对" not in text
    assert chat.state() == ("hardship", "monthly_income")
    assert f"家庭每月收入：{typed}元" in chat(f"{typed}元")


def test_the_summary_in_english_is_punctuated_in_english(engine, notifier, roll):
    """Wang (English) checks her hardship request: "- Kind of hardship: Medical costs", no full-width colon."""
    chat = _linked(engine, notifier, "en-summary", WANG_PHONE, "3", "1", "my wife is sick and the medicine costs a lot")
    text = chat("3000")
    assert "- Kind of hardship: Medical costs" in text and "：" not in text


@pytest.mark.parametrize("typed", ["我個仔喺外國可唔可以佢幫我搞", "使唔使我自己去", "can my son do it for me he lives abroad",
                                   "do i still have to go there myself"])
def test_a_question_at_a_date_step_without_a_question_word_goes_to_staff_not_read_as_a_date(engine, notifier, roll,
                                                                                          db_engine, typed):
    """Where a date is asked, a question in Cantonese (可唔可以, 使唔使) or in English without a question word
    (can my son..., do i still have to...) is passed to staff and the date asked again, never "could not read
    that date"."""
    chat = _linked(engine, notifier, f"q-at-date-{typed[:6]}", ZHANG_PHONE, "6", "1")
    assert chat.state() == ("certification", "visit_date")
    text = chat(typed)
    assert "编号" in text or "ticket" in text
    assert "没看懂这个日期" not in text and "沒看懂" not in text and "could not read" not in text
    assert chat.state() == ("certification", "visit_date")
    assert len(_tickets(db_engine)) == 1


@pytest.mark.parametrize("typed", ["唔使喇", "不用了", "no need"])
def test_no_need_where_the_situation_is_to_be_described_is_not_saved_as_the_description(engine, notifier, roll,
                                                                                         typed):
    """"唔使喇" (no need) at "describe the situation" says how to stop or go on and asks the step again; nothing is
    saved as the description."""
    chat = _linked(engine, notifier, f"no-need-{typed}", ZHANG_PHONE, "3", "1")
    assert chat.state() == ("hardship", "situation")
    text = chat(typed)
    assert "这次可以不办" in text or "這次可以不辦" in text
    assert chat.state() == ("hardship", "situation")


@pytest.mark.parametrize("typed", ["唔使", "不用了", "no need"])
def test_no_need_still_answers_a_yes_no_question_no(typed):
    """At a yes/no question "不用了" is the answer no, not a wish to stop the form."""
    assert answers.interruption(typed) is None
    assert answers.yes_no(typed) == "no"


def test_an_english_run_on_about_the_pension_check_is_offered_the_certification(engine, notifier, roll):
    """"hi im 84 ... the pension check thing do i still have to do it this year" (voice input, no punctuation) is
    offered the certification after the articles are asked, as its Chinese twin is."""
    chat = Chat(engine, "telegram", "en-run-on", hint="en")
    chat("hello")
    text = chat("hi im 84 and i want to ask about the pension check thing do i still have to do it this year "
                "my legs are bad i cant get out")
    assert "Do you want to do the pension eligibility certification?" in text


@pytest.mark.parametrize(("typed", "kept"), [("stop", "正在办的“申请困难帮扶”不受影响"), ("退订", "正在办的“申请困难帮扶”不受影响")])
def test_stop_in_the_middle_of_a_form_unsubscribes_and_says_the_form_is_kept(engine, notifier, roll, typed, kept):
    """"stop" at a step of the hardship form unsubscribes (as everywhere) and says that the form is not affected,
    what was entered is saved, and how to go on or leave it; the next answer goes on with the form."""
    chat = _linked(engine, notifier, f"stop-mid-form-{typed}", ZHANG_PHONE, "3", "1")
    text = chat(typed)
    assert "已退订" in text and kept in text and "回复0回主菜单" in text
    assert chat.state() == ("hardship", "situation")
    chat("老伴有病，药费每个月一千多")
    assert chat.state() == ("hardship", "monthly_income")


def test_stop_at_the_menu_says_nothing_of_a_form(engine, notifier, roll):
    """At the menu there is no form to speak of: the unsubscribe answer alone."""
    chat = Chat(engine, "telegram", "stop-at-menu")
    chat("你好")
    text = chat("stop")
    assert "已退订" in text and "不受影响" not in text


@pytest.mark.parametrize("typed", ["不知道", "唔知", "不用了", "dont know", "I don't know"])
def test_dont_know_where_a_step_may_be_left_out_leaves_it_out(engine, notifier, roll, typed):
    """"不知道" at "ward and bed? (reply skip if you do not know)" is the skip it was told to send: the summary shows
    the ward as not given, never "不知道" as the ward."""
    chat = _linked(engine, notifier, f"dont-know-{typed}", ZHANG_PHONE, "4", "人民医院", "今天")
    assert chat.state() == ("hospital_stay", "ward")
    text = chat(typed)
    assert chat.state() == ("hospital_stay", "confirm")
    assert "科室床号：（未填）" in text and typed not in text.split("请核对")[-1]


def test_dont_know_where_an_answer_is_needed_is_not_an_answer(engine, notifier, roll):
    """At "which hospital?" (not optional) "不知道" is not saved as the hospital: the person is told the step is needed
    and that a person can help, and the step is asked again."""
    chat = _linked(engine, notifier, "dont-know-needed", ZHANG_PHONE, "4")
    assert chat.state() == ("hospital_stay", "hospital")
    text = chat("不知道")
    assert "这一步要填上才能办" in text and "在哪家医院住院" in text
    assert chat.state() == ("hospital_stay", "hospital")


@pytest.mark.parametrize("typed", ["没有", "冇", "none"])
def test_none_where_an_income_of_zero_is_allowed_is_zero(engine, notifier, roll, typed):
    """"没有" (or 冇, none) at "monthly income? 0 if none" is an income of 0 yuan, not "please write the amount"."""
    chat = _linked(engine, notifier, f"none-income-{typed}", ZHANG_PHONE, "3", "1", "老伴有病，药费每个月一千多")
    assert chat.state() == ("hardship", "monthly_income")
    text = chat(typed)
    assert chat.state() == ("hardship", "confirm")
    assert "家庭每月收入：0元" in text
