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

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session, contains_eager

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


@dataclass
class Senders:
    """Who may have sent a reply, from one round trip: the clinics owning the number it was sent to (None when the
    number decides nothing), the patients with the sender's phone at those clinics (at any clinic when None), by
    clinic, and each such patient's treatments (any status, newest first)."""

    owners: list[Clinic] | None
    patients: list[Patient]
    enrollments: dict[int, list[Enrollment]]


def find_senders(session: Session, phone: str, to_number: str | None, messaging_service_sid: str | None = None
                 ) -> Senders:
    """The owner clinics, patients and treatments for a reply from `phone` to `to_number`, in one query.

    Owners: the clinic(s) with that `sms_from`, else those using the default sender when it is that
    (AFTERCARE_TWILIO_FROM, or any number of the Messaging Service AFTERCARE_TWILIO_MESSAGING_SERVICE_SID, which
    Twilio names in the webhook's MessagingServiceSid), else None."""
    settings = get_settings()
    default = bool((to_number and to_number == settings.twilio_from) or (
        messaging_service_sid and messaging_service_sid == settings.twilio_messaging_service_sid))
    rows = session.execute(_senders_query(default), {"phone": phone, "to": to_number})
    clinics: dict[int, Clinic] = {}
    patients: dict[int, Patient] = {}
    enrollments: dict[int, list[Enrollment]] = {}
    for clinic, patient, enrollment in rows:
        clinics[clinic.id] = clinic
        if patient is not None:
            patients[patient.id] = patient
            enrollments.setdefault(patient.id, [])
        if enrollment is not None:
            enrollments[patient.id].append(enrollment)
    owners = [c for c in clinics.values() if to_number and c.sms_from == to_number]
    if not owners and default:
        owners = [c for c in clinics.values() if c.sms_from is None]
    if owners:
        ids = {c.id for c in owners}
        return Senders(owners, [p for p in patients.values() if p.clinic_id in ids], enrollments)
    return Senders(None, list(patients.values()), enrollments)


def identify(senders: Senders, body: str, now: datetime) -> list[Recipient]:
    """The clinic(s) a reply from these candidate patients goes to, one Recipient each.

    Between clinics, the one with a treatment still in its care window wins; when none or several are, every
    candidate clinic gets the reply. Within a clinic, a shared phone's reply is attributed to the one patient it
    names by first name, else to the one with a treatment in care; else to nobody in particular (all candidates).
    """
    by_clinic = [list(group) for _, group in groupby(senders.patients, key=lambda p: p.clinic_id)]
    in_care = _in_care_enrollments(senders, now)
    live = [group for group in by_clinic if any(in_care.get(p.id) for p in group)]
    if len(live) == 1:
        by_clinic = live
    recipients = [_recipient(group, in_care, body) for group in by_clinic]
    for recipient in recipients:
        if recipient.patient is not None and not recipient.enrollments:
            current = _current_enrollment(senders.enrollments[recipient.patient.id])
            recipient.enrollments = [current] if current else []
    return recipients


@cache
def _senders_query(default_sender: bool) -> Select:
    """Clinics owning the number `to` (and those on the default sender, when it is that), and every clinic,
    patient and treatment for the phone `phone`. Built once: building a statement costs more than running it."""
    owning = Clinic.sms_from == bindparam("to")  # NULL when there is no To: then no clinic owns it
    if default_sender:
        owning = owning | Clinic.sms_from.is_(None)
    return (select(Clinic, Patient, Enrollment)
            .outerjoin(Patient, (Patient.clinic_id == Clinic.id) & (Patient.phone == bindparam("phone")))
            .outerjoin(Enrollment, Enrollment.patient_id == Patient.id)
            .where(owning | Patient.id.is_not(None))
            # The clinic and patient of each row are in that row: no joins or lookups of their own.
            .options(contains_eager(Patient.clinic), contains_eager(Enrollment.patient))
            .order_by(Clinic.id, Patient.id, Enrollment.treated_at.desc(), Enrollment.id.desc()))


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


def _in_care_enrollments(senders: Senders, now: datetime) -> dict[int, list[Enrollment]]:
    """Each patient's treatments still in care: not cancelled, and within their protocol's span plus a week."""
    found: dict[int, list[Enrollment]] = {}
    for patient in senders.patients:
        for enrollment in senders.enrollments[patient.id]:
            if (enrollment.status != EnrollmentStatus.CANCELLED
                    and enrollment.treated_at <= now <= enrollment.treated_at + care_span(enrollment.treatment)):
                found.setdefault(patient.id, []).append(enrollment)
    return found


def _current_enrollment(enrollments: list[Enrollment]) -> Enrollment | None:
    """A patient with no treatment in care: their newest treatment, not cancelled if they have one
    (`enrollments` newest first)."""
    live = [e for e in enrollments if e.status != EnrollmentStatus.CANCELLED]
    return (live or enrollments or [None])[0]


@cache
def care_span(treatment: str) -> timedelta:
    """How long after a treatment a reply is still about it: its protocol's last step (a day-N step may come up to
    a day after its earliest offset) plus a week."""
    try:
        steps = load_protocol(treatment).steps
    except ProtocolError:
        return timedelta(days=30)
    return max(step.when.earliest_offset() for step in steps) + timedelta(days=1) + _AFTER_LAST_STEP
