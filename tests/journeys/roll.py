"""The people of the journeys: real-shaped ID numbers (valid check digits), never real people."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine as DbEngine

from models.applications import Application, Stage
from models.db import session_scope
from models.idcard import IdCard
from models.people import Beneficiary, Contact, FamilyMember, SchemeMembership

# 张德明: veteran and retiree, 84 in 2026, lives alone, writes by SMS from his phone on the roll.
ZHANG_ID, ZHANG_PHONE = "440702194205010036", "+8613812340001"
# 赵六: retiree, 88; his daughter 赵小梅 is on the roll as his child with her own phone.
ZHAO_ID, ZHAO_PHONE = "440703193805120011", "+8613700002222"
ZHAO_DAUGHTER_PHONE = "+8615000003333"
# 陳嘉欣: union member in medical mutual aid for 2026; reads Traditional Chinese, speaks Cantonese.
CHAN_ID, CHAN_PHONE = "440781195608080020", "+8613900001111"
# 王五: retiree, 81; his son lives in the United States and is on the roll with a +1 number.
WANG_ID, WANG_PHONE = "440702194503030043", "+8613600004444"
WANG_SON_PHONE = "+14155550123"
# 李桂英: retiree, prefers English (taught at a university); a stranger knows her ID ending.
LI_ID, LI_PHONE = "440702195011110068", "+8613500005555"
# 孙建国: veteran with an application already under review.
SUN_ID, SUN_PHONE = "440702194707070071", "+8613400006666"
SUN_APP = "NX-2025-000321"
# Someone not on the roll.
STRANGER_PHONE = "+8618600007777"
STRANGER_ID = "440704195202020084"


def _person(s: Any, settings: Any, number: str, name: str, phone: str | None, **kw: Any) -> Beneficiary:
    card = IdCard.parse(number)
    b = Beneficiary(name=name, id_hash=card.hashed(settings.id_key), id_masked=card.masked,
                    id_last6_hash=card.last6_hashed(settings.id_key), birth_date=card.birth_date, sex=card.sex,
                    district="蓬江区", community="白沙社区", **kw)
    s.add(b)
    s.flush()
    if phone:
        s.add(Contact(channel="sms", address=phone, beneficiary_id=b.id, verified=True))
    return b


def seed(db: DbEngine, settings: Any) -> None:
    with session_scope(db) as s:
        _person(s, settings, ZHANG_ID, "张德明", ZHANG_PHONE, is_veteran=True, is_retiree=True, living_alone=True,
                enlistment_date=date(1960, 3, 1), discharge_date=date(1966, 12, 1))
        zhao = _person(s, settings, ZHAO_ID, "赵六", ZHAO_PHONE, is_retiree=True)
        s.add(FamilyMember(beneficiary_id=zhao.id, relationship="child", name="赵小梅", phone=ZHAO_DAUGHTER_PHONE))
        chan = _person(s, settings, CHAN_ID, "陳嘉欣", CHAN_PHONE, is_union_member=True, language="zh-Hant")
        s.add(SchemeMembership(beneficiary_id=chan.id, scheme="medical_mutual_aid", period=2026,
                               paid_on=date(2026, 1, 10), amount_fen=10000))
        wang = _person(s, settings, WANG_ID, "王五", WANG_PHONE, is_retiree=True)
        s.add(FamilyMember(beneficiary_id=wang.id, relationship="child", name="王小明", phone=WANG_SON_PHONE))
        _person(s, settings, LI_ID, "李桂英", LI_PHONE, is_retiree=True, language="en")
        sun = _person(s, settings, SUN_ID, "孙建国", SUN_PHONE, is_veteran=True)
        s.add(Application(reference=SUN_APP, type="veteran_insurance", beneficiary_id=sun.id,
                          stage=Stage.PRELIMINARY_REVIEW.value, channel="sms",
                          created_at=datetime(2026, 2, 10, 2, 0, tzinfo=UTC)))
