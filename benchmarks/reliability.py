"""Benchmark: heavy work and hostile input against a real `nuanxin run` (issue #17).

One service on loopback with its own SQLite data folder. Figures:
- fuzz_messages, fuzz_5xx, fuzz_unanswered: signed SMS of odd text; a 5xx, or a reply without
  a message (or with the apology for a failure), counts against it;
- bad_rolls_tried, bad_rolls_silent_loss: damaged roll files imported into the service's
  database; rows neither imported, updated, found unchanged, blank nor reported are lost;
- hostile_templates_tried, hostile_templates_hung: `nuanxin broadcast create` with text that ran
  for minutes or ate gigabytes; hung = no "refused: …" answer within 60 s (or a traceback);
- stall_p99_ms: the p99 of /healthz and of signed SMS webhooks (sent one after another from two
  threads) while a 100,000-row import and a hostile template run at the same time (goal ≤ 500);
- start_*: wall and CPU seconds until the port served and until the knowledge was loaded;
  stop_s: SIGTERM to exit with 10,000 SMS queued, stop_lost and stop_leases_kept after it.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FUZZ = 500
IMPORT_ROWS = 100_000
BACKLOG = 10_000


def run() -> dict[str, Any]:
    from sqlalchemy import func, select

    from models.outbox import OutboxMessage
    from tests.reliability.probes import (
        HOSTILE_TEMPLATES,
        Probe,
        Service,
        answered,
        bad_rolls,
        create_broadcast,
        fuzz_messages,
        import_bad_roll,
        p99,
        write_large_roll,
    )
    from tests.reliability.test_start_and_stop import _queue_backlog

    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        service = Service(root).prepare(demo_people=200)
        try:
            service.start()
            figures.update(start_serving_s=round(service.serving_s, 2), start_knowledge_s=round(service.knowledge_s, 2))
            serving_cpu, knowledge_cpu = service.start_cpu()
            figures.update(start_serving_cpu_s=serving_cpu, start_knowledge_cpu_s=knowledge_cpu)
            service.add_staff("composer.bench", "composer")

            replies = [service.sms(sender, text) for sender, text in fuzz_messages(FUZZ)]
            figures.update(fuzz_messages=len(replies), fuzz_5xx=sum(r.status >= 500 for r in replies),
                           fuzz_unanswered=sum(not answered(r) for r in replies))

            outcomes = [import_bad_roll(service, roll) for roll in bad_rolls(root / "rolls")]
            figures.update(bad_rolls_tried=len(outcomes), bad_rolls_silent_loss=sum(o.silent_loss for o in outcomes),
                           bad_rolls_refused=sum(o.refused is not None for o in outcomes))

            hung = 0
            slowest = 0.0
            for source in HOSTILE_TEMPLATES:
                code, said, seconds = create_broadcast(service, "composer.bench", source, timeout=60)
                slowest = max(slowest, seconds)
                if code != 1 or "refused:" not in said or "Traceback" in said:
                    hung += 1
            figures.update(hostile_templates_tried=len(HOSTILE_TEMPLATES), hostile_templates_hung=hung,
                           hostile_template_slowest_s=round(slowest, 2))

            roll = write_large_roll(root / "big.csv", IMPORT_ROWS)
            health = Probe(lambda i: service.get("/healthz")).start()
            sms = Probe(lambda i: service.sms(f"+86139{i:08d}", "菜单")).start()
            template = threading.Thread(target=create_broadcast,
                                        args=(service, "composer.bench", HOSTILE_TEMPLATES[3], 120))
            started = time.monotonic()
            template.start()
            done = service.cli("roll", "import", str(roll), "--json", timeout=1800)
            import_seconds = time.monotonic() - started
            template.join(180)
            health_replies, sms_replies = health.finish(), sms.finish()
            everything = health_replies + sms_replies
            figures.update(
                stall_p99_ms=round(p99([r.ms for r in everything]), 1),
                stall_p99_healthz_ms=round(p99([r.ms for r in health_replies]), 1),
                stall_p99_sms_ms=round(p99([r.ms for r in sms_replies]), 1),
                stall_max_ms=round(max((r.ms for r in everything), default=0.0), 1),
                stall_requests=len(everything),
                stall_failures=sum(r.status != 200 for r in health_replies) + sum(not answered(r) for r in sms_replies),
                import_rows=IMPORT_ROWS, import_seconds=round(import_seconds, 1), import_ok=done.returncode == 0,
                database_locked_in_log=service.log().count("database is locked"))
            service.stop()

            _queue_backlog(service)
            service.start()
            time.sleep(2)
            seconds, code = service.stop()
            engine = service.engine()
            with engine.connect() as conn:
                by_status = dict(conn.execute(select(OutboxMessage.status, func.count())  # type: ignore[call-overload]
                                              .where(OutboxMessage.kind == "staff_broadcast",
                                                     OutboxMessage.occurrence == "backlog")
                                              .group_by(OutboxMessage.status)).all())
                leased = conn.execute(select(func.count()).select_from(OutboxMessage).where(
                    OutboxMessage.lease_owner.is_not(None))).scalar_one()  # type: ignore[union-attr]
            engine.dispose()
            figures.update(stop_s=round(seconds, 2), stop_exit_status=code, stop_backlog=BACKLOG,
                           stop_lost=BACKLOG - by_status.get("queued", 0) - by_status.get("sent", 0),
                           stop_leases_kept=int(leased))
        finally:
            service.kill()
    return figures


if __name__ == "__main__":
    import json

    print(json.dumps(run(), ensure_ascii=False))
