"""Linking a channel to a person on the roll with a one-time code."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session, select

from bot.identity import code_hash
from models.applications import Application
from models.conversations import Conversation, MessageLog, OneTimeCode
from models.db import session_scope
from models.people import Beneficiary, Contact, FamilyMember
from models.staff import AuditLog
from tests.bot.conftest import DAUGHTER_PHONE, LI_ID, LI_PHONE, ZHANG_ID, ZHANG_PHONE, Chat, add_person, link


def test_linking_by_phone_sends_a_six_digit_code_stored_only_hashed(engine, notifier, roll, db_engine, settings):
    """The code goes to the phone on the roll; the database holds only its keyed hash."""
    chat = Chat(engine, "telegram", "i1")
    chat("9")
    chat("1")
    text = chat("138 1234 5678")
    assert "+86138****5678" in text
    phone, code = notifier.codes[-1]
    assert phone == ZHANG_PHONE and len(code) == 6 and code.isdigit()
    with Session(db_engine) as s:
        row = s.exec(select(OneTimeCode)).one()
    assert row.code_hash == code_hash(settings.id_key, "telegram", "i1", code)
    assert code not in row.code_hash
    assert "绑定成功：张三" in chat(code)
    with Session(db_engine) as s:
        contact = s.exec(select(Contact).where(Contact.channel == "telegram", Contact.address == "i1")).one()
        conv = s.exec(select(Conversation).where(Conversation.address == "i1")).one()
        audit_text = str([a.details for a in s.exec(select(AuditLog)).all()])
        log_text = " ".join(m.text for m in s.exec(select(MessageLog)).all())
    assert contact.beneficiary_id == roll.zhang and contact.verified
    assert conv.beneficiary_id == roll.zhang and conv.acting_as is None
    assert code not in audit_text and code not in log_text


def test_linking_by_the_last_six_of_the_id_number_needs_the_phone_typed_in_full(engine, notifier, roll):
    """The last 6 characters of the ID number alone send nothing; with the roll phone typed in full
    the code goes to that phone and links."""
    chat = Chat(engine, "telegram", "i2")
    chat("9")
    chat("1")
    text = chat(LI_ID[-6:].lower())
    assert "手机号" in text and not notifier.codes
    assert "1111" not in text
    chat("139 0000 1111")
    assert notifier.codes[-1][0] == LI_PHONE
    assert "绑定成功：李四" in chat(notifier.last_code)


def test_an_id_ending_tells_a_stranger_nothing_and_sends_no_code(engine, notifier, roll):
    """A stranger typing someone's ID ending is asked exactly what one typing a made-up ending is
    asked; a phone that is not that person's then finds nobody and no code goes anywhere."""
    real, made_up = Chat(engine, "sms", "+8613199990001"), Chat(engine, "sms", "+8613199990002")
    for chat in (real, made_up):
        chat("绑定")
        chat("1")
    asked_real = real(LI_ID[-6:])
    asked_made_up = made_up("99999X")
    assert asked_real == asked_made_up
    assert "没有找到" in real("13199990001") and not notifier.codes


def test_a_phone_on_the_roll_for_someone_else_does_not_link_an_id_ending(engine, notifier, roll):
    """An ID ending with another person's phone: not found, no code to either of them."""
    chat = Chat(engine, "telegram", "i2b")
    chat("9")
    chat("1")
    chat(LI_ID[-6:])
    assert "没有找到" in chat(ZHANG_PHONE)
    assert not notifier.codes


def test_failed_lookups_are_limited_per_sender_for_the_day(engine, notifier, roll, clock):
    """After six numbers not on the roll, nothing more is looked up that day (not even a right one);
    the next day the sender may try again."""
    chat = Chat(engine, "telegram", "i9")
    chat("9")
    chat("1")
    for n in range(6):
        text = chat(f"1310000000{n}")
    assert "人工" in text
    refused = chat(ZHANG_PHONE)
    assert "人工" in refused and not notifier.codes
    clock.advance(timedelta(days=1))
    chat(ZHANG_PHONE)
    assert notifier.codes[-1][0] == ZHANG_PHONE


def test_not_found_says_where_to_register(engine, notifier, roll, settings):
    """"Not found" names the office's service window and phone, in the person's language."""
    chat = Chat(engine, "telegram", "i10")
    chat("9")
    chat("1")
    text = chat("13199998888")
    assert "登记" in text and "服务窗口" in text and settings.office_phone in text
    english = Chat(engine, "telegram", "i11")
    english("link")
    english("1")
    text = english("13199998887")
    assert "register" in text and settings.office_phone in text


def test_several_people_with_the_same_id_ending_are_told_apart_by_phone(engine, notifier, roll, db_engine, settings):
    """If two people share the last 6 characters, the phone is asked for as well."""
    with session_scope(db_engine) as s:
        other = add_person(s, settings, "110105195001010012", "赵六", "+8613600004444")
        zhang = s.get(Beneficiary, roll.zhang)
        other.id_last6_hash = zhang.id_last6_hash
        s.add(other)
    chat = Chat(engine, "telegram", "i3")
    chat("9")
    chat("1")
    text = chat(ZHANG_ID[-6:])
    assert "手机号" in text and not notifier.codes
    chat("+8613600004444")
    assert notifier.codes[-1][0] == "+8613600004444"
    assert "赵六" in chat(notifier.last_code)


def test_a_code_expires_after_ten_minutes(engine, notifier, roll, clock):
    """A code typed after 10 minutes does not link; a new one can be asked for."""
    chat = Chat(engine, "telegram", "i4")
    chat("9")
    chat("1")
    chat("13812345678")
    code = notifier.last_code
    clock.advance(timedelta(minutes=10, seconds=1))
    assert "过期" in chat(code)
    chat("重发")
    assert "绑定成功" in chat(notifier.last_code)


def test_a_code_works_only_once(engine, notifier, roll, db_engine):
    """Once used, the same code never links again."""
    chat = Chat(engine, "telegram", "i5")
    link(chat, notifier, ZHANG_PHONE)
    code = notifier.last_code
    with session_scope(db_engine) as s:
        s.execute(update(Conversation).where(Conversation.address == "i5").values(flow="link", step="code"))
    assert "已用过" in chat(code)


def test_five_wrong_codes_lock_the_code(engine, notifier, roll):
    """After 5 wrong tries even the right code is refused until a new one is sent."""
    chat = Chat(engine, "telegram", "i6")
    chat("9")
    chat("1")
    chat("13812345678")
    code = notifier.last_code
    wrong = "000000" if code != "000000" else "111111"
    replies = [chat(wrong) for _ in range(5)]
    assert "还可以试4次" in replies[0]
    assert "作废" in replies[-1]
    assert "作废" in chat(code)
    chat("重发")
    assert "绑定成功" in chat(notifier.last_code)


def test_at_most_three_codes_an_hour_per_address(engine, notifier, roll, clock):
    """A fourth code within the hour is refused; after the hour it is sent."""
    chat = Chat(engine, "telegram", "i7")
    chat("9")
    chat("1")
    chat("13812345678")
    chat("重发")
    chat("重发")
    assert len(notifier.codes) == 3
    assert "1小时后再试" in chat("重发")
    assert len(notifier.codes) == 3
    clock.advance(timedelta(hours=1, seconds=1))
    chat("重发")
    assert len(notifier.codes) == 4


def test_at_most_three_codes_an_hour_per_person(engine, notifier, roll):
    """Codes for one beneficiary are limited across addresses too (no spraying from many chats)."""
    for n in range(3):
        c = Chat(engine, "telegram", f"spray{n}")
        c("9")
        c("1")
        c("13812345678")
    c = Chat(engine, "telegram", "spray9")
    c("9")
    c("1")
    assert "1小时后再试" in c("13812345678")
    assert len(notifier.codes) == 3


def test_unknown_number_is_not_found_and_offers_a_person(engine, notifier, roll):
    """A number not on the roll says so plainly and offers a person; no code is sent."""
    chat = Chat(engine, "telegram", "i8")
    chat("9")
    chat("1")
    text = chat("13199998888")
    assert "没有找到" in text and "人工" in text and not notifier.codes
    assert "没看懂" in chat("hello")


def test_a_daughter_who_answers_who_in_words_links_as_his_child_without_the_relationship_question(
        engine, notifier, roll, db_engine):
    """"我爸叫张三" at "请问是谁要办事？" says she writes for her father: the relationship is taken as child and the
    next question is the key; "我自己" links as the person."""
    chat = Chat(engine, "telegram", "d-words")
    chat("9")
    assert "手机号" in chat("我爸叫张三")
    chat("15000003333")
    assert "以子女身份代张三" in chat(notifier.last_code)
    with Session(db_engine) as s:
        assert s.exec(select(Conversation).where(Conversation.address == "d-words")).one().acting_as == "child"
    himself = Chat(engine, "telegram", "self-words")
    himself("9")
    assert "您登记的手机号" in himself("我自己")


def test_a_relationship_in_words_is_understood_at_the_relationship_question(engine, notifier, roll):
    """"我是他女儿" where the relationship is asked: child; a word that names none is asked again."""
    chat = Chat(engine, "telegram", "d-rel")
    chat("9")
    chat("2")
    assert "请回复数字" in chat("不太清楚")
    assert "手机号" in chat("我是他女儿")


def test_family_member_links_as_proxy_and_applications_say_who_made_them(engine, notifier, roll, db_engine):
    """A daughter links for her father: relationship recorded; her application is marked as made by a child."""
    chat = Chat(engine, "telegram", "d1")
    chat("9")
    chat("2")
    chat("1")  # child
    text = chat("15000003333")  # the daughter's own phone, on the roll as family
    assert notifier.codes[-1][0] == DAUGHTER_PHONE
    assert "以子女身份代张三" in chat(notifier.last_code)
    with Session(db_engine) as s:
        contact = s.exec(select(Contact).where(Contact.address == "d1")).one()
        fm = s.get(FamilyMember, contact.family_member_id)
        conv = s.exec(select(Conversation).where(Conversation.address == "d1")).one()
    assert fm is not None and fm.relationship == "child" and fm.beneficiary_id == roll.zhang
    assert conv.acting_as == "child"
    for answer in ("3", "2", "老伴住院后生活困难", "1200", "1"):
        chat(answer)
    with Session(db_engine) as s:
        app = s.exec(select(Application)).one()
    assert app.submitted_by_relationship == "child" and app.beneficiary_id == roll.zhang
    assert app.submitted_by_contact_id == contact.id
    _ = text


def test_sms_from_the_phone_on_the_roll_is_already_linked(engine, notifier, roll):
    """Texting from the phone on the roll needs no code: it is that person."""
    chat = Chat(engine, "sms", ZHANG_PHONE)
    text = chat("7")
    assert "没有在办的申请" in text and not notifier.codes


def test_someone_writing_in_english_stays_in_english_after_linking(engine, notifier, roll):
    """Linking to a record kept in Chinese does not switch an English writer's conversation:
    the confirmation, the menu and the footer are all English."""
    chat = Chat(engine, "telegram", "i12")
    chat("link")
    chat("1")
    chat("13812345678")
    text = chat(notifier.last_code)
    assert "Linked" in text and "Reply 0 for the menu" in text
    assert "回复" not in text


def test_a_record_in_english_turns_a_chinese_default_conversation_english(engine, notifier, roll):
    """Someone who typed only digits gets the language on their record once linked (王五: English)."""
    chat = Chat(engine, "telegram", "i13")
    chat("9")
    chat("1")
    chat("13700002222")
    assert "Linked" in chat(notifier.last_code)
