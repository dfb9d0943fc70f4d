"""Looking after patients on file: find, show, correct, record consent, and forget (erasure on request).

Every change is audited with what changed, never with the values: the audit log is append-only and outlives an
erasure, so personal data must never be written into it.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

import phonenumbers
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aftercare import audit
from aftercare.clinics import get_clinic
from aftercare.contact import check_name, check_timezone, normalize_email, normalize_phone, phone_region
from aftercare.errors import AftercareError, InputError, NotFound
from aftercare.models import (
    Enrollment,
    EnrollmentStatus,
    Escalation,
    EscalationStatus,
    InboundMessage,
    MediaFile,
    MessageKind,
    MessageStatus,
    Patient,
    ReviewItem,
    ReviewStatus,
    ScheduledMessage,
    utcnow,
)
from aftercare.schedule.enrollment import check_language, resume_skipped
from aftercare.views import iso, patient_timeline

log = logging.getLogger(__name__)

MAX_ID = 2**31 - 1  # the id columns are 32-bit integers: a larger id is nobody, never a database error
# What an erased patient's fields and texts become. The phone placeholder carries the id so that two forgotten
# patients of one clinic never collide on the (clinic, phone, first name) uniqueness, and it is no number anyone
# can text from, so no reply is ever matched to a forgotten patient.
FORGOTTEN_NAME = "forgotten"
ERASED = "[erased]"


def forgotten_phone(patient_id: int) -> str:
    return f"forgotten-{patient_id}"


# --- reading ----------------------------------------------------------------------------------------------------
def patient_view(patient: Patient) -> dict[str, Any]:
    """One patient as listings show it. `sms`: "allowed", or why not ("opted_out", "no_consent")."""
    sms = "opted_out" if patient.sms_opted_out_at else "allowed" if patient.sms_consent else "no_consent"
    return {"id": patient.id, "clinic": patient.clinic.slug, "first_name": patient.first_name,
            "phone": patient.phone, "email": patient.email, "language": patient.language,
            "timezone": patient.timezone, "sms": sms, "sms_consent": patient.sms_consent,
            "email_consent": patient.email_consent, "sms_opted_out_at": iso(patient.sms_opted_out_at),
            "created_at": iso(patient.created_at), "forgotten_at": iso(patient.forgotten_at)}


def get_patient(session: Session, patient_id: int) -> Patient:
    """The patient with this id; NotFound otherwise (an id past the id column's range included)."""
    patient = session.get(Patient, patient_id) if 0 < patient_id <= MAX_ID else None
    if patient is None:
        raise NotFound(f"unknown patient {patient_id}")
    return patient


# A search made only of digits and phone punctuation is a phone search; anything else searches first names.
_PHONE_SEARCH = re.compile(r"[+\d\s().-]*\d[+\d\s().-]*")


def list_patients(session: Session, *, clinic_slug: str | None = None, search: str | None = None) -> list[Patient]:
    """Patients in id order, of one clinic or all. `search`: a first-name substring (case-insensitive), or phone
    digits ("0812 345", "+62812") found anywhere in the number; a local number's leading 0 is dropped, since the
    stored E.164 form has the country code there instead. Raises NotFound (clinic), InputError (empty search)."""
    query = select(Patient).order_by(Patient.id)
    if clinic_slug is not None:
        query = query.where(Patient.clinic_id == get_clinic(session, clinic_slug).id)
    if search is not None:
        query = query.where(_search_filter(search))
    return list(session.scalars(query))


def _search_filter(text: str):
    value = text.strip()
    if not value:
        raise InputError("--search must not be empty")
    if _PHONE_SEARCH.fullmatch(value):
        digits = re.sub(r"\D", "", value)
        return Patient.phone.contains(digits.lstrip("0") or digits, autoescape=True)
    return Patient.name_key.contains(Patient.key_for(value), autoescape=True)


def show(session: Session, ref: str) -> dict[str, Any]:
    """A patient's timeline by id: {"patient", "enrollments", "timeline"}; or, for a value starting with "+" (a
    phone, normalised to E.164), every patient on that phone: {"patients": [timeline, ...]} (a family phone
    carries several). Raises InputError, NotFound."""
    ref = (ref or "").strip()
    if ref.startswith("+"):
        phone = normalize_phone(ref, field="patient phone")
        ids = session.scalars(select(Patient.id).where(Patient.phone == phone).order_by(Patient.id)).all()
        if not ids:
            raise NotFound("no patient has this phone number")
        return {"patients": [_timeline(session, pid) for pid in ids]}
    if not ref.isdigit():
        raise InputError("expected a patient id (a number) or a phone number starting with +")
    return _timeline(session, get_patient(session, int(ref)).id)


def _timeline(session: Session, patient_id: int) -> dict[str, Any]:
    data = patient_timeline(session, patient_id)
    data["patient"] = patient_view(session.get(Patient, patient_id))
    return data


# --- changing -------------------------------------------------------------------------------------------------
def _alive(session: Session, patient_id: int) -> Patient:
    patient = get_patient(session, patient_id)
    if patient.forgotten_at is not None:
        raise AftercareError(f"patient {patient_id} was forgotten on {patient.forgotten_at:%Y-%m-%d}; "
                             "nothing of them is left to change")
    return patient


def update_patient(session: Session, patient_id: int, *, first_name: str | None = None, phone: str | None = None,
                   email: str | None = None, language: str | None = None, timezone: str | None = None,
                   actor: str = "cli") -> tuple[Patient, list[str]]:
    """Correct a patient's details (None: leave as is; an empty --email removes it), checked exactly as at
    enrollment. Returns the patient and the names of the fields that changed (audited as `patient.updated` with
    those names only). Raises InputError, NotFound, AftercareError (another patient of the clinic already has
    this first name and phone, or the patient was forgotten). Reminders read these details when they go, so the
    change reaches every message not yet sent."""
    patient = _alive(session, patient_id)
    wanted: dict[str, Any] = {}
    if first_name is not None:
        wanted["first_name"] = check_name(first_name, field="first name", max_length=100)
    if phone is not None:
        wanted["phone"] = normalize_phone(phone, region=phone_region(patient.clinic.phone))
    if email is not None:
        wanted["email"] = normalize_email(email)
    if language is not None:
        wanted["language"] = check_language(language)
    if timezone is not None:
        check_timezone(timezone)
        wanted["timezone"] = timezone
    changed = sorted(field for field, value in wanted.items() if getattr(patient, field) != value)
    if not changed:
        return patient, []
    if {"first_name", "phone"} & set(changed):
        _check_unique(session, patient, wanted.get("phone", patient.phone),
                      wanted.get("first_name", patient.first_name))
    try:
        with session.begin_nested():
            for field in changed:
                setattr(patient, field, wanted[field])
            session.flush()
    except IntegrityError:  # the same person was enrolled concurrently
        raise AftercareError(f"another patient at this clinic already has this first name and phone; "
                             f"patient {patient_id} is unchanged") from None
    audit.record(session, actor=actor, action="patient.updated", subject_type="patient", subject_id=patient.id,
                 fields=changed)
    if "email" in changed:
        resume_skipped(session, patient, utcnow())  # email steps skipped for want of an address go after all
    log.info("patient %s updated: %s", patient.id, ", ".join(changed))
    return patient, changed


def _check_unique(session: Session, patient: Patient, phone: str, first_name: str) -> None:
    """A patient is a first name on a phone at a clinic: two rows must never be the same person."""
    other = session.scalar(select(Patient.id).where(
        Patient.clinic_id == patient.clinic_id, Patient.phone == phone,
        Patient.name_key == Patient.key_for(first_name), Patient.id != patient.id))
    if other is not None:
        raise AftercareError(f"patient {other} at this clinic already has this first name and phone; "
                             f"patient {patient.id} is unchanged")


def set_consent(session: Session, patient_id: int, *, sms: bool | None, email: bool | None,
                by: str) -> tuple[Patient, list[str]]:
    """Record the patient's consent as told to the clinic (None: not asked). `sms=True` also lifts an SMS
    opt-out (STOP): consent given again. Returns the patient and the audited actions (consent.sms_opted_in,
    consent.sms_withdrawn, consent.email_given, consent.email_withdrawn), empty when nothing changed. Delivery
    reads consent when each message goes, so the change applies to every message not yet sent."""
    if sms is None and email is None:
        raise InputError("give --sms on|off, --email on|off, or both")
    patient = _alive(session, patient_id)
    actions = []
    if sms is True and not patient.sms_allowed:
        actions.append(("consent.sms_opted_in", {"lifted_opt_out": patient.sms_opted_out_at is not None}))
        patient.sms_consent, patient.sms_opted_out_at, patient.sms_opt_out_source = True, None, None
    elif sms is False and patient.sms_consent:
        patient.sms_consent = False
        actions.append(("consent.sms_withdrawn", {}))
    if email is not None and email != patient.email_consent:
        patient.email_consent = email
        actions.append((f"consent.email_{'given' if email else 'withdrawn'}", {}))
    for action, details in actions:
        audit.record(session, actor=by, action=action, subject_type="patient", subject_id=patient.id,
                     source="cli", **details)
    if actions:
        resume_skipped(session, patient, utcnow())
    return patient, [action for action, _ in actions]


# --- forgetting -------------------------------------------------------------------------------------------------
def forget(session: Session, patient_id: int, *, by: str, now: datetime | None = None) -> dict[str, Any]:
    """Erase a patient's personal data on request, keeping the rows (and the audit log's skeleton) so the clinic's
    counts and the record of what was done stay whole.

    The first name, phone and email become placeholders; their replies' words, phone and photos, the notes on
    their review items, the quotes of them in escalations and pages, and any stored message text are erased;
    enrollments still running are cancelled with their messages not yet sent. Refused (AftercareError) while
    an escalation about them is unresolved or a reply of theirs is unread in the inbox: a person must deal with
    those first. Refused once forgotten. Returns counts (no personal data): {"patient_id", "forgotten_at",
    "enrollments_cancelled", "messages_cancelled", "replies_erased", "photos_erased"}.
    """
    now = now or utcnow()
    patient = get_patient(session, patient_id)
    if patient.forgotten_at is not None:
        raise AftercareError(f"patient {patient_id} was already forgotten on {patient.forgotten_at:%Y-%m-%d}")
    own_phone = not _phone_shared(session, patient)
    _refuse_while_open(session, patient, own_phone)
    scrub = _Scrubber(patient)
    inbound_ids = _erase_replies(session, patient, own_phone, scrub)
    reviews = _erase_review_notes(session, patient, inbound_ids, scrub)
    escalations = _erase_escalations(session, patient, own_phone, scrub)
    enrollment_ids = list(session.scalars(select(Enrollment.id).where(Enrollment.patient_id == patient.id)))
    _erase_messages(session, enrollment_ids, escalations, reviews, scrub)
    running = [EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED]
    enrollments_cancelled = session.execute(update(Enrollment).where(
        Enrollment.patient_id == patient.id, Enrollment.status.in_(running)).values(
        status=EnrollmentStatus.CANCELLED, updated_at=now)).rowcount
    messages_cancelled = session.execute(update(ScheduledMessage).where(
        ScheduledMessage.enrollment_id.in_(enrollment_ids), ScheduledMessage.status == MessageStatus.SCHEDULED)
        .values(status=MessageStatus.CANCELLED, cancelled_at=now, updated_at=now)).rowcount if enrollment_ids else 0
    photos = _erase_photos(session, inbound_ids)
    patient.first_name, patient.phone, patient.email = FORGOTTEN_NAME, forgotten_phone(patient.id), None
    patient.sms_consent = patient.email_consent = False
    patient.sms_opt_out_source, patient.forgotten_at = None, now
    counts = {"enrollments_cancelled": enrollments_cancelled, "messages_cancelled": messages_cancelled,
              "replies_erased": len(inbound_ids), "photos_erased": photos}
    audit.record(session, actor=by, action="patient.forgotten", subject_type="patient", subject_id=patient.id,
                 **counts)
    session.flush()
    log.info("patient %s forgotten", patient.id)
    return {"patient_id": patient.id, "forgotten_at": iso(now), **counts}


def _phone_shared(session: Session, patient: Patient) -> bool:
    """Whether another patient of the clinic still uses this phone (a family phone): then the replies nobody could
    attribute may be theirs, and are kept."""
    return session.scalar(select(Patient.id).where(
        Patient.clinic_id == patient.clinic_id, Patient.phone == patient.phone, Patient.id != patient.id,
        Patient.forgotten_at.is_(None)).limit(1)) is not None


def _about(patient: Patient, own_phone: bool, *, patient_id: Any, patient_ids: Any, phone: Any) -> bool:
    """Whether a row (escalation, review item) is about this patient: theirs, one of a shared phone's candidates,
    or from their phone when nobody else uses it."""
    return (patient_id == patient.id or patient.id in (patient_ids or [])
            or (patient_id is None and own_phone and phone == patient.phone))


def _refuse_while_open(session: Session, patient: Patient, own_phone: bool) -> None:
    escalations = session.scalars(select(Escalation).where(
        Escalation.clinic_id == patient.clinic_id,
        Escalation.status.in_([EscalationStatus.OPEN, EscalationStatus.ACKNOWLEDGED])))
    open_ids = [e.id for e in escalations if _about(patient, own_phone, patient_id=e.patient_id,
                                                    patient_ids=e.patient_ids, phone=e.sender_phone)]
    if open_ids:
        raise AftercareError(f"patient {patient.id} has an unresolved escalation ({_ids(open_ids)}): resolve it "
                             "before forgetting the patient")
    items = session.scalars(select(ReviewItem).where(ReviewItem.clinic_id == patient.clinic_id,
                                                     ReviewItem.status == ReviewStatus.OPEN))
    unread = [i.id for i in items if _about(patient, own_phone, patient_id=i.patient_id, patient_ids=i.patient_ids,
                                            phone=i.inbound.from_phone)]
    if unread:
        raise AftercareError(f"patient {patient.id} has unread replies in the inbox (item {_ids(unread)}): mark them "
                             "done before forgetting the patient")


def _ids(ids: list[int]) -> str:
    return ", ".join(str(i) for i in ids)


class _Scrubber:
    """Replaces the patient's first name, phone and email wherever free text quotes them (staff notes, our answers,
    a shared phone's page naming several people)."""

    def __init__(self, patient: Patient) -> None:
        # The national digits match the number however it was written out: +62812..., 62812..., 0812...
        digits = str(phonenumbers.parse(patient.phone).national_number)
        parts = [re.escape(digits)] + ([re.escape(patient.email)] if patient.email else [])
        parts.append(rf"(?<!\w){re.escape(patient.first_name)}(?!\w)")
        self.pattern = re.compile("|".join(parts), re.IGNORECASE)

    def __call__(self, text: str | None) -> str | None:
        return self.pattern.sub(ERASED, text) if text else text


def _erase_replies(session: Session, patient: Patient, own_phone: bool, scrub: _Scrubber) -> list[int]:
    """Their replies (and, when the phone is theirs alone, replies from it nobody attributed): words and sender
    erased, our answer scrubbed. Returns the replies' ids."""
    mine = InboundMessage.patient_id == patient.id
    if own_phone:
        mine = or_(mine, (InboundMessage.patient_id.is_(None)) & (InboundMessage.from_phone == patient.phone))
    rows = list(session.scalars(select(InboundMessage).where(mine)))
    for row in rows:
        row.body, row.from_phone, row.answer = ERASED, forgotten_phone(patient.id), scrub(row.answer)
    return [row.id for row in rows]


def _erase_review_notes(session: Session, patient: Patient, inbound_ids: list[int],
                        scrub: _Scrubber) -> tuple[list[int], list[int]]:
    """Notes on their replies are erased whole (staff write what the patient said); a shared phone's item that
    named them as a candidate has their name scrubbed. Returns the ids of the items about them, and of those
    naming them."""
    items = session.scalars(select(ReviewItem).where(ReviewItem.clinic_id == patient.clinic_id, or_(
        ReviewItem.patient_id == patient.id, ReviewItem.inbound_id.in_(inbound_ids or [-1]),
        ReviewItem.patient_id.is_(None))))
    about, named = [], []
    for item in items:
        if item.patient_id == patient.id or item.inbound_id in inbound_ids:
            item.note = ERASED if item.note else None
            about.append(item.id)
        elif patient.id in (item.patient_ids or []):
            item.note = scrub(item.note)
            named.append(item.id)
    return about, named


def _erase_escalations(session: Session, patient: Patient, own_phone: bool,
                       scrub: _Scrubber) -> tuple[list[int], list[int]]:
    """The sender's phone removed and the texts' quotes of them scrubbed. Returns the ids of the escalations
    about them (theirs, or from their phone alone), and of a shared phone's naming them (those keep the phone:
    the others' way back)."""
    rows = session.scalars(select(Escalation).where(Escalation.clinic_id == patient.clinic_id, or_(
        Escalation.patient_id == patient.id, Escalation.patient_id.is_(None))))
    about, named = [], []
    for row in rows:
        if not _about(patient, own_phone, patient_id=row.patient_id, patient_ids=row.patient_ids,
                      phone=row.sender_phone):
            continue
        row.explanation, row.resolution_note = scrub(row.explanation), scrub(row.resolution_note)
        if row.patient_id == patient.id or (own_phone and row.sender_phone == patient.phone):
            row.sender_phone = None
            about.append(row.id)
        else:
            named.append(row.id)
    return about, named


def _erase_messages(session: Session, enrollment_ids: list[int], escalations: tuple[list[int], list[int]],
                    reviews: tuple[list[int], list[int]], scrub: _Scrubber) -> None:
    """Stored texts of their reminders, and of the pages about them (which quote their words and phone), erased;
    pages about a shared phone that name them scrubbed; any recipient stored on their reminders removed."""
    reminders = ScheduledMessage.enrollment_id.in_(enrollment_ids or [-1])
    session.execute(update(ScheduledMessage).where(reminders | _pages(escalations[0], reviews[0]),
                                                   ScheduledMessage.body.is_not(None)).values(body=ERASED))
    session.execute(update(ScheduledMessage).where(reminders, ScheduledMessage.recipient.is_not(None))
                    .values(recipient=None))
    for page in session.scalars(select(ScheduledMessage).where(_pages(escalations[1], reviews[1]))):
        page.body = scrub(page.body)


def _pages(escalation_ids: list[int], review_ids: list[int]):
    return (ScheduledMessage.kind == MessageKind.PAGE) & or_(
        ScheduledMessage.escalation_id.in_(escalation_ids or [-1]),
        ScheduledMessage.review_item_id.in_(review_ids or [-1]))


def _erase_photos(session: Session, inbound_ids: list[int]) -> int:
    """Photos they sent: the stored files deleted and the rows emptied (status "erased"). Returns how many."""
    from aftercare.inbound.media import media_file_path

    if not inbound_ids:
        return 0
    rows = list(session.scalars(select(MediaFile).where(MediaFile.inbound_id.in_(inbound_ids))))
    for row in rows:
        path = media_file_path(row)
        if path is not None:
            path.unlink(missing_ok=True)
        row.path, row.provider_url, row.status, row.content_type = None, "", "erased", None
    return len(rows)
