"""SIGKILL the worker again and again during a 5,000-message run: nothing is lost, and only a message that was
on its way to Twilio when its worker died may go out twice (DESIGN section 1)."""

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

MESSAGES = 5000
KILLS = 5
PROCESSES = 2  # celery --concurrency
SEND_THREADS = 2  # sends in flight inside each process
IN_FLIGHT = PROCESSES * SEND_THREADS  # the worker's concurrency: what one SIGKILL can cut short after Twilio accepted


def test_killing_the_worker_five_times_loses_nothing_and_duplicates_at_most_what_was_in_flight(env, tmp_path):
    bodies = seed_due_reminders(MESSAGES)
    worker_log = tmp_path / "worker.log"
    with PrivateRedis(tmp_path / "redis") as broker, FakeTwilio(auth_token=AUTH_TOKEN) as twilio:
        process_env = fault_env(env, broker_url=broker.url, home=tmp_path / "svc", twilio=twilio,
                                SEND_THREADS=SEND_THREADS)
        clock = Stopwatch()
        beat = start_beat(process_env, log=tmp_path / "beat.log")
        worker = start_worker(process_env, concurrency=PROCESSES, log=worker_log)
        kill_times = []
        try:
            for kill in range(1, KILLS + 1):
                # Spread the kills over the run, each one while messages are streaming out.
                threshold = kill * MESSAGES // (KILLS + 2)
                assert wait_until(lambda t=threshold: twilio.count >= t, timeout=60), log_tail(worker_log)
                stop(worker, kill=True)
                kill_times.append(round(clock.elapsed, 1))
                worker = start_worker(process_env, concurrency=PROCESSES, log=worker_log)
            assert wait_until(lambda: sent_count() >= MESSAGES, timeout=120, interval=0.5), (
                f"{count_by_status()}\n{log_tail(worker_log)}")
            elapsed = clock.elapsed
            wait_quiet(twilio)  # a few more ticks: nothing more may go out
        finally:
            stop(worker, kill=True)
            stop(beat)
        tally = Tally.of(twilio, bodies)
    print(f"\nworker SIGKILLed {KILLS} times (at {kill_times} s); {tally}; "
          f"allowed duplicates {KILLS} kills x {IN_FLIGHT} in flight = {KILLS * IN_FLIGHT}; {elapsed:.1f}s")
    assert tally.lost == []
    assert count_by_status() == {MessageStatus.SENT: MESSAGES}
    assert tally.duplicates <= KILLS * IN_FLIGHT
