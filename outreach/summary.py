"""The daily summary for staff: what is due today, what went out and failed yesterday, who
opted out, which tasks were opened, which applications are stuck.

`daily_summary(session, day, tz)` returns the figures (the web console shows them);
`send_daily_summary(engine, clock, settings)` queues them to the staff Telegram chat through
the outbox (kind `staff_summary`, once per day), rendered from the `daily_staff_summary`
template with the extra lines below it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select
from sqlmodel import Session, col

from models.applications import Application, HandoffTicket, Task
from models.clock import Clock
from models.db import session_scope
from models.outbox import OutboxEvent, OutboxMessage, OutboxStatus
from models.people import Contact
from outreach.outbox import enqueue, idempotency_key

SUMMARY_KIND = "staff_summary"
OPEN_STAGES = ("staged", "accepted", "preliminary_review", "verification", "payment_notice", "paid", "returned")


def _bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tz).astimezone(UTC)
    return start, start + timedelta(days=1)


def daily_summary(session: Session, day: date, tz: ZoneInfo, *, now: datetime | None = None) -> dict[str, Any]:
    """Figures for office day `day`: due today, and yesterday's sending (a morning summary)."""
    from outreach.sweeps import certification_due_count

    start, end = _bounds(day, tz)
    y_start, y_end = _bounds(day - timedelta(days=1), tz)
    now = now or end
    o = OutboxMessage

    def count(stmt: Any) -> int:
        return int(session.execute(stmt).scalar_one() or 0)

    due_by_kind: dict[str, int] = dict(session.execute(
        select(col(o.kind), func.count()).where(col(o.next_attempt_at) >= start, col(o.next_attempt_at) < end,
                                                col(o.status) == OutboxStatus.QUEUED.value).group_by(col(o.kind))
    ).all())
    sent = count(select(func.count()).select_from(o).where(col(o.sent_at) >= y_start, col(o.sent_at) < y_end))
    delivered = count(select(func.count()).select_from(o).where(
        col(o.delivered_at) >= y_start, col(o.delivered_at) < y_end))
    e = OutboxEvent
    failed_by_reason: dict[str, int] = {}
    for code, n in session.execute(
            select(col(o.error_code), func.count()).select_from(e).join(o, col(o.id) == col(e.outbox_id))
            .where(col(e.to_status) == OutboxStatus.FAILED.value, col(e.at) >= y_start, col(e.at) < y_end)
            .group_by(col(o.error_code))).all():
        failed_by_reason[code or "unknown"] = failed_by_reason.get(code or "unknown", 0) + n
    opted_out = count(select(func.count()).select_from(Contact).where(
        col(Contact.opted_out_at) >= y_start, col(Contact.opted_out_at) < y_end))
    tasks_opened: dict[str, int] = dict(session.execute(select(col(Task.kind), func.count()).where(
        col(Task.created_at) >= y_start, col(Task.created_at) < end).group_by(col(Task.kind))).all())
    stuck = [
        {"reference": ref, "stage": stage, "note": note}
        for ref, stage, note in session.execute(
            select(col(Application.reference), col(Application.stage), col(Task.note))
            .join(Task, col(Task.application_id) == col(Application.id))
            .where(col(Task.kind) == "stuck_application", col(Task.status) == "open")
            .order_by(col(Application.stage_changed_at))
        ).all()
    ]
    t = HandoffTicket
    figures = {
        "day": day.isoformat(),
        "certifications_due_today": certification_due_count(session, day),
        "due_today": sum(due_by_kind.values()),
        "due_today_by_kind": due_by_kind,
        "sent": sent,
        "delivered": delivered,
        "failed": sum(failed_by_reason.values()),
        "failed_by_reason": failed_by_reason,
        "opted_out": opted_out,
        "tasks_opened": sum(tasks_opened.values()),
        "tasks_opened_by_kind": tasks_opened,
        "open_tasks": count(select(func.count()).select_from(Task).where(col(Task.status) == "open")),
        "stuck_applications": stuck,
        "new_tickets": count(select(func.count()).select_from(t).where(
            col(t.created_at) >= y_start, col(t.created_at) < y_end)),
        "open_tickets": count(select(func.count()).select_from(t).where(col(t.status) == "open")),
        "overdue_tickets": count(select(func.count()).select_from(t).where(
            col(t.status) == "open", col(t.escalated_at).is_not(None))),
        "applications_waiting": count(select(func.count()).select_from(Application).where(
            col(Application.stage).in_(OPEN_STAGES))),
    }
    return figures


def _kind_words(group: str, code: str, lang: str) -> str:
    """A message or task kind in the staff's words (cert_reminder_30: the reminder, 30 days ahead)."""
    from bot.words import staff_label

    base, _, days = code.rpartition("_")
    if group == "message_kind" and days.isdigit() and base:
        ahead = f"（提前{days}天）" if lang != "en" else f" ({days} days ahead)"
        return staff_label(group, base, lang) + ahead
    return staff_label(group, code, lang)


def _listed(group: str, counts: dict[str, int], lang: str) -> str:
    if not counts:
        return ""
    return "（" + "，".join(f"{_kind_words(group, k, lang)} {v}" for k, v in sorted(counts.items())) + "）"


def summary_text(figures: dict[str, Any], templates: Any, lang: str = "zh-Hans") -> str:
    """The template's lines, then what it does not hold: due today, opt-outs, tasks, stuck
    (kinds and stages in the staff's words from the catalogue, never their codes)."""
    from bot.words import staff_label

    head = templates.render("daily_staff_summary", lang, {
        "day": date.fromisoformat(figures["day"]), **{k: figures[k] for k in (
            "new_tickets", "open_tickets", "overdue_tickets", "applications_waiting", "open_tasks", "sent",
            "failed")}}, "telegram").text
    lines = [head,
             f"今日待发消息：{figures['due_today']}"
             + _listed("message_kind", figures["due_today_by_kind"], lang),
             f"今日到期资格认证：{figures['certifications_due_today']}",
             f"昨日退订：{figures['opted_out']}",
             f"新开任务：{figures['tasks_opened']}"
             + _listed("task_kind", figures["tasks_opened_by_kind"], lang)]
    if figures["failed_by_reason"]:
        lines.append("失败原因：" + "，".join(f"{k} {v}" for k, v in sorted(figures["failed_by_reason"].items())))
    for s in figures["stuck_applications"][:10]:
        lines.append(f"· 超时申请 {s['reference']}（{staff_label('stage', s['stage'], lang)}）")
    if len(figures["stuck_applications"]) > 10:
        lines.append(f"· …另有 {len(figures['stuck_applications']) - 10} 件")
    return "\n".join(lines)


def send_daily_summary(engine: Engine, *, clock: Clock, settings: Any, templates: Any = None) -> dict[str, Any]:
    """Queue today's summary to the staff chat (once per day); returns the figures."""
    from outreach.templates import templates_for

    tz = settings.tz
    now = clock.now()
    day = now.astimezone(tz).date()
    ts = templates or templates_for(settings)
    with session_scope(engine, immediate=True) as session:
        figures = daily_summary(session, day, tz, now=now)
        chat = getattr(settings, "staff_telegram_chat_id", "")
        if chat:
            enqueue(session, key=idempotency_key(SUMMARY_KIND, "staff", day.isoformat()), kind=SUMMARY_KIND,
                    channel="telegram", address=str(chat), body=summary_text(figures, ts), now=now,
                    occurrence=day.isoformat(), allow_fallback=False, message_class="staff")
    figures["queued"] = bool(chat)
    return figures
