"""Engine and session factory, built lazily from the settings (never at import time)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from aftercare.config import get_settings


def make_engine(url: str) -> Engine:
    """An engine for a `sqlite:///...` or `postgresql://...` URL. Bound values are never shown in errors or logs:
    they carry names, phones, symptoms and ACK codes."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # pre_ping: a connection killed by the server (failover, pg_terminate_backend) is replaced, not reused.
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10, hide_parameters=True)


def _sqlite_connect(dbapi_connection, _record) -> None:
    # pysqlite's own transaction handling starts a transaction only before INSERT/UPDATE/DELETE, so a SAVEPOINT
    # opens one of its own and releasing it COMMITs: an inbound SMS was committed before it was handled. Turn
    # that off and let SQLAlchemy emit BEGIN (_sqlite_begin), as its pysqlite documentation recommends.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL: a reader outside our transactions (a backup, the sqlite3 shell) never blocks the writer, and commits
    # are cheaper; busy_timeout waits for the lock instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection) -> None:
    # IMMEDIATE takes the write lock at once (waiting busy_timeout for it). A deferred BEGIN would read from a
    # snapshot, and its first write after another connection's commit fails at once with "database is locked"
    # (WAL's SQLITE_BUSY_SNAPSHOT, which busy_timeout does not wait out). SQLite has one writer anyway.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


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
