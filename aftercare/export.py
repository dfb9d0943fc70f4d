"""A patient's whole history for the medical record (`aftercare export`): the patient, their enrollments, every
message with its text, time and status, every reply, the escalations with their timeline, and the review items.
JSON keeps the structure; CSV is one row per event, in time order, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from aftercare import audit
from aftercare.audit import entries_for
from aftercare.errors import NotFound
from aftercare.importer import csv_cell
from aftercare.models import (
    Channel,
    Enrollment,
    Escalation,
    InboundMessage,
    MessageKind,
    Patient,
    ReviewItem,
    ScheduledMessage,
)
from aftercare.protocols import render, render_email
from aftercare.views import enrollment_view, iso, message_view

CSV_COLUMNS = ("at", "event", "id", "enrollment_id", "escalation_id", "channel", "status", "level", "step", "by",
               "text")


def export_patient(session: Session, patient_id: int, *, actor: str = "cli") -> dict[str, Any]:
    """{"patient", "enrollments", "messages", "replies", "escalations" (each with "timeline"), "review_items"}.
    Times are ISO 8601 UTC. The export itself is audited (personal data left the system). NotFound for an unknown
    patient."""
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound(f"unknown patient {patient_id}")
    audit.record(session, actor=actor, action="patient.exported", subject_type="patient", subject_id=patient_id)
    enrollments = list(session.scalars(select(Enrollment).where(Enrollment.patient_id == patient_id)
                                       .order_by(Enrollment.treated_at, Enrollment.id)))
    messages = session.scalars(select(ScheduledMessage).where(
        ScheduledMessage.enrollment_id.in_([e.id for e in enrollments]), ScheduledMessage.kind == MessageKind.REMINDER)
        .order_by(ScheduledMessage.due_at, ScheduledMessage.id))
    replies = session.scalars(select(InboundMessage).where(InboundMessage.patient_id == patient_id)
                              .order_by(InboundMessage.received_at, InboundMessage.id))
    return {
        "patient": _patient(patient),
        "enrollments": [enrollment_view(e) for e in enrollments],
        "messages": [{**message_view(m), "text": _text(m, patient), "failed_at": iso(m.failed_at),
                      "error": m.error} for m in messages],
        "replies": [{"id": r.id, "received_at": iso(r.received_at), "text": r.body, "handling": r.handling,
                     "level": r.level, "signs": r.signs or [], "escalation_id": r.escalation_id,
                     "num_media": r.num_media} for r in replies],
        "escalations": [_escalation(session, e) for e in _about_patient(session, Escalation, patient)],
        "review_items": [_review_item(item) for item in _about_patient(session, ReviewItem, patient)],
    }


def _text(row: ScheduledMessage, patient: Patient) -> str | None:
    """The message's words: its stored body, else its template rendered as delivery renders it (the patient's
    language and first name, the clinic's name and phone)."""
    if row.body or not row.template:
        return row.body
    values = {"first_name": patient.first_name, "clinic_name": patient.clinic.name, "clinic_phone": patient.clinic.phone}
    if row.channel == Channel.EMAIL:
        subject, body = render_email(row.template, patient.language, **values)
        return f"{subject}\n\n{body}"
    return render(row.template, patient.language, **values)


def _patient(patient: Patient) -> dict[str, Any]:
    return {"id": patient.id, "clinic": patient.clinic.slug, "first_name": patient.first_name,
            "phone": patient.phone, "email": patient.email, "timezone": patient.timezone,
            "language": patient.language, "sms_consent": patient.sms_consent,
            "email_consent": patient.email_consent, "sms_opted_out_at": iso(patient.sms_opted_out_at),
            "created_at": iso(patient.created_at), "forgotten_at": iso(patient.forgotten_at)}


def _about_patient(session: Session, model: type[Escalation] | type[ReviewItem], patient: Patient) -> list[Any]:
    """Rows naming the patient, or, when a shared phone could not be attributed, listing them as a candidate."""
    rows = session.scalars(select(model).where(model.clinic_id == patient.clinic_id,
                                               or_(model.patient_id == patient.id, model.patient_id.is_(None)))
                           .order_by(model.id))
    # patient_ids is JSON: filtering it in SQL differs per backend, and unattributed rows are few.
    return [row for row in rows if row.patient_id == patient.id or patient.id in (row.patient_ids or [])]


def _escalation(session: Session, escalation: Escalation) -> dict[str, Any]:
    pages = session.scalars(select(ScheduledMessage).where(ScheduledMessage.escalation_id == escalation.id,
                                                           ScheduledMessage.kind == MessageKind.PAGE)
                            .order_by(ScheduledMessage.id))
    timeline = [{"at": iso(escalation.opened_at), "event": "opened", "by": None, "status": None}]
    timeline += [{"at": iso(p.sent_at or p.failed_at or p.due_at), "event": "page", "by": None, "status": p.status,
                  "staff_id": p.staff_id, "channel": p.channel} for p in pages]
    if escalation.acknowledged_at:
        timeline.append({"at": iso(escalation.acknowledged_at), "event": "acknowledged",
                         "by": escalation.acknowledged_by, "status": None})
    if escalation.resolved_at:
        timeline.append({"at": iso(escalation.resolved_at), "event": "resolved", "by": escalation.resolved_by,
                         "status": None, "note": escalation.resolution_note})
    return {"id": escalation.id, "level": escalation.level, "status": escalation.status, "code": escalation.code,
            "signs": escalation.signs, "explanation": escalation.explanation,
            "enrollment_ids": escalation.enrollment_ids or [], "opened_at": iso(escalation.opened_at),
            "timeline": sorted(timeline, key=lambda event: event["at"] or ""),
            "audit": [{"at": iso(a.at), "actor": a.actor, "action": a.action} for a in
                      entries_for(session, subject_type="escalation", subject_id=escalation.id)]}


def _review_item(item: ReviewItem) -> dict[str, Any]:
    return {"id": item.id, "reason": item.reason, "level": item.level, "status": item.status,
            "inbound_id": item.inbound_id, "created_at": iso(item.created_at), "due_at": iso(item.due_at),
            "paged_at": iso(item.paged_at), "done_at": iso(item.done_at), "done_by": item.done_by, "note": item.note}


def events(history: dict[str, Any]) -> list[dict[str, Any]]:
    """The history as one event per row (CSV_COLUMNS), in time order."""
    patient = history["patient"]
    rows = [{"at": patient["created_at"], "event": "patient", "id": patient["id"],
             "text": f"{patient['first_name']} {patient['phone']} {patient['email'] or ''}".strip()}]
    rows += [{"at": e["treated_at"], "event": "enrollment", "id": e["id"], "enrollment_id": e["id"],
              "status": e["status"], "step": e["treatment"]} for e in history["enrollments"]]
    rows += [{"at": m["sent_at"] or m["failed_at"] or m["due_at"], "event": "message", "id": m["id"],
              "enrollment_id": m["enrollment_id"], "channel": m["channel"], "status": m["status"], "step": m["step"],
              "text": m["text"]} for m in history["messages"]]
    rows += [{"at": r["received_at"], "event": "reply", "id": r["id"], "escalation_id": r["escalation_id"],
              "channel": "sms", "status": r["handling"], "level": r["level"], "text": r["text"]}
             for r in history["replies"]]
    for escalation in history["escalations"]:
        rows += [{"at": t["at"], "event": f"escalation_{t['event']}", "id": escalation["id"],
                  "escalation_id": escalation["id"], "channel": t.get("channel"), "status": t["status"],
                  "level": escalation["level"], "by": t["by"], "text": t.get("note")} for t in escalation["timeline"]]
    for item in history["review_items"]:
        rows.append({"at": item["created_at"], "event": "review_item", "id": item["id"], "status": item["status"],
                     "level": item["level"], "step": item["reason"]})
        if item["done_at"]:
            rows.append({"at": item["done_at"], "event": "review_done", "id": item["id"], "by": item["done_by"],
                         "text": item["note"]})
    return sorted(rows, key=lambda row: row["at"] or "")


def to_csv(history: dict[str, Any]) -> str:
    """CSV text, one event per row; every cell passes through csv_cell, so none is read as a formula."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in events(history):
        writer.writerow([csv_cell(row.get(column), limit=None) for column in CSV_COLUMNS])
    return out.getvalue()
