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
