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
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import yaml

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "knowledge"
LANGUAGES = ("zh-Hans", "en")
REQUIRED_FIELDS = ("id", "title", "language", "seed", "questions", "keywords", "reviewed_by", "reviewed_on")
OPTIONAL_FIELDS = ("sms", "answers", "for", "places")
# What an article may declare it answers (see bot/qa_question.py) and for whom.
ANSWER_KINDS = ("why", "when", "cost", "amount", "count", "who", "where", "how", "may_i", "what")
GROUPS = ("veteran", "retiree", "worker", "anyone")
# An article that declares nothing answers only the general kinds of question, for anyone,
# and no question that names a place: the safe side when a draft forgets its front matter.
DEFAULT_ANSWERS = ("what", "may_i", "how", "who", "where")
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
    answers: tuple[str, ...] = DEFAULT_ANSWERS  # the kinds of question it answers
    groups: tuple[str, ...] = ("anyone",)  # whom its facts are about (front matter `for`)
    places: tuple[str, ...] = ()  # the places its facts are about (front matter `places`)


@dataclass(frozen=True)
class KnowledgeBase:
    articles: tuple[Article, ...]
    # seed id -> language -> name of the source document, as shown in source lines
    seeds: dict[str, dict[str, str]]
    # language -> groups of words that mean the same; the first word of a group is its canonical form
    synonyms: dict[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)
    # language -> topic -> phrases that mark a question the articles do not answer
    not_covered: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    # what was refused when the base was loaded leniently (each names the article and the reason)
    problems: tuple[str, ...] = ()
    # places.yaml: the place names questions are read for, and their other spellings
    place_names: tuple[str, ...] = ()
    place_aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def with_articles(self, articles: Iterable[Article], problems: Iterable[str] = ()) -> KnowledgeBase:
        """The same seeds, synonyms and places with another set of articles."""
        return KnowledgeBase(articles=tuple(articles), seeds=self.seeds, synonyms=self.synonyms,
                             not_covered=self.not_covered, problems=tuple(problems),
                             place_names=self.place_names, place_aliases=self.place_aliases)

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


def load_knowledge(directory: Path | None = None, strict: bool = True) -> KnowledgeBase:
    """Read and validate the whole knowledge base.

    strict: raise KnowledgeError listing every problem (what `nuanxin knowledge validate`
    and the tests want). Not strict: an article that fails validation is left out and its
    problem kept in `KnowledgeBase.problems`, so the bot keeps answering from the rest.
    The shared files (seeds, synonyms, not covered, places) must be sound either way.
    """
    root = Path(directory) if directory is not None else DEFAULT_DIR
    problems: list[str] = []
    if not root.is_dir():
        raise KnowledgeError([f"{root}: knowledge directory does not exist"])
    seeds = _load_seeds(root / "seeds.yaml", problems)
    synonyms = _load_synonyms(root / "synonyms.yaml", problems)
    not_covered = _load_not_covered(root / "not_covered.yaml", problems)
    place_names, place_aliases = _load_places(root / "places.yaml", problems)
    if problems and not strict:
        raise KnowledgeError(problems)
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
    if problems and strict:
        raise KnowledgeError(problems)
    return KnowledgeBase(articles=tuple(articles), seeds=seeds, synonyms=synonyms, not_covered=not_covered,
                         problems=tuple(problems), place_names=place_names, place_aliases=place_aliases)


def _load_places(path: Path, problems: list[str]) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    if not path.exists():
        return (), {}
    data = _read_yaml(path, problems)
    if not isinstance(data, dict):
        problems.append(f"{path}: must hold provinces, cities and aliases")
        return (), {}
    names: list[str] = []
    for key in ("provinces", "cities"):
        value = data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            problems.append(f"{path}: {key} must be a list of names")
            continue
        names.extend(v.strip() for v in value)
    aliases_raw = data.get("aliases") or {}
    aliases: dict[str, tuple[str, ...]] = {}
    if not isinstance(aliases_raw, dict):
        problems.append(f"{path}: aliases must map a name to its other spellings")
    else:
        for canonical, forms in aliases_raw.items():
            if not isinstance(forms, list) or not all(isinstance(f, str) and f.strip() for f in forms):
                problems.append(f"{path}: aliases of {canonical!r} must be a list")
                continue
            aliases[str(canonical)] = tuple(f.strip() for f in forms)
    return tuple(names), aliases


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
    article = parse_article(text, name, seeds, problems, folder=path.parent.name)
    return None if article is None else replace(article, path=path)


def parse_article(text: str, name: str, seeds: dict[str, dict[str, str]], problems: list[str],
                  folder: str | None = None) -> Article | None:
    """One article from its Markdown text, or None with the reasons appended to `problems`.

    `name` is how problems refer to it (a file name, or "article <id> (<language>)" for one
    held in the database); `folder` is the language folder a file sits in, when it does."""
    path = Path(name)
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
    elif folder in LANGUAGES and folder != language:
        problems.append(f"{name}: language {language!r} does not match its folder {folder!r}")
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

    answers = _choices(meta.get("answers"), "answers", ANSWER_KINDS, name, problems) or DEFAULT_ANSWERS
    groups = _choices(meta.get("for"), "for", GROUPS, name, problems) or ("anyone",)
    places = tuple(_string_list(meta["places"], "places", name, problems)) if meta.get("places") else ()

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
        answers=answers, groups=groups, places=places,
    )


def _choices(value: object, field_name: str, allowed: tuple[str, ...], name: str,
             problems: list[str]) -> tuple[str, ...]:
    if value in (None, "", []):
        return ()
    items = _string_list(value, field_name, name, problems)
    unknown = [i for i in items if i not in allowed]
    if unknown:
        problems.append(f"{name}: {field_name}: unknown value(s) {', '.join(unknown)} "
                        f"(allowed: {', '.join(allowed)})")
    return tuple(i for i in items if i in allowed)


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
