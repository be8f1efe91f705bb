"""Enqueue benchmark: a 100,000-recipient broadcast rendered and queued, versus a raw insert.

Set-up (not timed): a fresh SQLite file with 100,000 active beneficiaries, each with one
verified contact (60 % Telegram, 40 % SMS; 90 % zh-Hans, 5 % zh-Hant, 5 % English), the
planner's statistics refreshed as a roll import leaves them, and an approved broadcast of
staff-written text to all of them.

Timed (`seconds`): what sending it does — `broadcasts.enqueue_broadcast`: the audience read
through the contact rule (`outreach.reach`), batch by batch; each salutation; each message
rendered for its language and channel (sandboxed staff text inside the `staff_broadcast`
frame, opt-out footer on SMS), with the SMS copy a Telegram row carries for its fallback;
SMS segments counted; every row queued through `outreach.outbox.enqueue_many` (SQLAlchemy
Core insert, executemany, idempotency keys with ON CONFLICT DO NOTHING), a commit per batch.

Raw (`raw_seconds`): the same rows, read back from the outbox once queued, written by one
plain `sqlite3` `executemany` (INSERT OR IGNORE, foreign keys on) into a copy of the same
populated database taken before the broadcast — the floor for writing these rows.
`ratio` = seconds / raw_seconds. Goal: seconds ≤ 10 and ratio ≤ 4. `cpu_seconds`,
`raw_cpu_seconds` and `cpu_ratio`: the same with this process's CPU time (SQLite runs in the
process), which other work on a shared machine inflates far less than the wall clock.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RECIPIENTS = int(os.environ.get("NUANXIN_BENCH_RECIPIENTS", "100000"))
NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
STAFF_TEXT = {
    "zh-Hans": "{{ salutation }}，您好！{{ community }}本周六上午9点在社区活动室举办老年人健康讲座和免费体检，欢迎参加。",
    "en": "Dear {{ name }}, a free health check and talk for older residents is on Saturday at 9am in the "
          "{{ community }} community room. You are welcome!",
}
SURNAMES = "张王李赵陈刘杨黄吴周徐孙马朱胡郭何高林罗欧阳"


def _populate(engine: Any, n: int) -> int:
    """n beneficiaries with one verified contact each; returns the broadcast id."""
    from sqlalchemy import insert

    from models.outbox import Broadcast
    from models.people import Beneficiary, Contact

    beneficiaries, contacts = [], []
    for i in range(1, n + 1):
        lang = "en" if i % 20 == 0 else "zh-Hant" if i % 20 == 1 else "zh-Hans"
        name = f"Li Ming{i}" if lang == "en" else SURNAMES[i % len(SURNAMES)] + "建国秀英明华"[i % 6] + "华"
        beneficiaries.append({
            "id": i, "name": name, "id_hash": f"h{i:012d}", "id_masked": "4407**********0000", "id_last6_hash": "",
            "birth_date": date(1936 + i % 30, 1 + i % 12, 1 + i % 28), "sex": "MF"[i % 2], "is_veteran": i % 3 == 0,
            "is_retiree": i % 3 != 0, "is_union_member": False, "district": "蓬江区", "street": "白沙街道",
            "community": f"白沙{i % 42}社区", "living_alone": False, "disabled": False, "language": lang,
            "status": "active", "tags": [], "source": "bench", "created_at": NOW, "updated_at": NOW,
        })
        telegram = i % 5 < 3
        contacts.append({
            "id": i, "beneficiary_id": i, "channel": "telegram" if telegram else "sms",
            "address": str(100000000 + i) if telegram else f"+86138{i:08d}", "verified": True,
            "verified_at": NOW, "created_at": NOW,
        })
    from models.db import session_scope

    with session_scope(engine) as s:
        for start in range(0, n, 5000):
            s.execute(insert(Beneficiary.__table__), beneficiaries[start:start + 5000])  # type: ignore[attr-defined]
            s.execute(insert(Contact.__table__), contacts[start:start + 5000])  # type: ignore[attr-defined]
        b = Broadcast(title="健康讲座", body=STAFF_TEXT, status="approved", created_at=NOW)
        s.add(b)
        s.flush()
        assert b.id is not None
        return b.id


def _queue_broadcast(engine: Any, broadcast_id: int, templates: Any) -> int:
    """The timed path: what `nuanxin broadcast send` does once the broadcast is approved."""
    from models.db import write_scope
    from models.outbox import Broadcast
    from outreach.broadcasts import enqueue_broadcast, start_sending
    from settings import load_settings

    with write_scope(engine) as s:
        b = s.get(Broadcast, broadcast_id)
        assert b is not None
        start_sending(s, b, actor="bench", now=NOW)
    return enqueue_broadcast(engine, broadcast_id, now=NOW, settings=load_settings(), templates=templates)


def _queued_rows(engine: Any) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Every outbox row as stored (SQLite's own values), for the raw insert."""
    from models.outbox import OutboxMessage

    cols = [c.name for c in OutboxMessage.__table__.columns if c.name != "id"]  # type: ignore[attr-defined]
    conn = sqlite3.connect(engine.url.database)
    try:
        return cols, conn.execute(f"SELECT {', '.join(cols)} FROM outbox_message ORDER BY id").fetchall()
    finally:
        conn.close()


def _raw_insert(path: Path, cols: list[str], values: list[tuple[Any, ...]]) -> None:
    """The floor: the same rows, one plain executemany, one commit."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")  # as models.db sets it for the application
        conn.executemany(f"INSERT OR IGNORE INTO outbox_message ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                         values)
        conn.commit()
    finally:
        conn.close()


def run(recipients: int = RECIPIENTS) -> dict[str, Any]:
    from sqlalchemy import func, select
    from sqlmodel import SQLModel

    import models  # noqa: F401  (registers every table)
    from models.db import make_engine, refresh_statistics, sqlite_pragma
    from models.outbox import OutboxMessage
    from outreach.templates import TemplateSet

    with tempfile.TemporaryDirectory(prefix="nuanxin-enqueue-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        SQLModel.metadata.create_all(engine)
        broadcast_id = _populate(engine, recipients)
        refresh_statistics(engine)  # as a roll import does once it has written the roll
        # The raw insert gets a copy of this same populated database (same rows, indexes and
        # pragmas, foreign keys checked), so the two timings differ only in how rows are written.
        sqlite_pragma(engine, "PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        raw_path = Path(tmp) / "raw.db"
        shutil.copyfile(Path(tmp) / "bench.db", raw_path)
        # Loaded once per process at start-up (like the web app and the scheduler do), not per broadcast.
        templates = TemplateSet(office_name="白沙街道退役军人服务站", office_phone="0750-1234567")
        started, cpu_started = time.perf_counter(), time.process_time()
        created = _queue_broadcast(engine, broadcast_id, templates)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started

        with engine.connect() as conn:
            queued = conn.execute(select(func.count()).select_from(OutboxMessage.__table__)).scalar_one()  # type: ignore[attr-defined]
            sms_segments = conn.execute(
                select(func.sum(OutboxMessage.segments)).where(OutboxMessage.channel == "sms")  # type: ignore[arg-type]
            ).scalar_one()
        engine.dispose()

        # The raw path gets every row fully formed: only the write is timed.
        cols, values = _queued_rows(engine)
        started, cpu_started = time.perf_counter(), time.process_time()
        _raw_insert(raw_path, cols, values)
        raw_seconds, raw_cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started

    return {
        "recipients": recipients,
        "seconds": round(seconds, 3),
        "raw_seconds": round(raw_seconds, 3),
        "ratio": round(seconds / raw_seconds, 2) if raw_seconds else None,
        "cpu_seconds": round(cpu_seconds, 3),
        "raw_cpu_seconds": round(raw_cpu_seconds, 3),
        "cpu_ratio": round(cpu_seconds / raw_cpu_seconds, 2) if raw_cpu_seconds else None,
        "created": created,
        "queued": queued,
        "per_recipient_us": round(seconds / recipients * 1e6, 1) if recipients else None,
        "sms_segments": int(sms_segments or 0),
        "database": "sqlite",
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), ensure_ascii=False))
