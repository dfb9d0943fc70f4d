"""Delivering claimed messages: re-check each row just before sending, send, record the outcome at once.

The outcome of every send is committed right after the provider answers, so the one window for a
duplicate (the worker dies after the provider accepted and before the commit) stays a few milliseconds.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, selectinload

from aftercare.channels import get_channel
from aftercare.channels.base import DeliveryError, OutgoingMessage
from aftercare.channels.ratelimit import get_rate_limiter, sender_key
from aftercare.config import Settings, get_settings
from aftercare.db import get_engine, session_factory
from aftercare.models import (
    Channel,
    Enrollment,
    EnrollmentStatus,
    Escalation,
    EscalationStatus,
    MessageKind,
    MessageStatus,
    Patient,
    ReviewItem,
    ReviewStatus,
    ScheduledMessage,
    utcnow,
)
from aftercare.protocols import render, render_email
from aftercare.schedule.planner import QuietHours, next_allowed

log = logging.getLogger(__name__)
M = ScheduledMessage
_pool: ThreadPoolExecutor | None = None


@dataclass(frozen=True)
class Decision:
    """What to do with one claimed row: send it, or end/return it without sending."""

    message: OutgoingMessage | None = None
    status: str | None = None  # for rows not sent: skipped, cancelled, or scheduled (returned for later)
    reason: str | None = None
    due_at: datetime | None = None


def deliver_batch(ids: list[int], token: str, *, settings: Settings | None = None) -> Counter:
    """Deliver the rows of one claim. Returns counts by outcome (sent, failed, retry, skipped, ...)."""
    settings = settings or get_settings()
    now = utcnow()
    with session_factory()() as session:
        # A task may have waited in the queue for a while: take the lease afresh before trusting the claim.
        # Only rows still carrying our token are renewed; a row another tick re-claimed is theirs now.
        ids = renew_lease(session, ids, token, until=now + timedelta(seconds=settings.claim_lease_seconds))
        rows = _load_claimed(session, ids, token)
        held = _enrollments_under_escalation(session, {r.enrollment_id for r in rows if r.enrollment_id})
        settled = _settled_pages(session, rows)
        decisions = [(row.id, decide(row, held=held, settings=settings, now=now) if row.id not in settled
                      else Decision(status=MessageStatus.CANCELLED, reason="settled")) for row in rows]
    counts: Counter = Counter()
    to_send = [(row_id, d.message) for row_id, d in decisions if d.message is not None]
    with OutcomeWriter() as writer:
        for row_id, d in decisions:
            if d.message is None:
                _finish_unsent(writer, row_id, token, d)
                counts[str(d.status)] += 1
    chunks = [to_send[i::settings.send_threads] for i in range(min(settings.send_threads, len(to_send)))]
    for chunk_counts in _executor(settings).map(lambda chunk: _send_chunk(chunk, token, settings), chunks):
        counts.update(chunk_counts)
    log.info("batch of %d handled: %s", len(ids), dict(counts))
    return counts


def renew_lease(session: Session, ids: list[int], token: str, *, until: datetime) -> list[int]:
    renewed = session.scalars(update(M).where(M.id.in_(ids), M.claim_token == token,
                                              M.status == MessageStatus.CLAIMED)
                              .values(claimed_until=until).returning(M.id)).all()
    session.commit()
    return list(renewed)


def _send_chunk(items: list[tuple[int, OutgoingMessage]], token: str, settings: Settings) -> Counter:
    """One thread's share of a batch, sent in order over one database connection held for the chunk.
    A chunk slowed down (rate limit, provider latency) past half its lease renews each row before sending it,
    so an expired lease can never let a second worker send the same row."""
    lease = timedelta(seconds=settings.claim_lease_seconds)
    renew_after = utcnow() + lease / 2
    counts: Counter = Counter()
    with OutcomeWriter() as writer:
        for row_id, message in items:
            if utcnow() > renew_after and not writer.write(row_id, token, {"claimed_until": utcnow() + lease}):
                counts["lost_claim"] += 1
                continue
            counts[send_one(row_id, message, token=token, settings=settings, writer=writer)] += 1
    return counts


class OutcomeWriter:
    """Writes outcomes over one connection, one short transaction each, reconnecting if the server dropped it:
    a message the provider accepted must be recorded, or its expired claim would send it again."""

    attempts = 3

    def __enter__(self) -> OutcomeWriter:
        self.connection = get_engine().connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.connection.close()

    def write(self, row_id: int, token: str, values: dict) -> bool:
        statement = (update(M).where(M.id == row_id, M.claim_token == token, M.status == MessageStatus.CLAIMED)
                     .values(**values))
        for attempt in range(1, self.attempts + 1):
            try:
                result = self.connection.execute(statement)
                self.connection.commit()
                return result.rowcount == 1
            except DBAPIError:
                if attempt == self.attempts:
                    raise
                self._reconnect()  # the statement is idempotent: only our claim token can match
        return False

    def _reconnect(self) -> None:
        try:
            self.connection.close()
        finally:
            self.connection = get_engine().connect()


def _executor(settings: Settings) -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=settings.send_threads, thread_name_prefix="send")
    return _pool


def _load_claimed(session: Session, ids: list[int], token: str) -> list[ScheduledMessage]:
    query = (
        select(M)
        .where(M.id.in_(ids), M.claim_token == token, M.status == MessageStatus.CLAIMED)
        .options(selectinload(M.enrollment).joinedload(Enrollment.patient).joinedload(Patient.clinic))
    )
    return list(session.scalars(query))


def _enrollments_under_escalation(session: Session, enrollment_ids: set[int]) -> set[int]:
    """Enrollments with an escalation no clinician has looked at yet: their reminders wait."""
    if not enrollment_ids:
        return set()
    query = select(Escalation.enrollment_id).where(Escalation.enrollment_id.in_(enrollment_ids),
                                                   Escalation.status == EscalationStatus.OPEN)
    return set(session.scalars(query))


def _settled_pages(session: Session, rows: list[ScheduledMessage]) -> set[int]:
    """Pages queued before someone acknowledged their escalation or read their review item: nobody needs them."""
    pages = [r for r in rows if r.kind == MessageKind.PAGE]
    escalations = {r.escalation_id for r in pages if r.escalation_id}
    reviews = {r.review_item_id for r in pages if r.review_item_id}
    closed_escalations = set(session.scalars(select(Escalation.id).where(
        Escalation.id.in_(escalations), Escalation.status != EscalationStatus.OPEN))) if escalations else set()
    closed_reviews = set(session.scalars(select(ReviewItem.id).where(
        ReviewItem.id.in_(reviews), ReviewItem.status != ReviewStatus.OPEN))) if reviews else set()
    return {r.id for r in pages if r.escalation_id in closed_escalations or r.review_item_id in closed_reviews}


def decide(row: ScheduledMessage, *, held: set[int], settings: Settings, now: datetime) -> Decision:
    if row.kind == MessageKind.PAGE:
        return _page_decision(row, settings)
    enrollment = row.enrollment
    if enrollment is None:
        return Decision(status=MessageStatus.SKIPPED, reason="no_recipient")
    patient = enrollment.patient
    if row.kind == MessageKind.REMINDER:
        hold = _reminder_hold(row, enrollment, patient, held=enrollment.id in held, now=now)
        if hold is not None:
            return hold
    if row.channel == Channel.SMS and not patient.sms_allowed:
        return Decision(status=MessageStatus.SKIPPED, reason="opted_out")
    if row.channel == Channel.EMAIL and not patient.email_allowed:
        return Decision(status=MessageStatus.SKIPPED, reason="no_email_consent")
    return Decision(message=_patient_message(row, patient, settings))


def _reminder_hold(row: ScheduledMessage, enrollment: Enrollment, patient: Patient, *, held: bool,
                   now: datetime) -> Decision | None:
    """The re-check before a reminder goes: still wanted, still fresh, and (unless safety-critical) not in the
    patient's quiet hours."""
    if enrollment.status == EnrollmentStatus.CANCELLED:
        return Decision(status=MessageStatus.CANCELLED, reason="enrollment_cancelled")
    if enrollment.status == EnrollmentStatus.PAUSED or held:
        return Decision(status=MessageStatus.SCHEDULED, reason="held", due_at=row.due_at)
    if row.fresh_until is not None and now > row.fresh_until:
        return Decision(status=MessageStatus.SKIPPED, reason="stale")
    if row.is_safety:
        return None  # warning signs and first-night check-ins are not held back by quiet hours
    clinic = patient.clinic
    quiet = QuietHours.parse(f"{clinic.quiet_start}-{clinic.quiet_end}")
    allowed = next_allowed(now, tz=ZoneInfo(patient.timezone), quiet=quiet)
    if allowed > now:
        return Decision(status=MessageStatus.SCHEDULED, reason="quiet_hours", due_at=allowed)
    return None


def _patient_message(row: ScheduledMessage, patient: Patient, settings: Settings) -> OutgoingMessage:
    clinic = patient.clinic
    values = {"first_name": patient.first_name, "clinic_name": clinic.name, "clinic_phone": clinic.phone}
    if row.channel == Channel.EMAIL:
        subject, body = (f"{clinic.name}: aftercare", row.body) if row.body else render_email(
            row.template, patient.language, **values)
        return OutgoingMessage(message_id=row.id, channel=Channel.EMAIL, to=patient.email, body=body,
                               subject=subject, sender=clinic.email_from)
    body = row.body or render(row.template, patient.language, **values)
    return OutgoingMessage(message_id=row.id, channel=Channel.SMS, to=patient.phone, body=body,
                           sender=clinic.sms_from, status_callback=status_callback_url(settings))


def _page_decision(row: ScheduledMessage, settings: Settings) -> Decision:
    """Pages ignore quiet hours and consent: they go to the clinic's own staff about a patient's safety."""
    if not row.recipient:
        return Decision(status=MessageStatus.SKIPPED, reason="no_recipient")
    if row.channel == Channel.EMAIL:
        subject, _, body = (row.body or "").partition("\n\n")
        return Decision(message=OutgoingMessage(message_id=row.id, channel=Channel.EMAIL, to=row.recipient,
                                                body=body, subject=subject))
    return Decision(message=OutgoingMessage(message_id=row.id, channel=Channel.SMS, to=row.recipient, body=row.body,
                                            status_callback=status_callback_url(settings)))


def status_callback_url(settings: Settings) -> str:
    return settings.public_url.rstrip("/") + "/twilio/status"


def _finish_unsent(writer: OutcomeWriter, row_id: int, token: str, decision: Decision) -> None:
    now = utcnow()
    values: dict = {"status": decision.status, "updated_at": now, "claimed_until": None, "claim_token": None}
    if decision.status == MessageStatus.SCHEDULED:
        values["due_at"] = decision.due_at or now
    elif decision.status == MessageStatus.SKIPPED:
        values.update(skip_reason=decision.reason, skipped_at=now)
    elif decision.status == MessageStatus.CANCELLED:
        values.update(skip_reason=decision.reason, cancelled_at=now)
    writer.write(row_id, token, values)


def send_one(row_id: int, message: OutgoingMessage, *, token: str, settings: Settings,
             writer: OutcomeWriter) -> str:
    """Send one message and record what happened. Returns the outcome name for counting."""
    try:
        if message.channel == Channel.SMS:
            get_rate_limiter(settings).acquire(sender_key(message, settings), settings.sms_rate_per_second)
        receipt = get_channel(message.channel, settings).send(message)
    except DeliveryError as error:
        return _record_failure(row_id, message, error, token=token, settings=settings)
    except Exception as exc:  # a bug or an outage (e.g. Redis for the rate limit) must not strand the claim
        log.error("unexpected %s sending message %s", type(exc).__name__, row_id)
        return _record_failure(row_id, message, DeliveryError("unexpected error", permanent=False), token=token,
                               settings=settings)
    now = utcnow()
    writer.write(row_id, token, {"status": MessageStatus.SENT, "provider_id": receipt.provider_id, "sent_at": now,
                                 "updated_at": now, "claimed_until": None, "error": None, "error_code": None})
    log.debug("message %s sent via %s", row_id, message.channel)
    return "sent"


def _record_failure(row_id: int, message: OutgoingMessage, error: DeliveryError, *, token: str,
                    settings: Settings) -> str:
    now = utcnow()
    with session_factory()() as session:
        row = session.get(M, row_id)
        if row is None or row.claim_token != token or row.status != MessageStatus.CLAIMED:
            return "lost_claim"
        row.attempts += 1
        row.error, row.error_code = str(error)[:500], error.code
        row.claimed_until = row.claim_token = None
        if not error.permanent and row.attempts < settings.max_attempts:
            row.status, row.due_at = MessageStatus.SCHEDULED, now + backoff(row.attempts, settings.retry_base_seconds)
            outcome = "retry"
        else:
            row.status, row.failed_at = MessageStatus.FAILED, now
            outcome = "failed"
            if error.permanent and message.channel == Channel.SMS:
                _after_permanent_sms_failure(session, row, error, now)
        session.commit()
    log.warning("message %s %s: code=%s permanent=%s", row_id, outcome, error.code, error.permanent)
    return outcome


def _after_permanent_sms_failure(session: Session, row: ScheduledMessage, error: DeliveryError,
                                 now: datetime) -> None:
    if row.enrollment_id is None or row.kind == MessageKind.PAGE:
        return  # a page goes to staff: its failure never touches the patient's consent (and has its own email)
    patient = session.scalars(select(Patient).join(Enrollment).where(Enrollment.id == row.enrollment_id)).one()
    if error.opted_out and patient.sms_opted_out_at is None:
        patient.sms_opted_out_at, patient.sms_opt_out_source = now, f"carrier:{error.code}"
    if patient.email_allowed:
        session.add(M(kind=row.kind, enrollment_id=row.enrollment_id, step=row.step, channel=Channel.EMAIL,
                      template=row.template, body=row.body, is_checkin=row.is_checkin, is_safety=row.is_safety,
                      red_flag=row.red_flag, planned_at=row.planned_at, due_at=now, fresh_until=row.fresh_until,
                      fallback_of_id=row.id))


def backoff(attempt: int, base_seconds: float) -> timedelta:
    """Exponential backoff with full jitter, capped at an hour, so retries from many rows do not align."""
    ceiling = min(3600.0, base_seconds * 2 ** (attempt - 1))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))
