"""Step a conversation through a flow (`bot/flows/*.yaml`, validated by `bot/flowspec.py`).

A flow is a list of steps (a field to collect, with its prompt in each language and a
validator), optional branching on an answer to an ending or another step, a document
checklist, and what it creates when confirmed (`on_complete` actions, looked up by name in
the registry of `bot/flowregistry.py`). The engine only knows "the current step of the
current flow"; adding a flow is adding a file (see bot/flows/README.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from bot import answers
from bot.flowregistry import FlowCtx, Refused, Registry, builtin
from bot.flowspec import FLOW_DIR, STEP_TYPES, Flow, FlowError, Step, load_flows, parse_flow
from bot.language import cantonese_as_mandarin, clean, normalise_command
from bot.state import ConversationState, PendingAnswer
from bot.texts import localise
from bot.texts import t as w  # the engine's words

__all__ = ["FLOW_DIR", "STEP_TYPES", "Flow", "FlowCtx", "FlowError", "Invalid", "Out", "Runner", "Step",
           "Interrupted", "clean_text", "display", "load_flows", "parse_flow", "word"]


class Invalid(ValueError):
    """An answer does not fit the step; the message (already localised) says what is needed."""


class Interrupted(Invalid):
    """The reply is not an answer but a cancel word or a question (`interruption`: answers.Cancel or
    answers.Question): act on it (end the flow unsaved, answer the question) rather than retry."""

    def __init__(self, interruption: answers.Interruption, message: str) -> None:
        super().__init__(message)
        self.interruption = interruption


# --------------------------------------------------------------------------- validators

_WORDY = re.compile(r"[^\W\d_]")  # a letter of any script: digits alone are not a name

SKIP = frozenset(["跳过", "没有", "无", "不用", "没", "skip", "none", "no", "nothing", "-", "略"])  # 算了 cancels
LATER = frozenset(["以后", "以后带", "以后再说", "完成", "好了", "发完了", "带去窗口", "done", "later", "finished"])


def err(key: str, lang: str, **kw: Any) -> Invalid:
    """The answer is refused, in the engine's words (bot/texts.py) for `key`."""
    return Invalid(w(key, lang, **kw))


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
        raise Interrupted(found, w("cancel_word", lang))
    if isinstance(found, answers.Question):
        message = w("asked", lang).format(label=label) if label else w("asked_here", lang)
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
    typed = word(text)
    if len(typed) == 1 and typed in "123456789":  # "1" as if pressing a button: 1元 is written with its unit
        raise err("money_lone_digit", lang, v=typed)
    found = answers.amount(text)
    if found is None and step.min_fen == 0 and answers.no_amount(text):
        return 0  # "没有" where "0 if none" is asked
    if found is None:
        raise err("money", lang)
    if not step.min_fen <= found.fen <= step.max_fen:
        raise err("money_range", lang)
    return found.fen


def _not_a_number(step: Step, text: str, lang: str) -> None:
    """Where a phone or ID number is asked, a reply with no digit in it is a cancel, a question or 记不清, never
    a number "2 characters long": said so, with who can help."""
    _interrupted(text, lang)
    if answers.unsure(text):
        raise err(f"{step.type}_unsure", lang)
    if not re.search(r"\d", clean_text(text)):
        raise err(f"{step.type}_needed", lang)


def parse_yes_no(text: str, lang: str, *, about_a_fact: bool = False) -> str:
    _interrupted(text, lang)
    found = answers.yes_no(text, about_a_fact=about_a_fact)
    if found is None:  # 唔知 / not sure: not told the same "reply 1 or 2" again, but who can help
        raise err("yes_no_unsure" if answers.unsure(text) else "yes_no", lang)
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
    named = _option_named(step, w)
    if named is not None:
        return named
    raise err("choice_unsure" if answers.unsure(text) else "choice", lang)


_NOT_ZH = ("没", "冇", "唔", "未", "非")
_NOT_EN = ("no", "not", "never", "don'?t", "didn'?t", "wasn'?t")
_NEGATION = re.compile("|".join(("不", *_NOT_ZH)) + r"|\b(" + "|".join(_NOT_EN) + r")\b")
_NONE_OF_THEM = re.compile(r"(都|全都|全部|一个都|一样都|一项都)?(没有|没|冇|无)(过|呢啲|啦|的)?|"
                           r"(none|nothing|neither)( of (these|those|them|the above|it))?|no(ne)?|never")
_OPTION_WORD_MIN = 2  # characters: a single character (被, 病) names no option
# A negation just before what a sentence tells, in the same clause, denies it ("他没瘫在床上", "he is not bedridden");
# 不但 / 不光 / not only add to it.
_DENIED_BEFORE = re.compile("(" + "|".join(("不(?![但光仅只])", "别", *_NOT_ZH)) + r")[^，,。.;；！!？?]{0,2}$"
                            r"|\b(" + "|".join((*_NOT_EN, "isn'?t", "doesn'?t", "ain'?t")) + r")(?! only)( \w+){0,2} $")


def _says(told: str, said: str) -> bool:
    """Whether a sentence tells what an option's `told` pattern names, not denied by a negation just before it."""
    return any(not _DENIED_BEFORE.search(said[:found.start()]) for found in re.finditer(told, said))


def _option_named(step: Step, w: str) -> str | None:
    """The one option whose words the reply holds or is part of ("看病" -> 看病花钱多, "i left" -> I left of my
    own accord), or the "none of these" option for a reply that says none ("都没有", "none of those"); None when no
    option or several fit. A reply with a negation names only an option whose own words hold it ("我没有被判过刑"
    names no option: it must not pick 被判过刑)."""
    if len(w) < _OPTION_WORD_MIN:
        return None
    fits = set()
    for said in {w, cantonese_as_mandarin(w)}:
        for opt in step.options:
            for label in map(word, opt.label.values()):
                if len(label) < _OPTION_WORD_MIN or (_NEGATION.search(said) and not _NEGATION.search(label)):
                    continue
                if label in said or said in label:
                    fits.add(opt.value)
    if len(fits) == 1:
        return fits.pop()
    none = next((opt.value for opt in step.options if opt.value == "none"), None)
    if not fits and none is not None and _NONE_OF_THEM.fullmatch(w.strip(" .!。！")):
        return none
    return None


def parse_text(step: Step, text: str, lang: str) -> str:
    t = clean_text(text)
    if step.optional and (word(t) in SKIP or answers.nothing_to_give(t)):  # 不知道 at "skip if you do not know"
        return ""
    _interrupted(t, lang, free_text=True, label=localise(step.label, lang))
    if answers.acknowledgement(t):  # "谢谢" / "thank you" is said to us, never a name or a description
        raise err("text_ack", lang)
    if answers.nothing_to_give(t):  # "不知道" is no hospital and no unit: a person can help find it
        raise err("text_unknown", lang)
    if len(t) > step.max_len:
        raise err("text_long", lang, n=step.max_len)
    if len(t) < step.min_len:
        raise err("text_empty" if not t else "text_short", lang)
    if t and not _WORDY.search(t):
        raise err("text_empty", lang)
    return t


# --------------------------------------------------------------------------- stepping


@dataclass
class Out:
    text: str
    choices: tuple[tuple[str, str], ...] = ()  # (value, label)
    expects: str = "text"
    in_flow: bool = True  # False: the flow has ended (the footer points at the menu)


DOCUMENT_KINDS = frozenset({"photo", "document"})  # what counts as a document handed in

# Lines that only say how to type an answer: a channel with buttons leaves them out.
TYPING_LINES = ("reply_yes_no", "confirm_tail", "doc_how", "sure_how", "reply_number", "known_how")


def typing_lines(lang: str) -> frozenset[str]:
    return frozenset(w(key, lang) for key in TYPING_LINES)


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


# Steps whose prompt offers choices (see Runner.prompt).
_CHOICE_STEPS = frozenset({"yes_no", "choice", "confirm"})
_VALUE_STEPS = frozenset({"date", "date_range", "money", "phone", "id_card"})


class Runner:
    """Steps a conversation through a flow. Knows nothing about channels or storage."""

    def __init__(self, flows: dict[str, Flow], registry: Registry | None = None) -> None:
        self.flows = flows
        self.registry = registry or builtin()

    # -- prompts
    @staticmethod
    def expects_choice(flow: Flow, state: ConversationState) -> bool:
        """Whether `prompt` would ask for a choice, found without building the prompt."""
        if state.pending is not None and flow.has_step(state.pending.step):
            return True
        return bool(flow.steps) and flow.step(state.step or flow.steps[0].id).type in _CHOICE_STEPS

    @staticmethod
    def reads_a_value(flow: Flow, state: ConversationState) -> bool:
        """Whether the step reads a value from what is typed (a date, an amount, a phone or ID number), where a
        question cannot be an answer."""
        if state.pending is not None or not flow.steps:
            return False
        return flow.step(state.step or flow.steps[0].id).type in _VALUE_STEPS

    @staticmethod
    def reads_free_text(flow: Flow, state: ConversationState) -> bool:
        """Whether the step takes what is typed as written (a name, a description)."""
        if state.pending is not None or not flow.steps:
            return False
        return flow.step(state.step or flow.steps[0].id).type == "text"

    def prompt(self, flow: Flow, state: ConversationState, ctx: FlowCtx) -> Out:
        lang = ctx.lang
        if state.pending is not None and flow.has_step(state.pending.step):
            return self._pending_prompt(flow, state.pending, lang)
        step = flow.step(state.step or flow.steps[0].id)
        text = localise(step.prompt, lang)
        if step.type == "yes_no":
            return Out(f"{text}\n{w('reply_yes_no', lang)}", (("1", w("yes", lang)), ("2", w("no", lang))), "choice")
        if step.type == "choice":
            lines = [text] + [f"{i}. {localise(o.label, lang)}" for i, o in enumerate(step.options, 1)]
            return Out("\n".join(lines), tuple((str(i), localise(o.label, lang))
                                               for i, o in enumerate(step.options, 1)), "choice")
        if step.type == "documents":
            i = state.doc_index
            item = step.items[min(i, len(step.items) - 1)]
            head = f"{text}\n" if i == 0 else ""
            return Out(head + w("doc_prompt", lang, i=i + 1, n=len(step.items), label=localise(item.label, lang))
                       + "\n" + w("doc_how", lang), (("跳过", w("skip", lang)), ("以后", w("later", lang))), "file")
        if step.type == "confirm":
            return Out(self.summary(flow, state, lang, text), (("1", w("submit", lang)), ("2", w("dont_submit", lang))),
                       "choice")
        return Out(text, expects="code" if step.type == "otp" else "text")

    def _pending_prompt(self, flow: Flow, pending: PendingAnswer, lang: str) -> Out:
        """Before an answer that ends the flow is acted on: "您选的是'是'，确定吗？"; or what the record
        says, to confirm instead of typing it."""
        step = flow.step(pending.step)
        if pending.known:
            facts = w("fact_separator", lang).join(self._known_fact(flow.step(sid), value, lang)
                                                  for sid, value in pending.value.items())
            if pending.also:
                facts += w("fact_separator", lang) + pending.also
            return Out(f"{localise(step.prompt, lang)}\n{w('known_head', lang, facts=facts)}\n{w('known_how', lang)}",
                       (("1", w("right", lang)), ("2", w("not_right", lang))), "choice")
        head = (w("confirm_cancel", lang) if step.type == "confirm"
                else w("confirm_choice", lang, question=localise(step.prompt, lang),
                       answer=display(step, pending.value, lang)))
        return Out(f"{head}\n{w('sure_how', lang)}", (("1", w("sure", lang)), ("2", w("choose_again", lang))),
                   "choice")

    # -- what the record already says
    @staticmethod
    def _known_fact(step: Step, value: Any, lang: str) -> str:
        if step.known == "deceased":
            return w("fact", lang, label=localise(step.label, lang),
                     value=w("name_and_card", lang, name=value.get("name", ""), masked=value.get("masked", "")))
        return w("fact", lang, label=localise(step.label, lang), value=display(step, value, lang))

    def _known_value(self, flow: Flow, step: Step, state: ConversationState, ctx: FlowCtx) -> Any:
        """What the linked record says for this step, or None (nothing known, or not for this person)."""
        person = ctx.person() if step.known else None
        if person is None:
            return None
        card = {"masked": person.id_masked, "hash": person.id_hash,
                "birth_date": person.birth_date.isoformat() if person.birth_date else ""}
        if step.known == "name":
            return person.name if ctx.acting_as is None and person.name else None
        if step.known == "id_card":
            return card if ctx.acting_as is None else None
        if step.known == "deceased":
            # A relative linked for this person reports a death: most often it is theirs.
            return {**card, "name": person.name} if ctx.acting_as is not None else None
        if step.known == "relationship" and ctx.acting_as in {o.value for o in step.options}:
            deceased = next((s for s in flow.steps if s.known == "deceased"), None)
            if deceased is not None and (state.values.get(deceased.id) or {}).get("hash") != person.id_hash:
                return None  # the report is about someone else: how they were related is asked
            return ctx.acting_as
        return None

    def _offer_known(self, flow: Flow, state: ConversationState, step: Step, ctx: FlowCtx) -> bool:
        """At a step the record can answer: fill it (the person already said the record is right) or
        offer it, with the steps right after it that the record also answers, to confirm in one reply."""
        if not step.known or state.known_declined:
            return False
        value = self._known_value(flow, step, state, ctx)
        if value is None:
            return False
        if state.known_confirmed:
            state.pending = PendingAnswer(step=step.id, value={step.id: value}, known=True)
            return True
        if step.type == "choice":
            return False  # its options are the question: it is asked as it is unless the record was confirmed
        group = {step.id: value}
        also = ""
        relation = next((s for s in flow.steps if s.known == "relationship"), None)
        if step.known == "deceased" and relation is not None and ctx.acting_as in {o.value for o in relation.options}:
            # Confirming who died confirms how the reporter is related to them: it is not asked again.
            also = w("fact", ctx.lang, label=localise(relation.label, ctx.lang),
                     value=display(relation, ctx.acting_as, ctx.lang))
        for nxt in flow.steps[flow.index[step.id] + 1:]:
            more = self._known_value(flow, nxt, state, ctx) if not nxt.when else None
            if more is None:
                break
            group[nxt.id] = more
        state.pending = PendingAnswer(step=step.id, value=group, known=True, also=also)
        return True

    def _take_known(self, flow: Flow, state: ConversationState, ctx: FlowCtx, prefix: str = "") -> list[Out]:
        pending = state.pending
        assert pending is not None and pending.known
        state.pending = None
        state.known_confirmed = True
        ids = list(pending.value)
        for sid in ids:
            state.values[sid] = pending.value[sid]
            if sid != ids[-1]:
                state.history.append(sid)
        state.step = ids[-1]
        last = flow.step(ids[-1])
        return self._advance(flow, state, last, pending.value[ids[-1]], ctx, prefix)

    def summary(self, flow: Flow, state: ConversationState, lang: str, head: str) -> str:
        lines = [head or w("confirm_head", lang)]
        for s in flow.steps:
            if s.type == "confirm" or s.id not in state.values:
                continue
            lines.append("- " + w("fact", lang, label=localise(s.label, lang), value=display(s, state.values[s.id], lang)))
        lines.append(w("confirm_tail", lang))
        return "\n".join(lines)

    # -- moving
    def enter(self, flow: Flow, state: ConversationState, ctx: FlowCtx, args: dict[str, Any] | None = None,
              told: str = "") -> list[Out]:
        """Start the flow; `told` is the sentence that asked for it, which may already answer its first steps."""
        state.clear_flow()
        state.flow_args = dict(args or {})
        for name in flow.precheck:
            verdict = self.registry.prechecks[name](ctx, state, flow)
            if isinstance(verdict, Refused):
                state.clear_flow()
                return [Out(verdict.text, in_flow=False)]
            if verdict is not None:
                return [self._end(flow, state, verdict, ctx)]
        if flow.report:
            text = self.registry.reports[flow.report](ctx, state)
            state.clear_flow()
            return [Out(text, in_flow=False)]
        state.flow = flow.id
        first = self._applicable(flow, 0, state)
        if first is None:
            return [self._complete(flow, state, ctx)]
        state.step = flow.steps[first].id
        taken = self._take_told(flow, state, told, ctx) if told else []
        if state.step is None:
            return [self._complete(flow, state, ctx)]
        outs = self._arrive_told(flow, state, taken, ctx)
        said = [localise(flow.intro, ctx.lang)] if flow.intro else []
        if flow.intro_report:
            said.insert(0, self.registry.reports[flow.intro_report](ctx, state))
        if said := [line for line in said if line]:
            outs[0] = Out("\n".join([*said, outs[0].text]), outs[0].choices, outs[0].expects, outs[0].in_flow)
        return outs

    def _arrive_told(self, flow: Flow, state: ConversationState, taken: list[str], ctx: FlowCtx) -> list[Out]:
        """The current step, after the facts taken from what was said are said back."""
        outs = self._arrive(flow, state, ctx)
        if taken:
            head = w("told_head", ctx.lang, facts=w("fact_separator", ctx.lang).join(taken))
            outs[0] = Out(head + "\n" + outs[0].text, outs[0].choices, outs[0].expects, outs[0].in_flow)
        return outs

    def _told_in_reply(self, flow: Flow, state: ConversationState, step: Step, text: str,
                       ctx: FlowCtx) -> list[Out] | None:
        """A reply that tells more than its step asks ("我爸前天住进县医院了" to "which hospital?") is read as the
        sentence that asked for the service is: the step's own part of it and the next steps' it tells, said back.
        None: the reply is only the answer (the step's pattern takes no part of it smaller than the whole; a
        choice's reply names an option, or tells none)."""
        if step.type == "choice":
            if self._told_value(step, text, state, ctx) is None:
                return None
            try:
                parse_choice(step, text, ctx.lang)
                return None
            except Interrupted:
                return None
            except Invalid:
                pass  # "他瘫在床上" names no option, but tells one
        else:
            found = re.search(step.told, text) if step.told else None
            value = found.groupdict().get("value") if found is not None else None
            if not value or value == clean_text(text):
                return None
        taken = self._take_told(flow, state, text, ctx)
        if not taken:
            return None
        if state.step is None:
            return [self._complete(flow, state, ctx)]
        return self._arrive_told(flow, state, taken, ctx)

    def _take_told(self, flow: Flow, state: ConversationState, told: str, ctx: FlowCtx) -> list[str]:
        """The steps, from the current one on, that a sentence answers (the one that asked for the service, or a
        reply that tells more than its step asks), each read as its own step reads a reply, kept and passed (back
        returns to them); the facts taken, as the summary shows them."""
        taken: list[str] = []
        while state.step is not None:
            step = flow.step(state.step)
            value = self._told_value(step, told, state, ctx)
            if value is None:
                break
            state.values[step.id] = value
            state.history.append(step.id)
            taken.append(w("fact", ctx.lang, label=localise(step.label, ctx.lang), value=display(step, value, ctx.lang)))
            target = step.branch.get(str(value)) or step.next
            nxt = self._applicable(flow, flow.index[target] if target else flow.index[step.id] + 1, state)
            state.step = flow.steps[nxt].id if nxt is not None else None
        return taken

    def _told_value(self, step: Step, told: str, state: ConversationState, ctx: FlowCtx) -> Any:
        """The step's answer that a sentence tells, read as the step reads a reply; None when it tells none, or
        when the answer would end the flow (an ending is always asked)."""
        if step.type == "choice":
            said = word(told)
            picked = [o.value for o in step.options if o.told and _says(o.told, said)]
            return picked[0] if len(picked) == 1 else None  # two options told: the person chooses
        found = re.search(step.told, told) if step.told else None
        if found is None or (step.next or "").startswith("end:"):
            return None
        try:
            return self._parse(step, found.groupdict().get("value") or found.group(0), state, ctx)
        except Invalid:
            return None

    def tells(self, flow: Flow, text: str, ctx: FlowCtx) -> bool:
        """Whether a sentence answers the flow's first step (a reply to the offer of the service that is not
        yes or no, but says what the service asks first: "他瘫在床上" to "要办资格认证吗？")."""
        fresh = ConversationState()
        first = self._applicable(flow, 0, fresh)
        return first is not None and self._told_value(flow.steps[first], text, fresh, ctx) is not None

    def _applicable(self, flow: Flow, start: int, state: ConversationState) -> int | None:
        for i in range(start, len(flow.steps)):
            s = flow.steps[i]
            if all(state.values.get(k) in allowed for k, allowed in s.when.items()):
                return i
        return None

    def _arrive(self, flow: Flow, state: ConversationState, ctx: FlowCtx, prefix: str = "") -> list[Out]:
        """Show the current step; a document step on a channel without files lists what to bring."""
        step = flow.step(state.step or "")
        state.misses = 0
        if step.type == "documents" and not ctx.accepts_files:
            state.values[step.id] = {i.code: {"received": False} for i in step.items}
            lines = [w("bring_list", ctx.lang)] + [f"{n}. {localise(i.label, ctx.lang)}"
                                                  for n, i in enumerate(step.items, 1)]
            return self._advance(flow, state, step, None, ctx, prefix + "\n".join(lines) + "\n")
        if step.type == "documents":
            state.doc_index = 0
            state.values.setdefault(step.id, {})
        if self._offer_known(flow, state, step, ctx) and state.known_confirmed:
            return self._take_known(flow, state, ctx, prefix)
        out = self.prompt(flow, state, ctx)
        if prefix:
            out = Out(prefix + out.text, out.choices, out.expects, out.in_flow)
        return [out]

    def _advance(self, flow: Flow, state: ConversationState, step: Step, value: Any, ctx: FlowCtx,
                 prefix: str = "") -> list[Out]:
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

    def _end(self, flow: Flow, state: ConversationState, ending_id: str, ctx: FlowCtx, prefix: str = "") -> Out:
        ending = flow.endings.get(ending_id)
        text = localise(ending.text, ctx.lang) if ending else ending_id
        state.clear_flow()
        return Out(prefix + text, in_flow=False)

    def _complete(self, flow: Flow, state: ConversationState, ctx: FlowCtx, prefix: str = "") -> Out:
        result: dict[str, Any] = {}
        for call in flow.on_complete:
            result.update(self.registry.actions[call.action].fn(ctx, state, flow, call.params) or {})
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

    def back(self, flow: Flow, state: ConversationState, ctx: FlowCtx) -> list[Out] | None:
        """Go to the previous step; None when there is none (the engine shows the menu).
        While an answer waits to be confirmed, back is the question it answered."""
        if state.pending is not None and not state.pending.known:
            state.pending = None
            return [self.prompt(flow, state, ctx)]
        state.pending = None
        while state.history:
            state.step = state.history.pop()
            step = flow.step(state.step)
            # A checklist shown as "bring these" was passed through, not answered: go further back.
            if step.type == "documents" and not ctx.accepts_files:
                continue
            return self._arrive(flow, state, ctx)
        return None

    def answer(self, flow: Flow, state: ConversationState, text: str, attachments: tuple[Any, ...],
               ctx: FlowCtx) -> list[Out]:
        step = flow.step(state.step or "")
        lang = ctx.lang
        if state.pending is not None:
            return self._answer_pending(flow, state, step, text, ctx)
        try:
            if step.type == "documents":
                return self._document(flow, state, step, text, attachments, ctx)
            if attachments and not clean_text(text):
                raise Invalid(w("file_or_skip", lang) if step.type == "documents"
                              else _files_not_here(lang))
            if (told := self._told_in_reply(flow, state, step, text, ctx)) is not None:
                return told
            value = self._parse(step, text, state, ctx)
        except Invalid as exc:
            return [self._retry(flow, state, text, str(exc), ctx)]
        if step.type == "confirm":
            if value == "no":
                state.pending = PendingAnswer(step=step.id, value="no", typed=clean_text(text)[:100])
                return [self.prompt(flow, state, ctx)]
            return [self._complete(flow, state, ctx)]
        if step.type in ("yes_no", "choice") and step.ends_flow(value):
            # One mis-tap must not end the flow with no way back: the answer is confirmed first.
            state.pending = PendingAnswer(step=step.id, value=value, typed=clean_text(text)[:100])
            return [self.prompt(flow, state, ctx)]
        return self._accept(flow, state, step, value, text, ctx)

    def _accept(self, flow: Flow, state: ConversationState, step: Step, value: Any, text: str,
                ctx: FlowCtx) -> list[Out]:
        state.values[step.id] = value
        state.last_answer = word(text)
        return self._advance(flow, state, step, value, ctx)

    def _answer_pending(self, flow: Flow, state: ConversationState, step: Step, text: str,
                        ctx: FlowCtx) -> list[Out]:
        pending = state.pending
        assert pending is not None
        wd = word(text)
        lang = ctx.lang
        if pending.known:
            if wd in (word(w("right", lang)), "1"):
                verdict: str | None = "yes"
            elif wd in (word(w("not_right", lang)), "2"):
                verdict = "no"
            else:  # a short yes or no; anything longer is an answer to the question itself
                verdict = answers.yes_no(text) if len(clean_text(text)) <= 12 else None
            if verdict == "yes":
                return self._take_known(flow, state, ctx)
            state.pending = None
            if verdict == "no":
                state.known_declined = True
                return [self.prompt(flow, state, ctx)]
            # Anything else is the answer to the question itself (they typed their name).
            return self.answer(flow, state, text, (), ctx)
        if wd in (word(w("sure", lang)), word(w("sure", "zh-Hans"))):
            sure: str | None = "yes"
        elif wd in (word(w("choose_again", lang)), word(w("choose_again", "zh-Hans"))):
            sure = "no"
        else:
            try:
                sure = parse_yes_no(text, lang)
            except Invalid as exc:
                return [self._retry(flow, state, text, str(exc), ctx)]
        state.pending = None
        if sure == "no":
            return [self.prompt(flow, state, ctx)]
        if step.type == "confirm":
            state.clear_flow()
            return [Out(w("cancelled", lang), in_flow=False)]
        return self._accept(flow, state, step, pending.value, pending.typed, ctx)

    def _parse(self, step: Step, text: str, state: ConversationState, ctx: FlowCtx) -> Any:
        lang = ctx.lang
        if not clean_text(text) and not (step.type == "text" and step.optional):
            raise err("text_empty", lang)
        if step.type == "text":
            return parse_text(step, text, lang)
        if step.type == "yes_no":  # asks whether something is so
            return parse_yes_no(text, lang, about_a_fact=True)
        if step.type == "confirm":  # its own choices are 提交 / 不提交, not 是 / 不是
            try:
                return parse_yes_no(text, lang)
            except Interrupted:
                raise
            except Invalid:
                raise err("confirm_unsure" if answers.unsure(text) else "confirm_again", lang) from None
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
        if step.type in ("phone", "id_card"):
            _not_a_number(step, text, lang)
        if step.type == "phone":
            from models.phone import InvalidPhone, PhoneNumber
            try:
                return PhoneNumber.parse(text).e164
            except InvalidPhone:
                raise err("phone_invalid", lang) from None
        if step.type == "id_card":
            from models.idcard import IdCard, InvalidIdCard
            try:
                card = IdCard.parse(text)
            except InvalidIdCard as exc:  # "中文 (English)"
                zh, _, en = str(exc).partition(" (")
                raise Invalid(localise({"zh-Hans": zh, "en": en.rstrip(")")}, lang)) from None
            hashed = card.hashed(ctx.settings.id_key)
            person = ctx.person() if step.known in ("id_card", "deceased") else None
            if person is not None and step.known == "id_card" and ctx.acting_as is None and hashed != person.id_hash:
                raise err("id_not_linked", lang, name=person.name, masked=person.id_masked)
            if person is not None and step.known == "deceased" and ctx.acting_as is None and hashed == person.id_hash:
                raise err("id_is_own", lang)
            return {"masked": card.masked, "hash": hashed, "birth_date": card.birth_date.isoformat()}
        raise err("text_empty", lang)

    def _document(self, flow: Flow, state: ConversationState, step: Step, text: str, attachments: tuple[Any, ...],
                  ctx: FlowCtx) -> list[Out]:
        """One checklist item per photo or file, in order, unless the caption names another item
        ("呢張係收據" is the receipt). Only photos and files are documents (the engine answers other media)."""
        docs = state.values.setdefault(step.id, {})
        lang = ctx.lang
        files = [a for a in attachments if a.kind in DOCUMENT_KINDS]
        got: list[str] = []
        if files:
            caption = word(text)
            named = next((item for item in step.items if caption and item.named_in(caption)
                          and not docs.get(item.code, {}).get("received")), None)
            for att in files:
                item = named or next((it for it in step.items[state.doc_index:] if it.code not in docs), None)
                named = None
                if item is None:
                    break
                docs[item.code] = {"received": True, "file_id": att.file_id, "mime": att.mime_type,
                                   "name": att.file_name, "path": att.local_path, "kind": att.kind}
                got.append(w("doc_got", lang, label=localise(item.label, lang)))
        elif attachments:
            return [self._retry(flow, state, text, w("file_or_skip", lang), ctx)]
        else:
            wd = word(text)
            current = next((it for it in step.items[state.doc_index:] if it.code not in docs), None)
            if wd in SKIP and current is not None:
                docs[current.code] = {"received": False}
            elif wd in LATER:
                for item in step.items:
                    docs.setdefault(item.code, {"received": False})
            else:
                return [self._retry(flow, state, text, w("file_or_skip", lang), ctx)]
        # The next item to ask for: the first one neither received nor skipped.
        state.doc_index = next((n for n, it in enumerate(step.items) if it.code not in docs), len(step.items))
        state.misses = 0
        prefix = "".join(g + "\n" for g in got)
        if state.doc_index >= len(step.items):
            state.doc_index = 0
            return self._advance(flow, state, step, None, ctx, prefix)
        out = self.prompt(flow, state, ctx)
        return [Out(prefix + out.text, out.choices, out.expects)]

    def _retry(self, flow: Flow, state: ConversationState, text: str, problem: str, ctx: FlowCtx) -> Out:
        state.misses += 1
        lines = []
        if state.last_answer and word(text) == state.last_answer:
            lines.append(w("previous_answer", ctx.lang))
        lines.append(problem)
        out = self.prompt(flow, state, ctx)
        lines.append(out.text)
        if state.misses >= 2:
            lines.append(w("too_many_tries", ctx.lang))
        return Out("\n".join(lines), out.choices, out.expects)


def _files_not_here(lang: str) -> str:
    return w("files_not_here", lang)


class _Blank(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return ""
