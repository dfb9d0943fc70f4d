"""The append-only audit log: who did what to which record, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from aftercare.models import AuditEntry


def record(session: Session, *, actor: str, action: str, subject_type: str, subject_id: int | None,
           **details: Any) -> AuditEntry:
    entry = AuditEntry(actor=actor, action=action, subject_type=subject_type, subject_id=subject_id, details=details)
    session.add(entry)
    return entry


def append(connection: Connection, *, at: datetime, actor: str, action: str, subject_type: str,
           subject_id: int | None, **details: Any) -> None:
    """`record` as one Core INSERT on `connection` (the hot webhook path, where the ORM's flush costs more than the
    statement); it lands in the caller's transaction all the same."""
    connection.execute(insert(AuditEntry.__table__), {"at": at, "actor": actor, "action": action,
                                                      "subject_type": subject_type, "subject_id": subject_id,
                                                      "details": details})


def entries_for(session: Session, *, subject_type: str, subject_id: int) -> list[AuditEntry]:
    query = (
        select(AuditEntry)
        .where(AuditEntry.subject_type == subject_type, AuditEntry.subject_id == subject_id)
        .order_by(AuditEntry.id)
    )
    return list(session.scalars(query))
