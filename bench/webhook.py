"""Benchmark 4, webhook: Twilio-signed inbound SMS replies from enrolled patients, posted to `aftercare web
--workers N` (started the production way: gunicorn, N worker processes, PostgreSQL) at a fixed rate. N is the
core count unless BENCH_WEB_WORKERS says otherwise; the load generator runs on the same cores.

Open loop: request i leaves at start + i/rate whether or not earlier ones were answered, and its latency is
counted from that scheduled time. A server that falls behind therefore shows its queueing in the latency
instead of quietly slowing the load down (coordinated omission).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
from twilio.request_validator import RequestValidator

from bench import seed
from bench.common import (
    ROOT,
    CpuMeter,
    Result,
    in_session,
    is_driver,
    metric,
    percentile,
    pg_database,
    postgres_backend_of,
    python_env,
    running,
    scratch_home,
    wait_for,
)

RATES = (100, 500)
SECONDS = {False: 10.0, True: 1.0}
PATIENTS = 2000
AUTH_TOKEN = "b" * 32
PUBLIC_URL = "https://aftercare.example.org"
TWILIO_TO = "+15005550006"
BODY = "a bit swollen today, is that normal?"
TIMEOUTS = {False: 10.0, True: 3.0}  # seconds; Twilio itself gives up after 15


def web_workers() -> int:
    """How many gunicorn workers serve: BENCH_WEB_WORKERS, else one per core (the production advice)."""
    return int(os.environ.get("BENCH_WEB_WORKERS") or os.cpu_count() or 1)


def web_threads() -> int:
    """Threads per gunicorn worker: BENCH_WEB_THREADS, else `aftercare web`'s default."""
    return int(os.environ.get("BENCH_WEB_THREADS") or 8)


def run(*, quick: bool) -> Result:
    seconds = SECONDS[quick]
    result = Result("webhook", details={"seconds_per_rate": seconds, "patients": PATIENTS, "body": BODY,
                                        "client_timeout": TIMEOUTS[quick], "web_workers": web_workers(),
                                        "web_threads": web_threads(),
                                        "cores": os.cpu_count()})
    with pg_database("webhook") as url, scratch_home() as home:
        with seed.connect(url) as conn:
            seed.add_enrolled_patients(conn, seed.add_clinic(conn), PATIENTS)
        base = f"http://127.0.0.1:{free_port()}"
        with running(start_web(url, base, home)) as server:
            wait_for(lambda: healthy(base), timeout=30, interval=0.1, what="aftercare web to answer /healthz")
            asyncio.run(load(base, signed_requests(50), rate=50, timeout=TIMEOUTS[quick]))  # imports, pools, caches
            for rate in RATES:
                result.details[rate] = measure(base, url, server.pid, rate, seconds, timeout=TIMEOUTS[quick])
        result.details["inbound_rows"] = count_inbound(url)
    for rate in RATES:
        step = result.details[rate]
        result.add(metric(f"p50 at {rate} req/s", step["p50_ms"], "ms"))
        result.add(metric(f"p99 at {rate} req/s", step["p99_ms"], "ms", at_most=50 if rate == 500 else None))
        result.add(metric(f"errors at {rate} req/s", step["errors"], at_most=0))
    return result


def start_web(url: str, base: str, home: Path) -> subprocess.Popen:
    port = base.rsplit(":", 1)[1]
    env = python_env(DATABASE_URL=url, TWILIO_AUTH_TOKEN=AUTH_TOKEN, PUBLIC_URL=PUBLIC_URL, HOME=home,
                     LOG_LEVEL=os.environ.get("AFTERCARE_LOG_LEVEL", "INFO"))
    log = open(home / "web.log", "ab")  # noqa: SIM115 - closed when the server ends
    command = [sys.executable, "-m", "cli", "web", "--host", "127.0.0.1", "--port", port,
               "--workers", str(web_workers()), "--threads", str(web_threads())]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def healthy(base: str) -> bool:
    """The web app answers /healthz (a 503 too: this bench runs no beat, so the tick check fails)."""
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=2) as answer:
            return answer.status == 200
    except urllib.error.HTTPError as error:
        return error.code == 503
    except OSError:
        return False


def signed_requests(count: int) -> list[tuple[bytes, dict[str, str]]]:
    """Bodies and headers signed ahead of time, so the load generator only sends."""
    validator = RequestValidator(AUTH_TOKEN)
    requests = []
    for i in range(count):
        params = {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": "AC" + "0" * 32, "To": TWILIO_TO,
                  "From": seed.patient_phone(1 + i % PATIENTS), "Body": BODY}
        headers = {"X-Twilio-Signature": validator.compute_signature(PUBLIC_URL + "/twilio/sms", params),
                   "Content-Type": "application/x-www-form-urlencoded"}
        requests.append((urlencode(params).encode(), headers))
    return requests


def measure(base: str, url: str, server_pid: int, rate: int, seconds: float, *, timeout: float) -> dict:
    requests = signed_requests(int(rate * seconds))
    groups = {"web server": in_session(server_pid), "postgres": postgres_backend_of(url), "load generator": is_driver}
    started = time.monotonic()
    with CpuMeter(groups) as meter:
        outcomes = asyncio.run(load(base, requests, rate=rate, timeout=timeout))
    elapsed = time.monotonic() - started
    latencies = [latency * 1000 for latency, error in outcomes if error is None]
    errors = [error for _, error in outcomes if error is not None]
    return {"requests": len(outcomes), "achieved_rps": round(len(outcomes) / elapsed, 1),
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "max_ms": max(latencies, default=None), "errors": len(errors), "error_kinds": sorted(set(errors))[:5],
            "cpu_seconds": meter.used()}


async def load(base: str, requests: list[tuple[bytes, dict[str, str]]], *, rate: float,
               timeout: float) -> list[tuple[float, str | None]]:
    """Send request i at start + i/rate (open loop) and return (latency from that time, error or None)."""
    connector = aiohttp.TCPConnector(limit=500)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as http:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05
        tasks = []
        for i, (body, headers) in enumerate(requests):
            scheduled = start + i / rate
            if scheduled > loop.time():
                await asyncio.sleep(scheduled - loop.time())
            tasks.append(asyncio.create_task(post(http, base + "/twilio/sms", body, headers, scheduled)))
        return await asyncio.gather(*tasks)


async def post(http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str],
               scheduled: float) -> tuple[float, str | None]:
    try:
        async with http.post(url, data=body, headers=headers) as response:
            await response.read()
            error = None if response.status == 200 else f"HTTP {response.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        error = type(exc).__name__
    return asyncio.get_running_loop().time() - scheduled, error


def count_inbound(url: str) -> int:
    with seed.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM inbound_messages").fetchone()[0]
