"""`aftercare web --workers N`: gunicorn worker processes serving signed webhooks the production way, and the thin
request (one INSERT ... ON CONFLICT for the duplicate check, the reads of a routine reply combined)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import event, func, select

from aftercare.db import get_engine, session_scope
from aftercare.models import AuditEntry, Escalation, InboundMessage, ScheduledMessage
from tests.cli_helpers import add_clinic, cli_json, enroll
from tests.conftest import configure
from tests.processes import AUTH_TOKEN, ROOT, service_env, stop, wait_until
from tests.web_helpers import PUBLIC_URL, WebClient, serve_app

PATIENT = "+6281234567890"
DOCTOR = "+6281299990000"
EMERGENCY = "my lip has gone white and it really hurts"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def patient(env, monkeypatch):
    configure(monkeypatch, twilio_auth_token=AUTH_TOKEN, public_url=PUBLIC_URL)
    add_clinic(quiet_hours="00:00-00:00")
    cli_json("oncall", "add", "--clinic", "glow", "--name", "Dr A", "--phone", DOCTOR)
    treated = (datetime.now(UTC) - timedelta(hours=5)).replace(microsecond=0).isoformat()
    return enroll(phone=PATIENT, treated_at=treated)


@pytest.fixture
def workers(patient, env, tmp_path: Path):
    """`aftercare web --workers 2` on a free port, as docker-compose runs it; yields (client, log file)."""
    port, log = _free_port(), tmp_path / "web.log"
    process_env = service_env(database_url=env["database_url"], broker_url="memory://", home=tmp_path / "web-home",
                              PUBLIC_URL=PUBLIC_URL)
    with log.open("ab") as out:
        server = subprocess.Popen([sys.executable, "-m", "cli", "web", "--host", "127.0.0.1", "--port", str(port),
                                   "--workers", "2", "--threads", "4"], cwd=ROOT, env=process_env, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    client = WebClient(base=f"http://127.0.0.1:{port}")
    try:
        assert wait_until(lambda: _answers(client), timeout=60), log.read_text()[-2000:]
        yield client, log
    finally:
        stop(server)


def _answers(client: WebClient) -> bool:
    try:
        return requests.get(client.base + "/healthz", timeout=2).status_code in (200, 503)
    except requests.ConnectionError:
        return False


def _inbound_count() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(InboundMessage))


def test_two_worker_processes_answer_signed_webhooks(workers):
    client, log = workers
    pids: set[str] = set()
    sent = 0
    with ThreadPoolExecutor(max_workers=16) as pool:
        for _ in range(5):  # the kernel spreads connections over both processes; a few rounds make it certain
            answers = list(pool.map(lambda _: client.sms(PATIENT, "a bit swollen today"), range(24)))
            sent += len(answers)
            assert all(a.status_code == 200 and "<Response>" in a.text for a in answers)
            pids = set(re.findall(r"process=(\d+) inbound \d+ handled", log.read_text()))
            if len(pids) >= 2:
                break
    assert len(pids) == 2
    assert _inbound_count() == sent


def test_without_a_shared_metrics_folder_the_operator_is_told_metrics_are_per_process(workers):
    _, log = workers
    said = [line for line in log.read_text().splitlines() if "PROMETHEUS_MULTIPROC_DIR is not set" in line]
    assert len(said) == 1  # once, by the master, not once per worker process


def test_a_duplicate_sid_sent_at_once_to_both_processes_is_handled_once(workers):
    client, _log = workers
    sid = "SM" + uuid.uuid4().hex
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: client.sms(PATIENT, EMERGENCY, sid=sid), range(8)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1  # every retry gets the first answer
    assert _inbound_count() == 1
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Escalation)) == 1


def test_an_emergency_gets_its_safety_answer_and_an_open_escalation_with_its_page_at_once(workers):
    client, _log = workers
    answer = client.sms(PATIENT, EMERGENCY)
    assert answer.status_code == 200
    assert "+622150001234" in answer.text and "emergency" in answer.text.lower()
    with session_scope() as session:  # committed before the answer left: the next tick pages
        escalation = session.scalars(select(Escalation)).one()
        assert escalation.status == "open" and escalation.level == "emergency"
        pages = session.scalars(select(ScheduledMessage).where(ScheduledMessage.kind == "page")).all()
        assert pages and all(p.status == "scheduled" for p in pages)


def test_a_port_in_use_is_one_line_and_starts_nothing(patient, env, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process_env = service_env(database_url=env["database_url"], broker_url="memory://", home=tmp_path / "h")
        result = subprocess.run([sys.executable, "-m", "cli", "web", "--host", "127.0.0.1", "--port", str(port),
                                 "--workers", "2"], cwd=ROOT, env=process_env, capture_output=True, text=True,
                                timeout=60)
    assert result.returncode != 0
    assert "already in use" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_routine_reply_costs_five_statements(patient):
    """One INSERT ... ON CONFLICT for the duplicate check, one read of who sent it, one of what it answers, and
    the inbound row's outcome with its audit entry (it was 13 before the request was made thin)."""
    statements: list[str] = []
    with serve_app() as client:
        client.sms(PATIENT, "all good thanks")  # connections, caches
        engine = get_engine()
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            answer = client.sms(PATIENT, "a bit swollen today")
        finally:
            event.remove(engine, "before_cursor_execute", listener)
    assert answer.status_code == 200
    assert len(statements) <= 5, statements
    assert statements[0].startswith("INSERT INTO inbound_messages") and "ON CONFLICT" in statements[0]


def test_a_retry_gets_the_first_answer_and_writes_nothing_on_either_database(any_env, monkeypatch):
    configure(monkeypatch, twilio_auth_token=AUTH_TOKEN, public_url=PUBLIC_URL)
    add_clinic(quiet_hours="00:00-00:00")
    enroll(phone=PATIENT, treated_at=(datetime.now(UTC) - timedelta(hours=5)).replace(microsecond=0).isoformat())
    sid = "SM" + uuid.uuid4().hex
    with serve_app() as client:
        first = client.sms(PATIENT, "a bit swollen today, is that normal?", sid=sid)
        retry = client.sms(PATIENT, "a bit swollen today, is that normal?", sid=sid)
    assert first.status_code == retry.status_code == 200
    assert first.text == retry.text and "<Message>" in first.text
    assert _inbound_count() == 1
    with session_scope() as session:
        received = select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "inbound.received")
        assert session.scalar(received) == 1
        assert session.scalar(select(InboundMessage.handling)) == "reply"
