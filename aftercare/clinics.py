"""Clinics and their on-call lists."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aftercare import audit
from aftercare.contact import check_name, check_timezone, normalize_email, normalize_phone, phone_region
from aftercare.errors import InputError, NotFound
from aftercare.models import Clinic, OnCallStaff
from aftercare.protocols import parse_duration
from aftercare.protocols.templates import non_gsm7

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_QUIET = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")


def add_clinic(session: Session, *, name: str, slug: str, timezone: str, phone: str, sms_from: str | None = None,
               email_from: str | None = None, quiet_hours: str = "21:00-08:00", review_within: str = "2h",
               actor: str = "cli") -> Clinic:
    name = check_name(name, field="clinic name", max_length=200)
    if not _SLUG.match(slug or ""):
        raise InputError("invalid slug: use lowercase letters, digits and dashes (e.g. glow-jakarta)")
    check_timezone(timezone)
    phone = normalize_phone(phone, field="clinic phone")
    if sms_from:
        sms_from = normalize_phone(sms_from, region=phone_region(phone), field="SMS sender")
    quiet_hours = quiet_hours.strip()
    if not _QUIET.match(quiet_hours):
        raise InputError("quiet hours must look like 21:00-08:00")
    review_minutes = _review_minutes(review_within)
    if session.scalar(select(Clinic.id).where(Clinic.slug == slug)) is not None:
        raise InputError(f"a clinic with slug {slug!r} already exists")
    if sms_from and session.scalar(select(Clinic.slug).where(Clinic.sms_from == sms_from)) is not None:
        # Replies to a number belong to one clinic: a shared sender would leave unknown senders without one.
        raise InputError("that --sms-from number is already another clinic's sender; each clinic needs its own")
    start, end = quiet_hours.split("-")
    clinic = Clinic(name=name, slug=slug, timezone=timezone, phone=phone, sms_from=sms_from,
                    email_from=normalize_email(email_from), quiet_start=start, quiet_end=end,
                    review_minutes=review_minutes)
    session.add(clinic)
    session.flush()
    audit.record(session, actor=actor, action="clinic.added", subject_type="clinic", subject_id=clinic.id, slug=slug)
    return clinic


def name_sms_warning(name: str) -> str | None:
    """One line for the person adding a clinic whose name makes every SMS UCS-2 (a part holds 70 characters
    instead of 160, so most texts cost 2-3 parts), or None. Quotes and dashes are fine: SMS get plain forms."""
    odd = non_gsm7(name)
    if not odd:
        return None
    shown = ", ".join(f"{char} (U+{ord(char):04X})" for char in odd[:5])
    return (f"the clinic name has characters outside the SMS alphabet ({shown}): every SMS naming the clinic "
            "will be sent as UCS-2 and cost 2-3 times as much; consider a plain spelling")


def _review_minutes(text: str) -> int:
    """'90m', '2h' -> minutes; between 5 minutes and 3 days, since a review nobody must read is no review."""
    try:
        minutes = int(parse_duration(text).total_seconds() // 60)
    except ValueError as exc:
        raise InputError(f"--review-within: {exc}") from None
    if not 5 <= minutes <= 3 * 24 * 60:
        raise InputError("--review-within must be between 5m and 3d")
    return minutes


def get_clinic(session: Session, slug: str) -> Clinic:
    clinic = session.scalar(select(Clinic).where(Clinic.slug == slug))
    if clinic is None:
        raise NotFound(f"unknown clinic {slug[:64]!r}: see `aftercare clinic list`")
    return clinic


def list_clinics(session: Session) -> list[Clinic]:
    return list(session.scalars(select(Clinic).order_by(Clinic.slug)))


def add_oncall(session: Session, *, clinic_slug: str, name: str, phone: str, email: str | None = None,
               actor: str = "cli") -> OnCallStaff:
    clinic = get_clinic(session, clinic_slug)
    name = check_name(name, field="name", max_length=200)
    phone = normalize_phone(phone, region=phone_region(clinic.phone))
    email = normalize_email(email)
    position = session.scalar(select(func.coalesce(func.max(OnCallStaff.position), -1) + 1)
                              .where(OnCallStaff.clinic_id == clinic.id))
    staff = OnCallStaff(clinic_id=clinic.id, name=name, phone=phone, email=email, position=position)
    session.add(staff)
    session.flush()
    audit.record(session, actor=actor, action="oncall.added", subject_type="clinic", subject_id=clinic.id,
                 staff_id=staff.id, position=position)
    return staff


def oncall_list(session: Session, clinic_id: int) -> list[OnCallStaff]:
    query = (select(OnCallStaff).where(OnCallStaff.clinic_id == clinic_id, OnCallStaff.active.is_(True))
             .order_by(OnCallStaff.position, OnCallStaff.id))
    return list(session.scalars(query))
