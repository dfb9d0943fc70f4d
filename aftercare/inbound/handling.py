"""Handling one inbound SMS, the same code path for the Twilio webhook and `aftercare reply`.

Order (DESIGN section 5): record it -> compliance keywords (consent changes, answered) -> clinician ACK ->
match the sender to a patient -> triage -> escalate or answer.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aftercare import audit
from aftercare.config import get_settings
from aftercare.contact import normalize_phone
from aftercare.errors import AftercareError, InputError
from aftercare.escalation import RED_FLAG_SIGN
from aftercare.escalation.service import acknowledge, find_by_code, open_escalation
from aftercare.inbound.answers import asks_beyond_normal, read_answer
from aftercare.inbound.checkin import RedFlagQuestion, in_occlusion_window, last_red_flag_question, triage_context
from aftercare.inbound.disposition import Action, Disposition, dispose
from aftercare.inbound.keywords import Keyword, classify, is_conditional_opt_in
from aftercare.inbound.language import message_language
from aftercare.models import (
    Clinic,
    Enrollment,
    EnrollmentStatus,
    Escalation,
    EscalationStatus,
    InboundMessage,
    MessageStatus,
    OnCallStaff,
    Patient,
    ReviewItem,
    ScheduledMessage,
    utcnow,
)
from aftercare.protocols import render
from aftercare.protocols.templates import default_catalog
from aftercare.review.service import open_review_item, recently_held
from aftercare.triage import TriageLevel, TriageResult, triage

log = logging.getLogger(__name__)
# "ACK K7Q2PM", "Ack: k7q2pm", "ack #K7Q2PM thanks, on it": the code is the word right after ACK.
_ACK = re.compile(r"^\s*ack\b[\s:#.,-]*([A-Za-z0-9]{4,12})\b", re.IGNORECASE)
MAX_BODY = 1600  # Twilio's own limit for an SMS body
_ROUTINE_ANSWER = "reply.routine."
_STAFF_HELP = "Aftercare: to take a page, reply ACK and the code in it, e.g. ACK K7Q2PM."
_UNKNOWN_CODE = "Aftercare: unknown code. Reply ACK and the code from the page, e.g. ACK K7Q2PM."


@dataclass
class Outcome:
    level: str | None = None
    signs: list[str] = field(default_factory=list)
    escalation_id: int | None = None
    answers: list[str] = field(default_factory=list)
    handling: str = "reply"
    duplicate: bool = False
    review_id: int | None = None

    @property
    def answer(self) -> str | None:
        return "\n".join(self.answers) if self.answers else None

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "signs": self.signs, "escalation_id": self.escalation_id,
                "review_id": self.review_id, "handling": self.handling, "answer": self.answer}


def handle_inbound_sms(session: Session, *, sid: str, from_number: str, to_number: str | None, body: str,
                       num_media: int = 0, now: datetime | None = None) -> Outcome:
    """Process one inbound SMS or MMS (`num_media` photos, Twilio's NumMedia) exactly once per provider SID.
    The caller commits."""
    now = now or utcnow()
    previous = session.scalar(select(InboundMessage).where(InboundMessage.provider_sid == sid))
    if previous is not None:
        return _replay(previous)
    body = _storable(body)
    sender = _normalise_sender(_storable(from_number))
    to_number = _normalise_sender(_storable(to_number)) if to_number else None
    inbound = InboundMessage(provider_sid=sid, from_phone=sender, to_phone=to_number, body=body[:MAX_BODY],
                             received_at=now, num_media=max(0, num_media), language=message_language(body))
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
                 escalation_id=outcome.escalation_id, review_id=outcome.review_id)
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
    if not patients and _on_call_staff(session, inbound.from_phone):
        # A clinician's text is not a patient's reply: never triaged, never a review item.
        return Outcome(handling="staff", answers=[_UNKNOWN_CODE if ack else _STAFF_HELP])
    if not patients:
        return _unknown_sender(session, inbound, outcome, now)
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


def _on_call_staff(session: Session, phone: str) -> list[OnCallStaff]:
    """Active on-call staff with this phone (a clinician taken off the list can no longer act by SMS)."""
    return list(session.scalars(select(OnCallStaff).where(OnCallStaff.phone == phone, OnCallStaff.active.is_(True))))


def _clinician_ack(session: Session, inbound: InboundMessage, code: str, now: datetime) -> Outcome | None:
    staff = _on_call_staff(session, inbound.from_phone)
    escalation = find_by_code(session, code)
    if not staff or escalation is None or escalation.clinic_id not in {s.clinic_id for s in staff}:
        return None
    person = next(s for s in staff if s.clinic_id == escalation.clinic_id)
    try:
        acknowledge(session, escalation, by=person.name, via="sms", now=now)
        text = (f"Acknowledged escalation {escalation.id} ({escalation.level}) for {escalation.first_name}. "
                f"Call the patient: {escalation.callback_phone}")
    except AftercareError as exc:
        text = str(exc)
    return Outcome(handling="ack", escalation_id=escalation.id, answers=[text])


def _current_enrollment(session: Session, patient_id: int) -> Enrollment | None:
    query = (select(Enrollment).where(Enrollment.patient_id == patient_id)
             .order_by((Enrollment.status == EnrollmentStatus.CANCELLED), Enrollment.treated_at.desc()).limit(1))
    return session.scalars(query).first()


def _unknown_sender(session: Session, inbound: InboundMessage, outcome: Outcome, now: datetime) -> Outcome:
    """No patient has this number (a relative's phone, a new number): the clinic that owns the number it was sent
    to gets an escalation for a danger sign, a review item for anything else; nobody gets reassurance."""
    language = inbound.language or "en"
    result = triage(inbound.body, language)
    disposition = dispose(result, answerable=frozenset(), num_media=inbound.num_media)
    outcome.level, outcome.signs = disposition.level.value, disposition.signs
    outcome.handling = "unknown_sender" if outcome.handling == "reply" else outcome.handling
    clinics = _clinics_for_number(session, inbound.to_phone)
    if disposition.action is Action.ESCALATE:
        for clinic in clinics:
            escalation = open_escalation(session, patient=None, enrollment=None, inbound=inbound, clinic_id=clinic.id,
                                         level=disposition.level.value, signs=disposition.signs,
                                         explanation=result.explanation, now=now)
            outcome.escalation_id = outcome.escalation_id or escalation.id
        key = f"safety.{disposition.level.value}" if len(clinics) == 1 else "unknown.safety"
        outcome.answers.insert(0, render(key, language, **_clinic_values(clinics[0] if clinics else None)))
        return outcome
    waiting = recently_held(session, sender=inbound.from_phone, now=now)
    for clinic in clinics:
        item = open_review_item(session, clinic=clinic, inbound=inbound, reason="unknown_sender",
                                level=disposition.level.value, now=now)
        outcome.review_id = outcome.review_id or item.id
    if clinics and not waiting and disposition.action is not Action.SILENT:
        key = "reply.holding" if len(clinics) == 1 else "unknown.safety"
        outcome.answers.append(render(key, language, **_clinic_values(clinics[0])))
    return outcome


def _clinics_for_number(session: Session, to_number: str | None) -> list[Clinic]:
    """The clinic(s) a reply was sent to: the one whose sender number it is, or those using the default sender
    when it is that. When the number decides nothing (not sent, or no clinic's), every clinic is a candidate:
    a reply nobody is told about is the one outcome that must not happen."""
    if to_number:
        owners = list(session.scalars(select(Clinic).where(Clinic.sms_from == to_number).order_by(Clinic.id)))
        if not owners and to_number == get_settings().twilio_from:
            owners = list(session.scalars(select(Clinic).where(Clinic.sms_from.is_(None)).order_by(Clinic.id)))
        if owners:
            return owners
    return list(session.scalars(select(Clinic).order_by(Clinic.id)))


def _triage_and_answer(session: Session, inbound: InboundMessage, patient: Patient, enrollment: Enrollment | None,
                       outcome: Outcome, now: datetime) -> Outcome:
    context = triage_context(enrollment, now)
    result = triage(inbound.body, patient.language, **context)
    red_flag = last_red_flag_question(session, patient_id=patient.id, now=now)
    current = _unresolved_escalation(session, patient.id)
    answer = read_answer(inbound.body)
    rest = triage(answer.rest, patient.language, **context) if answer and not answer.whole else None
    disposition = dispose(result, answerable=_answerable_now(enrollment, now), answer=answer, rest=rest,
                          red_flag=red_flag, num_media=inbound.num_media, open_escalation=current is not None,
                          asks=asks_beyond_normal(inbound.body))
    if disposition.action is Action.ANSWER and not (outcome.handling == "reply" and _may_auto_answer(
            session, patient, enrollment)):
        # Answered once already for this check-in: a question still needs a person; anything else is recorded.
        disposition = (replace(disposition, action=Action.REVIEW, reason="question") if "?" in inbound.body
                       else replace(disposition, action=Action.SILENT, reason="answered"))
    outcome.level, outcome.signs = disposition.level.value, disposition.signs
    # The answer goes in the language the patient wrote in, when that is clear; else in their profile's.
    language = inbound.language or patient.language
    values = {"first_name": patient.first_name, "clinic_name": patient.clinic.name,
              "clinic_phone": patient.clinic.phone}
    if disposition.action is Action.ESCALATE:
        escalation = open_escalation(session, patient=patient, enrollment=enrollment, inbound=inbound,
                                     level=disposition.level.value, signs=disposition.signs,
                                     explanation=_explanation(result, disposition, red_flag), now=now)
        outcome.escalation_id = escalation.id
        outcome.answers.insert(0, render(f"safety.{disposition.level.value}", language, **values))
    elif disposition.action is Action.REVIEW:
        holding = render("reply.holding", language, **values)
        _to_review(session, inbound, patient, enrollment, disposition, outcome, holding,
                   in_risk_window=in_occlusion_window(enrollment, red_flag, now), now=now)
    elif disposition.action is Action.SILENT and current is not None:
        outcome.escalation_id = current.id  # the clinician sees it on the escalation's timeline
    elif disposition.action is Action.ANSWER:
        key = _routine_template(disposition.signs) if disposition.level is TriageLevel.ROUTINE else "reply.ok"
        outcome.answers.append(render(key, language, **values))
    return outcome


def _to_review(session: Session, inbound: InboundMessage, patient: Patient, enrollment: Enrollment | None,
               disposition: Disposition, outcome: Outcome, holding: str, *, in_risk_window: bool,
               now: datetime) -> None:
    """A person must read it; the patient gets the holding answer unless they got one half an hour ago."""
    waiting = recently_held(session, sender=inbound.from_phone, now=now)
    item = open_review_item(session, clinic=patient.clinic, inbound=inbound, reason=disposition.reason,
                            level=disposition.level.value, enrollment_id=enrollment.id if enrollment else None,
                            in_risk_window=in_risk_window, now=now)
    outcome.review_id = item.id
    if not waiting:
        outcome.answers.append(holding)


def _explanation(result: TriageResult, disposition: Disposition, red_flag: RedFlagQuestion | None) -> str:
    if RED_FLAG_SIGN not in disposition.signs or red_flag is None:
        return result.explanation
    said = f"answered YES to the check-in's red-flag question ({red_flag.level} signs)"
    return f"{said}; the reply itself: {result.explanation}" if result.signs else said


def _unresolved_escalation(session: Session, patient_id: int) -> Escalation | None:
    query = select(Escalation).where(Escalation.patient_id == patient_id, Escalation.status.in_(
        [EscalationStatus.OPEN, EscalationStatus.ACKNOWLEDGED])).order_by(Escalation.id.desc()).limit(1)
    return session.scalars(query).first()


def _routine_template(signs: list[str]) -> str:
    """The first sign's own answer (dispose() answers only signs that have one)."""
    return f"{_ROUTINE_ANSWER}{signs[0]}" if signs else "reply.routine"


# Swelling, redness and tenderness are expected in the first days; after day 3 they may be infection ("redness or
# swelling that worsens after day 2-3", CLINICAL-NOTES.md), so a person reads them instead of a robot.
_EARLY_SIGNS = frozenset({"swelling", "redness", "tenderness"})
_EARLY_DAYS = timedelta(days=3)


def _answerable_now(enrollment: Enrollment | None, now: datetime) -> frozenset[str]:
    if enrollment is not None and now - enrollment.treated_at > _EARLY_DAYS:
        return answerable_signs() - _EARLY_SIGNS
    return answerable_signs()


@cache
def answerable_signs() -> frozenset[str]:
    """The routine signs the clinic has written an answer for in every language (`reply.routine.<sign>`)."""
    catalog = default_catalog()
    keys = {key for texts in catalog.texts.values() for key in texts if key.startswith(_ROUTINE_ANSWER)}
    return frozenset(key.removeprefix(_ROUTINE_ANSWER) for key in keys if not catalog.missing_in(key))


def _may_auto_answer(session: Session, patient: Patient, enrollment: Enrollment | None) -> bool:
    """At most one automatic routine/ok answer per check-in (the last sent to the patient, whichever treatment),
    so a chatty patient is not answered by a robot. Holding answers to review items do not count."""
    if enrollment is None:
        return False
    last_checkin = session.scalar(
        select(ScheduledMessage.sent_at).join(Enrollment, ScheduledMessage.enrollment_id == Enrollment.id).where(
            Enrollment.patient_id == patient.id, ScheduledMessage.is_checkin.is_(True),
            ScheduledMessage.status.in_([MessageStatus.SENT, MessageStatus.DELIVERED]))
        .order_by(ScheduledMessage.sent_at.desc()).limit(1))
    reviewed = select(ReviewItem.id).where(ReviewItem.inbound_id == InboundMessage.id).exists()
    query = select(InboundMessage.id).where(InboundMessage.patient_id == patient.id,
                                            InboundMessage.handling == "reply",
                                            InboundMessage.level.in_(["routine", "ok"]),
                                            InboundMessage.answer.is_not(None), ~reviewed)
    if last_checkin is not None:
        query = query.where(InboundMessage.received_at >= last_checkin)
    return session.scalar(query.limit(1)) is None
