"""Property-based fuzzing of both Twilio webhooks: whatever arrives, the answer is never a 5xx, and nothing is
stored or changed unless the request carries a valid X-Twilio-Signature.

Most examples go through Flask's test client (fast); a smaller share goes over real HTTP to waitress, where
sizes, raw bytes and broken encodings meet a real server.
"""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from aftercare.db import session_scope
from aftercare.inbound.web import MAX_REQUEST_BYTES, create_app
from aftercare.models import InboundMessage, Patient, ScheduledMessage
from tests.cli_helpers import add_clinic, cli_json, enroll
from tests.conftest import configure
from tests.processes import AUTH_TOKEN
from tests.web_helpers import PUBLIC_URL, serve_app

PATIENT = "+6281234567890"
PATHS = ("/twilio/sms", "/twilio/status")
FUZZ = settings(max_examples=200, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
HTTP_FUZZ = settings(FUZZ, max_examples=40)


@pytest.fixture
def known_sids(env, monkeypatch) -> list[str]:
    """A clinic, a patient, and messages already sent, so a status callback can name a real message."""
    configure(monkeypatch, twilio_auth_token=AUTH_TOKEN, public_url=PUBLIC_URL)
    add_clinic(quiet_hours="00:00-00:00")
    enroll(phone=PATIENT, email="ayu@example.com",
           treated_at=(datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0).isoformat())
    cli_json("dispatch", "--once")
    with session_scope() as session:
        sent = select(ScheduledMessage.provider_id).where(ScheduledMessage.provider_id.is_not(None))
        sids = list(session.scalars(sent))
    assert sids
    return sids


@pytest.fixture
def client(known_sids):
    return create_app().test_client()


def _state() -> tuple:
    """Everything a forged request could try to change."""
    with session_scope() as session:
        inbound = session.scalar(select(func.count()).select_from(InboundMessage))
        consent = session.execute(select(Patient.id, Patient.sms_consent, Patient.sms_opted_out_at,
                                         Patient.sms_opt_out_source).order_by(Patient.id)).all()
        messages = session.execute(select(ScheduledMessage.id, ScheduledMessage.status, ScheduledMessage.error_code,
                                          ScheduledMessage.delivered_at).order_by(ScheduledMessage.id)).all()
    return inbound, consent, messages


# -- strategies ----------------------------------------------------------------------------------------------
CONTENT_TYPES = st.one_of(
    st.sampled_from(["application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=utf-8",
                     "application/x-www-form-urlencoded; charset=latin-1", "application/x-www-form-urlencoded; "
                     "charset=utf-16", "multipart/form-data", "multipart/form-data; boundary=xyz",
                     "multipart/form-data; boundary=", "text/plain", "application/json", "application/xml", "",
                     "*/*", "application/x-www-form-urlencoded; charset=\"", ";;;;"]),
    # requests refuses to send a header value with leading white space, so such a value never reaches us.
    st.text(string.printable.replace("\n", "").replace("\r", ""), max_size=60).map(str.lstrip),
)
PERCENT_JUNK = st.lists(st.sampled_from(["%", "%z", "%zz", "%FF", "%fe%ff", "%C3", "%C3%28", "%ED%A0%80", "%00",
                                         "%E2%82", "+", "&", "=", "==", "&&", "%25", "%u0041", "%F0%9F%98",
                                         "Body", "From", "MessageSid", "STOP", PATIENT]), max_size=40).map("".join)
RAW_BODIES = st.one_of(
    st.binary(max_size=2048),
    PERCENT_JUNK.map(str.encode),
    st.builds(lambda sid, body: f"MessageSid={sid}&From=%2B6281234567890&Body={body}".encode("latin-1"),
              st.text(string.ascii_letters + string.digits, max_size=40), PERCENT_JUNK),
    st.builds(lambda head, tail: head + b"\xff\xfe\xc3\x28\xed\xa0\x80" + tail, st.binary(max_size=64),
              st.binary(max_size=64)),
    st.builds(lambda size, fill: b"Body=" + fill * size, st.sampled_from([MAX_REQUEST_BYTES - 100,
                                                                          MAX_REQUEST_BYTES + 1, 70_000, 200_000]),
              st.sampled_from([b"x", b"%", b"\xff", b"&"])),
)
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=80).map(
    str.lstrip)  # what an HTTP client can send: requests refuses a header value that begins with whitespace
SIGNATURES = st.one_of(st.none(), HEADER_TEXT, st.binary(min_size=20, max_size=40).map(lambda b: b.hex()),
                       st.just("forged-signature=="), st.just(""))
EXTRA_HEADERS = st.dictionaries(st.sampled_from(["X-Forwarded-Proto", "X-Forwarded-Host", "Host", "Content-Encoding",
                                                 "Accept", "I-Twilio-Idempotency-Token", "User-Agent", "Cookie"]),
                                HEADER_TEXT, max_size=4)
QUERY = st.one_of(st.just(""), PERCENT_JUNK, st.dictionaries(st.text(max_size=10), st.text(max_size=20),
                                                             max_size=3).map(urlencode))

# Values a webhook might carry, with a bias towards the ones our code reacts to.
PARAM_TEXT = st.one_of(st.text(max_size=300), st.sampled_from(["STOP", "START", "HELP", "stop please", "YES",
                                                               "my lip has gone white and it really hurts",
                                                               "ACK ABC234", "delivered", "undelivered", "failed",
                                                               "21610", PATIENT, "0812-3456-7890"]),
                       st.text(max_size=20).map(lambda s: s + "\x00"), st.text(min_size=1, max_size=5) .map(
                           lambda s: s * 2000))


@st.composite
def signed_params(draw, sids: list[str]) -> tuple[str, dict[str, str]]:
    path = draw(st.sampled_from(PATHS))
    params: dict[str, str] = {}
    sid = draw(st.one_of(st.sampled_from(sids), st.just("SM" + "a" * 32), st.text(max_size=80), st.none()))
    if sid is not None:
        params[draw(st.sampled_from(["MessageSid", "SmsSid"]))] = sid
    for name in ("From", "To", "Body", "MessageStatus", "ErrorCode", "AccountSid", "NumMedia"):
        if draw(st.booleans()):
            params[name] = draw(st.one_of(st.just(PATIENT), PARAM_TEXT))
    params.update(draw(st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=50), max_size=3)))
    return path, params


def _sign(url: str, params: dict[str, str]) -> str:
    return RequestValidator(AUTH_TOKEN).compute_signature(url, params)


# -- unsigned or forged: never a 5xx, never a change ---------------------------------------------------------
@FUZZ
@given(path=st.sampled_from(PATHS), query=QUERY, content_type=CONTENT_TYPES, body=RAW_BODIES, signature=SIGNATURES,
       headers=EXTRA_HEADERS, method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]))
def test_requests_without_a_valid_signature_never_5xx_and_change_nothing(client, path, query, content_type, body,
                                                                        signature, headers, method):
    before = _state()
    all_headers = {**headers, "Content-Type": content_type}
    if signature is not None:
        all_headers["X-Twilio-Signature"] = signature
    response = client.open(path + ("?" + query if query else ""), method=method, data=body, headers=all_headers)
    assert response.status_code < 500, response.data[:300]
    assert _state() == before


@FUZZ
@given(path=st.sampled_from(PATHS), params=st.dictionaries(st.text(max_size=20), PARAM_TEXT, max_size=6),
       signed_for=st.sampled_from(["https://evil.example.org", PUBLIC_URL + "/", "http://aftercare.example.org",
                                   PUBLIC_URL + "/twilio"]))
def test_form_posts_signed_for_another_url_get_403_and_change_nothing(client, path, params, signed_for):
    before = _state()
    response = client.post(path, data=urlencode(params), content_type="application/x-www-form-urlencoded",
                           headers={"X-Twilio-Signature": _sign(signed_for + path, params)})
    assert response.status_code in (403, 413)  # 413: params past 64 KiB are refused before the signature is read
    assert _state() == before


# -- validly signed, random parameters: never a 5xx ----------------------------------------------------------
@FUZZ
@given(data=st.data())
def test_validly_signed_requests_with_random_params_never_5xx(client, known_sids, data):
    path, params = data.draw(signed_params(known_sids))
    query = data.draw(st.one_of(st.just(""), st.dictionaries(st.text(max_size=8), st.text(max_size=12),
                                                              max_size=2).map(urlencode)))
    url = path + ("?" + query if query else "")
    response = client.post(url, data=params, headers={"X-Twilio-Signature": _sign(PUBLIC_URL + url, params)})
    assert response.status_code < 500, (params, response.data[:300])


# Each value the fuzzer first tripped on, kept as a plain case: a fuzzer stops at the first failure it finds.
@pytest.mark.parametrize("path, params", [
    ("/twilio/sms", {"MessageSid": "SM1", "From": PATIENT, "Body": "my lip\x00 has gone white"}),
    ("/twilio/sms", {"MessageSid": "SM2", "From": "+62812\x0034567890", "Body": "hello"}),
    ("/twilio/sms", {"MessageSid": "SM3\x00", "From": PATIENT, "Body": "hello"}),
    ("/twilio/sms", {"MessageSid": "SM4", "From": PATIENT, "To": "+1" + "5" * 40, "Body": "hello"}),
    ("/twilio/sms", {"MessageSid": "SM5", "From": PATIENT, "To": "+15005550006\x00", "Body": "hello"}),
    ("/twilio/sms", {"MessageSid": "SM6", "From": "x" * 500, "Body": "STOP"}),
    ("/twilio/status", {"MessageSid": "KNOWN", "MessageStatus": "undelivered", "ErrorCode": "3" * 40}),
    ("/twilio/status", {"MessageSid": "KNOWN", "MessageStatus": "failed", "ErrorCode": "30003\x00"}),
    ("/twilio/status", {"MessageSid": "SM\x00", "MessageStatus": "delivered"}),
], ids=["nul-body", "nul-from", "nul-sid", "long-to", "nul-to", "long-from", "long-error-code", "nul-error-code",
        "nul-status-sid"])
def test_validly_signed_hostile_values_never_5xx(client, known_sids, path, params):
    params = {key: known_sids[0] if value == "KNOWN" else value for key, value in params.items()}
    response = client.post(path, data=urlencode(params), content_type="application/x-www-form-urlencoded",
                           headers={"X-Twilio-Signature": _sign(PUBLIC_URL + path, params)})
    assert response.status_code < 500, response.data[:300]


# -- the same over real HTTP, waitress in front -------------------------------------------------------------
@pytest.fixture
def server(known_sids):
    with serve_app() as web:
        yield web


@HTTP_FUZZ
@given(path=st.sampled_from(PATHS), content_type=CONTENT_TYPES, body=RAW_BODIES, signature=SIGNATURES,
       chunked=st.booleans())
def test_raw_http_bodies_without_a_valid_signature_never_5xx_and_change_nothing(server, path, content_type, body,
                                                                               signature, chunked):
    before = _state()
    headers = {"Content-Type": content_type}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    payload = iter([body[i:i + 8192] for i in range(0, len(body), 8192)] or [b""]) if chunked else body
    try:
        response = requests.post(server.base + path, data=payload, headers=headers, timeout=10)
    except requests.ConnectionError:
        # Past 64 KiB the server may answer 413 and hang up before the whole body was sent: not a 5xx.
        assert len(body) > MAX_REQUEST_BYTES
    else:
        assert response.status_code < 500, response.text[:300]
        if len(body) > MAX_REQUEST_BYTES:
            assert 400 <= response.status_code < 500
    assert _state() == before


@HTTP_FUZZ
@given(data=st.data())
def test_validly_signed_http_requests_with_random_params_never_5xx(server, known_sids, data):
    path, params = data.draw(signed_params(known_sids))
    response = server.signed_post(path, params)
    assert response.status_code < 500, (params, response.text[:300])
