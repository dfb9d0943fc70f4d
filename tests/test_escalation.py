"""Dangerous replies open escalations that page the on-call clinician until someone acknowledges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from aftercare.channels.console import read_outbox
from aftercare.config import get_settings
from aftercare.db import session_scope
from aftercare.models import Escalation, MessageKind, OnCallStaff, ScheduledMessage
from tests.cli_helpers import add_clinic, cli_json, enroll, run_cli

PATIENT = "+6281234567890"
DOCTOR_A = "+6281100000001"
DOCTOR_B = "+6281100000002"


@pytest.fixture
def clinic(env):
    add_clinic(quiet_hours="00:00-00:00")
    cli_json("oncall", "add", "--clinic", "glow", "--name", "Dr A", "--phone", DOCTOR_A, "--email", "a@glow.example")
    cli_json("oncall", "add", "--clinic", "glow", "--name", "Dr B", "--phone", DOCTOR_B)
    treated = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0).isoformat()
    return enroll(phone=PATIENT, treated_at=treated, email="ayu@example.com")


def _outbox_to(number: str) -> list[dict]:
    return [m for m in read_outbox(get_settings()) if m["to"] == number]


def _reply(text: str, sender: str = PATIENT) -> dict:
    return cli_json("reply", "--from", sender, text)


def test_an_emergency_reply_pages_oncall_and_tells_the_patient_to_call_now(clinic):
    result = _reply("my lip has gone white and it really hurts")
    assert result["level"] == "emergency"
    assert result["escalation_id"] is not None
    assert "+622150001234" in result["answer"] and "emergency" in result["answer"].lower()
    cli_json("dispatch", "--once")
    pages = _outbox_to(DOCTOR_A)
    assert len(pages) == 1
    assert "Ayu" in pages[0]["body"] and "ACK" in pages[0]["body"] and "white" in pages[0]["body"]
    assert [m for m in read_outbox(get_settings()) if m["to"] == "a@glow.example"]  # and by email
    listed = cli_json("escalations", "list", "--open")
    assert [e["id"] for e in listed] == [result["escalation_id"]]
    assert set(listed[0]) >= {"id", "level", "status", "patient_id", "opened_at", "acknowledged_at"}


def test_an_urgent_reply_gets_the_urgent_safety_answer(clinic):
    result = _reply("I have a fever and there is pus coming out of the injection spot")
    assert result["level"] == "urgent"
    assert result["escalation_id"] is not None
    assert "will call" in result["answer"]


def test_routine_reminders_are_held_while_an_escalation_is_open(clinic):
    cli_json("dispatch", "--once")
    already_sent = len(_outbox_to(PATIENT))
    escalation_id = _reply("my lip has gone white and it really hurts")["escalation_id"]
    with session_scope() as session:
        session.execute(update(ScheduledMessage).where(ScheduledMessage.kind == MessageKind.REMINDER,
                                                       ScheduledMessage.status == "scheduled")
                        .values(due_at=datetime.now(UTC) - timedelta(seconds=1)))
    result = cli_json("dispatch", "--once")
    assert result["sent"] == 2  # the two pages (SMS and email) only
    assert len(_outbox_to(PATIENT)) == already_sent
    cli_json("escalations", "ack", str(escalation_id), "--by", "Dr A")
    assert cli_json("dispatch", "--once")["sent"] >= 1  # the held reminders go once a clinician has looked
    assert len(_outbox_to(PATIENT)) > already_sent


def test_unacknowledged_escalation_is_paged_again_to_the_next_person(clinic):
    escalation_id = _reply("my lip has gone white and it really hurts")["escalation_id"]
    cli_json("dispatch", "--once")
    assert len(_outbox_to(DOCTOR_A)) == 1 and not _outbox_to(DOCTOR_B)
    with session_scope() as session:
        escalation = session.get(Escalation, escalation_id)
        assert escalation.next_page_at - escalation.opened_at == timedelta(minutes=5)
        escalation.next_page_at = datetime.now(UTC) - timedelta(seconds=1)  # five minutes pass
    cli_json("dispatch", "--once")
    assert len(_outbox_to(DOCTOR_B)) == 1
    assert cli_json("escalations", "show", str(escalation_id))["page_round"] == 1


def test_clinician_acknowledges_by_texting_ack_and_the_code(clinic):
    escalation_id = _reply("my lip has gone white and it really hurts")["escalation_id"]
    code = cli_json("escalations", "show", str(escalation_id))["code"]
    answer = _reply(f"ack {code.lower()}", sender=DOCTOR_A)
    assert answer["escalation_id"] == escalation_id and "Acknowledged" in answer["answer"]
    shown = cli_json("escalations", "show", str(escalation_id))
    assert shown["status"] == "acknowledged" and shown["acknowledged_by"] == "Dr A"
    with session_scope() as session:
        assert session.get(Escalation, escalation_id).next_page_at is None


def test_an_ack_from_a_stranger_acknowledges_nothing(clinic):
    escalation_id = _reply("my lip has gone white and it really hurts")["escalation_id"]
    code = cli_json("escalations", "show", str(escalation_id))["code"]
    _reply(f"ACK {code}", sender="+6281999999999")
    assert cli_json("escalations", "show", str(escalation_id))["status"] == "open"


def test_resolve_needs_a_note_and_everything_is_in_the_audit_log(clinic):
    escalation_id = _reply("my lip has gone white and it really hurts")["escalation_id"]
    cli_json("dispatch", "--once")
    cli_json("escalations", "ack", str(escalation_id), "--by", "Dr A")
    empty = run_cli("escalations", "resolve", str(escalation_id), "--by", "Dr A", "--note", " ")
    assert empty.exit_code == 1
    cli_json("escalations", "resolve", str(escalation_id), "--by", "Dr A", "--note", "seen, hyaluronidase given")
    shown = cli_json("escalations", "show", str(escalation_id))
    assert shown["status"] == "resolved"
    actions = [a["action"] for a in shown["audit"]]
    assert actions == ["escalation.opened", "escalation.page_queued", *["escalation.paged"] * len(shown["pages"]),
                       "escalation.acknowledged", "escalation.resolved"]
    again = run_cli("escalations", "ack", str(escalation_id), "--by", "Dr B")
    assert again.exit_code == 1 and "already resolved" in again.stderr


def test_a_routine_reply_gets_one_kind_answer_per_checkin(clinic):
    first = _reply("a bit swollen and bruised today, is that normal?")
    assert first["level"] == "routine" and first["escalation_id"] is None
    assert "normal" in first["answer"]
    second = _reply("also a little itchy")
    assert second["answer"] is None
    assert cli_json("escalations", "list") == []


def test_an_opted_out_patient_reporting_danger_still_pages_the_clinic(clinic):
    assert "no more" in _reply("STOP")["answer"]
    result = _reply("my cheek is turning blue and cold")
    assert result["level"] == "emergency" and result["escalation_id"]
    cli_json("dispatch", "--once")
    pages = _outbox_to(DOCTOR_A)
    assert pages and "opted out" in pages[0]["body"] and PATIENT in pages[0]["body"]


def test_unknown_sender_in_danger_is_told_to_get_help(env):
    result = _reply("my lip went white and it hurts so bad", sender="+6281777777777")
    assert result["level"] == "emergency" and result["escalation_id"] is None
    assert "emergency" in result["answer"].lower()


def test_a_page_queued_before_the_escalation_was_acknowledged_is_not_sent(clinic):
    escalation_id = _reply("my lip has gone white and it really hurts")["escalation_id"]
    cli_json("escalations", "ack", str(escalation_id), "--by", "Dr A")
    cli_json("dispatch", "--once")
    assert not _outbox_to(DOCTOR_A)


def test_a_clinicians_text_is_never_triaged_as_a_patient_reply(clinic):
    result = cli_json("reply", "--from", DOCTOR_A, "will check her lip for blanching, severe pain?")
    assert result["escalation_id"] is None and result["review_id"] is None and result["handling"] == "staff"
    assert "ACK" in result["answer"]
    wrong = cli_json("reply", "--from", DOCTOR_A, "ACK ZZZZZZ")
    assert "unknown code" in wrong["answer"]
    assert cli_json("escalations", "list") == [] and cli_json("inbox") == []


def test_the_page_says_outside_the_quote_what_the_words_do_not(clinic):
    result = cli_json("reply", "--from", "+6285599990000", "my wife had filler today, her lip went white and hurts")
    cli_json("dispatch", "--once")
    [page] = _outbox_to(DOCTOR_A)
    quoted = page["body"].split('"')[1]
    assert "not on file" not in quoted and "Sender not on file" in page["body"]
    assert cli_json("escalations", "show", str(result["escalation_id"]))["replies"][0]["body"].startswith("my wife")
    shown = run_cli("escalations", "show", str(result["escalation_id"]))
    assert "the patient's words" in shown.stdout and "my wife" in shown.stdout


def test_acknowledging_twice_says_who_took_it(clinic):
    escalation_id = _reply("my lip has gone white and it really hurts")["escalation_id"]
    cli_json("escalations", "ack", str(escalation_id), "--by", "Dr A")
    again = run_cli("escalations", "ack", str(escalation_id), "--by", "Dr B")
    assert again.exit_code == 1 and "by Dr A" in again.stderr


@pytest.mark.parametrize("form", ["Ack: {code}", "ack #{code} thanks, on it", "ACK {code}"])
def test_ack_is_read_in_the_forms_clinicians_type(clinic, form):
    escalation_id = _reply("my lip has gone white and it really hurts")["escalation_id"]
    code = cli_json("escalations", "show", str(escalation_id))["code"]
    result = cli_json("reply", "--from", DOCTOR_A, form.format(code=code.lower()))
    assert result["handling"] == "ack"
    assert cli_json("escalations", "show", str(escalation_id))["status"] == "acknowledged"


def test_a_new_emergency_sign_on_an_open_escalation_pages_again_at_once(clinic):
    _reply("my lip has gone white and it really hurts")
    cli_json("dispatch", "--once")
    assert len(_outbox_to(DOCTOR_A)) == 1
    _reply("and now my left eye is blurry")
    cli_json("dispatch", "--once")
    assert len(_outbox_to(DOCTOR_A)) + len(_outbox_to(DOCTOR_B)) == 2


@pytest.mark.parametrize("code", ["ZZZZZZ", "K7Q2", "ack123456"])
def test_a_wrong_ack_code_is_answered_unknown_code_and_changes_nothing(clinic, code):
    escalation_id = _reply("my lip has gone white and it really hurts")["escalation_id"]
    answer = _reply(f"ACK {code}", sender=DOCTOR_B)
    assert answer["handling"] == "staff" and "unknown code" in answer["answer"]
    assert cli_json("escalations", "show", str(escalation_id))["status"] == "open"


def test_on_call_staff_taken_off_the_list_can_no_longer_acknowledge(clinic):
    escalation_id = _reply("my lip has gone white and it really hurts")["escalation_id"]
    code = cli_json("escalations", "show", str(escalation_id))["code"]
    with session_scope() as session:
        session.execute(update(OnCallStaff).where(OnCallStaff.phone == DOCTOR_A).values(active=False))
    answer = _reply(f"ACK {code}", sender=DOCTOR_A)
    assert answer["handling"] != "ack" and "Acknowledged" not in (answer["answer"] or "")
    assert cli_json("escalations", "show", str(escalation_id))["status"] == "open"
    assert "Acknowledged" in _reply(f"ACK {code}", sender=DOCTOR_B)["answer"]
