"""Engine and session factory, built lazily from the settings (never at import time)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from aftercare.config import get_settings


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # pre_ping: a connection killed by the server (failover, pg_terminate_backend) is replaced, not reused.
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10, hide_parameters=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the web process read while the worker writes; busy_timeout waits instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


_engines: dict[str, Engine] = {}


def engine_for(url: str) -> Engine:
    if url not in _engines:
        _engines[url] = make_engine(url)
    return _engines[url]


def get_engine() -> Engine:
    settings = get_settings()
    url = settings.effective_database_url
    if url.startswith("sqlite:///"):
        settings.home.mkdir(parents=True, exist_ok=True)
    return engine_for(url)


_factories: dict[Engine, sessionmaker[Session]] = {}


def session_factory() -> sessionmaker[Session]:
    """One sessionmaker per engine: building one sets up SQLAlchemy's event dispatch, too slow per message."""
    engine = get_engine()
    if engine not in _factories:
        _factories[engine] = sessionmaker(engine, expire_on_commit=False)
    return _factories[engine]


@contextmanager
def session_scope() -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error."""
    session = session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def reset_engines() -> None:
    """Close every pooled connection (tests switch databases; forked workers must not share sockets)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()
    _factories.clear()
