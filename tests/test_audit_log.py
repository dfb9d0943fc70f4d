"""The audit log is append-only in the database itself, not only in the ORM (issue 8): a script, a console
session or a bug writing SQL cannot rewrite or erase who did what."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from aftercare.db import get_engine, session_scope
from aftercare.models import AuditEntry
from tests.cli_helpers import add_clinic


def _one_entry() -> int:
    add_clinic()  # writes clinic.created to the audit log
    with session_scope() as session:
        return session.query(AuditEntry.id).order_by(AuditEntry.id).first()[0]


@pytest.mark.parametrize("statement", [
    "UPDATE audit_log SET actor = 'someone else' WHERE id = :id",
    "UPDATE audit_log SET details = '{}'",
    "DELETE FROM audit_log WHERE id = :id",
    "DELETE FROM audit_log",
])
def test_update_and_delete_on_the_audit_log_are_refused_by_the_database(any_env, statement):
    entry_id = _one_entry()
    with pytest.raises(DBAPIError, match="append-only"), get_engine().begin() as conn:
        conn.execute(text(statement), {"id": entry_id})
    with session_scope() as session:
        entry = session.get(AuditEntry, entry_id)
        assert entry is not None and entry.actor != "someone else"


def test_new_entries_are_still_written(any_env):
    _one_entry()
    with get_engine().begin() as conn:
        conn.execute(text("INSERT INTO audit_log (at, actor, action, subject_type, details) "
                          "VALUES (CURRENT_TIMESTAMP, 'cli', 'test.inserted', 'test', '{}')"))
    with session_scope() as session:
        assert session.query(AuditEntry).filter_by(action="test.inserted").count() == 1
