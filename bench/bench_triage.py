"""Triage throughput on one core: the labelled dev set, replayed for a fixed time.

    .venv/bin/python bench/bench_triage.py            # 20 s
    .venv/bin/python bench/bench_triage.py --quick    # 2 s

Prints replies per second over dev.jsonl (the set the figure before issue 7 was measured on, printed beside it),
then over dev2.jsonl (longer replies), and writes bench/results/triage.json. The sets are ../shared/triage/ or,
without ../shared, their copies in tests/data; $AFTERCARE_TRIAGE_DEVSET names one file instead. The JSON also records a calibration figure (a fixed
pure-Python loop) so numbers taken on a busy or slow machine can be compared with a quiet one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aftercare.triage import triage  # noqa: E402  (the path above makes the checkout importable)

SHARED = ROOT.parent / "shared" / "triage"
DEVSETS = ([Path(os.environ["AFTERCARE_TRIAGE_DEVSET"])] if os.environ.get("AFTERCARE_TRIAGE_DEVSET") else
           [SHARED / "dev.jsonl", SHARED / "dev2.jsonl"] if SHARED.exists() else
           [ROOT / "tests" / "data" / "triage_dev.jsonl", ROOT / "tests" / "data" / "triage_dev2.jsonl"])
RESULTS = ROOT / "bench" / "results" / "triage.json"
TARGET_PER_SECOND = 20_000
# Measured before issue 7 on a quiet machine (README, 2026-11-25): the figure this bench is compared with.
BEFORE_PER_SECOND = 9_600
ESCALATED = {"urgent", "emergency"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="run for 2 s instead of 20 s")
    parser.add_argument("--seconds", type=float, help="run for this many seconds")
    args = parser.parse_args()
    seconds = args.seconds or (2.0 if args.quick else 20.0)
    rows, *others = [[json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
                     for path in DEVSETS]
    load_seconds = _time(lambda: triage("warm up"))
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "devset": [str(path) for path in DEVSETS],
        "replies_in_devset": len(rows),
        "lexicon_load_seconds": round(load_seconds, 3),
        "calibration_ms_per_million_loop_steps": round(_calibration() * 1000, 1),
        **_throughput(rows, seconds),
        **_latency(rows),
        "devset_figures": _figures(rows),
        "target_replies_per_second": TARGET_PER_SECOND,
        "before_replies_per_second": BEFORE_PER_SECOND,
        "other_sets": [{"devset": str(path), **_throughput(other, seconds)} for path, other in zip(DEVSETS[1:], others,
                                                                                                  strict=True)],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"{report['replies_per_second']:,.0f} replies/s on one core "
          f"({report['cpu_replies_per_second']:,.0f} per CPU second; target {TARGET_PER_SECOND:,}; "
          f"before issue 7: {BEFORE_PER_SECOND:,}), "
          f"p50 {report['latency_us_p50']} us, p99 {report['latency_us_p99']} us, over {report['replies']:,} replies")
    for other in report["other_sets"]:
        print(f"{other['replies_per_second']:,.0f} replies/s on one core over {Path(other['devset']).name}")
    print(f"written to {RESULTS.relative_to(ROOT)}")


def _time(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def _calibration() -> float:
    """Seconds for a million steps of a plain Python loop, the median of five (about 0.04 s on a quiet laptop)."""
    def loop() -> None:
        total = 0
        for step in range(1_000_000):
            total += step

    return statistics.median(_time(loop) for _ in range(5))


def _throughput(rows: list[dict], seconds: float) -> dict:
    texts = [(row["text"], row["lang"]) for row in rows]
    replies, wall_start, cpu_start = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall_start < seconds:
        for text, lang in texts:
            triage(text, lang)
        replies += len(texts)
    wall, cpu = time.perf_counter() - wall_start, time.process_time() - cpu_start
    return {"seconds": round(wall, 2), "replies": replies, "replies_per_second": round(replies / wall),
            "cpu_replies_per_second": round(replies / cpu) if cpu else None}


def _latency(rows: list[dict]) -> dict:
    samples = []
    for _ in range(5):
        for row in rows:
            start = time.perf_counter()
            triage(row["text"], row["lang"])
            samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    return {"latency_us_p50": round(samples[len(samples) // 2], 1),
            "latency_us_p99": round(samples[int(len(samples) * 0.99)], 1)}


def _figures(rows: list[dict]) -> dict:
    pairs = [(row["level"], triage(row["text"], row["lang"]).level.value) for row in rows]
    emergencies = [got for want, got in pairs if want == "emergency"]
    escalations = [got for want, got in pairs if want in ESCALATED]
    raised = [want for want, got in pairs if got in ESCALATED]
    return {
        "emergency_recall": round(emergencies.count("emergency") / len(emergencies), 4),
        "urgent_or_emergency_recall": round(sum(got in ESCALATED for got in escalations) / len(escalations), 4),
        "escalation_precision": round(sum(want in ESCALATED for want in raised) / len(raised), 4),
        "exact_accuracy": round(sum(want == got for want, got in pairs) / len(pairs), 4),
    }


if __name__ == "__main__":
    main()
