"""Serving the web app with waitress, a production WSGI server that needs no C compiler and runs anywhere."""

from __future__ import annotations

import logging

from waitress import serve as waitress_serve

from aftercare.config import get_settings
from aftercare.inbound.web import create_app
from aftercare.logs import configure_logging


def serve(*, host: str, port: int, threads: int = 8) -> None:
    configure_logging(get_settings().log_level)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    waitress_serve(create_app(), host=host, port=port, threads=threads, ident="aftercare", clear_untrusted_proxy_headers=True)
