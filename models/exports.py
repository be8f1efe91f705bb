"""Exports staff open in a spreadsheet (CSV): cells that a spreadsheet would run as a formula
(`=HYPERLINK(…)`, `+cmd|…`, `-1+1`, `@SUM(…)`) are written as text, with a leading apostrophe
(OWASP's advice for CSV injection). Rolls keep such values as typed; only what goes out is escaped.
Every CSV the product writes for people goes through `write_csv`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")


def spreadsheet_safe(value: Any) -> str:
    """The cell as text a spreadsheet shows and never evaluates."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def write_csv(out: TextIO, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Write a header and rows, every cell escaped; returns how many rows were written."""
    writer = csv.writer(out)
    writer.writerow([spreadsheet_safe(h) for h in header])
    count = 0
    for row in rows:
        writer.writerow([spreadsheet_safe(v) for v in row])
        count += 1
    return count


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """The CSV as one string, UTF-8 BOM first so that Excel opens Chinese text correctly."""
    out = io.StringIO()
    out.write("\ufeff")
    write_csv(out, header, rows)
    return out.getvalue()
