"""The admin CLI's basics: --version, `db upgrade --json`, `protocols validate` reporting every problem,
treatment keys and languages in any case, and one-line errors for a database without schema or out of reach."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import pytest

from aftercare.protocols import load_protocol, protocol_file_errors
from tests.cli_helpers import add_clinic, cli_json, enroll, run_cli
from tests.conftest import configure, create_pg_database, drop_pg_database

GOOD_STEP = """
  - id: first-hours
    when: {after: 2h}
    channel: sms
    template: checkin.day1
    fresh_for: 12h
"""


def test_version_comes_from_the_package_metadata():
    result = run_cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"aftercare {version('aftercare')}"


@pytest.fixture
def empty_home(monkeypatch, tmp_path):
    """The embedded SQLite database in a fresh folder: no schema yet."""
    monkeypatch.delenv("AFTERCARE_DATABASE_URL", raising=False)
    configure(monkeypatch, home=tmp_path / "home")
    yield tmp_path / "home"
    configure(monkeypatch)


@pytest.fixture
def empty_pg(monkeypatch, tmp_path):
    """A PostgreSQL database that exists but has no tables."""
    url = create_pg_database("aftercare_empty")
    configure(monkeypatch, home=tmp_path / "home", database_url=url)
    yield url
    configure(monkeypatch)
    drop_pg_database(url)


@pytest.mark.parametrize("database", ["empty_home", "empty_pg"])
def test_db_upgrade_json_says_the_revision_and_whether_it_changed(database, request):
    request.getfixturevalue(database)
    first = cli_json("db", "upgrade")
    assert first["upgraded"] is True and first["revision"]
    again = cli_json("db", "upgrade")
    assert again == {"revision": first["revision"], "upgraded": False}


@pytest.mark.parametrize("database", ["empty_home", "empty_pg"])
@pytest.mark.parametrize("command", [["clinic", "list"], ["stats"], ["export", "1"], ["escalations", "list"],
                                     ["inbox"], ["schedule", "list"]])
def test_a_command_on_a_database_without_schema_says_run_db_upgrade(database, command, request):
    request.getfixturevalue(database)
    result = run_cli(*command)
    assert result.exit_code == 1
    assert result.stderr == "error: database not initialised: run aftercare db upgrade\n"
    assert "Traceback" not in result.output


@pytest.mark.parametrize("url", [
    "postgresql://aftercare:Sup3rSecret@127.0.0.1:1/aftercare",  # nothing listens
    "postgresql://postgres:Sup3rSecret@127.0.0.1:5432/no_such_database_x3",  # the server refuses
])
def test_an_unreachable_database_is_one_line_naming_the_variable_without_the_password(monkeypatch, tmp_path, url):
    configure(monkeypatch, home=tmp_path / "home", database_url=url)
    try:
        result = run_cli("clinic", "list")
    finally:
        configure(monkeypatch)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the database")
    assert "AFTERCARE_DATABASE_URL" in lines[0] and "Sup3rSecret" not in result.output
    assert "Traceback" not in result.output


def test_treatment_keys_load_in_any_case():
    for key in ("Dermal-Filler", "DERMAL-FILLER", "dermal-filler"):
        assert load_protocol(key).key == "dermal-filler"
    assert load_protocol("MicroNeedling").key == "microneedling"


def test_enroll_takes_treatment_and_language_in_any_case(any_env):
    add_clinic()
    treated_at = _recent()
    data = enroll(treatment="Dermal-Filler", language="ID", treated_at=treated_at)
    assert data["patient_id"]
    again = enroll(treatment="DERMAL-FILLER", language="id", treated_at=treated_at)
    assert again["created"] is False  # the same session, not a duplicate
    exported = json.loads(run_cli("export", str(data["patient_id"])).stdout)
    assert exported["patient"]["language"] == "id"
    assert [e["treatment"] for e in exported["enrollments"]] == ["dermal-filler"]


def test_protocols_show_and_triage_take_any_case():
    shown = cli_json("protocols", "show", "Chemical-Peel", "--language", "ID")
    assert shown["key"] == "chemical-peel"
    assert cli_json("triage", "bibir saya putih dan sakit sekali", "--lang", "ID")["level"]


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_protocols_validate_reports_every_problem_in_every_file(tmp_path):
    bad_steps = """
  - id: first-hours
    when: {after: 2h}
    channel: pigeon
    template: checkin.day1
    fresh_for: 12h
  - id: Day-Two
    when: {after: 1d}
    channel: sms
    template: no.such.template
    fresh_for: 0h
    colour: red
"""
    one = _write(tmp_path, "mesotherapy.yaml", "key: mesotherapy\nname: Meso\nversion: 0\nsteps:" + bad_steps)
    two = _write(tmp_path, "chemical-peel.yaml", "key: peel\nversion: 1\nsteps:" + GOOD_STEP)
    result = run_cli("protocols", "validate", str(one), str(two), "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["valid"] is False
    first, second = data["files"]
    text = "\n".join(first["errors"])
    for expected in ("field 'version'", "field 'channel': unknown channel 'pigeon'", "step #2: field 'id'",
                     "field 'template': no template 'no.such.template'", "field 'fresh_for'",
                     "field 'colour': unknown field"):
        assert expected in text, (expected, first["errors"])
    assert len(first["errors"]) == len(set(first["errors"])) >= 6
    assert second["errors"] == ["chemical-peel.yaml: field 'name': missing",
                                "chemical-peel.yaml: field 'key': 'peel' does not match the file name"]

    human = run_cli("protocols", "validate", str(one), str(two))
    assert human.exit_code == 1
    assert len(human.stderr.strip().splitlines()) == len(first["errors"]) + len(second["errors"])
    assert all(line.startswith("error: ") for line in human.stderr.strip().splitlines())


def test_protocols_validate_passes_a_good_file_and_the_shipped_ones(tmp_path):
    good = _write(tmp_path, "mesotherapy.yaml", "key: mesotherapy\nname: Meso\nversion: 2\nsteps:" + GOOD_STEP)
    data = cli_json("protocols", "validate", str(good))
    assert data == {"valid": True, "files": [{"path": str(good), "valid": True, "errors": [], "key": "mesotherapy",
                                              "version": 2, "steps": 1}]}
    shipped = sorted(str(p) for p in Path(load_protocol("mesotherapy").source).parent.glob("*.yaml"))
    assert cli_json("protocols", "validate", *shipped)["valid"] is True


def test_collecting_errors_leaves_loading_strict(tmp_path):
    path = _write(tmp_path, "mesotherapy.yaml", "key: mesotherapy\nversion: 0\nsteps: []\n")
    assert len(protocol_file_errors(path)) == 3  # name, version, steps
    from aftercare.protocols import ProtocolError, load_protocol_file

    with pytest.raises(ProtocolError, match=r"^mesotherapy\.yaml: field 'name': missing$"):
        load_protocol_file(path)


def _recent() -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0).isoformat()
