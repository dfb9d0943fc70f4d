"""scripts/services.sh on machines shaped like a fresh Debian/Ubuntu box, with the system's commands replaced by
small stand-ins on PATH (apt-get, sudo, pg_*, redis-*) that record what they were asked and keep state in files."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

TOOLS = ("seq", "sleep", "head", "cat", "touch", "cp", "chmod")
# What each apt package would put on PATH; each stand-in records its call and flips the state it owns.
PACKAGES = {
    "postgresql": {
        "pg_isready": 'test -f "$STATE/pg_up"',
        "pg_lsclusters": 'echo "16 main 5432 down postgres /var/lib/postgresql/16/main /var/log/x.log"',
        "pg_ctlcluster": 'echo "pg_ctlcluster $*" >> "$STATE/log"; touch "$STATE/pg_up"',
    },
    "redis-server": {
        "redis-cli": 'test -f "$STATE/redis_up" && echo PONG',
        "redis-server": 'echo "redis-server $*" >> "$STATE/log"; touch "$STATE/redis_up"',
    },
}


def _script(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def machine(tmp_path: Path):
    """make(uid=0, apt=True, sudo=False, installed=()) -> run() -> (returncode, stdout, stderr, log lines)."""
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    for tool in TOOLS:
        os.symlink(shutil.which(tool), bin_dir / tool)

    def install(package: str) -> None:
        for name, body in PACKAGES[package].items():
            _script(bin_dir / name, body)

    def make(*, uid: int = 0, apt: bool = True, sudo: bool = False, installed: tuple[str, ...] = ()):
        _script(bin_dir / "id", f"echo {uid}")
        _script(bin_dir / "sed", 'echo "sed $*" >> "$STATE/log"')
        if sudo:
            _script(bin_dir / "sudo", 'echo "sudo $1" >> "$STATE/log"; exec "$@"')
        if apt:
            # `apt-get install ... PKG...` puts the packages' commands on PATH, as the real one would.
            lines = "\n".join(
                f'  [ "$a" = {p} ] && {{ ' + "; ".join(
                    f"cat > {bin_dir / n} <<'X'\n#!/bin/bash\n{b}\nX\nchmod +x {bin_dir / n}" for n, b in cmds.items()
                ) + "; }"
                for p, cmds in PACKAGES.items())
            _script(bin_dir / "apt-get", f'echo "apt-get $*" >> "$STATE/log"\nfor a in "$@"; do\n{lines}\ndone\ntrue')
        for package in installed:
            install(package)

        def run():
            env = {"PATH": str(bin_dir), "STATE": str(state), "HOME": str(tmp_path)}
            result = subprocess.run(["/bin/bash", str(ROOT / "scripts" / "services.sh")], env=env,
                                    capture_output=True, text=True, timeout=60)
            log = (state / "log").read_text().splitlines() if (state / "log").exists() else []
            return result.returncode, result.stdout, result.stderr, log

        return run

    return make


def test_fresh_machine_as_root_installs_both_allows_the_tests_in_and_starts_them(machine):
    code, out, err, log = machine(uid=0)()
    assert code == 0, err
    installs = [line for line in log if line.startswith("apt-get install")]
    assert len(installs) == 1 and installs[0].endswith("postgresql redis-server")
    assert any(line.startswith("sed -i 1i host all postgres 127.0.0.1/32 trust") for line in log)
    assert "pg_ctlcluster --skip-systemctl-redirect 16 main start" in log
    assert any(line.startswith("redis-server --daemonize yes") for line in log)
    assert "redis: PONG" in out


def test_a_user_with_sudo_installs_only_what_is_missing_through_sudo(machine):
    code, out, err, log = machine(uid=1000, sudo=True, installed=("redis-server",))()
    assert code == 0, err
    assert "sudo apt-get" in log
    installs = [line for line in log if line.startswith("apt-get install")]
    assert len(installs) == 1 and installs[0].endswith(" postgresql")
    assert "sudo pg_ctlcluster" in log  # a cluster belongs to the postgres user: start it as root


@pytest.mark.parametrize("shape", [dict(uid=1000, sudo=False), dict(uid=0, apt=False), dict(uid=1000, apt=False)])
def test_without_the_means_to_install_it_says_what_to_install_in_one_line(machine, shape):
    code, out, err, log = machine(**shape)()
    assert code == 1
    assert len(err.strip().splitlines()) == 1
    assert "postgresql" in err and "redis-server" in err and "install" in err
    assert not any(line.startswith("apt-get install") for line in log)


def test_installed_but_stopped_starts_them_without_apt(machine):
    code, out, err, log = machine(uid=0, installed=("postgresql", "redis-server"))()
    assert code == 0, err
    assert not any(line.startswith("apt-get") for line in log)
    assert "pg_ctlcluster --skip-systemctl-redirect 16 main start" in log
    assert "PostgreSQL is not answering; starting it" in out
