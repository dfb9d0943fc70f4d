"""A claim lease that runs out while a live worker still has the row in hand must not make the row go out twice.

The lease exists for dead workers and lost tasks. A backlog (a morning burst of reminders behind the carrier's
messages-per-second) makes claimed rows wait longer than the lease with no fault at all; the one window for a
duplicate (DESIGN section 1) is a worker dying between the provider's answer and the commit, so here there
must be none.
"""

from __future__ import annotations

import time

import pytest

from aftercare.models import MessageStatus
from tests.fakes.twilio_api import FakeTwilio
from tests.faults.harness import (
    PrivateRedis,
    Stopwatch,
    Tally,
    count_by_status,
    fault_env,
    log_tail,
    seed_due_reminders,
    sent_count,
)
from tests.processes import AUTH_TOKEN, start_beat, start_worker, stop, wait_until

pytestmark = pytest.mark.slow

MESSAGES = 2500
LEASE_SECONDS = 10
RATE_PER_SECOND = 150  # the shared per-sender limit makes the backlog ~17 s, longer than the lease, on any machine


def test_a_backlog_longer_than_the_claim_lease_sends_nothing_twice(env, tmp_path):
    bodies = seed_due_reminders(MESSAGES)
    worker_log = tmp_path / "worker.log"
    with PrivateRedis(tmp_path / "redis") as broker, FakeTwilio(auth_token=AUTH_TOKEN) as twilio:
        process_env = fault_env(env, broker_url=broker.url, home=tmp_path / "svc", twilio=twilio,
                                CLAIM_LEASE_SECONDS=LEASE_SECONDS, SMS_RATE_PER_SECOND=RATE_PER_SECOND)
        clock = Stopwatch()
        beat = start_beat(process_env, log=tmp_path / "beat.log")
        worker = start_worker(process_env, concurrency=2, log=worker_log)
        try:
            assert wait_until(lambda: sent_count() >= MESSAGES, timeout=90, interval=0.5), (
                f"{count_by_status()}\n{log_tail(worker_log)}")
            elapsed = clock.elapsed
            time.sleep(2)
        finally:
            stop(worker)
            stop(beat)
        tally = Tally.of(twilio, bodies)
    print(f"\nbacklog of {MESSAGES} at {RATE_PER_SECOND}/s with a {LEASE_SECONDS}s lease: {tally}; {elapsed:.1f}s")
    assert elapsed > LEASE_SECONDS, "the run must outlast the lease, or this test proves nothing"
    assert tally.lost == []
    assert count_by_status() == {MessageStatus.SENT: MESSAGES}
    assert tally.duplicates == 0
