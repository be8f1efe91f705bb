"""The conversation engine: one way in for every channel.

`Engine.handle(Inbound) -> list[Reply]` loads the conversation of (channel, address) from
the database, applies the global words (menu, back, help, human, language, STOP/START),
steps the current flow or answers a policy question, and saves the typed state
(`bot.state.ConversationState`) with an optimistic `version` check, all in one transaction,
retrying on a conflict. So a restart, a second process, or moving from Telegram to SMS after
linking loses nothing: once linked, the state follows the person (a conversation at the menu
adopts the newer unfinished flow of another conversation of the same beneficiary and
relationship). The rows are read and written by `bot.conversations`.

Every inbound and outbound message is written to `MessageLog` with ID and phone numbers
masked (its text column masks whatever is written to it); the one-time code is never written
anywhere in plain text.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy import Engine as DbEngine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from sqlmodel import select as orm_select

from bot import answers
from bot.channels.base import Choice, Inbound, Reply
from bot.conversations import LOG, Conflict, Conv, ConversationStore, log_row
from bot.flowregistry import FlowCtx, Registry, builtin
from bot.flowrunner import DOCUMENT_KINDS, Flow, Out, Runner, clean_text, load_flows, typing_lines, word
from bot.identity import LINK_FLOW, Identity, Notifier, OutboxNotifier, language_after_link
from bot.language import (
    cantonese_as_mandarin,
    clearly_chinese,
    clearly_english,
    clearly_traditional,
    detect_language,
)
from bot.qa_rules import rule_handoff
from bot.state import AskedBefore, HeldText, ServiceOffer
from bot.texts import CHANNEL_NAMES, localise, reply_by, t
from bot.tickets import Handoff, entry, hand_off
from models.actions import opt_in, opt_out
from models.db import is_sqlite, writer
from models.people import Beneficiary, Contact
from models.phone import mask_phone
from models.privacy import redact

log = logging.getLogger("nuanxin.bot.engine")

FILE_CHANNELS = frozenset({"telegram", "console"})
MAX_RETRIES = 6
# Policy answers found for the message being handled, outside its transaction (see _AnswerFirst).
_ANSWERS: contextvars.ContextVar[dict[tuple[str, str, str], Any] | None] = contextvars.ContextVar("answers",
                                                                                                  default=None)
# A question at the menu is read as a follow-up of the one before it for this long (an older
# person may take a while to type the next one; after that, it is a new conversation).
FOLLOW_UP_WINDOW = timedelta(minutes=30)


class _AnswerFirst(Exception):
    """The message needs a policy answer. Searching the knowledge can take a while: it is not
    done inside the write transaction (which would hold SQLite's write lock meanwhile); the
    transaction is rolled back, the answer found with none open, and the message handled again."""

    def __init__(self, question: str, lang: str, after: str) -> None:
        super().__init__(question)
        self.key = (question, lang, after)


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
CONTINUE_WORDS = frozenset(["继续", "接着办", "continue", "resume"])
LINK_WORDS = frozenset(["绑定", "绑定身份", "link", "认证身份"])

_WORDY = re.compile(r"[\w\u3400-\u9fff]")
# A sentence this long at a choice step may be a question rather than a mis-typed choice.
_QUESTION_MIN_CHARS = 8
# Where a date or a sum is asked, a shorter sentence with a question word is already a question ("钱什么时候能到").
_VALUE_QUESTION_MIN_CHARS = 5
# A sentence held at a free-text step (see _answer_held), whole (the step checks its length); shown shortened.
_HELD_MAX_CHARS = 2000
_HELD_SHOWN_CHARS = 60
_NO_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # PostgreSQL text cannot hold NUL


def _language_followed(conv: Conv, text: str) -> str | None:
    """The language a conversation turns to on what the person writes, unless they picked one (the language
    module decides what is clear): Simplified turns Traditional on a message clearly written in Traditional,
    English turns Chinese on one clearly in Chinese, Chinese turns English on a sentence clearly in English.
    Never Traditional to Simplified: Cantonese speakers write Simplified with Traditional readers' words
    (我系帮佢问嘅), and a Traditional reader typing a Simplified word stays a Traditional reader. A Chinese
    reader's "ok", "ok thank you" or an ID's last characters are not English."""
    if conv.state.language_chosen:
        return None
    if conv.lang == "zh-Hans" and clearly_traditional(text):
        return "zh-Hant"
    if conv.lang == "en" and clearly_chinese(text):
        return detect_language(text)
    if conv.lang != "en" and clearly_english(text):
        return "en"
    return None


_PERSON = Beneficiary.__table__  # type: ignore[attr-defined]
_PERSON_STATUS = select(_PERSON.c.status).where(_PERSON.c.id == bindparam("beneficiary_id"))


class Tx:
    """One message's transaction: the connection for the engine's own statements, and an ORM session
    on the same connection and transaction, created only when a step needs one (creating an
    application, opening a ticket...)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            # Joins the connection's transaction; the engine commits it.
            self._session = Session(bind=self.conn, expire_on_commit=False)
        return self._session

    def flush(self) -> None:
        if self._session is not None:
            self._session.flush()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


@dataclass(frozen=True)
class _Start:
    flow: str
    args: dict[str, Any]


class Engine:
    """Channel-neutral conversation engine. Sync `handle`; `ahandle` runs it in a thread."""

    def __init__(self, db_engine: DbEngine, settings: Any, clock: Any, qa: Any = None,
                 notifier: Notifier | None = None, flows: dict[str, Flow] | None = None,
                 registry: Registry | None = None) -> None:
        self.db = db_engine
        self.settings = settings
        self.clock = clock
        self._qa = qa
        self._qa_failed = False
        self.notifier: Notifier = notifier or OutboxNotifier()
        self.registry = registry or builtin()
        self.flows = flows if flows is not None else load_flows(registry=self.registry)
        self.runner = Runner(self.flows, self.registry)
        self.identity = Identity(settings, self.notifier)
        self.menu_flows = sorted((f for f in self.flows.values() if f.menu), key=lambda f: f.menu or 0)
        self.recognisable = sorted((f for f in self.flows.values() if f.recognise), key=lambda f: f.recognise_rank)
        self.store = ConversationStore()
        self._menus: dict[tuple[str, bool], tuple[str, tuple[tuple[str, str], ...]]] = {}
        # SQLite has one writer at a time: this process's writers queue on a lock rather than in
        # SQLite's busy loop, which sleeps in steps and would make the slowest replies slow.
        self._lock = threading.Lock() if is_sqlite(db_engine) else None
        self._conn: Connection | None = None  # SQLite: one connection, used under the lock

    # ------------------------------------------------------------------ public API
    def handle(self, inbound: Inbound) -> list[Reply]:
        """Answer one inbound message. Never raises: on any failure the user is told to resend."""
        answers: dict[tuple[str, str, str], Any] = {}
        token = _ANSWERS.set(answers)
        try:
            return self._handle(inbound, answers)
        finally:
            _ANSWERS.reset(token)

    def _handle(self, inbound: Inbound, answers: dict[tuple[str, str, str], Any]) -> list[Reply]:
        attempt = 0
        while attempt < MAX_RETRIES:
            try:
                return self._transaction(inbound, None)
            except _AnswerFirst as need:
                if need.key in answers:  # found already: cannot be asked for again
                    break
                answers[need.key] = self._answer(*need.key)
            except (Conflict, IntegrityError):
                attempt += 1
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
                return self._transaction(inbound, _Start(flow_id, args))
            except (Conflict, IntegrityError):
                continue
        raise RuntimeError("could not save the conversation")

    def menu_text(self, lang: str, linked: bool) -> str:
        return self._menu(lang, linked).text

    def close(self) -> None:
        """Release the engine's own SQLite connection."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    # ------------------------------------------------------------------ the transaction
    @contextlib.contextmanager
    def _connection(self) -> Iterator[Connection]:
        """PostgreSQL: a pooled connection per message. SQLite: writers take turns anyway, so one
        connection is kept and used under this process's lock (checking one out of the pool and
        resetting it per message would cost more than the message)."""
        if self._lock is None:
            with writer(self.db).connect() as conn:
                yield conn
            return
        with self._lock:
            if self._conn is None or self._conn.closed or self._conn.invalidated:
                self._conn = writer(self.db).connect()  # BEGIN IMMEDIATE: a message reads, then writes
            yield self._conn

    def _transaction(self, inbound: Inbound, start: _Start | None) -> list[Reply]:
        with self._connection() as conn, conn.begin():
            s = Tx(conn)
            try:
                now = self.clock.now()
                conv = self._load(s, inbound, now)
                if conv is None:
                    # A provider delivering the same message again (Telegram after a slow
                    # webhook answer, a retried SMS webhook): answered once already.
                    return []
                logged_in = self._inbound_log_text(conv, inbound)
                if start is not None:
                    outs = self._start(s, conv, start.flow, now, args=start.args)
                else:
                    outs = self._process(s, conv, inbound, now)
                # The keyboard of what is asked now carries this prompt's token (bot/state.py).
                token = conv.state.mark_prompt(self._prompt_key(conv))
                replies = [self._reply(conv, o, token) for o in outs]
                s.flush()
                self.store.save(conn, conv, now)
                rows = []
                if start is None:
                    rows.append(log_row(conv, "in", logged_in, now, attachments=_attachment_log(inbound),
                                        provider_message_id=inbound.provider_message_id))
                rows += [log_row(conv, "out", r.text, now) for r in replies]
                self.store.log(conn, rows)
                return replies
            finally:
                s.close()

    def _load(self, s: Tx, inbound: Inbound, now: datetime) -> Conv | None:
        """The conversation of this address (created on its first message); None for a message seen before."""
        conv, seen = self.store.load_unless_seen(s.conn, inbound.channel, inbound.address,
                                                 inbound.provider_message_id)
        if seen:
            return None
        if conv is None:
            conv = self.store.create(s.conn, inbound.channel, inbound.address, now,
                                     detect_language(inbound.text or "", inbound.language_hint))
        return conv

    def _inbound_log_text(self, conv: Conv, inbound: Inbound) -> str:
        if conv.state.flow == LINK_FLOW and conv.state.step == "code" and re.search(r"\d", inbound.text or ""):
            return "[code]"
        return _NO_CTRL.sub("", (inbound.text or "")[:2000])  # masked by the log's column type

    def _reply(self, conv: Conv, out: Out, token: str) -> Reply:
        lang = conv.lang
        in_flow = out.in_flow and bool(conv.state.flow)
        footer, navigation = _navigation(lang, in_flow)
        return Reply(text=f"{out.text}\n{footer}", choices=tuple(Choice(label, value) for value, label in out.choices),
                     columns=1, expects=out.expects if out.in_flow or out.choices else "text",
                     metadata={"choices_in_text": "1", "lang": lang, "flow": conv.state.flow or "",
                               "step": conv.state.step or "", "prompt": token, "footer": footer,
                               # SMS shows the footer on the first reply and after a misunderstanding only
                               "repair": "1" if conv.version == 0 or conv.state.misses else "0"},
                     navigation=navigation, button_text=_button_text(out, lang))

    def _prompt_key(self, conv: Conv) -> str:
        """Names the question now on screen: a new question gets a new token, the same one keeps it."""
        st = conv.state
        if st.pending is not None:
            return f"{st.flow}:{st.step}:confirm"
        if st.offer is not None:
            return f"offer:{st.offer.flow}"
        if st.held is not None:
            return f"{st.flow}:{st.step}:held"
        if st.flow:
            return f"{st.flow}:{st.step}:{st.doc_index}"
        return "menu"

    def _ctx(self, s: Tx, conv: Conv, now: datetime) -> FlowCtx:
        return FlowCtx(session_fn=lambda: s.session, settings=self.settings, now=now, lang=conv.lang, channel=conv.channel,
                       address=conv.address, beneficiary_id=conv.beneficiary_id, acting_as=conv.acting_as,
                       contact_fn=lambda: self._contact_id(s, conv), accepts_files=conv.channel in FILE_CHANNELS,
                       conn=s.conn)

    def _contact_id(self, s: Tx, conv: Conv) -> int | None:
        if conv.contact_id is None:
            s.flush()
            conv.contact_id = self.store.contact_id(s.conn, conv.channel, conv.address)
        return conv.contact_id

    def _contact(self, s: Tx, conv: Conv, now: datetime) -> Contact:
        session = s.session
        c = session.exec(orm_select(Contact).where(Contact.channel == conv.channel,
                                                   Contact.address == conv.address)).first()
        if c is None:
            c = Contact(channel=conv.channel, address=conv.address, beneficiary_id=conv.beneficiary_id, created_at=now)
            session.add(c)
            session.flush()
        return c

    # ------------------------------------------------------------------ the conversation
    def _process(self, s: Tx, conv: Conv, inbound: Inbound, now: datetime) -> list[Out]:
        text = inbound.choice if inbound.choice is not None else (inbound.text or "")
        if len(text) > 20000:
            text = text[:20000]
        if conv.language is None:
            conv.language = detect_language(text, inbound.language_hint)
        elif inbound.choice is None and (followed := _language_followed(conv, text)) is not None:
            # The conversation follows the language the person writes in; the language on their record
            # (notices, letters) changes only when they pick one (LANG_WORDS).
            conv.language = followed
        prefix: list[Out] = []
        st = conv.state
        if (inbound.prompt_token is not None and inbound.prompt_token != st.prompt_token
                and word(text) not in HUMAN_WORDS):
            # A button of an older message (a double tap, a slow phone): never an answer to what is asked now.
            cur = self._current_prompt(s, conv, now)
            return [Out(t("stale_button", conv.lang) + "\n" + cur.text, cur.choices, cur.expects, cur.in_flow)]
        if inbound.edited or any(a.kind not in DOCUMENT_KINDS for a in inbound.attachments):
            return [self._media(s, conv, inbound, now)]
        if conv.beneficiary_id is not None and st.flow is None:
            adopted = self.store.adopt(s.conn, conv)
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

    def _global(self, s: Tx, conv: Conv, w: str, now: datetime) -> list[Out] | None:
        st = conv.state
        lang = conv.lang
        if not w:
            return None
        stop_words = SMS_STOP_WORDS if conv.channel == "sms" else STOP_WORDS
        if w in stop_words or answers.stop_request(w):
            contact = self._contact(s, conv, now)
            said = f"user sent {w.upper()}" if w in stop_words else "user asked in words for no more messages"
            done = opt_out(s.session, contact, reason=said, actor="bot", now=now)
            text = t("opted_out" if done else "opted_out_already", lang)
            if st.flow:  # "stop" in the middle of a form may mean the form: say it is kept, and how to leave it
                text += "\n" + t("opted_out_in_flow", lang, title=self._title(st.flow, lang))
            return [Out(text, in_flow=False)]
        if w in START_WORDS:
            contact = self._contact(s, conv, now)
            done = opt_in(s.session, contact, actor="bot", now=now)
            return [Out(t("opted_in" if done else "opted_in_already", lang), in_flow=False)] + (
                [] if st.flow else [self._menu(lang, conv.beneficiary_id is not None)])
        if w in MENU_WORDS:
            st.park()
            return [self._menu(lang, conv.beneficiary_id is not None)]
        if w in BACK_WORDS:
            if st.flow and st.held is not None:  # as with an answer waiting to be confirmed: the step again
                st.held = None
                return [self._current_prompt(s, conv, now)]
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
            st.language_chosen = True
            if conv.beneficiary_id is not None:
                b = s.session.get(Beneficiary, conv.beneficiary_id)
                if b is not None and b.language != new:
                    b.language = new
                    s.session.add(b)
            head = t("language_set_hant" if new == "zh-Hant" else "language_set", new)
            nxt = self._current_prompt(s, conv, now) if st.flow else self._menu(new, conv.beneficiary_id is not None)
            return [Out(head + "\n" + nxt.text, nxt.choices, nxt.expects, nxt.in_flow)]
        return None

    def _step(self, s: Tx, conv: Conv, text: str, inbound: Inbound, now: datetime) -> list[Out]:
        st = conv.state
        if st.flow is None:
            return self._at_menu(s, conv, text, inbound, now)
        if st.offer is not None:
            switched = self._answer_offer(s, conv, text, now)
            if switched is not None:
                return switched
        if st.held is not None:
            took = self._answer_held(s, conv, text, now)
            if took is not None:
                return took
        asked = self._question_in_flow(s, conv, text, inbound, now)
        if asked is not None:
            return asked
        ctx = self._ctx(s, conv, now)
        if st.flow == LINK_FLOW:
            if inbound.attachments and not clean_text(text):
                cur = self.identity.prompt(st, ctx)
                return [Out(t("files_not_here", conv.lang) + "\n" + cur.text, cur.choices, cur.expects)]
            if isinstance(answers.interruption(text), answers.Cancel):  # as at every step of a flow
                cur = self.identity.prompt(st, ctx)
                return [Out(t("cancel_word", conv.lang) + "\n" + cur.text, cur.choices, cur.expects)]
            outs, linked = self.identity.answer(st, text, ctx)
            if linked is None:
                return outs
            conv.beneficiary_id = linked.beneficiary_id
            conv.acting_as = linked.relationship
            conv.contact_id = None
            conv.language = language_after_link(conv.lang, linked.language, chosen=st.language_chosen)
            after, st.after_link = st.after_link, None
            if after and after in self.flows:
                return _join(outs, self._start(s, conv, after, now))
            return _join(outs, [self._menu(conv.lang, True)])
        flow = self.flows.get(st.flow)
        if flow is None or (st.step is not None and not flow.has_step(st.step)):
            # The flow file changed under a running conversation: start it again rather than fail.
            st.clear_flow()
            return [self._menu(conv.lang, conv.beneficiary_id is not None)]
        return self.runner.answer(flow, st, text, inbound.attachments, ctx)

    def _question_in_flow(self, s: Tx, conv: Conv, text: str, inbound: Inbound,
                          now: datetime) -> list[Out] | None:
        """A sentence typed where a choice is expected, that is none of the choices: a policy question
        a confident article answers is answered, then the choice asked again; a request for another
        service is offered as a switch (what was entered is kept). Anything else goes on to the step,
        which explains what it needs as before."""
        wordy = len(_WORDY.findall(text))
        if inbound.attachments or wordy < _VALUE_QUESTION_MIN_CHARS:
            return None
        st = conv.state
        flow = self.flows.get(st.flow or "")
        if (flow is not None and st.offer is None and flow.has_step(st.step)
                and not self.runner.expects_choice(flow, st)):
            if self.runner.reads_a_value(flow, st) and answers.asks_something(text):
                # a question where a date or sum is asked: answered, or passed to staff, never read as the value
                return (self._answered_at_step(s, conv, text, now)
                        or self._passed_on_at_step(s, conv, text, now))
            if rule_handoff(text, conv.lang) == "asked_for_person":  # "可唔可以打電話俾我" is no description
                passed = self._handoff(s, conv, "asked_for_person", text, now)
                return self._then_the_step(s, conv, passed.text, now, None)
            if (self.runner.reads_free_text(flow, st) and answers.asks_something(text)
                    and answers.interruption(text, free_text=True) is None):
                # 我个仔喺外国可唔可以佢帮我搞 where the situation is asked: a question, or the situation
                # told as one? The person says; it is neither filed as the answer nor lost meanwhile.
                st.held = HeldText(step=st.step or "", text=_NO_CTRL.sub("", text).strip()[:_HELD_MAX_CHARS])
                return [self._held_prompt(conv)]
            return None  # a text, a name, a phone...: the step reads the sentence (no prompt built for nothing)
        if wordy < _QUESTION_MIN_CHARS:
            return None
        cur = self._current_prompt(s, conv, now)
        if cur.expects != "choice":
            return None
        typed = word(text)
        if any(word(label) in typed or typed in word(label) for _key, label in cur.choices):
            return None
        answered = self._answered_at_step(s, conv, text, now, cur)
        if answered is not None:
            return answered
        service = self._service_for(text)
        if service is None or service.id in (conv.state.flow, conv.state.after_link):
            return self._passed_on_at_step(s, conv, text, now, cur)
        if service.report is not None:  # their own records: shown at once, the flow kept for later
            if conv.beneficiary_id is None:  # nothing to show before the person is linked
                if conv.state.flow != LINK_FLOW:
                    return None
                return [Out(t("needs_link", conv.lang) + "\n" + cur.text, cur.choices, cur.expects)]
            conv.state.park()
            return self._start(s, conv, service.id, now)
        conv.state.offer = ServiceOffer(flow=service.id, question=redact(text)[:200])
        conv.state.asked_before = AskedBefore(text=redact(text)[:200], at=now)
        return [self._offer_prompt(conv)]

    def _held_prompt(self, conv: Conv) -> Out:
        held, lang = conv.state.held, conv.lang
        assert held is not None and conv.state.flow in self.flows
        label = _in_a_sentence(localise(self.flows[conv.state.flow].step(held.step).label, lang), lang)
        shown = held.text if len(held.text) <= _HELD_SHOWN_CHARS else held.text[:_HELD_SHOWN_CHARS] + "…"
        choices = (("1", t("held_keep", lang, label=label)), ("2", t("held_asking", lang)))
        listed = "\n".join(f"{key}. {said}" for key, said in choices)
        return Out(f"{t('held_ask', lang, text=shown, label=label)}\n{listed}", choices, "choice")

    def _answer_held(self, s: Tx, conv: Conv, text: str, now: datetime) -> list[Out] | None:
        """1 (or yes: it is the situation) files the held sentence as the step's answer; 2 (or no) takes it
        as a question: answered when an article is sure of it, else a ticket for staff, then the step again.
        Anything else is a new answer to the step (None), the held sentence dropped."""
        st = conv.state
        held, st.held = st.held, None
        flow = self.flows.get(st.flow or "")
        if held is None or flow is None or held.step != st.step:
            return None
        lang = conv.lang
        typed = word(text)
        label = _in_a_sentence(localise(flow.step(held.step).label, lang), lang)
        said = answers.yes_no(text) if len(clean_text(text)) <= 12 else None
        if typed in ("1", word(t("held_keep", lang, label=label))) or said == "yes":
            return self.runner.answer(flow, st, held.text, (), self._ctx(s, conv, now))
        if typed in ("2", word(t("held_asking", lang))) or said == "no":
            answer = self._ask_qa(conv, held.text[:500])
            if answer is not None and not answer.handoff and answer.answer:
                reply = answer.sms if conv.channel == "sms" and answer.sms else answer.answer
            else:
                reply = self._question_to_staff(s, conv, held.text, answer, now).text
            return self._then_the_step(s, conv, reply, now, None)
        return None

    def _answered_at_step(self, s: Tx, conv: Conv, text: str, now: datetime, cur: Out | None = None) -> list[Out] | None:
        """A policy question typed at a step, answered when an article is sure of it, then the step asked again;
        None (the step reads it as its answer) otherwise."""
        answer = self._ask_qa(conv, clean_text(text)[:500])
        if answer is None or answer.handoff or not answer.answer:
            return None
        said = answer.sms if conv.channel == "sms" and answer.sms else answer.answer
        return self._then_the_step(s, conv, said, now, cur)

    def _passed_on_at_step(self, s: Tx, conv: Conv, text: str, now: datetime,
                           cur: Out | None = None) -> list[Out] | None:
        """A question no article is sure of, or a request for a person in words (能不能叫人给我打个电话),
        typed at a step: a ticket for staff, then the step asked again (what was entered is kept); None (the
        step reads it) when the sentence neither asks anything nor asks for someone."""
        answer = self._ask_qa(conv, clean_text(text)[:500])
        if answer is None or not answer.handoff:
            return None
        if answer.reason not in _FOR_STAFF_AT_ANY_STEP and not answers.asks_something(text):
            return None
        passed = self._question_to_staff(s, conv, text, answer, now)
        return self._then_the_step(s, conv, passed.text, now, cur)

    def _then_the_step(self, s: Tx, conv: Conv, said: str, now: datetime, cur: Out | None) -> list[Out]:
        """What was said about something else, then the step asked again, with its choices."""
        cur = cur or self._current_prompt(s, conv, now)
        return [Out(said + "\n\n" + t("back_to_step", conv.lang) + "\n" + cur.text, cur.choices, cur.expects)]

    def _at_menu(self, s: Tx, conv: Conv, text: str, inbound: Inbound, now: datetime) -> list[Out]:
        lang = conv.lang
        linked = conv.beneficiary_id is not None
        w = word(text) if len(text) <= 40 else ""
        if conv.state.offer is not None:
            taken = self._answer_offer(s, conv, text, now)
            if taken is not None:
                return taken
        if inbound.attachments and not clean_text(text):
            return [Out(t("photo_at_menu", lang) + "\n" + self._menu(lang, linked).text, in_flow=False)]
        if w:
            for f in self.menu_flows:
                if w == str(f.menu) or w in (word(x) for x in f.title.values()):
                    return self._start(s, conv, f.id, now)
            if (w == "9" and not linked) or w in LINK_WORDS:
                return self._start_link(s, conv, now, None)
            if answers.greeting(w) or isinstance(answers.interruption(w), answers.Cancel):
                return [self._menu(lang, linked)]  # nothing to cancel at the menu: what can be done
            if answers.acknowledgement(w) or answers.yes_no(w) is not None:
                # 收到 / 好的 / 谢谢 / yeah / 是的 after a notice or an answer, where nothing is asked: heard, no ticket
                return [Out(t("acknowledged", lang), in_flow=False)]
            key = answers.about_the_service(w)
            if key is not None:  # about the chat or the office itself, answered from its settings: no ticket
                from outreach.templates import templates_for

                office = templates_for(self.settings)
                said = t(key, lang, office=office.office_name.get(lang) or office.office_name["zh-Hans"],
                         phone=office.office_phone)
                if key != "how_to_use":
                    return [Out(said, in_flow=False)]
                menu = self._menu(lang, linked)
                return [Out(said + "\n" + menu.text, menu.choices, menu.expects, in_flow=False)]
            if answers.wants_some_service(w) and self._service_for(text) is None:
                return [self._menu(lang, linked, head=t("which_service", lang))]
            if answers.only_saying_who(w):
                menu = self._menu(lang, linked)
                return [Out(t("asking_for_family", lang) + "\n" + menu.text, menu.choices, menu.expects, in_flow=False)]
            if w in CONTINUE_WORDS and conv.state.saved:
                return self._start(s, conv, list(conv.state.saved)[-1], now)
        if len(_WORDY.findall(text)) < 2:
            return [Out(t("not_understood_menu", lang) + "\n" + self._menu(lang, linked).text,
                        self._menu(lang, linked).choices, "choice", in_flow=False)]
        return self._free_text(s, conv, clean_text(text)[:500], now)

    # ------------------------------------------------------------------ media that are not documents
    def _media(self, s: Tx, conv: Conv, inbound: Inbound, now: datetime) -> Out:
        """A voice note goes to staff with its audio; a sticker, a location, a contact card, a video or an
        edited message gets a short reply. None of them is an answer: the current question follows."""
        lang = conv.lang
        kinds = {a.kind for a in inbound.attachments}
        if inbound.edited:
            head = t("edited_reply", lang)
        elif kinds & {"voice", "audio"}:
            audio = next(a for a in inbound.attachments if a.kind in ("voice", "audio"))
            done = self._hand_off(s, conv, "voice", "[语音留言 voice message]", now, attachment={
                "kind": audio.kind, "audio": audio.local_path, "file_id": audio.file_id, "mime": audio.mime_type})
            head = t("voice_to_staff", lang, ticket=done.ticket.id)
            if conv.state.flow:
                head += "\n" + t("handoff_saved", lang)
        elif "location" in kinds:
            head = t("location_reply", lang)
        elif "contact" in kinds:
            head = t("contact_reply", lang)
        elif "sticker" in kinds:
            head = t("sticker_reply", lang)
        else:
            head = t("video_reply", lang)
        if not conv.state.flow and conv.state.offer is None:
            return Out(head, in_flow=False)
        cur = self._current_prompt(s, conv, now)
        return Out(head + "\n" + cur.text, cur.choices, cur.expects, cur.in_flow)

    # ------------------------------------------------------------------ services before articles
    def _service_for(self, text: str) -> Flow | None:
        """The service this text asks for ("我要报告住院", "我爸爸昨天晚上走了"), if any."""
        said = word(text)
        forms = {said, cantonese_as_mandarin(said)}  # 生活费唔够 is 生活费不够
        for flow in self.recognisable:
            if any(p.search(normal) for p in flow.patterns for normal in forms):
                return flow
        return None

    def _free_text(self, s: Tx, conv: Conv, text: str, now: datetime) -> list[Out]:
        """What a person writes at the menu: a service first, a policy article when they ask about policy,
        a person (a ticket) only when neither fits."""
        service = self._service_for(text)
        said = word(text)
        # "住院补助去哪里申请" asks where a claim is made (an article says); "我的申请在哪里" asks for one's records.
        asks = _ASKS_POLICY.search(said) or (service is not None and service.report is None and _ASKS_WHERE.search(said))
        if service is not None and not asks and (
                service.report is not None or rule_handoff(text, conv.lang) is None):
            return self._offer(s, conv, service, text, now)
        before = conv.state.asked_before
        after = before.text if before is not None and now - before.at <= FOLLOW_UP_WINDOW else ""
        answer = self._ask_qa(conv, text, after)
        if answer is not None and not answer.handoff:
            # A follow-up answered through the question before it keeps that one as what is talked about.
            kept = after if after and getattr(answer, "followed", False) else redact(text)[:200]
            conv.state.asked_before = AskedBefore(text=kept, at=now)
            return [Out(answer.sms if conv.channel == "sms" and answer.sms else answer.answer, in_flow=False)]
        if service is not None and _service_fits(service, answer):
            return self._offer(s, conv, service, text, now)
        return [self._question_to_staff(s, conv, text, answer, now)]

    def _offer(self, s: Tx, conv: Conv, service: Flow, text: str, now: datetime) -> list[Out]:
        if service.report is not None:  # reading one's own records asks nothing: just show them
            return self._start(s, conv, service.id, now)
        conv.state.offer = ServiceOffer(flow=service.id, question=redact(text)[:200])
        return [self._offer_prompt(conv)]

    def _offer_prompt(self, conv: Conv) -> Out:
        lang = conv.lang
        offer = conv.state.offer
        assert offer is not None
        flow = self.flows[offer.flow]
        question = localise(flow.offer or flow.title, lang)
        if conv.state.flow:  # a switch from the flow under way, which is kept
            return Out(f"{question}\n{t('switch_how', lang, title=self._title(conv.state.flow, lang))}",
                       (("1", t("offer_yes", lang)), ("2", t("switch_no", lang))), "choice")
        return Out(f"{question}\n{t('offer_how', lang)}", (("1", t("offer_yes", lang)), ("2", t("offer_no", lang))),
                   "choice", in_flow=False)

    def _answer_offer(self, s: Tx, conv: Conv, text: str, now: datetime) -> list[Out] | None:
        """Yes starts the service (a flow under way keeps its answers for later), and so does a reply that
        says what the service asks first ("他瘫在床上" to the offer of the certification: a home visit); no
        goes back to the menu, or on with the flow under way; anything else is read as new text (None)."""
        offer = conv.state.offer
        assert offer is not None
        conv.state.offer = None
        if offer.flow not in self.flows:
            return None
        reply = answers.yes_no(text)
        if reply is None and self.runner.tells(self.flows[offer.flow], text, self._ctx(s, conv, now)):
            conv.state.park()
            return self._start(s, conv, offer.flow, now, told=f"{offer.question}\n{clean_text(text)[:200]}")
        if reply == "yes":
            conv.state.park()
            return self._start(s, conv, offer.flow, now, told=offer.question)
        if reply == "no" and conv.state.flow:
            cur = self._current_prompt(s, conv, now)
            return [Out(t("back_to_step", conv.lang) + "\n" + cur.text, cur.choices, cur.expects)]
        if reply == "no":
            menu = self._menu(conv.lang, conv.beneficiary_id is not None)
            return [Out(t("offer_declined", conv.lang) + "\n" + menu.text, menu.choices, "choice", in_flow=False)]
        return None

    def _start(self, s: Tx, conv: Conv, flow_id: str, now: datetime, args: dict[str, Any] | None = None,
               told: str = "") -> list[Out]:
        flow = self.flows[flow_id]
        st = conv.state
        if flow.requires_link and conv.beneficiary_id is None:
            return self._start_link(s, conv, now, flow_id)
        if flow.requires_link and conv.acting_as is None and self._deceased(s, conv):
            # The phone of someone who has died cannot act as them; a relative links as family.
            return [Out(t("deceased_self", conv.lang), in_flow=False)]
        ctx = self._ctx(s, conv, now)
        if not args and st.resume(flow_id) and flow.has_step(st.step):
            cur = self.runner.prompt(flow, st, ctx)
            return [Out(t("resumed", conv.lang) + "\n" + cur.text, cur.choices, cur.expects)]
        st.saved.pop(flow_id, None)
        return self.runner.enter(flow, st, ctx, args, told=told)

    def _start_link(self, s: Tx, conv: Conv, now: datetime, after: str | None) -> list[Out]:
        st = conv.state
        st.park()
        outs = self.identity.enter(st, self._ctx(s, conv, now))
        if after:
            st.after_link = after
            outs = [Out(t("needs_link", conv.lang) + "\n" + outs[0].text, outs[0].choices, outs[0].expects)]
        return outs

    def _deceased(self, s: Tx, conv: Conv) -> bool:
        if conv.beneficiary_id is None:
            return False
        if conv.person_status is not None and conv.person_status[0] == conv.beneficiary_id:
            return conv.person_status[1] == "deceased"  # read with the conversation
        return s.conn.execute(_PERSON_STATUS, {"beneficiary_id": conv.beneficiary_id}).scalar() == "deceased"

    def _current_prompt(self, s: Tx, conv: Conv, now: datetime) -> Out:
        st = conv.state
        if st.flow and st.offer is not None and st.offer.flow in self.flows:
            return self._offer_prompt(conv)
        if st.held is not None and st.flow in self.flows:
            return self._held_prompt(conv)
        ctx = self._ctx(s, conv, now)
        if st.flow == LINK_FLOW:
            return self.identity.prompt(st, ctx)
        if st.flow in self.flows:
            return self.runner.prompt(self.flows[st.flow], st, ctx)
        if st.offer is not None and st.offer.flow in self.flows:
            return self._offer_prompt(conv)
        return self._menu(conv.lang, conv.beneficiary_id is not None)

    def _title(self, flow_id: str, lang: str) -> str:
        if flow_id == LINK_FLOW:
            return t("link_title", lang)
        return localise(self.flows[flow_id].title, lang)

    def _menu(self, lang: str, linked: bool, head: str | None = None) -> Out:
        """The services to choose from, under the menu's greeting or under `head` instead."""
        parts = self._menus.get((lang, linked))
        if parts is None:  # the flows and words are fixed for the engine's life: built once per language
            parts = self._menus[(lang, linked)] = self._menu_parts(lang, linked)
        text = parts[0] if head is None else head + "\n" + parts[0].split("\n", 1)[1]
        return Out(text, parts[1], "choice", in_flow=False)

    def _menu_parts(self, lang: str, linked: bool) -> tuple[str, tuple[tuple[str, str], ...]]:
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
        return "\n".join(lines), tuple(choices)

    # ------------------------------------------------------------------ people
    def _transcript(self, s: Tx, conv: Conv) -> list[dict[str, Any]]:
        rows = s.conn.execute(select(LOG.c.direction, LOG.c.text, LOG.c.created_at).where(
            LOG.c.channel == conv.channel, LOG.c.address == conv.address)
            .order_by(LOG.c.created_at.desc(), LOG.c.id.desc()).limit(20)).all()
        lines = [entry(r.direction, r.text, r.created_at) for r in reversed(rows)]
        st = conv.state
        if st.flow:
            lines.append(entry("note", f"was in flow {st.flow} at step {st.step}", self.clock.now()))
        return lines

    def _hand_off(self, s: Tx, conv: Conv, reason: str, question: str, now: datetime,
                  attachment: dict[str, Any] | None = None) -> Handoff:
        """A ticket for staff, bounded per sender (bot/tickets.py): repeated messages join the open one."""
        return hand_off(s.session, channel=conv.channel, address=conv.address, beneficiary_id=conv.beneficiary_id,
                        language=conv.lang, reason=reason, question=question, context=self._transcript(s, conv),
                        now=now, office_tz=self.settings.tz, attachment=attachment)

    def _handoff(self, s: Tx, conv: Conv, reason: str, question: str, now: datetime) -> Out:
        lang = conv.lang
        done = self._hand_off(s, conv, reason, question, now)
        text = (t("handoff_already", lang, ticket=done.ticket.id) if done.appended
                else t("handoff_done", lang, ticket=done.ticket.id, reply_by=reply_by(now, self.settings.tz, lang)))
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

    def _ask_qa(self, conv: Conv, question: str, after: str = "") -> Any:
        """The policy answer, found before the message's transaction (see _AnswerFirst); `after`:
        the question it may follow up."""
        answers = _ANSWERS.get()
        if answers is None:  # not through handle(): answered here
            return self._answer(question, conv.lang, after)
        if (question, conv.lang, after) not in answers:
            raise _AnswerFirst(question, conv.lang, after)
        return answers[(question, conv.lang, after)]

    def _answer(self, question: str, lang: str, after: str = "") -> Any:
        qa = self._get_qa()
        if qa is None:
            return None
        try:
            return qa.answer(question, lang, after=after or None)
        except Exception:
            log.exception("policy Q&A failed; handing off")
            return None

    def _question_to_staff(self, s: Tx, conv: Conv, question: str, answer: Any, now: datetime) -> Out:
        lang = conv.lang
        reason = answer.reason if answer is not None else "out_of_scope"
        done = self._hand_off(s, conv, reason, question, now)
        if done.appended:
            return Out(t("ticket_added", lang, ticket=done.ticket.id), in_flow=False)
        if answer is not None and answer.answer:
            text = answer.answer + t("ticket_number", lang, ticket=done.ticket.id)
        else:
            text = t("qa_passed_on", lang, ticket=done.ticket.id, reply_by=reply_by(now, self.settings.tz, lang))
        return Out(text, in_flow=False)


def _in_a_sentence(label: str, lang: str) -> str:
    """A step's label inside an English sentence: "the situation", not "the Situation" (ID stays ID)."""
    if lang == "en" and label[:1].isupper() and label[1:2].islower():
        return label[0].lower() + label[1:]
    return label


def _join(first: list[Out], second: list[Out]) -> list[Out]:
    """Two parts of one answer become one message: elderly users read one message better than two."""
    if not first:
        return second
    if not second:
        return first
    a, b = first[-1], second[0]
    return first[:-1] + [Out(a.text + "\n" + b.text, b.choices, b.expects, b.in_flow)] + second[1:]


# Handoff reasons that go to staff from inside a flow even without a question word: someone asked for a
# person, complained, or asked about their own case ("能不能叫人给我打个电话").
_FOR_STAFF_AT_ANY_STEP = frozenset({"asked_for_person", "complaint", "personal_case"})

# Why the Q&A handed a question off when it is about something this office's services are not:
# another place's rule, another year's figures, a benefit the documents never name, an official's
# own phone. The person is told why, and staff get the question; offering this office's
# service instead ("要申请医疗互助报销吗" to "龙岩上杭县的医疗互助一年交多少钱") would answer a question not asked.
_ABOUT_ELSEWHERE = frozenset({"other_place", "other_year", "future_figure", "unknown_benefit", "staff_contact"})


def _service_fits(service: Flow, answer: Any) -> bool:
    """Whether a service the text names is offered when the Q&A handed the text off. Asked about one's
    own case ("has my claim gone through?"), with a complaint or for a person, staff take it: a new
    application is no answer, though one's own records (a report) can be shown at once. Asked about
    another place, year or benefit, the Q&A's reason is told instead."""
    if answer is None:
        return True
    if answer.reason != "out_of_scope":
        return service.report is not None
    return answer.detail not in _ABOUT_ELSEWHERE

# A question about policy (how much, who can, which documents...): the article answers it even when
# it names a service ("住院能报销多少？" is a question about the claim, not a claim).
_ASKS_POLICY = re.compile(
    r"多少|几多|比例|标准|条件|资格|规定|政策|如何|怎么(办理|申请|报销|算|交|领|计算)|需要(什么|哪些)|要(带)?(什么|哪些)|"
    r"能不能|可不可以|可以.{0,8}吗|有没有.{0,6}(补贴|补助|待遇)|(什么|啥)(时候|材料|条件)|哪些|几时|几点|哪天|何时|"
    r"能领(什么|啥|多少)|有(什么|啥)(补贴|补助|待遇|钱)|点样(做|办|申请|报销|交|领)|可唔可以|得唔得|有冇|"
    r"(还)?要不要(做|办|交)|使唔使|需不需要|用不用|"
    r"\bhow (much|many|do|can|long)\b|\bwhat (documents|papers|is|are|help|can)\b|\bwho can\b|\beligible|\bcan i\b|"
    r"\bwhen (is|are|do|does|will|should)\b|\bdo i (still )?(have|need) to\b")
_ASKS_WHERE = re.compile(r"哪里|哪儿|去哪|在哪|到哪|边度|\bwhere\b")
_NUMBERED = re.compile(r"^\s*(\d+)[.、]\s*\S")


def _button_text(out: Out, lang: str) -> str:
    """The text as shown with buttons: the numbered list of the choices and the typing
    instructions left out (the buttons say them), and no footer (back and a person are buttons)."""
    if not out.choices:
        return out.text
    highest = max([len(out.choices)] + [int(v) for v, _ in out.choices if v.isdigit()])
    drop, menu_title, menu_title_buttons = _button_words(lang)
    lines = []
    for line in out.text.split("\n"):
        numbered = _NUMBERED.match(line)
        if line.strip() in drop or (numbered and 1 <= int(numbered.group(1)) <= highest):
            continue
        lines.append(menu_title_buttons if line == menu_title else line)
    return "\n".join(lines).strip() or out.text


# The words around every reply are fixed at start (bot/texts.py): looked up once per language.
@lru_cache(maxsize=16)
def _navigation(lang: str, in_flow: bool) -> tuple[str, tuple[Choice, ...]]:
    """The footer and the navigation buttons of a reply in a flow or at the menu."""
    person = Choice(t("button_person", lang), "人工")
    navigation = (Choice(t("button_back", lang), "返回"), person) if in_flow else (person,)
    return t("footer_flow" if in_flow else "footer_menu", lang), navigation


@lru_cache(maxsize=8)
def _button_words(lang: str) -> tuple[frozenset[str], str, str]:
    return typing_lines(lang), t("menu_title", lang), t("menu_title_buttons", lang)


def _attachment_log(inbound: Inbound) -> list[dict[str, Any]]:
    return [{"kind": a.kind, "mime_type": a.mime_type, "file_name": a.file_name, "size": a.size}
            for a in inbound.attachments]


def _mask(channel: str, address: str) -> str:
    return mask_phone(address) if channel == "sms" else address
