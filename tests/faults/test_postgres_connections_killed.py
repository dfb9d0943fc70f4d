"""PostgreSQL connections killed under the worker (a failover, an administrator's pg_terminate_backend): the
worker gets fresh connections and every message is delivered."""

from __future__ import annotations

import psycopg
import pytest

from aftercare.models import MessageStatus
from tests.conftest import PG_ADMIN
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

MESSAGES = 1000
TERMINATIONS = 3
PROCESSES, SEND_THREADS = 2, 2


def terminate_connections(database: str) -> int:
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        killed = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE datname = %s AND pid <> pg_backend_pid()", (database,)).fetchall()
    return sum(1 for (ok,) in killed if ok)


def test_killing_every_database_connection_mid_run_loses_no_message(env, tmp_path):
    bodies = seed_due_reminders(MESSAGES)
    database = env["database_url"].rsplit("/", 1)[1]
    worker_log = tmp_path / "worker.log"
    killed = []
    with PrivateRedis(tmp_path / "redis") as broker, FakeTwilio(auth_token=AUTH_TOKEN) as twilio:
        process_env = fault_env(env, broker_url=broker.url, home=tmp_path / "svc", twilio=twilio,
                                SEND_THREADS=SEND_THREADS)
        clock = Stopwatch()
        beat = start_beat(process_env, log=tmp_path / "beat.log")
        worker = start_worker(process_env, concurrency=PROCESSES, log=worker_log)
        try:
            for round_ in range(1, TERMINATIONS + 1):
                threshold = round_ * MESSAGES // (TERMINATIONS + 1)
                assert wait_until(lambda t=threshold: twilio.count >= t, timeout=60), log_tail(worker_log)
                killed.append(terminate_connections(database))
            assert wait_until(lambda: sent_count() >= MESSAGES, timeout=90, interval=0.5), (
                f"{count_by_status()}\n{log_tail(worker_log)}")
            elapsed = clock.elapsed
            wait_quiet(twilio)
            assert worker.poll() is None, "the worker must survive its connections being killed"
        finally:
            stop(worker)
            stop(beat)
        tally = Tally.of(twilio, bodies)
    print(f"\nterminated {killed} PostgreSQL connections in {TERMINATIONS} rounds: {tally}; {elapsed:.1f}s")
    assert all(n > 0 for n in killed), "each round must have found connections to kill"
    assert tally.lost == []
    assert count_by_status() == {MessageStatus.SENT: MESSAGES}
    # A connection killed between Twilio's answer and the outcome's commit is the one window for a duplicate.
    assert tally.duplicates <= TERMINATIONS * PROCESSES * SEND_THREADS
