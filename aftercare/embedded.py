"""`aftercare run`: the whole service in one command on embedded defaults, for trying Aftercare locally."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from rich.console import Console

from aftercare.config import Settings, get_settings
from aftercare.db import get_engine, session_scope
from aftercare.migrate import upgrade
from aftercare.models import utcnow

ROOT = Path(__file__).resolve().parent.parent
DEMO_CLINIC = "demo-clinic"


def run_embedded(*, demo: bool) -> None:
    """Web in this process, a Celery worker with beat embedded in a child process; both stop on Ctrl+C or SIGTERM.

    The port is taken first, so "already in use" is one line (AftercareError) before anything else starts."""
    from aftercare.inbound.server import make_server, warm_up

    settings = get_settings()
    console = Console()
    server = make_server(host=settings.web_host, port=settings.web_port)
    get_engine()
    upgrade(settings.effective_database_url)
    if demo:
        seed_demo()
    worker = start_worker(settings)
    warm_up()  # while the worker starts: the first reply need not wait for the lexicons and language model
    _banner(console, settings, demo)
    # SIGTERM (docker stop, systemd, kill) takes the same way out as Ctrl+C: waitress returns, the worker is stopped.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        console.print("stopping worker and beat ...")
        stop_worker(worker)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def start_worker(settings: Settings) -> subprocess.Popen:
    """A Celery worker with beat embedded, on the same broker (filesystem by default, no Redis needed).

    It starts in this process's directory, so relative AFTERCARE_* paths mean the same to both, and in its own
    session, so one Ctrl+C is handled once, here, and reaches beat's process as well (stop_worker)."""
    command = [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-B", "--pool", "threads",
               "--concurrency", "4", "--loglevel", "WARNING", "--without-heartbeat", "--without-gossip",
               "--without-mingle"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(command, env=env, start_new_session=True)


def stop_worker(worker: subprocess.Popen, *, timeout: float = 15) -> None:
    """Warm shutdown of the worker and its beat process (SIGTERM to its process group); SIGKILL after timeout s."""
    if worker.poll() is not None:
        return
    try:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=5)
    except ProcessLookupError:
        pass


def seed_demo() -> None:
    """A demo clinic, an on-call clinician and a patient treated four hours ago, so the warning signs and the first
    red-flag check-in ("... Reply YES or NO") are due now.
    Seeded once: a restart keeps the demo as it was rather than treating Ayu again."""
    from aftercare.clinics import add_clinic, add_oncall, get_clinic
    from aftercare.errors import NotFound
    from aftercare.schedule.enrollment import enroll

    with session_scope() as session:
        try:
            get_clinic(session, DEMO_CLINIC)
            return
        except NotFound:
            pass
        add_clinic(session, name="Demo Aesthetics", slug=DEMO_CLINIC, timezone="Asia/Jakarta",
                   phone="+6281100000001", quiet_hours="00:00-00:00", actor="demo")
        add_oncall(session, clinic_slug=DEMO_CLINIC, name="Dr. Demo", phone="+6281100000002",
                   email="oncall@demo.example", actor="demo")
        enroll(session, clinic_slug=DEMO_CLINIC, first_name="Ayu", phone="+6281100000003",
               email="ayu@demo.example", treatment="dermal-filler",
               treated_at=(utcnow() - timedelta(hours=4, minutes=1)).replace(second=0, microsecond=0), actor="demo")


def _banner(console: Console, settings: Settings, demo: bool) -> None:
    console.rule("[bold]Aftercare is running (embedded defaults)")
    console.print(f"database : {settings.effective_database_url}")
    console.print(f"broker   : embedded filesystem broker in {(settings.home / 'broker').resolve()}")
    console.print(f"outbox   : {(settings.home / 'outbox.jsonl').resolve()}  (`aftercare outbox` lists it)")
    console.print(f"web      : http://{settings.web_host}:{settings.web_port}  (Twilio webhooks, /healthz)")
    if demo:
        console.print("demo     : clinic 'demo-clinic', patient Ayu (+6281100000003), dermal filler (seeded on the first run)")
        console.print("try      : aftercare reply --from +6281100000003 \"my lip has gone white and it really hurts\"")
    console.print("stop     : press Ctrl+C")
    console.rule()
