"""Claiming due messages: the one short transaction between the durable schedule and the broker.

A claim marks rows `claimed` with a lease and a fresh token, and commits before anything is enqueued.
A lease that runs out (the worker died, the broker lost the task) makes the row claimable again, so a
crash or a flushed broker delays a message but never loses it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from aftercare.models import (
    Enrollment,
    EnrollmentStatus,
    Escalation,
    EscalationStatus,
    MessageKind,
    MessageStatus,
    ScheduledMessage,
    utcnow,
)

M = ScheduledMessage


@dataclass(frozen=True)
class Claim:
    token: str
    ids: list[int]


def _reminders_may_go():
    """Reminders wait while their enrollment is paused or has an escalation no clinician has looked at."""
    enrollment_active = exists().where(Enrollment.id == M.enrollment_id, Enrollment.status == EnrollmentStatus.ACTIVE)
    open_escalation = exists().where(Escalation.enrollment_id == M.enrollment_id,
                                     Escalation.status == EscalationStatus.OPEN)
    return or_(M.kind != MessageKind.REMINDER, and_(enrollment_active, ~open_escalation))


def _kind_filter(pages: bool):
    return M.kind == MessageKind.PAGE if pages else M.kind != MessageKind.PAGE


def _due_ids(now: datetime, limit: int, pages: bool):
    return (select(M.id).where(M.status == MessageStatus.SCHEDULED, M.due_at <= now, _kind_filter(pages),
                               _reminders_may_go())
            .order_by(M.due_at).limit(limit))


def _expired_ids(now: datetime, limit: int, pages: bool):
    return select(M.id).where(M.status == MessageStatus.CLAIMED, M.claimed_until < now, _kind_filter(pages)).limit(limit)


def claim_due_messages(session: Session, *, limit: int, lease_seconds: int, now: datetime | None = None,
                       pages: bool = False) -> Claim:
    """Claim up to `limit` due rows (and rows whose lease expired) and commit: pages, or everything else.
    Safe to run concurrently: PostgreSQL skips rows another dispatcher holds; SQLite serialises writers and
    the UPDATE re-checks status."""
    now = now or utcnow()
    token = uuid.uuid4().hex
    ids: list[int] = []
    for status, candidates in ((MessageStatus.CLAIMED, _expired_ids(now, limit, pages)),
                               (MessageStatus.SCHEDULED, _due_ids(now, limit, pages))):
        if len(ids) >= limit:
            break
        # Two statements, not UPDATE ... WHERE id IN (subquery): on fresh, unanalysed rows PostgreSQL may re-run
        # a locking subquery once per candidate row. The selected rows stay locked by this transaction.
        locked = session.scalars(candidates.limit(limit - len(ids)).with_for_update(skip_locked=True, of=M)).all()
        if not locked:
            continue
        claimed = session.scalars(
            update(M)
            .where(M.id.in_(locked), M.status == status)
            .values(status=MessageStatus.CLAIMED, claimed_until=now + timedelta(seconds=lease_seconds),
                    claim_token=token, claimed_at=now, updated_at=now)
            .returning(M.id)
        ).all()
        ids.extend(claimed)
    session.commit()
    return Claim(token=token, ids=sorted(ids))


def in_flight(session: Session, *, now: datetime | None = None) -> int:
    """Rows claimed and still within their lease: queued or being sent right now."""
    now = now or utcnow()
    return session.scalar(select(func.count()).select_from(M).where(M.status == MessageStatus.CLAIMED,
                                                                    M.claimed_until >= now))


def oldest_due_at(session: Session, *, now: datetime | None = None) -> datetime | None:
    """When the longest-waiting message the dispatcher would claim now fell due (UTC); None when nothing is due.
    The same filter as the claim, so reminders held by a pause or an open escalation do not count as lag."""
    now = now or utcnow()
    return session.scalar(select(func.min(M.due_at)).where(M.status == MessageStatus.SCHEDULED, M.due_at <= now,
                                                           _reminders_may_go()))


def batches(ids: list[int], size: int) -> list[list[int]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]
