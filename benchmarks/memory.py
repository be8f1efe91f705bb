"""Resident memory (and CPU) of each process role, with 100,000 people on the roll.

`rss_mb`: `nuanxin run` (the embedded default: SQLite, one process) after start-up, the first
day's sweep (the scheduler catches it up when it takes the lead) and a policy question answered
through Telegram polling (so the Q&A, its index and its embedding model are loaded): everything.
`rss_mb_run_before_question` is the same process before the question: the difference is what the
Q&A costs (`qa_mb`).

`rss_mb_web`, `rss_mb_dispatch`, `rss_mb_scheduler`: the separate roles as a deployment runs them,
on PostgreSQL and Redis with the same roll: the web after answering a question by webhook, the
scheduler after its daily sweep, the dispatcher after sending for a while what the sweep queued.
Their data folder holds what a previous start kept there (the zh-Hant of the fixed texts, from the
embedded run): a deployment's very first start converts them itself, as `nuanxin run` does here.
`rss_mb_*_started`: the same process when it first answers /healthz, before its work (the web's
knowledge loads after that, the scheduler's sweep and the dispatcher's sends start about then):
what its imports and start-up hold. `cpu_s_*`: CPU seconds each process used up to that point
(start-up included); `start_s_*`: from launch to answering /healthz. `aiogram` and `pydantic`:
the versions measured (aiogram's import is most of a dispatcher, and its size depends on both:
deploy/README.md, "What each process needs").

    .venv/bin/python benchmarks/run.py memory --json
    NUANXIN_BENCH_MEMORY_N=20000 .venv/bin/python benchmarks/memory.py
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

N = int(os.environ.get("NUANXIN_BENCH_MEMORY_N", "100000"))
TOKEN = "555000:MEMORY"
SECRET = "memory-webhook-secret"
QUESTION = "老兵80岁以后有什么保险？"
SETTLE_S = 3.0


def _sweep_finished(url: str) -> bool:
    from sqlalchemy import select
    from sqlalchemy.exc import OperationalError

    from models.db import make_engine
    from models.scheduler import SchedulerJobRun

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            finished = conn.execute(select(SchedulerJobRun.last_finished_at).where(
                SchedulerJobRun.job == "daily_sweep")).scalar()
        return finished is not None
    except OperationalError:  # SQLite: the sweep holds the write lock; ask again
        return False
    finally:
        engine.dispose()


def _sent_to(tg: Any, chat: int) -> list[dict[str, Any]]:
    return [m for m in list(tg.sent) if str(m["chat"]["id"]) == str(chat)]


def _embedded(tmp: Path, tg: Any, seed_db: Path) -> dict[str, Any]:
    from tests.scale.cluster import Cluster, base_env, schedule_sending_at_once

    data = tmp / "run"
    data.mkdir()
    shutil.copy(seed_db, data / "nuanxin.db")
    env = base_env(NUANXIN_DATA_DIR=str(data), NUANXIN_ID_HASH_KEY="memory-id-key",
                   NUANXIN_SESSION_SECRET="memory-session", TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_BASE=tg.base_url,
                   NUANXIN_QUIET_HOURS_START="00:00", NUANXIN_QUIET_HOURS_END="00:00", NUANXIN_LOG_FORMAT="json",
                   NUANXIN_SCHEDULE_FILE=str(schedule_sending_at_once(tmp)))
    cluster = Cluster(env, tmp)
    try:
        started = time.monotonic()
        node = cluster.start("run")
        cluster.wait_healthy(node, seconds=1200)
        start_s = time.monotonic() - started
        url = f"sqlite:///{data / 'nuanxin.db'}"
        cluster.wait_until(lambda: _sweep_finished(url), "the first day's sweep", 600, every=1.0)
        time.sleep(SETTLE_S)
        before = node.rss_mb()
        tg.push_update(tg.text_update(chat_id=880001, text=QUESTION))
        cluster.wait_until(lambda: _sent_to(tg, 880001), "the answer by Telegram", 300, every=0.5)
        time.sleep(SETTLE_S)
        rss, cpu = node.rss_mb(), node.cpu_seconds()
        code = node.terminate(30)
        return {"rss_mb": round(rss, 1), "rss_mb_run_before_question": round(before, 1), "qa_mb": round(rss - before, 1),
                "cpu_s_run": round(cpu, 1), "start_s_run": round(start_s, 1),
                "stop_s_run": round(node.exit_seconds or 0, 1), "run_exit_code": code}
    finally:
        cluster.stop()


def _roles(tmp: Path, tg: Any) -> dict[str, Any]:
    from benchmarks.sweep import load_roll
    from bot.language import KEPT_FOLDER_NAME
    from models.db import make_engine
    from models.pgserver import PostgresServer
    from tests.redisserver import RedisServer
    from tests.scale.cluster import Cluster, base_env, nuanxin, schedule_sending_at_once

    out: dict[str, Any] = {}
    with PostgresServer() as pg, RedisServer() as redis_server:
        url = pg.create_database("nuanxin_memory")
        env = base_env(DATABASE_URL=url, REDIS_URL=redis_server.url(0), NUANXIN_DATA_DIR=str(tmp / "roles"),
                       NUANXIN_ID_HASH_KEY="memory-id-key", NUANXIN_SESSION_SECRET="memory-session",
                       TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_BASE=tg.base_url, TELEGRAM_WEBHOOK_SECRET=SECRET,
                       NUANXIN_TELEGRAM_MODE="webhook", NUANXIN_QUIET_HOURS_START="00:00",
                       NUANXIN_QUIET_HOURS_END="00:00", NUANXIN_LOG_FORMAT="json",
                       NUANXIN_SCHEDULE_FILE=str(schedule_sending_at_once(tmp)))
        nuanxin("migrate", env=env)
        # The zh-Hant of the fixed texts as a previous start kept it (bot/language.py): every start
        # but a deployment's very first finds it in the data folder (here, from the embedded run's).
        kept = tmp / "run" / KEPT_FOLDER_NAME
        if kept.exists():
            shutil.copytree(kept, tmp / "roles" / KEPT_FOLDER_NAME)
        engine = make_engine(url)
        load_roll(engine, N)
        engine.dispose()
        cluster = Cluster(env, tmp)
        try:
            launched = {}
            for role in ("scheduler", "web", "dispatch"):
                launched[role] = time.monotonic()
                node = cluster.start(role)
                cluster.wait_healthy(node, seconds=1200)
                out[f"start_s_{role}"] = round(time.monotonic() - launched[role], 1)
                out[f"rss_mb_{role}_started"] = round(node.rss_mb(), 1)
            scheduler, web, dispatch = cluster.nodes
            cluster.wait_until(lambda: _sweep_finished(url), "the scheduler's daily sweep", 600, every=1.0)
            update = {"update_id": 1, **tg.text_update(chat_id=880002, text=QUESTION)}
            assert web.post_json("/webhooks/telegram", update, {"X-Telegram-Bot-Api-Secret-Token": SECRET},
                                 timeout=300) == 200
            # The dispatcher sends what the sweep queued for a while (Telegram at 30/s, SMS to the log sink).
            time.sleep(20)
            time.sleep(SETTLE_S)
            for node in (web, dispatch, scheduler):
                out[f"rss_mb_{node.role}"] = round(node.rss_mb(), 1)
                out[f"cpu_s_{node.role}"] = round(node.cpu_seconds(), 1)
            out["dispatch_sent_telegram"] = len(list(tg.sent))
            for node in (web, dispatch, scheduler):
                node.terminate(30)
                out[f"stop_s_{node.role}"] = round(node.exit_seconds or 0, 1)
        finally:
            cluster.stop()
    return out


def run() -> dict[str, Any]:
    from sqlalchemy import create_engine

    from benchmarks.sweep import load_roll
    from tests.fakes.fake_telegram import FakeTelegram
    from tests.scale.cluster import base_env, nuanxin

    tmp = Path(tempfile.mkdtemp(prefix="nuanxin-memory-"))
    try:
        seed = tmp / "seed"
        nuanxin("migrate", env=base_env(NUANXIN_DATA_DIR=str(seed)))
        seed_engine = create_engine(f"sqlite:///{seed / 'nuanxin.db'}")
        load_roll(seed_engine, N)
        seed_engine.dispose()
        with FakeTelegram(TOKEN) as tg:
            figures: dict[str, Any] = {"beneficiaries": N, "aiogram": version("aiogram"),
                                       "pydantic": version("pydantic")}
            figures.update(_embedded(tmp, tg, seed / "nuanxin.db"))
            tg.sent.clear()
            figures.update(_roles(tmp, tg))
        return figures
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(run(), ensure_ascii=False))
