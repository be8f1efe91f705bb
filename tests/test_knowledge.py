"""Rules for the knowledge base: what staff write, and how the loader reports mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.knowledge import LANGUAGES, SMS_LIMIT, KnowledgeError, load_knowledge

SEEDS_YAML = """\
"003":
  zh-Hans: 开远市退役军人事务局报道
  en: Kaiyuan Veterans Affairs Bureau report
"004":
  zh-Hans: 永定职工医疗互助报道
  en: Yongding mutual aid report
"""


def article(article_id: str = "mutual-cost", language: str = "zh-Hans", seed: str = "004",
            body: str = "每年交100元。", extra: str = "", drop: str = "") -> str:
    fields = {
        "id": article_id, "title": "职工医疗互助每年交多少钱", "language": language, "seed": f"'{seed}'",
        "questions": "[医疗互助一年交多少钱]", "keywords": "[互助金, 100元]",
        "reviewed_by": "张三", "reviewed_on": "2026-11-01",
    }
    head = "\n".join(f"{k}: {v}" for k, v in fields.items() if k != drop)
    return f"---\n{head}\n{extra}---\n{body}\n"


def make_kb(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "knowledge"
    for lang in LANGUAGES:
        (root / lang).mkdir(parents=True)
    (root / "seeds.yaml").write_text(SEEDS_YAML, encoding="utf-8")
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


def problems_of(root: Path) -> list[str]:
    with pytest.raises(KnowledgeError) as caught:
        load_knowledge(root)
    return caught.value.problems


# ------------------------------------------------------------------ the shipped knowledge base


@pytest.fixture(scope="module")
def shipped():
    return load_knowledge()


def test_shipped_knowledge_has_at_least_60_articles_in_each_language(shipped) -> None:
    for lang in LANGUAGES:
        assert len(shipped.in_language(lang)) >= 60, lang


def test_every_article_is_translated(shipped) -> None:
    assert shipped.missing_translations() == []


def test_every_seed_document_is_covered_by_articles(shipped) -> None:
    cited = {a.seed for a in shipped.articles}
    assert cited == set(shipped.seeds) == {"000", "001", "002", "003", "004"}


def test_translations_cite_the_same_seed(shipped) -> None:
    for zh in shipped.in_language("zh-Hans"):
        en = shipped.get(zh.id, "en")
        assert en is not None and en.seed == zh.seed, zh.id


def test_every_article_has_a_short_sms_variant(shipped) -> None:
    for a in shipped.articles:
        assert a.sms, a.path
        assert len(a.sms) <= SMS_LIMIT[a.language], a.path


def test_every_article_is_marked_as_reviewed(shipped) -> None:
    for a in shipped.articles:
        assert a.reviewed_by.strip() and a.reviewed_on.year >= 2020, a.path


# ------------------------------------------------------------------ loader error reports


def test_valid_article_loads_with_its_fields(tmp_path: Path) -> None:
    body = "每年交100元。\n\n<!-- sms -->\n医疗互助每年100元。"
    kb = load_knowledge(make_kb(tmp_path, {"zh-Hans/mutual-cost.md": article(body=body)}))
    (a,) = kb.articles
    assert (a.id, a.language, a.seed) == ("mutual-cost", "zh-Hans", "004")
    assert a.questions == ("医疗互助一年交多少钱",) and a.keywords == ("互助金", "100元")
    assert a.body == "每年交100元。" and a.sms == "医疗互助每年100元。"


def test_unquoted_seed_number_is_read_as_the_seed_id(tmp_path: Path) -> None:
    text = article().replace("seed: '004'", "seed: 004")
    kb = load_knowledge(make_kb(tmp_path, {"zh-Hans/a.md": text}))
    assert kb.articles[0].seed == "004"


def test_loader_names_the_file_with_broken_front_matter(tmp_path: Path) -> None:
    root = make_kb(tmp_path, {"zh-Hans/good.md": article(),
                              "zh-Hans/broken.md": "id: x\ntitle: no fences\n\n正文"})
    (problem,) = problems_of(root)
    assert "broken.md" in problem and "front matter" in problem


def test_loader_names_the_file_whose_front_matter_is_not_yaml(tmp_path: Path) -> None:
    text = article().replace("questions: [医疗互助一年交多少钱]", "questions: [医疗互助一年交多少钱")
    (problem,) = problems_of(make_kb(tmp_path, {"zh-Hans/bad-yaml.md": text}))
    assert "bad-yaml.md" in problem and "front matter" in problem


def test_loader_names_the_missing_field(tmp_path: Path) -> None:
    (problem,) = problems_of(make_kb(tmp_path, {"zh-Hans/no-keywords.md": article(drop="keywords")}))
    assert "no-keywords.md" in problem and "keywords" in problem and "missing" in problem


def test_loader_rejects_duplicate_ids_within_a_language(tmp_path: Path) -> None:
    root = make_kb(tmp_path, {"zh-Hans/one.md": article(), "zh-Hans/two.md": article()})
    (problem,) = problems_of(root)
    assert "duplicate id" in problem and "mutual-cost" in problem and "one.md" in problem and "two.md" in problem


def test_same_id_in_two_languages_is_a_translation_not_a_duplicate(tmp_path: Path) -> None:
    en = article(language="en", body="100 yuan a year.")
    kb = load_knowledge(make_kb(tmp_path, {"zh-Hans/a.md": article(), "en/a.md": en}))
    assert kb.missing_translations() == [] and len(kb.articles) == 2


def test_loader_rejects_an_unknown_seed(tmp_path: Path) -> None:
    (problem,) = problems_of(make_kb(tmp_path, {"zh-Hans/a.md": article(seed="009")}))
    assert "a.md" in problem and "unknown seed" in problem and "009" in problem


def test_loader_rejects_a_bad_language(tmp_path: Path) -> None:
    (problem,) = problems_of(make_kb(tmp_path, {"zh-Hans/a.md": article(language="zh-Hant")}))
    assert "bad language" in problem and "zh-Hant" in problem


def test_loader_rejects_a_language_that_does_not_match_the_folder(tmp_path: Path) -> None:
    (problem,) = problems_of(make_kb(tmp_path, {"en/a.md": article(language="zh-Hans")}))
    assert "does not match its folder" in problem


def test_loader_reports_a_misspelt_field_name(tmp_path: Path) -> None:
    (problem,) = problems_of(make_kb(tmp_path, {"zh-Hans/a.md": article(extra="keyword: [x]\n")}))
    assert "unknown field" in problem and "keyword" in problem


def test_loader_rejects_questions_that_are_not_a_list(tmp_path: Path) -> None:
    text = article().replace("questions: [医疗互助一年交多少钱]", "questions: 医疗互助一年交多少钱")
    (problem,) = problems_of(make_kb(tmp_path, {"zh-Hans/a.md": text}))
    assert "questions must be a list" in problem


def test_loader_rejects_an_empty_answer(tmp_path: Path) -> None:
    (problem,) = problems_of(make_kb(tmp_path, {"zh-Hans/a.md": article(body="")}))
    assert "answer" in problem and "empty" in problem


def test_loader_rejects_an_sms_that_is_too_long(tmp_path: Path) -> None:
    body = "每年交100元。\n<!-- sms -->\n" + "很" * (SMS_LIMIT["zh-Hans"] + 1)
    (problem,) = problems_of(make_kb(tmp_path, {"zh-Hans/a.md": article(body=body)}))
    assert "SMS" in problem and "a.md" in problem


def test_loader_reports_every_broken_file_at_once(tmp_path: Path) -> None:
    root = make_kb(tmp_path, {"zh-Hans/a.md": article(seed="999"), "en/b.md": article(language="fr"),
                              "zh-Hans/c.md": "no front matter"})
    problems = problems_of(root)
    assert len(problems) == 3
    assert {name for name in ("a.md", "b.md", "c.md") if any(name in p for p in problems)} == {"a.md", "b.md",
                                                                                            "c.md"}


def test_loader_reports_a_missing_seeds_file(tmp_path: Path) -> None:
    root = make_kb(tmp_path, {"zh-Hans/a.md": article()})
    (root / "seeds.yaml").unlink()
    assert any("seeds.yaml" in p for p in problems_of(root))


def test_loader_names_a_malformed_not_covered_topic(tmp_path: Path) -> None:
    root = make_kb(tmp_path, {"zh-Hans/a.md": article()})
    (root / "not_covered.yaml").write_text("zh-Hans:\n  公积金: 公积金\n", encoding="utf-8")
    (problem,) = problems_of(root)
    assert "not_covered.yaml" in problem and "公积金" in problem


def test_loader_names_a_synonym_group_with_one_word(tmp_path: Path) -> None:
    root = make_kb(tmp_path, {"zh-Hans/a.md": article()})
    (root / "synonyms.yaml").write_text("zh-Hans:\n  - [老兵]\n", encoding="utf-8")
    (problem,) = problems_of(root)
    assert "synonyms.yaml" in problem and "at least two words" in problem


def test_seed_short_name_for_sms_falls_back_to_the_full_name(tmp_path: Path) -> None:
    kb = load_knowledge(make_kb(tmp_path, {"zh-Hans/a.md": article()}))
    assert kb.seeds["004"]["zh-Hans-sms"] == kb.seeds["004"]["zh-Hans"] == "永定职工医疗互助报道"
