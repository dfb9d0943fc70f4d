"""More processes on the same Redis and PostgreSQL (DESIGN section 8): two beats and three workers at once send
every message exactly once. Claims are row locks with SKIP LOCKED, so overlapping ticks never share a row."""

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

MESSAGES = 1200


def test_two_beats_and_three_workers_send_every_message_exactly_once(env, tmp_path):
    bodies = seed_due_reminders(MESSAGES)
    with PrivateRedis(tmp_path / "redis") as broker, FakeTwilio(auth_token=AUTH_TOKEN) as twilio:
        # The default lease: with no fault, nothing may depend on a lease running out.
        process_env = fault_env(env, broker_url=broker.url, home=tmp_path / "svc", twilio=twilio,
                                CLAIM_LEASE_SECONDS=300, DISPATCH_BATCH_SIZE=50)
        clock = Stopwatch()
        processes = [start_beat(process_env, name=f"beat{n}", log=tmp_path / f"beat{n}.log") for n in (1, 2)]
        processes += [start_worker(process_env, concurrency=1, name=f"w{n}", log=tmp_path / f"w{n}.log")
                      for n in (1, 2, 3)]
        try:
            assert wait_until(lambda: sent_count() >= MESSAGES, timeout=90, interval=0.5), (
                f"{count_by_status()}\n{log_tail(tmp_path / 'w1.log')}")
            elapsed = clock.elapsed
            wait_quiet(twilio)
            alive = [p.poll() is None for p in processes]
        finally:
            for process in processes:
                stop(process)
        tally = Tally.of(twilio, bodies)
    print(f"\n2 beats + 3 workers: {tally}; {elapsed:.1f}s")
    assert all(alive)
    assert tally.lost == [] and tally.duplicates == 0
    assert count_by_status() == {MessageStatus.SENT: MESSAGES}
