"""Pages are about staff, not patients: a page that can never reach a clinician's phone (they texted STOP, a wrong
number, a carrier failure reported later) touches no patient's consent, emails that clinician and moves on to the
next person on call at once; it never crashes delivery; and a page nobody needs any more is not sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from aftercare.db import session_scope
from aftercare.models import MessageKind, OnCallStaff, Patient, ReviewItem, ScheduledMessage
from aftercare.review.paging import queue_overdue_review_pages
from tests.cli_helpers import add_clinic, cli_json, enroll
from tests.fakes.twilio_api import FakeTwilio
from tests.provider_helpers import real_providers
from tests.web_helpers import serve_app

PATIENT = "+6281234567890"
CLINIC_PHONE = "+622150001234"
DOCTOR_A = "+6281100000001"
DOCTOR_B = "+6281100000002"
DOCTOR_C = "+6281100000003"
SENDER = "+15005550007"
DANGER = "my lip has gone white and really hurts"
M = ScheduledMessage


@pytest.fixture
def clinic(env, monkeypatch):
    """Real twilio SDK and SMTP; Dr A (with email), Dr B, Dr C on call in that order; the patient has email too."""
    with real_providers(monkeypatch) as (twilio, smtp):
        add_clinic(quiet_hours="00:00-00:00", sms_from=SENDER, review_within="30m")
        for name, phone in (("Dr A", DOCTOR_A), ("Dr B", DOCTOR_B), ("Dr C", DOCTOR_C)):
            email = ["--email", "a@glow.example"] if phone == DOCTOR_A else []
            cli_json("oncall", "add", "--clinic", "glow", "--name", name, "--phone", phone, *email)
        treated = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0).isoformat()
        enroll(phone=PATIENT, email="ayu@example.com", treated_at=treated)
        cli_json("dispatch", "--once")  # the patient's due reminders go first, out of the way
        twilio.clear()
        with serve_app() as web:
            yield twilio, smtp, web


def _sms_to(twilio: FakeTwilio, number: str) -> list[dict]:
    return [m for m in twilio.messages if m["to"] == number]


def _pages(channel: str = "sms") -> list[ScheduledMessage]:
    with session_scope() as session:
        return list(session.scalars(select(M).where(M.kind == MessageKind.PAGE, M.channel == channel).order_by(M.id)))


def _patient() -> Patient:
    with session_scope() as session:
        return session.scalar(select(Patient))


@pytest.mark.parametrize(("code", "status"), [(21610, 400), (21211, 400), (21614, 400), (21612, 400)])
def test_a_page_refused_for_good_moves_on_to_the_next_person_at_once(clinic, code, status):
    twilio, smtp, _ = clinic
    twilio.fail_for(DOCTOR_A, status=status, code=code)
    cli_json("reply", "--from", PATIENT, "--to", SENDER, DANGER)
    result = cli_json("dispatch", "--once")  # Dr A's SMS fails; Dr B's page is written due now
    [failed] = [p for p in _pages() if p.recipient == DOCTOR_A]
    assert failed.status == "failed" and failed.error_code == str(code)
    assert _patient().sms_opted_out_at is None  # a clinician's phone says nothing about the patient's consent
    assert any(p.recipient == "a@glow.example" for p in _pages("email"))  # Dr A is emailed
    if not _sms_to(twilio, DOCTOR_B):
        cli_json("dispatch", "--once")  # no re-page interval to wait for
    assert len(_sms_to(twilio, DOCTOR_B)) == 1 and "Reply ACK" in _sms_to(twilio, DOCTOR_B)[0]["body"]
    assert not _sms_to(twilio, DOCTOR_C) and result["failed"] >= 1


@pytest.mark.parametrize(("status", "code"), [("failed", "21610"), ("undelivered", "30003"),
                                              ("undelivered", "30005")])
def test_a_page_failed_by_status_callback_touches_no_consent_and_moves_on(clinic, status, code):
    twilio, _, web = clinic
    cli_json("reply", "--from", PATIENT, "--to", SENDER, DANGER)
    cli_json("dispatch", "--once")
    [page] = _pages()
    assert page.recipient == DOCTOR_A and page.status == "sent"
    params = {"MessageSid": page.provider_id, "MessageStatus": status, "ErrorCode": code}
    assert web.signed_post("/twilio/status", params).status_code == 204
    assert _patient().sms_opted_out_at is None
    cli_json("dispatch", "--once")
    assert len(_sms_to(twilio, DOCTOR_B)) == 1
    with session_scope() as session:  # no patient copy of a page, ever
        assert not session.scalars(select(M).where(M.kind != MessageKind.PAGE, M.fallback_of_id == page.id)).all()


def test_a_page_failing_when_patient_and_clinician_have_email_never_crashes_or_strands_its_claim(clinic):
    twilio, smtp, _ = clinic
    cli_json("reply", "--from", PATIENT, "--to", SENDER, DANGER)
    with session_scope() as session:  # Dr A's new address is recorded after the page was queued
        session.execute(update(OnCallStaff).where(OnCallStaff.phone == DOCTOR_A).values(email="a2@glow.example"))
    twilio.fail_for(DOCTOR_A, status=400, code=21211)
    cli_json("dispatch", "--once")
    with session_scope() as session:
        assert session.scalars(select(M).where(M.status == "claimed")).all() == []
        failed = session.scalar(select(M).where(M.recipient == DOCTOR_A))
        [fallback] = session.scalars(select(M).where(M.fallback_of_id == failed.id)).all()
        assert fallback.kind == "page" and fallback.channel == "email" and fallback.recipient == "a2@glow.example"
        assert fallback.step.startswith(failed.step)
    cli_json("dispatch", "--once")
    assert any("a2@glow.example" in m["recipients"] for m in smtp.messages)
    assert _patient().sms_opted_out_at is None and _sms_to(twilio, DOCTOR_B)


def test_when_every_number_fails_the_clinic_phone_is_paged_last_and_paging_stops(clinic):
    twilio, _, _ = clinic
    for number in (DOCTOR_A, DOCTOR_B, DOCTOR_C, CLINIC_PHONE):
        twilio.fail_for(number, status=400, code=21614)
    cli_json("reply", "--from", PATIENT, "--to", SENDER, DANGER)
    for _ in range(6):
        cli_json("dispatch", "--once")
    tried = [p.recipient for p in _pages()]
    assert tried == [DOCTOR_A, DOCTOR_B, DOCTOR_C, CLINIC_PHONE]  # each once, in position order, then it ends
    assert all(p.status == "failed" for p in _pages())


def test_a_review_page_refused_moves_on_to_the_next_person(clinic):
    twilio, _, _ = clinic
    twilio.fail_for(DOCTOR_A, status=400, code=21610)
    item_id = cli_json("reply", "--from", PATIENT, "--to", SENDER, "can I dye my hair this weekend?")["review_id"]
    with session_scope() as session:
        session.execute(update(ReviewItem).values(due_at=datetime.now(UTC) - timedelta(minutes=1)))
    cli_json("dispatch", "--once")
    cli_json("dispatch", "--once")
    [page] = _sms_to(twilio, DOCTOR_B)
    assert f"item {item_id}" in page["body"] and _patient().sms_opted_out_at is None


# Pages are re-checked before sending.

def _settled() -> list[ScheduledMessage]:
    return [p for p in _pages() + _pages("email") if p.status == "cancelled" and p.skip_reason == "settled"]


@pytest.mark.parametrize("how", ["ack by sms", "resolve"])
def test_a_page_queued_before_the_escalation_was_taken_is_cancelled(clinic, how):
    twilio, smtp, _ = clinic
    escalation_id = cli_json("reply", "--from", PATIENT, "--to", SENDER, DANGER)["escalation_id"]
    if how == "resolve":
        cli_json("escalations", "resolve", str(escalation_id), "--by", "Dr B", "--note", "called, seen in clinic")
    else:
        code = cli_json("escalations", "show", str(escalation_id))["code"]
        cli_json("reply", "--from", DOCTOR_B, "--to", SENDER, f"ack {code}")
    cli_json("dispatch", "--once")
    assert not _sms_to(twilio, DOCTOR_A) and not [m for m in smtp.messages if "a@glow.example" in m["recipients"]]
    assert len(_settled()) == 2  # Dr A's SMS and email


def test_a_review_page_queued_before_the_item_was_read_is_cancelled(clinic):
    twilio, _, _ = clinic
    item_id = cli_json("reply", "--from", PATIENT, "--to", SENDER, "can I dye my hair this weekend?")["review_id"]
    with session_scope() as session:
        session.execute(update(ReviewItem).values(due_at=datetime.now(UTC) - timedelta(minutes=1)))
    with session_scope() as session:
        assert queue_overdue_review_pages(session) == 1
    cli_json("inbox", "done", str(item_id), "--by", "Rina", "--note", "answered by phone")
    cli_json("dispatch", "--once")
    assert not _sms_to(twilio, DOCTOR_A) and len(_settled()) == 2
