"""Handling one inbound SMS, the same code path for the Twilio webhook and `aftercare reply`.

Order (DESIGN section 5): record it -> compliance keywords (consent changes, answered) -> clinician ACK ->
match the sender to a patient -> triage -> escalate or answer.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aftercare import audit
from aftercare.contact import normalize_phone
from aftercare.errors import AftercareError, InputError
from aftercare.escalation.service import acknowledge, find_by_code, open_escalation
from aftercare.inbound.keywords import Keyword, classify, is_conditional_opt_in
from aftercare.models import (
    Clinic,
    Enrollment,
    EnrollmentStatus,
    InboundMessage,
    MessageStatus,
    OnCallStaff,
    Patient,
    ScheduledMessage,
    utcnow,
)
from aftercare.protocols import render
from aftercare.protocols.templates import default_catalog
from aftercare.triage import TriageLevel, triage

log = logging.getLogger(__name__)
_ACK = re.compile(r"^\s*ack\s+#?([A-Za-z0-9]{4,12})\s*$", re.IGNORECASE)
MAX_BODY = 1600  # Twilio's own limit for an SMS body


@dataclass
class Outcome:
    level: str | None = None
    signs: list[str] = field(default_factory=list)
    escalation_id: int | None = None
    answers: list[str] = field(default_factory=list)
    handling: str = "reply"
    duplicate: bool = False

    @property
    def answer(self) -> str | None:
        return "\n".join(self.answers) if self.answers else None

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "signs": self.signs, "escalation_id": self.escalation_id, "answer": self.answer}


def handle_inbound_sms(session: Session, *, sid: str, from_number: str, to_number: str | None, body: str,
                       now: datetime | None = None) -> Outcome:
    """Process one inbound SMS exactly once per provider SID. The caller commits."""
    now = now or utcnow()
    previous = session.scalar(select(InboundMessage).where(InboundMessage.provider_sid == sid))
    if previous is not None:
        return _replay(previous)
    body = _storable(body)
    sender = _normalise_sender(_storable(from_number))
    to_number = _normalise_sender(_storable(to_number)) if to_number else None
    inbound = InboundMessage(provider_sid=sid, from_phone=sender, to_phone=to_number, body=body[:MAX_BODY],
                             received_at=now)
    try:
        with session.begin_nested():
            session.add(inbound)
            session.flush()
    except IntegrityError:  # the same webhook retried concurrently: the first one handles it
        return _replay(session.scalar(select(InboundMessage).where(InboundMessage.provider_sid == sid)))
    with session.no_autoflush:  # one UPDATE of the inbound row at the end, not one per field as it is learned
        outcome = _process(session, inbound, now)
    inbound.handling, inbound.level, inbound.signs = outcome.handling, outcome.level, outcome.signs
    inbound.answer, inbound.escalation_id = outcome.answer, outcome.escalation_id
    audit.record(session, actor="patient" if inbound.patient_id else "sender", action="inbound.received",
                 subject_type="inbound", subject_id=inbound.id, handling=outcome.handling, level=outcome.level,
                 escalation_id=outcome.escalation_id)
    log.info("inbound %s handled as %s level=%s", inbound.id, outcome.handling, outcome.level)
    return outcome


def _storable(text: str) -> str:
    """PostgreSQL text holds no NUL, and UTF-8 has no lone surrogates: drop the one, replace the others."""
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _replay(previous: InboundMessage) -> Outcome:
    return Outcome(level=previous.level, signs=list(previous.signs or []), escalation_id=previous.escalation_id,
                   answers=[previous.answer] if previous.answer else [], handling=previous.handling or "reply",
                   duplicate=True)


def _normalise_sender(raw: str) -> str:
    try:
        return normalize_phone(raw, field="sender")
    except InputError:
        return (raw or "").strip()[:32]


def _process(session: Session, inbound: InboundMessage, now: datetime) -> Outcome:
    patients = _patients_for(session, inbound.from_phone, inbound.to_phone)
    kw, whole = classify(inbound.body)
    if kw is None and is_conditional_opt_in(inbound.body) and patients and not patients[0].sms_allowed:
        kw, whole = Keyword.START, True
    outcome = Outcome()
    if kw is not None:
        outcome.answers.append(_apply_keyword(session, kw, patients, inbound, now))
        outcome.handling = f"keyword:{kw}"
        if whole:
            return outcome
    ack = _ACK.match(inbound.body)
    if ack:
        acked = _clinician_ack(session, inbound, ack.group(1), now)
        if acked is not None:
            return acked
    if not patients:
        return _unknown_sender(inbound, outcome)
    patient = patients[0]
    inbound.patient_id = patient.id
    enrollment = _current_enrollment(session, patient.id)
    inbound.enrollment_id = enrollment.id if enrollment else None
    return _triage_and_answer(session, inbound, patient, enrollment, outcome, now)


def _patients_for(session: Session, phone: str, to_number: str | None) -> list[Patient]:
    """Every patient with this number, the one whose clinic owns the receiving number first."""
    patients = list(session.scalars(select(Patient).where(Patient.phone == phone).order_by(Patient.id.desc())))
    return sorted(patients, key=lambda p: p.clinic.sms_from != to_number) if to_number else patients


def _apply_keyword(session: Session, kw: Keyword, patients: list[Patient], inbound: InboundMessage,
                   now: datetime) -> str:
    patient = patients[0] if patients else None
    language = patient.language if patient else "en"
    values = _clinic_values(patient.clinic if patient else None)
    if kw == Keyword.STOP:
        source = f"sms:{inbound.body.strip()[:40].upper()}" if len(inbound.body.split()) == 1 else "sms:free-text"
        session.execute(update(Patient).where(Patient.phone == inbound.from_phone, Patient.sms_opted_out_at.is_(None))
                        .values(sms_opted_out_at=now, sms_opt_out_source=source))
        _audit_consent(session, patients, "consent.sms_opted_out", source=source, inbound_id=inbound.id)
        return render("optout.confirm", language, **values)
    if kw == Keyword.START:
        session.execute(update(Patient).where(Patient.phone == inbound.from_phone)
                        .values(sms_opted_out_at=None, sms_opt_out_source=None, sms_consent=True))
        _audit_consent(session, patients, "consent.sms_opted_in", inbound_id=inbound.id)
        return render("optin.confirm", language, **values)
    return render("help", language, **values)


def _audit_consent(session: Session, patients: list[Patient], action: str, **details: Any) -> None:
    for patient in patients:
        audit.record(session, actor="patient", action=action, subject_type="patient", subject_id=patient.id,
                     **details)


def _clinic_values(clinic: Clinic | None) -> dict[str, str]:
    if clinic is None:
        return {"first_name": "", "clinic_name": "your clinic", "clinic_phone": "your clinic's number"}
    return {"first_name": "", "clinic_name": clinic.name, "clinic_phone": clinic.phone}


def _clinician_ack(session: Session, inbound: InboundMessage, code: str, now: datetime) -> Outcome | None:
    staff = session.scalars(select(OnCallStaff).where(OnCallStaff.phone == inbound.from_phone)).all()
    escalation = find_by_code(session, code)
    if not staff or escalation is None or escalation.clinic_id not in {s.clinic_id for s in staff}:
        return None
    person = next(s for s in staff if s.clinic_id == escalation.clinic_id)
    try:
        acknowledge(session, escalation, by=person.name, via="sms", now=now)
        text = (f"Acknowledged escalation {escalation.id} ({escalation.level}) for {escalation.patient.first_name}. "
                f"Call the patient: {escalation.patient.phone}")
    except AftercareError as exc:
        text = str(exc)
    return Outcome(handling="ack", escalation_id=escalation.id, answers=[text])


def _current_enrollment(session: Session, patient_id: int) -> Enrollment | None:
    query = (select(Enrollment).where(Enrollment.patient_id == patient_id)
             .order_by((Enrollment.status == EnrollmentStatus.CANCELLED), Enrollment.treated_at.desc()).limit(1))
    return session.scalars(query).first()


def _unknown_sender(inbound: InboundMessage, outcome: Outcome) -> Outcome:
    """No patient has this number: still triage, and tell anyone in danger to call for help."""
    result = triage(inbound.body, "en")
    outcome.level, outcome.signs = result.level.value, list(result.signs)
    outcome.handling = "unknown_sender" if outcome.handling == "reply" else outcome.handling
    if result.level in (TriageLevel.EMERGENCY, TriageLevel.URGENT):
        outcome.answers.insert(0, render("unknown.safety", "en", first_name="", clinic_name="", clinic_phone=""))
    return outcome


def _triage_and_answer(session: Session, inbound: InboundMessage, patient: Patient, enrollment: Enrollment | None,
                       outcome: Outcome, now: datetime) -> Outcome:
    result = triage(inbound.body, patient.language)
    outcome.level, outcome.signs = result.level.value, list(result.signs)
    values = {"first_name": patient.first_name, "clinic_name": patient.clinic.name,
              "clinic_phone": patient.clinic.phone}
    if result.level in (TriageLevel.EMERGENCY, TriageLevel.URGENT):
        escalation = open_escalation(session, patient=patient, enrollment=enrollment, inbound=inbound,
                                     level=result.level.value, signs=list(result.signs),
                                     explanation=result.explanation, now=now)
        outcome.escalation_id = escalation.id
        outcome.answers.insert(0, render(f"safety.{result.level.value}", patient.language, **values))
        return outcome
    if outcome.handling == "reply" and _may_auto_answer(session, patient, enrollment):
        if result.level == TriageLevel.ROUTINE:
            outcome.answers.append(render(_routine_template(result.signs), patient.language, **values))
        else:
            outcome.answers.append(render("reply.ok", patient.language, **values))
    return outcome


def _routine_template(signs: list[str]) -> str:
    """The first sign with its own tip decides the answer; otherwise the general reassurance."""
    catalog = default_catalog()
    for sign in signs:
        if not catalog.missing_in(f"reply.routine.{sign}"):
            return f"reply.routine.{sign}"
    return "reply.routine"


def _may_auto_answer(session: Session, patient: Patient, enrollment: Enrollment | None) -> bool:
    """At most one automatic routine/ok answer per check-in, so a chatty patient is not answered by a robot."""
    if enrollment is None:
        return False
    last_checkin = session.scalar(
        select(ScheduledMessage.sent_at).where(
            ScheduledMessage.enrollment_id == enrollment.id, ScheduledMessage.is_checkin.is_(True),
            ScheduledMessage.status.in_([MessageStatus.SENT, MessageStatus.DELIVERED]))
        .order_by(ScheduledMessage.sent_at.desc()).limit(1))
    query = select(InboundMessage.id).where(InboundMessage.patient_id == patient.id,
                                            InboundMessage.handling == "reply",
                                            InboundMessage.level.in_(["routine", "ok"]),
                                            InboundMessage.answer.is_not(None))
    if last_checkin is not None:
        query = query.where(InboundMessage.received_at >= last_checkin)
    return session.scalar(query.limit(1)) is None
