"""An in-memory provider for tests: records each send with the clock's time, and answers
with a scripted error per address (or per attempt) instead of going over the network."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from models.clock import Clock, SystemClock
from outreach.providers.base import OutgoingMessage, SendError, SendResult


@dataclass
class SentRecord:
    message: OutgoingMessage
    at: datetime


@dataclass
class ScriptedProvider:
    channel: str
    name: str = "scripted"
    clock: Clock = field(default_factory=SystemClock)
    # address -> error raised on every send to it
    errors: dict[str, SendError] = field(default_factory=dict)
    # address -> errors raised on the first sends, one each, then success
    script: dict[str, list[SendError]] = field(default_factory=dict)
    before_send: Callable[[OutgoingMessage], None] | None = None
    sent: list[SentRecord] = field(default_factory=list)
    attempts: list[SentRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)

    async def send(self, message: OutgoingMessage) -> SendResult:
        now = self.clock.now()
        self.attempts.append(SentRecord(message, now))
        if self.before_send is not None:
            self.before_send(message)
        if message.address in self.errors:
            raise self.errors[message.address]
        queue = self.script.get(message.address)
        if queue:
            raise queue.pop(0)
        self.sent.append(SentRecord(message, now))
        return SendResult(f"{self.name}-{next(self._ids)}")

    def bodies(self) -> list[str]:
        return [r.message.body for r in self.sent]
