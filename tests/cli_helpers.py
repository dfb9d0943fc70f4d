"""Running the real `aftercare` click commands in-process, as a clinic's script would."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from click.testing import CliRunner, Result

from cli import main


def run_cli(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


def cli_json(*args: str, input: str | None = None) -> Any:
    result = run_cli(*args, "--json", input=input)
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)


def add_clinic(slug: str = "glow", *, timezone: str = "Asia/Jakarta", quiet_hours: str = "21:00-08:00",
               phone: str = "+622150001234", **extra: str) -> dict:
    args = ["clinic", "add", "--name", "Glow Clinic", "--slug", slug, "--timezone", timezone, "--phone", phone,
            "--quiet-hours", quiet_hours]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", value]
    return cli_json(*args)


def recent(minutes: float = 5, *, hours: float = 0, days: float = 0) -> str:
    """A treatment time that long ago, in Jakarta time (+07:00): enrolling is refused for a session ahead of now or
    older than its whole protocol, so tests enroll sessions that just happened."""
    when = datetime.now(timezone(timedelta(hours=7))) - timedelta(minutes=minutes, hours=hours, days=days)
    return when.replace(microsecond=0).isoformat()


def enroll(*, clinic: str = "glow", phone: str = "+6281234567890", treatment: str = "dermal-filler",
           treated_at: str | None = None, **extra: str) -> dict:
    treated_at = treated_at or recent()
    args = ["enroll", "--clinic", clinic, "--first-name", extra.pop("first_name", "Ayu"), "--phone", phone,
            "--treatment", treatment, "--treated-at", treated_at]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", value]
    return cli_json(*args)
