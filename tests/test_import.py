"""Bulk import: good rows in batches, bad rows to a reject file with reasons, re-runs change nothing."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from aftercare.db import session_scope
from aftercare.models import Enrollment, Patient, ScheduledMessage
from aftercare.protocols import load_protocol
from tests.cli_helpers import add_clinic, cli_json, run_cli

HEADER = ["first_name", "phone", "email", "timezone", "language", "treatment", "treated_at", "sms_consent",
          "email_consent"]


def _recent(minutes: int = 5) -> str:
    """A session that just ended: enrolling refuses one ahead of now or older than its protocol."""
    return (datetime.now(UTC) - timedelta(minutes=minutes)).replace(microsecond=0).isoformat()


def _write(path, rows, header=HEADER) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _count(model) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(model))


def _good_rows(n: int) -> list[list[str]]:
    return [[f"Pat{i}", f"+62812{i:07d}", f"p{i}@example.com", "Asia/Jakarta", "id" if i % 2 else "en",
             "mesotherapy" if i % 3 else "dermal-filler", _recent(), "true", "yes"] for i in range(n)]


def test_import_writes_good_rows_rejects_bad_ones_and_is_idempotent(any_env, tmp_path):
    add_clinic()
    path = tmp_path / "patients.csv"
    bad = [
        ["Bad Phone", "12345", "", "", "en", "mesotherapy", _recent(), "", ""],
        ["Bad Zone", "+6281299999991", "", "Mars/Base", "en", "mesotherapy", _recent(), "", ""],
        ["Bad Treatment", "+6281299999992", "", "", "en", "botox", _recent(), "", ""],
        ["No Offset", "+6281299999993", "", "", "en", "mesotherapy", "2026-12-01T10:00:00", "", ""],
        ["Bad Flag", "+6281299999994", "", "", "en", "mesotherapy", _recent(), "maybe", ""],
    ]
    _write(path, _good_rows(30) + bad)
    first = cli_json("import", str(path), "--clinic", "glow")
    assert first["imported"] == 30 and first["already_present"] == 0 and first["rejected"] == 5
    with open(first["reject_file"], newline="") as handle:
        reasons = [row["reason"] for row in csv.DictReader(handle)]
    assert any("phone" in r for r in reasons) and any("time zone" in r for r in reasons)
    assert any("treatment" in r for r in reasons) and any("offset" in r for r in reasons)
    expected_messages = sum(len(load_protocol("mesotherapy" if i % 3 else "dermal-filler").steps) for i in range(30))
    assert _count(ScheduledMessage) == expected_messages
    again = cli_json("import", str(path), "--clinic", "glow")
    assert again["imported"] == 0 and again["already_present"] == 30 and again["rejected"] == 5
    assert _count(Enrollment) == 30 and _count(ScheduledMessage) == expected_messages


def test_import_matches_single_enrollment_exactly(env, tmp_path):
    """A row imported in bulk gets the same schedule as the same patient enrolled one by one."""
    add_clinic()
    treated = _recent(10)
    path = tmp_path / "one.csv"
    _write(path, [["Ayu", "+6281234567890", "ayu@example.com", "", "id", "skin-booster", treated, "", ""]])
    cli_json("import", str(path), "--clinic", "glow")
    with session_scope() as session:
        bulk = sorted((m.step, m.channel, m.due_at, m.status) for m in session.scalars(select(ScheduledMessage)))
    cli_json("enroll", "--clinic", "glow", "--first-name", "Ayu", "--phone", "+6281234567891", "--email",
             "a@example.com", "--language", "id", "--treatment", "skin-booster", "--treated-at", treated)
    with session_scope() as session:
        single = session.scalars(select(ScheduledMessage).where(ScheduledMessage.enrollment_id == 2)).all()
        assert sorted((m.step, m.channel, m.due_at, m.status) for m in single) == bulk


def test_dry_run_writes_nothing(env, tmp_path):
    add_clinic()
    path = tmp_path / "p.csv"
    _write(path, _good_rows(5))
    report = cli_json("import", str(path), "--clinic", "glow", "--dry-run")
    assert report["imported"] == 5 and report["dry_run"] is True
    assert _count(Patient) == 0 and _count(ScheduledMessage) == 0


def test_hostile_csv_content_is_rejected_row_by_row(env, tmp_path):
    add_clinic()
    path = tmp_path / "hostile.csv"
    good = _good_rows(2)
    with open(path, "wb") as handle:
        handle.write((",".join(HEADER) + "\n").encode())
        handle.write(",".join(good[0]).encode() + b"\n")
        handle.write(b"Bad\xff\xfeName,+6281200000077,,,en,mesotherapy," + _recent().encode() + b",,\n")
        handle.write(("Robert'); DROP TABLE patients;--,+6281200000078,,,en,mesotherapy," + _recent() + ",,\n").encode())
        handle.write(("A" * 10_000 + ",+6281200000079,,,en,mesotherapy," + _recent() + ",,\n").encode())
        handle.write(("Ctl\x07Name,+6281200000080,,,en,mesotherapy," + _recent() + ",,\n").encode())
        handle.write(",".join(good[1]).encode() + b"\n")
    report = cli_json("import", str(path), "--clinic", "glow")
    # The SQL fragment is only a strange name: stored as text, harmless.
    assert report == {"imported": 3, "already_present": 0, "rejected": 3, "reject_file": report["reject_file"],
                      "dry_run": False}
    assert _count(Patient) == 3


def test_a_file_without_the_required_columns_is_a_clear_error(env, tmp_path):
    add_clinic()
    path = tmp_path / "wrong.csv"
    _write(path, [["x"]], header=["name"])
    result = run_cli("import", str(path), "--clinic", "glow")
    assert result.exit_code == 1 and "missing column" in result.stderr
    missing = run_cli("import", str(tmp_path / "nope.csv"), "--clinic", "glow")
    assert missing.exit_code == 1 and "cannot read" in missing.stderr


def _schedule_flags(enrollment_ids: list[int]) -> list[tuple]:
    with session_scope() as session:
        rows = session.execute(select(ScheduledMessage.enrollment_id, ScheduledMessage.step,
                                      ScheduledMessage.is_safety, ScheduledMessage.red_flag, ScheduledMessage.due_at)
                               .where(ScheduledMessage.enrollment_id.in_(enrollment_ids)))
        return [row[1:] for row in sorted(rows, key=lambda row: (row[0], row[1]))]


def test_imported_schedules_carry_safety_and_red_flags_as_enrollment_writes_them(any_env, tmp_path):
    # An evening filler treatment (19:30 in Jakarta): its safety steps are due inside quiet hours, as when enrolled.
    # Yesterday evening, imported and enrolled as the patients left (`now` five minutes later, for both).
    from aftercare.importer import import_csv
    from aftercare.schedule.enrollment import enroll

    add_clinic()
    day = datetime.now(UTC).date() - timedelta(days=1)
    treated = f"{day.isoformat()}T19:30:00+07:00"
    now = datetime.fromisoformat(treated) + timedelta(minutes=5)
    path = tmp_path / "patients.csv"
    _write(path, [["Ayu", "+6281200000001", "", "Asia/Jakarta", "en", "dermal-filler", treated, "", ""],
                  ["Budi", "+6281200000002", "", "Asia/Jakarta", "id", "mesotherapy", treated, "", ""]])
    with session_scope() as session:
        assert import_csv(session, path, clinic_slug="glow", now=now).imported == 2
    with session_scope() as session:
        for name, phone, treatment in [("Citra", "+6281200000003", "dermal-filler"),
                                       ("Dewi", "+6281200000004", "mesotherapy")]:
            enroll(session, clinic_slug="glow", first_name=name, phone=phone, treatment=treatment,
                   treated_at=datetime.fromisoformat(treated), now=now)
    with session_scope() as session:
        by_name = dict(session.execute(select(Patient.first_name, Enrollment.id).join(Enrollment)).all())
    assert _schedule_flags([by_name["Ayu"]]) == _schedule_flags([by_name["Citra"]])
    assert _schedule_flags([by_name["Budi"]]) == _schedule_flags([by_name["Dewi"]])
    imported = {step: (safety, red_flag) for step, safety, red_flag, _ in _schedule_flags([by_name["Ayu"]])}
    assert imported["first-hours"] == (True, None) and imported["checkin-evening"] == (True, "emergency")
    assert imported["checkin-day3"] == (False, "emergency") and imported["day1-morning"] == (False, None)
    meso = {step: red_flag for step, _, red_flag, _ in _schedule_flags([by_name["Budi"]])}
    assert meso["checkin-week12"] == "urgent" and meso["checkin-day3"] is None
