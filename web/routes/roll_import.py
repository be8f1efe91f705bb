"""Importing a roll in the browser (`/import`, administrators).

1. Upload a CSV or XLSX file: it is kept in the data folder (readable by this service only) and
   checked row by row with `models.roll.import_roll(..., dry_run=True)`: nothing is written, and
   the figures say "would import".
2. The report: how many rows would be new, updated or unchanged, and every refused row with its
   number and reason; it can be downloaded as CSV.
3. Confirm: the same file is imported for real (one transaction), and the result is shown.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from models.roll import ImportReport, RollFileError, import_roll
from models.staff import Role
from web.csvout import csv_download
from web.pages import render
from web.security import SignedIn, require
from web.words import ui

router = APIRouter(include_in_schema=False)
ADMIN = require(Role.ADMIN)
SUFFIXES = (".csv", ".xlsx")
MAX_BYTES = 50 * 1024 * 1024  # a 100,000-row roll is about 15 MB as CSV
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


def _uploads(request: Request) -> Path:
    folder = Path(request.app.state.settings.data_dir) / "imports"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def _files(request: Request, token: str) -> tuple[Path, Path]:
    if not _TOKEN.fullmatch(token):
        raise HTTPException(404)
    folder = _uploads(request)
    meta = folder / f"{token}.json"
    if not meta.exists():
        raise HTTPException(404)
    info = json.loads(meta.read_text(encoding="utf-8"))
    return folder / f"{token}{info['suffix']}", meta


def _report_dict(report: ImportReport) -> dict[str, Any]:
    return {"imported": report.imported, "updated": report.updated, "unchanged": report.unchanged,
            "rejected": report.rejected, "dry_run": report.dry_run}


@router.get("/import")
def import_form(request: Request, staff: SignedIn = Depends(ADMIN)) -> Response:
    return render(request, "import.html", staff, step="upload")


@router.post("/import")
async def import_upload(request: Request, roll: UploadFile | None = None,
                        staff: SignedIn = Depends(ADMIN)) -> Response:
    lang = staff.language
    name = Path(roll.filename or "").name if roll is not None else ""
    suffix = Path(name).suffix.lower()
    if roll is None or not name:
        return render(request, "import.html", staff, step="upload", status_code=400,
                      error=ui("请先选择要导入的文件。", lang))
    if suffix not in SUFFIXES:
        return render(request, "import.html", staff, step="upload", status_code=400,
                      error=ui("只能导入 CSV 或 Excel（.xlsx）文件。", lang))
    token = secrets.token_urlsafe(18)
    folder = _uploads(request)
    path = folder / f"{token}{suffix}"
    size = 0
    with path.open("wb") as out:
        path.chmod(0o600)
        while chunk := await roll.read(1024 * 1024):
            size += len(chunk)
            if size > MAX_BYTES:
                out.close()
                path.unlink(missing_ok=True)
                return render(request, "import.html", staff, step="upload", status_code=413,
                              error=ui("文件太大（最多 50 MB）。请分成几个文件导入。", lang))
            out.write(chunk)
    settings = request.app.state.settings
    try:
        report = await run_in_threadpool(import_roll, request.app.state.engine, path, id_key=settings.id_key,
                                         actor=staff.username, dry_run=True)
    except RollFileError as exc:
        path.unlink(missing_ok=True)
        return render(request, "import.html", staff, step="upload", status_code=400,
                      error=ui("这个文件不能导入：{why}", lang, why=str(exc)))
    info = {"name": name, "suffix": suffix, "by": staff.username, "bytes": size,
            "at": request.app.state.clock.now().isoformat(), "dry_run": _report_dict(report)}
    meta = folder / f"{token}.json"
    meta.write_text(json.dumps(info, ensure_ascii=False), encoding="utf-8")
    meta.chmod(0o600)
    return render(request, "import.html", staff, step="checked", token=token, info=info, report=info["dry_run"])


@router.get("/import/{token}")
def import_checked(request: Request, token: str, staff: SignedIn = Depends(ADMIN)) -> Response:
    _, meta = _files(request, token)
    info = json.loads(meta.read_text(encoding="utf-8"))
    done = info.get("result")
    return render(request, "import.html", staff, step="done" if done else "checked", token=token, info=info,
                  report=done or info["dry_run"])


@router.post("/import/{token}/confirm")
def import_confirm(request: Request, token: str, staff: SignedIn = Depends(ADMIN)) -> Response:
    path, meta = _files(request, token)
    info = json.loads(meta.read_text(encoding="utf-8"))
    if info.get("result"):  # confirmed before (a second click, a reload): nothing imported twice
        return render(request, "import.html", staff, step="done", token=token, info=info, report=info["result"])
    settings = request.app.state.settings
    try:
        report = import_roll(request.app.state.engine, path, id_key=settings.id_key, actor=staff.username)
    except RollFileError as exc:
        return render(request, "import.html", staff, step="checked", token=token, info=info, report=info["dry_run"],
                      status_code=400, error=ui("这个文件不能导入：{why}", staff.language, why=str(exc)))
    info["result"] = _report_dict(report)
    info["imported_by"] = staff.username
    meta.write_text(json.dumps(info, ensure_ascii=False), encoding="utf-8")
    path.unlink(missing_ok=True)  # the people are in the database now; the copy of the file goes
    return render(request, "import.html", staff, step="done", token=token, info=info, report=info["result"])


@router.get("/import/{token}/report.csv")
def import_report_csv(request: Request, token: str, staff: SignedIn = Depends(ADMIN)) -> Response:
    _, meta = _files(request, token)
    info = json.loads(meta.read_text(encoding="utf-8"))
    report = info.get("result") or info["dry_run"]
    lang = staff.language
    verb = ui("已导入", lang) if info.get("result") else ui("将导入", lang)
    rows: list[list[Any]] = [
        ["", ui("汇总", lang), f"{verb} {report['imported']}，{ui('更新', lang)} {report['updated']}，"
                               f"{ui('不变', lang)} {report['unchanged']}，{ui('拒绝', lang)} {len(report['rejected'])}"],
    ]
    rows += [[r["row"], ui("拒绝", lang), r["reason"]] for r in report["rejected"]]
    stem = Path(info["name"]).stem
    return csv_download(f"{stem}-{ui('导入报告', lang)}.csv", [ui("行号", lang), ui("结果", lang), ui("原因", lang)],
                        rows)
