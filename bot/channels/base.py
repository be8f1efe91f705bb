"""What every channel adapter exchanges with the engine.

An adapter turns a provider event into an `Inbound` and renders the engine's `Reply`
objects back in its own way (Telegram: buttons; SMS: numbered choices, short text;
console: plain text). No business rule lives in an adapter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Attachment:
    kind: str  # "photo" | "document" | "voice" | "audio" | "sticker" | "location" | "contact" | "other"
    file_id: str = ""  # provider's id (Telegram file_id, Twilio MediaUrl)
    mime_type: str = ""
    file_name: str = ""
    size: int = 0
    local_path: str = ""  # set once the adapter has stored the file


@dataclass(frozen=True)
class Inbound:
    channel: str  # "telegram" | "sms" | "console"
    address: str  # Telegram chat id, phone in E.164, or a console session name
    text: str = ""
    attachments: tuple[Attachment, ...] = ()
    language_hint: str | None = None  # e.g. Telegram's user.language_code
    received_at: datetime | None = None
    provider_message_id: str = ""
    # A button press (Telegram callback data) rather than typed text.
    choice: str | None = None
    # The token of the prompt whose keyboard was pressed: None when the channel has no tokens
    # (typed text, the console), "" for a keyboard sent before buttons carried one.
    prompt_token: str | None = None
    # The person edited a message they had sent (Telegram): the text is the new version.
    edited: bool = False


@dataclass(frozen=True)
class Choice:
    label: str  # shown to the user
    value: str  # sent back as Inbound.choice when pressed (Telegram) or matched when typed


@dataclass(frozen=True)
class Reply:
    text: str
    choices: tuple[Choice, ...] = ()
    # Hints for adapters: a plain-language "how to go back / reach a person" line already
    # belongs in `text`; these only tell a rich channel how to lay buttons out.
    columns: int = 1
    expects: str = "text"  # "text" | "choice" | "file" | "code" | "none"
    metadata: dict[str, str] = field(default_factory=dict)
    # Buttons a rich channel shows under the choices (back, a person); SMS says them in the text.
    navigation: tuple[Choice, ...] = ()
    # The text for a channel that shows the choices as buttons: without the numbered lines and
    # the "reply 1 or 2" instructions that only typing needs. Empty: use `text`.
    button_text: str = ""
