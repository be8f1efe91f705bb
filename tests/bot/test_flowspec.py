"""Flow files are validated data: every field declared, every name they use known to the registry."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bot.flowregistry import builtin
from bot.flowspec import FlowError, load_flows

GOOD_STEP = "  - {id: a, type: confirm, prompt: {zh-Hans: 核对, en: Check}}\n"


@pytest.mark.parametrize(("text", "message"), [
    ("id: x\ntitle: {zh-Hans: a, en: b}\ncolour: red\nsteps:\n" + GOOD_STEP + "done: {zh-Hans: a, en: b}\n",
     "colour: unknown field"),
    ("id: x\ntitle: {zh-Hans: a, en: b}\nsteps:\n  - {id: a, type: text, prompt: {zh-Hans: a, en: b}, maxlen: 5}\n"
     "done: {zh-Hans: a, en: b}\n", "steps[0](a).maxlen: unknown field"),
    ("id: x\ntitle: {zh-Hans: a, en: b}\nsteps:\n" + GOOD_STEP
     + "on_complete: [{action: create_task, kind: callback, colour: red}]\ndone: {zh-Hans: a, en: b}\n",
     "on_complete[0].colour: create_task takes no such parameter"),
    ("id: x\ntitle: {zh-Hans: a, en: b}\nsteps:\n" + GOOD_STEP + "on_complete: [{action: create_task}]\n"
     "done: {zh-Hans: a, en: b}\n", "on_complete[0].kind: required by create_task"),
    ("id: x\ntitle: {zh-Hans: a, en: b}\nsteps:\n  - {id: a, type: text, prompt: 请写}\n"
     "done: {zh-Hans: a, en: b}\n", "steps[0](a).prompt: needs a text per language"),
    ("id: x\ntitle: {zh-Hans: a, en: b, fr: c}\nsteps:\n" + GOOD_STEP + "done: {zh-Hans: a, en: b}\n",
     "title.fr: unknown language"),
    ("id: x\ntitle: {zh-Hans: a, en: b}\nmenu: 12\nsteps:\n" + GOOD_STEP + "done: {zh-Hans: a, en: b}\n", "menu:"),
    ("id: x\ntitle: {zh-Hans: a, en: b}\nsteps:\n  - {id: a, type: yes_no, prompt: {zh-Hans: a, en: b}, told: 是}\n"
     + GOOD_STEP.replace("id: a", "id: b") + "done: {zh-Hans: a, en: b}\n",
     "steps[0](a): told: only text, date, date_range, money steps"),
    ("id: x\ntitle: {zh-Hans: a, en: b}\nsteps:\n  - {id: a, type: text, prompt: {zh-Hans: a, en: b}, told: '(医院'}\n"
     + GOOD_STEP.replace("id: a", "id: b") + "done: {zh-Hans: a, en: b}\n", "told: not a valid pattern"),
    ("id: x\ntitle: {zh-Hans: a, en: b}\nsteps:\n  - {id: a, type: choice, prompt: {zh-Hans: a, en: b}, options: ["
     "{value: x, label: {zh-Hans: a, en: b}, told: '(瘫'}]}\n" + GOOD_STEP.replace("id: a", "id: b")
     + "done: {zh-Hans: a, en: b}\n", "options.x.told: not a valid pattern"),
    ("id: x\ntitle: {zh-Hans: a, en: b}\nsteps:\n  - {id: a, type: choice, prompt: {zh-Hans: a, en: b}, options: ["
     "{value: x, label: {zh-Hans: a, en: b}, told: 不办}], branch: {x: 'end:no'}}\n"
     + GOOD_STEP.replace("id: a", "id: b") + "done: {zh-Hans: a, en: b}\nendings: {no: {text: {zh-Hans: a, en: b}}}\n",
     "options.x.told: an answer that ends the flow is never taken from what was said"),
    ("id: x\ntitle: {zh-Hans: a, en: b}\nintro_report: my_horoscope\nsteps:\n" + GOOD_STEP
     + "done: {zh-Hans: a, en: b}\n", "intro_report: unknown report 'my_horoscope'"),
])
def test_a_flow_file_with_an_undeclared_or_wrong_field_is_refused_by_name(tmp_path: Path, text: str,
                                                                            message: str) -> None:
    """Unknown fields anywhere (flow, step, action parameters) and wrong values stop loading, naming the field."""
    (tmp_path / "42_bad.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(FlowError) as exc:
        load_flows(tmp_path)
    assert str(exc.value).startswith("42_bad.yaml: ") and message in str(exc.value), str(exc.value)


def test_the_shipped_flows_use_only_registered_actions_checks_and_reports() -> None:
    """Every name a shipped flow uses is in the registry (so a typo cannot reach a person)."""
    registry = builtin()
    for flow in load_flows().values():
        assert all(call.action in registry.actions for call in flow.on_complete)
        assert all(name in registry.prechecks for name in flow.precheck)
        assert flow.report is None or flow.report in registry.reports


def test_the_runner_and_the_actions_do_not_import_each_other() -> None:
    """The registry sits between them: the runner never imports the actions module."""
    source = (Path(__file__).resolve().parents[2] / "bot" / "flowrunner.py").read_text(encoding="utf-8")
    imported = {getattr(node, "module", None) for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Import)
                 for alias in node.names}
    assert "bot.flowactions" not in imported
