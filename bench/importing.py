"""Benchmark 3, import: `aftercare import CSV --clinic SLUG --json` as a subprocess on a fresh PostgreSQL
database, for a small and a ten times larger file. The time of the large one, and its peak memory next to the
small one's: an importer that streams in batches needs the same memory for both."""

from __future__ import annotations

import csv
import json
import os
import resource
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from aftercare.protocols import TREATMENTS, load_protocol
from bench import seed
from bench.common import ROOT, CpuMeter, Result, metric, pg_database, postgres_backend_of, python_env, scratch_home

SIZES = {False: (10_000, 100_000), True: (500, 5_000)}
SLUG = "bench-import"
TIMEOUT_SECONDS = 900
JAKARTA = ZoneInfo("Asia/Jakarta")
HEADER = ["first_name", "phone", "email", "timezone", "language", "treatment", "treated_at", "sms_consent",
          "email_consent"]


def run(*, quick: bool) -> Result:
    small, large = SIZES[quick]
    result = Result("import", details={})
    with scratch_home() as home:
        for rows in (small, large):
            result.details[rows] = import_once(home, rows)
    big, little = result.details[large], result.details[small]
    result.add(metric(f"import {large:,} rows", big["seconds"], "s", at_most=60 if not quick else None))
    result.add(metric(f"import rate ({large:,} rows)", large / big["seconds"], "rows/s"))
    result.add(metric(f"CPU of the import process ({large:,})", big["cpu_seconds"]["import"], "s"))
    result.add(metric(f"CPU of its PostgreSQL backend ({large:,})", big["cpu_seconds"]["postgres"], "s"))
    result.add(metric(f"peak RSS, {small:,} rows", little["peak_rss_mb"], "MB"))
    result.add(metric(f"peak RSS, {large:,} rows", big["peak_rss_mb"], "MB"))
    # "Flat": ten times the rows may not cost more than a quarter more memory (our bar; interpreter and
    # libraries are most of the small run's peak).
    result.add(metric("peak RSS ratio (10x rows)", big["peak_rss_mb"] / little["peak_rss_mb"], "x", at_most=1.25))
    result.add(metric(f"rows not imported ({large:,})", large - big["report"]["imported"], at_most=0))
    # A fast import that dropped schedules would be no import: every row's whole protocol must be in the outbox.
    result.add(metric(f"outbox rows missing ({large:,})", expected_messages(large) - big["scheduled_messages"],
                      at_most=0))
    return result


def import_once(home: Path, rows: int) -> dict:
    path = home / f"patients-{rows}.csv"
    write_csv(path, rows)
    with pg_database("import") as url:
        with seed.connect(url) as conn:
            seed.add_clinic(conn, slug=SLUG, quiet_hours="21:00-08:00")
        env = python_env(DATABASE_URL=url, HOME=home)
        command = [sys.executable, "-m", "cli", "import", str(path), "--clinic", SLUG, "--json"]
        groups = {"postgres": postgres_backend_of(url), "import": lambda proc: str(path) in proc.cmdline}
        with CpuMeter(groups) as meter:
            seconds, usage, output = run_measured(command, env, home)
        with seed.connect(url) as conn:
            messages = conn.execute("SELECT count(*) FROM scheduled_messages").fetchone()[0]
    return {"rows": rows, "seconds": round(seconds, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "report": json.loads(output), "scheduled_messages": messages,
            "cpu_seconds": {**meter.used(), "import": round(usage.ru_utime + usage.ru_stime, 2)}}


def expected_messages(rows: int) -> int:
    """The outbox rows the file of write_csv(rows) makes: one per protocol step of each row's treatment."""
    return sum(len(load_protocol(TREATMENTS[i % len(TREATMENTS)]).steps) for i in range(rows))


def write_csv(path: Path, rows: int) -> None:
    """Distinct patients treated over the last three days, every treatment and both languages."""
    now = datetime.now(JAKARTA).replace(microsecond=0)  # clinics write local times with their offset
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i in range(rows):
            treated = (now - timedelta(hours=i % 72)).isoformat()
            writer.writerow([f"Pat{i}", f"+62813{i:08d}", f"pat{i}@example.com", "Asia/Jakarta", ("en", "id")[i % 2],
                             TREATMENTS[i % len(TREATMENTS)], treated, "yes", "yes"])


def run_measured(command: list[str], env: dict[str, str], folder: Path) -> tuple[float, resource.struct_rusage, str]:
    """Wall seconds, the kernel's account of that one child (peak memory in kB, CPU) and its stdout."""
    out_path, err_path = folder / "import.out", folder / "import.err"
    started = time.monotonic()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err)
        watchdog = threading.Timer(TIMEOUT_SECONDS, process.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)  # reaps the child and returns its own rusage
        except BaseException:  # interrupted: the import must not outlive the benchmark
            process.kill()
            process.wait()
            raise
        finally:
            watchdog.cancel()
    seconds = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"import exited with {process.returncode}: {err_path.read_text()[-2000:]}")
    return seconds, usage, out_path.read_text()
