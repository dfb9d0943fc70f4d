"""Serving the web app with waitress, a production WSGI server that needs no C compiler and runs anywhere."""

from __future__ import annotations

import logging

from waitress import serve as waitress_serve

from aftercare.inbound.web import create_app


def serve(*, host: str, port: int, threads: int = 8) -> None:
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    waitress_serve(create_app(), host=host, port=port, threads=threads, ident="aftercare", clear_untrusted_proxy_headers=True)
