"""Loading a claimed batch in one Core query: the rows delivery needs, as plain read-only snapshots.

The ORM would build four identity-mapped objects per message (message, enrollment, patient, clinic) and track
them for changes nobody makes here; at a thousand messages a second that bookkeeping was a fifth of the worker's
CPU. Delivery only reads these values and writes outcomes with UPDATE statements by id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection

from aftercare.models import Clinic, Enrollment, MessageStatus, Patient, ScheduledMessage

M = ScheduledMessage


@dataclass(frozen=True, slots=True)
class ClinicSnapshot:
    name: str
    phone: str
    sms_from: str | None
    email_from: str | None
    quiet_start: str
    quiet_end: str


@dataclass(frozen=True, slots=True)
class PatientSnapshot:
    first_name: str
    phone: str
    email: str | None
    language: str
    timezone: str
    sms_consent: bool
    sms_opted_out_at: datetime | None
    email_consent: bool
    clinic: ClinicSnapshot

    # The model's own consent rules, applied to this snapshot: one place for each rule.
    sms_allowed = property(Patient.sms_allowed.fget)
    email_allowed = property(Patient.email_allowed.fget)


@dataclass(frozen=True, slots=True)
class EnrollmentSnapshot:
    id: int
    status: str
    patient_id: int
    patient: PatientSnapshot


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    """One claimed row of scheduled_messages, with its enrollment, patient and clinic (None for pages)."""

    id: int
    kind: str
    channel: str
    template: str | None
    body: str | None
    recipient: str | None
    is_safety: bool
    due_at: datetime
    fresh_until: datetime | None
    sent_at: datetime | None
    error_code: str | None
    escalation_id: int | None
    review_item_id: int | None
    enrollment_id: int | None
    enrollment: EnrollmentSnapshot | None


_MESSAGE = (M.id, M.kind, M.channel, M.template, M.body, M.recipient, M.is_safety, M.due_at, M.fresh_until,
            M.sent_at, M.error_code, M.escalation_id, M.review_item_id, M.enrollment_id)
_ENROLLMENT = (Enrollment.status, Enrollment.patient_id)
_PATIENT = (Patient.first_name, Patient.phone, Patient.email, Patient.language, Patient.timezone,
            Patient.sms_consent, Patient.sms_opted_out_at, Patient.email_consent)
_CLINIC = (Clinic.name, Clinic.phone, Clinic.sms_from, Clinic.email_from, Clinic.quiet_start, Clinic.quiet_end)
_QUERY = (select(*_MESSAGE, *_ENROLLMENT, *_PATIENT, *_CLINIC)
          .outerjoin(Enrollment, Enrollment.id == M.enrollment_id)
          .outerjoin(Patient, Patient.id == Enrollment.patient_id)
          .outerjoin(Clinic, Clinic.id == Patient.clinic_id))


def load_claimed(connection: Connection, ids: list[int], token: str) -> list[ClaimedMessage]:
    """The rows of `ids` still claimed under `token`, in id order; rows another claim took are left out."""
    query = _QUERY.where(M.id.in_(ids), M.claim_token == token, M.status == MessageStatus.CLAIMED).order_by(M.id)
    clinics: dict[tuple, ClinicSnapshot] = {}  # one snapshot per clinic, shared by its rows
    return [_snapshot(tuple(row), clinics) for row in connection.execute(query)]


def _snapshot(row: tuple, clinics: dict[tuple, ClinicSnapshot]) -> ClaimedMessage:
    message, rest = row[:len(_MESSAGE)], row[len(_MESSAGE):]
    enrollment_values, rest = rest[:len(_ENROLLMENT)], rest[len(_ENROLLMENT):]
    patient_values, clinic_values = rest[:len(_PATIENT)], rest[len(_PATIENT):]
    enrollment = None
    enrollment_id = message[-1]
    if enrollment_id is not None and enrollment_values[0] is not None:
        clinic = clinics.get(clinic_values) or clinics.setdefault(clinic_values, ClinicSnapshot(*clinic_values))
        patient = PatientSnapshot(*patient_values, clinic=clinic)
        enrollment = EnrollmentSnapshot(enrollment_id, *enrollment_values, patient=patient)
    return ClaimedMessage(*message, enrollment=enrollment)
