"""Roll import under bad files: every row accounted for, or the file refused with the line where it
broke; limits with clear messages; every encoding clerks use; formula values kept as text; the
write lock held one batch at a time and the import still whole or nothing."""

from __future__ import annotations

import csv
import io
import threading
import tracemalloc
from pathlib import Path

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, select

import models.roll as roll
from models.db import write_scope
from models.demo import roll_rows, write_roll_csv
from models.people import Beneficiary, Contact
from models.roll import RollFileError, RollLimits, import_roll
from models.staff import AuditLog

KEY = b"test-id-key"


def _lines(rows: list[dict[str, str]]) -> list[str]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(list(rows[0]))
    writer.writerows([list(r.values()) for r in rows])
    return out.getvalue().splitlines()


def _count(engine: Engine, table: type) -> int:
    with Session(engine) as s:
        return int(s.exec(select(func.count()).select_from(table)).one())


def test_a_stray_opening_quote_refuses_the_file_naming_its_line(sqlite_engine: Engine, tmp_path: Path) -> None:
    """A quote opened in row 4 and never closed would swallow the 47 rows after it: the file is
    refused with line 4 named, and nothing is imported."""
    lines = _lines(roll_rows(50, seed=31))
    lines[3] = lines[3].replace(",", ',"', 1)  # row 4 (line 4): 张三,"440…
    path = tmp_path / "quote.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(RollFileError, match="第4行") as info:
        import_roll(sqlite_engine, path, id_key=KEY)
    assert "line 4" in str(info.value) and "quote" in str(info.value)
    assert _count(sqlite_engine, Beneficiary) == 0


def test_every_row_is_imported_updated_unchanged_blank_or_rejected(sqlite_engine: Engine, tmp_path: Path) -> None:
    """A file with good rows, bad rows, blank lines, a duplicate and a formula-like name: the
    counts add up to the rows read, with nothing left over."""
    rows = roll_rows(30, seed=32)
    rows[5]["手机号"] = "12"
    rows[7]["姓名"] = "=HYPERLINK(\"http://x\",\"点我\")"
    rows.append(dict(rows[2]))
    lines = _lines(rows)
    lines.insert(10, "")
    lines.insert(20, ",,,,")
    path = tmp_path / "mixed.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = import_roll(sqlite_engine, path, id_key=KEY)
    assert report.rows == len(lines) - 1
    assert report.unaccounted == 0
    assert (report.imported, report.blank, len(report.rejected)) == (29, 2, 2)
    again = import_roll(sqlite_engine, path, id_key=KEY)
    assert (again.imported, again.updated, again.unchanged, again.unaccounted) == (0, 0, 29, 0)
    with Session(sqlite_engine) as s:
        assert s.exec(select(Beneficiary).where(Beneficiary.name.startswith("="))).one()  # type: ignore[attr-defined]


def test_a_cell_past_the_limit_is_refused_with_a_message_not_a_traceback(sqlite_engine: Engine,
                                                                         tmp_path: Path) -> None:
    """A 200,000-character cell stops the file with the line, in words."""
    lines = _lines(roll_rows(5, seed=33))
    lines[2] = lines[2].replace(",", "," + "长" * 200_000, 1)
    path = tmp_path / "huge-cell.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(RollFileError, match="第3行"):
        import_roll(sqlite_engine, path, id_key=KEY)


def test_a_file_past_the_size_limit_is_refused_before_it_is_read(sqlite_engine: Engine, tmp_path: Path) -> None:
    path = write_roll_csv(tmp_path / "r.csv", roll_rows(50, seed=34))
    with pytest.raises(RollFileError, match="MB"):
        import_roll(sqlite_engine, path, id_key=KEY, limits=RollLimits(file_bytes=1000))


TRADITIONAL_HEADER = {"姓名": "姓名", "身份证号": "身份證號", "手机号": "手機號碼", "类别": "類別", "区": "區",
                      "街道": "街道", "社区": "社區", "独居": "獨居", "残疾": "殘疾", "语言": "語言",
                      "上次认证日期": "上次認證日期"}


@pytest.mark.parametrize("encoding", ["big5", "utf-16", "utf-16-le", "utf-8-sig", "gb18030"])
def test_csv_in_big5_and_utf16_is_read_like_the_rest(sqlite_engine: Engine, tmp_path: Path, encoding: str) -> None:
    """A roll in Traditional characters, saved as Big5, UTF-16 with and without BOM (and the
    others), is read as written: not mistaken for GB18030, headers and words recognised."""
    names = ["陳大文", "黃國強", "張麗華", "劉德明", "鄭淑貞", "謝國樑"] * 2
    rows = []
    for r, name in zip(roll_rows(12, seed=35), names, strict=True):
        r.update({"姓名": name, "类别": "退役軍人;職工", "区": "蓬江區", "街道": "白沙街道", "社区": "白沙社區",
                  "独居": "否", "残疾": "否", "语言": "繁體"})
        rows.append({TRADITIONAL_HEADER[k]: v for k, v in r.items()})
    path = tmp_path / f"r-{encoding}.csv"
    with path.open("w", newline="", encoding=encoding) as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    report = import_roll(sqlite_engine, path, id_key=KEY)
    assert report.imported == 12 and not report.rejected, report.rejected
    with Session(sqlite_engine) as s:
        people = s.exec(select(Beneficiary)).all()
    assert {p.name for p in people} == set(names)
    assert all(p.community == "白沙社區" and p.is_veteran and p.is_union_member for p in people)


def test_shift_jis_is_refused_naming_the_encodings_accepted(sqlite_engine: Engine, tmp_path: Path) -> None:
    """A Japanese-encoded file is not read as GB18030 into a misleading "missing columns"."""
    path = tmp_path / "sjis.csv"
    text = "氏名,身分証番号,電話番号,種別\n" + "山田太郎,440703194208151234,09012345678,退役軍人\n" * 20
    path.write_bytes(text.encode("shift_jis"))
    with pytest.raises(RollFileError) as info:
        import_roll(sqlite_engine, path, id_key=KEY)
    message = str(info.value)
    assert "UTF-8" in message and "GB18030" in message and "Big5" in message and "UTF-16" in message
    assert "missing required columns" not in message


def _peak_checking(engine: Engine, path: Path) -> tuple[int, roll.ImportReport]:
    tracemalloc.start()
    try:
        report = import_roll(engine, path, id_key=KEY, dry_run=True, limits=RollLimits(batch=500))
        return tracemalloc.get_traced_memory()[1], report
    finally:
        tracemalloc.stop()


def test_a_large_file_is_read_as_a_stream(sqlite_engine: Engine, tmp_path: Path) -> None:
    """Checking a file holds a few batches in memory, not the file: a file four times longer
    needs about the same peak of allocations."""
    small = write_roll_csv(tmp_path / "small.csv", roll_rows(2_000, seed=36))
    large = write_roll_csv(tmp_path / "large.csv", roll_rows(8_000, seed=37))
    _peak_checking(sqlite_engine, small)  # first use: imports and caches are not the file's
    small_peak, _ = _peak_checking(sqlite_engine, small)
    large_peak, report = _peak_checking(sqlite_engine, large)
    assert report.imported + len(report.rejected) == 8_000 and report.unaccounted == 0
    assert large_peak < 1.5 * small_peak, (small_peak, large_peak)


def test_xlsx_past_its_row_cap_is_refused_and_long_cells_reject_their_row(sqlite_engine: Engine,
                                                                          tmp_path: Path) -> None:
    """A workbook is read in read-only mode, under caps: more rows than allowed refuses the file,
    a cell longer than allowed rejects its row with the reason."""
    from openpyxl import Workbook

    rows = roll_rows(6, seed=37)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet()
    ws.append(list(rows[0]))
    for i, r in enumerate(rows):
        values = list(r.values())
        if i == 2:
            values[0] = "名" * 5000
        ws.append(values)
    wb.save(tmp_path / "roll.xlsx")
    report = import_roll(sqlite_engine, tmp_path / "roll.xlsx", id_key=KEY)
    assert report.imported == 5 and [r["row"] for r in report.rejected] == [4]
    assert "1000" in report.rejected[0]["reason"] or "1,000" in report.rejected[0]["reason"]
    with pytest.raises(RollFileError, match="3"):
        import_roll(sqlite_engine, tmp_path / "roll.xlsx", id_key=KEY, limits=RollLimits(rows=3))


def test_writes_go_in_short_batches_that_let_other_writers_in(sqlite_engine: Engine, tmp_path: Path) -> None:
    """SQLite: while a 3,000-row import writes in batches of 500, another writer commits between
    two of its batches (it does not wait for the whole import)."""
    path = write_roll_csv(tmp_path / "r.csv", roll_rows(3000, seed=38))
    batches_seen: list[int] = []
    other_committed = threading.Event()
    original = roll._upsert_phones

    def watching(session, table, contacts, phones, now):  # type: ignore[no-untyped-def]
        batches_seen.append(len(phones))
        if len(batches_seen) == 2:
            def other() -> None:
                with write_scope(sqlite_engine) as s:
                    s.add(AuditLog(actor="other", action="between.batches", details={}))
                other_committed.set()
            threading.Thread(target=other).start()
        if len(batches_seen) == 4:
            assert other_committed.wait(10)  # it got in between this import's batches
        return original(session, table, contacts, phones, now)

    roll._upsert_phones = watching
    try:
        report = import_roll(sqlite_engine, path, id_key=KEY, limits=RollLimits(batch=500))
    finally:
        roll._upsert_phones = original
    assert report.imported == 3000 and len(batches_seen) == 6
    assert other_committed.is_set()


def test_a_failure_in_a_later_batch_undoes_the_earlier_ones(sqlite_engine: Engine, tmp_path: Path) -> None:
    """SQLite, batches committed one by one: when the fourth fails, the three already written are
    taken back, people and phones, and a person it had updated gets their old values back."""
    first = roll_rows(10, seed=39)
    import_roll(sqlite_engine, write_roll_csv(tmp_path / "a.csv", first), id_key=KEY)
    rows = roll_rows(2000, seed=40)
    changed = dict(first[0], **{"社区": "改过的社区"})
    rows.insert(0, changed)
    calls = {"n": 0}
    original = roll._upsert_phones

    def fail_fourth(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("disk full")
        return original(*args, **kwargs)

    roll._upsert_phones = fail_fourth
    try:
        with pytest.raises(RuntimeError):
            import_roll(sqlite_engine, write_roll_csv(tmp_path / "b.csv", rows), id_key=KEY,
                        limits=RollLimits(batch=500))
    finally:
        roll._upsert_phones = original
    assert _count(sqlite_engine, Beneficiary) == 10 and _count(sqlite_engine, Contact) == 10
    with Session(sqlite_engine) as s:
        assert not s.exec(select(Beneficiary).where(Beneficiary.community == "改过的社区")).all()


def test_an_import_interrupted_by_a_crash_is_undone_before_the_next(sqlite_engine: Engine, tmp_path: Path) -> None:
    """A process killed between two batches leaves its scratch file marked as writing; the next
    import first takes back what the dead one wrote, then imports its own file."""
    rows = roll_rows(1500, seed=41)
    original = roll._upsert_phones
    calls = {"n": 0}

    class Killed(BaseException):
        """Stands for SIGKILL: no cleanup code of the import runs after it."""

    def die_on_third(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise Killed
        return original(*args, **kwargs)

    roll._upsert_phones = die_on_third
    undo, close = roll._undo, roll._Stage.close
    roll._undo = lambda *a, **k: None  # type: ignore[assignment]
    roll._Stage.close = lambda self, **k: self.engine.dispose()  # type: ignore[method-assign]
    try:
        with pytest.raises(Killed):
            import_roll(sqlite_engine, write_roll_csv(tmp_path / "a.csv", rows), id_key=KEY,
                        limits=RollLimits(batch=500))
    finally:
        roll._upsert_phones, roll._undo, roll._Stage.close = original, undo, close  # type: ignore[method-assign]
    assert _count(sqlite_engine, Beneficiary) == 1000  # two batches were written before the "kill"
    report = import_roll(sqlite_engine, write_roll_csv(tmp_path / "b.csv", roll_rows(5, seed=42)), id_key=KEY)
    assert report.imported == 5
    assert _count(sqlite_engine, Beneficiary) == 5 and _count(sqlite_engine, Contact) == 5
    assert not list((tmp_path / "imports").glob("roll-import-*.db"))


def test_formula_values_are_stored_as_typed_and_escaped_when_exported(sqlite_engine: Engine, tmp_path: Path) -> None:
    """A roll name like `=HYPERLINK(…)` or `+cmd|…` is kept as text; a CSV export writes it so
    that a spreadsheet shows it instead of running it."""
    from models.exports import csv_text

    rows = roll_rows(4, seed=43)
    hostile = ['=HYPERLINK("http://evil","点我")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)"]
    for r, name in zip(rows, hostile, strict=True):
        r["姓名"] = name
    report = import_roll(sqlite_engine, write_roll_csv(tmp_path / "f.csv", rows), id_key=KEY)
    assert report.imported == 4
    with Session(sqlite_engine) as s:
        stored = sorted(s.exec(select(Beneficiary.name)).all())
    assert stored == sorted(hostile)
    exported = list(csv.reader(io.StringIO(csv_text(["name"], [[n] for n in stored]).lstrip("\ufeff"))))
    assert [cell for (cell,) in exported[1:]] == ["'" + n for n in stored]
