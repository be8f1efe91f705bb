"""The conversation engine: global words, state in the database, continuity, logging, robustness."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from bot.channels.base import Attachment, Inbound
from bot.engine import Engine, detect_language
from models.applications import HandoffTicket
from models.conversations import Conversation, MessageLog
from models.db import session_scope
from models.outbox import OutboxMessage
from models.people import Beneficiary, Contact
from outreach.outbox import enqueue
from tests.bot.conftest import LI_PHONE, ZHANG_ID, ZHANG_PHONE, Chat, link

FOOTER_HINTS = ("人工", "human")


def start_veteran(chat, notifier) -> None:
    """Linked, then into the veterans' flow at its first question."""
    link(chat, notifier, ZHANG_PHONE)
    chat("1")


def test_first_message_gets_the_menu_with_a_way_to_a_person(chat_factory):
    """Any first message is answered; the menu says how to reach a person."""
    chat = chat_factory()
    text = chat("菜单")
    assert "1. 退役士兵社保接续" in text and "9. 绑定身份" in text
    assert "人工" in text
    assert chat.last[0].choices and chat.last[0].metadata["choices_in_text"] == "1"


@pytest.mark.parametrize("word", ["0", "菜单", "主菜单", " MENU ", "Menu", "０", "菜 单".replace(" ", "")])
def test_menu_word_in_any_form_leaves_the_flow_and_keeps_the_answers(engine, notifier, roll, word):
    """Menu words (any case, stray spaces, full width) work inside a flow; picking the flow again resumes it."""
    chat = Chat(engine, "telegram", "m1")
    start_veteran(chat, notifier)
    chat("是")
    assert chat.state() == ("veteran_insurance", "expelled")
    text = chat(word)
    assert "请回复数字" in text
    assert chat.state() == (None, None)
    again = chat("1")
    assert "接着您上次的办理" in again and "开除军籍" in again
    assert chat.state() == ("veteran_insurance", "expelled")


@pytest.mark.parametrize("word", ["返回", "上一步", "BACK", "back "])
def test_back_goes_to_the_previous_question(engine, notifier, roll, word):
    """"Back" returns to the previous question of the flow without losing the flow."""
    chat = Chat(engine, "telegram", "b1")
    start_veteran(chat, notifier)
    chat("是")
    text = chat(word)
    assert "政府安排工作" in text
    assert chat.state() == ("veteran_insurance", "left_by_job")
    assert "请回复数字" in chat(word)  # back at the first question goes to the menu


@pytest.mark.parametrize("word", ["帮助", "?", "？", "HELP"])
def test_help_explains_and_repeats_the_current_question(engine, notifier, roll, word):
    """Help at a step says how to use the service and repeats what is needed, staying at the step."""
    chat = Chat(engine, "telegram", "h1")
    start_veteran(chat, notifier)
    text = chat(word)
    assert "退役士兵社保接续" in text and "政府安排工作" in text
    assert chat.state() == ("veteran_insurance", "left_by_job")


@pytest.mark.parametrize("word", ["人工", "转人工", "找人", "Human"])
def test_human_opens_one_ticket_with_the_transcript_and_keeps_the_step(engine, notifier, roll, db_engine, word):
    """Asking for a person opens a ticket with the conversation so far; asking again does not open another."""
    chat = Chat(engine, "telegram", "p1")
    start_veteran(chat, notifier)
    text = chat(word)
    assert "已转给工作人员" in text and "1个工作日" in text
    assert chat.state() == ("veteran_insurance", "left_by_job")
    assert "已经在工作人员那里" in chat("人工")
    with Session(db_engine) as s:
        tickets = s.exec(select(HandoffTicket)).all()
    assert len(tickets) == 1
    assert tickets[0].reason == "asked_for_person"
    assert any("政府安排工作" in line["text"] for line in tickets[0].transcript)
    assert "政府安排工作" in chat("帮助")  # the flow continues


def test_language_words_switch_language_and_repeat_the_question(engine, notifier, roll):
    """English / 繁體 / 中文 switch at once and repeat the current question in the new language."""
    chat = Chat(engine, "telegram", "l1")
    start_veteran(chat, notifier)
    assert "did the government arrange a job" in chat("English")
    assert "Reply 0 for the menu" in chat.last[0].text or "menu" in chat.last[0].text
    assert "政府安排工作" in chat("中文")
    hant = chat("繁體")
    assert "政府安排工作" in hant and "嗎" in hant
    picker = chat("语言")
    assert "English" in picker and chat.state() == ("veteran_insurance", "left_by_job")


def test_language_follows_the_first_message(chat_factory):
    """An English first message gets English; Traditional characters get Traditional."""
    assert "Reply with a number" in chat_factory(address="e1")("Hello")
    assert "回覆0回主菜單" in chat_factory(address="t1")("請問怎麼辦理認證")
    assert "暖心服務" in chat_factory(address="t2", hint="zh-TW")("您好")
    assert detect_language("STOP", "en-US") == "en"
    assert detect_language("0", None) == "zh-Hans"


def test_language_follows_the_beneficiary_preference_once_linked(engine, notifier, roll):
    """Wang prefers English on the roll: after linking, the bot speaks English."""
    chat = Chat(engine, "telegram", "w1")
    chat("你好，我要绑定")
    text = link(chat, notifier, "+8613700002222")
    assert "Linked" in text


def test_stop_opts_out_at_once_and_suppresses_queued_messages(engine, roll, db_engine, clock):
    """STOP/退订/TD: the contact is opted out and a queued proactive message to it becomes suppressed."""
    with session_scope(db_engine) as s:
        enqueue(s, key="cert:1", kind="cert_reminder_30", channel="sms", address=LI_PHONE, body="请认证",
                now=clock.now(), beneficiary_id=roll.li)
    chat = Chat(engine, "sms", LI_PHONE)
    text = chat("TD")
    assert "已退订" in text
    with Session(db_engine) as s:
        contact = s.exec(select(Contact).where(Contact.channel == "sms", Contact.address == LI_PHONE)).one()
        row = s.exec(select(OutboxMessage)).one()
    assert contact.opted_out_at is not None
    assert row.status == "suppressed"
    assert "已经退订" in chat("退订")
    assert "恢复订阅" in chat("订阅")
    with Session(db_engine) as s:
        assert s.exec(select(Contact).where(Contact.address == LI_PHONE)).one().opted_out_at is None


@pytest.mark.parametrize("word", ["STOP", "stop", "退订", "ＴＤ", "unsubscribe"])
def test_every_stop_word_opts_out_even_inside_a_flow(engine, notifier, roll, db_engine, word):
    """A stop word at any step opts out; the flow and its answers stay where they were."""
    chat = Chat(engine, "telegram", f"s-{word}")
    start_veteran(chat, notifier)
    chat("是")
    assert "退订" in chat(word) or "Unsubscribed" in chat.last[0].text
    assert chat.state() == ("veteran_insurance", "expelled")
    with Session(db_engine) as s:
        c = s.exec(select(Contact).where(Contact.channel == "telegram", Contact.address == f"s-{word}")).one()
    assert c.opted_out_at is not None


@pytest.mark.parametrize("typed", ["不要再给我发短信了", "我不想再收到你们的消息", "請不要再發短信給我", "唔好再发信息畀我",
                                   "stop texting me", "I want to stop getting messages"])
def test_asking_in_words_for_no_more_messages_opts_out_at_once_even_inside_a_flow(engine, notifier, roll, db_engine,
                                                                                 typed):
    """不要再给我发短信了 / stop texting me is an opt-out as TD and STOP are: at once, said back to the person,
    the flow left where it was; never a ticket for staff or an error at the step."""
    chat = Chat(engine, "telegram", f"sw-{typed}")
    start_veteran(chat, notifier)
    chat("是")
    text = chat(typed)
    assert "退订" in text or "退訂" in text or "Unsubscribed" in text
    assert chat.state() == ("veteran_insurance", "expelled")
    with Session(db_engine) as s:
        c = s.exec(select(Contact).where(Contact.channel == "telegram", Contact.address == f"sw-{typed}")).one()
        assert c.opted_out_at is not None
        assert s.exec(select(HandoffTicket)).all() == []


@pytest.mark.parametrize("typed", ["为什么不给我发短信了？", "你们发的短信我看不懂", "不要发给我爸爸", "why did you stop texting me"])
def test_a_question_or_remark_about_messages_is_no_opt_out(engine, roll, db_engine, typed):
    """Words about messages that do not ask for them to stop leave the person subscribed."""
    chat = Chat(engine, "telegram", f"sq-{typed}")
    chat(typed)
    with Session(db_engine) as s:
        c = s.exec(select(Contact).where(Contact.channel == "telegram", Contact.address == f"sq-{typed}")).first()
    assert c is None or c.opted_out_at is None


def test_new_engine_instance_continues_the_same_step(db_engine, settings, clock, notifier, fake_qa, roll):
    """A restart (a new Engine on the same database) continues exactly where the person was."""
    first = Engine(db_engine, settings, clock, qa=fake_qa, notifier=notifier)
    chat = Chat(first, "telegram", "r1")
    start_veteran(chat, notifier)
    chat("是")
    chat("不是")
    second = Engine(db_engine, settings, clock, qa=fake_qa, notifier=notifier)
    again = Chat(second, "telegram", "r1")
    assert again.state() == ("veteran_insurance", "after_placement")
    assert "姓名" in again("1")
    # and the first one, still running, sees the second's progress
    assert "身份证号" in chat("张三")


def test_a_stale_version_is_retried_not_lost(engine, notifier, roll, monkeypatch):
    """If another process saved first (version moved on), the message is processed again on fresh state."""
    chat = Chat(engine, "telegram", "v1")
    start_veteran(chat, notifier)
    original = engine._load
    calls = {"n": 0}

    def stale_load(s, inbound, now):
        conv = original(s, inbound, now)
        calls["n"] += 1
        if calls["n"] == 1:
            conv.version -= 1  # as if read before another process's save
        return conv

    monkeypatch.setattr(engine, "_load", stale_load)
    text = chat("是")
    assert calls["n"] == 2
    assert "开除军籍" in text
    assert chat.state() == ("veteran_insurance", "expelled")


def test_telegram_to_sms_after_linking_continues_the_step(engine, notifier, roll, db_engine):
    """Started on Telegram, continued by SMS from the phone on the roll: the same step, nothing lost."""
    tg = Chat(engine, "telegram", "c1")
    start_veteran(tg, notifier)
    tg("是")
    tg("不是")
    tg("1")
    tg("张三")
    sms = Chat(engine, "sms", ZHANG_PHONE)
    text = sms(ZHANG_ID)
    assert "接着您在Telegram上的办理" in text and "入伍" in text
    assert sms.state() == ("veteran_insurance", "enlistment_date")
    assert tg.state() == (None, None)
    sms("1998年12月")
    sms("2002年12月")
    text = sms("某某机械厂")
    assert "服务窗口" in text and "入伍证明材料" in text  # SMS: a list to bring, not uploads
    assert "回复1提交" in text
    assert "NX-2026-" in sms("1")


def test_message_log_masks_ids_and_phones_and_never_holds_the_code(engine, notifier, roll, db_engine):
    """Every message in and out is logged, ID numbers and phones masked, the one-time code replaced."""
    chat = Chat(engine, "telegram", "g1")
    chat("9")
    chat("1")
    chat("13812345678")
    code = notifier.last_code
    chat(code)
    chat("1")
    for answer in ("是", "不是", "1", "张三", ZHANG_ID):
        chat(answer)
    with Session(db_engine) as s:
        rows = s.exec(select(MessageLog).where(MessageLog.address == "g1")).all()
    texts = " ".join(r.text for r in rows)
    assert {r.direction for r in rows} == {"in", "out"}
    assert len([r for r in rows if r.direction == "in"]) == 10
    assert ZHANG_ID not in texts and "13812345678" not in texts
    assert code not in texts
    assert "[code]" in texts


@pytest.mark.parametrize("junk", ["😀😀", "\x00\x07\x1b[31m", "好" * 5000, "   ", "🙏", "\u200b\u200b"])
def test_unexpected_input_repeats_what_is_needed_and_loses_nothing(engine, notifier, roll, junk):
    """Emoji, control characters, 5,000 characters, blanks: a helpful reply, answers kept, same step."""
    chat = Chat(engine, "telegram", "u1")
    start_veteran(chat, notifier)
    chat("是")
    chat("不是")
    chat("1")
    text = chat(junk)
    assert "姓名" in text and "人工" in text
    assert chat.state() == ("veteran_insurance", "name")


def test_a_photo_where_text_is_asked_gets_a_plain_explanation(engine, notifier, roll):
    """A photo at a text step: told no picture is needed here, and the question again."""
    chat = Chat(engine, "telegram", "u2")
    start_veteran(chat, notifier)
    text = chat(files=1)
    assert "不需要发图片" in text and "政府安排工作" in text


def test_repeating_the_previous_answer_is_recognised(engine, notifier, roll):
    """Sending the last answer again (an old phone re-sends) says it is saved and asks the current question."""
    chat = Chat(engine, "telegram", "u3")
    start_veteran(chat, notifier)
    chat("是")
    chat("不是")
    chat("1")
    chat("张三")
    text = chat("张三")
    assert "上一题已经记下了" in text and "身份证号" in text


def test_repeated_mistakes_offer_a_person(engine, notifier, roll):
    """After two wrong answers to the same question the reply offers a person explicitly."""
    chat = Chat(engine, "telegram", "u4")
    start_veteran(chat, notifier)
    chat("也许吧")
    assert "工作人员会帮您" in chat("不知道呢")


def test_free_text_at_the_menu_is_answered_with_its_source(engine):
    """A policy question at the menu gets the knowledge answer with its source."""
    chat = Chat(engine, "telegram", "q1")
    text = chat("医疗互助一年交多少钱？")
    assert "100元" in text and "来源" in text


def test_sms_gets_the_short_answer(engine):
    """On SMS the short variant of the answer is sent."""
    chat = Chat(engine, "sms", "+8618600000000")
    assert chat("医疗互助一年交多少钱？").startswith("每年交100元（来源")


def test_a_question_the_bot_cannot_answer_becomes_a_ticket(engine, db_engine):
    """Handoff: a ticket with the question and transcript; the person is told when to expect an answer."""
    chat = Chat(engine, "telegram", "q2")
    chat("你好")
    text = chat("我家老房子拆迁补偿怎么算")
    assert "工作人员" in text and "1个工作日" in text and "编号" in text
    with Session(db_engine) as s:
        ticket = s.exec(select(HandoffTicket)).one()
    assert ticket.question == "我家老房子拆迁补偿怎么算"
    assert ticket.reason == "out_of_scope"
    assert ticket.transcript[-1]["text"] == "我家老房子拆迁补偿怎么算"


def test_without_qa_questions_go_to_staff(db_engine, settings, clock, notifier, monkeypatch):
    """If the Q&A cannot load, a question still gets an answer: it is passed to staff."""
    engine = Engine(db_engine, settings, clock, qa=None, notifier=notifier)
    engine._qa_failed = True
    text = Chat(engine, "telegram", "q3")("老年证怎么办理")
    assert "转给了工作人员" in text


def test_flows_that_apply_need_a_link_but_questions_do_not(engine, notifier, roll, db_engine):
    """Unlinked: menus and questions work; applying first asks to link, then continues into the flow."""
    chat = Chat(engine, "telegram", "n1")
    text = chat("2")
    assert "先确认您的身份" in text
    chat("1")
    chat("13900001111")
    text = chat(notifier.last_code)
    assert "绑定成功" in text and "住院和出院日期" in text
    assert chat.state() == ("mutual_aid_claim", "stay")


def test_an_internal_error_is_answered_and_nothing_is_saved(engine, notifier, roll, monkeypatch):
    """A bug inside a step: the person is asked to resend, and the conversation stays as it was."""
    chat = Chat(engine, "telegram", "x1")
    start_veteran(chat, notifier)

    def boom(*a, **k):
        raise RuntimeError("bug")

    monkeypatch.setattr(engine.runner, "answer", boom)
    text = chat("是")
    assert "没有丢" in text
    assert chat.state() == ("veteran_insurance", "left_by_job")


def test_button_press_is_the_same_as_typing(engine, notifier, roll):
    """A Telegram button (Inbound.choice) answers like the typed value."""
    chat = Chat(engine, "telegram", "k1")
    start_veteran(chat, notifier)
    chat(choice="1")
    assert chat.state() == ("veteran_insurance", "expelled")


async def test_ahandle_runs_the_engine_from_async_code(engine):
    """The async entry point answers like the sync one."""
    replies = await engine.ahandle(Inbound(channel="telegram", address="a1", text="0"))
    assert "请回复数字" in replies[0].text
    results = await asyncio.gather(*(engine.ahandle(Inbound(channel="telegram", address=f"a{i}", text="0"))
                                     for i in range(10)))
    assert all(r for r in results)


def test_start_flow_from_outside_puts_the_person_in_the_survey(engine, notifier, roll, db_engine, clock):
    """After a completed service, outreach can start the survey; the next reply is the score."""
    from models.applications import Application

    with session_scope(db_engine) as s:
        app = Application(reference="NX-2026-900001", type="hardship", beneficiary_id=roll.zhang, stage="completed",
                          completed_at=clock.now() - timedelta(days=1))
        s.add(app)
        s.flush()
        app_id = app.id
    chat = Chat(engine, "telegram", "sv1")
    link(chat, notifier, ZHANG_PHONE)
    replies = engine.start_flow("telegram", "sv1", "survey", application_id=app_id)
    assert "满意" in replies[0].text
    chat("5")
    chat("很好")
    assert "谢谢" in chat("1")
    from models.applications import SurveyAnswer
    with Session(db_engine) as s:
        ans = s.exec(select(SurveyAnswer)).one()
    assert (ans.score, ans.comment, ans.application_id) == (5, "很好", app_id)


def test_deceased_beneficiary_language_and_conversation_rows_are_per_channel(engine, db_engine, roll):
    """One conversation row per (channel, address), created on first contact."""
    Chat(engine, "telegram", "z1")("0")
    Chat(engine, "sms", ZHANG_PHONE)("0")
    with Session(db_engine) as s:
        convs = s.exec(select(Conversation)).all()
        zhang_sms = [c for c in convs if c.channel == "sms"][0]
        assert zhang_sms.beneficiary_id == roll.zhang  # the phone on the roll is that person
        assert s.get(Beneficiary, roll.zhang).status == "active"
    assert len(convs) == 2


def test_attachment_only_message_at_the_menu_is_answered(engine):
    """A photo sent at the menu is acknowledged and the menu shown."""
    replies = engine.handle(Inbound(channel="telegram", address="f1",
                                    attachments=(Attachment(kind="sticker", file_id="x"),)))
    assert "菜单" in replies[0].text or "请回复数字" in replies[0].text
