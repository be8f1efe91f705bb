"""The SMS channel: Twilio's inbound form fields → `Inbound`, and `Reply` → short SMS texts.

SMS has no buttons, so choices are numbered ("1 申请… 2 …") and the person types the
digit back. The digit goes to the engine as typed text: the engine knows the step the
conversation is in (it is stored with the conversation) and therefore which choice a
digit means (`flowrunner.parse_choice`, the menu), so this module keeps no state of its
own and a restart or a second instance maps digits the same way. The engine usually
writes the numbered lines into its text already (metadata `choices_in_text`); then they
are not added a second time. `digit_choice()` states the numbering rule for other users.

Replies go back to Twilio as TwiML (`twiml()`), see web/routes/twilio_sms.py.

Length: the network counts GSM-7 160/153 or UCS-2 70/67 characters per segment; Chinese
text is UCS-2, so one segment holds 70 characters and two hold 134. Each message we
return is kept within two segments where the text allows; a longer reply is split at
line ends, then at sentence ends, then (only for one overlong sentence) by length.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from bot.channels.base import Attachment, Choice, Inbound, Reply
from bot.texts import short_date, short_month
from outreach.sms_text import sms_length

CHANNEL = "sms"
MAX_SEGMENTS = 2  # per message we send, where the text allows
MAX_INBOUND_CHARS = 1600  # Twilio never delivers a longer body (error 21617 on sending)
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# C0/C1 controls except tab, newline and carriage return; plus the BOM and bidi overrides.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff\u202a-\u202e\u2066-\u2069]")


# --- segment counting ------------------------------------------------------------------
def segments(text: str) -> int:
    """How many SMS segments `text` takes on the network (the shared counter's figure)."""
    return sms_length(text).segments if text else 0


def fits(text: str, max_segments: int = MAX_SEGMENTS) -> bool:
    return segments(text) <= max_segments


# --- rendering ---------------------------------------------------------------------------
def choice_lines(choices: Sequence[Choice]) -> list[str]:
    """'1 申请社保接续', '2 …': the digit a person types, then the label."""
    return [f"{i} {c.label.strip()}" for i, c in enumerate(choices, start=1)]


def digit_choice(text: str, choices: Sequence[Choice]) -> Choice | None:
    """The choice a typed number refers to, by the numbering `choice_lines` used.

    Accepts full-width digits and surrounding spaces/punctuation ("１", " 2。"); anything
    else (or a number out of range) is not a choice.
    """
    cleaned = unicodedata.normalize("NFKC", text).strip().strip("。.、,，!！ ")
    if not cleaned.isdigit() or not choices:
        return None
    n = int(cleaned)
    return choices[n - 1] if 1 <= n <= len(choices) else None


def choices_in_text(text: str, choices: Sequence[Choice]) -> bool:
    """True when the text already lists every choice with its number ("1. 是", "回复1（是）").

    The engine often writes numbered lines itself (they read well on every channel); then
    numbering the choices again would say everything twice and cost a segment.
    """
    if not choices:
        return True
    for i, c in enumerate(choices, start=1):
        pattern = rf"(?<!\d){i}\D{{0,3}}{re.escape(c.label.strip())}"
        if not re.search(pattern, text):
            return False
    return True


# Full-width punctuation an English text may have picked up (a summary line, a pasted word): any one
# of them makes the whole SMS UCS-2, 70 characters a segment instead of 160.
_ASCII_PUNCTUATION = str.maketrans({"：": ": ", "，": ", ", "。": ". ", "；": "; ", "！": "! ", "？": "? ",
                                    "（": " (", "）": ") ", "“": '"', "”": '"', "‘": "'", "’": "'", "、": ", ",
                                    "—": "-", "–": "-", "…": "...", "·": "-", "【": "[", "】": "] ", "　": " "})
_ISO_DAY = re.compile(r"(?<![0-9A-Za-z-])((?:19|20)\d\d)-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(?![0-9A-Za-z-])")
_ISO_MONTH = re.compile(r"(?<![0-9A-Za-z-])((?:19|20)\d\d)-(0[1-9]|1[0-2])(?![0-9A-Za-z-])")
_NUMBERED_LINE = re.compile(r"^(\s*)(\d{1,2})[.、．)]\s*(.+)$")


def short_dates(text: str, lang: str, today: date | None = None) -> str:
    """ISO dates the engine writes (2026-11-30, 1998-12) as people write them: 11月30日 / 30 Nov,
    1998年12月 / Dec 1998; the year only when it is not this year's."""
    def day(m: re.Match[str]) -> str:
        try:
            return short_date(date(int(m.group(1)), int(m.group(2)), int(m.group(3))), lang, today)
        except ValueError:
            return m.group(0)

    text = _ISO_DAY.sub(day, text)
    return _ISO_MONTH.sub(lambda m: short_month(int(m.group(1)), int(m.group(2)), lang), text)


def _unnumber_other_lists(text: str, choices: Sequence[Choice]) -> str:
    """Where a message asks for a number, only its choices are numbered: another numbered list
    (the documents to bring, above "1 提交 2 不提交") becomes a list of dashes, so that "1" can
    only mean the first choice. Kept: lines that name a choice by its number, and the run of lines
    numbered 1..n, n the number of choices (the one naming the choices when two could be, else the
    last)."""
    if not choices:
        return text
    lines = text.split("\n")
    runs: list[list[int]] = []  # line indexes of each run numbered 1, 2, 3 ...
    for i, line in enumerate(lines):
        m = _NUMBERED_LINE.match(line)
        if m is None:
            continue
        n = int(m.group(2))
        if runs and runs[-1][-1] == i - 1 and n == len(runs[-1]) + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    if not runs:
        return text
    labels = [c.label.strip() for c in choices]

    def naming(run: list[int]) -> int:
        return sum(_NUMBERED_LINE.match(lines[i]).group(3).strip() == labels[k]  # type: ignore[union-attr]
                   for k, i in enumerate(run) if k < len(labels))

    fitting = [r for r in runs if len(r) == len(choices)]
    best = max(reversed(fitting), key=naming) if fitting else None
    for run in runs:
        if run is best or naming(run):  # the choice list, or lines naming choices by their numbers
            continue
        for i in run:
            m = _NUMBERED_LINE.match(lines[i])
            assert m is not None
            lines[i] = f"{m.group(1)}- {m.group(3)}"
    return "\n".join(lines)


def reply_text(reply: Reply, today: date | None = None) -> str:
    """One reply as plain SMS text (before splitting).

    A reply may carry a shorter SMS wording in `metadata["sms"]`; choices follow, one per
    line, numbered, unless the text already lists them with their numbers. Markdown-ish
    emphasis and repeated blank lines are dropped: SMS shows them literally and every
    character costs. The repair footer (`metadata["footer"]`: how to go back or reach a person)
    is kept only where the engine marks the reply `metadata["repair"] = "1"` (its first reply,
    and after a misunderstanding). Dates are written short (11月30日 / 30 Nov), an English reply
    keeps to ASCII punctuation (GSM-7), and only the choices are numbered.
    """
    text = reply.metadata.get("sms") or reply.text
    footer = reply.metadata.get("footer", "")
    if footer and reply.metadata.get("repair") == "0" and text.rstrip().endswith(footer):
        text = text.rstrip()[: -len(footer)].rstrip()
    text = re.sub(r"[*_`]{1,3}([^*_`\n]+)[*_`]{1,3}", r"\1", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    lang = reply.metadata.get("lang", "")
    if lang:
        text = short_dates(text, lang, today)
    if lang == "en":
        text = "\n".join(" ".join(line.translate(_ASCII_PUNCTUATION).split()) for line in text.split("\n"))
    text = _unnumber_other_lists(text, reply.choices)
    lines = [text] if text else []
    # The engine marks replies whose text already numbers the choices ("choices_in_text").
    if reply.metadata.get("choices_in_text") != "1" and not choices_in_text(text, reply.choices):
        lines.extend(choice_lines(reply.choices))
    return "\n".join(lines)


_SENTENCE_END = re.compile(r"(?<=[。！？；!?;])|(?<=[.] )")


def _split_long_line(line: str, max_segments: int) -> list[str]:
    """Split one line that is too long: at sentence ends, then at commas, then by length."""
    parts: list[str] = []
    for pieces_re in (_SENTENCE_END, re.compile(r"(?<=[，、,：:])")):
        pieces = [p for p in pieces_re.split(line) if p]
        if len(pieces) > 1:
            for piece in _pack(pieces, max_segments, sep=""):
                parts.extend(_split_long_line(piece, max_segments) if not fits(piece, max_segments) else [piece])
            return parts
    # One long run with no punctuation: cut by length (binary search on the prefix).
    rest = line
    while rest and not fits(rest, max_segments):
        lo, hi = 1, len(rest)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(rest[:mid], max_segments):
                lo = mid
            else:
                hi = mid - 1
        parts.append(rest[:lo])
        rest = rest[lo:]
    if rest:
        parts.append(rest)
    return parts


def _pack(pieces: Sequence[str], max_segments: int, sep: str) -> list[str]:
    """Greedily join pieces with `sep` while the result still fits."""
    out: list[str] = []
    current = ""
    for piece in pieces:
        candidate = f"{current}{sep}{piece}" if current else piece
        if fits(candidate, max_segments) or not current:
            current = candidate
        else:
            out.append(current)
            current = piece
    if current:
        out.append(current)
    return out


def split(text: str, max_segments: int = MAX_SEGMENTS) -> list[str]:
    """Split text into messages of at most `max_segments` segments each, at natural breaks.

    Lines stay whole when they fit (a numbered choice is never cut in two); a line too long
    on its own is cut at sentence ends, then commas, and only as a last resort by length.
    """
    text = text.strip()
    if not text:
        return []
    if fits(text, max_segments):
        return [text]
    lines: list[str] = []
    for line in text.split("\n"):
        if fits(line, max_segments):
            lines.append(line)
        else:
            lines.extend(_split_long_line(line, max_segments))
    return [m.strip("\n") for m in _pack(lines, max_segments, sep="\n") if m.strip()]


def render(replies: Sequence[Reply], max_segments: int = MAX_SEGMENTS, *, today: date | None = None) -> list[str]:
    """The SMS messages to send for the engine's replies, in order.

    Replies are joined into as few messages as fit (each message costs the person a
    notification and us segments), without cutting a reply's choice list apart. `today` (the
    office's date) lets dates of this year drop the year.
    """
    blocks = [t for t in (reply_text(r, today) for r in replies) if t]
    messages: list[str] = []
    for block in blocks:
        for part in split(block, max_segments):
            if messages and fits(f"{messages[-1]}\n{part}", max_segments):
                messages[-1] = f"{messages[-1]}\n{part}"
            else:
                messages.append(part)
    return messages


# --- inbound -------------------------------------------------------------------------------
class BadSMS(ValueError):
    """A Twilio request we cannot take as a message; the text says why (safe to show)."""


@dataclass(frozen=True)
class ParsedSMS:
    inbound: Inbound
    to: str
    cleaned: bool  # control characters were removed from the body


def clean_body(body: str) -> tuple[str, bool]:
    """Body with control characters removed and Unicode normalised (NFC). (text, changed)."""
    text = unicodedata.normalize("NFC", body.replace("\r\n", "\n").replace("\r", "\n"))
    stripped = _CONTROL.sub("", text)
    return stripped, stripped != text


def parse_inbound(form: Mapping[str, str], received_at: datetime | None = None) -> ParsedSMS:
    """Twilio's inbound-message form fields → `Inbound`; raises BadSMS when unusable.

    From must be an E.164 number (we answer to it); an alphanumeric or short-code sender
    cannot be answered and is refused. A body longer than Twilio ever sends is refused
    rather than cut, so nothing is silently lost. Media (MMS) arrive as attachments that
    carry Twilio's MediaUrl as file_id (not downloaded here).
    """
    sender = (form.get("From") or "").strip()
    if not sender:
        raise BadSMS("missing From")
    if not _E164.match(sender):
        raise BadSMS("From is not an E.164 phone number")
    body = form.get("Body") or ""
    if len(body) > MAX_INBOUND_CHARS:
        raise BadSMS(f"Body longer than {MAX_INBOUND_CHARS} characters")
    text, cleaned = clean_body(body)
    try:
        num_media = int(form.get("NumMedia") or 0)
    except ValueError:
        raise BadSMS("NumMedia is not a number") from None
    attachments = []
    for i in range(min(max(num_media, 0), 10)):  # Twilio delivers at most 10
        url = form.get(f"MediaUrl{i}") or ""
        if not url:
            continue
        mime = form.get(f"MediaContentType{i}") or ""
        kind = "photo" if mime.startswith("image/") else "document"
        attachments.append(Attachment(kind=kind, file_id=url, mime_type=mime))
    inbound = Inbound(
        channel=CHANNEL,
        address=sender,
        text=text.strip(),
        attachments=tuple(attachments),
        language_hint=None,  # SMS carries none; the engine keeps the person's language
        received_at=received_at,
        provider_message_id=(form.get("MessageSid") or form.get("SmsSid") or "")[:64],
    )
    return ParsedSMS(inbound=inbound, to=(form.get("To") or "").strip(), cleaned=cleaned)


# --- TwiML ---------------------------------------------------------------------------------
def twiml(messages: Sequence[str]) -> str:
    """A TwiML document answering with these messages (none: an empty Response, no reply).

    Escaped with the XML rules (&, <, > in text); control characters that XML 1.0 cannot
    carry are removed.
    """
    from xml.sax.saxutils import escape

    parts = ['<?xml version="1.0" encoding="UTF-8"?>', "<Response>"]
    for message in messages:
        safe = _CONTROL.sub("", message)
        parts.append(f"<Message>{escape(safe)}</Message>")
    parts.append("</Response>")
    return "".join(parts)
