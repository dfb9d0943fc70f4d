"""The clinic staff's web side: the escalation page reached from a page's signed link, sign-in and the review
inbox (issue 9). Server-rendered pages (Flask + Jinja2), mobile first."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("staff", __name__)

# The routes register themselves on the blueprint when their modules load.
from aftercare.staff import auth, escalation_page, inbox, media_route  # noqa: E402, F401
