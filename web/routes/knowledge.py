"""The knowledge page: the articles the bot answers from, their state (draft, reviewed,
retired, or as shipped) and who reviewed them when; an article's page with its text, its
history and an editor with a live preview of the answer and its SMS version; review by
another member (approver), which marks the article with the reviewer and the date; retire;
drafts from handed-off questions; and the questions handed off most in the last 30 days,
grouped, each one click from a new draft.

Everything goes through `bot.knowledge_store` (qa's API): it validates (an invalid article is
refused with its reasons), keeps the history, audits, and bumps the version a running bot
checks before each question, so a review answers from the next question on, no restart.
"""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import quote

import yaml
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select
from starlette.datastructures import FormData

from models.applications import HandoffTicket
from models.staff import Role
from web.pages import render
from web.routes.broadcasts import SEES, posted
from web.security import SignedIn, flash, require
from web.words import ui

router = APIRouter(include_in_schema=False)
# Building a Q&A index is not safe in two threads at once (the tokenizer's dictionary is
# shared), and the console serves requests in threads: previews and the grouping of handed-off
# questions build theirs one at a time.
_QA_BUILD = threading.Lock()
EDITS = (Role.CASEWORKER, Role.COMPOSER, Role.APPROVER)
STATES = ("draft", "reviewed", "retired", "shipped")
LANGS = ("zh-Hans", "en")
_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def _one(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _grouping_qa(request: Request) -> Any:
    """The Q&A the bot answers with now, to group handed-off questions by their nearest article;
    kept on the app and rebuilt only when the knowledge changed."""
    from bot import knowledge_store as ks
    from bot.qa import QA

    db = request.app.state.engine
    version = ks.knowledge_version(db)
    with _QA_BUILD:
        cached = getattr(request.app.state, "knowledge_grouping_qa", None)
        if cached is None or cached[0] != version:
            cached = (version, QA(ks.load_live(db)))
            request.app.state.knowledge_grouping_qa = cached
    return cached[1]


def title_of(text: str | None, fallback: str) -> str:
    """The title in an article's front matter (the page's heading), else `fallback`."""
    match = re.match(r"^---\s*\n(.*?)\n---", text or "", re.DOTALL)
    try:
        front = yaml.safe_load(match.group(1)) if match else None
    except yaml.YAMLError:
        front = None
    title = front.get("title") if isinstance(front, dict) else None
    return str(title) if title else fallback


def skeleton(article_id: str, language: str, title: str = "", questions: list[str] | None = None,
             answer: str = "") -> str:
    """A new article's text: the front matter the bot needs, and the answer to write."""
    front = {"id": article_id or "new-article", "title": title, "language": language, "seed": "",
             "answers": [], "for": [], "questions": questions or [], "keywords": []}
    body = answer or ("请在这里写答案。" if language != "en" else "Write the answer here.")
    sms = "（短信版，约 130 字以内）" if language != "en" else "(the SMS version, about 300 characters at most)"
    return ("---\n" + yaml.safe_dump(front, allow_unicode=True, sort_keys=False) + "---\n" + body + "\n\n"
            "<!-- sms -->\n" + sms + "\n")


@router.get("/knowledge")
def knowledge_list(request: Request, state: str = "", language: str = "", q: str = "",
                   staff: SignedIn = Depends(require(*SEES))) -> Response:
    from bot import knowledge_store as ks

    db = request.app.state.engine
    articles = ks.list_articles(db, state=state if state in STATES else None,
                                language=language if language in LANGS else None)
    if q.strip():
        needle = q.strip().lower()
        articles = [a for a in articles if needle in a.title.lower() or needle in a.article_id]
    groups = ks.most_handed_off(db, request.app.state.clock.now(), days=30, limit=12, qa=_grouping_qa(request))
    counts: dict[str, int] = {}
    for a in ks.list_articles(db):
        counts[a.state] = counts.get(a.state, 0) + 1
        if a.has_draft and a.state != "draft":
            counts["draft"] = counts.get("draft", 0) + 1
    return render(request, "knowledge.html", staff, articles=articles, state=state, language=language, q=q,
                  groups=groups, counts=counts, states=STATES, langs=LANGS, can_edit=staff.has_any(EDITS))


@router.get("/knowledge/new")
def knowledge_new(request: Request, tickets: str = "", language: str = "zh-Hans",
                  staff: SignedIn = Depends(require(*EDITS))) -> Response:
    """The editor for a new article; from a group of handed-off questions, they are its questions."""
    ids = [int(t) for t in tickets.split(",") if t.strip().isdigit()][:20]
    questions: list[str] = []
    answer = ""
    if ids:
        with Session(request.app.state.engine) as db:
            found = db.exec(select(HandoffTicket).where(col(HandoffTicket.id).in_(ids))).all()
        questions = list(dict.fromkeys(t.question.strip()[:120] for t in found if t.question.strip()))
        answer = next((t.answer for t in found if t.answer), "") or ""
        language = "en" if found and all(t.language == "en" for t in found) else "zh-Hans"
    lang = language if language in LANGS else "zh-Hans"
    text = skeleton("", lang, questions[0][:40] if questions else "", questions, answer)
    return render(request, "knowledge_edit.html", staff, record=None, article_id="", language=lang, text=text,
                  problems=[], can_review=False, is_new=True)


@router.post("/knowledge/new")
def knowledge_create(request: Request, form: FormData = Depends(posted),
                     staff: SignedIn = Depends(require(*EDITS))) -> Response:
    from bot import knowledge_store as ks

    article_id, language, text = _one(form, "article_id").strip(), _one(form, "language"), _one(form, "text")
    if not text.strip() and not article_id:  # an empty form: nothing to keep
        flash(request, staff, ui("没有内容，没有保存。", staff.language))
        return RedirectResponse("/knowledge", status_code=303)
    try:
        record = ks.save_draft(request.app.state.engine, article_id, language, text, staff.username,
                               request.app.state.clock.now())
    except ks.KnowledgeRefused as exc:
        return render(request, "knowledge_edit.html", staff, status_code=422, record=None, article_id=article_id,
                      language=language if language in LANGS else "zh-Hans", text=text, problems=exc.problems,
                      can_review=False, is_new=True)
    flash(request, staff, _saved_words(record.problems, staff.language))
    return RedirectResponse(f"/knowledge/{record.article_id}/{record.language}", status_code=303)


def _saved_words(problems: list[str], lang: str) -> str:
    if problems:
        return ui("草稿已保存，但还有 {n} 处要改好才能审核通过。", lang, n=len(problems))
    return ui("草稿已保存，等待另一位审核人审核。", lang)


@router.post("/knowledge/preview")
def knowledge_preview(request: Request, form: FormData = Depends(posted),
                      staff: SignedIn = Depends(require(*EDITS))) -> Response:
    """The answer and the SMS the bot would send from the text in the editor (a fragment)."""
    from bot import knowledge_store as ks

    text, question = _one(form, "text"), _one(form, "question").strip()
    with _QA_BUILD:
        shown = ks.preview(request.app.state.engine, text, question or None)
    return render(request, "_knowledge_preview.html", staff, preview=shown, question=question)


@router.post("/knowledge/from-ticket/{ticket_id}")
def knowledge_from_ticket(request: Request, ticket_id: int, staff: SignedIn = Depends(require(*EDITS))) -> Response:
    from bot import knowledge_store as ks

    try:
        record = ks.draft_from_ticket(request.app.state.engine, ticket_id, staff.username,
                                      request.app.state.clock.now())
    except ks.KnowledgeRefused as exc:
        flash(request, staff, ui("未能完成：{why}", staff.language, why="; ".join(exc.problems)))
        return RedirectResponse("/knowledge", status_code=303)
    flash(request, staff, _saved_words(record.problems, staff.language))
    return RedirectResponse(f"/knowledge/{record.article_id}/{record.language}", status_code=303)


def _record(request: Request, article_id: str, language: str):  # type: ignore[no-untyped-def]
    from bot import knowledge_store as ks

    if language not in LANGS or not _ID.fullmatch(article_id):
        raise HTTPException(404)
    try:
        return ks.get_article(request.app.state.engine, article_id, language)
    except ks.KnowledgeRefused:
        raise HTTPException(404) from None


@router.get("/knowledge/{article_id}/{language}")
def knowledge_article(request: Request, article_id: str, language: str,
                      staff: SignedIn = Depends(require(*SEES))) -> Response:
    record = _record(request, article_id, language)
    text = record.draft_text if record.draft_text is not None else (record.text or record.shipped_text or "")
    return render(request, "knowledge_edit.html", staff, record=record, article_id=article_id, language=language,
                  text=text, problems=record.problems, is_new=False,
                  title=title_of(record.text or record.shipped_text or record.draft_text, article_id),
                  can_review=staff.has(Role.APPROVER) and bool(record.draft_text) and record.draft_by != staff.username)


@router.post("/knowledge/{article_id}/{language}")
def knowledge_save(request: Request, article_id: str, language: str, form: FormData = Depends(posted),
                   staff: SignedIn = Depends(require(*EDITS))) -> Response:
    from bot import knowledge_store as ks

    record = _record(request, article_id, language)
    text = _one(form, "text")
    if not text.strip():
        flash(request, staff, ui("没有内容，没有保存。", staff.language))
        return RedirectResponse(f"/knowledge/{article_id}/{language}", status_code=303)
    try:
        record = ks.save_draft(request.app.state.engine, article_id, language, text, staff.username,
                               request.app.state.clock.now())
    except ks.KnowledgeRefused as exc:
        return render(request, "knowledge_edit.html", staff, status_code=422, record=record, article_id=article_id,
                      language=language, text=text, problems=exc.problems, is_new=False, can_review=False,
                      title=title_of(record.text or record.shipped_text, article_id))
    flash(request, staff, _saved_words(record.problems, staff.language))
    return RedirectResponse(f"/knowledge/{article_id}/{language}", status_code=303)


@router.post("/knowledge/{article_id}/{language}/review")
def knowledge_review(request: Request, article_id: str, language: str, form: FormData = Depends(posted),
                     staff: SignedIn = Depends(require(Role.APPROVER))) -> Response:
    from bot import knowledge_store as ks

    _record(request, article_id, language)
    try:
        ks.review(request.app.state.engine, article_id, language, staff.username, request.app.state.clock.now(),
                  note=_one(form, "note")[:500])
        message = ui("已审核通过：机器人从下一个问题起按新内容回答。", staff.language)
    except ks.KnowledgeRefused as exc:
        message = ui("不能审核通过：{why}", staff.language, why="; ".join(exc.problems))
    flash(request, staff, message)
    return RedirectResponse(f"/knowledge/{article_id}/{language}", status_code=303)


@router.post("/knowledge/{article_id}/{language}/retire")
def knowledge_retire(request: Request, article_id: str, language: str, form: FormData = Depends(posted),
                     staff: SignedIn = Depends(require(Role.APPROVER))) -> Response:
    from bot import knowledge_store as ks

    _record(request, article_id, language)
    if _one(form, "confirmed") != "yes":
        flash(request, staff, ui("请勾选确认后再停用。", staff.language))
        return RedirectResponse(f"/knowledge/{article_id}/{language}", status_code=303)
    try:
        ks.retire(request.app.state.engine, article_id, language, staff.username, request.app.state.clock.now(),
                  note=_one(form, "note")[:500])
        message = ui("已停用：机器人不再用这篇回答。", staff.language)
    except ks.KnowledgeRefused as exc:
        message = ui("未能完成：{why}", staff.language, why="; ".join(exc.problems))
    flash(request, staff, message)
    return RedirectResponse(f"/knowledge/{article_id}/{language}", status_code=303)


def new_draft_link(ticket_ids: list[int]) -> str:
    return "/knowledge/new?tickets=" + quote(",".join(str(t) for t in ticket_ids[:20]))
