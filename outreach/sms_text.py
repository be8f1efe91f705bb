"""How long an SMS is, counted as the network counts it. Pure: no I/O, no settings.

An SMS is sent in one of two encodings:
- GSM-7 (3GPP TS 23.038 default alphabet) when every character is in the basic table or
  the extension table. Basic characters cost one septet; extension characters cost two
  (an ESC septet, then the character). One message holds 160 septets; a longer text is
  split into segments of 153 (7 septets go to the concatenation header).
- UCS-2 otherwise: any Chinese character, emoji or curly quote puts the *whole* message in
  UCS-2. We count UTF-16 code units (an emoji outside the BMP costs 2), 70 in one message,
  67 per segment when split.

A segment boundary never splits an ESC pair or a surrogate pair (handsets and carriers do
not split them either), so a multi-part text can take one segment more than a plain
division suggests. We refuse texts longer than 10 segments: beyond that they cost too much,
arrive out of order on old handsets, and Twilio refuses bodies over 1,600 characters (21617).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GSM7_SINGLE = 160
GSM7_PER_SEGMENT = 153
UCS2_SINGLE = 70
UCS2_PER_SEGMENT = 67
MAX_SEGMENTS = 10

# --- The GSM-7 default alphabet (3GPP TS 23.038 §6.2.1), row by row of the code table. ---
# Written out by hand rather than read from a codec, so the counter is pure and fast; the
# tests cross-check every character against the `gsm0338` codec.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"  # 0x00–0x0F (0x09 is capital Ç in the standard; 0x0A LF, 0x0D CR)
    "Δ_ΦΓΛΩΠΨΣΘΞ" "ÆæßÉ"  # 0x10–0x1F (0x1B is ESC, the escape to the extension table: not a character)
    " !\"#¤%&'()*+,-./"  # 0x20–0x2F (0x24 is ¤, the currency sign; '$' lives at 0x02)
    "0123456789:;<=>?"  # 0x30–0x3F
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"  # 0x40–0x5F
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"  # 0x60–0x7F
)
# The extension table (ESC + code): each costs two septets. Form feed is ESC 0x0A.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION

Encoding = Literal["GSM-7", "UCS-2"]


@dataclass(frozen=True)
class SmsLength:
    """`characters` is what counts toward the limits: septets for GSM-7 (extension
    characters count 2), UTF-16 code units for UCS-2 (an emoji counts 2)."""

    encoding: Encoding
    characters: int
    segments: int
    too_long: bool

    @property
    def per_segment(self) -> int:
        if self.encoding == "GSM-7":
            return GSM7_SINGLE if self.segments <= 1 else GSM7_PER_SEGMENT
        return UCS2_SINGLE if self.segments <= 1 else UCS2_PER_SEGMENT

    def describe(self, lang: str = "zh-Hans") -> str:
        """A one-line summary for staff, e.g. `UCS-2 · 83 字符 · 2 条短信`."""
        if lang == "en":
            text = f"{self.encoding} · {self.characters} characters · {self.segments} SMS"
            return text + (f" · too long (more than {MAX_SEGMENTS})" if self.too_long else "")
        text = f"{self.encoding} · {self.characters} 字符 · {self.segments} 条短信"
        return text + (f" · 太长（超过{MAX_SEGMENTS}条）" if self.too_long else "")


class MessageTooLong(ValueError):
    """The text would take more than MAX_SEGMENTS SMS segments."""

    def __init__(self, length: SmsLength) -> None:
        self.length = length
        per = GSM7_PER_SEGMENT if length.encoding == "GSM-7" else UCS2_PER_SEGMENT
        super().__init__(
            f"短信太长：{length.characters} 字符，需要 {length.segments} 条，最多 {MAX_SEGMENTS} 条"
            f"（{length.encoding}，每条 {per} 字符）。请删减内容。"
            f" / SMS too long: {length.characters} characters would need {length.segments} segments;"
            f" the limit is {MAX_SEGMENTS} ({per} per segment in {length.encoding}). Please shorten it."
        )


def is_gsm7(text: str) -> bool:
    """True when every character of `text` can be sent in GSM-7."""
    return set(text) <= GSM7_ALL


def _pack(widths: list[int], per_segment: int) -> int:
    """Segments needed when units of width 1 or 2 are packed in order and a width-2 unit
    (ESC pair, surrogate pair) never straddles two segments."""
    segments, used = 1, 0
    for w in widths:
        if used + w > per_segment:
            segments += 1
            used = 0
        used += w
    return segments


def sms_length(text: str) -> SmsLength:
    """Encoding, length and segment count of `text` as the network would send it.
    An empty text still costs one message."""
    if is_gsm7(text):
        doubles = sum(text.count(c) for c in GSM7_EXTENSION)
        units = len(text) + doubles
        if units <= GSM7_SINGLE:
            segments = 1
        elif doubles == 0:
            segments = -(-units // GSM7_PER_SEGMENT)
        else:
            segments = _pack([2 if c in GSM7_EXTENSION else 1 for c in text], GSM7_PER_SEGMENT)
        return SmsLength("GSM-7", units, segments, segments > MAX_SEGMENTS)
    # UTF-16 code units, counted in C: characters outside the BMP (emoji) take two.
    units = len(text.encode("utf-16-le")) // 2
    astral = units - len(text)
    if units <= UCS2_SINGLE:
        segments = 1
    elif astral == 0:
        segments = -(-units // UCS2_PER_SEGMENT)
    else:
        segments = _pack([2 if ord(c) > 0xFFFF else 1 for c in text], UCS2_PER_SEGMENT)
    return SmsLength("UCS-2", units, segments, segments > MAX_SEGMENTS)


def check_sms_length(text: str) -> SmsLength:
    """`sms_length`, raising MessageTooLong when the text is over MAX_SEGMENTS segments."""
    length = sms_length(text)
    if length.too_long:
        raise MessageTooLong(length)
    return length
