"""The enrollment API for booking systems: /api/v1 (issue 9). JSON in, JSON out, RFC 9457 problem details."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")

from aftercare.api import routes  # noqa: E402,F401  (registers the views on the blueprint)
