"""Benchmark 5, triage: replies per second on one core over the dev set, repeated.

The measurement is the triage engineer's bench/bench_triage.py; this runs it pinned to one CPU and reads the
JSON it writes (bench/results/triage.json).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.common import RESULTS_DIR, ROOT, Result, metric, python_env

SCRIPT = ROOT / "bench" / "bench_triage.py"
THEIR_RESULTS = RESULTS_DIR / "triage.json"
TARGET = 20_000


def run(*, quick: bool) -> Result:
    report = run_their_script(quick)
    keep = ("replies", "replies_per_second", "cpu_replies_per_second", "latency_us_p50", "latency_us_p99",
            "calibration_ms_per_million_loop_steps", "devset")
    result = Result("triage", details={"source": "bench/bench_triage.py", **{k: report.get(k) for k in keep}})
    result.add(metric("triage replies per second, one core", report["replies_per_second"], "replies/s",
                      at_least=TARGET))
    # Per CPU second of the process: what the same core would do without a neighbour.
    result.add(metric("triage replies per CPU second", report.get("cpu_replies_per_second"), "replies/s"))
    result.add(metric("triage replies per second before issue 7", report.get("before_replies_per_second"),
                      "replies/s"))
    for other in report.get("other_sets", []):
        result.add(metric(f"triage replies per second over {Path(other['devset']).name}",
                          other["replies_per_second"], "replies/s"))
    return result


def run_their_script(quick: bool) -> dict:
    if not SCRIPT.exists():
        raise FileNotFoundError("bench/bench_triage.py (the triage engineer's) is not there yet")
    THEIR_RESULTS.unlink(missing_ok=True)  # so a stale file is never read as this run's
    command = [sys.executable, str(SCRIPT), *(["--quick"] if quick else [])]
    done = subprocess.run(command, cwd=ROOT, env=python_env(), capture_output=True, text=True, timeout=600,
                          preexec_fn=pin_to_one_core, check=False)
    if done.returncode != 0 or not THEIR_RESULTS.exists():
        raise RuntimeError(f"bench/bench_triage.py exited with {done.returncode}: {done.stderr[-2000:]}")
    return json.loads(THEIR_RESULTS.read_text())


def pin_to_one_core() -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
