"""Is Aftercare working? The checks behind /healthz: the schema is at the migrations' head, the beat's dispatcher
ticked recently, and no due message has waited too long.

Each check answers "ok" or a short reason; the report says which failed and the dispatcher lag in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from aftercare.config import Settings, get_settings
from aftercare.db import session_factory
from aftercare.migrate import alembic_config
from aftercare.models import Heartbeat, utcnow
from aftercare.schedule.dispatcher import oldest_due_at

OK = "ok"
TICK = "tick"  # the heartbeat the dispatcher tick writes


@dataclass
class HealthReport:
    """`checks`: {name: "ok" or why not}, for database, schema, tick and lag."""

    checks: dict[str, str] = field(default_factory=dict)
    dispatcher_lag_seconds: float | None = None
    last_tick_seconds_ago: float | None = None

    @property
    def failed(self) -> list[str]:
        return [name for name, result in self.checks.items() if result != OK]

    def as_dict(self) -> dict:
        return {"status": "fail" if self.failed else "ok", "failed": self.failed, "checks": self.checks,
                "dispatcher_lag_seconds": self.dispatcher_lag_seconds,
                "last_tick_seconds_ago": self.last_tick_seconds_ago}


def check_health(*, settings: Settings | None = None, now: datetime | None = None) -> HealthReport:
    """Run every check against the database. Never raises: an unreachable database is the failed check
    "database", a schema behind the code stops the checks that read its tables."""
    settings = settings or get_settings()
    now = now or utcnow()
    report = HealthReport()
    try:
        with session_factory()() as session:
            report.checks["database"] = OK
            report.checks["schema"] = _schema_check(session)
            if report.checks["schema"] == OK:
                _tick_check(session, report, settings, now)
                _lag_check(session, report, settings, now)
    except SQLAlchemyError as exc:
        # The error's class only: a driver message can quote the URL or bound values.
        report.checks["database"] = f"unreachable ({type(exc).__name__})"
    return report


@lru_cache(maxsize=1)
def head_revisions() -> frozenset[str]:
    """The migrations' head revision(s), read once from migrations/."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def _schema_check(session: Session) -> str:
    current = frozenset(MigrationContext.configure(session.connection()).get_current_heads())
    if not current:
        return "not initialised: run aftercare db upgrade"
    if current != head_revisions():
        return f"at {', '.join(sorted(current))}, not head {', '.join(sorted(head_revisions()))}: run aftercare db upgrade"
    return OK


def _tick_check(session: Session, report: HealthReport, settings: Settings, now: datetime) -> None:
    beat = session.get(Heartbeat, TICK)
    if beat is None:
        report.checks["tick"] = "no tick yet"
        return
    report.last_tick_seconds_ago = round(max(0.0, (now - beat.at).total_seconds()), 1)
    limit = settings.health_tick_seconds
    report.checks["tick"] = OK if report.last_tick_seconds_ago <= limit else f"no tick for over {limit:g}s"


def _lag_check(session: Session, report: HealthReport, settings: Settings, now: datetime) -> None:
    report.dispatcher_lag_seconds = dispatcher_lag_seconds(session, now=now)
    limit = settings.health_max_lag_seconds
    report.checks["lag"] = OK if report.dispatcher_lag_seconds <= limit else f"a due message waited over {limit:g}s"


def dispatcher_lag_seconds(session: Session, *, now: datetime | None = None) -> float:
    """How long the oldest due message has waited, in seconds; 0 when nothing is due."""
    now = now or utcnow()
    oldest = oldest_due_at(session, now=now)
    return round(max(0.0, (now - oldest).total_seconds()), 1) if oldest else 0.0


def record_heartbeat(session: Session, name: str, *, details: dict, now: datetime | None = None) -> None:
    """Upsert the heartbeat `name` (one row per periodic job): concurrent ticks both succeed, the later wins.
    The caller commits."""
    values = {"name": name, "at": now or utcnow(), "details": details}
    statement = _dialect_insert(session)(Heartbeat).values(**values)
    session.execute(statement.on_conflict_do_update(index_elements=[Heartbeat.name],
                                                    set_={"at": values["at"], "details": details}))


_INSERTS = {"postgresql": pg_insert, "sqlite": sqlite_insert}  # INSERT ... ON CONFLICT, one per dialect


def _dialect_insert(session: Session):
    return _INSERTS[session.get_bind().dialect.name]
