"""The patient admin commands (issue 10): list and search, show by id or phone, update checked as at enrollment,
consent, and forget (erasure: no personal data left anywhere in the database, the audit log's skeleton kept)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from aftercare.channels.console import read_outbox
from aftercare.config import get_settings
from aftercare.db import get_engine, session_scope
from aftercare.models import AuditEntry, Base, InboundMessage, MediaFile, Patient, ScheduledMessage
from tests.cli_helpers import add_clinic, cli_json, enroll, run_cli

PHONE = "+6281234567890"
OTHER = "+6285711112222"
SENDER = "+15005550006"


def _treated(hours: float = 2.2) -> str:
    """A treatment `hours` ago: the safety text at +2h is due now, the evening check-in not yet."""
    return (datetime.now(UTC) - timedelta(hours=hours)).replace(microsecond=0).isoformat()


def _fails(*args: str) -> str:
    result = run_cli(*args)
    assert result.exit_code == 1, result.output
    assert result.stdout == "" and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    return result.stderr


def _audit(action: str) -> list[AuditEntry]:
    with session_scope() as session:
        rows = list(session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))
        session.expunge_all()
    return rows


@pytest.fixture
def family(any_env):
    """Ayu and her daughter Putri share a phone at glow; Budi is at another clinic."""
    add_clinic("glow")
    add_clinic("bright", phone="+622150009999")
    ayu = enroll(first_name="Ayu", phone=PHONE, treated_at=_treated())["patient_id"]
    putri = enroll(first_name="Putri", phone="0812-3456-7890", treated_at=_treated())["patient_id"]
    budi = enroll(clinic="bright", first_name="Budi", phone=OTHER, treated_at=_treated())["patient_id"]
    return {"ayu": ayu, "putri": putri, "budi": budi}


def _ids(rows: list[dict]) -> list[int]:
    return [row["id"] for row in rows]


def test_list_searches_first_names_and_phone_digits_without_logging_them(family, caplog):
    caplog.set_level(logging.INFO)
    assert _ids(cli_json("patient", "list")) == [family["ayu"], family["putri"], family["budi"]]
    assert _ids(cli_json("patient", "list", "--clinic", "bright")) == [family["budi"]]
    assert _ids(cli_json("patient", "list", "--search", "UTR")) == [family["putri"]]
    for digits in ("0812 3456", "+62 812-345", "34567890"):
        assert _ids(cli_json("patient", "list", "--search", digits)) == [family["ayu"], family["putri"]]
    assert _ids(cli_json("patient", "list", "--search", "5711", "--clinic", "glow")) == []
    assert cli_json("patient", "list", "--search", "%") == []  # a LIKE wildcard is a character, not "anything"
    [row] = cli_json("patient", "list", "--search", "budi")
    assert row["phone"] == OTHER and row["clinic"] == "bright" and row["sms"] == "allowed"
    assert "unknown clinic" in _fails("patient", "list", "--clinic", "nowhere").lower()
    assert "81234" not in caplog.text and "5711" not in caplog.text


def test_show_takes_an_id_or_a_phone_and_lists_everyone_on_a_shared_phone(family):
    by_id = cli_json("patient", "show", str(family["putri"]))
    assert by_id["patient"]["first_name"] == "Putri" and by_id["enrollments"]
    shared = cli_json("patient", "show", "+62 812-3456-7890")
    assert [p["patient"]["first_name"] for p in shared["patients"]] == ["Ayu", "Putri"]
    assert all(p["timeline"] for p in shared["patients"])
    [budi] = cli_json("patient", "show", OTHER)["patients"]
    assert budi["patient"]["id"] == family["budi"]
    human = run_cli("patient", "show", PHONE)
    assert human.exit_code == 0 and "Ayu" in human.stdout and "Putri" in human.stdout
    assert "+6281199990000" not in _fails("patient", "show", "+6281199990000")  # nobody: the number not repeated
    assert "invalid" in _fails("patient", "show", "+12")
    assert "unknown patient" in _fails("patient", "show", "99999999999999")
    assert "patient id" in _fails("patient", "show", "Ayu")


def test_update_is_checked_as_at_enrollment_and_audits_only_field_names(family, caplog):
    caplog.set_level(logging.INFO)
    ayu = str(family["ayu"])
    done = cli_json("patient", "update", ayu, "--phone", "0813 1111 2222", "--email", "ayu@example.com",
                    "--language", "ID", "--timezone", "Asia/Makassar")
    assert done["phone"] == "+6281311112222" and done["email"] == "ayu@example.com"
    assert done["language"] == "id" and done["timezone"] == "Asia/Makassar"
    assert done["changed"] == ["email", "language", "phone", "timezone"]
    [entry] = _audit("patient.updated")
    assert entry.subject_id == family["ayu"] and entry.details == {"fields": ["email", "language", "phone",
                                                                              "timezone"]}
    for bad, says in ((["--phone", "12345"], "invalid phone"), (["--phone", "6.28123E+11"], "spreadsheet"),
                      (["--email", "ayu@@example"], "invalid email"), (["--timezone", "Mars/Base"], "time zone"),
                      (["--language", "fr"], "unknown language"), (["--first-name", "Ayu\nBcc: x"], "control"),
                      (["--first-name", "=HYPERLINK(1)"], "formula"), (["--first-name", "  "], "empty")):
        assert says in _fails("patient", "update", ayu, "--phone", "+6281399998888", *bad)
    # Putri may not become a second "ayu" on the phone they share; the error names the other patient only.
    cli_json("patient", "update", ayu, "--phone", PHONE)
    error = _fails("patient", "update", str(family["putri"]), "--first-name", " AYU ")
    assert f"patient {family['ayu']}" in error and PHONE not in error and "Ayu" not in error
    error = _fails("patient", "update", ayu, "--first-name", "putri")
    assert f"patient {family['putri']}" in error
    assert cli_json("patient", "update", ayu, "--first-name", "Ayu")["changed"] == []  # nothing new, nothing audited
    assert len(_audit("patient.updated")) == 2
    shown = cli_json("patient", "show", ayu)["patient"]
    assert (shown["first_name"], shown["phone"], shown["language"]) == ("Ayu", PHONE, "id")
    assert cli_json("patient", "update", ayu, "--email", "")["email"] is None
    assert "unknown patient" in _fails("patient", "update", "424242", "--first-name", "X")
    assert "patient id" in _fails("patient", "update", "1.5", "--first-name", "X")
    assert all(json.dumps(e.details).find("@") < 0 for e in _audit("patient.updated"))
    assert "81311112222" not in caplog.text and "ayu@example.com" not in caplog.text


def test_consent_on_lifts_a_stop_and_changes_reach_the_next_delivery(any_env):
    add_clinic(sms_from=SENDER)
    patient = str(enroll(phone=PHONE, treated_at=_treated())["patient_id"])
    cli_json("reply", "--from", PHONE, "--to", SENDER, "STOP")
    assert cli_json("patient", "show", patient)["patient"]["sms"] == "opted_out"
    cli_json("patient", "update", patient, "--phone", OTHER, "--first-name", "Ayu Lestari")
    done = cli_json("patient", "consent", patient, "--sms", "on", "--email", "off", "--by", "Nurse Rina")
    assert done["sms"] == "allowed" and done["sms_opted_out_at"] is None and done["email_consent"] is False
    assert done["changed"] == ["consent.sms_opted_in", "consent.email_withdrawn"]
    [entry] = _audit("consent.sms_opted_in")[-1:]
    assert entry.actor == "Nurse Rina" and entry.details == {"source": "cli", "lifted_opt_out": True}
    cli_json("dispatch", "--once")
    [sms] = [m for m in read_outbox(get_settings()) if m["channel"] == "sms"]
    assert sms["to"] == OTHER and "Ayu Lestari" in sms["body"]  # the corrected details, at send time
    again = cli_json("patient", "consent", patient, "--sms", "ON", "--by", "Nurse Rina")
    assert again["changed"] == [] and len(_audit("consent.sms_opted_in")) == 1
    assert cli_json("patient", "consent", patient, "--sms", "off", "--by", "Rina")["sms"] == "no_consent"
    assert "--sms" in _fails("patient", "consent", patient, "--by", "Rina")
    assert "--by" in _fails("patient", "consent", patient, "--sms", "on", "--by", "\n")
    assert "unknown patient" in _fails("patient", "consent", "0", "--sms", "on", "--by", "Rina")


def _everything_stored() -> str:
    """Every row of every table, as text: what an erasure must leave no personal data in."""
    with get_engine().connect() as conn:
        return "\n".join(str(tuple(row)) for table in Base.metadata.sorted_tables
                         for row in conn.execute(select(table)))


def test_forget_leaves_no_personal_data_anywhere_and_keeps_the_audit_skeleton(any_env):
    add_clinic(sms_from=SENDER)
    cli_json("oncall", "add", "--clinic", "glow", "--name", "Dr A", "--phone", "+6281100000001",
             "--email", "a@glow.example")
    patient = enroll(first_name="Kartika", phone=PHONE, email="kartika@example.com", treated_at=_treated())
    pid = str(patient["patient_id"])
    question = cli_json("reply", "--from", PHONE, "--to", SENDER, "--media", "1",
                        "Kartika here, can I dye my hair? my email is kartika@example.com")
    photo = _stored_photo()
    assert "unread replies" in _fails("patient", "forget", pid, "--by", "Nurse Rina")
    cli_json("inbox", "done", str(question["review_id"]), "--by", "Nurse Rina",
             "--note", "called Kartika back on 0812-34567890: wait 2 weeks")
    danger = cli_json("reply", "--from", PHONE, "--to", SENDER, "my lip went white and it hurts so much")
    assert "unresolved escalation" in _fails("patient", "forget", pid, "--by", "Nurse Rina")
    cli_json("dispatch", "--once")  # the pages go, quoting her words and phone
    cli_json("escalations", "resolve", str(danger["escalation_id"]), "--by", "Dr A",
             "--note", "Kartika came in at once; massaged, fine (6281234567890)")
    assert cli_json("patient", "show", pid)["patient"]["first_name"] == "Kartika"  # nothing erased yet
    scheduled_before = _count(patient["enrollment_id"], "scheduled")
    assert scheduled_before > 0

    secrets = ("kartika", "81234567890", "dye my hair", "lip went white")
    before = _everything_stored().lower()
    assert all(secret in before for secret in secrets)
    done = cli_json("patient", "forget", pid, "--by", "Nurse Rina")
    assert done["messages_cancelled"] == scheduled_before and done["enrollments_cancelled"] == 1
    assert done["replies_erased"] == 2 and done["photos_erased"] == 1 and done["forgotten_at"]
    assert not photo.exists()
    stored = _everything_stored().lower()
    for secret in secrets:
        assert secret not in stored, secret
    assert _count(patient["enrollment_id"], "scheduled") == 0
    shown = cli_json("patient", "show", pid)["patient"]
    assert shown["forgotten_at"] and shown["phone"] != PHONE and shown["email"] is None
    assert cli_json("schedule", "list", "--enrollment", str(patient["enrollment_id"]))  # the skeleton stays
    [entry] = _audit("patient.forgotten")
    assert entry.actor == "Nurse Rina" and entry.subject_id == int(pid)
    actions = [e.action for e in _audit_of_all()]
    assert {"enrollment.created", "review.done", "escalation.resolved", "patient.forgotten"} <= set(actions)
    assert "already forgotten" in _fails("patient", "forget", pid, "--by", "Nurse Rina")
    assert "forgotten" in _fails("patient", "update", pid, "--first-name", "Kartika")
    assert "forgotten" in _fails("patient", "consent", pid, "--sms", "on", "--by", "Rina")
    assert "no patient" in _fails("patient", "show", PHONE)
    # The same person enrolling again later is a new patient, nothing linked to what was erased.
    assert enroll(first_name="Kartika", phone=PHONE, treated_at=_treated())["patient_id"] != int(pid)


def _stored_photo():
    """The photo of the newest reply, stored as the media fetcher stores it: the file, and its row."""
    folder = get_settings().effective_media_dir / "1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.jpg").write_bytes(b"\xff\xd8\xff photo of her face")
    with session_scope() as session:
        inbound = session.scalars(select(InboundMessage).order_by(InboundMessage.id.desc())).first()
        session.add(MediaFile(inbound_id=inbound.id, position=0, provider_url="https://api.twilio.com/x/Media/ME1",
                              content_type="image/jpeg", size_bytes=20, path="1/a.jpg", status="stored"))
    return folder / "a.jpg"


def _count(enrollment_id: int, status: str) -> int:
    with session_scope() as session:
        return len(session.scalars(select(ScheduledMessage.id).where(
            ScheduledMessage.enrollment_id == enrollment_id, ScheduledMessage.status == status)).all())


def _audit_of_all() -> list[AuditEntry]:
    with session_scope() as session:
        rows = list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        session.expunge_all()
    return rows


def test_forgetting_one_of_a_shared_phone_keeps_the_others_replies_and_phone(env):
    add_clinic(sms_from=SENDER)
    sari = enroll(first_name="Sari", phone=PHONE, treated_at=_treated())["patient_id"]
    putri = enroll(first_name="Putri", phone=PHONE, treated_at=_treated())["patient_id"]
    cli_json("reply", "--from", PHONE, "--to", SENDER, "Sari: all good, thanks")
    cli_json("patient", "forget", str(putri), "--by", "Nurse Rina")
    with session_scope() as session:
        assert session.get(Patient, sari).phone == PHONE and session.get(Patient, putri).phone != PHONE
        bodies = session.scalars(select(InboundMessage.body).where(InboundMessage.from_phone == PHONE)).all()
    assert bodies == ["Sari: all good, thanks"]
    [only] = cli_json("patient", "show", PHONE)["patients"]
    assert only["patient"]["id"] == sari


def test_an_email_added_later_brings_back_the_email_steps_skipped_for_want_of_one(env):
    from datetime import UTC, datetime, timedelta

    from tests.cli_helpers import add_clinic, cli_json

    add_clinic(quiet_hours="none")
    treated = (datetime.now(UTC) - timedelta(minutes=20)).replace(microsecond=0).isoformat()
    enrolled = cli_json("enroll", "--clinic", "glow", "--first-name", "Putri", "--phone", "+6281244446666",
                        "--treatment", "mesotherapy", "--treated-at", treated)
    emails = [m for m in cli_json("schedule", "list", "--enrollment", str(enrolled["enrollment_id"]))
              if m["channel"] == "email"]
    assert emails and {m["reason"] for m in emails} == {"no_email"}
    cli_json("patient", "update", str(enrolled["patient_id"]), "--email", "putri@example.com")
    again = [m for m in cli_json("schedule", "list", "--enrollment", str(enrolled["enrollment_id"]))
             if m["channel"] == "email"]
    assert {m["status"] for m in again} == {"scheduled"}


def test_a_bad_data_folder_or_database_url_is_one_line(tmp_path, monkeypatch):
    from tests.cli_helpers import run_cli
    from tests.conftest import configure

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for key, value in (("home", blocker / "sub"), ("database_url", "bogus://x")):
        configure(monkeypatch, **{key: value})
        result = run_cli("clinic", "list")
        assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        monkeypatch.delenv(f"AFTERCARE_{key.upper()}")
