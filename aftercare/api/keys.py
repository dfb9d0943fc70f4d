"""API keys for booking systems: one clinic each, shown once at creation, stored hashed, revocable.

A key reads `ak_<prefix>_<secret>`: the prefix (12 hex characters, stored in ApiKey.prefix) finds the row, the
whole key is checked against the stored hash.

Hash: SHA-256, not argon2. Argon2 (deliberately slow, salted) protects passwords people choose, which are
guessable; these keys carry 256 random bits from `secrets`, so no guessing or precomputed table can find one
from its hash, and a slow hash would only cost every API request tens of milliseconds of CPU and memory.
The comparison is constant-time (hmac.compare_digest).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from aftercare import audit
from aftercare.clinics import get_clinic
from aftercare.contact import check_name
from aftercare.errors import NotFound
from aftercare.models import ApiKey, utcnow

KEY_PREFIX = "ak_"
# last_used_at is written at most this often per key: a write on every request would serialise a booking
# system's concurrent requests on the key's row.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class CreatedKey:
    """The new key's row and the key itself (the only time it exists in clear)."""

    api_key: ApiKey
    key: str


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(session: Session, *, clinic_slug: str, label: str | None = None, actor: str = "cli") -> CreatedKey:
    """A new key for the clinic. Raises NotFound (clinic), InputError (label)."""
    clinic = get_clinic(session, clinic_slug)
    if label is not None:
        label = check_name(label, field="label", max_length=100)
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"  # 32 bytes: 256 random bits
    row = ApiKey(clinic_id=clinic.id, prefix=prefix, key_hash=_hash(key), label=label)
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="apikey.created", subject_type="api_key", subject_id=row.id,
                 clinic=clinic.slug, prefix=prefix)
    return CreatedKey(row, key)


def list_keys(session: Session, *, clinic_slug: str) -> list[ApiKey]:
    clinic = get_clinic(session, clinic_slug)
    return list(session.scalars(select(ApiKey).where(ApiKey.clinic_id == clinic.id).order_by(ApiKey.id)))


def revoke_key(session: Session, key_id: int, *, actor: str = "cli") -> ApiKey:
    """Revoke a key at once (requests with it get 401 from now on); revoking twice changes nothing.
    Raises NotFound."""
    row = session.get(ApiKey, key_id) if 0 < key_id < 2**31 else None
    if row is None:
        raise NotFound(f"unknown API key {key_id}: see `aftercare apikey list`")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(session, actor=actor, action="apikey.revoked", subject_type="api_key", subject_id=row.id,
                     clinic=row.clinic.slug, prefix=row.prefix)
    return row


def authenticate(session: Session, key: str) -> ApiKey | None:
    """The live (not revoked) key row for `key`, or None. Never raises on malformed input."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    prefix, _, secret = key.removeprefix(KEY_PREFIX).partition("_")
    if not prefix or not secret or len(prefix) > 16:
        return None
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, _hash(key)):
        return None
    return row


def touch(session: Session, row: ApiKey) -> None:
    """Record that the key was used (at most once per LAST_USED_RESOLUTION)."""
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        session.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))


def key_view(row: ApiKey) -> dict:
    """For listings: never the key or its hash."""
    from aftercare.views import iso

    return {"id": row.id, "clinic": row.clinic.slug, "prefix": row.prefix, "label": row.label,
            "created_at": iso(row.created_at), "last_used_at": iso(row.last_used_at),
            "revoked_at": iso(row.revoked_at)}
