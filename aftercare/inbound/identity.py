"""Who a reply is from, and for whom: the receiving number decides the clinic, then the patient(s) at that clinic
with the sender's phone, then their treatments (issue 8).

Patients are stored per clinic and phone, and a phone may be shared: one person at two clinics, or a family phone
carrying two patients of one clinic. When the reply cannot be attributed, every candidate is named (each clinic
gets its own escalation or review item): a reply nobody is told about is the one outcome that must not happen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from itertools import groupby

from sqlalchemy import select
from sqlalchemy.orm import Session

from aftercare.config import get_settings
from aftercare.models import Clinic, Enrollment, EnrollmentStatus, Patient
from aftercare.protocols import ProtocolError, load_protocol

# A patient replies for a while after the last step of their protocol (a late answer to the last check-in).
_AFTER_LAST_STEP = timedelta(days=7)


@dataclass
class Recipient:
    """One clinic's view of a reply: the patient it is from (None when a shared phone cannot tell), every patient
    it may be about, and every treatment of theirs still in care (newest first)."""

    clinic: Clinic
    patient: Patient | None
    candidates: list[Patient]
    enrollments: list[Enrollment] = field(default_factory=list)

    @property
    def enrollment(self) -> Enrollment | None:
        return self.enrollments[0] if self.enrollments else None

    @property
    def language(self) -> str:
        return (self.patient or self.candidates[0]).language

    @property
    def shared_phone(self) -> bool:
        return len(self.candidates) > 1


def owner_clinics(session: Session, to_number: str | None, messaging_service_sid: str | None = None
                  ) -> list[Clinic] | None:
    """The clinic(s) whose sending number a reply was sent to: the one with that `sms_from`, or those using the
    default sender when it is that (AFTERCARE_TWILIO_FROM, or any number of the Messaging Service
    AFTERCARE_TWILIO_MESSAGING_SERVICE_SID, which Twilio names in the webhook's MessagingServiceSid).
    None when the number decides nothing (absent, or no clinic's)."""
    owners: list[Clinic] = []
    if to_number:
        owners = list(session.scalars(select(Clinic).where(Clinic.sms_from == to_number).order_by(Clinic.id)))
    settings = get_settings()
    default = (to_number and to_number == settings.twilio_from) or (
        messaging_service_sid and messaging_service_sid == settings.twilio_messaging_service_sid)
    if not owners and default:
        owners = list(session.scalars(select(Clinic).where(Clinic.sms_from.is_(None)).order_by(Clinic.id)))
    return owners or None


def patients_with_phone(session: Session, phone: str, clinics: list[Clinic] | None) -> list[Patient]:
    """Every patient with this phone at these clinics (at any clinic when `clinics` is None), by clinic."""
    query = select(Patient).where(Patient.phone == phone)
    if clinics is not None:
        query = query.where(Patient.clinic_id.in_([c.id for c in clinics]))
    return list(session.scalars(query.order_by(Patient.clinic_id, Patient.id)))


def identify(session: Session, patients: list[Patient], body: str, now: datetime) -> list[Recipient]:
    """The clinic(s) a reply from these candidate patients goes to, one Recipient each.

    Between clinics, the one with a treatment still in its care window wins; when none or several are, every
    candidate clinic gets the reply. Within a clinic, a shared phone's reply is attributed to the one patient it
    names by first name, else to the one with a treatment in care; else to nobody in particular (all candidates).
    """
    by_clinic = [list(group) for _, group in groupby(patients, key=lambda p: p.clinic_id)]
    in_care = _in_care_enrollments(session, [p.id for p in patients], now)
    live = [group for group in by_clinic if any(in_care.get(p.id) for p in group)]
    if len(live) == 1:
        by_clinic = live
    return [_recipient(group, in_care, body) for group in by_clinic]


def _recipient(group: list[Patient], in_care: dict[int, list[Enrollment]], body: str) -> Recipient:
    clinic = group[0].clinic
    if len(group) == 1:
        patient: Patient | None = group[0]
    else:
        patient = _named(group, body) or _only([p for p in group if in_care.get(p.id)])
    chosen = [patient] if patient is not None else group
    enrollments = sorted((e for p in chosen for e in in_care.get(p.id, [])), key=lambda e: e.treated_at,
                         reverse=True)
    return Recipient(clinic=clinic, patient=patient, candidates=group, enrollments=enrollments)


def _named(group: list[Patient], body: str) -> Patient | None:
    """The one candidate the reply says it is from: "this is Putri", "ini Putri", "Putri here", "Putri: ...",
    a sign-off "- Putri". A name merely appearing proves nothing: many names are everyday words ("indah banget"
    is "very beautiful", "ayu" is "pretty")."""
    text = " ".join(body.casefold().split())
    return _only([p for p in group if re.search(_NAMING.format(name=re.escape(p.name_key)), text)])


# How people say who is writing, in English and Indonesian. {name} is a casefolded first name.
_NAMING = (r"(?:\b(?:this is|it'?s|it is|i'?m|i am|my name is|from|ini|dari|saya|aku|nama saya)\s+(?:kak\s+)?{name}\b"
           r"|\b{name}\s+(?:here|di ?sini)\b"
           r"|^\W*{name}\s*[:,-]"
           r"|[-~]\s*{name}\W*$)")


def _only(patients: list[Patient]) -> Patient | None:
    return patients[0] if len(patients) == 1 else None


def _in_care_enrollments(session: Session, patient_ids: list[int], now: datetime) -> dict[int, list[Enrollment]]:
    """Each patient's treatments still in care: not cancelled, and within their protocol's span plus a week."""
    query = select(Enrollment).where(Enrollment.patient_id.in_(patient_ids),
                                     Enrollment.status != EnrollmentStatus.CANCELLED)
    found: dict[int, list[Enrollment]] = {}
    for enrollment in session.scalars(query):
        if enrollment.treated_at <= now <= enrollment.treated_at + care_span(enrollment.treatment):
            found.setdefault(enrollment.patient_id, []).append(enrollment)
    return found


@cache
def care_span(treatment: str) -> timedelta:
    """How long after a treatment a reply is still about it: its protocol's last step (a day-N step may come up to
    a day after its earliest offset) plus a week."""
    try:
        steps = load_protocol(treatment).steps
    except ProtocolError:
        return timedelta(days=30)
    return max(step.when.earliest_offset() for step in steps) + timedelta(days=1) + _AFTER_LAST_STEP
