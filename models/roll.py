"""Importing a beneficiary roll (CSV in UTF-8, UTF-8 with BOM or GB18030; or XLSX).

Every row is checked; valid rows are inserted or updated (keyed by the ID-card hash, so a
re-import changes nothing twice); bad rows are reported with their row number (the header
is row 1) and a reason a clerk understands. The whole import is one transaction.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlmodel import Session

from models.actions import audit
from models.base import utcnow
from models.idcard import IdCard, InvalidIdCard
from models.people import Beneficiary, BeneficiaryKind, Contact, Language
from models.phone import InvalidPhone, PhoneNumber

# Column name → the headers a clerk may use for it.
HEADERS: dict[str, tuple[str, ...]] = {
    "name": ("name", "姓名", "名字"),
    "id_card": ("id_card", "id", "身份证号", "身份证号码", "身份证"),
    "phone": ("phone", "mobile", "手机号", "手机号码", "手机", "联系电话", "电话"),
    "kind": ("kind", "类别", "人员类别", "类型"),
    "birth_date": ("birth_date", "出生日期", "生日"),
    "district": ("district", "区", "区县", "所属区"),
    "street": ("street", "街道", "镇街", "街道（镇）"),
    "community": ("community", "社区", "村居", "社区（村）"),
    "living_alone": ("living_alone", "独居", "是否独居"),
    "disabled": ("disabled", "残疾", "是否残疾"),
    "language": ("language", "语言"),
    "last_certified": ("last_certified", "上次认证日期", "上次认证", "认证日期"),
}
REQUIRED = ("name", "id_card", "phone", "kind")

KIND_WORDS: dict[str, str] = {
    "veteran": BeneficiaryKind.VETERAN.value, "退役军人": BeneficiaryKind.VETERAN.value,
    "退役士兵": BeneficiaryKind.VETERAN.value, "老兵": BeneficiaryKind.VETERAN.value,
    "retiree": BeneficiaryKind.RETIREE.value, "退休人员": BeneficiaryKind.RETIREE.value,
    "企业退休人员": BeneficiaryKind.RETIREE.value, "退休": BeneficiaryKind.RETIREE.value,
    "union_member": BeneficiaryKind.UNION_MEMBER.value, "职工": BeneficiaryKind.UNION_MEMBER.value,
    "工会会员": BeneficiaryKind.UNION_MEMBER.value, "会员": BeneficiaryKind.UNION_MEMBER.value,
}
YES = {"是", "yes", "y", "true", "1", "有"}
NO = {"否", "no", "n", "false", "0", "无", ""}
LANGUAGE_WORDS = {
    "": Language.ZH_HANS.value, "zh-hans": Language.ZH_HANS.value, "zh": Language.ZH_HANS.value,
    "简体": Language.ZH_HANS.value, "中文": Language.ZH_HANS.value, "普通话": Language.ZH_HANS.value,
    "zh-hant": Language.ZH_HANT.value, "繁體": Language.ZH_HANT.value, "繁体": Language.ZH_HANT.value,
    "粤语": Language.ZH_HANT.value, "en": Language.EN.value, "english": Language.EN.value, "英文": Language.EN.value,
}
_DATE_RE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")


class RollFileError(ValueError):
    """The file as a whole cannot be read (not a roll, unknown encoding, missing columns)."""


@dataclass
class RollRow:
    row: int
    name: str
    id_card: IdCard
    phone: str
    kinds: list[str]
    birth_date: date
    sex: str
    district: str
    street: str
    community: str
    living_alone: bool
    disabled: bool
    language: str
    last_certified: date | None


@dataclass
class ImportReport:
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    dry_run: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"imported": self.imported, "updated": self.updated, "rejected": self.rejected}


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")


def _clean(value: Any) -> str:
    """A cell as trimmed text: full-width forms folded (NFKC), invisible characters removed."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value)
    if not text.isascii() and not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    return _UNPRINTABLE.sub("", text).strip()


_phone_cache: dict[str, str | InvalidPhone] = {}
_MAINLAND_MOBILE = re.compile(r"^1[3-9]\d{9}$")


def _parse_phone(text: str) -> str:
    """E.164 for a roll phone. Mainland mobiles are judged by their 5-digit prefix, which is
    what decides validity, so a 100,000-row roll parses each prefix once."""
    if _MAINLAND_MOBILE.match(text):
        verdict = _phone_cache.get(text[:5])
        if verdict is None:
            try:
                PhoneNumber.parse(text)
                verdict = "+86"
            except InvalidPhone as exc:
                verdict = exc
            _phone_cache[text[:5]] = verdict
        if isinstance(verdict, InvalidPhone):
            raise verdict
        return "+86" + text
    return PhoneNumber.parse(text).e164


def parse_date(text: str) -> date:
    text = _clean(text)
    if re.fullmatch(r"\d{8}", text):
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    m = _DATE_RE.match(text)
    if not m:
        raise ValueError(text)
    return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))


def _yes_no(text: str, column: str) -> bool:
    low = text.lower()
    if low in YES:
        return True
    if low in NO:
        return False
    raise ValueError(f"“{column}”一栏只能填 是 或 否，这里是“{text}” ({column} must be yes or no)")


def read_table(path: Path) -> Iterator[list[Any]]:
    """Yield the rows of a CSV (UTF-8, UTF-8 BOM, GB18030) or XLSX file, header first."""
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        try:
            wb = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:
            raise RollFileError(f"无法打开Excel文件：{exc} (cannot open the workbook)") from exc
        for values in wb.active.iter_rows(values_only=True):  # type: ignore[union-attr]
            yield list(values)
        wb.close()
        return
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise RollFileError("文件编码无法识别，请另存为UTF-8或GB18030的CSV (unknown text encoding)")
    dialect: type[csv.Dialect] | csv.Dialect = csv.excel
    with contextlib.suppress(csv.Error):  # not sniffable: keep the Excel dialect
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",\t;")
    yield from csv.reader(io.StringIO(text, newline=""), dialect)


def _chinese_header(column: str) -> str:
    return next(alias for alias in HEADERS[column] if not alias.isascii())


def map_header(header: list[Any]) -> dict[str, int]:
    wanted = {alias.lower(): column for column, aliases in HEADERS.items() for alias in aliases}
    mapping: dict[str, int] = {}
    for index, cell in enumerate(header):
        column = wanted.get(_clean(cell).lower().replace(" ", ""))
        if column and column not in mapping:
            mapping[column] = index
    missing = [c for c in REQUIRED if c not in mapping]
    if missing:
        names = ", ".join(f"{_chinese_header(c)}/{c}" for c in missing)
        raise RollFileError(f"表头缺少必填列：{names} (missing required columns)")
    return mapping


def check_row(number: int, cells: list[Any], mapping: dict[str, int]) -> RollRow:
    """Validate one row; raise ValueError with a reason a clerk understands."""

    values = {column: _clean(cells[index]) if index < len(cells) else "" for column, index in mapping.items()}

    def get(column: str) -> str:
        return values.get(column, "")

    for column in REQUIRED:
        if not get(column):
            raise ValueError(f"缺少{_chinese_header(column)} (missing {column})")
    name = get("name")
    if len(name) > 100:
        raise ValueError("姓名太长 (name longer than 100 characters)")
    try:
        card = IdCard.parse(get("id_card"))
    except InvalidIdCard as exc:
        raise ValueError(str(exc)) from None
    try:
        phone = _parse_phone(get("phone"))
    except InvalidPhone as exc:
        raise ValueError(str(exc)) from None
    kinds: list[str] = []
    for word in re.split(r"[;；,，、/|+ ]+", get("kind")):
        if not word:
            continue
        kind = KIND_WORDS.get(word.lower())
        if kind is None:
            raise ValueError(f"类别“{word}”不认识，应为 退役军人/退休人员/职工 (unknown kind)")
        if kind not in kinds:
            kinds.append(kind)
    birth = card.birth_date
    if get("birth_date"):
        try:
            given = parse_date(get("birth_date"))
        except ValueError:
            raise ValueError(f"出生日期“{get('birth_date')}”不是日期 (birth date is not a date)") from None
        if given != birth:
            raise ValueError(f"出生日期{given.isoformat()}与身份证号不一致 (birth date does not match the ID number)")
    language = LANGUAGE_WORDS.get(get("language").lower())
    if language is None:
        raise ValueError(f"语言“{get('language')}”不认识，应为 简体/繁體/English (unknown language)")
    last_certified = None
    if get("last_certified"):
        try:
            last_certified = parse_date(get("last_certified"))
        except ValueError:
            raise ValueError(f"上次认证日期“{get('last_certified')}”不是日期 (last certification is not a date)") from None
        if last_certified < birth or last_certified > date.today():
            raise ValueError("上次认证日期不合理 (last certification date out of range)")
    return RollRow(
        row=number, name=name, id_card=card, phone=phone, kinds=kinds, birth_date=birth, sex=card.sex,
        district=get("district"), street=get("street"), community=get("community"),
        living_alone=_yes_no(get("living_alone"), "独居"), disabled=_yes_no(get("disabled"), "残疾"),
        language=language, last_certified=last_certified,
    )


_COMPARED = ("name", "birth_date", "sex", "is_veteran", "is_retiree", "is_union_member", "district", "street",
             "community", "living_alone", "disabled", "language", "last_certified_on")


def _values(row: RollRow, key: bytes) -> dict[str, Any]:
    return {
        "name": row.name, "id_hash": row.id_card.hashed(key), "id_masked": row.id_card.masked,
        "id_last6_hash": row.id_card.last6_hashed(key), "birth_date": row.birth_date, "sex": row.sex,
        "is_veteran": BeneficiaryKind.VETERAN.value in row.kinds,
        "is_retiree": BeneficiaryKind.RETIREE.value in row.kinds,
        "is_union_member": BeneficiaryKind.UNION_MEMBER.value in row.kinds,
        "district": row.district, "street": row.street, "community": row.community,
        "living_alone": row.living_alone, "disabled": row.disabled, "language": row.language,
        "last_certified_on": row.last_certified,
    }


def import_roll(
    engine: Engine,
    path: Path,
    *,
    id_key: bytes,
    actor: str = "system",
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Check every row, then write the valid ones in one transaction (nothing when dry_run)."""
    rows = read_table(path)
    try:
        header = next(rows)
    except StopIteration:
        raise RollFileError("文件是空的 (the file is empty)") from None
    mapping = map_header(header)
    report = ImportReport(dry_run=dry_run)
    valid: list[RollRow] = []
    seen: dict[str, int] = {}
    for number, cells in enumerate(rows, start=2):
        if progress and number % 1000 == 0:
            progress(1000)
        if not any(c is not None and str(c).strip() for c in cells):
            continue  # blank lines are not rows
        try:
            row = check_row(number, cells, mapping)
        except ValueError as exc:
            report.rejected.append({"row": number, "reason": str(exc)})
            continue
        first = seen.get(row.id_card.number)
        if first is not None:
            report.rejected.append({"row": number, "reason": f"与第{first}行身份证号重复 (same ID number as row {first})"})
            continue
        seen[row.id_card.number] = number
        valid.append(row)
    seen.clear()

    now = utcnow()
    table = Beneficiary.__table__  # type: ignore[attr-defined]
    contacts = Contact.__table__  # type: ignore[attr-defined]
    with Session(engine) as session:
        existing: dict[str, tuple[Any, ...]] = {}
        hashes = [r.id_card.hashed(id_key) for r in valid]
        for start in range(0, len(hashes), 5000):
            chunk = hashes[start:start + 5000]
            for rec in session.execute(select(table.c.id, table.c.id_hash, *[table.c[c] for c in _COMPARED])
                                       .where(table.c.id_hash.in_(chunk))):
                existing[rec[1]] = tuple(rec)
        new_rows: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        phones: dict[str, str] = {}
        for row in valid:
            values = _values(row, id_key)
            phones[values["id_hash"]] = row.phone
            found = existing.get(values["id_hash"])
            if found is None:
                new_rows.append({**values, "status": "active", "tags": [], "source": "import",
                                 "created_at": now, "updated_at": now})
                continue
            if tuple(found[2:]) != tuple(values[c] for c in _COMPARED):
                updates.append({"b_id": found[0], **{c: values[c] for c in _COMPARED}, "updated_at": now})
            else:
                report.unchanged += 1
        for start in range(0, len(new_rows), 1000):
            session.execute(insert(table), new_rows[start:start + 1000])
        if updates:
            from sqlalchemy import bindparam

            stmt = (update(table).where(table.c.id == bindparam("b_id"))
                    .values({c: bindparam(c) for c in (*_COMPARED, "updated_at")}))
            session.connection().execute(stmt, updates)
        existing_ids = {found[0] for found in existing.values()}
        given_new_phone = _upsert_phones(session, table, contacts, phones, now)
        # A known person whose roll phone is new to us has been updated too.
        updated_ids = {u["b_id"] for u in updates} | (given_new_phone & existing_ids)
        report.imported, report.updated = len(new_rows), len(updated_ids)
        report.unchanged -= len(updated_ids) - len(updates)
        if not dry_run:
            audit(session, actor, "roll.import", "file", path.name,
                  {"imported": report.imported, "updated": report.updated, "rejected": len(report.rejected)}, now)
            session.commit()
        else:
            session.rollback()
    return report


def _upsert_phones(session: Session, table: Any, contacts: Any, phones: dict[str, str], now: datetime) -> set[int]:
    """Give each imported person an SMS contact for the phone on the roll (verified by the office)."""
    if not phones:
        return set()
    ids: dict[str, int] = {}
    keys = list(phones)
    for start in range(0, len(keys), 5000):
        for b_id, id_hash in session.execute(select(table.c.id, table.c.id_hash)
                                             .where(table.c.id_hash.in_(keys[start:start + 5000]))):
            ids[id_hash] = b_id
    known: dict[str, int | None] = {}
    numbers = list(set(phones.values()))
    for start in range(0, len(numbers), 5000):
        for address, b_id in session.execute(select(contacts.c.address, contacts.c.beneficiary_id)
                                             .where(contacts.c.channel == "sms",
                                                    contacts.c.address.in_(numbers[start:start + 5000]))):
            known[address] = b_id
    new: list[dict[str, Any]] = []
    for id_hash, phone in phones.items():
        if phone in known:
            continue  # the number is already on file (possibly shared by a couple): keep its owner
        known[phone] = ids[id_hash]
        new.append({"beneficiary_id": ids[id_hash], "channel": "sms", "address": phone, "verified": True,
                    "verified_at": now, "created_at": now})
    for start in range(0, len(new), 1000):
        session.execute(insert(contacts), new[start:start + 1000])
    return {row["beneficiary_id"] for row in new}
