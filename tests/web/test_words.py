"""The console's words: every sentence has its English, and no internal code shows on a Chinese page."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from web.words import CONSOLE_GROUPS, codes, english, label

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_CALL = re.compile(r"""_\(\s*(["'])(.+?)\1""")


def console_sentences() -> set[str]:
    """Every sentence the console passes through ui(): `_("…")` in its templates, `ui("…")`,
    `N_("…")` (sentences kept in data) and the titles and messages of error pages in its code."""
    found: set[str] = set()
    for path in (ROOT / "templates" / "web").glob("*.html"):
        found.update(m.group(2) for m in TEMPLATE_CALL.finditer(path.read_text(encoding="utf-8")))
    for path in (ROOT / "web").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
                    "ui", "_", "N_"):
                for arg in node.args[:1]:
                    for const in ast.walk(arg):
                        if isinstance(const, ast.Constant) and isinstance(const.value, str):
                            found.add(const.value)
            if isinstance(node, ast.keyword) and node.arg in ("title", "message") and isinstance(
                    node.value, ast.Constant) and isinstance(node.value.value, str):
                found.add(node.value.value)
    return {s for s in found if re.search(r"[\u4e00-\u9fff]", s)}


def test_every_console_sentence_has_its_english() -> None:
    """A sentence added in Chinese without its English in templates/web/en.yaml fails here."""
    missing = sorted(console_sentences() - set(english()))
    assert missing == [], "add to templates/web/en.yaml:\n" + "\n".join(f'"{m}": ""' for m in missing)


def test_every_english_sentence_keeps_the_placeholders_of_its_chinese() -> None:
    for zh, en in english().items():
        assert set(re.findall(r"\{(\w+)\}", zh)) == set(re.findall(r"\{(\w+)\}", en)), zh


def test_no_code_is_shown_raw_on_a_chinese_page() -> None:
    """Every code of every group the console shows has staff words; an unknown code reads 其他."""
    for group in CONSOLE_GROUPS:
        for code in codes(group):
            zh = label(group, code, "zh-Hans")
            assert zh and zh != code and not re.fullmatch(r"[a-z_.]+", zh), (group, code)
            assert label(group, code, "en"), (group, code)
    assert label("task_kind", "some_new_kind", "zh-Hans") == "其他"


def test_every_audit_detail_shown_is_named_by_the_catalogue() -> None:
    """The details an audit sentence shows (reason, date, evidence...) take their names from the
    catalogue's audit_detail group, so a detail added to the sentence without its words fails here."""
    from web.audit_words import DETAIL_KEYS

    assert {key for key, _ in DETAIL_KEYS} <= set(codes("audit_detail"))
    assert label("audit_detail", "reason", "zh-Hans") == "原因"
    assert label("audit_detail", "reason", "en") == "Reason"
