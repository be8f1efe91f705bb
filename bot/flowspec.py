"""Flow files (`bot/flows/*.yaml`) as validated data: pydantic models, every field declared.

A file that does not fit (an unknown field, a missing text, a branch to a step that does
not exist, an action the registry does not know) stops start-up with a `FlowError` naming
the file and the field: `03_hardship.yaml: steps[1](situation).prompt.en: missing text`.
The models are frozen: the runner reads them, nothing changes them.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from bot.flowregistry import Registry, builtin

# libyaml's parser, several times faster than the pure-Python one (same results); the pure one
# where libyaml is absent.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

FLOW_DIR = Path(__file__).resolve().parent / "flows"
REQUIRED_LANGS = ("zh-Hans", "en")
LANGS = ("zh-Hans", "zh-Hant", "en")

StepType = Literal["text", "id_card", "phone", "date", "date_range", "money", "yes_no", "choice", "otp",
                   "documents", "confirm"]
STEP_TYPES = frozenset(StepType.__args__)  # type: ignore[attr-defined]
_NAME = re.compile(r"[a-z][a-z0-9_]*")


class FlowError(ValueError):
    """A flow file is broken; the message names the file and the field."""


# --------------------------------------------------------------------------- field types


def _texts(value: Any) -> dict[str, str]:
    if isinstance(value, str):
        raise PydanticCustomError("one_string", "needs a text per language (zh-Hans and en), got one string")
    if not isinstance(value, dict):
        raise PydanticCustomError("texts", "needs a mapping of language -> text")
    for lang in REQUIRED_LANGS:
        if not isinstance(value.get(lang), str) or not value[lang].strip():
            raise PydanticCustomError("missing_text", "missing text", {"lang": lang})
    for lang in value:
        if lang not in LANGS:
            raise PydanticCustomError("unknown_lang", "unknown language (use zh-Hans, zh-Hant, en)", {"lang": lang})
    return {str(k): str(v).strip() for k, v in value.items()}


def _answer_word(key: Any) -> str:
    # YAML 1.1 reads yes/no as booleans; flow authors mean the answer words.
    if key is True:
        return "yes"
    if key is False:
        return "no"
    return str(key)


def _answer_keys(value: Any) -> Any:
    return {_answer_word(k): v for k, v in value.items()} if isinstance(value, dict) else value


def _answer_lists(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    return {str(k): [_answer_word(x) for x in (v if isinstance(v, list) else [v])] for k, v in value.items()}


def _name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise PydanticCustomError("name", "needs a lower_case name")
    return value


Texts = Annotated[dict[str, str], BeforeValidator(_texts)]
Name = Annotated[str, BeforeValidator(_name)]
AnswerWord = Annotated[str, BeforeValidator(_answer_word)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def relationship_options() -> list[dict[str, Any]]:
    """The relationships a family member may have to the person on the roll: one list, the catalogue's,
    in its order, used by linking and by every flow that asks."""
    from bot.words import catalogue

    words = catalogue()
    options = []
    for code in words.codes("relationship"):
        if code == "self":
            continue
        texts = dict(words.texts("relationship", code) or {})
        texts["en"] = texts["en"][:1].upper() + texts["en"][1:]  # a button label starts with a capital
        options.append({"value": code, "label": texts})
    return options


# --------------------------------------------------------------------------- the models


class Option(_Spec):
    value: AnswerWord
    label: Texts
    # Words that, in the sentence that asked for the service or in a reply that tells more, pick this
    # option ("他瘫在床上" picks a home visit): a pattern over the sentence as commands are read
    # (Simplified, lower case).
    told: str | None = None


class DocItem(_Spec):
    code: str
    label: Texts
    required: bool = True
    # Words in a photo's caption that name this document (呢張係收據 -> the receipt, in Simplified).
    aliases: tuple[str, ...] = ()

    def named_in(self, caption: str) -> bool:
        """The caption (normalised: Simplified, lower case) names this document."""
        words = (self.label["zh-Hans"], self.label["en"].lower(), *(a.lower() for a in self.aliases))
        return any(w and w in caption for w in words)


# Steps whose answer can be read out of the sentence that asked for the service.
TOLD_TYPES = ("text", "date", "date_range", "money")  # a choice is told by its options' own `told`


class Step(_Spec):
    id: Name
    type: StepType
    prompt: Texts
    label: Texts = Field(default_factory=dict)  # short name in the summary; the prompt when not given
    options: tuple[Option, ...] = ()
    items: tuple[DocItem, ...] = ()
    branch: Annotated[dict[str, str], BeforeValidator(_answer_keys)] = Field(default_factory=dict)
    next: str | None = None  # jump after this step
    when: Annotated[dict[str, list[str]], BeforeValidator(_answer_lists)] = Field(default_factory=dict)
    min_len: int = 1  # 0 when the step is optional and no min_len is given
    max_len: int = 200
    optional: bool = False
    past: bool = False  # dates: not in the future
    future: bool = False  # dates: today or later
    after: str | None = None  # dates: not before the answer to this step
    month_ok: bool = False  # dates: "1998年12月" is enough
    min_yuan: Decimal = Decimal(0)
    max_yuan: Decimal = Decimal(100_000_000)
    # What the link already tells, offered to confirm instead of asked: the person's name or ID
    # number (linked as themselves), the person on the roll as the one who died, or the family
    # relationship (linked as a relative). A typed ID is checked against the linked person.
    known: Literal["name", "id_card", "deceased", "relationship"] | None = None
    # Options from one list shared with the rest of the product (the catalogue's relationships).
    options_from: Literal["relationship"] | None = None
    # Where the sentence that asked for the service already answers this step ("我爸前天住进县医院了"): a
    # pattern over that sentence; what it matches (its group `value`, if it has one) goes through the
    # step's own reading. Only the flow's first steps, in order, are taken from it.
    told: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        if raw.get("optional") and "min_len" not in raw:
            raw = {**raw, "min_len": 0}
        if raw.get("options_from") == "relationship":
            if raw.get("options"):
                raise PydanticCustomError("options_twice", "options: give options or options_from, not both")
            raw = {**raw, "options": relationship_options()}
        return raw

    @model_validator(mode="after")
    def _complete(self) -> Step:
        if not self.label:
            object.__setattr__(self, "label", self.prompt)
        if self.told is not None:
            if self.type not in TOLD_TYPES:
                raise ValueError(f"told: only {', '.join(TOLD_TYPES)} steps can be taken from what was said")
            try:
                re.compile(self.told)
            except re.error as exc:
                raise ValueError(f"told: not a valid pattern: {exc}") from None
        if self.type == "choice":
            if not self.options:
                raise ValueError("options: a choice needs a list of options")
            if len({o.value for o in self.options}) != len(self.options):
                raise ValueError("options: values must be different")
            for option in self.options:
                if option.told is None:
                    continue
                try:
                    re.compile(option.told)
                except re.error as exc:
                    raise ValueError(f"options.{option.value}.told: not a valid pattern: {exc}") from None
                if self.ends_flow(option.value):
                    raise ValueError(f"options.{option.value}.told: an answer that ends the flow is never taken "
                                     "from what was said")
        elif any(option.told for option in self.options):
            raise ValueError("options: told belongs to a choice's options")
        if self.type == "documents" and not self.items:
            raise ValueError("items: a document checklist needs items")
        if self.branch and self.type not in ("yes_no", "choice"):
            raise ValueError("branch: only yes_no and choice steps can branch")
        if self.type == "choice":
            for key in self.branch:
                if key not in {o.value for o in self.options}:
                    raise ValueError(f"branch.{key}: not one of the options")
        if self.type == "yes_no":
            for key in self.branch:
                if key not in ("yes", "no"):
                    raise ValueError(f"branch.{key}: use yes or no")
        return self

    @property
    def min_fen(self) -> int:
        return int(self.min_yuan * 100)

    @property
    def max_fen(self) -> int:
        return int(self.max_yuan * 100)

    def ends_flow(self, value: Any) -> str | None:
        """The ending this answer leads to, if it ends the flow."""
        target = self.branch.get(str(value)) if value is not None else None
        target = target or self.next
        return target[4:] if target and target.startswith("end:") else None


class Ending(_Spec):
    text: Texts
    offer_person: bool = False


class ActionCall(_Spec):
    """`{action: create_application, type: hardship}`: the name and the parameters it is given."""

    action: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "params" not in raw:
            return {"action": raw.get("action"), "params": {k: v for k, v in raw.items() if k != "action"}}
        return raw

    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)


class Flow(_Spec):
    id: Name
    title: Texts
    description: str | None = None  # for flow authors; never shown
    menu: Annotated[int, Field(ge=1, le=9)] | None = None
    requires_link: bool = False
    intro: Texts | None = None
    # A named report said before the first question: what the record already tells ("上次认证是…").
    intro_report: str | None = None
    precheck: tuple[str, ...] = ()  # named checks run before the first question, in order
    steps: tuple[Step, ...] = ()
    endings: dict[str, Ending] = Field(default_factory=dict)
    on_complete: tuple[ActionCall, ...] = ()
    done: Texts = Field(default_factory=lambda: {"zh-Hans": "", "en": ""})
    report: str | None = None  # a read-only flow: one named report, no steps
    # What people write when they want this service, as regular expressions over the text in
    # Simplified Chinese and lower case ("我爸爸昨天晚上走了" -> death_report), and the offer made
    # then ("要报告家人去世吗？"). Services are matched before policy articles.
    recognise: tuple[str, ...] = ()
    recognise_rank: int = 50  # when several services match, the lowest rank is offered
    offer: Texts | None = None
    path: str = ""  # the file it came from (set by the loader)

    @field_validator("recognise")
    @classmethod
    def _patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for i, pattern in enumerate(value):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise PydanticCustomError("pattern", "recognise[{i}]: not a valid pattern: {why}",
                                          {"i": i, "why": str(exc)}) from None
        return value

    @field_validator("precheck", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return () if value is None else (value,) if isinstance(value, str) else value

    @field_validator("menu", mode="before")
    @classmethod
    def _menu_number(cls, value: Any) -> Any:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise PydanticCustomError("menu", "a number from 1 to 9")
        return value

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> Flow:
        registry: Registry = (info.context or {}).get("registry") or builtin()
        if self.report is not None and self.report not in registry.reports:
            raise ValueError(f"report: unknown report {self.report!r} (known: {sorted(registry.reports)})")
        if self.intro_report is not None and self.intro_report not in registry.reports:
            raise ValueError(f"intro_report: unknown report {self.intro_report!r} (known: {sorted(registry.reports)})")
        for name in self.precheck:
            if name not in registry.prechecks:
                raise ValueError(f"precheck: unknown check {name!r} (known: {sorted(registry.prechecks)})")
        if not self.steps and self.report is None:
            raise ValueError("steps: a flow needs a list of steps (or a report)")
        if self.report is None and not self.done.get("zh-Hans"):
            raise ValueError("done: missing text")
        index = self.index
        if len(index) != len(self.steps):
            twice = next(s.id for i, s in enumerate(self.steps) if index[s.id] != i)
            raise ValueError(f"steps: {twice!r} is used twice")
        for s in self.steps:
            for target in [*s.branch.values(), *([s.next] if s.next else [])]:
                if target.startswith("end:"):
                    if target[4:] not in self.endings:
                        raise ValueError(f"steps({s.id}).branch: unknown ending {target[4:]!r}")
                elif target not in index:
                    raise ValueError(f"steps({s.id}).branch: unknown step {target!r}")
            for ref in [*s.when, *([s.after] if s.after else [])]:
                if ref not in index or index[ref] >= index[s.id]:
                    raise ValueError(f"steps({s.id}): refers to {ref!r}, which is not an earlier step")
        for i, call in enumerate(self.on_complete):
            known = registry.actions.get(call.action)
            if known is None:
                raise ValueError(f"on_complete[{i}].action: unknown action {call.action!r} "
                                 f"(known: {sorted(registry.actions)})")
            for req in known.required:
                if req not in call.params:
                    raise ValueError(f"on_complete[{i}].{req}: required by {call.action}")
            for name, value in call.params.items():
                if name not in known.params:
                    raise ValueError(f"on_complete[{i}].{name}: {call.action} takes no such parameter "
                                     f"(it takes: {sorted(known.params)})")
                if name.endswith("_field") and value not in index:
                    raise ValueError(f"on_complete[{i}].{name}: {value!r} is not a step")
        if self.recognise and self.offer is None and self.report is None:
            raise ValueError("offer: a flow that recognises what people write needs the offer to make")
        if self.steps and self.report is None and self.steps[-1].type != "confirm" and self.on_complete:
            raise ValueError("steps: a flow that creates something must end with a confirm step")
        return self

    @cached_property
    def index(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for i, s in enumerate(self.steps):
            found.setdefault(s.id, i)
        return found

    @cached_property
    def patterns(self) -> tuple[re.Pattern[str], ...]:
        return tuple(re.compile(p) for p in self.recognise)

    def step(self, step_id: str) -> Step:
        return self.steps[self.index[step_id]]

    def has_step(self, step_id: str | None) -> bool:
        return step_id is not None and step_id in self.index


# --------------------------------------------------------------------------- loading


def _where(loc: tuple[Any, ...], raw: Any) -> str:
    """A pydantic location as flow authors read it: steps[1](situation).prompt.en."""
    parts: list[str] = []
    node = raw
    for key in loc:
        if isinstance(key, int):
            label = f"[{key}]"
            item = node[key] if isinstance(node, list) and key < len(node) else None
            if isinstance(item, dict) and isinstance(item.get("id"), str) and parts and parts[-1] == "steps":
                label += f"({item['id']})"
            parts[-1:] = [parts[-1] + label] if parts else [label]
            node = item
        else:
            parts.append(str(key))
            node = node.get(key) if isinstance(node, dict) else None
    return ".".join(parts)


def _error_text(exc: ValidationError, raw: Any) -> str:
    err = exc.errors()[0]
    loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x.startswith(("function-", "union["))))
    where = _where(loc, raw)
    ctx = err.get("ctx") or {}
    if err["type"] in ("missing_text", "unknown_lang"):
        where = f"{where}.{ctx['lang']}" if where else str(ctx["lang"])
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown field"
    elif err["type"] == "missing":
        message = "required"
    elif err["type"] == "literal_error":
        message = f"{err.get('input')!r} is not one of {sorted(STEP_TYPES)}"
    return f"{where}: {message}" if where else message


def parse_flow(data: Any, path: str, registry: Registry | None = None) -> Flow:
    if not isinstance(data, dict):
        raise FlowError(f"{path}: the file must be a mapping")
    try:
        return Flow.model_validate({**data, "path": path}, context={"registry": registry or builtin()})
    except ValidationError as exc:
        raise FlowError(f"{path}: {_error_text(exc, data)}") from None


def load_flows(directory: Path | None = None, registry: Registry | None = None) -> dict[str, Flow]:
    """Load and validate every flow file; raise FlowError naming the file and field."""
    directory = directory or FLOW_DIR
    flows: dict[str, Flow] = {}
    menus: dict[int, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        name = path.name
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
        except yaml.YAMLError as exc:
            raise FlowError(f"{name}: not valid YAML: {str(exc).splitlines()[0]}") from None
        flow = parse_flow(data, name, registry)
        if flow.id in flows:
            raise FlowError(f"{name}: id: {flow.id!r} already used by {flows[flow.id].path}")
        if flow.menu is not None:
            if flow.menu in menus:
                raise FlowError(f"{name}: menu: number {flow.menu} already used by {menus[flow.menu]}")
            menus[flow.menu] = name
        flows[flow.id] = flow
    return flows
