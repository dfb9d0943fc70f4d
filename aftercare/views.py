"""What listings show: plain dicts for `--json` and for the CLI's tables (no phone numbers in logs; this is output)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aftercare.errors import NotFound
from aftercare.models import Clinic, Enrollment, Escalation, InboundMessage, OnCallStaff, Patient, ScheduledMessage


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def clinic_view(clinic: Clinic) -> dict[str, Any]:
    return {"id": clinic.id, "slug": clinic.slug, "name": clinic.name, "timezone": clinic.timezone,
            "phone": clinic.phone, "sms_from": clinic.sms_from, "email_from": clinic.email_from,
            "quiet_hours": f"{clinic.quiet_start}-{clinic.quiet_end}", "review_minutes": clinic.review_minutes}


def staff_view(staff: OnCallStaff) -> dict[str, Any]:
    return {"id": staff.id, "position": staff.position, "name": staff.name, "phone": staff.phone,
            "email": staff.email, "active": staff.active}


def message_view(row: ScheduledMessage) -> dict[str, Any]:
    return {"id": row.id, "enrollment_id": row.enrollment_id, "kind": row.kind, "step": row.step,
            "channel": row.channel, "due_at": iso(row.due_at), "status": row.status, "attempts": row.attempts,
            "sent_at": iso(row.sent_at), "delivered_at": iso(row.delivered_at), "reason": row.skip_reason,
            "error_code": row.error_code}


def enrollment_view(enrollment: Enrollment) -> dict[str, Any]:
    return {"id": enrollment.id, "treatment": enrollment.treatment, "protocol_version": enrollment.protocol_version,
            "treated_at": iso(enrollment.treated_at), "status": enrollment.status}


def list_messages(session: Session, *, enrollment_id: int | None = None, status: str | None = None,
                  limit: int | None = None) -> list[ScheduledMessage]:
    query = select(ScheduledMessage).order_by(ScheduledMessage.due_at, ScheduledMessage.id)
    if enrollment_id is not None:
        query = query.where(ScheduledMessage.enrollment_id == enrollment_id)
    if status:
        query = query.where(ScheduledMessage.status == status)
    return list(session.scalars(query.limit(limit)))


def patient_timeline(session: Session, patient_id: int) -> dict[str, Any]:
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound(f"unknown patient {patient_id}")
    enrollments = list(session.scalars(select(Enrollment).where(Enrollment.patient_id == patient_id)
                                       .order_by(Enrollment.treated_at)))
    ids = [e.id for e in enrollments]
    messages = list(session.scalars(select(ScheduledMessage).where(ScheduledMessage.enrollment_id.in_(ids))
                                    .order_by(ScheduledMessage.due_at, ScheduledMessage.id)))
    replies = list(session.scalars(select(InboundMessage).where(InboundMessage.patient_id == patient_id)
                                   .order_by(InboundMessage.received_at)))
    return {
        "patient": {"id": patient.id, "first_name": patient.first_name, "phone": patient.phone,
                    "email": patient.email, "timezone": patient.timezone, "language": patient.language,
                    "sms_consent": patient.sms_consent, "email_consent": patient.email_consent,
                    "sms_opted_out_at": iso(patient.sms_opted_out_at), "clinic": patient.clinic.slug},
        "enrollments": [enrollment_view(e) for e in enrollments],
        "timeline": sorted([_timeline_message(m) for m in messages] + [_timeline_reply(r) for r in replies],
                           key=lambda item: item["at"] or ""),
    }


def _timeline_message(row: ScheduledMessage) -> dict[str, Any]:
    at = row.delivered_at or row.sent_at or row.failed_at or row.skipped_at or row.cancelled_at or row.due_at
    return {"at": iso(at), "direction": "out", **message_view(row)}


def _timeline_reply(row: InboundMessage) -> dict[str, Any]:
    return {"at": iso(row.received_at), "direction": "in", "id": row.id, "channel": "sms", "status": row.handling,
            "level": row.level, "signs": row.signs or [], "escalation_id": row.escalation_id, "body": row.body}


def candidates_view(session: Session, patient_ids: list[int] | None) -> list[dict[str, Any]]:
    """The patients a reply from a shared phone may be about: [{"patient_id", "first_name"}]."""
    if not patient_ids:
        return []
    query = select(Patient.id, Patient.first_name).where(Patient.id.in_(patient_ids)).order_by(Patient.id)
    return [{"patient_id": pid, "first_name": name} for pid, name in session.execute(query)]


def treatments_view(session: Session, enrollment_ids: list[int] | None) -> list[dict[str, Any]]:
    """The treatments an escalation names: [{"enrollment_id", "treatment", "treated_at"}], newest first."""
    if not enrollment_ids:
        return []
    query = select(Enrollment).where(Enrollment.id.in_(enrollment_ids)).order_by(Enrollment.treated_at.desc())
    return [{"enrollment_id": e.id, "treatment": e.treatment, "treated_at": iso(e.treated_at)}
            for e in session.scalars(query)]


def escalation_who(session: Session, escalation: Escalation) -> str:
    """Who an escalation is about, for people (pages, ACK answers, listings)."""
    first_name = escalation.patient.first_name if escalation.patient else None
    return who(first_name, candidates_view(session, escalation.patient_ids))


def who(first_name: str | None, candidates: list[dict[str, Any]]) -> str:
    """Who a reply is from, for people: the patient's first name, or "Sari or Putri (shared phone)"."""
    if first_name and not candidates:
        return first_name
    if candidates and not first_name:
        return " or ".join(c["first_name"] for c in candidates) + " (shared phone)"
    if candidates:
        return f"{first_name} (shared phone with " + ", ".join(
            c["first_name"] for c in candidates if c["first_name"] != first_name) + ")"
    return "unknown sender"
