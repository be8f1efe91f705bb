"""Message templates: one object per (kind, language) renders what is sent and an escaped
preview for staff, from the same compiled template.

Layout and rules are in `templates/messages/README.md`. In short:
- `templates/messages/kinds.yaml` declares every kind and its variables; each
  `templates/messages/<kind>/<lang>.j2` has two blocks, `body` (Telegram, console) and `sms`.
- Everything is loaded, checked and compiled once when a `TemplateSet` is made: a template
  that uses a variable its kind does not declare stops start-up with the file and the name.
- Rendering without a declared variable is an error naming it (`MissingVariables`).
- zh-Hant is generated from the zh-Hans source by bot/language.py (the configured regional
  variant, s2hk or s2twp) when no zh-Hant file exists.
- Staff-written text (broadcasts) runs in Jinja2's sandbox with only `STAFF_VARIABLES`, under
  the bounds of `outreach/sandbox.py` (time, size, loops, arithmetic); `validate_staff_text` says
  what is wrong (which variable, which line, what was refused) before anything is queued, after a
  sample render in a worker process with a deadline.
- SMS broadcasts end with the opt-out footer (回复TD退订 / Reply STOP to opt out), counted in
  the segments; one-time codes never carry it.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from jinja2 import Environment, StrictUndefined, Template, TemplateSyntaxError, meta, nodes, pass_context
from jinja2.runtime import Context

from bot.language import kept_conversions, to_traditional
from bot.words import Catalogue, catalogue
from outreach.sandbox import LIMITS, BoundedSandbox, Refused, bounded, check_in_worker, render_bounded
from outreach.sms_text import MessageTooLong, SmsLength, sms_length

# libyaml's parser, several times faster than the pure-Python one (same results); the pure one
# where libyaml is absent.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MESSAGES_DIR = Path(__file__).resolve().parent.parent / "templates" / "messages"
LANGUAGES: tuple[str, ...] = ("zh-Hans", "zh-Hant", "en")
DEFAULT_LANGUAGE = "zh-Hans"
# Filled in by the renderer for every kind (callers may override office_* and today).
# `audience` (beneficiary or staff, from kinds.yaml) picks the words `label()` looks up.
AUTOMATIC_VARIABLES = frozenset({"lang", "channel", "audience", "office_name", "office_phone", "today"})
# The classes of outreach/reach.py (kept as plain names here: templates do not depend on outreach's rule).
MESSAGE_CLASSES = ("requested", "own_case", "proactive", "bulk", "staff")

# What staff may write in a broadcast, with what each one means (shown in the console).
STAFF_VARIABLES: dict[str, str] = {
    "name": "姓名 full name, e.g. 张建国",
    "salutation": "称呼 how we address them, e.g. 张伯 / 王阿姨 / 张先生",
    "district": "区 district",
    "street": "街道 street (sub-district)",
    "community": "社区 community",
    "office_name": "本单位名称 our office's name",
    "office_phone": "联系电话 our phone number",
    "today": "今天的日期 today's date, written out (2026年3月2日 / 2 March 2026)",
}
_STAFF_SAMPLE = {"name": "张建国", "salutation": "张伯", "district": "蓬江区", "street": "白沙街道",
                 "community": "白沙社区", "office_name": "退役军人服务站", "office_phone": "12345",
                 "today": "2026年3月2日"}

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")


class TemplateProblem(ValueError):
    """A template file or kind declaration is wrong; found when loading, before any sending."""


class UnknownKind(TemplateProblem):
    pass


class MissingVariables(ValueError):
    """Rendering was asked without a variable the kind declares; `names` lists them."""

    def __init__(self, kind: str, names: list[str]) -> None:
        self.kind = kind
        self.names = names
        super().__init__(f"{kind}: missing variable(s) {', '.join(names)}")


class BadValue(ValueError):
    """A variable has a value outside its declared choices."""


class StaffTextError(ValueError):
    """Staff-written text cannot be used; `problems` says what is wrong, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Rendered:
    text: str
    sms: SmsLength | None  # set when rendered for the SMS channel
    kind: str
    lang: str


@dataclass(frozen=True)
class Preview:
    """What staff see before sending: the text HTML-escaped, with the SMS length under it."""

    html: str
    text: str
    sms: SmsLength | None
    kind: str
    lang: str


@dataclass(frozen=True)
class KindSpec:
    name: str
    description: str = ""
    variables: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    footer: bool = False
    audience: str = "beneficiary"
    # How the contact rule treats it (outreach/reach.py): requested, own_case, proactive, bulk, staff.
    message_class: str = "proactive"
    unreachable: str = "drop"  # "task": when it cannot reach the person, staff are asked to phone

    @property
    def allowed(self) -> frozenset[str]:
        return frozenset(self.variables) | frozenset(self.optional) | AUTOMATIC_VARIABLES


# --- formatting shared by every template ---------------------------------------------------
def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def date_zh(value: Any) -> str:
    d = _as_date(value)
    return f"{d.year}年{d.month}月{d.day}日"


def date_en(value: Any) -> str:
    d = _as_date(value)
    return f"{d.day} {_MONTHS[d.month - 1]} {d.year}"


def yuan(fen: Any) -> str:
    """Money is kept in fen; people read yuan: 10000 → 100, 12345 → 123.45, 1234500 → 12,345."""
    fen = int(fen)
    return f"{fen // 100:,}" if fen % 100 == 0 else f"{fen / 100:,.2f}"


def format_day(value: Any, lang: str) -> str:
    return date_en(value) if lang == "en" else date_zh(value)


def _load_kinds(root: Path) -> dict[str, KindSpec]:
    raw = yaml.load((root / "kinds.yaml").read_text(encoding="utf-8"), Loader=_YAML_LOADER) or {}
    kinds = {}
    for name, spec in raw.items():
        spec = spec or {}
        unknown = set(spec) - {"description", "variables", "optional", "choices", "footer", "audience", "class",
                               "unreachable"}
        if unknown:
            raise TemplateProblem(f"kinds.yaml: {name}: unknown field(s) {', '.join(sorted(unknown))}")
        audience = str(spec.get("audience", "beneficiary"))
        message_class = str(spec.get("class", "staff" if audience == "staff" else "proactive"))
        if message_class not in MESSAGE_CLASSES:
            raise TemplateProblem(f"kinds.yaml: {name}: class {message_class!r} is not one of {', '.join(MESSAGE_CLASSES)}")
        unreachable = str(spec.get("unreachable", "drop"))
        if unreachable not in ("drop", "task"):
            raise TemplateProblem(f"kinds.yaml: {name}: unreachable is 'drop' or 'task', not {unreachable!r}")
        kinds[name] = KindSpec(
            name=name, description=str(spec.get("description", "")),
            variables=tuple(spec.get("variables") or ()), optional=tuple(spec.get("optional") or ()),
            choices={k: tuple(v) for k, v in (spec.get("choices") or {}).items()},
            footer=bool(spec.get("footer", False)), audience=audience, message_class=message_class,
            unreachable=unreachable,
        )
    for spec in kinds.values():
        if spec.audience not in ("beneficiary", "staff"):
            raise TemplateProblem(f"kinds.yaml: {spec.name}: audience must be beneficiary or staff")
    if "otp" in kinds and kinds["otp"].footer:
        raise TemplateProblem("kinds.yaml: otp: one-time codes never carry an opt-out footer")
    return kinds


@lru_cache(maxsize=4)
def load_kinds(root: str = str(MESSAGES_DIR)) -> dict[str, KindSpec]:
    """kinds.yaml alone, read once (what the outbox and the contact rule need of a kind)."""
    return _load_kinds(Path(root))


def template_kind(kinds: Mapping[str, KindSpec], kind: str) -> str | None:
    """The template kind for an outbox kind (`cert_reminder_30` uses `cert_reminder`), or None."""
    if kind in kinds:
        return kind
    base, _, suffix = kind.rpartition("_")
    return base if suffix.isdigit() and base in kinds else None


def kind_spec(kind: str) -> KindSpec | None:
    """The declared spec of an outbox kind, from templates/messages/kinds.yaml (None: undeclared)."""
    kinds = load_kinds()
    name = template_kind(kinds, kind)
    return kinds[name] if name is not None else None


def _names_with_lines(ast: nodes.Template, names: set[str]) -> list[tuple[str, int]]:
    """(name, first line where it is read) for each of `names`, in order of appearance."""
    seen: dict[str, int] = {}
    for node in ast.find_all(nodes.Name):
        if node.ctx == "load" and node.name in names and node.name not in seen:
            seen[node.name] = node.lineno
    return sorted(seen.items(), key=lambda item: (item[1], item[0]))


class MessageTemplate:
    """One kind in one language: knows its placeholders, renders for sending and for preview."""

    def __init__(self, owner: TemplateSet, spec: KindSpec, lang: str, template: Template, source_name: str,
                 placeholders: frozenset[str], generated: bool) -> None:
        self.owner = owner
        self.spec = spec
        self.lang = lang
        self.template = template
        self.source_name = source_name
        self.placeholders = placeholders  # every variable the file reads
        self.generated = generated  # zh-Hant converted from zh-Hans (bot/language.py)
        self._body = template.blocks["body"]
        self._sms = template.blocks["sms"]

    def missing(self, context: Mapping[str, Any]) -> list[str]:
        return [v for v in self.spec.variables if v not in context]

    def _context(self, context: Mapping[str, Any], channel: str | None) -> dict[str, Any]:
        missing = self.missing(context)
        if missing:
            raise MissingVariables(self.spec.name, missing)
        for var, allowed in self.spec.choices.items():
            if var in context and context[var] not in allowed:
                raise BadValue(f"{self.spec.name}: {var}={context[var]!r} is not one of {', '.join(allowed)}")
        values = self.owner.automatic(self.lang, channel)
        values.update(context)
        values["lang"] = self.lang
        values["channel"] = channel or ""
        values["audience"] = self.spec.audience
        return values

    def text(self, context: Mapping[str, Any], channel: str | None = None, *, relay_to: str | None = None) -> str:
        values = self._context(context, channel)
        block = self._sms if channel == "sms" else self._body
        text = "".join(block(self.template.new_context(values))).strip()
        if relay_to:
            text = self.owner.relay_prefix(text, self.lang, relay_to)
        if channel == "sms" and self.spec.footer:
            text = self.owner.with_footer(text, self.lang)
        return text

    def render(self, context: Mapping[str, Any], channel: str | None = None, *,
               relay_to: str | None = None) -> Rendered:
        """What is sent. On SMS, refuses (MessageTooLong) a text over 10 segments."""
        text = self.text(context, channel, relay_to=relay_to)
        length = sms_length(text) if channel == "sms" else None
        if length is not None and length.too_long:
            raise MessageTooLong(length)
        return Rendered(text, length, self.spec.name, self.lang)

    def preview(self, context: Mapping[str, Any], channel: str | None = None, *,
                relay_to: str | None = None) -> Preview:
        """What staff see: the same text, HTML-escaped, with its SMS length (never refused)."""
        text = self.text(context, channel, relay_to=relay_to)
        return _preview(text, self.spec.name, self.lang, channel)


def _preview(text: str, kind: str, lang: str, channel: str | None) -> Preview:
    length = sms_length(text) if channel == "sms" else None
    parts = [f'<div class="message-preview" lang="{html.escape(lang)}">',
             f'<pre class="message-text">{html.escape(text)}</pre>']
    if length is not None:
        css = "sms-length too-long" if length.too_long else "sms-length"
        parts.append(f'<p class="{css}">{html.escape(length.describe("en" if lang == "en" else "zh-Hans"))}</p>')
    parts.append("</div>")
    return Preview("".join(parts), text, length, kind, lang)


class StaffText:
    """Staff-written text, checked and compiled once per language; rendered per recipient."""

    def __init__(self, templates: dict[str, Template], placeholders: dict[str, frozenset[str]],
                 pieces: dict[str, tuple[tuple[bool, str], ...] | None] | None = None) -> None:
        self._templates = templates
        self._placeholders = placeholders
        # For text that is only words and {{ variable }}: (is_variable, literal-or-name) pieces.
        self._pieces = pieces or {}

    def fast_renderer(self, lang: str) -> Callable[[Mapping[str, Any]], str] | None:
        """A plain join for text made only of words and `{{ variable }}` (most broadcasts):
        the same output as the sandboxed template (str() of each value), without building a
        Jinja context per recipient. None when the text uses anything else (if, for, filters)."""
        pieces = self._pieces.get(self.language_for(lang))
        if pieces is None:
            return None

        def render(values: Mapping[str, Any]) -> str:
            return "".join(str(values[p]) if is_var else p for is_var, p in pieces).strip()

        return render

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self._templates)

    def language_for(self, lang: str) -> str:
        if lang in self._templates:
            return lang
        return DEFAULT_LANGUAGE if DEFAULT_LANGUAGE in self._templates else next(iter(self._templates))

    def placeholders(self, lang: str) -> frozenset[str]:
        return self._placeholders[self.language_for(lang)]

    def render(self, lang: str, context: Mapping[str, Any]) -> str:
        lang = self.language_for(lang)
        used = self._placeholders[lang]
        missing = sorted(v for v in used if v not in context)
        if missing:
            raise MissingVariables("staff_broadcast", missing)
        # Only the documented variables reach staff text, whatever else the caller holds.
        return render_bounded(self._templates[lang], {k: context[k] for k in used}).strip()


def _staff_env() -> BoundedSandbox:
    return BoundedSandbox(undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True)


_STAFF_ENV = _staff_env()


def validate_staff_text(source: str) -> list[str]:
    """What is wrong with staff-written text, one plain sentence each (Chinese / English);
    an empty list means it may be used. Checks syntax, unknown variables and filters (with
    their line), and renders it once with sample values to catch anything the sandbox refuses."""
    env = _STAFF_ENV
    allowed = ", ".join(STAFF_VARIABLES)
    try:
        ast = env.parse_bounded(source)
    except Refused as exc:
        return [f"{exc} / 内容太长，最多{LIMITS.source_chars}个字符"]
    except TemplateSyntaxError as exc:
        return [f"第{exc.lineno}行：格式错误（{exc.message}）。变量要写成 {{{{ name }}}} 这样。"
                f" / line {exc.lineno}: syntax error: {exc.message}"]
    try:
        undeclared = meta.find_undeclared_variables(ast)  # compiles: finds unknown filters and tests
    except TemplateSyntaxError as exc:
        return [f"第{exc.lineno}行：{exc.message} / line {exc.lineno}: {exc.message}"]
    unknown = undeclared - set(STAFF_VARIABLES) - set(env.globals)
    problems = [f"第{line}行：不认识的变量 {{{{ {name} }}}}，可用的有：{allowed}。"
                f" / line {line}: unknown variable '{name}' (allowed: {allowed})"
                for name, line in _names_with_lines(ast, unknown)]
    if problems:
        return problems
    try:
        env.from_string(ast)
    except TemplateSyntaxError as exc:  # unknown filter or test
        return [f"第{exc.lineno}行：{exc.message} / line {exc.lineno}: {exc.message}"]
    try:  # once with sample values, in a worker that is stopped at its deadline
        check_in_worker(source, _STAFF_SAMPLE)
    except Refused as exc:  # too slow, too long, too large, or something the sandbox does not allow
        return [f"无法生成消息：{exc.reason} / cannot render: {exc}"]
    return []


def compile_staff_text(body: str | Mapping[str, str]) -> StaffText:
    """Check and compile staff text: one string, or {lang: text}. zh-Hant, when not written,
    is converted from zh-Hans; a language with no text falls back to zh-Hans at render time.
    Raises StaffTextError listing every problem (prefixed with the language when several).
    The same text is checked once: a repeat (inside a transaction, per batch) is served from memory."""
    items = (((DEFAULT_LANGUAGE, body),) if isinstance(body, str)
             else tuple(sorted((k, v) for k, v in body.items() if v and v.strip())))
    return _compile_staff_text(items)


@lru_cache(maxsize=64)
def _compile_staff_text(items: tuple[tuple[str, str], ...]) -> StaffText:
    sources = dict(items)
    if not sources:
        raise StaffTextError(["消息内容是空的 / the message is empty"])
    unknown_langs = set(sources) - set(LANGUAGES)
    if unknown_langs:
        raise StaffTextError([f"unknown language(s): {', '.join(sorted(unknown_langs))}"])
    if DEFAULT_LANGUAGE in sources and "zh-Hant" not in sources:
        sources["zh-Hant"] = to_traditional(sources[DEFAULT_LANGUAGE])
    problems: list[str] = []
    for lang, source in sources.items():
        problems += [f"[{lang}] {p}" if len(sources) > 1 else p for p in validate_staff_text(source)]
    if problems:
        raise StaffTextError(problems)
    templates = {lang: _STAFF_ENV.from_string(_STAFF_ENV.parse_bounded(src)) for lang, src in sources.items()}
    placeholders = {lang: frozenset(meta.find_undeclared_variables(_STAFF_ENV.parse(src)) & set(STAFF_VARIABLES))
                    for lang, src in sources.items()}
    pieces = {lang: _plain_pieces(_STAFF_ENV.parse(src)) for lang, src in sources.items()}
    return StaffText(templates, placeholders, pieces)


def _plain_pieces(ast: nodes.Template) -> tuple[tuple[bool, str], ...] | None:
    """The text as (is_variable, value) pieces when it holds only words and `{{ name }}`
    of STAFF_VARIABLES; None otherwise (then the sandboxed template renders it)."""
    pieces: list[tuple[bool, str]] = []
    for node in ast.body:
        if not isinstance(node, nodes.Output):
            return None
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                pieces.append((False, child.data))
            elif isinstance(child, nodes.Name) and child.ctx == "load" and child.name in STAFF_VARIABLES:
                pieces.append((True, child.name))
            else:
                return None
    return tuple(pieces)


class TemplateSet:
    """Every message kind in every language, loaded, checked and compiled once."""

    def __init__(self, root: Path | str = MESSAGES_DIR, *, office_name: str | Mapping[str, str] = "暖心服务中心",
                 office_phone: str = "12345", tz: ZoneInfo | None = None, variant: str | None = None) -> None:
        self.root = Path(root)
        self.variant = variant  # how zh-Hant is written (bot/language.py); None: the setting
        self.tz = tz or ZoneInfo("Asia/Shanghai")
        names = {"zh-Hans": office_name} if isinstance(office_name, str) else dict(office_name)
        base = names.get("zh-Hans") or next(iter(names.values()))
        names.setdefault("zh-Hans", base)
        names.setdefault("zh-Hant", to_traditional(names["zh-Hans"], variant))
        names.setdefault("en", "Nuanxin Service Centre" if base == "暖心服务中心" else base)
        self.office_name = names
        self.office_phone = office_phone
        self.words: Catalogue = catalogue(variant)
        self.kinds = _load_kinds(self.root)
        self.env = Environment(undefined=StrictUndefined, autoescape=False, trim_blocks=True,
                               lstrip_blocks=True, keep_trailing_newline=False)
        self.env.filters.update(date_zh=date_zh, date_en=date_en, yuan=yuan)
        self.env.globals["label"] = self._label_global()
        self._templates: dict[tuple[str, str], MessageTemplate] = {}
        for kind in self.kinds:
            for lang in LANGUAGES:
                self._templates[(kind, lang)] = self._load(kind, lang)

    # --- loading -------------------------------------------------------------------------
    def _label_global(self) -> Callable[..., str]:
        words = self.words

        @pass_context
        def label(context: Context, group: str, code: str) -> str:
            """label(group, code): the catalogue's words in the message's language, for its audience."""
            lang = context.get("lang") or DEFAULT_LANGUAGE
            return words.label(group, str(code), lang, context.get("audience") or "beneficiary")

        return label

    def _load(self, kind: str, lang: str) -> MessageTemplate:
        spec = self.kinds[kind]
        path = self.root / kind / f"{lang}.j2"
        generated = False
        if path.exists():
            source = path.read_text(encoding="utf-8")
        elif lang == "zh-Hant" and (self.root / kind / "zh-Hans.j2").exists():
            # Decided: convert the zh-Hans *source* (wording), never the rendered text, so
            # names, reasons and accounts that staff typed are sent exactly as typed.
            source = to_traditional((self.root / kind / "zh-Hans.j2").read_text(encoding="utf-8"), self.variant)
            generated = True
        else:
            raise TemplateProblem(f"{kind}: no template {path.relative_to(self.root)}")
        name = f"{kind}/{lang}.j2" + (" (from zh-Hans)" if generated else "")
        try:
            ast = self.env.parse(source, name=name)
            # The names are read before compiling, which folds constants in the tree it is given.
            used = frozenset(meta.find_undeclared_variables(ast)) - set(self.env.globals)
            template = self.env.from_string(ast)  # compiled from the tree: the source is parsed once
        except TemplateSyntaxError as exc:
            raise TemplateProblem(f"{name}: line {exc.lineno}: {exc.message}") from None
        if "body" not in template.blocks or "sms" not in template.blocks:
            raise TemplateProblem(f"{name}: needs both {{% block body %}} and {{% block sms %}}")
        undeclared = used - spec.allowed
        if undeclared:
            where = ", ".join(f"{v} (line {line})" for v, line in _names_with_lines(ast, set(undeclared)))
            raise TemplateProblem(f"{name}: uses variable(s) not declared for {kind} in kinds.yaml: {where}")
        return MessageTemplate(self, spec, lang, template, name, used, generated)

    # --- lookup and helpers --------------------------------------------------------------
    @staticmethod
    def language(lang: str | None) -> str:
        return lang if lang in LANGUAGES else DEFAULT_LANGUAGE

    def kind_for(self, kind: str) -> str:
        """The template kind for an outbox kind: `cert_reminder_30` uses `cert_reminder`."""
        name = template_kind(self.kinds, kind)
        if name is not None:
            return name
        raise UnknownKind(f"unknown message kind {kind!r} (known: {', '.join(sorted(self.kinds))})")

    def get(self, kind: str, lang: str | None) -> MessageTemplate:
        return self._templates[(self.kind_for(kind), self.language(lang))]

    def label(self, lang: str, group: str, code: str, audience: str = "beneficiary") -> str:
        return self.words.label(group, code, self.language(lang), audience)

    def automatic(self, lang: str, channel: str | None) -> dict[str, Any]:
        return {"office_name": self.office_name.get(lang, self.office_name["zh-Hans"]),
                "office_phone": self.office_phone, "today": datetime.now(self.tz).date(),
                "lang": lang, "channel": channel or "", "audience": "beneficiary"}

    def footer(self, lang: str) -> str:
        return self.label(lang, "message_part", "sms_footer")

    def with_footer(self, text: str, lang: str) -> str:
        return f"{text} {self.footer(lang)}" if lang == "en" else f"{text}{self.footer(lang)}"

    def relay_prefix(self, text: str, lang: str, name: str) -> str:
        """A message for the beneficiary that reaches a family member's phone says so first
        (after the 【signature】, which Chinese SMS keep at the very start)."""
        prefix = self.label(lang, "message_part", "for_family").format(name=name)
        if text.startswith("【") and "】" in text:
            cut = text.index("】") + 1
            return text[:cut] + prefix + text[cut:]
        return prefix + text

    # --- rendering -----------------------------------------------------------------------
    def render(self, kind: str, lang: str | None, context: Mapping[str, Any], channel: str | None = None, *,
               relay_to: str | None = None) -> Rendered:
        """Render `kind` for sending on `channel` ("sms" picks the short variant)."""
        rendered = self.get(kind, lang).render(context, channel, relay_to=relay_to)
        return Rendered(rendered.text, rendered.sms, kind, rendered.lang)

    def preview(self, kind: str, lang: str | None, context: Mapping[str, Any], channel: str | None = None) -> Preview:
        return self.get(kind, lang).preview(context, channel)

    def sample_context(self, kind: str) -> dict[str, Any]:
        """Example values for every variable of a kind, for the console's template gallery."""
        spec = self.kinds[self.kind_for(kind)]
        sample: dict[str, Any] = {
            "salutation": "张伯", "name": "张建国", "days_left": 7, "deadline": date(2026, 3, 31),
            "scheme": "pension", "amount_fen": 1234500, "pay_date": date(2026, 3, 15), "account": "6222 0000 1234 5678",
            "occasion": "double_ninth", "reference": "NX-2026-000123", "application_type": "veteran_insurance",
            "reason": "缺少退出现役登记表", "code": "482913", "minutes": 10, "visit_date": date(2026, 3, 10),
            "purpose": "certification", "start_date": date(2026, 3, 1), "text": "社区将于本周六上午举办健康讲座，欢迎参加。",
            "answer": "可以的，带上身份证到社区服务站办理即可。", "day": date(2026, 3, 2), "new_tickets": 3,
            "open_tickets": 5, "overdue_tickets": 1, "applications_waiting": 12, "open_tasks": 4, "sent": 230,
            "failed": 2,
        }
        return {k: sample[k] for k in spec.variables if k in sample}

    def staff_context(self, lang: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """The STAFF_VARIABLES for one recipient: office fields and today filled in, today written out."""
        lang = self.language(lang)
        ctx = {"office_name": self.office_name.get(lang, self.office_name["zh-Hans"]),
               "office_phone": self.office_phone, "today": datetime.now(self.tz).date(),
               "district": "", "street": "", "community": ""}
        ctx.update({k: v for k, v in values.items() if k in STAFF_VARIABLES})
        if not isinstance(ctx["today"], str):  # already written out: leave it
            ctx["today"] = format_day(ctx["today"], lang)
        return ctx

    def render_staff(self, staff_text: StaffText, lang: str | None, context: Mapping[str, Any],
                     channel: str | None = None, *, relay_to: str | None = None) -> Rendered:
        """A broadcast: the staff text for this recipient inside the `staff_broadcast` frame."""
        lang = self.language(lang)
        text = staff_text.render(lang, self.staff_context(lang, context))
        return self.render("staff_broadcast", lang, {**context, "text": text}, channel, relay_to=relay_to)

    def preview_staff(self, staff_text: StaffText, lang: str | None, context: Mapping[str, Any],
                      channel: str | None = None) -> Preview:
        lang = self.language(lang)
        text = staff_text.render(lang, self.staff_context(lang, context))
        return self.get("staff_broadcast", lang).preview({**context, "text": text}, channel)

    def broadcast_renderer(self, staff_text: StaffText, lang: str | None,
                           channel: str | None) -> Callable[[Mapping[str, Any]], Rendered]:
        """A function rendering one recipient of a broadcast: everything that does not depend
        on the recipient is looked up once (100,000 recipients: compile once, render each)."""
        lang = self.language(lang)
        frame = self.get("staff_broadcast", lang)
        inner_lang = staff_text.language_for(lang)
        inner = staff_text._templates[inner_lang]
        used = staff_text.placeholders(lang)
        base = self.staff_context(lang, {})
        frame_base = self.automatic(lang, channel)
        body = frame._sms if channel == "sms" else frame._body
        footer = self.spec_footer(lang) if channel == "sms" else ""
        new_context = frame.template.new_context
        # The frame depends only on the office and the channel: render it once around a marker
        # and keep what comes before and after the staff text (unless the frame transforms it).
        marker = "\x00staff-text\x00"
        framed = "".join(body(new_context({**frame_base, "text": marker}))).strip()
        split = framed.split(marker) if framed.count(marker) == 1 else None

        inner_render, inner_context = inner.root_render_func, inner.new_context
        fast = staff_text.fast_renderer(lang)

        def render_one(context: Mapping[str, Any]) -> Rendered:
            values = {**base, **{k: v for k, v in context.items() if k in STAFF_VARIABLES}}
            missing = [v for v in used if v not in values]
            if missing:
                raise MissingVariables("staff_broadcast", missing)
            if fast is not None:
                text = fast(values)
            else:  # root_render_func directly: Template.render only wraps the same call
                with bounded():
                    text = "".join(inner_render(inner_context({k: values[k] for k in used}))).strip()
                if len(text) > LIMITS.output_chars:
                    raise Refused(f"the message would be longer than {LIMITS.output_chars:,} characters")
            if split is not None:
                out = (split[0] + text + split[1]).strip() + footer
            else:
                out = "".join(body(new_context({**frame_base, "text": text}))).strip() + footer
            length = sms_length(out) if channel == "sms" else None
            if length is not None and length.too_long:
                raise MessageTooLong(length)
            return Rendered(out, length, "staff_broadcast", lang)

        return render_one

    def spec_footer(self, lang: str) -> str:
        """The footer as appended to a staff_broadcast SMS ('' when that kind has none)."""
        if not self.kinds["staff_broadcast"].footer:
            return ""
        return self.with_footer("", lang)


@lru_cache(maxsize=8)
def load_templates(root: str = str(MESSAGES_DIR), office_name: tuple[tuple[str, str], ...] = (),
                   office_phone: str = "12345", tz_name: str = "Asia/Shanghai",
                   variant: str | None = None) -> TemplateSet:
    """A TemplateSet, loaded once per configuration and then shared."""
    names: str | dict[str, str] = dict(office_name) if office_name else "暖心服务中心"
    with kept_conversions():  # fixed texts: their zh-Hant is read back on the next start (bot/language.py)
        return TemplateSet(root, office_name=names, office_phone=office_phone, tz=ZoneInfo(tz_name), variant=variant)


def templates_for(settings: Any) -> TemplateSet:
    """The TemplateSet for these settings (office name and phone, time zone), cached."""
    names = {"zh-Hans": getattr(settings, "office_name", "") or "暖心服务中心"}
    if getattr(settings, "office_name_en", ""):
        names["en"] = settings.office_name_en
    return load_templates(str(MESSAGES_DIR), tuple(sorted(names.items())),
                          getattr(settings, "office_phone", "") or "12345",
                          getattr(settings, "office_timezone", "Asia/Shanghai"),
                          getattr(settings, "traditional_variant", None))


def default_templates() -> TemplateSet:
    from settings import get_settings

    return templates_for(get_settings())


def render(kind: str, lang: str | None, context: Mapping[str, Any], channel: str | None = None) -> Rendered:
    """Render with the process's default TemplateSet (built from settings once)."""
    return default_templates().render(kind, lang, context, channel)


def preview(kind: str, lang: str | None, context: Mapping[str, Any], channel: str | None = None) -> Preview:
    return default_templates().preview(kind, lang, context, channel)
