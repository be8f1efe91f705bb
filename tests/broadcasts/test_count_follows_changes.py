"""The composer's count stays the contact rule's answer while contacts and people change.

The count reads each person's reach ranks (outreach/reach_summary.py), which the database keeps
in step with every write to a contact. These tests change a roll through the product's own
writers (opt-out and opt-in, a blocked chat, an invalid number, staff adding or replacing a
phone, a relative's address, a contact relinked to someone else, a deleted contact, the
roll's bulk insert, a Core UPDATE, a death, a move, a pause) and check after each round that
the count is what the rule says person by person and what a send would queue.
"""

from __future__ import annotations

import random
from datetime import date

import pytest
from sqlalchemy import Engine, func, insert, select, update

from models.actions import add_phone, mark_blocked, mark_invalid, opt_in, opt_out, replace_phone
from models.db import session_scope, write_scope
from models.people import Beneficiary, Contact, FamilyMember
from outreach import reach, reach_summary
from outreach.audiences import AudienceFilter, audience_recipients, audience_size
from tests.scheduler.factories import local, person

TODAY = date(2026, 3, 2)
NOW = local(2026, 3, 2, 10)
PEOPLE = 30


def _check(session, channel: str | None) -> None:  # type: ignore[no-untyped-def]
    """The count by reason equals `reach.exclusion_reason` person by person; the reachable are
    exactly the recipients queued, on the same channels."""
    f = AudienceFilter(kinds=["veteran"], channel=channel)
    size = audience_size(session, f, TODAY)
    why = reach.exclusion_reason(reach.B, reach.MessageClass.BULK, (channel,) if channel else None)
    rule = dict(session.execute(select(why, func.count()).select_from(reach.B)
                                .where(reach.B.c.is_veteran.is_(True)).group_by(why)).all())
    assert {**size.excluded, "reachable": size.reachable} == rule, channel
    recipients = audience_recipients(session, f, TODAY, limit=1000)
    by_channel: dict[str, int] = {}
    for r in recipients:
        by_channel[r.channel] = by_channel.get(r.channel, 0) + 1
    assert size.by_channel == by_channel, channel


def _change(session, rnd: random.Random, ids: list[int], step: int) -> str:  # type: ignore[no-untyped-def]
    """One random change through a writer the product uses; returns its name."""
    who = rnd.choice(ids)
    mine = list(session.execute(select(Contact).where(Contact.beneficiary_id == who)).scalars())
    contact = rnd.choice(mine) if mine else None
    b = session.get(Beneficiary, who)
    change = rnd.choice(["opt_out", "opt_in", "blocked", "invalid", "add_phone", "replace_phone", "relative",
                         "relink", "delete", "roll_insert", "unverify", "death", "move", "pause", "resume"])
    if change == "opt_out" and contact is not None:
        opt_out(session, contact, reason="TD", actor="bot", now=NOW)
    elif change == "opt_in" and contact is not None:
        opt_in(session, contact, actor="bot", now=NOW)
    elif change == "blocked" and contact is not None:
        mark_blocked(session, contact, reason="bot blocked", now=NOW)
    elif change == "invalid" and contact is not None:
        mark_invalid(session, contact, reason="30003", now=NOW)
    elif change == "add_phone":
        add_phone(session, b, f"+8613900{step:06d}", actor="staff:alice", reason="来电", now=NOW)
    elif change == "replace_phone" and contact is not None and contact.channel == "sms":
        replace_phone(session, contact, f"+8613700{step:06d}", actor="staff:alice", reason="换号", now=NOW)
    elif change == "relative":
        fm = FamilyMember(beneficiary_id=who, relationship="child")
        session.add(fm)
        session.flush()
        session.add(Contact(beneficiary_id=who, family_member_id=fm.id, channel=rnd.choice(["telegram", "sms"]),
                            address=f"fam-{step}", verified=True))
    elif change == "relink" and contact is not None:
        contact.beneficiary_id = rnd.choice(ids)  # a chat linked to someone else (bot/identity.py)
        contact.family_member_id = None
        session.add(contact)
    elif change == "delete" and contact is not None:
        session.delete(contact)
    elif change == "roll_insert":  # the roll import's bulk Core insert (models/roll.py)
        session.execute(insert(Contact), [{"beneficiary_id": who, "channel": "sms", "address": f"+8613600{step:06d}",
                                           "verified": True, "created_at": NOW}])
    elif change == "unverify" and contact is not None:
        session.execute(update(Contact).where(Contact.id == contact.id).values(verified=False))
    elif change in ("death", "move"):
        b.status = "deceased" if change == "death" else "moved"
        session.add(b)
    elif change == "pause":
        b.outreach_paused_at, b.outreach_paused_reason = NOW, "reported death awaits verification"
        session.add(b)
    elif change == "resume":
        b.status, b.outreach_paused_at = "active", None
        session.add(b)
    session.flush()
    return change


def test_the_count_stays_the_rules_answer_through_every_kind_of_change(db_engine: Engine) -> None:
    """Thirty veterans with random contacts; then eight rounds of fifteen random changes through
    the product's writers, each round in its own transaction: after every round, for either
    channel and each alone, the count by reason is `reach.exclusion_reason`'s person by person
    and the reachable are the recipients a send queues."""
    rnd = random.Random(1)
    with session_scope(db_engine) as s:
        ids = [person(s, is_veteran=True, channel=rnd.choice(["telegram", "sms", None])).id for _ in range(PEOPLE)]
    seen: set[str] = set()
    for round_ in range(8):
        with write_scope(db_engine) as s:
            for i in range(15):
                seen.add(_change(s, rnd, ids, round_ * 100 + i))
        with session_scope(db_engine) as s:
            for channel in (None, "telegram", "sms"):
                _check(s, channel)
    assert {"opt_out", "blocked", "invalid", "relink", "delete", "roll_insert", "death"} <= seen


def test_a_change_is_counted_inside_its_own_transaction_and_gone_with_its_rollback(db_engine: Engine) -> None:
    """An opt-out is counted by the same transaction that made it, before it commits; rolled
    back, the count is what it was."""
    with session_scope(db_engine) as s:
        b = person(s, is_veteran=True)
    f = AudienceFilter(kinds=["veteran"])
    with pytest.raises(RuntimeError), write_scope(db_engine) as s:
        contact = s.execute(select(Contact).where(Contact.beneficiary_id == b.id)).scalar_one()
        opt_out(s, contact, reason="TD", actor="bot", now=NOW)
        assert audience_size(s, f, TODAY).excluded == {"opted_out": 1}
        raise RuntimeError("the request failed after the opt-out")
    with session_scope(db_engine) as s:
        assert audience_size(s, f, TODAY).reachable == 1


def test_rebuild_repairs_every_persons_ranks(db_engine: Engine) -> None:
    """Ranks overwritten with nonsense (a restored backup, a bulk load with triggers off) are
    recomputed by `reach_summary.rebuild` to what the rule says."""
    rnd = random.Random(3)
    with session_scope(db_engine) as s:
        for _ in range(12):
            b = person(s, is_veteran=True, channel=rnd.choice(["telegram", "sms", None]))
            if rnd.random() < 0.4:
                s.add(Contact(beneficiary_id=b.id, channel="sms", address=f"+86135{b.id:08d}", verified=True,
                              opted_out_at=NOW if rnd.random() < 0.5 else None))
        s.flush()
        s.execute(update(reach.B).values(reach_rank=reach.RANK_OWN, reach_rank_telegram=reach.RANK_INVALID,
                                         reach_rank_sms=reach.RANK_NONE))
    with write_scope(db_engine) as s:
        assert audience_size(s, AudienceFilter(kinds=["veteran"]), TODAY).reachable == 12  # wrong, as corrupted
        assert reach_summary.rebuild(s.connection(), batch=5) == 12
        for channel in (None, "telegram", "sms"):
            _check(s, channel)


def test_a_migrated_database_keeps_the_ranks_too(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A database created by the migrations (not `create_all`) gets the triggers: a contact
    added and opted out afterwards is counted as the rule says."""
    from models.db import make_engine
    from models.migrate import upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    try:
        upgrade(engine)
        with session_scope(engine) as s:
            b = person(s, is_veteran=True, channel="sms")
            person(s, is_veteran=True, channel="telegram")
            opt_out(s, s.execute(select(Contact).where(Contact.beneficiary_id == b.id)).scalar_one(),
                    reason="TD", actor="bot", now=NOW)
        with session_scope(engine) as s:
            size = audience_size(s, AudienceFilter(kinds=["veteran"]), TODAY)
            assert (size.reachable, size.excluded, size.by_channel) == (1, {"opted_out": 1}, {"telegram": 1})
            _check(s, None)
    finally:
        engine.dispose()


def test_the_rebuild_command_recomputes_the_ranks_of_a_database(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`nuanxin reach-rebuild` on the configured database: ranks lost (set back to unranked) are
    recomputed, and the command says for how many people."""
    from typer.testing import CliRunner

    from cli import app
    from models.db import make_engine
    from models.migrate import upgrade
    from settings import get_settings

    monkeypatch.setenv("NUANXIN_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        engine = make_engine(get_settings().effective_database_url)
        upgrade(engine)
        with session_scope(engine) as s:
            person(s, is_veteran=True, channel="sms")
            person(s, is_veteran=True, channel=None)
            s.execute(update(reach.B).values(reach_rank=reach.RANK_NONE))
        with session_scope(engine) as s:
            assert audience_size(s, AudienceFilter(kinds=["veteran"]), TODAY).excluded == {"no_contact": 2}
        result = CliRunner().invoke(app, ["reach-rebuild"])
        assert result.exit_code == 0, result.output
        assert "recomputed for 2 people" in result.output
        with session_scope(engine) as s:
            size = audience_size(s, AudienceFilter(kinds=["veteran"]), TODAY)
            assert (size.reachable, size.excluded) == (1, {"no_contact": 1})
        engine.dispose()
    finally:
        get_settings.cache_clear()
