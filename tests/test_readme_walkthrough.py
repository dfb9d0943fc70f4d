"""The README's Walk-through, run as written against a scratch data folder on SQLite: every command exits 0 and
every `# {...}` comment after a command matches what it printed. Treatment times move to four hours before now."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from tests.conftest import ROOT

AFTERCARE = str(Path(sys.executable).with_name("aftercare"))
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?([+-]\d\d:\d\d|Z)?")


def walkthrough() -> list[tuple[list[str], dict | None]]:
    """(argv, expected JSON fields or None) for each command of the section's first bash block."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Walk-through", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    commands: list[tuple[list[str], dict | None]] = []
    for line in block.replace("\\\n", " ").splitlines():
        shown = re.search(r"#\s*(\{.*\})\s*$", line)  # the output a command prints, as JSON fields
        expected = json.loads(shown.group(1)) if shown else None
        argv = shlex.split(line, comments=True)
        if argv:
            commands.append((argv, expected))
        elif expected is not None:  # a comment line under a command describes that command's output
            commands[-1] = (commands[-1][0], expected)
    return commands


def _now_relative(argv: list[str], treated_at: datetime) -> list[str]:
    return [treated_at.isoformat(timespec="seconds") if ISO_TIME.fullmatch(a) else a for a in argv]


def test_the_walkthrough_runs_as_written(tmp_path):
    commands = walkthrough()
    assert len(commands) >= 15 and all(argv[0] == "aftercare" for argv, _ in commands)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERCARE_")}
    env.update(AFTERCARE_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT), COLUMNS="200")
    treated_at = (datetime.now(UTC) - timedelta(hours=4)).astimezone(timezone(timedelta(hours=7)))
    outputs = {}
    for argv, expected in commands:
        argv = _now_relative(argv, treated_at)
        result = subprocess.run([AFTERCARE, *argv[1:]], cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, (argv, result.stderr)
        if expected is not None:
            printed = json.loads(result.stdout)
            assert {k: printed.get(k) for k in expected} == expected, argv
        outputs[" ".join(argv[1:3])] = result.stdout
    assert "Ayu" in outputs["patient show"] and "sms" in outputs["patient show"]
    assert "email" in outputs["schedule list"] and "sms" in outputs["schedule list"]
    assert "emergency" in outputs["escalations list"]
    assert "mesotherapy" in outputs["protocols list"]
    # Nothing was written where the commands ran: the data folder holds it all.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]
