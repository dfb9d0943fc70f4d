"""`aftercare stats` sums up a period from what is stored; `aftercare export` writes one patient's whole history."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from aftercare.db import session_scope
from aftercare.importer import import_csv
from aftercare.models import Escalation, InboundMessage, MessageKind, ScheduledMessage
from tests.cli_helpers import add_clinic, cli_json, enroll, run_cli

AYU, BUDI, CITRA = "+6281234567890", "+6281234567891", "+6281234567892"
DOCTOR = "+6281100000001"


@pytest.fixture
def clinic(any_env):
    add_clinic(quiet_hours="00:00-00:00")
    cli_json("oncall", "add", "--clinic", "glow", "--name", "Dr A", "--phone", DOCTOR)
    treated = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0).isoformat()
    patients = {phone: enroll(phone=phone, first_name=name, treated_at=treated)["patient_id"]
                for phone, name in ((AYU, "Ayu"), (BUDI, "Budi"), (CITRA, "Citra"))}
    cli_json("dispatch", "--once")  # the first reminders go to all three
    return patients


def _timed_escalation(phone: str, text: str, *, reply_to_page: int, page_to_ack: int | None) -> int:
    """An escalation from `phone` whose first page went `reply_to_page` seconds after the reply, acknowledged
    `page_to_ack` seconds after that page."""
    escalation_id = cli_json("reply", "--from", phone, text)["escalation_id"]
    cli_json("dispatch", "--once")
    replied = datetime.now(UTC) - timedelta(hours=1)
    with session_scope() as session:
        session.execute(update(InboundMessage).where(InboundMessage.escalation_id == escalation_id)
                        .values(received_at=replied))
        session.execute(update(ScheduledMessage).where(ScheduledMessage.escalation_id == escalation_id,
                                                       ScheduledMessage.kind == MessageKind.PAGE)
                        .values(sent_at=replied + timedelta(seconds=reply_to_page)))
        session.get(Escalation, escalation_id).opened_at = replied
    if page_to_ack is not None:
        cli_json("escalations", "ack", str(escalation_id), "--by", "Dr A")
        with session_scope() as session:
            session.get(Escalation, escalation_id).acknowledged_at = replied + timedelta(
                seconds=reply_to_page + page_to_ack)
    return escalation_id


def test_stats_count_messages_replies_escalations_and_response_times(clinic):
    _timed_escalation(AYU, "my lip has gone white and it really hurts", reply_to_page=60, page_to_ack=300)
    _timed_escalation(BUDI, "I have a fever and there is pus coming out of the injection spot", reply_to_page=120,
                      page_to_ack=None)
    cli_json("reply", "--from", "+6281299999999", "--to", "+622150001234", "hello who is this")  # a review item
    with session_scope() as session:  # one reminder to Citra failed at the carrier
        row = session.scalars(select(ScheduledMessage).where(ScheduledMessage.kind == MessageKind.REMINDER,
                                                             ScheduledMessage.sent_at.is_not(None))
                              .order_by(ScheduledMessage.id.desc())).first()
        row.status, row.failed_at = "failed", datetime.now(UTC)
    cli_json("reply", "--from", CITRA, "STOP")

    data = cli_json("stats", "--clinic", "GLOW")
    sent = data["messages"]["sms"]["sent"]
    assert sent >= 5  # three first reminders and two pages at least
    assert data["messages"]["sms"]["failed"] == 1
    assert data["messages"]["email"] == {"sent": 0, "delivered": 0, "failed": 0}
    # STOP is a keyword, not a reply about the treatment: Citra counts as an opt-out only
    assert data["reply_rate"] == {"patients_messaged": 3, "patients_replied": 2, "rate": 0.667}
    assert data["escalations"] == {"emergency": 1, "urgent": 1}
    assert data["reply_to_page_seconds"] == {"count": 2, "median": 90.0, "p90": 120.0}
    assert data["page_to_ack_seconds"] == {"count": 1, "median": 300.0, "p90": 300.0}
    assert data["review_items"]["open"] >= 1 and set(data["review_items"]) == {"open", "done", "escalated"}
    assert data["opt_outs"] == 1
    assert data["clinic"] == "glow"

    later = cli_json("stats", "--since", (datetime.now(UTC) + timedelta(days=1)).date().isoformat())
    assert later["messages"]["sms"] == {"sent": 0, "delivered": 0, "failed": 0}
    assert later["escalations"] == {"emergency": 0, "urgent": 0} and later["reply_rate"]["rate"] is None
    assert later["reply_to_page_seconds"] == {"count": 0, "median": None, "p90": None}


def test_stats_reply_rate_counts_patients_not_messages(clinic):
    cli_json("reply", "--from", AYU, "all good thanks")
    cli_json("reply", "--from", AYU, "really all good")
    assert cli_json("stats")["reply_rate"] == {"patients_messaged": 3, "patients_replied": 1, "rate": 0.333}


def test_stats_of_another_clinic_are_separate(clinic):
    add_clinic("calm", phone="+622150009999")
    data = cli_json("stats", "--clinic", "calm")
    assert data["messages"]["sms"]["sent"] == 0 and data["reply_rate"]["patients_messaged"] == 0


def test_stats_refuses_a_bad_date_and_an_unknown_clinic_in_one_line(clinic):
    for args in (["--since", "last tuesday"], ["--clinic", "nowhere"]):
        result = run_cli("stats", *args)
        assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.output


def test_stats_print_a_table_for_people(clinic):
    result = run_cli("stats")
    assert result.exit_code == 0 and "reply rate" in result.stdout and "sms" in result.stdout


def test_export_json_holds_the_whole_history(clinic):
    escalation_id = _timed_escalation(AYU, "my lip has gone white and it really hurts", reply_to_page=30,
                                      page_to_ack=60)
    cli_json("escalations", "resolve", str(escalation_id), "--by", "Dr A", "--note", "seen in clinic, fine")
    result = run_cli("export", str(clinic[AYU]))
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["patient"]["first_name"] == "Ayu" and data["patient"]["phone"] == AYU
    assert [e["treatment"] for e in data["enrollments"]] == ["dermal-filler"]
    sent = [m for m in data["messages"] if m["status"] == "sent"]
    assert sent and all(m["text"] and m["sent_at"] for m in sent)
    assert any(m["status"] == "scheduled" for m in data["messages"])  # what is still to come, too
    assert [r["text"] for r in data["replies"]] == ["my lip has gone white and it really hurts"]
    [escalation] = data["escalations"]
    assert [t["event"] for t in escalation["timeline"]] == ["opened", "page", "acknowledged", "resolved"]
    assert escalation["timeline"][-1]["note"] == "seen in clinic, fine"
    budi = json.loads(run_cli("export", str(clinic[BUDI])).stdout)
    assert budi["replies"] == [] and budi["escalations"] == []  # nothing of Ayu's


def test_export_csv_is_one_row_per_event_and_never_a_formula(clinic):
    cli_json("reply", "--from", AYU, "=HYPERLINK(\"http://evil.example\",\"click\") is this normal?")
    cli_json("reply", "--from", AYU, "+1 more swelling today, -2 pain, @home")
    result = run_cli("export", str(clinic[AYU]), "--format", "csv")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    events = [row["event"] for row in rows]
    assert events.count("patient") == 1 and events.count("enrollment") == 1 and events.count("reply") == 2
    assert events.count("message") == len(json.loads(run_cli("export", str(clinic[AYU])).stdout)["messages"])
    replies = [row["text"] for row in rows if row["event"] == "reply"]
    assert replies[0].startswith("'=HYPERLINK") and replies[1].startswith("'+1")
    for row in rows:
        assert not any(str(value).startswith(("=", "+", "-", "@")) for value in row.values())
    assert [row["at"] for row in rows] == sorted(row["at"] for row in rows)


def test_export_of_an_unknown_patient_is_one_line(clinic):
    result = run_cli("export", "999999")
    assert result.exit_code == 1 and result.stderr.strip() == "error: unknown patient 999999"


def test_export_is_audited(clinic):
    run_cli("export", str(clinic[AYU]))
    from aftercare.audit import entries_for

    with session_scope() as session:
        actions = [e.action for e in entries_for(session, subject_type="patient", subject_id=clinic[AYU])]
    assert "patient.exported" in actions


def test_csv_import_takes_treatment_and_language_in_any_case(clinic, tmp_path):
    path = tmp_path / "patients.csv"
    treated = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0).isoformat()
    path.write_text("first_name,phone,treatment,treated_at,language\n"
                    f"Dewi,+6281234560001,Dermal-Filler,{treated},ID\n"
                    f"Eka,+6281234560002,CHEMICAL-PEEL,{treated},En\n", encoding="utf-8")
    with session_scope() as session:
        report = import_csv(session, path, clinic_slug="glow")
    assert report.imported == 2 and report.rejected == 0
    listed = {p["first_name"]: p for p in (json.loads(run_cli("export", str(pid)).stdout)["patient"]
                                           for pid in range(1, 10) if run_cli("export", str(pid)).exit_code == 0)}
    assert listed["Dewi"]["language"] == "id" and listed["Eka"]["language"] == "en"
