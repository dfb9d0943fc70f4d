"""Clinics and their on-call lists."""

from __future__ import annotations

import re
import zoneinfo
from functools import lru_cache
from importlib import resources
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from aftercare import audit
from aftercare.contact import check_name, check_timezone, normalize_email, normalize_phone, phone_region
from aftercare.errors import InputError, NotFound
from aftercare.models import Clinic, OnCallStaff, ScheduledMessage
from aftercare.protocols import parse_duration
from aftercare.protocols.templates import non_gsm7

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_QUIET = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")
_NO_QUIET = "00:00-00:00"  # how "no quiet hours" is stored (the planner reads an empty window as none)


def add_clinic(session: Session, *, name: str, slug: str, timezone: str, phone: str, sms_from: str | None = None,
               email_from: str | None = None, quiet_hours: str = "21:00-08:00", review_within: str = "2h",
               actor: str = "cli") -> Clinic:
    """Create a clinic. `phone` and `sms_from` may be local numbers of the time zone's country ("021 5000 1234" in
    Asia/Jakarta). Raises InputError (one line, never repeating a number)."""
    name = check_name(name, field="clinic name", max_length=200)
    slug = (slug or "").strip().lower()
    if not _SLUG.match(slug):
        raise InputError("invalid slug: use lowercase letters, digits and dashes (e.g. glow-jakarta)")
    check_timezone(timezone)
    phone = normalize_phone(phone, region=timezone_region(timezone), field="clinic phone")
    sms_from = _sms_sender(sms_from, phone)
    start, end = _quiet_hours(quiet_hours)
    review_minutes = _review_minutes(review_within)
    if session.scalar(select(Clinic.id).where(Clinic.slug == slug)) is not None:
        raise InputError(f"a clinic with slug {slug!r} already exists")
    _check_sender_free(session, sms_from, clinic_id=None)
    clinic = Clinic(name=name, slug=slug, timezone=timezone, phone=phone, sms_from=sms_from,
                    email_from=normalize_email(email_from), quiet_start=start, quiet_end=end,
                    review_minutes=review_minutes)
    session.add(clinic)
    session.flush()
    audit.record(session, actor=actor, action="clinic.added", subject_type="clinic", subject_id=clinic.id, slug=slug)
    return clinic


def update_clinic(session: Session, slug: str, *, name: str | None = None, phone: str | None = None,
                  sms_from: str | None = None, email_from: str | None = None, quiet_hours: str | None = None,
                  actor: str = "cli") -> Clinic:
    """Change the given fields (None: unchanged; "" clears --sms-from / --email-from, which then fall back to the
    defaults), checked as at `clinic add`. Audited with the names of the changed fields, never their values."""
    clinic = get_clinic(session, slug)
    values: dict = {}
    if name is not None:
        values["name"] = check_name(name, field="clinic name", max_length=200)
    if phone is not None:
        values["phone"] = normalize_phone(phone, region=timezone_region(clinic.timezone), field="clinic phone")
    if sms_from is not None:
        values["sms_from"] = _sms_sender(sms_from, values.get("phone", clinic.phone))
        _check_sender_free(session, values["sms_from"], clinic_id=clinic.id)
    if email_from is not None:
        values["email_from"] = normalize_email(email_from)
    if quiet_hours is not None:
        values["quiet_start"], values["quiet_end"] = _quiet_hours(quiet_hours)
    changed = sorted(key for key, value in values.items() if getattr(clinic, key) != value)
    for key in changed:
        setattr(clinic, key, values[key])
    if changed:
        audit.record(session, actor=actor, action="clinic.updated", subject_type="clinic", subject_id=clinic.id,
                     fields=changed)
    return clinic


def _sms_sender(sms_from: str | None, clinic_phone: str) -> str | None:
    if not (sms_from or "").strip():
        return None
    return normalize_phone(sms_from, region=phone_region(clinic_phone), field="SMS sender")


def _check_sender_free(session: Session, sms_from: str | None, *, clinic_id: int | None) -> None:
    """Replies to a number belong to one clinic: a shared sender would leave unknown senders without one."""
    if not sms_from:
        return
    query = select(Clinic.id).where(Clinic.sms_from == sms_from)
    if clinic_id is not None:
        query = query.where(Clinic.id != clinic_id)
    if session.scalar(query) is not None:
        raise InputError("that --sms-from number is already another clinic's sender; each clinic needs its own")


def _quiet_hours(text: str) -> tuple[str, str]:
    """'21:00-08:00' -> ('21:00', '08:00'); 'none' (or its stored form 00:00-00:00) -> no quiet hours. Any other
    window that starts where it ends (21:00-21:00) is refused: it reads as "all night" but would mean "never"."""
    text = (text or "").strip()
    if text.lower() in ("none", _NO_QUIET):
        return tuple(_NO_QUIET.split("-"))
    if not _QUIET.match(text):
        raise InputError("quiet hours must look like 21:00-08:00 (or none)")
    start, end = text.split("-")
    if start == end:
        raise InputError(f"quiet hours {text} is an empty window (it starts where it ends); give one such as "
                         "21:00-08:00, or none for no quiet hours")
    return start, end


@lru_cache(maxsize=1)
def _zone_countries() -> dict[str, str]:
    """IANA zone -> ISO country code, from the tz database's zone.tab (the system's, else the tzdata package's)."""
    texts = [Path(folder, "zone.tab") for folder in zoneinfo.TZPATH]
    for path in texts:
        if path.is_file():
            return _parse_zone_tab(path.read_text(encoding="utf-8"))
    try:
        return _parse_zone_tab(resources.files("tzdata.zoneinfo").joinpath("zone.tab").read_text(encoding="utf-8"))
    except (ModuleNotFoundError, FileNotFoundError):
        return {}


def _parse_zone_tab(text: str) -> dict[str, str]:
    rows = (line.split("\t") for line in text.splitlines() if line and not line.startswith("#"))
    return {row[2]: row[0] for row in rows if len(row) >= 3}


def timezone_region(timezone: str) -> str | None:
    """The country of an IANA zone ("Asia/Jakarta" -> "ID"), to read local phone numbers; None for UTC and the
    like, where only international numbers are understood."""
    return _zone_countries().get(timezone)


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
    """The clinic with this slug, in any case ("Glow" is "glow"); NotFound otherwise."""
    clinic = session.scalar(select(Clinic).where(Clinic.slug == (slug or "").strip().lower()))
    if clinic is None:
        raise NotFound(f"unknown clinic {slug[:64]!r}: see `aftercare clinic list`")
    return clinic


def list_clinics(session: Session) -> list[Clinic]:
    return list(session.scalars(select(Clinic).order_by(Clinic.slug)))


def add_oncall(session: Session, *, clinic_slug: str, name: str, phone: str, email: str | None = None,
               actor: str = "cli") -> OnCallStaff:
    """Add a clinician at the end of the clinic's on-call list. InputError when the phone is already on it."""
    clinic = get_clinic(session, clinic_slug)
    name = check_name(name, field="name", max_length=200)
    phone = normalize_phone(phone, region=phone_region(clinic.phone))
    email = normalize_email(email)
    same = session.scalar(select(OnCallStaff).where(OnCallStaff.clinic_id == clinic.id, OnCallStaff.phone == phone))
    if same is not None:
        # Two entries for one phone page one person twice and make the second "next on the list" a lie.
        hint = "" if same.active else f" (inactive: `aftercare oncall activate {same.id}`)"
        raise InputError(f"that phone is already on this clinic's on-call list as entry {same.id}{hint}")
    position = session.scalar(select(func.coalesce(func.max(OnCallStaff.position), -1) + 1)
                              .where(OnCallStaff.clinic_id == clinic.id))
    staff = OnCallStaff(clinic_id=clinic.id, name=name, phone=phone, email=email, position=position)
    session.add(staff)
    session.flush()
    audit.record(session, actor=actor, action="oncall.added", subject_type="clinic", subject_id=clinic.id,
                 staff_id=staff.id, position=position)
    return staff


def oncall_list(session: Session, clinic_id: int, *, include_inactive: bool = False) -> list[OnCallStaff]:
    """The clinic's on-call staff in paging order (only the active ones unless `include_inactive`)."""
    query = select(OnCallStaff).where(OnCallStaff.clinic_id == clinic_id).order_by(OnCallStaff.position,
                                                                                   OnCallStaff.id)
    if not include_inactive:
        query = query.where(OnCallStaff.active.is_(True))
    return list(session.scalars(query))


def no_oncall_warning(session: Session, clinic: Clinic) -> str | None:
    """One line when nobody active is on the clinic's on-call list (an emergency reply would page only the clinic's
    own phone)."""
    if oncall_list(session, clinic.id):
        return None
    return (f"clinic {clinic.slug!r} has no active on-call staff: emergencies will page only the clinic's own "
            f"phone; add someone with `aftercare oncall add --clinic {clinic.slug}`")


def get_oncall(session: Session, staff_id: int) -> OnCallStaff:
    staff = session.get(OnCallStaff, staff_id) if 0 < staff_id < 2**31 else None
    if staff is None:
        raise NotFound(f"unknown on-call entry {staff_id}: see `aftercare oncall list --clinic SLUG`")
    return staff


def set_oncall_active(session: Session, staff_id: int, active: bool, *, actor: str = "cli") -> OnCallStaff:
    """Take someone off paging (kept on the list, and in the record of pages sent to them) or back on."""
    staff = get_oncall(session, staff_id)
    if staff.active != active:
        staff.active = active
        audit.record(session, actor=actor, action=f"oncall.{'activated' if active else 'deactivated'}",
                     subject_type="clinic", subject_id=staff.clinic_id, staff_id=staff.id)
    return staff


def remove_oncall(session: Session, staff_id: int, *, actor: str = "cli") -> OnCallStaff:
    """Delete an entry. Someone already paged stays in the record of those pages: refused, deactivate instead."""
    staff = get_oncall(session, staff_id)
    if session.scalar(select(ScheduledMessage.id).where(ScheduledMessage.staff_id == staff.id).limit(1)):
        raise InputError(f"on-call entry {staff.id} has been paged before and stays in that record; "
                         f"take them off paging with `aftercare oncall deactivate {staff.id}`")
    clinic_id = staff.clinic_id
    session.execute(delete(OnCallStaff).where(OnCallStaff.id == staff.id))
    session.expunge(staff)
    _renumber(session, clinic_id, [s.id for s in oncall_list(session, clinic_id, include_inactive=True)])
    audit.record(session, actor=actor, action="oncall.removed", subject_type="clinic", subject_id=clinic_id,
                 staff_id=staff_id)
    return staff


def move_oncall(session: Session, staff_id: int, position: int, *, actor: str = "cli") -> OnCallStaff:
    """Put an entry at `position` (0 is paged first, as `oncall list` shows it); the others keep their order.
    A position past the end puts it last."""
    if position < 0:
        raise InputError("--position must be 0 or more (0 is paged first)")
    staff = get_oncall(session, staff_id)
    order = [s.id for s in oncall_list(session, staff.clinic_id, include_inactive=True) if s.id != staff.id]
    order.insert(min(position, len(order)), staff.id)
    _renumber(session, staff.clinic_id, order)
    audit.record(session, actor=actor, action="oncall.moved", subject_type="clinic", subject_id=staff.clinic_id,
                 staff_id=staff.id, position=staff.position)
    return staff


def _renumber(session: Session, clinic_id: int, order: list[int]) -> None:
    """Positions 0, 1, 2... in this order, so `oncall list` numbers have no gaps after a move or removal."""
    for index, staff_id in enumerate(order):
        session.get(OnCallStaff, staff_id).position = index
    session.flush()
