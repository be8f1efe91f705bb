"""The server log at INFO holds what operators act on: the libraries' own chatter stays out of it."""

from __future__ import annotations

import io
import logging
from datetime import date
from pathlib import Path

from bot.knowledge import Article
from bot.qa_index import Tokenizer, WordIndex
from models.logs import configure_logging


def _article(article_id: str, title: str, body: str) -> Article:
    return Article(id=article_id, title=title, language="en", seed="001", questions=(title,), keywords=(),
                   reviewed_by="test", reviewed_on=date(2026, 1, 1), body=body, sms=body, path=Path(f"{article_id}.md"))


def test_the_server_log_at_info_carries_no_debug_or_info_lines_of_the_search_library():
    """Building the policy-answer index and searching it with bm25s (which sets its own logger to DEBUG when
    imported, and logs each index build) writes none of bm25s's DEBUG or INFO lines to the server log at INFO;
    the service's own INFO lines and bm25s's warnings are still written."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    try:
        root.handlers = []
        configure_logging(log_format="text", level="INFO")
        for handler in root.handlers:
            assert isinstance(handler, logging.StreamHandler)
            handler.setStream(stream)
        index = WordIndex([_article("a", "Yearly pension check", "Certify once a year."),
                           _article("b", "Hospital claim", "Bring the invoices.")], Tokenizer("en"))
        assert index.scores("pension check").argmax() == 0
        assert logging.getLogger("bm25s").isEnabledFor(logging.DEBUG), "bm25s logs at DEBUG once imported"
        logging.getLogger("bm25s").debug("Building index from tokens (a record the log must not carry)")
        logging.getLogger("bm25s").info("The query is empty (a record the log must not carry)")
        logging.getLogger("bm25s").warning("bm25s warns of something")
        logging.getLogger("nuanxin.web").info("web role started")
    finally:
        root.handlers, level = saved
        root.setLevel(level)
    written = stream.getvalue()
    assert "web role started" in written and "bm25s warns of something" in written
    assert "Building index" not in written and "must not carry" not in written
    assert "DEBUG" not in written
