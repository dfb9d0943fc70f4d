"""Pages live in the database: an open escalation's `next_page_at` is swept by every dispatcher tick, so
nothing about safety depends on the broker keeping a task. Each round pages the next person on the list."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from aftercare import audit
from aftercare.clinics import oncall_list
from aftercare.config import get_settings
from aftercare.models import (
    Channel,
    Clinic,
    Enrollment,
    Escalation,
    EscalationStatus,
    InboundMessage,
    MessageKind,
    MessageStatus,
    ScheduledMessage,
    utcnow,
)
from aftercare.protocols import render, render_email


def queue_due_pages(session: Session, *, now: datetime | None = None) -> int:
    """Page again for every open escalation whose next page time has come. Returns how many escalations."""
    now = now or utcnow()
    query = (select(Escalation).where(Escalation.status == EscalationStatus.OPEN, Escalation.next_page_at <= now)
             .with_for_update(skip_locked=True, of=Escalation))
    due = list(session.scalars(query))
    for escalation in due:
        escalation.page_round += 1
        queue_pages(session, escalation, reply_text=None, now=now)
    return len(due)


def queue_pages(session: Session, escalation: Escalation, *, reply_text: str | None, now: datetime) -> None:
    """Write this round's page (SMS and email) to the outbox, due now, and set the next round's time."""
    from aftercare.escalation.service import repage_interval

    clinic = session.get(Clinic, escalation.clinic_id)
    staff = oncall_list(session, clinic.id)
    person = staff[escalation.page_round % len(staff)] if staff else None
    values = _page_values(session, escalation, clinic, reply_text)
    targets = [(Channel.SMS, person.phone if person else clinic.phone)]
    if person and person.email:
        targets.append((Channel.EMAIL, person.email))
    for channel, recipient in targets:
        session.add(ScheduledMessage(
            kind=MessageKind.PAGE, enrollment_id=escalation.enrollment_id, escalation_id=escalation.id,
            staff_id=person.id if person else None, recipient=recipient,
            step=f"page-{escalation.id}-{escalation.page_round}-{escalation.level}", channel=channel,
            body=_page_body(channel, values), planned_at=now, due_at=now, status=MessageStatus.SCHEDULED))
    escalation.next_page_at = now + repage_interval(escalation.level, get_settings())
    audit.record(session, actor="dispatcher", action="escalation.paged", subject_type="escalation",
                 subject_id=escalation.id, round=escalation.page_round, staff_id=person.id if person else None,
                 channels=[c for c, _ in targets])


def _page_values(session: Session, escalation: Escalation, clinic: Clinic, reply_text: str | None) -> dict:
    patient = escalation.patient
    enrollment = session.get(Enrollment, escalation.enrollment_id) if escalation.enrollment_id else None
    if reply_text is None:
        reply_text = session.scalar(select(InboundMessage.body).where(InboundMessage.escalation_id == escalation.id)
                                    .order_by(InboundMessage.id.desc()).limit(1)) or ""
    reply = reply_text if len(reply_text) <= 300 else reply_text[:297] + "..."
    if not patient.sms_allowed:
        reply += " [patient has opted out of SMS: reach them by phone]"
    return {"level": escalation.level.upper(), "first_name": patient.first_name,
            "treatment": enrollment.treatment if enrollment else "unknown", "reply": reply, "code": escalation.code,
            "clinic_name": clinic.name, "clinic_phone": clinic.phone, "patient_phone": patient.phone}


def _page_body(channel: str, values: dict) -> str:
    if channel == Channel.EMAIL:
        subject, body = render_email("page.email", "en", **values)
        return f"{subject}\n\n{body}"
    text = render("page.sms", "en", **values)
    return text if values["patient_phone"] in text else f"{text} Patient: {values['patient_phone']}"
