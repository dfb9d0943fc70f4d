"""Opening, listing and closing review items. Every change is in the audit log.

A review item is due within the clinic's service time (`Clinic.review_minutes`), counted in clinic hours: a
reply that arrives during quiet hours starts the clock when they end. Past that, on-call is paged
(`aftercare.review.paging`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Select, case, insert, select
from sqlalchemy.orm import Session

from aftercare import audit
from aftercare.errors import AftercareError, NotFound
from aftercare.escalation import REVIEW_SIGN
from aftercare.escalation.service import open_escalation
from aftercare.models import (
    Clinic,
    Enrollment,
    Escalation,
    InboundMessage,
    Patient,
    ReviewItem,
    ReviewStatus,
    utcnow,
)
from aftercare.schedule.planner import QuietHours, next_allowed

# Most serious first in the inbox; unknown levels sort last.
_LEVEL_ORDER = {"emergency": 0, "urgent": 1, "routine": 2, "ok": 3}


def review_due_at(clinic: Clinic, received_at: datetime) -> datetime:
    """When staff must have read an item that came in at `received_at` (UTC): the service time after the first
    minute outside the clinic's quiet hours."""
    quiet = QuietHours.parse(f"{clinic.quiet_start}-{clinic.quiet_end}")
    start = next_allowed(received_at, tz=ZoneInfo(clinic.timezone), quiet=quiet)
    return start + timedelta(minutes=clinic.review_minutes)


# A reply nobody can place while a vascular occlusion is still likely (the first 72 h after filler, or an open
# emergency red-flag question) cannot wait for clinic hours: on-call is paged if nobody has read it by then.
RISK_WINDOW_REVIEW = timedelta(minutes=15)


def open_review_item(session: Session, *, clinic: Clinic, inbound: InboundMessage, reason: str,
                     level: str | None, enrollment_id: int | None = None, in_risk_window: bool = False,
                     patient: Patient | None = None, candidates: list[Patient] | None = None,
                     now: datetime | None = None) -> int:
    """A reply for `clinic` to read, about `patient` (None: on file nowhere, or a shared phone's `candidates`,
    all named on the item). Returns the new item's id; it and its audit entry are written in the session's
    transaction as two Core INSERTs (this is on every webhook that needs a person: the ORM's flush cost more)."""
    now = now or utcnow()
    due = now + RISK_WINDOW_REVIEW if in_risk_window else review_due_at(clinic, now)
    connection = session.connection()
    item_id = connection.execute(insert(ReviewItem.__table__).returning(ReviewItem.__table__.c.id), {
        "clinic_id": clinic.id, "patient_id": patient.id if patient else None,
        "patient_ids": sorted(p.id for p in candidates or []), "enrollment_id": enrollment_id,
        "inbound_id": inbound.id, "reason": reason, "level": level, "status": ReviewStatus.OPEN,
        "created_at": now, "due_at": due}).scalar_one()
    audit.append(connection, at=now, actor="triage", action="review.opened", subject_type="review",
                 subject_id=item_id, reason=reason, inbound_id=inbound.id, clinic_id=clinic.id)
    return item_id


# A sender told "a nurse will read your message" this recently is not told again.
HOLDING_REPEAT = timedelta(minutes=30)


def holding_answers(sender, since) -> Select:
    """Review items whose reply from `sender` got a holding answer at or after `since` (values or bind parameters:
    inbound/context.py reads the same rule as a subquery)."""
    return (select(ReviewItem.id).join(InboundMessage)
            .where(InboundMessage.from_phone == sender, InboundMessage.answer.is_not(None),
                   ReviewItem.created_at >= since))


def recently_held(session: Session, *, sender: str, now: datetime) -> bool:
    """Whether this sender got a holding answer (a reply put before a person) in the last half hour."""
    return session.scalar(holding_answers(sender, now - HOLDING_REPEAT).limit(1)) is not None


def list_inbox(session: Session, *, clinic_id: int | None = None, include_done: bool = False) -> list[ReviewItem]:
    """Open items, most serious then newest first (all items with include_done)."""
    severity = case(_LEVEL_ORDER, value=ReviewItem.level, else_=9)
    query = select(ReviewItem).order_by(severity, ReviewItem.created_at.desc(), ReviewItem.id.desc())
    if clinic_id is not None:
        query = query.where(ReviewItem.clinic_id == clinic_id)
    if not include_done:
        query = query.where(ReviewItem.status == ReviewStatus.OPEN)
    return list(session.scalars(query))


def get_review_item(session: Session, item_id: int) -> ReviewItem:
    item = session.get(ReviewItem, item_id)
    if item is None:
        raise NotFound(f"unknown review item {item_id}: see `aftercare inbox`")
    return item


def mark_done(session: Session, item: ReviewItem, *, by: str, note: str | None = None,
              now: datetime | None = None) -> ReviewItem:
    """A person has read the reply and dealt with it."""
    if item.status != ReviewStatus.OPEN:
        raise AftercareError(f"review item {item.id} is already {item.status}")
    item.status, item.done_at, item.done_by = ReviewStatus.DONE, now or utcnow(), by
    item.note = (note or "").strip() or None
    # Whether there is a note, not the note: staff write what the patient said, and the audit log is never erased.
    audit.record(session, actor=by, action="review.done", subject_type="review", subject_id=item.id,
                 noted=item.note is not None)
    return item


def escalate_review_item(session: Session, item: ReviewItem, *, by: str, level: str,
                         now: datetime | None = None) -> Escalation:
    """A person read it and judged it dangerous: open (or raise) the escalation, which pages on-call at once."""
    if item.status != ReviewStatus.OPEN:
        raise AftercareError(f"review item {item.id} is already {item.status}")
    now = now or utcnow()
    enrollment = session.get(Enrollment, item.enrollment_id) if item.enrollment_id else None
    candidates = list(session.scalars(select(Patient).where(Patient.id.in_(item.patient_ids or []))))
    escalation = open_escalation(session, patient=item.patient, enrollment=enrollment, inbound=item.inbound,
                                 level=level, signs=[REVIEW_SIGN],
                                 explanation=f"escalated from the review inbox by {by}", clinic_id=item.clinic_id,
                                 candidates=candidates, now=now)
    item.status, item.done_at, item.done_by = ReviewStatus.ESCALATED, now, by
    item.inbound.escalation_id = escalation.id
    audit.record(session, actor=by, action="review.escalated", subject_type="review", subject_id=item.id,
                 escalation_id=escalation.id, level=level)
    return escalation
