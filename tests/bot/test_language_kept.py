"""Fixed texts' Traditional conversions kept in the data folder: read back byte for byte, so that a
process that only renders fixed texts never builds an OpenCC converter on its next start.

Each case runs in a fresh interpreter: which converters a process has built is the point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Loads the message templates as the scheduler does (`load_templates`, inside `kept_conversions`),
# renders every kind in zh-Hant on Telegram and SMS, and says what it rendered and which converters it built.
_LOAD_AND_RENDER = """
import json, sys
from datetime import date
from pathlib import Path
from bot.language import converters_built, keep_conversions_in
keep_conversions_in(Path(sys.argv[1]))
from outreach.templates import load_templates
ts = load_templates(variant=sys.argv[2])
values = {"salutation": "张伯", "deadline": date(2026, 6, 10), "days_left": 7, "start_date": date(2026, 6, 1),
          "scheme": "veteran_insurance", "pay_date": date(2026, 6, 5), "amount_fen": 123450, "reference": "A-1",
          "account": "6222", "occasion": "spring_festival", "code": "123456", "minutes": 10, "text": "通知"}
rendered = {}
for kind in sorted(ts.kinds):
    for channel in ("telegram", "sms"):
        try:
            rendered[f"{kind}/{channel}"] = ts.render(kind, "zh-Hant", values, channel).text
        except Exception as exc:  # a kind needing other values: its error, the same both times
            rendered[f"{kind}/{channel}"] = type(exc).__name__
rendered["office_name"] = ts.office_name["zh-Hant"]
print(json.dumps({"built": converters_built(), "rendered": rendered}, ensure_ascii=False))
"""


def _load(folder: Path, variant: str = "s2hk") -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUANXIN_")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", _LOAD_AND_RENDER, str(folder), variant], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("variant", ["s2hk", "s2twp"])
def test_templates_loaded_again_read_their_conversions_back_and_render_the_same_without_a_converter(
        tmp_path: Path, variant: str) -> None:
    """The first load converts the zh-Hans templates with OpenCC and keeps the conversions; the
    second reads them back: it builds no converter and renders every kind, on every channel,
    byte for byte as the first did."""
    first = _load(tmp_path, variant)
    assert variant in first["built"]  # type: ignore[operator]
    kept = list(tmp_path.glob("traditional-*.json"))
    assert len(kept) == 1 and oct(kept[0].stat().st_mode & 0o777) == "0o600"
    again = _load(tmp_path, variant)
    assert again["built"] == []
    assert again["rendered"] == first["rendered"]
    texts = [t for t in first["rendered"].values() if any("\u4e00" <= c <= "\u9fff" for c in t)]  # type: ignore[attr-defined]
    assert len(texts) > 10


def test_a_damaged_or_foreign_kept_file_is_set_aside_and_the_texts_converted_again(tmp_path: Path) -> None:
    """A kept file that cannot be read back (cut short), or whose key is not this version's, is not
    trusted: the texts are converted by OpenCC again, rendered the same, and a good file written."""
    reference = _load(tmp_path / "reference")
    [kept] = (tmp_path / "reference").glob("traditional-*.json")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / kept.name).write_text(kept.read_text(encoding="utf-8")[:200], encoding="utf-8")
    got = _load(damaged)
    assert "s2hk" in got["built"] and got["rendered"] == reference["rendered"]  # type: ignore[operator]
    assert json.loads((damaged / kept.name).read_text(encoding="utf-8"))["texts"]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    body = json.loads(kept.read_text(encoding="utf-8"))
    body["key"] = "another version"
    body["texts"]["s2hk"] = {text: "假的" for text in body["texts"]["s2hk"]}
    (foreign / kept.name).write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    got = _load(foreign)
    assert "s2hk" in got["built"] and got["rendered"] == reference["rendered"]  # type: ignore[operator]
