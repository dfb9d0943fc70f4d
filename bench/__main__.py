"""Run the benchmarks: `.venv/bin/python -m bench [--quick] [dispatch backlog import webhook triage]`.

Each benchmark prints its table as it finishes and writes bench/results/<time>-<name>.json; a summary table
comes last. A benchmark that fails is reported as such and the others still run. Exit code 1 if any failed
to run (a missed target is a result, not a failure).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from datetime import datetime

from rich.console import Console

from bench import backlog, dispatch, importing, triaging, webhook
from bench.common import RESULTS_DIR, Result, metrics_table, save

BENCHMARKS = {"dispatch": dispatch.run, "backlog": backlog.run, "import": importing.run, "webhook": webhook.run,
              "triage": triaging.run}
# Piped output (CI logs, `| tee`) gets room for the tables instead of rich's 80-column default.
console = Console() if sys.stdout.isatty() else Console(width=132)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small versions, under a minute altogether")
    parser.add_argument("names", nargs="*", metavar="name", help=f"any of: {', '.join(BENCHMARKS)} (default: all)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    signal.signal(signal.SIGTERM, _interrupt)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S") + ("-quick" if args.quick else "")
    started = time.monotonic()
    results = [run_one(name, quick=args.quick, stamp=stamp) for name in args.names or BENCHMARKS]
    summary(results, stamp, time.monotonic() - started)
    return 1 if any(r.error for r in results) else 0


def _interrupt(*_args: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so every benchmark's databases and processes are cleaned up."""
    raise KeyboardInterrupt


def run_one(name: str, *, quick: bool, stamp: str) -> Result:
    console.rule(f"{name}{' (quick)' if quick else ''}")
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    try:
        result = BENCHMARKS[name](quick=quick)
    except Exception as exc:  # one broken benchmark must not hide the others' numbers
        console.print(f"[red]{name} failed:[/] {type(exc).__name__}: {exc}")
        result = Result(name, error=f"{type(exc).__name__}: {exc}", details={"traceback": traceback.format_exc()})
    result.seconds = round(time.monotonic() - started, 1)
    # A busy neighbour shows here: the 1-minute load average before and after (cores: os.cpu_count()).
    result.details["machine"] = {"cpus": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg()[0]}
    path = save(result, stamp)
    if result.metrics:
        console.print(metrics_table(f"{name}: {result.seconds:.0f} s, {path.relative_to(RESULTS_DIR.parent.parent)}",
                                    [(name, m) for m in result.metrics]))
    return result


def summary(results: list[Result], stamp: str, seconds: float) -> None:
    rows = [(r.name, m) for r in results for m in r.metrics if m.target]
    console.rule("summary")
    console.print(metrics_table(f"targets ({seconds:.0f} s in all)", rows))
    for result in results:
        if result.error:
            console.print(f"[red]{result.name}: did not run to the end:[/] {result.error}")
    missed = [f"{name}: {m.name}" for name, m in rows if m.passed is False]
    verdict = f"{len(rows) - len(missed)} of {len(rows)} targets met"
    console.print(verdict + (f"; missed: {'; '.join(missed)}" if missed else ""))
    (RESULTS_DIR / f"{stamp}-summary.json").write_text(json.dumps(
        {"seconds": round(seconds, 1), "results": {r.name: {"error": r.error, "seconds": r.seconds,
         "metrics": [m.__dict__ for m in r.metrics]} for r in results}}, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
