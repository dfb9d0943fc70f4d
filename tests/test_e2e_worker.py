"""End to end on PostgreSQL and Redis: a real Celery worker and beat deliver every due message exactly once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from aftercare.db import session_scope
from aftercare.models import MessageStatus, ScheduledMessage
from tests.cli_helpers import add_clinic, enroll
from tests.fakes.smtp import FakeSmtp
from tests.fakes.twilio_api import FakeTwilio
from tests.faults.harness import PrivateRedis
from tests.processes import AUTH_TOKEN, service_env, start_worker, stop, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def broker_url(tmp_path) -> Iterator[str]:
    with PrivateRedis(tmp_path / "redis") as private:  # never flush the machine's shared Redis
        yield private.url


def _due_rows() -> list[ScheduledMessage]:
    with session_scope() as session:
        return list(session.scalars(select(ScheduledMessage).where(ScheduledMessage.status == "scheduled",
                                                                   ScheduledMessage.due_at <= datetime.now(UTC))))


def _count(status: str) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(ScheduledMessage)
                              .where(ScheduledMessage.status == status))


def test_worker_and_beat_deliver_every_due_message_exactly_once(env, broker_url, tmp_path, monkeypatch):
    monkeypatch.setenv("AFTERCARE_TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    add_clinic(quiet_hours="00:00-00:00")
    patients = 20
    treated = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0).isoformat()
    for n in range(patients):
        enroll(phone=f"+62812345{n:05d}", email=f"p{n}@example.com", treated_at=treated)
    due = _due_rows()
    sms_due = sum(1 for r in due if r.channel == "sms")
    email_due = sum(1 for r in due if r.channel == "email")
    assert sms_due >= patients
    with FakeTwilio(auth_token=AUTH_TOKEN) as twilio, FakeSmtp() as smtp:
        process_env = service_env(database_url=env["database_url"], broker_url=broker_url, home=tmp_path / "svc",
                                  twilio_url=twilio.base_url, smtp_port=smtp.port)
        started = time.monotonic()
        worker = start_worker(process_env, beat=True, log=tmp_path / "worker.log")
        try:
            assert wait_until(lambda: _count(MessageStatus.SENT) >= len(due), timeout=60), (
                (tmp_path / "worker.log").read_text()[-3000:])
            elapsed = time.monotonic() - started
            time.sleep(2)  # a few more ticks: nothing may be sent twice
        finally:
            stop(worker)
    assert twilio.count == sms_due
    assert smtp.count == email_due
    sent_to = [m["to"] for m in twilio.messages]
    assert len(sent_to) == len(set((m["to"], m["body"]) for m in twilio.messages))
    assert all(m["status_callback"] == "http://127.0.0.1:8000/twilio/status" for m in twilio.messages)
    assert _count(MessageStatus.SENT) == len(due)
    assert _count(MessageStatus.CLAIMED) == 0
    print(f"\ndelivered {len(due)} messages in {elapsed:.1f}s including worker start-up")
