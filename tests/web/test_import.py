"""Importing a roll in the browser: check first (nothing written, "would import"), then confirm."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from models.demo import roll_rows, write_roll_csv
from models.people import Beneficiary
from models.staff import AuditLog
from tests.web.conftest import Console


def _roll_with_bad_rows(tmp_path: Path) -> tuple[Path, set[int]]:
    """Ten rows; rows 3 and 6 (counting the header as row 1) have a wrong ID number and no phone."""
    rows = roll_rows(10, seed=21)
    rows[1]["身份证号"] = rows[1]["身份证号"][:-1] + ("0" if rows[1]["身份证号"][-1] != "0" else "1")
    rows[4]["手机号"] = ""
    rows[7]["姓名"] = "=HYPERLINK(\"http://x\")"  # a name a spreadsheet would run as a formula
    return write_roll_csv(tmp_path / "名册.csv", rows), {3, 6}


def _people(db_engine: Any) -> int:
    with Session(db_engine) as s:
        return int(s.exec(select(func.count()).select_from(Beneficiary)).one())


def _upload(console: Console, path: Path, name: str | None = None) -> Any:
    token = console.token("/import")
    with path.open("rb") as fh:
        return console.client.post("/import", data={"csrf": token},
                                   files={"roll": (name or path.name, fh, "text/csv")}, follow_redirects=False)


def test_the_check_writes_nothing_and_lists_every_bad_row_then_confirm_imports(
        console: Console, db_engine: Any, tmp_path: Path) -> None:
    before = _people(db_engine)
    path, bad = _roll_with_bad_rows(tmp_path)
    console.sign_in("admin")
    page = _upload(console, path).text
    assert "还没有写入任何数据" in page and "将新增" in page
    assert re.search(r'id="would-import">8<', page) and re.search(r'id="rejected-count">2<', page)
    listed = {int(n) for n in re.findall(r'data-label="行号">(\d+)<', page)}
    assert listed == bad
    assert _people(db_engine) == before  # the check wrote nothing
    token = re.search(r'action="/import/([^/]+)/confirm"', page).group(1)  # type: ignore[union-attr]

    report = console.client.get(f"/import/{token}/report.csv")
    assert report.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(report.content.decode("utf-8-sig"))))
    assert lines[0] == ["行号", "结果", "原因"] and "将导入 8" in lines[1][2]
    assert {int(r[0]) for r in lines[2:]} == bad

    done = console.post(f"/import/{token}/confirm", from_page=f"/import/{token}").text
    assert "已导入：新增 8 人" in done
    assert _people(db_engine) == before + 8
    again = console.post(f"/import/{token}/confirm", from_page=f"/import/{token}").text
    assert "已导入：新增 8 人" in again and _people(db_engine) == before + 8  # a second click imports nothing
    with Session(db_engine) as s:
        (row,) = s.exec(select(AuditLog).where(AuditLog.action == "roll.import")).all()
    assert row.actor == "admin" and row.details["imported"] == 8


def test_a_file_that_is_not_a_roll_is_refused_with_the_reason(console: Console, tmp_path: Path) -> None:
    console.sign_in("admin")
    text = tmp_path / "notes.txt"
    text.write_text("hello", encoding="utf-8")
    wrong_kind = _upload(console, text)
    assert wrong_kind.status_code == 400 and "只能导入 CSV 或 Excel" in wrong_kind.text
    headless = tmp_path / "no-columns.csv"
    headless.write_text("a,b\n1,2\n", encoding="utf-8")
    refused = _upload(console, headless)
    assert refused.status_code == 400 and "这个文件不能导入" in refused.text


def test_the_downloaded_report_escapes_cells_a_spreadsheet_would_run() -> None:
    from web.csvout import csv_text

    text = csv_text(["a"], [["=1+1"], ["+86 138"], ["-2"], ["@SUM(A1)"], ["普通"]])
    cells = [r[0] for r in csv.reader(io.StringIO(text.lstrip("\ufeff")))][1:]
    assert cells == ["'=1+1", "'+86 138", "'-2", "'@SUM(A1)", "普通"]
