"""The provider contract: one async `send`, and a closed set of errors that says what to do next.

A provider turns an `OutgoingMessage` into a `SendResult` (the provider's message id), or
raises exactly one of the `SendError` subclasses below. The dispatcher decides from the
class alone: `retryable` errors go back to the queue with backoff; the others fail the
row, and `ContactStopped` / `AddressInvalid` also mark the contact and try the fallback.
Anything else a provider library raises is a bug in the adapter's mapping; the dispatcher
treats it as a `TemporaryFailure` so a message is never lost to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable


@dataclass(frozen=True)
class OutgoingMessage:
    outbox_id: int
    channel: str
    address: str  # Telegram chat id, or phone number in E.164
    body: str
    segments: int = 1
    extra: dict[str, Any] = field(default_factory=dict)  # {"buttons": [[{"text":..., "data":...}]]}
    idempotency_key: str = ""
    beneficiary_id: int | None = None
    sender: str = ""  # which of the provider's senders (an SMS From number...); "" for its default


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str


class SendError(Exception):
    """Base of the closed set. `retryable` says whether the same send may succeed later."""

    retryable: ClassVar[bool] = False
    code: str = ""

    def __init__(self, detail: str = "", code: str | int | None = None) -> None:
        super().__init__(detail or type(self).__name__)
        self.detail = detail
        if code is not None:
            self.code = str(code)


class ConnectionFailed(SendError):
    """Could not reach the provider, or no answer in time: it may or may not have been sent."""

    retryable = True


class Throttled(SendError):
    """The provider said slow down: retry, and pause the provider for `retry_after` seconds."""

    retryable = True

    def __init__(self, retry_after: float, detail: str = "", code: str | int | None = 429) -> None:
        super().__init__(detail or f"throttled, retry after {retry_after}s", code)
        self.retry_after = float(retry_after)


class TemporaryFailure(SendError):
    """The provider failed this time (5xx, carrier unreachable): retry later."""

    retryable = True


class ContactStopped(SendError):
    """The person opted out (SMS STOP / 退订) or blocked the bot. Never retried."""

    def __init__(self, reason: str, detail: str = "", code: str | int | None = None) -> None:
        if reason not in ("opted_out", "blocked"):
            raise ValueError("reason is 'opted_out' or 'blocked'")
        super().__init__(detail or reason, code)
        self.reason = reason


class AddressInvalid(SendError):
    """No such chat, or the number cannot receive messages. Never retried."""


class ChannelMisconfigured(SendError):
    """Our side is wrong (token, account, sender number): nothing will go out until fixed."""


class Rejected(SendError):
    """The provider refused this message (too long, content). Never retried."""


SEND_ERRORS: tuple[type[SendError], ...] = (ConnectionFailed, Throttled, TemporaryFailure, ContactStopped,
                                            AddressInvalid, ChannelMisconfigured, Rejected)


@runtime_checkable
class Provider(Protocol):
    """A provider may also set `timeout_s`: every send ends within it (the dispatcher then adds
    no timer of its own when it is within the dispatcher's send timeout)."""

    channel: str  # "telegram" | "sms"
    name: str  # "telegram", "twilio", "logsink", ...

    async def send(self, message: OutgoingMessage) -> SendResult: ...


class ClosableProvider(Provider, Protocol):
    async def close(self) -> None: ...


async def close_provider(provider: Provider) -> None:
    close = getattr(provider, "close", None)
    if close is not None:
        await close()
