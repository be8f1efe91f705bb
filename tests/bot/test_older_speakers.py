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


def _values(chat: Chat) -> dict:
    from models.conversations import Conversation
    with Session(chat.engine.db) as s:
        c = s.exec(select(Conversation).where(Conversation.channel == chat.channel,
                                              Conversation.address == chat.address)).one()
        return dict((c.data or {}).get("values", {}))


ASKED_WHERE_DESCRIBED = "我个仔喺外国，可唔可以佢帮我搞"


def test_a_question_typed_where_the_situation_is_described_is_asked_about_before_it_is_filed(engine, notifier, roll):
    """"My son is abroad, can he do it for me?" where the situation is to be described is neither filed as the
    situation nor lost: the person is shown it and asked whether it is the situation or a question."""
    chat = _linked(engine, notifier, "held-shown", ZHANG_PHONE, "3", "1")
    text = chat(ASKED_WHERE_DESCRIBED)
    assert ASKED_WHERE_DESCRIBED in text and "还是想问我们一个问题" in text
    assert "1. 是情况，记下" in text and "2. 是问题，请回答" in text
    assert chat.state() == ("hardship", "situation") and "situation" not in _values(chat)


def test_a_held_question_the_person_calls_a_question_goes_to_staff_and_the_step_is_asked_again(
        engine, notifier, roll, db_engine):
    """2 (a question): no article is sure of it, so a ticket carries the sentence to staff; the situation is asked
    again and nothing is saved as it."""
    chat = _linked(engine, notifier, "held-question", ZHANG_PHONE, "3", "1", ASKED_WHERE_DESCRIBED)
    text = chat("2")
    [ticket] = _tickets(db_engine)
    assert f"编号{ticket.id}" in text and "请简单说说情况" in text
    assert any("可唔可以" in (turn.get("text") or "") for turn in ticket.transcript or [])
    assert chat.state() == ("hardship", "situation") and "situation" not in _values(chat)


@pytest.mark.parametrize("typed", ["1", "是"])
def test_a_held_sentence_the_person_calls_the_situation_is_filed_as_written(engine, notifier, roll, db_engine,
                                                                           typed):
    """1 (or 是: it is the situation) files the sentence as the step files any description (its comma made
    plain, as in the next test), and goes on to the income; no ticket is opened."""
    chat = _linked(engine, notifier, f"held-kept-{typed}", ZHANG_PHONE, "3", "1", ASKED_WHERE_DESCRIBED)
    text = chat(typed)
    assert "收入" in text and chat.state() == ("hardship", "monthly_income")
    assert _values(chat)["situation"] == "我个仔喺外国,可唔可以佢帮我搞" and not _tickets(db_engine)


def test_something_else_typed_at_a_held_sentence_is_the_answer_to_the_step(engine, notifier, roll):
    """A description typed instead of 1 or 2 is the situation; the held sentence is dropped."""
    chat = _linked(engine, notifier, "held-replaced", ZHANG_PHONE, "3", "1", ASKED_WHERE_DESCRIBED)
    chat("老伴有病，药费每个月一千多")
    assert chat.state() == ("hardship", "monthly_income")
    assert _values(chat)["situation"] == "老伴有病,药费每个月一千多"


def test_back_at_a_held_sentence_asks_the_step_again(engine, notifier, roll):
    """"返回" while the sentence is held is the step it was typed at, as with an answer waiting to be confirmed."""
    chat = _linked(engine, notifier, "held-back", ZHANG_PHONE, "3", "1", ASKED_WHERE_DESCRIBED)
    assert "请简单说说情况" in chat("返回")
    assert chat.state() == ("hardship", "situation") and "situation" not in _values(chat)
    assert "收入" in chat("老伴有病，药费每个月一千多")


def test_in_english_the_label_sits_in_the_sentence_in_lower_case(engine, notifier, roll):
    """Wang (English): "Is this the situation to fill in", not "the Situation"."""
    chat = _linked(engine, notifier, "held-en", WANG_PHONE, "3", "1")
    text = chat("can my son who lives abroad do this for me")
    assert "Is this the situation to fill in, or a question for us?" in text
    assert "1. It is the situation: keep it" in text


@pytest.mark.parametrize("typed", ["唔知", "不知道", "我也不知道", "not sure"])
def test_dont_know_at_a_choice_says_who_can_help_not_only_the_number_again(engine, notifier, roll, typed):
    """"唔知" at "what is the main difficulty?" is told to pick the closest option or ask for a person, with the
    options again; nothing is chosen."""
    chat = _linked(engine, notifier, f"unsure-choice-{typed}", ZHANG_PHONE, "3")
    text = chat(typed)
    assert "选最接近的一项" in text and "人工" in text and "1. 看病花钱多" in text
    assert "请回复选项前面的数字" not in text
    assert chat.state() == ("hardship", "kind")


def test_a_choice_not_understood_is_still_asked_for_its_number():
    """Anything else that names no option keeps the plain "reply with the number"; 冇 and 不用了 are no "don't know"."""
    assert not answers.unsure("好像是第三种吧那个") and answers.unsure("唔知呀") and answers.unsure("I don't know")
    assert not answers.unsure("冇") and not answers.unsure("不用了")


def test_dont_know_at_a_yes_no_question_says_a_person_can_help_find_out(engine, notifier, roll):
    """"记不清" at "did the government arrange a job for you?" is not an answer: the person is told a member of staff
    can help find out, and the question stays."""
    chat = _linked(engine, notifier, "unsure-yes-no", ZHANG_PHONE, "1")
    assert chat.state() == ("veteran_insurance", "left_by_job")
    text = chat("记不清")
    assert "工作人员帮您问清楚" in text and "政府安排工作" in text
    assert chat.state() == ("veteran_insurance", "left_by_job")


def test_where_an_id_number_is_asked_words_are_not_counted_as_a_short_number(engine, notifier, roll, db_engine):
    """At "the ID number of the person who died", in Traditional: 唔知 is told where the number is written and who can
    help; "1" is told the number's length, in Traditional (not in Simplified); a question (我個仔可唔可以幫我報) is
    answered or passed to staff, never counted as "10 characters". The step stays."""
    chat = _linked(engine, notifier, "id-words", ZHANG_PHONE, "繁體", "5")
    assert chat.state() == ("death_report", "deceased_id")
    unsure = chat("唔知")
    assert "社保卡" in unsure and "人工" in unsure and "位" not in unsure.split("\n")[0]
    short = chat("1")
    assert "18位" in short and "身份证" not in short and "这里" not in short
    asked = chat("我個仔可唔可以幫我報")
    assert "10位" not in asked and ("編號" in asked or "來源" in asked) and "身份證號" in asked
    assert chat.state() == ("death_report", "deceased_id")



def test_a_reply_that_is_not_1_or_2_at_the_summary_is_asked_again_in_the_summarys_own_words(engine, notifier, roll):
    """At "请核对：… 回复1提交，回复2不提交。", a repeated answer ("今天") or 唔知 is not told "请回复1（是）或2（不是）"
    (words the summary does not use): it is asked to check the summary and reply with its number, or told who
    can help; the summary follows, and nothing is submitted."""
    chat = Chat(engine, "telegram", "confirm-words")
    link(chat, notifier, ZHANG_PHONE)
    chat("我要报告住院")
    chat("1")
    chat("县医院")
    chat("今天")
    assert "回复1提交" in chat("跳过")
    text = chat("今天")
    assert "请看看下面写得对不对" in text and "回复1提交" in text and "1（是）" not in text
    assert "工作人员帮您看" in chat("唔知")
    assert chat.state() == ("hospital_stay", "confirm")
