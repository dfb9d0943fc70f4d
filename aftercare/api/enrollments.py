"""The API's enrollment operations: enroll (idempotent with a key), show, cancel, for one clinic's API key.
HTTP lives in routes.py; the rules live in aftercare.schedule.enrollment, shared with the CLI."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aftercare.api.schemas import EnrollmentIn
from aftercare.contact import parse_treated_at
from aftercare.errors import AftercareError, NotFound
from aftercare.models import ApiKey, Enrollment, IdempotencyRecord, MessageStatus, ScheduledMessage
from aftercare.schedule import enrollment as service

MAX_ID = 2**31 - 1  # the id columns are 32-bit integers: a larger id is unknown, never a database error


class IdempotencyKeyReused(AftercareError):
    """The Idempotency-Key was used before with another request body."""


@dataclass(frozen=True)
class Outcome:
    """An HTTP answer: status code (201 created, 200 already enrolled), the enrollment as JSON, and whether it
    is the stored answer to an earlier request with the same Idempotency-Key."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


def actor_for(api_key: ApiKey) -> str:
    """Who the audit log says did it."""
    return f"apikey:{api_key.id}"


def _iso(value: datetime | None) -> str | None:
    # Always UTC: a fresh row holds the offset it was given, a row read back holds UTC; answers must not differ.
    return value.astimezone(UTC).isoformat() if value else None


def enrollment_view(session: Session, enrollment: Enrollment) -> dict[str, Any]:
    """{"id", "patient_id", "status", "treatment", "treated_at", "scheduled", "sms", "messages": [{"step",
    "channel", "due_at", "status", "reason"}]}: the schedule without message bodies, due times in UTC."""
    rows = list(session.scalars(select(ScheduledMessage).where(ScheduledMessage.enrollment_id == enrollment.id)
                                .order_by(ScheduledMessage.due_at, ScheduledMessage.id)))
    return {
        "id": enrollment.id, "patient_id": enrollment.patient_id, "status": str(enrollment.status),
        "treatment": enrollment.treatment, "treated_at": _iso(enrollment.treated_at),
        "scheduled": sum(1 for row in rows if row.status == MessageStatus.SCHEDULED),
        "sms": service._sms_state(enrollment.patient),
        "messages": [{"step": row.step, "channel": str(row.channel), "due_at": _iso(row.due_at),
                      "status": str(row.status), "reason": row.skip_reason} for row in rows],
    }


def get_for_clinic(session: Session, api_key: ApiKey, enrollment_id: int) -> Enrollment:
    """The enrollment, if it is the key's clinic's; another clinic's is as unknown as a missing one (NotFound)."""
    enrollment = session.get(Enrollment, enrollment_id) if 0 < enrollment_id <= MAX_ID else None
    if enrollment is None or enrollment.clinic_id != api_key.clinic_id:
        raise NotFound(f"unknown enrollment {enrollment_id}")
    return enrollment


def cancel(session: Session, api_key: ApiKey, enrollment_id: int) -> dict[str, Any]:
    """Cancel (its remaining reminders too); cancelling twice changes nothing. Raises NotFound, AftercareError."""
    get_for_clinic(session, api_key, enrollment_id)
    enrollment = service.cancel(session, enrollment_id, actor=actor_for(api_key))
    session.flush()
    return enrollment_view(session, enrollment)


def enroll(session: Session, api_key: ApiKey, body: EnrollmentIn, *, idempotency_key: str | None) -> Outcome:
    """Enroll as `aftercare enroll` does. With an idempotency key, the first request's answer is stored with it
    (in the same transaction as the enrollment) and returned again for the same body.

    Two requests with one key at once: the second's insert of the key waits on the unique constraint until the
    first commits, then fails, and it answers with the stored record; had the first failed (rolled back, nothing
    stored), the second goes ahead itself. Raises InputError, IdempotencyKeyReused.
    """
    treated_at = parse_treated_at(body.treated_at)
    record = None
    if idempotency_key is not None:
        request_hash = _request_hash(body)
        record = IdempotencyRecord(clinic_id=api_key.clinic_id, key=idempotency_key, request_hash=request_hash)
        try:
            with session.begin_nested():
                session.add(record)
                session.flush()
        except IntegrityError:
            return _replay(session, api_key, idempotency_key, request_hash)
    result = service.enroll(session, clinic_slug=api_key.clinic.slug, first_name=body.first_name, phone=body.phone,
                            email=body.email, timezone=body.timezone, language=body.language,
                            treatment=body.treatment, treated_at=treated_at, sms_consent=body.sms_consent,
                            email_consent=body.email_consent, actor=actor_for(api_key))
    session.flush()
    outcome = Outcome(201 if result.created else 200, enrollment_view(session, result.enrollment))
    if record is not None:
        record.status_code, record.response, record.enrollment_id = outcome.status, outcome.body, outcome.body["id"]
    return outcome


def _request_hash(body: EnrollmentIn) -> str:
    """sha256 of the operation and the body's values (key order, whitespace, absent vs default do not count)."""
    canonical = json.dumps(body.idempotency_view(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"POST /api/v1/enrollments\n{canonical}".encode()).hexdigest()


def _replay(session: Session, api_key: ApiKey, key: str, request_hash: str) -> Outcome:
    stored = session.scalars(select(IdempotencyRecord).where(IdempotencyRecord.clinic_id == api_key.clinic_id,
                                                             IdempotencyRecord.key == key)).one()
    if stored.request_hash != request_hash:
        raise IdempotencyKeyReused("this Idempotency-Key was used with another request body; "
                                   "use a new key for a new request")
    return Outcome(stored.status_code, stored.response, replayed=True)
