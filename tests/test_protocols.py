"""Care protocols as data: the six shipped files load, and a bad file is refused with file, step and field."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path

import pytest

from aftercare.protocols import (
    TREATMENTS,
    After,
    DayAt,
    ProtocolError,
    RedFlag,
    Step,
    list_protocols,
    load_protocol,
    load_protocol_file,
    parse_duration,
)
from aftercare.protocols.loader import DATA_DIR, OCCLUSION_SCREENING

GOOD_STEP = """
  - id: first-hours
    when: {after: 2h}
    channel: sms
    template: checkin.day1
    fresh_for: 12h
"""


def nominal(step: Step) -> timedelta:
    """Time after a treatment at local midnight: the order a reader of the file expects."""
    if isinstance(step.when, After):
        return step.when.offset
    return timedelta(days=step.when.day, hours=step.when.at.hour, minutes=step.when.at.minute)


def write_protocol(tmp_path: Path, steps: str = GOOD_STEP, header: str = "", key: str = "mesotherapy") -> Path:
    path = tmp_path / f"{key}.yaml"
    text = header or f"key: {key}\nname: Test\nversion: 1\n"
    path.write_text(text + "steps:" + steps, encoding="utf-8")
    return path


# The shipped protocols ----------------------------------------------------------------------------------


def test_all_six_treatments_load_in_order() -> None:
    protocols = list_protocols()
    assert [protocol.key for protocol in protocols] == list(TREATMENTS)
    assert TREATMENTS == (
        "mesotherapy",
        "skin-booster",
        "dermal-filler",
        "chemical-peel",
        "microneedling",
        "laser-resurfacing",
    )
    for protocol in protocols:
        assert protocol.source == DATA_DIR / f"{protocol.key}.yaml"
        assert protocol.version >= 1 and protocol.name


def test_one_file_per_treatment_and_nothing_else() -> None:
    assert sorted(path.stem for path in DATA_DIR.glob("*.yaml")) == sorted(TREATMENTS)


def test_protocols_are_cached() -> None:
    assert load_protocol("mesotherapy") is load_protocol("mesotherapy")


def test_unknown_treatment_lists_the_choices() -> None:
    with pytest.raises(ProtocolError, match="unknown treatment 'botox'; choose one of: mesotherapy, skin-booster"):
        load_protocol("botox")


@pytest.mark.parametrize("key", TREATMENTS)
def test_steps_are_in_time_order_with_unique_ids(key: str) -> None:
    steps = load_protocol(key).steps
    assert [nominal(step) for step in steps] == sorted(nominal(step) for step in steps)
    assert len({step.id for step in steps}) == len(steps)


@pytest.mark.parametrize("key", TREATMENTS)
def test_each_protocol_mixes_sms_check_ins_and_an_email_summary(key: str) -> None:
    steps = load_protocol(key).steps
    channels = [step.channel for step in steps]
    assert channels.count("email") >= 1 and channels.count("sms") > channels.count("email")
    checkin_days = {step.when.day for step in steps if step.checkin and isinstance(step.when, DayAt)}
    assert {1, 3, 7}.issubset(checkin_days)
    assert max(checkin_days) >= 14


@pytest.mark.parametrize("key", TREATMENTS)
def test_routine_steps_fall_in_daytime(key: str) -> None:
    # Day steps inside the default quiet hours (21:00-08:00) would all be pushed to 08:00 and bunch up.
    for step in load_protocol(key).steps:
        if isinstance(step.when, DayAt):
            assert time(8) <= step.when.at < time(21), step.id
        else:
            assert step.when.offset <= timedelta(hours=8), step.id  # before the day 1 morning message


@pytest.mark.parametrize("key", TREATMENTS)
def test_first_day_steps_stay_fresh_long_enough_to_survive_a_night(key: str) -> None:
    # A treatment in the evening pushes the first-hours text to the next morning; it must not go stale first.
    first_hours = load_protocol(key).step("first-hours")
    assert first_hours.fresh_for >= timedelta(hours=12)


def test_mesotherapy_check_ins_reach_twelve_weeks_without_long_gaps() -> None:
    steps = load_protocol("mesotherapy").steps
    days = [step.when.day for step in steps if step.checkin and isinstance(step.when, DayAt)]
    assert max(days) >= 84
    later = [day for day in days if day >= 14]
    assert all(b - a <= 14 for a, b in zip(later, later[1:], strict=False))


def test_filler_asks_again_after_four_weeks_for_delayed_reactions() -> None:
    days = [step.when.day for step in load_protocol("dermal-filler").steps if isinstance(step.when, DayAt)]
    assert max(days) > 28


def test_step_lookup_by_id() -> None:
    protocol = load_protocol("dermal-filler")
    assert protocol.step("first-hours").when == After(timedelta(hours=2))
    assert protocol.step("day1-morning").when == DayAt(day=1, at=time(9, 0))
    with pytest.raises(ProtocolError, match="no step 'nope'"):
        protocol.step("nope")


def test_a_good_file_loads(tmp_path: Path) -> None:
    protocol = load_protocol_file(write_protocol(tmp_path))
    assert protocol.key == "mesotherapy" and protocol.version == 1
    assert protocol.steps == (
        Step(
            id="first-hours",
            when=After(timedelta(hours=2)),
            channel="sms",
            template="checkin.day1",
            fresh_for=timedelta(hours=12),
            checkin=False,
        ),
    )


def test_protocol_error_is_a_value_error() -> None:
    assert issubclass(ProtocolError, ValueError)


# Refused files: each error names the file, the step and the field ---------------------------------------


def replace_in_step(old: str, new: str) -> str:
    assert old in GOOD_STEP
    return GOOD_STEP.replace(old, new)


BAD_STEPS = [
    (
        "when: {after: 2h}",
        "when: {day: 1}",
        r"step 'first-hours': field 'when': expected \{after: DURATION\} or \{day: N, at: \"HH:MM\"\}",
    ),
    ("when: {after: 2h}", "when: {after: 2h, day: 1}", r"step 'first-hours': field 'when': expected"),
    ("when: {after: 2h}", "when: tomorrow", r"step 'first-hours': field 'when': expected"),
    ("when: {after: 2h}", "when: {after: 2 hours}", r"step 'first-hours': field 'when.after': bad duration '2 hours'"),
    ("when: {after: 2h}", 'when: {day: 1, at: "25:00"}', r"step 'first-hours': field 'when.at': bad time '25:00'"),
    # YAML reads an unquoted 10:30 as a base-60 number.
    (
        "when: {after: 2h}",
        "when: {day: 1, at: 10:30}",
        r"step 'first-hours': field 'when.at': bad time 630; use a quoted",
    ),
    ("when: {after: 2h}", 'when: {day: -1, at: "09:00"}', r"step 'first-hours': field 'when.day': expected 0"),
    ("when: {after: 2h}", 'when: {day: "1", at: "09:00"}', r"step 'first-hours': field 'when.day': expected a whole"),
    ("channel: sms", "channel: whatsapp", r"step 'first-hours': field 'channel': unknown channel 'whatsapp'"),
    (
        "template: checkin.day1",
        "template: checkin.day99",
        r"step 'first-hours': field 'template': no template 'checkin\.day99' in en\.yaml, id\.yaml",
    ),
    (
        "template: checkin.day1",
        "template: dermal-filler.summary",
        r"step 'first-hours': field 'template': 'dermal-filler\.summary' is an email template",
    ),
    ("fresh_for: 12h", "fresh_for: 0h", r"step 'first-hours': field 'fresh_for': expected a duration longer than zero"),
    ("fresh_for: 12h", "fresh_for: 1.5d", r"step 'first-hours': field 'fresh_for': bad duration"),
    ("fresh_for: 12h\n", "", r"step 'first-hours': field 'fresh_for': missing"),
    (
        "fresh_for: 12h",
        "fresh_for: 12h\n    checkin: maybe",
        r"step 'first-hours': field 'checkin': expected true or false",
    ),
    ("fresh_for: 12h", "fresh_for: 12h\n    priority: high", r"step 'first-hours': field 'priority': unknown field"),
    ("fresh_for: 12h", "fresh_for: 12h\n    safety: yes please", r"step 'first-hours': field 'safety': expected true or"),
    (
        "fresh_for: 12h",
        "fresh_for: 12h\n    red_flag: {level: urgent, answer_window: 12h}",
        r"step 'first-hours': field 'red_flag': only an sms check-in step \(checkin: true\) can carry one",
    ),
    (
        "channel: sms\n    template: checkin.day1\n    fresh_for: 12h",
        "channel: email\n    template: checkin.day1\n    fresh_for: 12h\n    checkin: true\n"
        "    red_flag: {level: urgent, answer_window: 12h}",
        r"step 'first-hours': field 'red_flag': only an sms check-in step",
    ),
    (
        "fresh_for: 12h",
        "fresh_for: 12h\n    checkin: true\n    red_flag: true",
        r"step 'first-hours': field 'red_flag': expected \{level: emergency or urgent, answer_window: DURATION\}",
    ),
    (
        "fresh_for: 12h",
        "fresh_for: 12h\n    checkin: true\n    red_flag: {level: urgent}",
        r"step 'first-hours': field 'red_flag': expected \{level",
    ),
    (
        "fresh_for: 12h",
        "fresh_for: 12h\n    checkin: true\n    red_flag: {level: critical, answer_window: 12h}",
        r"step 'first-hours': field 'red_flag\.level': unknown level 'critical'; choose one of: emergency, urgent",
    ),
    (
        "fresh_for: 12h",
        "fresh_for: 12h\n    checkin: true\n    red_flag: {level: urgent, answer_window: 12 hours}",
        r"step 'first-hours': field 'red_flag\.answer_window': bad duration '12 hours'",
    ),
    (
        "fresh_for: 12h",
        "fresh_for: 12h\n    checkin: true\n    red_flag: {level: urgent, answer_window: 0m}",
        r"step 'first-hours': field 'red_flag\.answer_window': expected a duration longer than zero",
    ),
    ("id: first-hours", "id: First Hours", r"step #1: field 'id': expected a lowercase slug"),
    ("id: first-hours\n    when", "when", r"step #1: field 'id': missing"),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD_STEPS)
def test_bad_step_is_refused_naming_file_step_and_field(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = write_protocol(tmp_path, steps=replace_in_step(old, new))
    with pytest.raises(ProtocolError, match=r"^mesotherapy\.yaml: " + message):
        load_protocol_file(path)


def test_duplicate_step_id_is_refused(tmp_path: Path) -> None:
    path = write_protocol(tmp_path, steps=GOOD_STEP + GOOD_STEP.replace("after: 2h", "after: 3h"))
    with pytest.raises(ProtocolError, match=r"^mesotherapy\.yaml: step 'first-hours': field 'id': duplicate step id"):
        load_protocol_file(path)


def test_second_step_errors_name_that_step(tmp_path: Path) -> None:
    second = GOOD_STEP.replace("first-hours", "day1-morning").replace("after: 2h", 'day: 1, at: "9am"')
    path = write_protocol(tmp_path, steps=GOOD_STEP + second)
    with pytest.raises(ProtocolError, match=r"^mesotherapy\.yaml: step 'day1-morning': field 'when.at': bad time"):
        load_protocol_file(path)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("key: mesotherapy\nname: Test\n", r"field 'version': missing"),
        ("key: mesotherapy\nname: Test\nversion: one\n", r"field 'version': expected a whole number, got 'one'"),
        ("key: mesotherapy\nname: Test\nversion: true\n", r"field 'version': expected a whole number, got True"),
        ("key: mesotherapy\nname: Test\nversion: 0\n", r"field 'version': expected a number of 1 or more"),
        ("key: mesotherapy\nname: Test\nversion: 1\nauthor: me\n", r"field 'author': unknown field"),
        ("key: botox\nname: Test\nversion: 1\n", r"field 'key': 'botox' does not match the file name"),
        ("key: mesotherapy\nname: ''\nversion: 1\n", r"field 'name': expected a non-empty text"),
    ],
)
def test_bad_protocol_fields_are_refused(tmp_path: Path, header: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=r"^mesotherapy\.yaml: " + message):
        load_protocol_file(write_protocol(tmp_path, header=header))


def test_empty_steps_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError, match=r"^mesotherapy\.yaml: field 'steps': expected a non-empty list"):
        load_protocol_file(write_protocol(tmp_path, steps=" []\n"))


def test_bad_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mesotherapy.yaml"
    path.write_text("key: mesotherapy\nsteps: [\n", encoding="utf-8")
    with pytest.raises(ProtocolError, match=r"^mesotherapy\.yaml: not valid YAML"):
        load_protocol_file(path)


def test_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mesotherapy.yaml"
    path.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(ProtocolError, match=r"^mesotherapy\.yaml: expected a mapping"):
        load_protocol_file(path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError, match=r"^mesotherapy\.yaml: file not found"):
        load_protocol_file(tmp_path / "mesotherapy.yaml")


def test_template_missing_in_one_language_is_refused(tmp_path: Path) -> None:
    from aftercare.protocols import load_catalog
    from aftercare.protocols.templates import default_catalog

    templates = tmp_path / "templates"
    templates.mkdir()
    source = default_catalog().source
    for language in ("en", "id"):
        text = (source / f"{language}.yaml").read_text(encoding="utf-8")
        if language == "en":
            text += 'custom.only-english: "Hi {first_name}, call {clinic_phone}"\n'
        (templates / f"{language}.yaml").write_text(text, encoding="utf-8")
    path = write_protocol(tmp_path, steps=replace_in_step("template: checkin.day1", "template: custom.only-english"))
    with pytest.raises(
        ProtocolError, match=r"step 'first-hours': field 'template': no template 'custom\.only-english' in id\.yaml"
    ):
        load_protocol_file(path, catalog=load_catalog(templates))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("14d", timedelta(days=14)),
        (" 1d ", timedelta(days=1)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "2", "h", "2w", "1d12h", "-1h", "1.5h", "2 h"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(text)


# Safety steps and red-flag questions --------------------------------------------------------------------

RED_FLAG_CHECKIN = """
  - id: checkin-evening
    when: {after: 4h}
    channel: sms
    template: checkin.day1
    fresh_for: 4h
    checkin: true
    safety: true
    red_flag: {level: emergency, answer_window: 18h}
"""


def checkin_step(step_id: str, when: str, red_flag: str = "") -> str:
    extra = f"\n    red_flag: {red_flag}" if red_flag else ""
    return (f"\n  - id: {step_id}\n    when: {when}\n    channel: sms\n    template: checkin.day1\n"
            f"    fresh_for: 12h\n    checkin: true{extra}\n")


def test_safety_and_red_flag_fields_load(tmp_path: Path) -> None:
    protocol = load_protocol_file(write_protocol(tmp_path, steps=GOOD_STEP + RED_FLAG_CHECKIN))
    first, checkin = protocol.steps
    assert first.safety is False and first.red_flag is None
    assert checkin.safety is True
    assert checkin.red_flag == RedFlag(level="emergency", answer_window=timedelta(hours=18))
    assert protocol.step("checkin-evening") is checkin


def test_a_safety_step_need_not_be_a_check_in(tmp_path: Path) -> None:
    steps = replace_in_step("fresh_for: 12h", "fresh_for: 12h\n    safety: true")
    assert load_protocol_file(write_protocol(tmp_path, steps=steps)).steps[0].safety is True


@pytest.mark.parametrize("key", sorted(OCCLUSION_SCREENING))
def test_filler_and_booster_check_ins_in_the_first_72_hours_need_a_red_flag(tmp_path: Path, key: str) -> None:
    emergency = "{level: emergency, answer_window: 12h}"
    good = GOOD_STEP + checkin_step("checkin-evening", "{after: 4h}", emergency)
    assert load_protocol_file(write_protocol(tmp_path, steps=good, key=key)).steps[1].red_flag.level == "emergency"
    bad = [
        # A check-in 4 hours after treatment without the question.
        (GOOD_STEP + checkin_step("checkin-evening", "{after: 4h}"), "checkin-evening"),
        # Day 3 at 10:00 is only 58 hours after a treatment late on day 0.
        (good + checkin_step("checkin-day3", '{day: 3, at: "10:00"}'), "checkin-day3"),
        # A YES to an occlusion question must page as an emergency.
        (GOOD_STEP + checkin_step("checkin-evening", "{after: 4h}", "{level: urgent, answer_window: 12h}"),
         "checkin-evening"),
    ]
    for steps, step_id in bad:
        with pytest.raises(ProtocolError, match=rf"^{key}\.yaml: step '{step_id}': field 'red_flag': every {key} "
                                                r"check-in in the first 72 hours must end with a red-flag question"):
            load_protocol_file(write_protocol(tmp_path, steps=steps, key=key))


@pytest.mark.parametrize("key", sorted(OCCLUSION_SCREENING))
def test_filler_and_booster_protocols_without_early_check_ins_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(ProtocolError, match=rf"^{key}\.yaml: field 'steps': a {key} protocol needs sms check-ins "
                                            r"in the first 72 hours, each with a red-flag question"):
        load_protocol_file(write_protocol(tmp_path, steps=GOOD_STEP, key=key))


def test_a_check_in_that_cannot_fall_in_the_first_72_hours_needs_no_red_flag(tmp_path: Path) -> None:
    steps = (GOOD_STEP + checkin_step("checkin-evening", "{after: 4h}", "{level: emergency, answer_window: 12h}")
             + checkin_step("checkin-day4", '{day: 4, at: "09:00"}'))  # at least 81 hours after any treatment
    protocol = load_protocol_file(write_protocol(tmp_path, steps=steps, key="dermal-filler"))
    assert protocol.step("checkin-day4").red_flag is None


def test_other_treatments_need_no_red_flag(tmp_path: Path) -> None:
    steps = GOOD_STEP + checkin_step("checkin-evening", "{after: 4h}")
    assert load_protocol_file(write_protocol(tmp_path, steps=steps, key="chemical-peel")).steps[1].red_flag is None


@pytest.mark.parametrize(("when", "hours"), [(After(timedelta(hours=4)), 4), (DayAt(0, time(9)), 0),
                                              (DayAt(1, time(18)), 18), (DayAt(3, time(10)), 58),
                                              (DayAt(4, time(9)), 81)])
def test_earliest_offset_after_treatment(when, hours: int) -> None:
    assert when.earliest_offset() == timedelta(hours=hours)


def _within(step: Step, hours: int) -> bool:
    return step.when.earliest_offset() <= timedelta(hours=hours)


@pytest.mark.parametrize("key", ["dermal-filler", "skin-booster"])
def test_shipped_filler_and_booster_screen_every_early_check_in_for_occlusion(key: str) -> None:
    steps = load_protocol(key).steps
    early = [step.id for step in steps if step.checkin and _within(step, 72)]
    assert early == ["checkin-evening", "checkin-day1", "checkin-day3"]
    for step in steps:
        if step.id in early:
            assert step.red_flag is not None and step.red_flag.level == "emergency", step.id
            assert step.red_flag.answer_window >= timedelta(hours=12)
        else:
            assert step.red_flag is None, step.id
    # The warning-signs text and the first-night check-in go out in quiet hours too; nothing else does.
    assert [step.id for step in steps if step.safety] == ["first-hours", "checkin-evening"]


def test_shipped_mesotherapy_asks_about_lumps_at_every_check_in_from_week_1_to_12() -> None:
    steps = load_protocol("mesotherapy").steps
    screened = [step for step in steps if step.red_flag is not None]
    in_window = [step for step in steps if step.checkin and isinstance(step.when, DayAt) and 7 <= step.when.day <= 84]
    assert screened == in_window and len(screened) == 7
    assert {step.red_flag.level for step in screened} == {"urgent"}
    assert not any(step.safety for step in steps)


@pytest.mark.parametrize("key", ["chemical-peel", "microneedling", "laser-resurfacing"])
def test_other_shipped_protocols_carry_no_red_flags_or_safety_steps(key: str) -> None:
    assert not any(step.red_flag or step.safety for step in load_protocol(key).steps)


def test_protocols_show_names_the_safety_steps_and_red_flag_questions():
    from tests.cli_helpers import cli_json

    steps = {s["step"]: s for s in cli_json("protocols", "show", "dermal-filler")["steps"]}
    assert steps["first-hours"]["safety"] is True and steps["first-hours"]["red_flag"] is None
    assert steps["checkin-evening"]["red_flag"] == "emergency" and steps["checkin-evening"]["answer_window"]
    assert steps["checkin-week6"]["safety"] is False and steps["checkin-week6"]["red_flag"] is None
