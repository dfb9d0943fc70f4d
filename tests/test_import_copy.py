"""On PostgreSQL, an import by COPY stores exactly what the INSERT path stores for the same file: patients new and
known (consent on file, opt-outs kept), family phones, duplicates within the file, rejects, re-imports."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

import aftercare.importer
from aftercare.db import session_scope
from aftercare.importer import import_csv
from aftercare.models import Clinic, Enrollment, Patient, ScheduledMessage
from tests.cli_helpers import add_clinic, enroll

HEADER = ["first_name", "phone", "email", "timezone", "language", "treatment", "treated_at", "sms_consent",
          "email_consent"]
NOW = datetime.now(UTC).replace(microsecond=0)
EVENING = (NOW - timedelta(days=1)).replace(hour=12, minute=30).isoformat()  # 19:30 in Jakarta: quiet hours ahead
RECENT = (NOW - timedelta(minutes=30)).isoformat()


def _file(path: Path) -> Path:
    rows = [
        ["Sari", "+6281200000001", "sari@example.com", "", "id", "dermal-filler", RECENT, "", ""],  # known: new session
        ["sari", "081200000001", "", "", "en", "mesotherapy", EVENING, "", ""],  # known: the session on file
        ["Opt", "+6281200000002", "opt@example.com", "", "en", "mesotherapy", RECENT, "yes", "yes"],  # opted out
        ["NoConsent", "+6281200000003", "", "", "en", "skin-booster", EVENING, "yes", ""],  # no SMS consent on file
        ["Putri", "+6281200000001", "putri@example.com", "", "en", "mesotherapy", RECENT, "", ""],  # family phone
        ["Bad Phone", "12345", "", "", "en", "mesotherapy", RECENT, "", ""],
        ["Ayu", "+6281200000010", "", "America/New_York", "en", "chemical-peel", EVENING, "no", ""],
        ["AYU ", "+6281200000010", "ayu@example.com", "", "id", "chemical-peel", EVENING, "", ""],  # duplicate
        ["Ayu", "+6281200000010", "ayu@example.com", "", "id", "microneedling", RECENT, "yes", "no"],  # next batch
        ["Bad Zone", "+6281200000011", "", "Mars/Base", "en", "mesotherapy", RECENT, "", ""],
        ["Budi", "+6281200000012", "budi@example.com", "Europe/London", "en", "laser-resurfacing", EVENING, "no",
         "yes"],
        ["Budi", "+6281200000012", "", "", "en", "laser-resurfacing", EVENING, "", ""],  # duplicate, next batch
        ["Citra", "+6281200000013", "", "", "id", "dermal-filler", RECENT, "tidak", "tidak"],
    ]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def _setup_clinic(slug: str) -> None:
    add_clinic(slug)
    enroll(clinic=slug, first_name="Sari", phone="+6281200000001", treatment="mesotherapy", treated_at=EVENING)
    enroll(clinic=slug, first_name="Opt", phone="+6281200000002", treatment="dermal-filler", treated_at=RECENT)
    enroll(clinic=slug, first_name="NoConsent", phone="+6281200000003", treatment="dermal-filler", treated_at=RECENT)
    with session_scope() as session:
        clinic_id = session.scalar(select(Clinic.id).where(Clinic.slug == slug))
        session.execute(update(Patient).where(Patient.clinic_id == clinic_id, Patient.first_name == "Opt")
                        .values(sms_opted_out_at=NOW - timedelta(days=1), sms_opt_out_source="sms"))
        session.execute(update(Patient).where(Patient.clinic_id == clinic_id, Patient.first_name == "NoConsent")
                        .values(sms_consent=False))


def _snapshot(slug: str, since: datetime) -> dict:
    """A clinic's patients, enrollments and the outbox of the imported ones (those enrolled by hand before were
    planned at another moment), without ids: each message as its patient and session."""
    with session_scope() as session:
        clinic_id = session.scalar(select(Clinic.id).where(Clinic.slug == slug))
        patients = sorted(tuple(row) for row in session.execute(
            select(Patient.phone, Patient.first_name, Patient.name_key, Patient.email, Patient.timezone,
                   Patient.language, Patient.sms_consent, Patient.email_consent, Patient.sms_opted_out_at)
            .where(Patient.clinic_id == clinic_id)))
        session_of = (Patient.phone, Patient.name_key, Enrollment.treatment, Enrollment.treated_at)
        enrollments = sorted(tuple(row) for row in session.execute(
            select(*session_of, Enrollment.protocol_version, Enrollment.status).join(Enrollment.patient)
            .where(Enrollment.clinic_id == clinic_id)))
        messages = session.execute(
            select(*session_of, ScheduledMessage.step, ScheduledMessage.channel, ScheduledMessage.kind,
                   ScheduledMessage.template, ScheduledMessage.is_checkin, ScheduledMessage.is_safety,
                   ScheduledMessage.red_flag, ScheduledMessage.planned_at, ScheduledMessage.due_at,
                   ScheduledMessage.fresh_until, ScheduledMessage.status, ScheduledMessage.skip_reason,
                   ScheduledMessage.skipped_at, ScheduledMessage.attempts)
            .join(ScheduledMessage.enrollment).join(Enrollment.patient)
            .where(Enrollment.clinic_id == clinic_id, Enrollment.created_at >= since)
            .order_by(ScheduledMessage.id)).all()
    # Each enrollment's messages in the order they were written (protocol order), and all of them, sorted.
    order: dict[tuple, list[str]] = {}
    for row in messages:
        order.setdefault(tuple(row[:4]), []).append(row[4])
    return {"patients": patients, "enrollments": enrollments, "messages": sorted(tuple(row) for row in messages),
            "order": order}


def _import(path: Path, slug: str, *, copy: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, list]:
    monkeypatch.setattr(aftercare.importer, "use_copy", lambda session: copy)
    with session_scope() as session:
        report = import_csv(session, path, clinic_slug=slug, now=NOW).to_dict()
    rejects = []
    if report.pop("reject_file"):
        with path.with_name(path.stem + ".rejects.csv").open(newline="", encoding="utf-8") as handle:
            rejects = list(csv.reader(handle))
    return report, rejects


@pytest.mark.parametrize("batch_size", [3, 2000])
def test_copy_stores_what_the_insert_path_stores(env, tmp_path, monkeypatch, batch_size):
    monkeypatch.setattr(aftercare.importer, "BATCH_SIZE", batch_size)
    path = _file(tmp_path / "patients.csv")
    for slug in ("glow", "glow-b"):
        _setup_clinic(slug)
    since = datetime.now(UTC)
    by_copy = _import(path, "glow", copy=True, monkeypatch=monkeypatch)
    by_insert = _import(path, "glow-b", copy=False, monkeypatch=monkeypatch)
    assert by_copy == by_insert
    report, rejects = by_copy
    assert report == {"imported": 8, "already_present": 3, "rejected": 2, "dry_run": False}
    assert [row[1][:13] for row in rejects[1:]] == ["invalid phone", "unknown time "]
    copied, inserted = _snapshot("glow", since), _snapshot("glow-b", since)
    assert copied == inserted
    # What the comparison covers: the opt-out and the missing consent on file are kept and planned on.
    patients = {p[1]: p for p in copied["patients"]}
    assert patients["Opt"][8] is not None and patients["NoConsent"][6] is False
    channels = {(m[0], m[2]): m[5] for m in copied["messages"] if m[4] == "first-hours"}
    assert channels[("+6281200000002", "mesotherapy")] == "email"
    again = _import(path, "glow", copy=True, monkeypatch=monkeypatch), _import(path, "glow-b", copy=False,
                                                                               monkeypatch=monkeypatch)
    assert again[0] == again[1] and again[0][0]["imported"] == 0 and again[0][0]["already_present"] == 11
    assert _snapshot("glow", since) == copied and _snapshot("glow-b", since) == inserted


def test_batches_read_before_a_broken_line_are_kept(any_env, tmp_path, monkeypatch):
    monkeypatch.setattr(aftercare.importer, "BATCH_SIZE", 2)
    add_clinic()
    path = tmp_path / "broken.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i in range(4):
            writer.writerow([f"Pat{i}", f"+62812000000{i:02d}", "", "", "en", "mesotherapy", RECENT, "", ""])
        writer.writerow(["Huge", "+6281200000099", "x" * 200_000, "", "en", "mesotherapy", RECENT, "", ""])
    with pytest.raises(aftercare.importer.InputError, match="line"), session_scope() as session:
        import_csv(session, path, clinic_slug="glow", now=NOW)
    with session_scope() as session:
        assert sorted(session.scalars(select(Patient.first_name))) == ["Pat0", "Pat1", "Pat2", "Pat3"]



def test_a_database_failure_in_the_writer_thread_is_raised_by_the_import(env, tmp_path, monkeypatch):
    monkeypatch.setattr(aftercare.importer, "BATCH_SIZE", 1)  # more batches than the queue holds: nothing blocks

    def fail(self, number, unique):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(aftercare.importer.CopyWriter, "write", fail)
    add_clinic()
    path = _file(tmp_path / "patients.csv")
    with pytest.raises(RuntimeError, match="went away"), session_scope() as session:
        import_csv(session, path, clinic_slug="glow", now=NOW)


def test_batches_take_their_turns_in_file_order_and_an_abort_releases_the_waiters():
    import threading

    from aftercare.import_copy import ImportStopped, Turns

    turns, order, stopped = Turns(), [], []

    def batch(number: int) -> None:
        try:
            with turns.turn("patients", number):
                order.append(number)
        except ImportStopped:
            stopped.append(number)

    threads = [threading.Thread(target=batch, args=(n,)) for n in (3, 2, 1, 0)]  # the later ones ask first
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert order == [0, 1, 2, 3]
    waiting = threading.Thread(target=batch, args=(9,))  # its turn never comes: batches 4 to 8 failed
    waiting.start()
    turns.abort()
    waiting.join(timeout=10)
    assert stopped == [9] and not waiting.is_alive()
