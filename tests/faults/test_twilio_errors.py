"""Twilio failing: transient errors (500, 429) are retried with backoff until every message is delivered; error
21610 (the recipient texted STOP to the carrier) ends the message, opts the number out, and is never retried."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from aftercare.db import session_scope
from aftercare.models import MessageStatus, Patient, ScheduledMessage
from tests.cli_helpers import add_clinic, enroll
from tests.fakes.smtp import FakeSmtp
from tests.fakes.twilio_api import FakeTwilio
from tests.faults.harness import (
    PrivateRedis,
    Tally,
    count_by_status,
    fault_env,
    log_tail,
    seed_due_reminders,
    sent_count,
    wait_quiet,
)
from tests.processes import AUTH_TOKEN, start_beat, start_worker, stop, wait_until

pytestmark = pytest.mark.slow

MESSAGES = 500
FAIL_RATE = 0.2
RETRY_BASE = 1.0  # longer than a dispatcher tick, so a retry that ignored its backoff would show
MAX_ATTEMPTS = 10


def _attempt_times(twilio: FakeTwilio) -> dict[str, list[float]]:
    times: dict[str, list[float]] = defaultdict(list)
    for request in twilio.messages + twilio.failures:
        times[request["body"]].append(request["at"])
    return {body: sorted(at) for body, at in times.items()}


def test_twilio_failing_a_fifth_of_requests_delays_messages_with_backoff_and_loses_none(env, tmp_path):
    bodies = seed_due_reminders(MESSAGES)
    worker_log = tmp_path / "worker.log"
    with PrivateRedis(tmp_path / "redis") as broker, FakeTwilio(auth_token=AUTH_TOKEN) as twilio:
        twilio.fail_rate(FAIL_RATE, statuses=(500, 429), seed=20260601)
        process_env = fault_env(env, broker_url=broker.url, home=tmp_path / "svc", twilio=twilio,
                                RETRY_BASE_SECONDS=RETRY_BASE, MAX_ATTEMPTS=MAX_ATTEMPTS)
        beat = start_beat(process_env, log=tmp_path / "beat.log")
        worker = start_worker(process_env, concurrency=2, log=worker_log)
        try:
            assert wait_until(lambda: sent_count() >= MESSAGES, timeout=90, interval=0.5), (
                f"{count_by_status()}\n{log_tail(worker_log)}")
            wait_quiet(twilio)
        finally:
            stop(worker)
            stop(beat)
        tally = Tally.of(twilio, bodies)
        failures = twilio.failures
        times = _attempt_times(twilio)
    with session_scope() as session:
        attempts = dict(session.execute(select(ScheduledMessage.body, ScheduledMessage.attempts)).all())

    retries = len(failures)
    statuses = Counter(f["status"] for f in failures)
    gaps: dict[int, list[float]] = defaultdict(list)
    for at in times.values():
        for failure_number in range(1, len(at)):
            gaps[failure_number].append(at[failure_number] - at[failure_number - 1])
    shortest = {n: round(min(g), 2) for n, g in sorted(gaps.items())}
    print(f"\n{FAIL_RATE:.0%} of requests failed: {tally}; retries {retries} {dict(statuses)}; "
          f"most attempts {max(len(at) for at in times.values())}; shortest gap after failure n: {shortest}")

    assert tally.lost == [] and tally.duplicates == 0
    assert count_by_status() == {MessageStatus.SENT: MESSAGES}
    assert retries > MESSAGES * FAIL_RATE / 2 and set(statuses) == {500, 429}
    assert sum(attempts.values()) == retries, "each failed request is one attempt on its row"
    for failure_number, observed in gaps.items():
        # backoff(): the n-th failure waits between half and all of base * 2**(n-1), jittered.
        floor = RETRY_BASE * 2 ** (failure_number - 1) / 2
        assert min(observed) >= floor, f"retry after failure {failure_number} came {min(observed):.2f}s < {floor}s"


PATIENT = "+6281234567890"
PATIENT_EMAIL = "ayu@example.com"


def _rows() -> list[ScheduledMessage]:
    with session_scope() as session:
        return list(session.scalars(select(ScheduledMessage).order_by(ScheduledMessage.id)))


def _first_sms() -> ScheduledMessage:
    return next(r for r in _rows() if r.step == "first-hours" and r.fallback_of_id is None and r.channel == "sms")


def test_error_21610_opts_the_number_out_is_not_retried_and_later_sms_are_skipped(env, tmp_path):
    add_clinic(quiet_hours="00:00-00:00")
    # Treated three hours ago: the "first hours" SMS (2 h) is due now, the later SMS steps are not yet.
    treated = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0).isoformat()
    enroll(phone=PATIENT, email=PATIENT_EMAIL, treated_at=treated)
    worker_log = tmp_path / "worker.log"
    with (PrivateRedis(tmp_path / "redis") as broker, FakeTwilio(auth_token=AUTH_TOKEN) as twilio,
          FakeSmtp() as smtp):
        twilio.fail_for(PATIENT, status=400, code=21610)
        process_env = fault_env(env, broker_url=broker.url, home=tmp_path / "svc", twilio=twilio,
                                smtp_port=smtp.port)
        beat = start_beat(process_env, log=tmp_path / "beat.log")
        worker = start_worker(process_env, concurrency=2, log=worker_log)
        try:
            assert wait_until(lambda: _first_sms().status == MessageStatus.FAILED, timeout=30), log_tail(worker_log)
            # Every later SMS step comes due now: each must be skipped, none sent.
            now = datetime.now(UTC)
            with session_scope() as session:
                session.execute(update(ScheduledMessage)
                                .where(ScheduledMessage.channel == "sms",
                                       ScheduledMessage.status == MessageStatus.SCHEDULED)
                                .values(due_at=now, fresh_until=now + timedelta(days=1)))
            assert wait_until(lambda: not any(r.status in (MessageStatus.SCHEDULED, MessageStatus.CLAIMED)
                                              for r in _rows()), timeout=30), log_tail(worker_log)
            wait_quiet(twilio)
        finally:
            stop(worker)
            stop(beat)
        to_patient = [r for r in twilio.messages + twilio.failures if r["to"] == PATIENT]
        emails = [m for m in smtp.messages if PATIENT_EMAIL in m["recipients"]]

    failed = _first_sms()
    later_sms = [r for r in _rows() if r.channel == "sms" and r.id != failed.id]
    fallback = [r for r in _rows() if r.fallback_of_id == failed.id]
    with session_scope() as session:
        patient = session.scalar(select(Patient).where(Patient.phone == PATIENT))
    print(f"\n21610: requests to the number {len(to_patient)}, later SMS skipped {len(later_sms)}, "
          f"emails {len(emails)}")
    assert len(to_patient) == 1, "a 21610 is final: no retry, and nothing more to that number"
    assert (failed.status, failed.attempts, failed.error_code) == (MessageStatus.FAILED, 1, "21610")
    assert patient.sms_opted_out_at is not None and patient.sms_opt_out_source == "carrier:21610"
    assert later_sms and all((r.status, r.skip_reason) == (MessageStatus.SKIPPED, "opted_out") for r in later_sms)
    # DESIGN section 4: a permanent SMS failure falls back to email when the patient has one.
    assert [r.status for r in fallback] == [MessageStatus.SENT]
    # The later SMS, skipped because the number opted out, reach the patient by email instead (issue 8).
    copies = [r for r in _rows() if r.fallback_of_id in {s.id for s in later_sms}]
    assert len(copies) == len(later_sms) and all(r.channel == "email" for r in copies)
    assert len(emails) == 2 + len(later_sms)  # the summary, the first-hours advice, and each later text
