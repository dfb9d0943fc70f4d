"""Settings come from AFTERCARE_* variables; a bad or missing one is a clear error naming the variable."""

from __future__ import annotations

import os

import pytest

from aftercare.config import ConfigError, get_settings, reset_settings
from tests.cli_helpers import run_cli


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith("AFTERCARE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AFTERCARE_HOME", str(tmp_path))
    reset_settings()
    yield
    reset_settings()


def test_embedded_defaults_need_no_configuration(tmp_path):
    settings = get_settings()
    assert settings.effective_database_url == f"sqlite:///{(tmp_path / 'aftercare.db').resolve()}"
    assert settings.sms_channel == "console" and settings.embedded_broker


def test_an_invalid_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("AFTERCARE_SMS_CHANNEL", "pigeon")
    with pytest.raises(ConfigError, match="AFTERCARE_SMS_CHANNEL"):
        get_settings()


def test_twilio_without_credentials_names_the_missing_variable(monkeypatch):
    monkeypatch.setenv("AFTERCARE_SMS_CHANNEL", "twilio")
    with pytest.raises(ConfigError, match="AFTERCARE_TWILIO_ACCOUNT_SID"):
        get_settings()
    monkeypatch.setenv("AFTERCARE_TWILIO_ACCOUNT_SID", "AC" + "0" * 32)
    monkeypatch.setenv("AFTERCARE_TWILIO_AUTH_TOKEN", "x" * 32)
    reset_settings()
    with pytest.raises(ConfigError, match="AFTERCARE_TWILIO_FROM or AFTERCARE_TWILIO_MESSAGING_SERVICE_SID"):
        get_settings()


def test_the_cli_reports_a_bad_setting_in_one_line(monkeypatch):
    monkeypatch.setenv("AFTERCARE_SMTP_PORT", "not-a-port")
    result = run_cli("clinic", "list")
    assert result.exit_code == 1
    assert "AFTERCARE_SMTP_PORT" in result.stderr and len(result.stderr.strip().splitlines()) == 1
