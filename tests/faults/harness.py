"""What every fault test needs: a Redis of its own to break, a bulk-seeded outbox, and a tally of what the
fake Twilio received (each message body is unique, so a body seen twice is a duplicate)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import redis
from sqlalchemy import func, insert, select

from aftercare.db import session_scope
from aftercare.models import (
    Clinic,
    Enrollment,
    MessageKind,
    MessageStatus,
    Patient,
    ScheduledMessage,
    utcnow,
)
from tests.fakes.twilio_api import FakeTwilio
from tests.processes import service_env, wait_until

BODY_PREFIX = "fault-test message"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server of the test's own on a free port, so flushing or stopping it spares the machine's Redis."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / f"redis-{self.port}.log", "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(self.workdir)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        assert wait_until(self._answers, timeout=10), "private redis-server did not start"
        return self

    def kill(self) -> None:
        """Stop it the hard way (a crash): without persistence, everything it held is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def flushall(self) -> None:
        self.client().flushall()

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping())
        except redis.ConnectionError:
            return False

    def __enter__(self) -> PrivateRedis:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


class Supervisor:
    """Starts a process again when it exits, as `restart: unless-stopped` does in docker-compose.yml.

    Celery's worker can die of a kombu error when Redis goes away mid-read ("Unrecoverable error:
    AttributeError: 'NoneType' object has no attribute 'hostname'", upstream celery/celery#10205 and
    celery/kombu#970): production relies on the supervisor, so the test does too, and counts the restarts.
    """

    def __init__(self, start: Callable[[], subprocess.Popen]) -> None:
        self._start = start
        self.process = start()
        self.restarts = 0

    def check(self) -> bool:
        if self.process.poll() is not None:
            self.restarts += 1
            self.process = self._start()
        return True


def seed_due_reminders(count: int, *, per_patient: int = 25, phone_base: int = 6281300000000) -> list[str]:
    """Bulk-insert `count` SMS reminders due now, each with a unique body; returns the bodies.

    The clinic has no quiet hours ("00:00-00:00") so every row may go at once, whatever the time of day.
    """
    now = utcnow()
    patients = (count + per_patient - 1) // per_patient
    with session_scope() as session:
        clinic = Clinic(slug="faults", name="Fault Clinic", timezone="Asia/Jakarta", phone="+622150001234",
                        quiet_start="00:00", quiet_end="00:00")
        session.add(clinic)
        session.flush()
        patient_ids = session.scalars(insert(Patient).returning(Patient.id, sort_by_parameter_order=True), [
            {"clinic_id": clinic.id, "first_name": f"P{n}", "phone": f"+{phone_base + n}", "timezone": "Asia/Jakarta",
             "language": "en", "sms_consent": True, "email_consent": True} for n in range(patients)]).all()
        enrollment_ids = session.scalars(insert(Enrollment).returning(Enrollment.id, sort_by_parameter_order=True), [
            {"patient_id": pid, "clinic_id": clinic.id, "treatment": "dermal-filler", "protocol_version": 1,
             "treated_at": now - timedelta(hours=1), "status": "active"} for pid in patient_ids]).all()
        bodies = [f"{BODY_PREFIX} {n}" for n in range(count)]
        session.execute(insert(ScheduledMessage), [
            {"kind": MessageKind.REMINDER, "enrollment_id": enrollment_ids[n // per_patient], "step": f"fault-{n}",
             "channel": "sms", "template": "unused", "body": body, "planned_at": now, "due_at": now,
             "fresh_until": now + timedelta(days=1), "status": MessageStatus.SCHEDULED}
            for n, body in enumerate(bodies)])
    return bodies


def count_by_status() -> dict[str, int]:
    with session_scope() as session:
        rows = session.execute(select(ScheduledMessage.status, func.count()).group_by(ScheduledMessage.status))
        return dict(rows.all())


def sent_count() -> int:
    counts = count_by_status()
    return counts.get(MessageStatus.SENT, 0) + counts.get(MessageStatus.DELIVERED, 0)


@dataclass(frozen=True)
class Tally:
    """What the fake Twilio accepted for the expected bodies."""

    expected: int
    delivered: int  # distinct expected bodies accepted at least once
    duplicates: int  # acceptances beyond the first of a body
    lost: list[str]

    @classmethod
    def of(cls, twilio: FakeTwilio, bodies: list[str]) -> Tally:
        accepted = Counter(m["body"] for m in twilio.messages)
        return cls(expected=len(bodies), delivered=sum(1 for b in bodies if accepted[b]),
                   duplicates=sum(accepted[b] - 1 for b in bodies if accepted[b] > 1),
                   lost=[b for b in bodies if not accepted[b]])

    def __str__(self) -> str:
        return f"delivered {self.delivered}/{self.expected}, duplicates {self.duplicates}, lost {len(self.lost)}"


def fault_env(env: dict, *, broker_url: str, home: Path, twilio: FakeTwilio, **extra: object) -> dict[str, str]:
    """The service environment tuned for fault runs: fast ticks, a short claim lease, no rate limit to wait on."""
    values: dict[str, object] = {"DISPATCH_INTERVAL": 0.3, "CLAIM_LEASE_SECONDS": 10, "SMS_RATE_PER_SECOND": 100000}
    values.update(extra)
    return service_env(database_url=env["database_url"], broker_url=broker_url, home=home,
                       twilio_url=twilio.base_url, **values)


def wait_quiet(twilio: FakeTwilio, *, quiet: float = 1.5, timeout: float = 30) -> None:
    """Wait until the fake Twilio has received nothing for `quiet` seconds (late duplicates have had their chance)."""
    deadline = time.monotonic() + timeout
    last, since = twilio.count + len(twilio.failures), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.1)
        now_seen = twilio.count + len(twilio.failures)
        if now_seen != last:
            last, since = now_seen, time.monotonic()


def log_tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started
