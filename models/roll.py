"""Importing a beneficiary roll (CSV in UTF-8 with or without BOM, GB18030, Big5 or UTF-16; or XLSX).

Every row is accounted for: imported, updated, unchanged, blank, or rejected with its row number
(the header is row 1) and a reason a clerk understands; or the whole file is refused with the line
where it broke (a stray quote that would swallow the rows after it, bytes in no accepted encoding,
a cell or a file past its limit). Rows are keyed by the ID-card hash, so a re-import changes
nothing twice.

The file is read as a stream (memory does not grow with its size): rows are checked and staged in
batches in a scratch SQLite file beside the database (duplicates found there), then written.
SQLite: each batch of writes is its own short transaction, so webhooks and pages wait at most one
batch; a failure part-way undoes the batches already written (and an import interrupted by a crash
is undone the next time an import starts), so a roll is imported whole or not at all. PostgreSQL:
the writes are one transaction.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import os
import re
import tempfile
import time
import unicodedata
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy import event as sa_event
from sqlalchemy.orm import configure_mappers
from sqlmodel import Session

from models.actions import audit
from models.base import utcnow
from models.db import is_sqlite, read_scope, refresh_statistics, secure_dir, session_scope
from models.idcard import IdCard, InvalidIdCard
from models.people import Beneficiary, BeneficiaryKind, Contact, Language
from models.phone import InvalidPhone, PhoneNumber
from models.staff import AuditLog

# Column name → the headers a clerk may use for it (Simplified first, then Traditional: a Big5
# roll from Hong Kong or Taiwan is written in Traditional characters).
HEADERS: dict[str, tuple[str, ...]] = {
    "name": ("name", "姓名", "名字"),
    "id_card": ("id_card", "id", "身份证号", "身份证号码", "身份证", "身份證號", "身份證號碼", "身份證"),
    "phone": ("phone", "mobile", "手机号", "手机号码", "手机", "联系电话", "电话", "手機號", "手機號碼", "手機",
              "聯繫電話", "聯絡電話", "電話"),
    "kind": ("kind", "类别", "人员类别", "类型", "類別", "人員類別", "類型"),
    "birth_date": ("birth_date", "出生日期", "生日"),
    "district": ("district", "区", "区县", "所属区", "區", "區縣", "所屬區"),
    "street": ("street", "街道", "镇街", "街道（镇）", "鎮街", "街道（鎮）"),
    "community": ("community", "社区", "村居", "社区（村）", "社區", "社區（村）"),
    "living_alone": ("living_alone", "独居", "是否独居", "獨居", "是否獨居"),
    "disabled": ("disabled", "残疾", "是否残疾", "殘疾", "是否殘疾"),
    "language": ("language", "语言", "語言"),
    "last_certified": ("last_certified", "上次认证日期", "上次认证", "认证日期", "上次認證日期", "上次認證", "認證日期"),
}
REQUIRED = ("name", "id_card", "phone", "kind")

_VETERAN, _RETIREE, _MEMBER = (BeneficiaryKind.VETERAN.value, BeneficiaryKind.RETIREE.value,
                               BeneficiaryKind.UNION_MEMBER.value)
KIND_WORDS: dict[str, str] = {
    "veteran": _VETERAN, "退役军人": _VETERAN, "退役士兵": _VETERAN, "老兵": _VETERAN, "退役軍人": _VETERAN,
    "retiree": _RETIREE, "退休人员": _RETIREE, "企业退休人员": _RETIREE, "退休": _RETIREE, "退休人員": _RETIREE,
    "企業退休人員": _RETIREE,
    "union_member": _MEMBER, "职工": _MEMBER, "工会会员": _MEMBER, "会员": _MEMBER, "職工": _MEMBER,
    "工會會員": _MEMBER, "會員": _MEMBER,
}
YES = {"是", "yes", "y", "true", "1", "有"}
NO = {"否", "no", "n", "false", "0", "无", "無", ""}
LANGUAGE_WORDS = {
    "": Language.ZH_HANS.value, "zh-hans": Language.ZH_HANS.value, "zh": Language.ZH_HANS.value,
    "简体": Language.ZH_HANS.value, "中文": Language.ZH_HANS.value, "普通话": Language.ZH_HANS.value,
    "簡體": Language.ZH_HANS.value, "普通話": Language.ZH_HANS.value,
    "zh-hant": Language.ZH_HANT.value, "繁體": Language.ZH_HANT.value, "繁体": Language.ZH_HANT.value,
    "粤语": Language.ZH_HANT.value, "粵語": Language.ZH_HANT.value, "廣東話": Language.ZH_HANT.value,
    "en": Language.EN.value, "english": Language.EN.value, "英文": Language.EN.value,
}
_DATE_RE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")
ACCEPTED_ENCODINGS = "UTF-8（可带BOM）、GB18030、Big5、UTF-16 / UTF-8 (with or without BOM), GB18030, Big5, UTF-16"


@dataclass(frozen=True)
class RollLimits:
    file_bytes: int = 512 * 1024 * 1024
    rows: int = 1_000_000
    columns: int = 64
    cell_chars: int = 1_000
    rejected: int = 10_000  # past this many bad rows the file is refused: its columns are likely wrong
    xlsx_uncompressed_bytes: int = 2 * 1024 * 1024 * 1024
    xlsx_shared_strings_bytes: int = 256 * 1024 * 1024
    # SQLite: rows per write transaction, and how long the lock is let go between two. 500 rows
    # held the lock 250-930 ms on a loaded 2-core machine, and webhooks waited behind them up to
    # 1.9 s; 100 rows hold it about a fifth of that. The pause is longer than the longest sleep
    # of SQLite's busy handler (100 ms), so every writer already waiting polls inside it and gets
    # in, and never shorter than the batch that came before it: the import holds the lock at most
    # half the time, however slow the machine.
    batch: int = 100
    pause_s: float = 0.15
    # Rows checked, staged and compared at a time (no write lock held: the scratch file, and reads).
    read_batch: int = 500


LIMITS = RollLimits()


class RollFileError(ValueError):
    """The file as a whole cannot be read (not a roll, unknown encoding, missing columns, a broken
    line, past a limit); the message says where and why."""


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
    blank: int = 0  # empty lines, which are not rows
    rows: int = 0  # data rows read (every one is imported, updated, unchanged, blank or rejected)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    dry_run: bool = False

    @property
    def unaccounted(self) -> int:
        """Rows read but neither written, found unchanged, blank nor reported: 0, always."""
        return self.rows - self.imported - self.updated - self.unchanged - self.blank - len(self.rejected)

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


# --- reading -------------------------------------------------------------------------------

def _decodes(sample: bytes, encoding: str) -> str | None:
    """The sample decoded, allowing a character cut at its end; None when it is not this encoding."""
    try:
        return codecs.getincrementaldecoder(encoding)(errors="strict").decode(sample, final=False)
    except (UnicodeDecodeError, LookupError):
        return None


def _header_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def _header_fits(text: str) -> bool:
    wanted = {alias.lower() for column in REQUIRED for alias in HEADERS[column] if not alias.isascii()}
    header = _header_line(text).lower()
    return sum(alias in header for alias in wanted) >= 2


def detect_encoding(sample: bytes) -> str:
    """UTF-8 (BOM or not), UTF-16 (BOM or not), GB18030 or Big5, from the file's first bytes;
    RollFileError naming the accepted encodings for anything else (Shift-JIS, EUC-KR, binary)."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    head = sample[:4096]
    if len(head) >= 4 and head.count(0) >= len(head) // 4:
        odd_zeros = head[1::2].count(0)
        even_zeros = head[0::2].count(0)
        encoding = "utf-16-le" if odd_zeros > even_zeros else "utf-16-be"
        if _decodes(sample, encoding) is not None:
            return encoding
    if _decodes(sample, "utf-8") is not None:
        return "utf-8"
    chinese = {enc: text for enc in ("gb18030", "big5") if (text := _decodes(sample, enc)) is not None}
    fitting = [enc for enc, text in chinese.items() if _header_fits(text)]
    if len(fitting) == 1:
        return fitting[0]
    from charset_normalizer import from_bytes

    best = from_bytes(sample[:65536]).best()
    guess = best.encoding.replace("_", "").lower() if best is not None else ""
    if guess in ("big5", "big5hkscs", "cp950") and "big5" in chinese:
        return "big5"
    if guess in ("gb18030", "gb2312", "gbk", "cp936", "hz") and "gb18030" in chinese:
        return "gb18030"
    if chinese and guess in ("", "ascii", "utf8"):
        return next(iter(chinese))
    named = f"（看起来是 {best.encoding}）" if best is not None and guess not in ("gb18030", "big5") else ""
    raise RollFileError(f"文件编码无法识别{named}，请另存为以下编码之一：{ACCEPTED_ENCODINGS} (unknown text encoding)")


def _read_csv(fh: BinaryIO, limits: RollLimits) -> Iterator[tuple[int, list[Any]]]:
    sample = fh.read(65536)
    fh.seek(0)
    encoding = detect_encoding(sample)
    text = io.TextIOWrapper(fh, encoding=encoding, errors="strict", newline="")
    head = text.read(4096)
    text.seek(0)
    dialect: type[csv.Dialect] | csv.Dialect = csv.excel
    with contextlib.suppress(csv.Error):  # not sniffable: keep the Excel dialect
        dialect = csv.Sniffer().sniff(head, delimiters=",\t;")
    reader = csv.reader(text, dialect)
    line = 0
    number = 0
    old_limit = csv.field_size_limit(limits.cell_chars * 4)
    try:
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise RollFileError(_broken_line(line + 1, str(exc))) from None
            except UnicodeDecodeError:
                raise RollFileError(f"第{line + 1}行附近的文字不是{encoding}编码，请另存为以下编码之一："
                                    f"{ACCEPTED_ENCODINGS} (line {line + 1}: not {encoding} text)") from None
            start, line = line + 1, reader.line_num
            if line != start:
                # A record over several physical lines: a line break inside a cell, or a quote
                # opened and never closed that would swallow the rows after it.
                raise RollFileError(
                    f"第{start}行：有一个引号（\"）没有配对或单元格里有换行，第{start}行到第{line}行连成了一行；"
                    f"请改正后再导入 (line {start}: a quote opened here is not closed, or a cell holds a line "
                    f"break: lines {start}-{line} would read as one row)")
            number += 1
            if number > limits.rows + 1:
                raise RollFileError(f"文件超过{limits.rows:,}行，请分成几个文件导入 (more than {limits.rows:,} rows)")
            yield start, cells
    finally:
        csv.field_size_limit(old_limit)


def _broken_line(line: int, detail: str) -> str:
    if "field larger than field limit" in detail:
        return (f"第{line}行：有一个单元格太长（引号没有配对？）(line {line}: a cell is far too long; "
                f"a quote opened and not closed?)")
    if "NUL" in detail:
        return f"第{line}行含有空字符，这不是文本文件 (line {line}: a NUL byte; not a text file)"
    return f"第{line}行无法读取：{detail} (line {line} cannot be read)"


def _read_xlsx(path: Path, limits: RollLimits) -> Iterator[tuple[int, list[Any]]]:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise RollFileError(f"无法打开Excel文件：{exc} (cannot open the workbook)") from exc
    total = sum(m.file_size for m in members)
    shared = sum(m.file_size for m in members if m.filename.endswith("sharedStrings.xml"))
    if total > limits.xlsx_uncompressed_bytes or shared > limits.xlsx_shared_strings_bytes:
        raise RollFileError(f"Excel文件解压后有{total // (1 << 20):,} MB，太大了；请删去多余内容或另存为CSV "
                            f"(the workbook unpacks to {total // (1 << 20):,} MB; too large)")
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise RollFileError(f"无法打开Excel文件：{exc} (cannot open the workbook)") from exc
    try:
        ws = wb.active
        if ws is None:
            raise RollFileError("Excel文件里没有工作表 (the workbook has no sheet)")
        for number, values in enumerate(ws.iter_rows(values_only=True, max_col=limits.columns), start=1):  # type: ignore[union-attr]
            if number > limits.rows + 1:
                raise RollFileError(f"文件超过{limits.rows:,}行，请分成几个文件导入 (more than {limits.rows:,} rows)")
            yield number, list(values)
    finally:
        wb.close()


def read_table(path: Path, limits: RollLimits = LIMITS) -> Iterator[tuple[int, list[Any]]]:
    """(row number, cells) for each row of a CSV or XLSX file, header first; streamed."""
    size = path.stat().st_size
    if size > limits.file_bytes:
        raise RollFileError(f"文件有{size // (1 << 20):,} MB，超过上限{limits.file_bytes // (1 << 20):,} MB，"
                            f"请分成几个文件导入 (the file is larger than {limits.file_bytes // (1 << 20):,} MB)")
    with path.open("rb") as fh:
        magic = fh.read(4)
        fh.seek(0)
        if magic == b"PK\x03\x04" or path.suffix.lower() in (".xlsx", ".xlsm"):
            yield from _read_xlsx(path, limits)
            return
        yield from _read_csv(fh, limits)


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


def check_row(number: int, cells: list[Any], mapping: dict[str, int], limits: RollLimits = LIMITS) -> RollRow:
    """Validate one row; raise ValueError with a reason a clerk understands."""

    for index in mapping.values():
        if index < len(cells) and isinstance(cells[index], str) and len(cells[index]) > limits.cell_chars:
            raise ValueError(f"有一个单元格超过{limits.cell_chars}个字符 (a cell is longer than "
                             f"{limits.cell_chars} characters)")
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
            raise ValueError(f"类别“{word[:20]}”不认识，应为 退役军人/退休人员/职工 (unknown kind)")
        if kind not in kinds:
            kinds.append(kind)
    birth = card.birth_date
    if get("birth_date"):
        try:
            given = parse_date(get("birth_date"))
        except ValueError:
            raise ValueError(f"出生日期“{get('birth_date')[:20]}”不是日期 (birth date is not a date)") from None
        if given != birth:
            raise ValueError(f"出生日期{given.isoformat()}与身份证号不一致 (birth date does not match the ID number)")
    language = LANGUAGE_WORDS.get(get("language").lower())
    if language is None:
        raise ValueError(f"语言“{get('language')[:20]}”不认识，应为 简体/繁體/English (unknown language)")
    last_certified = None
    if get("last_certified"):
        try:
            last_certified = parse_date(get("last_certified"))
        except ValueError:
            raise ValueError(f"上次认证日期“{get('last_certified')[:20]}”不是日期 "
                             "(last certification is not a date)") from None
        if last_certified < birth or last_certified > date.today():
            raise ValueError("上次认证日期不合理 (last certification date out of range)")
    return RollRow(
        row=number, name=name, id_card=card, phone=phone, kinds=kinds, birth_date=birth, sex=card.sex,
        district=get("district")[:64], street=get("street")[:64], community=get("community")[:64],
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


# --- the scratch file: checked rows between reading and writing -------------------------------

_STAGE = MetaData()
_STAGED = Table(
    "staged", _STAGE,
    Column("row", Integer, primary_key=True),
    Column("id_hash", String, nullable=False, unique=True),
    Column("id_masked", String, nullable=False),
    Column("id_last6_hash", String, nullable=False),
    Column("phone", String, nullable=False, index=True),
    Column("name", String), Column("birth_date", Date), Column("sex", String),
    Column("is_veteran", Boolean), Column("is_retiree", Boolean), Column("is_union_member", Boolean),
    Column("district", String), Column("street", String), Column("community", String),
    Column("living_alone", Boolean), Column("disabled", Boolean), Column("language", String),
    Column("last_certified_on", Date),
    # After comparing with the database: new | update | unchanged, the person's id, and (for an
    # update) what they were, so that a failed import can put them back.
    Column("action", String), Column("live_id", Integer),
    Column("old_name", String), Column("old_birth_date", Date), Column("old_sex", String),
    Column("old_is_veteran", Boolean), Column("old_is_retiree", Boolean), Column("old_is_union_member", Boolean),
    Column("old_district", String), Column("old_street", String), Column("old_community", String),
    Column("old_living_alone", Boolean), Column("old_disabled", Boolean), Column("old_language", String),
    Column("old_last_certified_on", Date), Column("old_updated_at", String),
)
_STATE = Table("state", _STAGE, Column("key", String, primary_key=True), Column("value", String))


class _Stage:
    """A scratch SQLite file (0600, in a 0700 folder) holding one import's checked rows."""

    def __init__(self, directory: Path, import_id: str | None = None) -> None:
        secure_dir(directory)
        self.import_id = import_id or uuid.uuid4().hex
        self.path = directory / f"roll-import-{self.import_id}.db"
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self.engine = create_engine(f"sqlite:///{self.path}")

        @sa_event.listens_for(self.engine, "connect")
        def _fast(dbapi_conn: Any, _record: Any) -> None:  # scratch data: a crash loses nothing of value
            dbapi_conn.execute("PRAGMA journal_mode=OFF")
            dbapi_conn.execute("PRAGMA synchronous=OFF")

        _STAGE.create_all(self.engine)

    def get(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(_STATE.c.value).where(_STATE.c.key == key)).scalar()

    def put(self, key: str, value: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(_STATE).where(_STATE.c.key == key))
            conn.execute(insert(_STATE), {"key": key, "value": value})

    def batches(self, size: int, *columns: Any, where: Any = None) -> Iterator[list[Any]]:
        after = 0
        while True:
            query = select(*columns).where(_STAGED.c.row > after)
            if where is not None:
                query = query.where(where)
            with self.engine.connect() as conn:
                rows = conn.execute(query.order_by(_STAGED.c.row).limit(size)).all()
            if not rows:
                return
            yield list(rows)
            after = rows[-1].row

    def close(self, *, remove: bool = True) -> None:
        self.engine.dispose()
        if remove:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _stage_dir(engine: Engine) -> Path:
    if is_sqlite(engine) and engine.url.database not in (None, "", ":memory:"):
        return Path(str(engine.url.database)).resolve().parent / "imports"
    return Path(tempfile.gettempdir()) / "nuanxin-imports"


@contextlib.contextmanager
def _one_import_at_a_time(directory: Path) -> Iterator[None]:
    """SQLite: imports write in batches between which others may write, so two at once would
    compare against each other's half-written rows."""
    import fcntl

    secure_dir(directory)
    with (directory / ".lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RollFileError("另一个名单正在导入，请等它完成后再试 (another roll import is running; "
                                "try again when it has finished)") from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _check_and_stage(rows: Iterator[tuple[int, list[Any]]], mapping: dict[str, int], stage: _Stage, id_key: bytes,
                     report: ImportReport, limits: RollLimits, progress: Callable[[int], None] | None) -> None:
    """Check every row; stage the valid ones, reject the rest (a repeated ID names its first row)."""
    pending: list[dict[str, Any]] = []

    def flush() -> None:
        if not pending:
            return
        with stage.engine.begin() as conn:
            first_rows = dict(conn.execute(select(_STAGED.c.id_hash, _STAGED.c.row).where(
                _STAGED.c.id_hash.in_([p["id_hash"] for p in pending]))).all())
            fresh: list[dict[str, Any]] = []
            for item in pending:
                first = first_rows.get(item["id_hash"])
                if first is not None:
                    reject(item["row"], f"与第{first}行身份证号重复 (same ID number as row {first})")
                    continue
                first_rows[item["id_hash"]] = item["row"]
                fresh.append(item)
            if fresh:
                conn.execute(insert(_STAGED), fresh)
        pending.clear()

    def reject(row: int, reason: str) -> None:
        report.rejected.append({"row": row, "reason": reason})
        if len(report.rejected) > limits.rejected:
            raise RollFileError(f"超过{limits.rejected:,}行有错，表头或列的顺序可能不对；请检查后再导入 "
                                f"(more than {limits.rejected:,} rows are wrong: are the columns right?)")

    for number, cells in rows:
        report.rows += 1
        if progress and report.rows % 1000 == 0:
            progress(1000)
        if not any(c is not None and str(c).strip() for c in cells):
            report.blank += 1  # blank lines are not rows
            continue
        try:
            row = check_row(number, cells, mapping, limits)
        except ValueError as exc:
            reject(number, str(exc))
            continue
        pending.append({"row": number, "phone": row.phone, **_values(row, id_key)})
        if len(pending) >= limits.read_batch:
            flush()
    flush()


_OLD = {c: f"old_{c}" for c in _COMPARED}


def _compare(engine: Engine, stage: _Stage, report: ImportReport, limits: RollLimits) -> None:
    """Mark each staged row new, update or unchanged against the database (read-only), keeping an
    updated person's values as they were."""
    table = Beneficiary.__table__  # type: ignore[attr-defined]
    for batch in stage.batches(limits.read_batch, _STAGED):
        with read_scope(engine) as session:
            found = {rec.id_hash: rec for rec in session.execute(
                select(table.c.id, table.c.id_hash, table.c.updated_at, *[table.c[c] for c in _COMPARED])
                .where(table.c.id_hash.in_([r.id_hash for r in batch])))}
        marks: list[dict[str, Any]] = []
        for r in batch:
            live = found.get(r.id_hash)
            if live is None:
                marks.append({"r": r.row, "action": "new", "live_id": None})
                continue
            same = all(getattr(live, c) == getattr(r, c) for c in _COMPARED)
            mark = {"r": r.row, "action": "unchanged" if same else "update", "live_id": live.id}
            mark.update({_OLD[c]: getattr(live, c) for c in _COMPARED})
            mark["old_updated_at"] = live.updated_at.isoformat()
            marks.append(mark)
        with stage.engine.begin() as conn:
            for action in ("new", "update", "unchanged"):
                group = [m for m in marks if m["action"] == action]
                if not group:
                    continue
                columns = [k for k in group[0] if k != "r"]
                conn.execute(update(_STAGED).where(_STAGED.c.row == bindparam("r"))
                             .values({c: bindparam(c) for c in columns}), group)


def _count_dry_run(engine: Engine, stage: _Stage, report: ImportReport, limits: RollLimits) -> None:
    """What writing would do, without writing: a known person whose roll phone is new to us (and
    not taken by an earlier row) would be updated too."""
    contacts = Contact.__table__  # type: ignore[attr-defined]
    updated = 0
    for batch in stage.batches(limits.read_batch, _STAGED.c.row, _STAGED.c.phone, _STAGED.c.action):
        phones = sorted({r.phone for r in batch})
        with read_scope(engine) as session:
            known = set(session.execute(select(contacts.c.address).where(
                contacts.c.channel == "sms", contacts.c.address.in_(phones))).scalars())
        with stage.engine.connect() as conn:
            earlier = dict(conn.execute(select(_STAGED.c.phone, _STAGED.c.row).where(
                _STAGED.c.phone.in_(phones)).order_by(_STAGED.c.row.desc())).all())
        for r in batch:
            if r.action == "new":
                report.imported += 1
            elif r.action == "update" or (r.phone not in known and earlier.get(r.phone) == r.row):
                updated += 1
            else:
                report.unchanged += 1
    report.updated = updated


def _write(engine: Engine, stage: _Stage, report: ImportReport, *, actor: str, file_name: str,
           limits: RollLimits) -> None:
    """Write the staged rows: SQLite in short transactions (undone together on failure),
    PostgreSQL in one. The audit row is written with the last batch: it marks the import done."""
    now = utcnow()
    table = Beneficiary.__table__  # type: ignore[attr-defined]
    contacts = Contact.__table__  # type: ignore[attr-defined]
    stage.put("written_at", now.isoformat())
    stage.put("state", "writing")
    batched = is_sqlite(engine)
    updated_ids: set[int] = set()
    imported = 0

    @dataclass
    class Prepared:
        """One batch's statements' parameters, built before its transaction opens."""

        new: list[dict[str, Any]]
        changes: list[dict[str, Any]]
        phones: dict[str, str]
        known: set[int]

    def prepare(batch: list[Any]) -> Prepared:
        values = {r.row: {c: getattr(r, c) for c in ("id_hash", "id_masked", "id_last6_hash", *_COMPARED)}
                  for r in batch}
        return Prepared(
            new=[{**values[r.row], "status": "active", "tags": [], "source": "import", "created_at": now,
                  "updated_at": now} for r in batch if r.action == "new"],
            changes=[{"b_id": r.live_id, **{c: values[r.row][c] for c in _COMPARED}, "updated_at": now}
                     for r in batch if r.action == "update"],
            phones={r.id_hash: r.phone for r in batch},
            known={r.live_id for r in batch if r.live_id is not None})

    def write_batch(session: Session, batch: Prepared) -> None:
        nonlocal imported
        if batch.new:
            session.execute(insert(table), batch.new)
        if batch.changes:
            session.connection().execute(update(table).where(table.c.id == bindparam("b_id"))
                                         .values({c: bindparam(c) for c in (*_COMPARED, "updated_at")}),
                                         batch.changes)
        given = _upsert_phones(session, table, contacts, batch.phones, now)
        updated_ids.update(u["b_id"] for u in batch.changes)
        updated_ids.update(given & batch.known)
        imported += len(batch.new)

    configure_mappers()  # once, now: not inside the first write transaction (the audit row's class)
    batches = list(_batch_bounds(stage, limits.batch))
    try:
        if batched:
            held = 0.0
            for index, (low, high) in enumerate(batches):
                prepared = prepare(_staged_between(stage, low, high))
                if index:
                    time.sleep(max(limits.pause_s, min(held, 1.0)))
                started = time.monotonic()
                with session_scope(engine, immediate=True) as session:
                    write_batch(session, prepared)
                    if index == len(batches) - 1:
                        _audit_import(session, actor, file_name, stage, imported, len(updated_ids), report, now)
                held = time.monotonic() - started  # with any wait for the lock: others had it then
            if not batches:
                with session_scope(engine, immediate=True) as session:
                    _audit_import(session, actor, file_name, stage, 0, 0, report, now)
        else:
            with session_scope(engine) as session:
                for low, high in batches:
                    write_batch(session, prepare(_staged_between(stage, low, high)))
                _audit_import(session, actor, file_name, stage, imported, len(updated_ids), report, now)
    except BaseException:
        if batched:
            _undo(engine, stage, limits)
        raise
    stage.put("state", "written")
    report.imported, report.updated = imported, len(updated_ids)
    report.unchanged = report.rows - report.blank - len(report.rejected) - imported - len(updated_ids)


def _batch_bounds(stage: _Stage, size: int) -> Iterator[tuple[int, int]]:
    for batch in stage.batches(size, _STAGED.c.row):
        yield batch[0].row, batch[-1].row


def _staged_between(stage: _Stage, low: int, high: int) -> list[Any]:
    with stage.engine.connect() as conn:
        return list(conn.execute(select(_STAGED).where(_STAGED.c.row.between(low, high)).order_by(_STAGED.c.row)))


def _audit_import(session: Session, actor: str, file_name: str, stage: _Stage, imported: int, updated: int,
                  report: ImportReport, now: datetime) -> None:
    audit(session, actor, "roll.import", "file", file_name[:64],
          {"imported": imported, "updated": updated, "rejected": len(report.rejected),
           "import_id": stage.import_id}, now)


def _undo(engine: Engine, stage: _Stage, limits: RollLimits) -> None:
    """Take back what a failed or interrupted SQLite import wrote, batch by batch: the people it
    added (with their phones), the phones it gave to people already known, the changes it made
    (unless someone changed that person again since)."""
    written_at = stage.get("written_at")
    if written_at is None:
        return
    at = datetime.fromisoformat(written_at)
    table = Beneficiary.__table__  # type: ignore[attr-defined]
    contacts = Contact.__table__  # type: ignore[attr-defined]
    for batch in stage.batches(limits.batch, _STAGED):
        with session_scope(engine, immediate=True) as session:
            hashes = [r.id_hash for r in batch if r.action == "new"]
            added = [b_id for (b_id,) in session.execute(select(table.c.id).where(
                table.c.id_hash.in_(hashes), table.c.created_at == at))] if hashes else []
            phones = [r.phone for r in batch]
            session.execute(delete(contacts).where(
                contacts.c.channel == "sms", contacts.c.address.in_(phones), contacts.c.created_at == at))
            if added:
                session.execute(delete(table).where(table.c.id.in_(added)))
            restore = [{"b_id": r.live_id, "at": at, **{c: getattr(r, _OLD[c]) for c in _COMPARED},
                        "updated_at": datetime.fromisoformat(r.old_updated_at)}
                       for r in batch if r.action == "update"]
            if restore:
                session.connection().execute(
                    update(table).where(table.c.id == bindparam("b_id"), table.c.updated_at == bindparam("at"))
                    .values({c: bindparam(c) for c in (*_COMPARED, "updated_at")}), restore)
    stage.put("state", "undone")


def recover_interrupted_imports(engine: Engine) -> int:
    """Undo what imports interrupted by a crash wrote (SQLite); an import whose audit row was
    written finished and is kept. Returns how many were undone. Called before each import."""
    directory = _stage_dir(engine)
    undone = 0
    for path in sorted(directory.glob("roll-import-*.db")) if directory.exists() else []:
        stale = time.time() - path.stat().st_mtime > 3600
        stage = _Stage(directory, path.stem.removeprefix("roll-import-"))
        state = stage.get("state")
        if state != "writing":  # a check still running (dry run), or one that died: removed once old
            stage.close(remove=stale)
            continue
        try:
            if is_sqlite(engine):
                with read_scope(engine) as session:
                    finished = any(row.details.get("import_id") == stage.import_id for row in session.execute(
                        select(AuditLog).where(AuditLog.action == "roll.import")  # type: ignore[arg-type]
                        .order_by(AuditLog.id.desc()).limit(50)).scalars())  # type: ignore[union-attr]
                if not finished:
                    _undo(engine, stage, LIMITS)
                    undone += 1
        finally:
            stage.close()
    return undone


def import_roll(
    engine: Engine,
    path: Path,
    *,
    id_key: bytes,
    actor: str = "system",
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
    limits: RollLimits = LIMITS,
) -> ImportReport:
    """Check every row, then write the valid ones, the whole roll or nothing (nothing when dry_run).
    Raises RollFileError when the file as a whole cannot be used."""
    directory = _stage_dir(engine)
    lock = _one_import_at_a_time(directory) if is_sqlite(engine) and not dry_run else contextlib.nullcontext()
    with lock:
        if is_sqlite(engine) and not dry_run:
            recover_interrupted_imports(engine)
        rows = read_table(path, limits)
        try:
            _, header = next(rows)
        except StopIteration:
            raise RollFileError("文件是空的 (the file is empty)") from None
        mapping = map_header(header)
        report = ImportReport(dry_run=dry_run)
        stage = _Stage(directory)
        try:
            _check_and_stage(rows, mapping, stage, id_key, report, limits, progress)
            _compare(engine, stage, report, limits)
            if dry_run:
                _count_dry_run(engine, stage, report, limits)
            else:
                _write(engine, stage, report, actor=actor, file_name=path.name, limits=limits)
                if report.imported:
                    refresh_statistics(engine)  # the planner learns the roll's new size at once
        finally:
            stage.close()
    report.rejected.sort(key=lambda item: item["row"])
    return report


def _upsert_phones(session: Session, table: Any, contacts: Any, phones: dict[str, str], now: datetime) -> set[int]:
    """Give each imported person an SMS contact for the phone on the roll (verified by the office);
    returns who got one."""
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
