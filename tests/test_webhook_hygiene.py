"""Webhooks that must not lose a reply: a URL entered with a trailing slash, Twilio's shared-key (HMAC-SHA256)
signatures, a crash between recording and handling an SMS, and SQL errors that must not show bound values."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import func, insert, select
from sqlalchemy.exc import DBAPIError
from twilio.request_validator import RequestValidator

from aftercare.db import session_scope
from aftercare.inbound import handling
from aftercare.models import Escalation, InboundMessage, Patient, ScheduledMessage
from tests.cli_helpers import add_clinic, cli_json, enroll
from tests.conftest import configure
from tests.processes import AUTH_TOKEN
from tests.web_helpers import PUBLIC_URL, serve_app

PATIENT = "+6281234567890"
WEBHOOK_KEY = "whsk_" + "k3y" * 10
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
DANGER = "my upper lip went white and it really hurts"


def _web(monkeypatch, **settings):
    configure(monkeypatch, twilio_auth_token=AUTH_TOKEN, public_url=PUBLIC_URL, **settings)
    add_clinic(quiet_hours="00:00-00:00")
    treated = (datetime.now(UTC) - timedelta(hours=5)).replace(microsecond=0).isoformat()
    enroll(phone=PATIENT, treated_at=treated)
    return serve_app()


@pytest.fixture
def web(env, monkeypatch):
    with _web(monkeypatch, twilio_webhook_key=WEBHOOK_KEY) as client:
        yield client


@pytest.fixture
def web_any(any_env, monkeypatch):
    with _web(monkeypatch) as client:
        yield client


def _sms(body: str = DANGER, sid: str | None = None) -> dict[str, str]:
    return {"MessageSid": sid or "SM" + uuid.uuid4().hex, "From": PATIENT, "To": "+15005550006", "Body": body,
            "AccountSid": "AC" + "0" * 32}


def _post(client, path: str, params: dict[str, str], *, secret: str = AUTH_TOKEN, signed_url: str | None = None,
          algorithm: str | None = None, settings_header: str | None = None,
          sent: dict[str, str] | None = None) -> requests.Response:
    """POST `sent` (default `params`) to `path`, signed over `signed_url` (default: the public URL of `path`)."""
    signature = RequestValidator(secret).compute_signature(signed_url or PUBLIC_URL + path, params, algorithm)
    headers = {"X-Twilio-Signature": signature}
    if settings_header is not None:
        headers[SETTINGS_HEADER] = settings_header
    return requests.post(client.base + path, data=sent or params, headers=headers, timeout=10)


def _shared_key_post(client, path: str, params: dict[str, str], **kwargs) -> requests.Response:
    kwargs.setdefault("secret", WEBHOOK_KEY)
    return _post(client, path, params, algorithm="HMAC_SHA256",
                 settings_header="key=webhooks_sharedkey_01J0000000000000000000000,algorithm=HMAC_SHA256", **kwargs)


def _count(model) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(model))


def _sent_sids() -> list[str]:
    cli_json("dispatch", "--once")
    with session_scope() as session:
        return list(session.scalars(select(ScheduledMessage.provider_id).where(ScheduledMessage.status == "sent")))


def _status_of(sid: str) -> str:
    with session_scope() as session:
        return session.scalar(select(ScheduledMessage.status).where(ScheduledMessage.provider_id == sid))


# Trailing slash ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/twilio/sms/", "/twilio/sms"])
def test_an_inbound_sms_reaches_us_with_or_without_a_trailing_slash(web, path):
    response = _post(web, path, _sms())
    assert response.status_code == 200 and "<Message>" in response.text
    assert _count(InboundMessage) == 1 and _count(Escalation) == 1


def test_a_status_callback_with_a_trailing_slash_is_applied(web):
    sid = _sent_sids()[0]
    response = _post(web, "/twilio/status/", {"MessageSid": sid, "MessageStatus": "delivered"})
    assert response.status_code == 204
    assert _status_of(sid) == "delivered"


def test_a_trailing_slash_url_with_a_query_string_is_validated_as_requested(web):
    response = _post(web, "/twilio/sms/?clinic=glow", _sms())
    assert response.status_code == 200 and _count(InboundMessage) == 1


@pytest.mark.parametrize(("signed", "path"), [("/twilio/sms", "/twilio/sms/"), ("/twilio/sms/", "/twilio/sms")])
def test_a_signature_over_the_other_form_of_the_url_is_refused(web, signed, path):
    response = _post(web, path, _sms(), signed_url=PUBLIC_URL + signed)
    assert response.status_code == 403 and _count(InboundMessage) == 0


# Shared-key signatures -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/twilio/sms", "/twilio/sms/"])
def test_a_shared_key_hmac_sha256_signed_sms_is_accepted(web, path):
    response = _shared_key_post(web, path, _sms())
    assert response.status_code == 200 and "<Message>" in response.text
    assert _count(InboundMessage) == 1 and _count(Escalation) == 1


def test_a_shared_key_signed_status_callback_is_applied(web):
    sid = _sent_sids()[0]
    response = _shared_key_post(web, "/twilio/status", {"MessageSid": sid, "MessageStatus": "delivered"})
    assert response.status_code == 204 and _status_of(sid) == "delivered"


def test_the_auth_token_signature_still_works_beside_the_shared_key(web):
    assert _post(web, "/twilio/sms", _sms("a bit of swelling")).status_code == 200
    assert _count(InboundMessage) == 1


def test_a_shared_key_header_with_the_sha1_algorithm_is_checked_with_the_key(web):
    response = _post(web, "/twilio/sms", _sms(), secret=WEBHOOK_KEY, algorithm="HMAC_SHA1",
                     settings_header="key=webhooks_sharedkey_01J1,algorithm=HMAC_SHA1")
    assert response.status_code == 200 and _count(InboundMessage) == 1


@pytest.mark.parametrize("case", ["wrong key", "auth token", "tampered body", "other url", "unknown algorithm",
                                  "sha1 signature"])
def test_a_bad_shared_key_signature_is_403_and_changes_nothing(web, case):
    params = _sms("STOP")
    if case == "wrong key":
        response = _shared_key_post(web, "/twilio/sms", params, secret="whsk_" + "x" * 30)
    elif case == "auth token":  # the header says a shared key signed it: the auth token is not that key
        response = _shared_key_post(web, "/twilio/sms", params, secret=AUTH_TOKEN)
    elif case == "tampered body":
        response = _shared_key_post(web, "/twilio/sms", params, sent={**params, "From": "+6281299990000"})
    elif case == "other url":
        response = _shared_key_post(web, "/twilio/sms", params, signed_url="https://evil.example.org/twilio/sms")
    elif case == "unknown algorithm":
        response = _post(web, "/twilio/sms", params, secret=WEBHOOK_KEY, algorithm="HMAC_SHA256",
                         settings_header="key=webhooks_sharedkey_01J1,algorithm=HMAC_SHA512")
    else:  # a SHA-1 signature where the header promises SHA-256
        response = _post(web, "/twilio/sms", params, secret=WEBHOOK_KEY,
                         settings_header="key=webhooks_sharedkey_01J1,algorithm=HMAC_SHA256")
    assert response.status_code == 403
    assert _count(InboundMessage) == 0
    with session_scope() as session:
        assert session.scalar(select(Patient.sms_opted_out_at)) is None


def test_a_shared_key_signature_without_a_configured_key_is_403(env, monkeypatch):
    with _web(monkeypatch) as client:  # no AFTERCARE_TWILIO_WEBHOOK_KEY
        assert _shared_key_post(client, "/twilio/sms", _sms(), secret="").status_code == 403
        assert _shared_key_post(client, "/twilio/sms", _sms(), secret=AUTH_TOKEN).status_code == 403
    assert _count(InboundMessage) == 0


# Recording and handling commit together ------------------------------------------------------------------------

def test_a_crash_while_handling_leaves_no_inbound_row_and_the_retry_is_handled_fully(web_any, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("worker lost mid-handling")

    params = _sms()
    with monkeypatch.context() as patch:
        patch.setattr(handling, "dispose", crash)
        assert _post(web_any, "/twilio/sms", params).status_code == 500
    assert _count(InboundMessage) == 0 and _count(Escalation) == 0

    retry = _post(web_any, "/twilio/sms", params)  # Twilio retries with the same MessageSid
    assert retry.status_code == 200 and "<Message>" in retry.text
    assert _count(InboundMessage) == 1
    [escalation] = cli_json("escalations", "list")
    assert escalation["level"] == "emergency"
    with session_scope() as session:
        assert session.scalar(select(InboundMessage.handling)) is not None


def test_a_crash_after_a_stop_keyword_changes_no_consent(web_any, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("crash after the keyword")

    with monkeypatch.context() as patch:
        patch.setattr(handling.audit, "record", crash)
        assert _post(web_any, "/twilio/sms", _sms("STOP")).status_code == 500
    with session_scope() as session:
        assert session.scalar(select(Patient.sms_opted_out_at)) is None
    assert _count(InboundMessage) == 0


# Bound values stay out of error text ---------------------------------------------------------------------------

def test_a_failing_statement_does_not_show_its_bound_values(any_env):
    secrets = {"first_name": "Kartika Wulandari", "phone": "+6281377775555", "email": "kartika@example.org"}
    with pytest.raises(DBAPIError) as failure, session_scope() as session:
        # clinic 4242 does not exist: a foreign-key (or not-null) failure, like a worker's failing INSERT
        session.execute(insert(Patient).values(clinic_id=4242, timezone="Asia/Jakarta", **secrets))
    text = str(failure.value)
    assert "parameters hidden" in text
    for value in secrets.values():
        assert value not in text
