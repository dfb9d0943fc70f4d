"""Delivery through the real twilio SDK (to the fake Twilio API) and real SMTP (aiosmtpd): outcomes per error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from aftercare.db import session_scope
from aftercare.models import Patient, ScheduledMessage
from tests.cli_helpers import add_clinic, cli_json, enroll
from tests.conftest import configure
from tests.fakes.smtp import FakeSmtp
from tests.fakes.twilio_api import FakeTwilio
from tests.processes import ACCOUNT_SID, AUTH_TOKEN, TWILIO_FROM

PATIENT = "+6281234567890"


@pytest.fixture
def providers(env, monkeypatch):
    with FakeTwilio(auth_token=AUTH_TOKEN) as twilio, FakeSmtp() as smtp:
        configure(monkeypatch, sms_channel="twilio", twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN,
                  twilio_from=TWILIO_FROM, twilio_api_base_url=twilio.base_url, email_channel="smtp",
                  smtp_host="127.0.0.1", smtp_port=smtp.port, public_url="https://care.example.org",
                  retry_base_seconds=60)
        add_clinic(quiet_hours="00:00-00:00", sms_from="+15005550007")
        # Treated 3 hours ago: the SMS "first hours" reminder and the email summary are due.
        treated = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0).isoformat()
        enroll(phone=PATIENT, email="ayu@example.com", treated_at=treated)
        yield twilio, smtp


def _rows(channel: str) -> list[ScheduledMessage]:
    with session_scope() as session:
        return list(session.scalars(select(ScheduledMessage).where(ScheduledMessage.channel == channel,
                                                                   ScheduledMessage.status != "scheduled")))


def test_sms_goes_through_the_twilio_sdk_with_a_status_callback(providers):
    twilio, smtp = providers
    result = cli_json("dispatch", "--once")
    assert result["failed"] == 0 and result["sent"] == result["claimed"] >= 2
    [sms] = twilio.messages
    assert sms["to"] == PATIENT and sms["from_"] == "+15005550007" and "Ayu" in sms["body"]
    assert sms["status_callback"] == "https://care.example.org/twilio/status"
    assert smtp.wait_for(1) and "ayu@example.com" in smtp.messages[0]["recipients"]
    [row] = _rows("sms")
    assert row.status == "sent" and row.provider_id.startswith("SM")


def test_an_invalid_number_fails_for_good_and_falls_back_to_email(providers):
    twilio, smtp = providers
    twilio.fail_for(PATIENT, status=400, code=21211)
    cli_json("dispatch", "--once")
    [sms] = _rows("sms")
    assert sms.status == "failed" and sms.error_code == "21211" and sms.attempts == 1
    cli_json("dispatch", "--once")  # the fallback email is due at once
    emails = _rows("email")
    fallback = [e for e in emails if e.fallback_of_id == sms.id]
    assert fallback and fallback[0].status == "sent"
    # The failed SMS was the filler warning signs: the email copy stays safety-critical.
    assert sms.step == fallback[0].step == "first-hours" and fallback[0].is_safety is True
    assert smtp.wait_for(2)


def test_an_opted_out_number_is_marked_and_never_retried(providers):
    twilio, _ = providers
    twilio.fail_for(PATIENT, status=400, code=21610)
    cli_json("dispatch", "--once")
    with session_scope() as session:
        patient = session.scalar(select(Patient))
        assert patient.sms_opted_out_at is not None and patient.sms_opt_out_source == "carrier:21610"
        session.execute(update(ScheduledMessage).where(ScheduledMessage.status == "scheduled",
                                                       ScheduledMessage.channel == "sms")
                        .values(due_at=datetime.now(UTC) - timedelta(seconds=1)))
    before = len(twilio.failures) + twilio.count
    result = cli_json("dispatch", "--once")
    assert len(twilio.failures) + twilio.count == before  # later SMS are skipped without asking Twilio
    assert result["sent"] == 0 or all(r.channel == "email" for r in _rows("email"))


@pytest.mark.parametrize(("status", "code"), [(500, None), (429, 20429), (503, None)])
def test_transient_errors_are_retried_later_with_backoff(providers, status, code):
    twilio, _ = providers
    twilio.fail_next(1, status=status, code=code)
    started = datetime.now(UTC)
    result = cli_json("dispatch", "--once")
    assert result["failed"] == 0
    with session_scope() as session:
        row = session.scalar(select(ScheduledMessage).where(ScheduledMessage.channel == "sms",
                                                            ScheduledMessage.error_code.is_not(None)))
        assert row.status == "scheduled" and row.attempts == 1
        # base 60 s, first attempt: between half and all of it, with jitter
        assert started + timedelta(seconds=29) <= row.due_at <= datetime.now(UTC) + timedelta(seconds=61)
        row.due_at = datetime.now(UTC) - timedelta(seconds=1)
    assert cli_json("dispatch", "--once")["sent"] == 1
    assert twilio.count == 1


def test_a_refused_mailbox_fails_for_good(providers):
    _, smtp = providers
    smtp.reject("ayu@example.com", code=550)
    cli_json("dispatch", "--once")
    [email] = _rows("email")
    assert email.status == "failed" and email.attempts == 1


def test_a_temporary_smtp_failure_is_retried(providers):
    _, smtp = providers
    smtp.fail_next(1, code=451)
    cli_json("dispatch", "--once")
    [email] = _rows("email") or [None]
    with session_scope() as session:
        row = session.scalar(select(ScheduledMessage).where(ScheduledMessage.channel == "email",
                                                            ScheduledMessage.attempts == 1))
        assert email is None and row.status == "scheduled" and row.error_code is not None


def test_a_page_refused_with_21610_never_opts_the_patient_out(providers):
    twilio, _ = providers
    cli_json("oncall", "add", "--clinic", "glow", "--name", "Dr A", "--phone", "+6281100000001",
             "--email", "a@glow.example")
    cli_json("dispatch", "--once")
    twilio.fail_for("+6281100000001", status=400, code=21610)  # the clinician texted STOP to our number
    assert cli_json("reply", "--from", PATIENT, "my lip has gone white and really hurts")["escalation_id"]
    cli_json("dispatch", "--once")
    with session_scope() as session:
        assert session.scalar(select(Patient)).sms_opted_out_at is None
        page = session.scalar(select(ScheduledMessage).where(ScheduledMessage.kind == "page",
                                                             ScheduledMessage.channel == "sms"))
        assert page.status == "failed" and page.error_code == "21610"
        assert not session.scalars(select(ScheduledMessage).where(ScheduledMessage.fallback_of_id == page.id)).all()
