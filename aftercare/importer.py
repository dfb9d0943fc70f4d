"""Bulk import: one CSV row per patient session, validated row by row, written in large batches.

Good rows are imported in batches (patients, enrollments and their whole schedules), by COPY on PostgreSQL
(import_copy.py) and bulk inserts on SQLite, while the next rows are read; bad rows go to a reject file next to
the input, with the reason. Costly checks and schedule planning are done once per distinct value (import_checks.py,
import_plans.py). Re-running the same file changes nothing: patients are keyed by (clinic, phone, first name as Patient.key_for compares it), since a family
phone carries several people, and enrollments by (patient, treatment, time).

The file may be separated by commas, semicolons (what Excel writes in many locales), tabs or bars; the header
line tells which. Rows with nothing in them (";;;;" left under a spreadsheet's data) are skipped.
"""

from __future__ import annotations

import csv
import queue
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from aftercare import audit
from aftercare.clinics import get_clinic
from aftercare.errors import InputError
from aftercare.import_checks import RowChecker
from aftercare.import_copy import WRITERS, CopyWriter, ImportStopped, Turns
from aftercare.import_plans import PlanCache
from aftercare.models import Clinic, Enrollment, Patient, ScheduledMessage, utcnow
from aftercare.protocols import load_protocol
from aftercare.schedule.enrollment import EnrollmentRequest

COLUMNS = ("first_name", "phone", "email", "timezone", "language", "treatment", "treated_at", "sms_consent",
           "email_consent")
REQUIRED = ("first_name", "phone", "treatment", "treated_at")
BATCH_SIZE = 2000
DELIMITERS = ",;\t|"
# A cell starting with one of these is a formula to a spreadsheet (OWASP "CSV injection"); full-width forms
# count too in some locales. Such a cell is written with a leading single quote, which makes it plain text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
# A patient of a clinic: the phone and the name key. Session: the patient plus treatment and time.
PatientKey = tuple[str, str]


@dataclass
class ImportReport:
    imported: int = 0
    already_present: int = 0
    rejected: int = 0
    reject_file: str | None = None
    dry_run: bool = False
    rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"imported": self.imported, "already_present": self.already_present, "rejected": self.rejected,
                "reject_file": self.reject_file, "dry_run": self.dry_run}


def import_csv(session: Session, path: Path, *, clinic_slug: str, dry_run: bool = False,
               progress: Callable[[int], None] | None = None, now: datetime | None = None) -> ImportReport:
    """Import the CSV at `path` for the clinic; returns the counts. `now` (UTC): the time the schedules are
    planned at (default: now). Rows are read and checked here while writer threads store the previous batches
    (each batch is committed on its own: a failure later in the file loses nothing already stored). Raises
    InputError for a file that cannot be read as a whole (missing columns, broken quoting; the good rows before
    the broken line are stored), NotFound for an unknown clinic, and what the database raises."""
    clinic = get_clinic(session, clinic_slug)
    now = now or utcnow()
    report = ImportReport(dry_run=dry_run)
    reject_path = path.with_name(path.stem + ".rejects.csv")
    # Treatment times are checked against the clock (not against `now`, which a caller may set to plan as of
    # another time), read once so each distinct treatment time is checked once.
    checker = RowChecker(clinic, utcnow())
    with _open_csv(path) as (reader, header), _Rejects(reject_path, header) as rejects:
        with _stores(session, clinic, now, dry_run=dry_run) as stores, _Writer(stores, report) as writer:
            batch: list[EnrollmentRequest] = []
            try:
                for line, row in reader:
                    report.rows += 1
                    try:
                        batch.append(checker.check(row))
                    except InputError as exc:
                        rejects.write(line, row, str(exc))
                    if len(batch) >= BATCH_SIZE:
                        writer.put(batch)
                        batch = []
                    if progress and report.rows % 500 == 0:
                        progress(report.rows)
            except InputError:
                # The file breaks off at a bad line: the good rows read before it are stored too, so the fixed
                # file imported again finds them all present and adds only the rest.
                if not writer.errors:
                    writer.put(batch)
                raise
            writer.put(batch)
        report.rejected = rejects.count
    report.reject_file = str(reject_path) if report.rejected else None
    if progress:
        progress(report.rows)
    if not dry_run:
        audit.record(session, actor="import", action="import.completed", subject_type="clinic", subject_id=clinic.id,
                     file=path.name, **{k: v for k, v in report.to_dict().items() if k != "reject_file"})
        session.commit()
    return report


Store = Callable[[int, dict], int]  # (batch number, unique sessions) -> how many were new


@contextmanager
def _stores(session: Session, clinic: Clinic, now: datetime, *, dry_run: bool) -> Iterator[list[Store]]:
    """How batches of unique sessions are stored, one store per writer thread: counted only for a dry run, bulk
    INSERTs on SQLite (one writer, on the caller's session), COPY on PostgreSQL (import_copy.WRITERS writers,
    each on a session of its own)."""
    if dry_run:
        yield [lambda _, unique: len(unique) - len(_existing_sessions(session, clinic, list(unique)))]
    elif not use_copy(session):
        plans = PlanCache(clinic, now)
        yield [lambda _, unique: _insert_batch(session, clinic, unique, plans)]
    else:
        turns = Turns()
        sessions = [Session(session.get_bind(), expire_on_commit=False) for _ in range(WRITERS)]
        try:
            yield [CopyWriter(own, clinic.id, PlanCache(clinic, now), turns).write for own in sessions]
        finally:
            for own in sessions:
                own.close()


def use_copy(session: Session) -> bool:
    """Whether batches go by COPY (PostgreSQL); the tests compare it with the INSERT path on the same database."""
    return session.get_bind().dialect.name == "postgresql"


class _Writer:
    """Stores batches in threads of their own (one per store), so reading and checking the next rows overlaps
    the database work (psycopg and sqlite3 release the GIL while they wait). At most two batches wait besides
    those being written: memory stays flat. An error in a thread is raised in the reading thread at its next put,
    or on exit; a batch given up because an earlier one failed (ImportStopped) is not the error to report."""

    def __init__(self, stores: list[Store], report: ImportReport) -> None:
        self.report, self.errors, self.count, self.lock = report, [], 0, threading.Lock()
        self.queue: queue.Queue[tuple[int, list[EnrollmentRequest]] | None] = queue.Queue(maxsize=2)
        self.threads = [threading.Thread(target=self._run, args=(store,), name=f"import-writer-{i}", daemon=True)
                        for i, store in enumerate(stores)]

    def __enter__(self) -> _Writer:
        for thread in self.threads:
            thread.start()
        return self

    def put(self, batch: list[EnrollmentRequest]) -> None:
        if self.errors:
            raise self._error()
        if batch:
            self.queue.put((self.count, batch))
            self.count += 1

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        # The batches already handed over are stored even if reading failed, as they would have been one by one.
        for _ in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join()
        if self.errors and exc_type is None:
            raise self._error()

    def _error(self) -> BaseException:
        return next((e for e in self.errors if not isinstance(e, ImportStopped)), self.errors[0])

    def _run(self, store: Store) -> None:
        while (item := self.queue.get()) is not None:
            if self.errors:
                continue  # drain, so the reader never blocks on a full queue
            number, batch = item
            try:
                created = store(number, _unique(batch))
            except BaseException as exc:  # noqa: BLE001 - handed to the reading thread, raised there
                self.errors.append(exc)
                continue
            with self.lock:
                self.report.imported += created
                self.report.already_present += len(batch) - created


def _unique(batch: list[EnrollmentRequest]) -> dict[tuple, EnrollmentRequest]:
    """{(phone, name key, treatment, time): the batch's first request for that session}; later ones in the same
    batch are duplicates, counted as already present."""
    unique: dict[tuple, EnrollmentRequest] = {}
    for request in batch:
        unique.setdefault((*_patient_key(request), request.treatment, request.treated_at), request)
    return unique


class _open_csv:
    """The CSV as (line number, row) pairs (see _rows); undecodable bytes are kept as surrogates so the row is
    rejected, not the whole file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> tuple[Iterator[tuple[int, dict[str, str]]], list[str]]:
        try:
            self.handle = open(self.path, newline="", encoding="utf-8-sig", errors="surrogateescape")  # noqa: SIM115
        except OSError as exc:
            raise InputError(f"cannot read {self.path}: {exc.strerror}") from None
        # One line is enough to tell the delimiter; seek(0) reads the file from its start again (BOM included).
        delimiter = _guess_delimiter(self.handle.readline())
        self.handle.seek(0)
        reader = csv.reader(self.handle, delimiter=delimiter)
        header = [_column_name(h) for h in next(reader, [])]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            self.handle.close()
            raise InputError(f"{self.path.name}: missing column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}")
        return _rows(reader, header, self.path), header

    def __exit__(self, *exc_info: object) -> None:
        self.handle.close()


def _column_name(header_cell: str) -> str:
    """A header cell as our column name: spreadsheets capitalise ("First_Name") and space ("First name")."""
    return "_".join(header_cell.strip().lower().split())


def _guess_delimiter(header_line: str) -> str:
    """The delimiter (of DELIMITERS) that splits the header line into the most of our column names; "," when
    none does better. csv.Sniffer guesses from character counts and is easily misled by one short line."""
    def known_columns(delimiter: str) -> int:
        names = next(csv.reader([header_line], delimiter=delimiter), [])
        return len({_column_name(name) for name in names} & set(COLUMNS))

    return max(DELIMITERS, key=known_columns)  # max keeps the first of equals: ","


def _rows(reader: Any, header: list[str], path: Path) -> Iterator[tuple[int, dict[str, str | None]]]:
    """(first physical line of the row, {column: cell}) as csv.DictReader gives them: cells beyond the header
    as a list under None, missing ones None. Raises InputError for a row whose cell swallowed whole lines of the
    file (a line break followed by more cells) or ran to its end: a quote was left open, and the rows it swallowed
    would be neither imported nor rejected. A line break alone inside a closed quote ("A<newline>yu") is a bad
    cell, and the row is rejected by the checks like any other."""
    first = reader.line_num + 1
    delimiter = reader.dialect.delimiter
    try:
        for cells in reader:
            if _swallowed_lines(cells, delimiter):
                raise _unclosed_quote(path, first)
            row: dict[str | None, Any] = dict(zip(header, cells, strict=False))
            if len(cells) > len(header):
                row[None] = cells[len(header):]
            row.update((name, None) for name in header[len(cells):])
            if cells and not _is_blank(row):  # [] is an empty line
                yield first, row
            first = reader.line_num + 1
    except csv.Error as exc:  # e.g. a cell over csv.field_size_limit(), also when a quote swallows many lines
        if reader.line_num > first:
            raise _unclosed_quote(path, first) from None
        raise InputError(f"{path.name}: line {first}: {exc}") from None


def _swallowed_lines(cells: list[str], delimiter: str) -> bool:
    """A cell holds a line break followed by more cells, or the quote ran to the end of the file (the last cell
    keeps that line's end)."""
    if cells and cells[-1].endswith(("\n", "\r")):
        return True
    return any(delimiter in re.split(r"\r\n|\r|\n", cell, maxsplit=1)[-1] for cell in cells
               if "\n" in cell or "\r" in cell)


def _unclosed_quote(path: Path, line: int) -> InputError:
    return InputError(f"{path.name}: line {line}: a quote opened here is never closed (it would swallow the lines"
                      " after it); fix the file and import again")


def _is_blank(row: dict[str | None, Any]) -> bool:
    """A row of empty cells only (extra empty cells, under the None key, included)."""
    values = [value for key, value in row.items() if key is not None] + list(row.get(None) or [])
    return all(not (value or "").strip() for value in values)


class _Rejects:
    """The reject file is written only if some row is rejected."""

    def __init__(self, path: Path, header: list[str] | None) -> None:
        self.path, self.count, self.writer, self.handle = path, 0, None, None

    def __enter__(self) -> _Rejects:
        if self.path.exists():
            self.path.unlink()
        return self

    def write(self, line: int, row: dict[str, Any], reason: str) -> None:
        if self.writer is None:
            self.handle = open(self.path, "w", newline="", encoding="utf-8", errors="replace")  # noqa: SIM115
            self.writer = csv.writer(self.handle)
            self.writer.writerow(["line", "reason", *COLUMNS])
        self.count += 1
        self.writer.writerow([csv_cell(value) for value in (line, reason, *(row.get(c) for c in COLUMNS))])

    def __exit__(self, *exc_info: object) -> None:
        if self.handle:
            self.handle.close()


def csv_cell(value: object, *, limit: int | None = 200) -> str:
    """A value as a cell of a CSV we write: valid UTF-8, at most `limit` characters (None: all), never read as a
    formula."""
    text = ("" if value is None else str(value)).encode("utf-8", "replace").decode("utf-8")[:limit]
    return "'" + text if text.startswith(_FORMULA_START) else text


def _insert_batch(session: Session, clinic: Clinic, unique: dict[tuple, EnrollmentRequest], plans: PlanCache) -> int:
    """The SQLite path: bulk INSERTs (one statement per table and batch); returns how many sessions were new."""
    patient_ids, no_sms = _upsert_patients(session, clinic, list(unique.values()))
    created = _insert_enrollments(session, clinic, unique, patient_ids)
    _insert_messages(session, created, unique, no_sms, plans)
    session.commit()
    return len(created)


def _insert(session: Session, table: Table):
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _patient_key(request: EnrollmentRequest) -> PatientKey:
    return request.phone, Patient.key_for(request.first_name)


def _upsert_patients(session: Session, clinic: Clinic, requests: list[EnrollmentRequest]
                     ) -> tuple[dict[PatientKey, int], set[PatientKey]]:
    """Insert the patients not yet present; returns ({(phone, name key): patient id} for every request, the keys
    of patients already on file whom SMS may not reach: opted out or without consent). A file never lifts an
    opt-out: only `enroll --sms-consent` records consent given again."""
    rows: dict[PatientKey, dict] = {}
    for r in requests:
        phone, name_key = _patient_key(r)
        rows.setdefault((phone, name_key), {
            "clinic_id": clinic.id, "phone": phone, "first_name": r.first_name, "name_key": name_key,
            "email": r.email, "timezone": r.timezone, "language": r.language, "sms_consent": r.sms_consent,
            "email_consent": r.email_consent, "created_at": utcnow()})
    table = Patient.__table__
    statement = (_insert(session, table).on_conflict_do_nothing(index_elements=["clinic_id", "phone", "name_key"])
                 .returning(table.c.phone, table.c.name_key, table.c.id))
    ids = {(phone, name_key): pid for phone, name_key, pid in session.execute(statement, list(rows.values()))}
    # Only patients already present (a re-import, a returning patient) need looking up.
    known = [key for key in rows if key not in ids]
    no_sms: set[PatientKey] = set()
    if known:
        query = select(Patient.phone, Patient.name_key, Patient.id, Patient.sms_consent, Patient.sms_opted_out_at
                       ).where(Patient.clinic_id == clinic.id, Patient.phone.in_({phone for phone, _ in known}))
        for phone, name_key, pid, consent, opted_out_at in session.execute(query):
            if (phone, name_key) in rows:
                ids[(phone, name_key)] = pid
                if not consent or opted_out_at is not None:
                    no_sms.add((phone, name_key))
    return ids, no_sms


def _existing_sessions(session: Session, clinic: Clinic, keys: list[tuple]) -> set[tuple]:
    """The session keys (phone, name key, treatment, time) already enrolled at this clinic."""
    phones = list({k[0] for k in keys})
    query = (select(Patient.phone, Patient.name_key, Enrollment.treatment, Enrollment.treated_at).join(Enrollment)
             .where(Patient.clinic_id == clinic.id, Patient.phone.in_(phones)))
    present = {tuple(row) for row in session.execute(query)}
    return {k for k in keys if k in present}


def _insert_enrollments(session: Session, clinic: Clinic, unique: dict[tuple, EnrollmentRequest],
                        patient_ids: dict[PatientKey, int]) -> dict[int, tuple]:
    """Insert the sessions not yet present; returns {new enrollment id: session key}."""
    by_patient = {(patient_ids[(phone, name_key)], treatment, at): (phone, name_key, treatment, at)
                  for phone, name_key, treatment, at in unique}
    rows = [{"patient_id": pid, "clinic_id": clinic.id, "treatment": treatment,
             "protocol_version": load_protocol(treatment).version, "treated_at": at, "status": "active",
             "created_at": utcnow(), "updated_at": utcnow()} for pid, treatment, at in by_patient]
    table = Enrollment.__table__
    statement = (_insert(session, table).on_conflict_do_nothing(index_elements=["patient_id", "treatment", "treated_at"])
                 .returning(table.c.id, table.c.patient_id, table.c.treatment, table.c.treated_at))
    created = session.execute(statement, rows, execution_options={"insertmanyvalues_page_size": 1000}).all()
    return {row.id: by_patient[(row.patient_id, row.treatment, row.treated_at)] for row in created}


def _insert_messages(session: Session, created: dict[int, tuple], unique: dict[tuple, EnrollmentRequest],
                     no_sms: set[PatientKey], plans: PlanCache) -> None:
    rows: list[dict] = []
    for enrollment_id, key in created.items():
        request = unique[key]
        if key[:2] in no_sms:  # planned on the consent on file, so nothing counts as scheduled that cannot go
            request = replace(request, sms_consent=False)
        rows.extend({**row, "enrollment_id": enrollment_id} for row in plans.rows(request))
    if rows:
        session.execute(ScheduledMessage.__table__.insert(), rows)
