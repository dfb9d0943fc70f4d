"""Delivering claimed messages: re-check each row just before sending, send, record the outcome at once.

A batch is loaded in one Core query (schedule/claimed.py), its sends share out the rate limit a block at a time
(channels/ratelimit.Pacer), and accepted sends are recorded in group commits while the next ones go out
(schedule/outcomes.py): the one window for a duplicate (the worker dies after the provider accepted and before
the commit) stays about one commit long.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import case, literal, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from aftercare import audit, metrics
from aftercare.channels import get_channel
from aftercare.channels.base import TIMEOUT_CODE, DeliveryError, OutgoingMessage
from aftercare.channels.ratelimit import Pacer, get_rate_limiter, sender_key
from aftercare.config import Settings, get_settings
from aftercare.db import get_engine, session_factory
from aftercare.inbound.status import apply_pending_statuses
from aftercare.models import (
    AuditEntry,
    Channel,
    EnrollmentStatus,
    Escalation,
    EscalationStatus,
    MessageKind,
    MessageStatus,
    ReviewItem,
    ReviewStatus,
    ScheduledMessage,
    UTCDateTime,
    utcnow,
)
from aftercare.protocols import render, render_email
from aftercare.schedule.claimed import ClaimedMessage, EnrollmentSnapshot, PatientSnapshot, load_claimed
from aftercare.schedule.fallback import after_permanent_sms_failure, email_instead
from aftercare.schedule.outcomes import OutcomeWriter, Sent, SentRecorder
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
    with get_engine().connect() as connection:
        # A task may have waited in the queue for a while: take the lease afresh before trusting the claim.
        # Only rows still carrying our token are renewed; a row another tick re-claimed is theirs now.
        renew_lease(connection, ids, token, now=now, settings=settings)
        rows = load_claimed(connection, ids, token)
        held = _enrollments_under_escalation(connection, {r.enrollment_id: r.enrollment.patient_id for r in rows
                                                          if r.enrollment is not None})
        settled = _settled_pages(connection, rows)
        connection.commit()
    pages = {row.id for row in rows if row.kind == MessageKind.PAGE}
    decisions = [(row.id, decide(row, held=held, settings=settings, now=now) if row.id not in settled
                  else Decision(status=MessageStatus.CANCELLED, reason="settled")) for row in rows]
    counts: Counter = Counter()
    with OutcomeWriter() as writer:
        for row_id, d in decisions:
            if d.message is None:
                _finish_unsent(writer, row_id, token, d)
                counts[str(d.status)] += 1
    _email_the_opted_out([row_id for row_id, d in decisions if d.reason == "opted_out"], now)
    to_send = [(row_id, d.message) for row_id, d in decisions if d.message is not None]
    chunks = [to_send[i::settings.send_threads] for i in range(min(settings.send_threads, len(to_send)))]
    with SentRecorder(token, lambda group, pending: _after_recorded(group, pending, pages)) as recorder:
        for chunk_counts in _executor(settings).map(
                lambda chunk: _send_chunk(chunk, token, settings, recorder, pages=bool(pages), renewed_at=now),
                chunks):
            counts.update(chunk_counts)
    metrics.count_deliveries(counts)
    log.debug("batch of %d handled: %s", len(ids), dict(counts))
    return counts


def _after_recorded(group: list[Sent], pending: set[str], pages: set[int]) -> None:
    """Once sends are committed: apply status callbacks that came first, and audit each page that left."""
    for sent in group:
        if sent.provider_id in pending:
            _apply_pending(sent.provider_id)
        if sent.row_id in pages:
            try:
                _record_page_sent(sent.row_id)
            except Exception:  # the page has left; the rest of the group must still be handled
                log.exception("auditing page %s failed", sent.row_id)


def _record_page_sent(row_id: int) -> None:
    """Audit a page the provider has just accepted ("escalation.paged", "review.paged"): the log says a clinician
    was paged once the page has left, not when it was queued ("*.page_queued"). The first page sent for an
    escalation also times reply-to-page for /metrics."""
    with session_factory()() as session:
        row = session.get(M, row_id)
        if row.escalation_id is not None:
            # Locked: the SMS and the email of one round, sent by two threads, agree on which was first.
            level, opened_at = session.execute(select(Escalation.level, Escalation.opened_at).where(
                Escalation.id == row.escalation_id).with_for_update()).one()
            if not _paged_before(session, row.escalation_id):
                metrics.observe_reply_to_page(level, (row.sent_at or utcnow()) - opened_at)
            subject_type, subject_id = "escalation", row.escalation_id
        elif row.review_item_id is not None:
            subject_type, subject_id = "review", row.review_item_id
        else:
            return
        audit.record(session, actor="dispatcher", action=f"{subject_type}.paged", subject_type=subject_type,
                     subject_id=subject_id, message_id=row.id, channel=row.channel, staff_id=row.staff_id)
        session.commit()


def _paged_before(session: Session, escalation_id: int) -> bool:
    return session.scalar(select(AuditEntry.id).where(
        AuditEntry.subject_type == "escalation", AuditEntry.subject_id == escalation_id,
        AuditEntry.action == "escalation.paged").limit(1)) is not None


def _email_the_opted_out(row_ids: list[int], now: datetime) -> None:
    """SMS skipped because the patient opted out after they were planned go by email when the patient has one."""
    if not row_ids:
        return
    with session_factory()() as session:
        for row in session.scalars(select(M).where(M.id.in_(row_ids))):
            email_instead(session, row, now=now)
        session.commit()


def renew_lease(connection: Connection, ids: list[int], token: str, *, now: datetime, settings: Settings) -> None:
    """Give the rows of `ids` still claimed under `token` a whole lease again from `now` (pages:
    AFTERCARE_PAGE_LEASE_SECONDS, others AFTERCARE_CLAIM_LEASE_SECONDS) where less than three quarters of it is
    left: a task that waited in the queue. A fresh claim is left as it is, which spares every row an
    index-updating write; either way, until `now` + a quarter lease every row has at least half a lease left
    (see _send_chunk)."""
    page_lease = timedelta(seconds=settings.page_lease_seconds)
    lease = timedelta(seconds=settings.claim_lease_seconds)
    def by_kind(page_time: datetime, other_time: datetime):
        return case((M.kind == MessageKind.PAGE, literal(page_time, UTCDateTime())),
                    else_=literal(other_time, UTCDateTime()))

    until = by_kind(now + page_lease, now + lease)
    most_left = by_kind(now + page_lease * 3 / 4, now + lease * 3 / 4)
    connection.execute(update(M).where(M.id.in_(ids), M.claim_token == token, M.status == MessageStatus.CLAIMED,
                                       M.claimed_until < most_left).values(claimed_until=until))


def _send_chunk(items: list[tuple[int, OutgoingMessage]], token: str, settings: Settings, recorder: SentRecorder,
                *, pages: bool, renewed_at: datetime) -> Counter:
    """One thread's share of a batch, sent in order, each accepted send handed to `recorder`.
    The rate limit is reserved a block of sends at a time (channels.ratelimit.Pacer). A chunk slowed down (rate
    limit, provider latency) past a quarter lease after `renewed_at` (see renew_lease) renews each row before
    sending it, so every send starts with at least half a lease left: an expired lease can never let a second
    worker send the same row."""
    lease = timedelta(seconds=settings.page_lease_seconds if pages else settings.claim_lease_seconds)
    renew_after = renewed_at + lease / 4
    senders = Counter(sender_key(m, settings) for _, m in items if m.channel == Channel.SMS)
    pacer = Pacer(get_rate_limiter(settings), settings.sms_rate_per_second, senders)
    counts: Counter = Counter()
    with OutcomeWriter() as writer:
        for row_id, message in items:
            if utcnow() > renew_after and not writer.write(row_id, token, {"claimed_until": utcnow() + lease}):
                counts["lost_claim"] += 1
                continue
            counts[send_one(row_id, message, token=token, settings=settings, recorder=recorder, pacer=pacer)] += 1
    return counts


def _executor(settings: Settings) -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=settings.send_threads, thread_name_prefix="send")
    return _pool


def _enrollments_under_escalation(connection: Connection, patients: dict[int, int]) -> set[int]:
    """Of `patients` ({enrollment id: patient id}), the enrollments an escalation no clinician has looked at yet
    names, by its enrollment or its patient, or among every treatment or candidate it lists: their reminders wait.
    Open escalations are few, so they are read whole and matched here (JSON containment differs per backend)."""
    if not patients:
        return set()
    open_ones = connection.execute(select(Escalation.enrollment_id, Escalation.enrollment_ids, Escalation.patient_id,
                                       Escalation.patient_ids).where(Escalation.status == EscalationStatus.OPEN))
    named_enrollments: set[int] = set()
    named_patients: set[int] = set()
    for enrollment_id, enrollment_ids, patient_id, patient_ids in open_ones:
        named_enrollments.update([enrollment_id, *(enrollment_ids or [])])
        named_patients.update([patient_id, *(patient_ids or [])])
    return {e for e, p in patients.items() if e in named_enrollments or p in named_patients}


def _settled_pages(connection: Connection, rows: list[ClaimedMessage]) -> set[int]:
    """Pages queued before someone acknowledged their escalation or read their review item: nobody needs them."""
    pages = [r for r in rows if r.kind == MessageKind.PAGE]
    escalations = {r.escalation_id for r in pages if r.escalation_id}
    reviews = {r.review_item_id for r in pages if r.review_item_id}
    closed_escalations = set(connection.scalars(select(Escalation.id).where(
        Escalation.id.in_(escalations), Escalation.status != EscalationStatus.OPEN))) if escalations else set()
    closed_reviews = set(connection.scalars(select(ReviewItem.id).where(
        ReviewItem.id.in_(reviews), ReviewItem.status != ReviewStatus.OPEN))) if reviews else set()
    return {r.id for r in pages if r.escalation_id in closed_escalations or r.review_item_id in closed_reviews}


def decide(row: ClaimedMessage, *, held: set[int], settings: Settings, now: datetime) -> Decision:
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
        return Decision(status=MessageStatus.SKIPPED, reason="no_email_consent" if patient.email else "no_email")
    return Decision(message=_patient_message(row, patient, settings))


def _reminder_hold(row: ClaimedMessage, enrollment: EnrollmentSnapshot, patient: PatientSnapshot, *, held: bool,
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


def _patient_message(row: ClaimedMessage, patient: PatientSnapshot, settings: Settings) -> OutgoingMessage:
    clinic = patient.clinic
    values = {"first_name": patient.first_name, "clinic_name": clinic.name, "clinic_phone": clinic.phone}
    if row.channel == Channel.EMAIL:
        subject, body = (f"{clinic.name}: aftercare", row.body) if row.body else render_email(
            row.template, patient.language, **values)
        return OutgoingMessage(message_id=row.id, channel=Channel.EMAIL, to=patient.email, body=body,
                               subject=subject, sender=clinic.email_from, unconfirmed_since=_unconfirmed_since(row))
    body = row.body or render(row.template, patient.language, **values)
    return OutgoingMessage(message_id=row.id, channel=Channel.SMS, to=patient.phone, body=body,
                           sender=clinic.sms_from, status_callback=status_callback_url(settings),
                           unconfirmed_since=_unconfirmed_since(row))


def _page_decision(row: ClaimedMessage, settings: Settings) -> Decision:
    """Pages ignore quiet hours and consent: they go to the clinic's own staff about a patient's safety."""
    if not row.recipient:
        return Decision(status=MessageStatus.SKIPPED, reason="no_recipient")
    if row.channel == Channel.EMAIL:
        subject, _, body = (row.body or "").partition("\n\n")
        return Decision(message=OutgoingMessage(message_id=row.id, channel=Channel.EMAIL, to=row.recipient,
                                                body=body, subject=subject, unconfirmed_since=_unconfirmed_since(row)))
    return Decision(message=OutgoingMessage(message_id=row.id, channel=Channel.SMS, to=row.recipient, body=row.body,
                                            status_callback=status_callback_url(settings),
                                            unconfirmed_since=_unconfirmed_since(row)))


def _unconfirmed_since(row: ClaimedMessage | ScheduledMessage) -> datetime | None:
    """When the last try timed out after handing the message over, the time of that hand-over (kept in sent_at)."""
    return row.sent_at if row.error_code == TIMEOUT_CODE else None


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


def send_one(row_id: int, message: OutgoingMessage, *, token: str, settings: Settings, recorder: SentRecorder,
             pacer: Pacer) -> str:
    """Send one message (an SMS waits for its rate-limit slot from `pacer`); an accepted one is handed to
    `recorder` (returning once it is committed), a failure recorded at once. Returns the outcome name for counting."""
    attempted_at = utcnow()
    try:
        if message.channel == Channel.SMS:
            pacer.wait_turn(sender_key(message, settings))
        attempted_at = utcnow()
        receipt = get_channel(message.channel, settings).send(message)
    except DeliveryError as error:
        return _record_failure(row_id, message, error, token=token, settings=settings, attempted_at=attempted_at)
    except Exception as exc:  # a bug or an outage (e.g. Redis for the rate limit) must not strand the claim
        log.error("unexpected %s sending message %s", type(exc).__name__, row_id)
        return _record_failure(row_id, message, DeliveryError("unexpected error", permanent=False), token=token,
                               settings=settings, attempted_at=attempted_at)
    recorder.record(row_id, receipt.provider_id, utcnow())
    log.debug("message %s sent via %s", row_id, message.channel)
    return "sent"


def _apply_pending(provider_id: str) -> None:
    """Status callbacks that came before the send was recorded: apply them now that the row has its SID."""
    with session_factory()() as session:
        apply_pending_statuses(session, provider_id)
        session.commit()


def _record_failure(row_id: int, message: OutgoingMessage, error: DeliveryError, *, token: str,
                    settings: Settings, attempted_at: datetime) -> str:
    now = utcnow()
    with session_factory()() as session:
        row = session.get(M, row_id)
        if row is None or row.claim_token != token or row.status != MessageStatus.CLAIMED:
            return "lost_claim"
        row.attempts += 1
        if error.code == TIMEOUT_CODE and not _unconfirmed_since(row):
            # The provider may have taken it: remember since when, so the next try asks before sending again.
            # A try that timed out again keeps the first time, the earliest the message can have been created.
            row.sent_at = attempted_at
        row.error, row.error_code = str(error)[:500], error.code
        row.claimed_until = row.claim_token = None
        if not error.permanent and row.attempts < settings.max_attempts:
            row.status, row.due_at = MessageStatus.SCHEDULED, now + backoff(row.attempts, settings.retry_base_seconds)
            outcome = "retry"
        else:
            row.status, row.failed_at = MessageStatus.FAILED, now
            outcome = "failed"
            if error.permanent and message.channel == Channel.SMS:
                after_permanent_sms_failure(session, row, code=error.code, opted_out=error.opted_out, now=now)
        session.commit()
    log.warning("message %s %s: code=%s permanent=%s", row_id, outcome, error.code, error.permanent)
    return outcome


def backoff(attempt: int, base_seconds: float) -> timedelta:
    """Exponential backoff with full jitter, capped at an hour, so retries from many rows do not align."""
    ceiling = min(3600.0, base_seconds * 2 ** (attempt - 1))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))
