"""What people write is matched to the services first; an article answers policy questions; a ticket is last."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlmodel import Session, select

from bot.language import to_simplified
from models.applications import Application, HandoffTicket
from models.db import session_scope
from tests.bot.conftest import LI_PHONE, WANG_PHONE, ZHANG_PHONE, Chat, link


def tickets(db_engine) -> list[HandoffTicket]:
    with Session(db_engine) as s:
        return list(s.exec(select(HandoffTicket)).all())


def test_a_death_in_plain_words_is_offered_the_death_report_not_an_article(engine, notifier, roll, db_engine,
                                                                           fake_qa):
    """"我爸爸昨天晚上走了": the death report is offered; the Q&A is not asked and no ticket opens."""
    chat = Chat(engine, "telegram", "sf1")
    link(chat, notifier, "+8615000003333", proxy="1")
    text = chat("我爸爸昨天晚上走了")
    assert "要报告家人去世吗" in text and "回复1" in text
    assert fake_qa.asked == [] and tickets(db_engine) == []
    assert "身份证号" in chat("1")
    assert chat.state()[0] == "death_report"


def test_reporting_a_hospital_stay_in_words_offers_the_report(engine, notifier, roll, db_engine):
    """"我要报告住院" is the hospital report; yes starts it at its first question."""
    chat = Chat(engine, "telegram", "sf2")
    link(chat, notifier, ZHANG_PHONE)
    assert "要报告住院吗" in chat("我要报告住院")
    assert "哪家医院" in chat("是的")
    assert chat.state() == ("hospital_stay", "hospital")


def test_where_is_my_application_shows_it_at_once(engine, notifier, roll, db_engine):
    """"我的申请怎么样了" is answered from the person's own applications, without an offer to accept."""
    with session_scope(db_engine) as s:
        s.add(Application(reference="NX-2026-000042", type="hardship", beneficiary_id=roll.zhang, stage="accepted"))
    chat = Chat(engine, "sms", ZHANG_PHONE)
    text = chat("我的申请怎么样了")
    assert "NX-2026-000042" in text and tickets(db_engine) == []


def test_a_question_about_policy_gets_the_article_even_when_it_names_a_service(engine, roll, db_engine, fake_qa):
    """"医疗互助一年交多少钱" asks about the rules: the article answers it, no claim is offered."""
    chat = Chat(engine, "telegram", "sf4")
    text = chat("医疗互助一年交多少钱")
    assert "每年交100元" in text and "要申请医疗互助报销吗" not in text
    assert fake_qa.asked == ["医疗互助一年交多少钱"]


def test_a_policy_question_no_article_answers_is_offered_its_service_before_a_ticket(engine, roll, db_engine,
                                                                                     fake_qa):
    """When no article answers a question that names a service, the service is offered instead of a ticket."""
    chat = Chat(engine, "telegram", "sf5")
    text = chat("住院探视需要什么条件")
    assert "要报告住院吗" in text and tickets(db_engine) == []


def test_a_question_about_another_places_service_is_told_why_and_goes_to_staff_without_an_offer(engine, roll,
                                                                                                 db_engine, fake_qa):
    """The Q&A hands off "上杭县的医疗互助一年交多少钱" as another place's rule: the person reads that
    reply with a ticket number, and this office's claim is not offered in its place."""
    elsewhere = "您问的是上杭县的规定。我这里的资料讲的是永定的做法，不能代表上杭县。"
    fake_qa.handoffs["上杭县"] = SimpleNamespace(handoff=True, answer=elsewhere, sources=[], lang="zh-Hans",
                                               reason="out_of_scope", article_id=None, score=0.0, sms=elsewhere,
                                               detail="other_place")
    chat = Chat(engine, "telegram", "sf5b")
    text = chat("上杭县的医疗互助一年交多少钱")
    assert text.startswith(elsewhere) and "要申请医疗互助报销吗" not in text
    assert [t.reason for t in tickets(db_engine)] == ["out_of_scope"]


def test_saying_no_to_the_offer_goes_to_the_menu_without_a_ticket(engine, notifier, roll, db_engine):
    """"不是" after the offer: the menu, nothing opened."""
    chat = Chat(engine, "telegram", "sf6")
    chat("我要报告住院")
    text = chat("不是")
    assert "请选菜单里要办的事" in text and "1. 退役士兵社保接续" in text
    assert chat.state() == (None, None) and tickets(db_engine) == []


def test_a_menu_number_after_an_offer_is_the_menu_item(engine, notifier, roll, db_engine):
    """Anything but yes or no after the offer is read afresh: "3" picks hardship help."""
    chat = Chat(engine, "telegram", "sf7")
    link(chat, notifier, ZHANG_PHONE)
    chat("我要报告住院")
    assert "哪方面的困难" in chat("3")


def test_words_that_fit_neither_a_service_nor_an_article_become_a_ticket(engine, roll, db_engine):
    """The ticket is the last resort, and it is still there for what nothing else fits."""
    chat = Chat(engine, "telegram", "sf8")
    assert "转给" in chat("我家楼下的路灯坏了好几天了") and "编号1" in chat.last[0].text
    assert len(tickets(db_engine)) == 1


def test_another_service_asked_for_at_a_choice_step_is_offered_as_a_switch_that_keeps_the_answers(
        engine, notifier, roll, db_engine):
    """"我爸爸住院了，我要报告住院" typed where the hardship form expects a choice: the report is offered, the form is not
    answered by it, and yes keeps the form's answers for later and starts the report."""
    chat = Chat(engine, "telegram", "sf-switch")
    link(chat, notifier, ZHANG_PHONE)
    chat("3")
    before = chat.state()
    text = chat("我爸爸住院了，我要报告住院")
    assert "要报告住院吗" in text and "会先保存" in text
    assert chat.state() == before and tickets(db_engine) == []
    assert "哪家医院" in chat("1")
    assert chat.state() == ("hospital_stay", "hospital")
    assert "哪方面的困难" in chat("0") + chat("3")  # the hardship form again, where it was left


def test_saying_no_to_a_switch_goes_on_with_the_step_under_way(engine, notifier, roll, db_engine):
    """2 after the switch offer: back to the same question of the same flow, nothing opened."""
    chat = Chat(engine, "telegram", "sf-switch-no")
    link(chat, notifier, ZHANG_PHONE)
    chat("3")
    before = chat.state()
    chat("我爸爸住院了，我要报告住院")
    text = chat("2")
    assert "我们接着刚才的事" in text and "哪方面的困难" in text
    assert chat.state() == before and tickets(db_engine) == []


def test_a_service_asked_for_while_linking_for_it_is_not_offered_again(engine, notifier, roll, db_engine):
    """Linking on the way to the hardship form, "我想申请困难帮扶，生活很困难" is no switch: the linking step explains itself."""
    chat = Chat(engine, "telegram", "sf-switch-same")
    chat("3")
    text = chat("我想申请困难帮扶，生活很困难")
    assert "会先保存" not in text and "请问是谁要办事" in text
    other = Chat(engine, "telegram", "sf-switch-other")
    other("1")  # linking on the way to another service: the same words are a switch
    assert "会先保存" in other("我想申请困难帮扶，生活很困难")


def test_asking_where_ones_application_is_in_the_middle_of_a_form_shows_it_at_once(
        engine, notifier, roll, db_engine):
    """A linked person asks about their application where the hardship form expects a choice: it is shown at
    once, with no yes-or-no offer in front of it; unlinked, the linking under way says it comes first and asks its question again."""
    with session_scope(db_engine) as s:
        s.add(Application(reference="NX-2026-000077", type="hardship", beneficiary_id=roll.zhang, stage="accepted"))
    chat = Chat(engine, "telegram", "sf-report-in-flow")
    link(chat, notifier, ZHANG_PHONE)
    chat("3")
    text = chat("我的申请怎么样了，办到哪一步了")
    assert "NX-2026-000077" in text and "回复1" not in text.split("NX-2026-000077")[0]
    stranger = Chat(engine, "telegram", "sf-report-unlinked")
    stranger("3")
    text = stranger("我的申请怎么样了，办到哪一步了")
    assert "NX-2026" not in text and "会先保存" not in text
    assert "需要先确认您的身份" in text and "请问是谁要办事" in text


def test_hardship_help_asked_for_as_a_subsidy_with_fillers_is_offered_as_a_switch(engine, notifier, roll, db_engine):
    """"我想申请 那个 困难补助" (the subsidy's everyday name, with spaces and a filler) typed at a yes/no step of the
    veterans' form: hardship help is offered as a switch, not refused as a wrong answer."""
    chat = Chat(engine, "telegram", "sf-switch-subsidy")
    link(chat, notifier, ZHANG_PHONE)
    chat("1")
    before = chat.state()
    text = chat("我想申请 那个 困难补助")
    assert "要申请困难帮扶吗" in text and "会先保存" in text
    assert chat.state() == before and tickets(db_engine) == []


@pytest.mark.parametrize("typed", ["你好呀", "喂喂，在吗？", "Good morning!", "算啦唔搞了"])
def test_a_greeting_or_a_cancel_word_at_the_menu_gets_the_menu_not_a_ticket(engine, roll, db_engine, fake_qa, typed):
    """A greeting (or a cancel word with nothing under way) is answered with the menu: it is no question for staff."""
    chat = Chat(engine, "telegram", f"sf-hello-{typed}")
    text = chat(typed)
    assert "1." in text and ("退役士兵社保接续" in text or "Veterans" in text)
    assert tickets(db_engine) == [] and fake_qa.asked == []


def test_a_policy_question_typed_where_a_date_is_asked_is_answered_and_the_date_asked_again(engine, notifier, roll,
                                                                                          db_engine, fake_qa):
    """"医疗互助一年交多少钱" at "哪天住进去的？": the article answers it, the date is asked again, nothing is entered
    and no ticket opens; a question no article is sure of goes to staff, and the date is asked again (it is never
    refused as a bad date, nor read as one)."""
    chat = Chat(engine, "telegram", "sf-date-question")
    link(chat, notifier, ZHANG_PHONE)
    chat("4")
    chat("人民医院")
    before = chat.state()
    text = chat("医疗互助一年交多少钱")
    assert "每年交100元" in text and "哪天住进去的" in text
    assert chat.state() == before and tickets(db_engine) == []
    text = chat("钱什么时候能到")
    assert "编号" in text and "哪天住进去的" in text and chat.state() == before
    assert [tk.question for tk in tickets(db_engine)] == ["钱什么时候能到"]


class _AsksForPersonQA:
    """The Q&A's reading of a request for a person in words (bot/qa_rules.py), or no article for anything else."""

    def answer(self, question: str, lang_hint: str | None = None, after: str | None = None) -> object:
        from types import SimpleNamespace
        reason = "asked_for_person" if "叫人" in question else "out_of_scope"
        return SimpleNamespace(handoff=True, answer="好的，已经为您转给工作人员。", sources=[], lang=lang_hint or "zh-Hans",
                               reason=reason, article_id=None, score=0.0, sms="", detail=reason)


def test_asking_for_a_person_in_words_inside_a_form_reaches_staff_and_keeps_the_form(db_engine, settings, clock,
                                                                                     notifier, roll):
    """"我手机不会弄，能不能叫人给我打个电话" where a choice is asked, or "可唔可以打電話俾我" where the situation is to be
    described: a ticket for staff and the same step again, nothing entered; a remark that asks nothing and asks for no
    one ("我腿脚不好") opens no ticket."""
    from bot.engine import Engine
    engine = Engine(db_engine, settings, clock, qa=_AsksForPersonQA(), notifier=notifier)
    try:
        chat = Chat(engine, "telegram", "sf-person-in-form")
        link(chat, notifier, ZHANG_PHONE)
        chat("3")
        before = chat.state()
        text = chat("我腿脚不好")
        assert "编号" not in text and tickets(db_engine) == [] and chat.state() == before
        text = chat("我手机不会弄，叫人给我打个电话")
        assert "转给工作人员" in text and "编号" in text and "我们接着刚才的事" in text
        assert chat.state() == before and chat.last[-1].choices
        assert [tk.reason for tk in tickets(db_engine)] == ["asked_for_person"]
        chat("1")  # 看病花钱多: the next step asks for the situation in the person's own words
        described = chat.state()
        text = chat("我想搵個真人傾下，可唔可以打電話俾我")
        assert "我们接着刚才的事" in text or "我們接着剛才的事" in text
        assert chat.state() == described  # not saved as the description
    finally:
        engine.close()


@pytest.mark.parametrize("typed", ["您好，我是帮我爸问的", "我替我妈来办事", "我係幫我阿媽問嘅", "我是他女儿，帮我爸问一下",
                                   "我是她儿子", "我系佢个仔", "我是他哥哥", "I am her grandson", "I'm asking for my dad", "I am his daughter"])
def test_saying_only_whom_one_asks_for_gets_a_welcome_and_the_menu_not_a_ticket(engine, roll, db_engine, fake_qa,
                                                                                 typed):
    """A family member's opening ("我是帮我爸问的") asks nothing yet: they are told family may ask and apply, and
    shown the menu; no ticket opens and the Q&A is not asked."""
    chat = Chat(engine, "telegram", f"sf-for-{typed}")
    text = chat(typed)
    assert ("家属替老人问" in text and "1. 退役士兵社保接续" in text) or ("家屬替老人問" in text and "1. 退役士兵社保接續" in text) \
        or ("family members can ask and apply" in text and "1. Veterans' social-insurance continuation" in text)
    assert tickets(db_engine) == [] and fake_qa.asked == []


@pytest.mark.parametrize("typed", ["收到", "好的", "谢谢你们", "你好，收到了", "ok thanks"])
def test_an_acknowledgement_at_the_menu_gets_a_short_reply_not_a_ticket(engine, roll, db_engine, fake_qa, typed):
    """收到 / 好的 after a notice asks nothing: one short line back (an SMS segment, not the menu), no ticket, and the
    Q&A is not asked."""
    chat = Chat(engine, "telegram", f"sf-ack-{typed}")
    text = chat(typed)
    assert ("有事随时发消息给我们" in text or "Write to us any time" in text) and "1." not in text
    assert tickets(db_engine) == [] and fake_qa.asked == []


@pytest.mark.parametrize(("typed", "said"), [("你是机器人吗", "不是真人"), ("你是真人还是机器人？", "不是真人"),
                                           ("你係唔係機械人", "不是真人"), ("are you a real person?", "not a person")])
def test_asking_whether_a_person_answers_is_told_plainly_and_how_to_reach_one(engine, roll, db_engine, settings,
                                                                            fake_qa, typed, said):
    """你是机器人吗 / are you a real person: told at once that this is the office's automatic service, with the word
    for a person (人工 / human) and the public phone; no ticket, and the Q&A is not asked."""
    chat = Chat(engine, "telegram", f"sf-bot-{typed}")
    text = chat(typed).replace("眞人", "真人")
    assert said in text and settings.office_phone in text and ("人工" in text or '"human"' in text), text
    assert tickets(db_engine) == [] and fake_qa.asked == []


@pytest.mark.parametrize("typed", ["你们是哪个单位的", "怎么联系你们？", "你們電話多少", "who are you"])
def test_a_question_about_the_office_itself_is_answered_with_its_name_and_public_phone(engine, roll, db_engine,
                                                                                       settings, typed):
    """你们是哪个单位的 / 怎么联系你们 is answered from the office's settings (its name, its public phone), not
    passed to staff as a ticket."""
    chat = Chat(engine, "telegram", f"sf-us-{typed}")
    text = chat(typed)
    assert settings.office_phone in text and tickets(db_engine) == []
    assert "暖心服务" in text or "Nuanxin" in text or "暖心服務" in text


def test_a_service_asked_for_in_cantonese_words_is_offered(engine, roll, db_engine, fake_qa):
    """"生活費唔夠" (生活费不够 in Cantonese words) at the menu: the hardship form is offered, as for Mandarin; no
    ticket opens."""
    chat = Chat(engine, "telegram", "sf-cantonese-service")
    text = chat("生活費唔夠")
    assert "困難幫扶" in text or "困难帮扶" in text
    assert tickets(db_engine) == []


@pytest.mark.parametrize("typed", ["年审啥时候要做", "年審點樣做", "When is the yearly check due?"])
def test_a_question_naming_a_service_asks_the_articles_before_the_service_is_offered(engine, roll, db_engine, fake_qa,
                                                                                    typed):
    """"年审啥时候要做" (and 點樣, "when is") asks about the certification: the articles are asked first; none is sure
    here, so the certification is offered; no ticket opens."""
    chat = Chat(engine, "telegram", f"sf-asks-{typed}")
    text = chat(typed)
    assert fake_qa.asked
    assert "认证" in text or "認證" in text or "certification" in text
    assert tickets(db_engine) == []


@pytest.mark.parametrize(("typed", "offered"), [
    ("我爸前天住进县医院了", "要报告住院吗"),
    ("昨天晚上我妈被救护车拉到医院了", "要报告住院吗"),
    ("爷爷摔了一跤现在在镇卫生院住着", "要报告住院吗"),
    ("阿爸入咗人民医院", "要报告住院"),
    ("家里老爷子上个月走了", "要报告家人去世吗"),
    ("俺爹昨儿个走的", "要报告家人去世吗"),
    ("我老伴今早咽气了", "要报告家人去世吗"),
    ("日子实在过不下去了", "困难帮扶"),
    ("看病的钱不够", "困难帮扶"),
    ("我是复员军人，社保怎么接上", "社保接续"),
    ("我老伴上个月住院了，花了一万多，能报多少", "医疗互助报销"),
])
def test_a_service_told_as_what_happened_with_a_place_or_a_family_word_between_is_offered(
        engine, roll, db_engine, fake_qa, typed, offered):
    """Older people tell what happened rather than name the service: a hospital named between the words
    (住进县医院), a family word of the north (俺爹, 老爷子) or a plain word for dying (咽气), hardship said
    as "日子过不下去", money back for a stay as "能报多少" (the mutual-aid claim, not the report of a stay). Each is
    offered its service before any article or ticket."""
    chat = Chat(engine, "telegram", f"sf-told-{typed}")
    text = chat(typed)
    assert offered in text.replace("報告", "报告").replace("幫扶", "帮扶")
    assert tickets(db_engine) == []


def test_what_the_sentence_already_told_is_not_asked_again(engine, notifier, roll, db_engine):
    """"我爸前天住进县医院了" (on 2 March) accepted as a hospital report: the hospital (县医院) and the day (28 February)
    are taken from the sentence and said back, the ward is asked next, and back returns to the day and the hospital."""
    chat = Chat(engine, "telegram", "sf-told-hospital")
    link(chat, notifier, ZHANG_PHONE)
    assert "要报告住院吗" in chat("我爸前天住进县医院了")
    assert_hospital_and_day_taken_then_back_undoes_them(chat, chat("1"))


def assert_hospital_and_day_taken_then_back_undoes_them(chat: Chat, text: str) -> None:
    """县医院 and 28 February said back with the ward asked next; back returns to the day, then the hospital."""
    assert "医院：县医院" in text and "2026-02-28" in text and "科室和床号" in text
    assert chat.state() == ("hospital_stay", "ward")
    assert "哪天住进去" in chat("返回")
    assert "哪家医院" in chat("返回")


def test_a_reply_that_tells_more_than_its_step_asks_is_read_like_the_opening_sentence(
        engine, notifier, roll, db_engine):
    """Asked "在哪家医院住院？", "我爸前天住进县医院了" gives the hospital as 县医院 (not the whole sentence) and the
    day (28 February), says both back and asks the ward; a reply that is only the name is kept as typed."""
    chat = Chat(engine, "telegram", "sf-told-reply")
    link(chat, notifier, ZHANG_PHONE)
    chat("我妈住院了")
    assert "哪家医院" in chat("1")
    assert_hospital_and_day_taken_then_back_undoes_them(chat, chat("我爸前天住进县医院了"))
    assert "哪天住进去" in chat("市第一人民医院")
    assert chat.state() == ("hospital_stay", "admitted_on")


def test_a_sentence_that_names_no_hospital_asks_for_it(engine, notifier, roll, db_engine):
    """"我妈住院了" tells neither the hospital nor the day: both are asked, the hospital first, nothing is made up."""
    chat = Chat(engine, "telegram", "sf-told-nothing")
    link(chat, notifier, ZHANG_PHONE)
    chat("我妈住院了")
    text = chat("1")
    assert "哪家医院" in text and "记下了" not in text
    assert chat.state() == ("hospital_stay", "hospital")


@pytest.mark.parametrize(("text", "lang", "asked"), [("我要办申请", "zh-Hans", "您要办哪一项"),
                                                     ("我想辦點事", "zh-Hant", "您要辦哪一項"),
                                                     ("I want to apply", "en", "Which of these would you like to do")])
def test_wanting_to_apply_without_saying_for_what_shows_the_services_not_a_ticket(engine, roll, db_engine, fake_qa,
                                                                                  text, lang, asked):
    """"我要办申请" names no service: the services are listed to choose from, in the person's language; the Q&A
    is not asked and no ticket opens, also when a ticket of theirs is already open."""
    chat = Chat(engine, "telegram", f"sf-any-{lang}", hint=lang)
    chat("人工")  # an open ticket of theirs, which a request for a service must not join
    before = [(t.id, len(t.transcript or [])) for t in tickets(db_engine)]
    reply = chat(text)
    assert asked in reply and "1." in reply and "2." in reply
    assert fake_qa.asked == []
    assert [(t.id, len(t.transcript or [])) for t in tickets(db_engine)] == before


def test_a_question_after_an_answered_one_is_asked_as_its_follow_up(engine, roll, db_engine, fake_qa, clock):
    """"那住院能补多少" after "医疗互助一年交多少钱" was answered: the Q&A is given the question it follows, so that
    a follow-up without a subject of its own can be read through it; the first question was asked alone."""
    chat = Chat(engine, "telegram", "fu1")
    assert "每年交100元" in chat("医疗互助一年交多少钱")
    chat("那住院能补多少")
    assert fake_qa.asked == ["医疗互助一年交多少钱", "那住院能补多少"]
    assert fake_qa.after == [None, "医疗互助一年交多少钱"]


def test_a_question_half_an_hour_after_the_last_is_asked_on_its_own(engine, roll, db_engine, fake_qa, clock):
    """A question more than FOLLOW_UP_WINDOW after the last answered one starts afresh: it is not read through it."""
    from bot.engine import FOLLOW_UP_WINDOW

    chat = Chat(engine, "telegram", "fu2")
    chat("医疗互助一年交多少钱")
    clock.advance(FOLLOW_UP_WINDOW + timedelta(minutes=1))
    chat("要带什么材料")
    assert fake_qa.after == [None, None]


def test_a_question_after_a_handed_off_one_is_not_read_through_it(engine, roll, db_engine, fake_qa):
    """Only an answered question (or one a service was offered for) is followed: a question staff are to answer gives
    nothing to lean on."""
    chat = Chat(engine, "telegram", "fu3")
    chat("我爸今年85了有没有高龄补贴")  # no article (FakeQA): handed off
    chat("那要自己交钱吗")
    assert fake_qa.after == [None, None]


def test_a_follow_up_answered_through_the_question_before_keeps_that_question_to_follow(engine, roll, db_engine,
                                                                                       fake_qa):
    """Answered as a follow-up, the third question still follows the first: the second said no subject of its own."""
    from types import SimpleNamespace

    chat = Chat(engine, "telegram", "fu4")
    chat("医疗互助一年交多少钱")
    fake_qa.handoffs["材料"] = SimpleNamespace(handoff=False, answer="带身份证。\n\n来源：医疗互助", sources=["医疗互助"],
                                             lang="zh-Hans", reason="answered", article_id="mutual-where-claim",
                                             score=0.95, sms="带身份证", detail="", followed=True)
    assert "带身份证" in chat("要带什么材料")
    chat("在哪里办")
    assert fake_qa.after == [None, "医疗互助一年交多少钱", "医疗互助一年交多少钱"]


def test_asking_after_ones_own_claim_goes_to_staff_not_to_a_new_claim(engine, roll, db_engine, fake_qa):
    """"has my claim gone through?" names the mutual-aid claim, but asks about the person's own case (the Q&A
    hands it off as such): staff get it with a ticket number; a new claim is not offered."""
    fake_qa.handoffs["gone through"] = SimpleNamespace(handoff=True, answer="", sources=[], lang="en",
                                                       reason="personal_case", article_id=None, score=0.0, sms="",
                                                       detail="personal_case")
    chat = Chat(engine, "telegram", "own-claim", hint="en")
    text = chat("has my mutual aid claim gone through?")
    assert "ticket" in text and "Do you want to" not in text
    assert [t.reason for t in tickets(db_engine)] == ["personal_case"]


def test_asking_where_a_named_service_is_applied_for_gets_the_article_not_the_service(engine, roll, db_engine,
                                                                                      fake_qa):
    """"医疗互助的住院补助要去哪里申请" asks where the claim is made: the article answers; the claim is not
    offered in its place. "我的申请在哪里" still shows the person's own records (the report)."""
    chat = Chat(engine, "telegram", "sf-where")
    text = chat("医疗互助的住院补助要去哪里申请")
    assert "每年交100元" in text and "要申请医疗互助报销吗" not in text
    assert fake_qa.asked == ["医疗互助的住院补助要去哪里申请"]


@pytest.mark.parametrize(("phone", "typed", "offered", "reply", "taken", "asked"), [
    (ZHANG_PHONE, "我爸要做养老金认证", "要办养老金资格认证吗", "他瘫在床上", ("行动不便，请工作人员上门", "残疾或卧床"),
     "请核对"),
    (WANG_PHONE, "my dad needs the pension certification", "pension eligibility certification",
     "my dad is bedridden and lives alone", ("visit me at home",), "Why is a home visit needed"),
])
def test_a_reply_to_an_offer_that_tells_what_the_service_asks_first_starts_it_with_that_taken(
        engine, notifier, roll, db_engine, fake_qa, phone, typed, offered, reply, taken, asked):
    """Offered the certification, "他瘫在床上" (he is bedridden) is neither yes nor no but says how it must be done:
    the service starts with a home visit (and, when the reason is plain, why) said back, and asks what is left;
    two reasons told ("bedridden and lives alone") leave the reason to be chosen. No ticket is opened."""
    chat = Chat(engine, "telegram", f"sf-offer-told-{phone}")
    link(chat, notifier, phone)
    assert offered in chat(typed)
    text = chat(reply)
    assert all(fact in text for fact in taken) and asked in text, text
    assert chat.state()[0] == "certification"
    assert tickets(db_engine) == []


def test_a_reply_to_an_offer_that_tells_nothing_it_asks_is_read_as_new_words(engine, notifier, roll, db_engine,
                                                                            fake_qa):
    """After the offer of the certification, "医疗互助一年交多少钱" is a question of its own: no service is started."""
    chat = Chat(engine, "telegram", "sf-offer-told-nothing")
    link(chat, notifier, ZHANG_PHONE)
    chat("我爸要做养老金认证")
    chat("医疗互助一年交多少钱")
    assert chat.state()[0] != "certification"


def test_a_reply_at_the_how_step_that_tells_the_way_and_the_reason_takes_both(engine, notifier, roll, db_engine):
    """Asked how to certify, "他躺在床上起不来，出不了门" names no option but tells both a home visit and its reason
    (bedridden): both are said back and the summary is shown to confirm."""
    chat = Chat(engine, "telegram", "sf-how-told")
    link(chat, notifier, ZHANG_PHONE)
    chat("6")
    assert chat.state() == ("certification", "method")
    text = chat("他躺在床上起不来，出不了门")
    assert "行动不便，请工作人员上门" in text and "残疾或卧床" in text and "请核对" in text, text
    assert chat.state() == ("certification", "confirm")


def test_the_kind_of_hardship_the_sentence_tells_is_not_asked_again(engine, notifier, roll, db_engine):
    """"看病的钱不够" accepted as a request for hardship help: the kind (medical costs) is said back and the
    situation asked next; "房顶漏雨，没人修" after "日子过不下去了" tells two kinds, so the kind is asked."""
    chat = Chat(engine, "telegram", "sf-told-hardship")
    link(chat, notifier, ZHANG_PHONE)
    assert "困难帮扶" in chat("看病的钱不够")
    text = chat("1")
    assert "困难类型：看病花钱多" in text and chat.state() == ("hardship", "situation"), text
    chat = Chat(engine, "telegram", "sf-told-hardship-two")
    link(chat, notifier, LI_PHONE)
    assert "困难帮扶" in chat("我爸日子过不下去了")
    assert "哪方面的困难" in chat("房顶漏雨，没人修")
    assert chat.state() == ("hardship", "kind")


@pytest.mark.parametrize("phone,reply", [
    (ZHANG_PHONE, "他没瘫在床上"),
    (ZHANG_PHONE, "他不是卧床的"),
    (WANG_PHONE, "he is not bedridden"),
])
def test_a_reply_that_denies_what_an_option_tells_does_not_take_it(engine, notifier, roll, db_engine, phone, reply):
    """Asked how to certify, a reply that denies being bedridden ("他没瘫在床上", "he is not bedridden") must not
    be taken as a request for a home visit: the way is asked again."""
    chat = Chat(engine, "telegram", f"sf-told-denied-{phone}-{reply}")
    link(chat, notifier, phone)
    chat("6")
    assert chat.state() == ("certification", "method")
    chat(reply)
    assert chat.state() == ("certification", "method")


@pytest.mark.parametrize(("typed", "said"), [("我不会弄这个", "直接打字"), ("字太小看不清", "把字调大"),
                                           ("唔識用呢個", "直接打字"), ("how do i use this", "type")])
def test_trouble_with_the_chat_itself_gets_a_short_guide_and_the_menu_not_a_ticket(engine, roll, db_engine, settings,
                                                                                  fake_qa, typed, said):
    """我不会弄这个 / 字太小看不清 / how do I use this: told in a few words how to ask, apply, make the letters bigger
    and reach a person (人工 / human, the public phone), with the menu; no ticket, and the Q&A is not asked."""
    chat = Chat(engine, "telegram", f"sf-how-{typed}")
    text = to_simplified(chat(typed))
    assert said in text and settings.office_phone in text and ("人工" in text or '"human"' in text), text
    assert "1." in text
    assert tickets(db_engine) == [] and fake_qa.asked == []


def test_a_reply_that_denies_one_way_and_tells_the_other_takes_the_other(engine, notifier, roll, db_engine):
    """"他没瘫在床上，能自己去" at the how-step: not a home visit, but the service window, whose date is asked next."""
    chat = Chat(engine, "telegram", "sf-told-window")
    link(chat, notifier, ZHANG_PHONE)
    chat("6")
    assert chat.state() == ("certification", "method")
    chat("他没瘫在床上，能自己去")
    assert chat.state() == ("certification", "visit_date")
