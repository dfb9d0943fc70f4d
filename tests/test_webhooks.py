"""Twilio webhooks over real HTTP, signed by the twilio SDK's own RequestValidator."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from aftercare.db import session_scope
from aftercare.models import InboundMessage, Patient, ScheduledMessage
from tests.cli_helpers import add_clinic, cli_json, enroll
from tests.conftest import configure
from tests.processes import AUTH_TOKEN
from tests.web_helpers import PUBLIC_URL, serve_app

PATIENT = "+6281234567890"


@pytest.fixture
def web(env, monkeypatch):
    configure(monkeypatch, twilio_auth_token=AUTH_TOKEN, public_url=PUBLIC_URL)
    add_clinic(quiet_hours="00:00-00:00")
    # Treated 5 hours ago: two SMS reminders are due.
    treated = (datetime.now(UTC) - timedelta(hours=5)).replace(microsecond=0).isoformat()
    enroll(phone=PATIENT, treated_at=treated)
    with serve_app() as client:
        yield client


def _inbound_count() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(InboundMessage))


def test_a_signed_inbound_sms_is_recorded_and_answered_with_twiml(web):
    response = web.sms(PATIENT, "a bit of swelling, is that normal?")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/xml")
    assert "<Message>" in response.text
    assert _inbound_count() == 1


@pytest.mark.parametrize("signature", ["", "forged-signature=="])
def test_missing_or_forged_signature_gets_403_and_stores_nothing(web, signature):
    params = {"MessageSid": "SM" + uuid.uuid4().hex, "From": PATIENT, "Body": "STOP"}
    response = web.signed_post("/twilio/sms", params, signature=signature)
    assert response.status_code == 403
    assert _inbound_count() == 0
    with session_scope() as session:
        assert session.scalar(select(Patient.sms_opted_out_at)) is None


def test_a_signature_for_another_url_is_refused(web):
    params = {"MessageSid": "SM" + uuid.uuid4().hex, "From": PATIENT, "Body": "hello"}
    response = web.signed_post("/twilio/sms", params, url="https://evil.example.org/twilio/sms")
    assert response.status_code == 403
    assert _inbound_count() == 0


def test_a_signature_made_with_another_token_is_refused(web):
    web.token = "x" * 32
    assert web.sms(PATIENT, "hello").status_code == 403
    assert _inbound_count() == 0


def test_a_retried_webhook_is_handled_once(web):
    sid = "SM" + uuid.uuid4().hex
    first = web.sms(PATIENT, "my lip has gone white and it really hurts", sid=sid)
    second = web.sms(PATIENT, "my lip has gone white and it really hurts", sid=sid)
    assert first.status_code == second.status_code == 200
    assert first.text == second.text
    assert _inbound_count() == 1
    assert len(cli_json("escalations", "list")) == 1


def test_status_callbacks_mark_messages_delivered_or_failed(web):
    cli_json("dispatch", "--once")
    with session_scope() as session:
        rows = session.scalars(select(ScheduledMessage).where(ScheduledMessage.status == "sent")).all()
        sids = [r.provider_id for r in rows]
    assert len(sids) >= 2
    ok = web.signed_post("/twilio/status", {"MessageSid": sids[0], "MessageStatus": "delivered"})
    bad = web.signed_post("/twilio/status", {"MessageSid": sids[1], "MessageStatus": "undelivered",
                                             "ErrorCode": "30003"})
    assert ok.status_code == bad.status_code == 204
    with session_scope() as session:
        delivered = session.scalar(select(ScheduledMessage).where(ScheduledMessage.provider_id == sids[0]))
        failed = session.scalar(select(ScheduledMessage).where(ScheduledMessage.provider_id == sids[1]))
        assert delivered.status == "delivered" and delivered.delivered_at is not None
        assert failed.status == "failed" and failed.error_code == "30003"


def test_an_unsigned_status_callback_changes_nothing(web):
    cli_json("dispatch", "--once")
    with session_scope() as session:
        sid = session.scalar(select(ScheduledMessage.provider_id).where(ScheduledMessage.status == "sent").limit(1))
    response = web.signed_post("/twilio/status", {"MessageSid": sid, "MessageStatus": "delivered"}, signature="")
    assert response.status_code == 403
    with session_scope() as session:
        assert session.scalar(select(ScheduledMessage.status).where(ScheduledMessage.provider_id == sid)) == "sent"


def test_oversized_or_malformed_bodies_get_4xx(web):
    import requests

    huge = requests.post(web.base + "/twilio/sms", data={"Body": "x" * 200_000}, timeout=10)
    assert huge.status_code == 413
    wrong_type = requests.post(web.base + "/twilio/sms", data=b"\xff\xfe", headers={"Content-Type": "text/plain"},
                               timeout=10)
    assert 400 <= wrong_type.status_code < 500
    assert _inbound_count() == 0


def test_healthz_answers_once_the_dispatcher_has_ticked(web):
    import requests

    cli_json("dispatch", "--once")  # a tick: what beat does every few seconds
    answer = requests.get(web.base + "/healthz", timeout=10)
    assert answer.status_code == 200 and answer.json()["status"] == "ok"


def test_a_photo_only_mms_becomes_a_review_item_and_is_not_reassured(web):
    params = {"MessageSid": "MM" + uuid.uuid4().hex, "From": PATIENT, "To": "+15005550006", "Body": "",
              "NumMedia": "1", "MediaUrl0": "https://api.twilio.com/2010-04-01/Accounts/AC0/Messages/MM1/Media/ME1",
              "MediaContentType0": "image/jpeg", "AccountSid": "AC" + "0" * 32}
    response = web.signed_post("/twilio/sms", params)
    assert response.status_code == 200
    assert "nurse will read" in response.text and "+622150001234" in response.text
    assert "normal" not in response.text.lower() and "glad" not in response.text.lower()
    [item] = cli_json("inbox")
    assert item["reason"] == "photo" and item["num_media"] == 1


def test_a_non_numeric_num_media_is_a_client_error(web):
    params = {"MessageSid": "MM" + uuid.uuid4().hex, "From": PATIENT, "To": "+15005550006", "Body": "hi",
              "NumMedia": "lots"}
    assert web.signed_post("/twilio/sms", params).status_code == 400
    assert _inbound_count() == 0
