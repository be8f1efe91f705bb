"""Scripted conversations, each with the outcome it must have.

Each journey plays one person as they would write (an 84-year-old veteran by SMS, a daughter
reporting her father's hospital stay and then his death, a Cantonese-speaking union member, a
son abroad on a +1 number, a stranger...) through the real Telegram polling path or signed SMS
webhooks, and checks what was made (applications, tasks, tickets, records), what the person
was told, and what they were never sent. A person who is not helped the way they asked goes
the long way round (the menu), as people do: that costs messages, which the figures count.
"""

from __future__ import annotations

import re
from typing import Any

from models.applications import Application, HandoffTicket, Task

from .harness import NotOnScreen, SmsPerson, TelegramPerson, World
from .roll import (
    CHAN_ID,
    CHAN_PHONE,
    LI_ID,
    LI_PHONE,
    STRANGER_PHONE,
    SUN_APP,
    SUN_PHONE,
    WANG_PHONE,
    WANG_SON_PHONE,
    ZHANG_ID,
    ZHANG_PHONE,
    ZHAO_DAUGHTER_PHONE,
    ZHAO_ID,
    ZHAO_PHONE,
)

Person = TelegramPerson | SmsPerson

CONFIRM_WORDS = ("确定吗", "確定嗎", "are you sure", "Are you sure")


# --- how people get through the common parts -------------------------------------------------
async def confirm_if_asked(p: Person, yes: bool = True) -> str:
    """Answer "is that right?" when the bot checks an answer that would end the flow."""
    if any(word in p.last for word in CONFIRM_WORDS):
        return await p.pick(_label(p, "确定" if yes else "重新选"))
    return p.last


def _label(p: Person, zh: str) -> str:
    en = {"确定": "Yes, that is right", "重新选": "Choose again", "我本人": "Myself",
          "家属代办": "Family member", "子女": "Son or daughter", "提交": "Submit", "是": "Yes", "不是": "No"}
    if re.search(r"[A-Za-z]{3,}", p.last) and not re.search(r"[\u4e00-\u9fff]{4,}", p.last):
        return en.get(zh, zh)
    return zh


async def take_offer_or_use_menu(p: Person, menu_label: str) -> str:
    """After writing what they want: accept the service offered, or go to the menu and pick it."""
    if re.search(r"回复1|回覆1|[Rr]eply 1", p.last) and not re.search(r"请回复数字|請回覆數字|Reply with a number",
                                                                      p.last):
        return await p.say("1")
    await p.say("菜单" if not re.search(r"[A-Za-z]{3,}", p.last) else "menu")
    return await p.pick(menu_label)


async def link_if_asked(w: World, p: Person, phone: str, proxy: str | None = None) -> str:
    """The linking dialogue, when the bot asks who the person is: self or family, then the phone."""
    if not re.search(r"请问是谁要办事|Who is this for|請問是誰要辦事", p.last):
        return p.last
    if proxy:
        await p.pick(_label(p, "家属代办") if p.channel == "telegram" else _family_label(p))
        if re.search(r"什么人|related|甚麼人|什麼人", p.last):
            await p.pick(_label(p, proxy))
    else:
        await p.pick(_label(p, "我本人"))
    reply = await p.say(phone)
    if re.search(r"验证码|code|驗證碼", reply):
        reply = await p.say(w.code_for(phone))
    return reply


def _family_label(p: Person) -> str:
    for label in ("我是家属，替老人办", "I am a family member acting for them", "家属代办", "Family member"):
        if label in p.last:
            return label
    return "家属代办"


async def answer_known_or_type(p: Person, asked: str, typed: str) -> str:
    """A step the bot may already know the answer to: confirm what it says, or type it."""
    if re.search(r"对吗|對嗎|is that right|Is that right", p.last):
        return await p.pick(_label(p, "是"))
    if asked in p.last:
        return await p.say(typed)
    return p.last


def tickets_of(w: World, channel: str, address: str) -> list[HandoffTicket]:
    return w.tickets(HandoffTicket.channel == channel, HandoffTicket.address == address)


def no_code_sent_to(w: World, phone: str) -> bool:
    return not [m for m in w.sms_sent_to(phone) if m.kind in ("otp", "one_time_code")]


# --- SMS --------------------------------------------------------------------------------------
async def sms_veteran_applies_for_insurance_continuation(w: World) -> None:
    """张德明, 84, by SMS from his phone on the roll: the eligibility questions, his details, done."""
    p = w.sms(ZHANG_PHONE)
    await p.say("菜单")
    await p.pick("退役士兵社保接续")
    await p.pick("是")
    await p.pick("不是")
    await confirm_if_asked(p, yes=False)
    await p.pick("都没有")
    await answer_known_or_type(p, "姓名", "张德明")
    await answer_known_or_type(p, "身份证号", ZHANG_ID)
    await answer_known_or_type(p, "入伍", "1960年3月")
    await answer_known_or_type(p, "退役", "1966年12月")
    reply = await p.say("江门市第一机械厂")
    w.expect("请带到服务窗口" in reply, "the SMS lists the documents to bring")
    done = await p.pick("提交")
    [app] = w.applications(Application.type == "veteran_insurance",
                           Application.beneficiary_id == w.person("张德明").id) or [None]
    w.expect(app is not None and app.stage == "staged", "a staged veteran-insurance application")
    w.expect(app is not None and app.reference in done, "the reply gives the reference")
    w.expect(not w.tickets(), "no ticket")


async def sms_daughter_reports_hospital_stay_then_death(w: World) -> None:
    """赵小梅 writes from her own phone: her father is in hospital; a week later, that he died."""
    p = w.sms(ZHAO_DAUGHTER_PHONE)
    await p.say("我要报告住院，我爸爸住院了")
    await take_offer_or_use_menu(p, "报告住院")
    await link_if_asked(w, p, ZHAO_DAUGHTER_PHONE, proxy="子女")
    await p.say("江门市中心医院")
    await p.say("昨天")
    await p.say("跳过")
    await p.pick("提交")
    w.expect([t for t in w.tasks(Task.kind == "hospital_visit") if t.beneficiary_id == w.person("赵六").id],
             "a hospital-visit task for her father")
    w.clock.advance(7 * 24 * 3600)
    await p.say("我爸爸昨天晚上走了")
    await take_offer_or_use_menu(p, "报告家人去世")
    await answer_known_or_type(p, "身份证号", ZHAO_ID)
    await p.say("昨天")
    if "什么人" in p.last:
        await p.pick("子女")
    done = await p.pick("提交")
    w.expect("请节哀" in done, "condolences are said")
    zhao = w.person("赵六")
    recorded = zhao.status == "deceased" or bool(w.tasks(Task.beneficiary_id == zhao.id, Task.kind.in_(  # type: ignore[attr-defined]
        ["verify_death", "death_verification", "verify_report"])))
    w.expect(recorded, "the death is recorded or sent to staff to verify")
    w.expect(not w.tickets(), "no ticket: both reports were services")


async def sms_member_asks_where_her_application_is(w: World) -> None:
    """孙建国 asks in his own words where his application is: he gets its stage, not an article or a ticket."""
    p = w.sms(SUN_PHONE)
    reply = await p.say("我的申请怎么样了")
    if SUN_APP not in reply:
        reply = await take_offer_or_use_menu(p, "我的申请办到哪了")
    w.expect(SUN_APP in reply and "初审" in reply, "the application and its stage")
    w.expect(not w.tickets(), "no ticket")


async def sms_retiree_books_certification_in_her_words(w: World) -> None:
    """李桂英 writes that she wants to do this year's certification; she books the window."""
    p = w.sms(LI_PHONE)
    await p.say("中文")
    await p.say("我要做养老金资格认证")
    await take_offer_or_use_menu(p, "养老金资格认证")
    await p.pick("我来服务窗口，帮我预约")
    await p.say("2026-3-10")
    await p.pick("提交")
    w.expect(w.tasks(Task.kind == "certification_booking"), "a window booking")
    w.expect(not w.tickets(), "no ticket")


async def sms_son_abroad_reports_hospital_stay_in_english(w: World) -> None:
    """王五's son, on his +1 number in the United States, reports his father's hospital stay in English."""
    p = w.sms(WANG_SON_PHONE)
    await p.say("Hello, my father was taken to hospital, I want to report a hospital stay")
    await take_offer_or_use_menu(p, "Report a hospital stay")
    await link_if_asked(w, p, WANG_SON_PHONE, proxy="子女")
    await p.say("Jiangmen Central Hospital")
    await p.say("yesterday")
    await p.say("skip")
    w.expect("Submit" in p.last, "the summary is in English, the language he writes in")
    done = await p.pick("Submit" if "Submit" in p.last else "提交")
    w.expect("hospital visit" in done.lower(), "told in English that staff will visit")
    w.expect(w.tasks(Task.kind == "hospital_visit", Task.beneficiary_id == w.person("王五").id),
             "a hospital-visit task for his father")
    w.expect(not w.tickets(), "no ticket")


async def sms_stranger_cannot_make_the_bot_text_an_old_person(w: World) -> None:
    """Someone not on the roll types another person's ID ending: no code goes to her, her number is not shown."""
    p = w.sms(STRANGER_PHONE)
    await p.say("绑定")
    await p.pick("我本人")
    reply = await p.say(LI_ID[-6:])
    w.expect(no_code_sent_to(w, LI_PHONE), "no code was sent to the person whose ID ending was typed")
    w.expect("5555" not in reply, "her masked number is not shown")


async def sms_not_found_says_where_to_register(w: World) -> None:
    """A number not on the roll: told plainly, and where to register."""
    p = w.sms(STRANGER_PHONE)
    await p.say("绑定")
    await p.pick("我本人")
    reply = await p.say(STRANGER_PHONE[3:])
    w.expect("没有找到" in reply, "told the number is not on the roll")
    w.expect(re.search(r"社区|服务站|窗口|登记", reply), "told where to register")
    w.expect(no_code_sent_to(w, STRANGER_PHONE), "no code sent")


async def sms_opt_out_and_back(w: World) -> None:
    """李桂英 replies TD, then changes her mind."""
    p = w.sms(LI_PHONE)
    reply = await p.say("TD")
    contact = w.contact("sms", LI_PHONE)
    w.expect(contact is not None and contact.opted_out_at is not None, "the opt-out is recorded")
    w.expect(re.search(r"退订|nsubscribe|notices", reply), "the reply confirms the opt-out")
    reply = await p.say("订阅")
    contact = w.contact("sms", LI_PHONE)
    w.expect(contact is not None and contact.opted_out_at is None, "subscribed again")


async def sms_policy_question_in_english_gets_an_article(w: World) -> None:
    """李桂英 asks a policy question in English: an answer with its source, no ticket."""
    p = w.sms(LI_PHONE)
    reply = await p.say("How much does the workers' medical mutual aid cost each year?")
    w.expect("100" in reply, "the yearly fee is in the answer")
    w.expect(not w.tickets(), "no ticket")


async def sms_noise_from_one_person_is_one_ticket(w: World) -> None:
    """A confused stranger sends message after message: one ticket collects them; each gets a reply."""
    p = w.sms(STRANGER_PHONE)
    for text in ("你们是谁啊", "我不知道这是什么东西", "为什么给我发短信", "我要找我儿子",
                 "我儿子的电话打不通了", "你们能不能帮我打个电话", "喂喂喂有没有人在听"):
        reply = await p.say(text)
        w.expect(reply.strip(), f"a reply to {text!r}")
    w.expect(len(tickets_of(w, "sms", STRANGER_PHONE)) <= 1, "at most one ticket for one person's messages")


async def sms_deceased_persons_phone_cannot_act_for_him(w: World) -> None:
    """After 赵六's death is recorded, a message from his phone cannot report a hospital stay as him."""
    from models.actions import record_death
    from models.db import write_scope
    from models.people import Beneficiary

    with write_scope(w.db) as s:
        zhao = s.get(Beneficiary, w.person("赵六").id)
        record_death(s, zhao, died_on=w.clock.now().date(), actor="staff", reported_by="daughter", now=w.clock.now())
    p = w.sms(ZHAO_PHONE)
    await p.say("4")
    with_flow = "哪家医院" in p.last
    if with_flow:
        await p.say("江门市人民医院")
        await p.say("今天")
        await p.say("跳过")
        await p.pick("提交")
    w.expect(not w.tasks(Task.kind == "hospital_visit"), "no hospital visit for a person who has died")


async def sms_second_open_application_is_refused_with_its_status(w: World) -> None:
    """孙建国 already has an application under review: a second one is refused, and he is told its stage."""
    p = w.sms(SUN_PHONE)
    reply = await p.say("1")
    w.expect(SUN_APP in reply, "told which application is open")
    if "政府安排工作" in reply:
        await p.pick("是")
        await p.pick("不是")
        await confirm_if_asked(p, yes=False)
        await p.pick("都没有")
        await answer_known_or_type(p, "姓名", "孙建国")
        await answer_known_or_type(p, "身份证号", "440702194707070071")
        await answer_known_or_type(p, "入伍", "1965年3月")
        await answer_known_or_type(p, "退役", "1970年12月")
        await p.say("江门市纺织厂")
        await p.pick("提交")
    w.expect(len(w.applications(Application.type == "veteran_insurance")) == 1, "no second application")


async def sms_someone_elses_id_is_not_taken_for_the_linked_person(w: World) -> None:
    """张德明 types his neighbour's ID number by mistake: it is not accepted as his."""
    p = w.sms(ZHANG_PHONE)
    await p.say("1")
    await p.pick("是")
    await p.pick("不是")
    await confirm_if_asked(p, yes=False)
    await p.pick("都没有")
    if "对吗" in p.last:
        await p.pick("不是")
    if "姓名" in p.last:
        await p.say("张德明")
    reply = await p.say(CHAN_ID)
    w.expect(re.search(r"对不上|不是您|不一致", reply), "told the ID does not match his record")
    w.expect("入伍" not in reply, "not moved on with someone else's ID")


# --- Telegram -----------------------------------------------------------------------------------
async def _linked_telegram(w: World, chat: int, phone: str, *, language: str = "zh-hans",
                           proxy: str | None = None) -> TelegramPerson:
    p = w.telegram(chat, language)
    await p.say("/start")
    await p.press("綁定身份（辦事前先做）" if language in ("zh-hk", "zh-tw", "zh-hant") else "绑定身份（办事前先做）")
    await link_if_asked(w, p, phone, proxy=proxy)
    return p


async def tg_a_stale_menu_button_does_not_answer_the_current_question(w: World) -> None:
    """The issue's mis-tap: 1 typed at the menu, then the old menu button pressed at "expelled?"."""
    p = await _linked_telegram(w, 7101, ZHANG_PHONE)
    await p.say("菜单")
    await p.say("1")
    await p.press("是")
    assert "开除军籍" in p.last
    reply = await p.press_stale(2, "退役士兵社保接续")
    w.expect("开除军籍" in reply, "the current question is asked again")
    w.expect("不能办社保接续" not in reply, "the old button did not answer it")
    w.expect(not re.search(r"不能办|办不了", reply), "the flow did not end")


async def tg_a_disqualifying_yes_is_confirmed_first(w: World) -> None:
    """At "were you expelled?" a mis-tap on 是 asks again before ending; 重新选 goes back to the question."""
    p = await _linked_telegram(w, 7102, ZHANG_PHONE)
    await p.say("1")
    await p.press("是")
    reply = await p.press("是")
    w.expect("确定吗" in reply and "不能办" not in reply, "asked to confirm before the flow ends")
    await confirm_if_asked(p, yes=False)
    w.expect("开除军籍" in p.last, "back at the question")
    await p.press("不是")
    w.expect("到地方工作以后" in p.last, "the next question follows")


async def tg_a_rejection_at_the_summary_is_confirmed(w: World) -> None:
    """不提交 at the summary asks first; confirming it submits nothing."""
    p = await _linked_telegram(w, 7103, ZHANG_PHONE)
    await p.say("4")
    await p.say("江门市人民医院")
    await p.say("今天")
    await p.say("跳过")
    reply = await p.press("不提交")
    w.expect("确定" in reply, "asked to confirm not submitting")
    await confirm_if_asked(p, yes=True)
    w.expect(not w.tasks(Task.kind == "hospital_visit"), "nothing was submitted")


async def tg_old_keyboards_are_taken_away(w: World) -> None:
    """After each answer only the current question has buttons on screen."""
    p = await _linked_telegram(w, 7104, ZHANG_PHONE)
    await p.say("1")
    await p.press("是")
    await p.press("不是")
    w.expect(p.keyboards_on_screen() == 1, f"one keyboard on screen, not {p.keyboards_on_screen()}")


async def tg_every_prompt_has_back_and_a_person(w: World) -> None:
    """In a flow each prompt offers [返回] and [找人工]; the documents step [跳过] and [以后带去]."""
    p = await _linked_telegram(w, 7105, ZHANG_PHONE)
    await p.say("3")
    w.expect({"返回", "找人工"} <= set(p.buttons()), f"back and person on {p.buttons()}")
    await p.press("生活费不够")
    w.expect({"返回", "找人工"} <= set(p.buttons()), "back and person at a typed step too")
    p2 = await _linked_telegram(w, 7106, CHAN_PHONE)
    await p2.say("2")
    await p2.say("2026-1-5到2026-1-20")
    await p2.say("江门市中心医院")
    await p2.say("8600")
    await p2.press("不是")
    w.expect({"跳过", "以后带去"} <= set(p2.buttons()) or {"跳過", "以後帶去"} <= set(p2.buttons()),
             f"skip and later at the documents step: {p2.buttons()}")


async def tg_the_menu_is_listed_once(w: World) -> None:
    """With buttons on screen the text does not list the same choices again."""
    p = w.telegram(7107)
    await p.say("/start")
    w.expect("1. 退役士兵社保接续" not in p.last, "the menu is not also numbered in the text")
    w.expect("退役士兵社保接续" in p.buttons(), "the menu is on the buttons")


async def tg_cantonese_member_claims_with_captioned_photos(w: World) -> None:
    """陳嘉欣 writes in Cantonese; her photo captions say which document each is."""
    p = await _linked_telegram(w, 7108, CHAN_PHONE, language="zh-hk")
    await p.say("我想報銷住院嘅醫藥費")
    if "出院日期" not in p.last:
        await take_offer_or_use_menu(p, "醫療互助報銷")
    await p.say("2026-1-5到2026-1-20")
    await p.say("江門市中心醫院")
    await p.say("8600")
    await p.press("不是")
    await p.photo(caption="呢張係收據")
    await p.photo(caption="出院小結")
    if "提交" in p.buttons():
        await p.press("提交")
    [app] = w.applications(Application.type == "mutual_aid_claim") or [None]
    w.expect(app is not None, "a mutual-aid claim")
    if app is not None:
        from models.applications import ApplicationDocument
        docs = {d.code: d for d in w.rows(ApplicationDocument, ApplicationDocument.application_id == app.id)}
        w.expect(docs.get("invoices") and docs["invoices"].received, "the receipt is filed as the invoices")
        w.expect(docs.get("discharge_summary") and docs["discharge_summary"].received, "the discharge summary")


async def tg_sticker_location_contact_and_edit_each_get_a_kind_reply(w: World) -> None:
    """Media that are not documents are answered briefly, never as "收到您的图片/文件", never with silence."""
    p = w.telegram(7109)
    await p.say("/start")
    for action in (p.sticker, p.location, lambda: p.contact_card("+8613812340001", "张德明"), lambda: p.edit("你好")):
        reply = await action()
        w.expect(reply.strip(), "a reply")
        w.expect("收到您的图片/文件" not in reply, "not mistaken for a picture or file")


async def tg_voice_message_goes_to_staff_with_the_audio(w: World) -> None:
    """A voice note becomes a ticket with the audio for staff to hear; the person is told so."""
    p = w.telegram(7110)
    await p.say("/start")
    reply = await p.voice()
    tickets = tickets_of(w, "telegram", "7110")
    w.expect(len(tickets) == 1, "one ticket")
    w.expect(tickets and any(e.get("audio") for e in tickets[0].transcript), "the audio is attached to the ticket")
    w.expect(re.search(r"语音|工作人员", reply), "told a person will listen")


async def tg_a_sticker_is_not_taken_for_a_document(w: World) -> None:
    """At the documents step a sticker or a voice note is not a document."""
    p = await _linked_telegram(w, 7111, CHAN_PHONE)
    await p.say("2")
    await p.say("2026-1-5到2026-1-20")
    await p.say("江门市中心医院")
    await p.say("8600")
    await p.press("不是")
    reply = await p.sticker()
    w.expect("收到：出院小结" not in reply, "the sticker is not the discharge summary")
    await p.say("以后")
    await p.press("提交")
    from models.applications import ApplicationDocument
    docs = w.rows(ApplicationDocument, ApplicationDocument.received.is_(True))  # type: ignore[attr-defined]
    w.expect(not docs, "no document marked received")


async def tg_linked_person_is_not_asked_his_name_again(w: World) -> None:
    """Linked as himself, 张德明 confirms his name and ID rather than typing them."""
    p = await _linked_telegram(w, 7112, ZHANG_PHONE)
    await p.say("1")
    await p.press("是")
    await p.press("不是")
    await p.press("都没有")
    w.expect("张德明" in p.last and "对吗" in p.last, "his name is shown to confirm, not asked")
    await p.press("是")
    w.expect("入伍" in p.last, "confirmed in one press, the next question is the first one the record cannot answer")


async def tg_family_death_report_confirms_what_is_known(w: World) -> None:
    """The daughter linked as his child: the report names her father and does not ask the relationship again."""
    p = await _linked_telegram(w, 7113, ZHAO_DAUGHTER_PHONE, proxy="子女")
    await p.say("5")
    w.expect("赵六" in p.last, "the linked person is named")
    await answer_known_or_type(p, "身份证号", ZHAO_ID)
    await p.say("昨天")
    w.expect("什么人" not in p.last, "the relationship is not asked again")
    if "什么人" in p.last:
        await p.press("子女")
    await p.press("提交")


async def tg_relationship_list_is_the_same_everywhere(w: World) -> None:
    """The relationships are numbered the same in linking and in the death report."""
    p = w.telegram(7114)
    await p.say("/start")
    await p.press("绑定身份（办事前先做）")
    await p.press("家属代办")
    linking = p.buttons()
    await p.press("子女")
    await p.say(ZHAO_DAUGHTER_PHONE)
    await p.say(w.code_for(ZHAO_DAUGHTER_PHONE))
    await p.say("5")
    await answer_known_or_type(p, "身份证号", LI_ID)
    await p.say("昨天")
    report = p.buttons() if "什么人" in p.last else linking
    nav = {"返回", "找人工"}
    w.expect([b for b in linking if b not in nav] == [b for b in report if b not in nav],
             f"the same list: {linking} / {report}")


async def tg_three_languages_at_one_question(w: World) -> None:
    """English, 繁體 and 中文 switch at a question and repeat it."""
    p = await _linked_telegram(w, 7115, ZHANG_PHONE)
    await p.say("1")
    w.expect("government arrange a job" in await p.say("English"), "the question in English")
    w.expect("嗎" in await p.say("繁體"), "in Traditional Chinese")
    w.expect("政府安排工作" in await p.say("中文"), "in Simplified Chinese")


async def tg_a_death_in_plain_words_is_offered_the_death_report(w: World) -> None:
    """"我爸爸昨天晚上走了" is a death to report, not a policy article or a ticket."""
    p = await _linked_telegram(w, 7116, ZHAO_DAUGHTER_PHONE, proxy="子女")
    reply = await p.say("我爸爸昨天晚上走了")
    w.expect(re.search(r"去世|报告", reply), "the death report is offered")
    w.expect(not w.tickets(), "no ticket")


async def tg_a_hospital_stay_in_plain_words_is_offered_the_report(w: World) -> None:
    """"我要报告住院" is offered the hospital report."""
    p = await _linked_telegram(w, 7117, ZHANG_PHONE)
    reply = await p.say("我要报告住院")
    w.expect("住院" in reply and ("回复1" in reply or "哪家医院" in reply), "the hospital report is offered")
    w.expect(not w.tickets(), "no ticket")


async def tg_a_policy_question_gets_an_article(w: World) -> None:
    """A question about policy gets the reviewed article, no ticket."""
    p = w.telegram(7118)
    # The conversation path is what this journey checks, so it asks as the article itself is asked;
    # how well unseen wordings are answered is measured by `nuanxin eval-qa`, not here.
    reply = await p.say("80岁以上老兵的专属保险保哪些内容？")
    w.expect("保险" in reply and "编号" not in reply, "an article answer")
    w.expect(not w.tickets(), "no ticket")


async def tg_asking_for_people_again_and_again_opens_few_tickets(w: World) -> None:
    """One person writes out-of-scope things and asks for a person many times: tickets stay few and collect the rest."""
    p = w.telegram(7119)
    for text in ("人工", "我家老房子拆迁补偿怎么算", "邻居家的狗天天叫", "我要投诉楼下", "人工", "物业费太贵了",
                 "电费怎么交", "人工"):
        reply = await p.say(text)
        w.expect(reply.strip(), f"a reply to {text!r}")
    w.expect(len(tickets_of(w, "telegram", "7119")) <= 2, f"few tickets: {len(tickets_of(w, 'telegram', '7119'))}")
    transcripts = sum(len(str(t.transcript)) for t in tickets_of(w, "telegram", "7119"))
    w.expect(transcripts < 20_000, "transcripts stay bounded")


async def tg_stranger_by_id_ending_gets_no_code_sent(w: World) -> None:
    """On Telegram too: an ID ending finds nobody to text."""
    p = w.telegram(7120)
    await p.say("/start")
    await p.press("绑定身份（办事前先做）")
    await p.press("我本人")
    reply = await p.say(ZHANG_ID[-6:])
    w.expect(no_code_sent_to(w, ZHANG_PHONE), "no code to the person whose ID ending was typed")
    w.expect("0001" not in reply, "his number is not shown")


async def tg_codes_to_one_phone_are_limited_across_chats(w: World) -> None:
    """Several chats typing one person's phone: at most three codes go to that phone in an hour."""
    for n in range(5):
        p = w.telegram(7200 + n)
        await p.say("/start")
        await p.press("绑定身份（办事前先做）")
        await p.press("我本人")
        await p.say(ZHANG_PHONE)
    codes = [m for m in w.sms_sent_to(ZHANG_PHONE) if m.kind in ("otp", "one_time_code")]
    w.expect(len(codes) <= 3, f"at most three codes, not {len(codes)}")


async def tg_not_found_says_where_to_register(w: World) -> None:
    p = w.telegram(7121)
    await p.say("/start")
    await p.press("绑定身份（办事前先做）")
    await p.press("我本人")
    reply = await p.say("13100009999")
    w.expect("没有找到" in reply and re.search(r"社区|服务站|窗口|登记", reply), "where to register")


async def tg_opt_out_and_back(w: World) -> None:
    p = w.telegram(7122)
    await p.say("/start")
    await p.say("/stop")
    contact = w.contact("telegram", "7122")
    w.expect(contact is not None and contact.opted_out_at is not None, "opted out")
    await p.say("订阅")
    contact = w.contact("telegram", "7122")
    w.expect(contact is not None and contact.opted_out_at is None, "back")


async def tg_hardship_application_with_buttons(w: World) -> None:
    """张德明 asks for hardship help with buttons and a typed amount."""
    p = await _linked_telegram(w, 7123, ZHANG_PHONE)
    await p.say("3")
    await p.press("生活费不够")
    await p.say("老伴去年走了，一个人住，退休金不够看病")
    await p.say("1500")
    await p.press("提交")
    w.expect(w.applications(Application.type == "hardship"), "a hardship application")
    w.expect(w.tasks(Task.kind == "hardship_visit"), "a visit task")


async def tg_certification_home_visit(w: World) -> None:
    p = await _linked_telegram(w, 7124, ZHANG_PHONE)
    await p.say("6")
    await p.press("行动不便，请工作人员上门")
    await p.press("一个人住，没人陪")
    await p.press("提交")
    w.expect(w.tasks(Task.kind == "home_visit"), "a home visit")


async def tg_back_goes_to_the_previous_question(w: World) -> None:
    p = await _linked_telegram(w, 7125, ZHANG_PHONE)
    await p.say("1")
    await p.press("是")
    reply = await (p.press("返回") if "返回" in p.buttons() else p.say("返回"))
    w.expect("政府安排工作" in reply, "back at the first question")


async def tg_photo_at_the_menu_is_not_called_a_document(w: World) -> None:
    """A photo at the menu: told how to hand in documents, nothing stored against an application."""
    p = w.telegram(7126)
    await p.say("/start")
    reply = await p.photo()
    w.expect(re.search(r"材料|菜单", reply), "told how to hand in documents")


async def tg_son_abroad_links_with_his_plus_one_number(w: World) -> None:
    """王五's son links on Telegram with the +1 number on the roll and reports a hospital stay in English."""
    p = w.telegram(7127, language="en")
    await p.say("/start")
    w.expect("Link your record (needed before applying)" in p.buttons(), "an English client gets English")
    await p.say("link")
    await link_if_asked(w, p, WANG_SON_PHONE, proxy="子女")
    w.expect(re.search(r"Linked|绑定成功", p.last), "linked")
    await p.say("4")
    await p.say("Jiangmen Central Hospital")
    await p.say("today")
    await p.say("skip")
    w.expect("Submit" in p.buttons(), "the summary is in English, the language he writes in")
    await p.press("Submit" if "Submit" in p.buttons() else "提交")
    w.expect(w.tasks(Task.kind == "hospital_visit", Task.beneficiary_id == w.person("王五").id), "a visit task")


async def sms_phone_number_typed_in_full_links_a_family_member(w: World) -> None:
    """The son's +1 number typed in full finds him on the roll; the code goes to that number."""
    p = w.sms(WANG_SON_PHONE)
    await p.say("link")
    await link_if_asked(w, p, WANG_SON_PHONE, proxy="子女")
    w.expect(re.search(r"Linked|绑定成功", p.last), "linked")
    w.expect(no_code_sent_to(w, WANG_PHONE), "no code to his father's phone")


async def sms_my_applications_from_the_menu(w: World) -> None:
    p = w.sms(SUN_PHONE)
    await p.say("菜单")
    reply = await p.pick("我的申请办到哪了")
    w.expect(SUN_APP in reply, "his application")


async def sms_hardship_from_the_phone_on_the_roll(w: World) -> None:
    p = w.sms(ZHANG_PHONE)
    await p.say("3")
    await p.pick("生活费不够")
    await p.say("一个人住，退休金不够")
    await p.say("1200")
    await p.pick("提交")
    w.expect(w.applications(Application.type == "hardship"), "a hardship application")


async def sms_back_and_menu_keep_the_answers(w: World) -> None:
    p = w.sms(ZHANG_PHONE)
    await p.say("3")
    await p.pick("生活费不够")
    await p.say("菜单")
    reply = await p.say("3")
    w.expect("接着您上次的办理" in reply, "resumed where he left off")


async def tg_help_in_a_flow_repeats_the_question(w: World) -> None:
    p = await _linked_telegram(w, 7128, ZHANG_PHONE)
    await p.say("1")
    reply = await p.say("帮助")
    w.expect("政府安排工作" in reply, "the question is repeated")


JOURNEYS: dict[str, Any] = {name: fn for name, fn in list(globals().items())
                            if (name.startswith("sms_") or name.startswith("tg_")) and callable(fn)}
_ = NotOnScreen
