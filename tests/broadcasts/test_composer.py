"""The composer's backend: the audience form, the live count against the recipients queued,
the preview as it will arrive with its cost, the sending time, and the review trail."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select, update

from models.actions import opt_out
from models.broadcasts import BroadcastReview
from models.clock import FakeClock
from models.db import session_scope, write_scope
from models.outbox import Broadcast
from models.people import Beneficiary, Contact, FamilyMember, SchemeMembership
from models.staff import AuditLog, StaffUser
from outreach import broadcasts as bc
from outreach import composer
from outreach.audiences import AudienceFilter, audience_recipients, audience_size
from settings import Settings
from tests.scheduler.factories import TS, local, outbox, person, staff

TODAY = date(2026, 3, 2)


def users(session):  # type: ignore[no-untyped-def]
    return {u.username: u for u in session.execute(select(StaffUser)).scalars()}


@pytest.fixture
def area(db_engine: Engine) -> dict[str, int]:
    """白沙街道 veterans: two on Telegram (one English), one by SMS, one opted out, one blocked,
    one deceased, one without a contact; a union member with this year's mutual-aid membership."""
    ids: dict[str, int] = {}
    with session_scope(db_engine) as s:
        where = {"is_veteran": True, "district": "蓬江区", "street": "白沙街道"}
        ids["zh"] = person(s, name="张建国", sex="M", birth_date=date(1950, 3, 1), **where).id
        ids["en"] = person(s, name="Li Ming", language="en", **where).id
        ids["sms"] = person(s, name="王秀英", sex="F", channel="sms", birth_date=date(1948, 1, 1), **where).id
        out = person(s, **where)
        opt_out(s, s.execute(select(Contact).where(Contact.beneficiary_id == out.id)).scalar_one(), reason="TD",
                actor="bot")
        blocked = person(s, **where)
        s.execute(update(Contact).where(Contact.beneficiary_id == blocked.id).values(blocked_at=local(2026, 1, 1)))
        person(s, status="deceased", **where)
        person(s, channel=None, **where)
        member = person(s, is_union_member=True, street="别的街道")
        s.add(SchemeMembership(beneficiary_id=member.id, scheme="medical_mutual_aid", period=2026))
        old = person(s, is_union_member=True, street="别的街道")
        s.add(SchemeMembership(beneficiary_id=old.id, scheme="medical_mutual_aid", period=2025))
        ids["member"] = member.id
        staff(s, "alice", "composer")
        staff(s, "bob", "approver")
    return ids


WHERE = {"kinds": ["veteran"], "street": "白沙街道"}


def test_the_audience_form_becomes_the_filter_and_says_which_field_is_wrong() -> None:
    """Blank fields mean "any"; ages, yes/no and tags are read from what a form posts; a word
    for an age, an inverted range and an unknown kind are each refused on their own field."""
    f = composer.AudienceForm(kinds=["veteran", "retiree"], street=" 白沙街道 ", age_min="80", living_alone="yes",
                              disabled="no", tags="党员、 困难", schemes=["medical_mutual_aid"]).to_filter()
    assert f == AudienceFilter(kinds=["retiree", "veteran"], street="白沙街道", age_min=80, living_alone=True,
                               disabled=False, tags=["党员", "困难"], schemes=["medical_mutual_aid"])
    assert composer.AudienceForm().to_filter() == AudienceFilter()
    with pytest.raises(composer.ComposeRefused) as refused:
        composer.AudienceForm(age_min="八十", age_max="70", kinds=["soldier"]).to_filter()
    assert {p.field for p in refused.value.problems} == {"age_min", "kinds"}
    with pytest.raises(composer.ComposeRefused) as refused:
        composer.AudienceForm(age_min="90", age_max="80").to_filter()
    assert [p.field for p in refused.value.problems] == ["age_max"]
    assert "80" in refused.value.problems[0].zh
    assert composer.AudienceForm.from_filter(f).to_filter() == f


def test_the_live_count_names_each_reason_and_counts_scheme_members_of_this_year(
        db_engine: Engine, area: dict[str, int]) -> None:
    """Seven matched veterans: three will get it; opted out, blocked, deceased and no contact are
    counted apart in the page's order. A scheme filter matches this year's membership only."""
    with session_scope(db_engine) as s:
        count = composer.live_count(s, AudienceFilter.model_validate(WHERE), TODAY)
        members = composer.live_count(s, AudienceFilter(schemes=["medical_mutual_aid"]), TODAY)
    assert (count.matched, count.reachable, count.by_channel) == (7, 3, {"telegram": 2, "sms": 1})
    assert count.excluded == [("opted_out", 1), ("blocked", 1), ("no_contact", 1), ("deceased", 1)]
    assert count.excluded_total == 4
    assert (members.matched, members.reachable) == (1, 1)


@pytest.mark.parametrize("channel", [None, "sms"])
def test_the_count_is_the_contact_rules_reason_person_by_person_for_any_mix_of_contacts(
        db_engine: Engine, channel: str | None) -> None:
    """For eighty people with random standing (deceased, moved, paused) and random addresses
    (their own and a relative's, Telegram and SMS, verified or not, opted out, blocked,
    invalid), with and without a channel filter: each reason's count is the number of people
    `reach.exclusion_reason` gives that reason, and the reachable people and their channels
    are exactly the recipients a send would queue."""
    from sqlalchemy import func as sa_func

    from outreach import reach

    rnd = random.Random(5 if channel is None else 6)
    with session_scope(db_engine) as s:
        for i in range(80):
            standing = rnd.choice(["active"] * 6 + ["deceased", "moved", "paused"])
            b = person(s, channel=None, is_veteran=True, status="active" if standing == "paused" else standing,
                       outreach_paused_at=local(2026, 2, 1) if standing == "paused" else None)
            fm = None
            for j in range(rnd.randrange(0, 4)):
                if rnd.random() < 0.3 and fm is None:
                    fm = FamilyMember(beneficiary_id=b.id, relationship="child")
                    s.add(fm)
                    s.flush()
                state = rnd.choice(["ok", "ok", "opted", "blocked", "invalid"])
                s.add(Contact(beneficiary_id=b.id, channel=rnd.choice(["telegram", "sms"]), address=f"a-{i}-{j}",
                              verified=rnd.random() < 0.8,
                              family_member_id=fm.id if fm is not None and rnd.random() < 0.5 else None,
                              opted_out_at=local(2026, 1, 1) if state == "opted" else None,
                              blocked_at=local(2026, 1, 1) if state == "blocked" else None,
                              invalid_at=local(2026, 1, 1) if state == "invalid" else None))
        s.flush()
    f = AudienceFilter(kinds=["veteran"], channel=channel)
    channels = (channel,) if channel else None
    with session_scope(db_engine) as s:
        size = audience_size(s, f, TODAY)
        recipients = audience_recipients(s, f, TODAY, limit=1000)
        why = reach.exclusion_reason(reach.B, reach.MessageClass.BULK, channels)
        rule = dict(s.execute(select(why, sa_func.count()).select_from(reach.B).group_by(why)).all())
    assert size.matched == 80
    assert {**size.excluded, "reachable": size.reachable} == rule
    assert size.reachable == len(recipients)
    by_channel: dict[str, int] = {}
    for r in recipients:
        by_channel[r.channel] = by_channel.get(r.channel, 0) + 1
    assert size.by_channel == by_channel


def test_the_preview_is_the_message_as_it_arrives_with_its_cost(
        db_engine: Engine, area: dict[str, int], settings: Settings) -> None:
    """SMS: the office signature first, the recipient's salutation, 回复TD退订 last, UCS-2
    segments, and the cost per message and in all from the configured price. Telegram: the
    text and its buttons. English for the English speaker."""
    settings = settings.model_copy(update={"sms_price_per_segment": Decimal("0.05")})
    draft = composer.draft_broadcast(title="讲座", audience=AudienceFilter.model_validate(WHERE),
                                     text={"zh-Hans": "{{ salutation }}，周六上午社区有健康讲座。" * 3,
                                           "en": "Dear {{ name }}, a health talk on Saturday."})
    with session_scope(db_engine) as s:
        p = composer.preview(s, draft, settings=settings, templates=TS, today=TODAY)
    by = {(m.lang, m.channel): m for m in p.messages}
    sms = by[("zh-Hans", "sms")]
    assert sms.recipients == 1 and sms.text.startswith("【暖心服务中心】王阿姨，")
    assert sms.text.endswith("回复TD退订") and sms.encoding == "UCS-2"
    assert sms.segments == 2 and sms.price_per_message == Decimal("0.10") and sms.price_total == Decimal("0.10")
    assert "*" in sms.example  # the real recipient's phone, masked
    telegram = by[("zh-Hans", "telegram")]
    assert "张伯" in telegram.text and "回复TD退订" not in telegram.text
    assert [b[0]["data"] for b in telegram.buttons] == ["菜单", "退订"]
    assert by[("en", "telegram")].text.startswith("Dear Li Ming")
    assert (p.sms_segments, p.price_total) == (2, Decimal("0.10"))
    assert p.count.reachable == 3


def test_a_message_too_long_for_sms_is_shown_with_the_reason_not_rendered(
        db_engine: Engine, area: dict[str, int], settings: Settings) -> None:
    """Over ten segments: the SMS preview says why and costs nothing; Telegram still shows it."""
    draft = composer.draft_broadcast(title="长", audience=AudienceFilter.model_validate(WHERE),
                                     text={"zh-Hans": "很长的通知。" * 200})
    with session_scope(db_engine) as s:
        p = composer.preview(s, draft, settings=settings, templates=TS, today=TODAY)
    sms = next(m for m in p.messages if m.channel == "sms")
    assert sms.too_long and "短信太长" in sms.problem and sms.text == ""
    assert next(m for m in p.messages if m.channel == "telegram").text


def test_the_sending_time_is_office_time_in_the_future_outside_quiet_hours(settings: Settings,
                                                                           clock: FakeClock) -> None:
    """'Now' is None; 14:30 tomorrow is that office time; 22:00 is in quiet hours, yesterday has
    passed and a word is not a time: each refused on the sending-time field."""
    now = clock.now()  # 10:00 in Shanghai
    assert composer.sending_time("now", "", "", settings=settings, now=now) is None
    at = composer.sending_time("later", "2026-03-03", "14:30", settings=settings, now=now)
    assert at is not None and at == local(2026, 3, 3, 14, 30)
    for day, hhmm, word in (("2026-03-03", "22:00", "免打扰"), ("2026-03-01", "10:00", "已过"),
                            ("明天", "10:00", "日期")):
        with pytest.raises(composer.ComposeRefused) as refused:
            composer.sending_time("later", day, hhmm, settings=settings, now=now)
        assert refused.value.problems[0].field == "send_at" and word in refused.value.problems[0].zh


def test_an_approver_sends_it_back_with_a_comment_and_the_author_resubmits(
        db_engine: Engine, area: dict[str, int], clock: FakeClock, settings: Settings) -> None:
    """Saved as a draft it cannot be approved; submitted, bob sends it back (a comment is
    required) and it is a draft again with his comment on its trail; alice edits and submits;
    bob approves. Each step is on the trail and in the audit log."""
    with write_scope(db_engine) as s:
        u = users(s)
        b = bc.create_broadcast(s, author=u["alice"], title="讲座", audience=WHERE, text="{{ salutation }}，周六有讲座。",
                                now=clock.now(), templates=TS, settings=settings, submit=False)
        assert b.status == "draft"
        with pytest.raises(bc.BroadcastRefused, match="draft"):
            bc.approve_broadcast(s, b, approver=u["bob"], now=clock.now())
        bc.submit_broadcast(s, b, actor=u["alice"], now=clock.now())
        with pytest.raises(bc.BroadcastRefused, match="原因"):
            bc.send_back_broadcast(s, b, approver=u["bob"], comment="  ", now=clock.now())
        with pytest.raises(bc.BroadcastRefused, match="approver"):
            bc.send_back_broadcast(s, b, approver=u["alice"], comment="改一下", now=clock.now())
        bc.send_back_broadcast(s, b, approver=u["bob"], comment="请写明讲座地点", now=clock.now())
        assert b.status == "draft"
        bc.update_broadcast(s, b, actor=u["alice"], title="讲座", audience=WHERE,
                            text="{{ salutation }}，周六上午在社区活动室有讲座。", now=clock.now(), templates=TS)
        bc.submit_broadcast(s, b, actor=u["alice"], now=clock.now())
        bc.approve_broadcast(s, b, approver=u["bob"], now=clock.now())
        assert b.status == "approved"
        with pytest.raises(bc.BroadcastRefused, match="approved"):
            bc.update_broadcast(s, b, actor=u["alice"], title="x", audience=WHERE, text="x", now=clock.now())
        trail = [(r.step, r.comment) for r in bc.reviews(s, b.id)]
        actions = [a.action for a in s.execute(select(AuditLog).where(AuditLog.target_type == "broadcast")
                                               .order_by(AuditLog.id)).scalars()]
    assert trail == [("submitted", ""), ("sent_back", "请写明讲座地点"), ("edited", "body"), ("submitted", ""),
                     ("approved", "")]
    assert actions == ["broadcast.create", "broadcast.submit", "broadcast.send_back", "broadcast.edit",
                       "broadcast.submit", "broadcast.approve"]


def test_a_scheduled_time_that_passed_while_waiting_must_be_changed_before_approval(
        db_engine: Engine, area: dict[str, int], clock: FakeClock, settings: Settings) -> None:
    """Set for 11:00, approved at 11:30: refused with what to do; rescheduled, approved."""
    with write_scope(db_engine) as s:
        u = users(s)
        b = bc.create_broadcast(s, author=u["alice"], title="讲座", audience=WHERE, text="周六有讲座。",
                                scheduled_for=clock.now() + timedelta(hours=1), now=clock.now(), templates=TS,
                                settings=settings)
        later = clock.now() + timedelta(minutes=90)
        with pytest.raises(bc.BroadcastRefused, match="已过"):
            bc.approve_broadcast(s, b, approver=u["bob"], now=later)
        bc.schedule_broadcast(s, b, actor=u["bob"], at=later + timedelta(hours=2), now=later, settings=settings)
        bc.approve_broadcast(s, b, approver=u["bob"], now=later)
        assert b.status == "scheduled"
        assert s.execute(select(BroadcastReview).where(BroadcastReview.step == "approved")).scalar_one()


def test_a_broadcast_from_a_template_kind_takes_typed_values_from_the_form(
        db_engine: Engine, area: dict[str, int], clock: FakeClock, settings: Settings) -> None:
    """A home-visit notice needs a date and a purpose: typed from the form, refused when missing
    or not a date; previewed as the kind's own template."""
    kinds = composer.broadcast_kinds(TS)
    assert "home_visit_notice" in kinds and "otp" not in kinds and "staff_broadcast" not in kinds
    fields = {f.name: f.input for f in composer.template_fields(TS, "home_visit_notice")}
    assert fields == {"visit_date": "date", "purpose": "choice"}
    with pytest.raises(composer.ComposeRefused) as refused:
        composer.template_context(TS, "home_visit_notice", {"tpl_visit_date": "下周", "tpl_purpose": ""})
    assert {p.field for p in refused.value.problems} == {"tpl_visit_date", "tpl_purpose"}
    values = composer.template_context(TS, "home_visit_notice", {"tpl_visit_date": "2026-03-10",
                                                                 "tpl_purpose": "festival"})
    draft = composer.draft_broadcast(title="走访", audience=AudienceFilter.model_validate(WHERE),
                                     template_kind="home_visit_notice", template_context=values)
    with session_scope(db_engine) as s:
        p = composer.preview(s, draft, settings=settings, templates=TS, today=TODAY)
    assert all("3月10日" in m.text for m in p.messages if m.lang == "zh-Hans")


def test_queued_telegram_rows_carry_the_buttons_the_preview_showed(
        db_engine: Engine, area: dict[str, int], clock: FakeClock, settings: Settings) -> None:
    """What is queued is what was previewed: Telegram rows carry the menu and stop buttons in
    the recipient's language; SMS rows carry none."""
    with write_scope(db_engine) as s:
        u = users(s)
        b = bc.create_broadcast(s, author=u["alice"], title="讲座", audience=WHERE, text="周六有讲座。",
                                now=clock.now(), templates=TS)
        bc.approve_broadcast(s, b, approver=u["bob"], now=clock.now())
        bid = b.id
        alice = u["alice"]
    bc.send_broadcast(db_engine, bid, actor=alice, now=clock.now(), settings=settings, templates=TS)
    rows = {m.beneficiary_id: m for m in outbox(db_engine, broadcast_id=bid)}
    assert rows[area["zh"]].extra["buttons"] == bc.telegram_buttons("zh-Hans")
    assert rows[area["en"]].extra["buttons"][1][0]["data"] == "stop"
    assert "buttons" not in rows[area["sms"]].extra
    with session_scope(db_engine) as s:
        assert s.get(Broadcast, bid).status == "sent"
        assert s.get(Beneficiary, area["zh"]) is not None
