"""The console channel: the same engine in a terminal, for demos, staff training and tests.

Lines typed (or read from a script) become `Inbound` messages on channel "console".
A line `/file PATH` sends that file as an attachment (a photo if it looks like one), so the
document checklist can be tried without Telegram. Replies are printed as plain text;
choices are already numbered inside the text, so they are not printed twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from bot.channels.base import Attachment, Inbound, Reply

CHANNEL = "console"
_PHOTO = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".heic"}


def to_inbound(line: str, address: str, language_hint: str | None = None) -> Inbound:
    text = line.rstrip("\r\n")
    if text.startswith("/file "):
        path = Path(text[6:].strip())
        kind = "photo" if path.suffix.lower() in _PHOTO else "document"
        size = path.stat().st_size if path.exists() else 0
        att = Attachment(kind=kind, file_id=str(path), file_name=path.name, size=size,
                         mime_type="image/jpeg" if kind == "photo" else "application/octet-stream",
                         local_path=str(path) if path.exists() else "")
        return Inbound(channel=CHANNEL, address=address, attachments=(att,), language_hint=language_hint)
    return Inbound(channel=CHANNEL, address=address, text=text, language_hint=language_hint)


def render(replies: Iterable[Reply]) -> str:
    return "\n\n".join(r.text for r in replies)


def run_lines(handle: Callable[[Inbound], list[Reply]], lines: Iterable[str], address: str,
              echo: Callable[[str], None], language_hint: str | None = None) -> int:
    """Feed each non-empty, non-comment line to the engine and print the exchange. Returns lines sent."""
    sent = 0
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        echo(f"> {line}")
        echo(render(handle(to_inbound(line, address, language_hint))))
        echo("")
        sent += 1
    return sent
