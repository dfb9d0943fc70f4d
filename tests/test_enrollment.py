"""Enrolling patients: the whole protocol is written once, late steps are skipped, bad input writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from aftercare.db import session_scope
from aftercare.models import Enrollment, Patient, ScheduledMessage
from aftercare.protocols import load_protocol
from tests.cli_helpers import add_clinic, cli_json, enroll, recent, run_cli


def _jakarta_day(days: int, at: str) -> datetime:
    """`at` (HH:MM) local in Jakarta (UTC+7, no clock changes), `days` from today: a fixed wall time, always near."""
    today = datetime.now(timezone(timedelta(hours=7))).date() + timedelta(days=days)
    hour, minute = map(int, at.split(":"))
    return datetime(today.year, today.month, today.day, hour, minute, tzinfo=timezone(timedelta(hours=7)))


def _count(model) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_enrolling_writes_every_protocol_step_as_a_scheduled_message(any_env):
    add_clinic()
    result = enroll(treated_at=recent(), email="ayu@example.com")
    steps = load_protocol("dermal-filler").steps
    assert result["created"] is True
    assert result["scheduled"] == len(steps)
    rows = cli_json("schedule", "list", "--enrollment", str(result["enrollment_id"]))
    assert {r["step"] for r in rows} == {s.id for s in steps}
    assert all(r["status"] == "scheduled" for r in rows)
    assert all(r["due_at"].endswith("+00:00") for r in rows)


def test_enrolling_the_same_session_twice_changes_nothing(any_env):
    add_clinic()
    treated = datetime.now(timezone(timedelta(hours=7))).replace(microsecond=0) - timedelta(minutes=30)
    first = enroll(treated_at=treated.isoformat())
    second = enroll(treated_at=treated.astimezone(UTC).isoformat())  # the same instant written in UTC
    assert second["created"] is False
    assert second["enrollment_id"] == first["enrollment_id"]
    assert second["scheduled"] == first["scheduled"]
    assert _count(Enrollment) == 1
    assert _count(ScheduledMessage) == len(load_protocol("dermal-filler").steps)


def test_late_enrollment_skips_stale_steps_and_keeps_the_rest(any_env):
    add_clinic(quiet_hours="00:00-00:00")
    treated = datetime.now(UTC) - timedelta(days=2)
    result = enroll(treated_at=treated.isoformat(), email="ayu@example.com")
    rows = cli_json("schedule", "list", "--enrollment", str(result["enrollment_id"]))
    skipped = [r for r in rows if r["status"] == "skipped"]
    scheduled = [r for r in rows if r["status"] == "scheduled"]
    assert skipped and scheduled
    assert all(r["reason"] == "stale" for r in skipped)
    now = datetime.now(UTC)
    due_now = [r for r in scheduled if datetime.fromisoformat(r["due_at"]) <= now + timedelta(minutes=1)]
    with session_scope() as session:
        for row in session.scalars(select(ScheduledMessage).where(ScheduledMessage.status == "scheduled")):
            assert row.fresh_until > now  # nothing past its freshness window is left to send
    assert len(due_now) <= len(scheduled)


def test_enrollment_defaults_to_the_clinic_time_zone(env):
    add_clinic(timezone="Asia/Makassar")
    result = enroll(treated_at=recent())
    with session_scope() as session:
        patient = session.get(Patient, result["patient_id"])
        assert patient.timezone == "Asia/Makassar"


def test_email_steps_are_skipped_for_a_patient_without_email(env):
    add_clinic()
    result = enroll(treated_at=recent())
    rows = cli_json("schedule", "list", "--enrollment", str(result["enrollment_id"]))
    email_rows = [r for r in rows if r["channel"] == "email"]
    assert all(r["status"] == "skipped" and r["reason"] == "no_email" for r in email_rows)


def test_pause_resume_and_cancel_an_enrollment(env):
    add_clinic()
    enrollment_id = str(enroll(treated_at=recent())["enrollment_id"])
    assert cli_json("schedule", "pause", enrollment_id)["status"] == "paused"
    assert cli_json("schedule", "resume", enrollment_id)["status"] == "active"
    assert cli_json("schedule", "cancel", enrollment_id)["status"] == "cancelled"
    rows = cli_json("schedule", "list", "--enrollment", enrollment_id, "--status", "scheduled")
    assert rows == []
    result = run_cli("schedule", "resume", enrollment_id)
    assert result.exit_code == 1
    assert "cancelled" in result.stderr


def test_patient_timeline_lists_the_schedule(env):
    add_clinic()
    result = enroll(treated_at=recent(), email="ayu@example.com")
    timeline = cli_json("patient", "show", str(result["patient_id"]))
    assert timeline["patient"]["first_name"] == "Ayu"
    assert len(timeline["timeline"]) == len(load_protocol("dermal-filler").steps)
    human = run_cli("patient", "show", str(result["patient_id"]))
    assert human.exit_code == 0 and "timeline" in human.stdout


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--phone", "12345", "invalid phone number"),
        ("--phone", "+62 812", "invalid phone number"),
        ("--timezone", "Mars/Olympus", "unknown time zone"),
        ("--treatment", "botox", "unknown treatment"),
        ("--treated-at", "2026-11-25T10:00:00", "no UTC offset"),
        ("--treated-at", "25/11/2026 10:00", "invalid date"),
        ("--clinic", "nowhere", "unknown clinic"),
        ("--email", "not-an-email", "invalid email"),
        ("--first-name", "   ", "first name must not be empty"),
    ],
)
def test_bad_enrollment_input_is_one_line_error_and_writes_nothing(any_env, option, value, message):
    add_clinic()
    args = {"--clinic": "glow", "--first-name": "Ayu", "--phone": "+6281234567890", "--treatment": "dermal-filler",
            "--treated-at": recent()}
    args[option] = value
    flat = [item for pair in args.items() for item in pair]
    result = run_cli("enroll", *flat)
    assert result.exit_code == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert _count(Patient) == 0 and _count(Enrollment) == 0 and _count(ScheduledMessage) == 0


def test_a_missing_option_is_a_usage_error(env):
    result = run_cli("enroll", "--clinic", "glow")
    assert result.exit_code == 2


def test_clinic_add_rejects_bad_input_and_duplicates(env):
    add_clinic()
    duplicate = run_cli("clinic", "add", "--name", "X", "--slug", "glow", "--timezone", "UTC", "--phone", "+622150001234")
    assert duplicate.exit_code == 1 and "already exists" in duplicate.stderr
    bad_tz = run_cli("clinic", "add", "--name", "X", "--slug", "x", "--timezone", "Nowhere", "--phone", "+622150001234")
    assert bad_tz.exit_code == 1 and "unknown time zone" in bad_tz.stderr
    bad_quiet = run_cli("clinic", "add", "--name", "X", "--slug", "x", "--timezone", "UTC", "--phone", "+622150001234",
                        "--quiet-hours", "9pm-8am")
    assert bad_quiet.exit_code == 1 and "quiet hours" in bad_quiet.stderr
    assert [c["slug"] for c in cli_json("clinic", "list")] == ["glow"]


def test_oncall_list_keeps_paging_order(env):
    add_clinic()
    cli_json("oncall", "add", "--clinic", "glow", "--name", "Dr A", "--phone", "+6281111111111")
    cli_json("oncall", "add", "--clinic", "glow", "--name", "Dr B", "--phone", "0812-2222-2222", "--email", "b@x.org")
    staff = cli_json("oncall", "list", "--clinic", "glow")
    assert [s["name"] for s in staff] == ["Dr A", "Dr B"]
    assert staff[1]["phone"] == "+6281222222222"  # a local number is read in the clinic's country


def test_schedule_list_says_which_messages_are_safety_critical_and_carry_a_red_flag(env, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # a table as wide as a real terminal, so no cell is cut short
    add_clinic()
    result = enroll(treated_at=recent())
    rows = {r["step"]: r for r in cli_json("schedule", "list", "--enrollment", str(result["enrollment_id"]))}
    assert all(isinstance(r["safety"], bool) for r in rows.values())
    assert {step for step, r in rows.items() if r["safety"]} == {"first-hours", "checkin-evening"}
    assert {step: r["red_flag"] for step, r in rows.items() if r["red_flag"]} == {
        "checkin-evening": "emergency", "checkin-day1": "emergency", "checkin-day3": "emergency"}
    human = run_cli("schedule", "list", "--enrollment", str(result["enrollment_id"]))
    assert human.exit_code == 0 and "flags" in human.stdout
    lines = {line.split("│")[3].strip(): line for line in human.stdout.splitlines() if line.count("│") > 8}
    assert "safety, YES=emergency" in lines["checkin-evening"]
    assert "safety" in lines["first-hours"] and "YES=" not in lines["first-hours"]
    assert "YES=emergency" in lines["checkin-day3"] and "safety" not in lines["checkin-day3"]
    assert "safety" not in lines["day1-morning"] and "YES=" not in lines["day1-morning"]


def test_an_evening_filler_enrollment_plans_its_safety_steps_inside_quiet_hours(any_env):
    from aftercare.schedule.enrollment import enroll as enroll_service

    add_clinic(quiet_hours="21:00-08:00")  # Asia/Jakarta
    treated = _jakarta_day(-1, "19:30")  # yesterday evening, enrolled as the patient left
    with session_scope() as session:
        result = enroll_service(session, clinic_slug="glow", first_name="Ayu", phone="+6281234567890",
                                treatment="dermal-filler", treated_at=treated,
                                now=treated + timedelta(minutes=5)).to_dict()
    rows = {r["step"]: r for r in cli_json("schedule", "list", "--enrollment", str(result["enrollment_id"]))}
    local = {step: datetime.fromisoformat(r["due_at"]).astimezone(timezone(timedelta(hours=7))).strftime("%d %H:%M")
             for step, r in rows.items()}
    day, next_day = f"{treated:%d}", f"{treated + timedelta(days=1):%d}"
    assert local["first-hours"] == f"{day} 21:30" and local["checkin-evening"] == f"{day} 23:30"
    assert local["day1-morning"] == f"{next_day} 09:00"


@pytest.mark.parametrize("delta, message", [(timedelta(days=365), "in the future"),
                                            (timedelta(minutes=20), "in the future"),
                                            (-timedelta(days=400), "too long ago"),
                                            (-timedelta(days=43), "too long ago")])  # filler's last step: day 42
def test_a_treatment_time_with_a_slipped_year_is_refused_not_enrolled_silently(env, delta, message):
    add_clinic()
    when = (datetime.now(UTC) + delta).replace(microsecond=0).isoformat()
    result = run_cli("enroll", "--clinic", "glow", "--first-name", "Ayu", "--phone", "+6281234567890",
                     "--treatment", "dermal-filler", "--treated-at", when)
    assert result.exit_code == 1 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert _count(Enrollment) == 0
