"""Staff accounts for the web inbox: one clinic each, signed in with an email and a password (argon2id).

Emails are stored lower-cased, so "Nurse@Glow.example" and "nurse@glow.example" are one account. Passwords are
never stored or logged: only their argon2 hash (argon2-cffi's PasswordHasher, re-hashed at sign-in when its
parameters change). Every change is in the audit log; error messages never repeat an email or a password.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from aftercare import audit
from aftercare.clinics import get_clinic
from aftercare.contact import check_name, normalize_email
from aftercare.errors import AftercareError, InputError, NotFound
from aftercare.models import StaffAccount, utcnow
from aftercare.views import iso

MIN_PASSWORD = 10
# argon2 hashes whatever it is given; a megabyte "password" would only cost us CPU.
MAX_PASSWORD = 1024

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so that a wrong email costs as long as a wrong password."""
    return _hasher.hash(secrets.token_urlsafe(16))


def normalize_staff_email(raw: str | None) -> str:
    """The email as stored: trimmed, checked (contact.normalize_email) and lower-cased; InputError otherwise."""
    email = normalize_email(raw)
    if email is None:
        raise InputError("--email must not be empty")
    return email.lower()


def check_password(password: str) -> str:
    """The password as given, if it is long enough and not absurdly long; InputError otherwise."""
    if len(password.strip()) < MIN_PASSWORD:
        raise InputError(f"the password is too short: use at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InputError(f"the password is too long: at most {MAX_PASSWORD} characters")
    if "\x00" in password:
        raise InputError("the password contains a NUL character")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(check_password(password))


def session_version(staff: StaffAccount) -> str:
    """A short fingerprint a signed-in session carries: a new password or signing out changes it, which ends every
    session of that account (a copied cookie included); deactivation is checked on its own (`active`)."""
    return hashlib.sha256(f"{staff.password_hash or ''}:{staff.session_epoch or 0}".encode()).hexdigest()[:16]


def add_staff(session: Session, *, clinic_slug: str, email: str, name: str, password: str | None,
              actor: str = "cli") -> StaffAccount:
    """A new active account in the clinic `clinic_slug`. Errors (AftercareError): unknown clinic, bad or taken
    email, bad name, password too short."""
    clinic = get_clinic(session, clinic_slug)
    email = normalize_staff_email(email)
    name = check_name(name, field="--name", max_length=200)
    password_hash = hash_password(password) if password is not None else None
    if session.scalar(select(StaffAccount.id).where(StaffAccount.email == email)) is not None:
        raise AftercareError("a staff account with this email already exists: see `aftercare staff list`")
    staff = StaffAccount(clinic_id=clinic.id, email=email, name=name, password_hash=password_hash, active=True)
    session.add(staff)
    session.flush()
    audit.record(session, actor=actor, action="staff.added", subject_type="staff", subject_id=staff.id,
                 clinic_id=clinic.id)
    return staff


def list_staff(session: Session, *, clinic_slug: str) -> list[StaffAccount]:
    clinic = get_clinic(session, clinic_slug)
    return list(session.scalars(select(StaffAccount).where(StaffAccount.clinic_id == clinic.id)
                                .order_by(StaffAccount.name, StaffAccount.id)))


def get_staff_by_email(session: Session, email: str) -> StaffAccount:
    staff = session.scalar(select(StaffAccount).where(StaffAccount.email == normalize_staff_email(email)))
    if staff is None:
        raise NotFound("no staff account with this email: see `aftercare staff list --clinic SLUG`")
    return staff


def deactivate(session: Session, email: str, *, actor: str = "cli") -> StaffAccount:
    """The account can no longer sign in, and its open sessions end at their next request."""
    staff = get_staff_by_email(session, email)
    if not staff.active:
        raise AftercareError(f"staff account {staff.id} is already deactivated")
    staff.active = False
    audit.record(session, actor=actor, action="staff.deactivated", subject_type="staff", subject_id=staff.id)
    return staff


def set_password(session: Session, email: str, password: str, *, actor: str = "cli") -> StaffAccount:
    """A new password; every session signed in with the old one ends."""
    staff = get_staff_by_email(session, email)
    staff.password_hash = hash_password(password)
    audit.record(session, actor=actor, action="staff.password_set", subject_type="staff", subject_id=staff.id)
    return staff


def authenticate(session: Session, email: str, password: str, *, now: datetime | None = None) -> StaffAccount | None:
    """The active account with this email and password, or None (unknown email, wrong password, deactivated,
    no password set: the caller shows one message for all). Re-hashes a password hashed with old parameters."""
    try:
        email = normalize_staff_email(email)
    except InputError:
        email = ""
    staff = session.scalar(select(StaffAccount).where(StaffAccount.email == email)) if email else None
    has_password = staff is not None and staff.password_hash is not None
    stored = staff.password_hash if has_password else _dummy_hash()
    try:
        _hasher.verify(stored, password[:MAX_PASSWORD + 1])
        ok = has_password and len(password) <= MAX_PASSWORD
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or not staff.active:
        return None
    if _hasher.check_needs_rehash(stored):
        staff.password_hash = _hasher.hash(password)
    staff.last_sign_in_at = now or utcnow()
    audit.record(session, actor=staff.name, action="staff.signed_in", subject_type="staff", subject_id=staff.id)
    return staff


def staff_account_view(staff: StaffAccount) -> dict[str, Any]:
    return {"id": staff.id, "clinic": staff.clinic.slug, "email": staff.email, "name": staff.name,
            "active": staff.active, "has_password": staff.password_hash is not None,
            "created_at": iso(staff.created_at), "last_sign_in_at": iso(staff.last_sign_in_at)}
