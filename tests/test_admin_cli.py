"""The everyday admin CLI (issue 10): on-call list changes, clinic updates, enrolment bounds and skipped steps,
seeing what a patient gets in their own time, and finding escalations by the code in the page."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from aftercare.db import session_scope
from aftercare.models import AuditEntry, Enrollment, Escalation, Patient, ScheduledMessage
from aftercare.schedule.enrollment import validate_request
from tests.cli_helpers import add_clinic, cli_json, enroll, recent, run_cli

PATIENT = "+6281234567890"


def _count(model) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(model))


def _one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0]


def _staff(name: str, phone: str, clinic: str = "glow") -> dict:
    return cli_json("oncall", "add", "--clinic", clinic, "--name", name, "--phone", phone)


def _actions() -> list[str]:
    with session_scope() as session:
        return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


# --- on-call ----------------------------------------------------------------------------------------------------

def test_oncall_deactivate_activate_remove_and_move_change_who_is_paged_in_which_order(env):
    add_clinic()
    a, b, c = (_staff(name, phone) for name, phone in
               [("Dr A", "+6281100000001"), ("Dr B", "+6281100000002"), ("Dr C", "+6281100000003")])
    assert cli_json("oncall", "move", str(c["id"]), "--position", "0")["position"] == 0
    assert [s["name"] for s in cli_json("oncall", "list", "--clinic", "glow")] == ["Dr C", "Dr A", "Dr B"]
    assert cli_json("oncall", "deactivate", str(a["id"]))["active"] is False
    assert [s["name"] for s in cli_json("oncall", "list", "--clinic", "glow")] == ["Dr C", "Dr B"]
    everyone = cli_json("oncall", "list", "--clinic", "glow", "--all")
    assert [(s["name"], s["active"]) for s in everyone] == [("Dr C", True), ("Dr A", False), ("Dr B", True)]
    cli_json("oncall", "activate", str(a["id"]))
    cli_json("oncall", "remove", str(b["id"]))
    staff = cli_json("oncall", "list", "--clinic", "glow")
    assert [(s["name"], s["position"]) for s in staff] == [("Dr C", 0), ("Dr A", 1)]  # no gap left behind
    assert cli_json("oncall", "move", str(c["id"]), "--position", "99")["position"] == 1  # past the end: last
    assert {"oncall.moved", "oncall.deactivated", "oncall.activated", "oncall.removed"} <= set(_actions())


@pytest.mark.parametrize("again", ["+6281100000001", "0811-0000-0001", "62 811 0000 0001"])
def test_the_same_phone_twice_on_one_clinics_list_is_refused_in_any_format(env, again):
    add_clinic()
    first = _staff("Dr A", "+6281100000001")
    _one_line_error(run_cli("oncall", "add", "--clinic", "glow", "--name", "Dr A2", "--phone", again),
                    "already on this clinic's on-call list", str(first["id"]))
    assert len(cli_json("oncall", "list", "--clinic", "glow")) == 1
    add_clinic("other", phone="+622150009999")
    _staff("Dr A", again, clinic="other")  # another clinic's list is another list


def test_a_deactivated_entry_is_named_when_its_phone_is_added_again(env):
    add_clinic()
    first = _staff("Dr A", "+6281100000001")
    cli_json("oncall", "deactivate", str(first["id"]))
    _one_line_error(run_cli("oncall", "add", "--clinic", "glow", "--name", "Dr A", "--phone", "+6281100000001"),
                    f"oncall activate {first['id']}")


def test_oncall_changes_to_unknown_ids_and_bad_positions_are_one_line_errors(env):
    add_clinic()
    first = _staff("Dr A", "+6281100000001")
    for command in ("remove", "deactivate", "activate"):
        _one_line_error(run_cli("oncall", command, "9999"), "unknown on-call entry 9999")
    _one_line_error(run_cli("oncall", "move", "9999", "--position", "0"), "unknown on-call entry")
    _one_line_error(run_cli("oncall", "move", str(first["id"]), "--position", "-1"), "--position")


def test_someone_already_paged_is_deactivated_not_removed(env):
    add_clinic()
    staff = _staff("Dr A", "+6281100000001")
    enroll(treated_at=recent(hours=3))
    cli_json("reply", "--from", PATIENT, "my lip is white and very painful")
    _one_line_error(run_cli("oncall", "remove", str(staff["id"])), f"oncall deactivate {staff['id']}")
    assert len(cli_json("oncall", "list", "--clinic", "glow")) == 1


# --- clinics ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("zone, local, e164", [("Asia/Jakarta", "021 5000 1234", "+622150001234"),
                                               ("Asia/Jakarta", "(021) 5000-1234", "+622150001234"),
                                               ("Australia/Sydney", "(02) 9374 4000", "+61293744000"),
                                               ("Europe/London", "020 7946 0018", "+442079460018")])
def test_clinic_add_reads_a_local_phone_in_its_time_zones_country(env, zone, local, e164):
    data = cli_json("clinic", "add", "--name", "Glow", "--slug", "glow", "--timezone", zone, "--phone", local)
    assert data["phone"] == e164


def test_a_local_clinic_phone_in_a_zone_of_no_country_asks_for_international_format(env):
    _one_line_error(run_cli("clinic", "add", "--name", "Glow", "--slug", "glow", "--timezone", "UTC",
                            "--phone", "021 5000 1234"), "international format")


@pytest.mark.parametrize("window", ["21:00-21:00", "08:30-08:30", "23:59-23:59"])
def test_an_empty_quiet_hours_window_is_refused_at_add_and_update(env, window):
    result = run_cli("clinic", "add", "--name", "Glow", "--slug", "glow", "--timezone", "Asia/Jakarta",
                     "--phone", "+622150001234", "--quiet-hours", window)
    _one_line_error(result, "empty window")
    add_clinic()
    _one_line_error(run_cli("clinic", "update", "glow", "--quiet-hours", window), "empty window")
    assert cli_json("clinic", "list")[0]["quiet_hours"] == "21:00-08:00"


def test_quiet_hours_none_means_no_quiet_hours(env):
    add_clinic(quiet_hours="none")
    assert cli_json("clinic", "list")[0]["quiet_hours"] == "00:00-00:00"


def test_clinic_update_changes_checked_fields_and_audits_their_names_only(env):
    add_clinic()
    data = cli_json("clinic", "update", "GLOW", "--name", "Glow Kemang", "--phone", "021 7000 5678",
                    "--sms-from", "+15005550011", "--email-from", "care@glow.example", "--quiet-hours", "22:00-07:00")
    assert data["name"] == "Glow Kemang" and data["phone"] == "+622170005678"
    assert data["sms_from"] == "+15005550011" and data["email_from"] == "care@glow.example"
    assert data["quiet_hours"] == "22:00-07:00"
    with session_scope() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "clinic.updated")).one()
        assert entry.details["fields"] == ["email_from", "name", "phone", "quiet_end", "quiet_start", "sms_from"]
        assert "+622170005678" not in json.dumps(entry.details)
    cleared = cli_json("clinic", "update", "glow", "--sms-from", "")
    assert cleared["sms_from"] is None and cleared["name"] == "Glow Kemang"


@pytest.mark.parametrize("option, value, message", [("--phone", "12345", "invalid clinic phone"),
                                                    ("--email-from", "not-an-email", "invalid email"),
                                                    ("--name", "  ", "must not be empty"),
                                                    ("--quiet-hours", "9pm-8am", "quiet hours")])
def test_clinic_update_refuses_bad_input_and_changes_nothing(env, option, value, message):
    add_clinic()
    before = cli_json("clinic", "list")
    _one_line_error(run_cli("clinic", "update", "glow", option, value), message)
    assert cli_json("clinic", "list") == before


def test_clinic_update_refuses_another_clinics_sender_and_unknown_slugs(env):
    add_clinic("alpha", sms_from="+15005550011")
    add_clinic("beta", phone="+622150009999", sms_from="+15005550012")
    _one_line_error(run_cli("clinic", "update", "beta", "--sms-from", "+15005550011"), "another clinic's sender")
    assert cli_json("clinic", "update", "alpha", "--sms-from", "+15005550011")["sms_from"] == "+15005550011"
    _one_line_error(run_cli("clinic", "update", "nowhere", "--name", "X"), "unknown clinic")


@pytest.mark.parametrize("spelling", ["GLOW", "Glow", " glow "])
def test_slugs_are_case_insensitive_everywhere(env, spelling):
    add_clinic(slug="Glow")  # stored lower-case
    assert cli_json("clinic", "list")[0]["slug"] == "glow"
    _one_line_error(run_cli("clinic", "add", "--name", "X", "--slug", "GLOW", "--timezone", "UTC",
                            "--phone", "+622150001234"), "already exists")
    _staff("Dr A", "+6281100000001", clinic=spelling)
    assert len(cli_json("oncall", "list", "--clinic", spelling)) == 1
    assert enroll(clinic=spelling)["created"] is True
    assert cli_json("escalations", "list", "--clinic", spelling) == []


def test_a_clinic_without_active_oncall_staff_is_warned_about_at_add_and_each_enroll(env):
    result = run_cli("clinic", "add", "--name", "Glow", "--slug", "glow", "--timezone", "Asia/Jakarta",
                     "--phone", "+622150001234", "--json")
    assert result.exit_code == 0
    [warning] = result.stderr.splitlines()
    assert warning.startswith("warning: ") and "no active on-call staff" in warning
    for phone in ("+6281234567890", "+6281234567891"):
        enrolled = run_cli("enroll", "--clinic", "glow", "--first-name", "Ayu", "--phone", phone,
                           "--treatment", "dermal-filler", "--treated-at", recent(), "--json")
        assert enrolled.exit_code == 0 and json.loads(enrolled.stdout)["created"] is True
        assert [line for line in enrolled.stderr.splitlines() if "no active on-call staff" in line]
    staff = _staff("Dr A", "+6281100000001")
    quiet = run_cli("enroll", "--clinic", "glow", "--first-name", "Budi", "--phone", "+6281234567892",
                    "--treatment", "dermal-filler", "--treated-at", recent(), "--json")
    assert quiet.exit_code == 0 and "on-call" not in quiet.stderr
    cli_json("oncall", "deactivate", str(staff["id"]))  # the only one, off paging: warned again
    again = run_cli("enroll", "--clinic", "glow", "--first-name", "Citra", "--phone", "+6281234567893",
                    "--treatment", "dermal-filler", "--treated-at", recent(), "--json")
    assert again.exit_code == 0 and "no active on-call staff" in again.stderr


# --- enrolling --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("language", ["EN", "Id", " id "])
def test_the_language_is_case_insensitive(env, language):
    add_clinic()
    with session_scope() as session:
        from aftercare.clinics import get_clinic

        request = validate_request(get_clinic(session, "glow"), first_name="Ayu", phone=PATIENT, email=None,
                                   timezone=None, language=language, treatment="dermal-filler",
                                   treated_at=datetime.now(UTC) - timedelta(minutes=5))
    assert request.language == language.strip().lower()
    result = enroll(language=language.strip())
    with session_scope() as session:
        assert session.get(Patient, result["patient_id"]).language == language.strip().lower()


def test_enroll_lists_the_skipped_steps_with_their_reasons(env):
    add_clinic(quiet_hours="none")
    result = enroll(treated_at=recent(days=2))  # two days late, and no email on file
    skipped = {item["step"]: item["reason"] for item in result["skipped"]}
    assert skipped["checkin-evening"] == "stale" and skipped["first-hours"] == "stale"
    assert skipped["aftercare-summary"] in ("stale", "no_email")
    with session_scope() as session:
        stored = {m.step: m.skip_reason for m in session.scalars(
            select(ScheduledMessage).where(ScheduledMessage.status == "skipped"))}
    assert skipped == stored
    assert result["scheduled"] + len(result["skipped"]) == _count(ScheduledMessage)
    again = enroll(treated_at=result_time(result))  # the same session again: the same list
    assert again["created"] is False and again["skipped"] == result["skipped"]
    human = run_cli("enroll", "--clinic", "glow", "--first-name", "Ayu", "--phone", PATIENT,
                    "--treatment", "dermal-filler", "--treated-at", result_time(result))
    assert "skipped steps" in human.stdout and "checkin-evening" in human.stdout and "stale" in human.stdout


def result_time(result: dict) -> str:
    with session_scope() as session:
        return session.get(Enrollment, result["enrollment_id"]).treated_at.isoformat()


def test_a_fresh_enrollment_skips_nothing(env):
    add_clinic()
    assert enroll(treated_at=recent(), email="ayu@example.com")["skipped"] == []


@pytest.mark.parametrize("ahead", [timedelta(minutes=16), timedelta(hours=3), timedelta(days=1), timedelta(days=400)])
def test_a_treatment_time_in_the_future_is_refused(env, ahead):
    add_clinic()
    when = (datetime.now(UTC) + ahead).replace(microsecond=0).isoformat()
    _one_line_error(run_cli("enroll", "--clinic", "glow", "--first-name", "Ayu", "--phone", PATIENT,
                            "--treatment", "dermal-filler", "--treated-at", when), "in the future")
    assert _count(Patient) == 0 and _count(Enrollment) == 0


def test_a_treatment_a_few_minutes_ahead_is_clock_skew_and_accepted(env):
    add_clinic()
    when = (datetime.now(UTC) + timedelta(minutes=10)).replace(microsecond=0).isoformat()
    assert enroll(treated_at=when)["created"] is True


@pytest.mark.parametrize("treatment, days", [("chemical-peel", 16), ("skin-booster", 20), ("dermal-filler", 44),
                                             ("mesotherapy", 90), ("dermal-filler", 3650)])
def test_a_treatment_older_than_its_whole_protocol_is_refused(env, treatment, days):
    add_clinic()
    _one_line_error(run_cli("enroll", "--clinic", "glow", "--first-name", "Ayu", "--phone", PATIENT,
                            "--treatment", treatment, "--treated-at", recent(days=days)), "too long ago", treatment)
    assert _count(Enrollment) == 0 and _count(ScheduledMessage) == 0


@pytest.mark.parametrize("treatment, days", [("chemical-peel", 12), ("dermal-filler", 40), ("mesotherapy", 80)])
def test_a_late_treatment_whose_protocol_still_runs_is_enrolled(env, treatment, days):
    add_clinic()
    result = enroll(treatment=treatment, treated_at=recent(days=days))
    assert result["created"] is True and result["scheduled"] >= 1 and result["skipped"]


# --- what the patient gets, when, in their own time ----------------------------------------------------------

def test_schedule_preview_shows_local_times_and_texts_and_writes_nothing(env, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    add_clinic()
    treated = recent(hours=2)
    rows = cli_json("schedule", "preview", "--treatment", "dermal-filler", "--treated-at", treated,
                    "--timezone", "Asia/Makassar", "--language", "id")
    by_step = {r["step"]: r for r in rows}
    assert set(by_step["first-hours"]) == {"step", "channel", "due_at", "local_time", "status", "reason", "text"}
    assert all(r["due_at"].endswith("+00:00") for r in rows)
    assert all(r["local_time"].endswith("+08:00") for r in rows)  # Makassar, not the +07:00 it was typed in
    assert by_step["checkin-day3"]["local_time"].split()[1] == "10:00"  # "day 3 at 10:00" in the patient's zone
    assert "Kak Ayu" in by_step["day1-morning"]["text"] and "Balas YA" in by_step["checkin-day3"]["text"]
    english = {r["step"]: r for r in cli_json("schedule", "preview", "--treatment", "dermal-filler",
                                              "--treated-at", treated, "--timezone", "Asia/Makassar")}
    assert "Reply YES" in english["checkin-day3"]["text"]
    human = run_cli("schedule", "preview", "--treatment", "dermal-filler", "--treated-at", treated,
                    "--timezone", "Asia/Makassar")
    assert human.exit_code == 0 and "+08:00" in human.stdout and "Reply YES" in human.stdout
    assert _count(Patient) == 0 and _count(Enrollment) == 0 and _count(ScheduledMessage) == 0


def test_schedule_preview_uses_the_clinics_name_phone_and_zone_and_marks_past_steps(env):
    add_clinic(timezone="Asia/Jakarta")
    rows = cli_json("schedule", "preview", "--treatment", "dermal-filler", "--treated-at", recent(days=2),
                    "--clinic", "glow")
    by_step = {r["step"]: r for r in rows}
    assert by_step["checkin-evening"]["status"] == "skipped" and by_step["checkin-evening"]["reason"] == "stale"
    assert by_step["checkin-week6"]["status"] == "scheduled"
    assert all(r["local_time"].endswith("+07:00") for r in rows)
    assert "Glow Clinic" in by_step["day1-morning"]["text"] and "+622150001234" in by_step["day1-morning"]["text"]


@pytest.mark.parametrize("args, message", [(["--language", "fr"], "invalid value"),
                                           (["--timezone", "Mars/Base"], "unknown time zone"),
                                           (["--treated-at", "yesterday"], "invalid date")])
def test_schedule_preview_bad_input_is_refused(env, args, message):
    base = {"--treatment": "dermal-filler", "--treated-at": recent(), "--timezone": "Asia/Jakarta"}
    for key, value in zip(args[::2], args[1::2], strict=True):
        base[key] = value
    result = run_cli("schedule", "preview", *[item for pair in base.items() for item in pair])
    assert result.exit_code in (1, 2) and message in result.stderr.lower()


def test_schedule_list_shows_the_patients_local_time_and_text_and_json_keeps_utc(env, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    add_clinic()
    result = enroll(treated_at=recent(), timezone="Asia/Jayapura", first_name="Wulan")
    human = run_cli("schedule", "list", "--enrollment", str(result["enrollment_id"]))
    assert human.exit_code == 0
    assert "+09:00" in human.stdout and "Wulan" in human.stdout and "Glow Clinic" in human.stdout
    rows = cli_json("schedule", "list", "--enrollment", str(result["enrollment_id"]))
    assert all(r["due_at"].endswith("+00:00") for r in rows) and "text" not in rows[0]


# --- escalations ------------------------------------------------------------------------------------------------

def _escalate(phone: str, clinic: str = "glow", text: str = "my lip is white and very painful") -> Escalation:
    enroll(clinic=clinic, phone=phone, treated_at=recent(hours=3))
    cli_json("reply", "--from", phone, text)
    with session_scope() as session:
        return session.scalars(select(Escalation).order_by(Escalation.id.desc())).first()


@pytest.fixture
def two_clinics(env):
    add_clinic("glow")
    add_clinic("bright", phone="+622150009999")
    _staff("Dr A", "+6281100000001", clinic="glow")
    _staff("Dr B", "+6281100000002", clinic="bright")


def test_escalations_list_shows_open_and_acknowledged_by_default_and_all_with_clinics(two_clinics, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    first = _escalate("+6281234567801")
    second = _escalate("+6281234567802")
    third = _escalate("+6281234567803", clinic="bright")
    cli_json("escalations", "ack", str(second.id), "--by", "Dr A")
    cli_json("escalations", "resolve", str(first.id), "--by", "Dr A", "--note", "seen, fine")
    unresolved = cli_json("escalations", "list")
    assert sorted(e["id"] for e in unresolved) == sorted([second.id, third.id])
    assert {e["id"]: e["status"] for e in unresolved}[second.id] == "acknowledged"
    assert [e["id"] for e in cli_json("escalations", "list", "--open")] == [third.id]
    everything = cli_json("escalations", "list", "--all")
    assert {e["id"]: e["clinic"] for e in everything} == {first.id: "glow", second.id: "glow", third.id: "bright"}
    assert [e["id"] for e in cli_json("escalations", "list", "--clinic", "bright")] == [third.id]
    assert [e["id"] for e in cli_json("escalations", "list", "--all", "--clinic", "glow")] == [second.id, first.id]
    human = run_cli("escalations", "list", "--all")
    assert human.exit_code == 0 and "clinic" in human.stdout and "bright" in human.stdout
    _one_line_error(run_cli("escalations", "list", "--clinic", "nowhere"), "unknown clinic")


@pytest.mark.parametrize("spell", [str.upper, str.lower, lambda code: f"  {code.lower()} "])
def test_ack_and_resolve_take_the_code_from_the_page_in_any_case(two_clinics, spell):
    escalation = _escalate("+6281234567801")
    acked = cli_json("escalations", "ack", spell(escalation.code), "--by", "Dr A")
    assert acked["id"] == escalation.id and acked["status"] == "acknowledged"
    resolved = cli_json("escalations", "resolve", spell(escalation.code), "--by", "Dr A", "--note", "called her")
    assert resolved["id"] == escalation.id and resolved["status"] == "resolved"
    assert cli_json("escalations", "show", spell(escalation.code))["id"] == escalation.id


def test_unknown_codes_and_ids_are_one_line_errors(two_clinics):
    escalation = _escalate("+6281234567801")
    wrong = "ZZZZZZ" if escalation.code != "ZZZZZZ" else "YYYYYY"
    _one_line_error(run_cli("escalations", "ack", wrong, "--by", "Dr A"), "unknown escalation")
    _one_line_error(run_cli("escalations", "resolve", "99999", "--by", "A", "--note", "x"), "unknown escalation")
    _one_line_error(run_cli("escalations", "ack", "9" * 40, "--by", "Dr A"), "unknown escalation")
    assert cli_json("escalations", "ack", f"#{escalation.id}", "--by", "Dr A")["status"] == "acknowledged"


def test_escalations_show_includes_the_patients_words(two_clinics, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    escalation = _escalate("+6281234567801", text="my lip went white and it really hurts")
    data = cli_json("escalations", "show", str(escalation.id))
    assert [r["body"] for r in data["replies"]] == ["my lip went white and it really hurts"]
    human = run_cli("escalations", "show", escalation.code)
    assert human.exit_code == 0
    assert "the patient's words" in human.stdout and "my lip went white and it really hurts" in human.stdout
