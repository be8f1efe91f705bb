"""Flows as data: load and validate `bot/flows/*.yaml`, and step a conversation through one.

A flow is a list of steps (a field to collect, with its prompt in each language and a
validator), optional branching on an answer to an ending or another step, a document
checklist, and what it creates when confirmed (`on_complete` actions, by name). The
engine only knows "the current step of the current flow"; adding a flow is adding a file
(see bot/flows/README.md). A broken file stops start-up with the file and field named.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from sqlmodel import Session

from bot import answers
from bot.language import clean, normalise_command
from bot.texts import localise

FLOW_DIR = Path(__file__).resolve().parent / "flows"

STEP_TYPES = {"text", "id_card", "phone", "date", "date_range", "money", "yes_no", "choice", "otp",
              "documents", "confirm"}
REQUIRED_LANGS = ("zh-Hans", "en")


class FlowError(ValueError):
    """A flow file is broken; the message names the file and the field."""


class Invalid(ValueError):
    """An answer does not fit the step; the message (already localised) says what is needed."""


class Interrupted(Invalid):
    """The reply is not an answer but a cancel word or a question (`interruption`: answers.Cancel or
    answers.Question): act on it (end the flow unsaved, answer the question) rather than retry."""

    def __init__(self, interruption: answers.Interruption, message: str) -> None:
        super().__init__(message)
        self.interruption = interruption


# --------------------------------------------------------------------------- the data


@dataclass(frozen=True)
class Option:
    value: str
    label: dict[str, str]


@dataclass(frozen=True)
class DocItem:
    code: str
    label: dict[str, str]
    required: bool = True


@dataclass(frozen=True)
class Step:
    id: str
    type: str
    prompt: dict[str, str]
    label: dict[str, str]
    options: tuple[Option, ...] = ()
    items: tuple[DocItem, ...] = ()
    branch: dict[str, str] = field(default_factory=dict)  # answer value -> step id or "end:<ending>"
    next: str | None = None
    when: dict[str, list[str]] = field(default_factory=dict)  # ask only if an earlier answer is one of
    min_len: int = 1
    max_len: int = 200
    optional: bool = False
    past: bool = False  # dates: not in the future
    future: bool = False  # dates: today or later
    after: str | None = None  # dates: not before the answer to this step
    month_ok: bool = False  # dates: "1998年12月" is enough
    min_fen: int = 0
    max_fen: int = 100_000_000_00


@dataclass(frozen=True)
class Ending:
    id: str
    text: dict[str, str]
    offer_person: bool = False


@dataclass(frozen=True)
class Flow:
    id: str
    path: str
    title: dict[str, str]
    menu: int | None
    requires_link: bool
    intro: dict[str, str] | None
    precheck: str | None
    steps: tuple[Step, ...]
    endings: dict[str, Ending]
    on_complete: tuple[dict[str, Any], ...]
    done: dict[str, str]
    report: str | None = None  # a read-only flow: one named report, no steps
    index: dict[str, int] = field(default_factory=dict)

    def step(self, step_id: str) -> Step:
        return self.steps[self.index[step_id]]


# --------------------------------------------------------------------------- loading


def _texts(value: Any, where: str) -> dict[str, str]:
    if isinstance(value, str):
        raise FlowError(f"{where}: needs a text per language (zh-Hans and en), got one string")
    if not isinstance(value, dict):
        raise FlowError(f"{where}: needs a mapping of language -> text")
    for lang in REQUIRED_LANGS:
        if not isinstance(value.get(lang), str) or not value[lang].strip():
            raise FlowError(f"{where}.{lang}: missing text")
    for lang in value:
        if lang not in ("zh-Hans", "zh-Hant", "en"):
            raise FlowError(f"{where}.{lang}: unknown language (use zh-Hans, zh-Hant, en)")
    return {k: str(v).strip() for k, v in value.items()}


def _yaml_key(key: Any) -> str:
    # YAML 1.1 reads yes/no as booleans; flow authors mean the answer words.
    if key is True:
        return "yes"
    if key is False:
        return "no"
    return str(key)


def _parse_step(raw: Any, where: str) -> Step:
    if not isinstance(raw, dict):
        raise FlowError(f"{where}: a step must be a mapping")
    known = {"id", "type", "prompt", "label", "options", "items", "branch", "next", "when", "min_len", "max_len",
             "optional", "past", "future", "after", "month_ok", "min_yuan", "max_yuan"}
    for key in raw:
        if key not in known:
            raise FlowError(f"{where}.{key}: unknown field")
    sid = raw.get("id")
    if not isinstance(sid, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", sid):
        raise FlowError(f"{where}.id: needs a lower_case name")
    where = f"{where}({sid})"
    stype = raw.get("type")
    if stype not in STEP_TYPES:
        raise FlowError(f"{where}.type: {stype!r} is not one of {sorted(STEP_TYPES)}")
    prompt = _texts(raw.get("prompt"), f"{where}.prompt")
    label = _texts(raw["label"], f"{where}.label") if "label" in raw else prompt
    options: list[Option] = []
    if stype == "choice":
        if not isinstance(raw.get("options"), list) or not raw["options"]:
            raise FlowError(f"{where}.options: a choice needs a list of options")
        for i, opt in enumerate(raw["options"]):
            if not isinstance(opt, dict) or "value" not in opt:
                raise FlowError(f"{where}.options[{i}]: needs value and label")
            options.append(Option(_yaml_key(opt["value"]), _texts(opt.get("label"), f"{where}.options[{i}].label")))
        if len({o.value for o in options}) != len(options):
            raise FlowError(f"{where}.options: values must be different")
    items: list[DocItem] = []
    if stype == "documents":
        if not isinstance(raw.get("items"), list) or not raw["items"]:
            raise FlowError(f"{where}.items: a document checklist needs items")
        for i, item in enumerate(raw["items"]):
            if not isinstance(item, dict) or not isinstance(item.get("code"), str):
                raise FlowError(f"{where}.items[{i}]: needs code and label")
            items.append(DocItem(item["code"], _texts(item.get("label"), f"{where}.items[{i}].label"),
                                 bool(item.get("required", True))))
    branch = {_yaml_key(k): str(v) for k, v in (raw.get("branch") or {}).items()}
    when = {}
    for k, v in (raw.get("when") or {}).items():
        when[str(k)] = [_yaml_key(x) for x in (v if isinstance(v, list) else [v])]
    try:
        min_fen = int(Decimal(str(raw.get("min_yuan", 0))) * 100)
        max_fen = int(Decimal(str(raw.get("max_yuan", 100_000_000))) * 100)
        min_len = int(raw.get("min_len", 0 if raw.get("optional") else 1))
        max_len = int(raw.get("max_len", 200))
    except (InvalidOperation, ValueError, TypeError):
        raise FlowError(f"{where}: min_len/max_len/min_yuan/max_yuan must be numbers") from None
    return Step(id=sid, type=stype, prompt=prompt, label=label, options=tuple(options), items=tuple(items),
                branch=branch, next=raw.get("next"), when=when, min_len=min_len, max_len=max_len,
                optional=bool(raw.get("optional", False)), past=bool(raw.get("past", False)),
                future=bool(raw.get("future", False)), after=raw.get("after"),
                month_ok=bool(raw.get("month_ok", False)), min_fen=min_fen, max_fen=max_fen)


def parse_flow(data: Any, path: str) -> Flow:
    if not isinstance(data, dict):
        raise FlowError(f"{path}: the file must be a mapping")
    known = {"id", "title", "menu", "requires_link", "intro", "precheck", "steps", "endings", "on_complete",
             "done", "report", "description"}
    for key in data:
        if key not in known:
            raise FlowError(f"{path}: {key}: unknown field")
    fid = data.get("id")
    if not isinstance(fid, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", fid):
        raise FlowError(f"{path}: id: needs a lower_case name")
    title = _texts(data.get("title"), f"{path}: title")
    menu = data.get("menu")
    if menu is not None and (not isinstance(menu, int) or not 1 <= menu <= 9):
        raise FlowError(f"{path}: menu: a number from 1 to 9")
    report = data.get("report")
    if report is not None and report not in REPORTS:
        raise FlowError(f"{path}: report: unknown report {report!r} (known: {sorted(REPORTS)})")
    precheck = data.get("precheck")
    if precheck is not None and precheck not in PRECHECKS:
        raise FlowError(f"{path}: precheck: unknown check {precheck!r} (known: {sorted(PRECHECKS)})")
    raw_steps = data.get("steps") or []
    if not isinstance(raw_steps, list) or (not raw_steps and report is None):
        raise FlowError(f"{path}: steps: a flow needs a list of steps (or a report)")
    steps = tuple(_parse_step(s, f"{path}: steps[{i}]") for i, s in enumerate(raw_steps))
    index: dict[str, int] = {}
    for i, s in enumerate(steps):
        if s.id in index:
            raise FlowError(f"{path}: steps[{i}].id: {s.id!r} is used twice")
        index[s.id] = i
    endings: dict[str, Ending] = {}
    for eid, raw in (data.get("endings") or {}).items():
        if not isinstance(raw, dict):
            raise FlowError(f"{path}: endings.{eid}: must be a mapping with text")
        endings[str(eid)] = Ending(str(eid), _texts(raw.get("text"), f"{path}: endings.{eid}.text"),
                                   bool(raw.get("offer_person", False)))
    for s in steps:
        targets = list(s.branch.values()) + ([s.next] if s.next else [])
        for tgt in targets:
            if tgt.startswith("end:"):
                if tgt[4:] not in endings:
                    raise FlowError(f"{path}: steps({s.id}).branch: unknown ending {tgt[4:]!r}")
            elif tgt not in index:
                raise FlowError(f"{path}: steps({s.id}).branch: unknown step {tgt!r}")
        if s.branch and s.type not in ("yes_no", "choice"):
            raise FlowError(f"{path}: steps({s.id}).branch: only yes_no and choice steps can branch")
        if s.type == "choice":
            for key in s.branch:
                if key not in {o.value for o in s.options}:
                    raise FlowError(f"{path}: steps({s.id}).branch.{key}: not one of the options")
        if s.type == "yes_no":
            for key in s.branch:
                if key not in ("yes", "no"):
                    raise FlowError(f"{path}: steps({s.id}).branch.{key}: use yes or no")
        for ref in list(s.when) + ([s.after] if s.after else []):
            if ref not in index or index[ref] >= index[s.id]:
                raise FlowError(f"{path}: steps({s.id}): refers to {ref!r}, which is not an earlier step")
    actions = data.get("on_complete") or []
    if not isinstance(actions, list):
        raise FlowError(f"{path}: on_complete: a list of actions")
    for i, act in enumerate(actions):
        if not isinstance(act, dict) or act.get("action") not in ACTIONS:
            raise FlowError(f"{path}: on_complete[{i}].action: unknown action "
                            f"{act.get('action') if isinstance(act, dict) else act!r} (known: {sorted(ACTIONS)})")
        for req in ACTION_PARAMS[act["action"]]:
            if req not in act:
                raise FlowError(f"{path}: on_complete[{i}].{req}: required by {act['action']}")
            if req.endswith("_field") and act[req] not in index:
                raise FlowError(f"{path}: on_complete[{i}].{req}: {act[req]!r} is not a step")
    done = _texts(data["done"], f"{path}: done") if report is None else {"zh-Hans": "", "en": ""}
    intro = _texts(data["intro"], f"{path}: intro") if data.get("intro") else None
    if steps and report is None and steps[-1].type != "confirm" and actions:
        raise FlowError(f"{path}: steps: a flow that creates something must end with a confirm step")
    return Flow(id=fid, path=path, title=title, menu=menu, requires_link=bool(data.get("requires_link", False)),
                intro=intro, precheck=precheck, steps=steps, endings=endings, on_complete=tuple(actions),
                done=done, report=report, index=index)


def load_flows(directory: Path | None = None) -> dict[str, Flow]:
    """Load and validate every flow file; raise FlowError naming the file and field."""
    directory = directory or FLOW_DIR
    flows: dict[str, Flow] = {}
    menus: dict[int, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        name = path.name
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise FlowError(f"{name}: not valid YAML: {str(exc).splitlines()[0]}") from None
        flow = parse_flow(data, name)
        if flow.id in flows:
            raise FlowError(f"{name}: id: {flow.id!r} already used by {flows[flow.id].path}")
        if flow.menu is not None:
            if flow.menu in menus:
                raise FlowError(f"{name}: menu: number {flow.menu} already used by {menus[flow.menu]}")
            menus[flow.menu] = name
        flows[flow.id] = flow
    return flows


# --------------------------------------------------------------------------- validators

_WORDY = re.compile(r"[^\W\d_]")  # a letter of any script: digits alone are not a name

SKIP = frozenset(["跳过", "没有", "无", "不用", "没", "skip", "none", "no", "nothing", "-", "略"])  # 算了 cancels
LATER = frozenset(["以后", "以后带", "以后再说", "完成", "好了", "发完了", "带去窗口", "done", "later", "finished"])

ERR = {
    "text_empty": {"zh-Hans": "请打字回复。", "en": "Please type your answer."},
    "text_long": {"zh-Hans": "内容太长了，请控制在{n}个字以内。", "en": "That is too long; please keep it under {n} characters."},
    "text_short": {"zh-Hans": "请多写几个字。", "en": "Please write a little more."},
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
    "money_range": {"zh-Hans": "这个金额不太对，请再核对一下。", "en": "That amount does not look right; please check."},
    "yes_no": {"zh-Hans": "请回复1（是）或2（不是）。", "en": "Please reply 1 (yes) or 2 (no)."},
    "choice": {"zh-Hans": "请回复选项前面的数字。", "en": "Please reply with the number of an option."},
    "otp": {"zh-Hans": "验证码是6位数字，请再看看短信。", "en": "The code is 6 digits; please check the SMS."},
    "file_or_skip": {"zh-Hans": "请发这份材料的照片或文件；没有就回复“跳过”；都以后带去窗口就回复“以后”。",
                     "en": 'Please send a photo or file of this document; reply "skip" if you do not have it, '
                           'or "later" to bring everything to the service window.'},
}


def err(key: str, lang: str, **kw: Any) -> Invalid:
    text = localise(ERR[key], lang)
    return Invalid(text.format(**kw) if kw else text)


def clean_text(raw: str) -> str:
    """NFKC, no control or invisible characters, single spaces."""
    return clean(raw)


def word(raw: str) -> str:
    """A reply reduced for matching against command words and options: lower case, and
    Traditional written as Simplified (bot/language.py), so 跳過 is 跳过 and 選單 is 菜单."""
    return normalise_command(raw)


def _interrupted(text: str, lang: str, *, free_text: bool = False, label: str = "") -> None:
    """Raise `Interrupted` when the reply is a cancel word or a question, not an answer."""
    found = answers.interruption(text, free_text=free_text)
    if isinstance(found, answers.Cancel):
        raise Interrupted(found, localise(ERR["cancel_word"], lang))
    if isinstance(found, answers.Question):
        message = localise(ERR["asked"], lang).format(label=label) if label else localise(ERR["asked_here"], lang)
        raise Interrupted(found, message)


def _date_value(step: Step, found: answers.DateAnswer | None, today: date, lang: str) -> date:
    """The day to store, or an error that asks for what is missing (never a day made up)."""
    if found is None or not 1900 <= found.start.year <= today.year + 5:
        raise err("date_month" if step.month_ok else "date", lang)
    if found.precision == "month" and step.month_ok:
        return found.start  # a month stays a month: stored as its first day, shown as the month
    if found.precision != "day":
        key = "date_need_month" if step.month_ok or found.precision == "year" else "date_need_day"
        raise err(key, lang, when=_when(found, lang))
    return found.start


def _when(found: answers.DateAnswer, lang: str) -> str:
    if lang == "en":
        return {"year": f"{found.start.year}", "month": f"{found.start:%B %Y}",
                "week": f"the week of {found.start.day} {found.start:%b}"}.get(found.precision, "")
    return {"year": f"{found.start.year}年", "month": f"{found.start.year}年{found.start.month}月",
            "week": f"{found.start.month}月{found.start.day}日那一周"}.get(found.precision, "")


def parse_date(step: Step, text: str, today: date, lang: str, values: dict[str, Any]) -> str:
    _interrupted(text, lang)
    found = answers.date_answer(text, today, "future" if step.future else "past")
    day = _date_value(step, found, today, lang)
    month_only = step.month_ok and found is not None and found.precision == "month"
    if step.past and (day > today if not month_only else (day.year, day.month) > (today.year, today.month)):
        raise err("date_future", lang)
    if step.future and day < today:
        raise err("date_past", lang)
    if step.after and values.get(step.after) and day < date.fromisoformat(values[step.after]):
        raise err("date_after", lang, other=values[step.after])
    return day.isoformat()


def parse_date_range(step: Step, text: str, today: date, lang: str) -> dict[str, str]:
    _interrupted(text, lang)
    found = answers.dates_in(text, today, "future" if step.future else "past")
    if found is None:
        raise err("date_range", lang)
    try:
        start, end = (_date_value(step, d, today, lang) for d in found)
    except Invalid:
        raise err("date_range", lang) from None
    if end < start:
        raise err("date_range_order", lang)
    if step.past and start > today:
        raise err("date_future", lang)
    return {"start": start.isoformat(), "end": end.isoformat()}


def parse_money(step: Step, text: str, lang: str) -> int:
    _interrupted(text, lang)
    found = answers.amount(text)
    if found is None:
        raise err("money", lang)
    if not step.min_fen <= found.fen <= step.max_fen:
        raise err("money_range", lang)
    return found.fen


def parse_yes_no(text: str, lang: str) -> str:
    _interrupted(text, lang)
    found = answers.yes_no(text)
    if found is None:
        raise err("yes_no", lang)
    return found


def parse_choice(step: Step, text: str, lang: str) -> str:
    _interrupted(text, lang)
    w = word(text)
    if w.isdigit() and 1 <= int(w) <= len(step.options):
        return step.options[int(w) - 1].value
    for opt in step.options:
        if w == opt.value.lower() or any(w == word(lbl) for lbl in opt.label.values()):
            return opt.value
    ordinal = answers.number(re.sub(r"^(第|选|选择)|(个|项|号|条)$", "", w)) if w else None
    if ordinal is not None and ordinal == int(ordinal) and 1 <= ordinal <= len(step.options):
        return step.options[int(ordinal) - 1].value  # 第一个, 一, 选2
    raise err("choice", lang)


def parse_text(step: Step, text: str, lang: str) -> str:
    t = clean_text(text)
    if step.optional and word(t) in SKIP:
        return ""
    _interrupted(t, lang, free_text=True, label=localise(step.label, lang))
    if len(t) > step.max_len:
        raise err("text_long", lang, n=step.max_len)
    if len(t) < step.min_len:
        raise err("text_empty" if not t else "text_short", lang)
    if t and not _WORDY.search(t):
        raise err("text_empty", lang)
    return t


# --------------------------------------------------------------------------- registries

# Named hooks that flow files refer to. A flow author picks from these; a developer adds one
# here (with its required parameters) when a new kind of outcome is needed.
ActionFn = Callable[..., dict[str, Any]]
ACTIONS: dict[str, ActionFn] = {}
ACTION_PARAMS: dict[str, tuple[str, ...]] = {}
PRECHECKS: dict[str, Callable[..., str | None]] = {}
REPORTS: dict[str, Callable[..., str]] = {}


def action(name: str, *params: str) -> Callable[[ActionFn], ActionFn]:
    def deco(fn: ActionFn) -> ActionFn:
        ACTIONS[name] = fn
        ACTION_PARAMS[name] = params
        return fn
    return deco


def precheck(name: str) -> Callable[[Callable[..., str | None]], Callable[..., str | None]]:
    def deco(fn: Callable[..., str | None]) -> Callable[..., str | None]:
        PRECHECKS[name] = fn
        return fn
    return deco


def report(name: str) -> Callable[[Callable[..., str]], Callable[..., str]]:
    def deco(fn: Callable[..., str]) -> Callable[..., str]:
        REPORTS[name] = fn
        return fn
    return deco


@dataclass
class FlowCtx:
    """What a flow step may see and use; built by the engine per message."""

    session: Session
    settings: Any
    now: datetime
    lang: str
    channel: str
    address: str
    beneficiary_id: int | None
    acting_as: str | None
    contact_fn: Callable[[], int | None]  # looked up only when something needs it (keeps the hot path lean)
    accepts_files: bool

    @property
    def contact_id(self) -> int | None:
        return self.contact_fn()

    @property
    def today(self) -> date:
        return self.now.astimezone(self.settings.tz).date()



# --------------------------------------------------------------------------- stepping


@dataclass
class State:
    """The part of a Conversation a flow reads and changes."""

    flow: str | None
    step: str | None
    data: dict[str, Any]
    history: list[Any]

    @property
    def values(self) -> dict[str, Any]:
        return self.data.setdefault("v", {})

    def clear_flow(self) -> None:
        self.flow = None
        self.step = None
        self.history = []
        for key in ("v", "doc_i", "miss", "last", "tmp"):
            self.data.pop(key, None)


@dataclass
class Out:
    text: str
    choices: tuple[tuple[str, str], ...] = ()  # (value, label)
    expects: str = "text"
    in_flow: bool = True  # False: the flow has ended (the footer points at the menu)


WORDS = {
    "yes": {"zh-Hans": "是", "en": "Yes"},
    "no": {"zh-Hans": "不是", "en": "No"},
    "submit": {"zh-Hans": "提交", "en": "Submit"},
    "dont_submit": {"zh-Hans": "不提交", "en": "Do not submit"},
    "reply_yes_no": {"zh-Hans": "回复1（是）或2（不是）", "en": "Reply 1 (yes) or 2 (no)"},
    "reply_number": {"zh-Hans": "请回复数字：", "en": "Reply with a number:"},
    "confirm_head": {"zh-Hans": "请核对：", "en": "Please check:"},
    "confirm_tail": {"zh-Hans": "回复1提交，回复2不提交。", "en": "Reply 1 to submit, 2 not to submit."},
    "doc_prompt": {"zh-Hans": "第{i}/{n}份：{label}。请拍照发来；没有就回复“跳过”；都以后带去窗口就回复“以后”。",
                   "en": 'Document {i} of {n}: {label}. Send a photo or file; reply "skip" if you do not have it, '
                         'or "later" to bring the rest to the service window.'},
    "doc_got": {"zh-Hans": "收到：{label}。", "en": "Received: {label}."},
    "bring_list": {"zh-Hans": "要准备的材料（请带到服务窗口）：", "en": "Documents to prepare (bring them to the service window):"},
    "missing": {"zh-Hans": "还缺这些材料，请带到服务窗口：{items}。", "en": "Still missing, please bring to the service window: {items}."},
    "received": {"zh-Hans": "已收到", "en": "received"},
    "not_received": {"zh-Hans": "未收到", "en": "not received"},
    "skipped": {"zh-Hans": "（未填）", "en": "(none)"},
    "yuan": {"zh-Hans": "{v}元", "en": "{v} yuan"},
    "to": {"zh-Hans": "至", "en": "to"},
}


def w(key: str, lang: str, **kw: Any) -> str:
    text = localise(WORDS[key], lang)
    return text.format(**kw) if kw else text


def display(step: Step, value: Any, lang: str) -> str:
    if value is None or value == "":
        return w("skipped", lang)
    if step.type == "yes_no":
        return w("yes" if value == "yes" else "no", lang)
    if step.type == "choice":
        for opt in step.options:
            if opt.value == value:
                return localise(opt.label, lang)
    if step.type == "money":
        return w("yuan", lang, v=f"{value / 100:.2f}".rstrip("0").rstrip("."))
    if step.type == "date_range":
        return f"{value['start']} {w('to', lang)} {value['end']}"
    if step.type == "id_card":
        return str(value.get("masked", ""))
    if step.type == "date" and step.month_ok and str(value).endswith("-01"):
        return str(value)[:7]
    if step.type == "phone":
        from models.phone import mask_phone
        return mask_phone(str(value))
    if step.type == "documents":
        got = [localise(i.label, lang) for i in step.items if value.get(i.code, {}).get("received")]
        return "、".join(got) if got else w("not_received", lang)
    return str(value)


class Runner:
    """Steps a conversation through a flow. Knows nothing about channels or storage."""

    def __init__(self, flows: dict[str, Flow]) -> None:
        self.flows = flows

    # -- prompts
    def prompt(self, flow: Flow, state: State, ctx: FlowCtx) -> Out:
        step = flow.step(state.step or flow.steps[0].id)
        lang = ctx.lang
        text = localise(step.prompt, lang)
        if step.type == "yes_no":
            return Out(f"{text}\n{w('reply_yes_no', lang)}", (("1", w("yes", lang)), ("2", w("no", lang))), "choice")
        if step.type == "choice":
            lines = [text] + [f"{i}. {localise(o.label, lang)}" for i, o in enumerate(step.options, 1)]
            return Out("\n".join(lines), tuple((str(i), localise(o.label, lang))
                                               for i, o in enumerate(step.options, 1)), "choice")
        if step.type == "documents":
            i = int(state.data.get("doc_i", 0))
            item = step.items[min(i, len(step.items) - 1)]
            head = f"{text}\n" if i == 0 else ""
            return Out(head + w("doc_prompt", lang, i=i + 1, n=len(step.items), label=localise(item.label, lang)),
                       expects="file")
        if step.type == "confirm":
            return Out(self.summary(flow, state, lang, text), (("1", w("submit", lang)), ("2", w("dont_submit", lang))),
                       "choice")
        return Out(text, expects="code" if step.type == "otp" else "text")

    def summary(self, flow: Flow, state: State, lang: str, head: str) -> str:
        lines = [head or w("confirm_head", lang)]
        for s in flow.steps:
            if s.type == "confirm" or s.id not in state.values:
                continue
            lines.append(f"- {localise(s.label, lang)}：{display(s, state.values[s.id], lang)}")
        lines.append(w("confirm_tail", lang))
        return "\n".join(lines)

    # -- moving
    def enter(self, flow: Flow, state: State, ctx: FlowCtx) -> list[Out]:
        state.clear_flow()
        if flow.precheck:
            ending = PRECHECKS[flow.precheck](ctx, state)
            if ending is not None:
                return [self._end(flow, state, ending, ctx)]
        if flow.report:
            text = REPORTS[flow.report](ctx, state)
            return [Out(text, in_flow=False)]
        state.flow = flow.id
        first = self._applicable(flow, 0, state)
        if first is None:
            return [self._complete(flow, state, ctx)]
        state.step = flow.steps[first].id
        outs = self._arrive(flow, state, ctx)
        if flow.intro:
            outs[0] = Out(localise(flow.intro, ctx.lang) + "\n" + outs[0].text, outs[0].choices, outs[0].expects,
                          outs[0].in_flow)
        return outs

    def _applicable(self, flow: Flow, start: int, state: State) -> int | None:
        for i in range(start, len(flow.steps)):
            s = flow.steps[i]
            if all(state.values.get(k) in allowed for k, allowed in s.when.items()):
                return i
        return None

    def _arrive(self, flow: Flow, state: State, ctx: FlowCtx, prefix: str = "") -> list[Out]:
        """Show the current step; a document step on a channel without files lists what to bring."""
        step = flow.step(state.step or "")
        state.data["miss"] = 0
        if step.type == "documents" and not ctx.accepts_files:
            state.values[step.id] = {i.code: {"received": False} for i in step.items}
            lines = [w("bring_list", ctx.lang)] + [f"{n}. {localise(i.label, ctx.lang)}"
                                                  for n, i in enumerate(step.items, 1)]
            return self._advance(flow, state, step, None, ctx, prefix + "\n".join(lines) + "\n")
        if step.type == "documents":
            state.data["doc_i"] = 0
            state.values.setdefault(step.id, {})
        out = self.prompt(flow, state, ctx)
        if prefix:
            out = Out(prefix + out.text, out.choices, out.expects, out.in_flow)
        return [out]

    def _advance(self, flow: Flow, state: State, step: Step, value: Any, ctx: FlowCtx, prefix: str = "") -> list[Out]:
        target = step.branch.get(str(value)) if value is not None else None
        target = target or step.next
        if target and target.startswith("end:"):
            return [self._end(flow, state, target[4:], ctx, prefix)]
        start = flow.index[target] if target else flow.index[step.id] + 1
        nxt = self._applicable(flow, start, state)
        state.history.append(step.id)
        if nxt is None:
            return [self._complete(flow, state, ctx, prefix)]
        state.step = flow.steps[nxt].id
        return self._arrive(flow, state, ctx, prefix)

    def _end(self, flow: Flow, state: State, ending_id: str, ctx: FlowCtx, prefix: str = "") -> Out:
        ending = flow.endings.get(ending_id)
        text = localise(ending.text, ctx.lang) if ending else ending_id
        state.clear_flow()
        return Out(prefix + text, in_flow=False)

    def _complete(self, flow: Flow, state: State, ctx: FlowCtx, prefix: str = "") -> Out:
        result: dict[str, Any] = {}
        for act in flow.on_complete:
            result.update(ACTIONS[act["action"]](ctx, state, flow, act) or {})
        missing = []
        for s in flow.steps:
            if s.type == "documents" and s.id in state.values:
                missing += [localise(i.label, ctx.lang) for i in s.items
                            if i.required and not state.values[s.id].get(i.code, {}).get("received")]
        text = localise(flow.done, ctx.lang).format_map(_Blank(result))
        if missing:
            text += "\n" + w("missing", ctx.lang, items="、".join(missing))
        state.clear_flow()
        return Out(prefix + text, in_flow=False)

    def back(self, flow: Flow, state: State, ctx: FlowCtx) -> list[Out] | None:
        """Go to the previous step; None when there is none (the engine shows the menu)."""
        while state.history:
            state.step = state.history.pop()
            step = flow.step(state.step)
            # A checklist shown as "bring these" was passed through, not answered: go further back.
            if step.type == "documents" and not ctx.accepts_files:
                continue
            return self._arrive(flow, state, ctx)
        return None

    def answer(self, flow: Flow, state: State, text: str, attachments: tuple[Any, ...], ctx: FlowCtx) -> list[Out]:
        step = flow.step(state.step or "")
        lang = ctx.lang
        try:
            if step.type == "documents":
                return self._document(flow, state, step, text, attachments, ctx)
            if attachments and not clean_text(text):
                raise Invalid(localise(ERR["file_or_skip"], lang) if step.type == "documents"
                              else _files_not_here(lang))
            value = self._parse(step, text, state, ctx)
        except Invalid as exc:
            return [self._retry(flow, state, text, str(exc), ctx)]
        if step.type == "confirm":
            if value == "no":
                state.clear_flow()
                from bot.texts import t
                return [Out(t("cancelled", lang), in_flow=False)]
            return [self._complete(flow, state, ctx)]
        state.values[step.id] = value
        state.data["last"] = word(text)
        return self._advance(flow, state, step, value, ctx)

    def _parse(self, step: Step, text: str, state: State, ctx: FlowCtx) -> Any:
        lang = ctx.lang
        if not clean_text(text) and not (step.type == "text" and step.optional):
            raise err("text_empty", lang)
        if step.type == "text":
            return parse_text(step, text, lang)
        if step.type in ("yes_no", "confirm"):
            return parse_yes_no(text, lang)
        if step.type == "choice":
            return parse_choice(step, text, lang)
        if step.type == "date":
            return parse_date(step, text, ctx.today, lang, state.values)
        if step.type == "date_range":
            return parse_date_range(step, text, ctx.today, lang)
        if step.type == "money":
            return parse_money(step, text, lang)
        if step.type == "otp":
            code = re.sub(r"\s", "", clean_text(text))
            if not re.fullmatch(r"\d{6}", code):
                raise err("otp", lang)
            return code
        if step.type == "phone":
            from models.phone import InvalidPhone, PhoneNumber
            try:
                return PhoneNumber.parse(text).e164
            except InvalidPhone:
                raise Invalid(localise({"zh-Hans": "手机号不对，请写11位手机号，例如13812345678。",
                                        "en": "That phone number does not look right; please write 11 digits."},
                                       lang)) from None
        if step.type == "id_card":
            from models.idcard import IdCard, InvalidIdCard
            try:
                card = IdCard.parse(text)
            except InvalidIdCard as exc:
                msg = str(exc)
                raise Invalid(msg.split(" (")[0] if lang != "en" else msg[msg.find("(") + 1:].rstrip(")")) from None
            return {"masked": card.masked, "hash": card.hashed(ctx.settings.id_key),
                    "birth_date": card.birth_date.isoformat()}
        raise err("text_empty", lang)

    def _document(self, flow: Flow, state: State, step: Step, text: str, attachments: tuple[Any, ...],
                  ctx: FlowCtx) -> list[Out]:
        docs = state.values.setdefault(step.id, {})
        i = int(state.data.get("doc_i", 0))
        lang = ctx.lang
        got: list[str] = []
        if attachments:
            for att in attachments:
                if i >= len(step.items):
                    break
                item = step.items[i]
                docs[item.code] = {"received": True, "file_id": att.file_id, "mime": att.mime_type,
                                   "name": att.file_name, "path": att.local_path, "kind": att.kind}
                got.append(w("doc_got", lang, label=localise(item.label, lang)))
                i += 1
        else:
            wd = word(text)
            if wd in SKIP:
                docs[step.items[i].code] = {"received": False}
                i += 1
            elif wd in LATER:
                for item in step.items[i:]:
                    docs.setdefault(item.code, {"received": False})
                i = len(step.items)
            else:
                raise_text = localise(ERR["file_or_skip"], lang)
                return [self._retry(flow, state, text, raise_text, ctx)]
        state.data["doc_i"] = i
        state.data["miss"] = 0
        prefix = "".join(g + "\n" for g in got)
        if i >= len(step.items):
            state.data.pop("doc_i", None)
            return self._advance(flow, state, step, None, ctx, prefix)
        out = self.prompt(flow, state, ctx)
        return [Out(prefix + out.text, out.choices, out.expects)]

    def _retry(self, flow: Flow, state: State, text: str, problem: str, ctx: FlowCtx) -> Out:
        from bot.texts import t
        misses = int(state.data.get("miss", 0)) + 1
        state.data["miss"] = misses
        lines = []
        if state.data.get("last") and word(text) == state.data["last"]:
            lines.append(t("previous_answer", ctx.lang))
        lines.append(problem)
        out = self.prompt(flow, state, ctx)
        lines.append(out.text)
        if misses >= 2:
            lines.append(t("too_many_tries", ctx.lang))
        return Out("\n".join(lines), out.choices, out.expects)


def _files_not_here(lang: str) -> str:
    from bot.texts import t
    return t("files_not_here", lang)


class _Blank(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return ""


# Registers the built-in actions, prechecks and reports.
import bot.flowactions  # noqa: E402,F401
