"""docker-compose.yml and the README stay in step with the settings the code actually reads."""

from __future__ import annotations

import re
import shlex

import click
import pytest
import yaml

from aftercare.config import Settings
from tests.conftest import ROOT


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_postgres_redis_migrate_web_worker_and_beat():
    services = _compose()["services"]
    assert set(services) >= {"postgres", "redis", "migrate", "web", "worker", "beat"}
    assert services["migrate"]["command"] == ["aftercare", "db", "upgrade"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "tasks", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "tasks", "beat"]
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_compose_serves_the_web_app_with_several_gunicorn_workers_and_shared_metrics():
    web = _compose()["services"]["web"]
    command = web["command"]
    assert command[:2] == ["aftercare", "web"]
    assert int(command[command.index("--workers") + 1]) >= 2
    # The anchor's settings are all still there (a YAML merge is shallow: an own environment replaces it).
    worker_env = _compose()["services"]["worker"]["environment"]
    assert set(worker_env) <= set(web["environment"])
    # The web app's /metrics adds up every process' counts: the worker's (deliveries, reply-to-page) too.
    worker = _compose()["services"]["worker"]
    metrics_dir = web["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    assert worker["environment"]["PROMETHEUS_MULTIPROC_DIR"] == metrics_dir
    mounts = {service: {v.split(":")[1]: v.split(":")[0] for v in s["volumes"]} for service, s in
              (("web", web), ("worker", worker))}
    assert mounts["web"][metrics_dir] == mounts["worker"][metrics_dir] in _compose()["volumes"]


def test_every_variable_in_compose_and_readme_is_a_real_setting():
    known = {f"AFTERCARE_{name.upper()}" for name in Settings.model_fields}
    env = _compose()["services"]["web"]["environment"]
    assert set(env) - {"PROMETHEUS_MULTIPROC_DIR"} <= known
    readme = (ROOT / "README.md").read_text()
    mentioned = set(re.findall(r"AFTERCARE_[A-Z_]+[A-Z]", readme))
    # "AFTERCARE_SMTP_USER / _PASSWORD" style rows name a prefix of real settings.
    unknown = {n for n in mentioned if not any(k.startswith(n) for k in known)}
    assert unknown == set()


def test_readme_names_the_two_commands_and_ci_calls_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "bash scripts/dev" in readme and "bash scripts/test" in readme
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()


# --- every command in docker-compose.yml is a real entry point ------------------------------------------------
def _commands() -> list[tuple[str, list[str]]]:
    """(service, argv) for each service's command and healthcheck (CMD-SHELL split as a shell would)."""
    found = []
    for name, service in _compose()["services"].items():
        if "command" in service:
            found.append((name, service["command"]))
        test = service.get("healthcheck", {}).get("test", [])
        if test[:1] == ["CMD"]:
            found.append((name, test[1:]))
        elif test[:1] == ["CMD-SHELL"]:
            found.append((name, shlex.split(test[1])))
    return found


def _check_aftercare(argv: list[str]) -> None:
    from cli import main

    command, args = main, argv[1:]
    ctx = click.Context(main, info_name="aftercare")
    while isinstance(command, click.Group):
        command = command.get_command(ctx, args[0])
        assert command is not None, f"no aftercare command {argv}"
        args = args[1:]
    command.make_context(command.name, list(args))  # every option parses; a typo raises a usage error


def _check_celery(argv: list[str]) -> None:
    from celery.app.utils import find_app

    from tasks.app import app

    if "-A" in argv:
        assert find_app(argv[argv.index("-A") + 1]) is app
        subcommand = argv[argv.index("-A") + 2]
    else:
        subcommand = next(a for a in argv[1:] if not a.startswith("-") and "://" not in a)
    assert subcommand in {"worker", "beat", "inspect", "flower"}


@pytest.mark.parametrize("service,argv", _commands(), ids=lambda v: v if isinstance(v, str) else " ".join(v)[:40])
def test_every_compose_command_is_a_real_entry_point(service, argv):
    match argv[0]:
        case "aftercare":
            _check_aftercare(argv)
        case "celery":
            _check_celery(argv)
        case "python":
            assert argv[1] == "-c"
            compile(argv[2], f"{service} healthcheck", "exec")
        case _:
            # The images' own tools: postgres, redis, mailpit.
            assert service in {"postgres", "redis", "mailpit"}, (service, argv)


def test_every_service_has_a_healthcheck_and_the_stack_has_flower_and_mailpit():
    services = _compose()["services"]
    one_shot = {"migrate"}  # its exit code is its health
    assert {name for name, s in services.items() if "healthcheck" not in s} == one_shot
    assert "flower" in services["flower"]["command"]
    assert services["mailpit"]["profiles"] == ["local"]


def test_no_secret_has_a_default_and_env_example_lists_every_variable():
    text = "\n".join(line for line in (ROOT / "docker-compose.yml").read_text().splitlines()
                     if not line.lstrip().startswith("#"))
    used = re.findall(r"\$\{([A-Z_]+)(:[?-])?[^}]*\}", text)
    secret = re.compile(r"PASSWORD|SECRET|TOKEN|AUTH|_SID$")
    defaulted = {name for name, op in used if op == ":-" and secret.search(name)}
    # Optional ones: empty is fine (the app refuses a half-configured provider with a one-line error).
    assert defaulted <= {"AFTERCARE_SMTP_PASSWORD", "AFTERCARE_TWILIO_MESSAGING_SERVICE_SID"}
    for required in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "AFTERCARE_SECRET_KEY", "FLOWER_BASIC_AUTH",
                     "AFTERCARE_TWILIO_AUTH_TOKEN"):
        assert (required, ":?") in used
    assert not re.search(r"(PASSWORD|SECRET_KEY): *[A-Za-z0-9]", text), "a literal secret in compose"
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z_]+)=$", example, re.M))
    assert {name for name, _ in used} == listed


def test_the_image_runs_as_a_non_root_user():
    lines = [line.split() for line in (ROOT / "Dockerfile").read_text().splitlines() if line.strip()]
    users = [words[1] for words in lines if words[0] == "USER"]
    assert users and users[-1] not in {"root", "0"} and not users[-1].startswith("0:")
    last_run = max(i for i, words in enumerate(lines) if words[0] == "RUN")
    assert max(i for i, words in enumerate(lines) if words[0] == "USER") > last_run
