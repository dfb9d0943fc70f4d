"""Writing an import batch to PostgreSQL: COPY into temporary tables, then a few set-based statements.

Per batch: the batch's patients are COPYed and inserted unless known (clinic, phone, name key); the known ones'
ids and SMS consent are read back; each session gets its plan (one per distinct plan key, see import_plans), and
sessions and plans are COPYed; the enrollments not yet present are inserted and, for exactly those, the plan's
outbox rows. The server expands the plans: the import process never formats a message row (INSERT ... SELECT
from a plan also beat COPY of the expanded rows: 0.35 s against 0.6-0.75 s for 18,000 rows).

Two writers (connections) work at once, since the outbox rows (nine in ten rows written, with their indexes and
foreign-key checks) are most of the work and one server process does them on one core. Their patients and their
enrollments are inserted in file order (Turns): an earlier row of the file wins as on the one-by-one path, and a
later batch that meets an uncommitted row of an earlier one waits for its commit. The semantics are those of the
INSERT path in importer.py (tests/test_import_copy.py compares the two).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from sqlalchemy.orm import Session

from aftercare.import_plans import PlanCache, PlanKey, plan_key
from aftercare.models import EnrollmentStatus, utcnow
from aftercare.protocols import load_protocol
from aftercare.schedule.enrollment import EnrollmentRequest

# Dropped at the end of each batch's transaction: nothing is left behind in the pooled connection.
_TEMP_TABLES = (
    "CREATE TEMP TABLE import_patients (phone text, name_key text, first_name text, email text, timezone text,"
    " language text, sms_consent boolean, email_consent boolean) ON COMMIT DROP",
    "CREATE TEMP TABLE import_sessions (patient_id integer, treatment text, protocol_version integer,"
    " treated_at timestamptz, plan integer) ON COMMIT DROP",
    "CREATE TEMP TABLE import_plans (plan integer, ord integer, kind text, step text, channel text, template text,"
    " is_checkin boolean, is_safety boolean, red_flag text, planned_at timestamptz, due_at timestamptz,"
    " fresh_until timestamptz, status text, skip_reason text, skipped_at timestamptz, attempts integer,"
    " created_at timestamptz, updated_at timestamptz) ON COMMIT DROP",
    "CREATE TEMP TABLE import_created (id integer, plan integer) ON COMMIT DROP",
)
_PATIENT_COLUMNS = ("phone", "name_key", "first_name", "email", "timezone", "language", "sms_consent",
                    "email_consent")
_MESSAGE_COLUMNS = ("kind", "step", "channel", "template", "is_checkin", "is_safety", "red_flag", "planned_at",
                    "due_at", "fresh_until", "status", "skip_reason", "skipped_at", "attempts", "created_at",
                    "updated_at")
_INSERT_PATIENTS = (
    "INSERT INTO patients (clinic_id, created_at, " + ", ".join(_PATIENT_COLUMNS) + ")"
    " SELECT %(clinic)s, %(now)s, " + ", ".join(_PATIENT_COLUMNS) + " FROM import_patients"
    " ON CONFLICT (clinic_id, phone, name_key) DO NOTHING RETURNING phone, name_key, id")
_KNOWN_PATIENTS = (
    "SELECT p.phone, p.name_key, p.id, p.sms_consent AND p.sms_opted_out_at IS NULL FROM patients p"
    " JOIN import_patients i ON i.phone = p.phone AND i.name_key = p.name_key WHERE p.clinic_id = %(clinic)s")
_INSERT_ENROLLMENTS = (
    "WITH created AS (INSERT INTO enrollments (patient_id, clinic_id, treatment, protocol_version, treated_at,"
    "  status, created_at, updated_at)"
    "  SELECT patient_id, %(clinic)s, treatment, protocol_version, treated_at, %(status)s, %(now)s, %(now)s"
    "  FROM import_sessions ON CONFLICT (patient_id, treatment, treated_at) DO NOTHING"
    "  RETURNING id, patient_id, treatment, treated_at)"
    " INSERT INTO import_created (id, plan) SELECT c.id, s.plan FROM created c"
    "  JOIN import_sessions s ON s.patient_id = c.patient_id AND s.treatment = c.treatment"
    "   AND s.treated_at = c.treated_at")
# The messages of exactly the enrollments just created, in protocol order per enrollment.
_INSERT_MESSAGES = (
    "INSERT INTO scheduled_messages (enrollment_id, " + ", ".join(_MESSAGE_COLUMNS) + ")"
    " SELECT c.id, " + ", ".join(f"p.{c}" for c in _MESSAGE_COLUMNS) + " FROM import_created c"
    " JOIN import_plans p ON p.plan = c.plan ORDER BY c.id, p.ord")
WRITERS = 2

SessionKey = tuple  # (phone, name key, treatment, treated_at)
PatientKey = tuple[str, str]


class ImportStopped(Exception):
    """A batch waiting for its turn gives up: an earlier one failed (its error is the one to report)."""


class Turns:
    """Stages that batches take in file order (batch numbers 0, 1, 2, ...); abort() releases every waiter."""

    def __init__(self) -> None:
        self.condition, self.next, self.aborted = threading.Condition(), {"patients": 0, "enrollments": 0}, False

    @contextmanager
    def turn(self, stage: str, number: int) -> Iterator[None]:
        with self.condition:
            self.condition.wait_for(lambda: self.aborted or self.next[stage] == number)
            if self.aborted:
                raise ImportStopped("an earlier batch failed")
        try:
            yield
        finally:
            with self.condition:
                self.next[stage] = number + 1
                self.condition.notify_all()

    def abort(self) -> None:
        with self.condition:
            self.aborted = True
            self.condition.notify_all()


class CopyWriter:
    """Writes batches of unique sessions for one clinic on its own session; each batch is one transaction."""

    def __init__(self, session: Session, clinic_id: int, plans: PlanCache, turns: Turns) -> None:
        self.session, self.clinic_id, self.plans, self.turns = session, clinic_id, plans, turns

    def write(self, number: int, unique: dict[SessionKey, EnrollmentRequest]) -> int:
        """Store batch `number`'s sessions not yet present and commit; returns how many were new."""
        try:
            with self.session.connection().connection.driver_connection.cursor() as cursor:
                created = self._write(cursor, number, unique)
            self.session.commit()
        except BaseException:
            self.turns.abort()
            self.session.rollback()
            raise
        return created

    def _write(self, cursor: Any, number: int, unique: dict[SessionKey, EnrollmentRequest]) -> int:
        params = {"clinic": self.clinic_id, "now": utcnow(), "status": str(EnrollmentStatus.ACTIVE)}
        for statement in _TEMP_TABLES:
            cursor.execute(statement)
        with self.turns.turn("patients", number):
            patient_ids, no_sms = self._patients(cursor, unique, params)
        self._sessions(cursor, unique, patient_ids, no_sms)
        # Fresh temporary tables have no statistics: unanalysed, the planner takes them for a few rows and loops
        # over every plan row for every session (a third of the batch's time, measured).
        cursor.execute("ANALYZE import_sessions, import_plans")
        with self.turns.turn("enrollments", number):
            created = cursor.execute(_INSERT_ENROLLMENTS, params).rowcount
        cursor.execute("ANALYZE import_created")
        cursor.execute(_INSERT_MESSAGES)
        return created

    def _patients(self, cursor: Any, unique: dict[SessionKey, EnrollmentRequest], params: dict
                  ) -> tuple[dict[PatientKey, int], set[PatientKey]]:
        """({(phone, name key): id}, the keys of patients on file whom SMS may not reach). A patient new to the
        clinic is stored as the batch's first row for them gives; one on file is kept as it is (a file never lifts
        an opt-out)."""
        patients: dict[PatientKey, EnrollmentRequest] = {}
        for (phone, name_key, *_), request in unique.items():
            patients.setdefault((phone, name_key), request)
        _copy(cursor, "import_patients", _PATIENT_COLUMNS, (
            (phone, name_key, r.first_name, r.email, r.timezone, r.language, r.sms_consent, r.email_consent)
            for (phone, name_key), r in patients.items()))
        ids = {(phone, name_key): pid for phone, name_key, pid in cursor.execute(_INSERT_PATIENTS, params)}
        no_sms: set[PatientKey] = set()
        if len(ids) < len(patients):  # some are on file already: a re-import, a returning patient
            for phone, name_key, pid, sms_allowed in cursor.execute(_KNOWN_PATIENTS, params).fetchall():
                if (phone, name_key) not in ids:
                    ids[(phone, name_key)] = pid
                    if not sms_allowed:
                        no_sms.add((phone, name_key))
        return ids, no_sms

    def _sessions(self, cursor: Any, unique: dict[SessionKey, EnrollmentRequest], patient_ids: dict[PatientKey, int],
                  no_sms: set[PatientKey]) -> None:
        """COPY every session with the number of its plan, and each plan of this batch once."""
        plans: dict[PlanKey, tuple[int, EnrollmentRequest]] = {}
        rows = []
        for (phone, name_key, treatment, treated_at), request in unique.items():
            if (phone, name_key) in no_sms:  # planned on the consent on file: nothing scheduled that cannot go
                request = replace(request, sms_consent=False)
            number, _ = plans.setdefault(plan_key(request), (len(plans), request))
            rows.append((patient_ids[(phone, name_key)], treatment, load_protocol(treatment).version, treated_at,
                         number))
        _copy(cursor, "import_sessions", ("patient_id", "treatment", "protocol_version", "treated_at", "plan"), rows)
        _copy(cursor, "import_plans", ("plan", "ord", *_MESSAGE_COLUMNS), (
            (number, ord_, *(_plain(row[c]) for c in _MESSAGE_COLUMNS))
            for number, request in plans.values() for ord_, row in enumerate(self.plans.rows(request))))


def _copy(cursor: Any, table: str, columns: tuple[str, ...], rows: Iterable[tuple]) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _plain(value: Any) -> Any:
    # Our StrEnum members are str subclasses; COPY wants the plain text.
    return str(value) if isinstance(value, str) else value
