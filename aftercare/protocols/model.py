"""What a care protocol is once loaded (steps with a time rule, a channel and a template key), and the parsing
helpers the protocol and template loaders share."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time, timedelta
from pathlib import Path
from typing import Literal

import yaml

StepChannel = Literal["sms", "email"]
CHANNELS: tuple[StepChannel, ...] = ("sms", "email")
RedFlagLevel = Literal["emergency", "urgent"]
RED_FLAG_LEVELS: tuple[RedFlagLevel, ...] = ("emergency", "urgent")

_DURATION = re.compile(r"^(\d+)([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
_WALL_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class ProtocolError(ValueError):
    """A protocol or template file is unusable; the message names the file, the step and the field."""


@dataclass(frozen=True)
class After:
    """A fixed span after the treatment, counted in real elapsed time (DST does not stretch it)."""

    offset: timedelta

    def earliest_offset(self) -> timedelta:
        """The shortest time after the treatment this step can come: always its offset."""
        return self.offset


@dataclass(frozen=True)
class DayAt:
    """A local wall-clock time on calendar day N after the treatment date (day 0 = the treatment date)."""

    day: int
    at: time

    def earliest_offset(self) -> timedelta:
        """The shortest time after the treatment this step can come: after a treatment just before midnight
        (ignoring a clock change), so day 3 at 10:00 may be only 58 hours after it."""
        wall = timedelta(hours=self.at.hour, minutes=self.at.minute)
        return max(timedelta(0), timedelta(days=self.day - 1) + wall)


When = After | DayAt


@dataclass(frozen=True)
class RedFlag:
    """A check-in's closed red-flag question ("... Reply YES or NO"): what a one-word YES to it means."""

    level: RedFlagLevel  # the escalation level a YES opens
    answer_window: timedelta  # how long after the check-in was sent a one-word reply still answers it


@dataclass(frozen=True)
class Step:
    id: str
    when: When
    channel: StepChannel
    template: str
    fresh_for: timedelta
    checkin: bool = False
    # A safety-critical step (warning signs, first-night check-ins) ignores quiet hours.
    safety: bool = False
    red_flag: RedFlag | None = None


@dataclass(frozen=True)
class Protocol:
    key: str
    name: str
    version: int
    # A tuple, not a list: protocols are cached and shared, so nobody may append to one by accident.
    steps: tuple[Step, ...]
    source: Path

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise ProtocolError(f"{self.key}: no step '{step_id}' in version {self.version}")


def parse_duration(text: object) -> timedelta:
    """'90m', '2h', '3d' -> timedelta; one unit only, so a clinician cannot misread '1d12h' as 1.12 days."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(f'bad duration {text!r}; use a whole number and m, h or d, like "2h"')
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_wall_time(text: object) -> time:
    # YAML reads an unquoted 09:00 as the number 540 (base 60), hence the hint to quote it.
    match = _WALL_TIME.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(f'bad time {text!r}; use a quoted 24-hour "HH:MM", like "09:00"')
    return time(int(match.group(1)), int(match.group(2)))


def read_yaml(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProtocolError(f"{path.name}: file not found at {path}") from None
    except yaml.YAMLError as exc:
        raise ProtocolError(f"{path.name}: not valid YAML: {exc}") from None
