"""docker-compose.yml and the README stay in step with the settings the code actually reads."""

from __future__ import annotations

import re

import yaml

from aftercare.config import Settings
from tests.conftest import ROOT


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_postgres_redis_migrate_web_worker_and_beat():
    services = _compose()["services"]
    assert set(services) >= {"postgres", "redis", "migrate", "web", "worker", "beat"}
    assert services["migrate"]["command"] == ["aftercare", "db", "upgrade"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "tasks.app", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "tasks.app", "beat"]
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_every_variable_in_compose_and_readme_is_a_real_setting():
    known = {f"AFTERCARE_{name.upper()}" for name in Settings.model_fields}
    env = _compose()["services"]["web"]["environment"]
    assert set(env) <= known
    readme = (ROOT / "README.md").read_text()
    mentioned = set(re.findall(r"AFTERCARE_[A-Z_]+[A-Z]", readme))
    # "AFTERCARE_SMTP_USER / _PASSWORD" style rows name a prefix of real settings.
    unknown = {n for n in mentioned if not any(k.startswith(n) for k in known)}
    assert unknown == set()


def test_readme_names_the_two_commands_and_ci_calls_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "bash scripts/dev" in readme and "bash scripts/test" in readme
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
