"""STOP / START / HELP and clear free-text opt-outs change consent, are answered, and steer the dispatcher."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from aftercare.channels.console import read_outbox
from aftercare.config import get_settings
from aftercare.db import session_scope
from aftercare.inbound.keywords import Keyword, classify
from aftercare.models import Patient, ScheduledMessage
from tests.cli_helpers import add_clinic, cli_json, enroll

PATIENT = "+6281234567890"


@pytest.fixture
def patient(env):
    add_clinic(quiet_hours="00:00-00:00")
    treated = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0).isoformat()
    return enroll(phone=PATIENT, treated_at=treated)


def _opted_out() -> bool:
    with session_scope() as session:
        return session.scalar(select(Patient.sms_opted_out_at)) is not None


@pytest.mark.parametrize("word", ["STOP", "stop", "  Stop  ", "STOPALL", "UNSUBSCRIBE", "cancel", "END", "quit",
                                  "REVOKE", "optout", "BERHENTI", "stop."])
def test_every_stop_keyword_opts_out_and_confirms_once(patient, word):
    result = cli_json("reply", "--from", PATIENT, word)
    assert _opted_out()
    assert result["answer"].count("START") == 1
    assert result["level"] is None


def test_stop_skips_future_sms_and_start_brings_them_back(patient):
    cli_json("reply", "--from", PATIENT, "STOP")
    first = cli_json("dispatch", "--once")
    assert first["claimed"] >= 1 and first["sent"] == 0
    assert read_outbox(get_settings()) == []
    cli_json("reply", "--from", PATIENT, "START")
    assert not _opted_out()
    with session_scope() as session:
        session.execute(update(ScheduledMessage).where(ScheduledMessage.status == "scheduled")
                        .values(due_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert cli_json("dispatch", "--once")["sent"] >= 1


def test_help_answers_with_clinic_name_phone_and_how_to_stop(patient):
    answer = cli_json("reply", "--from", PATIENT, "help")["answer"]
    assert "Glow Clinic" in answer and "+622150001234" in answer and "STOP" in answer
    assert not _opted_out()


@pytest.mark.parametrize("text", ["please stop texting me", "Unsubscribe me please", "jangan kirim sms lagi ya",
                                  "don't text me anymore", "no more messages please", "tolong berhenti kirim pesan",
                                  "opt me out"])
def test_clear_free_text_opt_outs_count(text):
    assert classify(text)[0] == Keyword.STOP


@pytest.mark.parametrize("text", ["the bleeding won't stop", "should I stop my retinol?", "when can I stop icing?",
                                  "it does not stop itching", "yes", "ok thanks", "can I start makeup tomorrow?",
                                  "I need help, my lip is white"])
def test_ordinary_replies_are_not_opt_outs(text):
    assert classify(text)[0] != Keyword.STOP


def test_yes_opts_back_in_only_someone_who_opted_out(patient):
    result = cli_json("reply", "--from", PATIENT, "YES")
    assert result["level"] in ("ok", "routine") and not _opted_out()
    cli_json("reply", "--from", PATIENT, "STOP")
    cli_json("reply", "--from", PATIENT, "yes")
    assert not _opted_out()


def test_a_free_text_opt_out_with_a_danger_sign_still_escalates(patient):
    result = cli_json("reply", "--from", PATIENT, "stop texting me, my lip went white and hurts a lot")
    assert _opted_out()
    assert result["level"] == "emergency" and result["escalation_id"] is not None
