"""The CLI against hostile input: SQL fragments, 10 kB names, control characters, emoji, invalid UTF-8.

Harmless text (an emoji, an apostrophe, something that looks like SQL) is a legitimate name and is stored
verbatim. Anything that cannot be a name or cannot be stored (control characters, invalid UTF-8, NUL, absurd
sizes or dates) is refused with one clear line on stderr and exit code 1, and nothing is half-written.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from aftercare.db import session_scope
from aftercare.models import (
    AuditEntry,
    Clinic,
    Enrollment,
    InboundMessage,
    OnCallStaff,
    Patient,
    ScheduledMessage,
)
from cli import main
from tests.cli_helpers import add_clinic, cli_json, recent, run_cli
from tests.conftest import ROOT

TABLES = (Clinic, OnCallStaff, Patient, Enrollment, ScheduledMessage, InboundMessage, AuditEntry)
TEN_KB = "x" * 10_000
SQL = "Robert'); DROP TABLE patients;--"
TREATED = recent(hours=1)
PATIENT = "+6281234567890"
HEADER = ["first_name", "phone", "email", "timezone", "language", "treatment", "treated_at", "sms_consent",
          "email_consent"]


def _counts() -> dict[str, int]:
    with session_scope() as session:
        return {m.__tablename__: session.scalar(select(func.count()).select_from(m)) for m in TABLES}


def _invoke(*args: str) -> Result:
    # Exceptions are caught so a traceback fails the assertion below with its type, rather than ending the test.
    return CliRunner().invoke(main, list(args), catch_exceptions=True)


def assert_one_line_error(result: Result, *, mentions: str | None = None) -> None:
    crashed = f"{type(result.exception).__name__}: {result.exception}" if result.exception and not isinstance(
        result.exception, SystemExit) else None
    assert crashed is None, f"crashed instead of a one-line error: {crashed}"
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, repr(result.stderr)
    assert "Traceback" not in result.stderr and result.stdout == ""
    if mentions:
        assert mentions in result.stderr


def _enroll_args(**overrides: str) -> list[str]:
    values = {"clinic": "glow", "first-name": "Ayu", "phone": PATIENT, "treatment": "dermal-filler",
              "treated-at": TREATED, **overrides}
    args = ["enroll"]
    for key, value in values.items():
        args += [f"--{key}", value]
    return args


@pytest.fixture
def clinic(env) -> dict:
    return add_clinic()


# -- names ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [
    "Ayu 🌸", "Siti Nurhaliza", "O'Brien", "José-María", "Nguyễn Thị", "王小明", "👩🏽‍⚕️", SQL, "[bold red]Ayu[/]",
])
def test_a_harmless_unusual_first_name_is_stored_verbatim(clinic, name):
    enrolled = cli_json(*_enroll_args(**{"first-name": name}))
    shown = cli_json("patient", "show", str(enrolled["patient_id"]))
    assert shown["patient"]["first_name"] == name
    assert _counts()["patients"] == 1  # and the patients table is still there


@pytest.mark.parametrize("name, mentions", [
    (TEN_KB, "too long"), ("Ayu\nBudi", "control characters"), ("Ayu\x1b[31m", "control characters"),
    ("Ayu\x00", "control characters"), ("Ayu\x07", "control characters"), ("\r", None), ("   ", "empty"),
    ("Ayu\udcff", None),  # what Python makes of invalid UTF-8 bytes in argv
])
def test_a_first_name_that_cannot_be_a_name_is_refused_and_nothing_is_written(clinic, name, mentions):
    before = _counts()
    assert_one_line_error(_invoke(*_enroll_args(**{"first-name": name})), mentions=mentions)
    assert _counts() == before


@pytest.mark.parametrize("option, value", [
    ("--name", TEN_KB), ("--name", "Glow\nClinic"), ("--name", "Glow\udcff"), ("--slug", "glow'; DROP TABLE x;--"),
    ("--slug", TEN_KB), ("--timezone", "../../etc/passwd"), ("--timezone", TEN_KB), ("--phone", SQL),
    ("--phone", TEN_KB), ("--quiet-hours", "21:00-08:00; DROP"), ("--email-from", "glow\x00@example.com"),
    ("--email-from", TEN_KB + "@example.com"), ("--sms-from", "+62\x00"),
])
def test_hostile_clinic_fields_are_refused_and_nothing_is_written(env, option, value):
    args = {"--name": "Glow Clinic", "--slug": "glow", "--timezone": "Asia/Jakarta", "--phone": "+622150001234",
            option: value}
    before = _counts()
    assert_one_line_error(_invoke("clinic", "add", *[part for pair in args.items() for part in pair]))
    assert _counts() == before


def test_a_clinic_name_that_looks_like_sql_is_just_a_name(env):
    created = cli_json("clinic", "add", "--name", SQL, "--slug", "glow", "--timezone", "Asia/Jakarta",
                       "--phone", "+622150001234")
    assert created["name"] == SQL
    assert [c["name"] for c in cli_json("clinic", "list")] == [SQL]


@pytest.mark.parametrize("option, value", [
    ("--name", TEN_KB), ("--name", "Dr\tA"), ("--name", "Dr A\udcff"), ("--phone", SQL),
    ("--email", "a\x00b@example.com"), ("--email", "a@example.com\nBcc: x@evil.example"), ("--clinic", SQL),
])
def test_hostile_oncall_fields_are_refused_and_nothing_is_written(clinic, option, value):
    args = {"--clinic": "glow", "--name": "Dr A", "--phone": "+6281100000001", option: value}
    before = _counts()
    assert_one_line_error(_invoke("oncall", "add", *[part for pair in args.items() for part in pair]))
    assert _counts() == before


# -- other enrollment fields -----------------------------------------------------------------------------------
@pytest.mark.parametrize("option, value", [
    ("phone", SQL), ("phone", TEN_KB), ("phone", "+62812\x0034567890"), ("email", "ayu\x00@example.com"),
    ("email", "ayu@example.com\r\nBcc: all@evil.example"), ("email", TEN_KB), ("timezone", "Asia/Jakarta\x00"),
    ("timezone", "../../../etc/localtime"), ("treatment", "../../etc/passwd"), ("treatment", "dermal-filler\n"),
    ("treated-at", TEN_KB), ("treated-at", "9999-12-31T23:59:59+14:00"), ("treated-at", "2026-11-25T10:00:00"),
    ("treated-at", "2026-13-45T99:00:00+07:00"), ("clinic", SQL),
])
def test_hostile_enrollment_fields_are_refused_and_nothing_is_written(clinic, option, value):
    before = _counts()
    assert_one_line_error(_invoke(*_enroll_args(**{option: value})))
    assert _counts() == before


def test_invalid_utf8_bytes_on_the_real_command_line_are_a_one_line_error(env, clinic):
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable.encode(), b"cli.py", *[a.encode() for a in _enroll_args()]]
    command[command.index(b"--first-name") + 1] = b"A\xffyu"
    before = _counts()
    finished = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, timeout=60)
    stderr = finished.stderr.decode("utf-8", "replace")
    assert finished.returncode == 1 and "Traceback" not in stderr, stderr[-2000:]
    assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    assert _counts() == before


# -- replies ---------------------------------------------------------------------------------------------------
def test_a_reply_from_an_sql_looking_sender_is_refused_and_stores_nothing(clinic):
    result = _invoke("reply", "--from", "' OR 1=1 --", "'; DELETE FROM patients; --")
    assert result.exit_code == 1
    assert_one_line_error(result)
    with session_scope() as session:
        assert session.scalar(select(InboundMessage)) is None


@pytest.mark.parametrize("args", [
    ["--from", PATIENT, "hello\x00there"],
    ["--from", "+62812\x00", "hello"],
    ["--from", PATIENT, "--to", "y" * 100, "hello"],
    ["--from", PATIENT, "my lip \udcff has gone white"],
    ["--from", TEN_KB, "hello"],
], ids=["nul-in-text", "nul-in-sender", "long-to", "invalid-utf8", "10kb-sender"])
def test_a_reply_that_cannot_be_stored_as_given_is_cleaned_or_refused_never_a_crash(clinic, args):
    result = _invoke("reply", *args, "--json")
    if result.exit_code == 1:
        assert_one_line_error(result)
    else:
        assert result.exception is None, f"{type(result.exception).__name__}: {result.exception}"
        assert result.exit_code == 0 and json.loads(result.stdout)


def test_a_10kb_reply_is_stored_up_to_an_sms_length(clinic):
    cli_json("reply", "--from", PATIENT, TEN_KB)
    with session_scope() as session:
        assert session.scalar(select(func.length(InboundMessage.body))) == 1600


def test_terminal_escapes_in_a_reply_are_never_printed_raw(clinic):
    cli_json(*_enroll_args())
    escapes = "\x1b]0;pwned\x07\x1b[2J\x1b[31mmy lip has gone white and it really hurts"
    handled = run_cli("reply", "--from", PATIENT, escapes)
    assert handled.exit_code == 0 and "\x1b" not in handled.stdout
    for args in (["escalations", "list"], ["patient", "show", "1"], ["escalations", "show", "1"]):
        shown = run_cli(*args)
        assert shown.exit_code == 0 and "\x1b" not in shown.stdout, args


@pytest.mark.parametrize("args", [
    ["escalations", "ack", "1", "--by", "Dr\x1b[31mA"], ["escalations", "ack", "1", "--by", TEN_KB],
    ["escalations", "resolve", "1", "--by", "Dr A", "--note", "seen\x00"],
])
def test_hostile_clinician_names_and_notes_are_refused(clinic, args):
    cli_json(*_enroll_args())
    cli_json("reply", "--from", PATIENT, "my lip has gone white and it really hurts")
    before = _counts()
    assert_one_line_error(_invoke(*args))
    assert _counts() == before
    assert cli_json("escalations", "list")[0]["status"] == "open"


# -- CSV import ------------------------------------------------------------------------------------------------
def _row(first_name: bytes = b"Ayu", phone: bytes = b"+6281200000001", email: bytes = b"a@example.com",
         treated_at: bytes | None = None) -> bytes:
    treated_at = treated_at or (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0).isoformat().encode()
    def quoted(value: bytes) -> bytes:
        return b'"' + value.replace(b'"', b'""') + b'"'
    return b",".join([quoted(first_name), phone, quoted(email), b"Asia/Jakarta", b"en", b"mesotherapy", treated_at,
                      b"true", b"true"]) + b"\n"


def _csv(tmp_path, *rows: bytes):
    path = tmp_path / "patients.csv"
    path.write_bytes(",".join(HEADER).encode() + b"\n" + b"".join(rows))
    return path


GOOD = _row(b"Budi", b"+6281200000002", b"b@example.com")


@pytest.mark.parametrize("bad_row, reason", [
    (_row(first_name=b"A\xffyu"), "UTF-8"),
    (_row(email=b"a\xc3\x28@example.com"), "UTF-8"),
    (_row(treated_at=b"2027\xff-01-01"), "UTF-8"),
    (_row(first_name=b"A\x00yu"), "control characters"),
    (_row(first_name=b"A\nyu"), "control characters"),
    (_row(first_name=b"A\x1b[31myu"), "control characters"),
    (_row(first_name=TEN_KB.encode()), "too long"),
    (_row(email=b"a\x00@example.com"), "email"),
    (_row(phone=SQL.encode().replace(b",", b" ")), "phone"),
    (_row(treated_at=b"9999-12-31T23:59:59+14:00"), None),
], ids=["utf8-name", "utf8-email", "utf8-date", "nul-name", "newline-name", "escape-name", "10kb-name", "nul-email",
        "sql-phone", "year-9999"])
def test_import_rejects_a_hostile_row_with_its_reason_and_imports_the_rest(clinic, tmp_path, bad_row, reason):
    path = _csv(tmp_path, bad_row, GOOD)
    result = _invoke("import", str(path), "--clinic", "glow", "--json")
    assert result.exception is None, f"{type(result.exception).__name__}: {result.exception}"
    report = json.loads(result.stdout)
    assert (report["imported"], report["rejected"]) == (1, 1)
    with open(report["reject_file"], newline="", encoding="utf-8") as handle:
        rejected = list(csv.DictReader(handle))
    assert len(rejected) == 1 and (reason is None or reason in rejected[0]["reason"]), rejected
    with session_scope() as session:
        assert session.scalars(select(Patient.first_name)).all() == ["Budi"]


def test_import_stores_emoji_and_sql_looking_names_verbatim(clinic, tmp_path):
    path = _csv(tmp_path, _row(first_name="Ayu 🌸".encode()), _row(SQL.encode(), b"+6281200000002"))
    report = cli_json("import", str(path), "--clinic", "glow")
    assert (report["imported"], report["rejected"]) == (2, 0)
    with session_scope() as session:
        assert sorted(session.scalars(select(Patient.first_name))) == sorted(["Ayu 🌸", SQL])


@pytest.mark.parametrize("content", [
    b"", b"\xff\xfe\x00garbage\n1,2,3\n", bytes(range(256)) * 40, (",".join(HEADER) + "\n").encode("utf-16"),
    b"first_name;phone;treatment\nAyu;+6281200000001;mesotherapy\n",
    ",".join(HEADER).encode() + b'\n"' + b"x" * 200_000 + b'",+6281200000001\n',
], ids=["empty", "garbage-header", "binary", "utf16", "semicolons-without-treated-at", "200kb-field"])
def test_an_unreadable_csv_is_a_one_line_error_and_writes_nothing(clinic, tmp_path, content):
    path = tmp_path / "patients.csv"
    path.write_bytes(content)
    before = _counts()
    assert_one_line_error(_invoke("import", str(path), "--clinic", "glow"))
    assert _counts() == before


def test_importing_a_missing_file_or_a_directory_is_a_one_line_error(clinic, tmp_path):
    assert_one_line_error(_invoke("import", str(tmp_path / "nope.csv"), "--clinic", "glow"))
    fifo_free_dir = tmp_path / "a-directory.csv"
    fifo_free_dir.mkdir()
    result = _invoke("import", str(fifo_free_dir), "--clinic", "glow")
    assert result.exit_code in (1, 2) and "Traceback" not in result.output
