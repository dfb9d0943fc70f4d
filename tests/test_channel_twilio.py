"""Twilio SMS: the real SDK over real HTTP to the fake Twilio API, and how each answer is classified."""

from __future__ import annotations

import base64
import json
import os
import pickle
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from aftercare.channels import get_channel, reset_channels
from aftercare.channels.base import DeliveryError, OutgoingMessage
from aftercare.channels.console import ConsoleChannel
from aftercare.channels.twilio_sms import TwilioSmsChannel
from aftercare.config import Settings
from tests.fakes.twilio_api import FakeTwilio

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "x" * 32
PATIENT = "+6281234567890"
CALLBACK = "https://clinic.example/twilio/status"


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith(("AFTERCARE_", "TWILIO_")):
            monkeypatch.delenv(key)
    reset_channels()
    yield
    reset_channels()


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio(auth_token=AUTH_TOKEN) as server:
        yield server


def twilio_settings(base_url: str, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "sms_channel": "twilio",
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_from": "+15005550006",
        "twilio_api_base_url": base_url,
        "home": tmp_path,
    }
    values.update(overrides)
    return Settings(**values)


def sms(to: str = PATIENT, body: str = "Apply the cold compress for 10 minutes.", **extra: object) -> OutgoingMessage:
    return OutgoingMessage(message_id=1, channel="sms", to=to, body=body, **extra)


def send_error(channel: TwilioSmsChannel, message: OutgoingMessage) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        channel.send(message)
    return caught.value


def test_sms_request_carries_to_from_body_and_status_callback(fake, tmp_path):
    channel = get_channel("sms", twilio_settings(fake.base_url, tmp_path))
    receipt = channel.send(sms(status_callback=CALLBACK))
    [request] = fake.messages
    assert request["to"] == PATIENT
    assert request["from_"] == "+15005550006"
    assert request["body"] == "Apply the cold compress for 10 minutes."
    assert request["status_callback"] == CALLBACK
    assert request["messaging_service_sid"] is None
    assert request["account_sid"] == ACCOUNT_SID
    assert receipt.provider_id == request["sid"] and receipt.provider_id.startswith("SM")
    assert receipt.status == "sent"


def test_messaging_service_sid_is_sent_when_there_is_no_from_number(fake, tmp_path):
    settings = twilio_settings(fake.base_url, tmp_path, twilio_from="", twilio_messaging_service_sid="MG" + "1" * 32)
    get_channel("sms", settings).send(sms())
    [request] = fake.messages
    assert request["messaging_service_sid"] == "MG" + "1" * 32
    assert request["from_"] is None


def test_a_clinic_sender_overrides_the_default_from_number(fake, tmp_path):
    settings = twilio_settings(fake.base_url, tmp_path, twilio_messaging_service_sid="MG" + "1" * 32)
    get_channel("sms", settings).send(sms(sender="+15005550001"))
    [request] = fake.messages
    assert request["from_"] == "+15005550001"
    assert request["messaging_service_sid"] is None


def test_status_callback_is_left_out_when_not_given(fake, tmp_path):
    get_channel("sms", twilio_settings(fake.base_url, tmp_path)).send(sms())
    assert fake.messages[0]["status_callback"] is None


def test_base_url_setting_is_honoured_even_with_a_trailing_slash(fake, tmp_path):
    channel = get_channel("sms", twilio_settings(fake.base_url + "/", tmp_path))
    assert channel.client.api.base_url == fake.base_url
    channel.send(sms())
    assert fake.count == 1


def test_an_unsubscribed_recipient_is_permanent_and_flagged_opted_out(fake, tmp_path):
    fake.fail_for(PATIENT, status=400, code=21610)
    error = send_error(get_channel("sms", twilio_settings(fake.base_url, tmp_path)), sms())
    assert error.permanent and error.opted_out
    assert error.code == "21610"
    assert fake.count == 0 and len(fake.failures) == 1


@pytest.mark.parametrize("code", [21211, 21614, 21612, 21408, 21606, 21617])
def test_an_invalid_or_unreachable_number_is_permanent(fake, tmp_path, code):
    fake.fail_next(1, status=400, code=code)
    error = send_error(get_channel("sms", twilio_settings(fake.base_url, tmp_path)), sms())
    assert error.permanent and not error.opted_out
    assert error.code == str(code)


def test_an_unknown_client_error_is_permanent(fake, tmp_path):
    fake.fail_next(1, status=400, code=21999)
    error = send_error(get_channel("sms", twilio_settings(fake.base_url, tmp_path)), sms())
    assert error.permanent


@pytest.mark.parametrize(("status", "code"), [(429, 20429), (429, None), (400, 20429)])
def test_rate_limiting_is_transient(fake, tmp_path, status, code):
    fake.fail_next(1, status=status, code=code)
    error = send_error(get_channel("sms", twilio_settings(fake.base_url, tmp_path)), sms())
    assert not error.permanent


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_server_error_is_transient(fake, tmp_path, status):
    fake.fail_next(1, status=status)
    error = send_error(get_channel("sms", twilio_settings(fake.base_url, tmp_path)), sms())
    assert not error.permanent


def test_wrong_credentials_are_transient_because_fixing_the_config_lets_retries_through(fake, tmp_path):
    settings = twilio_settings(fake.base_url, tmp_path, twilio_auth_token="wrong" * 6)
    error = send_error(get_channel("sms", settings), sms())
    assert not error.permanent
    assert error.code == "20003"
    assert fake.count == 0


def test_connection_refused_is_transient(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = send_error(get_channel("sms", twilio_settings(f"http://127.0.0.1:{port}", tmp_path)), sms())
    assert not error.permanent
    assert error.code == "connection"


def test_a_stopped_api_is_unreachable_even_over_a_kept_alive_connection(tmp_path):
    with FakeTwilio() as server:
        channel = get_channel("sms", twilio_settings(server.base_url, tmp_path))
        channel.send(sms())
    error = send_error(channel, sms())
    assert not error.permanent


def test_a_read_timeout_is_transient(fake, tmp_path, monkeypatch):
    monkeypatch.setattr("aftercare.channels.twilio_sms.READ_TIMEOUT_SECONDS", 0.2)
    fake.latency = 1.0
    error = send_error(get_channel("sms", twilio_settings(fake.base_url, tmp_path)), sms())
    assert not error.permanent


def test_errors_never_quote_the_phone_number_or_body(fake, tmp_path):
    fake.fail_next(1, status=400, code=21211)
    error = send_error(get_channel("sms", twilio_settings(fake.base_url, tmp_path)), sms(body="secret body"))
    assert PATIENT not in str(error) and "secret body" not in str(error)
    assert error.__cause__ is None and error.__suppress_context__


def test_concurrent_sends_from_sixteen_threads_share_one_client(fake, tmp_path, caplog):
    channel = get_channel("sms", twilio_settings(fake.base_url, tmp_path))
    receipts: list[str] = []

    def send_many(thread: int) -> None:
        for n in range(25):
            receipts.append(channel.send(sms(to=f"+62812{thread:02d}{n:05d}")).provider_id)

    threads = [threading.Thread(target=send_many, args=(t,)) for t in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fake.count == 400
    assert len(set(receipts)) == 400
    assert len({m["to"] for m in fake.messages}) == 400
    assert "Connection pool is full" not in caplog.text


def test_get_channel_reuses_one_client_and_rebuilds_when_settings_change(fake, tmp_path):
    settings = twilio_settings(fake.base_url, tmp_path)
    first = get_channel("sms", settings)
    assert get_channel("sms", settings) is first
    assert get_channel("sms", twilio_settings(fake.base_url, tmp_path, twilio_from="+15005550009")) is not first


def test_console_and_twilio_are_picked_by_setting(tmp_path):
    assert isinstance(get_channel("sms", Settings(home=tmp_path)), ConsoleChannel)
    with pytest.raises(ValueError):
        get_channel("fax", Settings(home=tmp_path))


# -- the fake itself ----------------------------------------------------------------------------------


def test_fake_answers_errors_in_twilios_json_shape(fake):
    fake.fail_next(1, status=400, code=21610)
    request = urllib.request.Request(
        f"{fake.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        data=b"To=%2B1&From=%2B2&Body=hi",
        headers={"Authorization": "Basic " + _basic(ACCOUNT_SID, AUTH_TOKEN)},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    payload = json.loads(caught.value.read())
    assert caught.value.code == 400
    assert payload == {
        "code": 21610,
        "message": "Attempt to send to unsubscribed recipient",
        "more_info": "https://www.twilio.com/docs/errors/21610",
        "status": 400,
    }


def test_fake_fail_rate_fails_about_that_fraction(fake, tmp_path):
    fake.fail_rate(0.3, statuses=(500, 429), seed=7)
    channel = get_channel("sms", twilio_settings(fake.base_url, tmp_path))
    failed = 0
    for _ in range(200):
        try:
            channel.send(sms())
        except DeliveryError as error:
            assert not error.permanent
            failed += 1
    assert 30 <= failed <= 90
    assert fake.count + len(fake.failures) == 200
    assert {f["status"] for f in fake.failures} == {500, 429}


def test_fake_runs_as_a_separate_process_with_stats_and_config(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.twilio_api", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        channel = get_channel("sms", twilio_settings(base_url, tmp_path))
        channel.send(sms())
        _post_json(f"{base_url}/_fake/config", {"fail_rate": 1.0, "statuses": [503]})
        with pytest.raises(DeliveryError):
            channel.send(sms())
        with urllib.request.urlopen(f"{base_url}/_fake/stats") as answer:
            assert json.load(answer) == {"accepted": 1, "failed": 1}
        with urllib.request.urlopen(f"{base_url}/_fake/messages") as answer:
            assert [m["to"] for m in json.load(answer)["messages"]] == [PATIENT]
    finally:
        process.terminate()
        process.wait(timeout=10)


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _post_json(url: str, payload: dict) -> None:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST")
    with urllib.request.urlopen(request) as answer:
        answer.read()


def test_a_delivery_error_keeps_its_fields_across_processes():
    error = pickle.loads(pickle.dumps(DeliveryError("opted out", permanent=True, code="21610", opted_out=True)))
    assert (str(error), error.permanent, error.code, error.opted_out) == ("opted out", True, "21610", True)
