"""The console's simulator: staff talk to the real conversation engine as a beneficiary would,
to try a flow or an article before announcing it.

It runs the production engine, flows and policy answers (the Q&A follows the office's
reviewed knowledge, as the bot does) against a sandbox database of its own
(`<data_dir>/simulator.db`) holding a few demo people. Whatever a simulated conversation does
(a one-time code, an application, a handed-off question, an opt-out) lands in the sandbox:
nothing reaches the office's records, its figures or a provider, because no dispatcher ever
reads the sandbox's outbox. The page shows what would have been sent, marked as a test.

Each staff member has their own conversations: (persona, channel look) maps to one sandbox
address; "start again" gives a new address.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import Session, SQLModel, col

from bot.channels.base import Inbound, Reply
from models.db import make_engine, write_scope

CHANNELS = ("telegram", "sms")


@dataclass(frozen=True)
class Persona:
    code: str
    name: str
    sex: str
    born: date
    kinds: tuple[str, ...]
    district: str
    street: str
    community: str
    living_alone: bool = False
    disabled: bool = False
    language: str = "zh-Hans"
    application_stage: str | None = None  # a veterans' insurance application at this stage


# Demo people, named as such; "stranger" is someone the bot does not know yet.
PERSONAS: tuple[Persona, ...] = (
    Persona("veteran", "演示·张建国", "M", date(1944, 5, 12), ("veteran",), "蓬江区", "白沙街道", "白沙社区",
            living_alone=True, application_stage="payment_notice"),
    Persona("retiree", "演示·王秀英", "F", date(1953, 9, 3), ("retiree",), "江海区", "外海街道", "外海社区"),
    Persona("union", "演示·李志强", "M", date(1968, 2, 20), ("union_member",), "新会区", "会城街道", "会城社区",
            disabled=True),
    Persona("english", "Demo Li Ming", "M", date(1950, 1, 8), ("veteran",), "蓬江区", "环市街道", "环市社区",
            language="en"),
)
STRANGER = "stranger"


@dataclass(frozen=True)
class Line:
    """One message in a simulated conversation."""

    direction: str  # in (from the person) | out (the bot's answer) | queued (what would have been sent)
    text: str
    at: datetime
    choices: tuple[tuple[str, str], ...] = ()  # (label, value), for the Telegram look's buttons


class Simulator:
    """The sandbox and the engine that runs on it (one per console process)."""

    def __init__(self, settings: Any, clock: Any, qa: Any = None, *, path: Path | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.path = path or Path(settings.data_dir) / "simulator.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db: Engine = make_engine(f"sqlite:///{self.path}")
        SQLModel.metadata.create_all(self.db)
        self._seed()
        from bot.engine import Engine as ConversationEngine

        self.engine = ConversationEngine(self.db, settings, clock, qa=qa)
        self._lock = threading.Lock()
        self.last_choices: dict[str, tuple[tuple[str, str], ...]] = {}

    # --- the sandbox ---------------------------------------------------------------------
    def _phone(self, persona: Persona) -> str:
        return f"+8613900{PERSONAS.index(persona) + 1:06d}"

    def _seed(self) -> None:
        """The demo people, once: on the roll, with a verified phone (and an application)."""
        from models.applications import Application
        from models.people import Beneficiary, Contact

        with write_scope(self.db) as s:
            if s.execute(select(col(Beneficiary.id)).limit(1)).first() is not None:
                return
            for i, p in enumerate(PERSONAS, start=1):
                b = Beneficiary(name=p.name, id_hash=hashlib.sha256(f"simulator:{p.code}".encode()).hexdigest(),
                                id_masked=f"4407**********{i:04d}", birth_date=p.born, sex=p.sex,
                                district=p.district, street=p.street, community=p.community,
                                living_alone=p.living_alone, disabled=p.disabled, language=p.language,
                                last_certified_on=date(self.clock.now().year - 1, 12, 1), source="simulator")
                b.set_kinds(set(p.kinds))
                s.add(b)
                s.flush()
                assert b.id is not None  # assigned by the flush
                s.add(Contact(beneficiary_id=b.id, channel="sms", address=self._phone(p), verified=True,
                              verified_at=self.clock.now()))
                if p.application_stage:
                    s.add(Application(reference=f"SIM-{i:06d}", type="veteran_insurance", beneficiary_id=b.id,
                                      stage=p.application_stage, channel="sms", payment_amount_fen=1234500,
                                      payment_account="江门市社会保险基金专户", payment_deadline=date(2099, 12, 31)))

    def address(self, staff_id: int, persona: str, channel: str, session: int) -> str:
        """The sandbox address of one staff member's conversation as `persona` on `channel`
        (a chat id or a phone of its own, so colleagues' conversations never mix)."""
        index = PERSONAS_INDEX.get(persona, 0)
        if channel == "telegram":
            return str(9_000_000_000 + (staff_id % 10_000) * 100_000 + index * 10_000 + session % 10_000)
        return f"+86139{staff_id % 1000:03d}{index}{session % 10_000:04d}"

    @staticmethod
    def persona(code: str) -> Persona:
        for p in PERSONAS:
            if p.code == code:
                return p
        raise KeyError(code)

    def link(self, address: str, channel: str, persona: str) -> None:
        """A demo person's Telegram chat (or a later SMS conversation) is known as them, as if
        they had linked it already."""
        from models.people import Beneficiary, Contact

        if persona == STRANGER:
            return
        p = self.persona(persona)
        with write_scope(self.db) as s:
            b = s.execute(select(Beneficiary).where(col(Beneficiary.name) == p.name)).scalar_one()
            if s.execute(select(Contact).where(col(Contact.channel) == channel, col(Contact.address) == address)
                         ).first() is None:
                s.add(Contact(beneficiary_id=b.id, channel=channel, address=address, verified=True,
                              verified_at=self.clock.now()))

    # --- talking -------------------------------------------------------------------------
    def send(self, channel: str, address: str, text: str = "", choice: str | None = None) -> list[Reply]:
        """One message from the simulated person; the engine's replies."""
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}")
        if choice is not None and not text:  # a button press reads as its label, as on Telegram
            text = dict((v, label) for label, v in self.last_choices.get(address, ())).get(choice, choice)
        inbound = Inbound(channel=channel, address=address, text=text[:1000], choice=choice,
                          received_at=self.clock.now())
        with self._lock:  # one conversation step at a time on the sandbox file
            replies = self.engine.handle(inbound)
        last = next((r for r in reversed(replies) if r.choices), None)
        self.last_choices[address] = tuple((c.label, c.value) for c in last.choices) if last else ()
        return replies

    def transcript(self, channel: str, address: str) -> list[Line]:
        """The conversation as the person saw it, and what would have been sent to them."""
        from models.conversations import MessageLog
        from models.outbox import OutboxMessage

        with Session(self.db) as s:
            logged = s.execute(select(MessageLog).where(col(MessageLog.channel) == channel,
                                                        col(MessageLog.address) == address)
                               .order_by(col(MessageLog.created_at), col(MessageLog.id))).scalars().all()
            since = logged[0].created_at if logged else None
            # What the conversation queued: to this address, or (a one-time code while linking)
            # to a demo person's phone, since the conversation began.
            phones = [self._phone(p) for p in PERSONAS]
            queued = [] if since is None else s.execute(select(OutboxMessage).where(
                (col(OutboxMessage.address) == address)
                | (col(OutboxMessage.address).in_(phones) & (col(OutboxMessage.created_at) >= since)))
                .order_by(col(OutboxMessage.created_at))).scalars().all()
        lines = [Line("in" if m.direction == "in" else "out", m.text, m.created_at) for m in logged]
        lines += [Line("queued", q.body if not q.extra.get("secret") else "【验证码】******", q.created_at)
                  for q in queued]
        lines.sort(key=lambda line: line.at)
        choices = self.last_choices.get(address, ())
        if choices and lines:
            for i in range(len(lines) - 1, -1, -1):
                if lines[i].direction == "out":
                    lines[i] = Line("out", lines[i].text, lines[i].at, choices)
                    break
        return lines

    def start_again(self, channel: str, address: str) -> None:
        """Forget this conversation (a new one starts at the menu)."""
        from models.conversations import Conversation, MessageLog

        with write_scope(self.db) as s:
            for model in (MessageLog, Conversation):
                for row in s.execute(select(model).where(col(model.channel) == channel,  # type: ignore[attr-defined]
                                                         col(model.address) == address)).scalars():  # type: ignore[attr-defined]
                    s.delete(row)
        self.last_choices.pop(address, None)

    def close(self) -> None:
        self.db.dispose()


PERSONAS_INDEX = {p.code: i + 1 for i, p in enumerate(PERSONAS)}
_instances: dict[int, Simulator] = {}
_instances_lock = threading.Lock()


def simulator_for(app_state: Any) -> Simulator:
    """The console's simulator, made on first use (the sandbox file is created then)."""
    with _instances_lock:
        found = getattr(app_state, "simulator", None)
        if found is None:
            qa = None
            try:
                from bot.knowledge_cache import FOLDER_NAME
                from bot.knowledge_store import live_qa

                # The office's reviewed knowledge, followed live; its index read from the data
                # folder where the service keeps it (bot/knowledge_cache.py) rather than built again.
                qa = live_qa(app_state.engine, cache_dir=Path(app_state.settings.data_dir) / FOLDER_NAME)
            except Exception:  # the shipped files answer
                qa = None
            found = Simulator(app_state.settings, app_state.clock, qa)
            app_state.simulator = found
        return found


__all__ = ["CHANNELS", "Line", "PERSONAS", "Persona", "STRANGER", "Simulator", "simulator_for"]
