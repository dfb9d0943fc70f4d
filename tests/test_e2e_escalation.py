"""End to end on PostgreSQL + Redis with a real worker: a check-in goes out, the patient answers with a
sign of vascular occlusion through the signed webhook, the on-call clinicians are paged until one
acknowledges by SMS, and the audit log tells the story in order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from aftercare.db import session_scope
from aftercare.models import Escalation, MessageKind, MessageStatus, ScheduledMessage
from tests.cli_helpers import add_clinic, cli_json, enroll
from tests.conftest import configure
from tests.fakes.smtp import FakeSmtp
from tests.fakes.twilio_api import FakeTwilio
from tests.faults.harness import PrivateRedis
from tests.processes import AUTH_TOKEN, service_env, start_worker, stop, wait_until
from tests.web_helpers import PUBLIC_URL, serve_app

pytestmark = pytest.mark.slow
PATIENT = "+6281234567890"
DOCTOR_A, DOCTOR_B = "+6281100000001", "+6281100000002"


def _sms_to(twilio: FakeTwilio, number: str) -> list[dict]:
    return [m for m in twilio.messages if m["to"] == number]


def _held_reminders() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(ScheduledMessage).where(
            ScheduledMessage.kind == MessageKind.REMINDER, ScheduledMessage.status == MessageStatus.SCHEDULED,
            ScheduledMessage.due_at <= datetime.now(UTC)))


def test_dangerous_reply_is_paged_repaged_acknowledged_and_resolved(env, tmp_path, monkeypatch):
    configure(monkeypatch, twilio_auth_token=AUTH_TOKEN, public_url=PUBLIC_URL)
    add_clinic(quiet_hours="00:00-00:00")
    cli_json("oncall", "add", "--clinic", "glow", "--name", "Dr A", "--phone", DOCTOR_A, "--email", "a@glow.example")
    cli_json("oncall", "add", "--clinic", "glow", "--name", "Dr B", "--phone", DOCTOR_B, "--email", "b@glow.example")
    # Treated 5 hours ago: the first-hours reminder and the evening check-in are due.
    treated = (datetime.now(UTC) - timedelta(hours=5)).replace(microsecond=0).isoformat()
    enrollment = enroll(phone=PATIENT, treated_at=treated)

    with (PrivateRedis(tmp_path / "redis") as broker, FakeTwilio(auth_token=AUTH_TOKEN) as twilio, FakeSmtp() as smtp,
          serve_app() as web):
        process_env = service_env(database_url=env["database_url"], broker_url=broker.url, home=tmp_path / "svc",
                                  twilio_url=twilio.base_url, smtp_port=smtp.port, PUBLIC_URL=PUBLIC_URL)
        worker = start_worker(process_env, beat=True, log=tmp_path / "worker.log")
        try:
            # Both due SMS (the warning signs and the check-in) first: they may arrive in either order.
            assert wait_until(lambda: len(_sms_to(twilio, PATIENT)) >= 2, timeout=30)
            assert any("reply yes or no" in m["body"].lower() for m in _sms_to(twilio, PATIENT)), "a check-in arrives"
            reminders_before = len(_sms_to(twilio, PATIENT))

            answer = web.sms(PATIENT, "my lip has gone white and it really hurts")
            assert answer.status_code == 200 and "call us NOW" in answer.text and "+622150001234" in answer.text
            escalation_id = cli_json("escalations", "list", "--open")[0]["id"]

            assert wait_until(lambda: _sms_to(twilio, DOCTOR_A) and smtp.count >= 1, timeout=20)
            page = _sms_to(twilio, DOCTOR_A)[0]["body"]
            assert "EMERGENCY" in page and "Ayu" in page and "white" in page
            assert smtp.messages[0]["to"] == "a@glow.example" or "a@glow.example" in smtp.messages[0]["recipients"]

            # Routine reminders of this enrollment are held: make more of them due, none goes out.
            with session_scope() as session:
                session.execute(ScheduledMessage.__table__.update()
                                .where(ScheduledMessage.enrollment_id == enrollment["enrollment_id"],
                                       ScheduledMessage.kind == MessageKind.REMINDER,
                                       ScheduledMessage.status == MessageStatus.SCHEDULED)
                                .values(due_at=datetime.now(UTC) - timedelta(seconds=1),
                                        fresh_until=datetime.now(UTC) + timedelta(days=1)))
            assert not wait_until(lambda: len(_sms_to(twilio, PATIENT)) > reminders_before, timeout=3)
            assert _held_reminders() > 0

            # No ACK: five minutes "pass" (the next page time is a column), Dr B is paged.
            with session_scope() as session:
                session.get(Escalation, escalation_id).next_page_at = datetime.now(UTC) - timedelta(seconds=1)
            assert wait_until(lambda: _sms_to(twilio, DOCTOR_B), timeout=20)

            code = cli_json("escalations", "show", str(escalation_id))["code"]
            ack = web.sms(DOCTOR_B, f"ACK {code}")
            assert ack.status_code == 200 and "Acknowledged" in ack.text
            # Once a clinician has looked, the held reminders flow again.
            assert wait_until(lambda: _held_reminders() == 0, timeout=20)
            cli_json("escalations", "resolve", str(escalation_id), "--by", "Dr B", "--note", "seen in clinic")
        finally:
            stop(worker)

    shown = cli_json("escalations", "show", str(escalation_id))
    assert shown["status"] == "resolved" and shown["acknowledged_by"] == "Dr B"
    actions = [a["action"] for a in shown["audit"]]
    assert actions[0] == "escalation.opened" and actions[-1] == "escalation.resolved"
    # Two rounds queued; each round's SMS and email audited as paged once sent (the last may follow the ACK).
    assert actions.count("escalation.page_queued") == 2 and actions.count("escalation.paged") == 4
    assert actions.index("escalation.page_queued") < actions.index("escalation.paged")
    times = [a["at"] for a in shown["audit"]]
    assert times == sorted(times)
    assert [p["status"] for p in shown["pages"]].count("sent") == 4  # two rounds, SMS and email each
