"""The Alembic migrations build exactly the schema the models describe, on PostgreSQL and SQLite."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from aftercare.db import make_engine
from aftercare.migrate import downgrade, upgrade
from aftercare.models import Base
from tests.conftest import create_pg_database, drop_pg_database


def _differences(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_migrations_match_the_models_on_postgresql():
    url = create_pg_database("aftercare_mig")
    try:
        upgrade(url)
        assert _differences(url) == []
    finally:
        drop_pg_database(url)


def test_downgrade_to_base_and_upgrade_again_on_postgresql():
    url = create_pg_database("aftercare_mig")
    try:
        upgrade(url)
        assert _tables(url) == set(Base.metadata.tables)
        downgrade(url, "base")
        assert _tables(url) == set()
        upgrade(url)
        assert _differences(url) == []
    finally:
        drop_pg_database(url)


def test_migrations_match_the_models_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    assert _differences(url) == []
    downgrade(url, "base")
    assert _tables(url) == set()
