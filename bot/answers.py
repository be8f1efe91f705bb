"""Answers as people type them: yes and no, numbers and amounts, dates, cancel words, questions.

Every function reads the reply through `bot.language.normalise_command` first, so each word
list is written once, in Simplified Chinese, and serves zh-Hant and Cantonese writers too
(係 arrives as 系, 冇 stays 冇). Nothing here knows about steps or storage: each function
returns a typed reading, or None when the text is not such an answer, and the flow runner
decides what to do with it.

- `interruption(text, free_text=...)`: `Cancel` for 取消 / 不办了 / 不提交 / 算了 / never mind at any
  step, `Question` for 什么意思？ / 这个怎么填 (at a free-text step also a short text ending in a
  question mark): the Runner must act on these instead of saving them as the answer.
- `asks_something(text)`: a question about anything but the step itself (医疗互助一年交多少钱).
- `unsure(text)`: the person cannot tell (不知道, 唔知, not sure).
- `stop_request(text)`: 不要再给我发短信了 / stop texting me: unsubscribe, asked in words.
- `who_acts(text)`: 我自己 / 我爸 / 我是他女儿 / my mum: the person themselves or a family member.
- `only_saying_who(text)`: 您好，我是帮我爸问的: who they ask for, nothing asked yet.
- `about_the_service(text)`: 我不会弄这个 (how_to_use) / 你是机器人吗 (automatic) / 你们是哪个单位的 (about_us).
- `greeting(text)`: 你好呀 / 喂，在吗 / 请问一下 / good morning and nothing else;
  `acknowledgement(text)`: 好的 / 收到了 / 谢谢你们 / ok thanks and nothing else.
- `yes_no(text)`: "yes" / "no" for 是的呀, 没有没有, 唔係, 係呀, 冇, yep, nope, ...
- `amount(text)`: `Amount(fen, approximate)` for 一萬二, 12000蚊, 一千五左右, 两千块, 1.2万, 3万5 ...
  (Chinese numerals through cn2an).
- `no_amount(text)`: 没有 / 冇收入 / none where an amount may be 0.
- `date_answer(text, today)`: `DateAnswer` kept at the precision given: a day (昨天晚上, 上礼拜三,
  3月5号, 30 Nov), a week (上礼拜), a month (一九六零年三月, 60年3月, 上个月) or a year.
  Two-digit years are read as the most recent such year (60 -> 1960, 05 -> 2005).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from bot import kin
from bot.language import cantonese_as_mandarin, normalise_command

# --------------------------------------------------------------------------- interruptions


@dataclass(frozen=True)
class Cancel:
    """The person wants to stop this service ("取消", "不办了"): nothing is submitted."""

    text: str


@dataclass(frozen=True)
class Question:
    """The person asks about the step instead of answering it ("什么意思？")."""

    text: str


Interruption = Cancel | Question

_CANCEL_WORDS = frozenset({
    "取消", "取消办理", "取消申请", "我要取消", "不办了", "不办", "不要办了", "不想办了", "先不办了", "不申请了",
    "不弄了", "不搞了", "不提交", "不提交了", "算了", "算了吧", "算啦", "那算了", "放弃", "不填了", "退出办理",
    "唔办了", "唔搞了", "唔使办了", "唔申请了", "唔提交",
    "cancel", "never mind", "nevermind", "forget it", "do not submit", "don't submit", "dont submit",
    "i changed my mind", "stop this", "quit this",
})
# "No need" answers a yes/no question (no); where something is to be written it means not going on with the form.
_NO_NEED = frozenset({"唔使", "唔使了", "唔使啦", "不用", "不用了", "不用办了", "不需要了", "no need", "not needed"})
_CANCEL_CJK = tuple(sorted((w for w in _CANCEL_WORDS if not w.isascii()), key=len, reverse=True))
_CLAUSE = re.compile(r"\s*[,，。.!！;；~～…、]+\s*")


def _made_of(core: str, phrases: tuple[str, ...]) -> bool:
    """The text is nothing but these phrases one after another, with particles between (算了不弄了, 你好呀)."""
    reachable = [False] * (len(core) + 1)
    reachable[0] = True
    for i, ch in enumerate(core):
        if not reachable[i]:
            continue
        if ch in _PARTICLES:
            reachable[i + 1] = True
        for phrase in phrases:
            if core.startswith(phrase, i):
                reachable[i + len(phrase)] = True
    return reachable[-1] and any(phrase in core for phrase in phrases)


def _only_cancel_words(w: str) -> bool:
    """算了不弄了, 不办了不办了, 算了吧不申请了, "never mind, cancel": nothing but cancel words, one after another.
    "放弃治疗了" is not: it says something else too."""
    if w.isascii():
        parts = [p for p in _CLAUSE.split(w) if p]
        return len(parts) > 1 and all(p in _CANCEL_WORDS for p in parts)
    return _made_of(_CLAUSE.sub("", w.replace(" ", "")), _CANCEL_CJK)


# --------------------------------------------------------------------------- asking to stop messages

_STOP_ZH = re.compile(
    r"^(请|麻烦)?(你们)?(以后)?(不要|别|不用|莫|唔好|唔使|不必|无需|不需要)(再)?(给|跟|向|同|帮|对)?(我|我们|我家)?(再)?"
    r"(发|打|推送|推|寄|传)(送|来)?(任何)?(短信|信息|消息|通知|讯息|短讯)?(给我|畀我|俾我|过来)?(了|啦|喇|咯|吧|啊|呀)*$"
    r"|^(我)?(不想|不要|不愿意|唔想|唔要)(再)?(收|接收|接|看)(到)?(你们的?|你地嘅?)?(任何)?(短信|信息|消息|通知|讯息|短讯)"
    r"(了|啦|喇|咯|吧|啊|呀)*$"
    r"|^(我要|我想|请|帮我)?(退订|取消订阅)(短信|消息|通知|信息)?(了|啦|吧)*$")
_STOP_EN = re.compile(
    r"^(please )?(stop|quit) (sending|texting|messaging|contacting) (me|us)( anything)?( any ?more| now)?"
    r"( (messages|texts|sms))?( please)?$"
    r"|^(i )?(want|would like|wish) to (stop|unsubscribe)( getting| receiving)?( (these|your|the|any|all))?"
    r"( (messages|texts|notifications|sms))?( please)?$"
    r"|^(please )?(don'?t|do not|never) (text|message|send|contact) (me|us)( anything)?( any ?more| again)?( please)?$"
    r"|^no more (messages|texts|sms|notifications)( please)?$"
    r"|^unsubscribe( me)?( please)?$")


def stop_request(text: str) -> bool:
    """不要再给我发短信了 / 我不想再收到消息 / stop texting me / I want to stop getting messages: the person asks
    for no more messages, in words rather than the keyword (TD, STOP), and is to be unsubscribed at once.
    A question about messages (为什么不给我发短信了？) is none."""
    w = normalise_command(text)
    if not w or re.search(r"[?？]|为什么|为啥|怎么|吗|呢|\b(why|how|when|can|could)\b", w):
        return False
    if w.isascii():
        return bool(_STOP_EN.match(" ".join(re.sub(r"[^a-z' ]", " ", w.replace("’", "'")).split())))
    core = _CLAUSE.sub("", w.replace(" ", ""))
    # 别发了 alone could be about anything sent (a photo): only messages to the person are meant.
    return bool(_STOP_ZH.match(core)) and bool(re.search(r"短信|信息|消息|通知|讯息|短讯|我|退订|取消订阅", core))


# --------------------------------------------------------------------------- who is writing

_OF_PARENT = kin.one_of(kin.PARENT_ZH)
_SPOUSE, _SIBLING = kin.one_of(kin.SPOUSE_ZH), kin.one_of(kin.SIBLING_ZH)
_I_AM_THEIR = r"(我是|我系|我係)(他|她|佢)(的|个|嘅)?"  # 我是他的 / 我系佢个
_RELATION_ZH: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("spouse", re.compile(r"我(的)?" + _SPOUSE + "|" + _I_AM_THEIR + _SPOUSE)),
    ("child", re.compile(r"我(的)?" + _OF_PARENT + "|" + _I_AM_THEIR + kin.one_of(kin.CHILD_ZH, kin.CHILD_CANTONESE)
                         + r"|(女儿|儿子)(帮|替|给)")),
    ("sibling", re.compile(r"我(的)?" + _SIBLING + "|" + _I_AM_THEIR + _SIBLING)),
    ("carer", re.compile(r"护工|保姆|照顾(他|她|老人)|看护")),
    ("other", re.compile(r"邻居|朋友|" + kin.one_of(kin.OTHER_KIN_ZH, kin.GRANDCHILD_ZH))),
)
_RELATION_EN: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("spouse", re.compile(rf"\bmy {kin.one_of(kin.SPOUSE_EN)}\b|\bi am (his|her) {kin.one_of(kin.SPOUSE_EN)}\b")),
    ("child", re.compile(rf"\bmy {kin.one_of(kin.PARENT_EN)}\b|\bi am (his|her) {kin.one_of(kin.CHILD_EN)}\b")),
    ("sibling", re.compile(rf"\bmy {kin.one_of(kin.SIBLING_EN)}\b")),
    ("carer", re.compile(r"\b(carer|caregiver|care worker)\b")),
    ("other", re.compile(r"\b(neighbou?r|friend|" + kin.one_of(kin.GRANDCHILD_EN, ("grandchild", "nephew", "niece"))[1:-1]
                         + r")\b")),
)
_FOR_ANOTHER = re.compile(r"家属|家人|(帮|替|给|代)(家里|家中)?(老人|长辈|别人|他|她)|代办|"
                          r"\b(for|on behalf of) (my|him|her|them)\b|\bfamily member\b")
_FOR_ONESELF = re.compile(r"^(是)?(我)?(自己|本人)(办|问|的事)?$|^我$|^(it'?s )?(for )?(me|myself)$|^i am$")


@dataclass(frozen=True)
class Acting:
    """Who writes: the person on the roll themselves, or a family member (relationship when it was said)."""

    proxy: bool
    relationship: str | None = None


def who_acts(text: str) -> Acting | None:
    """我自己 / 本人 -> themselves; 我爸 / 我是他女儿 / my mum / 帮老人问 -> a family member, with the
    relationship (catalogue group `relationship`) when the words say it; None when they say neither."""
    w = normalise_command(text)
    if not w:
        return None
    core = w if w.isascii() else _CLAUSE.sub("", w.replace(" ", ""))
    if _FOR_ONESELF.match(_strip_particles(core) if not w.isascii() else core):
        return Acting(proxy=False)
    for relationship, pattern in _RELATION_EN if w.isascii() else _RELATION_ZH:
        if pattern.search(core):
            return Acting(proxy=True, relationship=relationship)
    if _FOR_ANOTHER.search(core):
        return Acting(proxy=True)
    return None


_ASKING_FOR = re.compile(r"^(我是|我系|我)?(来)?(帮|替|给|代)(我)?(家)?(的)?(" + _OF_PARENT[1:-1] + r"|老伴|老公|老婆|家里老人|老人|长辈|家人)"
                         r"(来)?(问|办|咨询|打听|办事)(问)?(一下|下|点事|个事|下嘢)?(的|了|嘅|啫)?$")
# 我是他女儿 / 我系佢个仔: who the writer is to the person, alone or before what they came for.
_RELATIVE_OF = re.compile("^" + _I_AM_THEIR + kin.one_of(kin.CHILD_ZH, kin.CHILD_CANTONESE, kin.SPOUSE_ZH, kin.SIBLING_ZH,
                                                         kin.FAMILY_ZH, kin.GRANDCHILD_ZH, kin.IN_LAW_ZH, kin.OTHER_KIN_ZH))
_ASKING_FOR_EN = re.compile(
    r"^(hi |hello )?(i am|i'm|im) (asking|writing|here|enquiring|messaging|texting) (for|on behalf of) (my )?"
    + kin.one_of(kin.PARENT_EN, kin.SPOUSE_EN, kin.GRANDPARENT_EN, ("family",))
    + r"$|^(hi |hello )?(i am|i'm|im) (his|her) " + kin.one_of(kin.CHILD_EN, kin.SPOUSE_EN, kin.GRANDCHILD_EN, ("carer",))
    + "$")


def only_saying_who(text: str) -> bool:
    """您好，我是帮我爸问的 / 我替我妈来办事: a greeting and who the writer is asking for, and no question yet,
    to be answered with what can be asked rather than passed to staff."""
    w = normalise_command(text)
    if not w:
        return False
    if w.isascii():
        return bool(_ASKING_FOR_EN.match(" ".join(re.sub(r"[^a-z' ]", " ", w.replace("’", "'")).split())))
    core = re.sub(r"[?？]", "", _CLAUSE.sub("", w.replace(" ", "")))
    for greet in _GREETING_CJK:
        if core.startswith(greet) and len(core) > len(greet):
            core = core[len(greet):]
            break
    relative = _RELATIVE_OF.match(core)
    if relative:
        core = core[relative.end():]
        if not core:
            return True
    return bool(_ASKING_FOR.match(core))


# --------------------------------------------------------------------------- about the office

_ABOUT_US_ZH = re.compile(
    r"^(请问)?(你们|你|您|这里|这儿|这个)(是)?(谁|哪个单位|哪个部门|什么单位|什么部门|哪里|什么地方|干什么的|做什么的|哪儿)(的)?(呀|啊|呢)?$"
    r"|^(请问)?(怎么|如何|怎样|点样)(才能)?(联系|找到|联络)(你们|你|您|工作人员)(呀|啊|呢)?$"
    r"|^(请问)?(你们|你|您)?(的)?(电话|联系电话|电话号码|热线)(是)?(多少|几多|几号)?(呀|啊|呢)?$"
    r"|^(请问)?(你们|你|您)(在)?(哪里|哪儿|什么地方|边度)(办公|上班)?(呀|啊|呢)?$"
    r"|^(请问)?(你们|你|您)(的)?(地址|办公地点|办公地址)(在)?(哪里|哪儿|哪|什么地方)?(呀|啊|呢)?$"
    r"|^(请问)?(你们|你|您)?(几点|什么时候)(上班|办公|下班)(呀|啊|呢)?$")
_ABOUT_US_EN = re.compile(
    r"^(who|what) are you$|^who is this$|^how (do|can) i (contact|reach|call) you$|^what is your (phone )?number$"
    r"|^(your )?phone number$|^where are you( based| located)?$|^what are your (opening |office )?hours$")


_AUTOMATIC_ZH = re.compile(
    r"^(请问)?(你|您|你们|这)(到底)?(是不是|是|系唔系|系)(一个)?(机器人|机械人|真人|人工|电脑|自动回复|ai|人工智能|活人|真的人)"
    r"(吗|呀|啊|嘛|来的|嚟嘅|定系人|定系机械人|还是人|还是机器人?|还是真人|还是人工)?(吗|呀|啊)?$|^(是|系)(机器人|真人|人工|自动回复)(吗|呀|啊)?$"
    r"|^(我)?(在)?(跟|和|同)(谁|机器人|真人|人)(说话|聊天|讲话|倾偈)(吗|呢|呀)?$")
_AUTOMATIC_EN = re.compile(
    r"^(are|r) (you|u) (a |an )?(bot|robot|machine|computer|real person|human|person|ai|real)( or (a )?(bot|robot|human|person))?$"
    r"|^is this (a |an )?(bot|robot|machine|real person|human|person|automated|automatic)$"
    r"|^am i (talking|chatting|speaking) (to|with) (a |an )?(bot|robot|machine|real person|human|person)$")



_HOW_TO_USE_ZH = re.compile(
    r"^(我|俺|老人|我妈|我爸)?(不会|不知道怎么|不晓得怎么|唔识|唔知点)(弄|用|搞|操作|整|打字|发|回复|回)(这个|这|呢个|手机|了)?(呀|啊|哦|嘛)?$"
    r"|^(这个|这|呢个)?(怎么|咋|点样|如何)(弄|用|搞|操作|整|回复|回)(呀|啊|呢|啊)?$"
    r"|^(我)?(看不懂|看不明白|睇唔明|不明白)(你说的|这个|这些|呢个)?(呀|啊|呢)?$"
    r"|^(字|字体)(太|好|很)?(小|细)(了)?(看不清|看不见|睇唔到|睇唔清)?(楚)?(呀|啊)?$"
    r"|^(看不清|看不见)(字|楚)?(呀|啊)?$")
_HOW_TO_USE_EN = re.compile(
    r"^(i )?(do not|don t|dont|cannot|can t|cant) (know how to )?(use|work|understand) (this|it|the bot|your messages)$"
    r"|^how (do i|to) use (this|it|the bot)$|^(the )?(text|letters|writing|font) (is |are )?(too )?small$"
    r"|^(i )?(cannot|can t|cant) read (this|it|the text)$")




AboutTheService = Literal["how_to_use", "automatic", "about_us"]
# Whole messages about the chat or the office itself, answered from the office's settings (its name and public
# phone, never a staff member's own contact), with no ticket:
# - how_to_use: 我不会弄这个 / 看不懂 / 字太小看不清 / how do I use this (a short guide and the menu);
# - automatic: 你是机器人吗 / 是真人吗 / are you a bot (it is the office's automatic service; how to reach a person);
# - about_us: 你们是哪个单位的 / 怎么联系你们 / 你们电话多少 / 你们在哪里办公 / who are you.
_ABOUT_THE_SERVICE: dict[AboutTheService, tuple[re.Pattern[str], re.Pattern[str]]] = {
    "how_to_use": (_HOW_TO_USE_ZH, _HOW_TO_USE_EN),
    "automatic": (_AUTOMATIC_ZH, _AUTOMATIC_EN),
    "about_us": (_ABOUT_US_ZH, _ABOUT_US_EN),
}


def about_the_service(text: str) -> AboutTheService | None:
    """Which question about the chat or the office itself the whole message is, if any."""
    return next((key for key, (chinese, english) in _ABOUT_THE_SERVICE.items()
                 if _whole_message_is(text, chinese, english)), None)


def _whole_message_is(text: str, chinese: re.Pattern[str], english: re.Pattern[str]) -> bool:
    """The whole message, without punctuation and spaces (Chinese) or reduced to its words (English), matches."""
    w = normalise_command(text)
    if not w:
        return False
    if w.isascii():
        return bool(english.match(" ".join(re.sub(r"[^a-z ]", " ", w).split())))
    return bool(chinese.match(re.sub(r"[?？]", "", _CLAUSE.sub("", w.replace(" ", "")))))


# --------------------------------------------------------------------------- a service, not named

_SOME_SERVICE_ZH = re.compile(
    r"^(你好|您好|请问)?(我|我们|俺|我家)?(想|要|想要|需要|打算|准备)?(来|去)?(给我|帮我)?"
    r"(办|办理|申请|提交|交|弄|搞|做)(一下|一个|个|点|些)?(申请|事|事情|业务|手续|东西)?(啊|呀|吧|的|咯|哦|嘞)?$")
_SOME_SERVICE_EN = re.compile(
    r"^(hi |hello )?(i )?(want|would like|d like|need|wanna|am here)?( to)? ?"
    r"(apply|make an application|submit an application|start an application|do an application|get something done)"
    r"( please)?$|^(new )?application( please)?$")
_SERVICE_WORDS_ZH = re.compile(r"办|申请|业务|手续")


def wants_some_service(text: str) -> bool:
    """我要办申请 / 我想办点事 / I want to apply: the person wants to apply or get something done and does
    not say what: the services are shown to choose from (not a question for staff)."""
    w = normalise_command(text)
    if not w:
        return False
    if w.isascii():
        return bool(_SOME_SERVICE_EN.match(" ".join(re.sub(r"[^a-z ]", " ", w.replace("'", " ")).split())))
    core = _CLAUSE.sub("", w.replace(" ", ""))
    return bool(_SOME_SERVICE_ZH.match(core)) and bool(_SERVICE_WORDS_ZH.search(core))


# --------------------------------------------------------------------------- greetings

_GREETING_CJK = tuple(sorted((
    "你好", "您好", "你们好", "大家好", "在吗", "在不在", "有人吗", "有人在吗", "喂", "哈喽", "早", "早上好", "早安",
    "上午好", "中午好", "下午好", "晚上好", "同志", "师傅", "老师", "工作人员", "早晨", "你好吗", "在么", "在嘛",
    # openings that announce a question still to come
    "我想问问", "想问问", "我想问一下", "想问一下", "问一下", "请问一下", "请问", "我有个问题", "我有问题", "有个问题",
    "我想咨询", "我想咨询一下", "咨询一下", "问个事", "我想问个事", "打扰一下", "打扰了", "麻烦问一下",
), key=len, reverse=True))
_GREETING_EN = frozenset({"hi", "hello", "hey", "there", "good", "morning", "afternoon", "evening", "dear", "sir",
                          "madam", "anyone", "is", "any", "one", "hiya", "i", "have", "a", "question", "can", "ask",
                          "something", "excuse", "me"})
_GREETING_EN_HEADS = frozenset({"hi", "hello", "hey", "good", "anyone", "hiya", "question", "excuse"})

_ACK_CJK = tuple(sorted((
    "好", "好的", "好嘞", "好滴", "好吧", "收到", "知道", "知道了", "明白", "明白了", "了解", "懂了", "行", "可以", "嗯",
    "谢谢", "谢谢你", "谢谢您", "谢谢你们", "多谢", "多谢你们", "感谢", "辛苦了", "辛苦你们了", "麻烦你们了", "ok", "👍",
    "🙏", "得", "好嘅", "唔该", "唔该晒", "多谢晒", "收到了", "好的好的",
), key=len, reverse=True))
_ACK_EN = frozenset({"ok", "okay", "k", "thanks", "thank", "you", "got", "it", "noted", "fine", "great", "good",
                     "very", "much", "cheers", "alright", "all", "right", "so"})
_ACK_EN_HEADS = frozenset({"ok", "okay", "k", "thanks", "thank", "got", "noted", "fine", "great", "cheers", "alright"})


# What an acknowledgement may hold besides its own words ("你好，收到了"), longest first, built once.
_ACK_ALLOWED = tuple(sorted(_ACK_CJK + _GREETING_CJK, key=len, reverse=True))
_ACK_EN_ALLOWED = _ACK_EN | _GREETING_EN


def _social(text: str, cjk: tuple[str, ...], allowed: tuple[str, ...], en: frozenset[str], heads: frozenset[str]) -> bool:
    w = normalise_command(text)
    if not w:
        return False
    if w.isascii() and not any(ch in w for ch in "👍🙏"):
        tokens = re.sub(r"[^a-z ]", " ", w).split()
        return bool(tokens) and set(tokens) <= en and bool(set(tokens) & heads)
    core = re.sub(r"[?？]", "", _CLAUSE.sub("", w.replace(" ", "")))
    return _made_of(core, allowed) and any(p in core for p in cjk)


def greeting(text: str) -> bool:
    """你好 / 你好呀 / 喂喂，在吗 / 早晨 / 请问一下 / hello there / good morning!: a greeting or an opening and
    nothing else, to be answered with the menu rather than taken for a question."""
    return _social(text, _GREETING_CJK, _GREETING_CJK, _GREETING_EN, _GREETING_EN_HEADS)


def acknowledgement(text: str) -> bool:
    """好的 / 收到 / 知道了 / 谢谢你们 / 你好，收到了 / ok thanks: the person acknowledges (a notice, an answer) and
    asks nothing: a short reply, never a ticket for staff."""
    return _social(text, _ACK_CJK, _ACK_ALLOWED, _ACK_EN_ALLOWED, _ACK_EN_HEADS)


# Questions about the step itself, wherever they stand in the text.
_META_QUESTION = re.compile(
    r"什么意思|啥意思|咩意思|乜意思|是什么意思|怎么填|怎样填|如何填|怎么写|怎么回答|填什么|写什么|要填啥|填啥|"
    r"点填|点写|点样填|不懂|不明白|看不懂|没看懂|不知道怎么|唔明|唔识|唔知点|怎么选|选哪个|选哪一个|选什么|不清楚(怎么|该|要)?(选|填|写)|点拣|拣边个|"
    r"what does (this|that|it) mean|what do you mean|i don'?t understand|how do i (answer|fill|write)|"
    r"what should i (write|type|put|choose|pick)|which (one|number) (should|do) i|what is this")
_QUESTION_END = re.compile(r"[?？]\s*$")
_QUESTION_WORDS = re.compile(r"什么|啥|怎么|为什么|为啥|吗|呢|咩|点解|点样|边度|边个|几时|哪|\b(what|why|how|when|where|who)\b")
_SHORT_QUESTION = 12  # characters: a longer text ending in "?" at a free-text step is an answer that asks


_ASKS = re.compile(_QUESTION_WORDS.pattern + r"|多少|几多|多久|多长时间|能不能|可不可以|是不是|有没有|\b(how much|how many|how long)\b"
                   # Cantonese (可唔可以, 使唔使, 有冇...) and English questions without a question word (can my son...)
                   r"|可唔可以|得唔得|使唔使|系唔系|有冇|点算|乜嘢|咩嘢"
                   r"|^(can|could|may|should|must|do|does|did|is|are|will|would|have|has) (i|you|he|she|my|we|they|it|"
                   r"someone|somebody|anyone|a|the|this|that)\b")


def asks_something(text: str) -> bool:
    """A question about something other than the step itself (医疗互助一年交多少钱, how much is the fee):
    a question word or mark, and none of the questions about how to answer the step (什么意思, 怎么填)."""
    w = normalise_command(text)
    return bool(w) and not _META_QUESTION.search(w) and bool(_ASKS.search(w) or _QUESTION_END.search(w))


# Nothing to give where something may be left out: "不知道" at "ward and bed? (skip if you do not know)".
_UNSURE = frozenset({"不知道", "不清楚", "不记得", "忘了", "记不清", "唔知", "唔记得", "唔清楚", "不太清楚", "搞不清",
                     "我不知道", "我也不知道", "不晓得", "忘记了", "记不得", "唔知道", "我唔知", "我都唔知",
                     "don't know", "dont know", "do not know", "i don't know", "i dont know", "not sure", "i'm not sure",
                     "im not sure", "no idea", "can't remember", "cant remember", "i can't remember"})
_NOTHING_TO_GIVE = _UNSURE | frozenset({"冇", "没有了", "没了", "nothing else", "no thanks"})


def _reduced(text: str) -> set[str]:
    """The reply as typed (normalised) and without particles or spaces: the forms the word lists hold."""
    w = normalise_command(text)
    if not w:
        return set()
    core = _strip_particles(w.replace(" ", "")) if not w.isascii() else " ".join(w.replace("’", "'").split())
    return {w, core}


# Saying there is none, where an amount may be 0 ("家里每月收入多少？没有就写0").
_NO_AMOUNT = frozenset({"没有", "没", "无", "没有收入", "没收入", "没有钱", "没钱", "一分都没有", "一分都没", "none", "nothing",
                        "no income", "zero"})


def no_amount(text: str) -> bool:
    """没有 / 冇收入 / 一分都冇 / none: there is no such money (where an amount may be 0); Cantonese read as Mandarin."""
    return any(form in _NO_AMOUNT or cantonese_as_mandarin(form) in _NO_AMOUNT for form in _reduced(text))


def unsure(text: str) -> bool:
    """不知道 / 唔知 / 记不清 / not sure: the person cannot tell (at a question, not a wish to leave it out)."""
    return bool(_reduced(text) & _UNSURE)


def nothing_to_give(text: str) -> bool:
    """不知道 / 唔知 / 不用了 / don't know / no need: the person has nothing to give for a step that may be left out."""
    return bool(_reduced(text) & (_NOTHING_TO_GIVE | _NO_NEED))


def interruption(text: str, *, free_text: bool = False) -> Interruption | None:
    """A cancel word or a question instead of an answer, else None (see the module doc)."""
    w = normalise_command(text)
    if not w:
        return None
    core = _strip_particles(w.replace(" ", "")) if not w.isascii() else w
    if w in _CANCEL_WORDS or core in _CANCEL_WORDS or _only_cancel_words(w):
        return Cancel(text)
    if free_text and (w in _NO_NEED or core in _NO_NEED):
        return Cancel(text)
    if _META_QUESTION.search(w):
        return Question(text)
    if free_text and len(w) <= _SHORT_QUESTION and (_QUESTION_END.search(w) or (
            _QUESTION_WORDS.search(w) and w.endswith(("吗", "呢", "咩", "么")))):
        return Question(text)
    if not free_text and _QUESTION_END.search(w) and _QUESTION_WORDS.search(w):
        return Question(text)
    return None


# --------------------------------------------------------------------------- yes / no

_PARTICLES = "呀啊啦的嘅喔哦嘛咯噢吧哈呢了喇啰罗嘞咧哇呐嗯噃囉"
_LEADING_FILLERS = ("嗯", "哦", "噢", "喔", "啊", "诶", "欸", "唉", "那", "就", "我")
_YES_CORE = frozenset({
    "是", "是是", "对", "嗯", "好", "行", "可以", "要", "需要", "有", "确认", "确定", "同意", "提交", "没错", "没问题",
    "当然", "当然是", "肯定", "肯定是", "正确", "对头", "是这样", "就是", "就是这样", "对了", "好滴", "ok",
    # Cantonese (after conversion 係 -> 系)
    "系", "系嘞", "啱", "冇错", "好嘅", "得", "要嘅", "有嘅", "系喇",
})
_NO_CORE = frozenset({
    "不", "不是", "否", "没有", "没", "无", "不要", "不用", "不对", "不需要", "不行", "不可以", "不同意", "没有过",
    "从来没有", "从没有", "当然不是", "才不是", "当然没有", "不曾", "没这回事", "不是这样", "错", "不正确",
    # Cantonese
    "唔系", "冇", "冇有", "唔要", "唔使", "唔得", "唔啱", "唔好", "唔", "冇呢回事", "唔系啊",
})
_EN_YES = frozenset({
    "y", "yes", "yeah", "yea", "yep", "yup", "ya", "yah", "sure", "ok", "okay", "correct", "right", "true",
    "that's right", "thats right", "of course", "yes please", "absolutely", "definitely", "affirmative", "indeed",
    "yes it is", "yes i do", "yes i am", "yes i have", "i do", "i am", "i have", "confirm", "submit",
})
_EN_NO = frozenset({
    "n", "no", "nope", "nah", "not", "no thanks", "no thank you", "not really", "never", "negative", "false",
    "no it is not", "no it isn't", "no i don't", "no i do not", "no i am not", "no i have not", "no i haven't",
    "i don't", "i do not", "i have not", "i haven't", "not at all", "no way", "none",
})


# Words that agree to go ahead but say nothing about a fact (see `yes_no`'s about_a_fact).
_AGREE_CORE = frozenset({"好", "行", "可以", "要", "需要", "确认", "确定", "同意", "提交", "没问题", "好滴", "ok", "得",
                         "好嘅", "要嘅", "好好", "收到", "知道", "知道了", "明白",
                         # a hum while listening ("嗯", "哦"): heard, not an answer to whether something is so
                         "嗯", "嗯嗯", "嗯呢", "嗯哪", "哦", "噢", "喔", "哦哦"})
_EN_AGREE = frozenset({"ok", "okay", "k", "yes please", "confirm", "submit", "thanks", "thank you", "got it", "fine"})

_COURTESY = re.compile(r"[，,。.!！]*(谢谢您|谢谢你|谢谢|多谢|唔该|麻烦你了|麻烦了|辛苦了)[。.!！~]*$")


def _strip_particles(w: str) -> str:
    w = re.sub(r"[，,。.!！~～…、]+", "", w)
    changed = True
    while changed and len(w) > 1:
        changed = False
        if w[-1] in _PARTICLES:
            w, changed = w[:-1], True
        for filler in _LEADING_FILLERS:
            if w.startswith(filler) and len(w) > len(filler):
                w, changed = w[len(filler):], True
    return _collapse_repeats(w)


def _collapse_repeats(w: str) -> str:
    """对对对 -> 对, 没有没有 -> 没有, 是的是的 -> 是的 (the unit repeated, whole text only)."""
    for size in range(1, len(w) // 2 + 1):
        if len(w) % size == 0 and w == w[:size] * (len(w) // size):
            return w[:size]
    return w


def yes_no(text: str, *, about_a_fact: bool = False) -> Literal["yes", "no"] | None:
    """'yes' or 'no' for the ways people say them; None when the reply is neither (是不是?).

    `about_a_fact`: the question asks whether something is so ("您有没有被开除军籍？"), not whether
    to go ahead: 好的 / 可以 / ok agree to something and answer no such question, so they are None
    and the question is asked again (an "ok, thanks" must never say that a veteran was expelled)."""
    w = normalise_command(text)
    if not w:
        return None
    if w in ("1", "2"):
        return "yes" if w == "1" else "no"
    if w.isascii():
        w = " ".join(re.sub(r"[^a-z' ]", " ", w.replace("’", "'")).split())
        if about_a_fact and (w in _EN_AGREE or w.split(" ", 1)[0] in _EN_AGREE):
            return None
        if w in _EN_YES:
            return "yes"
        if w in _EN_NO or w.startswith(("no ", "nope ", "not ")):
            return "no"
        first = w.split(" ", 1)[0] if w else ""
        if first in ("yes", "yeah", "yep", "sure", "correct"):
            return "yes"
        return None
    core = _strip_particles(_COURTESY.sub("", w.replace(" ", "")) or w)
    for candidate in (core, core.rstrip("的"), _collapse_repeats(core.rstrip("的"))):
        if about_a_fact and candidate in _AGREE_CORE:
            return None
        if candidate in _YES_CORE:
            return "yes"
        if candidate in _NO_CORE:
            return "no"
    # "是的，有过" / "没有，从来没有": the first clause decides when it is a clear yes or no.
    head = re.split(r"[，,。.!！ ]", w, maxsplit=1)[0]
    if head and head != w:
        return yes_no(head, about_a_fact=about_a_fact)
    return None


# --------------------------------------------------------------------------- numbers and money


@dataclass(frozen=True)
class Amount:
    """An amount of money in fen; approximate when the person said so (左右, 大概, 多, about)."""

    fen: int
    approximate: bool = False


_APPROX = re.compile(r"左右|上下|大概|大约|大致|约莫|约|差不多|估计|将近|接近|差唔多|大概是|^about|^around|^approximately|"
                     r"^roughly|^approx\.?|^~|^around about")
_APPROX_TAIL = re.compile(r"(?<=[\d一二两三四五六七八九十百千万亿])(多|来|几)(?=块|元|蚊|$)")
_CURRENCY = re.compile(r"人民币|rmb|yuan|cny|块钱|块|元钱|元|圆|蚊|文|¥|￥|钱|rmb\.?")
_JIAO_FEN = re.compile(r"^(?P<yuan>.*?)(?:块|元|蚊|圆)(?P<jiao>[零〇一二两三四五六七八九\d])(?:毛|角)?"
                       r"(?:(?P<fen>[零〇一二两三四五六七八九\d])分?)?$")
_LEAD_WORDS = re.compile(r"^(?:总共|一共|合计|共计|总计|花了|用了|花费|共|是)+")
_NUMBER_TEXT = re.compile(r"^[\d.零〇一二两三四五六七八九十百千万亿点]+$")
_K_SUFFIX = re.compile(r"^(\d+(?:\.\d+)?)k$")


def number(text: str) -> Decimal | None:
    """A number written in digits, Chinese numerals or both (一万二, 1.2万, 3万5, 一百二十点五); None if not."""
    t = normalise_command(text).replace(",", "").replace("，", "").replace(" ", "")
    t = t.replace("〇", "零").replace("两", "二")
    if not t:
        return None
    k = _K_SUFFIX.match(t)
    if k:
        return Decimal(k.group(1)) * 1000
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return Decimal(t)
    if not _NUMBER_TEXT.match(t):
        return None
    try:
        value = _cn2an()(t, "smart")
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _digit(ch: str | None) -> int:
    if not ch:
        return 0
    return int(ch) if ch.isdigit() else "零一二三四五六七八九".index(ch.replace("两", "二").replace("〇", "零"))


def amount(text: str) -> Amount | None:
    """An amount of money (see the module doc); None when the text holds no single amount."""
    t = normalise_command(text).replace(",", "").replace("，", "").replace(" ", "")
    if not t:
        return None
    approximate = False
    if _APPROX.search(t):
        approximate, t = True, _APPROX.sub("", t)
    if _APPROX_TAIL.search(t):
        approximate, t = True, _APPROX_TAIL.sub("", t)
    t = _LEAD_WORDS.sub("", t).rstrip("吧啊呀啦哦喔了")
    t = t.removesuffix("的").removesuffix("左右")
    jiao = _JIAO_FEN.match(t)
    if jiao and jiao.group("yuan"):
        whole = number(_CURRENCY.sub("", jiao.group("yuan")))
        if whole is None:
            return None
        value = whole + Decimal(_digit(jiao.group("jiao"))) / 10 + Decimal(_digit(jiao.group("fen"))) / 100
    else:
        whole = number(_CURRENCY.sub("", t))
        if whole is None:
            return None
        value = whole
    if value < 0 or value != value.quantize(Decimal("0.01")):  # fen are the smallest unit
        return None
    return Amount(int((value * 100).to_integral_value()), approximate)


# --------------------------------------------------------------------------- dates

Precision = Literal["day", "week", "month", "year"]


@dataclass(frozen=True)
class DateAnswer:
    """A date at the precision the person gave: `start` is the day, or the first day of the week,
    month or year they named."""

    start: date
    precision: Precision
    approximate: bool = False

    @property
    def end(self) -> date:
        if self.precision == "day":
            return self.start
        if self.precision == "week":
            return self.start + timedelta(days=6)
        if self.precision == "month":
            nxt = date(self.start.year + (self.start.month == 12), self.start.month % 12 + 1, 1)
            return nxt - timedelta(days=1)
        return date(self.start.year, 12, 31)


_CN_DIGITS = "零一二三四五六七八九"
_MONTHS_EN = {m: i for i, names in enumerate((
    ("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",), ("jun", "june"),
    ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
    ("dec", "december")), start=1) for m in names}
_WEEKDAYS_ZH = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "七": 6}
_WEEKDAYS_EN = {name: i for i, names in enumerate((
    ("mon", "monday"), ("tue", "tues", "tuesday"), ("wed", "wednesday"), ("thu", "thur", "thurs", "thursday"),
    ("fri", "friday"), ("sat", "saturday"), ("sun", "sunday"))) for name in names}
_RELATIVE_DAYS_ZH = {"今天": 0, "今日": 0, "今早": 0, "今晚": 0, "今天早上": 0, "昨天": -1, "昨日": -1, "昨晚": -1,
                     "琴日": -1, "寻日": -1, "噚日": -1, "前天": -2, "前日": -2, "大前天": -3, "明天": 1, "听日": 1,
                     "明日": 1, "后天": 2, "后日": 2}
_TIME_OF_DAY = re.compile(r"(早上|上午|中午|下午|傍晚|晚上|夜里|半夜|凌晨|夜晚|夜间|早晨|清早|朝早|晏昼|夜晚黑|夜晚|夜)"
                          r"(\d{1,2}[点:时]\d{0,2}分?|[一二三四五六七八九十]+点[半钟]?)?$")
_WEEK_WORDS = r"(?:礼拜|星期|周)"
_ZH_NUM = r"[\d零〇一二两三四五六七八九十]+"
_N = r"[\d零〇一二两三四五六七八九十]"
# Dates as they stand inside a sentence: absolute forms, then the relative words.
_CANDIDATE = re.compile(
    rf"(?<!\d)\d{{8}}(?!\d)|(?<!\d)\d{{4}}[-/.年]\d{{1,2}}(?:[-/.月]\d{{1,2}}[日号]?|月)?"
    rf"|(?:\d{{2}}|[零〇一二三四五六七八九]{{2,4}})年(?:{_N}{{1,2}}月(?:{_N}{{1,3}}[日号])?)?"
    rf"|(?:前年|去年|今年|明年)(?:{_N}{{1,2}}月(?:{_N}{{1,3}}[日号])?)?"
    rf"|{_N}{{1,2}}月(?:{_N}{{1,3}}[日号])?"
    rf"|(?:上上|上|这|本|下)个?{_WEEK_WORDS}[一二三四五六日天]?|(?:上上|上|这|本)个?月"
    rf"|大前天|前天|昨天|今天|明天|后天|琴日|寻日|前日|昨晚|今早|(?:{_N}+|半)个?(?:天|日|礼拜|星期|周|个月|年)前")


def _cn2an() -> Callable[[str, str], Any]:
    """cn2an's reader, imported on first use: its import builds its patterns (about half a second
    of CPU), which a process's start need not wait for (service.py warms it after the knowledge)."""
    import cn2an

    return cn2an.cn2an  # type: ignore[no-any-return]


def _zh_int(text: str) -> int | None:
    text = text.replace("〇", "零").replace("两", "二")
    if text.isdigit():
        return int(text)
    if all(c in _CN_DIGITS for c in text) and len(text) >= 2:  # 一九六零, 六零: read digit by digit
        return int("".join(str(_CN_DIGITS.index(c)) for c in text))
    try:
        return int(_cn2an()(text, "smart"))
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def _year(raw: str, today: date) -> int | None:
    value = _zh_int(raw)
    if value is None:
        return None
    if len(raw) == 2 and value < 100:  # 60年 -> 1960, 05年 -> 2005: the latest such year not far ahead
        value += 2000 if value <= (today.year % 100) + 1 else 1900
    return value


def _safe(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _month_start(d: date, months_back: int) -> date:
    index = d.year * 12 + d.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


def _nearest(month: int, day: int | None, today: date, prefer: Literal["past", "future"]) -> date | None:
    """A month (and day) without a year: this year's, or the nearest one on the preferred side."""
    this = _safe(today.year, month, day or 1)
    if this is None:
        return None
    if prefer == "past" and (this > today if day else (today.year, today.month) < (this.year, this.month)):
        return _safe(today.year - 1, month, day or 1)
    if prefer == "future" and (this < today if day else (this.year, this.month) < (today.year, today.month)):
        return _safe(today.year + 1, month, day or 1)
    return this


def date_answer(text: str, today: date, prefer: Literal["past", "future"] = "past") -> DateAnswer | None:
    """One date in the text, at the precision given; None when there is none or more than one."""
    raw = normalise_command(text)
    t = re.sub(r"\s+", "", raw)
    approximate = False
    for marker in ("左右", "前后", "大概", "大约", "差不多", "约", "的时候", "那天", "那时候", "的样子", "吧"):
        if marker in t:
            approximate, t = approximate or marker not in ("的时候", "那天", "吧"), t.replace(marker, "")
    t = _TIME_OF_DAY.sub("", t) or t
    found = _relative_zh(t, today) or _absolute_zh(t, today, prefer) or _english(raw, today, prefer)
    if found is None:  # a date inside a sentence ("我是1998年12月入伍的"): only when it is the only one
        spans = _CANDIDATE.findall(t)
        if len(spans) != 1:
            return None
        found = _relative_zh(spans[0], today) or _absolute_zh(spans[0], today, prefer)
        if found is None:
            return None
    start, precision = found
    return DateAnswer(start, precision, approximate)


def _relative_zh(t: str, today: date) -> tuple[date, Precision] | None:
    if t in _RELATIVE_DAYS_ZH:
        return today + timedelta(days=_RELATIVE_DAYS_ZH[t]), "day"
    m = re.fullmatch(rf"({_ZH_NUM}|半)(个)?(天|日|礼拜|星期|周|个月|月|年)(之)?前", t)
    if m:
        n = 0.5 if m.group(1) == "半" else _zh_int(m.group(1))
        if n is None:
            return None
        unit = m.group(3)
        if unit in ("天", "日"):
            return today - timedelta(days=int(n)), "day"
        if unit in ("礼拜", "星期", "周"):
            start = today - timedelta(days=int(7 * n))
            return start - timedelta(days=start.weekday()), "week"
        if unit in ("个月", "月"):
            return (_month_start(today, int(n)), "month") if n >= 1 else (today - timedelta(days=15), "week")
        return date(today.year - int(n), 1, 1), "year"
    m = re.fullmatch(rf"(上上|上|这|今|本|下)(个)?{_WEEK_WORDS}([一二三四五六日天七])?", t)
    if m:
        shift = {"上上": -2, "上": -1, "这": 0, "今": 0, "本": 0, "下": 1}[m.group(1)]
        monday = today - timedelta(days=today.weekday()) + timedelta(weeks=shift)
        if m.group(3):
            return monday + timedelta(days=_WEEKDAYS_ZH[m.group(3)]), "day"
        return monday, "week"
    m = re.fullmatch(rf"{_WEEK_WORDS}([一二三四五六日天七])", t)  # 星期三: the latest one
    if m:
        delta = (today.weekday() - _WEEKDAYS_ZH[m.group(1)]) % 7
        return today - timedelta(days=delta), "day"
    m = re.fullmatch(rf"(上上|上|这|本|今)个?月(?:({_ZH_NUM})[日号])?", t)
    if m:
        back = {"上上": 2, "上": 1, "这": 0, "本": 0, "今": 0}[m.group(1)]
        first = _month_start(today, back)
        if m.group(2):
            day = _zh_int(m.group(2))
            d = _safe(first.year, first.month, day) if day else None
            return (d, "day") if d else None
        return first, "month"
    m = re.fullmatch(rf"(前年|去年|今年|明年)(?:({_ZH_NUM})月(?:({_ZH_NUM})[日号])?)?", t)
    if m:
        year = today.year + {"前年": -2, "去年": -1, "今年": 0, "明年": 1}[m.group(1)]
        return _ymd(year, m.group(2), m.group(3))
    return None


def _ymd(year: int, month_raw: str | None, day_raw: str | None) -> tuple[date, Precision] | None:
    if not month_raw:
        return date(year, 1, 1), "year"
    month = _zh_int(month_raw)
    if month is None or not 1 <= month <= 12:
        return None
    if not day_raw:
        return date(year, month, 1), "month"
    day = _zh_int(day_raw)
    d = _safe(year, month, day) if day else None
    return (d, "day") if d else None


def _absolute_zh(t: str, today: date, prefer: Literal["past", "future"]) -> tuple[date, Precision] | None:
    t = t.replace("号", "日").replace("份", "")
    t = re.sub(r"^(公元|在|是|于)", "", t)
    m = re.fullmatch(r"(\d{4})(\d{2})(\d{2})", t)
    if m:
        d = _safe(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        return (d, "day") if d else None
    m = re.fullmatch(rf"({_ZH_NUM})年(?:({_ZH_NUM})月(?:({_ZH_NUM})日?)?)?", t)
    if m and len(m.group(1)) in (2, 4):
        year = _year(m.group(1), today)
        return _ymd(year, m.group(2), m.group(3)) if year else None
    m = re.fullmatch(r"(\d{4}|\d{2})[-/.](\d{1,2})(?:[-/.](\d{1,2}))?", t)
    if m:
        year = _year(m.group(1), today)
        return _ymd(year, m.group(2), m.group(3)) if year else None
    m = re.fullmatch(rf"({_ZH_NUM})月(?:({_ZH_NUM})日?)?", t)
    if m:
        month, day = _zh_int(m.group(1)), _zh_int(m.group(2)) if m.group(2) else None
        if month is None or not 1 <= month <= 12 or (m.group(2) and not day):
            return None
        d = _nearest(month, day, today, prefer)
        return (d, "day" if day else "month") if d else None
    m = re.fullmatch(rf"({_ZH_NUM})日", t)
    if m:  # 5号: this month's, or last month's when it has not come yet
        day = _zh_int(m.group(1))
        if not day:
            return None
        d = _safe(today.year, today.month, day)
        if d is None or (prefer == "past" and d > today):
            first = _month_start(today, 1)
            d = _safe(first.year, first.month, day)
        return (d, "day") if d else None
    return None


def _english(raw: str, today: date, prefer: Literal["past", "future"]) -> tuple[date, Precision] | None:
    t = " ".join(re.sub(r"[,.]", " ", raw.lower()).replace("the ", "").split())
    t = re.sub(r"\b(on|in|about|around|approximately|last night|this morning|in the (morning|afternoon|evening))\b$",
               "", t).strip()
    t = re.sub(r"\b(\d+)(st|nd|rd|th)\b", r"\1", t)
    simple = {"today": 0, "yesterday": -1, "day before yesterday": -2, "tomorrow": 1, "last night": -1,
              "yesterday evening": -1, "yesterday morning": -1, "yesterday afternoon": -1, "this morning": 0,
              "tonight": 0}
    if t in simple:
        return today + timedelta(days=simple[t]), "day"
    m = re.fullmatch(r"(\d+|a|one|two|three|four|five|six|seven) (day|week|month|year)s? ago", t)
    if m:
        words = {"a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7}
        n = int(m.group(1)) if m.group(1).isdigit() else words[m.group(1)]
        if m.group(2) == "day":
            return today - timedelta(days=n), "day"
        if m.group(2) == "week":
            start = today - timedelta(weeks=n)
            return start - timedelta(days=start.weekday()), "week"
        if m.group(2) == "month":
            return _month_start(today, n), "month"
        return date(today.year - n, 1, 1), "year"
    if t in ("last week", "this week", "next week"):
        shift = {"last week": -1, "this week": 0, "next week": 1}[t]
        return today - timedelta(days=today.weekday()) + timedelta(weeks=shift), "week"
    if t in ("last month", "this month"):
        return _month_start(today, 1 if t == "last month" else 0), "month"
    m = re.fullmatch(r"(last|this|next)? ?([a-z]+)", t)
    if m and m.group(2) in _WEEKDAYS_EN:
        target = _WEEKDAYS_EN[m.group(2)]
        if m.group(1) == "next" or (prefer == "future" and m.group(1) != "last"):
            return today + timedelta(days=(target - today.weekday()) % 7 or 7), "day"
        delta = (today.weekday() - target) % 7 or (7 if m.group(1) == "last" else 0)
        return today - timedelta(days=delta), "day"
    m = (re.fullmatch(r"(\d{1,2}) ([a-z]+)(?: (\d{4}))?", t) or re.fullmatch(r"([a-z]+) (\d{1,2})(?: (\d{4}))?", t))
    if m:
        first, second, year_raw = m.group(1), m.group(2), m.group(3)
        day_raw, month_raw = (first, second) if first.isdigit() else (second, first)
        month = _MONTHS_EN.get(month_raw)
        if month is None:
            return None
        day = int(day_raw)
        d = _safe(int(year_raw), month, day) if year_raw else _nearest(month, day, today, prefer)
        return (d, "day") if d else None
    m = re.fullmatch(r"([a-z]+) (\d{4})", t)
    if m and m.group(1) in _MONTHS_EN:
        return date(int(m.group(2)), _MONTHS_EN[m.group(1)], 1), "month"
    m = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", t)
    if m:
        d = _safe(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        return (d, "day") if d else None
    return None


def dates_in(text: str, today: date, prefer: Literal["past", "future"] = "past") -> list[DateAnswer] | None:
    """Two dates of a range ("2026-1-5到2026-1-20", "1月5号到20号", "上礼拜一到礼拜五"): [start, end]."""
    raw = normalise_command(text)
    found = _range_by_separator(raw, today, prefer)
    if found is None:  # "从2026年1月5日住到1月20日" / "2026-1-5 2026-1-20": exactly two dates in the text
        spans = _CANDIDATE.findall(re.sub(r"\s", " ", raw))
        if len(spans) == 2:
            found = _range_by_separator(f"{spans[0]}到{spans[1]}", today, prefer)
    return found


def _range_by_separator(raw: str, today: date, prefer: Literal["past", "future"]) -> list[DateAnswer] | None:
    parts = re.split(r"\s*(?:到|至|—|–|~|～|\bto\b|\buntil\b|\btill\b|-(?=\s)|(?<=\s)-)\s*", raw)
    parts = [p for p in parts if p.strip()]
    if len(parts) != 2:
        return None
    first = date_answer(parts[0], today, prefer)
    if first is None:
        return None
    bare_day = re.fullmatch(rf"({_ZH_NUM})[日号]?", re.sub(r"\s", "", parts[1]))
    if bare_day:  # "1月5号到20号": the end borrows the start's year and month
        value = _zh_int(bare_day.group(1))
        end = _safe(first.start.year, first.start.month, value) if value else None
        return [first, DateAnswer(end, "day")] if end else None
    second = date_answer(parts[1], today, prefer)
    if second is not None and not re.search(r"\d{4}|\d{2}年|年", parts[1]) and first.start.year != second.start.year:
        # "2025-12-20到1月5号" reads the end in the year after the start, not by today
        moved = _safe(first.start.year + (second.start.month < first.start.month), second.start.month,
                      second.start.day)
        second = DateAnswer(moved, second.precision, second.approximate) if moved else second
    return [first, second] if second else None
