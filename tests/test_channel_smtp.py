"""SMTP email: real smtplib against a real aiosmtpd server, and how each SMTP answer is classified."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from aftercare.channels import get_channel, reset_channels
from aftercare.channels.base import DeliveryError, OutgoingMessage
from aftercare.config import Settings
from tests.fakes.smtp import FakeSmtp

PATIENT = "sari@example.com"


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("AFTERCARE_"):
            monkeypatch.delenv(key)
    reset_channels()
    yield
    reset_channels()


@pytest.fixture
def smtp() -> Iterator[FakeSmtp]:
    with FakeSmtp() as server:
        yield server


def smtp_settings(port: int, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "email_channel": "smtp",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_timeout": 5,
        "email_from": "Klinik Cantik <aftercare@klinik.example>",
        "home": tmp_path,
    }
    values.update(overrides)
    return Settings(**values)


def email(to: str = PATIENT, **extra: object) -> OutgoingMessage:
    values: dict[str, object] = {"subject": "Your aftercare", "body": "Halo Sari, kompres dingin 10 menit. 🙂"}
    values.update(extra)
    return OutgoingMessage(message_id=7, channel="email", to=to, **values)


def send_error(settings: Settings, message: OutgoingMessage) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        get_channel("email", settings).send(message)
    return caught.value


def test_email_arrives_with_subject_body_and_our_message_id(smtp, tmp_path):
    receipt = get_channel("email", smtp_settings(smtp.port, tmp_path)).send(email())
    assert smtp.wait_for(1)
    [received] = smtp.messages
    assert received["recipients"] == [PATIENT]
    assert received["to"] == PATIENT
    assert received["from_"] == "aftercare@klinik.example"
    assert received["from_header"] == "Klinik Cantik <aftercare@klinik.example>"
    assert received["subject"] == "Your aftercare"
    assert received["body"].strip() == "Halo Sari, kompres dingin 10 menit. 🙂"
    assert receipt.provider_id == received["message_id"]
    assert receipt.provider_id.endswith("@klinik.example>")


def test_a_sender_override_becomes_the_from_address(smtp, tmp_path):
    get_channel("email", smtp_settings(smtp.port, tmp_path)).send(email(sender="care@other-clinic.example"))
    assert smtp.wait_for(1)
    assert smtp.messages[0]["from_"] == "care@other-clinic.example"


def test_a_rejected_recipient_550_is_permanent(smtp, tmp_path):
    smtp.reject(PATIENT, code=550)
    error = send_error(smtp_settings(smtp.port, tmp_path), email())
    assert error.permanent
    assert error.code == "550"
    assert PATIENT not in str(error)


def test_a_451_at_rcpt_is_transient(smtp, tmp_path):
    smtp.fail_next(1, code=451, stage="rcpt")
    error = send_error(smtp_settings(smtp.port, tmp_path), email())
    assert not error.permanent
    assert error.code == "451"


def test_a_451_after_data_is_transient_and_a_554_is_permanent(smtp, tmp_path):
    settings = smtp_settings(smtp.port, tmp_path)
    smtp.fail_next(1, code=451, stage="data")
    assert not send_error(settings, email()).permanent
    smtp.fail_next(1, code=554, stage="data")
    assert send_error(settings, email()).permanent
    assert smtp.count == 0


def test_a_server_that_is_down_is_transient(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = send_error(smtp_settings(port, tmp_path), email())
    assert not error.permanent
    assert error.code == "connection"


def test_wrong_credentials_are_transient_and_right_ones_deliver(tmp_path):
    with FakeSmtp(credentials=("clinic", "s3cret")) as server:
        wrong = smtp_settings(server.port, tmp_path, smtp_user="clinic", smtp_password="nope")
        error = send_error(wrong, email())
        assert not error.permanent
        assert error.code == "535"
        right = smtp_settings(server.port, tmp_path, smtp_user="clinic", smtp_password="s3cret")
        get_channel("email", right).send(email())
        assert server.wait_for(1)


def test_a_line_break_in_the_address_is_permanent_not_a_header_injection(smtp, tmp_path):
    error = send_error(smtp_settings(smtp.port, tmp_path), email(to="a@example.com\nBcc: everyone@example.com"))
    assert error.permanent
    assert smtp.count == 0
