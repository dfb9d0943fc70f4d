"""Seeding benchmark databases in bulk with INSERT ... SELECT generate_series: a million rows in seconds.

The rows are what enrollment would have written (see aftercare/schedule/enrollment.py); going around it is the
point, since the benchmarks measure what happens to rows once they exist, not how they were made.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg

from aftercare.protocols import load_protocol

TREATMENT = "dermal-filler"
SMS_TEMPLATE = "dermal-filler.first-hours"  # a real SMS step, so delivery renders what production renders
CLINIC_PHONE = "+622150001234"


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url)


def disable_triggers(conn: psycopg.Connection) -> None:
    """Skip foreign-key triggers for this connection's bulk inserts (rows are consistent by construction);
    they would double the time to seed a million rows. Needs a superuser, as the tests' PostgreSQL has."""
    conn.execute("SET session_replication_role = replica")


def patient_phone(number: int) -> str:
    """The phone of the number-th seeded patient (1-based), a valid Indonesian mobile number."""
    return f"+62812{number:08d}"


def add_clinic(conn: psycopg.Connection, *, slug: str = "bench", quiet_hours: str = "00:00-00:00") -> int:
    """A clinic; quiet hours 00:00-00:00 (an empty window) so they never hold a benchmark message."""
    start, end = quiet_hours.split("-")
    return conn.execute(
        "INSERT INTO clinics (slug, name, timezone, phone, quiet_start, quiet_end, created_at) "
        "VALUES (%s, 'Bench Clinic', 'Asia/Jakarta', %s, %s, %s, now()) RETURNING id",
        (slug, CLINIC_PHONE, start, end)).fetchone()[0]


def add_enrolled_patients(conn: psycopg.Connection, clinic_id: int, count: int) -> None:
    """`count` patients (phones patient_phone(1..count)), each with one active enrollment."""
    conn.execute(
        "INSERT INTO patients (clinic_id, first_name, name_key, phone, timezone, language, sms_consent, "
        "email_consent, created_at) SELECT %s, 'Pat' || g, 'pat' || g, '+62812' || lpad(g::text, 8, '0'), "
        "'Asia/Jakarta', 'en', true, true, now() FROM generate_series(1, %s) g", (clinic_id, count))
    conn.execute(
        "INSERT INTO enrollments (patient_id, clinic_id, treatment, protocol_version, treated_at, status, "
        "created_at, updated_at) SELECT id, clinic_id, %s, %s, now() - interval '1 day', 'active', now(), now() "
        "FROM patients WHERE clinic_id = %s", (TREATMENT, load_protocol(TREATMENT).version, clinic_id))


def add_reminders(conn: psycopg.Connection, clinic_id: int, count: int, *, due_at: datetime,
                  spread: timedelta = timedelta(0), step_prefix: str = "bench") -> None:
    """`count` scheduled SMS reminders spread over the clinic's enrollments, due between due_at and
    due_at + spread, fresh for a day after that."""
    enrollments = conn.execute("SELECT count(*) FROM enrollments WHERE clinic_id = %s", (clinic_id,)).fetchone()[0]
    steps = -(-count // enrollments)
    # Rows come out enrollment by enrollment, step by step, with due times rising: every index then grows at
    # its right edge, which is what makes a million-row insert take seconds.
    conn.execute(
        "INSERT INTO scheduled_messages (kind, enrollment_id, step, channel, template, is_checkin, planned_at, "
        "due_at, fresh_until, status, attempts, created_at, updated_at) "
        "SELECT 'reminder', id, %(prefix)s || '-' || s, 'sms', %(template)s, false, due, due, due + interval '1 day', "
        "'scheduled', 0, now(), now() FROM ("
        "  SELECT e.id, s, %(due)s::timestamptz + (row_number() OVER () - 1) * %(gap)s::interval AS due"
        "  FROM enrollments e CROSS JOIN LATERAL generate_series(1, %(steps)s) s WHERE e.clinic_id = %(clinic)s"
        "  LIMIT %(count)s) planned",
        {"prefix": step_prefix, "template": SMS_TEMPLATE, "steps": steps, "due": due_at, "gap": spread / count,
         "clinic": clinic_id, "count": count})


def analyze(url: str) -> None:
    """Fresh planner statistics, as autovacuum would have gathered in production by then."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
