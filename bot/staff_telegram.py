"""Staff on Telegram: the office's staff chat gets the daily summary and each new handoff; linked
staff use `/inbox`, `/reply N text` and `/stats` there or in a private chat with the bot.

- Linking: a member asks the console for a one-time code (`/account/telegram`) and sends
  `/link CODE` to the bot from their own account; the account's user id is kept on the staff
  user. A code lasts ten minutes, works once and is stored only as a keyed hash; wrong codes
  are limited per Telegram account (`limits`, 5 in 15 minutes).
- Who may: a command is answered only for an active staff user linked to the sender's
  Telegram account, and `/reply` only for a caseworker; anyone else is told so (in a private
  chat or the staff chat) and nothing happens. Other groups are ignored.
- `/reply N text` answers ticket N through `bot.tickets.reply_to_ticket`: the answer goes to
  the person's own channel through the outbox, and the staff action is audited.
- `announce_handoffs` (the scheduler's minute poll) queues each new handoff to the staff chat
  once (through the outbox, class staff); the daily summary is `outreach.summary`'s.

The aiogram Router (`router()`) only translates; `handle()` decides, so it is tested without a
network and called the same way from polling and webhooks.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import Engine, select, update
from sqlmodel import Session, col

from models.actions import audit
from models.db import session_scope, write_scope
from models.phone import mask_phone
from models.staff import StaffUser
from models.staff_telegram import StaffLinkCode

if TYPE_CHECKING:  # aiogram is imported where it is used: loading it costs seconds of CPU, and the
    # console's pages import this module before the web port opens
    from aiogram import Bot, Router
    from aiogram.types import Message

log = logging.getLogger("nuanxin.staff_telegram")

COMMANDS = ("inbox", "reply", "stats", "link")
CODE_TTL = timedelta(minutes=10)
HANDOFF_KIND = "staff_handoff"
_LINK_TRIES = parse("5 per 15 minutes")
_limiter = MovingWindowRateLimiter(MemoryStorage())
_REPLY = re.compile(r"^/reply(?:@\w+)?\s+#?(\d+)\s+(.+)$", re.DOTALL)


def _code_hash(settings: Any, code: str) -> str:
    key = str(settings.web_session_secret).encode()
    return hmac.new(key, f"staff-telegram-link:{code}".encode(), hashlib.sha256).hexdigest()


# --- linking -------------------------------------------------------------------------------

def issue_code(db: Engine, staff_user_id: int, *, settings: Any, now: datetime, actor: str) -> str:
    """A new one-time code for this member (earlier unused ones stop working); audited, never logged."""
    code = f"{secrets.randbelow(10**8):08d}"
    with session_scope(db) as s:
        s.execute(update(StaffLinkCode).where(col(StaffLinkCode.staff_user_id) == staff_user_id,
                                              col(StaffLinkCode.used_at).is_(None)).values(used_at=now))
        s.add(StaffLinkCode(staff_user_id=staff_user_id, code_hash=_code_hash(settings, code),
                            expires_at=now + CODE_TTL, created_at=now))
        audit(s, actor, "staff.telegram_code", "staff_user", staff_user_id, {}, now)
    return code


def link_account(db: Engine, code: str, telegram_user_id: int, *, settings: Any, now: datetime) -> StaffUser | None:
    """Link the Telegram account to the member whose live code this is; None when it is not one."""
    digest = _code_hash(settings, code.strip())
    with write_scope(db) as s:  # reads the code, then marks it used: one writer at a time
        row = s.execute(select(StaffLinkCode).where(col(StaffLinkCode.code_hash) == digest,
                                                    col(StaffLinkCode.used_at).is_(None))).scalars().first()
        if row is None or row.expires_at <= now:
            return None
        user = s.get(StaffUser, row.staff_user_id)
        if user is None or not user.active:
            return None
        row.used_at = now
        s.add(row)
        # One account, one member: a Telegram account linked before to someone else moves here.
        s.execute(update(StaffUser).where(col(StaffUser.telegram_chat_id) == str(telegram_user_id))
                  .values(telegram_chat_id=None))
        user.telegram_chat_id = str(telegram_user_id)
        s.add(user)
        audit(s, user.username, "staff.telegram_linked", "staff_user", user.id, {}, now)
        s.flush()
        s.expunge(user)
        return user


def unlink(db: Engine, staff_user_id: int, *, actor: str, now: datetime) -> None:
    with session_scope(db) as s:
        user = s.get(StaffUser, staff_user_id)
        if user is not None and user.telegram_chat_id:
            user.telegram_chat_id = None
            s.add(user)
            audit(s, actor, "staff.telegram_unlinked", "staff_user", staff_user_id, {}, now)


def staff_for(db: Engine, telegram_user_id: int) -> StaffUser | None:
    """The active member linked to this Telegram account, or None."""
    with Session(db) as s:
        user = s.execute(select(StaffUser).where(col(StaffUser.telegram_chat_id) == str(telegram_user_id),
                                                 col(StaffUser.active).is_(True))).scalars().first()
        if user is not None:
            s.expunge(user)
        return user


# --- what the commands say -----------------------------------------------------------------

@dataclass(frozen=True)
class StaffContext:
    db: Engine
    settings: Any
    clock: Any

    @classmethod
    def of(cls, engine: Any) -> StaffContext | None:
        """From the conversation engine the dispatcher was built with (it holds all three);
        None for a stand-in engine without a database."""
        db, settings, clock = (getattr(engine, name, None) for name in ("db", "settings", "clock"))
        return cls(db, settings, clock) if db is not None and settings is not None and clock is not None else None


def _ago(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{max(minutes, 1)}分钟"
    hours = minutes // 60
    return f"{hours}小时" if hours < 48 else f"{hours // 24}天"


def _who(ticket: Any) -> str:
    from bot.words import staff_label

    address = mask_phone(ticket.address) if ticket.channel == "sms" else "Telegram"
    return f"{staff_label('channel', ticket.channel)} {address}" if ticket.channel == "sms" else address


def inbox_text(ctx: StaffContext, limit: int = 10) -> str:
    """Open handoffs, the longest waiting first, each with the number /reply takes."""
    from models.applications import HandoffTicket
    from models.people import Beneficiary

    now = ctx.clock.now()
    with Session(ctx.db) as s:
        rows = s.execute(select(HandoffTicket, Beneficiary.name).outerjoin(  # type: ignore[call-overload]
            Beneficiary, col(Beneficiary.id) == col(HandoffTicket.beneficiary_id))
            .where(col(HandoffTicket.status) == "open").order_by(col(HandoffTicket.created_at))).all()
    if not rows:
        return "没有待回复的问题。"
    lines = [f"待回复的问题 {len(rows)} 个（最久的在前）："]
    for ticket, name in rows[:limit]:
        question = ticket.question.strip().replace("\n", " ")
        lines.append(f"#{ticket.id} · 等了{_ago((now - ticket.created_at).total_seconds())} · "
                     f"{name or _who(ticket)}：{question[:60]}{'…' if len(question) > 60 else ''}")
    if len(rows) > limit:
        lines.append(f"……另有 {len(rows) - limit} 个，请到工作台查看。")
    lines.append("回复：/reply 编号 答复内容")
    return "\n".join(lines)


def stats_text(ctx: StaffContext) -> str:
    """Today's figures in office time (the dashboard's)."""
    from bot.words import staff_label
    from outreach.dashboard import dashboard

    with Session(ctx.db) as s:
        d = dashboard(s, now=ctx.clock.now(), tz=ctx.settings.tz)
    funnel = "，".join(f"{staff_label('stage', code)} {n}" for code, n in d.funnel + d.beside if n) or "无"
    sat = (f"{d.satisfaction.satisfied_share * 100:.0f}% 满意（{d.satisfaction.answers} 份回答）"
           if d.satisfaction.answers and d.satisfaction.satisfied_share is not None else "还没有回答")
    week = d.opt_outs_by_week[-1][1] if d.opt_outs_by_week else 0
    return "\n".join([
        f"{d.today.isoformat()} 今日概况",
        f"待回复的转人工问题：{d.open_handoffs}",
        f"今天到期的任务：{sum(n for _, n in d.due_tasks)}",
        f"今天要发的提醒和通知：{sum(n for _, n in d.due_messages)}",
        f"今天到期的资格认证：{d.certifications_due}",
        f"各环节申请：{funnel}",
        f"本周退订：{week}",
        f"满意度：{sat}"])


NOT_LINKED = ("这个 Telegram 账号没有绑定工作人员，不能使用工作人员命令。"
              "请在工作台“我的账号 → Telegram”取得绑定码，再发送 /link 绑定码。")


def handle(ctx: StaffContext, *, user_id: int, chat_id: int, chat_type: str, text: str) -> str | None:
    """The answer to a staff command, or None to stay silent (a group that is not the staff chat)."""
    staff_chat = str(getattr(ctx.settings, "staff_telegram_chat_id", "") or "")
    private = chat_type == "private"
    if not private and str(chat_id) != staff_chat:
        return None
    name = text.split()[0][1:].split("@")[0].lower() if text.startswith("/") else ""
    now = ctx.clock.now()
    if name == "link":
        if not private:
            return "请在和机器人的私聊里发送 /link 绑定码（绑定码不要发在群里）。"
        code = text.split(maxsplit=1)[1].strip() if len(text.split(maxsplit=1)) > 1 else ""
        if not _limiter.hit(_LINK_TRIES, "staff-link", str(user_id)):
            return "尝试次数太多，请15分钟后再试。"
        user = link_account(ctx.db, code, user_id, settings=ctx.settings, now=now) if code.isdigit() else None
        if user is None:
            return "绑定码不对或已过期。请在工作台重新取得绑定码。"
        return f"已绑定：{user.shown_name}。可以使用 /inbox、/reply、/stats。"
    staff = staff_for(ctx.db, user_id)
    if staff is None:
        with session_scope(ctx.db) as s:
            audit(s, "telegram", "staff.telegram_refused", "telegram_user", user_id, {"command": name}, now)
        return NOT_LINKED
    if name == "inbox":
        return inbox_text(ctx)
    if name == "stats":
        return stats_text(ctx)
    if name == "reply":
        if not staff.has_role("caseworker"):
            return "您的账号不能答复问题（需要经办人员角色）。"
        match = _REPLY.match(text.strip())
        if match is None:
            return "格式：/reply 编号 答复内容，例如 /reply 12 您好，可以办理。"
        from bot.tickets import TicketError, reply_to_ticket

        try:
            reply_to_ticket(ctx.db, int(match.group(1)), match.group(2).strip(), staff.username, now)
        except TicketError as exc:
            return f"未能答复：{exc}"
        return f"已答复 #{match.group(1)}，答复会通过对方使用的渠道发出。"
    return None


# --- the staff chat's alerts ---------------------------------------------------------------

def announce_handoffs(db: Engine, *, clock: Any, settings: Any, within: timedelta = timedelta(hours=24)) -> int:
    """Queue each open handoff of the last day to the staff chat, once (its own idempotency key)."""
    from models.applications import HandoffTicket
    from models.people import Beneficiary
    from outreach.outbox import enqueue, idempotency_key

    chat = str(getattr(settings, "staff_telegram_chat_id", "") or "")
    if not chat:
        return 0
    now = clock.now()
    made = 0
    with write_scope(db) as s:  # reads the open handoffs, then queues their alerts
        rows = s.execute(select(HandoffTicket, Beneficiary.name).outerjoin(  # type: ignore[call-overload]
            Beneficiary, col(Beneficiary.id) == col(HandoffTicket.beneficiary_id))
            .where(col(HandoffTicket.status) == "open", col(HandoffTicket.created_at) >= now - within)).all()
        for ticket, name in rows:
            question = ticket.question.strip()
            body = (f"新的转人工问题 #{ticket.id}（{name or _who(ticket)}）：\n{question[:300]}\n"
                    f"回复：/reply {ticket.id} 答复内容")
            done = enqueue(s, key=idempotency_key(HANDOFF_KIND, "staff", f"ticket-{ticket.id}"), kind=HANDOFF_KIND,
                           channel="telegram", address=chat, body=body, now=now, message_class="staff",
                           allow_fallback=False)
            made += int(done.created)
    return made


# --- aiogram ---------------------------------------------------------------------------------

async def on_staff_command(message: Message, bot: Bot, engine: Any) -> None:
    if message.from_user is None or not message.text:
        return
    ctx = StaffContext.of(engine)
    if ctx is None:
        return
    answer = await asyncio.to_thread(handle, ctx, user_id=message.from_user.id, chat_id=message.chat.id,
                                     chat_type=message.chat.type, text=message.text)
    if answer:
        await bot.send_message(message.chat.id, answer)


def router() -> Router:
    """The staff commands' Router (new each time: aiogram attaches a router to one parent only).
    Included before the beneficiaries' routers, so `/inbox` never reaches the conversation engine."""
    from aiogram import Router
    from aiogram.filters import Command

    staff = Router(name="staff")
    staff.message.register(on_staff_command, Command(*COMMANDS))
    return staff


__all__ = ["COMMANDS", "HANDOFF_KIND", "NOT_LINKED", "StaffContext", "announce_handoffs", "handle", "inbox_text",
           "issue_code", "link_account", "router", "staff_for", "stats_text", "unlink"]
