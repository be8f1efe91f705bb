"""The engine's own words (menus, help, errors), in zh-Hans and English.

zh-Hant is made from zh-Hans by bot/language.py in the configured regional variant. Flow
prompts live in the flow files; these are the words every flow shares. Keep each one short
and plain: many readers are over 80 and read on an old phone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from bot.language import LANGUAGES, localise
from bot.language import to_traditional as to_hant
from bot.words import catalogue

__all__ = ["LANGUAGES", "T", "CHANNEL_NAMES", "localise", "t", "to_hant"]


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
    "opted_out": {
        "zh-Hans": "已退订：我们不再主动给您发通知。您仍可随时来问。想恢复，回复“订阅”或START。",
        "en": "Unsubscribed: we will not send you notices any more. You can still write to us. "
              "Reply START to subscribe again.",
    },
    "opted_out_already": {
        "zh-Hans": "您已经退订了，不会再收到通知。想恢复，回复“订阅”或START。",
        "en": "You are already unsubscribed. Reply START to subscribe again.",
    },
    "opted_in": {
        "zh-Hans": "已恢复订阅，以后会给您发通知。回复“退订”可再次停止。",
        "en": "Subscribed again: you will get our notices. Reply STOP to stop.",
    },
    "opted_in_already": {
        "zh-Hans": "您一直在接收通知，不用恢复。",
        "en": "You are already subscribed.",
    },
    "handoff_done": {
        "zh-Hans": "已转给工作人员（编号{ticket}），一般1个工作日内在这里回复您。",
        "en": "Passed to our staff (ticket {ticket}). They usually reply here within 1 working day.",
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
        "zh-Hans": "这个问题我转给了工作人员（编号{ticket}），一般1个工作日内在这里回复您。",
        "en": "I passed your question to our staff (ticket {ticket}). They usually reply here within 1 working day.",
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


def t(key: str, lang: str, **kw: Any) -> str:
    text = localise(T[key], lang)
    return text.format(**kw) if kw else text
