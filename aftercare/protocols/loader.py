"""Reads one YAML file per treatment into a Protocol, refusing anything it cannot schedule with certainty."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from aftercare.protocols.model import (
    CHANNELS,
    RED_FLAG_LEVELS,
    After,
    DayAt,
    Protocol,
    ProtocolError,
    RedFlag,
    RedFlagLevel,
    Step,
    StepChannel,
    When,
    parse_duration,
    parse_wall_time,
    read_yaml,
)
from aftercare.protocols.templates import EmailTemplate, TemplateCatalog, default_catalog

TREATMENTS: tuple[str, ...] = (
    "mesotherapy",
    "skin-booster",
    "dermal-filler",
    "chemical-peel",
    "microneedling",
    "laser-resurfacing",
)
DATA_DIR = Path(__file__).parent / "data"

_PROTOCOL_FIELDS = {"key", "name", "version", "steps"}
_STEP_REQUIRED = {"id", "when", "channel", "template", "fresh_for"}
_STEP_OPTIONAL = {"checkin", "safety", "red_flag"}
_RED_FLAG_FIELDS = {"level", "answer_window"}
_RED_FLAG_SHAPE = "expected {level: emergency or urgent, answer_window: DURATION}"
# Vascular occlusion after filler or skin booster shows within hours to about 3 days (blanching at once, livedo
# within hours, blisters around day 3; CLINICAL-NOTES.md), and vision loss can be permanent within about 90
# minutes: every check-in in that window must ask the closed question, and a YES must page as an emergency.
OCCLUSION_SCREENING: dict[str, timedelta] = {"dermal-filler": timedelta(hours=72), "skin-booster": timedelta(hours=72)}
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_WHEN_SHAPE = 'expected {after: DURATION} or {day: N, at: "HH:MM"}'
_STEP_ID_MAX = 64  # the outbox stores it in a short column

T = TypeVar("T")


def load_protocol(key: str) -> Protocol:
    """The protocol for a treatment key, in any case ("Dermal-Filler" is dermal-filler); ProtocolError if unknown."""
    return _load_known(key.lower())


@cache
def _load_known(key: str) -> Protocol:
    if key not in TREATMENTS:
        raise ProtocolError(f"unknown treatment {key!r}; choose one of: {', '.join(TREATMENTS)}")
    return load_protocol_file(DATA_DIR / f"{key}.yaml")


def list_protocols() -> list[Protocol]:
    return [load_protocol(key) for key in TREATMENTS]


def load_protocol_file(path: Path | str, *, catalog: TemplateCatalog | None = None) -> Protocol:
    """Load and validate one protocol file; every step's template must exist in every language. Raises ProtocolError
    with the first problem found."""
    protocol = _load(Path(path), catalog, _Problems(collect=False))
    assert protocol is not None  # strict problems raise instead of returning nothing
    return protocol


def protocol_file_errors(path: Path | str, *, catalog: TemplateCatalog | None = None) -> list[str]:
    """Every problem in one protocol file (not only the first), in file order; [] when it is valid."""
    problems = _Problems(collect=True)
    _load(Path(path), catalog, problems)
    return list(dict.fromkeys(problems.messages))  # a missing field is reported once, not by each check


class _Problems:
    """Where validation problems go: raised at once (loading for the app) or collected (`protocols validate`)."""

    def __init__(self, *, collect: bool) -> None:
        self.collect = collect
        self.messages: list[str] = []

    def fail(self, message: str) -> None:
        self.check(_raise, message)

    def check(self, parse: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """parse(*args, **kwargs), or None (the problem noted) when it raises ProtocolError while collecting."""
        try:
            return parse(*args, **kwargs)
        except ProtocolError as exc:
            if not self.collect:
                raise
            self.messages.append(str(exc))
            return None


def _raise(message: str) -> None:
    raise ProtocolError(message)


def _load(path: Path, catalog: TemplateCatalog | None, problems: _Problems) -> Protocol | None:
    where = path.name
    raw = problems.check(read_yaml, path)
    if not isinstance(raw, dict):
        if not problems.messages:
            problems.fail(f"{where}: expected a mapping with fields key, name, version and steps")
        return None
    _check_fields(where, raw, problems, required=_PROTOCOL_FIELDS)
    key = problems.check(_field, where, raw, "key", _slug)
    if key is not None and key != path.stem:
        problems.fail(f"{where}: field 'key': '{key}' does not match the file name")
    name = problems.check(_field, where, raw, "name", _text)
    version = problems.check(_field, where, raw, "version", _positive_int)
    steps = _parse_steps(where, raw.get("steps"), problems.check(lambda: catalog or default_catalog()), problems)
    if steps is not None and key is not None:
        _check_occlusion_screening(where, key, steps, problems)
    if problems.messages or key is None or name is None or version is None or steps is None:
        return None
    return Protocol(key=key, name=name, version=version, steps=steps, source=path)


def _parse_steps(where: str, raw: object, catalog: TemplateCatalog | None,
                 problems: _Problems) -> tuple[Step, ...] | None:
    """The steps, or None when any of them has a problem (each one noted)."""
    if not isinstance(raw, list) or not raw:
        problems.fail(f"{where}: field 'steps': expected a non-empty list of steps")
        return None
    steps: list[Step] = []
    complete = catalog is not None
    for number, item in enumerate(raw, start=1):
        step = _parse_step(where, number, item, catalog, problems)
        if step is None:
            complete = False
        elif any(seen.id == step.id for seen in steps):
            problems.fail(f"{where}: step '{step.id}': field 'id': duplicate step id")
            complete = False
        else:
            steps.append(step)
    return tuple(steps) if complete else None


def _parse_step(filename: str, number: int, raw: object, catalog: TemplateCatalog | None,
                problems: _Problems) -> Step | None:
    if not isinstance(raw, dict):
        problems.fail(f"{filename}: step #{number}: expected a mapping with fields {_listed(_STEP_REQUIRED)}")
        return None
    where = f"{filename}: step #{number}"
    step_id = problems.check(_field, where, raw, "id", _step_id)
    if step_id is not None:
        where = f"{filename}: step '{step_id}'"
    _check_fields(where, raw, problems, required=_STEP_REQUIRED, optional=_STEP_OPTIONAL)
    channel = problems.check(_field, where, raw, "channel", _channel)
    when = problems.check(_parse_when, where, raw.get("when")) if "when" in raw else None
    template = (problems.check(_field, where, raw, "template", lambda value: _template(value, channel, catalog))
                if catalog is not None and channel is not None else None)
    fresh_for = problems.check(_field, where, raw, "fresh_for", _positive_duration)
    checkin = problems.check(_field, where, raw, "checkin", _boolean) if "checkin" in raw else False
    safety = problems.check(_field, where, raw, "safety", _boolean) if "safety" in raw else False
    red_flag = _parse_red_flag(where, raw, problems)
    parts = (step_id, when, channel, template, fresh_for, checkin, safety)
    if any(part is None for part in parts) or red_flag is False:
        return None
    return Step(id=step_id, when=when, channel=channel, template=template, fresh_for=fresh_for,  # type: ignore[arg-type]
                checkin=checkin, safety=safety, red_flag=red_flag)  # type: ignore[arg-type]


def _parse_red_flag(where: str, raw: dict[str, Any], problems: _Problems) -> RedFlag | None | bool:
    """The step's red flag, None when it has none, False when it has a problem (noted)."""
    if "red_flag" not in raw:
        return None
    value = raw["red_flag"]
    if not isinstance(value, dict) or set(value) != _RED_FLAG_FIELDS:
        problems.fail(f"{where}: field 'red_flag': {_RED_FLAG_SHAPE}")
        return False
    # A one-word reply is read against the last check-in sent; an email or a plain notice is never replied to.
    if raw.get("channel") != "sms" or raw.get("checkin") is not True:
        problems.fail(f"{where}: field 'red_flag': only an sms check-in step (checkin: true) can carry one")
        return False
    level = problems.check(_field, where, value, "level", _red_flag_level, prefix="red_flag.")
    window = problems.check(_field, where, value, "answer_window", _positive_duration, prefix="red_flag.")
    return RedFlag(level=level, answer_window=window) if level is not None and window is not None else False


def _check_occlusion_screening(where: str, key: str, steps: tuple[Step, ...], problems: _Problems) -> None:
    """Refuse a filler or booster protocol whose early check-ins do not all screen for vascular occlusion."""
    window = OCCLUSION_SCREENING.get(key)
    if window is None:
        return
    early = [step for step in steps if step.checkin and step.when.earliest_offset() <= window]
    hours = int(window.total_seconds() // 3600)
    if not early:
        problems.fail(f"{where}: field 'steps': a {key} protocol needs sms check-ins in the first {hours} "
                      "hours, each with a red-flag question (red_flag: {level: emergency, ...})")
    for step in early:
        if step.red_flag is None or step.red_flag.level != "emergency":
            problems.fail(f"{where}: step '{step.id}': field 'red_flag': every {key} check-in in the first "
                          f"{hours} hours must end with a red-flag question for vascular occlusion and eye "
                          "signs, with red_flag: {level: emergency, answer_window: DURATION}")


def _parse_when(where: str, raw: object) -> When:
    if isinstance(raw, dict) and set(raw) == {"after"}:
        return After(offset=_field(where, raw, "after", parse_duration, prefix="when."))
    if isinstance(raw, dict) and set(raw) == {"day", "at"}:
        day = _field(where, raw, "day", _non_negative_int, prefix="when.")
        return DayAt(day=day, at=_field(where, raw, "at", parse_wall_time, prefix="when."))
    raise ProtocolError(f"{where}: field 'when': {_WHEN_SHAPE}")


# Field checks: each takes the raw value and returns the parsed one or raises ValueError with the reason.


def _field(where: str, raw: dict[str, Any], name: str, parse: Callable[[Any], T], prefix: str = "") -> T:
    if name not in raw:
        raise ProtocolError(f"{where}: field '{prefix}{name}': missing")
    try:
        return parse(raw[name])
    except ValueError as exc:
        raise ProtocolError(f"{where}: field '{prefix}{name}': {exc}") from None


def _check_fields(where: str, raw: dict[str, Any], problems: _Problems, *, required: set[str],
                  optional: set[str] | None = None) -> None:
    for name in sorted(required - raw.keys()):
        problems.fail(f"{where}: field '{name}': missing")
    allowed = _listed(required | (optional or set()))
    for name in sorted(str(key) for key in raw.keys() - required - (optional or set())):
        problems.fail(f"{where}: field '{name}': unknown field; allowed: {allowed}")


def _listed(names: set[str] | frozenset[str]) -> str:
    return ", ".join(sorted(names))


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty text, got {value!r}")
    return value.strip()


def _slug(value: object) -> str:
    if not isinstance(value, str) or not _SLUG.match(value):
        raise ValueError(f"expected a lowercase slug like 'day1-morning', got {value!r}")
    return value


def _step_id(value: object) -> str:
    slug = _slug(value)
    if len(slug) > _STEP_ID_MAX:
        raise ValueError(f"longer than {_STEP_ID_MAX} characters")
    return slug


def _integer(value: object) -> int:
    # bool is an int in Python; `version: yes` is a typo, not version 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {value!r}")
    return value


def _positive_int(value: object) -> int:
    number = _integer(value)
    if number < 1:
        raise ValueError(f"expected a number of 1 or more, got {number}")
    return number


def _non_negative_int(value: object) -> int:
    number = _integer(value)
    if number < 0:
        raise ValueError(f"expected 0 (the treatment date) or more, got {number}")
    return number


def _positive_duration(value: object) -> timedelta:
    duration = parse_duration(value)
    if not duration:
        raise ValueError("expected a duration longer than zero")
    return duration


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _red_flag_level(value: object) -> RedFlagLevel:
    for level in RED_FLAG_LEVELS:
        if value == level:
            return level
    raise ValueError(f"unknown level {value!r}; choose one of: {', '.join(RED_FLAG_LEVELS)}")


def _channel(value: object) -> StepChannel:
    for channel in CHANNELS:
        if value == channel:
            return channel
    raise ValueError(f"unknown channel {value!r}; choose one of: {', '.join(CHANNELS)}")


def _template(value: object, channel: StepChannel, catalog: TemplateCatalog) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a template key, got {value!r}")
    missing = catalog.missing_in(value)
    if missing:
        raise ValueError(f"no template '{value}' in {', '.join(f'{language}.yaml' for language in missing)}")
    # An SMS must be a plain text: a subject/body email would be squeezed into a text message.
    if channel == "sms" and any(isinstance(texts[value], EmailTemplate) for texts in catalog.texts.values()):
        raise ValueError(f"'{value}' is an email template (subject/body); an sms step needs a plain text")
    return value
