"""Knowledge articles edited and reviewed by staff, with their history.

The files in knowledge/ are the shipped base. A row here overlays them: a reviewed row
answers in place of (or beside) the shipped article with the same id and language, a
retired row hides it, and a draft answers nothing until a reviewer approves it. Every
change is a `KnowledgeRevision`; `KnowledgeVersion` counts the changes that alter what
the bot answers, so a running bot notices them with one small read per question.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import UTCDateTime, utcnow


class ArticleState(StrEnum):
    DRAFT = "draft"  # never reviewed: answers nothing
    REVIEWED = "reviewed"  # answers questions (with a pending draft, the reviewed text still answers)
    RETIRED = "retired"  # answers nothing; the shipped file of the same id is hidden too


class KnowledgeArticle(SQLModel, table=True):
    """One article in one language, as staff keep it."""

    __tablename__ = "knowledge_article"
    __table_args__ = (UniqueConstraint("article_id", "language", name="uq_knowledge_article_id_language"),
                      Index("ix_knowledge_article_state", "state"))

    id: int | None = Field(default=None, primary_key=True)
    article_id: str = Field(max_length=80)
    language: str = Field(max_length=8)
    state: str = Field(default=ArticleState.DRAFT.value, max_length=16)
    text: str | None = None  # the reviewed Markdown (front matter and body) that answers; None until reviewed
    draft_text: str | None = None  # a pending edit or a new article awaiting review
    draft_by: str | None = Field(default=None, max_length=64)
    draft_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    reviewed_by: str | None = Field(default=None, max_length=64)
    reviewed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    from_ticket_id: int | None = Field(default=None, foreign_key="handoff_ticket.id")
    revision: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class KnowledgeRevision(SQLModel, table=True):
    """What happened to an article, by whom and when, with the text as it then was."""

    __tablename__ = "knowledge_revision"
    __table_args__ = (Index("ix_knowledge_revision_article", "knowledge_article_id", "revision"),)

    id: int | None = Field(default=None, primary_key=True)
    knowledge_article_id: int = Field(foreign_key="knowledge_article.id")
    revision: int
    action: str = Field(max_length=16)  # draft | review | retire | restore
    text: str | None = None
    actor: str = Field(max_length=64)
    note: str = Field(default="", max_length=500)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class KnowledgeVersion(SQLModel, table=True):
    """One row: bumped by every review, retirement or restoration (what the bot answers from)."""

    __tablename__ = "knowledge_version"

    id: int = Field(default=1, primary_key=True)
    version: int = 0
    changed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
