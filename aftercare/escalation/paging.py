"""Pages live in the database: an open escalation's `next_page_at` is swept by every dispatcher tick, so
nothing about safety depends on the broker keeping a task. Each round pages the next person on the list."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from aftercare import audit
from aftercare.clinics import oncall_list
from aftercare.config import get_settings
from aftercare.escalation import RED_FLAG_SIGN
from aftercare.models import (
    Channel,
    Clinic,
    Enrollment,
    Escalation,
    EscalationStatus,
    InboundMessage,
    MessageKind,
    MessageStatus,
    OnCallStaff,
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
    values = _page_values(session, escalation, clinic, reply_text)
    # The time in the step keeps a second page in the same round (a new emergency sign) apart from the first.
    person, channels = write_page(
        session, clinic, turn=escalation.page_round, template="page", values=values, now=now,
        step=f"page-{escalation.id}-{escalation.page_round}-{escalation.level}-{now:%Y%m%dT%H%M%S%f}",
        enrollment_id=escalation.enrollment_id, escalation_id=escalation.id)
    escalation.next_page_at = now + repage_interval(escalation.level, get_settings())
    audit.record(session, actor="dispatcher", action="escalation.paged", subject_type="escalation",
                 subject_id=escalation.id, round=escalation.page_round, staff_id=person.id if person else None,
                 channels=channels)


def write_page(session: Session, clinic: Clinic, *, turn: int, template: str, values: dict, now: datetime,
               step: str, **row: int | None) -> tuple[OnCallStaff | None, list[str]]:
    """Write one page to the outbox, due now: SMS (and email when they have one) to the on-call person whose
    `turn` it is (round-robin over the active list), or to the clinic's own phone when nobody is on call.
    `template` names the SMS text `<template>.sms` and the email `<template>.email`. Returns (person, channels)."""
    staff = oncall_list(session, clinic.id)
    person = staff[turn % len(staff)] if staff else None
    targets = [(Channel.SMS, person.phone if person else clinic.phone)]
    if person and person.email:
        targets.append((Channel.EMAIL, person.email))
    for channel, recipient in targets:
        session.add(ScheduledMessage(kind=MessageKind.PAGE, staff_id=person.id if person else None,
                                     recipient=recipient, step=step, channel=channel,
                                     body=_page_body(template, channel, values), planned_at=now, due_at=now,
                                     status=MessageStatus.SCHEDULED, **row))
    return person, [channel for channel, _ in targets]


def _page_values(session: Session, escalation: Escalation, clinic: Clinic, reply_text: str | None) -> dict:
    enrollment = session.get(Enrollment, escalation.enrollment_id) if escalation.enrollment_id else None
    if reply_text is None:
        reply_text = session.scalar(select(InboundMessage.body).where(InboundMessage.escalation_id == escalation.id)
                                    .order_by(InboundMessage.id.desc()).limit(1)) or ""
    reply = reply_text if len(reply_text) <= 300 else reply_text[:297] + "..."
    return {"level": escalation.level.upper(), "first_name": escalation.first_name,
            "treatment": enrollment.treatment if enrollment else "unknown", "reply": reply, "code": escalation.code,
            "clinic_name": clinic.name, "clinic_phone": clinic.phone, "patient_phone": escalation.callback_phone or "",
            "note": " ".join(_page_notes(escalation))}


def _page_notes(escalation: Escalation) -> list[str]:
    """What the clinician must know besides the words: outside the quote, so nobody reads it as the patient's."""
    notes = []
    if RED_FLAG_SIGN in escalation.signs:
        notes.append("They answered YES to the check-in's red-flag question.")
    if escalation.patient is None:
        notes.append("Sender not on file: call this number back.")
    elif not escalation.patient.sms_allowed:
        notes.append("Patient has opted out of SMS: reach them by phone.")
    return notes


def _page_body(template: str, channel: str, values: dict) -> str:
    # Pages go to the clinic's staff, in English: the on-call list has no language of its own yet.
    if channel == Channel.EMAIL:
        subject, body = render_email(f"{template}.email", "en", **values)
        return f"{subject}\n\n{body}"
    text = render(f"{template}.sms", "en", **values)
    phone = values.get("patient_phone")
    return text if not phone or phone in text else f"{text} Patient: {phone}"
