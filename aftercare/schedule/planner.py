"""Turns a protocol step into a UTC due time: the patient's calendar, the clinic's quiet hours, DST gaps and folds.

Only zoneinfo is used. Python's aware-datetime arithmetic is wall-clock arithmetic within one tzinfo, so every
sum here is done in UTC and converted to local time only to read or build a wall clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo

from aftercare.protocols import After, Step

_QUIET = re.compile(r"^\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)\s*$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Each hop reaches the end of quiet hours or a clock change; more than a few means a bug, not a time zone.
_MAX_HOPS = 8


@dataclass(frozen=True)
class QuietHours:
    """Local wall-clock window in which routine messages wait; start is quiet, end is the first allowed minute."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("quiet hours are local wall-clock times; pass times without tzinfo")

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        match = _QUIET.match(text) if isinstance(text, str) else None
        if not match:
            raise ValueError(f"quiet hours must look like 21:00-08:00, got {text!r}")
        start_h, start_m, end_h, end_m = map(int, match.groups())
        return cls(time(start_h, start_m), time(end_h, end_m))

    def contains(self, local_wall_time: time) -> bool:
        wall = local_wall_time.replace(tzinfo=None)
        if self.start == self.end:
            return False  # an empty window: the clinic has no quiet hours
        if self.start < self.end:
            return self.start <= wall < self.end
        return wall >= self.start or wall < self.end  # the window crosses midnight

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


DEFAULT_QUIET_HOURS = QuietHours(time(21, 0), time(8, 0))


def plan_due_at(step: Step, *, treated_at: datetime, tz: tzinfo, quiet: QuietHours) -> datetime:
    """When a step should go out if enrolled in time: its raw time, a routine step moved out of quiet hours."""
    return due_at(step, planned=step_time(step, treated_at=treated_at, tz=tz), now=None, tz=tz, quiet=quiet)


def due_at(step: Step, *, planned: datetime, now: datetime | None, tz: tzinfo, quiet: QuietHours) -> datetime:
    """When a step goes out (UTC): its raw `planned` time, or `now` if that has passed (a late enrollment).
    A routine step then moves out of quiet hours; a safety step does not, since the warning signs after an
    evening filler must arrive that evening, while a blocked vessel can still be saved."""
    earliest = max(planned, now) if now is not None else planned
    return _as_utc(earliest, "planned") if step.safety else next_allowed(earliest, tz=tz, quiet=quiet)


def step_time(step: Step, *, treated_at: datetime, tz: tzinfo) -> datetime:
    """The step's raw UTC time, before quiet hours."""
    treated = _as_utc(treated_at, "treated_at")
    if isinstance(step.when, After):
        return treated + step.when.offset
    local_date = treated.astimezone(tz).date() + timedelta(days=step.when.day)
    return wall_to_utc(datetime.combine(local_date, step.when.at), tz)


def wall_to_utc(wall: datetime, tz: tzinfo) -> datetime:
    """A local wall time as UTC: in a gap, the first instant after it; in a fold, the first occurrence."""
    if wall.tzinfo is not None:
        raise ValueError("wall_to_utc takes a naive local wall time")
    earlier = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if earlier.astimezone(tz).replace(tzinfo=None) == wall:
        return earlier
    # The wall time does not exist. fold=0 read it with the offset from before the jump (landing after the
    # jump), fold=1 with the offset from after it (landing before): the jump itself lies between the two.
    before_jump = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    return _first_offset_change(before_jump, earlier, tz)


def next_allowed(when_utc: datetime, *, tz: tzinfo, quiet: QuietHours) -> datetime:
    """The first instant at or after when_utc whose local wall time is outside quiet hours, in UTC."""
    moment = _as_utc(when_utc, "when_utc")
    for _ in range(_MAX_HOPS):
        local = moment.astimezone(tz)
        if not quiet.contains(local.time()):
            return moment
        moment = _hop_towards_end(moment, local, tz, quiet)
    raise RuntimeError(f"no allowed time found after {when_utc.isoformat()} in {tz} with quiet hours {quiet}")


def _hop_towards_end(moment: datetime, local: datetime, tz: tzinfo, quiet: QuietHours) -> datetime:
    """The next instant worth checking: the end of quiet hours, or a clock change that comes first."""
    wall = local.replace(tzinfo=None)
    end = datetime.combine(wall.date(), quiet.end)
    if end <= wall:
        end += timedelta(days=1)
    target = moment + (end - wall)  # valid if the UTC offset holds until then
    if target.astimezone(tz).utcoffset() == local.utcoffset():
        return target
    # The clock jumps first (DST, or a zone changing its offset); the wall time after the jump decides.
    return _first_offset_change(moment, target, tz)


def _first_offset_change(low: datetime, high: datetime, tz: tzinfo) -> datetime:
    """The instant in (low, high] where the UTC offset changes, given that it differs at the two ends."""
    offset = low.astimezone(tz).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).utcoffset() == offset:
            low = middle
        else:
            high = middle
    # Time zone transitions fall on whole seconds, so the change is the first whole second after low.
    elapsed = low - _EPOCH
    return _EPOCH + timedelta(days=elapsed.days, seconds=elapsed.seconds + 1)


def _as_utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)
