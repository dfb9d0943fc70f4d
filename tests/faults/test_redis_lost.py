"""Redis carries only work that is due now (DESIGN section 1): flushing it, or losing it with a restart, in the
middle of a run delays messages until their claim lease runs out, and loses none."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from aftercare.models import MessageStatus
from tests.fakes.twilio_api import FakeTwilio
from tests.faults.harness import (
    PrivateRedis,
    Stopwatch,
    Supervisor,
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

MESSAGES = 1000
# Small batches: most of the claimed work waits in Redis rather than in the worker's prefetch buffer.
BATCH_SIZE = 25


def _run_with_fault(env, tmp_path, fault: Callable[[PrivateRedis], None]) -> tuple[Tally, float, int, int]:
    bodies = seed_due_reminders(MESSAGES)
    worker_log = tmp_path / "worker.log"
    with PrivateRedis(tmp_path / "redis") as broker, FakeTwilio(auth_token=AUTH_TOKEN) as twilio:
        process_env = fault_env(env, broker_url=broker.url, home=tmp_path / "svc", twilio=twilio,
                                DISPATCH_BATCH_SIZE=BATCH_SIZE)
        clock = Stopwatch()
        beat = Supervisor(lambda: start_beat(process_env, log=tmp_path / "beat.log"))
        worker = Supervisor(lambda: start_worker(process_env, concurrency=2, log=worker_log))
        try:
            assert wait_until(lambda: twilio.count >= MESSAGES // 4, timeout=60), log_tail(worker_log)
            queued = broker.client().llen("celery")
            assert queued > 0, "claimed work must be waiting in Redis when it is lost"
            fault(broker)
            assert wait_until(lambda: worker.check() and beat.check() and sent_count() >= MESSAGES, timeout=90,
                              interval=0.5), (
                f"{count_by_status()}\n{log_tail(worker_log)}")
            elapsed = clock.elapsed
            wait_quiet(twilio)
        finally:
            stop(worker.process)
            stop(beat.process)
        return Tally.of(twilio, bodies), elapsed, queued, worker.restarts + beat.restarts


def test_flushing_redis_in_the_middle_of_a_run_loses_no_message(env, tmp_path):
    tally, elapsed, queued, restarts = _run_with_fault(env, tmp_path, lambda broker: broker.flushall())
    print(f"\nFLUSHALL after {MESSAGES // 4} sends, {queued} delivery tasks queued: {tally}; "
          f"processes restarted {restarts}; {elapsed:.1f}s")
    assert tally.lost == []
    assert count_by_status() == {MessageStatus.SENT: MESSAGES}
    assert tally.duplicates == 0  # no worker died: there is no window for a duplicate


def _restart(broker: PrivateRedis) -> None:
    broker.kill()
    time.sleep(2)
    broker.start()


def test_restarting_redis_in_the_middle_of_a_run_loses_no_message(env, tmp_path):
    tally, elapsed, queued, restarts = _run_with_fault(env, tmp_path, _restart)
    print(f"\nRedis killed and restarted empty after {MESSAGES // 4} sends, {queued} delivery tasks queued: "
          f"{tally}; processes restarted {restarts}; {elapsed:.1f}s")
    assert tally.lost == []
    assert count_by_status() == {MessageStatus.SENT: MESSAGES}
    assert tally.duplicates == 0
