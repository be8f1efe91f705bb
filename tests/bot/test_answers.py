"""Natural answers: yes and no, amounts, dates at the precision given, cancel words and questions,
in zh-Hans, zh-Hant, Cantonese and English, as people type them."""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import Session, select

from bot import answers
from bot.answers import Amount, Cancel, DateAnswer, Question
from bot.flowrunner import (
    Interrupted,
    Invalid,
    clean_text,
    load_flows,
    parse_choice,
    parse_date,
    parse_date_range,
    parse_money,
    parse_text,
    parse_yes_no,
)
from models.applications import Application
from tests.bot.conftest import LI_PHONE, ZHANG_ID, ZHANG_PHONE, Chat, link

TODAY = date(2026, 3, 2)  # a Monday
FLOWS = load_flows()


def step(flow: str, step_id: str):
    return FLOWS[flow].step(step_id)


YES = ["是", "是的", "是的呀", "是啊", "对", "对的", "对对对", "嗯", "嗯嗯", "有", "有的", "有啊", "好的", "可以", "没错",
       "當然是", "是的，有过", "好的谢谢", "对的，谢谢您", "確認", "對啊", "係", "係呀", "係啊", "冇錯", "啱", "1", "１", "yes", "Yes please", "yep",
       "yeah", "sure", "OK", "of course", "that's right", "Correct."]
NO = ["不", "不是", "不是的", "不是不是", "没有", "没有没有", "没有的", "没", "没，从来没有", "无", "不对", "不用", "当然不是",
      "沒有", "不對", "不要了", "没有，谢谢", "唔係", "唔係啊", "冇", "冇有", "唔要", "2", "no", "nope", "nah", "No thanks", "not really",
      "never", "no, I haven't"]
NEITHER = ["是不是", "有没有", "也许", "不知道", "maybe", "perhaps", "3", "厂"]


@pytest.mark.parametrize("text", YES)
def test_yes_is_understood_in_the_ways_people_say_it(text):
    """Every way of saying yes (Mandarin, Traditional, Cantonese, English, the digit 1) reads as yes."""
    assert answers.yes_no(text) == "yes"
    assert parse_yes_no(text, "zh-Hans") == "yes"


@pytest.mark.parametrize("text", NO)
def test_no_is_understood_in_the_ways_people_say_it(text):
    """Every way of saying no reads as no."""
    assert answers.yes_no(text) == "no"
    assert parse_yes_no(text, "zh-Hans") == "no"


@pytest.mark.parametrize("text", NEITHER)
def test_a_reply_that_is_neither_yes_nor_no_is_not_guessed(text):
    """是不是, 不知道, maybe: neither answer is taken; the step asks again."""
    assert answers.yes_no(text) is None
    with pytest.raises(Invalid) as info:
        parse_yes_no(text, "zh-Hans")
    assert "1" in str(info.value) and "2" in str(info.value)


@pytest.mark.parametrize("text", ["你好", "你好呀", "您好啊", "喂喂，在吗", "在吗？", "有人在吗", "早晨", "同志你好", "请问一下",
                                  "我有个问题", "hello there", "Good morning!", "hi", "I have a question"])
def test_a_greeting_or_an_opening_alone_is_a_greeting(text):
    """A greeting, or an opening that announces a question, with particles, repeats and punctuation, in any of the
    three languages."""
    assert answers.greeting(text)


@pytest.mark.parametrize("text", ["你好，我想问养老金", "喂，我爸爸住院了", "hello I need help", "you", "在吗我的申请呢",
                                  "请问认证怎么办"])
def test_a_greeting_that_goes_on_to_say_something_is_not_only_a_greeting(text):
    """A greeting followed by what the person wants is read for what they want."""
    assert not answers.greeting(text)


@pytest.mark.parametrize("text", ["好的", "收到", "收到了", "知道了", "谢谢你们", "多謝", "你好，收到了", "好的👍", "唔该晒",
                                  "ok thanks", "Thank you very much", "noted"])
def test_an_acknowledgement_alone_is_an_acknowledgement(text):
    """好的 / 收到 / 谢谢 / ok thanks, alone or together, in the three languages."""
    assert answers.acknowledgement(text)


@pytest.mark.parametrize("text", ["好的，我想问下认证", "谢谢，我的申请呢", "收到了但是看不懂", "ok but when"])
def test_an_acknowledgement_that_goes_on_to_ask_is_not_only_an_acknowledgement(text):
    """What follows the thanks is what the person wants."""
    assert not answers.acknowledgement(text)


@pytest.mark.parametrize(("text", "proxy", "relationship"), [
    ("我自己", False, None), ("本人", False, None), ("myself", False, None),
    ("我爸叫钱德", True, "child"), ("我是他女儿", True, "child"), ("帮我妈问的", True, "child"), ("my mum", True, "child"),
    ("我老伴", True, "spouse"), ("I am her husband", True, "spouse"), ("我哥", True, "sibling"),
    ("我是护工", True, "carer"), ("邻居", True, "other"), ("家属", True, None), ("替老人办", True, None),
])
def test_who_is_writing_is_read_from_their_words(text, proxy, relationship):
    """The person themselves, or a family member and (when the words say it) how they are related."""
    acting = answers.who_acts(text)
    assert acting is not None and acting.proxy is proxy and acting.relationship == relationship


@pytest.mark.parametrize("text", ["叫什么", "住院了", "13812345678", "不太清楚"])
def test_words_that_say_nothing_about_who_writes_are_not_guessed(text):
    """Neither oneself nor a relative is read into words that name neither."""
    assert answers.who_acts(text) is None


@pytest.mark.parametrize("text", ["你们是骗子吧", "你们怎么还不给我回复", "认证在哪里办", "where is my pension"])
def test_a_complaint_or_a_policy_question_is_not_a_question_about_the_office(text):
    """Only questions about the office itself (who, how to reach it, where, when open) are answered from its
    settings; a complaint or a question about a service goes on to the Q&A and staff."""
    assert answers.about_the_service(text) != "about_us"


AGREEING = ["好的谢谢", "好", "好的", "可以", "行", "没问题", "ok", "OK", "okay", "好嘅", "嗯", "嗯嗯"]


@pytest.mark.parametrize("text", AGREEING)
def test_ok_answers_a_question_about_going_ahead_but_not_a_question_about_a_fact(text):
    """好的 / 可以 / ok / 嗯 agree to go ahead (a confirm step takes them as yes); asked whether something is so
    (有没有被开除军籍？), they say nothing about it (嗯 is as often a hum while listening as a yes), so the
    question is asked again with its two answers."""
    assert parse_yes_no(text, "zh-Hans") == "yes"
    assert answers.yes_no(text, about_a_fact=True) is None
    with pytest.raises(Invalid) as info:
        parse_yes_no(text, "zh-Hans", about_a_fact=True)
    assert "1" in str(info.value) and "2" in str(info.value)


@pytest.mark.parametrize("text", ["是的", "有", "对", "嗯，是的", "係呀", "yes", "1", "没有", "唔係", "no", "2"])
def test_a_real_yes_or_no_still_answers_a_question_about_a_fact(text):
    """是的 / 有 / 没有 / yes / no / the digits answer a factual question exactly as they answer any other."""
    assert answers.yes_no(text, about_a_fact=True) == answers.yes_no(text) is not None


def test_ok_thanks_at_the_expelled_question_does_not_end_a_veterans_application(engine, notifier, roll):
    """"好的谢谢" typed at "服役期间，您有没有被开除军籍？" (yes would end the application as expelled): the question is
    asked again and the application goes on when the person answers it."""
    chat = Chat(engine, "telegram", "fact-ok")
    link(chat, notifier, ZHANG_PHONE)
    chat("1")
    assert "开除军籍" in chat("1")
    text = chat("好的谢谢")
    assert "开除军籍" in text and "请回复1（是）或2（不是）" in text
    assert chat.state() == ("veteran_insurance", "expelled")
    assert "到地方工作以后" in chat("2")


AMOUNTS = [
    ("8600", 860000, False), ("8,600元", 860000, False), ("8600.50", 860050, False), ("¥3500", 350000, False),
    ("一萬二", 1200000, False), ("一万二", 1200000, False), ("12000蚊", 1200000, False), ("一千五左右", 150000, True),
    ("两千块", 200000, False), ("兩千塊", 200000, False), ("1.2万", 1200000, False), ("3万5", 3500000, False),
    ("三万五千元", 3500000, False), ("八千六", 860000, False), ("五百块钱", 50000, False), ("三千多", 300000, True),
    ("大概两千", 200000, True), ("一百二十块五毛", 12050, False), ("一百块五", 10050, False), ("一共花了八千六", 860000, False),
    ("12k", 1200000, False), ("about 3000 yuan", 300000, True), ("差不多一万", 1000000, True), ("人民币5000元", 500000, False), ("8600元左右吧", 860000, True),
]


@pytest.mark.parametrize(("text", "fen", "approximate"), AMOUNTS)
def test_amounts_are_read_in_digits_chinese_numerals_and_colloquial_forms(text, fen, approximate):
    """Money in digits, Chinese numerals, 万/千 shorthand, 块/蚊/元, with 左右/多/大概 marked approximate."""
    assert answers.amount(text) == Amount(fen, approximate)
    assert parse_money(step("mutual_aid_claim", "amount"), text, "zh-Hans") == fen


@pytest.mark.parametrize("text", ["很多", "不记得了", "abc", "12.345", "一万二三四五六七八九十百千", ""])
def test_what_is_not_an_amount_is_refused_not_guessed(text):
    """No number, too many decimals or nonsense: the step asks again, nothing is stored."""
    assert answers.amount(text) is None
    with pytest.raises(Invalid):
        parse_money(step("mutual_aid_claim", "amount"), text, "zh-Hans")


DATES = [
    ("2026-3-1", date(2026, 3, 1), "day"), ("2026年3月1日", date(2026, 3, 1), "day"), ("20260301", date(2026, 3, 1), "day"),
    ("昨天", date(2026, 3, 1), "day"), ("昨天晚上", date(2026, 3, 1), "day"), ("昨晚", date(2026, 3, 1), "day"),
    ("前天", date(2026, 2, 28), "day"), ("大前天", date(2026, 2, 27), "day"), ("琴日", date(2026, 3, 1), "day"),
    ("三天前", date(2026, 2, 27), "day"), ("上礼拜三", date(2026, 2, 25), "day"), ("上周五晚上", date(2026, 2, 27), "day"),
    ("上禮拜", date(2026, 2, 23), "week"), ("上个礼拜", date(2026, 2, 23), "week"), ("上星期", date(2026, 2, 23), "week"),
    ("3月1号", date(2026, 3, 1), "day"), ("三月一号", date(2026, 3, 1), "day"), ("二月十五日", date(2026, 2, 15), "day"),
    ("3月5号", date(2025, 3, 5), "day"),  # not yet this year: last year's
    ("一九六零年三月", date(1960, 3, 1), "month"), ("一九六〇年三月五日", date(1960, 3, 5), "day"),
    ("60年3月", date(1960, 3, 1), "month"), ("六零年三月", date(1960, 3, 1), "month"), ("98年12月", date(1998, 12, 1), "month"),
    ("05年1月", date(2005, 1, 1), "month"), ("1998-12", date(1998, 12, 1), "month"), ("上个月", date(2026, 2, 1), "month"),
    ("去年三月", date(2025, 3, 1), "month"), ("1960年", date(1960, 1, 1), "year"),
    ("我是1998年12月入伍的", date(1998, 12, 1), "month"),
    ("yesterday", date(2026, 3, 1), "day"), ("last week", date(2026, 2, 23), "week"), ("30 Nov", date(2025, 11, 30), "day"),
    ("Nov 30 2025", date(2025, 11, 30), "day"), ("March 1960", date(1960, 3, 1), "month"),
    ("3 days ago", date(2026, 2, 27), "day"), ("last Friday", date(2026, 2, 27), "day"),
]


@pytest.mark.parametrize(("text", "start", "precision"), DATES)
def test_dates_are_read_at_the_precision_given(text, start, precision):
    """Digits, Chinese numerals, two-digit years, months without days, relative and Cantonese words."""
    found = answers.date_answer(text, TODAY)
    assert found is not None and (found.start, found.precision) == (start, precision)


def test_approximate_dates_say_so_and_two_dates_in_one_answer_are_not_picked_from():
    """左右/大概 mark a date approximate; '1998年12月入伍，2002年12月退伍' at a one-date step is not guessed."""
    assert answers.date_answer("今年1月10号左右", TODAY) == DateAnswer(date(2026, 1, 10), "day", approximate=True)
    assert answers.date_answer("1998年12月入伍，2002年12月退伍", TODAY) is None
    assert answers.date_answer("不记得了", TODAY) is None


@pytest.mark.parametrize(("text", "month"), [("一九六零年三月", "1960-03-01"), ("60年3月", "1960-03-01"),
                                             ("98年12月", "1998-12-01"), ("1998年12月5日", "1998-12-05")])
def test_a_month_stays_a_month_where_a_month_is_enough(text, month):
    """At a month step (enlistment), a month is stored as that month; a full date is kept as given."""
    assert parse_date(step("veteran_insurance", "enlistment_date"), text, TODAY, "zh-Hans", {}) == month


@pytest.mark.parametrize(("text", "asks"), [("上个月", "2026年2月"), ("上礼拜", "2月23日那一周"), ("1960年", "1960年")])
def test_where_a_day_is_needed_a_month_or_week_asks_for_the_day_instead_of_inventing_one(text, asks):
    """A death date given as 上个月 or 上礼拜 is not turned into a made-up day: the person is asked which day."""
    with pytest.raises(Invalid) as info:
        parse_date(step("death_report", "died_on"), text, TODAY, "zh-Hans", {})
    assert asks in str(info.value)
    assert parse_date(step("death_report", "died_on"), "昨天晚上", TODAY, "zh-Hans", {}) == "2026-03-01"


@pytest.mark.parametrize(("text", "start", "end"), [
    ("2026-1-5到2026-1-20", "2026-01-05", "2026-01-20"), ("1月5号到20号", "2026-01-05", "2026-01-20"),
    ("从2026年1月5日住到1月20日", "2026-01-05", "2026-01-20"), ("2026-1-5 2026-1-20", "2026-01-05", "2026-01-20"),
    ("上礼拜一到上礼拜五", "2026-02-23", "2026-02-27"), ("2025-12-20到1月5号", "2025-12-20", "2026-01-05"),
    ("2026-01-05 to 2026-01-20", "2026-01-05", "2026-01-20"),
])
def test_a_hospital_stay_is_read_from_the_ways_people_write_two_dates(text, start, end):
    """A date range in digits, Chinese, a shared month (1月5号到20号) or relative words."""
    assert parse_date_range(step("mutual_aid_claim", "stay"), text, TODAY, "zh-Hans") == {"start": start, "end": end}


CANCEL = ["取消", "不办了", "不辦了", "不提交", "算了", "算了吧", "不要办了", "唔办了", "never mind", "forget it",
          "算了不弄了", "算了，不申请了", "不办了不办了", "唔搞了，算啦", "never mind, cancel"]


@pytest.mark.parametrize("text", CANCEL)
def test_cancel_words_are_a_cancel_at_every_kind_of_step_never_an_answer(text):
    """取消 / 不办了 / 不提交 / 算了, alone or several in a row (算了不弄了), are recognised as cancel at yes-no, money,
    date, choice and text steps."""
    assert answers.interruption(text) == Cancel(text)
    parsers = [lambda t: parse_yes_no(t, "zh-Hans"),
               lambda t: parse_money(step("mutual_aid_claim", "amount"), t, "zh-Hans"),
               lambda t: parse_date(step("death_report", "died_on"), t, TODAY, "zh-Hans", {}),
               lambda t: parse_date_range(step("mutual_aid_claim", "stay"), t, TODAY, "zh-Hans"),
               lambda t: parse_choice(step("death_report", "relationship"), t, "zh-Hans"),
               lambda t: parse_text(step("mutual_aid_claim", "hospital"), t, "zh-Hans")]
    for parse in parsers:
        with pytest.raises(Interrupted) as info:
            parse(text)
        assert isinstance(info.value.interruption, Cancel)


@pytest.mark.parametrize("text", ["放弃治疗了", "不办了他说的", "算了吧我再想想", "cancel my pension"])
def test_a_sentence_that_says_more_than_cancel_is_not_a_cancel(text):
    """A cancel word inside a sentence that says something else is read as what it says, not as a cancel."""
    assert not isinstance(answers.interruption(text), Cancel)


QUESTIONS = ["什么意思？", "什么意思", "這個怎麼填", "这个怎么填", "要填什么", "我不懂", "咩意思", "点填？", "哪个医院?",
             "What does this mean?", "I don't understand"]


@pytest.mark.parametrize("text", QUESTIONS)
def test_a_question_at_a_free_text_step_is_a_question_not_the_answer(text):
    """什么意思？ typed where a hospital name is asked is a Question for the Runner, never saved as the name."""
    assert isinstance(answers.interruption(text, free_text=True), Question)
    with pytest.raises(Interrupted) as info:
        parse_text(step("mutual_aid_claim", "hospital"), text, "zh-Hans")
    assert isinstance(info.value.interruption, Question) and "医院" in str(info.value)


@pytest.mark.parametrize("text", ["江门市中心医院", "人民医院住院部", "我老伴生病了，医药费一直很贵，不知道能不能多帮一点？",
                                  "St Mary's Hospital", "厂"])
def test_ordinary_free_text_answers_are_answers(text):
    """A hospital name, a long description that happens to end in '?', a one-character unit: saved as typed
    (in the normal form every answer is kept in)."""
    assert answers.interruption(text, free_text=True) is None
    assert parse_text(step("mutual_aid_claim", "hospital"), text, "zh-Hans") == clean_text(text)


@pytest.mark.parametrize(("text", "value"), [("1", "child"), ("第一个", "child"), ("一", "child"), ("选2", "spouse"),
                                             ("第二項", "spouse"), ("子女", "child"), ("配偶", "spouse")])
def test_choices_are_read_by_number_ordinal_or_label(text, value):
    """A choice by its digit, a Chinese ordinal (第一个) or its words."""
    # The relationships are the one list linking uses too: child first, then spouse.
    assert [o.value for o in step("death_report", "relationship").options][:2] == ["child", "spouse"]
    assert parse_choice(step("death_report", "relationship"), text, "zh-Hans") == value


def test_a_claim_is_made_from_natural_answers_end_to_end(engine, notifier, roll, db_engine):
    """Li claims with 1月5号到20号, 一萬二, 係呀: the application holds the dates, 1,200,000 fen and yes."""
    chat = Chat(engine, "telegram", "natural-claim")
    link(chat, notifier, LI_PHONE)
    chat("2")
    chat("1月5号到20号")
    chat("江门市中心医院")
    chat("一萬二")
    chat("係呀")
    chat("跳过")
    chat("跳过")
    assert "12000元" in chat.last[0].text
    chat("1")
    with Session(db_engine) as s:
        app = s.exec(select(Application)).one()
    assert app.data["stay"] == {"start": "2026-01-05", "end": "2026-01-20"}
    assert app.data["amount"] == 1200000 and app.data["serious_illness"] == "yes"


def test_a_question_at_the_hospital_step_is_not_saved_as_the_hospital(engine, notifier, roll):
    """什么意思？ at the hospital-name step leaves the step unanswered: the same question is asked again."""
    chat = Chat(engine, "telegram", "natural-question")
    link(chat, notifier, LI_PHONE)
    chat("2")
    chat("2026-1-5到2026-1-20")
    assert chat.state() == ("mutual_aid_claim", "hospital")
    text = chat("什么意思？")
    assert chat.state() == ("mutual_aid_claim", "hospital")
    assert "哪家医院" in text


def test_a_veteran_gives_dates_in_chinese_numerals_and_two_digit_years(engine, notifier, roll, db_engine):
    """Enlistment 九八年十二月 and discharge 零二年十二月 are months; the summary shows the months."""
    chat = Chat(engine, "telegram", "natural-veteran")
    link(chat, notifier, ZHANG_PHONE)
    chat("1")
    chat("是的呀")
    chat("没有没有")
    chat("1")
    chat("张三")
    chat(ZHANG_ID)
    chat("九八年十二月")
    chat("零二年十二月")
    assert chat.state() == ("veteran_insurance", "placement_unit")


def test_a_policy_question_at_a_choice_step_is_answered_and_the_choice_asked_again(engine, notifier, roll, fake_qa):
    """A sentence asking about policy where 1 or 2 is expected gets the article, then the same choice again;
    the step is not answered by it and the choice still works afterwards."""
    chat = Chat(engine, "telegram", "question-at-choice")
    chat("1")
    before = chat.state()
    text = chat("你好，我想问下医疗互助每年要交几多钱")
    assert "每年交100元" in text and "我们接着刚才的事" in text and "请问是谁要办事" in text
    assert chat.state() == before
    assert chat.last[-1].choices  # the choice's buttons come back with it


def test_a_sentence_at_a_choice_step_that_no_article_answers_gets_the_steps_own_help(engine, notifier, roll, fake_qa):
    """A sentence no article answers confidently is left to the step: no ticket, no answer made up."""
    chat = Chat(engine, "telegram", "sentence-at-choice")
    chat("1")
    before = chat.state()
    text = chat("我也不太清楚这个要怎么选才好")
    assert "每年交" not in text and "我们接着刚才的事" not in text
    assert chat.state() == before


@pytest.mark.parametrize("typed", ["取消", "不办了", "唔辦了"])
def test_a_cancel_word_while_linking_is_understood_not_refused_as_a_wrong_number(engine, notifier, roll, typed):
    """取消 at "who is this for?" gets the same answer as at any step of a flow: how to stop, and the question."""
    chat = Chat(engine, "telegram", f"cancel-linking-{typed}")
    chat("1")
    before = chat.state()
    text = chat(typed)
    assert "这次可以不办" in text and "请问是谁要办事" in text and "请回复数字" not in text
    assert chat.state() == before
    assert "请回复数字" in chat("0")


@pytest.mark.parametrize(("flow", "step_id", "text", "value"), [
    ("hardship", "kind", "看病", "medical"),
    ("hardship", "kind", "主要是看病花钱多", "medical"),
    ("hardship", "kind", "家里没人照顾", "care"),
    ("hardship", "kind", "睇病", "medical"),
    ("hardship", "kind", "睇病使錢多", "medical"),
    ("hardship", "kind", "屋企冇人照顧", "care"),
    ("hardship", "kind", "生活費唔夠", "living"),
    ("veteran_insurance", "after_placement", "都没有", "none"),
    ("veteran_insurance", "after_placement", "没有", "none"),
    ("veteran_insurance", "after_placement", "none of those", "none"),
    ("veteran_insurance", "after_placement", "Nothing.", "none"),
    ("veteran_insurance", "after_placement", "自己辞职", "left"),
    ("veteran_insurance", "after_placement", "I was dismissed", "dismissed"),
])
def test_a_choice_is_read_from_the_words_of_one_option(flow, step_id, text, value):
    """Older people type what they mean, not its digit: the one option whose words the reply holds (or that holds
    the reply), and "none of these" for a reply that says none."""
    assert parse_choice(step(flow, step_id), text, "zh-Hans") == value


@pytest.mark.parametrize("text", ["我没有被判过刑", "没被开除", "not dismissed", "被", "单位"])
def test_a_negated_or_unclear_reply_names_no_option(text):
    """"我没有被判过刑" must never pick 被判过刑 (it ends the application): a negation names only an option whose own
    words hold one, and a word several options share, or a single character, names none; the choice is asked again."""
    with pytest.raises(Invalid):
        parse_choice(step("veteran_insurance", "after_placement"), text, "zh-Hans")


@pytest.mark.parametrize("text", ["谢谢", "收到", "好的谢谢", "thank you", "ok thanks"])
def test_thanks_at_a_text_step_is_not_saved_as_the_answer(text):
    """"thank you" typed where the situation or a hospital is asked is said to us: refused kindly (the step asks again),
    never saved as the description; a description that begins with thanks is the description."""
    with pytest.raises(Invalid) as info:
        parse_text(step("mutual_aid_claim", "hospital"), text, "zh-Hans")
    assert "还需要您写几句" in str(info.value)
    described = "谢谢你们帮忙，我老伴瘫痪在床"
    assert parse_text(step("mutual_aid_claim", "hospital"), described, "zh-Hans") == clean_text(described)


@pytest.mark.parametrize(("typed", "none"), [
    ("没有", True), ("没有啊", True), ("冇收入", True), ("一分都冇", True), ("none", True), ("No income.", True),
    ("没有多少", False), ("一千五", False), ("不知道", False),
])
def test_saying_there_is_no_money_is_read_as_none_with_particles_and_cantonese(typed, none):
    """Where an amount may be 0, 没有 said with a particle (没有啊) or in Cantonese (冇收入, 一分都冇) is none; 没有多少
    (not much) and an amount are not, and 不知道 is not knowing rather than none."""
    assert answers.no_amount(typed) is none


@pytest.mark.parametrize("text", ["我要办申请", "我想申请", "申请", "我要办事", "想办点事", "办理业务", "我想办个手续",
                                  "我要申请一下", "我想提交个申请", "我要辦申請", "你好，我想办事", "I want to apply",
                                  "apply", "I'd like to make an application", "new application"])
def test_wanting_to_apply_without_saying_for_what_is_wanting_some_service(text):
    """我要办申请 / 我想办点事 / I want to apply, in the three languages: the person wants a service and has not
    said which."""
    assert answers.wants_some_service(text)


@pytest.mark.parametrize("text", ["我要申请困难帮扶", "怎么申请", "申请什么时候批下来", "我的申请", "我要办医疗互助报销",
                                  "办好了", "I want to apply for hardship help", "how do I apply", "我要找人"])
def test_naming_the_service_or_asking_about_applying_is_not_wanting_some_service(text):
    """A named service, a question about applying, one's own application or a report that it is done are read for
    what they say."""
    assert not answers.wants_some_service(text)
