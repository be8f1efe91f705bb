"""`nuanxin run` starts serving quickly and stops on SIGTERM in time, with nothing lost."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from tests.reliability.probes import Service, answered

BACKLOG = 10_000


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
    """With 10,000 SMS queued (sent at 1 segment a second): the port serves, then the knowledge is
    loaded, within 5 s of the process's own CPU time (as it reports it: what the start costs on
    an unloaded machine, where this machine is shared), and a policy question is answered from it; SIGTERM ends the process in
    under 10 s with status 0, and every message is sent or back in the queue, none left
    'sending', no lease kept."""
    from models.outbox import OutboxMessage

    service = Service(tmp_path).prepare()
    _queue_backlog(service)
    try:
        service.start()
        serving_cpu, knowledge_cpu = service.start_cpu()
        assert serving_cpu < knowledge_cpu < 5.0, (serving_cpu, knowledge_cpu, service.knowledge_s)
        assert service.serving_s <= service.knowledge_s
        reply = service.sms("+8613800000009", "老兵80岁以后有什么保险？")
        assert answered(reply), reply
        seconds, code = service.stop()
    finally:
        service.kill()
    assert code == 0, service.log()[-3000:]
    assert seconds < 10, seconds
    engine = service.engine()
    with engine.connect() as conn:
        by_status = dict(conn.execute(select(OutboxMessage.status, func.count())  # type: ignore[call-overload]
                                      .group_by(OutboxMessage.status)).all())
        leased = conn.execute(select(func.count()).select_from(OutboxMessage)
                              .where(OutboxMessage.lease_owner.is_not(None))).scalar_one()  # type: ignore[union-attr]
    engine.dispose()
    assert by_status.get("sending", 0) == 0 and leased == 0, by_status
    assert by_status.get("queued", 0) + by_status.get("sent", 0) == BACKLOG, by_status
    assert "stopped in" in service.log()
