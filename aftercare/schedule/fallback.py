"""What an SMS that can never be delivered leads to, whether the API refused it at once or a status callback
reported it later: a patient's copy by email (and the opt-out, for opt-out codes only); a page's reroute to the
same clinician's email and to the next person on call. A page never touches a patient's consent."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from aftercare.escalation import paging as escalation_paging
from aftercare.models import Channel, Enrollment, MessageKind, Patient, ScheduledMessage
from aftercare.review import paging as review_paging

log = logging.getLogger(__name__)
M = ScheduledMessage


def after_permanent_sms_failure(session: Session, row: ScheduledMessage, *, code: str | None, opted_out: bool,
                                now: datetime) -> None:
    """Act on `row`, an SMS just marked failed for good. `opted_out`: the code says the recipient unsubscribed.

    Runs in a savepoint and never raises: whatever goes wrong here (a fallback row that already exists, a bug)
    is logged and undone on its own, so the failure itself is still recorded and no claim is left stranded."""
    try:
        with session.begin_nested():
            if row.kind == MessageKind.PAGE:
                _reroute_page(session, row, now)
            elif row.enrollment_id is not None:
                _patient_fallback(session, row, code=code, opted_out=opted_out, now=now)
    except Exception as exc:  # the failure is recorded whatever happens to what follows from it
        log.error("fallback for message %s not written: %s", row.id, type(exc).__name__)


def email_instead(session: Session, row: ScheduledMessage, *, now: datetime) -> None:
    """`row`, a patient's SMS, was not sent because they opted out of SMS after it was planned: the same text goes
    by email when they have one and allow it (a warning-signs message must still reach them). Never raises."""
    try:
        with session.begin_nested():
            _patient_fallback(session, row, code=None, opted_out=False, now=now)
    except Exception as exc:  # the skip is recorded whatever happens here
        log.error("email instead of message %s not written: %s", row.id, type(exc).__name__)


def _reroute_page(session: Session, row: ScheduledMessage, now: datetime) -> None:
    if row.escalation_id is not None:
        escalation_paging.repage_after_failure(session, row, now=now)
    elif row.review_item_id is not None:
        review_paging.repage_after_failure(session, row, now=now)


def _patient_fallback(session: Session, row: ScheduledMessage, *, code: str | None, opted_out: bool,
                      now: datetime) -> None:
    patient = session.scalars(select(Patient).join(Enrollment).where(Enrollment.id == row.enrollment_id)).one()
    if opted_out and patient.sms_opted_out_at is None:
        patient.sms_opted_out_at, patient.sms_opt_out_source = now, f"carrier:{code}"
    if not patient.email_allowed or _has_email_copy(session, row):
        return
    session.add(M(kind=row.kind, enrollment_id=row.enrollment_id, step=row.step, channel=Channel.EMAIL,
                  template=row.template, body=row.body, is_checkin=row.is_checkin, is_safety=row.is_safety,
                  red_flag=row.red_flag, planned_at=row.planned_at, due_at=now, fresh_until=row.fresh_until,
                  fallback_of_id=row.id))
    session.flush()  # inside the savepoint, so a row that appeared meanwhile undoes only this insert


def _has_email_copy(session: Session, row: ScheduledMessage) -> bool:
    """An email for the same step exists already (an earlier fallback, or the step's own email)."""
    return session.scalar(select(M.id).where(M.enrollment_id == row.enrollment_id, M.step == row.step,
                                             M.channel == Channel.EMAIL).limit(1)) is not None
