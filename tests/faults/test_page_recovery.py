"""A page claimed by a worker that dies reaches the on-call clinician within a minute (issue 11): the broker hands
the batch back at once when one worker process dies (acks_late + reject_on_worker_lost), and the page's own short
lease (AFTERCARE_PAGE_LEASE_SECONDS) brings it back when the whole worker is gone. Neither waits out the claim
lease of reminders (set to 300 s here), and the page goes exactly once."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aftercare.db import session_scope
from aftercare.inbound.handling import handle_inbound_sms
from tests.cli_helpers import add_clinic, cli_json, enroll
from tests.fakes.twilio_api import FakeTwilio
from tests.faults.harness import PrivateRedis, fault_env, log_tail, wait_quiet
from tests.processes import AUTH_TOKEN, start_beat, start_worker, stop, wait_until

pytestmark = pytest.mark.slow

PATIENT = "+6281234567890"
DOCTOR = "+6281100000001"
EMERGENCY = "my lip has gone white and it really hurts"


def _raise_emergency() -> None:
    add_clinic(quiet_hours="00:00-00:00")
    cli_json("oncall", "add", "--clinic", "glow", "--name", "Dr A", "--phone", DOCTOR)
    enroll(phone=PATIENT, treated_at=(datetime.now(UTC) - timedelta(minutes=5)).replace(microsecond=0).isoformat())
    with session_scope() as session:
        outcome = handle_inbound_sms(session, sid="SMpage" + "0" * 28, from_number=PATIENT, to_number=None,
                                     body=EMERGENCY)
    assert outcome.level == "emergency"


def _pages(twilio: FakeTwilio) -> list[dict]:
    return [m for m in twilio.messages if m["to"] == DOCTOR]


def _children(pid: int) -> list[int]:
    """The worker's pool processes (their parent is the worker's main process)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return found


def _recovery(env, tmp_path, *, kill_whole_worker: bool, **settings: object) -> tuple[float, FakeTwilio, str]:
    """Raise an emergency, let the worker take its page SMS to a Twilio that never answers, kill the worker's
    pool process (or the whole worker, then start a new one), and time until the page is accepted."""
    _raise_emergency()
    worker_log = tmp_path / "worker.log"
    with PrivateRedis(tmp_path / "redis") as broker, FakeTwilio(auth_token=AUTH_TOKEN) as twilio:
        twilio.swallow_next(1)  # the first try of the page is in flight when its worker dies
        process_env = fault_env(env, broker_url=broker.url, home=tmp_path / "svc", twilio=twilio,
                                CLAIM_LEASE_SECONDS=300, **settings)
        beat = start_beat(process_env, log=tmp_path / "beat.log")
        worker = start_worker(process_env, concurrency=1, log=worker_log)
        try:
            assert wait_until(lambda: twilio.swallowed, timeout=60), log_tail(worker_log)
            if kill_whole_worker:
                stop(worker, kill=True)
                killed = time.monotonic()
                worker = start_worker(process_env, concurrency=1, log=worker_log)
            else:
                for child in _children(worker.pid):
                    os.kill(child, signal.SIGKILL)
                killed = time.monotonic()
            assert wait_until(lambda: _pages(twilio), timeout=90, interval=0.1), log_tail(worker_log)
            elapsed = time.monotonic() - killed
            wait_quiet(twilio)
        finally:
            stop(worker, kill=True)
            stop(beat)
    return elapsed, twilio, log_tail(worker_log)


def test_a_page_whose_worker_process_died_is_handed_back_at_once(env, tmp_path):
    elapsed, twilio, log = _recovery(env, tmp_path, kill_whole_worker=False, PAGE_LEASE_SECONDS=60)
    print(f"\npage sent {elapsed:.1f}s after its worker process was killed")
    # Well inside the page's own 60 s lease: the broker gave the task back, nobody waited for a lease.
    assert elapsed < 20, log
    assert len(_pages(twilio)) == 1


def test_a_page_whose_whole_worker_died_goes_again_within_a_minute(env, tmp_path):
    elapsed, twilio, log = _recovery(env, tmp_path, kill_whole_worker=True)  # the default page lease
    print(f"\npage sent {elapsed:.1f}s after the whole worker was killed")
    assert elapsed <= 60, log
    assert len(_pages(twilio)) == 1
