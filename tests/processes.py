"""Real Celery worker and beat processes for end-to-end and fault tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "t" * 32
TWILIO_FROM = "+15005550006"


def service_env(*, database_url: str, broker_url: str, home: Path, twilio_url: str | None = None,
                smtp_port: int | None = None, **extra: object) -> dict[str, str]:
    """The environment production processes read, pointed at the test's databases and fakes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERCARE_")}
    values: dict[str, object] = {
        "DATABASE_URL": database_url, "BROKER_URL": broker_url, "HOME": home, "DISPATCH_INTERVAL": 0.5,
        "PUBLIC_URL": "http://127.0.0.1:8000", "LOG_LEVEL": "INFO", "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "RETRY_BASE_SECONDS": 0.2,
    }
    if twilio_url:
        values.update(SMS_CHANNEL="twilio", TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_FROM=TWILIO_FROM,
                      TWILIO_API_BASE_URL=twilio_url, SMS_RATE_PER_SECOND=5000)
    if smtp_port:
        values.update(EMAIL_CHANNEL="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_port)
    values.update(extra)
    env.update({f"AFTERCARE_{k.upper()}": str(v) for k, v in values.items()})
    env["PYTHONPATH"] = str(ROOT)
    return env


def start_worker(env: dict[str, str], *, concurrency: int = 2, beat: bool = False, name: str = "w1",
                 log: Path | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "celery", "-A", "tasks.app", "worker", "--concurrency", str(concurrency),
               "--loglevel", "WARNING", "-n", f"{name}@%h", "--without-gossip", "--without-mingle",
               "--without-heartbeat"]
    if beat:
        command += ["-B", "--schedule", str(Path(env["AFTERCARE_HOME"]) / f"beat-{name}")]
    return _spawn(command, env, log)


def start_beat(env: dict[str, str], *, name: str = "beat", log: Path | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "celery", "-A", "tasks.app", "beat", "--loglevel", "WARNING",
               "--schedule", str(Path(env["AFTERCARE_HOME"]) / f"schedule-{name}")]
    return _spawn(command, env, log)


def _spawn(command: list[str], env: dict[str, str], log: Path | None) -> subprocess.Popen:
    Path(env["AFTERCARE_HOME"]).mkdir(parents=True, exist_ok=True)
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen, *, kill: bool = False) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def wait_until(condition: Callable[[], bool], *, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
