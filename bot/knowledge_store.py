"""The knowledge base as staff keep it: shipped files overlaid by reviewed database rows.

The API the console's knowledge page (and the CLI) use; every function takes the database
engine and, for changes, the staff member acting, and writes an audit row:

    list_articles(db, state=None, language=None)       -> [ArticleSummary]
    get_article(db, article_id, language)              -> ArticleRecord (texts, state, history)
    validate(db, text, language=None)                  -> [problem]           (nothing saved)
    save_draft(db, article_id, language, text, staff, now, ticket_id=None) -> ArticleRecord
    review(db, article_id, language, staff, now)       -> ArticleRecord  (raises KnowledgeRefused)
    retire(db, article_id, language, staff, now, note) -> ArticleRecord
    preview(db, text, question=None)                   -> Preview (answer and SMS as the bot would send)
    most_handed_off(db, now, days=30)                  -> [HandoffGroup]
    draft_from_ticket(db, ticket_id, staff, now)       -> ArticleRecord

and for the bot: `load_live(db)` (files + reviewed rows, a bad article skipped and reported),
`knowledge_version(db)` (the counter a running bot checks per question), `live_qa(db)`.

Drafts never reach the bot: only a review (by someone other than the draft's author, with
the approver or admin role) changes what it answers, and only a text that validates.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.knowledge import (
    DEFAULT_DIR,
    LANGUAGES,
    Article,
    KnowledgeBase,
    KnowledgeError,
    load_knowledge,
    parse_article,
)
from bot.knowledge_cache import KnowledgeCache, StoredArticle
from models.actions import audit
from models.db import write_scope
from models.knowledge import ArticleState, KnowledgeArticle, KnowledgeRevision, KnowledgeVersion

EDIT_ROLES = ("caseworker", "composer", "approver", "admin")
REVIEW_ROLES = ("approver", "admin")
_FRONT = re.compile(r"^---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|$)(.*)$", re.DOTALL)


class KnowledgeRefused(ValueError):
    """The change was refused; `problems` says why, one reason a line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class ArticleSummary:
    article_id: str
    language: str
    title: str
    state: str  # reviewed | draft | retired; "shipped" for a file no row overlays
    source: str  # "file" | "database" | "file+database"
    has_draft: bool
    reviewed_by: str
    updated_at: datetime | None


@dataclass(frozen=True)
class Revision:
    revision: int
    action: str
    actor: str
    at: datetime
    note: str
    text: str | None


@dataclass(frozen=True)
class ArticleRecord:
    article_id: str
    language: str
    state: str
    text: str | None  # what answers now (the reviewed row, else the shipped file), None when nothing does
    draft_text: str | None
    draft_by: str | None
    reviewed_by: str | None
    reviewed_at: datetime | None
    shipped_text: str | None
    problems: list[str]  # of the draft (or of the answering text when there is no draft)
    history: list[Revision] = field(default_factory=list)


@dataclass(frozen=True)
class Preview:
    problems: list[str]
    answer: str  # the full reply as the bot would give it ("" when the text does not validate)
    sms: str
    handoff: bool  # for a preview with a question: whether the bot would hand it off
    reason: str


@dataclass(frozen=True)
class HandoffGroup:
    topic: str  # the nearest article's id ("" when none is near)
    title: str
    reason: str
    count: int
    examples: list[str]
    ticket_ids: list[int]


# --------------------------------------------------------------------------- the live base


def knowledge_version(db: Engine) -> int:
    """The change counter (0 before any review): one primary-key read."""
    with Session(db) as s:
        row = s.get(KnowledgeVersion, 1)
        return row.version if row is not None else 0


def _shipped(directory: Path | None = None) -> KnowledgeBase:
    return load_knowledge(directory, strict=False)


def load_live(db: Engine, directory: Path | None = None) -> KnowledgeBase:
    """Shipped files overlaid by reviewed rows and minus retired ones. An article that fails
    validation is left out and named in `problems`; the rest answer."""
    return _overlaid(_shipped(directory), _answering_rows(db))


def _answering_rows(db: Engine) -> list[StoredArticle]:
    """The rows that change what the bot answers: reviewed and retired articles."""
    with Session(db) as s:
        rows = s.exec(select(KnowledgeArticle).where(
            col(KnowledgeArticle.state).in_([ArticleState.REVIEWED.value, ArticleState.RETIRED.value]))).all()
        return [StoredArticle(row.article_id, row.language, row.state, row.text) for row in rows]


def _overlaid(base: KnowledgeBase, rows: list[StoredArticle]) -> KnowledgeBase:
    articles: dict[tuple[str, str], Article] = {(a.language, a.id): a for a in base.articles}
    problems = list(base.problems)
    for row in rows:
        key = (row.language, row.article_id)
        if row.state == ArticleState.RETIRED.value:
            articles.pop(key, None)
            continue
        if row.text is None:  # an edit of a shipped article awaiting its first review: the file answers
            continue
        found: list[str] = []
        article = parse_article(row.text or "", _name(row.article_id, row.language), base.seeds, found)
        if article is None or article.id != row.article_id or article.language != row.language:
            problems.extend(found or [f"{_name(row.article_id, row.language)}: id or language differs from its row"])
            continue
        articles[key] = article
    return base.with_articles(sorted(articles.values(), key=lambda a: (a.language, a.id)), problems)


def live_qa(db: Engine, directory: Path | None = None, cache_dir: Path | None = None, **kwargs: Any) -> Any:
    """A LiveQA over the database's knowledge: edits take effect on the next question. With
    `cache_dir`, each index built is kept there and read back by the next process whose
    knowledge is the same (bot/knowledge_cache.py)."""
    from bot.qa import QA, LiveQA

    if cache_dir is None:
        return LiveQA(lambda: load_live(db, directory), lambda: knowledge_version(db), **kwargs)
    from bot.qa_embed import shared_embedder

    use_embeddings = kwargs.pop("use_embeddings", True)
    embedder = kwargs.pop("embedder", None) or (shared_embedder() if use_embeddings else None)
    cache = KnowledgeCache(cache_dir, Path(directory) if directory is not None else DEFAULT_DIR)

    def build() -> QA:
        rows = _answering_rows(db)  # read once: the key and the index are of the same rows
        return cache.qa(rows, lambda: QA(_overlaid(_shipped(directory), rows), embedder,
                                         use_embeddings=use_embeddings), embedder)

    return LiveQA(lambda: load_live(db, directory), lambda: knowledge_version(db), embedder=embedder,
                  use_embeddings=use_embeddings, build=build, **kwargs)


# --------------------------------------------------------------------------- reading


def list_articles(db: Engine, state: str | None = None, language: str | None = None,
                  directory: Path | None = None) -> list[ArticleSummary]:
    base = _shipped(directory)
    shipped = {(a.language, a.id): a for a in base.articles}
    with Session(db) as s:
        rows = {(r.language, r.article_id): r for r in s.exec(select(KnowledgeArticle)).all()}
    out: list[ArticleSummary] = []
    for key in sorted(set(shipped) | set(rows)):
        lang, article_id = key
        row, file_article = rows.get(key), shipped.get(key)
        text = (row.text or row.draft_text) if row is not None else None
        title = _title_of(text) if text else (file_article.title if file_article else article_id)
        item_state = row.state if row is not None else "shipped"
        out.append(ArticleSummary(
            article_id=article_id, language=lang, title=title, state=item_state,
            source="file+database" if row is not None and file_article is not None
            else "database" if row is not None else "file",
            has_draft=bool(row is not None and row.draft_text),
            reviewed_by=(row.reviewed_by or "") if row is not None and row.reviewed_by
            else (file_article.reviewed_by if file_article else ""),
            updated_at=row.updated_at if row is not None else None))
    if state is not None:
        wanted = "shipped" if state == "shipped" else state
        out = [a for a in out if a.state == wanted or (state == ArticleState.DRAFT.value and a.has_draft)]
    if language is not None:
        out = [a for a in out if a.language == language]
    return out


def get_article(db: Engine, article_id: str, language: str, directory: Path | None = None) -> ArticleRecord:
    shipped_text = _shipped_text(article_id, language, directory)
    with Session(db) as s:
        row = _row(s, article_id, language)
        history = [] if row is None else [
            Revision(r.revision, r.action, r.actor, r.at, r.note, r.text)
            for r in s.exec(select(KnowledgeRevision).where(
                col(KnowledgeRevision.knowledge_article_id) == row.id).order_by(col(KnowledgeRevision.revision)))]
    if row is None and shipped_text is None:
        raise KnowledgeRefused([f"no article {article_id!r} in {language}"])
    if row is None:
        return ArticleRecord(article_id, language, "shipped", shipped_text, None, None, None, None, shipped_text,
                             validate(db, shipped_text or "", language, directory, for_review=False))
    current = row.text if row.state == ArticleState.REVIEWED.value else None
    if current is None and row.state != ArticleState.RETIRED.value:
        current = shipped_text
    checked = row.draft_text if row.draft_text is not None else (row.text or "")
    return ArticleRecord(article_id, language, row.state, current, row.draft_text, row.draft_by, row.reviewed_by,
                         row.reviewed_at, shipped_text, validate(db, checked, language, directory, for_review=False),
                         history)


# --------------------------------------------------------------------------- validation


def validate(db: Engine | None, text: str, language: str | None = None, directory: Path | None = None,
             for_review: bool = True) -> list[str]:
    """Every reason `text` could not answer questions ([] when it could). for_review=False
    leaves out `reviewed_by` / `reviewed_on`, which a review fills in."""
    base = _shipped(directory)
    text = _with_review_fields(text, "(review pending)", date(2000, 1, 1)) if not for_review else text
    problems: list[str] = []
    name = "article"
    article = parse_article(text, name, base.seeds, problems)
    if article is not None and language is not None and article.language != language:
        problems.append(f"{name}: language {article.language!r} but saved as {language!r}")
    return [p.removeprefix(f"{name}: ") for p in problems]


# --------------------------------------------------------------------------- changes


def save_draft(db: Engine, article_id: str, language: str, text: str, staff: str, now: datetime,
               ticket_id: int | None = None) -> ArticleRecord:
    """Keep `text` as the article's pending draft. A draft may be incomplete (its problems are
    in the returned record); one that is not even an article of this id and language is refused."""
    if language not in LANGUAGES:
        raise KnowledgeRefused([f"language must be one of {', '.join(LANGUAGES)}"])
    if not re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", article_id):
        raise KnowledgeRefused([f"id {article_id!r} must be lowercase letters, digits and hyphens"])
    if not text.strip():
        raise KnowledgeRefused(["the text is empty"])
    declared = _front(text)
    if declared is not None and declared.get("id") not in (None, "", article_id):
        raise KnowledgeRefused([f"the text's id {declared.get('id')!r} is not {article_id!r}"])
    with write_scope(db) as s:
        _staff(s, staff, EDIT_ROLES)
        row = _row(s, article_id, language)
        if row is None:
            row = KnowledgeArticle(article_id=article_id, language=language, state=ArticleState.DRAFT.value,
                                   from_ticket_id=ticket_id, created_at=now, updated_at=now)
            if _shipped_text(article_id, language) is not None:
                row.state = ArticleState.REVIEWED.value  # an edit of a shipped article: the file answers meanwhile
        row.draft_text = text
        row.draft_by = staff
        row.draft_at = now
        row.updated_at = now
        _record(s, row, "draft", text, staff, now)
        audit(s, staff, "knowledge.draft", "knowledge_article", f"{article_id}/{language}",
              {"revision": row.revision, "from_ticket": ticket_id}, now)
    return get_article(db, article_id, language)


def review(db: Engine, article_id: str, language: str, staff: str, now: datetime, note: str = "") -> ArticleRecord:
    """Approve the pending draft: it answers from the next question on. Refused (with the
    reasons) when it does not validate, when the reviewer wrote it, or without the role."""
    with write_scope(db) as s:
        _staff(s, staff, REVIEW_ROLES)
        row = _row(s, article_id, language)
        if row is None or not row.draft_text:
            raise KnowledgeRefused([f"no draft of {article_id!r} in {language} to review"])
        if row.draft_by == staff:
            raise KnowledgeRefused(["a draft is reviewed by someone other than its author"])
        text = _with_review_fields(row.draft_text, staff, now.date())
        problems = validate(db, text, language)
        if problems:
            raise KnowledgeRefused(problems)
        row.text = text
        row.draft_text = None
        row.state = ArticleState.REVIEWED.value
        row.reviewed_by = staff
        row.reviewed_at = now
        row.updated_at = now
        _record(s, row, "review", text, staff, now, note)
        _bump(s, now)
        audit(s, staff, "knowledge.review", "knowledge_article", f"{article_id}/{language}",
              {"revision": row.revision}, now)
    return get_article(db, article_id, language)


def retire(db: Engine, article_id: str, language: str, staff: str, now: datetime, note: str = "") -> ArticleRecord:
    """Stop an article answering (a shipped file of that id is hidden too)."""
    if _shipped_text(article_id, language) is None:
        with Session(db) as s:
            if _row(s, article_id, language) is None:
                raise KnowledgeRefused([f"no article {article_id!r} in {language}"])
    with write_scope(db) as s:
        _staff(s, staff, REVIEW_ROLES)
        row = _row(s, article_id, language)
        if row is None:
            row = KnowledgeArticle(article_id=article_id, language=language, created_at=now)
        row.state = ArticleState.RETIRED.value
        row.updated_at = now
        _record(s, row, "retire", row.text, staff, now, note)
        _bump(s, now)
        audit(s, staff, "knowledge.retire", "knowledge_article", f"{article_id}/{language}",
              {"revision": row.revision, "note": note[:200]}, now)
    return get_article(db, article_id, language)


def draft_from_ticket(db: Engine, ticket_id: int, staff: str, now: datetime) -> ArticleRecord:
    """A draft article from a handed-off question and its staff answer, for review."""
    from models.applications import HandoffTicket

    with Session(db) as s:
        ticket = s.get(HandoffTicket, ticket_id)
        if ticket is None:
            raise KnowledgeRefused([f"no ticket #{ticket_id}"])
        if not ticket.answer:
            raise KnowledgeRefused([f"ticket #{ticket_id} has no staff answer yet"])
        language = "en" if ticket.language == "en" else "zh-Hans"
        question, answer = ticket.question, ticket.answer
    article_id = f"ticket-{ticket_id}"
    front = {"id": article_id, "title": question[:40], "language": language, "seed": "",
             "answers": [], "for": [], "questions": [question], "keywords": []}
    text = "---\n" + yaml.safe_dump(front, allow_unicode=True, sort_keys=False) + "---\n" + answer + "\n"
    return save_draft(db, article_id, language, text, staff, now, ticket_id=ticket_id)


# --------------------------------------------------------------------------- preview and reports


def preview(db: Engine | None, text: str, question: str | None = None, directory: Path | None = None) -> Preview:
    """The reply and the SMS the bot would send from `text` (validated as for review, with the
    review fields filled in); with `question`, what it would do with that question."""
    from bot.qa import QA

    filled = _with_review_fields(text, "(preview)", date.today())
    problems = validate(db, filled, None, directory)
    if problems:
        return Preview(problems, "", "", True, "invalid")
    base = _shipped(directory)
    found: list[str] = []
    article = parse_article(filled, "preview", base.seeds, found)
    assert article is not None  # validated above
    others = [a for a in base.articles if not (a.id == article.id and a.language == article.language)]
    qa = QA(base.with_articles([*others, article]))
    if question is None:
        shown = qa._answered([article], article.language, 1.0)  # noqa: SLF001 - the same renderer the bot uses
        return Preview([], shown.answer, shown.sms, False, "answered")
    reply = qa.answer(question)
    return Preview([], reply.answer, reply.sms, reply.handoff, reply.reason)


def most_handed_off(db: Engine, now: datetime, days: int = 30, limit: int = 20, qa: Any = None) -> list[HandoffGroup]:
    """Questions handed to staff in the last `days` days, grouped by the article nearest to them
    and the reason, largest groups first: what the knowledge base should answer next."""
    from models.applications import HandoffTicket

    since = now - timedelta(days=days)
    with Session(db) as s:
        tickets = s.exec(select(HandoffTicket.id, HandoffTicket.question, HandoffTicket.reason).where(
            col(HandoffTicket.created_at) >= since)).all()
    if qa is None:
        from bot.qa import QA

        qa = QA(load_live(db))
    groups: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for ticket_id, question, reason in tickets:
        topic = "" if reason in ("asked_for_person", "complaint") else str(qa.explain(question)["article_id"] or "")
        groups.setdefault((topic, reason), []).append((int(ticket_id or 0), question))
    titles = {a.id: a.title for a in qa.knowledge.articles if a.language == "zh-Hans"}
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    return [HandoffGroup(topic=topic, title=titles.get(topic, ""), reason=reason, count=len(items),
                         examples=[q for _, q in items[:3]], ticket_ids=[t for t, _ in items])
            for (topic, reason), items in ordered[:limit]]


# --------------------------------------------------------------------------- helpers


def _name(article_id: str, language: str) -> str:
    return f"article {article_id} ({language})"


def _row(s: Session, article_id: str, language: str) -> KnowledgeArticle | None:
    return s.exec(select(KnowledgeArticle).where(
        col(KnowledgeArticle.article_id) == article_id, col(KnowledgeArticle.language) == language)).first()


def _staff(s: Session, username: str, roles: Iterable[str]) -> None:
    from models.staff import StaffUser

    user = s.exec(select(StaffUser).where(col(StaffUser.username) == username)).first()
    if user is None or not user.active:
        raise KnowledgeRefused([f"no active staff member {username!r}"])
    if not any(user.has_role(r) for r in roles):
        raise KnowledgeRefused([f"{username!r} needs one of the roles {', '.join(roles)}"])


def _record(s: Session, row: KnowledgeArticle, action: str, text: str | None, actor: str, now: datetime,
            note: str = "") -> None:
    row.revision += 1
    s.add(row)
    s.flush()
    assert row.id is not None
    s.add(KnowledgeRevision(knowledge_article_id=row.id, revision=row.revision, action=action, text=text,
                            actor=actor, note=note[:500], at=now))


def _bump(s: Session, now: datetime) -> None:
    changed = s.execute(update(KnowledgeVersion).where(col(KnowledgeVersion.id) == 1).values(
        version=col(KnowledgeVersion.version) + 1, changed_at=now)).rowcount  # type: ignore[attr-defined]
    if not changed:
        current = s.exec(select(func.count()).select_from(KnowledgeVersion)).one()
        if not current:
            s.add(KnowledgeVersion(id=1, version=1, changed_at=now))


def _front(text: str) -> dict[str, Any] | None:
    match = _FRONT.match(text.lstrip("\ufeff"))
    if not match:
        return None
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _title_of(text: str) -> str:
    data = _front(text) or {}
    return str(data.get("title") or "")


def _with_review_fields(text: str, reviewer: str, on: date) -> str:
    """`text` with reviewed_by / reviewed_on set (the review records who and when)."""
    match = _FRONT.match(text.lstrip("\ufeff"))
    if not match:
        return text
    head = re.sub(r"(?m)^reviewed_(by|on):.*(?:\n|$)", "", match.group(1)).rstrip("\n")
    head += f"\nreviewed_by: {yaml.safe_dump(reviewer, allow_unicode=True).splitlines()[0]}\nreviewed_on: '{on.isoformat()}'"
    return f"---\n{head}\n---\n{match.group(2)}"


def _shipped_text(article_id: str, language: str, directory: Path | None = None) -> str | None:
    path = (directory or DEFAULT_DIR) / language / f"{article_id}.md"
    try:
        return path.read_text(encoding="utf-8") if path.is_file() else None
    except (OSError, UnicodeDecodeError):
        return None


__all__ = ["ArticleRecord", "ArticleSummary", "HandoffGroup", "KnowledgeError", "KnowledgeRefused", "Preview",
           "Revision", "draft_from_ticket", "get_article", "knowledge_version", "list_articles", "live_qa",
           "load_live", "most_handed_off", "preview", "retire", "review", "save_draft", "validate"]
