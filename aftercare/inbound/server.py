"""Serving the web app: gunicorn with several worker processes in production (`aftercare web --workers N`), or
waitress in this one process (`aftercare web` without --workers, `aftercare run`, the tests), a production WSGI
server that needs no C compiler and runs anywhere.

One Python process answers only as many webhooks as one core can (the GIL), so production runs N processes.
gunicorn loads the app and warms it up once in its master (`preload_app`), then forks: every worker starts warm
and shares those pages. The master holds no database connection when it forks: each worker opens its own pool.
"""

from __future__ import annotations

import errno
import logging
import os
import socket

from waitress import create_server

from aftercare.config import get_settings
from aftercare.errors import AftercareError
from aftercare.inbound.web import create_app
from aftercare.logs import configure_logging

log = logging.getLogger(__name__)
_WARM_TEXT = "a bit swollen and red today, is that normal?"


def make_server(*, host: str, port: int, threads: int = 8):
    """The waitress server, already listening on host:port; `.run()` serves until SIGINT (or KeyboardInterrupt).

    Raises AftercareError (one line) when the port is taken, so nothing else has been started by then."""
    configure_logging(get_settings().log_level)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    try:
        return create_server(create_app(), host=host, port=port, threads=threads, ident="aftercare",
                             clear_untrusted_proxy_headers=True)
    except OSError as exc:
        raise _listen_error(host, port, exc) from None


def serve(*, host: str, port: int, threads: int = 8, workers: int | None = None) -> None:
    """Serve until SIGINT/SIGTERM: waitress in this process when `workers` is None, else gunicorn with `workers`
    processes of `threads` threads each. Raises AftercareError (one line) when host:port cannot be listened on."""
    if workers is None:
        server = make_server(host=host, port=port, threads=threads)
        warm_up()
        server.run()
        return
    serve_workers(host=host, port=port, workers=workers, threads=threads)


def serve_workers(*, host: str, port: int, workers: int, threads: int) -> None:
    """gunicorn (gthread workers: a thread waiting on PostgreSQL lets another one work) on host:port."""
    from gunicorn.app.base import BaseApplication

    settings = get_settings()
    configure_logging(settings.log_level)
    _check_port(host, port)
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        log.warning("PROMETHEUS_MULTIPROC_DIR is not set: each /metrics scrape shows only the web process that "
                    "answers it, not the other web or Celery worker processes (README: Health, metrics and logs)")
    app = create_app(settings)
    warm_up()
    _close_connections()  # forked workers must not share the master's sockets: each opens its own pool

    class _Gunicorn(BaseApplication):
        def load_config(self) -> None:
            for key, value in _gunicorn_options(host, port, workers, threads, settings.log_level).items():
                self.cfg.set(key, value)

        def load(self):
            return app

    _Gunicorn().run()


def _gunicorn_options(host: str, port: int, workers: int, threads: int, log_level: str) -> dict:
    return {
        "bind": [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"],
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "preload_app": True,
        "proc_name": "aftercare-web",
        "backlog": 2048,  # a burst of webhooks waits in the kernel, not refused
        "timeout": 60,  # a worker silent this long is restarted
        "graceful_timeout": 8,  # SIGTERM: requests in flight finish first, within docker stop's 10 s
        "keepalive": 5,
        # gunicorn's control socket is one path per user ($HOME/.gunicorn/gunicorn.ctl): a second instance on the
        # host would take it over, and a read-only home in the image cannot hold it. Nothing here uses it.
        "control_socket_disable": True,
        "loglevel": log_level.lower(),
        # No access log: its lines would bypass the privacy filter of aftercare.logs, and one line per webhook
        # at hundreds a second says nothing the metrics do not.
        "accesslog": None,
        "post_fork": _after_fork,
        "child_exit": _child_exit,
    }


def _after_fork(_server, _worker) -> None:
    # The master closed its connections before forking; anything pooled since is not this worker's.
    _close_connections()


def _child_exit(_server, worker) -> None:
    # With PROMETHEUS_MULTIPROC_DIR, a dead worker's gauges must stop counting (prometheus-client's own advice).
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def _close_connections() -> None:
    from aftercare.db import reset_engines

    reset_engines()


def warm_up() -> None:
    """Load what the first reply would otherwise wait for (about 2 s): the ORM mappers, the triage lexicons in
    every language, the language model, the protocols and the answer texts. Touches no database."""
    from sqlalchemy.orm import configure_mappers

    from aftercare.inbound.handling import answerable_signs
    from aftercare.inbound.identity import care_span
    from aftercare.inbound.language import message_language
    from aftercare.protocols.loader import list_protocols
    from aftercare.protocols.templates import LANGUAGES
    from aftercare.triage import triage

    configure_mappers()
    message_language(_WARM_TEXT)
    for language in LANGUAGES:
        triage(_WARM_TEXT, language)
    answerable_signs()
    for protocol in list_protocols():
        care_span(protocol.key)
        triage(_WARM_TEXT, "en", treatment=protocol.key, days_since=1.0)


def _check_port(host: str, port: int) -> None:
    """Fail in one line before anything starts when host:port is taken (gunicorn would retry, then exit)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise _listen_error(host, port, exc) from None


def _listen_error(host: str, port: int, exc: OSError) -> AftercareError:
    if exc.errno == errno.EADDRINUSE:
        return AftercareError(f"port {port} on {host} is already in use: stop the other process, "
                              "or choose another port with AFTERCARE_WEB_PORT")
    return AftercareError(f"cannot listen on {host}:{port}: {exc.strerror}")
