"""Serving the web app with waitress, a production WSGI server that needs no C compiler and runs anywhere."""

from __future__ import annotations

import errno
import logging

from waitress import create_server

from aftercare.config import get_settings
from aftercare.errors import AftercareError
from aftercare.inbound.web import create_app
from aftercare.logs import configure_logging


def make_server(*, host: str, port: int, threads: int = 8):
    """The waitress server, already listening on host:port; `.run()` serves until SIGINT (or KeyboardInterrupt).

    Raises AftercareError (one line) when the port is taken, so nothing else has been started by then."""
    configure_logging(get_settings().log_level)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    try:
        return create_server(create_app(), host=host, port=port, threads=threads, ident="aftercare",
                             clear_untrusted_proxy_headers=True)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise AftercareError(f"port {port} on {host} is already in use: stop the other process, "
                                 "or choose another port with AFTERCARE_WEB_PORT") from None
        raise AftercareError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def serve(*, host: str, port: int, threads: int = 8) -> None:
    make_server(host=host, port=port, threads=threads).run()
