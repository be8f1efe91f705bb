"""Phone numbers as a value object: parsed on creation into E.164, or refused with a code."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import phonenumbers


class InvalidPhone(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class PhoneNumber:
    e164: str

    @classmethod
    def parse(cls, raw: str, region: str = "CN") -> PhoneNumber:
        text = unicodedata.normalize("NFKC", str(raw)).strip()
        if not text:
            raise InvalidPhone("empty", "手机号为空 (phone number is empty)")
        if text.startswith("00"):
            text = "+" + text[2:]
        try:
            parsed = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            raise InvalidPhone("unparseable", "手机号格式不对 (not a phone number)") from None
        if not phonenumbers.is_valid_number(parsed):
            raise InvalidPhone("invalid", "手机号不存在或位数不对 (not a valid number)")
        return cls(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))

    @property
    def masked(self) -> str:
        return mask_phone(self.e164)

    def __str__(self) -> str:
        return self.e164


def mask_phone(e164: str) -> str:
    """+8613812345678 → +86138****5678"""
    if len(e164) < 8:
        return "*" * len(e164)
    return e164[:-8] + "****" + e164[-4:] if len(e164) > 10 else e164[:3] + "****" + e164[-4:]
