"""The planner: protocol steps to UTC due times, across time zones, quiet hours, DST gaps and folds."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aftercare.protocols import After, DayAt, Step, list_protocols, load_protocol
from aftercare.schedule.planner import (
    DEFAULT_QUIET_HOURS,
    QuietHours,
    due_at,
    next_allowed,
    plan_due_at,
    step_time,
    wall_to_utc,
)

NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
JAKARTA = ZoneInfo("Asia/Jakarta")
NO_QUIET = QuietHours(time(0), time(0))


def _loadable(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


ALL_ZONES = sorted(name for name in available_timezones() if _loadable(name))
# Zones with DST, odd offsets or odd transitions, drawn more often than their share of the list.
TRICKY_ZONES = [
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Jakarta",
    "Pacific/Chatham",
    "America/Santiago",
    "Africa/Casablanca",
    "Europe/Dublin",
    "Pacific/Apia",
    "Antarctica/Troll",
    "America/St_Johns",
    "Asia/Tehran",
    "Australia/Adelaide",
    "America/Havana",
    "Asia/Kathmandu",
]
REAL_STEPS = [step for protocol in list_protocols() for step in protocol.steps]

zones = st.one_of(st.sampled_from(TRICKY_ZONES), st.sampled_from(ALL_ZONES)).map(ZoneInfo)
instants = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2060, 12, 31), timezones=st.just(UTC))
wall_times = st.builds(time, st.integers(0, 23), st.integers(0, 59))
quiet_hours = st.one_of(st.just(DEFAULT_QUIET_HOURS), st.builds(QuietHours, wall_times, wall_times))
random_steps = st.builds(
    Step,
    id=st.just("random"),
    when=st.one_of(
        st.builds(After, st.integers(0, 120 * 24 * 60).map(lambda minutes: timedelta(minutes=minutes))),
        st.builds(DayAt, st.integers(0, 120), wall_times),
    ),
    channel=st.just("sms"),
    template=st.just("checkin.day1"),
    fresh_for=st.just(timedelta(days=1)),
)
steps = st.one_of(st.sampled_from(REAL_STEPS), random_steps)


@st.composite
def treatment_times(draw: st.DrawFn) -> datetime:
    """An aware treatment time, written in some zone's offset (the planner must not care which)."""
    return draw(instants).astimezone(draw(zones))


def local_wall(moment: datetime, tz: ZoneInfo) -> time:
    return moment.astimezone(tz).time()


# Properties ---------------------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(step=steps, treated_at=treatment_times(), tz=zones, quiet=quiet_hours)
def test_due_time_is_utc_not_before_the_step_and_never_in_quiet_hours(step, treated_at, tz, quiet) -> None:
    raw = step_time(step, treated_at=treated_at, tz=tz)
    due = plan_due_at(step, treated_at=treated_at, tz=tz, quiet=quiet)
    assert raw.tzinfo is UTC and due.tzinfo is UTC
    assert due >= raw
    if step.safety:
        assert due == raw  # warning signs and first-night check-ins are never held back by quiet hours
        return
    assert not quiet.contains(local_wall(due, tz))
    # A quiet window is shorter than a day; a clock falling back can add a few hours, never another day.
    assert due - raw < timedelta(hours=30)


@settings(max_examples=300, deadline=None)
@given(moment=instants, tz=zones, quiet=quiet_hours, fraction=st.floats(0, 1, exclude_max=True))
def test_a_message_waits_only_while_it_is_quiet(moment, tz, quiet, fraction) -> None:
    due = next_allowed(moment, tz=tz, quiet=quiet)
    if due == moment:
        assert not quiet.contains(local_wall(moment, tz))
        return
    # Every instant between the planned time and the due time is inside quiet hours: due is the first allowed one.
    between = min(moment + (due - moment) * fraction, due - timedelta(microseconds=1))  # float rounding
    assert quiet.contains(local_wall(between, tz))
    assert quiet.contains(local_wall(due - timedelta(seconds=1), tz))


@settings(max_examples=300, deadline=None)
@given(moment=instants, later_by=st.integers(0, 3 * 24 * 3600), tz=zones, quiet=quiet_hours)
def test_moving_out_of_quiet_hours_never_reorders_two_times(moment, later_by, tz, quiet) -> None:
    later = moment + timedelta(seconds=later_by)
    assert next_allowed(moment, tz=tz, quiet=quiet) <= next_allowed(later, tz=tz, quiet=quiet)


@settings(max_examples=200, deadline=None)
@given(moment=instants, tz=zones, quiet=quiet_hours)
def test_an_allowed_time_is_left_alone(moment, tz, quiet) -> None:
    due = next_allowed(moment, tz=tz, quiet=quiet)
    assert next_allowed(due, tz=tz, quiet=quiet) == due


@settings(max_examples=200, deadline=None)
@given(index=st.integers(0, len(list_protocols()) - 1), treated_at=treatment_times(), tz=zones, quiet=quiet_hours)
def test_every_protocol_keeps_its_order(index, treated_at, tz, quiet) -> None:
    protocol = list_protocols()[index]
    planned = [
        (step_time(step, treated_at=treated_at, tz=tz), plan_due_at(step, treated_at=treated_at, tz=tz, quiet=quiet))
        for step in protocol.steps
    ]
    for step_a, (raw_a, due_a) in zip(protocol.steps, planned, strict=True):
        for step_b, (raw_b, due_b) in zip(protocol.steps, planned, strict=True):
            # A safety step may overtake a routine one that waits out the night, never the other way round.
            if raw_a <= raw_b and not (step_b.safety and not step_a.safety):
                assert due_a <= due_b


@settings(max_examples=300, deadline=None)
@given(day=st.integers(0, 120), at=wall_times, treated_at=treatment_times(), tz=zones)
def test_a_day_step_lands_on_its_local_day_and_wall_time_or_just_after_a_gap(day, at, treated_at, tz) -> None:
    step = Step(id="s", when=DayAt(day, at), channel="sms", template="checkin.day1", fresh_for=timedelta(days=1))
    raw = step_time(step, treated_at=treated_at, tz=tz)
    wanted = datetime.combine(treated_at.astimezone(tz).date() + timedelta(days=day), at)
    landed = raw.astimezone(tz).replace(tzinfo=None)
    if landed != wanted:
        # Only a wall time that does not exist moves, and only to the instant the clock jumps past it.
        assert landed > wanted
        assert (raw - timedelta(seconds=1)).astimezone(tz).replace(tzinfo=None) < wanted
        assert wanted.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None) != wanted


@settings(max_examples=200, deadline=None)
@given(minutes=st.integers(0, 120 * 24 * 60), treated_at=treatment_times(), tz=zones)
def test_an_offset_step_is_elapsed_time_whatever_the_clocks_do(minutes, treated_at, tz) -> None:
    offset = timedelta(minutes=minutes)
    step = Step(id="s", when=After(offset), channel="sms", template="checkin.day1", fresh_for=timedelta(days=1))
    assert step_time(step, treated_at=treated_at, tz=tz) - treated_at == offset


@settings(max_examples=200, deadline=None)
@given(moment=instants, tz=zones)
def test_no_quiet_hours_means_no_waiting(moment, tz) -> None:
    assert next_allowed(moment, tz=tz, quiet=NO_QUIET) == moment


# DST examples ---------------------------------------------------------------------------------------------


def day_step(day: int, at: time) -> Step:
    return Step(id="s", when=DayAt(day, at), channel="sms", template="checkin.day1", fresh_for=timedelta(days=1))


def after_step(offset: timedelta) -> Step:
    return Step(id="s", when=After(offset), channel="sms", template="checkin.day1", fresh_for=timedelta(days=1))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("tz", "treated_at", "at", "expected"),
    [
        # New York springs forward 02:00 -> 03:00 on 2026-03-08: 02:30 does not exist, 03:00 EDT does.
        (NEW_YORK, datetime(2026, 3, 7, 15, 0), time(2, 30), utc(2026, 3, 8, 7, 0)),
        # New York falls back 02:00 -> 01:00 on 2026-11-01: 01:30 happens twice, the first (EDT) counts.
        (NEW_YORK, datetime(2026, 10, 31, 15, 0), time(1, 30), utc(2026, 11, 1, 5, 30)),
        # London springs forward 01:00 -> 02:00 on 2026-03-29.
        (LONDON, datetime(2026, 3, 28, 12, 0), time(1, 30), utc(2026, 3, 29, 1, 0)),
        # London falls back 02:00 -> 01:00 on 2026-10-25: the first 01:30 is still BST.
        (LONDON, datetime(2026, 10, 24, 12, 0), time(1, 30), utc(2026, 10, 25, 0, 30)),
        # Lord Howe moves only 30 minutes: 02:00 -> 02:30 on 2026-10-04.
        (ZoneInfo("Australia/Lord_Howe"), datetime(2026, 10, 3, 12, 0), time(2, 15), utc(2026, 10, 3, 15, 30)),
        # Chatham (+12:45) springs forward 02:45 -> 03:45 on 2026-09-27.
        (ZoneInfo("Pacific/Chatham"), datetime(2026, 9, 26, 12, 0), time(3, 0), utc(2026, 9, 26, 14, 0)),
        # Samoa skipped 30 December 2011 entirely: the next instant is 31 December 00:00.
        (ZoneInfo("Pacific/Apia"), datetime(2011, 12, 29, 10, 0), time(9, 0), utc(2011, 12, 30, 10, 0)),
        # An ordinary morning just after the change: 09:00 EDT.
        (NEW_YORK, datetime(2026, 3, 7, 15, 0), time(9, 0), utc(2026, 3, 8, 13, 0)),
    ],
)
def test_day_one_wall_times_around_clock_changes(tz, treated_at, at, expected) -> None:
    raw = step_time(day_step(1, at), treated_at=treated_at.replace(tzinfo=tz), tz=tz)
    assert raw == expected and raw.tzinfo is UTC


def test_fold_and_gap_helpers() -> None:
    assert wall_to_utc(datetime(2026, 3, 8, 2, 30), NEW_YORK).astimezone(NEW_YORK).time() == time(3, 0)
    assert wall_to_utc(datetime(2026, 11, 1, 1, 30), NEW_YORK).astimezone(NEW_YORK).utcoffset() == timedelta(hours=-4)
    with pytest.raises(ValueError, match="naive"):
        wall_to_utc(datetime(2026, 1, 1, tzinfo=UTC), NEW_YORK)


def test_an_offset_step_counts_real_hours_across_spring_forward() -> None:
    treated_at = datetime(2026, 3, 7, 20, 0, tzinfo=NEW_YORK)  # 01:00 UTC on the 8th
    raw = step_time(after_step(timedelta(hours=12)), treated_at=treated_at, tz=NEW_YORK)
    assert raw == utc(2026, 3, 8, 13, 0)
    assert raw.astimezone(NEW_YORK).time() == time(9, 0)  # 13 wall-clock hours later: one hour vanished


@pytest.mark.parametrize(
    ("tz", "moment", "quiet", "expected"),
    [
        # Quiet until 08:00 local on the night the clocks spring forward / fall back.
        (NEW_YORK, utc(2026, 3, 8, 6, 0), DEFAULT_QUIET_HOURS, utc(2026, 3, 8, 12, 0)),
        (NEW_YORK, utc(2026, 11, 1, 4, 30), DEFAULT_QUIET_HOURS, utc(2026, 11, 1, 13, 0)),
        (LONDON, utc(2026, 3, 28, 23, 0), DEFAULT_QUIET_HOURS, utc(2026, 3, 29, 7, 0)),
        (LONDON, utc(2026, 10, 24, 22, 0), DEFAULT_QUIET_HOURS, utc(2026, 10, 25, 8, 0)),
        # The end of quiet hours falls in the gap: the first allowed instant is the jump, 03:00 EDT.
        (NEW_YORK, utc(2026, 3, 8, 6, 59), QuietHours(time(22), time(2, 30)), utc(2026, 3, 8, 7, 0)),
        # The end falls in the fold: before it, the first 01:30; inside the repeated hour, the second.
        (NEW_YORK, utc(2026, 11, 1, 4, 0), QuietHours(time(22), time(1, 30)), utc(2026, 11, 1, 5, 30)),
        (NEW_YORK, utc(2026, 11, 1, 6, 10), QuietHours(time(22), time(1, 30)), utc(2026, 11, 1, 6, 30)),
        # Allowed already: unchanged.
        (JAKARTA, utc(2026, 5, 10, 3, 0), DEFAULT_QUIET_HOURS, utc(2026, 5, 10, 3, 0)),
        # 20:59 is allowed, 21:00 is quiet, 08:00 is allowed again.
        (JAKARTA, utc(2026, 5, 10, 13, 59), DEFAULT_QUIET_HOURS, utc(2026, 5, 10, 13, 59)),
        (JAKARTA, utc(2026, 5, 10, 14, 0), DEFAULT_QUIET_HOURS, utc(2026, 5, 11, 1, 0)),
        (JAKARTA, utc(2026, 5, 11, 1, 0), DEFAULT_QUIET_HOURS, utc(2026, 5, 11, 1, 0)),
    ],
)
def test_next_allowed_examples(tz, moment, quiet, expected) -> None:
    assert next_allowed(moment, tz=tz, quiet=quiet) == expected


def test_a_routine_step_after_an_evening_treatment_waits_for_the_morning() -> None:
    treated_at = datetime(2026, 5, 10, 20, 0, tzinfo=JAKARTA)
    due = plan_due_at(after_step(timedelta(hours=2)), treated_at=treated_at, tz=JAKARTA, quiet=DEFAULT_QUIET_HOURS)
    assert due == datetime(2026, 5, 11, 8, 0, tzinfo=JAKARTA)


def test_a_safety_step_planned_inside_quiet_hours_is_due_at_its_raw_time() -> None:
    treated_at = datetime(2026, 5, 10, 20, 0, tzinfo=JAKARTA)
    step = replace(after_step(timedelta(hours=2)), safety=True)
    due = plan_due_at(step, treated_at=treated_at, tz=JAKARTA, quiet=DEFAULT_QUIET_HOURS)
    assert due == datetime(2026, 5, 10, 22, 0, tzinfo=JAKARTA) and due.tzinfo is UTC


def test_an_evening_filler_treatment_gets_its_warning_signs_that_evening() -> None:
    protocol = load_protocol("dermal-filler")
    treated_at = datetime(2026, 5, 10, 19, 30, tzinfo=JAKARTA)
    due = {step.id: plan_due_at(step, treated_at=treated_at, tz=JAKARTA, quiet=DEFAULT_QUIET_HOURS).astimezone(JAKARTA)
           for step in protocol.steps}
    assert due["first-hours"] == datetime(2026, 5, 10, 21, 30, tzinfo=JAKARTA)
    assert due["checkin-evening"] == datetime(2026, 5, 10, 23, 30, tzinfo=JAKARTA)
    assert due["aftercare-summary"] == datetime(2026, 5, 10, 20, 0, tzinfo=JAKARTA)
    assert due["day1-morning"] == datetime(2026, 5, 11, 9, 0, tzinfo=JAKARTA)


def test_a_late_safety_step_is_due_now_even_inside_quiet_hours() -> None:
    step = replace(after_step(timedelta(hours=2)), safety=True)
    planned = datetime(2026, 5, 10, 21, 30, tzinfo=JAKARTA)
    now = datetime(2026, 5, 10, 23, 30, tzinfo=JAKARTA)
    assert due_at(step, planned=planned, now=now, tz=JAKARTA, quiet=DEFAULT_QUIET_HOURS) == now
    routine = after_step(timedelta(hours=2))
    morning = datetime(2026, 5, 11, 8, 0, tzinfo=JAKARTA)
    assert due_at(routine, planned=planned, now=now, tz=JAKARTA, quiet=DEFAULT_QUIET_HOURS) == morning
    # Not yet late: the raw time, not now.
    early = datetime(2026, 5, 10, 21, 0, tzinfo=JAKARTA)
    assert due_at(step, planned=planned, now=early, tz=JAKARTA, quiet=DEFAULT_QUIET_HOURS) == planned


def test_the_day_is_the_patients_local_date_not_utc() -> None:
    # 06:00 in Jakarta is still the previous day in UTC; day 1 is the next Jakarta date.
    treated_at = datetime(2026, 5, 10, 6, 0, tzinfo=JAKARTA)
    due = plan_due_at(
        day_step(1, time(9)), treated_at=treated_at.astimezone(UTC), tz=JAKARTA, quiet=DEFAULT_QUIET_HOURS
    )
    assert due == datetime(2026, 5, 11, 9, 0, tzinfo=JAKARTA)


def test_any_offset_for_the_treatment_time_gives_the_same_plan() -> None:
    step = day_step(3, time(10))
    plain = datetime(2026, 5, 10, 14, 0, tzinfo=JAKARTA)
    fixed = plain.astimezone(timezone(timedelta(hours=-3)))
    assert step_time(step, treated_at=plain, tz=JAKARTA) == step_time(step, treated_at=fixed, tz=JAKARTA)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="treated_at must be timezone-aware"):
        step_time(day_step(1, time(9)), treated_at=datetime(2026, 5, 10, 14, 0), tz=JAKARTA)
    with pytest.raises(ValueError, match="when_utc must be timezone-aware"):
        next_allowed(datetime(2026, 5, 10, 14, 0), tz=JAKARTA, quiet=DEFAULT_QUIET_HOURS)


# Quiet hours ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("21:00-08:00", time(21), time(8)),
        (" 9:30 - 17:05 ", time(9, 30), time(17, 5)),
        ("00:00-00:00", time(0), time(0)),
    ],
)
def test_quiet_hours_parse(text: str, start: time, end: time) -> None:
    assert QuietHours.parse(text) == QuietHours(start, end)


@pytest.mark.parametrize("text", ["", "21-08", "21:00", "24:00-08:00", "21:60-08:00", "21:00_08:00", "9pm-8am"])
def test_quiet_hours_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="quiet hours must look like 21:00-08:00"):
        QuietHours.parse(text)


def test_quiet_hours_contains() -> None:
    overnight = QuietHours.parse("21:00-08:00")
    assert overnight.contains(time(21)) and overnight.contains(time(23, 59)) and overnight.contains(time(0))
    assert overnight.contains(time(7, 59, 59)) and not overnight.contains(time(8))
    assert not overnight.contains(time(12)) and not overnight.contains(time(20, 59))
    daytime = QuietHours.parse("12:00-13:30")
    assert daytime.contains(time(12)) and daytime.contains(time(13, 29)) and not daytime.contains(time(13, 30))
    assert not daytime.contains(time(11, 59))
    assert not NO_QUIET.contains(time(0)) and not NO_QUIET.contains(time(12))
    assert overnight.contains(time(22, tzinfo=UTC))  # a wall time is compared as a wall time
    assert str(overnight) == "21:00-08:00"
