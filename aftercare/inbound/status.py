"""Twilio delivery status callbacks: move a sent message to delivered, or failed with the carrier's code."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from aftercare.models import Enrollment, MessageStatus, Patient, ScheduledMessage, utcnow

# Codes that mean the person asked their carrier to stop messages from us.
OPT_OUT_CODES = {"21610"}


def apply_status(session: Session, *, message_sid: str, status: str, error_code: str | None,
                 now: datetime | None = None) -> bool:
    """Returns False when no message has that SID (e.g. a reply sent as TwiML)."""
    now = now or utcnow()
    row = session.scalar(select(ScheduledMessage).where(ScheduledMessage.provider_id == message_sid))
    if row is None:
        return False
    status = (status or "").lower()
    error_code = error_code.replace("\x00", "")[:32] if error_code else None
    if status == "delivered" and row.status in (MessageStatus.SENT, MessageStatus.CLAIMED):
        row.status, row.delivered_at = MessageStatus.DELIVERED, now
    elif status in ("undelivered", "failed") and row.status != MessageStatus.FAILED:
        row.status, row.failed_at = MessageStatus.FAILED, now
        row.error_code, row.error = error_code, f"carrier status {status}"
        if error_code in OPT_OUT_CODES and row.enrollment_id:
            patient_id = select(Enrollment.patient_id).where(Enrollment.id == row.enrollment_id).scalar_subquery()
            session.execute(update(Patient).where(Patient.id == patient_id, Patient.sms_opted_out_at.is_(None))
                            .values(sms_opted_out_at=now, sms_opt_out_source=f"carrier:{error_code}"))
    return True
