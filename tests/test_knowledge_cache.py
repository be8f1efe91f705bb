"""Rules for the built knowledge kept on disk (bot/knowledge_cache.py): a restart with unchanged
knowledge reads the index back and answers exactly as a fresh build does; any change to what
the bot answers from (a review, a retirement, an edited file) is never answered from an older
index; a damaged file costs a build, never an answer."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from bot.knowledge import DEFAULT_DIR
from bot.knowledge_store import live_qa, retire, review, save_draft
from bot.qa_embed import DEFAULT_CACHE, Embedder
from models.db import session_scope
from models.staff import StaffUser
from tests.test_knowledge_store import NEW_ARTICLE, QUESTION

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = ("老兵80岁以后有什么保险？", "社保补缴怎么办理", "互住金怎么申请", QUESTION,
             "How do I join the mutual aid plan?", "退休人员生存认证在哪里做")


@pytest.fixture
def embedder(tmp_path: Path) -> Embedder:
    """The shipped vectors, and what the tests embed kept in their own folder (not the code's)."""
    return Embedder(cache_path=tmp_path / "vectors.npz", shipped_path=DEFAULT_CACHE)


@pytest.fixture
def staff(sqlite_engine):
    with session_scope(sqlite_engine) as s:
        s.add(StaffUser(username="li", display_name="李", roles=["caseworker"]))
        s.add(StaffUser(username="chen", display_name="陈", roles=["approver"]))
    return sqlite_engine


def _answers(bot) -> list[dict[str, object]]:
    return [asdict(bot.answer(q)) for q in QUESTIONS]


_START = f"""
import json, sys
from pathlib import Path
from bot.knowledge_store import live_qa
from bot.qa_embed import DEFAULT_CACHE, Embedder
from models.db import make_engine
bot = live_qa(make_engine(sys.argv[1]), cache_dir=Path(sys.argv[2]),
              embedder=Embedder(cache_path=None, shipped_path=DEFAULT_CACHE))
from dataclasses import asdict
print(json.dumps({{"origin": bot.current.origin, "answers": [asdict(bot.answer(q)) for q in {QUESTIONS!r}]}}))
"""


def _start(sqlite_engine, cache_dir: Path) -> dict[str, object]:
    """A start of the bot in a fresh interpreter: where its index came from, and its answers.
    Both starts are fresh: rjieba's dictionary is process-wide, so a build in this process would
    segment with the words earlier tests' knowledge taught it."""
    done = subprocess.run([sys.executable, "-c", _START, str(sqlite_engine.url), str(cache_dir)], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_unchanged_restart_reads_the_index_back_and_answers_exactly_as_a_fresh_build(
        sqlite_engine, tmp_path: Path) -> None:
    """The first start builds the index and keeps it (one file, this user's alone); the next,
    in a fresh interpreter (whose segmenter has learnt nothing yet), reads it back instead of
    building, and every answer (article, confidence, text, SMS) is the one the build gives."""
    cache_dir = tmp_path / "knowledge-cache"
    first = _start(sqlite_engine, cache_dir)
    assert first["origin"] == "built"
    built = first["answers"]
    kept = list(cache_dir.glob("qa-*.pickle"))
    assert len(kept) == 1 and kept[0].stat().st_mode & 0o077 == 0

    again = _start(sqlite_engine, cache_dir)
    assert again["origin"] == "cache"
    assert again["answers"] == json.loads(json.dumps(built))


def test_a_review_or_a_retirement_is_never_answered_from_an_older_index(staff, clock, tmp_path: Path,
                                                                        embedder: Embedder) -> None:
    """A reviewed article changes the key: the running bot builds a new index and answers from
    the new article; a restart then reads that new index (with the article), not the first one.
    Retiring it changes the key again: the restart after it does not answer from it."""
    db, cache_dir = staff, tmp_path / "knowledge-cache"
    running = live_qa(db, cache_dir=cache_dir, embedder=embedder)
    assert running.answer(QUESTION).article_id != "mutual-birthday-card"

    save_draft(db, "mutual-birthday-card", "zh-Hans", NEW_ARTICLE, "li", clock.now())
    review(db, "mutual-birthday-card", "zh-Hans", "chen", clock.now())
    assert running.answer(QUESTION).article_id == "mutual-birthday-card"
    assert running.current.origin == "built"
    restarted = live_qa(db, cache_dir=cache_dir, embedder=embedder)
    assert restarted.current.origin == "cache"
    assert restarted.answer(QUESTION).article_id == "mutual-birthday-card"

    retire(db, "mutual-birthday-card", "zh-Hans", "chen", clock.now(), note="no longer given")
    after_retirement = live_qa(db, cache_dir=cache_dir, embedder=embedder)
    assert after_retirement.current.origin == "built"
    assert after_retirement.answer(QUESTION).article_id != "mutual-birthday-card"


def test_an_edited_knowledge_file_is_never_answered_from_an_older_index(sqlite_engine, tmp_path: Path,
                                                                         embedder: Embedder) -> None:
    """A shipped article whose file changed (an upgrade, or an edit on disk) changes the key:
    the index is built again and answers with the new text."""
    knowledge = tmp_path / "knowledge"
    shutil.copytree(DEFAULT_DIR, knowledge)
    cache_dir = tmp_path / "knowledge-cache"
    question = "社保补缴怎么办理"
    before = live_qa(sqlite_engine, knowledge, cache_dir=cache_dir, embedder=embedder).answer(question)
    assert not before.handoff, before
    article = next(p for p in (knowledge / "zh-Hans").glob("*.md")
                   if f"id: {before.article_id}\n" in p.read_text(encoding="utf-8"))
    article.write_text(article.read_text(encoding="utf-8").replace("\n---\n", "\n---\n【已更新】", 1),
                       encoding="utf-8")

    edited = live_qa(sqlite_engine, knowledge, cache_dir=cache_dir, embedder=embedder)
    assert edited.current.origin == "built"
    assert "【已更新】" in edited.answer(question).answer
    assert live_qa(sqlite_engine, knowledge, cache_dir=cache_dir, embedder=embedder).current.origin == "cache"


def test_a_damaged_cache_file_is_built_again_and_replaced(sqlite_engine, tmp_path: Path,
                                                          embedder: Embedder) -> None:
    """A cache file cut short (a full disk, a crash while writing by an older version) is not
    trusted: the index is built, answers as before, and a sound file takes its place."""
    cache_dir = tmp_path / "knowledge-cache"
    expected = _answers(live_qa(sqlite_engine, cache_dir=cache_dir, embedder=embedder))
    (kept,) = cache_dir.glob("qa-*.pickle")
    kept.write_bytes(kept.read_bytes()[:1000])

    rebuilt = live_qa(sqlite_engine, cache_dir=cache_dir, embedder=embedder)
    assert rebuilt.current.origin == "built"
    assert _answers(rebuilt) == expected
    assert live_qa(sqlite_engine, cache_dir=cache_dir, embedder=embedder).current.origin == "cache"
