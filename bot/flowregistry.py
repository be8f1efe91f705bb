"""The names flow files may use: actions (`on_complete`), checks (`precheck`) and reports.

A developer adds an outcome by decorating a function in `bot/flowactions.py`:

    @REGISTRY.action("create_task", required=("kind",), optional=("priority",))
    def create_task_action(ctx, state, flow, params): ...

Flow files are validated against the registry (an unknown action, or a parameter the action
does not take, stops start-up with the file and field named). The runner calls what is
registered; it never imports the actions module itself, and the actions never import the
runner's loading code, so the two do not depend on each other.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection
from sqlmodel import Session

if TYPE_CHECKING:
    from bot.flowspec import Flow
    from bot.state import ConversationState

@dataclass(frozen=True)
class Refused:
    """A check that stops the flow with its own words (e.g. which application is already open)."""

    text: str


ActionFn = Callable[["FlowCtx", "ConversationState", "Flow", dict[str, Any]], dict[str, Any]]
# A check returns None (go ahead), the id of one of the flow's endings, or a Refused with its words.
PrecheckFn = Callable[["FlowCtx", "ConversationState", "Flow"], "str | Refused | None"]
ReportFn = Callable[["FlowCtx", "ConversationState"], str]

BUILTIN_MODULES = ("bot.flowactions",)


@dataclass
class FlowCtx:
    """What a flow step may see and use; built by the engine per message."""

    session_fn: Callable[[], Session]  # the message's ORM session, opened only when a step needs one
    settings: Any
    now: datetime
    lang: str
    channel: str
    address: str
    beneficiary_id: int | None
    acting_as: str | None
    contact_fn: Callable[[], int | None]  # looked up only when something needs it (keeps the hot path lean)
    accepts_files: bool
    # The message's connection, for plain reads that need no ORM session (None: use the session's).
    conn: Connection | None = None
    _person: list[Any] = field(default_factory=list, repr=False)

    def person(self) -> Any:
        """The linked beneficiary (looked up once per message), or None."""
        if not self._person:
            from models.people import Beneficiary

            self._person.append(self.session.get(Beneficiary, self.beneficiary_id) if self.beneficiary_id else None)
        return self._person[0]

    @property
    def session(self) -> Session:
        return self.session_fn()

    def connection(self) -> Connection:
        return self.conn if self.conn is not None else self.session.connection()

    @property
    def contact_id(self) -> int | None:
        return self.contact_fn()

    @property
    def today(self) -> date:
        return self.now.astimezone(self.settings.tz).date()


@dataclass(frozen=True)
class ActionDef:
    fn: ActionFn
    required: tuple[str, ...]
    optional: tuple[str, ...]

    @property
    def params(self) -> frozenset[str]:
        return frozenset(self.required) | frozenset(self.optional)


@dataclass
class Registry:
    actions: dict[str, ActionDef] = field(default_factory=dict)
    prechecks: dict[str, PrecheckFn] = field(default_factory=dict)
    reports: dict[str, ReportFn] = field(default_factory=dict)

    def action(self, name: str, *, required: tuple[str, ...] = (),
               optional: tuple[str, ...] = ()) -> Callable[[ActionFn], ActionFn]:
        def deco(fn: ActionFn) -> ActionFn:
            self.actions[name] = ActionDef(fn, required, optional)
            return fn
        return deco

    def precheck(self, name: str) -> Callable[[PrecheckFn], PrecheckFn]:
        def deco(fn: PrecheckFn) -> PrecheckFn:
            self.prechecks[name] = fn
            return fn
        return deco

    def report(self, name: str) -> Callable[[ReportFn], ReportFn]:
        def deco(fn: ReportFn) -> ReportFn:
            self.reports[name] = fn
            return fn
        return deco


REGISTRY = Registry()


def builtin() -> Registry:
    """The registry with the product's own actions, checks and reports registered (imported by name,
    once: the modules register themselves on import)."""
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    return REGISTRY
