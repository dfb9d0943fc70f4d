"""Enrolling a patient after a session writes the whole care protocol as scheduled messages."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aftercare import audit
from aftercare.clinics import get_clinic
from aftercare.contact import check_name, check_timezone, normalize_email, normalize_phone, phone_region
from aftercare.errors import AftercareError, InputError, NotFound
from aftercare.models import (
    Channel,
    Clinic,
    Enrollment,
    EnrollmentStatus,
    MessageKind,
    MessageStatus,
    Patient,
    ScheduledMessage,
    utcnow,
)
from aftercare.protocols import LANGUAGES, Protocol, ProtocolError, load_protocol
from aftercare.schedule.planner import QuietHours, due_at, step_time


@dataclass(frozen=True)
class EnrollmentRequest:
    """A validated enrollment: every field already checked and normalised."""

    first_name: str
    phone: str
    email: str | None
    timezone: str
    language: str
    treatment: str
    treated_at: datetime
    sms_consent: bool = True
    email_consent: bool = True


@dataclass(frozen=True)
class EnrollResult:
    enrollment: Enrollment
    patient: Patient
    scheduled: int
    created: bool
    consent_changed: bool = False
    skipped: tuple[dict[str, str], ...] = ()
    differs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """`sms`: whether SMS will reach the patient ("allowed", or why not: "opted_out", "no_consent");
        `consent_changed`: this call recorded a consent answer that differed from the one on file;
        `skipped`: the steps that will not be sent, in protocol order, as [{"step": id, "reason": "stale"}];
        `differs`: the details given that differ from those on file for a known patient (kept as on file: change
        them with `aftercare patient update`), e.g. ["email", "language"]."""
        return {"enrollment_id": self.enrollment.id, "patient_id": self.patient.id, "scheduled": self.scheduled,
                "created": self.created, "sms": _sms_state(self.patient), "consent_changed": self.consent_changed,
                "skipped": [dict(item) for item in self.skipped], "differs": list(self.differs)}


def _sms_state(patient: Patient) -> str:
    if patient.sms_opted_out_at is not None:
        return "opted_out"
    return "allowed" if patient.sms_consent else "no_consent"


def check_language(language: str | None) -> str:
    """The language code in lower case ("ID" -> "id"); InputError when it is not one we write in."""
    value = (language or "").strip().lower()
    if value not in LANGUAGES:
        raise InputError(f"unknown language {value[:16]!r}; choose one of: {', '.join(LANGUAGES)}")
    return value


def check_treatment(treatment: str) -> Protocol:
    """The care protocol of a treatment key (any case); InputError naming the known ones otherwise."""
    try:
        return load_protocol(treatment)
    except ProtocolError as exc:
        raise InputError(str(exc)) from None


def validate_request(clinic: Clinic, *, first_name: str, phone: str, email: str | None, timezone: str | None,
                     language: str, treatment: str, treated_at: datetime, sms_consent: bool = True,
                     email_consent: bool = True, now: datetime | None = None) -> EnrollmentRequest:
    """Check everything before anything is written, so bad input never leaves half an enrollment. Treatment keys
    and languages are taken in any case ("Dermal-Filler", "ID")."""
    language, protocol = check_language(language), check_treatment(treatment)
    treatment = protocol.key
    timezone = timezone or clinic.timezone
    check_timezone(timezone)
    if treated_at.tzinfo is None:
        raise InputError("treatment time has no UTC offset")
    check_treatment_time(treated_at, now or utcnow(), protocol=protocol, tz=ZoneInfo(timezone))
    return EnrollmentRequest(
        first_name=check_name(first_name, field="first name", max_length=100),
        phone=normalize_phone(phone, region=phone_region(clinic.phone)),
        email=normalize_email(email), timezone=timezone, language=language, treatment=treatment,
        treated_at=treated_at, sms_consent=sms_consent, email_consent=email_consent,
    )


# Enrolling happens after the session: a treatment time ahead of now (beyond clock skew between the clinic's
# computer and ours) is a typo or a booking, not a session, and its first-night messages would be planned around
# a time that has not happened.
MAX_AHEAD = timedelta(minutes=15)


def check_treatment_time(treated_at: datetime, now: datetime, *, protocol: Protocol, tz: tzinfo) -> None:
    """InputError when the treatment is more than 15 minutes ahead of `now`, or so long ago that the protocol's
    last step is already past (every message would be skipped as stale, and the enrollment would do nothing)."""
    if treated_at > now + MAX_AHEAD:
        raise InputError("treatment time is in the future; enroll after the session, with the time it took place")
    last = max(step_time(step, treated_at=treated_at, tz=tz) for step in protocol.steps)
    if last < now:
        raise InputError(f"treatment time is too long ago: the whole {protocol.key} protocol (last step "
                         f"{_ago(now - last)} ago) is already past; check the date")


def _ago(delta: timedelta) -> str:
    return f"{delta.days} days" if delta.days >= 2 else f"{int(delta.total_seconds() // 3600)} hours"


def enroll(session: Session, *, clinic_slug: str, first_name: str, phone: str, email: str | None = None,
           timezone: str | None = None, language: str | None = None, treatment: str, treated_at: datetime,
           sms_consent: bool | None = None, email_consent: bool | None = None, now: datetime | None = None,
           actor: str = "cli") -> EnrollResult:
    """Enroll a patient (found by clinic, phone and first name; created if new) for one treatment session.

    `sms_consent` / `email_consent`: True or False when the clinic recorded the patient's answer for this
    enrollment (True lifts an earlier SMS opt-out: consent given again); None keeps what is on file (yes for a new
    patient). The schedule is planned on the consent the patient has after that. Raises InputError, NotFound.
    """
    now = now or utcnow()
    clinic = get_clinic(session, clinic_slug)
    request = validate_request(clinic, first_name=first_name, phone=phone, email=email, timezone=timezone,
                               language=language or "en", treatment=treatment, treated_at=treated_at,
                               sms_consent=sms_consent is not False, email_consent=email_consent is not False,
                               now=now)
    patient, new = _find_or_create_patient(session, clinic, request)
    given = {"email": request.email, "language": language and request.language,
             "timezone": timezone and request.timezone}
    differs = () if new else tuple(f for f, value in given.items() if value and getattr(patient, f) not in (None, value))
    existing = _existing_enrollment(session, patient.id, request)
    email_added = bool(request.email) and not patient.email
    changed = _record_consent(session, patient, sms=sms_consent, email=email_consent, fill_email=request.email,
                              actor=actor)
    if changed or email_added:
        resume_skipped(session, patient, now)
    if existing is not None:
        return EnrollResult(existing, patient, _count_messages(session, existing.id), created=False,
                            consent_changed=changed, skipped=_skipped(session, existing.id), differs=differs)
    planned = replace(request, sms_consent=patient.sms_allowed, email=patient.email,
                      email_consent=patient.email_consent)
    try:
        with session.begin_nested():
            enrollment, scheduled = _create_enrollment(session, clinic, patient, planned, now)
    except IntegrityError:
        # Someone enrolled the same session concurrently: theirs stands, ours changes nothing.
        existing = _existing_enrollment(session, patient.id, request)
        return EnrollResult(existing, patient, _count_messages(session, existing.id), created=False,
                            skipped=_skipped(session, existing.id))
    audit.record(session, actor=actor, action="enrollment.created", subject_type="enrollment",
                 subject_id=enrollment.id, treatment=request.treatment, scheduled=scheduled)
    return EnrollResult(enrollment, patient, scheduled, created=True, skipped=_skipped(session, enrollment.id),
                        differs=differs)


def _find_or_create_patient(session: Session, clinic: Clinic, request: EnrollmentRequest) -> tuple[Patient, bool]:
    """(patient, created): the clinic's patient with this phone and first name (a family phone carries several
    people), or a new one. Two enrollments of one new patient at once make one patient: the loser of the insert race
    finds the winner's."""
    query = select(Patient).where(Patient.clinic_id == clinic.id, Patient.phone == request.phone,
                                  Patient.name_key == Patient.key_for(request.first_name))
    patient = session.scalar(query)
    if patient is not None:
        return patient, False
    patient = Patient(clinic_id=clinic.id, phone=request.phone, first_name=request.first_name,
                      email=request.email, timezone=request.timezone, language=request.language,
                      sms_consent=request.sms_consent, email_consent=request.email_consent)
    try:
        with session.begin_nested():
            session.add(patient)
            session.flush()
    except IntegrityError:
        return session.scalars(query).one(), False
    return patient, True


def _record_consent(session: Session, patient: Patient, *, sms: bool | None, email: bool | None,
                    fill_email: str | None, actor: str) -> bool:
    """Apply the consent the clinic recorded at this enrollment (None: nothing recorded), audited; an email given
    for a patient who had none is kept (an email on file is never overwritten). Returns whether consent changed."""
    if fill_email and not patient.email:
        patient.email = fill_email
    before = (patient.sms_allowed, patient.email_consent)
    if sms is True and not patient.sms_allowed:
        patient.sms_consent, patient.sms_opted_out_at, patient.sms_opt_out_source = True, None, None
        audit.record(session, actor=actor, action="consent.sms_opted_in", subject_type="patient",
                     subject_id=patient.id, source="enrollment")
    elif sms is False and patient.sms_consent:
        patient.sms_consent = False
        audit.record(session, actor=actor, action="consent.sms_withdrawn", subject_type="patient",
                     subject_id=patient.id, source="enrollment")
    if email is not None and email != patient.email_consent:
        patient.email_consent = email
        audit.record(session, actor=actor, action=f"consent.email_{'given' if email else 'withdrawn'}",
                     subject_type="patient", subject_id=patient.id, source="enrollment")
    return (patient.sms_allowed, patient.email_consent) != before


# Why a message planned for a channel was skipped because the patient could not be reached on it then.
_UNREACHABLE = {Channel.SMS: ("no_consent", "opted_out"), Channel.EMAIL: ("no_email", "no_email_consent")}


def resume_skipped(session: Session, patient: Patient, now: datetime) -> int:
    """The patient can now be reached where they could not (consent given again, an email added): the messages of
    their active enrollments skipped for that, still worth sending (fresh), are scheduled again. Returns how many."""
    channels = [c for c, ok in ((Channel.SMS, patient.sms_allowed), (Channel.EMAIL, patient.email_allowed)) if ok]
    resumed = 0
    active = select(Enrollment.id).where(Enrollment.patient_id == patient.id,
                                         Enrollment.status != EnrollmentStatus.CANCELLED)
    for channel in channels:
        resumed += session.execute(update(ScheduledMessage).where(
            ScheduledMessage.enrollment_id.in_(active), ScheduledMessage.channel == channel,
            ScheduledMessage.status == MessageStatus.SKIPPED,
            ScheduledMessage.skip_reason.in_(_UNREACHABLE[channel]), ScheduledMessage.fresh_until > now)
            .values(status=MessageStatus.SCHEDULED, skip_reason=None, skipped_at=None, updated_at=now)).rowcount
    return resumed


def _existing_enrollment(session: Session, patient_id: int, request: EnrollmentRequest) -> Enrollment | None:
    return session.scalar(select(Enrollment).where(
        Enrollment.patient_id == patient_id, Enrollment.treatment == request.treatment,
        Enrollment.treated_at == request.treated_at))


def _create_enrollment(session: Session, clinic: Clinic, patient: Patient, request: EnrollmentRequest,
                       now: datetime) -> tuple[Enrollment, int]:
    protocol = load_protocol(request.treatment)
    enrollment = Enrollment(patient_id=patient.id, clinic_id=clinic.id, treatment=protocol.key,
                            protocol_version=protocol.version, treated_at=request.treated_at)
    session.add(enrollment)
    session.flush()
    rows = plan_messages(protocol, clinic=clinic, request=request, now=now)
    for row in rows:
        row["enrollment_id"] = enrollment.id
    session.execute(ScheduledMessage.__table__.insert(), rows)
    return enrollment, sum(1 for row in rows if row["status"] == MessageStatus.SCHEDULED)


def plan_messages(protocol: Protocol, *, clinic: Clinic, request: EnrollmentRequest, now: datetime) -> list[dict]:
    """One outbox row per protocol step, as plain dicts (bulk import inserts them in large batches)."""
    tz = ZoneInfo(request.timezone)
    quiet = QuietHours.parse(f"{clinic.quiet_start}-{clinic.quiet_end}")
    rows = []
    for step in protocol.steps:
        planned = step_time(step, treated_at=request.treated_at, tz=tz)
        # Freshness counts from the raw time: a safety step is due then, so quiet hours never make it stale.
        fresh_until = planned + step.fresh_for
        due = due_at(step, planned=planned, now=now, tz=tz, quiet=quiet)
        channel, skip_reason = _channel_for(step.channel, request)
        if skip_reason is None and now > fresh_until:
            skip_reason = "stale"
        rows.append({
            "kind": MessageKind.REMINDER, "step": step.id, "channel": channel, "template": step.template,
            "is_checkin": step.checkin, "is_safety": step.safety,
            # A red-flag question is answered by SMS only: by email the text asks to call instead.
            "red_flag": step.red_flag.level if step.red_flag and channel == Channel.SMS else None,
            "planned_at": planned, "due_at": due, "fresh_until": fresh_until,
            "status": MessageStatus.SKIPPED if skip_reason else MessageStatus.SCHEDULED,
            "skip_reason": skip_reason, "skipped_at": now if skip_reason else None,
            "attempts": 0, "created_at": now, "updated_at": now,
        })
    return rows


def _channel_for(channel: str, request: EnrollmentRequest) -> tuple[str, str | None]:
    """The step's channel if the patient consented to it; SMS steps go by email for an email-only patient."""
    email_ok = bool(request.email) and request.email_consent
    if channel == Channel.SMS:
        if request.sms_consent:
            return Channel.SMS, None
        return (Channel.EMAIL, None) if email_ok else (Channel.SMS, "no_consent")
    return (Channel.EMAIL, None) if email_ok else (Channel.EMAIL, "no_email")


def _skipped(session: Session, enrollment_id: int) -> tuple[dict[str, str], ...]:
    """The enrollment's skipped reminders as ({"step": id, "reason": why}, ...), in the order they were due."""
    query = (select(ScheduledMessage.step, ScheduledMessage.skip_reason)
             .where(ScheduledMessage.enrollment_id == enrollment_id, ScheduledMessage.kind == MessageKind.REMINDER,
                    ScheduledMessage.status == MessageStatus.SKIPPED)
             .order_by(ScheduledMessage.planned_at, ScheduledMessage.id))
    return tuple({"step": step, "reason": reason} for step, reason in session.execute(query))


def _count_messages(session: Session, enrollment_id: int) -> int:
    query = select(ScheduledMessage.id).where(ScheduledMessage.enrollment_id == enrollment_id,
                                              ScheduledMessage.status == MessageStatus.SCHEDULED)
    return len(session.scalars(query).all())


def get_enrollment(session: Session, enrollment_id: int) -> Enrollment:
    enrollment = session.get(Enrollment, enrollment_id)
    if enrollment is None:
        raise NotFound(f"unknown enrollment {enrollment_id}")
    return enrollment


def pause(session: Session, enrollment_id: int, *, actor: str = "cli") -> Enrollment:
    return _change_status(session, enrollment_id, EnrollmentStatus.PAUSED, allowed_from={EnrollmentStatus.ACTIVE},
                          actor=actor)


def resume(session: Session, enrollment_id: int, *, actor: str = "cli") -> Enrollment:
    return _change_status(session, enrollment_id, EnrollmentStatus.ACTIVE, allowed_from={EnrollmentStatus.PAUSED},
                          actor=actor)


def cancel(session: Session, enrollment_id: int, *, actor: str = "cli") -> Enrollment:
    enrollment = _change_status(session, enrollment_id, EnrollmentStatus.CANCELLED,
                                allowed_from={EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED}, actor=actor)
    now = utcnow()
    session.execute(
        update(ScheduledMessage)
        .where(ScheduledMessage.enrollment_id == enrollment_id, ScheduledMessage.kind == MessageKind.REMINDER,
               ScheduledMessage.status == MessageStatus.SCHEDULED)
        .values(status=MessageStatus.CANCELLED, cancelled_at=now, updated_at=now)
    )
    return enrollment


def _change_status(session: Session, enrollment_id: int, status: EnrollmentStatus, *, allowed_from: set[str],
                   actor: str) -> Enrollment:
    enrollment = get_enrollment(session, enrollment_id)
    if enrollment.status == status:
        return enrollment
    if enrollment.status not in allowed_from:
        raise AftercareError(f"enrollment {enrollment_id} is {enrollment.status}; cannot make it {status}")
    previous = enrollment.status
    enrollment.status = status
    audit.record(session, actor=actor, action=f"enrollment.{status}", subject_type="enrollment",
                 subject_id=enrollment_id, previous=previous)
    return enrollment
