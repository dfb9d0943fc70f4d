"""Logs never carry a phone number, an email address or a message body (STYLE point 10).

A whole flow runs with logging at INFO: enroll, reminders sent (in this process and by a real worker), replies
through the signed webhook and the CLI, a STOP, an emergency escalation paged by SMS and email, a failed send
retried, a clinician's ACK, resolution. Then every log line, ours (caplog) and the worker's (its captured
output at --loglevel INFO), is searched for each number in every format, each address and each text.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import phonenumbers
import pytest

from tests.cli_helpers import add_clinic, cli_json
from tests.conftest import configure
from tests.fakes.smtp import FakeSmtp
from tests.fakes.twilio_api import FakeTwilio
from tests.faults.harness import PrivateRedis
from tests.processes import ACCOUNT_SID, AUTH_TOKEN, ROOT, TWILIO_FROM, service_env, stop, wait_until
from tests.web_helpers import PUBLIC_URL, serve_app

pytestmark = pytest.mark.slow

PATIENT = "+6281234567890"
SECOND_PATIENT = "+6281234567891"
DOCTOR = "+6281100000001"
PATIENT_EMAIL = "ayu.private@example.com"
DOCTOR_EMAIL = "dr.private@glow.example"
ROUTINE_REPLY = "bit of swelling near the zebra-umbrella spot, is that normal?"
EMERGENCY_REPLY = "my lip has gone white and it really hurts"
CLI_REPLY = "feeling fine today, thank you mango-lantern"
FAKE_LOGGERS = ("mail.log",)


def phone_formats(e164: str) -> set[str]:
    number = phonenumbers.parse(e164)
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    formats = {e164, e164.lstrip("+"), national, national.replace("-", ""), national.replace("-", " "),
               phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
               str(number.national_number)}
    return {f for f in formats if len(f) >= 9}


def start_info_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    """A worker with beat at --loglevel INFO, its stdout and stderr captured to `log`."""
    Path(env["AFTERCARE_HOME"]).mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "celery", "-A", "tasks.app", "worker", "-B", "--loglevel", "INFO",
               "--concurrency", "2", "-n", "privacy@%h", "--without-gossip", "--without-mingle",
               "--without-heartbeat", "--schedule", str(Path(env["AFTERCARE_HOME"]) / "beat-privacy")]
    output = open(log, "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _line_with(text: str, secret: str) -> str:
    return next(line for line in text.splitlines() if secret in line)[:300]


def _treated(hours: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).replace(microsecond=0).isoformat()


def test_a_whole_flow_logs_no_phone_number_email_address_or_message_body(env, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    worker_log = tmp_path / "worker.log"
    with PrivateRedis(tmp_path / "redis") as private, FakeTwilio(auth_token=AUTH_TOKEN) as twilio, FakeSmtp() as smtp:
        broker = private.url
        channels = {"sms_channel": "twilio", "twilio_account_sid": ACCOUNT_SID, "twilio_auth_token": AUTH_TOKEN,
                    "twilio_from": TWILIO_FROM, "twilio_api_base_url": twilio.base_url, "email_channel": "smtp",
                    "smtp_host": "127.0.0.1", "smtp_port": smtp.port, "public_url": PUBLIC_URL,
                    "broker_url": broker, "log_level": "INFO"}
        configure(monkeypatch, **channels)
        add_clinic(quiet_hours="00:00-00:00")
        cli_json("oncall", "add", "--clinic", "glow", "--name", "Dr A", "--phone", DOCTOR, "--email", DOCTOR_EMAIL)
        cli_json("enroll", "--clinic", "glow", "--first-name", "Ayu", "--phone", PATIENT, "--email", PATIENT_EMAIL,
                 "--treatment", "dermal-filler", "--treated-at", _treated(5))
        cli_json("enroll", "--clinic", "glow", "--first-name", "Budi", "--phone", "0812-3456-7891",
                 "--treatment", "mesotherapy", "--treated-at", _treated(3))

        # In this process: the first reminders go out, one of them only after a Twilio 500.
        twilio.fail_next(1, status=500)
        assert cli_json("dispatch", "--once")["sent"] >= 2

        process_env = service_env(database_url=env["database_url"], broker_url=broker, home=tmp_path / "svc",
                                  twilio_url=twilio.base_url, smtp_port=smtp.port, PUBLIC_URL=PUBLIC_URL,
                                  LOG_LEVEL="INFO", DISPATCH_INTERVAL=0.3)
        worker = start_info_worker(process_env, worker_log)
        try:
            with serve_app() as web:
                sent = [m["sid"] for m in twilio.messages]
                assert web.signed_post("/twilio/status", {"MessageSid": sent[0], "MessageStatus": "delivered",
                                                          "To": PATIENT}).status_code == 204
                assert web.sms(PATIENT, ROUTINE_REPLY).status_code == 200
                assert web.signed_post("/twilio/sms", {"MessageSid": "SMforged", "From": PATIENT, "Body": "STOP"},
                                       signature="forged").status_code == 403
                assert web.sms(SECOND_PATIENT, "STOP").status_code == 200
                assert web.sms("+6289999999999", "who is this? my number is " + SECOND_PATIENT).status_code == 200
                cli_json("reply", "--from", PATIENT, CLI_REPLY)

                twilio.fail_next(1, status=503)  # the page's first send fails and is retried by the worker
                answer = web.sms(PATIENT, EMERGENCY_REPLY)
                assert answer.status_code == 200 and "call us NOW" in answer.text
                escalation = cli_json("escalations", "list", "--open")[0]
                assert wait_until(lambda: any(m["to"] == DOCTOR for m in twilio.messages) and smtp.count >= 2,
                                  timeout=30), worker_log.read_text()[-3000:]
                assert "Acknowledged" in web.sms(DOCTOR, f"ACK {escalation['code']}").text
            cli_json("escalations", "resolve", str(escalation["id"]), "--by", "Dr A", "--note", "seen, all fine")
        finally:
            stop(worker)
        outgoing = [m["body"] for m in twilio.messages] + [m["body"] for m in smtp.messages]
        outgoing += [m["subject"] for m in smtp.messages]

    # aiosmtpd's "mail.log" is the fake mail server, the provider's side of the wire: not our logging.
    render = logging.Formatter("%(levelname)s %(name)s %(message)s").format
    ours = "\n".join(render(r) for r in caplog.records if not r.name.startswith(FAKE_LOGGERS))
    theirs = worker_log.read_text(errors="replace")
    assert "handled as" in ours or "inbound" in ours, "in-process INFO logging was not captured"
    assert "level=INFO" in theirs and "tasks.dispatch.deliver" in theirs, "the worker did not log at INFO"
    secrets = {f"phone {p} as {f!r}": f for p in (PATIENT, SECOND_PATIENT, DOCTOR) for f in phone_formats(p)}
    secrets |= {f"email {e}": e for e in (PATIENT_EMAIL, DOCTOR_EMAIL)}
    secrets |= {f"reply text {t!r}": t for t in (ROUTINE_REPLY, EMERGENCY_REPLY, CLI_REPLY, "zebra-umbrella",
                                                 "mango-lantern", "gone white")}
    for n, body in enumerate(outgoing):
        secrets[f"sent text {n}"] = body.strip()
        secrets[f"start of sent text {n}"] = body.strip()[:40]
    logs = (("in-process log", ours), ("worker log", theirs))
    leaks = [(where, label, _line_with(text, secret)) for where, text in logs
             for label, secret in secrets.items() if secret and secret in text]
    assert not leaks, leaks


REFUSE_INBOUND = """
CREATE OR REPLACE FUNCTION privacy_test_refuse() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'simulated storage failure'; END $$;
CREATE TRIGGER privacy_test_refuse BEFORE INSERT ON inbound_messages
    FOR EACH ROW EXECUTE FUNCTION privacy_test_refuse();
"""
ALLOW_INBOUND = ("DROP TRIGGER IF EXISTS privacy_test_refuse ON inbound_messages; "
                 "DROP FUNCTION IF EXISTS privacy_test_refuse();")


def test_a_database_failure_while_handling_a_reply_logs_no_personal_data(env, monkeypatch, caplog):
    """When the database refuses a write, the error is logged (and Twilio retries on the 5xx), without the values."""
    from sqlalchemy import text

    from aftercare.db import get_engine

    caplog.set_level(logging.INFO)
    configure(monkeypatch, twilio_auth_token=AUTH_TOKEN, public_url=PUBLIC_URL)
    add_clinic(quiet_hours="00:00-00:00")
    cli_json("enroll", "--clinic", "glow", "--first-name", "Ayu", "--phone", PATIENT, "--email", PATIENT_EMAIL,
             "--treatment", "dermal-filler", "--treated-at", _treated(5))
    engine = get_engine()
    with engine.begin() as connection:
        connection.execute(text(REFUSE_INBOUND))
    try:
        with serve_app() as web:
            response = web.sms(PATIENT, ROUTINE_REPLY)
    finally:
        with engine.begin() as connection:
            connection.execute(text(ALLOW_INBOUND))
    render = logging.Formatter("%(levelname)s %(name)s %(message)s").format
    logged = "\n".join(render(r) for r in caplog.records if not r.name.startswith(FAKE_LOGGERS))
    assert response.status_code == 500  # the database is failing: Twilio will retry the webhook
    assert "simulated storage failure" in logged or "InternalError" in logged, "the failure itself is logged"
    secrets = phone_formats(PATIENT) | {ROUTINE_REPLY, "zebra-umbrella"}
    assert not [(s, _line_with(logged, s)) for s in secrets if s in logged]
