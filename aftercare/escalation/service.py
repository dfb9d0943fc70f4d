"""Opening, acknowledging and resolving escalations. Every step is written to the audit log."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from aftercare import audit, metrics
from aftercare.config import Settings
from aftercare.errors import AftercareError, InputError, NotFound
from aftercare.escalation.paging import queue_pages
from aftercare.models import (
    Enrollment,
    Escalation,
    EscalationLevel,
    EscalationStatus,
    InboundMessage,
    Patient,
    utcnow,
)

_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I: codes are typed on a phone


def repage_interval(level: str, settings: Settings) -> timedelta:
    minutes = settings.emergency_repage_minutes if level == EscalationLevel.EMERGENCY else settings.urgent_repage_minutes
    return timedelta(minutes=minutes)


def open_escalation(session: Session, *, patient: Patient | None, enrollment: Enrollment | None,
                    inbound: InboundMessage, level: str, signs: list[str], explanation: str,
                    clinic_id: int | None = None, enrollments: list[Enrollment] | None = None,
                    candidates: list[Patient] | None = None, now: datetime | None = None) -> Escalation:
    """Open (or raise) the escalation for this patient and queue the first pages at once.

    `enrollment` is the treatment the reply was read against; `enrollments` every treatment of the patient still
    in care (all are named, and all their routine reminders are held). `candidates` are the patients sharing the
    sender's phone when there are several: all are named. With no patient (a number on file nowhere, or a shared
    phone nobody can attribute) the escalation belongs to `clinic_id`, the clinic that owns the number the reply
    was sent to, and the sender's number is the way back.
    """
    now = now or utcnow()
    clinic_id = patient.clinic_id if patient is not None else clinic_id
    if clinic_id is None:
        raise ValueError("an escalation needs a patient or a clinic")
    enrollment_ids = sorted({e.id for e in [*(enrollments or []), *([enrollment] if enrollment else [])]})
    patient_ids = sorted(p.id for p in candidates or [])
    existing = _open_for(session, clinic_id, patient, inbound.from_phone)
    if existing is not None:
        existing.enrollment_ids = sorted(set(existing.enrollment_ids or []) | set(enrollment_ids))
        existing.patient_ids = sorted(set(existing.patient_ids or []) | set(patient_ids))
        return _follow_up(session, existing, inbound=inbound, level=level, signs=signs, now=now)
    escalation = Escalation(clinic_id=clinic_id, patient_id=patient.id if patient else None,
                            sender_phone=None if patient else inbound.from_phone,
                            enrollment_id=enrollment.id if enrollment else None, enrollment_ids=enrollment_ids,
                            patient_ids=patient_ids, level=level,
                            status=EscalationStatus.OPEN, code=_new_code(session), signs=signs,
                            explanation=explanation, opened_at=now, page_round=0)
    session.add(escalation)
    session.flush()
    audit.record(session, actor="triage", action="escalation.opened", subject_type="escalation",
                 subject_id=escalation.id, level=level, signs=signs, inbound_id=inbound.id)
    queue_pages(session, escalation, reply_text=inbound.body, now=now)
    return escalation


def _open_for(session: Session, clinic_id: int, patient: Patient | None, sender: str) -> Escalation | None:
    """The patient's open escalation at this clinic, whichever treatment it was opened on (one person, one
    emergency), or the one open for this sender's phone when the sender is nobody in particular."""
    query = select(Escalation).where(Escalation.clinic_id == clinic_id, Escalation.status == EscalationStatus.OPEN)
    if patient is None:
        query = query.where(Escalation.patient_id.is_(None), Escalation.sender_phone == sender)
    else:
        query = query.where(Escalation.patient_id == patient.id)
    return session.scalars(query.order_by(Escalation.id.desc()).limit(1)).first()


def _follow_up(session: Session, escalation: Escalation, *, inbound: InboundMessage, level: str, signs: list[str],
               now: datetime) -> Escalation:
    """A new dangerous reply on an open escalation: a more serious level, or an emergency sign not reported
    before ("now my vision is blurry too"), pages again at once."""
    new_signs = set(signs) - set(escalation.signs)
    escalation.signs = sorted(set(escalation.signs) | set(signs))
    raised = level == EscalationLevel.EMERGENCY and escalation.level != EscalationLevel.EMERGENCY
    worse = level == EscalationLevel.EMERGENCY and bool(new_signs)
    audit.record(session, actor="triage", action="escalation.followup", subject_type="escalation",
                 subject_id=escalation.id, level=level, raised=raised, new_signs=sorted(new_signs),
                 inbound_id=inbound.id)
    if raised or worse:
        escalation.level = level
        queue_pages(session, escalation, reply_text=inbound.body, now=now)
    return escalation


def _new_code(session: Session) -> str:
    while True:
        code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(6))
        if session.scalar(select(Escalation.id).where(Escalation.code == code)) is None:
            return code


def get_escalation(session: Session, escalation_id: int) -> Escalation:
    escalation = session.get(Escalation, escalation_id)
    if escalation is None:
        raise NotFound(f"unknown escalation {escalation_id}")
    return escalation


def find_by_code(session: Session, code: str) -> Escalation | None:
    return session.scalar(select(Escalation).where(Escalation.code == code.strip().upper()))


def find_escalation(session: Session, ref: str) -> Escalation:
    """An escalation by its id ("12", "#12") or by the code in the page SMS ("K7Q2PM", any case). A code made only
    of digits that is also another escalation's id is ambiguous: InputError asking for "#ID". NotFound when
    nothing matches."""
    text = (ref or "").strip()
    if text.startswith("#") and text[1:].isdigit():
        return get_escalation(session, int(text[1:]))
    by_id = session.get(Escalation, int(text)) if text.isdigit() and len(text) <= 12 else None
    code = text.upper()
    by_code = find_by_code(session, code) if len(code) == 6 and set(code) <= set(_CODE_ALPHABET) else None
    if by_id is not None and by_code is not None and by_id.id != by_code.id:
        raise InputError(f"{text} is both escalation {by_id.id}'s id and escalation {by_code.id}'s code; "
                         f"write #{by_id.id} for the id")
    found = by_code or by_id
    if found is None:
        raise NotFound(f"unknown escalation {text[:16]!r}: give its id or the code from the page")
    return found


def acknowledge(session: Session, escalation: Escalation, *, by: str, via: str = "cli",
                now: datetime | None = None) -> Escalation:
    if escalation.status != EscalationStatus.OPEN:
        by_whom = f" (by {escalation.acknowledged_by})" if escalation.acknowledged_by else ""
        raise AftercareError(f"escalation {escalation.id} is already {escalation.status}{by_whom}")
    escalation.status = EscalationStatus.ACKNOWLEDGED
    escalation.acknowledged_at = now or utcnow()
    escalation.acknowledged_by = by
    escalation.next_page_at = None
    metrics.observe_acknowledged(session, escalation)
    audit.record(session, actor=by, action="escalation.acknowledged", subject_type="escalation",
                 subject_id=escalation.id, via=via)
    return escalation


def resolve(session: Session, escalation: Escalation, *, by: str, note: str, via: str = "cli",
            now: datetime | None = None) -> Escalation:
    if escalation.status == EscalationStatus.RESOLVED:
        raise AftercareError(f"escalation {escalation.id} is already resolved")
    if not note.strip():
        raise AftercareError("a resolution note is required")
    now = now or utcnow()
    if escalation.status == EscalationStatus.OPEN:
        acknowledge(session, escalation, by=by, via=via, now=now)
    escalation.status = EscalationStatus.RESOLVED
    escalation.resolved_at, escalation.resolved_by, escalation.resolution_note = now, by, note.strip()
    audit.record(session, actor=by, action="escalation.resolved", subject_type="escalation",
                 subject_id=escalation.id, via=via)  # not the note: it may quote the patient (kept on the row)
    return escalation


def list_escalations(session: Session, *, open_only: bool = False, include_resolved: bool = False,
                     clinic_id: int | None = None) -> list[Escalation]:
    """Newest first. By default every unresolved escalation (open and acknowledged: both still need someone);
    `open_only`: only those nobody acknowledged; `include_resolved`: all. `clinic_id` narrows to one clinic."""
    query = select(Escalation).order_by(Escalation.opened_at.desc(), Escalation.id.desc())
    if open_only:
        query = query.where(Escalation.status == EscalationStatus.OPEN)
    elif not include_resolved:
        query = query.where(Escalation.status != EscalationStatus.RESOLVED)
    if clinic_id is not None:
        query = query.where(Escalation.clinic_id == clinic_id)
    return list(session.scalars(query))

