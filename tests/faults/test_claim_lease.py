"""A claim lease that runs out while a live worker still has the row in hand must not make the row go out twice.

The lease is there for dead workers and lost tasks. A slow provider (or a long queue) can make a live worker hold
claimed rows past their lease with no fault at all; the one window for a duplicate (DESIGN section 1) is a worker
dying between the provider's answer and the commit, so here there must be none.
"""

from __future__ import annotations

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
    wait_quiet,
)
from tests.processes import AUTH_TOKEN, start_beat, start_worker, stop, wait_until

pytestmark = pytest.mark.slow

MESSAGES = 40
LEASE_SECONDS = 10
TWILIO_LATENCY = 0.4  # one send thread: the batch takes ~16 s, twice the lease


def test_a_claim_outliving_its_lease_in_a_live_worker_sends_nothing_twice(env, tmp_path):
    bodies = seed_due_reminders(MESSAGES)
    worker_log = tmp_path / "worker.log"
    with PrivateRedis(tmp_path / "redis") as broker, FakeTwilio(auth_token=AUTH_TOKEN) as twilio:
        twilio.latency = TWILIO_LATENCY
        process_env = fault_env(env, broker_url=broker.url, home=tmp_path / "svc", twilio=twilio,
                                CLAIM_LEASE_SECONDS=LEASE_SECONDS, SEND_THREADS=1)
        clock = Stopwatch()
        beat = start_beat(process_env, log=tmp_path / "beat.log")
        worker = start_worker(process_env, concurrency=2, log=worker_log)
        try:
            assert wait_until(lambda: sent_count() >= MESSAGES, timeout=60, interval=0.5), (
                f"{count_by_status()}\n{log_tail(worker_log)}")
            elapsed = clock.elapsed
            wait_quiet(twilio, quiet=2 * TWILIO_LATENCY + 1)  # a second sender, if any, finishes what it took over
        finally:
            stop(worker)
            stop(beat)
        tally = Tally.of(twilio, bodies)
    print(f"\n{MESSAGES} messages, {TWILIO_LATENCY}s per send, {LEASE_SECONDS}s lease: {tally}; {elapsed:.1f}s")
    assert elapsed > LEASE_SECONDS, "the run must outlast the lease, or this test proves nothing"
    assert tally.lost == []
    assert count_by_status() == {MessageStatus.SENT: MESSAGES}
    assert tally.duplicates == 0
