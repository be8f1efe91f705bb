"""A realistic generated roll so that `make run` shows a living system.

A few thousand people across Jiangmen's districts, all three kinds, ages 55–98, some
living alone, some over 80, some opted out, a few applications at different stages,
and three staff accounts. Deterministic (seeded) so demos and screenshots repeat.
"""

from __future__ import annotations

import csv
import random
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, select

from models.actions import audit
from models.applications import Application, ApplicationStageChange, Stage
from models.base import utcnow
from models.db import writer
from models.idcard import check_digit
from models.people import Beneficiary, Contact, SchemeMembership
from models.roll import ImportReport, import_roll
from models.staff import Role, StaffUser, hash_password

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文"
GIVEN = "国华建明伟强军平志文秀英芳丽敏静玉兰桂珍淑凤霞德福荣海林永春金成庆光生荣耀洪良贵新友兴"
AREAS: dict[str, tuple[str, dict[str, list[str]]]] = {
    "蓬江区": ("440703", {"白沙街道": ["白沙社区", "聚德社区", "东华社区"], "环市街道": ["篁庄社区", "丰乐社区"],
                          "潮连街道": ["潮连社区", "富岗社区"]}),
    "江海区": ("440704", {"江南街道": ["江南社区", "文昌社区"], "外海街道": ["外海社区", "麻三社区"],
                          "礼乐街道": ["礼乐社区", "新民社区"]}),
    "新会区": ("440705", {"会城街道": ["仁寿社区", "城南社区", "东庆社区"], "大泽镇": ["大泽社区"],
                          "司前镇": ["司前社区"]}),
}
KIND_MIX = [("退役军人", 30), ("退休人员", 45), ("职工", 12), ("退役军人;退休人员", 8), ("退休人员;职工", 5)]
STAFF = [
    ("admin", "系统管理员", [Role.ADMIN.value], "admin-demo"),
    ("li.caseworker", "李社工", [Role.CASEWORKER.value, Role.COMPOSER.value], "caseworker-demo"),
    ("chen.approver", "陈科长", [Role.APPROVER.value, Role.CASEWORKER.value], "approver-demo"),
]


def make_id(rng: random.Random, area: str, born: date) -> str:
    first17 = f"{area}{born:%Y%m%d}{rng.randint(0, 999):03d}"
    return first17 + check_digit(first17)


# Mobile prefixes in use in mainland China (phonenumbers accepts these).
MOBILE_PREFIXES = ("130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "153",
                   "155", "156", "157", "158", "159", "177", "180", "181", "182", "183", "185", "186", "187",
                   "188", "189", "199")


def make_phone(rng: random.Random) -> str:
    return f"{rng.choice(MOBILE_PREFIXES)}{rng.randint(0, 99999999):08d}"


def roll_rows(count: int, *, seed: int = 7, today: date | None = None) -> list[dict[str, str]]:
    """Generated roll rows, with the same headers a clerk's spreadsheet would have."""
    rng = random.Random(seed)
    today = today or date.today()
    rows = []
    kinds = [k for k, w in KIND_MIX for _ in range(w)]
    for _ in range(count):
        district = rng.choice(list(AREAS))
        area, streets = AREAS[district]
        street = rng.choice(list(streets))
        age = min(98, max(55, int(rng.triangular(55, 98, 70))))
        born = today - timedelta(days=age * 365 + rng.randint(0, 364))
        last_cert = today - timedelta(days=rng.randint(200, 400))
        rows.append({
            "姓名": rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if rng.random() < 0.7 else ""),
            "身份证号": make_id(rng, area, born),
            "手机号": make_phone(rng),
            "类别": rng.choice(kinds),
            "区": district, "街道": street, "社区": rng.choice(streets[street]),
            "独居": "是" if rng.random() < (0.25 if age > 80 else 0.1) else "否",
            "残疾": "是" if rng.random() < 0.06 else "否",
            "语言": rng.choice(["简体"] * 18 + ["繁體", "English"]),
            "上次认证日期": last_cert.isoformat(),
        })
    return rows


def write_roll_csv(path: Path, rows: list[dict[str, str]], encoding: str = "utf-8-sig") -> Path:
    with path.open("w", newline="", encoding=encoding) as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def load_demo(engine: Engine, *, id_key: bytes, people: int = 3000, seed: int = 7) -> dict[str, Any]:
    """Load the demo roll and its surroundings. Running it twice adds nothing the second time."""
    with Session(engine) as session:
        if session.exec(select(func.count()).select_from(StaffUser)).one():
            return {"loaded": False, "reason": "demo data already present"}
    with tempfile.TemporaryDirectory() as tmp:
        report: ImportReport = import_roll(engine, write_roll_csv(Path(tmp) / "demo-roll.csv", roll_rows(people, seed=seed)),
                                           id_key=id_key, actor="demo")
    rng = random.Random(seed + 1)
    now = utcnow()
    year = date.today().year
    with Session(writer(engine)) as session:
        for username, display, roles, password in STAFF:
            session.add(StaffUser(username=username, display_name=display, roles=roles,
                                  password_hash=hash_password(password)))
        people_rows = session.exec(select(Beneficiary)).all()
        sms = {c.beneficiary_id: c for c in session.exec(select(Contact).where(Contact.channel == "sms")).all()}
        for b in people_rows:
            assert b.id is not None  # a stored row
            if rng.random() < 0.35:
                session.add(Contact(beneficiary_id=b.id, channel="telegram", address=str(5_000_000_000 + b.id),
                                    verified=True, verified_at=now))
            if rng.random() < 0.03 and b.id in sms:
                sms[b.id].opted_out_at = now
                sms[b.id].opted_out_reason = "replied TD"
                session.add(sms[b.id])
            if b.is_union_member:
                session.add(SchemeMembership(beneficiary_id=b.id, scheme="medical_mutual_aid", period=year,
                                             paid_on=date(year, 1, 15), amount_fen=10000))
            if b.is_retiree:
                session.add(SchemeMembership(beneficiary_id=b.id, scheme="pension", period=year, payment_day=10))
        veterans = [b for b in people_rows if b.is_veteran][:40]
        stages = [Stage.STAGED, Stage.ACCEPTED, Stage.PRELIMINARY_REVIEW, Stage.VERIFICATION,
                  Stage.PAYMENT_NOTICE, Stage.RETURNED, Stage.COMPLETED]
        for n, b in enumerate(veterans, start=1):
            assert b.id is not None  # a stored row
            stage = stages[n % len(stages)].value
            app = Application(reference=f"NX-{year}-{n:06d}", type="veteran_insurance", beneficiary_id=b.id,
                              channel="sms", stage=stage, stage_changed_at=now - timedelta(days=rng.randint(1, 40)),
                              data={"placement_unit": "江门市某国有企业"})
            if stage == Stage.PAYMENT_NOTICE.value:
                app.payment_amount_fen = rng.randint(20_000, 90_000) * 100
                app.payment_account = "江门市社会保险基金专户"
                app.payment_deadline = date.today() + timedelta(days=rng.randint(2, 20))
            if stage == Stage.RETURNED.value:
                app.return_reason = "请补交安置介绍信复印件"
            session.add(app)
            session.flush()
            assert app.id is not None  # assigned by the flush
            session.add(ApplicationStageChange(application_id=app.id, from_stage=None, to_stage=stage, actor="demo"))
        audit(session, "demo", "demo.load", "roll", "demo", {"people": report.imported})
        session.commit()
    return {"loaded": True, "people": report.imported, "staff": [s[0] for s in STAFF]}
