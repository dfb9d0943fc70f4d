"""The append-only audit log: who did what to which record, and when."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aftercare.models import AuditEntry


def record(session: Session, *, actor: str, action: str, subject_type: str, subject_id: int | None,
           **details: Any) -> AuditEntry:
    entry = AuditEntry(actor=actor, action=action, subject_type=subject_type, subject_id=subject_id, details=details)
    session.add(entry)
    return entry


def entries_for(session: Session, *, subject_type: str, subject_id: int) -> list[AuditEntry]:
    query = (
        select(AuditEntry)
        .where(AuditEntry.subject_type == subject_type, AuditEntry.subject_id == subject_id)
        .order_by(AuditEntry.id)
    )
    return list(session.scalars(query))
