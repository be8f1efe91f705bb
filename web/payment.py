"""Checking what staff type into a payment notice: the amount, the account and the deadline.

The amount is in yuan, written with digits ("36000.50", "3,600 元", "¥1.2万") or in Chinese
numerals ("一千", "三万六千", read by cn2an); it must be more than 0 and below the office's
ceiling (NUANXIN_PAYMENT_NOTICE_MAX_YUAN), with at most two decimals. The account is a bank
account number (10 to 30 digits, spaces and dashes allowed) or the account's full name in
Chinese ("江门市社会保险基金专户"). The deadline is a date after today and within a year.
Every refusal says what to write instead, in the staff member's language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

from web.words import ui

_NOISE = re.compile(r"[\s,，元圆块¥￥]|人民币|RMB", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(\.\d+)?")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_ACCOUNT_DIGITS = re.compile(r"\d{10,30}")


@dataclass(frozen=True)
class PaymentNotice:
    amount_fen: int
    account: str
    deadline: date


class PaymentProblem(ValueError):
    """What is wrong, field by field (field -> message)."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(problems.values()))
        self.problems = problems


def parse_yuan(text: str, lang: str) -> Decimal:
    cleaned = _NOISE.sub("", text.strip())
    if not cleaned:
        raise ValueError(ui("请填写缴费金额。", lang))
    if cleaned.startswith("-"):
        raise ValueError(ui("缴费金额必须大于 0。", lang))
    if _NUMBER.fullmatch(cleaned):
        return Decimal(cleaned)
    if cleaned.endswith("万") and _NUMBER.fullmatch(cleaned[:-1]):
        return Decimal(cleaned[:-1]) * 10000
    if _CJK.search(cleaned):
        import cn2an

        try:
            return Decimal(str(cn2an.cn2an(cleaned, "smart")))
        except (ValueError, KeyError, IndexError, InvalidOperation):
            pass
    raise ValueError(ui("看不懂这个金额：请写数字，例如 1000 或 1000.50（也可以写“一千”）。", lang))


def check_payment_notice(amount: str, account: str, deadline: str, *, today: date, ceiling_yuan: int,
                         lang: str) -> PaymentNotice:
    problems: dict[str, str] = {}
    fen = 0
    try:
        yuan = parse_yuan(amount, lang)
        if yuan <= 0:
            raise ValueError(ui("缴费金额必须大于 0。", lang))
        if yuan >= ceiling_yuan:
            raise ValueError(ui("缴费金额应小于 {ceiling} 元；请核对有没有多写一个 0。", lang,
                                ceiling=f"{ceiling_yuan:,}"))
        if yuan != yuan.quantize(Decimal("0.01")):
            raise ValueError(ui("金额最多写到分（小数点后两位）。", lang))
        fen = int(yuan * 100)
    except ValueError as exc:
        problems["amount_yuan"] = str(exc)

    name = " ".join(account.split())
    compact = re.sub(r"[\s-]", "", name)
    if not name:
        problems["account"] = ui("请填写缴费账户。", lang)
    elif not (_ACCOUNT_DIGITS.fullmatch(compact) or (len(_CJK.findall(name)) >= 4 and len(name) <= 64)):
        problems["account"] = ui("账户格式不对：请写 10 到 30 位的银行账号，或账户全称，例如“江门市社会保险基金专户”。",
                                 lang)

    due = None
    try:
        due = date.fromisoformat(deadline.strip())
    except ValueError:
        problems["deadline"] = ui("请填写缴费截止日期，例如 2026-04-30。", lang)
    if due is not None:
        if due <= today:
            problems["deadline"] = ui("截止日期必须在今天以后。", lang)
        elif due > today + timedelta(days=366):
            problems["deadline"] = ui("截止日期太远了（超过一年），请核对年份。", lang)
    if problems:
        raise PaymentProblem(problems)
    assert due is not None  # no problem with the deadline: it parsed
    return PaymentNotice(fen, name, due)
