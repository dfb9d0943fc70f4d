"""What happens after a send: carrier reports by status callback (fallback, final states, opt-outs only from
opt-out codes, callbacks that beat the send's own record), a read timeout that must not send twice, no fallback
that can crash a delivery, and reminders held under any open escalation that names the treatment or the patient."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from aftercare.channels import twilio_sms
from aftercare.db import session_scope
from aftercare.inbound.status import apply_status
from aftercare.models import Channel, Escalation, Patient, PendingStatus, ScheduledMessage
from aftercare.schedule import fallback
from tests.cli_helpers import add_clinic, cli_json, enroll
from tests.provider_helpers import real_providers
from tests.web_helpers import serve_app

PATIENT = "+6281234567890"
SENDER = "+15005550007"
M = ScheduledMessage


@pytest.fixture
def providers(env, monkeypatch):
    """The real twilio SDK against the fake API, real SMTP, and the web app for status callbacks."""
    with real_providers(monkeypatch, retry_base_seconds=60) as (twilio, smtp):
        add_clinic(quiet_hours="00:00-00:00", sms_from=SENDER)
        # Treated 3 hours ago: the SMS warning signs ("first-hours") and the email summary are due.
        treated = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0).isoformat()
        enroll(phone=PATIENT, email="ayu@example.com", treated_at=treated)
        with serve_app() as web:
            yield twilio, smtp, web


def _sms(step: str = "first-hours") -> ScheduledMessage:
    with session_scope() as session:
        return session.scalar(select(M).where(M.channel == Channel.SMS, M.step == step))


def _fallbacks(row_id: int) -> list[ScheduledMessage]:
    with session_scope() as session:
        return list(session.scalars(select(M).where(M.fallback_of_id == row_id)))


def _patient() -> Patient:
    with session_scope() as session:
        return session.scalar(select(Patient))


def _status(web, sid: str, status: str, code: str | None = None) -> None:
    params = {"MessageSid": sid, "MessageStatus": status, **({"ErrorCode": code} if code else {})}
    assert web.signed_post("/twilio/status", params).status_code == 204


def _send_first_sms(twilio) -> ScheduledMessage:
    cli_json("dispatch", "--once")
    row = _sms()
    assert row.status == "sent" and row.provider_id == twilio.messages[0]["sid"]
    return row


@pytest.mark.parametrize(("status", "code"), [("undelivered", "30003"), ("failed", "30005"),
                                              ("undelivered", "30006"), ("failed", None)])
def test_a_carrier_failure_reported_later_falls_back_to_email_and_opts_nobody_out(providers, status, code):
    twilio, smtp, web = providers
    row = _send_first_sms(twilio)
    _status(web, row.provider_id, status, code)
    failed = _sms()
    assert failed.status == "failed" and failed.error_code == code
    [fallback] = _fallbacks(row.id)
    assert fallback.channel == "email" and fallback.step == "first-hours" and fallback.is_safety is True
    assert _patient().sms_opted_out_at is None  # a plain carrier failure is no opt-out
    cli_json("dispatch", "--once")  # the fallback is due at once
    assert _fallbacks(row.id)[0].status == "sent"
    assert smtp.wait_for(2) and all("ayu@example.com" in m["recipients"] for m in smtp.messages)


def test_an_opt_out_code_by_callback_opts_out_and_still_falls_back_to_email(providers):
    twilio, _, web = providers
    row = _send_first_sms(twilio)
    _status(web, row.provider_id, "failed", "21610")
    patient = _patient()
    assert patient.sms_opted_out_at is not None and patient.sms_opt_out_source == "carrier:21610"
    assert len(_fallbacks(row.id)) == 1


@pytest.mark.parametrize(("late", "code"), [("failed", "30003"), ("undelivered", "21610"), ("sent", None),
                                            ("queued", None)])
def test_a_report_after_delivered_changes_nothing(providers, late, code):
    twilio, _, web = providers
    row = _send_first_sms(twilio)
    _status(web, row.provider_id, "delivered")
    _status(web, row.provider_id, late, code)
    after = _sms()
    assert after.status == "delivered" and after.error_code is None
    assert _patient().sms_opted_out_at is None and not _fallbacks(row.id)


def test_a_second_failure_report_changes_nothing_more(providers):
    twilio, _, web = providers
    row = _send_first_sms(twilio)
    _status(web, row.provider_id, "undelivered", "30003")
    _status(web, row.provider_id, "failed", "21610")
    after = _sms()
    assert after.status == "failed" and after.error_code == "30003"
    assert _patient().sms_opted_out_at is None and len(_fallbacks(row.id)) == 1


def test_a_late_delivered_after_failed_is_believed_but_undoes_no_opt_out(providers):
    twilio, _, web = providers
    row = _send_first_sms(twilio)
    _status(web, row.provider_id, "failed", "21610")
    _status(web, row.provider_id, "delivered")
    after = _sms()
    assert after.status == "delivered" and after.delivered_at is not None
    assert _patient().sms_opt_out_source == "carrier:21610"  # the handset's receipt undoes no opt-out


@pytest.mark.parametrize(("status", "code"), [("delivered", None), ("undelivered", "30003")])
def test_a_callback_that_beats_the_send_record_is_kept_and_applied(providers, caplog, status, code):
    twilio, _, web = providers
    # Real Twilio can post the status before the worker has read the API's answer: the row has no SID yet.
    twilio.on_accept = lambda record: _status(web, record["sid"], status, code)
    with caplog.at_level(logging.WARNING):
        cli_json("dispatch", "--once")
    row = _sms()
    assert row.status == ("delivered" if status == "delivered" else "failed")
    assert len(_fallbacks(row.id)) == (status != "delivered")
    with session_scope() as session:
        assert session.scalars(select(PendingStatus)).all() == []  # applied once, then gone
    kept = [r.getMessage() for r in caplog.records if "not stored yet" in r.getMessage()]
    assert kept and all(r.levelno == logging.WARNING for r in caplog.records if "not stored yet" in r.getMessage())
    assert not any(PATIENT in text or "Ayu" in text for text in kept)


def test_a_kept_callback_waits_for_its_message_and_old_ones_are_pruned(providers):
    _, _, web = providers
    with session_scope() as session:
        session.add(PendingStatus(provider_sid="SMold", status="delivered",
                                  received_at=datetime.now(UTC) - timedelta(days=2)))
    _status(web, "SMnotyet", "delivered")  # a message the worker has not recorded yet
    with session_scope() as session:
        assert session.scalars(select(PendingStatus.provider_sid)).all() == ["SMnotyet"]


def _time_out_fast(monkeypatch):
    # The SDK's HTTP client reads its timeout when built; a short one keeps the test short.
    monkeypatch.setattr(twilio_sms, "READ_TIMEOUT_SECONDS", 0.5)


def _retry_now() -> None:
    with session_scope() as session:
        session.execute(update(M).where(M.status == "scheduled", M.channel == Channel.SMS, M.attempts > 0)
                        .values(due_at=datetime.now(UTC) - timedelta(seconds=1)))


def test_a_read_timeout_after_twilio_accepted_is_recorded_not_sent_again(providers, monkeypatch):
    twilio, _, _ = providers
    _time_out_fast(monkeypatch)
    twilio.stall_next(1, seconds=2.0)  # created at once, answered too late
    cli_json("dispatch", "--once")
    first = _sms()
    assert first.status == "scheduled" and first.error_code == "timeout" and twilio.count == 1
    _retry_now()
    cli_json("dispatch", "--once")
    row = _sms()
    assert row.status == "sent" and row.provider_id == twilio.messages[0]["sid"]
    assert twilio.count == 1  # asked Twilio, found it, sent nothing twice


def test_a_message_twilio_created_after_the_client_gave_up_is_found_too(providers, monkeypatch):
    twilio, _, _ = providers
    _time_out_fast(monkeypatch)
    twilio.latency = 1.5  # the request is taken only after the client stopped waiting
    cli_json("dispatch", "--once")
    assert _sms().error_code == "timeout" and twilio.wait_for(1)
    twilio.latency = 0.0
    _retry_now()
    cli_json("dispatch", "--once")
    assert _sms().provider_id == twilio.messages[0]["sid"] and twilio.count == 1


def test_after_a_timeout_that_created_nothing_the_message_is_sent_once(providers, monkeypatch):
    twilio, _, _ = providers
    _time_out_fast(monkeypatch)
    twilio.stall_next(1, seconds=2.0)
    cli_json("dispatch", "--once")
    twilio.clear()  # as if Twilio had never created it
    _retry_now()
    cli_json("dispatch", "--once")
    row = _sms()
    assert row.status == "sent" and twilio.count == 1 and row.provider_id == twilio.messages[0]["sid"]


def test_an_identical_text_sent_before_the_timed_out_attempt_is_not_taken_for_it(providers, monkeypatch):
    twilio, _, _ = providers
    _time_out_fast(monkeypatch)
    twilio.stall_next(1, seconds=2.0)
    cli_json("dispatch", "--once")
    with session_scope() as session:  # the timed-out try is an hour on: what Twilio created before is not it
        row = session.scalar(select(M).where(M.error_code == "timeout"))
        row.sent_at += timedelta(hours=1)
    _retry_now()
    cli_json("dispatch", "--once")
    assert twilio.count == 2 and _sms().provider_id == twilio.messages[1]["sid"]


def test_a_fallback_email_that_already_exists_never_crashes_delivery_or_strands_the_claim(providers):
    twilio, _, _ = providers
    twilio.fail_for(PATIENT, status=400, code=21211)
    with session_scope() as session:  # the step's email copy is there already (an earlier fallback)
        sms = session.scalar(select(M).where(M.step == "first-hours"))
        session.add(M(kind=sms.kind, enrollment_id=sms.enrollment_id, step=sms.step, channel=Channel.EMAIL,
                      body="copy", planned_at=sms.planned_at, due_at=datetime.now(UTC) + timedelta(days=1)))
    result = cli_json("dispatch", "--once")
    assert result["failed"] >= 1
    with session_scope() as session:
        assert session.scalars(select(M).where(M.status == "claimed")).all() == []
        assert len(session.scalars(select(M).where(M.step == "first-hours", M.channel == Channel.EMAIL)).all()) == 1
    assert _sms().status == "failed"


# Reminders held under an open escalation (enrollments and patients named in any of its fields).

def _two_enrollments(env) -> tuple[int, int, int]:
    add_clinic(quiet_hours="00:00-00:00")
    treated = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
    filler = enroll(phone=PATIENT, treated_at=treated.isoformat())
    booster = enroll(phone=PATIENT, treatment="skin-booster", treated_at=(treated + timedelta(minutes=30)).isoformat())
    return filler["patient_id"], filler["enrollment_id"], booster["enrollment_id"]


def _escalate(**names: object) -> None:
    with session_scope() as session:
        session.add(Escalation(clinic_id=1, level="emergency", status="open", code="TESTXY", signs=[],
                               page_round=0, **names))


def _sent_for(enrollment_id: int) -> int:
    with session_scope() as session:
        return len(session.scalars(select(M).where(M.enrollment_id == enrollment_id, M.status == "sent")).all())


@pytest.mark.parametrize("naming", ["enrollment_ids", "patient_id", "patient_ids"])
def test_every_enrollment_an_open_escalation_names_is_held(env, naming):
    patient_id, filler, booster = _two_enrollments(env)
    names = {"enrollment_ids": {"enrollment_id": filler, "enrollment_ids": [filler, booster]},
             "patient_id": {"enrollment_id": filler, "patient_id": patient_id},
             "patient_ids": {"patient_ids": [patient_id]}}[naming]
    _escalate(**names)
    cli_json("dispatch", "--once")
    assert _sent_for(filler) == _sent_for(booster) == 0
    with session_scope() as session:
        held = session.scalars(select(M).where(M.enrollment_id == booster, M.channel == Channel.SMS)).all()
        assert held and all(r.status == "scheduled" for r in held)


def test_an_escalation_naming_someone_else_holds_nothing(env):
    patient_id, filler, booster = _two_enrollments(env)
    _escalate(patient_ids=[patient_id + 100], enrollment_ids=[booster + 100])
    cli_json("dispatch", "--once")
    assert _sent_for(filler) > 0 and _sent_for(booster) > 0


def test_a_failure_callback_falls_back_once_on_both_backends(any_env):
    add_clinic(quiet_hours="00:00-00:00")
    treated = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0).isoformat()
    enroll(phone=PATIENT, email="ayu@example.com", treated_at=treated)
    cli_json("dispatch", "--once")
    sid = _sms().provider_id
    for code in ("30003", "30003", "21610"):  # a retried callback, then a later report: one fallback, no opt-out
        with session_scope() as session:
            apply_status(session, message_sid=sid, status="undelivered", error_code=code)
    assert len(_fallbacks(_sms().id)) == 1 and _patient().sms_opted_out_at is None


def test_a_fallback_that_collides_in_a_race_is_undone_alone_on_both_backends(any_env, monkeypatch):
    add_clinic(quiet_hours="00:00-00:00")
    treated = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0).isoformat()
    enroll(phone=PATIENT, email="ayu@example.com", treated_at=treated)
    cli_json("dispatch", "--once")
    sms = _sms()
    with session_scope() as session:  # another path wrote the step's email copy after our look for it
        session.add(M(kind=sms.kind, enrollment_id=sms.enrollment_id, step=sms.step, channel=Channel.EMAIL,
                      body="copy", planned_at=sms.planned_at, due_at=datetime.now(UTC)))
    monkeypatch.setattr(fallback, "_has_email_copy", lambda session, row: False)
    with session_scope() as session:
        apply_status(session, message_sid=sms.provider_id, status="failed", error_code="21610")
    assert _sms().status == "failed" and _patient().sms_opted_out_at is None  # the savepoint took the opt-out too
