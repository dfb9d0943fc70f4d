"""First run: the data folder, `aftercare run` (what `scripts/dev` starts) and `celery -A tasks`, as real processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from aftercare.config import Settings
from tests.conftest import ROOT
from tests.processes import wait_until

AFTERCARE = str(Path(sys.executable).with_name("aftercare"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERCARE_")}
    env.update(AFTERCARE_HOME=str(home), AFTERCARE_DISPATCH_INTERVAL="0.5", PYTHONPATH=str(ROOT), **extra)
    return env


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _count(home: Path, table: str) -> int:
    with sqlite3.connect(home / "aftercare.db") as db:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
            return True
    except OSError:
        return False


# --- the data folder --------------------------------------------------------------------------------------
def test_the_default_data_folder_is_per_user_whatever_the_current_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("AFTERCARE_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    for cwd in (tmp_path, ROOT):
        monkeypatch.chdir(cwd)
        settings = Settings()
        assert settings.home == tmp_path / "xdg" / "aftercare"
        assert settings.effective_database_url == f"sqlite:///{tmp_path / 'xdg' / 'aftercare' / 'aftercare.db'}"
    monkeypatch.setenv("AFTERCARE_HOME", str(tmp_path / "mine"))
    assert Settings().home == tmp_path / "mine"


def test_scripts_dev_keeps_its_own_data_folder():
    script = (ROOT / "scripts" / "dev").read_text()
    assert 'AFTERCARE_HOME="${AFTERCARE_HOME:-$PWD/var/dev}"' in script


# --- aftercare run ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_run_twice_seeds_one_demo_and_ctrl_c_or_sigterm_stop_web_worker_and_beat(tmp_path):
    home, cwd, port = tmp_path / "home", tmp_path / "cwd", _free_port()
    cwd.mkdir()
    env = _env(home, AFTERCARE_WEB_PORT=str(port))
    outbox = home / "outbox.jsonl"
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        run = subprocess.Popen([AFTERCARE, "run", "--demo"], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            assert wait_until(lambda: _healthy(port), timeout=60)
            # The demo's due messages reach the outbox: beat ticked and the worker delivered.
            assert wait_until(lambda: outbox.exists() and len(outbox.read_text().splitlines()) >= 3, timeout=60)
            time.sleep(1)
            helpers = _descendants(run.pid)
            assert helpers  # the worker, beat embedded in it (and any processes it started)
            run.send_signal(stop_signal)  # to `aftercare run` alone, not to its process group
            assert run.wait(timeout=40) == 0
            assert wait_until(lambda pids=helpers: not any(_alive(p) for p in pids), timeout=20), "a worker or beat outlived run"
            assert not _healthy(port)
        finally:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
    assert (_count(home, "clinics"), _count(home, "patients"), _count(home, "enrollments")) == (1, 1, 1)
    assert len((home / "outbox.jsonl").read_text().splitlines()) == 3  # the second run sent nothing again
    # kombu's control files stay in the data folder, never in the directory the service was started from.
    assert (home / "broker" / "control").is_dir()
    assert not (cwd / "control").exists() and not (ROOT / "control").exists()


@pytest.mark.parametrize("command", [["run", "--demo"], ["web"]])
def test_a_port_already_in_use_is_one_line_and_starts_nothing(tmp_path, command):
    home = tmp_path / "home"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([AFTERCARE, *command], cwd=tmp_path, env=_env(home, AFTERCARE_WEB_PORT=str(port)),
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: port {port} on 127.0.0.1 is already in use: stop the other process, "
        "or choose another port with AFTERCARE_WEB_PORT"]
    assert not (home / "aftercare.db").exists()  # no demo seeded, no worker started


# --- celery -A tasks ----------------------------------------------------------------------------------------
def test_celery_finds_the_app_by_the_package_and_by_the_module():
    from celery.app.utils import find_app

    from tasks.app import app

    assert find_app("tasks") is app
    assert find_app("tasks.app") is app
    assert find_app("tasks.app:app") is app


@pytest.mark.slow
def test_celery_dash_a_tasks_worker_and_beat_deliver(tmp_path):
    home = tmp_path / "home"
    env = _env(home)
    enrolled = subprocess.run(
        [AFTERCARE, "db", "upgrade"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert enrolled.returncode == 0, enrolled.stderr
    for args in (["clinic", "add", "--name", "Glow", "--slug", "glow", "--timezone", "Asia/Jakarta",
                  "--phone", "+622150001234", "--quiet-hours", "00:00-00:00"],
                 ["oncall", "add", "--clinic", "glow", "--name", "Dr Sari", "--phone", "+6281200000001"],
                 ["enroll", "--clinic", "glow", "--first-name", "Ayu", "--phone", "+6281234567890",
                  "--treatment", "dermal-filler", "--treated-at",
                  time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 4 * 3600 - 60)), "--json"]):
        result = subprocess.run([AFTERCARE, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["scheduled"] >= 1
    celery = [sys.executable, "-m", "celery", "-A", "tasks"]
    worker = subprocess.Popen([*celery, "worker", "--pool", "threads", "--loglevel", "WARNING", "--without-gossip",
                               "--without-mingle", "--without-heartbeat"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    beat = subprocess.Popen([*celery, "beat", "--loglevel", "WARNING", "--schedule", str(tmp_path / "beat")],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        outbox = home / "outbox.jsonl"
        assert wait_until(lambda: outbox.exists() and len(outbox.read_text().splitlines()) >= 2, timeout=90)
    finally:
        for process in (worker, beat):
            os.killpg(process.pid, signal.SIGTERM)
        for process in (worker, beat):
            process.wait(timeout=30)
    assert not (tmp_path / "control").exists()
