"""The state of one conversation, typed: where the person is, what they answered, what is pending.

`ConversationState` is what the engine loads, changes and saves for each message (the
`conversation` row's `flow`, `step`, `history` columns and its `data` JSON). Every part has a
name and a type; nothing else in the product reads or writes a conversation row (outside
callers go through `bot.conversations`).

A state saved by an older version that no longer validates is not an error the person sees:
`ConversationState.from_row` starts them afresh at the menu (and says why in the log).
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger("nuanxin.bot.state")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


class LinkProgress(_Model):
    """The linking dialogue so far: who the person says they are and where the code went."""

    relationship: str | None = None  # set when a family member links for the person
    phone: str | None = None  # the full number typed, in E.164
    last6_hash: str | None = None  # keyed hash of the ID ending typed
    beneficiary_id: int | None = None  # the one person on the roll that number (and ID ending) found
    masked_phone: str = ""


class SavedFlow(_Model):
    """A flow left for the menu, kept so that picking it again resumes it."""

    step: str | None
    history: list[str] = Field(default_factory=list)
    values: dict[str, Any] = Field(default_factory=dict)
    doc_index: int = 0
    subject_application_id: int | None = None


class PendingAnswer(_Model):
    """An answer waiting for the person to confirm it: one that would end the flow, or (`known`)
    what the record already says, offered for the steps from `step` on (`value`: step id -> answer)."""

    step: str
    value: Any
    typed: str = ""
    known: bool = False
    also: str = ""  # a further fact the confirmation covers (the reporter's relationship)


class ServiceOffer(_Model):
    """A service the bot recognised in free text and offered ("要报告住院吗？回复1")."""

    flow: str
    question: str = ""  # what they wrote, for the ticket or article if they say no


class AskedBefore(_Model):
    """The last question at the menu that an article answered or a service was offered for, kept
    for a follow-up that leans on it ("那要带什么材料"): masked, with when it was asked."""

    text: str
    at: datetime


class HeldText(_Model):
    """A sentence typed at a free-text step that asks something (我个仔可不可以帮我办): held until the
    person says whether it is what the step asks for, or a question for us."""

    step: str
    text: str


class LookupWindow(_Model):
    """Failed roll lookups from this sender on one office day (limits guessing across attempts)."""

    day: str = ""
    failures: int = 0


class ConversationState(_Model):
    flow: str | None = None
    step: str | None = None
    history: list[str] = Field(default_factory=list)  # earlier steps of this flow, for "back"
    values: dict[str, Any] = Field(default_factory=dict)  # answers by step id
    doc_index: int = 0  # the checklist item asked for next
    misses: int = 0  # answers the current step did not understand, in a row
    last_answer: str = ""  # the previous answer as typed, to notice a repeated one
    flow_args: dict[str, Any] = Field(default_factory=dict)  # given by whoever started the flow
    subject_application_id: int | None = None  # the application a survey is about
    pending: PendingAnswer | None = None
    known_confirmed: bool = False  # the person said the record is right: later known steps are filled
    known_declined: bool = False  # the person said it is not: ask each step
    offer: ServiceOffer | None = None
    asked_before: AskedBefore | None = None
    held: HeldText | None = None
    after_link: str | None = None  # the flow to start once linking succeeds
    link: LinkProgress = Field(default_factory=LinkProgress)
    lookups: LookupWindow = Field(default_factory=LookupWindow)
    saved: dict[str, SavedFlow] = Field(default_factory=dict)
    language_chosen: bool = False  # the person picked a language: linking does not override it
    # The prompt last shown: its key names the question, its token goes into that keyboard's buttons.
    prompt_key: str = ""
    prompt_token: str = ""

    # -- moving between flows --------------------------------------------------------
    def clear_flow(self) -> None:
        """Leave the current flow: nothing of it stays but what `saved` keeps."""
        self.flow = None
        self.step = None
        self.history = []
        self.values = {}
        self.doc_index = 0
        self.misses = 0
        self.last_answer = ""
        self.flow_args = {}
        self.subject_application_id = None
        self.pending = None
        self.held = None
        self.known_confirmed = False
        self.known_declined = False
        self.link = LinkProgress()

    def park(self) -> None:
        """Keep the current flow's answers under `saved` and leave it (the menu word)."""
        if self.flow and self.flow != "link" and self.history:
            self.saved.pop(self.flow, None)
            self.saved[self.flow] = SavedFlow(step=self.step, history=list(self.history), values=dict(self.values),
                                              doc_index=self.doc_index,
                                              subject_application_id=self.subject_application_id)
        self.clear_flow()
        self.after_link = None
        self.offer = None

    def resume(self, flow: str) -> bool:
        """Enter a saved flow where it was left; False when nothing was saved for it."""
        saved = self.saved.pop(flow, None)
        if saved is None:
            return False
        self.clear_flow()
        self.flow, self.step, self.history = flow, saved.step, list(saved.history)
        self.values = dict(saved.values)
        self.doc_index = saved.doc_index
        self.subject_application_id = saved.subject_application_id
        return True

    def take_over(self, other: ConversationState) -> None:
        """Adopt another channel's unfinished flow (the same person wrote there last)."""
        self.flow, self.step, self.history = other.flow, other.step, list(other.history)
        self.values = dict(other.values)
        self.doc_index = other.doc_index
        self.subject_application_id = other.subject_application_id
        self.flow_args = dict(other.flow_args)
        self.pending = other.pending

    # -- the prompt token ----------------------------------------------------------------
    def mark_prompt(self, key: str) -> str:
        """Record that the prompt `key` is on screen; a new prompt gets a new token, the same one keeps it."""
        if key != self.prompt_key or not self.prompt_token:
            self.prompt_key = key
            self.prompt_token = secrets.token_urlsafe(6)[:8]
        return self.prompt_token

    # -- storage ---------------------------------------------------------------------------
    @classmethod
    def from_row(cls, flow: str | None, step: str | None, data: Any, history: Any) -> ConversationState:
        try:
            state = cls.model_validate({**(data or {}), "flow": flow, "step": step,
                                        "history": [str(h) for h in (history or [])]})
        except (ValidationError, TypeError):
            log.warning("conversation state from an older version could not be read; starting at the menu")
            return cls()
        return state

    def to_data(self) -> dict[str, Any]:
        """The `data` JSON column: everything but the columns of their own, defaults left out."""
        return self.model_dump(mode="json", exclude_defaults=True, exclude={"flow", "step", "history"})
