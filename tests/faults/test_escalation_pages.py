"""Nothing about safety lives only in Redis (DESIGN section 7): an escalation raised while Redis is down is paged
once it is back, and an emergency page goes out at once even while routine reminders are queued by the thousand."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from aftercare.db import session_scope
from aftercare.inbound.handling import handle_inbound_sms
from aftercare.models import MessageKind, MessageStatus, ScheduledMessage
from tests.cli_helpers import add_clinic, cli_json, enroll
from tests.conftest import configure
from tests.fakes.smtp import FakeSmtp
from tests.fakes.twilio_api import FakeTwilio
from tests.faults.harness import PrivateRedis, fault_env, log_tail, seed_due_reminders, wait_quiet
from tests.processes import AUTH_TOKEN, start_beat, start_worker, stop, wait_until
from tests.web_helpers import PUBLIC_URL, serve_app

pytestmark = pytest.mark.slow

PATIENT = "+6281234567890"
DOCTOR = "+6281100000001"
DOCTOR_EMAIL = "a@glow.example"
EMERGENCY = "my lip has gone white and it really hurts"


def _to(twilio: FakeTwilio, number: str) -> list[dict]:
    return [m for m in twilio.messages if m["to"] == number]


def _scheduled_pages() -> list[ScheduledMessage]:
    with session_scope() as session:
        return list(session.scalars(select(ScheduledMessage).where(ScheduledMessage.kind == MessageKind.PAGE)))


def test_an_escalation_raised_while_redis_is_down_is_paged_once_redis_is_back(env, tmp_path, monkeypatch):
    configure(monkeypatch, twilio_auth_token=AUTH_TOKEN, public_url=PUBLIC_URL)
    add_clinic(quiet_hours="00:00-00:00")
    cli_json("oncall", "add", "--clinic", "glow", "--name", "Dr A", "--phone", DOCTOR, "--email", DOCTOR_EMAIL)
    enroll(phone=PATIENT, treated_at=(datetime.now(UTC) - timedelta(minutes=5)).replace(microsecond=0).isoformat())
    broker = PrivateRedis(tmp_path / "redis").start()
    broker.kill()
    worker_log = tmp_path / "worker.log"
    with FakeTwilio(auth_token=AUTH_TOKEN) as twilio, FakeSmtp() as smtp, serve_app() as web:
        answer = web.sms(PATIENT, EMERGENCY)
        assert answer.status_code == 200 and "call us NOW" in answer.text, answer.text
        escalation = cli_json("escalations", "list", "--open")
        assert [e["level"] for e in escalation] == ["emergency"]
        pages = _scheduled_pages()
        assert {(p.channel, p.status) for p in pages} == {("sms", "scheduled"), ("email", "scheduled")}

        broker.start()  # the same port, and empty
        process_env = fault_env(env, broker_url=broker.url, home=tmp_path / "svc", twilio=twilio,
                                smtp_port=smtp.port, PUBLIC_URL=PUBLIC_URL)
        started = time.monotonic()
        beat = start_beat(process_env, log=tmp_path / "beat.log")
        worker = start_worker(process_env, concurrency=2, log=worker_log)
        try:
            assert wait_until(lambda: _to(twilio, DOCTOR) and smtp.count >= 1, timeout=30), log_tail(worker_log)
            paged_after = time.monotonic() - started
            wait_quiet(twilio)
        finally:
            stop(worker)
            stop(beat)
            broker.kill()
        page = _to(twilio, DOCTOR)
        emails = [m for m in smtp.messages if DOCTOR_EMAIL in m["recipients"]]
    print(f"\nescalation raised with Redis down; paged {paged_after:.1f}s after Redis, worker and beat came back")
    assert len(page) == 1 and "EMERGENCY" in page[0]["body"] and escalation[0]["code"] in page[0]["body"]
    assert len(emails) == 1
    assert {p.status for p in _scheduled_pages()} == {MessageStatus.SENT}


BACKLOG = 1500


def test_an_emergency_page_is_not_queued_behind_a_backlog_of_reminders(env, tmp_path):
    seed_due_reminders(BACKLOG)  # clinic "faults", no quiet hours
    cli_json("oncall", "add", "--clinic", "faults", "--name", "Dr A", "--phone", DOCTOR)
    enroll(clinic="faults", phone=PATIENT,
           treated_at=(datetime.now(UTC) - timedelta(minutes=5)).replace(microsecond=0).isoformat())
    worker_log = tmp_path / "worker.log"
    with PrivateRedis(tmp_path / "redis") as broker, FakeTwilio(auth_token=AUTH_TOKEN) as twilio:
        process_env = fault_env(env, broker_url=broker.url, home=tmp_path / "svc", twilio=twilio,
                                CLAIM_LEASE_SECONDS=300)
        beat = start_beat(process_env, log=tmp_path / "beat.log")
        worker = start_worker(process_env, concurrency=2, log=worker_log)
        try:
            assert wait_until(lambda: twilio.count >= BACKLOG // 10, timeout=60), log_tail(worker_log)
            with session_scope() as session:
                outcome = handle_inbound_sms(session, sid="SMfault" + "0" * 26, from_number=PATIENT, to_number=None,
                                             body=EMERGENCY)
            raised = time.monotonic()
            assert outcome.level == "emergency" and outcome.escalation_id is not None
            assert wait_until(lambda: _to(twilio, DOCTOR), timeout=120), log_tail(worker_log)
            page_delay = time.monotonic() - raised
            backlog_left = BACKLOG - [m["to"] for m in twilio.messages].index(DOCTOR)  # reminders sent after it
        finally:
            stop(worker, kill=True)
            stop(beat)
    print(f"\nemergency page sent {page_delay:.1f}s after the reply, with {backlog_left} reminders still queued")
    # "Paged at once" means ahead of the routine queue, on any machine: not after the whole backlog has drained.
    assert backlog_left >= BACKLOG // 2
