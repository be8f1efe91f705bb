"""Staff-written text under bounds: hostile text is refused quickly with a reason, never a
traceback or a hang, and a message too long to send is refused before approval."""

from __future__ import annotations

import pytest

from outreach.sandbox import Limits, Refused, check_in_worker
from outreach.templates import StaffTextError, TemplateSet, compile_staff_text, validate_staff_text

HOSTILE = {
    "{{ 'a' * 10**9 }}": "repeated",
    "{{ 9**(9**9) }}": "power",
    "{{ 9**(9**7) }}": "power",
    "{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}": "99999",
    "{{ lipsum(200000) }}": "200000",
    "{% for a in 'x' * 4000 %}{% for b in 'x' * 4000 %}{% endfor %}{% endfor %}": "repeats",
    "{{ 'x'|center(1000000000) }}": "too large",
    "{{ '{:>999999999}'.format(1) }}": "width",
    "{{ '%999999999d' % 1 }}": "width",
    "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}": "itself",
    "{% for i in range(1000) %}{{ 'ab' * 100 }}{% endfor %}": "longer than",
    "{{ [1] * 10**9 }}": "repeated",
    "{{ -(10**100) }}": "large",
}


@pytest.mark.parametrize("source", list(HOSTILE))
def test_hostile_staff_text_is_refused_with_a_reason_in_bounded_time(source: str) -> None:
    """Each of these ran for minutes or ate gigabytes before: now a 'refused: …' reason naming what is
    too much (the sandbox's own checks, long before the worker's CPU limit), no traceback."""
    problems = validate_staff_text(source)
    assert len(problems) == 1 and "refused:" in problems[0], problems
    assert HOSTILE[source] in problems[0]
    assert "Traceback" not in problems[0]
    with pytest.raises(StaffTextError):
        compile_staff_text(source)


def test_text_that_outlives_the_worker_deadline_is_refused_not_waited_for() -> None:
    """A render the in-sandbox checks would allow for a while (16 million loop steps) is stopped by the
    worker's CPU limit, and said so; the caller's own wait (600 s here) is not what stopped it."""
    limits = Limits(seconds=60.0, worker_seconds=0.5, loop_iterations=10**9, range_items=4096,
                    worker_wait_seconds=600.0)
    with pytest.raises(Refused, match="^refused: the text takes longer than 0.5 s"):
        check_in_worker("{% for a in range(4000) %}{% for b in range(4000) %}{% endfor %}{% endfor %}", {}, limits)


def test_ordinary_text_is_not_refused_for_a_slow_start_of_the_worker() -> None:
    """The CPU limit starts once the worker has started: a limit shorter than Python takes to start and
    import the sandbox (about 0.19 s of CPU here) still lets ordinary text through (its render takes about
    0.04 s), as it must on a machine busy enough to slow the start."""
    limits = Limits(worker_seconds=0.15)
    assert check_in_worker("{{ salutation }}您好", {"salutation": "张伯"}, limits) == "张伯您好"


def test_text_too_long_for_one_message_is_refused_naming_the_limit() -> None:
    problems = validate_staff_text("好" * 5000)
    assert problems and "4,096" in problems[0]
    problems = validate_staff_text("好" * 9000)
    assert problems and "8,000" in problems[0]


def test_ordinary_staff_text_still_renders_in_and_out_of_the_worker() -> None:
    """Conditions, filters and loops of reasonable size keep working."""
    source = "{{ salutation }}您好，{% if district %}{{ district }}{% endif %}{% for i in range(3) %}★{% endfor %}{{ name|upper }}"
    assert validate_staff_text(source) == []
    text = compile_staff_text(source).render("zh-Hans", {"salutation": "张伯", "district": "蓬江区", "name": "li"})
    assert text == "张伯您好，蓬江区★★★LI"


def test_a_broadcast_whose_sms_would_pass_ten_segments_is_refused_before_approval(
        db_engine, clock) -> None:  # type: ignore[no-untyped-def]
    """Creating a broadcast of 700 characters (11 UCS-2 segments with the frame) is refused with the
    segment count, so it never waits for an approver."""
    from sqlmodel import Session

    from models.db import writer
    from models.staff import StaffUser
    from outreach.broadcasts import BroadcastRefused, create_broadcast

    with Session(writer(db_engine)) as s:
        author = StaffUser(username="composer", roles=["composer"], password_hash="x")
        s.add(author)
        s.commit()
        with pytest.raises(BroadcastRefused, match="refused:.*10") as info:
            create_broadcast(s, author=author, title="long", audience={}, text="长" * 700, now=clock.now(),
                             templates=TemplateSet())
        assert "segments" in str(info.value)
        b = create_broadcast(s, author=author, title="short", audience={}, text="{{ salutation }}，周六义诊。",
                             now=clock.now(), templates=TemplateSet())
        assert b.status == "pending_approval"
