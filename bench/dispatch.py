"""Benchmark 1, dispatch: due SMS through a real Celery worker (prefork, Redis, PostgreSQL) to the fake Twilio
API, beside the same worker running one no-op task per message (bench/noop_app.py).

Both workers are warmed up first, and both workloads appear at one instant: our rows become due at a time
set a few seconds after they are inserted, and the no-op tasks are written to a parked Redis list that is
renamed onto the worker's queue in one step. So neither number includes Celery's start-up or the driver's
own publishing, and the ratio compares steady per-message cost.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from celery import Celery

from bench import seed
from bench.common import (
    REDIS_URL,
    ROOT,
    CpuMeter,
    Result,
    env_number,
    fake_twilio,
    fake_twilio_stats,
    in_session,
    is_driver,
    metric,
    pg_database,
    postgres_backend_of,
    private_redis,
    running,
    scratch_home,
    shared_redis,
    wait_for,
)
from tests.processes import service_env

COUNTS = {False: 50_000, True: 1_000}
# Through the whole path first: both children, their send threads and connections (less in a quick run).
WARM_UP = {False: 300, True: 100}
QUEUE = "celery"  # the default queue the production worker consumes
PARKED = "bench:parked"
FINAL = ("sent", "failed", "skipped", "cancelled", "delivered")
# How often the driver looks whether the no-op tasks are done: finer costs CPU the worker under test would use
# (at 10 ms it took 6% of the machine), coarser blurs the end of a short run.
POLL_SECONDS = 0.05


def tuning() -> dict[str, object]:
    """The worker's knobs: AFTERCARE_* from the environment when set, else these benchmark defaults.
    The carrier's per-number limit is set out of the way: it is not what this measures."""
    defaults = {"DISPATCH_INTERVAL": 0.5, "DISPATCH_BATCH_SIZE": 100, "DISPATCH_CLAIM_LIMIT": 2000,
                "SEND_THREADS": 8, "SMS_RATE_PER_SECOND": 100_000, "LOG_LEVEL": "INFO"}
    return {key: os.environ.get(f"AFTERCARE_{key}", value) for key, value in defaults.items()}


def run(*, quick: bool) -> Result:
    count = COUNTS[quick]
    knobs = tuning()
    concurrency = int(env_number("BENCH_WORKER_CONCURRENCY", os.cpu_count() or 2))
    result = Result("dispatch", details={"messages": count, "worker_concurrency": concurrency, "pool": "prefork",
                                         "settings": knobs})
    global REDIS_URL  # the broker of this run: a redis-server of the benchmark's own (bench/common.private_redis)
    with scratch_home() as home, private_redis() as REDIS_URL:
        noop = measure_noop(count, WARM_UP[quick], concurrency=concurrency, home=home, knobs=knobs)
        ours = measure_ours(count, WARM_UP[quick], concurrency=concurrency, home=home, knobs=knobs)
    result.details.update(noop=noop, ours=ours)
    result.add(metric("delivery rate", ours["rate"], "msg/s", at_least=1000))
    result.add(metric("no-op task rate (1 task per message)", noop["rate"], "task/s"))
    result.add(metric("ours / no-op tasks, per message", ours["rate"] / noop["rate"], "x", at_least=1.0))
    result.add(metric("worker CPU per message, ours", ours["worker_cpu_ms_per_message"], "ms"))
    result.add(metric("worker CPU per message, no-op tasks", noop["worker_cpu_ms_per_message"], "ms"))
    result.add(metric("due-to-sent latency p50", ours["latency_p50"], "s"))
    result.add(metric("due-to-sent latency p99", ours["latency_p99"], "s"))
    result.add(metric("messages not sent", ours["not_sent"], at_most=0))
    result.add(metric("duplicate sends", ours["duplicates"], at_most=0))
    return result


# --- the worker ---------------------------------------------------------------------------------------------
def start_worker(app_module: str, env: dict[str, str], *, concurrency: int, home: Path, beat: bool = False
                 ) -> subprocess.Popen:
    """The production worker command (as tests/processes.py runs it); the same flags for both workloads."""
    name = app_module.replace(".", "-")
    command = [sys.executable, "-m", "celery", "-A", app_module, "worker", "--pool", "prefork", "--concurrency",
               str(concurrency), "--loglevel", "WARNING", "-n", f"{name}@%h", "--without-gossip", "--without-mingle",
               "--without-heartbeat"]
    if beat:
        command += ["-B", "--schedule", str(home / f"beat-{name}")]
    log = open(home / f"{name}.log", "ab")  # noqa: SIM115 - closed when the worker ends
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def worker_env(knobs: dict[str, object], home: Path, **values: object) -> dict[str, str]:
    return service_env(database_url=values.pop("database_url", ""), broker_url=REDIS_URL, home=home,
                       **knobs, **values)


# --- the yardstick: one no-op task per message --------------------------------------------------------------
def measure_noop(count: int, warm_up: int, *, concurrency: int, home: Path, knobs: dict[str, object]) -> dict:
    client = redis.Redis.from_url(REDIS_URL)
    template = noop_message_template()
    env = worker_env(knobs, home, database_url="postgresql://unused")
    with running(start_worker("bench.noop_app", env, concurrency=concurrency, home=home)) as worker:
        push_copies(client, QUEUE, template, warm_up)
        wait_for(lambda: queue_drained(client), timeout=60, what="the no-op worker to warm up")
        push_copies(client, PARKED, template, count)
        with CpuMeter({"worker": in_session(worker.pid), "redis": shared_redis, "driver": is_driver}) as meter:
            started = time.monotonic()
            client.rename(PARKED, QUEUE)  # one atomic step: every task is there at once
            finished = wait_for(lambda: queue_drained(client), timeout=max(120, count / 50), interval=POLL_SECONDS,
                                what="the no-op tasks")
        cpu = meter.used()
    seconds = finished - started
    return {"tasks": count, "seconds": round(seconds, 3), "rate": count / seconds, "cpu_seconds": cpu,
            "worker_cpu_ms_per_message": 1000 * cpu["worker"] / count}


def noop_message_template() -> dict:
    """One real Celery message for bench.noop, as the client library writes it to Redis."""
    client = redis.Redis.from_url(REDIS_URL)
    Celery(broker=REDIS_URL).send_task("bench.noop", queue=PARKED)
    message = json.loads(client.rpop(PARKED))
    message["properties"]["delivery_info"] = {"exchange": "", "routing_key": QUEUE}
    return message


def push_copies(client: redis.Redis, key: str, template: dict, count: int) -> None:
    """`count` copies of the message with fresh ids, pipelined: far faster than publishing one by one."""
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        task_id, tag = str(uuid.uuid4()), str(uuid.uuid4())
        message = {**template, "headers": {**template["headers"], "id": task_id, "root_id": task_id},
                   "properties": {**template["properties"], "correlation_id": task_id, "delivery_tag": tag}}
        pipe.lpush(key, json.dumps(message))
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()


def queue_drained(client: redis.Redis) -> bool:
    """Nothing waiting and nothing prefetched: tasks are acknowledged as they start, and a no-op ends at once."""
    waiting, unacked = client.pipeline().llen(QUEUE).hlen("unacked").execute()
    return waiting == 0 and unacked == 0


# --- ours: due rows, claimed by the beat tick, delivered in batches ---------------------------------------------
def measure_ours(count: int, warm_up: int, *, concurrency: int, home: Path, knobs: dict[str, object]) -> dict:
    with pg_database("dispatch") as url, seed.connect(url) as conn, fake_twilio() as twilio:
        seed.disable_triggers(conn)
        clinic_id = seed.add_clinic(conn)
        seed.add_enrolled_patients(conn, clinic_id, max(100, count // 10))
        an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
        seed.add_reminders(conn, clinic_id, warm_up, due_at=an_hour_ago, step_prefix="warm")
        conn.commit()
        env = worker_env(knobs, home, database_url=url, twilio_url=twilio.url)
        with running(start_worker("tasks.app", env, concurrency=concurrency, home=home, beat=True)) as worker:
            wait_for(lambda: pending(conn, "warm") == 0, timeout=90, interval=0.2, what="the warm-up messages")
            groups = {"worker": in_session(worker.pid), "postgres": postgres_backend_of(url),
                      "fake twilio": in_session(twilio.pid), "redis": shared_redis, "driver": is_driver}
            due_at = make_due(conn, clinic_id, count)
            progress = Progress(conn, twilio.url, warm_up + count)
            with CpuMeter(groups) as meter:
                wait_for(progress.all_sent, timeout=max(180, count / 100), interval=0.25, what="the messages sent")
                wait_for(lambda: pending(conn, "bench") == 0, timeout=60, interval=0.25, what="the last outcomes")
            cpu = meter.used()
        return {**outcome(conn, due_at, fake_twilio_stats(twilio.url)), "cpu_seconds": cpu,
                "worker_cpu_ms_per_message": 1000 * cpu["worker"] / count,
                "deepest_task_queue": progress.deepest_queue}


def make_due(conn, clinic_id: int, count: int) -> datetime:
    """Insert the measured rows due a few seconds from now, once the insert has surely committed."""
    due_at = datetime.now(UTC) + timedelta(seconds=2 + count / 20_000)
    seed.add_reminders(conn, clinic_id, count, due_at=due_at, step_prefix="bench")
    conn.commit()
    if datetime.now(UTC) >= due_at:
        raise RuntimeError("seeding took longer than the lead time: latency would include it")
    return due_at


def pending(conn, prefix: str) -> int:
    row = conn.execute("SELECT count(*) FROM scheduled_messages WHERE step LIKE %s AND status <> ALL(%s)",
                       (prefix + "-%", list(FINAL))).fetchone()
    conn.commit()
    return row[0]


class Progress:
    """Watches the fake's counter (another process, so nearly free) and asks the database only now and then,
    since that query competes with the worker for the same cores. Notes the deepest the task queue got."""

    def __init__(self, conn, twilio_url: str, expected: int) -> None:
        self.conn, self.twilio_url, self.expected = conn, twilio_url, expected
        self.redis = redis.Redis.from_url(REDIS_URL)
        self.polls = itertools.count(1)
        self.deepest_queue = 0

    def all_sent(self) -> bool:
        self.deepest_queue = max(self.deepest_queue, self.redis.llen(QUEUE))
        stats = fake_twilio_stats(self.twilio_url)
        if stats["accepted"] + stats["failed"] >= self.expected:
            return True
        return next(self.polls) % 20 == 0 and pending(self.conn, "bench") == 0


def outcome(conn, due_at: datetime, twilio: dict) -> dict:
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status <> 'sent'), "
        "percentile_disc(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM sent_at - due_at)), "
        "percentile_disc(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM sent_at - due_at)), "
        "extract(epoch FROM max(sent_at) - %(due)s::timestamptz), "
        "(SELECT count(*) FROM scheduled_messages WHERE status = 'sent'), "
        "extract(epoch FROM min(claimed_at) - %(due)s::timestamptz), "
        "extract(epoch FROM max(claimed_at) - %(due)s::timestamptz) "
        "FROM scheduled_messages WHERE step LIKE 'bench-%%'", {"due": due_at}).fetchone()
    sent, not_sent, p50, p99, seconds, all_sent, first_claim, last_claim = row
    statuses = dict(conn.execute("SELECT status, count(*) FROM scheduled_messages WHERE step LIKE 'bench-%' "
                                 "GROUP BY status").fetchall())
    return {"sent": sent, "not_sent": not_sent, "statuses": statuses, "seconds": float(seconds),
            "rate": sent / float(seconds), "latency_p50": float(p50), "latency_p99": float(p99),
            "twilio": twilio, "duplicates": twilio["accepted"] - all_sent,
            "first_claim_after_due": float(first_claim), "last_claim_after_due": float(last_claim)}
