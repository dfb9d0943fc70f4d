"""What every benchmark shares: throwaway databases and processes, percentiles, results and their tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.table import Table

from aftercare.migrate import upgrade
from tests.conftest import create_pg_database, drop_pg_database
from tests.faults.harness import PrivateRedis
from tests.processes import stop

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
# A Redis database of its own: the benchmarks flush it, and nothing else lives there.
REDIS_URL = os.environ.get("AFTERCARE_BENCH_REDIS_URL", "")


@dataclass
class Metric:
    name: str
    value: float | None
    unit: str = ""
    target: str = ""
    passed: bool | None = None  # None: reported for context, no target
    ratio: float | None = None  # value / target threshold


def metric(name: str, value: float | None, unit: str = "", *, at_least: float | None = None,
           at_most: float | None = None) -> Metric:
    """A measured value, judged against at most one threshold."""
    threshold = at_least if at_least is not None else at_most
    if threshold is None or value is None:
        return Metric(name, value, unit, target="" if threshold is None else _target_text(at_least, at_most, unit),
                      passed=None if threshold is None else False)
    passed = value >= threshold if at_least is not None else value <= threshold
    ratio = value / threshold if threshold else None
    return Metric(name, value, unit, _target_text(at_least, at_most, unit), passed, ratio)


def _target_text(at_least: float | None, at_most: float | None, unit: str) -> str:
    sign, threshold = (">=", at_least) if at_least is not None else ("<=", at_most)
    return f"{sign} {fmt(threshold)}{unit_suffix(unit)}"


def unit_suffix(unit: str) -> str:
    return "" if not unit else unit if unit in ("x", "%") else f" {unit}"


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 100:
        return f"{int(value):,}"
    return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"


@dataclass
class Result:
    name: str
    metrics: list[Metric] = field(default_factory=list)
    details: dict = field(default_factory=dict)  # settings and raw numbers, for the JSON file
    seconds: float = 0.0
    error: str | None = None

    def add(self, item: Metric) -> Metric:
        self.metrics.append(item)
        return item


def save(result: Result, stamp: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{stamp}-{result.name}.json"
    path.write_text(json.dumps(asdict(result), indent=2, default=str) + "\n")
    return path


def metrics_table(title: str, rows: list[tuple[str, Metric]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("benchmark", "metric", "value", "target", "ratio", "pass"):
        table.add_column(column, justify="right" if column in ("value", "ratio") else "left")
    for name, item in rows:
        verdict = {True: "[green]pass[/]", False: "[red]MISS[/]", None: ""}[item.passed]
        ratio = f"{item.ratio:.2f}" if item.ratio is not None else ""
        table.add_row(name, item.name, fmt(item.value) + unit_suffix(item.unit), item.target, ratio, verdict)
    return table


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100): always a value that was actually measured."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


# --- throwaway resources: each is removed on exit, also when the benchmark fails ----------------------------
@contextmanager
def pg_database(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database with the migrations applied; dropped (connections and all) on exit."""
    url = create_pg_database(f"aftercare_bench_{prefix}")
    try:
        upgrade(url)
        yield url
    finally:
        drop_pg_database(url)


@contextmanager
def private_redis() -> Iterator[str]:
    """A redis-server of the benchmark's own on a free port (the machine's Redis is shared: never flushed here);
    yields its URL, or AFTERCARE_BENCH_REDIS_URL when that is set (the operator's own, used as it is)."""
    if os.environ.get("AFTERCARE_BENCH_REDIS_URL"):
        yield REDIS_URL
        return
    with tempfile.TemporaryDirectory(prefix="aftercare-bench-redis-") as folder:
        server = PrivateRedis(Path(folder)).start()
        try:
            yield server.url
        finally:
            server.kill()


@contextmanager
def scratch_home() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="aftercare-bench-") as folder:
        yield Path(folder)


@dataclass(frozen=True)
class FakeTwilioProcess:
    url: str
    pid: int


@contextmanager
def fake_twilio() -> Iterator[FakeTwilioProcess]:
    """The tests' fake Twilio API in its own process, so it does not share a GIL with what it measures."""
    process = subprocess.Popen([sys.executable, "-m", "tests.fakes.twilio_api", "--port", "0"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        base_url = (process.stdout.readline() if process.stdout else "").strip()
        if not base_url.startswith("http"):
            raise RuntimeError("the fake Twilio API did not start")
        yield FakeTwilioProcess(base_url, process.pid)
    finally:
        stop(process)


def fake_twilio_stats(base_url: str) -> dict[str, int]:
    with urllib.request.urlopen(base_url + "/_fake/stats", timeout=5) as answer:
        return json.loads(answer.read())


@contextmanager
def running(process: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """Stop the process group on exit, whatever happened."""
    try:
        yield process
    finally:
        stop(process)


def wait_for(condition, *, timeout: float, interval: float = 0.05, what: str = "condition") -> float:
    """Poll until condition() is true; returns the monotonic time it became true. Raises on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


# --- where the CPU went: on a shared machine, CPU seconds per unit of work hold better than rates --------------
@dataclass(frozen=True)
class Proc:
    pid: int
    session: int
    cmdline: str
    cpu: float  # user + system seconds so far


def read_proc(pid: int) -> Proc | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None  # it ended while we looked
    return Proc(pid, int(fields[3]), cmdline, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))


def pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def machine_busy_seconds() -> float:
    """CPU seconds spent by everything on the machine (all cores), from /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds per named group of processes (predicates on Proc) while it runs, and the rest of the machine.
    A sampling thread keeps the last reading of every process, so one that ends meanwhile (a database backend
    whose client quit) still counts up to its last sample."""

    def __init__(self, groups: dict[str, Callable[[Proc], bool]], interval: float = 0.5) -> None:
        self.groups, self.interval = groups, interval
        self.first: dict[int, float] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self.group_of: dict[int, str | None] = {}  # so a sample reads only the processes that count
        self.machine = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-meter", daemon=True)

    def __enter__(self) -> CpuMeter:
        self.machine = machine_busy_seconds()
        for pid in pids():
            if proc := read_proc(pid):
                self.first[pid] = proc.cpu
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.machine = machine_busy_seconds() - self.machine

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        for pid in pids():
            if pid in self.group_of and self.group_of[pid] is None:
                continue
            proc = read_proc(pid)
            if proc is None:
                continue
            name = self.group_of.get(pid) or next((n for n, belongs in self.groups.items() if belongs(proc)), None)
            # A forked database backend shows the postmaster's command line for a moment: look again later.
            if name or "postgres" not in proc.cmdline:
                self.group_of[pid] = name
            if name:
                self.last[pid] = (name, proc.cpu)

    def used(self) -> dict[str, float]:
        """Seconds per group, the whole machine, and everything else (other users of the machine included)."""
        totals = dict.fromkeys(self.groups, 0.0)
        for pid, (name, cpu) in self.last.items():
            totals[name] += cpu - self.first.get(pid, 0.0)
        totals["whole machine"] = self.machine
        totals["everything else"] = self.machine - sum(totals[name] for name in self.groups)
        return {name: round(value, 2) for name, value in totals.items()}


def in_session(pid: int) -> Callable[[Proc], bool]:
    """The process started with start_new_session, and all its children."""
    return lambda proc: proc.session == pid


def postgres_backend_of(url: str) -> Callable[[Proc], bool]:
    database = url.rsplit("/", 1)[1]
    return lambda proc: proc.cmdline.startswith("postgres:") and f" {database} " in proc.cmdline


def is_driver(proc: Proc) -> bool:
    return proc.pid == os.getpid()


def shared_redis(proc: Proc) -> bool:
    return proc.cmdline.startswith("redis-server") and ":6379" in proc.cmdline


def python_env(**aftercare: object) -> dict[str, str]:
    """This process' environment without AFTERCARE_* settings, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERCARE_")}
    env.update({f"AFTERCARE_{k.upper()}": str(v) for k, v in aftercare.items()})
    env["PYTHONPATH"] = str(ROOT)
    return env


def env_number(name: str, default: float) -> float:
    """A benchmark knob from the environment (AFTERCARE_* tuning is passed to the processes under test)."""
    raw = os.environ.get(name)
    return type(default)(raw) if raw else default
