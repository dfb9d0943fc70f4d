"""A one-word answer is read against the red-flag question of the check-in it answers (issue 7, part 1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from aftercare.channels.console import read_outbox
from aftercare.config import get_settings
from aftercare.db import session_scope
from aftercare.models import ScheduledMessage
from tests.cli_helpers import add_clinic, cli_json, enroll

PATIENT = "+6281234567890"
DOCTOR = "+6281100000001"


@pytest.fixture
def clinic(env):
    add_clinic(quiet_hours="00:00-00:00")
    cli_json("oncall", "add", "--clinic", "glow", "--name", "Dr A", "--phone", DOCTOR)


def _treated(hours_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours_ago)).replace(microsecond=0).isoformat()


def _sent_checkin(step: str) -> str:
    """Send what is due and return the body of the check-in the patient got."""
    cli_json("dispatch", "--once")
    [body] = [m["body"] for m in read_outbox(get_settings()) if m["to"] == PATIENT and "Reply YES or NO" in m["body"]]
    with session_scope() as session:
        assert session.scalar(ScheduledMessage.__table__.select().with_only_columns(ScheduledMessage.red_flag)
                              .where(ScheduledMessage.step == step, ScheduledMessage.status == "sent"))
    return body


def _reply(text: str) -> dict:
    return cli_json("reply", "--from", PATIENT, text)


@pytest.mark.parametrize("answer", ["YES", "yes!", "Ya kak", "iyaa", "1"])
def test_yes_to_the_filler_red_flag_question_pages_the_on_call_clinician(clinic, answer):
    enroll(phone=PATIENT, treated_at=_treated(4.5))
    _sent_checkin("checkin-evening")
    result = _reply(answer)
    assert result["level"] == "emergency" and result["escalation_id"] is not None
    assert "NOW" in result["answer"] or "SEKARANG" in result["answer"]
    cli_json("dispatch", "--once")
    pages = [m for m in read_outbox(get_settings()) if m["to"] == DOCTOR]
    assert len(pages) == 1 and "EMERGENCY" in pages[0]["body"]
    shown = cli_json("escalations", "show", str(result["escalation_id"]))
    assert "red-flag question" in shown["explanation"]


@pytest.mark.parametrize("answer", ["NO", "no thanks", "tidak", "gak ada kak", "2"])
def test_no_to_the_red_flag_question_is_ok(clinic, answer):
    enroll(phone=PATIENT, treated_at=_treated(4.5))
    _sent_checkin("checkin-evening")
    result = _reply(answer)
    assert result["level"] == "ok" and result["escalation_id"] is None and result["review_id"] is None
    assert "Thank" in result["answer"] or "Terima kasih" in result["answer"]


def test_yes_with_a_worse_description_takes_the_more_serious_reading(clinic):
    enroll(phone=PATIENT, treatment="mesotherapy", treated_at=_treated(24 * 7 + 12))
    _sent_checkin("checkin-day7")
    result = _reply("yes, and now my lip has gone white and my vision is blurry")
    assert result["level"] == "emergency"


def test_yes_to_the_mesotherapy_lump_question_is_urgent(clinic):
    enroll(phone=PATIENT, treatment="mesotherapy", treated_at=_treated(24 * 7 + 12))
    _sent_checkin("checkin-day7")
    result = _reply("yes")
    assert result["level"] == "urgent" and result["escalation_id"] is not None


def test_no_then_a_danger_sign_in_free_text_still_escalates(clinic):
    enroll(phone=PATIENT, treated_at=_treated(4.5))
    _sent_checkin("checkin-evening")
    assert _reply("no, but my eyelid is drooping now")["level"] == "emergency"


def test_yes_that_also_says_all_is_fine_goes_to_a_person(clinic):
    enroll(phone=PATIENT, treated_at=_treated(4.5))
    _sent_checkin("checkin-evening")
    result = _reply("yes all good thank you, no problems")
    assert result["escalation_id"] is None and result["review_id"] is not None
    assert "glad" not in (result["answer"] or "").lower()


def test_a_yes_after_the_answer_window_is_not_read_as_a_red_flag(clinic):
    enroll(phone=PATIENT, treated_at=_treated(4.5))
    _sent_checkin("checkin-evening")
    with session_scope() as session:
        session.execute(update(ScheduledMessage).where(ScheduledMessage.step == "checkin-evening")
                        .values(sent_at=datetime.now(UTC) - timedelta(hours=30)))
    result = _reply("yes")
    assert result["escalation_id"] is None
    assert result["review_id"] is not None  # a bare "yes" to nothing in particular: a person reads it


def test_yes_without_any_red_flag_question_is_not_an_emergency(clinic):
    enroll(phone=PATIENT, treatment="chemical-peel", treated_at=_treated(30))
    cli_json("dispatch", "--once")
    assert _reply("yes")["escalation_id"] is None


@pytest.mark.parametrize("answer", ["sorry actually yes", "yes, a little", "yes unfortunately", "yeah kinda",
                                    "eh iya kak sedikit"])
def test_a_hedged_or_late_thought_yes_still_escalates(clinic, answer):
    enroll(phone=PATIENT, treated_at=_treated(4.5))
    _sent_checkin("checkin-evening")
    result = _reply(answer)
    assert result["level"] == "emergency" and result["escalation_id"] is not None


def test_no_then_a_change_of_mind_escalates(clinic):
    enroll(phone=PATIENT, treated_at=_treated(4.5))
    _sent_checkin("checkin-evening")
    assert _reply("no")["level"] == "ok"
    assert _reply("sorry actually yes")["escalation_id"] is not None
