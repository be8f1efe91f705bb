"""What policy answers cost: passes of the embedding model, and what is kept between questions."""

from __future__ import annotations

import numpy as np
import pytest

from bot.qa import LONG_MESSAGE, MAX_PARTS_SEARCHED, PART_CONTEXT, QA
from bot.qa_embed import Embedder
from bot.qa_index import WordIndex


@pytest.fixture(scope="module")
def qa() -> QA:
    return QA.load()


def test_a_question_asked_again_costs_no_pass_of_the_model_and_gets_the_same_answer(qa: QA) -> None:
    """The embedder keeps recent question vectors: the same question a second time is answered
    without running the model, with exactly the answer (article, confidence, text) of the first."""
    embedder = qa.embedder
    assert embedder is not None
    embedder.forget_questions()
    question = "老兵80岁以后有什么保险？"
    before = embedder.passes
    first = qa.answer(question)
    after_first = embedder.passes
    second = qa.answer(question)
    assert after_first - before >= 1
    assert embedder.passes == after_first
    assert second == first


def test_a_kept_question_vector_is_the_one_the_model_gives(qa: QA) -> None:
    """A vector served from memory equals what a fresh pass of the model gives for that text,
    and callers cannot change what the next caller receives."""
    embedder = qa.embedder
    assert embedder is not None
    text = "医疗互助一年交多少钱"
    kept = embedder.query(text)
    again = embedder.query(text)
    embedder.forget_questions()
    fresh = embedder.query(text)
    assert np.array_equal(kept, fresh) and again is kept
    with pytest.raises(ValueError):
        kept[0] = 1.0


def test_only_the_most_recent_question_vectors_are_kept() -> None:
    """Memory stays bounded: past the number kept, the question asked longest ago is let go
    (and costs a pass again), the most recent one is still kept."""
    embedder = Embedder(cache_path=None, questions_kept=2)
    for text in ("我叫张三，身份证号码110101", "第二个问题", "第三个问题"):
        embedder.query(text)
    passes = embedder.passes
    embedder.query("第三个问题")
    assert embedder.passes == passes  # the most recent is kept
    embedder.query("我叫张三，身份证号码110101")
    assert embedder.passes == passes + 1  # the oldest was let go


def test_a_message_longer_than_the_models_window_is_embedded_on_its_first_window() -> None:
    """A very long message (a pasted letter, minutes of voice input) costs one window of the model,
    not one pass per 512 tokens: words past the window leave its vector as it was, while words
    inside the window still change it; the tokens fed stay within the window."""
    embedder = Embedder(cache_path=None, questions_kept=0)
    letter = "我父亲今年八十二岁，以前当过兵，退伍以后一直在老家种地，现在身体不太好，" * 40  # ~1,400 tokens
    tokens_before = embedder.pass_tokens
    long_vector = embedder.query(letter)
    assert 0 < embedder.pass_tokens - tokens_before <= 512
    assert np.array_equal(embedder.query(letter + "另外想问一下医疗互助每年交多少钱？" * 30), long_vector)
    short = "高龄津贴怎么领"
    assert not np.array_equal(embedder.query(short + "，去哪里办"), embedder.query(short))
    assert embedder.passes == 4


_QUESTIONS = ["八十岁以上的老兵保险保什么", "医疗互助一年交多少钱", "退役军人服务站都管些什么事", "住院了保险能给什么",
              "去哪里办理", "老兵保险要自己掏钱买吗", "服务站几点开门", "互助金怎么申请", "要带什么材料",
              "多久能批下来", "家属能代办吗", "找谁咨询"]
# A letter's narrative, with words that ask nothing here ("好几种", "没人"), as voice input writes it.
_NARRATIVE = "我父亲今年八十二岁以前当过兵退伍以后一直在老家种地，现在身体不太好经常要住院，" \
             "上个月听邻居说有好几种补贴，孩子们都在外地打工平时没人照顾，"


def _searches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text the word index is asked to rank (one per search)."""
    texts: list[str] = []
    scores = WordIndex.scores

    def recording(self: WordIndex, text: str) -> np.ndarray:
        texts.append(text)
        return scores(self, text)

    monkeypatch.setattr(WordIndex, "scores", recording)
    return texts


def _searched_questions(texts: list[str]) -> set[str]:
    return {q for q in _QUESTIONS for t in texts if t.startswith(q)}


def test_a_message_of_many_questions_is_handed_off_kindly_without_searching_them(
        qa: QA, monkeypatch: pytest.MonkeyPatch) -> None:
    """A voice transcript of a dozen questions (2,500+ characters) searches none of them one by
    one: it is handed off, the reply asks for one question at a time and says a person reads the
    whole message; a short list of questions is handed off the same way."""
    texts = _searches(monkeypatch)
    transcript = "".join(_NARRATIVE * 3 + q + "？" for q in _QUESTIONS)
    assert len(transcript) > 2500
    for message in (transcript, "？".join(_QUESTIONS[:MAX_PARTS_SEARCHED + 2]) + "？"):
        texts.clear()
        answer = qa.answer(message)
        assert answer.handoff and answer.reason == "out_of_scope" and answer.detail == "many_questions"
        assert "一次问一个问题" in answer.answer and "转给工作人员" in answer.answer
        assert _searched_questions(texts) == set()
    english = qa.answer("How much is the mutual aid? Where do I apply? Who can join? When is it paid? "
                        "What documents do I need?")
    assert english.detail == "many_questions" and "one question at a time" in english.answer


def test_a_long_letter_searches_only_its_clear_questions_each_with_bounded_context(
        qa: QA, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long letter whose narrative holds many pieces with question words, and a few real
    questions (question mark and question word), searches only those real questions, at most
    MAX_PARTS_SEARCHED, each with a bounded part of the letter around it, never the whole letter;
    its answer is an answer from the questions kept or a handoff, never a crash."""
    texts = _searches(monkeypatch)
    for asked in ([_QUESTIONS[0]], _QUESTIONS[:2], _QUESTIONS[1:4]):
        letter = "".join(_NARRATIVE * 6 + q + "？" for q in asked) + _NARRATIVE * 6
        assert len(letter) > 2 * LONG_MESSAGE
        texts.clear()
        answer = qa.answer(letter)
        assert all(any(t.startswith(q) for q in asked) for t in texts)  # no narrative piece searched
        assert asked[0] in _searched_questions(texts) and len(asked) <= MAX_PARTS_SEARCHED
        assert texts and all(len(t) <= 2 * (len(max(asked, key=len)) + 2 * PART_CONTEXT) for t in texts)
        assert answer.reason in ("answered", "out_of_scope")
        if answer.handoff:
            assert answer.detail in ("two_part", "other_place", "not_stated", "low_confidence", "no_article")
        else:  # answered: every question kept was searched (a handoff stops at the first it cannot answer)
            assert _searched_questions(texts) == set(asked)
            assert 1 <= len(answer.article_ids) <= len(asked) and answer.answer
    one = qa.answer(_NARRATIVE * 6 + _QUESTIONS[0] + "？" + _NARRATIVE * 6)
    assert not one.handoff and one.article_id == "vet-over80-insurance-cover"


def test_a_long_letter_that_asks_nothing_is_handed_off_without_a_search(
        qa: QA, monkeypatch: pytest.MonkeyPatch) -> None:
    """A letter over LONG_MESSAGE characters with no question in it (a story, a voice memo) is not
    searched whole: it goes to a person, and the reply says how to ask; a short statement is still
    searched and answered as before."""
    texts = _searches(monkeypatch)
    story = "我父亲今年八十二岁以前当过兵退伍以后一直在老家种地，现在身体不太好经常要住院，孩子们都在外地打工平时没人照顾，"
    letter = story * 30
    assert len(letter) > LONG_MESSAGE
    answer = qa.answer(letter)
    assert answer.handoff and answer.detail == "long_message" and texts == []
    assert "一句话问一个问题" in answer.answer and "转给工作人员" in answer.answer
    assert qa.answer(story * 2).detail != "long_message" and texts
