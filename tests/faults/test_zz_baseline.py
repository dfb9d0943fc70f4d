import time
import pytest
from tests.faults.harness import PrivateRedis, Tally, fault_env, log_tail, seed_due_reminders, sent_count, count_by_status
from tests.fakes.twilio_api import FakeTwilio
from tests.processes import AUTH_TOKEN, start_beat, start_worker, stop, wait_until

@pytest.mark.parametrize("conc,threads,claim,batch", [(2, 8, 2000, 100)])
def test_baseline(env, tmp_path, conc, threads, claim, batch):
    t0 = time.monotonic()
    bodies = seed_due_reminders(5000)
    print("seed", time.monotonic() - t0)
    with PrivateRedis(tmp_path / "redis") as r, FakeTwilio(auth_token=AUTH_TOKEN) as twilio:
        penv = fault_env(env, broker_url=r.url, home=tmp_path / "svc", twilio=twilio, SEND_THREADS=threads, CLAIM_LEASE_SECONDS=300,
                         DISPATCH_CLAIM_LIMIT=claim, DISPATCH_BATCH_SIZE=batch)
        t0 = time.monotonic()
        w = start_worker(penv, concurrency=conc, log=tmp_path / "w.log")
        b = start_beat(penv, log=tmp_path / "b.log")
        try:
            ok = wait_until(lambda: sent_count() >= 5000, timeout=120, interval=0.5)
            print("elapsed", time.monotonic() - t0, ok, count_by_status())
        finally:
            stop(b); stop(w)
        print(Tally.of(twilio, bodies))
        print(log_tail(tmp_path / "w.log", 1500))
