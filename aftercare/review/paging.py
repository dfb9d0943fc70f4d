"""A review item nobody has read within the clinic's service time pages the first on-call person, once.

Swept by every dispatcher tick, like escalation pages: the page is an outbox row, so nothing here lives only in
the broker. The page says which item and why, never the patient's words (they are read in the inbox).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from aftercare import audit
from aftercare.escalation.paging import email_after_failure, next_untried, person_for_turn, write_page
from aftercare.models import Clinic, ReviewItem, ReviewStatus, ScheduledMessage, utcnow

_REASONS = {
    "unplaced": "triage could not place it",
    "question": "a question",
    "photo": "a photo",
    "unknown_sender": "from a number not on file",
    "unclear_answer": "an unclear answer to a red-flag question",
    "unanswered_sign": "a sign with no written answer",
}


def queue_overdue_review_pages(session: Session, *, now: datetime | None = None) -> int:
    """Page on-call for every open review item past its due time that has not been paged. Returns how many."""
    now = now or utcnow()
    query = (select(ReviewItem).where(ReviewItem.status == ReviewStatus.OPEN, ReviewItem.paged_at.is_(None),
                                      ReviewItem.due_at <= now)
             .with_for_update(skip_locked=True, of=ReviewItem))
    overdue = list(session.scalars(query))
    for item in overdue:
        _page(session, item, now)
    return len(overdue)


def _page(session: Session, item: ReviewItem, now: datetime) -> None:
    clinic = session.get(Clinic, item.clinic_id)
    person = person_for_turn(session, clinic.id, 0)
    channels = write_page(session, clinic, person=person, template="page.review", values=_values(item, clinic, now),
                          now=now, step=f"review-{item.id}", review_item_id=item.id)
    item.paged_at = now
    audit.record(session, actor="dispatcher", action="review.page_queued", subject_type="review", subject_id=item.id,
                 staff_id=person.id if person else None, channels=channels)


def repage_after_failure(session: Session, failed: ScheduledMessage, *, now: datetime) -> None:
    """A review item's page SMS failed for good: email that person, and page the next on-call person at once,
    while the item is still unread."""
    item = session.get(ReviewItem, failed.review_item_id)
    if item is None or item.status != ReviewStatus.OPEN:
        return
    clinic = session.get(Clinic, item.clinic_id)
    values = _values(item, clinic, now)
    email_after_failure(session, failed, template="page.review", values=values, now=now)
    found, person = next_untried(session, clinic, failed, ScheduledMessage.review_item_id == item.id)
    if not found:
        return
    channels = write_page(session, clinic, person=person, template="page.review", values=values, now=now,
                          step=f"review-{item.id}-{person.id if person else 'clinic'}", review_item_id=item.id)
    audit.record(session, actor="dispatcher", action="review.page_queued", subject_type="review", subject_id=item.id,
                 staff_id=person.id if person else None, channels=channels, after_failure=failed.id)


def _values(item: ReviewItem, clinic: Clinic, now: datetime) -> dict:
    return {"first_name": "", "clinic_name": clinic.name, "clinic_phone": clinic.phone, "item": str(item.id),
            "reason": _REASONS.get(item.reason, item.reason),
            "minutes": str(int((now - item.created_at).total_seconds() // 60))}
