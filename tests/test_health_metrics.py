"""Telling whether reminders are flowing: the tick's heartbeat, /healthz, the "paged" audit, /metrics and logs."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from aftercare.config import get_settings
from aftercare.db import session_scope
from aftercare.health import TICK, record_heartbeat
from aftercare.logs import configure_logging
from aftercare.migrate import upgrade
from aftercare.models import AuditEntry, Enrollment, Escalation, Heartbeat, MessageKind, ReviewItem, ScheduledMessage
from aftercare.schedule.tick import dispatch_once
from tests.cli_helpers import add_clinic, cli_json, enroll
from tests.conftest import ROOT, configure
from tests.processes import AUTH_TOKEN
from tests.provider_helpers import real_providers
from tests.web_helpers import PUBLIC_URL, serve_app

PATIENT = "+6281234567890"
DOCTOR = "+6281100000001"
M = ScheduledMessage


def _hours_ago(hours: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).replace(microsecond=0).isoformat()


@pytest.fixture
def clinic(env, monkeypatch):
    configure(monkeypatch, twilio_auth_token=AUTH_TOKEN, public_url=PUBLIC_URL)
    add_clinic(quiet_hours="00:00-00:00")
    cli_json("oncall", "add", "--clinic", "glow", "--name", "Dr A", "--phone", DOCTOR)
    return enroll(phone=PATIENT, treated_at=_hours_ago(3))


def _healthz(web) -> tuple[int, dict]:
    answer = requests.get(web.base + "/healthz", timeout=10)
    return answer.status_code, answer.json()


def _set_heartbeat(seconds_ago: float) -> None:
    with session_scope() as session:
        record_heartbeat(session, TICK, details={}, now=datetime.now(UTC) - timedelta(seconds=seconds_ago))


def _metrics(web) -> dict[str, list]:
    """{sample name: [(labels, value), ...]} from /metrics, parsed as Prometheus parses it."""
    answer = requests.get(web.base + "/metrics", timeout=10)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def _value(samples: dict[str, list], name: str, **labels: str) -> float:
    return sum(value for found, value in samples.get(name, []) if all(found.get(k) == v for k, v in labels.items()))


# --- The heartbeat -------------------------------------------------------------------------------------------

def test_each_tick_records_its_heartbeat_on_both_databases(any_env):
    add_clinic(quiet_hours="00:00-00:00")
    enroll(phone=PATIENT, treated_at=_hours_ago(3))
    before = datetime.now(UTC)
    first = dispatch_once()
    with session_scope() as session:
        beat = session.get(Heartbeat, TICK)
        assert beat.at >= before and beat.details["claimed"] == first["claimed"] > 0
    dispatch_once()  # the same row again, not a second one (nor an error)
    with session_scope() as session:
        again = session.get(Heartbeat, TICK)
        assert again.at >= beat.at and again.details["claimed"] == 0
        assert session.scalar(select(Heartbeat.name).where(Heartbeat.name != TICK)) is None


# --- /healthz ------------------------------------------------------------------------------------------------

def test_healthz_fails_until_the_first_tick_then_passes(clinic):
    with serve_app() as web:
        status, body = _healthz(web)
        assert status == 503 and body["failed"] == ["tick"] and body["checks"]["tick"] == "no tick yet"
        assert body["checks"]["schema"] == "ok" and body["checks"]["database"] == "ok"
        cli_json("dispatch", "--once")
        status, body = _healthz(web)
        assert status == 200 and body["status"] == "ok" and body["failed"] == []
        assert body["dispatcher_lag_seconds"] == 0 and body["last_tick_seconds_ago"] < 60


def test_a_health_check_writes_no_log_line_at_info(clinic, caplog):
    """A load balancer asks every few seconds: the schema check must not log alembic's chatter each time."""
    from aftercare.logs import configure_logging

    configure_logging("INFO")
    with serve_app() as web, caplog.at_level(logging.INFO):
        _healthz(web)
        _healthz(web)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == []


@pytest.mark.parametrize(("seconds_ago", "limit", "healthy"), [(121, None, False), (3600, None, False),
                                                               (100, None, True), (500, "600", True),
                                                               (61, "60", False)])
def test_healthz_fails_when_the_beat_stopped_ticking(clinic, monkeypatch, seconds_ago, limit, healthy):
    if limit:
        configure(monkeypatch, health_tick_seconds=limit)
    cli_json("dispatch", "--once")  # nothing due afterwards: only the tick can fail
    _set_heartbeat(seconds_ago)
    with serve_app() as web:
        status, body = _healthz(web)
    assert (status, body["failed"]) == ((200, []) if healthy else (503, ["tick"]))
    assert body["last_tick_seconds_ago"] >= seconds_ago


def test_healthz_fails_when_a_due_message_waits_too_long_and_says_the_lag(clinic, monkeypatch):
    cli_json("dispatch", "--once")
    enroll(phone="+6281234567899", treated_at=_hours_ago(3), first_name="Sari")  # due now, not yet claimed
    with session_scope() as session:
        session.execute(update(M).where(M.status == "scheduled", M.due_at <= datetime.now(UTC))
                        .values(due_at=datetime.now(UTC) - timedelta(seconds=400)))
    _set_heartbeat(1)
    with serve_app() as web:
        status, body = _healthz(web)
        assert status == 503 and body["failed"] == ["lag"]
        assert 400 <= body["dispatcher_lag_seconds"] < 460
        assert _value(_metrics(web), "aftercare_dispatcher_lag_seconds") >= 400
        configure(monkeypatch, health_max_lag_seconds=900)
    with serve_app() as web:
        assert _healthz(web)[0] == 200


def test_a_paused_enrollment_is_not_dispatcher_lag(clinic):
    cli_json("dispatch", "--once")
    other = enroll(phone="+6281234567898", treated_at=_hours_ago(3), first_name="Dewi")
    with session_scope() as session:
        session.get(Enrollment, other["enrollment_id"]).status = "paused"
        session.execute(update(M).where(M.enrollment_id == other["enrollment_id"], M.status == "scheduled")
                        .values(due_at=datetime.now(UTC) - timedelta(hours=2)))
    _set_heartbeat(1)
    with serve_app() as web:
        status, body = _healthz(web)
    assert status == 200 and body["dispatcher_lag_seconds"] == 0


@pytest.mark.parametrize("revision", ["0007", "0005", None])
def test_healthz_fails_when_the_schema_is_not_at_head(env, monkeypatch, tmp_path, revision):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    if revision:
        upgrade(url, revision)
    configure(monkeypatch, database_url=url)
    with serve_app() as web:
        status, body = _healthz(web)
    assert status == 503 and body["failed"] == ["schema"] and "aftercare db upgrade" in body["checks"]["schema"]
    if revision:
        assert revision in body["checks"]["schema"] and "0008" in body["checks"]["schema"]
    else:
        assert body["checks"]["schema"].startswith("not initialised")


def test_healthz_says_when_the_database_is_unreachable(env, monkeypatch):
    configure(monkeypatch, database_url="postgresql://nobody:secret-pw@127.0.0.1:1/aftercare")
    with serve_app() as web:
        answer = requests.get(web.base + "/healthz", timeout=30)
    assert answer.status_code == 503 and answer.json()["failed"] == ["database"]
    assert "secret-pw" not in answer.text and "nobody" not in answer.text


# --- "paged" means sent --------------------------------------------------------------------------------------

def _actions(subject_type: str, subject_id: int) -> list[str]:
    with session_scope() as session:
        return list(session.scalars(select(AuditEntry.action).where(
            AuditEntry.subject_type == subject_type, AuditEntry.subject_id == subject_id).order_by(AuditEntry.id)))


def test_paged_is_audited_when_the_provider_took_the_page_not_when_it_was_queued(env, monkeypatch):
    with real_providers(monkeypatch, retry_base_seconds=60) as (twilio, _smtp):
        add_clinic(quiet_hours="00:00-00:00")
        cli_json("oncall", "add", "--clinic", "glow", "--name", "Dr A", "--phone", DOCTOR)
        enroll(phone=PATIENT, treated_at=_hours_ago(3))
        escalation_id = cli_json("reply", "--from", PATIENT, "my lip has gone white and it really hurts")[
            "escalation_id"]
        assert _actions("escalation", escalation_id) == ["escalation.opened", "escalation.page_queued"]
        twilio.fail_next(1, status=500)  # the page is refused once: nobody has been paged yet
        dispatch_once()
        assert "escalation.paged" not in _actions("escalation", escalation_id)
        with session_scope() as session:
            session.execute(update(M).where(M.kind == MessageKind.PAGE, M.status == "scheduled")
                            .values(due_at=datetime.now(UTC)))
        dispatch_once()
        assert twilio.wait_for(1)
        assert _actions("escalation", escalation_id) == ["escalation.opened", "escalation.page_queued",
                                                         "escalation.paged"]
        with session_scope() as session:
            paged = session.scalar(select(AuditEntry).where(AuditEntry.action == "escalation.paged"))
            page = session.get(M, paged.details["message_id"])
            assert page.status == "sent" and page.provider_id and paged.details["channel"] == "sms"
            assert paged.at >= page.sent_at


def test_a_review_page_is_audited_as_queued_then_as_paged_once_sent(clinic):
    review_id = cli_json("reply", "--from", PATIENT, "the thing from yesterday is doing the weird thing")["review_id"]
    with session_scope() as session:
        session.get(ReviewItem, review_id).due_at = datetime.now(UTC) - timedelta(minutes=1)
    dispatch_once()
    assert _actions("review", review_id)[-2:] == ["review.page_queued", "review.paged"]


# --- /metrics ------------------------------------------------------------------------------------------------

def test_metrics_count_messages_escalations_reviews_from_the_database(clinic):
    cli_json("reply", "--from", PATIENT, "my lip has gone white and it really hurts")
    cli_json("reply", "--from", "+6281234567000", "can I dye my hair this weekend?")
    with serve_app() as web:
        samples = _metrics(web)
    with session_scope() as session:
        scheduled_sms = session.scalar(select(M.id).where(M.status == "scheduled", M.channel == "sms").limit(1))
        levels = {item.level or "none" for item in session.scalars(select(ReviewItem))}
    assert scheduled_sms and _value(samples, "aftercare_messages", status="scheduled", channel="sms") > 0
    assert _value(samples, "aftercare_open_escalations", level="emergency") == 1
    assert sum(_value(samples, "aftercare_open_review_items", level=level) for level in levels) == 1
    assert "aftercare_dispatcher_lag_seconds" in samples


def test_metrics_time_reply_to_page_and_page_to_ack_and_count_triage_and_webhooks(clinic):
    with serve_app() as web:
        before = _metrics(web)
        assert web.sms(PATIENT, "my lip has gone white and it really hurts").status_code == 200
        assert web.sms("+6281234567001", "all good thanks").status_code == 200
        dispatch_once()  # the page is sent
        with session_scope() as session:
            escalation = session.scalar(select(Escalation))
        cli_json("escalations", "ack", str(escalation.id), "--by", "Dr A")
        after = _metrics(web)

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert grew("aftercare_triage_total", level="emergency") == 1
    assert grew("aftercare_triage_total") == 2
    assert grew("aftercare_webhook_seconds_count", endpoint="/twilio/sms") == 2
    assert grew("aftercare_reply_to_page_seconds_count", level="emergency") == 1
    assert grew("aftercare_page_to_ack_seconds_count", level="emergency") == 1
    assert grew("aftercare_deliveries_total", outcome="sent") >= 1


_OBSERVE = """
import sys
from aftercare import metrics
metrics.count_triage(sys.argv[1])
"""

_SCRAPE = """
from aftercare.metrics import exposition
print(exposition()[0].decode())
"""


def test_metrics_add_up_across_processes_with_a_multiprocess_dir(clinic, tmp_path):
    folder = tmp_path / "prometheus"
    folder.mkdir()
    child_env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    for level in ("urgent", "urgent", "emergency"):  # three processes, as three web workers
        subprocess.run([sys.executable, "-c", _OBSERVE, level], cwd=ROOT, env=child_env, check=True, timeout=60)
    scrape = subprocess.run([sys.executable, "-c", _SCRAPE], cwd=ROOT, env=child_env, check=True, timeout=60,
                            capture_output=True, text=True).stdout
    samples = {(s.name, s.labels.get("level")): s.value
               for family in text_string_to_metric_families(scrape) for s in family.samples}
    assert samples[("aftercare_triage_total", "urgent")] == 2
    assert samples[("aftercare_triage_total", "emergency")] == 1
    assert ("aftercare_messages", None) in samples and ("aftercare_dispatcher_lag_seconds", None) in samples


# --- Logs ----------------------------------------------------------------------------------------------------

class LogBuffer(io.StringIO):
    def configure(self, **options: str) -> None:
        """configure_logging(**options), its handler writing here instead of stderr."""
        configure_logging(**options)
        for handler in logging.getLogger().handlers:
            if getattr(handler, "_aftercare", False):
                handler.setStream(self)


@pytest.fixture
def logged():
    """A buffer our logging can be configured into; the root logger as it was afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield LogBuffer()
    root.handlers[:] = handlers
    root.setLevel(level)


def _json_lines(buffer: LogBuffer) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_json_logs_are_one_object_per_event_without_phone_or_email(logged, env, monkeypatch):
    configure(monkeypatch, log_format="json")
    logged.configure()
    log = logging.getLogger("aftercare.test")
    log.warning("reply from %s (%s) refused", "+6281234567890", "ayu.private@example.com")
    try:
        raise ValueError("bad number +6281100000001")
    except ValueError:
        log.exception("failed for %s", "dr@glow.example")
    lines = _json_lines(logged)
    assert len(lines) == 2
    assert lines[0]["level"] == "WARNING" and lines[0]["logger"] == "aftercare.test"
    assert lines[0]["message"] == "reply from [phone] ([email]) refused"
    assert "ValueError" in lines[1]["exc"]
    text = logged.getvalue()
    for secret in ("6281234567890", "ayu.private", "6281100000001", "dr@glow"):
        assert secret not in text


def test_text_logs_stay_on_one_line_per_event(logged, env):
    logged.configure(fmt="text")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("aftercare.test").exception("it broke")
    lines = logged.getvalue().splitlines()
    assert len(lines) == 1 and "level=ERROR" in lines[0] and "RuntimeError: boom" in lines[0]


def test_a_celery_tasks_log_lines_carry_its_task_id(logged, env, monkeypatch):
    from celery import Celery

    configure(monkeypatch, log_format="json")
    logged.configure()
    app = Celery("health-test", set_as_current=False)
    app.conf.task_always_eager = True

    @app.task(name="tests.log_something")
    def log_something() -> None:
        logging.getLogger("aftercare.test").info("inside a task")

    result = log_something.apply()
    logging.getLogger("aftercare.test").info("outside a task")
    inside, outside = _json_lines(logged)
    assert inside["task_id"] == result.id and inside["task"] == "tests.log_something"
    assert "task_id" not in outside


def test_per_tick_lines_are_debug_not_info(logged, clinic):
    logged.configure(level="INFO", fmt="json")
    dispatch_once()
    dispatch_once()
    assert not [line for line in _json_lines(logged) if line["logger"].startswith("aftercare.schedule")]
    assert logging.getLogger("celery.app.trace").getEffectiveLevel() == logging.WARNING
    logged.configure(level="DEBUG", fmt="json")
    dispatch_once()
    messages = [line["message"] for line in _json_lines(logged)]
    assert any(message.startswith("tick:") for message in messages)
    assert get_settings().log_format == "text"  # the default
