"""Logging: one line per event, key=value text or JSON (AFTERCARE_LOG_FORMAT=json), never personal data.

Code logs ids, statuses and error codes only; this module sets the format and level, adds the Celery task id and
name when the line comes from inside a task, and, as a last guard, blanks any E.164 phone number or email address
a line would still carry. Message bodies cannot be recognised: code never logs them.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s process=%(process)d%(task)s %(message)s"
_PERSONAL = re.compile(r"\+\d{7,15}|[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Celery's lines for every task received and done: the dispatcher tick's every few seconds belong at DEBUG.
_PER_TICK_LOGGERS = ("celery.app.trace", "celery.worker.strategy", "celery.beat")
# Third-party loggers that would print request URLs or bodies at INFO stay at WARNING.
# alembic: every /healthz compares the schema with the head revision, and alembic says so at INFO each time.
_NOISY_LOGGERS = ("twilio.http_client", "urllib3", "sqlalchemy.engine", "waitress.queue", "alembic")


def redact(text: str) -> str:
    """`text` with phone numbers (E.164, as stored) and email addresses replaced by placeholders."""
    return _PERSONAL.sub(lambda m: "[email]" if "@" in m.group() else "[phone]", text)


class TaskContext(logging.Filter):
    """Adds `task_id` and `task_name` (None outside a Celery task) and the text format's `task` field."""

    def filter(self, record: logging.LogRecord) -> bool:
        task_id, task_name = _current_task()
        record.task_id, record.task_name = task_id, task_name
        record.task = f" task={task_name} task_id={task_id}" if task_id else ""
        return True


def _current_task() -> tuple[str | None, str | None]:
    try:
        from celery import current_task
    except ImportError:  # pragma: no cover - celery is a dependency
        return None, None
    request = getattr(current_task, "request", None) if current_task else None
    task_id = getattr(request, "id", None)
    return (task_id, current_task.name) if task_id else (None, None)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record)).replace("\n", " | ")  # a traceback stays on the event's line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: at, level, logger, process, message; task and task_id inside a task; exc."""

    def format(self, record: logging.LogRecord) -> str:
        event = {"at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                 "level": record.levelname, "logger": record.name, "process": record.process,
                 "message": redact(record.getMessage())}
        if getattr(record, "task_id", None):
            event.update(task=record.task_name, task_id=record.task_id)
        if record.exc_info:
            event["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(event, ensure_ascii=False)


def configure_logging(level: str | None = None, fmt: str | None = None) -> None:
    """Log to stderr at `level` in `fmt` ("text" or "json"); both default to the settings (AFTERCARE_LOG_LEVEL,
    AFTERCARE_LOG_FORMAT). Safe to call again: the handler is replaced, not added twice."""
    if level is None or fmt is None:
        from aftercare.config import get_settings

        settings = get_settings()
        level, fmt = level or settings.log_level, fmt or settings.log_format
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_aftercare", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(FORMAT))
    handler.addFilter(TaskContext())
    handler._aftercare = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in _NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    per_tick = logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING
    for name in _PER_TICK_LOGGERS:
        logging.getLogger(name).setLevel(per_tick)
