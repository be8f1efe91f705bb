"""Rules for the knowledge staff keep in the database: drafts answer nothing, a review by a
second person makes an article answer at once (no restart), retiring hides it, a bad article
is refused with its reasons or skipped and reported, and every change is in the history and
the audit log."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from bot.knowledge_store import (
    KnowledgeRefused,
    draft_from_ticket,
    get_article,
    knowledge_version,
    list_articles,
    live_qa,
    load_live,
    most_handed_off,
    preview,
    retire,
    review,
    save_draft,
    validate,
)
from bot.qa import QA
from models.applications import HandoffTicket
from models.db import session_scope
from models.knowledge import KnowledgeArticle
from models.staff import AuditLog, StaffUser

NEW_ARTICLE = """---
id: mutual-birthday-card
title: 工会会员生日慰问卡
language: zh-Hans
seed: '004'
answers: [what, may_i, how]
for: [worker]
places: [永定]
questions: [工会会员过生日有没有慰问卡, 会员生日卡怎么领]
keywords: [生日, 生日慰问卡, 会员生日, 工会]
---
有。会员过生日，工会发生日慰问卡，到区总工会职工服务中心领取。

<!-- sms -->
会员过生日，工会发生日慰问卡，到区总工会职工服务中心领取。
"""
QUESTION = "工会会员过生日有生日慰问卡吗"


@pytest.fixture
def staff(db_engine):
    with session_scope(db_engine) as s:
        s.add(StaffUser(username="li", display_name="李", roles=["caseworker"]))
        s.add(StaffUser(username="chen", display_name="陈", roles=["approver"]))
    return db_engine


@pytest.fixture(scope="module")
def shipped_qa() -> QA:
    return QA.load()


def test_a_draft_answers_nothing_until_a_second_person_reviews_it_then_answers_without_restart(staff, clock):
    """The running LiveQA does not see a draft; after review by an approver it answers the very
    next question from the new article, and the version counter moved."""
    db = staff
    bot = live_qa(db)
    assert bot.answer(QUESTION).article_id != "mutual-birthday-card"
    before = knowledge_version(db)
    save_draft(db, "mutual-birthday-card", "zh-Hans", NEW_ARTICLE, "li", clock.now())
    assert knowledge_version(db) == before
    assert bot.answer(QUESTION).article_id != "mutual-birthday-card"
    record = review(db, "mutual-birthday-card", "zh-Hans", "chen", clock.now())
    assert record.state == "reviewed" and record.reviewed_by == "chen" and record.draft_text is None
    assert "reviewed_by: chen" in record.text
    assert knowledge_version(db) == before + 1
    answer = bot.answer(QUESTION)
    assert not answer.handoff and answer.article_id == "mutual-birthday-card" and "生日慰问卡" in answer.answer


def test_review_is_refused_for_the_author_a_caseworker_or_an_invalid_article(staff, clock):
    """Four eyes and the approver role; a draft that does not validate is refused with its reasons
    and changes nothing the bot answers."""
    db = staff
    save_draft(db, "mutual-birthday-card", "zh-Hans", NEW_ARTICLE, "chen", clock.now())
    with pytest.raises(KnowledgeRefused, match="someone other than its author"):
        review(db, "mutual-birthday-card", "zh-Hans", "chen", clock.now())
    with pytest.raises(KnowledgeRefused, match="roles"):
        review(db, "mutual-birthday-card", "zh-Hans", "li", clock.now())
    bad = NEW_ARTICLE.replace("seed: '004'", "seed: '042'").replace("for: [worker]", "for: [astronaut]")
    record = save_draft(db, "mutual-birthday-card", "zh-Hans", bad, "li", clock.now())
    assert any("unknown seed" in p for p in record.problems) and any("astronaut" in p for p in record.problems)
    with pytest.raises(KnowledgeRefused) as refused:
        review(db, "mutual-birthday-card", "zh-Hans", "chen", clock.now())
    assert any("unknown seed" in p for p in refused.value.problems)
    assert "mutual-birthday-card" not in {a.id for a in load_live(db).articles}


def test_a_draft_whose_text_names_another_id_is_refused(staff, clock):
    """The text's id must be the article's id: a draft cannot overwrite another article."""
    with pytest.raises(KnowledgeRefused, match="is not"):
        save_draft(staff, "mutual-cost", "zh-Hans", NEW_ARTICLE, "li", clock.now())


def test_retiring_a_shipped_article_stops_it_answering(staff, clock):
    """A retired shipped article is hidden from the live base; the rest still answer."""
    db = staff
    assert "mutual-cost" in {a.id for a in load_live(db).in_language("zh-Hans")}
    retire(db, "mutual-cost", "zh-Hans", "chen", clock.now(), "superseded")
    live = load_live(db)
    assert "mutual-cost" not in {a.id for a in live.in_language("zh-Hans")}
    assert "mutual-cost" in {a.id for a in live.in_language("en")}
    assert len(live.in_language("zh-Hans")) > 60


def test_an_invalid_reviewed_row_is_reported_and_skipped_and_answers_go_on(staff, clock):
    """A row that no longer validates (written behind the API's back) is left out with its
    reason, and the bot keeps answering from the rest."""
    db = staff
    with session_scope(db) as s:
        s.add(KnowledgeArticle(article_id="broken-one", language="zh-Hans", state="reviewed",
                               text="no front matter at all", created_at=clock.now(), updated_at=clock.now()))
    live = load_live(db)
    assert any("broken-one" in p and "front matter" in p for p in live.problems)
    assert not QA(live).answer("医疗互助一年交多少钱").handoff


def test_every_change_is_in_the_history_and_the_audit_log(staff, clock):
    """Draft, review and retire each leave a revision (who, when, the text) and an audit row."""
    db = staff
    save_draft(db, "mutual-birthday-card", "zh-Hans", NEW_ARTICLE, "li", clock.now())
    review(db, "mutual-birthday-card", "zh-Hans", "chen", clock.now() + timedelta(minutes=5))
    retire(db, "mutual-birthday-card", "zh-Hans", "chen", clock.now() + timedelta(minutes=9), "season over")
    record = get_article(db, "mutual-birthday-card", "zh-Hans")
    assert [(h.action, h.actor) for h in record.history] == [("draft", "li"), ("review", "chen"), ("retire", "chen")]
    assert record.state == "retired" and record.text is None
    with Session(db) as s:
        actions = [a.action for a in s.exec(select(AuditLog).order_by(AuditLog.id)).all()]
    assert actions == ["knowledge.draft", "knowledge.review", "knowledge.retire"]


def test_list_shows_shipped_files_and_rows_with_their_state(staff, clock):
    """The console's list: shipped files as "shipped", a pending draft flagged, a new row as a draft."""
    db = staff
    save_draft(db, "mutual-birthday-card", "zh-Hans", NEW_ARTICLE, "li", clock.now())
    edited = (get_article(db, "mutual-cost", "zh-Hans").text or "").replace("每年交100元", "每年交100元。")
    save_draft(db, "mutual-cost", "zh-Hans", edited, "li", clock.now())
    items = {(a.article_id, a.language): a for a in list_articles(db)}
    assert items[("mutual-birthday-card", "zh-Hans")].state == "draft"
    assert items[("mutual-cost", "zh-Hans")].has_draft and items[("mutual-cost", "zh-Hans")].source == "file+database"
    assert items[("vsi-documents", "en")].state == "shipped"
    assert [a.article_id for a in list_articles(db, state="draft")] == ["mutual-birthday-card", "mutual-cost"]


def test_validate_and_preview_show_what_the_bot_would_send(shipped_qa):
    """validate lists reasons without saving; preview renders the reply and the SMS, and what the
    bot would do with a question."""
    assert validate(None, NEW_ARTICLE, for_review=False) == []
    assert any("missing field" in p for p in validate(None, NEW_ARTICLE.replace("title: 工会会员生日慰问卡\n", "")))
    shown = preview(None, NEW_ARTICLE)
    assert shown.problems == [] and shown.answer.startswith("有。") and "来源" in shown.sms
    asked = preview(None, NEW_ARTICLE, QUESTION)
    assert not asked.handoff and "生日慰问卡" in asked.answer
    assert preview(None, "not an article").problems


def test_a_ticket_answer_becomes_a_draft_and_handed_off_questions_are_grouped(staff, clock, shipped_qa):
    """draft_from_ticket keeps the question and answer as a draft; the report groups the last
    30 days' handed-off questions by nearest article and reason, largest first."""
    db = staff
    now = clock.now()
    with session_scope(db) as s:
        for q in ("老兵的取暖补贴一年多少", "老兵的取暖补贴一年多少钱", "转人工"):
            s.add(HandoffTicket(channel="sms", address="+8613800000000", question=q,
                                reason="asked_for_person" if q == "转人工" else "out_of_scope", created_at=now))
        s.add(HandoffTicket(channel="sms", address="+8613800000001", question="很久以前的问题", reason="out_of_scope",
                            created_at=now - timedelta(days=40), answer="旧的回答", status="answered"))
        s.add(HandoffTicket(channel="sms", address="+8613800000002", question="老年证在哪办", reason="out_of_scope",
                            created_at=now, answer="到社区服务中心办理。", status="answered"))
    groups = most_handed_off(db, now, qa=shipped_qa)
    assert sum(g.count for g in groups) == 4 and groups[0].count == 2 and groups[0].reason == "out_of_scope"
    assert any(g.reason == "asked_for_person" and g.topic == "" for g in groups)
    with Session(db) as s:
        ticket = s.exec(select(HandoffTicket).where(HandoffTicket.question == "老年证在哪办")).one()
    record = draft_from_ticket(db, ticket.id, "li", now)
    assert record.state == "draft" and "老年证在哪办" in (record.draft_text or "")
    assert record.problems  # no seed yet: a reviewer must complete it
