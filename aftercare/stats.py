"""How reminders and replies went over a period: what `aftercare stats` prints. Counts come from SQL; the two
durations (reply to page, page to acknowledgement) are computed in Python over the period's escalations."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from aftercare.clinics import get_clinic
from aftercare.errors import InputError
from aftercare.models import (
    Enrollment,
    Escalation,
    InboundMessage,
    MessageKind,
    MessageStatus,
    Patient,
    ReviewItem,
    ReviewStatus,
    ScheduledMessage,
    utcnow,
)

DEFAULT_PERIOD = timedelta(days=30)


def parse_since(value: str | None, *, now: datetime) -> datetime:
    """--since as a UTC time: a date (YYYY-MM-DD, midnight UTC) or an ISO 8601 time with offset; default 30 days
    before `now`. InputError for anything else."""
    if not value:
        return now - DEFAULT_PERIOD
    try:
        since = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InputError(f"--since: expected a date like 2026-11-01, got {value[:40]!r}") from None
    return (since if since.tzinfo else since.replace(tzinfo=UTC)).astimezone(UTC)


def compute_stats(session: Session, *, clinic_slug: str | None = None, since: datetime,
                  now: datetime | None = None) -> dict[str, Any]:
    """The period's figures for one clinic or all. Shape: {"clinic", "since", "until", "messages": {channel:
    {"sent", "delivered", "failed"}}, "reply_rate": {"patients_messaged", "patients_replied", "rate" (0..1 or
    None)}, "escalations": {level: n}, "reply_to_page_seconds" / "page_to_ack_seconds": {"count", "median",
    "p90"}, "review_items": {status: n}, "opt_outs": n}. NotFound for an unknown clinic."""
    clinic = get_clinic(session, clinic_slug.strip().lower()) if clinic_slug else None  # slugs are lower-case
    clinic_id = clinic.id if clinic else None
    until = now or utcnow()
    escalations = _escalations(session, clinic_id, since, until)
    first_pages = _first_page_sent(session, [e.id for e in escalations])
    first_replies = _first_reply_received(session, [e.id for e in escalations])
    return {
        "clinic": clinic.slug if clinic else None, "since": since.isoformat(), "until": until.isoformat(),
        "messages": _messages(session, clinic_id, since, until),
        "reply_rate": _reply_rate(session, clinic_id, since, until),
        "escalations": _count_by(escalations, "level", ("emergency", "urgent")),
        "reply_to_page_seconds": summary([
            (first_pages[e.id] - first_replies[e.id]).total_seconds() for e in escalations
            if e.id in first_pages and e.id in first_replies]),
        "page_to_ack_seconds": summary([
            (e.acknowledged_at - first_pages[e.id]).total_seconds() for e in escalations
            if e.acknowledged_at and e.id in first_pages]),
        "review_items": _review_items(session, clinic_id, since, until),
        "opt_outs": _opt_outs(session, clinic_id, since, until),
    }


def summary(seconds: list[float]) -> dict[str, Any]:
    """{"count", "median", "p90"} of durations in seconds (nearest-rank p90); None values when there are none."""
    if not seconds:
        return {"count": 0, "median": None, "p90": None}
    ordered = sorted(seconds)
    p90 = ordered[math.ceil(0.9 * len(ordered)) - 1]
    return {"count": len(ordered), "median": round(statistics.median(ordered), 1), "p90": round(p90, 1)}


def _message_clinic():
    # A reminder belongs to its enrollment's clinic; a page to its escalation's or review item's.
    return func.coalesce(Enrollment.clinic_id, Escalation.clinic_id, ReviewItem.clinic_id)


def _with_clinic(query: Select, clinic_id: int | None) -> Select:
    query = (query.outerjoin(Enrollment, Enrollment.id == ScheduledMessage.enrollment_id)
             .outerjoin(Escalation, Escalation.id == ScheduledMessage.escalation_id)
             .outerjoin(ReviewItem, ReviewItem.id == ScheduledMessage.review_item_id))
    return query.where(_message_clinic() == clinic_id) if clinic_id is not None else query


def _messages(session: Session, clinic_id: int | None, since: datetime, until: datetime) -> dict[str, Any]:
    """Per channel: sent (handed to the provider in the period, delivered ones included), delivered, failed."""
    counts: dict[str, dict[str, int]] = {c: {"sent": 0, "delivered": 0, "failed": 0} for c in ("sms", "email")}
    for outcome, column in (("sent", ScheduledMessage.sent_at), ("delivered", ScheduledMessage.delivered_at),
                            ("failed", ScheduledMessage.failed_at)):
        query = select(ScheduledMessage.channel, func.count()).where(column >= since, column <= until)
        if outcome == "failed":
            query = query.where(ScheduledMessage.status == MessageStatus.FAILED)
        query = _with_clinic(query, clinic_id).group_by(ScheduledMessage.channel)
        for channel, count in session.execute(query):
            counts.setdefault(channel, {"sent": 0, "delivered": 0, "failed": 0})[outcome] = count
    return counts


def _reply_rate(session: Session, clinic_id: int | None, since: datetime, until: datetime) -> dict[str, Any]:
    """Patients sent a reminder in the period, and how many of them replied in it."""
    messaged = (select(Enrollment.patient_id).join(ScheduledMessage, ScheduledMessage.enrollment_id == Enrollment.id)
                .where(ScheduledMessage.kind == MessageKind.REMINDER, ScheduledMessage.sent_at >= since,
                       ScheduledMessage.sent_at <= until))
    if clinic_id is not None:
        messaged = messaged.where(Enrollment.clinic_id == clinic_id)
    patients = set(session.scalars(messaged.distinct()))
    replied = set(session.scalars(select(InboundMessage.patient_id).distinct().where(
        InboundMessage.patient_id.in_(patients), InboundMessage.received_at >= since,
        InboundMessage.received_at <= until))) if patients else set()
    rate = round(len(replied) / len(patients), 3) if patients else None
    return {"patients_messaged": len(patients), "patients_replied": len(replied), "rate": rate}


def _escalations(session: Session, clinic_id: int | None, since: datetime, until: datetime) -> list[Escalation]:
    query = select(Escalation).where(Escalation.opened_at >= since, Escalation.opened_at <= until)
    if clinic_id is not None:
        query = query.where(Escalation.clinic_id == clinic_id)
    return list(session.scalars(query))


def _first_page_sent(session: Session, escalation_ids: list[int]) -> dict[int, datetime]:
    query = (select(ScheduledMessage.escalation_id, func.min(ScheduledMessage.sent_at))
             .where(ScheduledMessage.escalation_id.in_(escalation_ids), ScheduledMessage.kind == MessageKind.PAGE,
                    ScheduledMessage.sent_at.is_not(None))
             .group_by(ScheduledMessage.escalation_id))
    return _as_utc(session.execute(query)) if escalation_ids else {}


def _first_reply_received(session: Session, escalation_ids: list[int]) -> dict[int, datetime]:
    query = (select(InboundMessage.escalation_id, func.min(InboundMessage.received_at))
             .where(InboundMessage.escalation_id.in_(escalation_ids)).group_by(InboundMessage.escalation_id))
    return _as_utc(session.execute(query)) if escalation_ids else {}


def _as_utc(rows: Any) -> dict[int, datetime]:
    """{id: time} from (id, min(time)) rows, every time aware UTC whatever the backend returns for an aggregate."""
    found: dict[int, datetime] = {}
    for key, value in rows:
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value is not None:
            found[key] = value if value.tzinfo else value.replace(tzinfo=UTC)
    return found


def _review_items(session: Session, clinic_id: int | None, since: datetime, until: datetime) -> dict[str, int]:
    query = (select(ReviewItem.status, func.count()).where(ReviewItem.created_at >= since,
                                                           ReviewItem.created_at <= until)
             .group_by(ReviewItem.status))
    if clinic_id is not None:
        query = query.where(ReviewItem.clinic_id == clinic_id)
    counts = {status.value: 0 for status in ReviewStatus}
    counts.update(dict(session.execute(query).all()))
    return counts


def _opt_outs(session: Session, clinic_id: int | None, since: datetime, until: datetime) -> int:
    """Patients who opted out of SMS (STOP, or the carrier's block) in the period."""
    query = select(func.count()).select_from(Patient).where(Patient.sms_opted_out_at >= since,
                                                            Patient.sms_opted_out_at <= until)
    if clinic_id is not None:
        query = query.where(Patient.clinic_id == clinic_id)
    return session.scalar(query) or 0


def _count_by(rows: list[Any], attribute: str, keys: tuple[str, ...]) -> dict[str, int]:
    counts = dict.fromkeys(keys, 0)
    for row in rows:
        value = getattr(row, attribute)
        counts[value] = counts.get(value, 0) + 1
    return counts

