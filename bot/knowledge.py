"""The reviewed knowledge base: Markdown articles with YAML front matter.

Layout (see knowledge/README.md for the staff guide):
    knowledge/seeds.yaml         the source documents an article may cite, named per language
    knowledge/synonyms.yaml      words people use for the same thing (zh-Hans and en groups)
    knowledge/not_covered.yaml   topics the articles do not answer: always handed to staff
    knowledge/<language>/*.md    one article per file; the same `id` links translations

Every problem is reported with the file it is in, all at once, so a reviewer can fix a
batch of articles in one pass instead of one error per start-up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import yaml

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "knowledge"
LANGUAGES = ("zh-Hans", "en")
REQUIRED_FIELDS = ("id", "title", "language", "seed", "questions", "keywords", "reviewed_by", "reviewed_on")
OPTIONAL_FIELDS = ("sms",)
SMS_MARKER = "<!-- sms -->"
# One SMS: about 130 Chinese characters leaves room for the source line within two UCS-2 parts.
SMS_LIMIT = {"zh-Hans": 140, "en": 320}
_ID_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# The C loader parses the whole base several times faster; fall back when libyaml is absent.
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class KnowledgeError(ValueError):
    """One or more knowledge files are invalid; each line names the file and the problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid knowledge base:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    language: str
    seed: str
    questions: tuple[str, ...]
    keywords: tuple[str, ...]
    reviewed_by: str
    reviewed_on: date
    body: str
    sms: str
    path: Path


@dataclass(frozen=True)
class KnowledgeBase:
    articles: tuple[Article, ...]
    # seed id -> language -> name of the source document, as shown in source lines
    seeds: dict[str, dict[str, str]]
    # language -> groups of words that mean the same; the first word of a group is its canonical form
    synonyms: dict[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)
    # language -> topic -> phrases that mark a question the articles do not answer
    not_covered: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)

    def in_language(self, language: str) -> list[Article]:
        return [a for a in self.articles if a.language == language]

    def get(self, article_id: str, language: str) -> Article | None:
        for article in self.articles:
            if article.id == article_id and article.language == language:
                return article
        return None

    def missing_translations(self) -> list[str]:
        """Ids present in one language and not in another, as 'id (has: zh-Hans)'."""
        by_id: dict[str, set[str]] = {}
        for article in self.articles:
            by_id.setdefault(article.id, set()).add(article.language)
        return [
            f"{article_id} (has: {', '.join(sorted(langs))})"
            for article_id, langs in sorted(by_id.items())
            if langs != set(LANGUAGES)
        ]


def load_knowledge(directory: Path | None = None) -> KnowledgeBase:
    """Read and validate the whole knowledge base; raise KnowledgeError listing every problem."""
    root = Path(directory) if directory is not None else DEFAULT_DIR
    problems: list[str] = []
    if not root.is_dir():
        raise KnowledgeError([f"{root}: knowledge directory does not exist"])
    seeds = _load_seeds(root / "seeds.yaml", problems)
    synonyms = _load_synonyms(root / "synonyms.yaml", problems)
    not_covered = _load_not_covered(root / "not_covered.yaml", problems)
    articles: list[Article] = []
    seen: dict[tuple[str, str], Path] = {}
    for path in sorted(root.glob("*/*.md")):
        article = _parse_article(path, root, seeds, problems)
        if article is None:
            continue
        key = (article.language, article.id)
        if key in seen:
            problems.append(f"{_rel(path, root)}: duplicate id {article.id!r} in {article.language} "
                            f"(also in {_rel(seen[key], root)})")
            continue
        seen[key] = path
        articles.append(article)
    if not articles and not problems:
        problems.append(f"{root}: no articles found (expected knowledge/<language>/*.md)")
    if problems:
        raise KnowledgeError(problems)
    return KnowledgeBase(articles=tuple(articles), seeds=seeds, synonyms=synonyms, not_covered=not_covered)


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root.parent))
    except ValueError:
        return str(path)


def _read_yaml(path: Path, problems: list[str]) -> object:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_YamlLoader)
    except FileNotFoundError:
        problems.append(f"{path}: file is missing")
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot be read as YAML ({_first_line(exc)})")
    return None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _load_seeds(path: Path, problems: list[str]) -> dict[str, dict[str, str]]:
    data = _read_yaml(path, problems)
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.append(f"{path}: must map seed ids to document names per language")
        return {}
    seeds: dict[str, dict[str, str]] = {}
    for seed_id, names in data.items():
        if not isinstance(names, dict) or any(lang not in names for lang in LANGUAGES):
            problems.append(f"{path}: seed {seed_id!r} needs a document name for each of {', '.join(LANGUAGES)}")
            continue
        # "<language>-sms" is an optional shorter name for the source in SMS replies.
        seeds[str(seed_id)] = {lang: str(names[lang]) for lang in LANGUAGES}
        for lang in LANGUAGES:
            seeds[str(seed_id)][f"{lang}-sms"] = str(names.get(f"{lang}-sms") or names[lang])
    return seeds


def _load_synonyms(path: Path, problems: list[str]) -> dict[str, tuple[tuple[str, ...], ...]]:
    if not path.exists():
        return {}
    data = _read_yaml(path, problems)
    if not isinstance(data, dict):
        problems.append(f"{path}: must map a language to a list of word groups")
        return {}
    result: dict[str, tuple[tuple[str, ...], ...]] = {}
    for lang, groups in data.items():
        if lang not in LANGUAGES:
            problems.append(f"{path}: unknown language {lang!r} (use one of {', '.join(LANGUAGES)})")
            continue
        if not isinstance(groups, list) or not all(
            isinstance(g, list) and len(g) >= 2 and all(isinstance(w, str) and w.strip() for w in g)
            for g in groups
        ):
            problems.append(f"{path}: {lang}: every group must be a list of at least two words")
            continue
        result[lang] = tuple(tuple(w.strip() for w in g) for g in groups)
    return result


def _load_not_covered(path: Path, problems: list[str]) -> dict[str, dict[str, tuple[str, ...]]]:
    if not path.exists():
        return {}
    data = _read_yaml(path, problems)
    if not isinstance(data, dict):
        problems.append(f"{path}: must map a language to topics and their phrases")
        return {}
    result: dict[str, dict[str, tuple[str, ...]]] = {}
    for lang, topics in data.items():
        if lang not in LANGUAGES:
            problems.append(f"{path}: unknown language {lang!r} (use one of {', '.join(LANGUAGES)})")
            continue
        if not isinstance(topics, dict):
            problems.append(f"{path}: {lang}: must map each topic to a list of phrases")
            continue
        result[lang] = {}
        for topic, phrases in topics.items():
            if not isinstance(phrases, list) or not phrases or not all(isinstance(p, str) and p.strip()
                                                                        for p in phrases):
                problems.append(f"{path}: {lang}: topic {topic!r} needs a list of phrases")
                continue
            result[lang][str(topic)] = tuple(p.strip() for p in phrases)
    return result


def _split_front_matter(text: str) -> tuple[str, str] | None:
    text = text.lstrip("\ufeff")
    if not text.startswith("---"):
        return None
    match = re.match(r"^---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|$)(.*)$", text, re.DOTALL)
    if not match:
        return None
    return match.group(1), match.group(2)


def _parse_article(path: Path, root: Path, seeds: dict[str, dict[str, str]],
                   problems: list[str]) -> Article | None:
    name = _rel(path, root)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        problems.append(f"{name}: not UTF-8 text")
        return None
    parts = _split_front_matter(text)
    if parts is None:
        problems.append(f"{name}: broken front matter (the file must start with '---', "
                        "then the fields, then a line '---')")
        return None
    head, body = parts
    try:
        meta = yaml.load(head, Loader=_YamlLoader)
    except yaml.YAMLError as exc:
        problems.append(f"{name}: broken front matter: {_first_line(exc)}")
        return None
    if not isinstance(meta, dict):
        problems.append(f"{name}: broken front matter (expected 'field: value' lines)")
        return None

    before = len(problems)
    missing = [f for f in REQUIRED_FIELDS if meta.get(f) in (None, "", [])]
    if missing:
        problems.append(f"{name}: missing field(s): {', '.join(missing)}")
    unknown = sorted(set(meta) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        problems.append(f"{name}: unknown field(s): {', '.join(map(str, unknown))} "
                        f"(allowed: {', '.join(REQUIRED_FIELDS + OPTIONAL_FIELDS)})")
    if missing:
        return None

    article_id = str(meta["id"])
    if not _ID_PATTERN.match(article_id):
        problems.append(f"{name}: id {article_id!r} must be lowercase letters, digits and hyphens")
    language = str(meta["language"])
    if language not in LANGUAGES:
        problems.append(f"{name}: bad language {language!r} (use one of {', '.join(LANGUAGES)}; "
                        "zh-Hant is made from zh-Hans automatically)")
    elif path.parent.name in LANGUAGES and path.parent.name != language:
        problems.append(f"{name}: language {language!r} does not match its folder {path.parent.name!r}")
    seed = _seed_id(meta["seed"])
    if seed not in seeds:
        problems.append(f"{name}: unknown seed {meta['seed']!r} (known: {', '.join(sorted(seeds)) or 'none'})")
    questions = _string_list(meta["questions"], "questions", name, problems)
    keywords = _string_list(meta["keywords"], "keywords", name, problems)
    reviewed_on = meta["reviewed_on"]
    if not isinstance(reviewed_on, date):
        try:
            reviewed_on = date.fromisoformat(str(reviewed_on))
        except ValueError:
            problems.append(f"{name}: reviewed_on {meta['reviewed_on']!r} is not a date (YYYY-MM-DD)")

    answer, sms = _split_sms(body)
    if meta.get("sms"):
        if sms:
            problems.append(f"{name}: SMS text given twice (front matter 'sms' and a '{SMS_MARKER}' section)")
        sms = str(meta["sms"]).strip()
    if not answer:
        problems.append(f"{name}: the answer (text after the front matter) is empty")
    if language in SMS_LIMIT and len(sms) > SMS_LIMIT[language]:
        problems.append(f"{name}: SMS text has {len(sms)} characters, more than {SMS_LIMIT[language]}")
    if len(problems) > before:
        return None
    return Article(
        id=article_id, title=str(meta["title"]).strip(), language=language, seed=seed,
        questions=tuple(questions), keywords=tuple(keywords), reviewed_by=str(meta["reviewed_by"]),
        reviewed_on=reviewed_on, body=answer, sms=sms, path=path,
    )


def _seed_id(value: object) -> str:
    # YAML reads `seed: 003` as the integer 3; staff should not have to quote it.
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:03d}"
    return str(value).strip()


def _string_list(value: object, field_name: str, name: str, problems: list[str]) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        problems.append(f"{name}: {field_name} must be a list")
        return []
    items = [str(v).strip() for v in value if v is not None and str(v).strip()]
    if not items:
        problems.append(f"{name}: {field_name} is empty")
    return items


def _split_sms(body: str) -> tuple[str, str]:
    if SMS_MARKER in body:
        answer, sms = body.split(SMS_MARKER, 1)
        return answer.strip(), sms.strip()
    return body.strip(), ""
