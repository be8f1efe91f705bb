"""SMS length as the network counts it: encoding, characters, segments (outreach/sms_text.py)."""

from __future__ import annotations

import gsm0338  # noqa: F401  (registers the gsm03.38 codec used as a cross-check)
import pytest

from outreach.sms_text import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    MAX_SEGMENTS,
    MessageTooLong,
    SmsLength,
    check_sms_length,
    sms_length,
)

# (label, text, encoding, characters, segments)
CASES = [
    ("empty text still costs one message", "", "GSM-7", 0, 1),
    ("plain ascii", "Hello", "GSM-7", 5, 1),
    ("gsm 160 fits one", "a" * 160, "GSM-7", 160, 1),
    ("gsm 161 needs two", "a" * 161, "GSM-7", 161, 2),
    ("gsm 153x2 fills two exactly", "a" * 306, "GSM-7", 306, 2),
    ("gsm 153x2+1 needs three", "a" * 307, "GSM-7", 307, 3),
    ("extension char counts two", "{}", "GSM-7", 4, 1),
    ("euro counts two", "€5", "GSM-7", 3, 1),
    ("form feed counts two", "a\fb", "GSM-7", 4, 1),
    ("extension char at 159 makes 161", "a" * 158 + "[", "GSM-7", 160, 1),
    ("extension char pushing over 160", "a" * 159 + "^", "GSM-7", 161, 2),
    # 152 basic + one ESC pair: the pair may not be split at 153, so it opens segment 2.
    ("esc pair never split across segments", "a" * 152 + "|" + "a" * 152, "GSM-7", 306, 3),
    ("esc pair ending exactly on a boundary", "a" * 151 + "|" + "a" * 153, "GSM-7", 306, 2),
    ("accented letters in the basic table", "café à Zürich", "GSM-7", 13, 1),
    ("backtick is not gsm", "`", "UCS-2", 1, 1),
    ("ucs2 70 fits one", "好" * 70, "UCS-2", 70, 1),
    ("ucs2 71 needs two", "好" * 71, "UCS-2", 71, 2),
    ("ucs2 67x2 fills two", "好" * 134, "UCS-2", 134, 2),
    ("ucs2 67x2+1 needs three", "好" * 135, "UCS-2", 135, 3),
    ("emoji counts two units", "🙂", "UCS-2", 2, 1),
    ("emoji at the single boundary", "好" * 68 + "🙂", "UCS-2", 70, 1),
    ("emoji pushing over 70", "好" * 69 + "🙂", "UCS-2", 71, 2),
    ("surrogate pair never split", "好" * 66 + "🙂" + "好" * 66, "UCS-2", 134, 3),
    ("chinese opt-out footer", "回复TD退订", "UCS-2", 6, 1),
]


@pytest.mark.parametrize(("label", "text", "encoding", "characters", "segments"), CASES, ids=[c[0] for c in CASES])
def test_sms_length_counts_as_the_network_does(label: str, text: str, encoding: str, characters: int,
                                               segments: int) -> None:
    """Each row of the table: the encoding, the counted characters and the segments are exact."""
    length = sms_length(text)
    assert (length.encoding, length.characters, length.segments) == (encoding, characters, segments)
    assert length.too_long is False


def test_one_chinese_character_makes_the_whole_message_ucs2() -> None:
    """A single Chinese character in a long English text switches everything to UCS-2 (70/67)."""
    english = "Your pension certification is due. Call 12345." * 3
    assert sms_length(english).encoding == "GSM-7"
    mixed = english + "张"
    length = sms_length(mixed)
    assert length.encoding == "UCS-2"
    assert length.characters == len(mixed)
    assert length.segments == -(-len(mixed) // 67)


def test_gsm_table_agrees_with_the_gsm0338_codec() -> None:
    """Our hand-written table costs every character exactly what the gsm0338 codec encodes it to."""
    for ch in GSM7_BASIC:
        assert len(ch.encode("gsm03.38")) == 1, repr(ch)
    for ch in GSM7_EXTENSION:
        assert len(ch.encode("gsm03.38")) == 2, repr(ch)
    decoded = {bytes([b]).decode("gsm03.38") for b in range(128) if b != 0x1B}
    assert decoded == set(GSM7_BASIC)


def test_more_than_ten_segments_is_too_long_and_refused_plainly() -> None:
    """Ten full UCS-2 segments pass; one character more is too long, and check_sms_length says so."""
    ok = "好" * (67 * MAX_SEGMENTS)
    assert sms_length(ok) == SmsLength("UCS-2", 670, 10, False)
    assert check_sms_length(ok).segments == 10
    over = ok + "好"
    assert sms_length(over).too_long is True
    with pytest.raises(MessageTooLong) as info:
        check_sms_length(over)
    assert "11" in str(info.value) and "10" in str(info.value)
    assert info.value.length.segments == 11


def test_gsm_limit_of_ten_segments_is_1530_septets() -> None:
    """GSM-7 texts may run to 10 × 153 septets."""
    assert sms_length("a" * 1530).too_long is False
    assert sms_length("a" * 1531).too_long is True


def test_describe_gives_staff_a_one_line_summary() -> None:
    """The preview line names encoding, characters and segments in the staff's language."""
    assert sms_length("好" * 71).describe() == "UCS-2 · 71 字符 · 2 条短信"
    assert sms_length("hi").describe("en") == "GSM-7 · 2 characters · 1 SMS"
