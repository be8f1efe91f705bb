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
from bot.words import catalogue
from models.workdays import reply_due

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
}

class _ChannelNames(Mapping[str, Mapping[str, str]]):
    """Channel names as beneficiaries read them ({language: text}), from the catalogue of words."""

    def __getitem__(self, channel: str) -> Mapping[str, str]:
        texts = catalogue().texts("channel", channel)
        if texts is None:
            raise KeyError(channel)
        return texts

    def __iter__(self) -> Iterator[str]:
        return iter(catalogue().codes("channel"))

    def __len__(self) -> int:
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
    return short_date(reply_due(now, tz, workdays), lang, now.astimezone(tz).date(), weekday=True)


def t(key: str, lang: str, **kw: Any) -> str:
    text = localise(T[key], lang)
    return text.format(**kw) if kw else text
