"""Shared fixtures: a real PostgreSQL database per test session (and SQLite where asked), settings from
the environment exactly as production reads them, and fresh caches between tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from aftercare.config import reset_settings
from aftercare.db import get_engine, reset_engines
from aftercare.migrate import upgrade
from aftercare.models import Base

PG_ADMIN = os.environ.get("AFTERCARE_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("AFTERCARE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parent.parent


def _admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql)


def create_pg_database(prefix: str = "aftercare_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    url = create_pg_database()
    upgrade(url)
    yield url
    reset_engines()
    drop_pg_database(url)


def _truncate_all() -> None:
    engine = get_engine()
    tables = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())


def configure(monkeypatch: pytest.MonkeyPatch, **values: object) -> None:
    """Set AFTERCARE_* variables and drop every cache built from the old ones."""
    from aftercare.channels import reset_channels

    for key, value in values.items():
        monkeypatch.setenv(f"AFTERCARE_{key.upper()}", str(value))
    reset_settings()
    reset_engines()
    reset_channels()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pg_url: str) -> Iterator[dict]:
    """Embedded channels on the test PostgreSQL database, emptied before each test."""
    for key in list(os.environ):
        if key.startswith("AFTERCARE_"):
            monkeypatch.delenv(key)
    values = {"home": tmp_path / "home", "database_url": pg_url, "sms_channel": "console", "email_channel": "console"}
    configure(monkeypatch, **values)
    _truncate_all()
    yield values
    reset_engines()


@pytest.fixture(params=["postgresql", "sqlite"])
def any_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pg_url: str) -> dict:
    """The same test on PostgreSQL and on the embedded SQLite file."""
    for key in list(os.environ):
        if key.startswith("AFTERCARE_"):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    values = {"home": home, "sms_channel": "console", "email_channel": "console"}
    if request.param == "postgresql":
        values["database_url"] = pg_url
    configure(monkeypatch, **values)
    if request.param == "postgresql":
        _truncate_all()
    else:
        home.mkdir(parents=True, exist_ok=True)
        upgrade(f"sqlite:///{home.resolve() / 'aftercare.db'}")
    values["backend"] = request.param
    return values
