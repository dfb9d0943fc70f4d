"""The dispatcher claims due rows once, delivery re-checks each row, and outcomes are recorded."""

from __future__ import annotations

import threading
import time as time_module
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, text, update

from aftercare.channels.console import read_outbox
from aftercare.config import get_settings
from aftercare.db import get_engine, session_factory, session_scope
from aftercare.models import (
    Clinic,
    Enrollment,
    Escalation,
    MessageStatus,
    Patient,
    PendingStatus,
    ScheduledMessage,
)
from aftercare.schedule.delivery import deliver_batch, renew_lease
from aftercare.schedule.dispatcher import claim_due_messages
from aftercare.schedule.outcomes import SentRecorder
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
    enrollment = _due_enrollment(treatment="mesotherapy")  # its first-hours text is routine, not safety-critical
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


# Safety-critical steps and quiet hours ---------------------------------------------------------------------


def _zone_where_it_is_now(hour: int, minute: int) -> tuple[str, datetime]:
    """An IANA zone (Etc/GMT-N, a whole-hour offset) whose local time now is within the hour from hour:minute,
    and that local time: lets a test run "at 21:30" on the real clock that dispatch uses."""
    now = datetime.now(UTC)
    target = hour if now.minute >= minute else hour + 1
    offset = (target - now.hour) % 24
    offset = offset - 24 if offset > 14 else offset  # Etc/GMT zones run from -12 to +14
    name = f"Etc/GMT{-offset:+d}"  # POSIX style: Etc/GMT-7 is UTC+7
    return name, now.astimezone(ZoneInfo(name))


def _steps(enrollment_id: int) -> dict[str, dict]:
    return {r["step"]: r for r in cli_json("schedule", "list", "--enrollment", str(enrollment_id))}


def test_an_evening_filler_treatment_gets_its_warning_signs_that_evening(env):
    zone, local_now = _zone_where_it_is_now(21, 30)
    assert time(21, 30) <= local_now.time() <= time(22, 30)
    add_clinic(timezone=zone, quiet_hours="21:00-08:00")
    # An evening treatment, at about 19:30 local: its first-hours text fell due a minute ago, at about 21:30.
    treated = local_now - timedelta(hours=2, minutes=1)
    enrollment = enroll(treated_at=treated.isoformat())  # no email: only the first-hours text is due now
    steps = _steps(enrollment["enrollment_id"])
    assert steps["first-hours"]["safety"] is True and steps["first-hours"]["red_flag"] is None
    due = datetime.fromisoformat(steps["first-hours"]["due_at"])
    assert timedelta(0) <= due - (treated + timedelta(hours=2)) < timedelta(minutes=2)  # tonight, not at 08:00
    result = cli_json("dispatch", "--once")
    assert result == {"claimed": 1, "sent": 1, "failed": 0}  # sent at about 21:30 local, not deferred to 08:00
    outbox = read_outbox(get_settings())
    assert len(outbox) == 1 and "blurry vision" in outbox[0]["body"]
    steps = _steps(enrollment["enrollment_id"])
    assert steps["first-hours"]["status"] == "sent"
    # The first-night check-in is due at its own time tonight; the routine morning text waits for 08:00.
    evening = steps["checkin-evening"]
    assert evening["safety"] is True and evening["red_flag"] == "emergency"
    assert datetime.fromisoformat(evening["due_at"]) == treated + timedelta(hours=4)
    morning = datetime.fromisoformat(steps["day1-morning"]["due_at"]).astimezone(ZoneInfo(zone))
    assert morning.time() == time(9, 0) and steps["day1-morning"]["safety"] is False


def test_a_late_enrollment_sends_a_fresh_safety_step_now_even_in_quiet_hours(env):
    zone, local_now = _zone_where_it_is_now(23, 30)  # about 23:30 local, deep in quiet hours
    add_clinic(timezone=zone, quiet_hours="21:00-08:00")
    treated = local_now - timedelta(hours=4, minutes=10)  # about 19:20: first-hours 2h10 ago, check-in 10 min ago
    enrollment = enroll(treated_at=treated.isoformat(), email="ayu@example.com")
    steps = _steps(enrollment["enrollment_id"])
    for step in ("first-hours", "checkin-evening"):
        assert steps[step]["status"] == "scheduled"
        assert datetime.fromisoformat(steps[step]["due_at"]) <= datetime.now(UTC)
    # The routine email summary (due at about 19:50, still fresh) waits for the morning.
    summary_due = datetime.fromisoformat(steps["aftercare-summary"]["due_at"]).astimezone(ZoneInfo(zone))
    assert summary_due.time() == time(8, 0)
    result = cli_json("dispatch", "--once")
    assert result == {"claimed": 2, "sent": 2, "failed": 0}
    steps = _steps(enrollment["enrollment_id"])
    assert steps["first-hours"]["status"] == "sent" and steps["checkin-evening"]["status"] == "sent"
    assert steps["aftercare-summary"]["status"] == "scheduled"
    sent = [item["body"] for item in read_outbox(get_settings())]
    assert len(sent) == 2 and any(body.endswith("Reply YES or NO") for body in sent)


def test_a_safety_step_still_obeys_opt_out_and_an_open_escalation(env):
    zone, local_now = _zone_where_it_is_now(21, 30)
    add_clinic(timezone=zone, quiet_hours="21:00-08:00")
    enroll(treated_at=(local_now - timedelta(hours=2)).isoformat())
    enroll(treated_at=(local_now - timedelta(hours=2)).isoformat(), phone="+6281234567891", first_name="Budi")
    with session_scope() as session:
        ayu = session.scalar(select(Patient).where(Patient.first_name == "Ayu"))
        ayu.sms_opted_out_at, ayu.sms_opt_out_source = datetime.now(UTC), "test"
        budi = session.scalar(select(Enrollment).join(Patient).where(Patient.first_name == "Budi"))
        # An open escalation no clinician has looked at yet; no page is due (next_page_at is empty).
        session.add(Escalation(enrollment_id=budi.id, clinic_id=budi.clinic_id, patient_id=budi.patient_id,
                               level="urgent", status="open", code="T3ST"))
    result = cli_json("dispatch", "--once")
    assert result["claimed"] == 1 and result["sent"] == 0  # the held enrollment's rows are not even claimed
    assert read_outbox(get_settings()) == []
    with session_scope() as session:
        rows = {(row.enrollment_id, row.status, row.skip_reason) for row in session.scalars(
            select(ScheduledMessage).where(ScheduledMessage.step == "first-hours"))}
    assert rows == {(1, "skipped", "opted_out"), (2, "scheduled", None)}


def _leases(ids: list[int]) -> set[datetime]:
    with session_scope() as session:
        return set(session.scalars(select(ScheduledMessage.claimed_until).where(ScheduledMessage.id.in_(ids))))


def test_a_delivery_renews_only_a_lease_with_less_than_three_quarters_left(any_env):
    """A task picked up at once leaves its fresh claim alone (no write per row); one that waited in the queue
    past a quarter of its lease takes a whole lease again, on PostgreSQL and SQLite alike."""
    _due_enrollment()
    claimed_at = datetime.now(UTC) + timedelta(seconds=1)  # after the steps due at enrollment
    with session_factory()() as session:
        claim = claim_due_messages(session, limit=100, lease_seconds=300, now=claimed_at)
    settings = get_settings().model_copy(update={"claim_lease_seconds": 300})
    with get_engine().connect() as connection:
        renew_lease(connection, claim.ids, claim.token, now=claimed_at + timedelta(seconds=70), settings=settings)
        connection.commit()
    assert claim.ids and _leases(claim.ids) == {claimed_at + timedelta(seconds=300)}
    waited = claimed_at + timedelta(seconds=80)
    with get_engine().connect() as connection:
        renew_lease(connection, claim.ids, "another-token", now=waited, settings=settings)
        renew_lease(connection, claim.ids, claim.token, now=waited, settings=settings)
        connection.commit()
    assert _leases(claim.ids) == {waited + timedelta(seconds=300)}


def test_a_callback_kept_while_the_send_record_waits_on_a_lock_is_applied_with_it(env):
    """Twilio's status callback can beat the commit that records the send. One kept while the recording UPDATE
    waits on a row lock must still be handed over with the group (a lookup in the UPDATE's own snapshot missed
    it), so the delivered/failed status is not lost. PostgreSQL only: SQLite's one writer lets nobody in between."""
    now = datetime.now(UTC)
    with session_scope() as session:
        row = ScheduledMessage(kind="page", recipient="+628120000001", step="page-1", channel="sms", body="page",
                               planned_at=now, due_at=now, status=MessageStatus.CLAIMED, claim_token="tok",
                               claimed_until=now + timedelta(minutes=5))
        session.add(row)
        session.flush()
        row_id = row.id
    handed: dict[str, set[str]] = {}

    def record() -> None:
        with SentRecorder("tok", lambda group, pending: handed.update(pending=pending)) as recorder:
            recorder.record(row_id, "SMearly", now)

    with get_engine().connect() as locker:
        locker.execute(select(ScheduledMessage.id).where(ScheduledMessage.id == row_id).with_for_update())
        sender = threading.Thread(target=record)
        sender.start()
        _wait_for_a_lock_wait()
        with session_scope() as session:  # the callback, kept: the row has no SID yet
            session.add(PendingStatus(provider_sid="SMearly", status="delivered", received_at=now))
        locker.rollback()
    sender.join(10)
    with session_scope() as session:
        stored = session.get(ScheduledMessage, row_id)
        assert (stored.status, stored.provider_id) == (MessageStatus.SENT, "SMearly")
    assert handed["pending"] == {"SMearly"}


def _wait_for_a_lock_wait() -> None:
    """Until some backend of this database waits on a lock (the recorder's UPDATE on the locked row)."""
    for _ in range(200):
        with get_engine().connect() as probe:
            waiting = probe.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                         "AND wait_event_type = 'Lock'")).scalar()
        if waiting:
            return
        time_module.sleep(0.025)
    raise AssertionError("the recording UPDATE never waited on the row lock")
