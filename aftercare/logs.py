"""Logging: one line per event, key=value, never a phone number, email address or message body.

Code logs ids, statuses and error codes only; this module just sets the format and level.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s process=%(process)d %(message)s"


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if any(getattr(h, "_aftercare", False) for h in root.handlers):
        root.setLevel(level.upper())
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler._aftercare = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Third-party loggers that would print request URLs or bodies at INFO stay at WARNING.
    for noisy in ("twilio.http_client", "urllib3", "sqlalchemy.engine", "waitress.queue"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
