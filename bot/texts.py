"""The engine's own words (menus, help, errors), in zh-Hans and English.

zh-Hant is made from zh-Hans by bot/language.py in the configured regional variant. Flow
prompts live in the flow files; these are the words every flow shares. Keep each one short
and plain: many readers are over 80 and read on an old phone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.language import LANGUAGES, localise
from bot.language import to_traditional as to_hant

__all__ = ["LANGUAGES", "T", "CHANNEL_NAMES", "localise", "reply_by", "short_date", "short_month", "t", "to_hant"]


T: dict[str, dict[str, str]] = {
    "footer_menu": {
        "zh-Hans": "回复0回主菜单，回复“人工”找工作人员",
        "en": 'Reply 0 for the menu, or "human" for a person.',
    },
    "footer_flow": {
        "zh-Hans": "回复“返回”改上一步，回复0回主菜单，回复“人工”找工作人员",
        "en": 'Reply "back" to change the last answer, 0 for the menu, "human" for a person.',
    },
    "menu_title": {
        "zh-Hans": "您好，这里是暖心服务。请回复数字：",
        "en": "Hello, this is the Nuanxin service. Reply with a number:",
    },
    "menu_link": {"zh-Hans": "绑定身份（办事前先做）", "en": "Link your record (needed before applying)"},
    "menu_question": {
        "zh-Hans": "有政策问题，直接打字问我。",
        "en": "Have a policy question? Just type it.",
    },
    "menu_linked_as": {"zh-Hans": "已绑定：{name}", "en": "Linked to: {name}"},
    "about_us": {
        "zh-Hans": "这里是{office}：政策问题直接打字问我，办事回复菜单里的数字，工作人员在工作日回复。"
                   "电话：{phone}（办公地址和时间也可以打这个电话问）。",
        "en": "This is {office}: type a policy question, or reply with a menu number to apply; "
              "staff answer on working days. Phone: {phone} (ask there for the address and opening hours too).",
    },
    "automatic": {
        "zh-Hans": "我是{office}的自动回复，不是真人：政策问题直接打字问我，办事回复菜单里的数字。"
                   "想找工作人员，回复“人工”，工作人员在工作日回复您；也可以打电话{phone}。",
        "en": "I am {office}'s automatic service, not a person: type a policy question, or reply with a menu number "
              "to apply. To reach a member of staff, reply \"human\" (they answer on working days), or call {phone}.",
    },
    "how_to_use": {
        "zh-Hans": "不用急，很简单：有问题直接打字（或发语音）问我，比如“养老金认证怎么做”；办事回复菜单里的数字。"
                   "字太小的话，可以在手机的“设置”里把字调大。想找工作人员，回复“人工”；也可以打电话{phone}。",
        "en": "No hurry, it is simple: type (or send a voice message) with your question, for example \"how do I do "
              "the pension check\"; to apply, reply with a menu number. If the letters are too small, make them bigger "
              "in your phone's Settings. To reach a person, reply \"human\", or call {phone}.",
    },
    "acknowledged": {
        "zh-Hans": "好的。有事随时发消息给我们。",
        "en": "All right. Write to us any time you need us.",
    },
    "which_service": {
        "zh-Hans": "好的，您要办哪一项？请回复数字：",
        "en": "Of course. Which of these would you like to do? Reply with its number:",
    },
    "asking_for_family": {
        "zh-Hans": "好的，家属替老人问、替老人办都可以。请直接打字问，或回复菜单里的数字。",
        "en": "Of course: family members can ask and apply for them. Type your question, or reply with a number.",
    },
    "not_understood_menu": {
        "zh-Hans": "没看懂您的意思。",
        "en": "Sorry, I did not understand.",
    },
    "help": {
        "zh-Hans": "怎么用：回复菜单里的数字办事；直接打字问政策；"
                   "“返回”改上一步；0回主菜单；“人工”找工作人员；“语言”换语言；“退订”不再接收通知。",
        "en": 'How to use: reply with a menu number; type a question; "back" to go back; 0 for the menu; '
              '"human" for a person; "language" to change language; "STOP" to stop notices.',
    },
    "help_in_flow": {"zh-Hans": "现在正在办：{title}。", "en": "You are in: {title}."},
    "language_pick": {
        "zh-Hans": "请选择语言：回复“中文”、“繁體”或“English”。",
        "en": 'Choose a language: reply "中文", "繁體" or "English".',
    },
    "language_set": {"zh-Hans": "好的，以后用简体中文。", "en": "OK, English from now on."},
    "language_set_hant": {"zh-Hans": "好的，以后用繁体中文。", "en": "OK, Traditional Chinese from now on."},
    # What an opt-out stops and what goes on is the contact rule's (outreach/reach.py): on this
    # channel, no broadcasts, greetings or reminders; replies to what the person asks and news of
    # their own applications still come.
    "opted_out": {
        "zh-Hans": "已退订：以后不在这里给您发群发、节日问候和提醒。您问的事的答复、您自己申请的进展照常发。"
                   "要全部停止，回复“人工”。想恢复，回复“订阅”。",
        "en": "Unsubscribed: no more broadcasts, greetings or reminders here. Answers to what you ask and news "
              "of your own applications still come. To stop everything, reply HUMAN and a member of staff will do "
              "it. To undo, reply START.",
    },
    "opted_out_already": {
        "zh-Hans": "您已经退订了这里的群发、问候和提醒；您问的事的答复和申请进展照常发。要全部停止，回复“人工”。"
                   "想恢复，回复“订阅”。",
        "en": "You are already unsubscribed from broadcasts, greetings and reminders here; answers and news of "
              "your applications still come. To stop everything, reply HUMAN and a member of staff will do it. "
              "To undo, reply START.",
    },
    "opted_in": {
        "zh-Hans": "已恢复订阅，以后会给您发通知。回复“退订”可再次停止。",
        "en": "Subscribed again: you will get our notices. Reply STOP to stop.",
    },
    "opted_in_already": {
        "zh-Hans": "您一直在接收通知，不用恢复。",
        "en": "You are already subscribed.",
    },
    "too_many_messages": {
        "zh-Hans": "您的消息我们都收到了。短时间内消息太多，先暂停一下：请{wait}再发。有急事请打{phone}。",
        "en": "We have your messages. There were too many in a short time, so we are pausing: please write "
              "again {wait}. For anything urgent, call {phone}.",
    },
    "handoff_done": {
        "zh-Hans": "已转给工作人员（编号{ticket}），一般1个工作日内在这里回复您，最晚{reply_by}。",
        "en": "Passed to our staff (ticket {ticket}). They usually reply here within 1 working day, "
              "by {reply_by} at the latest.",
    },
    "handoff_already": {
        "zh-Hans": "您的问题已经在工作人员那里（编号{ticket}），请耐心等回复。",
        "en": "Your question is already with our staff (ticket {ticket}). They will reply here.",
    },
    "opted_out_in_flow": {
        "zh-Hans": "正在办的“{title}”不受影响，填过的已保存：回复任何内容接着办，回复0回主菜单。",
        "en": 'The "{title}" you were filling in is not affected and what you entered is saved: reply to go on, '
              "or 0 for the menu.",
    },
    "handoff_saved": {
        "zh-Hans": "刚才填的内容已保存，随时回复接着办。",
        "en": "What you entered is saved; reply any time to continue.",
    },
    "qa_passed_on": {
        "zh-Hans": "这个问题我转给了工作人员（编号{ticket}），一般1个工作日内在这里回复您，最晚{reply_by}。",
        "en": "I passed your question to our staff (ticket {ticket}). They usually reply here within 1 working "
              "day, by {reply_by} at the latest.",
    },
    "need_text": {
        "zh-Hans": "这一步需要您打字回复。",
        "en": "This step needs a typed answer.",
    },
    "too_many_tries": {
        "zh-Hans": "如果不好填，回复“人工”，工作人员会帮您。",
        "en": 'If this is hard, reply "human" and a person will help.',
    },
    "previous_answer": {
        "zh-Hans": "上一题已经记下了。",
        "en": "Your previous answer is already saved.",
    },
    "needs_link": {
        "zh-Hans": "办理前需要先确认您的身份（只需一次）。",
        "en": "Before applying we need to confirm who you are (only once).",
    },
    "back_to_step": {
        "zh-Hans": "我们接着刚才的事：",
        "en": "Now, back to where we were:",
    },
    "resumed": {
        "zh-Hans": "接着您上次的办理：",
        "en": "Continuing where you left off:",
    },
    "continued_from": {
        "zh-Hans": "接着您在{channel}上的办理：",
        "en": "Continuing what you started on {channel}:",
    },
    "error": {
        "zh-Hans": "抱歉，系统刚才出了点问题，您填的内容没有丢。请再发一次。",
        "en": "Sorry, something went wrong on our side. Nothing you entered is lost. Please send it again.",
    },
    "cancelled": {
        "zh-Hans": "好的，这次没有提交。",
        "en": "OK, nothing was submitted.",
    },
    "files_not_here": {
        "zh-Hans": "这一步不需要发图片或文件，请打字回复。",
        "en": "No picture or file is needed here; please type your answer.",
    },
    "photo_at_menu": {
        "zh-Hans": "收到您的图片/文件。要交材料，请先在菜单里选要办的事。",
        "en": "Got your picture/file. To hand in documents, first pick a service from the menu.",
    },
    # --- buttons ---
    "stale_button": {
        "zh-Hans": "您按的是前面一条消息的按钮，这次没有算数。现在的问题是：",
        "en": "That button belonged to an earlier message, so it was not used. The question now is:",
    },
    "menu_title_buttons": {
        "zh-Hans": "您好，这里是暖心服务。请选要办的事：",
        "en": "Hello, this is the Nuanxin service. Please choose:",
    },
    "button_back": {"zh-Hans": "返回", "en": "Back"},
    "deceased_self": {
        "zh-Hans": "我们的记录里，这个号码登记的人已经去世了，不能再以他本人的身份办事。家属要办事，请回复“绑定”，选“家属代办”。",
        "en": 'Our record says the person registered with this number has died, so nothing can be done as them. '
              'A family member can reply "link" and choose "Family member".',
    },
    # --- media that are not documents ---
    "voice_to_staff": {
        "zh-Hans": "收到您的语音。我这里听不了语音，已转给工作人员听（编号{ticket}），一般1个工作日内在这里回复您。",
        "en": "Got your voice message. I cannot listen to it, so it is with our staff (ticket {ticket}); "
              "they usually reply here within 1 working day.",
    },
    "sticker_reply": {"zh-Hans": "收到您的表情，谢谢！", "en": "Thank you for the sticker!"},
    "location_reply": {
        "zh-Hans": "收到您的位置。办事不需要发位置。",
        "en": "Got your location. No location is needed for our services.",
    },
    "contact_reply": {
        "zh-Hans": "收到一张名片。要替家人办事，请先“绑定身份”，选“家属代办”。",
        "en": 'Got a contact card. To act for a family member, first "link" your record as a family member.',
    },
    "video_reply": {
        "zh-Hans": "收到您的视频。视频我这里看不了；材料请拍照片发来，有事请打字或回复“人工”。",
        "en": 'Got your video. I cannot watch videos: send documents as photos, and type your question or reply "human".',
    },
    "edited_reply": {
        "zh-Hans": "看到您改了之前的消息。已经记下的回答不会跟着改；要改，请回复“返回”再填一次。",
        "en": 'I see you edited an earlier message. Answers already taken do not change with it; '
              'to change one, reply "back" and answer again.',
    },
    # --- services before articles ---
    "offer_how": {"zh-Hans": "回复1（要），回复2（不是）。", "en": "Reply 1 for yes, 2 for no."},
    "offer_yes": {"zh-Hans": "要", "en": "Yes"},
    "offer_no": {"zh-Hans": "不是", "en": "No"},
    "switch_how": {
        "zh-Hans": "回复1（要，刚才{title}填的会先保存），回复2（接着办{title}）。",
        "en": "Reply 1 for yes (what you entered for {title} is kept), 2 to go on with {title}.",
    },
    "switch_no": {"zh-Hans": "接着刚才的", "en": "Go on"},
    "held_ask": {
        "zh-Hans": "您写的是：“{text}”\n这是要填的“{label}”，还是想问我们一个问题？",
        "en": 'You wrote: "{text}"\nIs this the {label} to fill in, or a question for us?',
    },
    "held_keep": {"zh-Hans": "是{label}，记下", "en": "It is the {label}: keep it"},
    "held_asking": {"zh-Hans": "是问题，请回答", "en": "It is a question"},
    "offer_declined": {
        "zh-Hans": "好的。请选菜单里要办的事，或者把您的问题说详细一点。",
        "en": "All right. Pick a service from the menu, or tell me a little more.",
    },
    "ticket_added": {
        "zh-Hans": "这条也转给了工作人员，和您之前的问题（编号{ticket}）放在一起，一般1个工作日内在这里回复您。",
        "en": "This too is with our staff, together with your earlier question (ticket {ticket}). "
              "They usually reply here within 1 working day.",
    },
    "button_person": {"zh-Hans": "找人工", "en": "Talk to a person"},
    # Answering a step of a flow: what went wrong with an answer, and how to answer.
    "text_empty": {"zh-Hans": "请打字回复。", "en": "Please type your answer."},
    "text_long": {"zh-Hans": "内容太长了，请控制在{n}个字以内。", "en": "That is too long; please keep it under {n} characters."},
    "text_short": {"zh-Hans": "请多写几个字。", "en": "Please write a little more."},
    "text_unknown": {"zh-Hans": "这一步要填上才能办。记不清的话，回复“人工”，工作人员帮您。",
                     "en": 'This step is needed to go on. If you cannot remember, reply "human" and a person will help.'},
    "text_ack": {"zh-Hans": "好的。这一步还需要您写几句。", "en": "All right. This step still needs a few words from you."},
    "date": {"zh-Hans": "没看懂这个日期。请这样写：2026年3月2日 或 2026-3-2。",
             "en": "I could not read that date. Please write it like 2026-03-02."},
    "date_month": {"zh-Hans": "没看懂这个日期。请这样写：1998年12月 或 1998-12。",
                   "en": "I could not read that date. Please write it like 1998-12."},
    "date_need_day": {"zh-Hans": "您说的是{when}，请再告诉我是哪一天，例如：3月5日。",
                      "en": "You said {when}; which day was it? For example: 5 March."},
    "date_need_month": {"zh-Hans": "您说的是{when}，请再告诉我是几月，例如：1998年12月。",
                        "en": "You said {when}; which month was it? For example: December 1998."},
    "cancel_word": {"zh-Hans": "好的，这次可以不办。回复0回主菜单，填过的会先保存；要接着办，请回答：",
                    "en": "All right, you can stop here. Reply 0 for the menu (what you entered is kept); to go on, answer:"},
    "asked": {"zh-Hans": "这一步要填的是：{label}。有问题请回复“人工”，工作人员帮您。",
              "en": 'This step asks for: {label}. For a question, reply "human" and a person will help.'},
    "asked_here": {"zh-Hans": "请先回答下面这个问题；有别的问题请回复“人工”，工作人员帮您。",
                   "en": 'Please answer the question below first; for anything else, reply "human" and a person will help.'},
    "date_future": {"zh-Hans": "这个日期还没到，请再看看。", "en": "That date is in the future; please check."},
    "date_past": {"zh-Hans": "这个日期已经过了，请选今天或以后的日子。", "en": "That date has passed; please pick today or later."},
    "date_after": {"zh-Hans": "这个日期应该在{other}之后，请再看看。", "en": "This date should be after {other}; please check."},
    "date_range": {"zh-Hans": "请写开始和结束两个日期，例如：2026-1-5到2026-1-20。",
                   "en": "Please give the start and end dates, e.g. 2026-01-05 to 2026-01-20."},
    "date_range_order": {"zh-Hans": "结束日期比开始日期早了，请再看看。", "en": "The end date is before the start date; please check."},
    "money": {"zh-Hans": "请只写金额数字，例如：3500 或 3500.50。", "en": "Please write just the amount, e.g. 3500 or 3500.50."},
    "money_lone_digit": {"zh-Hans": "这里要写金额，例如：3500；没有就写0。如果真是{v}元，请写“{v}元”。",
                         "en": 'An amount is needed here, e.g. 3500; 0 if none. If it really is {v} yuan, write "{v} yuan".'},
    "money_range": {"zh-Hans": "这个金额不太对，请再核对一下。", "en": "That amount does not look right; please check."},
    "yes_no": {"zh-Hans": "请回复1（是）或2（不是）。", "en": "Please reply 1 (yes) or 2 (no)."},
    "confirm_again": {"zh-Hans": "请看看下面写得对不对，再回复数字。", "en": "Please check the details below, then reply with a number."},
    "confirm_unsure": {"zh-Hans": "拿不准的话，回复“人工”，工作人员帮您看；写得没错就回复1提交。",
                       "en": 'If you are not sure, reply "human" and a member of staff will look; if it is right, reply 1.'},
    "choice": {"zh-Hans": "请回复选项前面的数字。", "en": "Please reply with the number of an option."},
    "choice_unsure": {"zh-Hans": "不确定的话，选最接近的一项就行；实在拿不准，回复“人工”，工作人员帮您。",
                      "en": 'If you are not sure, pick the closest one; if you cannot tell, reply "human" and a '
                            'person will help.'},
    "yes_no_unsure": {"zh-Hans": "记不清也没关系，回复“人工”，工作人员帮您问清楚；记得的话，请回复1（是）或2（不是）。",
                      "en": 'If you cannot remember, reply "human" and a person will help you find out; if you do, '
                            'reply 1 (yes) or 2 (no).'},
    "otp": {"zh-Hans": "验证码是6位数字，请再看看短信。", "en": "The code is 6 digits; please check the SMS."},
    "id_card_needed": {"zh-Hans": "这一步要的是18位身份证号（都是数字，最后一位可以是X）。",
                       "en": "This step needs the 18-character ID number (digits; the last one may be X)."},
    "id_card_unsure": {"zh-Hans": "记不清身份证号也没关系：身份证、户口本、社保卡上都有；实在找不到，回复“人工”，工作人员帮您。",
                       "en": 'If you do not know the ID number, it is on the ID card, the household register and the '
                             'social-security card; if you cannot find it, reply "human" and a person will help.'},
    "phone_needed": {"zh-Hans": "这一步要的是11位手机号，例如13812345678。",
                     "en": "This step needs an 11-digit mobile number, for example 13812345678."},
    "phone_unsure": {"zh-Hans": "记不清号码也没关系，可以先问问家里人；实在不知道，回复“人工”，工作人员帮您。",
                     "en": 'If you do not know the number, ask someone in the family; if no one knows, reply "human" '
                           'and a person will help.'},
    "file_or_skip": {"zh-Hans": "请发这份材料的照片或文件；没有就回复“跳过”；都以后带去窗口就回复“以后”。",
                     "en": 'Please send a photo or file of this document; reply "skip" if you do not have it, '
                           'or "later" to bring everything to the service window.'},
    # The words flows share: buttons, confirmations, documents.
    "yes": {"zh-Hans": "是", "en": "Yes"},
    "no": {"zh-Hans": "不是", "en": "No"},
    "submit": {"zh-Hans": "提交", "en": "Submit"},
    "dont_submit": {"zh-Hans": "不提交", "en": "Do not submit"},
    "reply_yes_no": {"zh-Hans": "回复1（是）或2（不是）", "en": "Reply 1 (yes) or 2 (no)"},
    "reply_number": {"zh-Hans": "请回复数字：", "en": "Reply with a number:"},
    "confirm_head": {"zh-Hans": "请核对：", "en": "Please check:"},
    "fact": {"zh-Hans": "{label}：{value}", "en": "{label}: {value}"},
    "fact_separator": {"zh-Hans": "，", "en": ", "},
    "name_and_card": {"zh-Hans": "{name}（{masked}）", "en": "{name} ({masked})"},
    "confirm_tail": {"zh-Hans": "回复1提交，回复2不提交。", "en": "Reply 1 (Submit) or 2 (Do not submit)."},
    "doc_prompt": {"zh-Hans": "第{i}/{n}份：{label}。请拍照发来。",
                   "en": "Document {i} of {n}: {label}. Send a photo or file."},
    "doc_how": {"zh-Hans": "没有就回复“跳过”；都以后带去窗口就回复“以后”。",
                "en": 'Reply "skip" if you do not have it, or "later" to bring the rest to the service window.'},
    "skip": {"zh-Hans": "跳过", "en": "Skip"},
    "later": {"zh-Hans": "以后带去", "en": "Bring later"},
    # The question with the answer: a bare "是" or "自己辞职离开" says not to what.
    "confirm_choice": {"zh-Hans": "{question}\n您选的是“{answer}”，确定吗？",
                       "en": '{question}\nYou chose "{answer}". Are you sure?'},
    "confirm_cancel": {"zh-Hans": "确定不提交吗？这次填的内容不会保存。",
                       "en": "Are you sure you do not want to submit? What you entered will not be kept."},
    "sure": {"zh-Hans": "确定", "en": "Yes, that is right"},
    "choose_again": {"zh-Hans": "重新选", "en": "Choose again"},
    "sure_how": {"zh-Hans": "回复1确定，回复2重新选。", "en": "Reply 1 if so, or 2 to choose again."},
    "known_head": {"zh-Hans": "我们登记的是：{facts}。对吗？", "en": "Our record says: {facts}. Is that right?"},
    "told_head": {"zh-Hans": "按您说的记下了：{facts}。不对的话回复“返回”改。",
                  "en": 'Noted from what you said: {facts}. Reply "back" to change it.'},
    "known_how": {"zh-Hans": "回复1（是）或2（不是）；不对的也可以直接回答上面的问题。",
                  "en": "Reply 1 (Yes) or 2 (No); if it is not right, you can also just answer the question above."},
    "right": {"zh-Hans": "是", "en": "Yes"},
    "not_right": {"zh-Hans": "不是", "en": "No"},
    "id_not_linked": {"zh-Hans": "这个身份证号和绑定的{name}（{masked}）对不上，请再看看。",
                      "en": "That ID number does not match {name} ({masked}), the person linked here. Please check."},
    "id_is_own": {"zh-Hans": "这是您本人的身份证号。请发去世的人的身份证号。",
                  "en": "That is your own ID number. Please send the ID number of the person who died."},
    "doc_got": {"zh-Hans": "收到：{label}。", "en": "Received: {label}."},
    "bring_list": {"zh-Hans": "要准备的材料（请带到服务窗口）：", "en": "Documents to prepare (bring them to the service window):"},
    "missing": {"zh-Hans": "还缺这些材料，请带到服务窗口：{items}。", "en": "Still missing, please bring to the service window: {items}."},
    "received": {"zh-Hans": "已收到", "en": "received"},
    "not_received": {"zh-Hans": "未收到", "en": "not received"},
    "skipped": {"zh-Hans": "（未填）", "en": "(none)"},
    "yuan": {"zh-Hans": "{v}元", "en": "{v} yuan"},
    "to": {"zh-Hans": "至", "en": "to"},
    # linking a chat to a person on the roll (bot/identity.py)
    "link_who": {"zh-Hans": "请问是谁要办事？\n1. 我本人\n2. 我是家属，替老人办",
            "en": "Who is this for?\n1. Myself\n2. I am a family member acting for them"},
    "link_relationship": {"zh-Hans": "您是老人的什么人？", "en": "How are you related to them?"},
    "link_key": {"zh-Hans": "请发老人登记的手机号（11位），或身份证号的后6位。",
            "en": "Please send the phone number on our roll (11 digits), or the last 6 characters of the ID number."},
    "link_key_self": {"zh-Hans": "请发您登记的手机号（11位），或身份证号的后6位。",
                 "en": "Please send your phone number on our roll (11 digits), or the last 6 characters of your ID number."},
    "link_key_bad": {"zh-Hans": "没看懂。请发11位手机号，或身份证号后6位（例如12345X）。",
                "en": "I could not read that. Send an 11-digit phone number, or the last 6 ID characters (e.g. 12345X)."},
    "link_not_found": {"zh-Hans": "没有找到这个登记信息。请看看号码对不对再试，或回复“人工”。"
                               "还没登记的，请带身份证到{office}服务窗口登记（电话{phone}）。",
                  "en": 'We could not find that on our roll. Check the number and try again, or reply "human". '
                        "If you have not registered yet, bring your ID card to our service window to register "
                        "(phone {phone})."},
    "link_too_many_lookups": {"zh-Hans": "今天试了好几次都没找到，先不再查了。请回复“人工”，工作人员帮您核对；"
                                    "或带身份证到{office}服务窗口（电话{phone}）。",
                         "en": 'Still not found after several tries today, so we stop looking for now. Reply "human" '
                               "and a person will check, or come to our service window with your ID card "
                               "(phone {phone})."},
    "link_ask_phone": {"zh-Hans": "请再发登记的手机号（11位）。验证码只发到您打出来的、登记过的手机上。",
                  "en": "Please also send the phone number on our roll (11 digits). The code goes only to a "
                        "registered phone you type in full."},
    "link_ask_last6": {"zh-Hans": "这个号码登记了几位，请再发要办事的人身份证号后6位。",
                  "en": "This number is on our roll for several people. Please send the last 6 ID characters of the person."},
    "link_no_phone": {"zh-Hans": "登记信息里没有能收短信的手机号，无法发验证码。请回复“人工”，工作人员帮您绑定。",
                 "en": 'There is no mobile number on the roll to send a code to. Reply "human" and a person will help.'},
    "link_sent": {"zh-Hans": "验证码已发到登记的手机{phone}，10分钟内有效。请把6位验证码发过来。没收到回复“重发”。",
             "en": 'A code was sent by SMS to {phone}; it is valid for 10 minutes. Send the 6 digits here. '
                   'Reply "resend" if it did not arrive.'},
    "link_rate_limited": {"zh-Hans": "验证码发得太多了，请1小时后再试，或回复“人工”。",
                     "en": 'Too many codes were sent. Please try again in an hour, or reply "human".'},
    "link_code_bad": {"zh-Hans": "验证码不对，还可以试{left}次。", "en": "That code is not right; {left} tries left."},
    "link_code_expired": {"zh-Hans": "验证码已过期或已用过。回复“重发”再发一个。",
                     "en": 'That code has expired or was used. Reply "resend" for a new one.'},
    "link_code_locked": {"zh-Hans": "错的次数太多，这个验证码作废了。回复“重发”再发一个。",
                    "en": 'Too many wrong tries; that code no longer works. Reply "resend" for a new one.'},
    "link_deceased_self": {"zh-Hans": "我们的记录里，这位登记的人已经去世了，不能以本人身份绑定。家属要办事，请回复“返回”，选“家属代办”。",
                      "en": 'Our record says this person has died, so the record cannot be linked as themselves. '
                            'A family member can reply "back" and choose "Family member".'},
    "link_linked": {"zh-Hans": "绑定成功：{name}（{masked}）。", "en": "Linked: {name} ({masked})."},
    "link_linked_proxy": {"zh-Hans": "绑定成功：您以{rel}身份代{name}（{masked}）办事。",
                     "en": "Linked: you act for {name} ({masked}) as {rel}."},
    "link_title": {"zh-Hans": "绑定身份", "en": "linking your record"},
    "link_myself": {"zh-Hans": "我本人", "en": "Myself"},
    "link_family_member": {"zh-Hans": "家属代办", "en": "Family member"},
    "link_code_format": {"zh-Hans": "请发短信里的6位数字验证码。没收到回复“重发”。",
                         "en": 'Please send the 6-digit code from the SMS. Reply "resend" if it did not come.'},
    "link_reply_number": {"zh-Hans": "请回复数字。", "en": "Please reply with a number."},
    "phone_invalid": {"zh-Hans": "手机号不对，请写11位手机号，例如13812345678。",
                      "en": "That phone number does not look right; please write 11 digits."},
    # a person's own applications (the "my applications" report and the one-open-application check)
    "already_open": {"zh-Hans": "您已经有一份{kind}在办（编号{reference}，{stage}），不用再申请。想看进度，回复“我的申请”。",
                     "en": 'You already have a {kind} application under way ({reference}: {stage}); there is no need to '
                           'apply again. Reply "my applications" to see how it is going.'},
    "my_applications_none": {"zh-Hans": "您现在没有在办的申请。", "en": "You have no applications."},
    "my_applications_head": {"zh-Hans": "您的申请：", "en": "Your applications:"},
    "my_applications_missing": {"zh-Hans": "还缺：{items}，请带到服务窗口。",
                                "en": " Still missing: {items}; please bring them to the window."},
    # the pension certification's dates from the record (said before asking how to certify)
    "cert_status_you": {"zh-Hans": "您", "en": "You"},
    "cert_status_done": {"zh-Hans": "{who}上次认证是{last}，下次在{due}前做就行，到时候我们会发消息提醒，现在可以不办；"
                                    "要现在办也行，接着往下回答。",
                         "en": "{who} last certified on {last}; the next one is due by {due}, and we will remind you: "
                               "nothing is needed now, but you may go on if you wish."},
    "cert_status_due": {"zh-Hans": "{who}上次认证是{last}，这次要在{due}前做。",
                        "en": "{who} last certified on {last}; this year's is due by {due}."},
    "cert_status_overdue": {"zh-Hans": "{who}上次认证是{last}，这次本该在{due}前做，已经过了日子，请尽快办。",
                            "en": "{who} last certified on {last}; this year's was due by {due}, so please do it soon."},
    "ticket_number": {"zh-Hans": "（编号{ticket}）", "en": " (ticket {ticket})"},

    # the policy Q&A's own replies (bot/qa.py): a handoff, why it was handed off, the source line
    "qa_stay": {"zh-Hans": "工作人员会在工作日尽快回复您，一般1个工作日内。",
               "en": "They will reply on a working day, usually within 1 working day."},
    "qa_handoff_out_of_scope": {"zh-Hans": "这个问题我这里没有把握回答，已经转给工作人员。{stay}",
                               "en": "I can't answer this one reliably, so I have passed it to a member of staff. "
                                     "{stay}"},
    "qa_handoff_personal_case": {"zh-Hans": "这是关于个人情况的问题，需要工作人员查看记录，已经转给工作人员。"
                                            "{stay}请不要在这里发送身份证号码。",
                                "en": "This is about one person's own case, which a member of staff needs to "
                                      "look up. I have passed it to them. {stay} Please do not send an ID card "
                                      "number here."},
    "qa_handoff_complaint": {"zh-Hans": "您的意见已经转给负责的工作人员，我们会认真核实处理，一般1个工作日内有人联系您。"
                                        "谢谢您告诉我们。",
                            "en": "Thank you for telling us. I have passed this to the staff member in charge; "
                                  "someone will contact you, usually within 1 working day."},
    "qa_handoff_asked_for_person": {"zh-Hans": "好的，已经为您转给工作人员。{stay}",
                                   "en": "Of course. I have passed your message to a member of staff. {stay}"},
    "qa_detail_other_place": {"zh-Hans": "您问的是{asked}的规定。我这里的资料讲的是{ours}的做法，不能代表{asked}；"
                                         "{asked}的规定请向当地{agency}咨询。这个问题我也转给了工作人员，",
                             "en": "You are asking about {asked}. What I have describes the rules in {ours}, "
                                   "which may not apply in {asked}; please ask {agency} there. I have also passed "
                                   "your question to a member of staff. "},
    "qa_detail_not_stated": {"zh-Hans": "资料里没有写这个具体金额，我不能随便说个数。已经转给工作人员，",
                            "en": "The documents I answer from do not give that amount, so I will not guess "
                                  "one. I have passed your question to a member of staff. "},
    "qa_detail_other_year": {"zh-Hans": "资料里没有{year}年的数字，别的年份的数字不能代替，我不能随便说个数。"
                                        "已经转给工作人员，",
                            "en": "The documents I answer from give no figure for {year}, and another year's "
                                  "figure would not answer it. I have passed your question to a member of staff. "},
    "qa_detail_future_figure": {"zh-Hans": "资料里只有已经公布的数字，{when}的还没有公布，我不能随便说个数。已经转给工作人员，",
                                "en": "The documents I answer from give only figures already published, none for "
                                      "{when}, so I cannot say. I have passed your question to a member of staff. "},
    "qa_detail_unknown_benefit": {"zh-Hans": "我这里的资料里没有“{benefit}”这一项，不能确定有没有。已经转给工作人员帮您核实，",
                                 "en": "I have nothing on a \"{benefit}\" in what I answer from, so I cannot say "
                                       "whether it exists. I have passed your question to a member of staff. "},
    "qa_detail_staff_contact": {"zh-Hans": "工作人员个人的电话和联系方式我们不能提供。请就在这里留言，或拨打办事处公开的咨询电话；"
                                           "您的问题已经转给工作人员，",
                               "en": "We cannot give out a staff member's personal phone or contact details. "
                                     "Please write here, or use the office's public enquiry line; I have passed "
                                     "your question to a member of staff. "},
    "qa_detail_two_part": {"zh-Hans": "您问了两件事，其中一件我这里没有把握回答，所以整个问题转给了工作人员，",
                          "en": "You asked two things and I can't answer one of them reliably, so I have passed "
                                "the whole question to a member of staff. "},
    "qa_detail_many_questions": {"zh-Hans": "您一次问了好几件事，请一次问一个问题，我可以马上回答。整条消息也已经转给工作人员，",
                                "en": "You asked several things at once. Please ask one question at a time and "
                                      "I can answer straight away. I have also passed your whole message to "
                                      "a member of staff. "},
    "qa_detail_long_message": {"zh-Hans": "您的消息比较长，我没能从里面找到一个明确的问题。您可以用一句话问一个问题，"
                                          "我可以马上回答；整条消息也已经转给工作人员，",
                              "en": "Your message is long and I could not find one clear question in it. You "
                                    "can ask one question in a sentence and I can answer straight away; I have "
                                    "also passed the whole message to a member of staff. "},
    "qa_detail_not_about": {"zh-Hans": "我这里的资料没有讲到“{topic}”这一点，不能确定。已经转给工作人员，",
                           "en": "What I answer from says nothing about \"{topic}\" here, so I cannot be sure. "
                                 "I have passed your question to a member of staff. "},
    "qa_agency_veteran": {"zh-Hans": "退役军人事务部门",
                         "en": "the veterans affairs bureau"},
    "qa_agency_retiree": {"zh-Hans": "社保经办机构或街道社区",
                         "en": "the social insurance office"},
    "qa_agency_worker": {"zh-Hans": "工会",
                        "en": "the trade union"},
    "qa_agency_anyone": {"zh-Hans": "人社、民政或医保部门",
                        "en": "the local social security office"},
    "qa_source_label": {"zh-Hans": "来源：",
                       "en": "Source: "},
}


class _ChannelNames(Mapping[str, Mapping[str, str]]):
    """Channel names as beneficiaries read them ({language: text}), from the catalogue of words."""

    # The catalogue and the working-day calendar are imported on first use: the Q&A reads this module's
    # words at its cold start, which must not pay for loading the catalogue and the tables (about 0.4 s).
    def __getitem__(self, channel: str) -> Mapping[str, str]:
        from bot.words import catalogue

        texts = catalogue().texts("channel", channel)
        if texts is None:
            raise KeyError(channel)
        return texts

    def __iter__(self) -> Iterator[str]:
        from bot.words import catalogue

        return iter(catalogue().codes("channel"))

    def __len__(self) -> int:
        from bot.words import catalogue

        return len(catalogue().codes("channel"))


CHANNEL_NAMES: Mapping[str, Mapping[str, str]] = _ChannelNames()


_WEEKDAYS_ZH = "一二三四五六日"
_WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def short_date(day: date, lang: str, today: date | None = None, *, weekday: bool = False) -> str:
    """A date as people write it in a short message: 11月30日 / 30 Nov, with the year only when
    it is not this year's (or `today` is unknown), and the weekday when asked (11月30日（周一）)."""
    with_year = today is None or day.year != today.year
    if lang == "en":
        text = f"{day.day} {_MONTHS_EN[day.month - 1]}" + (f" {day.year}" if with_year else "")
        return f"{_WEEKDAYS_EN[day.weekday()]} {text}" if weekday else text
    text = (f"{day.year}年" if with_year else "") + f"{day.month}月{day.day}日"
    text = f"{text}（周{_WEEKDAYS_ZH[day.weekday()]}）" if weekday else text
    return to_hant(text) if lang == "zh-Hant" else text


def short_month(year: int, month: int, lang: str) -> str:
    """A month: 1998年12月 / Dec 1998."""
    if lang == "en":
        return f"{_MONTHS_EN[month - 1]} {year}"
    return f"{year}年{month}月"


def reply_by(now: datetime, tz: ZoneInfo, lang: str, workdays: int = 1) -> str:
    """The day a "within N working days" promise falls on, counted in China's working days
    (public holidays and make-up days included) from the office's date: 3月3日（周二）/ Tue 3 Mar."""
    from models.workdays import reply_due

    return short_date(reply_due(now, tz, workdays), lang, now.astimezone(tz).date(), weekday=True)


def t(key: str, lang: str, **kw: Any) -> str:
    text = localise(T[key], lang)
    return text.format(**kw) if kw else text
