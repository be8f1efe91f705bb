"""The one catalogue of words people see: complete for every code, language and audience, and read by
the bot, the message templates and the console alike."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from bot.flowrunner import load_flows
from bot.language import LANGUAGES, detect_language
from bot.words import (
    AUDIENCES,
    GROUP_CODES,
    Catalogue,
    UnknownGroup,
    WordsProblem,
    catalogue,
    label,
    labels,
    staff_label,
)
from outreach.templates import MESSAGES_DIR, TemplateSet
from tests.bot.conftest import LI_PHONE
from tests.bot.test_flows import console

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("bot", "outreach", "models", "web")


def _every(group: str) -> list[tuple[str, str, str]]:
    return [(code, lang, audience) for code in catalogue().codes(group) for lang in LANGUAGES for audience in AUDIENCES]


@pytest.mark.parametrize("group", sorted(GROUP_CODES))
def test_every_code_of_every_enum_has_words_in_every_language_and_audience(group):
    """Each member of the enum behind a group (application type, stage, statuses, task kind, role, ...) has
    non-empty words in zh-Hans, zh-Hant and en, for beneficiaries and for staff."""
    words = catalogue()
    missing = []
    for member in GROUP_CODES[group]:
        for audience in AUDIENCES:
            texts = words.texts(group, member.value, audience)
            if texts is None:
                missing.append(f"{group}.{member.value}")
                continue
            missing += [f"{group}.{member.value}.{audience}.{lang}" for lang in LANGUAGES if not texts[lang].strip()]
    assert missing == [], f"add the words to templates/words/{group}.yaml"


@pytest.mark.parametrize("group", catalogue().groups)
def test_every_entry_is_written_in_the_language_it_is_labelled(group):
    """No entry says English under zh-Hans or Chinese under en; zh-Hant never carries s2t's 爲 or 回複."""
    for code, lang, audience in _every(group):
        text = label(group, code, lang, audience)
        if lang == "en":
            assert not re.search(r"[\u3400-\u9fff]", text), (group, code, audience, text)
        elif re.search(r"[\u3400-\u9fff]", text):
            assert detect_language(text, lang) == lang, (group, code, lang, audience, text)
            assert "爲" not in text and "回複" not in text


def test_every_audit_action_written_by_the_product_has_staff_words():
    """Each action the code writes to the audit log (audit(session, actor, "x.y", ...)) reads in plain words."""
    pattern = re.compile(r"\baudit\(\s*[^,()]+,\s*[^,()]+,\s*\"([a-z_]+\.[a-z_]+)\"")
    actions = set()
    for folder in PRODUCT:
        for path in (ROOT / folder).rglob("*.py"):
            actions |= set(pattern.findall(path.read_text(encoding="utf-8")))
    for path in ROOT.glob("*.py"):
        actions |= set(pattern.findall(path.read_text(encoding="utf-8")))
    assert {"contact.opt_out", "application.stage", "ticket.open"} <= actions  # the scan sees the calls
    known = set(catalogue().codes("audit_action"))
    assert sorted(actions - known) == [], "add these to templates/words/audit_action.yaml"


def test_every_document_a_flow_asks_for_has_words_that_agree_with_the_flow():
    """The documents of every flow's checklist are in the catalogue, with the same words the flow shows."""
    for flow in load_flows().values():
        for step in flow.steps:
            for item in step.items:
                texts = catalogue().texts("document", item.code)
                assert texts is not None, f"{flow.path}: {item.code} has no words in templates/words/document.yaml"
                assert (texts["zh-Hans"], texts["en"]) == (item.label["zh-Hans"], item.label["en"]), item.code


def test_every_message_kind_and_template_choice_has_words():
    """Each kind of kinds.yaml has a staff name; each allowed occasion and visit purpose has words."""
    kinds = yaml.safe_load((MESSAGES_DIR / "kinds.yaml").read_text(encoding="utf-8"))
    assert sorted(set(kinds) - set(catalogue().codes("message_kind"))) == []
    groups = {"occasion": "occasion", "purpose": "visit_purpose"}
    for spec in kinds.values():
        for variable, allowed in (spec.get("choices") or {}).items():
            assert sorted(set(allowed) - set(catalogue().codes(groups[variable]))) == [], variable


def test_the_mutual_aid_claim_has_one_name_in_the_bot_the_templates_and_the_console(engine, roll, db_engine):
    """The claim is 医疗互助报销 in the notice a person receives, in their 'my applications' list and
    on the console; before, three places gave it three names."""
    name = label("application_type", "mutual_aid_claim", "zh-Hans")
    assert name == staff_label("application_type", "mutual_aid_claim") == "医疗互助报销"
    notice = TemplateSet().render("stage_accepted", "zh-Hans", {
        "salutation": "李伯", "reference": "NX-2026-000001", "application_type": "mutual_aid_claim"}).text
    assert name in notice
    console(engine, db_engine, LI_PHONE, "2\n2026-1-5到2026-1-20\n江门市中心医院\n8600\n是\n跳过\n跳过\n1")
    report = console(engine, db_engine, LI_PHONE, "7", session="t2")
    assert f"{name}：{label('stage', 'staged', 'zh-Hans')}" in report


def test_beneficiaries_read_plain_words_and_staff_the_office_terms():
    """The same stage reads 工作人员正在初审材料 to a person and 初审 on the console, in each language."""
    assert label("stage", "preliminary_review", "zh-Hans") == "工作人员正在初审材料"
    assert label("stage", "preliminary_review", "zh-Hans", "staff") == "初审"
    assert label("stage", "preliminary_review", "zh-Hant", "staff") == "初審"
    assert label("stage", "returned", "en", "staff") == "Returned for documents"
    assert labels("outbox_status", "en", "staff")["suppressed"].startswith("Not sent")


def test_staff_templates_read_staff_words(tmp_path: Path):
    """A kind declared `audience: staff` gets the staff words from label(), a beneficiary kind the plain ones."""
    root = tmp_path / "messages"
    root.mkdir()
    (root / "kinds.yaml").write_text("staff_note:\n  audience: staff\n  variables: [stage]\n"
                                     "person_note:\n  variables: [stage]\n", encoding="utf-8")
    for kind in ("staff_note", "person_note"):
        (root / kind).mkdir()
        for lang in ("zh-Hans", "en"):
            (root / kind / f"{lang}.j2").write_text(
                "{% block body %}{{ label('stage', stage) }}{% endblock %}{% block sms %}x{% endblock %}",
                encoding="utf-8")
    ts = TemplateSet(root)
    assert ts.render("staff_note", "zh-Hans", {"stage": "preliminary_review"}).text == "初审"
    assert ts.render("person_note", "zh-Hans", {"stage": "preliminary_review"}).text == "工作人员正在初审材料"
    assert ts.render("staff_note", "zh-Hant", {"stage": "verification"}).text == "核查"


def test_zh_hant_follows_the_configured_variant_unless_written(tmp_path: Path):
    """zh-Hant is converted in the variant asked for; a written zh-Hant text wins over the conversion."""
    (tmp_path / "g.yaml").write_text("soft: {zh-Hans: 软件信息, en: software}\n"
                                     "own: {zh-Hans: 菜单, zh-Hant: 功能表, en: menu}\n", encoding="utf-8")
    hk, tw = Catalogue.load(tmp_path, "s2hk"), Catalogue.load(tmp_path, "s2twp")
    assert hk.label("g", "soft", "zh-Hant") == "軟件信息" and tw.label("g", "soft", "zh-Hant") == "軟體資訊"
    assert hk.label("g", "own", "zh-Hant") == tw.label("g", "own", "zh-Hant") == "功能表"


@pytest.mark.parametrize(("text", "message"), [
    ("a: {zh-Hans: 甲}\n", "g.yaml: a.en: missing text"),
    ("a: {zh-Hans: 甲, en: A, fr: Ah}\n", "g.yaml: a.fr: unknown language"),
    ("a:\n  beneficiary: {zh-Hans: 甲, en: A}\n", "g.yaml: a.staff: missing"),
    ("a:\n  beneficiary: {zh-Hans: 甲, en: A}\n  staff: {zh-Hans: 甲, en: A}\n  public: {zh-Hans: 甲, en: A}\n",
     "g.yaml: a: public: unknown audience"),
    ("a: {zh-Hans: 甲, en: received, waiting}\n", "g.yaml: a.waiting: unknown language"),
    ("a: [\n", "g.yaml: not valid YAML"),
])
def test_a_broken_words_file_is_refused_naming_the_file_and_field(tmp_path: Path, text: str, message: str):
    """A missing language, a stray one, a missing audience or bad YAML stops loading with file and field named."""
    (tmp_path / "g.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(WordsProblem, match=re.escape(message)):
        Catalogue.load(tmp_path, "s2hk")


def test_an_unknown_code_is_shown_as_itself_and_an_unknown_group_or_audience_is_an_error():
    """A status added elsewhere never breaks a page (the code shows); a typo in a group name is caught."""
    assert label("outbox_status", "teleported", "zh-Hans", "staff") == "teleported"
    assert staff_label("stage", None) == ""
    with pytest.raises(UnknownGroup):
        label("stages", "staged", "zh-Hans")
    with pytest.raises(ValueError, match="audience"):
        label("stage", "staged", "zh-Hans", "public")


def test_words_of_notices_come_from_the_catalogue():
    """The SMS footer and the family prefix of notices are the catalogue's, in each language."""
    ts = TemplateSet()
    assert ts.footer("zh-Hant") == label("message_part", "sms_footer", "zh-Hant") == "回覆TD退訂"
    text = ts.render("stage_paid", "en", {"salutation": "Mr Li", "reference": "NX-1",
                                          "application_type": "hardship"}, relay_to="Li Si").text
    assert text.startswith("For Li Si: ") or "For Li Si: " in text
    assert label("application_type", "hardship", "en") in text
