"""Roll import: every row checked, bad rows reported by number and reason, nothing twice."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, select
from typer.testing import CliRunner

from models.demo import roll_rows, write_roll_csv
from models.idcard import check_digit
from models.people import Beneficiary, Contact
from models.roll import RollFileError, import_roll
from models.staff import AuditLog

KEY = b"test-id-key"


def _break(row: dict[str, str], how: int) -> tuple[dict[str, str], str]:
    """Damage a row in one of the ways clerks' spreadsheets really are damaged."""
    row = dict(row)
    if how == 0:
        row["身份证号"] = row["身份证号"][:17] + ("0" if row["身份证号"][17] != "0" else "1")
        return row, "校验位"
    if how == 1:
        row["手机号"] = "1234"
        return row, "手机号"
    if how == 2:
        row["类别"] = "学生"
        return row, "类别"
    if how == 3:
        row["姓名"] = ""
        return row, "缺少姓名"
    if how == 4:
        row["身份证号"] = row["身份证号"][:10]
        return row, "18位"
    row["独居"] = "也许"
    return row, "独居"


def _broken_roll(tmp_path: Path, total: int = 1000, broken: int = 100) -> tuple[Path, dict[int, str]]:
    rows = roll_rows(total, seed=3)
    rng = random.Random(5)
    expected: dict[int, str] = {}
    for index in rng.sample(range(total), broken):
        rows[index], fragment = _break(rows[index], index % 6)
        expected[index + 2] = fragment  # the header is row 1
    return write_roll_csv(tmp_path / "roll.csv", rows), expected


def test_broken_rows_are_reported_and_the_rest_imported_once(db_engine: Engine, tmp_path: Path) -> None:
    """1,000 rows with 100 broken: 900 imported, the 100 reported with row and reason;
    importing the same file again imports and updates nothing."""
    path, expected = _broken_roll(tmp_path)
    report = import_roll(db_engine, path, id_key=KEY)
    assert report.imported == 900
    assert report.updated == 0
    assert {r["row"] for r in report.rejected} == set(expected)
    for item in report.rejected:
        assert expected[item["row"]] in item["reason"], item
    again = import_roll(db_engine, path, id_key=KEY)
    assert (again.imported, again.updated, len(again.rejected)) == (0, 0, 100)
    with Session(db_engine) as s:
        assert s.exec(select(func.count()).select_from(Beneficiary)).one() == 900
        assert s.exec(select(func.count()).select_from(Contact)).one() == 900


def test_changed_row_counts_as_updated_not_imported(db_engine: Engine, tmp_path: Path) -> None:
    """A re-import with one person moved to another community updates exactly that person."""
    rows = roll_rows(20, seed=4)
    import_roll(db_engine, write_roll_csv(tmp_path / "a.csv", rows), id_key=KEY)
    rows[3]["社区"] = "新社区"
    rows[5]["手机号"] = "13900001111"
    report = import_roll(db_engine, write_roll_csv(tmp_path / "b.csv", rows), id_key=KEY)
    assert (report.imported, report.updated) == (0, 2)
    with Session(db_engine) as s:
        assert s.exec(select(Beneficiary).where(Beneficiary.community == "新社区")).one()
        assert s.exec(select(Contact).where(Contact.address == "+8613900001111")).one().verified


def test_id_numbers_are_stored_hashed_and_masked_never_plain(sqlite_engine: Engine, tmp_path: Path) -> None:
    rows = roll_rows(5, seed=9)
    import_roll(sqlite_engine, write_roll_csv(tmp_path / "r.csv", rows), id_key=KEY)
    dump = "\n".join(sqlite_engine.raw_connection().driver_connection.iterdump())  # type: ignore[union-attr]
    for row in rows:
        assert row["身份证号"] not in dump
        assert row["身份证号"][:4] + "**********" + row["身份证号"][-4:] in dump


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_csv_in_each_encoding_clerks_use_is_read(sqlite_engine: Engine, tmp_path: Path, encoding: str) -> None:
    rows = roll_rows(10, seed=1)
    path = write_roll_csv(tmp_path / "r.csv", rows, encoding=encoding)
    report = import_roll(sqlite_engine, path, id_key=KEY)
    assert report.imported == 10 and not report.rejected
    with Session(sqlite_engine) as s:
        names = set(s.exec(select(Beneficiary.name)).all())
    assert names == {r["姓名"] for r in rows}


def test_xlsx_with_english_headers_is_read(sqlite_engine: Engine, tmp_path: Path) -> None:
    from openpyxl import Workbook

    rows = roll_rows(8, seed=2)
    wb = Workbook()
    ws = wb.active
    ws.append(["name", "id_card", "phone", "kind", "district", "living_alone", "language", "last_certified"])
    for r in rows:
        ws.append([r["姓名"], r["身份证号"], int(r["手机号"]), "veteran;retiree", r["区"], "yes", "English",
                   r["上次认证日期"]])
    wb.save(tmp_path / "roll.xlsx")
    report = import_roll(sqlite_engine, tmp_path / "roll.xlsx", id_key=KEY)
    assert report.imported == 8, report.rejected
    with Session(sqlite_engine) as s:
        people = s.exec(select(Beneficiary)).all()
    assert all(p.is_veteran and p.is_retiree and p.living_alone and p.language == "en" for p in people)


def test_birth_date_must_agree_with_the_id_number(sqlite_engine: Engine, tmp_path: Path) -> None:
    rows = roll_rows(2, seed=6)
    for r in rows:
        r["出生日期"] = r["身份证号"][6:10] + "-" + r["身份证号"][10:12] + "-" + r["身份证号"][12:14]
    rows[1]["出生日期"] = "1950-01-01" if rows[1]["身份证号"][6:14] != "19500101" else "1951-01-01"
    report = import_roll(sqlite_engine, write_roll_csv(tmp_path / "r.csv", rows), id_key=KEY)
    assert report.imported == 1
    assert report.rejected[0]["row"] == 3 and "不一致" in report.rejected[0]["reason"]


def test_the_same_person_twice_in_one_file_is_rejected_naming_the_first_row(sqlite_engine: Engine,
                                                                            tmp_path: Path) -> None:
    rows = roll_rows(3, seed=8)
    rows.append(dict(rows[0]))
    report = import_roll(sqlite_engine, write_roll_csv(tmp_path / "r.csv", rows), id_key=KEY)
    assert report.imported == 3
    assert report.rejected == [{"row": 5, "reason": "与第2行身份证号重复 (same ID number as row 2)"}]


def test_dry_run_writes_nothing(db_engine: Engine, tmp_path: Path) -> None:
    path, _ = _broken_roll(tmp_path, total=50, broken=5)
    report = import_roll(db_engine, path, id_key=KEY, dry_run=True)
    assert report.imported == 45
    with Session(db_engine) as s:
        assert s.exec(select(func.count()).select_from(Beneficiary)).one() == 0
        assert s.exec(select(func.count()).select_from(AuditLog)).one() == 0


def test_a_crash_mid_import_leaves_nothing_half_written(db_engine: Engine, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """People are written before their phones; a failure while writing phones undoes the people too."""
    import models.roll as roll

    def explode(*args: object, **kwargs: object) -> set[int]:
        raise RuntimeError("disk full")

    monkeypatch.setattr(roll, "_upsert_phones", explode)
    with pytest.raises(RuntimeError):
        import_roll(db_engine, write_roll_csv(tmp_path / "r.csv", roll_rows(30, seed=2)), id_key=KEY)
    with Session(db_engine) as s:
        assert s.exec(select(func.count()).select_from(Beneficiary)).one() == 0


def test_a_file_without_required_columns_is_refused_as_a_whole(sqlite_engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["姓名", "手机号"], ["张三", "13800138000"]])
    with pytest.raises(RollFileError, match="身份证号"):
        import_roll(sqlite_engine, path, id_key=KEY)


def test_unreadable_bytes_are_refused_with_a_plain_message(sqlite_engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(bytes(range(128, 256)) * 10)
    with pytest.raises(RollFileError):
        import_roll(sqlite_engine, path, id_key=KEY)


def test_control_characters_and_full_width_digits_are_cleaned(sqlite_engine: Engine, tmp_path: Path) -> None:
    rows = roll_rows(1, seed=12)
    full_width = "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in rows[0]["身份证号"])
    rows[0]["身份证号"] = "\u200b" + full_width + "\x07"
    rows[0]["手机号"] = " " + rows[0]["手机号"] + "\t"
    report = import_roll(sqlite_engine, write_roll_csv(tmp_path / "r.csv", rows), id_key=KEY)
    assert report.imported == 1, report.rejected


def test_cli_json_prints_exactly_one_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli import app
    from settings import get_settings

    monkeypatch.setenv("NUANXIN_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    get_settings.cache_clear()
    path, expected = _broken_roll(tmp_path, total=40, broken=4)
    result = CliRunner().invoke(app, ["roll", "import", str(path), "--json"])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"imported", "updated", "rejected"}
    assert data["imported"] == 36 and sorted(r["row"] for r in data["rejected"]) == sorted(expected)


def test_check_digit_follows_gb11643() -> None:
    assert check_digit("11010519491231002") == "X"
    assert check_digit("44070319550101123") in "0123456789X"


def test_after_an_import_a_broadcast_reads_the_roll_in_id_order(sqlite_engine: Engine, tmp_path: Path) -> None:
    """The import leaves the planner's statistics: a broadcast's batch of recipients is then read
    by walking the roll from the last id queued, not by sorting every active person each batch
    (at 100,000 people 0.2 s a batch instead of 0.03 s)."""
    from datetime import date

    from sqlalchemy import event

    from outreach.audiences import AudienceFilter, audience_recipients

    import_roll(sqlite_engine, write_roll_csv(tmp_path / "roll.csv", roll_rows(2000, seed=6)), id_key=KEY)
    statements: list[tuple[str, object]] = []

    def keep(_conn: object, _cursor: object, statement: str, parameters: object, *_: object) -> None:
        statements.append((statement, parameters))

    event.listen(sqlite_engine, "before_cursor_execute", keep)
    try:
        with Session(sqlite_engine) as s:
            batch = audience_recipients(s, AudienceFilter(), date(2026, 3, 2), after_id=500, limit=100)
    finally:
        event.remove(sqlite_engine, "before_cursor_execute", keep)
    assert len(batch) == 100 and batch[0].beneficiary_id > 500
    statement, parameters = statements[-1]
    with sqlite_engine.connect() as conn:
        plan = [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]
    assert any("beneficiary USING INTEGER PRIMARY KEY (rowid>?)" in step for step in plan), plan
