"""Chinese resident ID-card numbers (GB 11643-1999): validation, hashing and masking.

The plain number is never stored: a keyed hash (HMAC-SHA256) is the lookup key and a
masked form (`4407**********1234`) is what people see.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass
from datetime import date

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_SHAPE = re.compile(r"^\d{17}[\dX]$")


class InvalidIdCard(ValueError):
    """The number cannot be a resident ID-card number; the message says why, plainly."""


def check_digit(first17: str) -> str:
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def normalise(raw: str) -> str:
    text = unicodedata.normalize("NFKC", raw).strip().upper().replace(" ", "").replace("-", "")
    return text


@dataclass(frozen=True)
class IdCard:
    number: str  # normalised; keep it in memory only

    @classmethod
    def parse(cls, raw: str) -> IdCard:
        number = normalise(raw)
        if len(number) != 18:
            raise InvalidIdCard(f"身份证号应为18位，这里是{len(number)}位 (ID number must have 18 characters)")
        if not _SHAPE.match(number):
            raise InvalidIdCard("身份证号只能是数字，最后一位可以是X (digits only, last may be X)")
        if check_digit(number[:17]) != number[17]:
            raise InvalidIdCard("身份证号校验位不对，请核对 (check digit does not match)")
        try:
            born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
        except ValueError:
            raise InvalidIdCard("身份证号里的出生日期不存在 (birth date inside the number is not a real date)") from None
        if born.year < 1900 or born > date.today():
            raise InvalidIdCard("身份证号里的出生日期不合理 (birth date out of range)")
        return cls(number)

    @property
    def birth_date(self) -> date:
        n = self.number
        return date(int(n[6:10]), int(n[10:12]), int(n[12:14]))

    @property
    def sex(self) -> str:
        return "M" if int(self.number[16]) % 2 else "F"

    @property
    def masked(self) -> str:
        return mask_id(self.number)

    def hashed(self, key: bytes) -> str:
        return hash_id(self.number, key)

    def last6_hashed(self, key: bytes) -> str:
        return hash_id("last6:" + self.number[-6:], key)

    def __repr__(self) -> str:  # never print the number itself
        return f"IdCard({self.masked})"

    __str__ = __repr__


def hash_id(value: str, key: bytes) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def hash_last6(last6: str, key: bytes) -> str:
    return hash_id("last6:" + normalise(last6), key)


def mask_id(number: str) -> str:
    if len(number) < 8:
        return "*" * len(number)
    return number[:4] + "*" * (len(number) - 8) + number[-4:]
