"""A quote left open in one row of an import file: the csv reader would swallow every following line into one
cell, so those patients would be neither imported nor rejected. The import stops at that row instead, naming the
line the quote opened on, and keeps what it read before it; the fixed file brings in the rest.

All numbers and names are made up.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

import aftercare.importer
from aftercare.db import session_scope
from aftercare.models import Enrollment, Patient
from tests.cli_helpers import add_clinic, cli_json, run_cli

TREATED = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0).isoformat()
ERROR = "line 12: a quote opened here is never closed"  # header, rows 0-9 on lines 2-11, the open quote on 12


def _lines(count: int = 15, *, broken: bool = True) -> list[str]:
    """A header and `count` patients; before the 11th, a row whose first cell opens a quote (closed if not
    `broken`)."""
    lines = ["first_name,phone,treatment,treated_at"]
    for i in range(count):
        if i == 10:
            name = '"Unclosed' if broken else '"Closed"'
            lines.append(f"{name},+6281233000001,chemical-peel,{TREATED}")
        lines.append(f"M{i}x,+62813{6000000 + i:07d},chemical-peel,{TREATED}")
    return lines


def _write(path: Path, lines: list[str], end: str = "\n") -> Path:
    path.write_text(end.join(lines) + end, encoding="utf-8", newline="")
    return path


def _names() -> list[str]:
    with session_scope() as session:
        return sorted(session.scalars(select(Patient.first_name)))


def _enrollments() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Enrollment))


def test_an_unclosed_quote_stops_the_import_at_its_line_and_keeps_the_rows_before(any_env, tmp_path, monkeypatch):
    monkeypatch.setattr(aftercare.importer, "BATCH_SIZE", 4)  # two whole batches and a part one before the line
    add_clinic()
    path = _write(tmp_path / "broken.csv", _lines())
    dry = run_cli("import", path, "--clinic", "glow", "--dry-run")
    assert dry.exit_code == 1 and ERROR in dry.stderr and _names() == []
    result = run_cli("import", path, "--clinic", "glow")
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == (f"error: broken.csv: {ERROR} (it would swallow the lines after it); "
                                     "fix the file and import again")
    assert "+62813" not in result.stderr and "Unclosed" not in result.stderr  # no patient data in the error
    assert _names() == sorted(f"M{i}x" for i in range(10)) and _enrollments() == 10
    assert not (tmp_path / "broken.rejects.csv").exists()

    fixed = _write(path, _lines(broken=False))
    report = cli_json("import", fixed, "--clinic", "glow")
    assert (report["imported"], report["already_present"], report["rejected"]) == (6, 10, 0)
    assert _names() == sorted(["Closed", *(f"M{i}x" for i in range(15))]) and _enrollments() == 16


@pytest.mark.parametrize("end", ["\r\n", "\r"])
def test_the_line_is_counted_the_same_with_windows_and_old_mac_line_ends(env, tmp_path, end):
    add_clinic()
    path = _write(tmp_path / "broken.csv", _lines(), end)
    result = run_cli("import", path, "--clinic", "glow")
    assert result.exit_code == 1 and ERROR in result.stderr


def test_an_unclosed_quote_in_the_last_row_or_over_the_cell_limit_is_named_too(env, tmp_path):
    add_clinic()
    last = _write(tmp_path / "last.csv", _lines(10) + [f'"Unclosed,+6281233000001,chemical-peel,{TREATED}'])
    result = run_cli("import", last, "--clinic", "glow")
    assert result.exit_code == 1 and ERROR in result.stderr
    # 20,000 swallowed lines exceed csv.field_size_limit(): the csv reader fails far below the opening line.
    long = _write(tmp_path / "long.csv", _lines(20_000))
    result = run_cli("import", long, "--clinic", "glow")
    assert result.exit_code == 1 and ERROR in result.stderr


def test_blank_lines_before_a_row_do_not_shift_its_line_number(env, tmp_path):
    add_clinic()
    lines = _lines()  # the header, M0x-M9x, the unclosed quote, M10x...
    # Two blank lines take the place of M8x and M9x: the quote opens on line 12 still.
    path = _write(tmp_path / "gaps.csv", [lines[0], "", ",,,", *lines[1:9], *lines[11:]])
    result = run_cli("import", path, "--clinic", "glow")
    assert result.exit_code == 1 and ERROR in result.stderr
