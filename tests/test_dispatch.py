"""The dispatcher claims due rows once, delivery re-checks each row, and outcomes are recorded."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from aftercare.channels.console import read_outbox
from aftercare.config import get_settings
from aftercare.db import session_factory, session_scope
from aftercare.models import Clinic, Enrollment, MessageStatus, Patient, ScheduledMessage
from aftercare.schedule.delivery import deliver_batch
from aftercare.schedule.dispatcher import claim_due_messages
from tests.cli_helpers import add_clinic, cli_json, enroll


def _due_enrollment(**extra) -> dict:
    """A patient treated 3 hours ago: the first-hours messages are due now."""
    add_clinic(quiet_hours="00:00-00:00")
    treated = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
    return enroll(treated_at=treated.isoformat(), **extra)


def _statuses(enrollment_id: int) -> dict[str, str]:
    return {r["step"]: r["status"] for r in cli_json("schedule", "list", "--enrollment", str(enrollment_id))}


def _due_count() -> int:
    with session_scope() as session:
        now = datetime.now(UTC)
        rows = session.scalars(select(ScheduledMessage).where(ScheduledMessage.status == "scheduled",
                                                              ScheduledMessage.due_at <= now))
        return len(rows.all())


def test_dispatch_once_sends_every_due_message_and_nothing_else(any_env):
    enrollment = _due_enrollment()
    due = _due_count()
    assert due >= 1
    result = cli_json("dispatch", "--once")
    assert result == {"claimed": due, "sent": due, "failed": 0}
    outbox = read_outbox(get_settings())
    assert len(outbox) == due
    assert all(item["to"] == "+6281234567890" and "Ayu" in item["body"] for item in outbox)
    assert cli_json("dispatch", "--once") == {"claimed": 0, "sent": 0, "failed": 0}
    sent = [s for s, status in _statuses(enrollment["enrollment_id"]).items() if status == "sent"]
    assert len(sent) == due


def test_two_dispatchers_never_claim_the_same_row(any_env):
    _due_enrollment()
    with session_scope() as session:
        # Make many rows due at once to give the two claimers something to fight over.
        session.execute(update(ScheduledMessage).where(ScheduledMessage.status == "scheduled")
                        .values(due_at=datetime.now(UTC) - timedelta(minutes=1),
                                fresh_until=datetime.now(UTC) + timedelta(days=1)))
    claims: list[list[int]] = []
    barrier = threading.Barrier(2)

    def claimer() -> None:
        barrier.wait()
        with session_factory()() as session:
            claims.append(claim_due_messages(session, limit=3, lease_seconds=60).ids)

    threads = [threading.Thread(target=claimer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not set(claims[0]) & set(claims[1])


def test_an_expired_lease_is_claimed_again_and_an_old_claim_sends_nothing(env):
    _due_enrollment()
    with session_factory()() as session:
        first = claim_due_messages(session, limit=100, lease_seconds=60)
    assert first.ids
    later = datetime.now(UTC) + timedelta(seconds=61)
    with session_factory()() as session:
        second = claim_due_messages(session, limit=100, lease_seconds=60, now=later)
    assert sorted(second.ids) == sorted(first.ids)
    stale = deliver_batch(first.ids, first.token)
    assert sum(stale.values()) == 0  # the worker holding the expired claim sends nothing
    fresh = deliver_batch(second.ids, second.token)
    assert fresh["sent"] == len(first.ids)
    assert len(read_outbox(get_settings())) == len(first.ids)


def test_paused_enrollment_sends_nothing_until_resumed(env):
    enrollment = _due_enrollment()
    cli_json("schedule", "pause", str(enrollment["enrollment_id"]))
    assert cli_json("dispatch", "--once")["claimed"] == 0
    cli_json("schedule", "resume", str(enrollment["enrollment_id"]))
    assert cli_json("dispatch", "--once")["sent"] >= 1


def test_opted_out_patient_is_skipped_at_send_time(env):
    enrollment = _due_enrollment()
    with session_scope() as session:
        session.execute(update(Patient).values(sms_opted_out_at=datetime.now(UTC), sms_opt_out_source="test"))
    result = cli_json("dispatch", "--once")
    assert result["sent"] == 0 and result["claimed"] >= 1
    statuses = _statuses(enrollment["enrollment_id"])
    assert "skipped" in statuses.values()
    assert read_outbox(get_settings()) == []


def test_cancel_between_claim_and_send_cancels_the_message(env):
    enrollment = _due_enrollment()
    with session_factory()() as session:
        claim = claim_due_messages(session, limit=100, lease_seconds=60)
    with session_scope() as session:
        session.execute(update(Enrollment).values(status="cancelled"))
    counts = deliver_batch(claim.ids, claim.token)
    assert counts["cancelled"] == len(claim.ids)
    assert read_outbox(get_settings()) == []
    assert set(_statuses(enrollment["enrollment_id"]).values()) >= {"cancelled"}


def test_a_message_that_became_stale_while_held_is_skipped(env):
    _due_enrollment()
    with session_scope() as session:
        session.execute(update(ScheduledMessage).where(ScheduledMessage.status == "scheduled",
                                                       ScheduledMessage.due_at <= datetime.now(UTC))
                        .values(fresh_until=datetime.now(UTC) - timedelta(seconds=1)))
    result = cli_json("dispatch", "--once")
    assert result["sent"] == 0
    with session_scope() as session:
        reasons = set(session.scalars(select(ScheduledMessage.skip_reason)
                                      .where(ScheduledMessage.status == MessageStatus.SKIPPED)))
    assert "stale" in reasons


def test_quiet_hours_push_a_due_reminder_to_the_next_allowed_minute(env):
    enrollment = _due_enrollment()
    with session_scope() as session:
        # Quiet from half an hour ago to half an hour ahead: whatever "now" is, it is quiet.
        now_local = datetime.now(UTC).astimezone(ZoneInfo("Asia/Jakarta"))
        end = (now_local + timedelta(minutes=30)).strftime("%H:%M")
        start = (now_local - timedelta(minutes=30)).strftime("%H:%M")
        session.execute(update(Clinic).values(quiet_start=start, quiet_end=end))
    result = cli_json("dispatch", "--once")
    assert result["sent"] == 0
    rows = cli_json("schedule", "list", "--enrollment", str(enrollment["enrollment_id"]), "--status", "scheduled")
    assert min(datetime.fromisoformat(r["due_at"]) for r in rows) > datetime.now(UTC) + timedelta(minutes=20)
