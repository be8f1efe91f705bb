"""The conversation engine: one way in for every channel.

`Engine.handle(Inbound) -> list[Reply]` loads the conversation of (channel, address) from
the database, applies the global words (menu, back, help, human, language, STOP/START),
steps the current flow or answers a policy question, and saves the state with an
optimistic `version` check, all in one transaction, retrying on a conflict. So a restart,
a second process, or moving from Telegram to SMS after linking loses nothing: once linked,
the state follows the person (a conversation at the menu adopts the newer unfinished flow of
another conversation of the same beneficiary and relationship).

Every inbound and outbound message is written to `MessageLog` with ID and phone numbers
masked; the one-time code is never written anywhere in plain text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Engine as DbEngine
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from sqlmodel import select as orm_select

from bot.channels.base import Choice, Inbound, Reply
from bot.flowrunner import Flow, FlowCtx, Out, Runner, State, clean_text, load_flows, word
from bot.identity import LINK_FLOW, Identity, Notifier, OutboxNotifier
from bot.language import detect_language
from bot.texts import CHANNEL_NAMES, localise, t
from models.actions import audit, opt_in, opt_out
from models.applications import HandoffTicket
from models.conversations import Conversation, MessageLog
from models.db import is_sqlite, sqlite_pragma
from models.people import Beneficiary, Contact
from models.phone import mask_phone
from models.privacy import redact

log = logging.getLogger("nuanxin.bot.engine")

FILE_CHANNELS = frozenset({"telegram", "console"})
MAX_RETRIES = 6
CHECKPOINT_EVERY = 200  # commits between background WAL checkpoints (SQLite)

# Global words, matched after NFKC, lower case and trimming (see flowrunner.word).
MENU_WORDS = frozenset(["菜单", "0", "主菜单", "menu", "main", "menu", "/menu", "/start", "首页", "home"]) | {"main menu"}
BACK_WORDS = frozenset(["返回", "上一步", "back", "/back", "上一个", "退回上一步"])
HELP_WORDS = frozenset(["帮助", "?", "help", "/help", "怎么用", "说明"])
HUMAN_WORDS = frozenset(["人工", "转人工", "找人", "人工服务", "客服", "真人", "human", "person", "agent", "staff", "operator", "/human"])
LANG_PICK_WORDS = frozenset(["语言", "語言", "language", "lang", "/language", "切换语言"])
LANG_WORDS = {
    "中文": "zh-Hans", "简体": "zh-Hans", "简体中文": "zh-Hans", "簡體": "zh-Hans", "普通话": "zh-Hans",
    "繁體": "zh-Hant", "繁体": "zh-Hant", "繁體中文": "zh-Hant", "繁体中文": "zh-Hant", "正體": "zh-Hant", "正体": "zh-Hant",
    "english": "en", "英文": "en", "英语": "en", "en": "en",
}
STOP_WORDS = frozenset(["stop", "退订", "td", "unsubscribe", "/stop", "stopall", "optout", "取消订阅", "退訂"])
# Twilio honours these on SMS at the carrier level; our records must agree.
SMS_STOP_WORDS = STOP_WORDS | frozenset(["end", "quit", "revoke", "cancel"])
START_WORDS = frozenset(["start", "订阅", "unstop", "恢复订阅", "訂閱"])
GREETINGS = frozenset(["你好", "您好", "你好啊", "您好啊", "在吗", "在不在", "喂", "hi", "hello", "hey", "早", "早上好", "下午好", "晚上好", "谢谢", "多谢", "thanks", "thank", "you", "good", "morning", "hello", "there", "hi", "there", "有人吗", "哈喽"]) | {
    "thank you", "good morning", "hello there", "hi there"}
CONTINUE_WORDS = frozenset(["继续", "接着办", "continue", "resume"])
LINK_WORDS = frozenset(["绑定", "绑定身份", "link", "认证身份"])

_WORDY = re.compile(r"[\w\u3400-\u9fff]")
_NO_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # PostgreSQL text cannot hold NUL


class _Conflict(Exception):
    """Another process saved this conversation first: start the message again."""


@dataclass
class Conv:
    """A conversation row as the engine works on it."""

    id: int
    channel: str
    address: str
    beneficiary_id: int | None
    acting_as: str | None
    language: str | None
    flow: str | None
    step: str | None
    data: dict[str, Any]
    history: list[Any]
    version: int
    updated_at: datetime
    contact_id: int | None = None
    state: State = field(init=False)

    def __post_init__(self) -> None:
        self.state = State(self.flow, self.step, self.data, self.history)

    @property
    def lang(self) -> str:
        return self.language or "zh-Hans"


_CONV = Conversation.__table__  # type: ignore[attr-defined]
_LOG = MessageLog.__table__  # type: ignore[attr-defined]
_CONTACT = Contact.__table__  # type: ignore[attr-defined]
_CONV_COLS = (_CONV.c.id, _CONV.c.channel, _CONV.c.address, _CONV.c.beneficiary_id, _CONV.c.acting_as,
              _CONV.c.language, _CONV.c.flow, _CONV.c.step, _CONV.c.data, _CONV.c.history, _CONV.c.version,
              _CONV.c.updated_at)


class _Tx:
    """One message's transaction: a raw cursor for the few hot statements, and an ORM session,
    created only when a step needs one (creating an application, opening a ticket...), on the
    same connection and transaction."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.cur = conn.connection.driver_connection.cursor()
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            # Joins the connection's transaction; the engine commits it (conditional_savepoint).
            self._session = Session(bind=self.conn, expire_on_commit=False)
        return self._session

    def __getattr__(self, name: str) -> Any:  # the rest behaves as the Session
        return getattr(self.session, name)

    def flush(self) -> None:
        if self._session is not None:
            self._session.flush()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
        self.cur.close()


@dataclass(frozen=True)
class _Sql:
    """The hot path's statements, in the driver's own dialect (SQLAlchemy's per-statement work
    costs more than SQLite itself here)."""

    select_conv: str
    update_conv: str
    insert_log: str
    select_contact_id: str
    select_handled: str
    adopt: str
    adopt_clear: str
    select_contact: str
    insert_contact: str
    select_relationship: str
    select_language: str
    insert_conv: str
    json_in_text: bool  # SQLite keeps JSON as text; PostgreSQL's driver hands back objects

    @classmethod
    def for_dialect(cls, name: str) -> _Sql:
        pg = name == "postgresql"
        j = "::jsonb" if pg else ""
        same = "IS NOT DISTINCT FROM" if pg else "IS"

        def q(sql: str) -> str:
            return sql.replace("?", "%s") if pg else sql

        return cls(
            select_conv=q("SELECT id, channel, address, beneficiary_id, acting_as, language, flow, step, data, "
                          "history, version, updated_at FROM conversation WHERE channel = ? AND address = ?"),
            update_conv=q(f"UPDATE conversation SET flow = ?, step = ?, data = ?{j}, history = ?{j}, version = ?, "
                          "beneficiary_id = ?, acting_as = ?, language = ?, updated_at = ? WHERE id = ? AND version = ?"),
            insert_log=q("INSERT INTO message_log (channel, address, direction, text, attachments, beneficiary_id, "
                         f"outbox_id, provider_message_id, created_at) VALUES (?, ?, ?, ?, ?{j}, ?, ?, ?, ?)"),
            select_contact_id=q("SELECT id FROM contact WHERE channel = ? AND address = ?"),
            select_handled=q("SELECT 1 FROM message_log WHERE channel = ? AND address = ? AND direction = 'in' "
                             "AND provider_message_id = ? LIMIT 1"),
            adopt=q(f"SELECT id, channel, flow, step, data, history, version FROM conversation WHERE beneficiary_id = ? "
                    f"AND acting_as {same} ? AND id <> ? AND flow IS NOT NULL AND flow <> 'link' AND updated_at > ? "
                    "ORDER BY updated_at DESC LIMIT 1"),
            adopt_clear=q(f"UPDATE conversation SET flow = NULL, step = NULL, history = ?{j}, data = ?{j}, "
                          "version = ? WHERE id = ? AND version = ?"),
            select_contact=q("SELECT id, beneficiary_id, verified, family_member_id FROM contact "
                             "WHERE channel = ? AND address = ?"),
            insert_contact=q("INSERT INTO contact (channel, address, verified, created_at) VALUES (?, ?, ?, ?)"),
            select_relationship=q("SELECT relationship FROM family_member WHERE id = ?"),
            select_language=q("SELECT language FROM beneficiary WHERE id = ?"),
            insert_conv=q("INSERT INTO conversation (channel, address, beneficiary_id, acting_as, language, data, "
                          f"history, version, updated_at, created_at) VALUES (?, ?, ?, ?, ?, ?{j}, ?{j}, ?, ?, ?)"),
            json_in_text=not pg,
        )


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))



class Engine:
    """Channel-neutral conversation engine. Sync `handle`; `ahandle` runs it in a thread."""

    def __init__(self, db_engine: DbEngine, settings: Any, clock: Any, qa: Any = None,
                 notifier: Notifier | None = None, flows: dict[str, Flow] | None = None) -> None:
        self.db = db_engine
        self.settings = settings
        self.clock = clock
        self._qa = qa
        self._qa_failed = False
        self.notifier: Notifier = notifier or OutboxNotifier()
        self.flows = flows if flows is not None else load_flows()
        self.runner = Runner(self.flows)
        self.identity = Identity(settings, self.notifier)
        self.menu_flows = sorted((f for f in self.flows.values() if f.menu), key=lambda f: f.menu or 0)
        self._sqlite = is_sqlite(db_engine)
        # SQLite: take the write lock at BEGIN (a deferred read that later writes can fail without
        # waiting), and queue this process's writers on a lock rather than in SQLite's busy loop.
        self._bind = db_engine.execution_options(sqlite_begin="BEGIN IMMEDIATE") if self._sqlite else db_engine
        self._lock = threading.Lock() if self._sqlite else None
        self._conn: Any = None
        self._commits = 0
        self._checkpointer: threading.Thread | None = None
        self._checkpoint_wanted: threading.Event | None = None
        self._checkpoint_stop: threading.Event | None = None
        self._id_key = settings.id_key  # read once: it may touch the disk
        # Statements built once: building and keying a statement costs more than running it on SQLite.
        self._select_conv = select(*_CONV_COLS).where(_CONV.c.channel == _bp("channel"),
                                                      _CONV.c.address == _bp("address"))
        self._select_contact_id = select(_CONTACT.c.id).where(_CONTACT.c.channel == _bp("channel"),
                                                              _CONTACT.c.address == _bp("address"))
        self._update_conv = update(_CONV).where(_CONV.c.id == _bp("cid"), _CONV.c.version == _bp("old_version")).values(
            flow=_bp("flow"), step=_bp("step"), data=_bp("data", type_=_CONV.c.data.type),
            history=_bp("history", type_=_CONV.c.history.type), version=_bp("new_version"),
            beneficiary_id=_bp("beneficiary_id"), acting_as=_bp("acting_as"), language=_bp("language"),
            updated_at=_bp("now", type_=_CONV.c.updated_at.type))
        self._insert_log = insert(_LOG)
        self._sql = _Sql.for_dialect(db_engine.dialect.name)

    # ------------------------------------------------------------------ public API
    def handle(self, inbound: Inbound) -> list[Reply]:
        """Answer one inbound message. Never raises: on any failure the user is told to resend."""
        for _attempt in range(MAX_RETRIES):
            try:
                return self._transaction(inbound, None)
            except (_Conflict, IntegrityError):
                continue
            except Exception:
                log.exception("engine failed for %s:%s", inbound.channel, _mask(inbound.channel, inbound.address))
                break
        lang = detect_language(inbound.text or "", inbound.language_hint)
        return [Reply(t("error", lang) + "\n" + t("footer_menu", lang), expects="text")]

    async def ahandle(self, inbound: Inbound) -> list[Reply]:
        return await asyncio.to_thread(self.handle, inbound)

    def start_flow(self, channel: str, address: str, flow_id: str, **args: Any) -> list[Reply]:
        """Put a conversation into a flow from outside (e.g. a survey after a service is completed).
        Returns the first prompt; the caller sends it (through the outbox)."""
        if flow_id not in self.flows:
            raise KeyError(f"unknown flow {flow_id!r}")
        inbound = Inbound(channel=channel, address=address, text="")
        for _attempt in range(MAX_RETRIES):
            try:
                return self._transaction(inbound, (flow_id, args))
            except (_Conflict, IntegrityError):
                continue
        raise RuntimeError("could not save the conversation")

    def menu_text(self, lang: str, linked: bool) -> str:
        return self._menu(lang, linked).text

    # ------------------------------------------------------------------ the transaction
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self._lock is None:
            yield
        else:
            with self._lock:
                yield

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        """SQLite: one long-lived connection used under the process lock (a pool checkout and reset per
        message cost more than the message). PostgreSQL: a pooled connection per message."""
        if not self._sqlite:
            with self._bind.connect() as conn:
                yield conn
            return
        assert self._lock is not None
        with self._lock:
            if self._conn is None or self._conn.closed or self._conn.invalidated:
                self._conn = self._bind.connect()
                # WAL checkpoints (copying the log into the database file, with an fsync) would stall
                # one message in ~160 by 15 ms; a background thread does them instead.
                self._conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
                self._conn.commit()
                self._start_checkpointer()
            yield self._conn
            self._commits += 1
            if self._commits % CHECKPOINT_EVERY == 0 and self._checkpoint_wanted is not None:
                self._checkpoint_wanted.set()

    def _start_checkpointer(self) -> None:
        if self._checkpointer is not None and self._checkpointer.is_alive():
            return
        wanted = self._checkpoint_wanted = threading.Event()
        stop = self._checkpoint_stop = threading.Event()
        db = self.db

        def run() -> None:
            while not stop.is_set():
                wanted.wait(timeout=5.0)
                wanted.clear()
                if stop.is_set():
                    return
                try:
                    sqlite_pragma(db, "PRAGMA wal_checkpoint(PASSIVE)")
                except Exception:  # a busy or closed database: the next round tries again
                    log.debug("WAL checkpoint skipped", exc_info=True)

        self._checkpointer = threading.Thread(target=run, name="engine-wal-checkpoint", daemon=True)
        self._checkpointer.start()

    def close(self) -> None:
        """Release the engine's own database connection (SQLite) and stop its checkpoint thread."""
        if self._checkpoint_stop is not None:
            self._checkpoint_stop.set()
            if self._checkpoint_wanted is not None:
                self._checkpoint_wanted.set()
            if self._checkpointer is not None:
                self._checkpointer.join(timeout=5)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _transaction(self, inbound: Inbound, start: tuple[str, dict[str, Any]] | None) -> list[Reply]:
        with self._connection() as conn:
            tx = conn.begin()
            s = _Tx(conn)
            try:
                now = self.clock.now()
                if start is None and self._already_handled(s, inbound):
                    # A provider delivering the same message again (Telegram after a slow
                    # webhook answer, a retried SMS webhook): answered once already.
                    s.close()
                    tx.rollback()
                    return []
                conv = self._load(s, inbound, now)
                logged_in = self._inbound_log_text(conv, inbound)
                if start is not None:
                    outs = self._start(s, conv, start[0], now, args=start[1])
                else:
                    outs = self._process(s, conv, inbound, now)
                replies = [self._reply(conv, o) for o in outs]
                s.flush()
                self._save(s, conv, now)
                rows = []
                if start is None:
                    rows.append(self._log_row(conv, "in", logged_in, inbound, now))
                rows += [self._log_row(conv, "out", redact(r.text), None, now) for r in replies]
                s.cur.executemany(self._sql.insert_log, rows)
                s.close()
                tx.commit()
                return replies
            except BaseException:
                s.close()
                tx.rollback()
                raise

    def _db_time(self, now: datetime) -> Any:
        naive = now.astimezone(UTC).replace(tzinfo=None)
        return naive.strftime("%Y-%m-%d %H:%M:%S.%f") if self._sqlite else naive

    def _json(self, value: Any) -> Any:
        return json.loads(value) if self._sql.json_in_text and isinstance(value, str) else value

    def _already_handled(self, s: _Tx, inbound: Inbound) -> bool:
        if not inbound.provider_message_id:
            return False
        s.cur.execute(self._sql.select_handled, (inbound.channel, inbound.address, inbound.provider_message_id))
        return s.cur.fetchone() is not None

    def _load(self, s: _Tx, inbound: Inbound, now: datetime) -> Conv:
        s.cur.execute(self._sql.select_conv, (inbound.channel, inbound.address))
        row = s.cur.fetchone()
        if row is None:
            self._create(s, inbound, now)
            s.flush()
            s.cur.execute(self._sql.select_conv, (inbound.channel, inbound.address))
            row = s.cur.fetchone()
        row = list(row)
        row[8], row[9] = self._json(row[8]) or {}, self._json(row[9]) or []
        return Conv(*row)

    def _create(self, s: _Tx, inbound: Inbound, now: datetime) -> None:
        """First message from an address: its contact (if new) and its conversation row."""
        sql, cur = self._sql, s.cur
        cur.execute(sql.select_contact, (inbound.channel, inbound.address))
        contact = cur.fetchone()
        if contact is None:
            cur.execute(sql.insert_contact, (inbound.channel, inbound.address, False, self._db_time(now)))
            contact = (None, None, False, None)
        _cid, beneficiary_id, verified, family_member_id = contact
        acting_as, language = None, None
        # A message from the phone on the roll is that person (or their recorded family member).
        if beneficiary_id is not None and (verified or inbound.channel == "sms"):
            if family_member_id:
                cur.execute(sql.select_relationship, (family_member_id,))
                fm = cur.fetchone()
                acting_as = fm[0] if fm else None
            cur.execute(sql.select_language, (beneficiary_id,))
            b = cur.fetchone()
            language = b[0] if b else None
        else:
            beneficiary_id = None
        if language is None:
            language = detect_language(inbound.text or "", inbound.language_hint)
        # Created "just before now", so a flow left on another channel in this same instant is newer.
        cur.execute(sql.insert_conv, (inbound.channel, inbound.address, beneficiary_id, acting_as, language,
                                      _dumps({}), _dumps([]), 0, self._db_time(now - timedelta(microseconds=1)),
                                      self._db_time(now)))

    def _save(self, s: _Tx, conv: Conv, now: datetime) -> None:
        st = conv.state
        s.cur.execute(self._sql.update_conv, (
            st.flow, st.step, _dumps(st.data), _dumps(st.history), conv.version + 1, conv.beneficiary_id,
            conv.acting_as, conv.language, self._db_time(now), conv.id, conv.version))
        if s.cur.rowcount != 1:
            raise _Conflict()

    def _inbound_log_text(self, conv: Conv, inbound: Inbound) -> str:
        if conv.flow == LINK_FLOW and conv.step == "code" and re.search(r"\d", inbound.text or ""):
            return "[code]"
        return redact(_NO_CTRL.sub("", (inbound.text or "")[:2000]))

    def _log_row(self, conv: Conv, direction: str, text: str, inbound: Inbound | None, now: datetime) -> tuple[Any, ...]:
        atts = [{"kind": a.kind, "mime_type": a.mime_type, "file_name": a.file_name, "size": a.size}
                for a in (inbound.attachments if inbound else ())]
        return (conv.channel, conv.address, direction, text, _dumps(atts), conv.beneficiary_id, None,
                (inbound.provider_message_id or None) if inbound else None, self._db_time(now))

    def _reply(self, conv: Conv, out: Out) -> Reply:
        lang = conv.lang
        footer = t("footer_flow" if out.in_flow and conv.state.flow else "footer_menu", lang)
        return Reply(text=f"{out.text}\n{footer}", choices=tuple(Choice(label, value) for value, label in out.choices),
                     columns=1, expects=out.expects if out.in_flow or out.choices else "text",
                     metadata={"choices_in_text": "1", "lang": lang, "flow": conv.state.flow or "",
                               "step": conv.state.step or ""})

    def _ctx(self, s: _Tx, conv: Conv, now: datetime) -> FlowCtx:
        return FlowCtx(session=cast(Session, s), settings=self.settings, now=now, lang=conv.lang, channel=conv.channel,
                       address=conv.address, beneficiary_id=conv.beneficiary_id, acting_as=conv.acting_as,
                       contact_fn=lambda: self._contact_id(s, conv), accepts_files=conv.channel in FILE_CHANNELS)

    def _contact_id(self, s: _Tx, conv: Conv) -> int | None:
        if conv.contact_id is None:
            s.flush()
            s.cur.execute(self._sql.select_contact_id, (conv.channel, conv.address))
            row = s.cur.fetchone()
            conv.contact_id = row[0] if row else None
        return conv.contact_id

    def _contact(self, s: _Tx, conv: Conv, now: datetime) -> Contact:
        c = s.exec(orm_select(Contact).where(Contact.channel == conv.channel, Contact.address == conv.address)).first()
        if c is None:
            c = Contact(channel=conv.channel, address=conv.address, beneficiary_id=conv.beneficiary_id, created_at=now)
            s.add(c)
            s.flush()
        return c

    # ------------------------------------------------------------------ the conversation
    def _process(self, s: _Tx, conv: Conv, inbound: Inbound, now: datetime) -> list[Out]:
        text = inbound.choice if inbound.choice is not None else (inbound.text or "")
        if len(text) > 20000:
            text = text[:20000]
        if conv.language is None:
            conv.language = detect_language(text, inbound.language_hint)
        prefix: list[Out] = []
        st = conv.state
        if conv.beneficiary_id is not None and st.flow is None:
            adopted = self._adopt(s, conv)
            if adopted:
                prefix.append(Out(t("continued_from", conv.lang, channel=localise(CHANNEL_NAMES.get(
                    adopted, {"zh-Hans": adopted, "en": adopted}), conv.lang))))
        w = word(text) if len(text) <= 40 else ""
        outs = self._global(s, conv, w, now)
        if outs is None:
            outs = self._step(s, conv, text, inbound, now)
        if prefix:
            outs = [Out(prefix[0].text + "\n" + outs[0].text, outs[0].choices, outs[0].expects, outs[0].in_flow)] + outs[1:]
        return outs

    def _global(self, s: _Tx, conv: Conv, w: str, now: datetime) -> list[Out] | None:
        st = conv.state
        lang = conv.lang
        if not w:
            return None
        stop_words = SMS_STOP_WORDS if conv.channel == "sms" else STOP_WORDS
        if w in stop_words:
            contact = self._contact(s, conv, now)
            done = opt_out(s.session, contact, reason=f"user sent {w.upper()}", actor="bot", now=now)
            return [Out(t("opted_out" if done else "opted_out_already", lang), in_flow=False)]
        if w in START_WORDS:
            contact = self._contact(s, conv, now)
            done = opt_in(s.session, contact, actor="bot", now=now)
            return [Out(t("opted_in" if done else "opted_in_already", lang), in_flow=False)] + (
                [] if st.flow else [self._menu(lang, conv.beneficiary_id is not None)])
        if w in MENU_WORDS:
            self._stash(conv)
            return [self._menu(lang, conv.beneficiary_id is not None)]
        if w in BACK_WORDS:
            if st.flow:
                ctx = self._ctx(s, conv, now)
                outs = (self.identity.back(st, ctx) if st.flow == LINK_FLOW
                        else self.runner.back(self.flows[st.flow], st, ctx))
                if outs is not None:
                    return outs
                st.clear_flow()
            return [self._menu(lang, conv.beneficiary_id is not None)]
        if w in HELP_WORDS:
            out = Out(t("help", lang), in_flow=False)
            if st.flow:
                cur = self._current_prompt(s, conv, now)
                out = Out(t("help", lang) + "\n" + t("help_in_flow", lang, title=self._title(st.flow, lang)) + "\n"
                          + cur.text, cur.choices, cur.expects)
            return [out]
        if w in HUMAN_WORDS:
            return [self._handoff(s, conv, "asked_for_person", "", now)]
        if w in LANG_PICK_WORDS:
            return [Out(t("language_pick", lang), (("中文", "中文"), ("繁體", "繁體"), ("English", "English")),
                        "choice", in_flow=bool(st.flow))]
        if w in LANG_WORDS:
            new = LANG_WORDS[w]
            conv.language = new
            st.data["lang_set"] = True
            if conv.beneficiary_id is not None:
                b = s.get(Beneficiary, conv.beneficiary_id)
                if b is not None and b.language != new:
                    b.language = new
                    s.add(b)
            head = t("language_set_hant" if new == "zh-Hant" else "language_set", new)
            if new == "zh-Hant":
                head = localise({"zh-Hans": head, "en": head}, "zh-Hant")
            nxt = self._current_prompt(s, conv, now) if st.flow else self._menu(new, conv.beneficiary_id is not None)
            return [Out(head + "\n" + nxt.text, nxt.choices, nxt.expects, nxt.in_flow)]
        return None

    def _step(self, s: _Tx, conv: Conv, text: str, inbound: Inbound, now: datetime) -> list[Out]:
        st = conv.state
        if st.flow is None:
            return self._at_menu(s, conv, text, inbound, now)
        ctx = self._ctx(s, conv, now)
        if st.flow == LINK_FLOW:
            if inbound.attachments and not clean_text(text):
                cur = self.identity.prompt(st, ctx)
                return [Out(t("files_not_here", conv.lang) + "\n" + cur.text, cur.choices, cur.expects)]
            outs, linked = self.identity.answer(st, text, ctx)
            if linked is None:
                return outs
            conv.beneficiary_id = linked.beneficiary_id
            conv.acting_as = linked.relationship
            conv.contact_id = None
            if not st.data.get("lang_set"):
                conv.language = linked.language
            after = st.data.pop("after_link", None)
            if after and after in self.flows:
                return _join(outs, self._start(s, conv, after, now))
            return _join(outs, [self._menu(conv.lang, True)])
        flow = self.flows.get(st.flow)
        if flow is None or (st.step is not None and st.step not in flow.index):
            # The flow file changed under a running conversation: start it again rather than fail.
            st.clear_flow()
            return [self._menu(conv.lang, conv.beneficiary_id is not None)]
        return self.runner.answer(flow, st, text, inbound.attachments, ctx)

    def _at_menu(self, s: _Tx, conv: Conv, text: str, inbound: Inbound, now: datetime) -> list[Out]:
        lang = conv.lang
        linked = conv.beneficiary_id is not None
        w = word(text) if len(text) <= 40 else ""
        if inbound.attachments and not clean_text(text):
            return [Out(t("photo_at_menu", lang) + "\n" + self._menu(lang, linked).text, in_flow=False)]
        if w:
            for f in self.menu_flows:
                if w == str(f.menu) or w in (word(x) for x in f.title.values()):
                    return self._start(s, conv, f.id, now)
            if (w == "9" and not linked) or w in LINK_WORDS:
                return self._start_link(s, conv, now, None)
            if w in GREETINGS:
                return [self._menu(lang, linked)]
            if w in CONTINUE_WORDS:
                saved = conv.state.data.get("saved") or {}
                if saved:
                    return self._start(s, conv, list(saved)[-1], now)
        if len(_WORDY.findall(text)) < 2:
            return [Out(t("not_understood_menu", lang) + "\n" + self._menu(lang, linked).text,
                        self._menu(lang, linked).choices, "choice", in_flow=False)]
        return [self._question(s, conv, clean_text(text)[:500], now)]

    def _start(self, s: _Tx, conv: Conv, flow_id: str, now: datetime, args: dict[str, Any] | None = None) -> list[Out]:
        flow = self.flows[flow_id]
        st = conv.state
        if flow.requires_link and conv.beneficiary_id is None:
            return self._start_link(s, conv, now, flow_id)
        ctx = self._ctx(s, conv, now)
        saved = (st.data.get("saved") or {}).pop(flow_id, None)
        if saved and not args:
            st.clear_flow()
            st.flow, st.step, st.history = flow_id, saved["step"], list(saved["history"])
            st.data.update(saved["data"])
            if st.step in flow.index:
                cur = self.runner.prompt(flow, st, ctx)
                return [Out(t("resumed", conv.lang) + "\n" + cur.text, cur.choices, cur.expects)]
        if args:
            st.data["start_args"] = args
        outs = self.runner.enter(flow, st, ctx)
        st.data.pop("start_args", None) if st.flow is None else None
        return outs

    def _start_link(self, s: _Tx, conv: Conv, now: datetime, after: str | None) -> list[Out]:
        st = conv.state
        self._stash(conv)
        outs = self.identity.enter(st, self._ctx(s, conv, now))
        if after:
            st.data["after_link"] = after
            outs = [Out(t("needs_link", conv.lang) + "\n" + outs[0].text, outs[0].choices, outs[0].expects)]
        return outs

    def _stash(self, conv: Conv) -> None:
        """Leaving a flow for the menu keeps what was entered: picking the flow again resumes it."""
        st = conv.state
        if st.flow and st.flow != LINK_FLOW and st.history:
            saved = st.data.setdefault("saved", {})
            saved.pop(st.flow, None)
            saved[st.flow] = {"step": st.step, "history": list(st.history),
                              "data": {k: st.data[k] for k in ("v", "doc_i", "tmp") if k in st.data}}
        st.clear_flow()
        st.data.pop("after_link", None)

    def _current_prompt(self, s: _Tx, conv: Conv, now: datetime) -> Out:
        st = conv.state
        ctx = self._ctx(s, conv, now)
        if st.flow == LINK_FLOW:
            return self.identity.prompt(st, ctx)
        if st.flow in self.flows:
            return self.runner.prompt(self.flows[st.flow], st, ctx)
        return self._menu(conv.lang, conv.beneficiary_id is not None)

    def _title(self, flow_id: str, lang: str) -> str:
        if flow_id == LINK_FLOW:
            return localise({"zh-Hans": "绑定身份", "en": "linking your record"}, lang)
        return localise(self.flows[flow_id].title, lang)

    def _menu(self, lang: str, linked: bool) -> Out:
        lines = [t("menu_title", lang)]
        choices = []
        for f in self.menu_flows:
            label = localise(f.title, lang)
            lines.append(f"{f.menu}. {label}")
            choices.append((str(f.menu), label))
        if not linked:
            label = t("menu_link", lang)
            lines.append(f"9. {label}")
            choices.append(("9", label))
        lines.append(t("menu_question", lang))
        return Out("\n".join(lines), tuple(choices), "choice", in_flow=False)

    # ------------------------------------------------------------------ continuity
    def _adopt(self, s: _Tx, conv: Conv) -> str | None:
        """Take over the newer unfinished flow of the same person on another channel."""
        s.cur.execute(self._sql.adopt, (conv.beneficiary_id, conv.acting_as, conv.id, conv.updated_at))
        other = s.cur.fetchone()
        if other is None:
            return None
        o_id, o_channel, o_flow, o_step, o_data, o_history, o_version = other
        o_data, o_history = self._json(o_data) or {}, self._json(o_history) or []
        keep = {k: v for k, v in o_data.items() if k not in ("saved", "lang_set", "lookups", "after_link")}
        st = conv.state
        st.flow, st.step, st.history = o_flow, o_step, list(o_history)
        st.data.update(keep)
        rest = {k: v for k, v in o_data.items() if k in ("saved", "lang_set")}
        s.cur.execute(self._sql.adopt_clear, (_dumps([]), _dumps(rest), o_version + 1, o_id, o_version))
        if s.cur.rowcount != 1:
            raise _Conflict()
        return str(o_channel)

    # ------------------------------------------------------------------ people
    def _transcript(self, s: _Tx, conv: Conv) -> list[dict[str, str]]:
        rows = s.execute(select(_LOG.c.direction, _LOG.c.text, _LOG.c.created_at).where(
            _LOG.c.channel == conv.channel, _LOG.c.address == conv.address)
            .order_by(_LOG.c.created_at.desc(), _LOG.c.id.desc()).limit(20)).all()
        return [{"dir": r.direction, "text": r.text, "at": r.created_at.isoformat() if r.created_at else ""}
                for r in reversed(rows)]

    def _open_ticket(self, s: _Tx, conv: Conv, reason: str, question: str, now: datetime) -> HandoffTicket:
        st = conv.state
        transcript = self._transcript(s, conv)
        if question:
            transcript.append({"dir": "in", "text": redact(question), "at": now.isoformat()})
        if st.flow:
            transcript.append({"dir": "note", "text": f"was in flow {st.flow} at step {st.step}",
                               "at": now.isoformat()})
        ticket = HandoffTicket(channel=conv.channel, address=conv.address, beneficiary_id=conv.beneficiary_id,
                               language=conv.lang, question=redact(question) or "(asked for a person)",
                               reason=reason[:32], transcript=transcript, created_at=now)
        s.add(ticket)
        s.flush()
        audit(s.session, "bot", "ticket.open", "handoff_ticket", ticket.id, {"reason": reason, "channel": conv.channel}, now)
        return ticket

    def _handoff(self, s: _Tx, conv: Conv, reason: str, question: str, now: datetime) -> Out:
        lang = conv.lang
        existing = s.exec(orm_select(HandoffTicket).where(
            HandoffTicket.channel == conv.channel, HandoffTicket.address == conv.address,
            HandoffTicket.status == "open", HandoffTicket.reason == "asked_for_person")).first()
        if existing is not None:
            text = t("handoff_already", lang, ticket=existing.id)
        else:
            ticket = self._open_ticket(s, conv, reason, question, now)
            text = t("handoff_done", lang, ticket=ticket.id)
        if conv.state.flow:
            text += "\n" + t("handoff_saved", lang)
        return Out(text, in_flow=bool(conv.state.flow))

    def _get_qa(self) -> Any:
        if self._qa is None and not self._qa_failed:
            try:
                from bot.qa import get_qa
                self._qa = get_qa()
            except Exception:  # the knowledge base is missing or broken: hand questions to staff
                log.exception("policy Q&A unavailable; questions go to staff")
                self._qa_failed = True
        return self._qa

    def _question(self, s: _Tx, conv: Conv, question: str, now: datetime) -> Out:
        lang = conv.lang
        qa = self._get_qa()
        answer = None
        if qa is not None:
            try:
                answer = qa.answer(question, lang)
            except Exception:
                log.exception("policy Q&A failed; handing off")
        if answer is not None and not answer.handoff:
            body = answer.sms if conv.channel == "sms" and answer.sms else answer.answer
            return Out(body, in_flow=False)
        reason = answer.reason if answer is not None else "out_of_scope"
        ticket = self._open_ticket(s, conv, reason, question, now)
        if answer is not None and answer.answer:
            text = answer.answer + localise({"zh-Hans": f"（编号{ticket.id}）", "en": f" (ticket {ticket.id})"}, lang)
        else:
            text = t("qa_passed_on", lang, ticket=ticket.id)
        return Out(text, in_flow=False)


def _join(first: list[Out], second: list[Out]) -> list[Out]:
    """Two parts of one answer become one message: elderly users read one message better than two."""
    if not first:
        return second
    if not second:
        return first
    a, b = first[-1], second[0]
    return first[:-1] + [Out(a.text + "\n" + b.text, b.choices, b.expects, b.in_flow)] + second[1:]


def _bp(name: str, type_: Any = None) -> Any:
    from sqlalchemy import bindparam
    return bindparam(name, type_=type_)


def _mask(channel: str, address: str) -> str:
    return mask_phone(address) if channel == "sms" else address
