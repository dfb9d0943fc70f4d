"""Handling one inbound SMS, the same code path for the Twilio webhook and `aftercare reply`.

Order (DESIGN section 5): record it -> compliance keywords (consent changes, answered) -> clinician ACK ->
match the sender to a patient -> triage -> escalate or answer.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import Insert, Update, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, make_transient_to_detached

from aftercare import audit
from aftercare.contact import normalize_phone
from aftercare.errors import AftercareError, InputError
from aftercare.escalation import RED_FLAG_SIGN
from aftercare.escalation.service import acknowledge, find_by_code, open_escalation
from aftercare.inbound.answers import asks_beyond_normal, read_answer
from aftercare.inbound.checkin import RedFlagQuestion, in_occlusion_window, triage_context
from aftercare.inbound.context import reply_context
from aftercare.inbound.disposition import Action, Disposition, dispose
from aftercare.inbound.identity import Recipient, find_senders, identify
from aftercare.inbound.keywords import Keyword, classify, is_conditional_opt_in
from aftercare.inbound.language import message_language
from aftercare.inbound.media import record_media
from aftercare.models import (
    Clinic,
    Enrollment,
    InboundMessage,
    OnCallStaff,
    Patient,
    utcnow,
)
from aftercare.protocols import render
from aftercare.protocols.templates import default_catalog
from aftercare.review.service import open_review_item, recently_held
from aftercare.triage import TriageLevel, TriageResult, triage
from aftercare.views import escalation_who

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
                       num_media: int = 0, messaging_service_sid: str | None = None,
                       now: datetime | None = None, media: list[tuple[str, str | None]] | None = None) -> Outcome:
    """Process one inbound SMS or MMS (`num_media` photos, Twilio's NumMedia) exactly once per provider SID.
    `to_number` (Twilio's To) or `messaging_service_sid` (MessagingServiceSid) decides the clinic.
    `media`: the photos' [(MediaUrlN, MediaContentTypeN)], recorded as MediaFile rows to fetch after the commit.
    The caller commits."""
    now = now or utcnow()
    body = _storable(body)
    sender = _normalise_sender(_storable(from_number))
    to_number = _normalise_sender(_storable(to_number)) if to_number else None
    inbound = _record(session, provider_sid=sid, from_phone=sender, to_phone=to_number, body=body[:MAX_BODY],
                      received_at=now, num_media=max(0, num_media), language=message_language(body))
    if inbound is None:  # a retry of a webhook already recorded (or being recorded right now): its first answer
        return _replay(session.scalar(select(InboundMessage).where(InboundMessage.provider_sid == sid)))
    if media:
        record_media(session, inbound.id, media)
    outcome = _process(session, inbound, now, messaging_service_sid)
    _write_outcome(session, inbound, outcome, now)
    log.info("inbound %s handled as %s level=%s", inbound.id, outcome.handling, outcome.level)
    return outcome


def _record(session: Session, **values: Any) -> InboundMessage | None:
    """The new inbound row, or None when its provider SID is on file already: one INSERT ... ON CONFLICT DO
    NOTHING RETURNING id. A concurrent retry of the same SID waits on the unique index until the first transaction
    ends, then finds the row committed (or inserts it, when the first rolled back).

    The row is returned detached, every column set: handling fills in who it is from and what became of it, and
    `_write_outcome` writes that with one UPDATE (the ORM's unit of work cost more than the statements)."""
    # Core statements run on the session's connection: the ORM's execute path has nothing to add to them.
    connection = session.connection()
    new_id = connection.execute(_insert_new(connection.dialect.name), values).scalar()
    if new_id is None:
        return None
    inbound = InboundMessage(id=new_id, **values, **dict.fromkeys(_OUTCOME_COLUMNS))
    make_transient_to_detached(inbound)
    return inbound


_OUTCOME_COLUMNS = ("patient_id", "enrollment_id", "handling", "level", "signs", "answer", "escalation_id")


@cache
def _insert_new(dialect: str) -> Insert:
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    table = InboundMessage.__table__
    return insert(table).on_conflict_do_nothing(index_elements=[table.c.provider_sid]).returning(table.c.id)


@cache
def _update_outcome() -> Update:
    table = InboundMessage.__table__
    return (update(table).where(table.c.id == bindparam("inbound_id"))
            .values({column: bindparam(f"new_{column}") for column in _OUTCOME_COLUMNS}))


def _write_outcome(session: Session, inbound: InboundMessage, outcome: Outcome, now: datetime) -> None:
    """Who the reply is from and what became of it, on its row and in the audit log: two statements."""
    inbound.handling, inbound.level, inbound.signs = outcome.handling, outcome.level, outcome.signs
    inbound.answer, inbound.escalation_id = outcome.answer, outcome.escalation_id
    values = {f"new_{column}": getattr(inbound, column) for column in _OUTCOME_COLUMNS}
    connection = session.connection()
    connection.execute(_update_outcome(), {"inbound_id": inbound.id, **values})
    audit.append(connection, at=now, actor="patient" if inbound.patient_id else "sender", action="inbound.received",
                 subject_type="inbound", subject_id=inbound.id, handling=outcome.handling, level=outcome.level,
                 escalation_id=outcome.escalation_id, review_id=outcome.review_id)


def _storable(text: str) -> str:
    """PostgreSQL text holds no NUL, and UTF-8 has no lone surrogates: drop the one, replace the others."""
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _replay(previous: InboundMessage) -> Outcome:
    return Outcome(level=previous.level, signs=list(previous.signs or []), escalation_id=previous.escalation_id,
                   answers=[previous.answer] if previous.answer else [], handling=previous.handling or "reply",
                   duplicate=True)


@lru_cache(maxsize=4096)  # a pure function of the text, and phonenumbers' parsing is not cheap
def _normalise_sender(raw: str) -> str:
    try:
        return normalize_phone(raw, field="sender")
    except InputError:
        return (raw or "").strip()[:32]


def _process(session: Session, inbound: InboundMessage, now: datetime, messaging_service_sid: str | None) -> Outcome:
    senders = find_senders(session, inbound.from_phone, inbound.to_phone, messaging_service_sid)
    owners, patients = senders.owners, senders.patients
    kw, whole = classify(inbound.body)
    if kw is None and is_conditional_opt_in(inbound.body) and patients and not any(p.sms_allowed for p in patients):
        kw, whole = Keyword.START, True
    outcome = Outcome()
    if kw is not None:
        outcome.answers.append(_apply_keyword(session, kw, patients, owners, inbound, now, whole=whole))
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
        clinics = owners or list(session.scalars(select(Clinic).order_by(Clinic.id)))
        return _unknown_sender(session, inbound, outcome, clinics, now)
    recipients = identify(senders, inbound.body, now)
    first = recipients[0]
    inbound.patient_id = first.patient.id if first.patient else None
    inbound.enrollment_id = first.enrollment.id if first.enrollment else None
    if len(recipients) == 1:
        return _triage_and_answer(session, inbound, first, outcome, now)
    return _for_every_clinic(session, inbound, recipients, outcome, now)


def _for_every_clinic(session: Session, inbound: InboundMessage, recipients: list[Recipient], outcome: Outcome,
                      now: datetime) -> Outcome:
    """A shared sending number and patients at several clinics, none of them (or several) still in care: each
    clinic reads the reply about its own patient. The sender gets one answer: the safety one naming no clinic when
    more than one clinic escalated."""
    results = [_triage_and_answer(session, inbound, r, replace(outcome, answers=list(outcome.answers)), now)
               for r in recipients]
    escalated = [r for r in results if r.escalation_id is not None]
    chosen = escalated[0] if escalated else results[0]
    if len(escalated) > 1:
        language = inbound.language or recipients[0].language
        chosen.answers = [*outcome.answers, render("unknown.safety", language, **_clinic_values(None))]
    chosen.level = max((r.level for r in results if r.level), key=lambda level: TriageLevel(level).rank,
                       default=chosen.level)
    chosen.signs = sorted({sign for r in results for sign in r.signs})
    chosen.review_id = chosen.review_id or next((r.review_id for r in results if r.review_id), None)
    return chosen


def _apply_keyword(session: Session, kw: Keyword, patients: list[Patient], owners: list[Clinic] | None,
                   inbound: InboundMessage, now: datetime, *, whole: bool) -> str:
    """STOP and START change consent to SMS only for the patients with this phone at the clinic(s) owning the
    number it was sent to (a STOP to clinic A says nothing about clinic B); everywhere when the number is no
    clinic's. Email consent is untouched."""
    patient = patients[0] if patients else None
    language = patient.language if patient else (inbound.language or "en")
    values = _clinic_values(patient.clinic if patient else (owners[0] if owners else None))
    ids = [p.id for p in patients]
    if kw == Keyword.STOP:
        # The keyword as typed ("sms:BERHENTI"), the keyword wrapped in politeness ("Stop please": "sms:STOP"),
        # or a sentence asking us to stop.
        single = len(inbound.body.split()) == 1
        source = (f"sms:{inbound.body.strip()[:40].upper()}" if single else f"sms:{kw.name}" if whole
                  else "sms:free-text")
        session.execute(update(Patient).where(Patient.id.in_(ids), Patient.sms_opted_out_at.is_(None))
                        .values(sms_opted_out_at=now, sms_opt_out_source=source))
        _audit_consent(session, patients, "consent.sms_opted_out", source=source, inbound_id=inbound.id)
        return render("optout.confirm", language, **values)
    if kw == Keyword.START:
        session.execute(update(Patient).where(Patient.id.in_(ids))
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
        text = (f"Acknowledged escalation {escalation.id} ({escalation.level}) for {escalation_who(session, escalation)}. "
                f"Call the patient: {escalation.callback_phone}")
    except AftercareError as exc:
        text = str(exc)
    return Outcome(handling="ack", escalation_id=escalation.id, answers=[text])


def _unknown_sender(session: Session, inbound: InboundMessage, outcome: Outcome, clinics: list[Clinic],
                    now: datetime) -> Outcome:
    """No patient has this number (a relative's phone, a new number): the clinic that owns the number it was sent
    to gets an escalation for a danger sign, a review item for anything else; nobody gets reassurance."""
    language = inbound.language or "en"
    result = triage(inbound.body, language)
    disposition = dispose(result, answerable=frozenset(), num_media=inbound.num_media)
    outcome.level, outcome.signs = disposition.level.value, disposition.signs
    outcome.handling = "unknown_sender" if outcome.handling == "reply" else outcome.handling
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
        item_id = open_review_item(session, clinic=clinic, inbound=inbound, reason="unknown_sender",
                                   level=disposition.level.value, now=now)
        outcome.review_id = outcome.review_id or item_id
    if clinics and not waiting and disposition.action is not Action.SILENT:
        key = "reply.holding" if len(clinics) == 1 else "unknown.safety"
        outcome.answers.append(render(key, language, **_clinic_values(clinics[0])))
    return outcome


def _triage_and_answer(session: Session, inbound: InboundMessage, recipient: Recipient, outcome: Outcome,
                       now: datetime) -> Outcome:
    patient, clinic = recipient.patient, recipient.clinic
    result, enrollment = _most_serious_reading(inbound.body, recipient, now)
    context = triage_context(enrollment, now)
    known = reply_context(session, recipient, inbound.from_phone, now)
    red_flag = known.red_flag
    answer = read_answer(inbound.body)
    rest = triage(answer.rest, recipient.language, **context) if answer and not answer.whole else None
    disposition = dispose(result, answerable=_answerable_now(enrollment, now), answer=answer, rest=rest,
                          red_flag=red_flag, num_media=inbound.num_media, open_escalation=known.open_escalation_id is not None,
                          asks=asks_beyond_normal(inbound.body))
    if disposition.action is Action.ANSWER and patient is None:
        # A shared phone and no telling whose reply it is: a person answers, knowing who might have written.
        disposition = replace(disposition, action=Action.REVIEW, reason="shared_phone")
    elif disposition.action is Action.ANSWER and not (outcome.handling == "reply" and enrollment is not None
                                                      and not known.answered_since_checkin):
        # Answered once already for this check-in: a question still needs a person; anything else is recorded.
        disposition = (replace(disposition, action=Action.REVIEW, reason="question") if "?" in inbound.body
                       else replace(disposition, action=Action.SILENT, reason="answered"))
    outcome.level, outcome.signs = disposition.level.value, disposition.signs
    # The answer goes in the language the patient wrote in, when that is clear; else in their profile's.
    language = inbound.language or recipient.language
    values = {"first_name": patient.first_name if patient else "", "clinic_name": clinic.name,
              "clinic_phone": clinic.phone}
    if disposition.action is Action.ESCALATE:
        escalation = open_escalation(session, patient=patient, enrollment=enrollment, inbound=inbound,
                                     clinic_id=clinic.id, level=disposition.level.value, signs=disposition.signs,
                                     explanation=_explanation(result, disposition, red_flag),
                                     enrollments=recipient.enrollments, candidates=_shared(recipient), now=now)
        outcome.escalation_id = escalation.id
        outcome.answers.insert(0, render(f"safety.{disposition.level.value}", language, **values))
    elif disposition.action is Action.REVIEW:
        holding = render("reply.holding", language, **values)
        _to_review(session, inbound, recipient, enrollment, disposition, outcome, holding if not known.recently_held
                   else None, in_risk_window=in_occlusion_window(enrollment, red_flag, now), now=now)
    elif disposition.action is Action.SILENT and known.open_escalation_id is not None:
        outcome.escalation_id = known.open_escalation_id  # the clinician sees it on the escalation's timeline
    elif disposition.action is Action.ANSWER:
        key = _routine_template(disposition.signs) if disposition.level is TriageLevel.ROUTINE else "reply.ok"
        outcome.answers.append(render(key, language, **values))
    return outcome


def _most_serious_reading(body: str, recipient: Recipient, now: datetime) -> tuple[TriageResult, Enrollment | None]:
    """Triage the reply against each treatment still in care (filler this morning, a booster an hour later) and
    keep the most serious reading: the rules differ by treatment and day, and a missed emergency is the worst
    outcome. Ties go to the newest treatment."""
    readings = [(triage(body, recipient.language, **triage_context(e, now)), e) for e in recipient.enrollments]
    if not readings:
        return triage(body, recipient.language), None
    return max(readings, key=lambda reading: reading[0].level.rank)


def _shared(recipient: Recipient) -> list[Patient]:
    return recipient.candidates if recipient.shared_phone else []


def _to_review(session: Session, inbound: InboundMessage, recipient: Recipient, enrollment: Enrollment | None,
               disposition: Disposition, outcome: Outcome, holding: str | None, *, in_risk_window: bool,
               now: datetime) -> None:
    """A person must read it; the patient gets the `holding` answer (None: they got one half an hour ago)."""
    outcome.review_id = open_review_item(
        session, clinic=recipient.clinic, inbound=inbound, reason=disposition.reason, level=disposition.level.value,
        enrollment_id=enrollment.id if enrollment else None, patient=recipient.patient,
        candidates=_shared(recipient), in_risk_window=in_risk_window, now=now)
    if holding is not None:
        outcome.answers.append(holding)


def _explanation(result: TriageResult, disposition: Disposition, red_flag: RedFlagQuestion | None) -> str:
    if RED_FLAG_SIGN not in disposition.signs or red_flag is None:
        return result.explanation
    said = f"answered YES to the check-in's red-flag question ({red_flag.level} signs)"
    return f"{said}; the reply itself: {result.explanation}" if result.signs else said


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
