"""What policy answers cost: passes of the embedding model, and what is kept between questions."""

from __future__ import annotations

import numpy as np
import pytest

from bot.qa import QA
from bot.qa_embed import Embedder


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
