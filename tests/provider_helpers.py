"""The real providers' SDKs against loopback fakes: twilio against the fake Twilio API, smtplib against aiosmtpd."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.conftest import configure
from tests.fakes.smtp import FakeSmtp
from tests.fakes.twilio_api import FakeTwilio
from tests.processes import ACCOUNT_SID, AUTH_TOKEN, TWILIO_FROM
from tests.web_helpers import PUBLIC_URL


@contextmanager
def real_providers(monkeypatch: pytest.MonkeyPatch, **settings: object) -> Iterator[tuple[FakeTwilio, FakeSmtp]]:
    """Twilio SMS and SMTP email configured against fakes on loopback (plus any other AFTERCARE_* `settings`)."""
    with FakeTwilio(auth_token=AUTH_TOKEN) as twilio, FakeSmtp() as smtp:
        configure(monkeypatch, sms_channel="twilio", twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN,
                  twilio_from=TWILIO_FROM, twilio_api_base_url=twilio.base_url, email_channel="smtp",
                  smtp_host="127.0.0.1", smtp_port=smtp.port, public_url=PUBLIC_URL, **settings)
        yield twilio, smtp
