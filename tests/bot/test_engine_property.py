"""Property: whatever arrives, at whatever step, the engine answers and never fails.

10,000 messages in total (100 examples x 100 messages), in-process on SQLite.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.channels.base import Attachment, Inbound
from bot.engine import Engine
from models.clock import FakeClock
from models.db import session_scope
from tests.bot.conftest import FakeNotifier, FakeQA, add_person

WORDS = ["0", "菜单", "返回", "上一步", "帮助", "?", "人工", "语言", "English", "繁體", "中文", "STOP", "退订", "TD",
         "START", "订阅", "继续", "以后", "跳过", "是", "不是", "1", "2", "3", "4", "5", "6", "7", "8", "9",
         "张三", "110105194012310024", "13812345678", "123456", "重发", "2026-1-5到2026-1-20", "1998年12月",
         "8600", "今天", "昨天", "江门市人民医院", "医疗互助一年交多少钱", "ＭＥＮＵ", " back ", "😀", "\x00\x1b[2J"]

message = st.one_of(
    st.sampled_from(WORDS),
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=0, max_size=5000).map(lambda s: s[:5000]),
    st.integers(min_value=-10, max_value=100).map(str),
    st.just(None),  # a photo with no text
)
_counter = itertools.count()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=st.lists(message, min_size=100, max_size=100), channel=st.sampled_from(["telegram", "sms", "console"]),
       linked=st.booleans())
def test_ten_thousand_arbitrary_messages_are_all_answered(prop_engine, batch, channel, linked):
    """Every message gets at least one reply that says how to reach a person; none is the failure reply."""
    engine = prop_engine
    address = f"p{next(_counter)}"
    if linked:
        with session_scope(engine.db) as s:
            engine.identity.link(s, channel=channel, address=address, beneficiary_id=1, relationship=None,
                                 phone=None, now=engine.clock.now())
    for text in batch:
        atts = (Attachment(kind="photo", file_id="f"),) if text is None else ()
        replies = engine.handle(Inbound(channel=channel, address=address, text=text or "", attachments=atts))
        assert replies and all(r.text.strip() for r in replies)
        joined = "\n".join(r.text for r in replies)
        assert "人工" in joined or "human" in joined.lower(), joined
        assert "系统刚才出了点问题" not in joined and "went wrong on our side" not in joined, text


import pytest  # noqa: E402


@pytest.fixture(scope="module")
def prop_engine(tmp_path_factory):
    from sqlmodel import SQLModel

    import models  # noqa: F401
    from models.db import make_engine
    from settings import load_settings

    tmp = tmp_path_factory.mktemp("prop")
    db = make_engine(f"sqlite:///{tmp / 'p.db'}")
    SQLModel.metadata.create_all(db)
    conf = load_settings(data_dir=tmp / "var", id_hash_key="k", session_secret="s")
    with session_scope(db) as s:
        add_person(s, conf, "110105194012310024", "张三", "+8613812345678", is_veteran=True)
    engine = Engine(db, conf, FakeClock(datetime(2026, 3, 2, 2, 0, tzinfo=UTC)), qa=FakeQA(), notifier=FakeNotifier())
    yield engine
    engine.close()
    db.dispose()
